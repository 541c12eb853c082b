"""The torchdiffeq backend: the same interface, mapped onto ``torchdiffeq.odeint``.

torchdiffeq steps the whole batch with one shared step size and one shared time grid, so this
backend needs a shared ``t_eval`` and a shared ``t0``; it exists so users can compare with and
switch to torchdiffeq, and for its adjoint method (``adjoint=True`` → ``odeint_adjoint``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._validation import check_positive
from ._base import AbstractSolver
from ._solution import Status

__all__ = ["TorchdiffeqSolver"]

_FIXED = {"euler", "midpoint", "rk4", "explicit_adams", "implicit_adams"}


class _CountingFunc(torch.nn.Module):
    """Wraps ``f(t, y, args)`` as torchdiffeq's ``func(t, y)`` and counts evaluations."""

    def __init__(self, f, args: Any) -> None:
        super().__init__()
        self.f = f
        self.args = args
        self.n_calls = 0

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.n_calls += 1
        return self.f(t, y, self.args)


class TorchdiffeqSolver(AbstractSolver):
    """Solve with torchdiffeq (Chen et al. 2018), behind ngcdyn's :class:`AbstractSolver` interface.

    Parameters
    ----------
    method
        A torchdiffeq method name (``"dopri5"``, ``"dopri8"``, ``"bosh3"``, ``"tsit5"``,
        ``"rk4"``, ...).
    rtol, atol
        Tolerances passed to torchdiffeq.
    dt
        Step size for torchdiffeq's fixed-grid methods (``options={"step_size": dt}``).
    adjoint
        Use ``torchdiffeq.odeint_adjoint``: gradients by solving the adjoint ODE backwards, with
        memory independent of the number of steps. Parameters to differentiate must be reachable
        as tensors requiring grad in ``args`` (a tensor, or a tuple/list/dict of tensors).
    max_steps
        torchdiffeq's ``max_num_steps`` for adaptive methods.

    Notes
    -----
    Statistics: ``n_f_evals`` counts calls of the vector field (the same for every member, since
    the batch shares its steps); accepted/rejected step counts are not exposed by torchdiffeq and
    are reported as -1. A torchdiffeq failure (``underflow in dt``, too many steps) marks every
    member as failed, because the shared step cannot single out the culprit.

    Examples
    --------
    >>> import torch, ngcdyn as nd
    >>> sol = nd.solve(lambda t, y, a: -y, torch.ones(3, 1, dtype=torch.float64),
    ...                torch.linspace(0, 1, 5, dtype=torch.float64), backend="torchdiffeq")
    >>> round(float(sol.ys[0, -1, 0]), 4)  # exp(-1)
    0.3679
    """

    def __init__(
        self,
        method: str = "dopri5",
        *,
        rtol: float = 1e-6,
        atol: float = 1e-8,
        dt: float | None = None,
        adjoint: bool = False,
        max_steps: int | None = None,
    ) -> None:
        import torchdiffeq  # noqa: F401  (fail early with the import error if missing)

        if not isinstance(method, str):
            raise TypeError(f"`method` must be a torchdiffeq method name, got {type(method).__name__}.")
        self.method = method
        self.name = f"torchdiffeq:{method}"
        self.rtol = check_positive("rtol", rtol)
        self.atol = check_positive("atol", atol)
        if method in _FIXED and dt is None:
            raise ValueError(
                f"torchdiffeq's fixed-grid method {method!r} needs `dt` (e.g. dt=0.01), or choose an "
                "adaptive method such as 'dopri5'."
            )
        self.dt = None if dt is None else check_positive("dt", dt)
        self.adjoint = bool(adjoint)
        self.max_steps = max_steps

    def _solve_impl(self, f, y0: Tensor, t_eval: Tensor, t0: Tensor, args: Any, dense: bool):
        import torchdiffeq

        if dense:
            raise ValueError(
                "`dense=True` is not available with backend='torchdiffeq'; use the ngcdyn backend "
                "(backend='ngcdyn'), whose Solution.evaluate gives the Runge–Kutta interpolant."
            )
        if not bool((t_eval == t_eval[:1]).all()) or not bool((t0 == t0[:1]).all()):
            raise ValueError(
                "backend='torchdiffeq' needs one `t_eval` grid and one `t0` shared by all members "
                "(torchdiffeq has no per-sample time grids); pass a (T,) `t_eval`, or use "
                "backend='ngcdyn', which supports per-member grids."
            )
        grid = t_eval[0]
        start = t0[0]
        prepend = bool(grid[0] != start)
        ts = torch.cat([start.reshape(1), grid]) if prepend else grid
        func = _CountingFunc(f, args)
        options: dict[str, Any] = {}
        if self.dt is not None:
            options["step_size"] = self.dt
        if self.max_steps is not None and self.method not in _FIXED:
            options["max_num_steps"] = int(self.max_steps)
        kw = dict(rtol=self.rtol, atol=self.atol, method=self.method, options=options or None)
        B, n = y0.shape
        status = torch.zeros(B, dtype=torch.int64, device=y0.device)
        try:
            if len(ts) == 1:
                ys = y0[None]
            elif self.adjoint:
                params = _tensors_requiring_grad(args)
                ys = torchdiffeq.odeint_adjoint(func, y0, ts, adjoint_params=params, **kw)
            else:
                ys = torchdiffeq.odeint(func, y0, ts, **kw)
        except AssertionError as exc:  # torchdiffeq signals 'underflow in dt' / max steps by assert
            msg = str(exc).lower()
            code = Status.MAX_STEPS if "max_num_steps" in msg else Status.DT_UNDERFLOW
            status.fill_(int(code))
            ys = torch.full((len(ts), B, n), float("nan"), dtype=y0.dtype, device=y0.device)
        if prepend:
            ys = ys[1:]
        ys = ys.permute(1, 0, 2)  # (T, B, n) -> (B, T, n)
        bad = ~torch.isfinite(ys).all(-1).all(-1)
        status = torch.where(bad & (status == 0), int(Status.NONFINITE), status)
        calls = torch.full((B,), func.n_calls, dtype=torch.int64, device=y0.device)
        unknown = torch.full((B,), -1, dtype=torch.int64, device=y0.device)
        stats = {"n_f_evals": calls, "n_accepted": unknown, "n_rejected": unknown, "n_steps": unknown}
        return ys, status, stats, None


def _tensors_requiring_grad(args: Any) -> tuple[Tensor, ...]:
    if isinstance(args, Tensor):
        return (args,) if args.requires_grad else ()
    if isinstance(args, dict):
        args = list(args.values())
    if isinstance(args, (list, tuple)):
        return tuple(a for a in args if isinstance(a, Tensor) and a.requires_grad)
    return ()
