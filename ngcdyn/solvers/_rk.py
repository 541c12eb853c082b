"""Batched explicit Runge–Kutta with per-member adaptive step size.

Every batch member carries its own time, step size, error history and status: it accepts or
rejects its own steps on its own error norm and stops at its own end time. All members advance
together in one tensor program (one vector-field call per stage for the whole batch); members that
are finished or failed are frozen by masks, so one diverging member never changes another's
numbers.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .._validation import check_nonnegative_int, check_positive
from ._base import AbstractSolver
from ._solution import Status
from ._tableau import TABLEAUX, ButcherTableau

__all__ = ["RungeKutta"]


class RungeKutta(AbstractSolver):
    """Explicit Runge–Kutta solver, fixed step or adaptive with per-member step size.

    For each member the step ``h`` is accepted when the error norm

    .. math::

        \\mathrm{err} = \\sqrt{\\tfrac1n \\sum_i
        \\Big(\\frac{h \\sum_j e_j k_{j,i}}{\\mathrm{atol} + \\mathrm{rtol}\\max(|y_i|, |y^{new}_i|)}\\Big)^2}

    is at most 1, and the next step is ``h · clip(safety · err^{-α} · err_prev^{β}, fac_min, fac_max)``
    (a PI controller, Hairer–Wanner II.4 and Gustafsson 1991; ``α = 1/q − 0.75 β`` with ``q`` the
    embedded order + 1, ``β = 0.04`` by default, as in DOPRI5). After a rejection the step never grows.

    Parameters
    ----------
    method
        A tableau name (``"euler"``, ``"midpoint"``, ``"heun"``, ``"rk4"``, ``"bosh3"``,
        ``"dopri5"``, ``"tsit5"``) or a :class:`ButcherTableau`.
    rtol, atol
        Relative and absolute tolerances of the adaptive controller (ignored with ``dt``).
    dt
        Fixed step size. Required for tableaux without an error estimate; with an embedded tableau
        it turns adaptivity off. The last step of each member is shortened to land on its end time.
    dt0
        Initial step size for adaptive solves; default: Hairer's starting-step algorithm per member.
    max_steps
        Per-member cap on attempted steps (accepted + rejected); a member that hits it stops with
        status ``MAX_STEPS``.
    dt_min
        Per-member floor on the step size; below it a member stops with ``DT_UNDERFLOW`` (or
        ``NONFINITE`` if the last attempt produced NaN/inf). The floor is never below 4 ulp of t.
    safety, fac_min, fac_max, beta
        Step-size controller constants (rarely changed).
    output_buffer_bytes
        Steps are logged and their interpolant evaluated at ``t_eval`` in batches once the log
        holds this many bytes (default 64 MiB): fewer tensor ops per step, bounded memory.
    compile
        Compile the step (all stages, the error norm and the controller) into one graph with
        ``torch.compile``. Pays off when per-step overhead dominates (small states, many steps);
        the first solve pays the compilation (tens of seconds on a CPU), later solves with the same
        vector field reuse it. The vector field must be traceable by ``torch.compile``.

    References
    ----------
    E. Hairer, S. P. Nørsett, G. Wanner, *Solving Ordinary Differential Equations I*, 2nd ed.,
    Springer 1993, sections II.4 (step control, starting step) and II.6 (dense output).

    See also
    --------
    ngcdyn.solve : the functional entry point.
    ngcdyn.solvers.TorchdiffeqSolver : the same interface backed by torchdiffeq.

    Examples
    --------
    >>> import torch, ngcdyn as nd
    >>> solver = nd.RungeKutta("dopri5", rtol=1e-8, atol=1e-10)
    >>> lam = torch.tensor([[-1.0], [-2.0]], dtype=torch.float64)      # two decay rates
    >>> sol = solver.solve(lambda t, y, a: lam * y, torch.ones(2, 1, dtype=torch.float64),
    ...                    torch.tensor([0.0, 1.0], dtype=torch.float64))
    >>> torch.allclose(sol.ys[:, -1, 0], torch.exp(lam[:, 0]), rtol=1e-7)
    True
    """

    def __init__(
        self,
        method: str | ButcherTableau = "dopri5",
        *,
        rtol: float = 1e-6,
        atol: float = 1e-8,
        dt: float | None = None,
        dt0: float | None = None,
        max_steps: int = 100_000,
        dt_min: float = 0.0,
        safety: float = 0.9,
        fac_min: float = 0.2,
        fac_max: float = 10.0,
        beta: float = 0.04,
        output_buffer_bytes: int = 64 * 2**20,
        compile: bool = False,
    ) -> None:
        if isinstance(method, ButcherTableau):
            tab = method
        elif isinstance(method, str):
            key = method.lower()
            if key not in TABLEAUX:
                raise ValueError(
                    f"`method` must be one of {sorted(TABLEAUX)} or a ButcherTableau, got {method!r}."
                    + (" For torchdiffeq's solvers pass backend='torchdiffeq'." if key else "")
                )
            tab = TABLEAUX[key]
        else:
            raise TypeError(
                f"`method` must be a method name or a ButcherTableau, got {type(method).__name__}."
            )
        self.tableau = tab
        self.name = tab.name
        self.rtol = check_positive("rtol", rtol, fix="Use e.g. rtol=1e-6.")
        self.atol = check_positive("atol", atol, fix="Use e.g. atol=1e-8.")
        if dt is not None:
            dt = check_positive("dt", dt, fix="Pass the magnitude of the step; the direction comes from `t_eval`.")
        elif not tab.adaptive:
            raise ValueError(
                f"method {tab.name!r} has no embedded error estimate, so it needs a fixed step: pass "
                f"`dt` (e.g. dt=0.01), or choose an adaptive method such as 'dopri5', 'tsit5', 'bosh3'."
            )
        self.dt = dt
        self.dt0 = None if dt0 is None else check_positive("dt0", dt0)
        self.max_steps = check_nonnegative_int("max_steps", max_steps, minimum=1)
        self.dt_min = float(dt_min)
        if not (math.isfinite(self.dt_min) and self.dt_min >= 0):
            raise ValueError(f"`dt_min` must be finite and >= 0, got {dt_min!r}.")
        self.safety = check_positive("safety", safety)
        self.fac_min = check_positive("fac_min", fac_min)
        self.fac_max = check_positive("fac_max", fac_max)
        if not self.fac_min < 1.0 < self.fac_max:
            raise ValueError(
                f"`fac_min` < 1 < `fac_max` is required, got fac_min={fac_min}, fac_max={fac_max}."
            )
        self.beta = float(beta)
        self.output_buffer_bytes = check_nonnegative_int("output_buffer_bytes", output_buffer_bytes)
        self.compile = bool(compile)
        q = (tab.error_order or tab.order) + 1
        self._alpha = 1.0 / q - 0.75 * self.beta
        self._coef_cache: dict[tuple, tuple[Tensor, ...]] = {}

    @property
    def adaptive(self) -> bool:
        return self.dt is None

    def __repr__(self) -> str:
        if self.adaptive:
            return f"RungeKutta({self.name!r}, rtol={self.rtol:g}, atol={self.atol:g})"
        return f"RungeKutta({self.name!r}, dt={self.dt:g})"

    # ------------------------------------------------------------------ coefficients
    def _coefs(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, ...]:
        key = (dtype, device)
        if key not in self._coef_cache:
            tab = self.tableau
            s = tab.n_stages
            rows = [tab.a, tab.b[None, :]]
            if tab.adaptive:
                rows.append(tab.error_weights[None, :])
            # M[r, j]: weight of stage j in row r (stage inputs, then b, then e): (R, s)
            M = torch.as_tensor(np.concatenate(rows, 0), dtype=dtype, device=device)
            # cols[j] (R, 1, 1): column j, so that Acc += cols[j] * k_j accumulates every later
            # stage input, the solution update and the error estimate in one fused op.
            cols = tuple(M[:, j].reshape(-1, 1, 1).contiguous() for j in range(s))
            c = torch.as_tensor(tab.c, dtype=dtype, device=device)
            P = None if tab.interp is None else torch.as_tensor(tab.interp, dtype=dtype, device=device)
            self._coef_cache[key] = (cols, c, P)
        return self._coef_cache[key]

    # ------------------------------------------------------------------ the solve
    def _solve_impl(self, f, y0: Tensor, t_eval: Tensor, t0: Tensor, args: Any, dense: bool):
        tab = self.tableau
        s = tab.n_stages
        B, n = y0.shape
        T = t_eval.shape[1]
        dtype = t_eval.dtype
        device = y0.device
        cols, c, P = self._coefs(y0.dtype if not y0.is_complex() else y0.dtype, device)
        eps = torch.finfo(dtype).eps
        if self.adaptive and self.rtol < 100 * eps:
            warnings.warn(
                f"`rtol`={self.rtol:g} is below 100 × machine epsilon of {dtype} "
                f"({100 * eps:.1e}); the error control cannot reach it. Continuing with "
                f"rtol={100 * eps:.1e}.",
                stacklevel=4,
            )
            rtol = 100 * eps
        else:
            rtol = self.rtol
        atol = self.atol

        # Work in τ = d·t so that every member integrates forward in τ (d = ±1 per member).
        direction = torch.sign(t_eval[:, -1] - t0)
        direction = torch.where(direction == 0, torch.ones_like(direction), direction)
        all_fwd = bool((direction > 0).all())
        if all_fwd:
            F = f
            te = t_eval
            t = t0.clone()
        else:
            d_col = direction[:, None]

            def F(tau: Tensor, y: Tensor, a: Any) -> Tensor:
                return d_col * f(direction * tau, y, a)

            te = t_eval * d_col
            t = t0 * direction
        te = te.contiguous()
        t_end = te[:, -1]

        out = torch.full((B, T + 1, n), float("nan"), dtype=y0.dtype, device=device)  # +1: scratch
        y = y0
        # Points at (or before: not allowed by validation) t0 take y0.
        next_idx = torch.searchsorted(te, t[:, None], right=True).squeeze(1)  # (B,)
        if bool((next_idx > 0).any()):
            first = (torch.arange(T, device=device)[None, :] < next_idx[:, None])[..., None]
            out[:, :T] = torch.where(first, y0[:, None, :], out[:, :T])

        k1 = F(t, y, args)
        n_f0 = 1
        status = torch.zeros(B, dtype=torch.int64, device=device)
        done = t >= t_end
        bad0 = ~torch.isfinite(k1).all(-1)
        if bool(bad0.any()):
            status = torch.where(bad0 & ~done, int(Status.NONFINITE), status)
            done = done | bad0

        span = (t_end - t).clamp_min(0)
        if self.adaptive:
            if self.dt0 is not None:
                dt = torch.full_like(t, self.dt0)
            else:
                dt = self._initial_step(F, t, y, k1, args, rtol, atol)
                n_f0 += 1
            dt = torch.minimum(dt, span.clamp_min(eps))
        else:
            dt = torch.full_like(t, float(self.dt))
        err_prev = torch.ones_like(t)
        # Step-size floor: dt_min, and never below 4 ulp of the largest |t| of the member's span.
        floor = (4 * eps * torch.maximum(t.abs(), t_end.abs())).clamp_min(self.dt_min)
        log = _StepLog(P, keep=dense, budget_bytes=self.output_buffer_bytes)
        n_new_f = s - 1 if tab.fsal else s
        cfg = _IterConfig(
            cols=cols, c=c[:, None], fsal=tab.fsal, adaptive=self.adaptive, rtol=float(rtol),
            atol=float(atol), safety=self.safety, fac_min=self.fac_min, fac_max=self.fac_max,
            alpha=self._alpha, beta=self.beta, inv_sqrt_n=1.0 / math.sqrt(n),
            plain_rejection=(self.safety <= 1.0 and self.beta >= 0.0 and self._alpha > 0.0
                             and self.safety * 1e10 ** (-self._alpha) <= self.fac_min),
        )
        iterate = _compiled_iteration() if self.compile else _iteration
        # Per-iteration masks, summed at the end into the per-member counters (cheaper than
        # updating counters in the loop: every op in this loop is paid once per step).
        active_log: list[Tensor] = []
        accept_log: list[Tensor] = []
        iteration = 0

        while not bool(done.all()):
            if iteration >= self.max_steps:
                # Every active member has attempted exactly `iteration` steps.
                status = torch.where(~done, int(Status.MAX_STEPS), status)
                break
            iteration += 1
            (t_n, y_n, k1_n, dt, err_prev, active, accept, reached, bad, finite, h, y_new, f_new,
             stages) = iterate(F, args, cfg, t, y, k1, dt, err_prev, done, t_end, floor)
            active_log.append(active)
            accept_log.append(accept)
            # Output: log the step; its interpolant is evaluated in batches (see _StepLog).
            log.append(t, h, accept, y, y_new, stages, k1, f_new)
            t, y, k1 = t_n, y_n, k1_n
            if bool(bad.any()):
                # Adaptive: the step size fell below its floor; fixed step: NaN/inf in the step.
                if self.adaptive:
                    code = torch.where(finite, int(Status.DT_UNDERFLOW), int(Status.NONFINITE))
                else:
                    code = torch.full_like(status, int(Status.NONFINITE))
                status = torch.where(bad, code, status)
                done = done | bad
            done = done | reached
            if log.full:
                next_idx = log.flush(out, te, next_idx, t)

        next_idx = log.flush(out, te, next_idx, t)
        if active_log:
            act = torch.stack(active_log, 0).long()
            acc_ = torch.stack(accept_log, 0).long()
            n_acc = acc_.sum(0)
            n_steps = act.sum(0)
        else:
            n_acc = n_steps = torch.zeros(B, dtype=torch.int64, device=device)
        n_rej = n_steps - n_acc
        n_f = n_f0 + n_new_f * n_steps

        stats = {"n_f_evals": n_f, "n_accepted": n_acc, "n_rejected": n_rej, "n_steps": n_acc + n_rej}
        dense_out = None
        if dense:
            dense_out = log.dense_output(direction)
        return out[:, :T], status, stats, dense_out

    def _initial_step(self, F, t, y, f0, args, rtol, atol) -> Tensor:
        """Hairer–Wanner II.4 starting step, per member."""
        n = y.shape[-1]
        scale = atol + rtol * y.abs()
        rms = lambda v: torch.linalg.vector_norm(v / scale, dim=-1) / math.sqrt(n)  # noqa: E731
        d0 = rms(y)
        d1 = rms(f0)
        small = (d0 < 1e-5) | (d1 < 1e-5)
        h0 = torch.where(small, torch.full_like(d0, 1e-6), 0.01 * d0 / d1.clamp_min(1e-300))
        h0 = torch.where(torch.isfinite(h0), h0, torch.full_like(h0, 1e-6))
        y1 = torch.addcmul(y, h0[:, None], f0)
        f1 = F(t + h0, y1, args)
        d2 = rms(f1 - f0) / h0
        q = (self.tableau.error_order or self.tableau.order) + 1
        dmax = torch.maximum(d1, d2)
        h1 = torch.where(
            dmax <= 1e-15,
            torch.maximum(torch.full_like(h0, 1e-6), h0 * 1e-3),
            (0.01 / dmax.clamp_min(1e-300)).pow(1.0 / q),
        )
        h1 = torch.where(torch.isfinite(h1), h1, h0)
        return torch.minimum(100 * h0, h1)


class _IterConfig(NamedTuple):
    """Constants of one solve's step iteration (fixed for the whole solve)."""

    cols: tuple[Tensor, ...]
    c: Tensor  # (s, 1) stage times
    fsal: bool
    adaptive: bool
    rtol: float
    atol: float
    safety: float
    fac_min: float
    fac_max: float
    alpha: float
    beta: float
    inv_sqrt_n: float
    # True when safety <= 1, beta >= 0, alpha > 0 and safety·1e10^-alpha <= fac_min: then a
    # rejected step (err > 1, err_prev <= 1) already gets fac < 1 and a non-finite one
    # (err := 1e10) gets fac_min, so the explicit rules can be skipped (four ops per step).
    plain_rejection: bool


