"""A library of canonical vector fields and maps, each carrying its ground truth.

Every class here is a concrete leaf of :class:`~ngcdyn.systems.AbstractVectorField` or
:class:`~ngcdyn.systems.AbstractMap` with an analytic Jacobian, stores its parameters as tensors
(batchable: their leading dimensions broadcast against the state batch), and exposes a
:class:`~ngcdyn.systems.GroundTruth` whose numbers are either derived exactly or taken from a
cited table. Quantities that are not known exactly are ``None`` and the docstring says how they
could be computed.

Parameters are cast to the dtype and device of the state on each call (the cast is cached), so one
instance serves float32 and float64, CPU and CUDA alike. Treat the stored parameter tensors as
read-only: build a new system to change them.

References
----------
.. [Sprott] J. C. Sprott, *Chaos and Time-Series Analysis*, Oxford University Press, 2003
   (tables of common chaotic systems), and his web pages "Lyapunov exponent spectrum" of the Lorenz
   attractor (lorenzle) and of the Hénon map (lespec).
.. [SCS88] H. Sompolinsky, A. Crisanti, H. J. Sommers, "Chaos in random neural networks",
   Phys. Rev. Lett. 61, 259–262, 1988.
.. [LS98] W. Lohmiller, J.-J. E. Slotine, "On contraction analysis for non-linear systems",
   Automatica 34(6), 683–696, 1998.
.. [DV75] C. A. Desoer, M. Vidyasagar, *Feedback Systems: Input-Output Properties*, Academic Press,
   1975, section II.8 (the measure of a matrix).
.. [KY79] J. L. Kaplan, J. A. Yorke, "Chaotic behavior of multidimensional difference equations",
   Lecture Notes in Mathematics 730, 204–227, 1979.
"""

from __future__ import annotations

import math
import numbers
from functools import cached_property
from types import MappingProxyType
from typing import Any, Callable

import torch
from torch import Tensor

from .._validation import check_nonnegative_int, describe
from ._base import AbstractMap, AbstractVectorField, GroundTruth

__all__ = [
    "LinearSystem",
    "HarmonicOscillator",
    "VanDerPol",
    "Lorenz",
    "Rossler",
    "RateNetwork",
    "HenonMap",
    "LogisticMap",
    "LinearMap",
    "SYSTEMS",
]


# --------------------------------------------------------------------------------------------
# Helpers (private): parameter validation, casting, Jacobian assembly, Kaplan–Yorke formula
# --------------------------------------------------------------------------------------------


def _as_param(
    owner: str, name: str, value: Any, *, rule: str = "real", meaning: str = "", fix: str = ""
) -> Tensor:
    """Validate a scalar-or-batched real parameter and return it as a floating tensor.

    ``rule`` is one of "real" (finite), "positive" (> 0), "nonnegative" (>= 0) or "unit4"
    (0 <= value <= 4). Python numbers become 0-d float64 tensors (calls cast them to the state's
    dtype); tensors keep their dtype (integer tensors become the default float dtype), device and
    autograd graph.
    """
    what = f" ({meaning})" if meaning else ""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Tensor)):
        raise TypeError(
            f"`{name}` of {owner} must be a real number or a real tensor broadcastable over the "
            f"state batch{what}, got {describe(value)}. {fix}".strip()
        )
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(
                f"`{name}` of {owner} must be a real floating-point tensor{what}, got "
                f"dtype={value.dtype}. Convert it with {name}.to(torch.float64) (or float32)."
            )
        p = value if value.is_floating_point() else value.to(torch.get_default_dtype())
    else:
        # Python numbers are double precision: keep them so (calls cast to the state's dtype).
        p = torch.tensor(float(value), dtype=torch.float64)
    if not bool(torch.isfinite(p.detach()).all()):
        raise ValueError(
            f"`{name}` of {owner} must be finite{what}, got {describe(value)}. {fix}".strip()
        )
    pd = p.detach()
    bad = {
        "real": None,
        "positive": ("> 0", pd <= 0),
        "nonnegative": (">= 0", pd < 0),
        "unit4": ("in [0, 4]", (pd < 0) | (pd > 4)),
    }[rule]
    if bad is not None and bool(bad[1].any()):
        raise ValueError(
            f"`{name}` of {owner} must be {bad[0]}{what}, got {describe(value)}. {fix}".strip()
        )
    return p


def _param_batch_shape(owner: str, params: dict[str, Tensor]) -> torch.Size:
    """The broadcast shape of all parameters (``*pbatch``), with a clear error if they clash."""
    try:
        return torch.broadcast_shapes(*(p.shape for p in params.values()))
    except RuntimeError:
        shapes = ", ".join(f"`{k}` {tuple(v.shape)}" for k, v in params.items())
        raise ValueError(
            f"The parameters of {owner} must broadcast against each other (they share the batch "
            f"dimensions *pbatch), got shapes {shapes}. Give them equal leading shapes, or make "
            "all but one a Python number."
        ) from None


def _as_square(owner: str, name: str, value: Any) -> Tensor:
    """Validate a real matrix, or a batch of them, of shape ``(*pbatch, n, n)`` with ``n >= 1``."""
    if isinstance(value, Tensor):
        A = value
    else:
        try:
            A = torch.as_tensor(value, dtype=torch.get_default_dtype())
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"`{name}` of {owner} must be a real square matrix (a torch.Tensor of shape "
                f"(*pbatch, n, n)), got {describe(value)}. Pass torch.as_tensor({name}, "
                "dtype=torch.float64)."
            ) from None
    if A.is_complex() or A.dtype == torch.bool:
        raise TypeError(
            f"`{name}` of {owner} must be a real floating-point matrix, got dtype={A.dtype}. "
            f"Convert it with {name}.to(torch.float64) (or float32); complex systems are not "
            "supported."
        )
    if not A.is_floating_point():
        A = A.to(torch.get_default_dtype())
    if A.ndim < 2 or A.shape[-1] != A.shape[-2] or A.shape[-1] == 0:
        raise ValueError(
            f"`{name}` of {owner} must be a non-empty square matrix or a batch of them, shape "
            f"(*pbatch, n, n) with n >= 1, got shape {tuple(A.shape)}. For a scalar system pass "
            f"a 1 x 1 matrix, e.g. torch.tensor([[a]])."
        )
    if not bool(torch.isfinite(A.detach()).all()):
        raise ValueError(
            f"`{name}` of {owner} must be finite, got NaN or inf entries in {describe(A)}. "
            "Replace them with finite values."
        )
    return A


def _cast(cache: dict, p: Tensor, like: Tensor) -> Tensor:
    """``p`` on ``like``'s dtype and device; the converted copy is cached unless ``p`` needs
    grad (a cached copy would carry a stale autograd graph)."""
    if p.dtype == like.dtype and p.device == like.device:
        return p
    if p.requires_grad:  # a cached copy would hold a stale autograd graph
        return p.to(dtype=like.dtype, device=like.device)
    key = (id(p), like.dtype, like.device)
    hit = cache.get(key)
    if hit is None:
        hit = cache[key] = p.to(dtype=like.dtype, device=like.device)
    return hit


