"""The abstract solver interface every integrator (ngcdyn's own and backends) implements."""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor

from .._types import VectorFieldFn
from .._validation import check_same_device_dtype, check_state, describe
from ._solution import Solution

__all__ = ["AbstractSolver", "prepare_times"]


class AbstractSolver(abc.ABC):
    """Integrates ``dy/dt = f(t, y, args)`` for a batch of states and returns a :class:`Solution`.

    Rules for implementers:

    1. Implement ``_solve_impl(f, y0, t_eval, t0, args, dense)`` receiving validated inputs:
       ``y0`` of shape ``(B, n)`` (batch flattened), ``t_eval`` of shape ``(B, T)``, strictly
       increasing or decreasing per member, ``t0`` of shape ``(B,)``, and the callable ``f`` already
       wrapped to take and return ``(B, n)`` states (with ``t`` of shape ``(B,)`` or 0-d).
       Return ``(ys (B, T, n), status (B,), stats dict of (B,), dense or None)``.
    2. Never raise for a failure of a member: record it in ``status`` (see :class:`Status`); the
       public ``solve`` raises if ``throw=True``.
    3. Keep every batch member independent: one member's failure must not change another's numbers.
    4. Declare ``name`` (used in messages and the Solution).
    """

    name: str = "abstract"

    def solve(
        self,
        f: VectorFieldFn,
        y0: Tensor,
        t_eval: Tensor | Any,
        *,
        args: Any = None,
        t0: Tensor | float | None = None,
        throw: bool = True,
        dense: bool = False,
    ) -> Solution:
        """Solve the initial value problem and evaluate the solution at ``t_eval``.

        Parameters
        ----------
        f
            Vector field ``f(t, y, args) -> dy/dt``; ``y`` of shape ``(*batch, n)``, ``t`` a tensor
            broadcastable against ``y[..., 0]`` (one time per member, or 0-d).
        y0 : (*batch, n)
            Initial states, finite.
        t_eval : (T,) or (*batch, T)
            Strictly monotone output times (increasing: forward; decreasing: backward in time),
            shared or per member. The solve runs from ``t0`` to ``t_eval[..., -1]``.
        args
            Passed through to ``f`` unchanged.
        t0 : float or (*batch,), optional
            Initial time; default ``t_eval[..., 0]``. ``t_eval`` must not lie behind it.
        throw
            Raise :class:`SolveError` if any member fails (default); with False, inspect
            ``Solution.status``.
        dense
            Store the interpolant of every step, so that ``Solution.evaluate(t)`` works.

        Returns
        -------
        Solution
        """
        y0 = check_state("y0", y0)
        batch = y0.shape[:-1]
        n = y0.shape[-1]
        te, t0_ = prepare_times(t_eval, t0, y0)
        B = int(torch.Size(batch).numel())
        y_flat = y0.reshape(B, n)
        te_flat = te.expand(*batch, te.shape[-1]).reshape(B, te.shape[-1])
        t0_flat = t0_.expand(batch).reshape(B) if t0_.ndim else t0_.expand(B)

        if len(batch) == 1:
            fn = f  # already (B, n); passing f itself lets compiled solvers reuse their graph
        else:
            def fn(t: Tensor, y: Tensor, a: Any) -> Tensor:
                tt = t.reshape(batch) if t.ndim else t
                return f(tt, y.reshape(*batch, n), a).reshape(B, n)

        if B == 0:
            T = te.shape[-1]
            ys = y0.new_empty(*batch, T, n)
            empty = torch.zeros(batch, dtype=torch.int64, device=y0.device)
            stats = {k: empty.clone() for k in ("n_f_evals", "n_accepted", "n_rejected", "n_steps")}
            return Solution(te, ys, empty, stats, self.name)

        ys, status, stats, dense_out = self._solve_impl(fn, y_flat, te_flat, t0_flat, args, dense)
        T = te.shape[-1]
        ys = ys.reshape(*batch, T, n)
        status = status.reshape(batch)
        stats = {k: v.reshape(batch) for k, v in stats.items()}
        if dense_out is not None:
            dense_out = dense_out.with_batch_shape(batch)
        sol = Solution(te, ys, status, stats, self.name, dense_out)
        if throw:
            sol.raise_for_status()
        return sol

    @abc.abstractmethod
    def _solve_impl(self, f, y0: Tensor, t_eval: Tensor, t0: Tensor, args: Any, dense: bool):
        """See rule 1 of the class docstring."""