def _iteration(F, args, cfg: _IterConfig, t, y, k1, dt, err_prev, done, t_end, floor):
    """One attempted step for every member, with acceptance and step-size control.

    Pure tensor code (no host synchronisation), so that it can be compiled as one graph.
    Returns the updated ``(t, y, k1, dt, err_prev)``, the masks ``active, accept, reached, bad,
    finite``, and the step data the output needs: ``h, y_new, f_new`` and the stages ``(B, s, n)``.
    """
    active = ~done
    remaining = t_end - t
    # Land exactly on the end time. Frozen members keep their (positive) dt, so no division by
    # zero enters the graph.
    last = active & (dt >= remaining)
    h = torch.where(last, remaining, dt)
    h_col = h[:, None]
    cols = cfg.cols
    s = len(cols)
    # Stage loop: acc[r] accumulates Σ_j M[r, j] k_j for every row r (later stage inputs, the
    # solution weights b and the error weights e) in one fused op per stage.
    acc = cols[0] * k1  # (R, B, n)
    ks = [k1]
    y_stage = y
    t_stage = torch.addcmul(t, cfg.c, h)  # (s, B): every stage's time in one op
    for i in range(1, s):
        y_stage = torch.addcmul(y, h_col, acc[i])
        k = F(t_stage[i], y_stage, args)
        ks.append(k)
        acc = torch.addcmul(acc, cols[i], k)
    t_new = torch.where(last, t_end, t + h)
    if cfg.fsal:
        y_new = y_stage  # a[-1] = b: the last stage input is the new solution
        f_new = ks[-1]
    else:
        y_new = torch.addcmul(y, h_col, acc[s])
        f_new = F(t_new, y_new, args)  # the next step's first stage
    if cfg.adaptive:
        scale = torch.maximum(y.abs(), y_new.abs()) * cfg.rtol + cfg.atol
        en = torch.linalg.vector_norm(h_col * acc[s + 1] / scale, dim=-1) * cfg.inv_sqrt_n
        # NaN/inf in the error (a blow-up inside the step) counts as a rejection.
        finite = torch.isfinite(en)
        en = torch.nan_to_num(en, nan=1e10, posinf=1e10)
        accept = active & (en <= 1.0)
    else:
        finite = torch.isfinite(y_new).all(-1) & torch.isfinite(f_new).all(-1)
        accept = active & finite
    acc_col = accept[:, None]
    y_next = torch.where(acc_col, y_new, y)
    k1_next = torch.where(acc_col, f_new, k1)
    t_next = torch.where(accept, t_new, t)
    reached = accept & last
    if cfg.adaptive:
        # PI controller (Hairer–Wanner II.4, eq. 4.13, with Gustafsson's memory term).
        en_c = en.clamp_min(1e-10)
        fac = (cfg.safety * en_c.pow(-cfg.alpha) * err_prev.pow(cfg.beta)).clamp(cfg.fac_min, cfg.fac_max)
        if not cfg.plain_rejection:
            # After a rejection the step never grows; after a non-finite attempt shrink hard.
            fac = torch.where(accept, fac, torch.where(finite, fac.clamp(max=1.0), cfg.fac_min))
        dt = torch.where(active, h * fac, dt)
        err_prev = torch.where(accept, en_c.clamp_min(1e-4), err_prev)
        bad = active & ~reached & (dt < floor)
    else:
        # A fixed-step member whose step produced NaN/inf cannot retry: it has diverged.
        bad = active & ~finite
    return (t_next, y_next, k1_next, dt, err_prev, active, accept, reached, bad, finite, h, y_new,
            f_new, torch.stack(ks, 1))