def _assemble(rows: list[list[Any]], like: Tensor, shape: torch.Size) -> Tensor:
    """Stack a matrix of entries (tensors broadcastable to ``shape`` or Python numbers) into
    ``(*shape, len(rows), len(rows[0]))``."""

    def entry(e: Any) -> Tensor:
        if isinstance(e, Tensor):
            return e.expand(shape)
        return torch.full(shape, float(e), dtype=like.dtype, device=like.device)

    return torch.stack([torch.stack([entry(e) for e in row], dim=-1) for row in rows], dim=-2)


def _kaplan_yorke(exponents: list[float]) -> float:
    """Kaplan–Yorke dimension ``j + (λ_1 + … + λ_j) / |λ_{j+1}|`` of a descending spectrum
    [KY79], with ``j`` the largest index whose partial sum is non-negative (0 if ``λ_1 < 0``,
    ``n`` if every partial sum is non-negative)."""
    s = 0.0
    for j, lam in enumerate(exponents):
        if s + lam < 0:
            return j + s / abs(lam)
        s += lam
    return float(len(exponents))


def _matches(params: dict[str, Tensor], ref: dict[str, float]) -> bool:
    """Whether every parameter is a single number equal to its reference up to the rounding of its
    dtype (so a float32 ``0.2`` counts as the reference ``0.2``)."""
    for k, r in ref.items():
        p = params[k]
        tol = 4 * torch.finfo(p.dtype).eps
        if p.numel() != 1 or not math.isclose(float(p.detach()), r, rel_tol=tol, abs_tol=0.0):
            return False
    return True


def _fmt(p: Tensor) -> str:
    """A parameter for ``__repr__``: a float if 0-d, else a tensor description."""
    return repr(float(p.detach())) if p.ndim == 0 else describe(p.detach())


def _floats(params: dict[str, Tensor]) -> dict[str, Any]:
    """Parameters as Python floats (0-d) or nested lists, for :attr:`GroundTruth.params`."""
    return {
        k: (float(v.detach()) if v.ndim == 0 else v.detach().cpu().tolist())
        for k, v in params.items()
    }


def _eigvals(A: Tensor) -> Tensor:
    """``torch.linalg.eigvals`` that survives badly scaled input.

    LAPACK's QR iteration can fail to converge on matrices with entries near the underflow
    threshold (seen with entries of 1e-248 next to 1). Only then, entries below ``eps * max|A|`` are
    set to zero and the decomposition retried: that perturbs ``A`` by less than ``n eps max|A|``,
    the size of the algorithm's own backward error, so the eigenvalues stay as accurate as before.
    """
    try:
        return torch.linalg.eigvals(A)
    except torch.linalg.LinAlgError:
        scale = A.abs().amax(dim=(-2, -1), keepdim=True)
        tiny = A.abs() < torch.finfo(A.dtype).eps * scale
        return torch.linalg.eigvals(torch.where(tiny, torch.zeros_like(A), A))


def _desc_real_parts(eigenvalues: Tensor) -> Tensor:
    """Real parts sorted in descending order along the last dimension."""
    return torch.sort(eigenvalues.real, dim=-1, descending=True).values


def _check_norm(norm: Any) -> int | str:
    """Normalise a norm argument to 1, 2 or "inf"."""
    if not isinstance(norm, bool) and isinstance(norm, numbers.Real):
        if norm == 1 or norm == 2:
            return int(norm)
        if norm == math.inf:
            return "inf"
    if isinstance(norm, str) and norm.strip().lower() in ("1", "2", "inf"):
        s = norm.strip().lower()
        return "inf" if s == "inf" else int(s)
    raise ValueError(
        f"`norm` must be 1, 2 or 'inf' (math.inf): the vector norm whose induced matrix measure "
        f"mu_1, mu_2 or mu_inf is returned, got {norm!r}. Use norm=2 for the Euclidean measure."
    )


# --------------------------------------------------------------------------------------------
# Flows
# --------------------------------------------------------------------------------------------


