"""Tangent (variational) dynamics of flows and maps, and the QR step of Benettin's algorithm.

A perturbation ``δy`` of a trajectory of ``dy/dt = f(t, y)`` evolves, to first order, by the
variational equation ``d(δy)/dt = J(t, y) δy`` with ``J = ∂f/∂y``; for a map ``x ← F(x)`` by
``δx ← J(x) δx``. Carrying ``k`` tangent vectors as the columns of ``Q (n x k)`` gives the
augmented (state + tangent) system that the Lyapunov estimators integrate:

.. math::

    \\dot y = f(t, y), \\qquad \\dot Q = J(t, y)\\, Q .

``J Q`` is computed either with an analytic Jacobian, or matrix-free by forward-mode automatic
differentiation: one Jacobian-vector product (JVP, ``torch.func.jvp``) per column, the ``k`` columns
batched with ``torch.func.vmap``. The JVP never forms ``J`` (cost about ``k`` evaluations of ``f``).

References
----------
.. [B80] G. Benettin, L. Galgani, A. Giorgilli, J.-M. Strelcyn, "Lyapunov characteristic exponents
   for smooth dynamical systems and for Hamiltonian systems; a method for computing all of them",
   Meccanica 15:9–20 and 21–30, 1980.
.. [G90] K. Geist, U. Parlitz, W. Lauterborn, "Comparison of different methods for computing
   Lyapunov exponents", Prog. Theor. Phys. 83(5):875–893, 1990 (the QR method "H2").
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from .._validation import describe
from ..systems import AbstractMap, AbstractVectorField

__all__ = [
    "jvp_columns",
    "qr_positive",
    "random_orthonormal",
    "tangent_vector_field",
    "augmented_field",
    "resolve_flow_jacobian",
    "resolve_map_jacobian",
    "check_jacobian_shape",
]

#: Internal form of a flow Jacobian: ``(t, y, args) -> (*batch, n, n)``.
FlowJacobian = Callable[[Tensor, Tensor, Any], Tensor]
#: Internal form of a map Jacobian: ``(x, args) -> (*batch, n, n)``.
MapJacobian = Callable[[Tensor, Any], Tensor]


def jvp_columns(fn: Callable[[Tensor], Tensor], y: Tensor, V: Tensor) -> tuple[Tensor, Tensor]:
    """``fn(y)`` and ``J V`` with ``J = ∂fn/∂y`` at ``y``, by forward-mode autodiff.

    Parameters
    ----------
    fn
        Maps ``(*batch, n) -> (*batch, n)`` member-wise.
    y : (*batch, n)
        Where the Jacobian is taken.
    V : (*batch, n, k)
        The tangent vectors, as columns.

    Returns
    -------
    (fn(y), J V) with shapes ``(*batch, n)`` and ``(*batch, n, k)``.

    Notes
    -----
    One ``torch.func.jvp`` per column, the columns batched by ``torch.func.vmap`` (so ``fn`` sees
    states of shape ``(*batch, n)`` exactly as in a solve). With a single column the ``vmap`` is
    skipped and the JVP's primal output gives ``fn(y)`` for free.
    """
    if V.shape[-1] == 1:
        out, tan = torch.func.jvp(fn, (y,), (V[..., 0],))
        return out, tan.unsqueeze(-1)

    def one(v: Tensor) -> Tensor:  # (*batch, n) -> (*batch, n)
        return torch.func.jvp(fn, (y,), (v,))[1]

    # The primal output of a vmapped jvp is not batched by vmap: evaluate fn(y) once, separately.
    JV = torch.func.vmap(one, in_dims=-1, out_dims=-1)(V)  # (*batch, n, k)
    return fn(y), JV


def qr_positive(M: Tensor) -> tuple[Tensor, Tensor]:
    """Reduced QR decomposition with a non-negative diagonal of ``R``.

    ``M = Q R`` with ``Q (*batch, n, k)`` orthonormal columns and ``R`` upper triangular; the signs
    are fixed so that ``diag(R) >= 0``, which makes the decomposition unique for full-rank ``M``
    and lets the columns of ``Q`` keep their orientation from one renormalisation to the next.

    Parameters
    ----------
    M : (*batch, n, k), k <= n

    Returns
    -------
    Q : (*batch, n, k)
    r : (*batch, k)
        ``diag(R) = |diag(R)|``; ``log r`` are the local stretching factors of Benettin's method.
    """
    if M.device.type == "cpu" and torch.get_num_threads() > 1:
        # Measured on a 2-core machine (torch 2.13, MKL): the multi-threaded LAPACK QR costs
        # ~20 ms per call for 2x2 to 200x200 matrices when the cores are shared, against 5 µs
        # (small) to 7 ms (200x200) with one thread. The renormalisation QRs are small and
        # frequent, so run them single-threaded and restore the setting.
        n_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            Q, R = torch.linalg.qr(M, mode="reduced")
        finally:
            torch.set_num_threads(n_threads)
    else:
        Q, R = torch.linalg.qr(M, mode="reduced")
    d = torch.diagonal(R, dim1=-2, dim2=-1)  # (*batch, k)
    sign = torch.where(d < 0, -torch.ones_like(d), torch.ones_like(d))
    return Q * sign.unsqueeze(-2), d.abs()


def random_orthonormal(
    n: int, k: int, *, seed: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """``k`` orthonormal vectors in ``R^n`` as columns ``(n, k)``, reproducible from ``seed``.

    Drawn in float64 on the CPU (so the same seed gives the same frame on every device and
    dtype), then cast. A random frame avoids starting exactly inside an invariant subspace, where
    a partial spectrum of a linear system would miss the leading exponents.
    """
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    A = torch.randn(n, k, generator=g, dtype=torch.float64)
    Q, _ = qr_positive(A)
    return Q.to(dtype=dtype, device=device)


def tangent_vector_field(
    f: Callable, k: int, *, jacobian: Any = None
) -> Callable[[Tensor, Tensor, Any], Tensor]:
    """The augmented (state + ``k`` tangent vectors) vector field of a flow.

    .. math::

        \\frac{d}{dt}\\begin{pmatrix} y \\\\ \\operatorname{vec} Q \\end{pmatrix}
        = \\begin{pmatrix} f(t, y) \\\\ \\operatorname{vec}\\big(J(t, y)\\, Q\\big) \\end{pmatrix},
        \\qquad J = \\partial f / \\partial y .

    Parameters
    ----------
    f
        The vector field ``f(t, y, args)``, ``y`` of shape ``(*batch, n)``.
    k
        Number of tangent vectors (columns of ``Q``), ``1 <= k <= n``.
    jacobian
        ``None`` (default): the analytic Jacobian of an :class:`~ngcdyn.systems.AbstractVectorField`
        that declares ``has_analytic_jacobian``, else autodiff; ``"autodiff"``: Jacobian-vector
        products by forward-mode autodiff (``torch.func.jvp``, the columns batched with
        ``torch.func.vmap``); or a callable ``jacobian(t, y) -> (*batch, n, n)``.

    Returns
    -------
    g : callable
        ``g(t, z, args)`` on augmented states ``z = [y, vec Q]`` of shape ``(*batch, n + n k)``,
        where ``vec Q`` is ``Q (*batch, n, k)`` flattened row-major. Any ngcdyn solver integrates
        it.

    Raises
    ------
    ValueError, TypeError
        For a ``k`` that is not a positive integer or an unknown ``jacobian`` option.

    References
    ----------
    Benettin et al. 1980 [B80]_; the variational equation, e.g. Geist, Parlitz & Lauterborn
    1990 [G90]_.

    See also
    --------
    ngcdyn.analysis.lyapunov_spectrum : integrates this field and re-orthonormalises ``Q``.

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.analysis import tangent_vector_field
    >>> A = torch.tensor([[-1.0, 2.0], [0.0, -3.0]], dtype=torch.float64)
    >>> g = tangent_vector_field(lambda t, y, a: y @ A.T, k=2)
    >>> z = torch.cat([torch.ones(2), torch.eye(2).reshape(4)]).to(torch.float64)  # y = 1, Q = I
    >>> g(torch.tensor(0.0), z, None).tolist()   # [A y, vec(A I)]
    [1.0, -3.0, -1.0, 2.0, 0.0, -3.0]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"`k` must be a positive integer (the number of tangent vectors), got {k!r}."
        )
    jac, _ = resolve_flow_jacobian(f, jacobian)
    return augmented_field(f, k, jac)