_COMPILED: list = []


def _compiled_iteration():
    """``_iteration`` compiled with ``torch.compile`` (created once per process, then cached)."""
    if not _COMPILED:
        _COMPILED.append(torch.compile(_iteration, dynamic=False))
    return _COMPILED[0]


def _interpolate(P: Tensor | None, theta: Tensor, h: Tensor, y0: Tensor, y1: Tensor,
                 K: Tensor | None, f0: Tensor | None, f1: Tensor | None) -> Tensor:
    """A step's interpolant at ``t + θh``.

    ``theta`` (B, m); ``h`` (B,); ``y0, y1, f0, f1`` (B, n); ``K`` (B, s, n) the stages.
    Returns (B, m, n). With the tableau's coefficients ``P`` (s, d):
    ``y0 + h Σ_i K_i Σ_j P[i, j] θ^{j+1}``; without: the cubic Hermite interpolant of
    ``(y0, f0), (y1, f1)`` (Hairer–Nørsett–Wanner II.6).
    """
    if P is not None:
        d = P.shape[1]
        exps = torch.arange(1, d + 1, device=theta.device, dtype=theta.dtype)
        w = theta[..., None].pow(exps) @ P.T  # (B, m, s): weight of each stage at each point
        return torch.baddbmm(y0[:, None, :], w * h[:, None, None], K)
    th = theta[..., None]  # (B, m, 1)
    hc = h[:, None, None]
    y0_, y1_ = y0[:, None, :], y1[:, None, :]
    return (
        (1 - th) * y0_ + th * y1_
        + th * (th - 1) * ((1 - 2 * th) * (y1_ - y0_) + (th - 1) * hc * f0[:, None, :]
                           + th * hc * f1[:, None, :])
    )