class LinearSystem(AbstractVectorField):
    r"""The linear flow ``dy/dt = A y``, with ``A`` possibly batched.

    Its Jacobian is ``A`` everywhere, its exact solution is ``y(t) = expm(A t) y0``, its Lyapunov
    exponents are the real parts of the eigenvalues of ``A`` (with multiplicity, Jordan blocks
    included: polynomial factors do not change exponential rates), and the matrix measure of ``A``
    is its exact contraction rate in the matching norm [LS98]_, [DV75]_.

    Parameters
    ----------
    A : Tensor, shape ``(*pbatch, n, n)``
        The system matrix (real). Leading dimensions ``*pbatch`` broadcast against the state
        batch, so one call evaluates many systems at once. Nested lists are accepted and converted
        to the default dtype.

    Attributes
    ----------
    A : Tensor, shape ``(*pbatch, n, n)``
    dim : int
        ``n``.
    batch_shape : torch.Size
        ``*pbatch``.
    ground_truth : GroundTruth
        Computed on first access. For an unbatched ``A``: exponents = ``Re eig(A)`` in descending
        order, contraction rate ``-mu_2(A) = -λ_max((A + Aᵀ)/2)``, Kaplan–Yorke dimension 0 when
        every exponent is negative (the attractor is the origin), else ``None``. For a batched
        ``A`` every number is ``None``: use :meth:`exact_exponents` and :meth:`exact_mu`, which
        are batched.

    Raises
    ------
    TypeError
        If ``A`` is not real (complex, boolean, or not convertible to a tensor).
    ValueError
        If ``A`` is not square, empty or not finite.

    References
    ----------
    Lohmiller & Slotine, Automatica 34 (1998) [LS98]_: contraction of ``dy/dt = A y``; Desoer &
    Vidyasagar (1975), section II.8 [DV75]_: closed forms of ``mu_1, mu_2, mu_inf``.

    See Also
    --------
    LinearMap : the discrete-time analogue ``x <- A x``.
    HarmonicOscillator : a 2-D linear flow with a frequency parameter.

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.systems import LinearSystem
    >>> system = LinearSystem(torch.tensor([[-1.0, 3.0], [0.0, -1.0]], dtype=torch.float64))
    >>> system.ground_truth.lyapunov_exponents
    (-1.0, -1.0)
    >>> round(float(system.exact_mu(2)), 6)  # -1 + |a|/2 for [[-1, a], [0, -1]]
    0.5
    >>> y = system.exact_solution(1.0, torch.tensor([0.0, 1.0], dtype=torch.float64))
    >>> [round(v, 6) for v in y.tolist()]  # (3 t e^{-t}, e^{-t}) at t = 1
    [1.103638, 0.367879]
    """

    has_analytic_jacobian = True
    has_exact_solution = True

    def __init__(self, A: Tensor) -> None:
        self.A = _as_square("LinearSystem", "A", A)
        self.dim = int(self.A.shape[-1])
        self.batch_shape = self.A.shape[:-2]
        self._cache: dict = {}

    @cached_property
    def ground_truth(self) -> GroundTruth:  # type: ignore[override]
        # Computed on first access: an eigen-decomposition is O(n^3).
        if self.A.ndim > 2:
            return GroundTruth(
                reference=(
                    "batched A: call exact_exponents() (Re eig(A), descending) and exact_mu(norm) "
                    "for per-member values"
                ),
            )
        exps = [float(v) for v in self.exact_exponents()]
        return GroundTruth(
            lyapunov_exponents=tuple(exps),
            contraction_rate=-float(self.exact_mu(2)),
            kaplan_yorke_dimension=0.0 if exps[0] < 0 else None,
            reference=(
                "derived: the exponents of dy/dt = A y are Re eig(A) with multiplicity; the "
                "Euclidean contraction rate is -lambda_max((A + A^T)/2) (Lohmiller & Slotine "
                "1998; Desoer & Vidyasagar 1975, II.8)"
            ),
            params=_floats({"A": self.A}),
        )

    def _call_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        A = _cast(self._cache, self.A, y)
        return torch.matmul(A, y.unsqueeze(-1)).squeeze(-1)  # (*batch, n)

    def _jacobian_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        A = _cast(self._cache, self.A, y)
        shape = torch.broadcast_shapes(A.shape[:-2], y.shape[:-1])
        return A.expand(*shape, self.dim, self.dim).clone()  # (*batch, n, n)

    def _exact_solution_impl(self, t: Tensor, y0: Tensor, args: Any) -> Tensor:
        A = _cast(self._cache, self.A, y0)
        t = t.to(dtype=y0.dtype, device=y0.device)
        expAt = torch.linalg.matrix_exp(A * t[..., None, None])  # (*batch, n, n)
        return torch.matmul(expAt, y0.unsqueeze(-1)).squeeze(-1)  # (*batch, n)

    def exact_exponents(self) -> Tensor:
        """The Lyapunov exponents ``Re eig(A)`` in descending order.

        Returns
        -------
        Tensor, shape ``(*pbatch, n)``
            With ``A``'s dtype and device.

        Examples
        --------
        >>> import torch
        >>> from ngcdyn.systems import LinearSystem
        >>> A = torch.tensor([[[0.1, 0.0], [0.0, -0.4]], [[0.0, 2.0], [-2.0, -1.0]]],
        ...                  dtype=torch.float64)
        >>> LinearSystem(A).exact_exponents().tolist()
        [[0.1, -0.4], [-0.5, -0.5]]
        """
        return _desc_real_parts(_eigvals(self.A.detach())).to(self.A.dtype)

    def exact_mu(self, norm: int | float | str = 2) -> Tensor:
        r"""The matrix measure (logarithmic norm) ``mu(A)`` induced by a vector norm.

        ``mu(A) = lim_{h->0+} (||I + h A|| - 1) / h``, in closed form [DV75]_:

        - ``mu_1(A) = max_j ( a_jj + sum_{i != j} |a_ij| )`` (columns),
        - ``mu_2(A) = lambda_max((A + A^T) / 2)``,
        - ``mu_inf(A) = max_i ( a_ii + sum_{j != i} |a_ij| )`` (rows).

        ``dy/dt = A y`` contracts at rate ``-mu(A)`` in that norm, and
        ``max Re eig(A) <= mu(A)`` for every norm.

        Parameters
        ----------
        norm : {1, 2, inf, "inf"}
            The vector norm.

        Returns
        -------
        Tensor, shape ``(*pbatch,)``

        Raises
        ------
        ValueError
            If ``norm`` is not 1, 2 or inf.

        Examples
        --------
        >>> import math, torch
        >>> from ngcdyn.systems import LinearSystem
        >>> system = LinearSystem(torch.tensor([[-2.0, 1.0], [-3.0, -1.0]], dtype=torch.float64))
        >>> [float(system.exact_mu(p)) for p in (1, math.inf)]  # max(-2+3, -1+1), max(-2+1, -1+3)
        [1.0, 2.0]
        """
        which = _check_norm(norm)
        A = self.A.detach()
        if which == 2:
            return torch.linalg.eigvalsh(0.5 * (A + A.transpose(-1, -2)))[..., -1]
        diag = torch.diagonal(A, dim1=-2, dim2=-1)  # (*pbatch, n)
        # Off-diagonal absolute column (mu_1) or row (mu_inf) sums, (*pbatch, n).
        off = A.abs().sum(dim=-2 if which == 1 else -1) - diag.abs()
        return (diag + off).max(dim=-1).values

    def exact_exponent_sum(self) -> Tensor:
        """``tr A``, the exact sum of the exponents (Liouville: the divergence is constant).

        Returns
        -------
        Tensor, shape ``(*pbatch,)``
        """
        return torch.diagonal(self.A.detach(), dim1=-2, dim2=-1).sum(-1)

    def __repr__(self) -> str:
        return f"LinearSystem(A={_fmt(self.A)})"


class HarmonicOscillator(AbstractVectorField):
    r"""The harmonic oscillator ``x' = v, v' = -omega^2 x`` on the state ``(x, v)``.

    Exact solution from ``(x0, v0)`` at time 0::

        x(t) = x0 cos(omega t) + (v0 / omega) sin(omega t)
        v(t) = -x0 omega sin(omega t) + v0 cos(omega t)

    It conserves the energy ``omega^2 x^2 + v^2``. Lyapunov exponents ``(0, 0)`` (the flow is a
    rotation in the energy metric). Its Jacobian ``[[0, 1], [-omega^2, 0]]`` has symmetric part
    with eigenvalues ``±|1 - omega^2| / 2``, so ``mu_2 = |1 - omega^2| / 2`` and the Euclidean
    contraction rate is ``-|1 - omega^2| / 2`` (0 for ``omega = 1``).

    Parameters
    ----------
    omega : float or Tensor, shape broadcastable over the batch, default 1.0
        Angular frequency, > 0.

    Attributes
    ----------
    omega : Tensor
    dim : int
        2.
    batch_shape : torch.Size
    ground_truth : GroundTruth
        Exponents ``(0, 0)``; contraction rate ``-|1 - omega^2|/2`` for a scalar ``omega``.

    Raises
    ------
    TypeError
        If ``omega`` is not a real number or real tensor.
    ValueError
        If ``omega`` is not finite and > 0.

    References
    ----------
    Derived; any text on linear ODEs, e.g. Strogatz, *Nonlinear Dynamics and Chaos*, section 5.1.

    See Also
    --------
    LinearSystem : the general linear flow.
    VanDerPol : with ``mu = 0`` it is this oscillator with ``omega = 1``.

    Examples
    --------
    >>> import math, torch
    >>> from ngcdyn.systems import HarmonicOscillator
    >>> system = HarmonicOscillator(omega=2.0)
    >>> y = system.exact_solution(math.pi / 4, torch.tensor([1.0, 0.0], dtype=torch.float64))
    >>> [round(v, 6) + 0.0 for v in y.tolist()]  # a quarter period: (cos(pi/2), -2 sin(pi/2))
    [0.0, -2.0]
    >>> system.ground_truth.lyapunov_exponents, system.ground_truth.contraction_rate
    ((0.0, 0.0), -1.5)
    """

    has_analytic_jacobian = True
    has_exact_solution = True
    dim = 2

    def __init__(self, omega: float | Tensor = 1.0) -> None:
        self.omega = _as_param(
            "HarmonicOscillator", "omega", omega, rule="positive", meaning="the angular frequency",
            fix="Use omega=1.0 for the unit oscillator.",
        )
        self.batch_shape = self.omega.shape
        self._cache: dict = {}
        scalar = self.omega.ndim == 0
        w = float(self.omega.detach()) if scalar else None
        self.ground_truth = GroundTruth(
            lyapunov_exponents=(0.0, 0.0),
            contraction_rate=-abs(1.0 - w * w) / 2 if scalar else None,
            kaplan_yorke_dimension=None,
            reference=(
                "derived: exact solution x0 cos(wt) + (v0/w) sin(wt); exponents 0, 0 (a rotation "
                "in the energy metric); mu_2 of [[0, 1], [-w^2, 0]] is |1 - w^2|/2"
            ),
            params=_floats({"omega": self.omega}),
        )

    def _call_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        w = _cast(self._cache, self.omega, y)
        x, v = y.unbind(-1)
        dx = v.expand(torch.broadcast_shapes(v.shape, w.shape))
        return torch.stack([dx, -(w * w) * x.expand_as(dx)], dim=-1)

    def _jacobian_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        w = _cast(self._cache, self.omega, y)
        shape = torch.broadcast_shapes(y.shape[:-1], w.shape)
        return _assemble([[0.0, 1.0], [-(w * w), 0.0]], y, shape)

    def _exact_solution_impl(self, t: Tensor, y0: Tensor, args: Any) -> Tensor:
        w = _cast(self._cache, self.omega, y0)
        t = t.to(dtype=y0.dtype, device=y0.device)
        x0, v0 = y0.unbind(-1)
        c, s = torch.cos(w * t), torch.sin(w * t)
        return torch.stack([x0 * c + v0 * s / w, -x0 * w * s + v0 * c], dim=-1)

    def exact_exponent_sum(self) -> Tensor:
        """``0`` (the divergence ``tr J`` vanishes): shape ``(*pbatch,)``."""
        return torch.zeros_like(self.omega.detach())

    def __repr__(self) -> str:
        return f"HarmonicOscillator(omega={_fmt(self.omega)})"