def augmented_field(
    f: Callable, k: int, jac: FlowJacobian | None
) -> Callable[[Tensor, Tensor, Any], Tensor]:
    """:func:`tangent_vector_field` with a resolved Jacobian ``(t, y, args) -> J`` (None: JVP)."""

    def g(t: Tensor, z: Tensor, args: Any) -> Tensor:
        batch = z.shape[:-1]
        n = z.shape[-1] // (k + 1)
        y = z[..., :n]
        Q = z[..., n:].reshape(*batch, n, k)
        if jac is None:
            dy, dQ = jvp_columns(lambda v: f(t, v, args), y, Q)
        elif isinstance(jac, StructuredJVP):
            dy = f(t, y, args)
            dQ = jac.apply(t, y, Q, args)
        else:
            dy = f(t, y, args)
            dQ = jac(t, y, args) @ Q  # (*batch, n, k)
        return torch.cat([dy, dQ.reshape(*batch, n * k)], dim=-1)

    return g


def check_jacobian_shape(J: Any, y: Tensor, name: str = "jacobian") -> None:
    """A Jacobian returned by a user callable must be ``(*batch, n, n)`` (broadcastable batch)."""
    n = y.shape[-1]
    if not isinstance(J, Tensor):
        raise TypeError(
            f"`{name}` must return a tensor of shape (*batch, n, n) = {tuple(y.shape[:-1])} + "
            f"({n}, {n}), got {type(J).__name__}."
        )
    if J.ndim < 2 or J.shape[-2:] != (n, n):
        raise ValueError(
            f"`{name}` must return square Jacobians of shape (*batch, n, n) with n={n} (the state "
            f"size), got {describe(J)}. A non-square Jacobian means the map or vector field does "
            "not return a state of the input's size: return ∂f/∂y with f(y) of shape "
            f"(*batch, {n})."
        )
    try:
        torch.broadcast_shapes(J.shape[:-2], y.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"`{name}` returned Jacobians with batch shape {tuple(J.shape[:-2])}, which does not "
            f"broadcast against the state's batch shape {tuple(y.shape[:-1])}. Return one "
            "Jacobian per batch member, shape (*batch, n, n)."
        ) from None
    if J.dtype != y.dtype or J.device != y.device:
        raise TypeError(
            f"`{name}` returned dtype={J.dtype} on {J.device}, but the state is dtype={y.dtype} "
            f"on {y.device}; build the Jacobian from the state's dtype and device "
            "(e.g. torch.zeros_like(y)) so that nothing is promoted implicitly."
        )