class _StepLog:
    """The per-iteration step data, turned into output values in batches.

    Interpolating at the requested times inside every step would cost a dozen small tensor ops
    per step; instead the steps are logged (references only, plus one stack of the stages) and,
    whenever the log holds more than ``budget_bytes`` or the solve ends, every output time inside
    the logged steps is evaluated in one vectorised pass. With ``keep=True`` the log is kept
    whole to serve ``Solution.evaluate`` (dense output).
    """

    def __init__(self, P: Tensor | None, *, keep: bool, budget_bytes: int) -> None:
        self.P = P
        self.keep = keep
        self.budget = budget_bytes
        self.rows: list[tuple[Tensor, ...]] = []
        self.chunks: list[tuple[Tensor, ...]] = []
        self.nbytes = 0

    def append(self, t, h, accept, y, y_new, stages, f0, f1) -> None:
        if self.P is not None:
            row = (t, h, accept, y, y_new, stages)  # stages (B, s, n)
        else:
            row = (t, h, accept, y, y_new, f0, f1)  # Hermite needs only the end derivatives
        self.rows.append(row)
        self.nbytes += sum(x.numel() * x.element_size() for x in row[3:])

    @property
    def full(self) -> bool:
        return self.nbytes > self.budget

    def _stacked(self) -> tuple[Tensor, ...]:
        return tuple(torch.stack(x, 0) for x in zip(*self.rows))  # (I, B, ...)

    def flush(self, out: Tensor, te: Tensor, next_idx: Tensor, t_now: Tensor) -> Tensor:
        """Write every output time in (previous flush, t_now] into ``out``; return the new index."""
        if not self.rows:
            return next_idx
        chunk = self._stacked()
        if self.keep:
            self.chunks.append(chunk)
        self.rows = []
        self.nbytes = 0
        T = te.shape[1]
        hi = torch.searchsorted(te, t_now[:, None], right=True).squeeze(1)  # points <= t_now
        m = int((hi - next_idx).max()) if hi.numel() else 0
        if m <= 0:
            return torch.maximum(hi, next_idx)
        B = te.shape[0]
        idx = next_idx[:, None] + torch.arange(m, device=te.device)  # (B, m)
        valid = idx < hi[:, None]
        tau = te.gather(1, idx.clamp(max=T - 1))  # (B, m)
        val = _evaluate_steps(self.P, chunk, tau)  # (B, m, n)
        ar = torch.arange(B, device=te.device)[:, None].expand(B, m)
        # Invalid slots write to the scratch column T, so the real indices are unique per row
        # (index_put_ with repeated indices has no defined winner).
        out.index_put_((ar, torch.where(valid, idx, T)), val)
        return torch.maximum(hi, next_idx)

    def dense_output(self, direction: Tensor) -> "_DenseOutput":
        chunks = self.chunks
        cat = tuple(torch.cat(parts, 0) for parts in zip(*chunks))
        return _DenseOutput(self.P, cat, direction)