class VanDerPol(AbstractVectorField):
    r"""The Van der Pol oscillator ``x' = y, y' = mu (1 - x^2) y - x``.

    For ``mu > 0`` every trajectory but the unstable origin approaches one limit cycle. On it the
    exponents are ``lambda_1 = 0`` (the direction along the flow) and, because the 2-D flow's
    divergence is ``tr J = mu (1 - x^2)``,

    ``lambda_2 = (1/T) ∫_0^T mu (1 - x(t)^2) dt``   (the time average over one period ``T``),

    i.e. the non-trivial Floquet exponent of the cycle. No closed form is known, so the ground
    truth stores ``None`` for the exponents; compute ``lambda_2`` from a converged cycle with the
    formula above. For large ``mu`` the relaxation-oscillation period is ``T ≈ (3 - 2 ln 2) mu``
    to leading order (Strogatz, section 7.5). With ``mu = 0`` the system is
    :class:`HarmonicOscillator` with ``omega = 1``.

    Parameters
    ----------
    mu : float or Tensor, shape broadcastable over the batch, default 1.0
        Nonlinear damping, >= 0. A batch of ``mu`` values (e.g. 256 values in [1, 10] for the
        standard benchmark) is evaluated in one call.

    Attributes
    ----------
    mu : Tensor
    dim : int
        2.
    batch_shape : torch.Size
    ground_truth : GroundTruth
        All numbers ``None`` (see above); ``reference`` states the formula for ``lambda_2``.

    Raises
    ------
    TypeError
        If ``mu`` is not a real number or real tensor.
    ValueError
        If ``mu`` is not finite and >= 0 (for ``mu < 0`` integrate the ``|mu|`` system backward
        in time: ``(x, y, t) -> (x, -y, -t)`` maps one onto the other).

    References
    ----------
    B. van der Pol, "On relaxation-oscillations", Phil. Mag. 2 (1926) 978–992; S. H. Strogatz,
    *Nonlinear Dynamics and Chaos*, sections 7.5–7.6.

    See Also
    --------
    HarmonicOscillator : the ``mu = 0`` case.

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.systems import VanDerPol
    >>> system = VanDerPol(mu=torch.tensor([1.0, 10.0], dtype=torch.float64))
    >>> system(0.0, torch.tensor([2.0, 1.0], dtype=torch.float64)).tolist()  # y' = mu(1-4)(1) - 2
    [[1.0, -5.0], [1.0, -32.0]]
    """

    has_analytic_jacobian = True
    dim = 2

    def __init__(self, mu: float | Tensor = 1.0) -> None:
        self.mu = _as_param(
            "VanDerPol", "mu", mu, rule="nonnegative", meaning="the nonlinear damping",
            fix="For mu < 0 integrate the |mu| system backward in time; the reference is mu=1.",
        )
        self.batch_shape = self.mu.shape
        self._cache: dict = {}
        self.ground_truth = GroundTruth(
            lyapunov_exponents=None,
            reference=(
                "derived (2-D flow on a limit cycle, mu > 0): lambda_1 = 0 and lambda_2 = time "
                "average of mu (1 - x^2) over one period; no closed form, left as None"
            ),
            params=_floats({"mu": self.mu}),
        )

    def _call_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        mu = _cast(self._cache, self.mu, y)
        x, v = y.unbind(-1)
        dv = mu * (1 - x * x) * v - x  # broadcast of *batch and *pbatch
        return torch.stack([v.expand_as(dv), dv], dim=-1)

    def _jacobian_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        mu = _cast(self._cache, self.mu, y)
        x, v = y.unbind(-1)
        shape = torch.broadcast_shapes(x.shape, mu.shape)
        return _assemble([[0.0, 1.0], [-2 * mu * x * v - 1, mu * (1 - x * x)]], y, shape)

    def __repr__(self) -> str:
        return f"VanDerPol(mu={_fmt(self.mu)})"


