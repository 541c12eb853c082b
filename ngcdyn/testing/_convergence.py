"""Empirical convergence order of a fixed-step solver (STYLE.md principle 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["ConvergenceResult", "convergence_order"]


@dataclass(frozen=True)
class ConvergenceResult:
    """Errors against step sizes and the least-squares slope of log(error) on log(dt).

    Attributes
    ----------
    dts, errors
        The step sizes and the max-norm global errors at the end time.
    order
        The fitted slope (the empirical order ``p`` in ``error ≈ C dt^p``).
    """

    dts: np.ndarray
    errors: np.ndarray
    order: float


def convergence_order(
    method: str,
    f: Callable,
    y0: Tensor,
    t1: float,
    exact: Tensor,
    dts: Sequence[float],
    *,
    args=None,
) -> ConvergenceResult:
    """Fit the order of a fixed-step method from global errors at ``t1``.

    .. math:: \\log e(h) \\approx \\log C + p \\log h \\quad\\Rightarrow\\quad p = \\text{slope}

    Parameters
    ----------
    method
        A tableau name or :class:`~ngcdyn.solvers.ButcherTableau` (run with fixed steps ``dt``).
    f, y0, args
        The problem (``f(t, y, args)``, initial state ``(*batch, n)``), started at t = 0.
    t1
        End time; every ``dt`` in ``dts`` should divide it (the last step is shortened otherwise).
    exact : (*batch, n)
        The exact solution at ``t1``.
    dts
        Step sizes, small enough to be in the asymptotic regime but with errors well above
        round-off (e.g. errors between 1e-12 and 1e-2).

    Returns
    -------
    ConvergenceResult

    References
    ----------
    Hairer, Nørsett, Wanner, *Solving ODEs I*, II.1 (order and the error of a step); the test
    recipe of DiffEqDevTools' ``test_convergence`` and Diffrax's ``test_ode_order``.

    Examples
    --------
    >>> import torch
    >>> f = lambda t, y, a: -y
    >>> y0 = torch.ones(1, dtype=torch.float64)
    >>> res = convergence_order("rk4", f, y0, 1.0, torch.exp(-y0), [0.2, 0.1, 0.05, 0.025])
    >>> round(res.order)
    4
    """
    from ..solvers import RungeKutta

    errors = []
    t_eval = torch.tensor([0.0, float(t1)], dtype=y0.dtype, device=y0.device)
    for dt in dts:
        sol = RungeKutta(method, dt=float(dt)).solve(f, y0, t_eval, args=args)
        errors.append(float((sol.ys[..., -1, :] - exact).abs().max()))
    e = np.asarray(errors)
    h = np.asarray(dts, dtype=float)
    slope = float(np.polyfit(np.log(h), np.log(e), 1)[0])
    return ConvergenceResult(dts=h, errors=e, order=slope)
