"""The result of a solve: trajectories, per-member status and statistics, dense output."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["Status", "Solution", "SolveError"]


class Status(enum.IntEnum):
    """Per-member outcome of a solve. ``int(status)`` is what ``Solution.status`` holds."""

    SUCCESS = 0
    MAX_STEPS = 1
    DT_UNDERFLOW = 2
    NONFINITE = 3

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.SUCCESS: "success: reached the last time of `t_eval`",
    Status.MAX_STEPS: (
        "stopped after `max_steps` steps before the end time; raise `max_steps`, loosen "
        "`rtol`/`atol`, or check whether the problem is stiff (an explicit method then needs tiny steps)"
    ),
    Status.DT_UNDERFLOW: (
        "the step size fell below `dt_min` (or below the time resolution of the dtype); the solution "
        "may blow up or have a singularity there — check the model, or use float64"
    ),
    Status.NONFINITE: (
        "the state or its derivative became NaN/inf (the trajectory diverged); shorten `t_eval`, check "
        "the model and its parameters for this member"
    ),
}


class SolveError(RuntimeError):
    """Raised by ``solve(..., throw=True)`` when some batch members failed.

    Attributes
    ----------
    solution
        The full :class:`Solution` (successful members are valid and can still be used).
    failed
        Multi-indices of the failed members.
    """

    def __init__(self, message: str, solution: "Solution", failed: list[tuple[int, ...]]):
        super().__init__(message)
        self.solution = solution
        self.failed = failed


@dataclass
class Solution:
    """Trajectories of a batch of ODE solves.

    Attributes
    ----------
    ts : (T,) or (*batch, T)
        The evaluation times (``t_eval`` as given).
    ys : (*batch, T, n)
        The states at ``ts``. Entries at times a failed member never reached are NaN.
    status : (*batch,) int64
        :class:`Status` codes, 0 for success.
    stats : dict of (*batch,) int64 tensors
        ``n_f_evals`` (right-hand-side evaluations spent on the member), ``n_accepted``,
        ``n_rejected`` (steps), ``n_steps`` (their sum).
    method
        Name of the method that produced it.
    """

    ts: Tensor
    ys: Tensor
    status: Tensor
    stats: dict[str, Tensor]
    method: str = ""
    _dense: Any = field(default=None, repr=False)

    @property
    def success(self) -> Tensor:
        """``(*batch,)`` bool: which members reached the end."""
        return self.status == int(Status.SUCCESS)

    @property
    def batch_shape(self) -> torch.Size:
        return self.status.shape

    def failed_members(self) -> list[tuple[int, ...]]:
        """Multi-indices of the members whose status is not SUCCESS."""
        idx = (~self.success).nonzero().tolist()
        return [tuple(i) for i in idx]

    def messages(self) -> dict[tuple[int, ...], str]:
        """A readable message for each failed member."""
        out = {}
        for i in self.failed_members():
            code = Status(int(self.status[i]))  # i == () indexes a 0-d status
            out[i] = f"{code.name}: {code.message}"
        return out

    def raise_for_status(self) -> "Solution":
        """Raise :class:`SolveError` naming the failed members, if any; else return self."""
        failed = self.failed_members()
        if not failed:
            return self
        n_total = self.status.numel()
        lines = []
        for i, msg in list(self.messages().items())[:10]:
            lines.append(f"  member {i if i else '()'}: {msg}")
        more = "" if len(failed) <= 10 else f"\n  ... and {len(failed) - 10} more"
        raise SolveError(
            f"{len(failed)} of {n_total} batch member(s) failed in the {self.method} solve:\n"
            + "\n".join(lines)
            + more
            + "\nThe other members are valid: pass throw=False to get the Solution and inspect "
            "`sol.status` / `sol.messages()`.",
            self,
            failed,
        )

    def evaluate(self, t: Tensor | float) -> Tensor:
        """Evaluate the dense output (the Runge–Kutta interpolant) at arbitrary times.

        Parameters
        ----------
        t : float, (Q,) or (*batch, Q)
            Query times inside each member's integration span.

        Returns
        -------
        (*batch, Q, n) tensor (``(*batch, n)`` for a scalar ``t``).

        Raises
        ------
        ValueError
            If the solve was not run with ``dense=True``.
        """
        if self._dense is None:
            raise ValueError(
                "`Solution.evaluate` needs the dense output, which was not stored; solve again with "
                "dense=True (memory grows with the number of steps)."
            )
        return self._dense(t)

    def __repr__(self) -> str:
        n_ok = int(self.success.sum())
        return (
            f"Solution(method={self.method!r}, batch={tuple(self.batch_shape)}, "
            f"T={self.ys.shape[-2]}, n={self.ys.shape[-1]}, success={n_ok}/{self.status.numel()})"
        )
