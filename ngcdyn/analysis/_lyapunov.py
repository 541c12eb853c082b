"""Lyapunov exponents of flows and maps: QR re-orthonormalisation, two trajectories, Kaplan–Yorke.

The Lyapunov exponents of a trajectory are the asymptotic exponential growth rates of
perturbations: with ``Φ(t)`` the fundamental matrix of the variational equation (flows) or the
product of Jacobians (maps), ``λ_i = lim (1/t) log σ_i(Φ(t))``. The QR method ("H2" of Geist,
Parlitz & Lauterborn 1990, after Benettin et al. 1980) evolves ``k`` orthonormal tangent vectors
``Q_j`` over renormalisation intervals of length ``Δ``, factors the evolved vectors as
``Φ_j Q_j = Q_{j+1} R_j`` (``R_j`` upper triangular with a positive diagonal) and averages

.. math::

    \\lambda_i \\approx \\frac{1}{N\\Delta} \\sum_{j=0}^{N-1} \\log (R_j)_{ii} .

This is exact bookkeeping, not an approximation:
``Φ_{N-1}\\cdots Φ_0 Q_0 = Q_N R_{N-1}\\cdots R_0``, so the sum of logs is the log of the
diagonal of the QR factor of the full product; renormalising only keeps the numbers representable.
See ``theory/10_lyapunov_qr.md``.

Every estimator returns a :class:`LyapunovResult` with the running estimate (``history``), the
finite-time exponents of every interval and a batch-means standard error, so that convergence can
be judged.

References
----------
.. [B80] G. Benettin, L. Galgani, A. Giorgilli, J.-M. Strelcyn, "Lyapunov characteristic exponents
   for smooth dynamical systems and for Hamiltonian systems; a method for computing all of them.
   Part 1: theory; Part 2: numerical application", Meccanica 15:9–20 and 21–30, 1980.
.. [G90] K. Geist, U. Parlitz, W. Lauterborn, "Comparison of different methods for computing
   Lyapunov exponents", Prog. Theor. Phys. 83(5):875–893, 1990.
.. [KY79] J. L. Kaplan, J. A. Yorke, "Chaotic behavior of multidimensional difference equations",
   in *Functional Differential Equations and Approximation of Fixed Points*, Lecture Notes in
   Mathematics 730, Springer, 1979, pp. 204–227.
.. [FP89] H. Flyvbjerg, H. G. Petersen, "Error estimates on averages of correlated data",
   J. Chem. Phys. 91:461, 1989 (batch means for correlated series).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .._validation import check_nonnegative_int, check_positive, check_state, describe
from ._tangent import (
    augmented_field,
    check_jacobian_shape,
    jvp_columns,
    qr_positive,
    random_orthonormal,
    resolve_flow_jacobian,
    resolve_map_jacobian,
)

__all__ = [
    "LyapunovResult",
    "DivergenceError",
    "lyapunov_spectrum",
    "lyapunov_spectrum_map",
    "max_lyapunov",
    "max_lyapunov_map",
    "kaplan_yorke_dimension",
]


# --------------------------------------------------------------------------------------------
# Result and error types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LyapunovResult:
    """Lyapunov exponents with their convergence diagnostics.

    Attributes
    ----------
    exponents : (*batch, k)
        The estimates over the whole measured run, in the order of the tangent vectors (which the
        QR method sorts into descending order as the run converges). Flows: per unit time; maps:
        per iteration. NaN for members that failed (see ``failed``).
    stderr : (*batch, k)
        Standard error of ``exponents`` by batch means: the run is cut into ``n_blocks``
        contiguous blocks of renormalisation intervals, each block gives its own estimate, and
        ``stderr = std(block estimates, ddof=1) / sqrt(n_blocks)`` (Flyvbjerg & Petersen 1989).
        NaN when fewer than two blocks were possible (a warning says so).
    history : (*batch, N, k)
        The running estimate after each of the ``N`` renormalisations: ``history[..., -1, :]``
        equals ``exponents``. Plot it against ``times`` to see convergence.
    times : (N,)
        Flows: the time at the end of each renormalisation interval; maps: the number of measured
        iterations at each renormalisation.
    finite_time : (*batch, N, k)
        The finite-time exponents of each renormalisation interval (log growth / interval length);
        their duration-weighted mean is ``exponents``.
    failed : (*batch,) bool
        Members whose trajectory or tangent vectors failed (only with ``on_failure="nan"``).
    settings : dict
        The settings the estimate was made with (method, k, times, Jacobian path, solver, seed).

    See also
    --------
    lyapunov_spectrum, lyapunov_spectrum_map, max_lyapunov, kaplan_yorke_dimension
    """

    exponents: Tensor
    stderr: Tensor
    history: Tensor
    times: Tensor
    finite_time: Tensor
    failed: Tensor
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_shape(self) -> torch.Size:
        """The batch shape ``*batch``."""
        return self.exponents.shape[:-1]

    def windowed(self, window: int) -> Tensor:
        """Finite-time exponents over windows of ``window`` consecutive renormalisation intervals.

        Returns ``(*batch, N // window, k)``: the duration-weighted mean of ``finite_time`` over
        each window (a trailing incomplete window is dropped).
        """
        w = check_nonnegative_int("window", window, minimum=1)
        N = self.finite_time.shape[-2]
        m = N // w
        if m == 0:
            raise ValueError(
                f"`window` must be at most the number of renormalisation intervals N={N}, got {w}. "
                "Use a smaller window or a longer run."
            )
        dur = self.settings["durations"][: m * w].reshape(m, w)  # (m, w)
        ft = self.finite_time[..., : m * w, :]
        ft = ft.reshape(*ft.shape[:-2], m, w, ft.shape[-1])  # (*batch, m, w, k)
        return (ft * dur[..., None]).sum(-2) / dur.sum(-1)[:, None]

    def __repr__(self) -> str:
        ex = self.exponents
        body = (
            f"exponents={ex.detach().cpu().numpy().round(4).tolist()}"
            if ex.numel() <= 12
            else f"exponents=tensor(shape={tuple(ex.shape)})"
        )
        return (
            f"LyapunovResult({body}, n_renorm={self.times.shape[0]}, "
            f"failed={int(self.failed.sum())}/{self.failed.numel()})"
        )


class DivergenceError(RuntimeError):
    """Raised when trajectories or tangent vectors of some batch members fail.

    A member fails when its solve fails (the solver's status), its state or tangent vectors
    become NaN/inf, or its tangent vectors over- or underflow within one renormalisation interval.

    Attributes
    ----------
    failed : list of tuple
        Multi-indices of the failed members.
    interval : tuple of float
        The renormalisation interval (start, end) in which they failed.
    """

    def __init__(self, message: str, failed: list[tuple[int, ...]], interval: tuple[float, float]):
        super().__init__(message)
        self.failed = failed
        self.interval = interval


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _check_nonnegative(name: str, value: Any, fix: str = "") -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be a real number >= 0, got {describe(value)}. {fix}".strip()
        ) from None
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"`{name}` must be finite and >= 0, got {v!r}. {fix}".strip())
    return v


def _check_real_state(name: str, y: Any) -> Tensor:
    y = check_state(name, y)
    if y.is_complex():
        raise TypeError(
            f"`{name}` must be real (float32 or float64), got dtype={y.dtype}. Split a complex "
            "state into real and imaginary parts."
        )
    return y


def _check_on_failure(on_failure: Any) -> str:
    if on_failure not in ("raise", "nan"):
        raise ValueError(
            f"`on_failure` must be 'raise' (stop with a DivergenceError naming the members) or "
            f"'nan' (mark them in `failed` and return NaN for them), got {on_failure!r}."
        )
    return on_failure


def _resolve_k(k: Any, n: int) -> int:
    if k is None:
        return n
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(
            f"`k` must be an integer 1 <= k <= n (the number of exponents), got {describe(k)}. "
            "Pass k=None for the full spectrum."
        )
    if k < 1 or k > n:
        raise ValueError(
            f"`k` must satisfy 1 <= k <= n = {n} (a state of size n has n exponents), got k={k}. "
            f"Pass k=None for all {n} exponents, or a smaller k for the leading ones."
        )
    return k


def _initial_frame(q0: Any, k: Any, y0: Tensor, seed: Any) -> tuple[Tensor, int]:
    """Orthonormal initial tangent vectors ``(*batch, n, k)`` and k."""
    n = y0.shape[-1]
    batch = y0.shape[:-1]
    seed = check_nonnegative_int("seed", seed)
    if q0 is None:
        k = _resolve_k(k, n)
        Q = random_orthonormal(n, k, seed=seed, dtype=y0.dtype, device=y0.device)
        return Q.expand(*batch, n, k).clone(), k
    if not isinstance(q0, Tensor) or q0.ndim < 2 or q0.shape[-2] != n:
        raise ValueError(
            f"`q0` must be a tensor of initial tangent vectors as columns, shape (n, k) or "
            f"(*batch, n, k) with n={n}, got {describe(q0)}. Pass q0=None for a random frame."
        )
    if k is not None and q0.shape[-1] != k:
        raise ValueError(
            f"`k`={k} does not match the number of columns of `q0` ({q0.shape[-1]}); drop `k` "
            "or pass q0 with k columns."
        )
    k = _resolve_k(q0.shape[-1], n)
    if q0.dtype != y0.dtype or q0.device != y0.device:
        raise TypeError(
            f"`q0` has dtype={q0.dtype} on {q0.device} but `y0` has dtype={y0.dtype} on "
            f"{y0.device}; convert it with q0.to(y0)."
        )
    try:
        Qb = q0.expand(*batch, n, k)
    except RuntimeError:
        raise ValueError(
            f"`q0` batch shape {tuple(q0.shape[:-2])} does not broadcast against `y0` batch shape "
            f"{tuple(batch)}."
        ) from None
    Q, r = qr_positive(Qb)
    scale = r.amax(-1, keepdim=True)
    tiny = r <= 1e3 * torch.finfo(r.dtype).eps * scale
    if not bool(torch.isfinite(r).all()) or bool(tiny.any()):
        raise ValueError(
            "`q0` must have linearly independent, finite columns (they are orthonormalised by QR), "
            f"but its columns are (numerically) dependent: |diag R| = {describe(r)}. Pass "
            "independent vectors or q0=None."
        )
    return Q, k


def _resolve_solver(solver: Any, dtype: torch.dtype) -> Any:
    # Imported here: analysis code receives a solver object and never imports a concrete solver
    # module; the default is built through the public namespace (issue 3).
    from .. import solvers as _solvers

    if solver is None:
        eps = torch.finfo(dtype).eps
        rtol = max(1e-8, 100 * eps)
        return _solvers.RungeKutta("dopri5", rtol=rtol, atol=rtol * 1e-2)
    if isinstance(solver, str):
        raise TypeError(
            f"`solver` must be a solver object, got the string {solver!r}. Build one, e.g. "
            f"ngcdyn.RungeKutta({solver!r}, rtol=1e-8, atol=1e-10) (or dt=... for a fixed step)."
        )
    if not isinstance(solver, _solvers.AbstractSolver):
        raise TypeError(
            f"`solver` must be an ngcdyn.AbstractSolver (e.g. ngcdyn.RungeKutta('dopri5')), got "
            f"{type(solver).__name__}."
        )
    return solver


def _float_segments(total: float, step: float) -> list[float]:
    """Cut ``total`` into intervals of length ``step`` and a shorter remainder (if any)."""
    if total <= 0:
        return []
    n_full = int(math.floor(total / step * (1 + 1e-12)))
    segs = [step] * n_full
    rem = total - n_full * step
    if rem > 1e-9 * max(total, step) or not segs:
        segs.append(rem)
    return segs


def _int_segments(total: int, step: int) -> list[int]:
    segs = [step] * (total // step)
    if total % step:
        segs.append(total % step)
    return segs


def _members(mask: Tensor) -> list[tuple[int, ...]]:
    return [tuple(i) for i in mask.nonzero().tolist()]


def _solver_reasons(sol: Any, bad_solve: Tensor) -> dict[tuple[int, ...], str]:
    """The solver's message for each member whose solve failed."""
    if not bool(bad_solve.any()):
        return {}
    return {m: f"solver: {msg}" for m, msg in sol.messages().items()}


def _check_output_shape(name: str, out: Any, y: Tensor, what: str) -> None:
    if not isinstance(out, Tensor) or out.shape != y.shape:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"`{name}` must return {what} with the shape of its input state (*batch, n) = "
            f"{tuple(y.shape)}, got {shape}. Its Jacobian must be square (n x n) for Lyapunov "
            "exponents to be defined. If the system has batched parameters, give the initial "
            "state the same batch shape (e.g. y0.expand(*batch, n))."
        )


# --------------------------------------------------------------------------------------------
# Accumulation of log growth factors, failures and the statistics
# --------------------------------------------------------------------------------------------


class _Accumulator:
    """Collects per-interval log growth factors; handles failures; builds the result."""

    def __init__(self, batch: torch.Size, k: int, like: Tensor, on_failure: str, where: str,
                 length_names: str):
        self.batch = batch
        self.k = k
        self.like = like
        self.on_failure = on_failure
        self.where = where
        self.length_names = length_names  # e.g. "`t_total` / `dt_renorm`"
        self.logs: list[Tensor] = []
        self.durations: list[float] = []
        self.ends: list[float] = []
        self.failed = torch.zeros(batch, dtype=torch.bool, device=like.device)

    def fail(self, bad: Tensor, reasons: dict[tuple[int, ...], str], interval: tuple[float, float],
             default_reason: str) -> None:
        """Record newly failed members; raise with ``on_failure='raise'``."""
        new = bad & ~self.failed
        if not bool(new.any()):
            return
        members = _members(new)
        if self.on_failure == "raise":
            lines = [f"  member {m}: {reasons.get(m, default_reason)}" for m in members[:10]]
            more = "" if len(members) <= 10 else f"\n  ... and {len(members) - 10} more"
            raise DivergenceError(
                f"{self.where}: {len(members)} of {max(1, self.failed.numel())} batch member(s) "
                f"failed in the renormalisation interval [{interval[0]:.6g}, {interval[1]:.6g}]:\n"
                + "\n".join(lines) + more
                + "\nNo exponent is returned for a diverging trajectory. Fix the model or its "
                "parameters for these members, shorten the run, or pass on_failure='nan' to get "
                "the others (the failed ones are then NaN and flagged in `result.failed`).",
                members,
                interval,
            )
        self.failed = self.failed | new

    def add(self, logr: Tensor, duration: float, end: float) -> None:
        # Failed members contribute zeros here; they are set to NaN in `finish`.
        self.logs.append(torch.where(self.failed.unsqueeze(-1), torch.zeros_like(logr), logr))
        self.durations.append(duration)
        self.ends.append(end)

    def finish(self, n_blocks: int, settings: dict[str, Any], stacklevel: int,
               times_dtype: torch.dtype | None = None) -> LyapunovResult:
        like = self.like
        logs = torch.stack(self.logs, dim=-2)  # (*batch, N, k)
        N = logs.shape[-2]
        dur = torch.tensor(self.durations, dtype=like.dtype, device=like.device)  # (N,)
        times = torch.tensor(self.ends, dtype=times_dtype or like.dtype, device=like.device)
        history = logs.cumsum(-2) / dur.cumsum(0).unsqueeze(-1)  # (*batch, N, k)
        finite_time = logs / dur.unsqueeze(-1)
        exponents = history[..., -1, :]

        n_eff = min(n_blocks, N)
        if n_eff < n_blocks or n_eff < 2:
            if n_eff < 2:
                consequence = "`stderr` is NaN (a standard error needs at least two blocks)"
            else:
                consequence = f"`stderr` is computed from {n_eff} blocks instead"
            warnings.warn(
                f"{self.where}: `n_blocks`={n_blocks} needs at least max(2, n_blocks) "
                f"renormalisation intervals, but the run has {N}; {consequence}. Increase "
                f"{self.length_names} or lower `n_blocks` (>= 2).",
                UserWarning,
                stacklevel=stacklevel,
            )
        if n_eff >= 2:
            sizes = [len(c) for c in torch.tensor_split(torch.arange(N), n_eff)]
            block_id = torch.repeat_interleave(
                torch.arange(n_eff, device=like.device),
                torch.tensor(sizes, device=like.device),
            )  # (N,)
            block_logs = logs.new_zeros(*logs.shape[:-2], n_eff, self.k)
            block_logs = block_logs.index_add_(-2, block_id, logs)
            block_dur = dur.new_zeros(n_eff).index_add_(0, block_id, dur)
            block_means = block_logs / block_dur.unsqueeze(-1)  # (*batch, n_eff, k)
            stderr = block_means.std(dim=-2, correction=1) / math.sqrt(n_eff)
        else:
            stderr = torch.full_like(exponents, float("nan"))

        if bool(self.failed.any()):
            nan = float("nan")
            fm = self.failed
            exponents = exponents.masked_fill(fm.unsqueeze(-1), nan)
            stderr = stderr.masked_fill(fm.unsqueeze(-1), nan)
            history = history.masked_fill(fm[..., None, None], nan)
            finite_time = finite_time.masked_fill(fm[..., None, None], nan)
        settings = dict(settings)
        settings["n_blocks_used"] = n_eff
        settings["durations"] = dur
        return LyapunovResult(exponents, stderr, history, times, finite_time, self.failed, settings)


# --------------------------------------------------------------------------------------------
# Flows: QR method
# --------------------------------------------------------------------------------------------


def lyapunov_spectrum(
    f: Callable,
    y0: Tensor,
    *,
    t_total: float,
    k: int | None = None,
    dt_renorm: float = 1.0,
    t_transient: float = 0.0,
    solver: Any = None,
    args: Any = None,
    jacobian: Any = None,
    n_blocks: int = 10,
    t0: float = 0.0,
    q0: Tensor | None = None,
    seed: int = 0,
    on_failure: str = "raise",
) -> LyapunovResult:
    """Lyapunov spectrum (full or the leading ``k``) of a flow by QR re-orthonormalisation.

    For ``dy/dt = f(t, y)``, integrate the state with ``k`` tangent vectors
    ``dQ/dt = J(t, y) Q`` over intervals of length ``Δ = dt_renorm``, re-orthonormalise
    ``Q R = Q(t + Δ)`` (``diag R > 0``) and average the logs:

    .. math::

        \\lambda_i = \\frac{1}{T} \\sum_{j} \\log R^{(j)}_{ii}, \\qquad T = \\texttt{t\\_total}.

    This is the QR method "H2" of Geist, Parlitz & Lauterborn (1990) [G90]_, after Benettin et al.
    (1980) [B80]_. ``J Q`` comes from an analytic Jacobian when available, otherwise from
    forward-mode autodiff (``torch.func.jvp`` per column, batched with ``torch.func.vmap``).

    Parameters
    ----------
    f
        Vector field ``f(t, y, args) -> dy/dt``, ``y`` of shape ``(*batch, n)``.
    y0 : (*batch, n)
        Initial states; every batch member is an independent system (the batch flows through the
        solve and the QR factorisations).
    t_total
        Measured time ``T`` (after the transient), > 0.
    k
        Number of exponents, ``1 <= k <= n``; default: all ``n``.
    dt_renorm
        Renormalisation interval ``Δ`` > 0 (default 1.0, as in ChaosTools). Keep
        ``(λ_1 - λ_k) Δ`` well below the dtype's log range (~700 in float64, ~80 in float32):
        tangent vectors grow by ``e^{λ Δ}`` between renormalisations. The relative error of an
        exponent is about ``(rtol + atol e^{-λ_k Δ}) e^{(λ_1 - λ_k) Δ} / Δ``: a shrinking
        tangent vector is resolved only to the solver's ``atol``, so keep ``|λ_k| Δ`` to a few
        units when negative exponents matter. The last interval is shortened if ``Δ`` does not
        divide ``T``.
    t_transient
        Time integrated first and discarded (default 0): the state relaxes onto the attractor
        and the tangent vectors align with the Oseledets directions (they are evolved and
        renormalised during the transient too, as in ChaosTools).
    solver
        An :class:`ngcdyn.AbstractSolver`; default ``ngcdyn.RungeKutta("dopri5", rtol=1e-8,
        atol=1e-10)`` (``rtol = 100 eps`` in float32). The error control acts on the state and the
        tangent vectors together.
    args
        Passed to ``f`` unchanged.
    jacobian
        ``None``: the analytic Jacobian of an :class:`~ngcdyn.systems.AbstractVectorField` with
        ``has_analytic_jacobian``, else autodiff; ``"autodiff"``: always JVPs; or a callable
        ``jacobian(t, y) -> (*batch, n, n)`` (close over ``args`` if it needs them).
    n_blocks
        Number of blocks for the batch-means standard error (default 10).

    Other Parameters
    ----------------
    t0
        Initial time (matters for non-autonomous ``f``).
    q0 : (n, k) or (*batch, n, k), optional
        Initial tangent vectors (orthonormalised); default a random orthonormal frame from ``seed``.
    seed
        Seed of the default initial frame.
    on_failure
        ``"raise"`` (default): a :class:`DivergenceError` names the members whose trajectory fails;
        ``"nan"``: those members are flagged in ``result.failed`` and their numbers are NaN.

    Returns
    -------
    LyapunovResult
        ``exponents`` and ``stderr`` of shape ``(*batch, k)``, ``history`` and ``finite_time``
        ``(*batch, N, k)``, ``times (N,)`` with N the number of renormalisations.

    Raises
    ------
    ValueError
        ``k > n``; ``t_total`` or ``dt_renorm`` not > 0; ``t_transient < 0``; ``f`` or ``jacobian``
        returning a non-square Jacobian (an output of another shape than ``y``).
    TypeError
        A solver that is not a solver object; an unknown ``jacobian`` option.
    DivergenceError
        A member's trajectory fails (with ``on_failure="raise"``).

    Warns
    -----
    UserWarning
        When the run has fewer renormalisation intervals than ``n_blocks`` (the standard error
        uses fewer blocks, or is NaN below two).

    Notes
    -----
    The exponents come out in the order of the tangent vectors, which the QR method sorts into
    descending order as the run converges; they are not re-sorted. For a linear flow
    ``dy/dt = A y`` they converge to the real parts of the eigenvalues of ``A`` with an ``O(1/T)``
    error; for any flow their sum is the time average of ``tr J`` (Liouville). See
    ``theory/10_lyapunov_qr.md``.

    References
    ----------
    .. [1] G. Benettin, L. Galgani, A. Giorgilli, J.-M. Strelcyn, Meccanica 15:9–30, 1980.
    .. [2] K. Geist, U. Parlitz, W. Lauterborn, Prog. Theor. Phys. 83:875–893, 1990.

    See also
    --------
    lyapunov_spectrum_map : the same for maps.
    max_lyapunov : the largest exponent from two nearby trajectories.
    kaplan_yorke_dimension : the dimension estimate from a spectrum.
    conditional_lyapunov : exponents of an input-driven flow.

    Examples
    --------
    A linear flow: the exponents are the real parts of the eigenvalues, here 0.1 and -0.4.

    >>> import torch
    >>> from ngcdyn.analysis import lyapunov_spectrum
    >>> A = torch.tensor([[0.1, 0.0], [0.0, -0.4]], dtype=torch.float64)
    >>> res = lyapunov_spectrum(lambda t, y, a: y @ A.T, torch.ones(2, dtype=torch.float64),
    ...                         t_total=20.0, t_transient=10.0, jacobian=lambda t, y: A)
    >>> res.exponents.round(decimals=3).tolist()
    [0.1, -0.4]
    """
    where = "lyapunov_spectrum"
    y0 = _check_real_state("y0", y0)
    return _qr_flow(
        f, y0, t_total=t_total, k=k, dt_renorm=dt_renorm, t_transient=t_transient, solver=solver,
        args=args, jacobian=jacobian, n_blocks=n_blocks, t0=t0, q0=q0, seed=seed,
        on_failure=on_failure, where=where, stacklevel=4,
    )


def _check_times(
    t_total: Any, dt_renorm: Any, t_transient: Any, t0: Any
) -> tuple[float, float, float, float]:
    t_total = check_positive("t_total", t_total, fix="It is the measured time after the transient.")
    dt_renorm = check_positive(
        "dt_renorm", dt_renorm,
        fix="It is the time between re-orthonormalisations; a typical value is "
        "1/|largest exponent|.",
    )
    t_transient = _check_nonnegative("t_transient", t_transient, fix="Use 0 for no transient.")
    try:
        t0 = float(t0)
    except (TypeError, ValueError):
        raise TypeError(f"`t0` must be a real number, got {describe(t0)}.") from None
    if not math.isfinite(t0):
        raise ValueError(f"`t0` must be finite, got {t0!r}.")
    return t_total, dt_renorm, t_transient, t0


def _qr_flow(
    f: Callable, y0: Tensor, *, t_total: Any, k: Any, dt_renorm: Any, t_transient: Any, solver: Any,
    args: Any, jacobian: Any, n_blocks: Any, t0: Any, q0: Any, seed: Any, on_failure: Any,
    where: str, stacklevel: int, extra_settings: dict[str, Any] | None = None,
) -> LyapunovResult:
    """The QR method for flows (shared by lyapunov_spectrum and conditional_lyapunov)."""
    t_total, dt_renorm, t_transient, t0 = _check_times(t_total, dt_renorm, t_transient, t0)
    n_blocks = check_nonnegative_int("n_blocks", n_blocks, minimum=1)
    on_failure = _check_on_failure(on_failure)
    solver = _resolve_solver(solver, y0.dtype)
    jac, jac_label = resolve_flow_jacobian(f, jacobian)
    Q, k = _initial_frame(q0, k, y0, seed)
    batch, n = y0.shape[:-1], y0.shape[-1]
    dtype, device = y0.dtype, y0.device

    with torch.no_grad():
        t_first = torch.as_tensor(t0, dtype=dtype, device=device)
        _check_output_shape("f", f(t_first, y0, args), y0, "dy/dt")
        if jac is not None:
            check_jacobian_shape(jac(t_first, y0, args), y0)

        g = augmented_field(f, k, jac)
        acc = _Accumulator(batch, k, y0, on_failure, where, "`t_total` or lower `dt_renorm`")
        phases = [(d, False) for d in _float_segments(t_transient, dt_renorm)]
        phases += [(d, True) for d in _float_segments(t_total, dt_renorm)]
        y = y0
        t = t0
        elapsed = {False: 0.0, True: 0.0}
        for d, record in phases:
            # Exact multiples of dt_renorm for the interval ends (no drift from summing floats).
            elapsed[record] += d
            t_end = t0 + elapsed[False] + (elapsed[True] if record else 0.0)
            z = torch.cat([y, Q.reshape(*batch, n * k)], dim=-1)  # (*batch, n + n k)
            t_eval = torch.tensor([t, t_end], dtype=dtype, device=device)
            sol = solver.solve(g, z, t_eval, args=args, throw=False)
            zT = sol.ys[..., -1, :]
            y_new = zT[..., :n]
            M = zT[..., n:].reshape(*batch, n, k)
            bad_solve = sol.status != 0
            bad_state = ~(torch.isfinite(y_new).all(-1) & torch.isfinite(M).all(-1).all(-1))
            bad = bad_solve | bad_state | acc.failed
            M = torch.where(bad[..., None, None], Q, M)
            Q_new, r = qr_positive(M)
            logr = torch.log(r)
            bad_r = ~torch.isfinite(logr).all(-1) & ~bad
            reasons = _solver_reasons(sol, bad_solve)
            for m in _members(bad_state & ~bad_solve):
                reasons[m] = (
                    "the state or the tangent vectors became NaN/inf (the trajectory diverges)"
                )
            for m in _members(bad_r):
                reasons[m] = (
                    "the tangent vectors over- or underflowed within one interval (|diag R| = 0 or "
                    "inf); lower `dt_renorm`"
                )
            acc.fail(bad | bad_r, reasons, (t, t_end), "failed")
            keep = acc.failed
            y = torch.where(keep.unsqueeze(-1), y, y_new)
            Q = torch.where(keep[..., None, None], Q, Q_new)
            if record:
                acc.add(torch.where(keep.unsqueeze(-1), torch.zeros_like(logr), logr), d, t_end)
            t = t_end

    settings = {
        "method": "QR re-orthonormalisation (Geist et al. 1990 H2)",
        "k": k, "t_total": t_total, "dt_renorm": dt_renorm, "t_transient": t_transient, "t0": t0,
        "jacobian": jac_label, "solver": repr(solver), "seed": seed if q0 is None else None,
        "n_blocks": n_blocks,
    }
    settings.update(extra_settings or {})
    return acc.finish(n_blocks, settings, stacklevel)


# --------------------------------------------------------------------------------------------
# Maps: QR method
# --------------------------------------------------------------------------------------------


def lyapunov_spectrum_map(
    F: Callable,
    x0: Tensor,
    *,
    n_steps: int,
    k: int | None = None,
    n_transient: int = 0,
    renorm_every: int = 1,
    args: Any = None,
    jacobian: Any = None,
    n_blocks: int = 10,
    q0: Tensor | None = None,
    seed: int = 0,
    on_failure: str = "raise",
) -> LyapunovResult:
    """Lyapunov spectrum (full or the leading ``k``) of a map by QR re-orthonormalisation.

    For ``x_{t+1} = F(x_t)`` evolve ``k`` tangent vectors by ``Q ← J(x_t) Q``, re-orthonormalise
    every ``m = renorm_every`` iterations (``Q R = Q``, ``diag R > 0``) and average:

    .. math::

        \\lambda_i = \\frac{1}{N_{\\mathrm{steps}}} \\sum_j \\log R^{(j)}_{ii}
        \\quad\\text{(per iteration)}.

    The QR method of Benettin et al. (1980) [B80]_ and Geist et al. (1990) [G90]_ ("H2"). ``J Q``
    by the analytic Jacobian when available, else by forward-mode autodiff (``torch.func.jvp``
    per column under ``torch.func.vmap``).

    Parameters
    ----------
    F
        The map ``F(x, args) -> x_next``, ``x`` of shape ``(*batch, n)``.
    x0 : (*batch, n)
        Initial states; each batch member is an independent system.
    n_steps
        Measured iterations (after the transient), >= 1.
    k
        Number of exponents, ``1 <= k <= n``; default all.
    n_transient
        Iterations run first and discarded (state and tangent vectors), default 0.
    renorm_every
        Iterations between re-orthonormalisations (default 1). Tangent vectors grow by
        ``e^{λ m}`` in between: keep ``(λ_1 - λ_k) m`` within the dtype's log range.
    args
        Passed to ``F``.
    jacobian
        ``None``: analytic for an :class:`~ngcdyn.systems.AbstractMap` with
        ``has_analytic_jacobian``, else autodiff; ``"autodiff"``; or a callable
        ``jacobian(x) -> (*batch, n, n)``.
    n_blocks
        Blocks for the batch-means standard error (default 10).

    Other Parameters
    ----------------
    q0, seed, on_failure
        As in :func:`lyapunov_spectrum`.

    Returns
    -------
    LyapunovResult
        ``exponents``/``stderr`` ``(*batch, k)`` (per iteration); ``times`` counts measured
        iterations at each renormalisation.

    Raises
    ------
    ValueError
        ``k > n``; ``n_steps < 1``; ``renorm_every < 1``; a non-square Jacobian.
    DivergenceError
        A member's orbit or tangent vectors become non-finite (with ``on_failure="raise"``).

    Warns
    -----
    UserWarning
        Fewer renormalisations than ``n_blocks``.

    Notes
    -----
    A map with a singular Jacobian along the orbit (``R_ii = 0``) has exponent ``-inf``; such a
    member is reported as failed. For a linear map ``x ← A x`` the exponents converge to
    ``log |eig A|``. See ``theory/10_lyapunov_qr.md``.

    See also
    --------
    lyapunov_spectrum, max_lyapunov_map, conditional_lyapunov_map, kaplan_yorke_dimension

    Examples
    --------
    The Hénon map (a = 1.4, b = 0.3): exponents 0.419, -1.623 (Sprott); their sum is ln b exactly.

    >>> import torch
    >>> from ngcdyn.analysis import lyapunov_spectrum_map
    >>> def henon(x, args):
    ...     return torch.stack([1 - 1.4 * x[..., 0] ** 2 + x[..., 1], 0.3 * x[..., 0]], -1)
    >>> res = lyapunov_spectrum_map(henon, torch.zeros(2, dtype=torch.float64), n_steps=2000,
    ...                             n_transient=100)
    >>> round(float(res.exponents.sum()), 6) == round(float(torch.log(torch.tensor(0.3))), 6)
    True
    """
    where = "lyapunov_spectrum_map"
    x0 = _check_real_state("x0", x0)
    jac, jac_label = resolve_map_jacobian(F, jacobian)

    def step_factory(i: int):
        fn = lambda x: F(x, args)  # noqa: E731
        jf = None if jac is None else (lambda x: jac(x, args))
        return fn, jf

    return _qr_map(
        step_factory, x0, n_steps=n_steps, k=k, n_transient=n_transient, renorm_every=renorm_every,
        n_blocks=n_blocks, q0=q0, seed=seed, on_failure=on_failure, where=where, name="F",
        jac_label=jac_label, stacklevel=4,
    )


def _check_map_counts(n_steps: Any, n_transient: Any, renorm_every: Any) -> tuple[int, int, int]:
    n_steps = check_nonnegative_int(
        "n_steps", n_steps, minimum=1, fix="It is the number of measured iterations."
    )
    n_transient = check_nonnegative_int("n_transient", n_transient, fix="Use 0 for no transient.")
    renorm_every = check_nonnegative_int(
        "renorm_every", renorm_every, minimum=1,
        fix="It is the number of iterations between re-orthonormalisations (1 is always safe).",
    )
    return n_steps, n_transient, renorm_every


def _qr_map(
    step_factory: Callable[[int], tuple[Callable, Callable | None]], x0: Tensor, *, n_steps: Any,
    k: Any, n_transient: Any, renorm_every: Any, n_blocks: Any, q0: Any, seed: Any, on_failure: Any,
    where: str, name: str, jac_label: str, stacklevel: int,
    extra_settings: dict[str, Any] | None = None,
) -> LyapunovResult:
    """The QR method for maps; ``step_factory(i)`` gives step ``i``'s map and Jacobian (or None)."""
    n_steps, n_transient, renorm_every = _check_map_counts(n_steps, n_transient, renorm_every)
    n_blocks = check_nonnegative_int("n_blocks", n_blocks, minimum=1)
    on_failure = _check_on_failure(on_failure)
    Q, k = _initial_frame(q0, k, x0, seed)
    batch = x0.shape[:-1]

    acc = _Accumulator(batch, k, x0, on_failure, where, "`n_steps` or lower `renorm_every`")
    phases = [(m, False) for m in _int_segments(n_transient, renorm_every)]
    phases += [(m, True) for m in _int_segments(n_steps, renorm_every)]
    x = x0
    i = 0
    measured = 0
    checked = False
    with torch.no_grad():
        for m, record in phases:
            xs, M = x, Q
            for _ in range(m):
                fn, jf = step_factory(i)
                if jf is None:
                    x_next, M = jvp_columns(fn, xs, M)
                else:
                    x_next = fn(xs)
                    J = jf(xs)
                    if not checked:
                        check_jacobian_shape(J, xs)
                    M = J @ M
                if not checked:
                    _check_output_shape(name, x_next, xs, "the next state")
                    checked = True
                xs = x_next
                i += 1
            bad_state = ~(torch.isfinite(xs).all(-1) & torch.isfinite(M).all(-1).all(-1))
            bad = bad_state | acc.failed
            M = torch.where(bad[..., None, None], Q, M)
            Q_new, r = qr_positive(M)
            logr = torch.log(r)
            bad_r = ~torch.isfinite(logr).all(-1) & ~bad
            reasons = {mm: "the state or the tangent vectors became NaN/inf (the orbit diverges)"
                       for mm in _members(bad_state)}
            for mm in _members(bad_r):
                reasons[mm] = (
                    "the tangent vectors collapsed or overflowed within one window (|diag R| = 0 "
                    "or inf): a singular Jacobian along the orbit (exponent -inf) or too large "
                    "`renorm_every`"
                )
            acc.fail(bad | bad_r, reasons, (float(i - m), float(i)), "failed")
            keep = acc.failed
            x = torch.where(keep.unsqueeze(-1), x, xs)
            Q = torch.where(keep[..., None, None], Q, Q_new)
            if record:
                measured += m
                logr = torch.where(keep.unsqueeze(-1), torch.zeros_like(logr), logr)
                acc.add(logr, float(m), float(measured))

    settings = {
        "method": "QR re-orthonormalisation (Geist et al. 1990 H2)",
        "k": k, "n_steps": n_steps, "n_transient": n_transient, "renorm_every": renorm_every,
        "jacobian": jac_label, "seed": seed if q0 is None else None, "n_blocks": n_blocks,
    }
    settings.update(extra_settings or {})
    return acc.finish(n_blocks, settings, stacklevel, times_dtype=torch.int64)


# --------------------------------------------------------------------------------------------
# Largest exponent from two trajectories
# --------------------------------------------------------------------------------------------


def _separation(y: Tensor, d0: float | None) -> Tensor:
    """The separation to renormalise to, per member ``(*batch,)``.

    Default (``d0=None``): ``sqrt(eps) (1 + ‖y‖)`` at the current state, small enough to stay in
    the linear regime and large enough that the difference of the two states keeps about half of the
    digits; re-evaluated at every renormalisation, so that a growing state never drowns it.
    """
    if d0 is None:
        return math.sqrt(torch.finfo(y.dtype).eps) * (1 + y.norm(dim=-1))
    return torch.full(y.shape[:-1], d0, dtype=y.dtype, device=y.device)


def _rounding_warning(where: str, stacklevel: int, interval: str) -> None:
    warnings.warn(
        f"{where}: the separation of the two trajectories fell to the rounding level of the "
        f"state within one {interval}; the estimate is then biased upward. Lower the {interval} "
        "or use the QR method (lyapunov_spectrum / lyapunov_spectrum_map), which has no such "
        "floor.",
        UserWarning,
        stacklevel=stacklevel,
    )


def max_lyapunov(
    f: Callable,
    y0: Tensor,
    *,
    t_total: float,
    dt_renorm: float = 1.0,
    t_transient: float = 0.0,
    d0: float | None = None,
    solver: Any = None,
    args: Any = None,
    n_blocks: int = 10,
    t0: float = 0.0,
    seed: int = 0,
    on_failure: str = "raise",
) -> LyapunovResult:
    """Largest Lyapunov exponent of a flow from two nearby trajectories (Benettin 1980).

    Integrate ``y`` and a companion ``y' = y + d_0 v`` over intervals of length ``Δ``; after each,
    measure ``d = ‖y' − y‖``, record ``log(d / d_0)`` and pull the companion back to distance
    ``d_0`` along the same direction. Then

    .. math::

        \\lambda_1 \\approx \\frac{1}{T} \\sum_j \\log \\frac{d_j}{d_0}.

    No Jacobian is needed (only ``f``), at the price of a finite separation: the method resolves
    contraction only down to the rounding level (``λ_1 Δ`` above roughly ``log(eps) / 2``).

    Parameters
    ----------
    f
        Vector field ``f(t, y, args)``.
    y0 : (*batch, n)
        Initial states.
    t_total, dt_renorm, t_transient
        As in :func:`lyapunov_spectrum` (the companion is evolved and renormalised during the
        transient too, so that its direction aligns with the most unstable one).
    d0
        Separation the companion is renormalised to; default ``sqrt(eps) (1 + ‖y‖)`` at the
        current state of each member.
    solver, args, n_blocks, t0, seed, on_failure
        As in :func:`lyapunov_spectrum`; ``seed`` draws the initial direction ``v``.

    Returns
    -------
    LyapunovResult
        With ``k = 1``: ``exponents`` and ``stderr`` of shape ``(*batch, 1)``.

    Raises
    ------
    ValueError, TypeError, DivergenceError
        As in :func:`lyapunov_spectrum`.

    Warns
    -----
    UserWarning
        Fewer intervals than ``n_blocks``; or the separation fell to the rounding level.

    References
    ----------
    .. [1] G. Benettin, L. Galgani, J.-M. Strelcyn, "Kolmogorov entropy and numerical
       experiments", Phys. Rev. A 14:2338–2345, 1976; Benettin et al. 1980 [B80]_.

    See also
    --------
    lyapunov_spectrum : all exponents by the QR method.
    max_lyapunov_map : the same for maps.

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.analysis import max_lyapunov
    >>> A = torch.tensor([[0.5, 1.0], [0.0, -1.0]], dtype=torch.float64)   # eigenvalues 0.5, -1
    >>> res = max_lyapunov(lambda t, y, a: y @ A.T, torch.ones(2, dtype=torch.float64),
    ...                    t_total=40.0, t_transient=10.0)
    >>> round(float(res.exponents), 3)
    0.5
    """
    where = "max_lyapunov"
    y0 = _check_real_state("y0", y0)
    t_total, dt_renorm, t_transient, t0 = _check_times(t_total, dt_renorm, t_transient, t0)
    n_blocks = check_nonnegative_int("n_blocks", n_blocks, minimum=1)
    on_failure = _check_on_failure(on_failure)
    solver = _resolve_solver(solver, y0.dtype)
    seed = check_nonnegative_int("seed", seed)
    batch, n = y0.shape[:-1], y0.shape[-1]
    dtype, device = y0.dtype, y0.device
    if d0 is not None:
        d0 = check_positive("d0", d0, fix="It is the separation of the two trajectories.")
    v = random_orthonormal(n, 1, seed=seed, dtype=dtype, device=device)[:, 0]  # (n,)

    def pair(t: Tensor, z: Tensor, a: Any) -> Tensor:
        return torch.cat([f(t, z[..., :n], a), f(t, z[..., n:], a)], dim=-1)

    with torch.no_grad():
        t_first = torch.as_tensor(t0, dtype=dtype, device=device)
        _check_output_shape("f", f(t_first, y0, args), y0, "dy/dt")
        acc = _Accumulator(batch, 1, y0, on_failure, where, "`t_total` or lower `dt_renorm`")
        sep = _separation(y0, d0)  # (*batch,) separation at the start of the interval
        y, yp = y0, y0 + sep.unsqueeze(-1) * v
        phases = [(d, False) for d in _float_segments(t_transient, dt_renorm)]
        phases += [(d, True) for d in _float_segments(t_total, dt_renorm)]
        t = t0
        elapsed = {False: 0.0, True: 0.0}
        warned = False
        for d, record in phases:
            elapsed[record] += d
            t_end = t0 + elapsed[False] + (elapsed[True] if record else 0.0)
            sol = solver.solve(pair, torch.cat([y, yp], -1),
                               torch.tensor([t, t_end], dtype=dtype, device=device),
                               args=args, throw=False)
            zT = sol.ys[..., -1, :]
            y_new, yp_new = zT[..., :n], zT[..., n:]
            diff = yp_new - y_new
            dist = diff.norm(dim=-1)  # (*batch,)
            logr = torch.log(dist / sep).unsqueeze(-1)  # (*batch, 1)
            bad_solve = sol.status != 0
            bad_state = ~torch.isfinite(zT).all(-1)
            bad_r = ~torch.isfinite(logr).all(-1) & ~bad_state & ~bad_solve
            reasons = _solver_reasons(sol, bad_solve)
            for m in _members(bad_state & ~bad_solve):
                reasons[m] = "the state became NaN/inf (the trajectory diverges)"
            for m in _members(bad_r):
                reasons[m] = "the two trajectories coincided or separated to inf; lower `dt_renorm`"
            acc.fail(bad_solve | bad_state | bad_r, reasons, (t, t_end), "failed")
            keep = acc.failed
            tiny = (dist < 100 * torch.finfo(dtype).eps * (1 + y_new.norm(dim=-1))) & ~keep
            if record and not warned and bool(tiny.any()):
                _rounding_warning(where, 3, "`dt_renorm`")
                warned = True
            safe = torch.where(keep, torch.ones_like(dist), dist)
            y = torch.where(keep.unsqueeze(-1), y, y_new)
            sep = torch.where(keep, sep, _separation(y, d0))
            yp = torch.where(keep.unsqueeze(-1), yp, y + (sep / safe).unsqueeze(-1) * diff)
            if record:
                acc.add(logr, d, t_end)
            t = t_end
    settings = {
        "method": "two-trajectory renormalisation (Benettin et al. 1976/1980)",
        "k": 1, "t_total": t_total, "dt_renorm": dt_renorm, "t_transient": t_transient, "t0": t0,
        "d0": "sqrt(eps) (1 + |y|)" if d0 is None else d0, "solver": repr(solver), "seed": seed,
        "n_blocks": n_blocks,
    }
    return acc.finish(n_blocks, settings, 3)


def max_lyapunov_map(
    F: Callable,
    x0: Tensor,
    *,
    n_steps: int,
    n_transient: int = 0,
    renorm_every: int = 1,
    d0: float | None = None,
    args: Any = None,
    n_blocks: int = 10,
    seed: int = 0,
    on_failure: str = "raise",
) -> LyapunovResult:
    """Largest Lyapunov exponent of a map from two nearby orbits (Benettin 1980).

    Iterate ``x`` and ``x' = x + d_0 v``; every ``m = renorm_every`` iterations record
    ``log(‖x' − x‖ / d_0)`` and pull ``x'`` back to distance ``d_0``:

    .. math::

        \\lambda_1 \\approx \\frac{1}{N_{\\mathrm{steps}}} \\sum_j \\log \\frac{d_j}{d_0}.

    Parameters
    ----------
    F
        The map ``F(x, args)``.
    x0 : (*batch, n)
    n_steps, n_transient, renorm_every
        As in :func:`lyapunov_spectrum_map`.
    d0
        Separation the companion is renormalised to; default ``sqrt(eps) (1 + ‖x‖)`` at the
        current state of each member.
    args, n_blocks, seed, on_failure
        As in :func:`lyapunov_spectrum_map`.

    Returns
    -------
    LyapunovResult
        With ``k = 1`` (per iteration).

    Raises
    ------
    ValueError, TypeError, DivergenceError
        As in :func:`lyapunov_spectrum_map`.

    Warns
    -----
    UserWarning
        Fewer windows than ``n_blocks``; or the separation fell to the rounding level.

    References
    ----------
    Benettin et al. 1980 [B80]_.

    See also
    --------
    lyapunov_spectrum_map, max_lyapunov

    Examples
    --------
    The logistic map at r = 4 has exponent ln 2 = 0.693 (Sprott).

    >>> import torch
    >>> from ngcdyn.analysis import max_lyapunov_map
    >>> x0 = torch.linspace(0.1, 0.9, 64, dtype=torch.float64).unsqueeze(-1)   # 64 orbits
    >>> res = max_lyapunov_map(lambda x, a: 4 * x * (1 - x), x0, n_steps=2000, n_transient=10)
    >>> abs(float(res.exponents.mean()) - 0.6931) < 0.01
    True
    """
    where = "max_lyapunov_map"
    x0 = _check_real_state("x0", x0)
    n_steps, n_transient, renorm_every = _check_map_counts(n_steps, n_transient, renorm_every)
    n_blocks = check_nonnegative_int("n_blocks", n_blocks, minimum=1)
    on_failure = _check_on_failure(on_failure)
    seed = check_nonnegative_int("seed", seed)
    batch, n = x0.shape[:-1], x0.shape[-1]
    if d0 is not None:
        d0 = check_positive("d0", d0, fix="It is the separation of the two orbits.")
    v = random_orthonormal(n, 1, seed=seed, dtype=x0.dtype, device=x0.device)[:, 0]
    acc = _Accumulator(batch, 1, x0, on_failure, where, "`n_steps` or lower `renorm_every`")
    phases = [(m, False) for m in _int_segments(n_transient, renorm_every)]
    phases += [(m, True) for m in _int_segments(n_steps, renorm_every)]
    sep = _separation(x0, d0)
    x, xp = x0, x0 + sep.unsqueeze(-1) * v
    i = measured = 0
    warned = False
    with torch.no_grad():
        _check_output_shape("F", F(x0, args), x0, "the next state")
        for m, record in phases:
            xs, xps = x, xp
            for _ in range(m):
                xs, xps = F(xs, args), F(xps, args)
            i += m
            diff = xps - xs
            dist = diff.norm(dim=-1)
            logr = torch.log(dist / sep).unsqueeze(-1)
            bad_state = ~(torch.isfinite(xs).all(-1) & torch.isfinite(xps).all(-1))
            bad_r = ~torch.isfinite(logr).all(-1) & ~bad_state
            reasons = {mm: "the orbit became NaN/inf (it diverges)" for mm in _members(bad_state)}
            for mm in _members(bad_r):
                reasons[mm] = (
                    "the two orbits coincided (a singular Jacobian, exponent -inf?) or "
                    "separated to inf; lower `renorm_every`"
                )
            acc.fail(bad_state | bad_r, reasons, (float(i - m), float(i)), "failed")
            keep = acc.failed
            tiny = (dist < 100 * torch.finfo(x0.dtype).eps * (1 + xs.norm(dim=-1))) & ~keep
            if record and not warned and bool(tiny.any()):
                _rounding_warning(where, 3, "`renorm_every` window")
                warned = True
            safe = torch.where(keep, torch.ones_like(dist), dist)
            x = torch.where(keep.unsqueeze(-1), x, xs)
            sep = torch.where(keep, sep, _separation(x, d0))
            xp = torch.where(keep.unsqueeze(-1), xp, x + (sep / safe).unsqueeze(-1) * diff)
            if record:
                measured += m
                acc.add(logr, float(m), float(measured))
    settings = {
        "method": "two-trajectory renormalisation (Benettin et al. 1976/1980)",
        "k": 1, "n_steps": n_steps, "n_transient": n_transient, "renorm_every": renorm_every,
        "d0": "sqrt(eps) (1 + |x|)" if d0 is None else d0, "seed": seed, "n_blocks": n_blocks,
    }
    return acc.finish(n_blocks, settings, 3, times_dtype=torch.int64)


# --------------------------------------------------------------------------------------------
# Kaplan–Yorke dimension
# --------------------------------------------------------------------------------------------


def kaplan_yorke_dimension(exponents: Tensor | Sequence[float] | LyapunovResult) -> Tensor:
    """Kaplan–Yorke (Lyapunov) dimension of a spectrum.

    With the exponents sorted in descending order and ``j`` the largest index whose partial sum
    ``S_j = λ_1 + … + λ_j`` is non-negative,

    .. math::

        D_{KY} = j + \\frac{S_j}{|\\lambda_{j+1}|},

    and ``D_KY = 0`` if ``λ_1 < 0`` (Kaplan & Yorke 1979 [KY79]_). If every partial sum is
    non-negative, ``D_KY = k`` (the number of exponents given; with a partial spectrum this is
    only a lower bound).

    Parameters
    ----------
    exponents : (*batch, k) tensor, sequence of floats, or a LyapunovResult
        Any order; they are sorted here.

    Returns
    -------
    (*batch,) tensor
        NaN where an exponent is NaN.

    Raises
    ------
    ValueError
        If ``exponents`` is empty (k = 0).

    References
    ----------
    J. L. Kaplan, J. A. Yorke, Lecture Notes in Mathematics 730:204–227, Springer 1979.

    See also
    --------
    lyapunov_spectrum

    Examples
    --------
    Lorenz (σ=10, ρ=28, β=8/3), Sprott's exponents: ``D = 2 + 0.9056/14.5723 = 2.0621``.

    >>> from ngcdyn.analysis import kaplan_yorke_dimension
    >>> round(float(kaplan_yorke_dimension([0.9056, 0.0, -14.5723])), 4)
    2.0621
    """
    if isinstance(exponents, LyapunovResult):
        lam = exponents.exponents
    elif isinstance(exponents, Tensor):
        lam = exponents
    else:
        try:
            lam = torch.as_tensor(exponents, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"`exponents` must be a tensor (*batch, k), a sequence of floats or a "
                f"LyapunovResult, got {type(exponents).__name__}."
            ) from None
    if not lam.is_floating_point():
        lam = lam.to(torch.get_default_dtype())
    if lam.ndim == 0 or lam.shape[-1] == 0:
        raise ValueError(
            f"`exponents` must have shape (*batch, k) with k >= 1, got {describe(lam)}."
        )
    k = lam.shape[-1]
    srt = lam.sort(dim=-1, descending=True).values
    S = srt.cumsum(-1)  # (*batch, k)
    # Partial sums of a descending sequence are concave in j and start from S_0 = 0, so
    # {j >= 1 : S_j >= 0} is a prefix {1..J}.
    J = (S >= 0).sum(-1)  # (*batch,)
    Jc = J.clamp(min=1, max=k - 1 if k > 1 else 1)
    S_J = S.gather(-1, (Jc - 1).unsqueeze(-1)).squeeze(-1)
    lam_next = srt.gather(-1, Jc.clamp(max=k - 1).unsqueeze(-1)).squeeze(-1)
    D = Jc.to(lam.dtype) + S_J / lam_next.abs()
    D = torch.where(J == 0, torch.zeros_like(D), D)
    D = torch.where(J == k, torch.full_like(D, float(k)), D)
    return torch.where(torch.isnan(lam).any(-1), torch.full_like(D, float("nan")), D)