def _describe_jacobian_option(jacobian: Any) -> str:
    return (
        "`jacobian` must be None (analytic if the system provides one, otherwise autodiff), "
        "'autodiff' (Jacobian-vector products by forward-mode autodiff) or a callable; got "
        f"{jacobian!r}."
    )


class StructuredJVP:
    """The Jacobian of a system with ``has_structured_jvp``: applied to the tangent columns by the
    system's own ``jvp`` (e.g. ``O(N r + G² r²)`` per column for :class:`~ngcdyn.NGCSystem`
    instead of forming the ``N × N`` Jacobian). Calling it returns the dense Jacobian (used only
    for one-off shape checks)."""

    def __init__(self, system: AbstractVectorField) -> None:
        self.system = system

    def __call__(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        return self.system.jacobian(t, y, args)

    def apply(self, t: Tensor, y: Tensor, Q: Tensor, args: Any) -> Tensor:
        """``J Q`` for ``Q (*batch, n, k)``: the k columns ride in an extra batch dimension."""
        tt = t[..., None] if t.ndim else t  # (*batch, 1): broadcasts over the columns
        JQ = self.system.jvp(tt, y[..., None, :], Q.mT, args)  # (*batch, k, n)
        return JQ.mT


def resolve_flow_jacobian(f: Any, jacobian: Any) -> tuple[FlowJacobian | None, str]:
    """Turn the user's ``jacobian`` option into ``(t, y, args) -> J`` (or None for JVP) + a label.

    ``None`` uses the analytic Jacobian of an :class:`AbstractVectorField` that declares
    ``has_analytic_jacobian``, and autodiff otherwise; ``"autodiff"`` forces JVPs; a callable
    ``jacobian(t, y) -> (*batch, n, n)`` is used as given.
    """
    if jacobian is None:
        if isinstance(f, AbstractVectorField) and f.has_structured_jvp:
            return StructuredJVP(f), "structured JVP (system)"
        if isinstance(f, AbstractVectorField) and f.has_analytic_jacobian:
            return (lambda t, y, args: f.jacobian(t, y, args)), "analytic (system)"
        return None, "autodiff (JVP)"
    if isinstance(jacobian, str):
        if jacobian == "autodiff":
            return None, "autodiff (JVP)"
        raise ValueError(_describe_jacobian_option(jacobian))
    if callable(jacobian):
        return (lambda t, y, args: jacobian(t, y)), "analytic (user callable)"
    raise TypeError(_describe_jacobian_option(jacobian))


def resolve_map_jacobian(F: Any, jacobian: Any) -> tuple[MapJacobian | None, str]:
    """As :func:`resolve_flow_jacobian` for maps; a callable is ``jacobian(x) -> (*batch, n, n)``.
    """
    if jacobian is None:
        if isinstance(F, AbstractMap) and F.has_analytic_jacobian:
            return (lambda x, args: F.jacobian(x, args)), "analytic (system)"
        return None, "autodiff (JVP)"
    if isinstance(jacobian, str):
        if jacobian == "autodiff":
            return None, "autodiff (JVP)"
        raise ValueError(_describe_jacobian_option(jacobian))
    if callable(jacobian):
        return (lambda x, args: jacobian(x)), "analytic (user callable)"
    raise TypeError(_describe_jacobian_option(jacobian))