def _evaluate_steps(P: Tensor | None, steps: tuple[Tensor, ...], tau: Tensor) -> Tensor:
    """Evaluate the logged steps' interpolant at times ``tau`` (B, Q) (τ-space); (B, Q, n).

    For each member and query, the step used is the last accepted step starting at or before the
    query (accepted steps tile each member's span without gaps).
    """
    t, h, acc = steps[0], steps[1], steps[2]  # (I, B)
    st = t.T  # (B, I)
    ok_starts = torch.where(acc.T, st, torch.full_like(st, float("inf")))
    # Accepted starts increase strictly per member; rejected attempts get +inf and sort last.
    order = torch.argsort(ok_starts, dim=1, stable=True)
    sorted_starts = torch.gather(ok_starts, 1, order).contiguous()
    pos = torch.searchsorted(sorted_starts, tau.contiguous(), right=True) - 1
    n_ok = acc.sum(0)  # (B,)
    pos = torch.minimum(pos.clamp(min=0), (n_ok - 1).clamp_min(0)[:, None])
    it = torch.gather(order, 1, pos)  # (B, Q) iteration index of the step
    B, Q = tau.shape
    bidx = torch.arange(B, device=tau.device)[:, None].expand(B, Q)
    it_f, b_f = it.reshape(-1), bidx.reshape(-1)  # one (step, member) pair per query
    h_q = h[it_f, b_f]
    theta = (tau.reshape(-1) - t[it_f, b_f]) / h_q
    y0 = steps[3][it_f, b_f]
    y1 = steps[4][it_f, b_f]
    if P is not None:
        K = steps[5][it_f, b_f]  # (B*Q, s, n)
        val = _interpolate(P, theta[:, None], h_q, y0, y1, K, None, None)
    else:
        val = _interpolate(None, theta[:, None], h_q, y0, y1, None, steps[5][it_f, b_f], steps[6][it_f, b_f])
    return val.reshape(B, Q, -1)


