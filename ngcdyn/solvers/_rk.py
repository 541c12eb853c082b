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
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import check_nonnegative_int, check_positive, describe
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
        if self.adaptive:
            eps = np.finfo(np.float32).eps
            if self.rtol < 100 * eps:
                pass  # float64-specific warning is issued at solve time, where the dtype is known
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
        c_list = [float(x) for x in tab.c]
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
        ar = torch.arange(B, device=device)
        arange_T = torch.arange(T, device=device)

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
        dense_rec = _DenseRecorder(tab, P) if dense else None
        fsal = tab.fsal
        adaptive = self.adaptive
        safety, fac_min, fac_max, alpha, beta = (
            self.safety, self.fac_min, self.fac_max, self._alpha, self.beta)
        n_new_f = s - 1 if fsal else s
        # Per-iteration masks, summed at the end into the per-member counters (cheaper than
        # updating counters in the loop: every op in this loop is paid once per step).
        active_log: list[Tensor] = []
        accept_log: list[Tensor] = []
        iteration = 0

        while not bool(done.all()):
            active = ~done
            if iteration >= self.max_steps:
                # Every active member has attempted exactly `iteration` steps.
                status = torch.where(active, int(Status.MAX_STEPS), status)
                break
            iteration += 1
            remaining = t_end - t
            # Land exactly on the end time. Frozen members keep their (positive) dt, so no
            # division by zero enters the graph.
            last = active & (dt >= remaining)
            h = torch.where(last, remaining, dt)
            h_col = h[:, None]
            # Stage loop: acc[r] accumulates Σ_j M[r, j] k_j for every row r (later stage inputs,
            # the solution weights b and the error weights e) in one fused op per stage.
            acc = cols[0] * k1  # (R, B, n)
            ks = [k1]
            y_stage = y
            for i in range(1, s):
                y_stage = torch.addcmul(y, h_col, acc[i])
                k = F(t + c_list[i] * h, y_stage, args)
                ks.append(k)
                acc = torch.addcmul(acc, cols[i], k)
            t_new = torch.where(last, t_end, t + h)
            if fsal:
                y_new = y_stage  # a[-1] = b: the last stage input is the new solution
                f_new = ks[-1]
            else:
                y_new = torch.addcmul(y, h_col, acc[s])
                f_new = F(t_new, y_new, args)  # the next step's first stage
            if adaptive:
                scale = torch.maximum(y.abs(), y_new.abs()).mul_(rtol).add_(atol)
                en = torch.linalg.vector_norm(h_col * acc[s + 1] / scale, dim=-1) / math.sqrt(n)
                # NaN/inf in the error (a blow-up inside the step) counts as a rejection.
                finite = torch.isfinite(en)
                en = torch.where(finite, en, 1e10)
                accept = active & (en <= 1.0)
            else:
                finite = torch.isfinite(y_new).all(-1) & torch.isfinite(f_new).all(-1)
                accept = active & finite
            active_log.append(active)
            accept_log.append(accept)

            # ---- dense output at the requested points inside (t, t_new]
            hi = torch.searchsorted(te, t_new[:, None], right=True).squeeze(1)
            hi = torch.where(accept, hi, next_idx)
            m = int((hi - next_idx).max())
            if m > 0:
                # All points of this step at once: (B, m) query indices, masked per member.
                idx = next_idx[:, None] + arange_T[:m]  # (B, m)
                valid = idx < hi[:, None]  # (B, m)
                theta = (te.gather(1, idx.clamp(max=T - 1)) - t[:, None]) / h_col  # (B, m)
                val = _interpolate(P, theta, h, y, y_new, torch.stack(ks, 1), k1, f_new)
                # Invalid slots write to the scratch column T, so the real indices are unique per
                # row (index_put_ with repeated indices has no defined winner). In place: copying
                # the whole (B, T, n) buffer per step would dominate the cost.
                out.index_put_((ar[:, None].expand(B, m), torch.where(valid, idx, T)), val)
                next_idx = hi
            if dense_rec is not None:
                dense_rec.record(t, h, accept, y, y_new, ks, k1, f_new)

            # ---- state update
            acc_col = accept[:, None]
            y = torch.where(acc_col, y_new, y)
            k1 = torch.where(acc_col, f_new, k1)
            t = torch.where(accept, t_new, t)
            reached = accept & last
            if adaptive:
                # PI controller (Hairer–Wanner II.4, eq. 4.13 with Gustafsson's memory term).
                en_c = en.clamp_min(1e-10)
                fac = (safety * en_c.pow(-alpha) * err_prev.pow(beta)).clamp(fac_min, fac_max)
                # After a rejection the step never grows; after a non-finite attempt shrink hard.
                fac = torch.where(accept, fac, torch.where(finite, fac.clamp(max=1.0), fac_min))
                dt = torch.where(active, h * fac, dt)
                err_prev = torch.where(accept, en_c.clamp_min(1e-4), err_prev)
                tiny = active & ~reached & (dt < floor)
                if bool(tiny.any()):
                    code = torch.where(finite, int(Status.DT_UNDERFLOW), int(Status.NONFINITE))
                    status = torch.where(tiny, code, status)
                    done = done | tiny
            else:
                # A fixed-step member whose step produced NaN/inf cannot retry: it has diverged.
                fail = active & ~finite
                if bool(fail.any()):
                    status = torch.where(fail, int(Status.NONFINITE), status)
                    done = done | fail
            done = done | reached

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
        if dense_rec is not None:
            dense_out = dense_rec.finish(direction, all_fwd)
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


