"""``solve``: the functional entry point that builds a solver object and runs it."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .._types import VectorFieldFn
from ._base import AbstractSolver
from ._rk import RungeKutta
from ._solution import Solution
from ._tableau import ButcherTableau

__all__ = ["solve", "make_solver"]

_BACKENDS = ("ngcdyn", "torchdiffeq")


def make_solver(
    method: str | ButcherTableau = "dopri5",
    *,
    backend: str = "ngcdyn",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    adjoint: bool = False,
    **options: Any,
) -> AbstractSolver:
    """Build a solver object from a method name and a backend (see :func:`solve`)."""
    if backend == "ngcdyn":
        if adjoint:
            raise ValueError(
                "`adjoint=True` needs backend='torchdiffeq' (torchdiffeq's odeint_adjoint); the "
                "ngcdyn backend differentiates by backpropagating through its steps."
            )
        return RungeKutta(method, rtol=rtol, atol=atol, dt=dt, **options)
    if backend == "torchdiffeq":
        from ._torchdiffeq import TorchdiffeqSolver

        if isinstance(method, ButcherTableau):
            raise TypeError("backend='torchdiffeq' takes a torchdiffeq method name, not a ButcherTableau.")
        unknown = set(options) - {"max_steps"}
        if unknown:
            raise TypeError(
                f"option(s) {sorted(unknown)} are not supported by backend='torchdiffeq' "
                "(it accepts rtol, atol, dt, adjoint, max_steps)."
            )
        return TorchdiffeqSolver(method, rtol=rtol, atol=atol, dt=dt, adjoint=adjoint, **options)
    raise ValueError(f"`backend` must be one of {_BACKENDS}, got {backend!r}.")


def solve(
    f: VectorFieldFn,
    y0: Tensor,
    t_eval: Tensor | Any,
    *,
    method: str | ButcherTableau = "dopri5",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    args: Any = None,
    dt: float | None = None,
    t0: Tensor | float | None = None,
    backend: str = "ngcdyn",
    adjoint: bool = False,
    throw: bool = True,
    dense: bool = False,
    **options: Any,
) -> Solution:
    """Solve ``dy/dt = f(t, y, args)`` for a batch of initial states.

    Each member of the batch ``y0[i]`` is integrated with its own adaptive step size (ngcdyn
    backend), from ``t0`` (default ``t_eval[..., 0]``) to ``t_eval[..., -1]``, and evaluated at
    ``t_eval`` with the method's dense-output interpolant.

    Parameters
    ----------
    f
        Vector field ``f(t, y, args) -> dy/dt`` on ``y`` of shape ``(*batch, n)``; ``t`` arrives as a
        tensor of shape ``(*batch,)`` (each member's own time; 0-d with backend='torchdiffeq').
    y0 : (*batch, n)
        Initial states.
    t_eval : (T,) or (*batch, T)
        Strictly monotone output times, shared or per member.
    method
        ``"dopri5"`` (default), ``"tsit5"``, ``"bosh3"``, ``"heun"`` (adaptive) or ``"euler"``,
        ``"midpoint"``, ``"rk4"`` (fixed step, need ``dt``), or a ``ButcherTableau``; with
        backend='torchdiffeq' any torchdiffeq method name.
    rtol, atol
        Tolerances of the per-member error control.
    args
        Passed to ``f`` unchanged.
    dt
        Fixed step size (turns adaptivity off).
    t0
        Initial time(s); default ``t_eval[..., 0]``.
    backend
        ``"ngcdyn"`` (per-member stepping) or ``"torchdiffeq"`` (shared stepping; ``adjoint=True``
        uses ``odeint_adjoint``).
    throw
        Raise :class:`SolveError` naming failed members (default) or return them in ``status``.
    dense
        Keep the dense output for ``Solution.evaluate`` (ngcdyn backend).
    **options
        Further solver options: ``max_steps``, ``dt0``, ``dt_min``, ``safety``, ``fac_min``,
        ``fac_max``, ``beta`` (see :class:`RungeKutta`).

    Returns
    -------
    Solution
        ``ys`` of shape ``(*batch, T, n)``, per-member ``status`` and ``stats``.

    Raises
    ------
    ValueError, TypeError
        For invalid input (shapes, devices, dtypes, non-finite ``y0``, non-monotone ``t_eval``,
        non-positive tolerances, unknown methods), naming the argument and the fix.
    SolveError
        If ``throw=True`` and some member failed.

    References
    ----------
    Hairer, Nørsett, Wanner, *Solving ODEs I*, II.4–II.6; Dormand & Prince (1980).

    See also
    --------
    RungeKutta, TorchdiffeqSolver, Solution

    Examples
    --------
    >>> import torch, ngcdyn as nd
    >>> mu = torch.tensor([1.0, 5.0], dtype=torch.float64)            # two Van der Pol oscillators
    >>> def vdp(t, y, mu):
    ...     x, v = y[..., 0], y[..., 1]
    ...     return torch.stack([v, mu * (1 - x**2) * v - x], -1)
    >>> sol = nd.solve(vdp, torch.tensor([[2.0, 0.0], [2.0, 0.0]], dtype=torch.float64),
    ...                torch.linspace(0, 10, 50, dtype=torch.float64), args=mu, rtol=1e-8, atol=1e-8)
    >>> sol.ys.shape, bool(sol.success.all())
    (torch.Size([2, 50, 2]), True)
    >>> bool((sol.stats["n_accepted"][1] > sol.stats["n_accepted"][0]))  # the stiffer one steps more
    True
    """
    solver = make_solver(method, backend=backend, rtol=rtol, atol=atol, dt=dt, adjoint=adjoint, **options)
    return solver.solve(f, y0, t_eval, args=args, t0=t0, throw=throw, dense=dense)
