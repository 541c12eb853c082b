"""The continuous-time NGC group system.

``N`` neurons in ``G`` groups, ``x = (x_1, ..., x_G)`` with ``x_g`` in ``R^{n_g}``. Every neuron
carries a receiver state and a sender state in ``R^r`` (per group ``A_g, B_g`` of shape
``(n_g, r)``); groups talk through channels ``C_gh`` of shape ``(r, r)``::

    tau_g dx_g/dt = -x_g + A_g sum_h C_gh B_h^T phi(x_h) + u_g(t)

The effective weight ``W = A C B^T`` (block ``(g, h)`` equal to ``A_g C_gh B_h^T``) is never
formed on the hot path. The derivations behind every method live in ``theory/01``–``04``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence, Union

import torch
from torch import Tensor

from .._validation import check_same_device_dtype, describe
from ._base import AbstractVectorField, GroundTruth

__all__ = ["Gain", "NGCSystem", "ContractionBound", "MATERIALIZE_LIMIT"]

#: Largest N for which :meth:`NGCSystem.materialize` builds the dense ``(N, N)`` weight
#: without ``force=True`` (4096² float64 entries are 128 MiB per parameter-batch member).
MATERIALIZE_LIMIT = 4096

_REFERENCE = (
    "ngcdyn theory/01_ngc_system.md (definition, after Pei, Huang & Wang 2025, arXiv 2510.16851); "
    "linear spectrum: theory/02_linear_spectrum.md"
)


# --------------------------------------------------------------------------------------------
# Gains
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gain:
    """An elementwise gain (transfer function) ``phi`` together with what analysis needs of it.

    Parameters
    ----------
    fn
        ``phi``: elementwise, ``(...) -> (...)``, same dtype and device.
    derivative
        ``phi'``: elementwise, used by the analytic Jacobian and :meth:`NGCSystem.jvp`.
    integral
        ``Phi(x) = int_0^x phi(s) ds``, elementwise. Needed only by :meth:`NGCSystem.energy`
        (``None``: energy unavailable).
    derivative_bound
        ``sup_x |phi'(x)|``. Needed only by :meth:`NGCSystem.contraction_bound` (``None``:
        unavailable).
    nondecreasing
        Whether ``phi' >= 0`` everywhere, the condition under which the energy is a Lyapunov
        function. :meth:`NGCSystem.energy` refuses gains that do not declare it.
    name
        A label for ``repr`` and messages.

    Notes
    -----
    Built-in gains are selected by name in :class:`NGCSystem`: ``"tanh"`` (``Phi = log cosh``,
    ``sup phi' = 1``) and ``"identity"`` (alias ``"linear"``; ``Phi = x^2/2``, ``sup phi' = 1``).

    See also
    --------
    NGCSystem

    Examples
    --------
    >>> import torch
    >>> softsign = Gain(lambda x: x / (1 + x.abs()), lambda x: (1 + x.abs()) ** -2,
    ...                 derivative_bound=1.0, nondecreasing=True, name="softsign")
    >>> softsign.fn(torch.tensor([1.0, -3.0], dtype=torch.float64)).tolist()
    [0.5, -0.75]
    """

    fn: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor], Tensor]
    integral: Callable[[Tensor], Tensor] | None = None
    derivative_bound: float | None = None
    nondecreasing: bool = False
    name: str = "custom"

    def __post_init__(self) -> None:
        for arg in ("fn", "derivative"):
            if not callable(getattr(self, arg)):
                raise TypeError(
                    f"`{arg}` of Gain must be callable (elementwise on tensors), got "
                    f"{describe(getattr(self, arg))}. Pass e.g. torch.tanh."
                )
        if self.integral is not None and not callable(self.integral):
            raise TypeError(
                f"`integral` of Gain must be callable or None, got {describe(self.integral)}."
            )
        if self.derivative_bound is not None:
            b = float(self.derivative_bound)
            if not (math.isfinite(b) and b >= 0):
                raise ValueError(
                    f"`derivative_bound` of Gain must be finite and >= 0 (it is sup |phi'|), got "
                    f"{self.derivative_bound!r}. Pass None if the gain has no bounded derivative."
                )

    def __repr__(self) -> str:
        return f"Gain({self.name!r})"


def _tanh_derivative(x: Tensor) -> Tensor:
    th = torch.tanh(x)
    return 1.0 - th * th


def _log_cosh(x: Tensor) -> Tensor:
    # log cosh x = |x| + log(1 + exp(-2|x|)) - log 2, overflow-free for large |x|.
    a = x.abs()
    return a + torch.log1p(torch.exp(-2.0 * a)) - math.log(2.0)


def _identity(x: Tensor) -> Tensor:
    return x


def _one(x: Tensor) -> Tensor:
    return torch.ones_like(x)


def _half_square(x: Tensor) -> Tensor:
    return 0.5 * x * x


_TANH = Gain(torch.tanh, _tanh_derivative, _log_cosh, 1.0, True, "tanh")
_IDENTITY = Gain(_identity, _one, _half_square, 1.0, True, "identity")
_GAINS = {"tanh": _TANH, "identity": _IDENTITY, "linear": _IDENTITY}


def _resolve_gain(phi: Any) -> Gain:
    if isinstance(phi, Gain):
        return phi
    if isinstance(phi, str):
        if phi not in _GAINS:
            raise ValueError(
                f"`phi` must be one of {sorted(_GAINS)} or a Gain, got {phi!r}. For another "
                "elementwise function pass Gain(fn, derivative)."
            )
        return _GAINS[phi]
    if callable(phi):
        raise TypeError(
            f"`phi` got a bare callable {describe(phi)}; the system also needs its derivative. "
            "Wrap it: phi=Gain(fn, derivative) (see ngcdyn.systems.Gain)."
        )
    raise TypeError(f"`phi` must be a gain name {sorted(_GAINS)} or a Gain, got {describe(phi)}.")


class ContractionBound(NamedTuple):
    """Result of :meth:`NGCSystem.contraction_bound`.

    Attributes
    ----------
    bound
        ``(*pbatch,)``: an upper bound on ``mu_2(J(t, x))`` valid at every state ``x``.
    certified
        ``(*pbatch,)`` bool: ``bound < 0``, i.e. the system contracts in the Euclidean norm at
        rate at least ``-bound``.
    coupling_norm
        ``(*pbatch,)``: ``||diag(1/tau) W||_2``, computed without forming ``W``.
    """

    bound: Tensor
    certified: Tensor
    coupling_norm: Tensor


ParamLike = Union[Tensor, Callable[[Tensor], Tensor]]


# --------------------------------------------------------------------------------------------
# The system
# --------------------------------------------------------------------------------------------


class NGCSystem(AbstractVectorField):
    r"""The continuous-time neuronal-group-communication (NGC) system.

    .. math::

        \tau_g \dot x_g = -x_g + A_g \sum_h C_{gh} B_h^\top \phi(x_h) + u_g(t),
        \qquad g = 1, \dots, G,

    evaluated as broadcast ``s_h = B_h^T phi(x_h)`` (``(*batch, G, r)``, one segmented
    reduction), channel mixing ``m_g = sum_h C_gh s_h`` (``(*batch, G, r)``) and read-out
    ``A_g m_g`` (a dot product of each neuron's receiver state with its group's signal). The cost
    per batch member is ``O(N r + G^2 r^2)``; the effective weight ``W = A C B^T`` is never formed
    (see :meth:`materialize` for checks).

    Parameters
    ----------
    A, B
        Receiver and sender states, ``(*pbatch, N, r)``, groups stacked along ``N`` in order.
        Either may instead be a callable ``t -> (*pbatch, N, r)`` (time-dependent states: weights
        as transient interactions); it is called with the ``t`` the vector field receives
        (0-d, or ``(*batch,)`` for per-sample times, in which case it must return a leading
        ``*batch`` that matches the state's).
    C
        Channels, ``(*pbatch, G, G, r, r)`` with ``C[..., g, h, :, :] = C_gh``, or a callable of
        ``t`` returning that.
    group_sizes
        ``(n_1, ..., n_G)``, positive integers summing to ``N``. Groups may differ in size.
    tau
        Time constants ``tau_g > 0``: a number, or a tensor ``(*pbatch, G)`` (one per group).
    phi
        The gain: ``"tanh"`` (default), ``"identity"``/``"linear"``, or a :class:`Gain`.
    drive
        External drive ``u``: ``None``, a constant tensor ``(*batch, N)``, or a callable
        ``t -> (*batch, N)`` (called with the same ``t`` as the vector field).

    Attributes
    ----------
    dim : int
        ``N``.
    n_groups, rank : int
        ``G`` and ``r``.
    group_sizes : tuple of int
    group_index : Tensor
        ``(N,)`` long, the group of every neuron.
    batch_shape : torch.Size
        ``*pbatch``, the broadcast of the parameters' leading dimensions.

    Notes
    -----
    All parameter leading dimensions broadcast against each other and against the state's batch
    dimensions: a state ``(*batch, N)`` gives ``dy/dt`` of shape ``broadcast(*pbatch, *batch) +
    (N,)``, so pass initial states whose batch shape already contains ``*pbatch`` when solving.
    ``args`` is not used. Callable parameters and drives are evaluated once at ``t = 0`` at
    construction to check their shapes.

    References
    ----------
    Pei, Huang & Wang, "Neuronal Group Communication for Efficient Neural Representation",
    arXiv:2510.16851 (2025) — the factorisation ``W = A C B^T`` into neuronal states; the
    dynamics above is ngcdyn's continuous-time reading of it (``theory/01_ngc_system.md``).

    See also
    --------
    NGCSystem.random, NGCSystem.symmetric, NGCSystem.from_arrays, Gain

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> sys = NGCSystem.random(3, 4, 2, gain=0.5, generator=g, dtype=torch.float64)
    >>> sys.dim, sys.n_groups, sys.rank
    (12, 3, 2)
    >>> y = torch.randn(5, 12, generator=g, dtype=torch.float64)
    >>> sys(0.0, y).shape
    torch.Size([5, 12])
    >>> torch.allclose(sys(0.0, y), sys.dense_rhs(0.0, y))
    True
    """

    has_analytic_jacobian = True
    has_structured_jvp = True

    def __init__(
        self,
        A: ParamLike,
        B: ParamLike,
        C: ParamLike,
        *,
        group_sizes: Sequence[int],
        tau: float | Tensor = 1.0,
        phi: str | Gain = "tanh",
        drive: Tensor | Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.phi = _resolve_gain(phi)
        sizes = _check_group_sizes(group_sizes)
        self.group_sizes = sizes
        self.n_groups = G = len(sizes)

        # Evaluate callables once (at t = 0) to learn and check shapes, dtype and device.
        self._A, self._B, self._C = A, B, C
        self._time_dependent = any(callable(p) and not isinstance(p, Tensor) for p in (A, B, C))
        ref = next((p for p in (A, B, C) if isinstance(p, Tensor)), None)
        t0 = torch.zeros((), dtype=ref.dtype if ref is not None else torch.get_default_dtype(),
                         device=ref.device if ref is not None else None)
        A0 = _probe("A", A, t0)
        B0 = _probe("B", B, t0)
        C0 = _probe("C", C, t0)
        t0 = t0.to(dtype=A0.dtype, device=A0.device)
        for name, v, nd_min in (("A", A0, 2), ("B", B0, 2), ("C", C0, 4)):
            if not v.is_floating_point():
                raise TypeError(
                    f"`{name}` must be a floating-point tensor, got {describe(v)}. "
                    f"Use {name}.to(torch.float64) (or float32)."
                )
            if v.ndim < nd_min:
                want = "(*pbatch, N, r)" if nd_min == 2 else "(*pbatch, G, G, r, r)"
                raise ValueError(f"`{name}` must have shape {want}, got {describe(v)}.")
        check_same_device_dtype("A", A0, B=B0, C=C0)
        N, r = A0.shape[-2], A0.shape[-1]
        if B0.shape[-2:] != A0.shape[-2:]:
            raise ValueError(
                f"`B` must have the shape (*pbatch, N, r) = (..., {N}, {r}) of `A` (same neurons, "
                f"same rank r), got {tuple(B0.shape)}. Every neuron carries one receiver and one "
                "sender state of the same rank."
            )
        if r < 1:
            raise ValueError(f"`A` must have rank r >= 1 (last dimension), got {tuple(A0.shape)}.")
        if sum(sizes) != N:
            raise ValueError(
                f"`group_sizes` must sum to N = {N} (the number of rows of `A`), got {list(sizes)} "
                f"summing to {sum(sizes)}. Give one size per group, in the order the groups are "
                "stacked in `A` and `B`."
            )
        if C0.ndim < 4 or C0.shape[-4:] != (G, G, r, r):
            raise ValueError(
                f"`C` must have shape (*pbatch, G, G, r, r) = (..., {G}, {G}, {r}, {r}) for "
                f"{G} groups of rank {r}, got {tuple(C0.shape)}. A block matrix of shape "
                f"(G r, G r) converts with C.reshape(G, r, G, r).transpose(1, 2)."
            )
        self.dim = N
        self.rank = r
        self.dtype, self.device = A0.dtype, A0.device

        tau_t = _check_tau(tau, G, A0)
        self.tau = tau_t  # (*ptau, G)
        try:
            self.batch_shape = torch.broadcast_shapes(
                A0.shape[:-2], B0.shape[:-2], C0.shape[:-4], tau_t.shape[:-1]
            )
        except RuntimeError:
            raise ValueError(
                "The parameters' leading (batch) dimensions must broadcast against each other, "
                f"got A {tuple(A0.shape[:-2])}, B {tuple(B0.shape[:-2])}, "
                f"C {tuple(C0.shape[:-4])}, tau {tuple(tau_t.shape[:-1])}. Add singleton "
                "dimensions (e.g. A[None]) to line them up."
            ) from None

        # Group bookkeeping: the group of each neuron and its index inside the group.
        dev = self.device
        sizes_t = torch.tensor(sizes, dtype=torch.long, device=dev)
        self.group_index = torch.repeat_interleave(torch.arange(G, device=dev), sizes_t)  # (N,)
        starts = torch.cumsum(sizes_t, 0) - sizes_t
        self._local_index = torch.arange(N, device=dev) - starts[self.group_index]  # (N,)
        self._sizes_t = sizes_t
        self._equal = len(set(sizes)) == 1
        self._n = sizes[0]
        self._inv_tau_n = (1.0 / tau_t)[..., self.group_index]  # (*ptau, N)

        # Drive.
        if drive is not None and not isinstance(drive, Tensor) and not callable(drive):
            raise TypeError(
                f"`drive` must be None, a tensor (*batch, N) or a callable t -> (*batch, N), got "
                f"{describe(drive)}."
            )
        if drive is not None:
            u0 = _probe("drive", drive, t0)
            if u0.ndim < 1 or u0.shape[-1] != N:
                raise ValueError(
                    f"`drive` must have shape (*batch, N) with N = {N}, got {describe(u0)}. "
                    "Give one input per neuron."
                )
            check_same_device_dtype("A", A0, drive=u0)
        self.drive = drive

        # Constant parameters: precompute the block channel matrix once.
        self._const = None
        if not self._time_dependent:
            self._const = (A0, B0, C0, _block(C0))

    # ---------------------------------------------------------------- constructors

    @classmethod
    def random(
        cls,
        n_groups: int,
        group_size: int | Sequence[int],
        rank: int,
        *,
        gain: float = 1.0,
        symmetric: bool = False,
        tau: float | Tensor = 1.0,
        phi: str | Gain = "tanh",
        drive: Tensor | Callable[[Tensor], Tensor] | None = None,
        batch_shape: Sequence[int] = (),
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> NGCSystem:
        r"""Random states and channels, scaled like the random rate network with gain ``g``.

        States ``A, B ~ N(0, 1/r)`` entrywise (so ``E|A_i|^2 = 1``), channels
        ``C ~ N(0, g^2/N)``; then every entry of ``W = A C B^T`` has mean 0 and variance
        exactly ``g^2/N``, the scaling of ``dx/dt = -x + J tanh x``, ``J_ij ~ N(0, g^2/N)``
        (Sompolinsky, Crisanti & Sommers 1988). Derivation: ``theory/01_ngc_system.md``.
        With ``symmetric=True``, ``B = A`` and the ``(G r, G r)`` block channel matrix is
        symmetric with every entry of variance ``g^2/N``, so ``W`` is symmetric and its
        off-diagonal entries again have variance ``g^2/N``.

        Parameters
        ----------
        n_groups, rank
            ``G`` and ``r``.
        group_size
            ``n`` for equal groups, or a sequence of ``G`` sizes.
        gain
            ``g >= 0``.
        symmetric
            Build a symmetric coupling (see :meth:`symmetric`).
        batch_shape
            Leading parameter batch shape ``*pbatch`` (an ensemble of independent systems).
        generator, dtype, device
            Randomness source (on ``device``), dtype (default: torch's default) and device.
        tau, phi, drive
            As in :class:`NGCSystem`.

        Returns
        -------
        NGCSystem

        Examples
        --------
        >>> import torch
        >>> sys = NGCSystem.random(4, [3, 5, 2, 6], 2, gain=1.5, batch_shape=(7,),
        ...                        generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        >>> sys.batch_shape, sys.group_sizes
        (torch.Size([7]), (3, 5, 2, 6))
        """
        G = _check_int("n_groups", n_groups, 1)
        r = _check_int("rank", rank, 1)
        if isinstance(group_size, int) and not isinstance(group_size, bool):
            sizes = (_check_int("group_size", group_size, 1),) * G
        else:
            sizes = _check_group_sizes(group_size, name="group_size")
            if len(sizes) != G:
                raise ValueError(
                    f"`group_size` must be an int or a sequence of n_groups = {G} sizes, got "
                    f"{list(sizes)} ({len(sizes)} sizes)."
                )
        g = float(gain)
        if not (math.isfinite(g) and g >= 0):
            raise ValueError(f"`gain` must be finite and >= 0, got {gain!r}.")
        N = sum(sizes)
        dtype = dtype or torch.get_default_dtype()
        kw = dict(generator=generator, dtype=dtype, device=device)
        bs = tuple(batch_shape)
        A = torch.randn(*bs, N, r, **kw) / math.sqrt(r)
        sigma = g / math.sqrt(N)
        if symmetric:
            X = torch.randn(*bs, G * r, G * r, **kw) * sigma
            upper = torch.triu(X, diagonal=1)
            Cb = upper + upper.mT + torch.diag_embed(torch.diagonal(X, dim1=-2, dim2=-1))
            return cls.symmetric(A, _unblock(Cb, G, r), group_sizes=sizes, tau=tau, phi=phi,
                                 drive=drive)
        B = torch.randn(*bs, N, r, **kw) / math.sqrt(r)
        C = torch.randn(*bs, G, G, r, r, **kw) * sigma
        return cls(A, B, C, group_sizes=sizes, tau=tau, phi=phi, drive=drive)

    @classmethod
    def symmetric(
        cls,
        A: Tensor,
        C: Tensor,
        *,
        group_sizes: Sequence[int],
        tau: float | Tensor = 1.0,
        phi: str | Gain = "tanh",
        drive: Tensor | Callable[[Tensor], Tensor] | None = None,
    ) -> NGCSystem:
        r"""A system with symmetric coupling: ``B = A``, ``C_gh`` replaced by ``(C_gh + C_hg^T)/2``.

        Then the block matrix ``C~`` is symmetric and so is ``W = A~ C~ A~^T``; with a
        non-decreasing gain and a constant drive, :meth:`energy` is a Lyapunov function.
        An already symmetric ``C`` is kept as it is.

        Parameters
        ----------
        A
            States ``(*pbatch, N, r)`` (receiver = sender).
        C
            Channels ``(*pbatch, G, G, r, r)``; only their symmetric part is used.
        group_sizes, tau, phi, drive
            As in :class:`NGCSystem`.

        Returns
        -------
        NGCSystem

        See also
        --------
        NGCSystem.energy

        Examples
        --------
        >>> import torch
        >>> A = torch.randn(6, 2, dtype=torch.float64)
        >>> C = torch.randn(2, 2, 2, 2, dtype=torch.float64)
        >>> W = NGCSystem.symmetric(A, C, group_sizes=[4, 2]).materialize()
        >>> torch.allclose(W, W.mT)
        True
        """
        if not isinstance(C, Tensor) or C.ndim < 4:
            raise TypeError(
                f"`C` must be a tensor of shape (*pbatch, G, G, r, r), got {describe(C)}."
            )
        Cs = 0.5 * (C + C.transpose(-4, -3).transpose(-2, -1))
        return cls(A, A, Cs, group_sizes=group_sizes, tau=tau, phi=phi, drive=drive)

    @classmethod
    def from_arrays(
        cls,
        A: Sequence[Any],
        B: Sequence[Any],
        C: Any,
        *,
        tau: Any = 1.0,
        phi: str | Gain = "tanh",
        drive: Any = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> NGCSystem:
        r"""Build a system from per-group arrays (NumPy arrays, nested lists or tensors).

        Parameters
        ----------
        A, B
            Sequences of ``G`` arrays ``A_g, B_g`` of shape ``(n_g, r)``; the group sizes are
            read from them.
        C
            Channels, ``(G, G, r, r)``, or the block matrix of shape ``(G r, G r)``.
        tau
            A number or ``G`` numbers.
        drive
            ``None`` or an array ``(N,)`` / ``(*batch, N)``.
        dtype, device
            Target dtype (default: torch's default) and device.

        Returns
        -------
        NGCSystem

        Examples
        --------
        >>> import numpy as np, torch
        >>> sys = NGCSystem.from_arrays([np.ones((2, 1)), np.ones((3, 1))],
        ...                             [np.ones((2, 1)), np.ones((3, 1))],
        ...                             np.eye(2), tau=[1.0, 2.0], dtype=torch.float64)
        >>> sys.group_sizes, sys.tau.tolist(), sys.dtype
        ((2, 3), [1.0, 2.0], torch.float64)
        """
        dtype = dtype or torch.get_default_dtype()

        def conv(x: Any) -> Tensor:
            return torch.as_tensor(x, dtype=dtype, device=device)

        if isinstance(A, Tensor) or isinstance(B, Tensor) or not isinstance(A, Sequence) \
                or not isinstance(B, Sequence):
            raise TypeError(
                "`A` and `B` of from_arrays must be sequences of per-group arrays (n_g, r); for "
                "stacked tensors (N, r) call NGCSystem(A, B, C, group_sizes=...) instead."
            )
        if len(A) != len(B) or len(A) == 0:
            raise ValueError(
                "`A` and `B` must list the same number G >= 1 of groups, got "
                f"{len(A)} and {len(B)}."
            )
        As = [conv(a) for a in A]
        Bs = [conv(b) for b in B]
        for g, (a, b) in enumerate(zip(As, Bs)):
            if a.ndim != 2 or b.shape != a.shape:
                raise ValueError(
                    f"`A[{g}]` and `B[{g}]` must both have shape (n_g, r), got {tuple(a.shape)} "
                    f"and {tuple(b.shape)}."
                )
        G, r = len(As), As[0].shape[1]
        Ct = conv(C)
        if Ct.shape == (G * r, G * r):
            Ct = _unblock(Ct, G, r)
        tau_t = conv(tau)
        u = None if drive is None else conv(drive)
        return cls(torch.cat(As, 0), torch.cat(Bs, 0), Ct,
                   group_sizes=[a.shape[0] for a in As], tau=tau_t, phi=phi, drive=u)

    # ---------------------------------------------------------------- parameters

    def states(self, t: Tensor | float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
        """The states and channels ``(A, B, C)`` at time ``t`` (constant ones ignore ``t``).

        Returns ``A (*pbatch, N, r)``, ``B (*pbatch, N, r)``, ``C (*pbatch, G, G, r, r)``.
        """
        A, B, C, _ = self._resolve(self._as_time(t))
        return A, B, C

    def _as_time(self, t: Tensor | float | None) -> Tensor:
        if t is None:
            if self._time_dependent:
                raise ValueError(
                    "`t` is required: this NGCSystem has time-dependent states (A, B or C is a "
                    "callable), so the quantity is taken at a frozen time. Pass e.g. t=0.0."
                )
            t = 0.0
        if not isinstance(t, Tensor):
            t = torch.as_tensor(t, dtype=self.dtype, device=self.device)
        return t

    def _resolve(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self._const is not None:
            return self._const
        A = self._A(t) if callable(self._A) and not isinstance(self._A, Tensor) else self._A
        B = self._B(t) if callable(self._B) and not isinstance(self._B, Tensor) else self._B
        C = self._C(t) if callable(self._C) and not isinstance(self._C, Tensor) else self._C
        return A, B, C, _block(C)

    def _drive_at(self, t: Tensor) -> Tensor | None:
        u = self.drive
        if u is None or isinstance(u, Tensor):
            return u
        return u(t)

    # ---------------------------------------------------------------- structured operators

    def _signal(self, B: Tensor, q: Tensor) -> Tensor:
        """Per-group broadcast ``s_g = B_g^T q_g``, one segmented reduction.

        ``B (*p, N, r)``, ``q (*b, N)`` -> ``(*pb, G, r)``."""
        G = self.n_groups
        if self._equal:
            n = self._n
            # einsum contracts n with G as the batch of one bmm; a broadcast matmul
            # (*b, G, 1, n) @ (G, n, r) would copy B across the state batch on every call.
            return torch.einsum("...gn,...gnr->...gr", q.unflatten(-1, (G, n)), B.unflatten(-2, (G, n)))
        src = B * q.unsqueeze(-1)  # (*pb, N, r)
        out = src.new_zeros(src.shape[:-2] + (G, self.rank))
        return out.index_add(-2, self.group_index, src)  # (*pb, G, r)

    def _readout(self, A: Tensor, m: Tensor) -> Tensor:
        """Per-neuron read-out ``(A_g m_g)_i``: ``A (*p, N, r)``, ``m (*b, G, r)`` -> ``(*pb, N)``.
        """
        if self._equal:
            G, n = self.n_groups, self._n
            out = torch.einsum("...gnr,...gr->...gn", A.unflatten(-2, (G, n)), m)  # (*pb, G, n)
            return out.flatten(-2)
        return (A * m.index_select(-2, self.group_index)).sum(-1)  # (*pb, N)

    def _couple(self, A: Tensor, B: Tensor, Cb: Tensor, q: Tensor) -> Tensor:
        """``W q = A~ C~ B~^T q`` in ``O(N r + G^2 r^2)``; ``q (*b, N)`` -> ``(*pb, N)``."""
        s = self._signal(B, q).flatten(-2)  # (*pb, G r)
        m = (Cb @ s.unsqueeze(-1)).squeeze(-1)  # (*pb, G r)
        return self._readout(A, m.unflatten(-1, (self.n_groups, self.rank)))

    def group_signals(self, y: Tensor, t: Tensor | float | None = None) -> Tensor:
        """The signals the groups broadcast, ``s_g = B_gᵀ φ(x_g)``.

        Parameters
        ----------
        y : (..., N)
            States, e.g. ``sol.ys`` of shape ``(*batch, T, N)``; parameter batch dimensions must
            broadcast against the leading dimensions.
        t
            Time at which time-dependent states are taken (required for those).

        Returns
        -------
        (..., G, r) tensor, computed in O(N r) per state without forming W.

        Examples
        --------
        >>> import torch
        >>> A = torch.ones(3, 1, dtype=torch.float64)
        >>> sys = NGCSystem(A, A, torch.zeros(2, 2, 1, 1, dtype=torch.float64), group_sizes=[1, 2],
        ...                 phi="identity")
        >>> sys.group_signals(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).tolist()
        [[1.0], [5.0]]
        """
        _, B, _, _ = self._resolve(self._as_time(t))
        return self._signal(B, self.phi.fn(y))

    def _call_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        A, B, _, Cb = self._resolve(t)
        dx = self._couple(A, B, Cb, self.phi.fn(y)) - y
        u = self._drive_at(t)
        if u is not None:
            dx = dx + u
        return dx * self._inv_tau_n

    # ---------------------------------------------------------------- dense (for checks)

    def _embed(self, X: Tensor) -> Tensor:
        """Block-diagonal embedding ``X~`` of per-neuron rows, ``(*p, N, r)`` -> ``(*p, N, G r)``.
        """
        onehot = torch.nn.functional.one_hot(self.group_index, self.n_groups).to(X.dtype)  # (N, G)
        return (onehot.unsqueeze(-1) * X.unsqueeze(-2)).flatten(-2)

    def _dense_w(self, A: Tensor, B: Tensor, Cb: Tensor) -> Tensor:
        return self._embed(A) @ Cb @ self._embed(B).mT  # (*p, N, N)

    def materialize(self, t: Tensor | float | None = None, *, force: bool = False) -> Tensor:
        r"""The dense effective weight ``W = A~ C~ B~^T``, ``(*pbatch, N, N)``, for checks only.

        Block ``(g, h)`` of ``W`` is ``A_g C_gh B_h^T``.

        Parameters
        ----------
        t
            Time, required for time-dependent states.
        force
            Build it even when ``N > MATERIALIZE_LIMIT`` (4096).

        Raises
        ------
        ValueError
            If ``N > 4096`` and ``force`` is False.

        Examples
        --------
        >>> import torch
        >>> A = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
        >>> C = torch.tensor([[1.0, 0.0], [1.0, 2.0]], dtype=torch.float64).reshape(2, 2, 1, 1)
        >>> NGCSystem(A, A, C, group_sizes=[1, 2]).materialize().tolist()  # A_g C_gh A_h^T
        [[1.0, 0.0, 0.0], [2.0, 8.0, 12.0], [3.0, 12.0, 18.0]]
        """
        if self.dim > MATERIALIZE_LIMIT and not force:
            raise ValueError(
                f"`materialize` builds an (N, N) matrix and refuses N = {self.dim} > "
                f"{MATERIALIZE_LIMIT} (the structured methods never need it). Pass force=True "
                "if you really want the dense matrix."
            )
        A, B, _, Cb = self._resolve(self._as_time(t))
        return self._dense_w(A, B, Cb)

    def dense_rhs(self, t: Tensor | float, y: Tensor, args: Any = None, *,
                  force: bool = False) -> Tensor:
        r"""The right-hand side computed through the dense ``W`` (reference for tests/benchmarks).

        ``diag(1/tau) (-y + W phi(y) + u(t))``; same shapes as calling the system.
        """
        t = self._as_time(t)
        W = self.materialize(t, force=force)
        dx = (W @ self.phi.fn(y).unsqueeze(-1)).squeeze(-1) - y
        u = self._drive_at(t)
        if u is not None:
            dx = dx + u
        return dx * self._inv_tau_n

    # ---------------------------------------------------------------- Jacobian and products

    def _jacobian_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        # J = diag(1/tau) (-I + W diag(phi'(y))) is (*batch, N, N) by definition: forming W is fine.
        A, B, _, Cb = self._resolve(t)
        W = self._dense_w(A, B, Cb)  # (*p, N, N)
        J = W * self.phi.derivative(y).unsqueeze(-2)  # scale columns
        J = J - torch.eye(self.dim, dtype=J.dtype, device=J.device)
        return J * self._inv_tau_n.unsqueeze(-1)  # scale rows

    def jvp(self, t: Tensor | float, y: Tensor, v: Tensor, args: Any = None) -> Tensor:
        r"""Jacobian-vector product ``J(t, y) v`` without forming ``J``, in ``O(N r + G^2 r^2)``.

        .. math:: J v = \operatorname{diag}(1/\tau)\,(-v + W (\phi'(y) \odot v))

        Parameters
        ----------
        t
            Time (0-d or ``(*batch,)``).
        y, v
            State and tangent vector, ``(*batch, N)`` (broadcastable). For ``k`` tangent vectors
            put them in a batch dimension: ``y[..., None, :]`` with ``v`` of shape
            ``(*batch, k, N)``.

        Returns
        -------
        Tensor
            ``(*batch, N)``.

        See also
        --------
        NGCSystem.vjp, NGCSystem.jacobian

        Examples
        --------
        >>> import torch
        >>> sys = NGCSystem.random(2, 3, 2, generator=torch.Generator().manual_seed(0),
        ...                        dtype=torch.float64)
        >>> y, v = torch.randn(2, 6, dtype=torch.float64).unbind(0)
        >>> torch.allclose(sys.jvp(0.0, y, v), sys.jacobian(0.0, y) @ v)
        True
        """
        t = self._as_time(t)
        A, B, _, Cb = self._resolve(t)
        return (self._couple(A, B, Cb, self.phi.derivative(y) * v) - v) * self._inv_tau_n

    def vjp(self, t: Tensor | float, y: Tensor, w: Tensor, args: Any = None) -> Tensor:
        r"""Vector-Jacobian product ``J(t, y)^T w`` without forming ``J``.

        .. math:: J^\top w = \phi'(y) \odot (W^\top (w / \tau)) - w / \tau,
                  \qquad W^\top = B~ C~^\top A~^\top

        Same shapes as :meth:`jvp`.
        """
        t = self._as_time(t)
        A, B, _, Cb = self._resolve(t)
        wt = w * self._inv_tau_n
        return self.phi.derivative(y) * self._couple(B, A, Cb.mT, wt) - wt

    # ---------------------------------------------------------------- linear spectrum

    def linear_spectrum(self, t: Tensor | float | None = None) -> Tensor:
        r"""Eigenvalues of ``diag(1/tau)(-I + phi'(0) W)`` (the Jacobian at 0) via a small problem.

        For ``phi = identity`` this is the spectrum of the whole (linear) system, and the real
        parts are its Lyapunov exponents. Reduction (``theory/02_linear_spectrum.md``): with
        ``q_g = min(n_g, r)``, ``Y_g = B_g`` if ``n_g >= r`` else ``I_{n_g}``, and the reduced
        ``(sum q_g)``-square matrix

        .. math:: L_{gh} = \frac{1}{\tau_g}\left(-\delta_{gh} I_{q_g}
                  + \kappa\, Y_g^\top A_g C'_{gh}\right), \quad \kappa = \phi'(0),

        where ``C'_gh = C_gh`` if ``n_h >= r`` and ``C'_gh = C_gh B_h^T`` otherwise,

        ``spec(M) = spec(L)`` plus ``-1/tau_g`` with multiplicity ``n_g - q_g`` for every group,
        exactly, for any ``tau`` per group. Cost ``O(N r^2 + G^2 r^3 + (G r)^3)`` instead of
        ``O(N^3)``.

        Parameters
        ----------
        t
            Time (required for time-dependent states; the spectrum is then a frozen-time one).

        Returns
        -------
        Tensor
            ``(*pbatch, N)`` complex, sorted by descending real part (ties: descending imaginary
            part).

        See also
        --------
        NGCSystem.contraction_bound

        Examples
        --------
        >>> import torch
        >>> sys = NGCSystem.random(2, 3, 1, phi="identity", dtype=torch.float64,
        ...                        generator=torch.Generator().manual_seed(0))
        >>> ev = sys.linear_spectrum()
        >>> dense = torch.linalg.eigvals(-torch.eye(6, dtype=torch.float64) + sys.materialize())
        >>> torch.allclose(ev.real.sort().values, dense.real.sort().values)
        True
        """
        A, B, C, _ = self._resolve(self._as_time(t))
        G, r = self.n_groups, self.rank
        dt, dev = A.dtype, A.device
        kappa = self.phi.derivative(torch.zeros((), dtype=dt, device=dev))
        small = self._sizes_t < r  # (G,) groups with fewer neurons than the rank
        eye_r = torch.eye(r, dtype=dt, device=dev)
        if bool(small.any()):
            # Frame Y: B_i for neurons of big groups, the unit vector e_{local index} otherwise.
            neuron_small = small[self.group_index].unsqueeze(-1)  # (N, 1)
            e = torch.nn.functional.one_hot(self._local_index.clamp(max=r - 1), r).to(dt)
            Y = torch.where(neuron_small, e, B)  # (*pB, N, r)
            Qh = self._gram(B, Y)  # B_h^T Y_h, (*pB, G, r, r)
            Qh = torch.where(small[:, None, None], Qh, eye_r)
        else:
            Y, Qh = B, eye_r
        P = self._gram(Y, A)  # Y_g^T A_g, (*p, G, r, r)
        Cp = C @ (Qh.unsqueeze(-4) if Qh.ndim > 2 else Qh)  # C_gh Q_h, (*p, G, G, r, r)
        L = kappa * (P.unsqueeze(-3) @ Cp)  # (*p, G, G, r, r)
        eye_g = torch.eye(G, dtype=dt, device=dev)
        L = L - eye_g[:, :, None, None] * eye_r
        L = L * (1.0 / self.tau)[..., :, None, None, None]
        Lb = _block(L)  # (*p, G r, G r)
        # Rows of padded coordinates (j >= n_g in a small group) are -e_j / tau_g: deflate them.
        keep = (torch.arange(r, device=dev) < torch.clamp(self._sizes_t, max=r)[:, None]).flatten()
        if not bool(keep.all()):
            idx = keep.nonzero().flatten()
            Lb = Lb.index_select(-2, idx).index_select(-1, idx)
        ev = torch.linalg.eigvals(Lb)  # (*p, Q)
        extra_n = self._sizes_t - torch.clamp(self._sizes_t, max=r)
        extra_groups = torch.repeat_interleave(torch.arange(G, device=dev), extra_n)
        extra = -(1.0 / self.tau)[..., extra_groups]  # (*ptau, N - Q)
        shape = torch.broadcast_shapes(ev.shape[:-1], extra.shape[:-1])
        ev = torch.cat([ev.expand(*shape, ev.shape[-1]),
                        extra.to(ev.dtype).expand(*shape, extra.shape[-1])], dim=-1)
        return _sort_desc(ev)

    def _padded(self, X: Tensor) -> Tensor:
        """Per-group view with zero padding: ``(*p, N, k)`` -> ``(*p, G, n_max, k)``."""
        if self._equal:
            return X.unflatten(-2, (self.n_groups, self._n))
        n_max = max(self.group_sizes)
        out = X.new_zeros(X.shape[:-2] + (self.n_groups, n_max, X.shape[-1]))
        out[..., self.group_index, self._local_index, :] = X
        return out

    def _gram(self, X: Tensor, Y: Tensor) -> Tensor:
        """Per-group ``X_g^T Y_g``: ``(*p, N, kx)``, ``(*p, N, ky)`` -> ``(*p, G, kx, ky)``."""
        return self._padded(X).mT @ self._padded(Y)

    # ---------------------------------------------------------------- contraction

    def contraction_bound(self, t: Tensor | float | None = None) -> ContractionBound:
        r"""A Euclidean contraction certificate computed without forming ``W``.

        For ``J = diag(1/tau)(-I + W diag(phi'(x)))`` and ``|phi'| <= gamma``, subadditivity of
        the matrix measure gives, at every state ``x`` (``theory/04_contraction_bound.md``),

        .. math:: \mu_2(J) \le -\frac{1}{\tau_{\max}} + \gamma\,\|\operatorname{diag}(1/\tau) W\|_2,
                  \qquad \|\operatorname{diag}(1/\tau) W\|_2
                  = \|R_A\, \operatorname{diag}(1/\tau_g)\, C~\, R_B^\top\|_2,

        with ``A_g = Q_{A,g} R_{A,g}``, ``B_g = Q_{B,g} R_{B,g}`` (per-group QR), a
        ``(G r, G r)`` problem. With one ``tau`` this is ``(-1 + gamma ||W||_2)/tau``; in every
        case it is ``<= -1/tau_max + gamma ||W||_2 / tau_min``.

        Parameters
        ----------
        t
            Time (required for time-dependent states; the bound then holds at that frozen time).

        Returns
        -------
        ContractionBound
            ``bound``, ``certified`` (``bound < 0``), ``coupling_norm``; each ``(*pbatch,)``.

        Raises
        ------
        ValueError
            If the gain has no ``derivative_bound``.

        References
        ----------
        Lohmiller & Slotine, "On contraction analysis for non-linear systems", Automatica 34
        (1998); Desoer & Vidyasagar, *Feedback Systems* (1975), matrix measures.

        See also
        --------
        NGCSystem.linear_spectrum

        Examples
        --------
        >>> import torch
        >>> sys = NGCSystem.random(4, 8, 2, gain=0.3, generator=torch.Generator().manual_seed(0),
        ...                        dtype=torch.float64)
        >>> res = sys.contraction_bound()
        >>> bool(res.certified), bool(res.bound < 0)
        (True, True)
        """
        gamma = self.phi.derivative_bound
        if gamma is None:
            raise ValueError(
                f"`phi` ({self.phi!r}) has no derivative_bound (sup |phi'|), which the contraction "
                "bound needs. Construct the Gain with derivative_bound=..."
            )
        A, B, C, _ = self._resolve(self._as_time(t))
        inv_tau = 1.0 / self.tau  # (*ptau, G)
        RA = torch.linalg.qr(self._padded(A), mode="r").R  # (*p, G, k, r)
        RB = torch.linalg.qr(self._padded(B), mode="r").R  # (*p, G, k, r)
        Cs = C * inv_tau[..., :, None, None, None]  # diag(1/tau_g) C~ (row blocks)
        K = RA.unsqueeze(-3) @ Cs @ RB.unsqueeze(-4).mT  # (*p, G, G, k, k)
        norm = torch.linalg.matrix_norm(_block(K), ord=2)  # (*p,)
        bound = -inv_tau.min(-1).values + gamma * norm
        return ContractionBound(bound, bound < 0, norm)

    # ---------------------------------------------------------------- energy

    def symmetry_defect(self, t: Tensor | float | None = None) -> Tensor:
        r"""``||W - W^T||_F / ||W||_F`` without forming ``W`` (0 when ``W = 0``).

        With the per-group QR ``[A_g, B_g] = Q_g [R^A_g, R^B_g]`` one has
        ``W = Q~ K Q~^T``, ``K = R~^A C~ R~^B^T``, so the ratio equals
        ``||K - K^T||_F / ||K||_F`` (``theory/03_energy.md``). Returns ``(*pbatch,)``.
        """
        A, B, C, _ = self._resolve(self._as_time(t))
        r = self.rank
        shape = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        AB = torch.cat([A.expand(*shape, *A.shape[-2:]), B.expand(*shape, *B.shape[-2:])], -1)
        R = torch.linalg.qr(self._padded(AB), mode="r").R  # (*p, G, k, 2r)
        RA, RB = R[..., :r], R[..., r:]  # (*p, G, k, r) each
        K = _block(RA.unsqueeze(-3) @ C @ RB.unsqueeze(-4).mT)  # (*p, G k, G k)
        num = torch.linalg.matrix_norm(K - K.mT)
        den = torch.linalg.matrix_norm(K)
        return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.zeros_like(den))

    def _check_energy(self, t: Tensor, rtol: float | None) -> None:
        if not self.phi.nondecreasing or self.phi.integral is None:
            raise ValueError(
                f"`phi` ({self.phi!r}) must be declared nondecreasing and carry its integral "
                "Phi(x) = int_0^x phi for the energy; construct it with Gain(fn, derivative, "
                "integral=..., nondecreasing=True)."
            )
        if self.drive is not None and not isinstance(self.drive, Tensor):
            raise ValueError(
                "The energy needs a constant `drive` (None or a tensor); this system has a "
                f"time-dependent drive {describe(self.drive)}. Freeze it: drive=u(t0)."
            )
        if rtol is None:
            rtol = math.sqrt(torch.finfo(self.dtype).eps)
        defect = self.symmetry_defect(t)
        if bool((defect > rtol).any()):
            worst = float(defect.max())
            raise ValueError(
                "The energy is a Lyapunov function only for symmetric coupling W = W^T, but "
                f"||W - W^T||_F / ||W||_F = {worst:.3e} > symmetry_rtol = {rtol:.1e}. Build the "
                "system with NGCSystem.symmetric(A, C, ...) (B = A, C_gh = C_hg^T)."
            )

    def energy(self, y: Tensor, t: Tensor | float | None = None, *,
               symmetry_rtol: float | None = None) -> Tensor:
        r"""The Cohen–Grossberg/Hopfield energy, a Lyapunov function for symmetric coupling.

        .. math:: E(x) = -\tfrac12 \phi(x)^\top W \phi(x)
                  + \sum_i \left(x_i \phi(x_i) - \Phi(x_i)\right) - u^\top \phi(x),

        where ``Phi' = phi`` (so ``x phi(x) - Phi(x) = int_0^x s phi'(s) ds``). Along solutions
        ``dE/dt = -sum_i tau_i phi'(x_i) xdot_i^2 <= 0`` (:meth:`energy_rate`). Evaluated
        structurally: ``phi^T W phi = a^T C~ s`` with ``a = A~^T phi``, ``s = B~^T phi``.

        Parameters
        ----------
        y
            States ``(*batch, N)``.
        t
            Time (only for time-dependent states).
        symmetry_rtol
            Accepted ``||W - W^T||_F / ||W||_F`` (default ``sqrt(eps)`` of the dtype).

        Returns
        -------
        Tensor
            ``(*batch,)`` (broadcast with ``*pbatch``).

        Raises
        ------
        ValueError
            If ``W`` is not symmetric, the gain is not declared non-decreasing or lacks its
            integral, or the drive is time-dependent.

        References
        ----------
        Cohen & Grossberg, IEEE Trans. SMC 13 (1983); Hopfield, PNAS 81 (1984).

        See also
        --------
        NGCSystem.symmetric, NGCSystem.energy_rate

        Examples
        --------
        >>> import torch
        >>> sys = NGCSystem.random(2, 3, 2, symmetric=True, dtype=torch.float64,
        ...                        generator=torch.Generator().manual_seed(0))
        >>> y = torch.randn(4, 6, dtype=torch.float64)
        >>> sys.energy(y).shape, bool((sys.energy_rate(y) <= 0).all())
        (torch.Size([4]), True)
        """
        tt = self._as_time(t)
        self._check_energy(tt, symmetry_rtol)
        A, B, _, Cb = self._resolve(tt)
        p = self.phi.fn(y)
        a = self._signal(A, p).flatten(-2)  # (*pb, G r)
        s = self._signal(B, p).flatten(-2)  # (*pb, G r)
        quad = (a * (Cb @ s.unsqueeze(-1)).squeeze(-1)).sum(-1)
        leak = (y * p - self.phi.integral(y)).sum(-1)
        E = -0.5 * quad + leak
        u = self.drive
        if u is not None:
            E = E - (u * p).sum(-1)
        return E

    def energy_rate(self, y: Tensor, t: Tensor | float | None = None, *,
                    symmetry_rtol: float | None = None) -> Tensor:
        r"""Closed form of ``dE/dt`` along the flow: ``-sum_i tau_i phi'(x_i) xdot_i^2``.

        Returns ``(*batch,)``; same conditions as :meth:`energy`.
        """
        tt = self._as_time(t)
        self._check_energy(tt, symmetry_rtol)
        xdot = self._call_impl(tt, y, None)
        tau_n = 1.0 / self._inv_tau_n
        return -(tau_n * self.phi.derivative(y) * xdot * xdot).sum(-1)

    # ---------------------------------------------------------------- ground truth

    @property
    def ground_truth(self) -> GroundTruth:  # type: ignore[override]
        """Exact facts: for ``phi = identity`` with constant, unbatched states the Lyapunov
        exponents (real parts of :meth:`linear_spectrum`) and, for ``N <= 4096``, the exact
        Euclidean contraction rate ``-lambda_max(sym(M))``; otherwise ``None``."""
        cached = getattr(self, "_ground_truth_cache", None)
        if cached is not None:
            return cached
        exps = rate = None
        if self.phi is _IDENTITY and not self._time_dependent and len(self.batch_shape) == 0:
            exps = tuple(float(v) for v in self.linear_spectrum().real)
            if self.dim <= MATERIALIZE_LIMIT:
                eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
                M = (self.materialize() - eye) * self._inv_tau_n[..., None]
                rate = -float(torch.linalg.eigvalsh(0.5 * (M + M.mT)).max())
        gt = GroundTruth(
            lyapunov_exponents=exps,
            contraction_rate=rate,
            reference=_REFERENCE,
            params={"group_sizes": self.group_sizes, "rank": self.rank, "phi": self.phi.name},
        )
        self._ground_truth_cache = gt
        return gt

    def __repr__(self) -> str:
        return (
            f"NGCSystem(N={self.dim}, G={self.n_groups}, r={self.rank}, "
            f"group_sizes={list(self.group_sizes) if self.n_groups <= 8 else '...'}, "
            f"phi={self.phi.name!r}, batch_shape={tuple(self.batch_shape)}, "
            f"time_dependent={self._time_dependent}, dtype={self.dtype})"
        )


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _block(C: Tensor) -> Tensor:
    """``(*p, G, G, a, b)`` -> the block matrix ``(*p, G a, G b)``, block ``(g, h)`` = ``C[g, h]``.
    """
    G, a, b = C.shape[-4], C.shape[-2], C.shape[-1]
    return C.transpose(-3, -2).reshape(*C.shape[:-4], G * a, G * b)


def _unblock(Cb: Tensor, G: int, r: int) -> Tensor:
    """Inverse of :func:`_block` for square ``r`` blocks."""
    return Cb.reshape(*Cb.shape[:-2], G, r, G, r).transpose(-3, -2)


def _sort_desc(ev: Tensor) -> Tensor:
    # Lexicographic: descending real part, then descending imaginary part (two stable sorts).
    i1 = torch.sort(ev.imag, dim=-1, descending=True, stable=True).indices
    ev = ev.gather(-1, i1)
    i2 = torch.sort(ev.real, dim=-1, descending=True, stable=True).indices
    return ev.gather(-1, i2)


def _probe(name: str, p: Any, t0: Tensor) -> Tensor:
    if isinstance(p, Tensor):
        return p
    if callable(p):
        try:
            v = p(t0)
        except Exception as exc:  # noqa: BLE001 - re-raised with context
            raise ValueError(
                f"`{name}` is a callable of t, but calling it at t = 0 (a 0-d tensor) failed with "
                f"{type(exc).__name__}: {exc}. It must accept a tensor t and return a tensor."
            ) from exc
        if not isinstance(v, Tensor):
            raise TypeError(f"`{name}`(t) must return a torch.Tensor, got {describe(v)}.")
        return v
    raise TypeError(
        f"`{name}` must be a torch.Tensor or a callable of t returning one, got {describe(p)}. "
        f"Convert arrays with torch.as_tensor({name}) or use NGCSystem.from_arrays."
    )


def _check_int(name: str, v: Any, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"`{name}` must be an integer >= {minimum}, got {describe(v)}.")
    if v < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {v}.")
    return v


def _check_group_sizes(sizes: Any, name: str = "group_sizes") -> tuple[int, ...]:
    if isinstance(sizes, Tensor):
        sizes = sizes.tolist()
    if isinstance(sizes, (int, str)) or not isinstance(sizes, Sequence) or len(sizes) == 0:
        raise TypeError(
            f"`{name}` must be a non-empty sequence of positive integers (one size per group), "
            f"got {describe(sizes)}. For G equal groups of size n pass [n] * G."
        )
    out = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(
                f"`{name}` must contain positive integers, got {list(sizes)}. Every group needs "
                "at least one neuron."
            )
        out.append(int(s))
    return tuple(out)


def _check_tau(tau: Any, G: int, ref: Tensor) -> Tensor:
    if isinstance(tau, Tensor):
        t = tau if tau.is_floating_point() else tau.to(ref.dtype)
        check_same_device_dtype("A", ref, tau=t)
    else:
        try:
            t = torch.as_tensor(tau, dtype=ref.dtype, device=ref.device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"`tau` must be a positive number or a tensor (*pbatch, G), got {describe(tau)}."
            ) from None
    if t.ndim == 0:
        t = t.expand(G)
    if t.shape[-1] != G:
        raise ValueError(
            f"`tau` must be a number or have shape (*pbatch, G) with G = {G} (one time constant "
            f"per group), got {describe(t)}."
        )
    if not bool((torch.isfinite(t) & (t > 0)).all()):
        raise ValueError(
            f"`tau` must be finite and > 0 (time constants), got {describe(t)}. Use positive time "
            "constants."
        )
    return t