def prepare_times(t_eval: Any, t0: Any, y0: Tensor) -> tuple[Tensor, Tensor]:
    """Validate ``t_eval`` and ``t0`` against ``y0``; return tensors in y0's dtype/device.

    ``t_eval`` becomes ``(T,)`` or ``(*batch, T)``; ``t0`` 0-d or ``(*batch,)``.
    """
    batch = y0.shape[:-1]
    real_dtype = y0.real.dtype if y0.is_complex() else y0.dtype
    if not isinstance(t_eval, Tensor):
        try:
            t_eval = torch.as_tensor(t_eval, dtype=real_dtype, device=y0.device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"`t_eval` must be a 1-D tensor of times (or per-member (*batch, T)), got "
                f"{type(t_eval).__name__}. Pass torch.linspace(t0, t1, T, dtype=y0.dtype)."
            ) from None
    else:
        if not t_eval.is_floating_point():
            t_eval = t_eval.to(real_dtype)
        check_same_device_dtype("y0", y0.real if y0.is_complex() else y0, t_eval=t_eval)
    if t_eval.ndim == 0:
        raise ValueError(
            f"`t_eval` must have shape (T,) or (*batch, T), got a 0-d tensor {describe(t_eval)}. "
            "Pass at least the end time, e.g. t_eval=torch.tensor([t0, t1])."
        )
    if t_eval.ndim > 1 and t_eval.shape[:-1] != batch:
        raise ValueError(
            f"per-member `t_eval` must have shape (*batch, T) = {tuple(batch)} + (T,) matching "
            f"`y0` of shape {tuple(y0.shape)}, got {tuple(t_eval.shape)}. Pass one shared grid of "
            "shape (T,), or one row per batch member."
        )
    if not bool(torch.isfinite(t_eval).all()):
        raise ValueError(f"`t_eval` must be finite, got {describe(t_eval)}.")
    T = t_eval.shape[-1]
    if t0 is None:
        t0_ = t_eval[..., 0]
    else:
        t0_ = torch.as_tensor(t0, dtype=t_eval.dtype, device=t_eval.device)
        if t0_.ndim and t0_.shape != batch:
            raise ValueError(
                f"`t0` must be a scalar or have the batch shape {tuple(batch)}, got shape "
                f"{tuple(t0_.shape)}."
            )
        if not bool(torch.isfinite(t0_).all()):
            raise ValueError(f"`t0` must be finite, got {describe(t0_)}.")
    if T >= 2:
        d = torch.diff(t_eval, dim=-1)
        inc = (d > 0).all(-1)
        dec = (d < 0).all(-1)
        if not bool((inc | dec).all()):
            raise ValueError(
                "`t_eval` must be strictly monotone along its last axis for every member (increasing "
                "to integrate forward, decreasing to integrate backward); got "
                f"{describe(t_eval)}. Sort it and drop repeated times."
            )
        direction = torch.where(inc, 1.0, -1.0).to(t_eval.dtype)
    else:
        direction = torch.sign(t_eval[..., -1] - t0_)
        direction = torch.where(direction == 0, torch.ones_like(direction), direction)
    # t_eval must not lie behind t0 in the direction of integration.
    behind = (t_eval[..., 0] - t0_) * direction < 0
    if bool(behind.any()):
        raise ValueError(
            "`t_eval` starts behind `t0` in the direction of integration (t_eval[..., 0] = "
            f"{describe(t_eval[..., 0])}, t0 = {describe(t0_)}): an integration from t0 runs toward "
            "t_eval[..., -1]. For a backward solve pass a decreasing `t_eval`; otherwise drop `t0` "
            "or set it to t_eval[..., 0]."
        )
    return t_eval, t0_