def _interpolate(P: Tensor | None, theta: Tensor, h: Tensor, y0: Tensor, y1: Tensor, K: Tensor,
                 f0: Tensor, f1: Tensor) -> Tensor:
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


class _DenseRecorder:
    """Stores each iteration's step data so the interpolant can be evaluated afterwards."""

    def __init__(self, tab: ButcherTableau, P) -> None:
        self.tab, self.P = tab, P
        self.rows: list[tuple[Tensor, ...]] = []

    def record(self, t, h, accept, y, y_new, ks, f0, f1) -> None:
        self.rows.append((t, h, accept, y, y_new, torch.stack(ks, 1), f0, f1))

    def finish(self, direction: Tensor, all_fwd: bool) -> "_DenseOutput":
        t, h, acc, y, y1, K, f0, f1 = (torch.stack(x, 0) for x in zip(*self.rows))  # (I, B, ...)
        return _DenseOutput(self.tab, self.P, t, h, acc, y, y1, K, f0, f1, direction)


class _DenseOutput:
    def __init__(self, tab, P, t, h, acc, y, y1, K, f0, f1, direction):
        self.tab, self.P = tab, P
        self.t, self.h, self.acc = t, h, acc  # (I, B)
        self.y, self.y1, self.f0, self.f1 = y, y1, f0, f1  # (I, B, n)
        self.K = K  # (I, B, s, n)
        self.direction = direction  # (B,)
        self.batch_shape: tuple[int, ...] = (t.shape[1],)

    def with_batch_shape(self, batch) -> "_DenseOutput":
        self.batch_shape = tuple(batch)
        return self

    def __call__(self, tq: Tensor | float) -> Tensor:
        B = self.t.shape[1]
        n = self.y.shape[-1]
        tq = torch.as_tensor(tq, dtype=self.t.dtype, device=self.t.device)
        scalar = tq.ndim == 0
        q = tq.reshape(1) if scalar else tq
        if q.ndim == 1:
            q = q.expand(B, q.shape[0])
        else:
            q = q.reshape(B, q.shape[-1])
        tau = q * self.direction[:, None]  # (B, Q) in τ-space
        # The last accepted step whose start is <= τ. Accepted starts increase strictly per member;
        # rejected attempts get +inf and so sort last.
        st = self.t.T  # (B, I)
        ok_starts = torch.where(self.acc.T, st, torch.full_like(st, float("inf")))
        order = torch.argsort(ok_starts, dim=1, stable=True)
        sorted_starts = torch.gather(ok_starts, 1, order).contiguous()
        pos = torch.searchsorted(sorted_starts, tau.contiguous(), right=True) - 1
        n_ok = self.acc.sum(0)  # (B,)
        pos = pos.clamp(min=0)
        pos = torch.minimum(pos, (n_ok - 1).clamp_min(0)[:, None])
        it = torch.gather(order, 1, pos)  # (B, Q) iteration index
        bidx = torch.arange(B, device=q.device)[:, None].expand_as(it)
        t0 = self.t[it, bidx]
        h = self.h[it, bidx]
        theta = (tau - t0) / h
        end = t0 + h
        outside = (tau < self.t[0][:, None] - 1e-12 * h.abs()) | (tau > end + 1e-9 * h.abs())
        if bool(outside.any()):
            raise ValueError(
                "`t` passed to Solution.evaluate lies outside the integrated span of some members; "
                "query only times between t0 and each member's last reached time."
            )
        Q = q.shape[1]
        it_f, b_f = it.reshape(-1), bidx.reshape(-1)  # one (step, member) pair per query
        val = _interpolate(
            self.P, theta.reshape(-1, 1), h.reshape(-1), self.y[it_f, b_f], self.y1[it_f, b_f],
            self.K[it_f, b_f], self.f0[it_f, b_f], self.f1[it_f, b_f],
        )  # (B*Q, 1, n)
        val = val.reshape(*self.batch_shape, Q, n)
        return val[..., 0, :] if scalar else val