class Lorenz(AbstractVectorField):
    r"""The Lorenz system ``x' = sigma (y - x), y' = x (rho - z) - y, z' = x y - beta z``.

    Its divergence is the constant ``-(sigma + 1 + beta)``, so the exponents sum to exactly that
    (Liouville) for every parameter value: :meth:`exact_exponent_sum`. At the reference parameters
    ``sigma = 10, rho = 28, beta = 8/3`` Sprott gives the spectrum ``(0.9056, 0, -14.5723)``
    (sum ``-13.6667``) and the Kaplan–Yorke dimension ``2.0622``.

    Parameters
    ----------
    sigma : float or Tensor, default 10.0
        Prandtl number, > 0.
    rho : float or Tensor, default 28.0
        Reduced Rayleigh number, >= 0.
    beta : float or Tensor, default 8/3
        Geometric factor, > 0.
        Tensors broadcast against each other and against the state batch.

    Attributes
    ----------
    sigma, rho, beta : Tensor
    dim : int
        3.
    batch_shape : torch.Size
        Broadcast shape of the three parameters.
    ground_truth : GroundTruth
        Sprott's values at the reference parameters, ``None`` otherwise.

    Raises
    ------
    TypeError
        If a parameter is not a real number or real tensor.
    ValueError
        If a parameter is not finite, ``sigma`` or ``beta`` is not > 0, ``rho`` is negative, or the
        parameter shapes do not broadcast.

    References
    ----------
    E. N. Lorenz, "Deterministic nonperiodic flow", J. Atmos. Sci. 20 (1963) 130–141.
    Exponents and dimension: J. C. Sprott, "Lyapunov exponent spectrum" of the Lorenz attractor
    (lorenzle page; 0.90563, 0, -14.57219) and *Chaos and Time-Series Analysis* (2003).

    See Also
    --------
    Rossler : another classic chaotic flow.

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.systems import Lorenz
    >>> system = Lorenz()
    >>> system.ground_truth.lyapunov_exponents
    (0.9056, 0.0, -14.5723)
    >>> round(float(system.exact_exponent_sum()), 4)  # -(10 + 1 + 8/3)
    -13.6667
    >>> system(0.0, torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)).tolist()
    [0.0, 26.0, -1.6666666666666665]
    """

    has_analytic_jacobian = True
    dim = 3
    #: Reference parameters of the ground truth.
    REFERENCE_PARAMS = MappingProxyType({"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0})

    def __init__(
        self,
        sigma: float | Tensor = 10.0,
        rho: float | Tensor = 28.0,
        beta: float | Tensor = 8.0 / 3.0,
    ) -> None:
        self.sigma = _as_param(
            "Lorenz", "sigma", sigma, rule="positive", meaning="the Prandtl number",
            fix="The reference value is sigma=10.",
        )
        self.rho = _as_param(
            "Lorenz", "rho", rho, rule="nonnegative", meaning="the reduced Rayleigh number",
            fix="The reference value is rho=28.",
        )
        self.beta = _as_param(
            "Lorenz", "beta", beta, rule="positive", meaning="the geometric factor",
            fix="The reference value is beta=8/3.",
        )
        params = {"sigma": self.sigma, "rho": self.rho, "beta": self.beta}
        self.batch_shape = _param_batch_shape("Lorenz", params)
        self._cache: dict = {}
        if _matches(params, self.REFERENCE_PARAMS):
            self.ground_truth = GroundTruth(
                lyapunov_exponents=(0.9056, 0.0, -14.5723),
                kaplan_yorke_dimension=2.0622,
                reference=(
                    "Sprott, Lyapunov exponent spectrum of the Lorenz attractor (lorenzle page: "
                    "0.90563, 0, -14.57219; D_KY = 2.0622); sum = -(sigma + 1 + beta) exactly"
                ),
                params=dict(self.REFERENCE_PARAMS),
            )
        else:
            self.ground_truth = GroundTruth(
                reference=(
                    "not the reference parameters (10, 28, 8/3): spectrum unknown; the exponents "
                    "sum to -(sigma + 1 + beta) exactly (constant divergence)"
                ),
                params=_floats(params),
            )

    def _params(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c = self._cache
        return _cast(c, self.sigma, like), _cast(c, self.rho, like), _cast(c, self.beta, like)

    def _call_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        s, r, b = self._params(y)
        x, v, z = y.unbind(-1)
        shape = torch.broadcast_shapes(x.shape, self.batch_shape)
        dx = s * (v - x)
        dy = x * (r - z) - v
        dz = x * v - b * z
        return torch.stack([d.expand(shape) for d in (dx, dy, dz)], dim=-1)

    def _jacobian_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        s, r, b = self._params(y)
        x, v, z = y.unbind(-1)
        shape = torch.broadcast_shapes(x.shape, self.batch_shape)
        return _assemble([[-s, s, 0.0], [r - z, -1.0, -x], [v, x, -b]], y, shape)

    def exact_exponent_sum(self) -> Tensor:
        """``-(sigma + 1 + beta)``, the exact sum of the exponents: shape ``(*pbatch,)``."""
        return -(self.sigma.detach() + 1 + self.beta.detach()).expand(self.batch_shape)

    def __repr__(self) -> str:
        return f"Lorenz(sigma={_fmt(self.sigma)}, rho={_fmt(self.rho)}, beta={_fmt(self.beta)})"


class Rossler(AbstractVectorField):
    r"""The Rössler system ``x' = -y - z, y' = x + a y, z' = b + z (x - c)``.

    Its divergence is ``a + x - c``, so the exponents sum to ``a - c + <x>`` (the time average of
    ``x`` on the attractor). At the reference parameters ``a = b = 0.2, c = 5.7`` Sprott gives the
    spectrum ``(0.0714, 0, -5.3943)``; the Kaplan–Yorke dimension ``2 + 0.0714/5.3943 = 2.0132``
    follows from it.

    Parameters
    ----------
    a, b, c : float or Tensor, defaults 0.2, 0.2, 5.7
        Real, finite; tensors broadcast against each other and the state batch.

    Attributes
    ----------
    a, b, c : Tensor
    dim : int
        3.
    batch_shape : torch.Size
    ground_truth : GroundTruth
        Sprott's values at the reference parameters, ``None`` otherwise.

    Raises
    ------
    TypeError
        If a parameter is not a real number or real tensor.
    ValueError
        If a parameter is not finite or the shapes do not broadcast.

    References
    ----------
    O. E. Rössler, "An equation for continuous chaos", Phys. Lett. A 57 (1976) 397–398.
    Exponents: J. C. Sprott, *Chaos and Time-Series Analysis* (2003), table of common chaotic
    flows (0.0714, 0, -5.3943), as quoted in public material; the sum agrees with ``a - c + <x>``
    measured on a long trajectory (see the library tests).

    See Also
    --------
    Lorenz : another classic chaotic flow.

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.systems import Rossler
    >>> system = Rossler()
    >>> system.ground_truth.lyapunov_exponents, system.ground_truth.kaplan_yorke_dimension
    ((0.0714, 0.0, -5.3943), 2.0132)
    >>> y = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    >>> [round(v, 6) for v in system(0.0, y).tolist()]  # (-1 - 1, 1 + 0.2, 0.2 + (1 - 5.7))
    [-2.0, 1.2, -4.5]
    """

    has_analytic_jacobian = True
    dim = 3
    #: Reference parameters of the ground truth.
    REFERENCE_PARAMS = MappingProxyType({"a": 0.2, "b": 0.2, "c": 5.7})

    def __init__(
        self, a: float | Tensor = 0.2, b: float | Tensor = 0.2, c: float | Tensor = 5.7
    ) -> None:
        self.a = _as_param("Rossler", "a", a, fix="The reference value is a=0.2.")
        self.b = _as_param("Rossler", "b", b, fix="The reference value is b=0.2.")
        self.c = _as_param("Rossler", "c", c, fix="The reference value is c=5.7.")
        params = {"a": self.a, "b": self.b, "c": self.c}
        self.batch_shape = _param_batch_shape("Rossler", params)
        self._cache: dict = {}
        if _matches(params, self.REFERENCE_PARAMS):
            exps = (0.0714, 0.0, -5.3943)
            self.ground_truth = GroundTruth(
                lyapunov_exponents=exps,
                kaplan_yorke_dimension=round(_kaplan_yorke(list(exps)), 4),
                reference=(
                    "Sprott, Chaos and Time-Series Analysis (2003), common chaotic flows: 0.0714, "
                    "0, -5.3943 (as quoted in public material); D_KY from the Kaplan-Yorke formula"
                ),
                params=dict(self.REFERENCE_PARAMS),
            )
        else:
            self.ground_truth = GroundTruth(
                reference="not the reference parameters (0.2, 0.2, 5.7): spectrum unknown",
                params=_floats(params),
            )

    def _params(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c = self._cache
        return _cast(c, self.a, like), _cast(c, self.b, like), _cast(c, self.c, like)

    def _call_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        a, b, c = self._params(y)
        x, v, z = y.unbind(-1)
        shape = torch.broadcast_shapes(x.shape, self.batch_shape)
        dx = -v - z
        dy = x + a * v
        dz = b + z * (x - c)
        return torch.stack([d.expand(shape) for d in (dx, dy, dz)], dim=-1)

    def _jacobian_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        a, b, c = self._params(y)
        x, v, z = y.unbind(-1)
        shape = torch.broadcast_shapes(x.shape, self.batch_shape)
        return _assemble([[0.0, -1.0, -1.0], [1.0, a, 0.0], [z, 0.0, x - c]], y, shape)

    def __repr__(self) -> str:
        return f"Rossler(a={_fmt(self.a)}, b={_fmt(self.b)}, c={_fmt(self.c)})"


class RateNetwork(AbstractVectorField):
    r"""The random rate network ``dx/dt = -x + J tanh(x)``.

    Jacobian ``-I + J diag(1 - tanh(x)^2)``. Known exactly:

    - with ``diag(J) = 0`` the trace of the Jacobian is ``-n`` everywhere, so the ``n`` exponents
      sum to exactly ``-n`` (:meth:`exact_exponent_sum`);
    - since ``0 < tanh' <= 1``, ``mu_2(Jacobian) <= -1 + ||J||_2`` (subadditivity of ``mu_2``), so
      ``||J||_2 < 1`` certifies contraction at rate ``1 - ||J||_2``
      (:meth:`contraction_rate_bound`); then every trajectory converges to the fixed point 0 and
      its exponents are ``Re eig(J - I)`` (:meth:`fixed_point_exponents`), which the ground truth
      then holds;
    - for ``J_ij ~ N(0, g^2/n)`` (see :meth:`random`) the origin is stable for ``g < 1`` and the
      dynamics are chaotic for ``g > 1`` as ``n -> infinity`` [SCS88]_. (``||J||_2 -> 2 g``, so the
      certificate above covers ``g < 1/2``.)

    Parameters
    ----------
    J : Tensor, shape ``(*pbatch, n, n)``
        Coupling matrix (real), possibly batched.

    Attributes
    ----------
    J : Tensor
    dim : int
        ``n``.
    batch_shape : torch.Size
        ``*pbatch``.
    ground_truth : GroundTruth
        Computed on first access. For an unbatched ``J`` with ``||J||_2 < 1``: exponents
        ``Re eig(J - I)`` (descending) and Kaplan–Yorke dimension 0; otherwise ``None``.

    Raises
    ------
    TypeError
        If ``J`` is not real.
    ValueError
        If ``J`` is not square, empty or not finite.

    References
    ----------
    Sompolinsky, Crisanti & Sommers, Phys. Rev. Lett. 61 (1988) 259–262 [SCS88]_; Lohmiller &
    Slotine (1998) [LS98]_ for the contraction certificate.

    See Also
    --------
    LinearSystem : the linearisation at the origin is ``LinearSystem(J - I)``.

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.systems import RateNetwork
    >>> gen = torch.Generator().manual_seed(0)
    >>> net = RateNetwork.random(50, g=2.0, generator=gen, dtype=torch.float64)
    >>> net
    RateNetwork(n=50, J=tensor(shape=(50, 50), dtype=torch.float64, device=cpu))
    >>> float(net.exact_exponent_sum())  # zero diagonal: tr of the Jacobian is -n everywhere
    -50.0
    """

    has_analytic_jacobian = True

    def __init__(self, J: Tensor) -> None:
        self.J = _as_square("RateNetwork", "J", J)
        self.dim = int(self.J.shape[-1])
        self.batch_shape = self.J.shape[:-2]
        self._cache: dict = {}

    @cached_property
    def ground_truth(self) -> GroundTruth:  # type: ignore[override]
        # Computed on first access: a norm and an eigen-decomposition, O(n^3).
        gt_exps = None
        if self.J.ndim == 2 and float(self.contraction_rate_bound()) > 0:
            gt_exps = tuple(float(v) for v in self.fixed_point_exponents())
        return GroundTruth(
            lyapunov_exponents=gt_exps,
            kaplan_yorke_dimension=0.0 if gt_exps is not None else None,
            reference=(
                "Sompolinsky, Crisanti, Sommers, PRL 61 (1988): origin stable for g < 1, chaos "
                "for g > 1 (n -> inf); derived: sum of exponents = -n when diag(J) = 0; "
                "||J||_2 < 1 certifies contraction (mu_2 subadditivity), then the exponents are "
                "Re eig(J - I)"
            ),
            params={"n": self.dim},
        )

    @classmethod
    def random(
        cls,
        n: int,
        g: float,
        *,
        zero_diagonal: bool = True,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> "RateNetwork":
        """A network with ``J_ij ~ N(0, g^2 / n)`` i.i.d. (the model of [SCS88]_).

        Parameters
        ----------
        n : int
            Number of neurons, >= 1.
        g : float
            Gain, >= 0 (transition to chaos at ``g = 1`` for large ``n``).
        zero_diagonal : bool, default True
            Set ``J_ii = 0`` (no self-coupling), which makes the exponent sum exactly ``-n``.
        generator : torch.Generator, optional
            Source of randomness (the numbers are drawn on its device, then moved to ``device``,
            so one seed gives one ``J`` on every device).
        dtype, device : optional
            Of ``J``; default: the default dtype, and the generator's device (or CPU).

        Returns
        -------
        RateNetwork

        Raises
        ------
        TypeError, ValueError
            If ``n`` is not an integer >= 1 or ``g`` is not a finite number >= 0.
        """
        n = check_nonnegative_int("n", n, minimum=1, fix="It is the number of neurons.")
        g_t = _as_param("RateNetwork.random", "g", g, rule="nonnegative", meaning="the gain",
                        fix="Chaos sets in at g=1 for large n.")
        if g_t.ndim != 0:
            raise ValueError(
                f"`g` of RateNetwork.random must be a single number, got {describe(g_t)}. For a "
                "batch of gains, stack the J of several calls and pass them to RateNetwork(J)."
            )
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        draw_device = generator.device if generator is not None else (device or "cpu")
        J = torch.randn(n, n, generator=generator, dtype=dtype, device=draw_device)
        J = J * (float(g_t) / math.sqrt(n))
        J = J.to(device=device if device is not None else draw_device)
        if zero_diagonal:
            J.fill_diagonal_(0.0)
        return cls(J)

    def _call_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        J = _cast(self._cache, self.J, y)
        return -y + torch.matmul(J, torch.tanh(y).unsqueeze(-1)).squeeze(-1)  # (*batch, n)

    def _jacobian_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        J = _cast(self._cache, self.J, y)
        sech2 = 1 - torch.tanh(y) ** 2  # (*batch, n): d tanh / dx
        eye = torch.eye(self.dim, dtype=y.dtype, device=y.device)
        return J * sech2.unsqueeze(-2) - eye  # column j scaled by sech^2(x_j), (*batch, n, n)

    def exact_exponent_sum(self) -> Tensor:
        """``-n``, the exact sum of all ``n`` exponents when ``diag(J) = 0``: shape ``(*pbatch,)``.

        Raises
        ------
        ValueError
            If some ``J_ii != 0``: the sum is then the time average of
            ``-n + sum_i J_ii (1 - tanh(x_i)^2)``, which depends on the trajectory.
        """
        diag = torch.diagonal(self.J.detach(), dim1=-2, dim2=-1)
        if bool((diag != 0).any()):
            raise ValueError(
                "The exponent sum of RateNetwork is exactly -n only when diag(J) = 0, but `J` has "
                f"diagonal entries up to |J_ii| = {float(diag.abs().max()):.3g}. Build it with "
                "RateNetwork.random(..., zero_diagonal=True), or estimate the sum as the time "
                "average of the Jacobian's trace along a trajectory."
            )
        J = self.J
        return torch.full(self.batch_shape, -float(self.dim), dtype=J.dtype, device=J.device)

    def contraction_rate_bound(self) -> Tensor:
        """``1 - ||J||_2``: a certified lower bound on the Euclidean contraction rate.

        Every ``mu_2(-I + J D)`` with ``D = diag(tanh'(x)) in (0, 1]`` is at most
        ``-1 + ||J||_2``; a positive value therefore certifies contraction [LS98]_.

        Returns
        -------
        Tensor, shape ``(*pbatch,)``
        """
        return 1 - torch.linalg.matrix_norm(self.J.detach(), ord=2)

    def fixed_point_exponents(self) -> Tensor:
        """``Re eig(J - I)`` in descending order: the exponents of trajectories converging to 0.

        These are the exponents of every trajectory when :meth:`contraction_rate_bound` is
        positive (the origin is then globally attracting).

        Returns
        -------
        Tensor, shape ``(*pbatch, n)``
        """
        eye = torch.eye(self.dim, dtype=self.J.dtype, device=self.J.device)
        return _desc_real_parts(_eigvals(self.J.detach() - eye)).to(self.J.dtype)

    def __repr__(self) -> str:
        return f"RateNetwork(n={self.dim}, J={describe(self.J.detach())})"


# --------------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------------


class HenonMap(AbstractMap):
    r"""The Hénon map ``(x, y) <- (1 - a x^2 + y, b x)``.

    Its Jacobian ``[[-2 a x, 1], [b, 0]]`` has determinant ``-b`` everywhere, so the two exponents
    (per iteration) sum to exactly ``ln |b|`` (:meth:`exact_exponent_sum`). At ``a = 1.4,
    b = 0.3`` Sprott gives ``(0.419217, -1.623190)`` (sum ``ln 0.3 = -1.203973``); the
    Kaplan–Yorke dimension ``1 + 0.419217 / 1.623190 = 1.2583`` follows from it.

    Parameters
    ----------
    a, b : float or Tensor, defaults 1.4, 0.3
        Real, finite; tensors broadcast against each other and the state batch.

    Attributes
    ----------
    a, b : Tensor
    dim : int
        2.
    batch_shape : torch.Size
    ground_truth : GroundTruth
        Sprott's values at the reference parameters, ``None`` otherwise.

    Raises
    ------
    TypeError
        If a parameter is not a real number or real tensor.
    ValueError
        If a parameter is not finite or the shapes do not broadcast.

    References
    ----------
    M. Hénon, "A two-dimensional mapping with a strange attractor", Commun. Math. Phys. 50 (1976)
    69–77. Exponents: J. C. Sprott, "Lyapunov exponent spectrum" (lespec page).

    See Also
    --------
    LogisticMap, LinearMap

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.systems import HenonMap
    >>> F = HenonMap()
    >>> F(torch.tensor([0.5, 0.1], dtype=torch.float64)).tolist()  # (1 - 1.4/4 + 0.1, 0.3 * 0.5)
    [0.75, 0.15]
    >>> float(torch.linalg.det(F.jacobian(torch.tensor([0.5, 0.1], dtype=torch.float64))))
    -0.3
    """

    has_analytic_jacobian = True
    dim = 2
    #: Reference parameters of the ground truth.
    REFERENCE_PARAMS = MappingProxyType({"a": 1.4, "b": 0.3})

    def __init__(self, a: float | Tensor = 1.4, b: float | Tensor = 0.3) -> None:
        self.a = _as_param("HenonMap", "a", a, fix="The reference value is a=1.4.")
        self.b = _as_param("HenonMap", "b", b, fix="The reference value is b=0.3.")
        params = {"a": self.a, "b": self.b}
        self.batch_shape = _param_batch_shape("HenonMap", params)
        self._cache: dict = {}
        if _matches(params, self.REFERENCE_PARAMS):
            exps = (0.419217, -1.623190)
            self.ground_truth = GroundTruth(
                lyapunov_exponents=exps,
                kaplan_yorke_dimension=round(_kaplan_yorke(list(exps)), 4),
                reference=(
                    "Sprott, Lyapunov exponent spectrum (lespec page): 0.419217, -1.623190; sum = "
                    "ln 0.3 exactly (det J = -b); D_KY from the Kaplan-Yorke formula"
                ),
                params=dict(self.REFERENCE_PARAMS),
            )
        else:
            self.ground_truth = GroundTruth(
                reference="not the reference parameters (1.4, 0.3): spectrum unknown; sum = ln|b|",
                params=_floats(params),
            )

    def _call_impl(self, x: Tensor, args: Any) -> Tensor:
        a = _cast(self._cache, self.a, x)
        b = _cast(self._cache, self.b, x)
        u, v = x.unbind(-1)
        shape = torch.broadcast_shapes(u.shape, self.batch_shape)
        return torch.stack([(1 - a * u * u + v).expand(shape), (b * u).expand(shape)], dim=-1)

    def _jacobian_impl(self, x: Tensor, args: Any) -> Tensor:
        a = _cast(self._cache, self.a, x)
        b = _cast(self._cache, self.b, x)
        u = x[..., 0]
        shape = torch.broadcast_shapes(u.shape, self.batch_shape)
        return _assemble([[-2 * a * u, 1.0], [b, 0.0]], x, shape)

    def exact_exponent_sum(self) -> Tensor:
        """``ln |b|``, the exact sum of the two exponents per iteration: shape ``(*pbatch,)``."""
        return torch.log(self.b.detach().abs()).expand(self.batch_shape)

    def __repr__(self) -> str:
        return f"HenonMap(a={_fmt(self.a)}, b={_fmt(self.b)})"


class LogisticMap(AbstractMap):
    r"""The logistic map ``x <- r x (1 - x)`` on states of shape ``(*batch, 1)``.

    For ``r = 4`` it is conjugate to the tent map (and to ``x <- 1 - 2 x^2``) and its exponent is
    exactly ``ln 2``: with the invariant density ``1 / (pi sqrt(x (1 - x)))``,
    ``∫ ln|4 (1 - 2 x)| dmu = ln 4 + (1/pi) ∫_0^pi ln|cos phi| dphi = ln 4 - ln 2``.

    Parameters
    ----------
    r : float or Tensor, default 4.0
        Growth rate, in ``[0, 4]`` (so that ``[0, 1]`` is invariant).

    Attributes
    ----------
    r : Tensor
    dim : int
        1.
    batch_shape : torch.Size
    ground_truth : GroundTruth
        ``(ln 2,)`` and Kaplan–Yorke dimension 1 for ``r = 4``; ``None`` otherwise.

    Raises
    ------
    TypeError
        If ``r`` is not a real number or real tensor.
    ValueError
        If ``r`` is not in ``[0, 4]``.

    References
    ----------
    S. M. Ulam, J. von Neumann, Bull. Amer. Math. Soc. 53 (1947) 1120 (the conjugacy);
    J. C. Sprott, *Chaos and Time-Series Analysis* (2003): ``ln 2`` for ``r = 4``.

    See Also
    --------
    HenonMap, LinearMap

    Examples
    --------
    >>> import math, torch
    >>> from ngcdyn.systems import LogisticMap
    >>> F = LogisticMap()
    >>> F(torch.tensor([[0.25], [0.5]], dtype=torch.float64)).tolist()
    [[0.75], [1.0]]
    >>> F.ground_truth.lyapunov_exponents[0] == math.log(2)
    True
    """

    has_analytic_jacobian = True
    dim = 1

    def __init__(self, r: float | Tensor = 4.0) -> None:
        self.r = _as_param(
            "LogisticMap", "r", r, rule="unit4", meaning="the growth rate",
            fix="Outside [0, 4] orbits leave [0, 1] and diverge to -inf; r=4 is fully chaotic.",
        )
        self.batch_shape = self.r.shape
        self._cache: dict = {}
        if _matches({"r": self.r}, {"r": 4.0}):
            self.ground_truth = GroundTruth(
                lyapunov_exponents=(math.log(2.0),),
                kaplan_yorke_dimension=1.0,
                reference=(
                    "Sprott; exact: conjugate to the tent map (Ulam & von Neumann 1947), "
                    "lambda = ln 2"
                ),
                params={"r": 4.0},
            )
        else:
            self.ground_truth = GroundTruth(
                reference="r != 4: no closed form for the exponent", params=_floats({"r": self.r})
            )

    def _call_impl(self, x: Tensor, args: Any) -> Tensor:
        r = _cast(self._cache, self.r, x)
        return r.unsqueeze(-1) * x * (1 - x)  # (*batch, 1)

    def _jacobian_impl(self, x: Tensor, args: Any) -> Tensor:
        r = _cast(self._cache, self.r, x)
        return (r.unsqueeze(-1) * (1 - 2 * x)).unsqueeze(-1)  # (*batch, 1, 1)

    def __repr__(self) -> str:
        return f"LogisticMap(r={_fmt(self.r)})"


class LinearMap(AbstractMap):
    r"""The linear map ``x <- A x``, with ``A`` possibly batched.

    Its exponents (per iteration) are ``ln |eig(A)|`` with multiplicity (``-inf`` for a zero
    eigenvalue), and they sum to ``ln |det A|``.

    Parameters
    ----------
    A : Tensor, shape ``(*pbatch, n, n)``
        Real matrix, possibly batched.

    Attributes
    ----------
    A : Tensor
    dim : int
    batch_shape : torch.Size
    ground_truth : GroundTruth
        Computed on first access. For an unbatched ``A``: exponents ``ln |eig(A)|``
        (descending), Kaplan–Yorke dimension 0 when all are negative; otherwise ``None`` (use
        :meth:`exact_exponents`).

    Raises
    ------
    TypeError
        If ``A`` is not real.
    ValueError
        If ``A`` is not square, empty or not finite.

    References
    ----------
    Standard; ChaosTools tests ``diag(1.1, 0.8)`` against ``(ln 1.1, ln 0.8)``.

    See Also
    --------
    LinearSystem : the continuous-time analogue.

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.systems import LinearMap
    >>> F = LinearMap(torch.tensor([[0.0, 2.0], [-0.5, 0.0]], dtype=torch.float64))
    >>> [round(v, 12) + 0.0 for v in F.exact_exponents().tolist()]  # eigenvalues ±i: |eig| = 1
    [0.0, 0.0]
    """

    has_analytic_jacobian = True

    def __init__(self, A: Tensor) -> None:
        self.A = _as_square("LinearMap", "A", A)
        self.dim = int(self.A.shape[-1])
        self.batch_shape = self.A.shape[:-2]
        self._cache: dict = {}

    @cached_property
    def ground_truth(self) -> GroundTruth:  # type: ignore[override]
        # Computed on first access: an eigen-decomposition is O(n^3).
        if self.A.ndim > 2:
            return GroundTruth(
                reference="batched A: call exact_exponents() (ln|eig(A)|, descending) per member"
            )
        exps = tuple(float(v) for v in self.exact_exponents())
        return GroundTruth(
            lyapunov_exponents=exps,
            kaplan_yorke_dimension=0.0 if exps[0] < 0 else None,
            reference="derived: exponents of x <- A x are ln|eig(A)| with multiplicity",
            params=_floats({"A": self.A}),
        )

    def _call_impl(self, x: Tensor, args: Any) -> Tensor:
        A = _cast(self._cache, self.A, x)
        return torch.matmul(A, x.unsqueeze(-1)).squeeze(-1)

    def _jacobian_impl(self, x: Tensor, args: Any) -> Tensor:
        A = _cast(self._cache, self.A, x)
        shape = torch.broadcast_shapes(A.shape[:-2], x.shape[:-1])
        return A.expand(*shape, self.dim, self.dim).clone()

    def exact_exponents(self) -> Tensor:
        """``ln |eig(A)|`` in descending order: shape ``(*pbatch, n)``."""
        mods = _eigvals(self.A.detach()).abs()
        return torch.sort(torch.log(mods), dim=-1, descending=True).values.to(self.A.dtype)

    def exact_exponent_sum(self) -> Tensor:
        """``ln |det A|``, the exact sum of the exponents: shape ``(*pbatch,)``."""
        return torch.linalg.slogdet(self.A.detach()).logabsdet

    def __repr__(self) -> str:
        return f"LinearMap(A={_fmt(self.A)})"


# --------------------------------------------------------------------------------------------
# Reference instances
# --------------------------------------------------------------------------------------------


def _reference_linear() -> LinearSystem:
    # Non-normal with exponents -0.1, -0.4 but mu_2 > 0: stable, yet not contracting in the
    # identity metric (the transient-growth example every contraction tutorial needs).
    return LinearSystem(torch.tensor([[-0.1, 1.0], [0.0, -0.4]], dtype=torch.get_default_dtype()))


def _reference_rate() -> RateNetwork:
    return RateNetwork.random(100, 2.0, generator=torch.Generator().manual_seed(0))


#: Reference instances by name: ``SYSTEMS[name]()`` builds the system at its reference parameters
#: (used by the ``ngcdyn lyapunov <name>`` command line).
SYSTEMS: dict[str, Callable[[], AbstractVectorField | AbstractMap]] = {
    "lorenz": Lorenz,
    "rossler": Rossler,
    "vanderpol": VanDerPol,
    "harmonic": HarmonicOscillator,
    "linear": _reference_linear,
    "rate": _reference_rate,
    "henon": HenonMap,
    "logistic": LogisticMap,
}