class _DenseOutput:
    """Dense output over a whole solve: the logged steps plus each member's direction."""

    def __init__(self, P: Tensor | None, steps: tuple[Tensor, ...], direction: Tensor) -> None:
        self.P = P
        self.steps = steps
        self.direction = direction  # (B,)
        self.batch_shape: tuple[int, ...] = (steps[0].shape[1],)

    def with_batch_shape(self, batch) -> "_DenseOutput":
        self.batch_shape = tuple(batch)
        return self

    def __call__(self, tq: Tensor | float) -> Tensor:
        t, h, acc = self.steps[0], self.steps[1], self.steps[2]
        B = t.shape[1]
        tq = torch.as_tensor(tq, dtype=t.dtype, device=t.device)
        scalar = tq.ndim == 0
        q = tq.reshape(1) if scalar else tq
        q = q.expand(B, q.shape[0]) if q.ndim == 1 else q.reshape(B, q.shape[-1])
        tau = q * self.direction[:, None]  # (B, Q) in τ-space
        big = torch.full_like(t, float("inf"))
        start = torch.where(acc, t, big).amin(0)  # (B,) first accepted start
        end = torch.where(acc, t + h, -big).amax(0)  # (B,) last reached time
        slack = 1e-9 * (end - start).abs()[:, None]
        if bool(((tau < start[:, None] - slack) | (tau > end[:, None] + slack)).any()):
            raise ValueError(
                "`t` passed to Solution.evaluate lies outside the integrated span of some members; "
                "query only times between t0 and each member's last reached time."
            )
        val = _evaluate_steps(self.P, self.steps, tau)
        val = val.reshape(*self.batch_shape, q.shape[1], val.shape[-1])
        return val[..., 0, :] if scalar else val
