"""Lyapunov estimators: diagnostics, bookkeeping, failures, bad input, Kaplan–Yorke (issue 3).

Expected values are derived beside each assertion; the linear-system property tests are in
test_lyapunov_linear.py and the chaotic reference systems in test_lyapunov_chaos.py.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import ngcdyn.solvers as solvers
from ngcdyn.analysis import (
    DivergenceError,
    LyapunovResult,
    kaplan_yorke_dimension,
    lyapunov_spectrum,
    lyapunov_spectrum_map,
    max_lyapunov,
    max_lyapunov_map,
    tangent_vector_field,
)
from ngcdyn.systems import LinearMap, LinearSystem, LogisticMap

RTOL, ATOL = 1e-8, 1e-10
EPS64 = torch.finfo(torch.float64).eps
EPS32 = torch.finfo(torch.float32).eps


def _solver() -> solvers.AbstractSolver:
    return solvers.RungeKutta("dopri5", rtol=RTOL, atol=ATOL)


def _diag_flow(*rates: float) -> LinearSystem:
    return LinearSystem(torch.diag(torch.tensor(rates)))


# --------------------------------------------------------------------------------------------
# Bookkeeping: history, times, finite-time exponents, standard error
# --------------------------------------------------------------------------------------------


def test_history_times_and_finite_time_are_consistent():
    """t_total = 5.5 with Δ = 1: five full intervals and a 0.5 remainder, recorded after the
    transient (t0 = 1, t_transient = 2, so the ends are 4, 5, ..., 8, 8.5)."""
    res = lyapunov_spectrum(_diag_flow(0.3, -0.7), torch.ones(2), t_total=5.5, dt_renorm=1.0,
                            t_transient=2.0, t0=1.0, q0=torch.eye(2), solver=_solver(), n_blocks=3)
    expected_times = torch.tensor([4.0, 5.0, 6.0, 7.0, 8.0, 8.5])
    assert torch.allclose(res.times, expected_times, rtol=0, atol=1e-12)
    dur = torch.tensor([1.0] * 5 + [0.5])
    assert torch.allclose(res.settings["durations"], dur, rtol=0, atol=1e-12)
    # history is the running duration-weighted mean of finite_time; its last row is the estimate.
    running = (res.finite_time * dur[:, None]).cumsum(0) / dur.cumsum(0)[:, None]
    assert torch.allclose(res.history, running, rtol=1e-12, atol=0)
    assert torch.equal(res.history[-1], res.exponents)
    # Diagonal system, frame = eigenvectors: every finite-time exponent is the rate itself
    # (rtol·exp(spread Δ)/Δ = 1e-8 · e^1 of integration error).
    expected = torch.tensor([0.3, -0.7]).expand(6, 2)
    assert ((res.finite_time - expected).abs() / (RTOL * math.e)).max() <= 1.0
    assert res.history.shape == (6, 2) and res.finite_time.shape == (6, 2)


def test_windowed_finite_time_exponents():
    """windowed(w) averages w consecutive intervals, weighted by duration."""
    res = lyapunov_spectrum(_diag_flow(0.2), torch.ones(1), t_total=6.0, dt_renorm=1.0,
                            solver=_solver(), n_blocks=2)
    w = res.windowed(3)
    assert w.shape == (2, 1)
    assert torch.allclose(w, res.finite_time.reshape(2, 3, 1).mean(1), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match=r"`window` must be at most the number of renormalisation intervals N=6, got 7"):
        res.windowed(7)


def test_stderr_is_batch_means_of_the_local_exponents():
    """Logistic map r = 4 with renormalisation every step: the local exponent of step t is
    log|F'(x_t)| = log|4 (1 - 2 x_t)| exactly (a 1 x 1 QR is |J q| with |q| = 1). So the estimate is
    their mean and the standard error is std(block means, ddof=1)/sqrt(n_blocks) over the
    np.array_split blocks, recomputed here from the orbit (tolerance: rounding, 1e3 eps)."""
    x0 = torch.tensor([0.3])
    n_steps, n_blocks = 1000, 10
    res = lyapunov_spectrum_map(LogisticMap(4.0), x0, n_steps=n_steps, n_blocks=n_blocks)
    x = x0.clone()
    local = []
    for _ in range(n_steps):
        local.append(float(torch.log((4 * (1 - 2 * x)).abs())))
        x = 4.0 * x * (1 - x)
    local = np.array(local)
    blocks = np.array([b.mean() for b in np.array_split(local, n_blocks)])
    assert abs(float(res.exponents[0]) - local.mean()) <= 1e3 * EPS64
    assert abs(float(res.stderr[0]) - blocks.std(ddof=1) / math.sqrt(n_blocks)) <= 1e3 * EPS64
    assert torch.allclose(res.finite_time[:, 0], torch.tensor(local), rtol=0, atol=1e3 * EPS64)
    assert res.times.dtype == torch.int64 and int(res.times[-1]) == n_steps


def test_too_few_blocks_warns_and_uses_what_it_has():
    with pytest.warns(UserWarning, match=r"`n_blocks`=10 needs at least .* the run has 4; `stderr` is computed from 4 blocks.*Increase `t_total`"):
        res = lyapunov_spectrum(_diag_flow(-1.0), torch.ones(1), t_total=4.0, solver=_solver())
    assert res.settings["n_blocks_used"] == 4
    assert torch.isfinite(res.stderr).all()


def test_single_interval_gives_nan_stderr_with_a_warning():
    with pytest.warns(UserWarning, match=r"`stderr` is NaN \(a standard error needs at least two blocks\)"):
        res = lyapunov_spectrum_map(LinearMap(torch.tensor([[0.5]])), torch.ones(1), n_steps=3,
                                    renorm_every=3)
    assert torch.isnan(res.stderr).all()
    # One window of three iterations of x <- 0.5 x: exactly ln 0.5 (rounding only).
    assert abs(float(res.exponents[0]) - math.log(0.5)) <= 1e2 * EPS64


def test_enough_blocks_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lyapunov_spectrum_map(LinearMap(torch.tensor([[0.5]])), torch.ones(1), n_steps=20)


# --------------------------------------------------------------------------------------------
# Shapes, batches, args, time, dtypes
# --------------------------------------------------------------------------------------------


def test_multi_dimensional_batch_and_result_shapes():
    """y0 (2, 3, n): exponents (2, 3, k); the diagonal rates for every member."""
    y0 = torch.randn(2, 3, 2)
    res = lyapunov_spectrum(_diag_flow(0.1, -0.4), y0, t_total=4.0, k=1, t_transient=10.0,
                            solver=_solver(), n_blocks=2)
    assert res.exponents.shape == (2, 3, 1) and res.stderr.shape == (2, 3, 1)
    assert res.history.shape == (2, 3, 4, 1) and res.finite_time.shape == (2, 3, 4, 1)
    assert res.failed.shape == (2, 3) and not res.failed.any()
    assert res.batch_shape == (2, 3)
    # After a transient of 10 the random frame is aligned to within e^{-0.5·10} (gap 0.5), a bias
    # of at most ln(1 + e^{-5}·...)/T < 2e-3; tolerance 2e-3.
    assert ((res.exponents - 0.1).abs() <= 2e-3).all()


def test_args_are_passed_through():
    A = torch.tensor([[-0.5, 0.0], [0.0, -2.0]])
    res = lyapunov_spectrum(lambda t, y, M: y @ M.T, torch.ones(2), args=A, t_total=4.0,
                            q0=torch.eye(2), solver=_solver(), n_blocks=2, jacobian=lambda t, y: A)
    # Diagonal A with the identity frame: exactly the diagonal (solver error rtol·e^{1.5}).
    assert ((res.exponents - torch.tensor([-0.5, -2.0])).abs() <= RTOL * math.exp(1.5)).all()


def test_non_autonomous_flow_uses_t0():
    """dy/dt = cos(t) y: the exponent over [t0, t0 + T] is (sin(t0 + T) - sin t0)/T exactly."""
    t0, T = 0.7, 3.0
    res = lyapunov_spectrum(lambda t, y, a: torch.cos(t) * y, torch.ones(1), t_total=T,
                            dt_renorm=0.5, t0=t0, solver=_solver(), n_blocks=2)
    expected = (math.sin(t0 + T) - math.sin(t0)) / T
    assert abs(float(res.exponents[0]) - expected) <= 10 * RTOL
    # Every finite-time value too: (sin(b) - sin(a)) / 0.5 over [a, b].
    ends = torch.tensor([t0 + 0.5 * (j + 1) for j in range(6)])
    ft = (torch.sin(ends) - torch.sin(ends - 0.5)) / 0.5
    assert torch.allclose(res.finite_time[:, 0], ft, rtol=0, atol=10 * RTOL / 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_and_float64(dtype):
    """The same system in both dtypes with the default solver, whose rtol = max(1e-8, 100 eps)
    follows the dtype. Flow tolerance: rtol·exp(spread Δ)/Δ = rtol·e^{0.8} (integration, see
    test_lyapunov_linear.py) plus 10 eps (rounding); map tolerance: rounding only, 1e3 eps."""
    A = torch.tensor([[0.2, 1.0], [0.0, -0.6]], dtype=dtype)
    y0 = torch.ones(2, dtype=dtype)
    q0 = torch.eye(2, dtype=dtype)
    res = lyapunov_spectrum(LinearSystem(A), y0, t_total=4.0, q0=q0, n_blocks=2)
    assert res.exponents.dtype == dtype and res.history.dtype == dtype
    # Upper-triangular A with q0 = I: the first column stays e1 (rate 0.2 exactly), and the
    # second R entry is the det ratio, rate tr(A) - 0.2 = -0.6 exactly, at every T.
    expected = torch.tensor([0.2, -0.6], dtype=dtype)
    eps = torch.finfo(dtype).eps
    rtol = max(1e-8, 100 * eps)
    assert ((res.exponents - expected).abs() <= rtol * math.exp(0.8) + 10 * eps).all()
    resm = lyapunov_spectrum_map(LinearMap(A + 1.0 * torch.eye(2, dtype=dtype)), y0, n_steps=20,
                                 q0=q0)
    expected_m = torch.log(torch.tensor([1.2, 0.4], dtype=dtype))
    assert resm.exponents.dtype == dtype
    assert ((resm.exponents - expected_m).abs() <= 1e3 * eps).all()


@pytest.mark.gpu
def test_cuda_matches_cpu():
    A = torch.tensor([[0.2, 1.0], [-1.0, -0.6]])
    y0 = torch.randn(8, 2)
    cpu = lyapunov_spectrum(LinearSystem(A), y0, t_total=5.0, solver=_solver(), n_blocks=5)
    gpu = lyapunov_spectrum(LinearSystem(A.cuda()), y0.cuda(), t_total=5.0, solver=_solver(), n_blocks=5)
    assert gpu.exponents.device.type == "cuda"
    # Same algorithm, different rounding: within the solver error rtol·e^{spread Δ}/Δ, twice.
    assert torch.allclose(gpu.exponents.cpu(), cpu.exponents, rtol=0, atol=2 * RTOL * math.e)


def test_tangent_vector_field_matches_jacobian_times_q():
    """The augmented field is [f(y), J(y) Q] for the JVP and analytic paths alike."""
    A = torch.tensor([[0.0, 1.0], [-2.0, -0.3]])
    sys = LinearSystem(A)
    y = torch.tensor([[0.5, -1.0]])
    Q = torch.tensor([[[1.0, 0.2], [0.0, 1.0]]])
    z = torch.cat([y, Q.reshape(1, 4)], -1)
    expected = torch.cat([y @ A.T, (A @ Q).reshape(1, 4)], -1)
    for jac in (None, "autodiff", lambda t, yy: A):
        g = tangent_vector_field(sys, 2, jacobian=jac)
        assert torch.allclose(g(torch.tensor(0.0), z, None), expected, rtol=0, atol=1e2 * EPS64)


# --------------------------------------------------------------------------------------------
# Failures: diverging members are reported, never silently NaN
# --------------------------------------------------------------------------------------------


def _blowup(t, y, a):
    return y * y  # y(t) = y0 / (1 - y0 t): blows up at t = 1/y0 for y0 > 0


def test_diverging_flow_member_raises_and_names_it():
    y0 = torch.tensor([[0.5], [2.0], [-1.0]])
    with pytest.raises(DivergenceError, match=r"1 of 3 batch member\(s\) failed .*\n  member \(1,\)") as info:
        lyapunov_spectrum(_blowup, y0, t_total=1.0, dt_renorm=0.25, solver=_solver(), n_blocks=2)
    assert info.value.failed == [(1,)]
    assert "on_failure='nan'" in str(info.value)


def test_diverging_flow_member_with_on_failure_nan():
    """The other members are exact: for y' = y^2, J = 2 y and λ = (1/T) ∫ 2 y dt = -(2/T) ln(1 - y0 T);
    y0 = 0.5, T = 1: 2 ln 2; y0 = -1: -2 ln 2 (integration error: 10 rtol)."""
    y0 = torch.tensor([[0.5], [2.0], [-1.0]])
    res = lyapunov_spectrum(_blowup, y0, t_total=1.0, dt_renorm=0.25, solver=_solver(),
                            n_blocks=2, on_failure="nan")
    assert res.failed.tolist() == [False, True, False]
    assert torch.isnan(res.exponents[1]).all() and torch.isnan(res.history[1]).all()
    expected = torch.tensor([2 * math.log(2.0), -2 * math.log(2.0)])
    assert ((res.exponents[[0, 2], 0] - expected).abs() <= 10 * RTOL * 4).all()


def test_diverging_map_member():
    """x <- 2 x + x^3: x0 = 0 stays at the fixed point (exponent ln 2 exactly); x0 = 1 overflows."""
    F = lambda x, a: 2 * x + x ** 3  # noqa: E731
    x0 = torch.tensor([[0.0], [1.0]])
    with pytest.raises(DivergenceError, match=r"member \(1,\): the state or the tangent vectors became NaN/inf"):
        lyapunov_spectrum_map(F, x0, n_steps=40)
    res = lyapunov_spectrum_map(F, x0, n_steps=40, on_failure="nan")
    assert res.failed.tolist() == [False, True]
    assert abs(float(res.exponents[0, 0]) - math.log(2.0)) <= 1e2 * EPS64
    assert math.isnan(float(res.exponents[1, 0]))


# --------------------------------------------------------------------------------------------
# Bad input: errors name the argument, the rule, the value and the fix
# --------------------------------------------------------------------------------------------

_F = _diag_flow(-1.0, -2.0)
_Y0 = torch.ones(2)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(k=3), ValueError, r"`k` must satisfy 1 <= k <= n = 2 .* got k=3\. Pass k=None"),
        (dict(k=0), ValueError, r"`k` must satisfy 1 <= k <= n = 2"),
        (dict(k=1.5), TypeError, r"`k` must be an integer"),
        (dict(dt_renorm=0.0), ValueError, r"`dt_renorm` must be finite and > 0, got 0\.0"),
        (dict(dt_renorm=-1.0), ValueError, r"`dt_renorm` must be finite and > 0, got -1\.0"),
        (dict(t_total=0.0), ValueError, r"`t_total` must be finite and > 0"),
        (dict(t_transient=-1.0), ValueError, r"`t_transient` must be finite and >= 0, got -1\.0"),
        (dict(solver="rk4"), TypeError, r"`solver` must be a solver object, got the string 'rk4'.*RungeKutta"),
        (dict(solver=object()), TypeError, r"`solver` must be an ngcdyn.AbstractSolver"),
        (dict(on_failure="ignore"), ValueError, r"`on_failure` must be 'raise' .* or 'nan'"),
        (dict(jacobian="numeric"), ValueError, r"`jacobian` must be None .* 'autodiff' .* got 'numeric'"),
        (dict(jacobian=lambda t, y: torch.zeros(2, 3)), ValueError, r"`jacobian` must return square Jacobians .* n=2"),
        (dict(q0=torch.ones(2, 2)), ValueError, r"`q0` must have linearly independent"),
        (dict(q0=torch.eye(2), k=1), ValueError, r"`k`=1 does not match the number of columns of `q0`"),
        (dict(n_blocks=0), ValueError, r"`n_blocks` must be an integer >= 1"),
    ],
)
def test_flow_bad_input(kwargs, exc, pattern):
    base = dict(t_total=2.0, solver=_solver())
    base.update(kwargs)
    with pytest.raises(exc, match=pattern):
        lyapunov_spectrum(_F, _Y0, **base)


def test_non_square_vector_field():
    with pytest.raises(ValueError, match=r"`f` must return dy/dt with the shape of its input state .* \(2,\), got \(1,\)"):
        lyapunov_spectrum(lambda t, y, a: y[..., :1], _Y0, t_total=1.0, solver=_solver())


def test_bad_state():
    with pytest.raises(TypeError, match=r"`y0` must be a floating-point tensor"):
        lyapunov_spectrum(_F, torch.ones(2, dtype=torch.int64), t_total=1.0)
    with pytest.raises(TypeError, match=r"`x0` must be a torch.Tensor"):
        lyapunov_spectrum_map(LinearMap(torch.eye(2)), [1.0, 1.0], n_steps=3)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(n_steps=0), ValueError, r"`n_steps` must be an integer >= 1, got 0"),
        (dict(renorm_every=0), ValueError, r"`renorm_every` must be an integer >= 1, got 0"),
        (dict(n_transient=-2), ValueError, r"`n_transient` must be an integer >= 0, got -2"),
        (dict(k=5), ValueError, r"`k` must satisfy 1 <= k <= n = 2"),
        (dict(jacobian=lambda x: torch.zeros(3, 2)), ValueError, r"`jacobian` must return square Jacobians"),
    ],
)
def test_map_bad_input(kwargs, exc, pattern):
    base = dict(n_steps=5)
    base.update(kwargs)
    with pytest.raises(exc, match=pattern):
        lyapunov_spectrum_map(lambda x, a: 0.5 * x, torch.ones(2), **base)


def test_map_with_non_square_output():
    with pytest.raises(ValueError, match=r"`F` must return the next state with the shape of its input state"):
        lyapunov_spectrum_map(lambda x, a: torch.cat([x, x], -1), torch.ones(2), n_steps=3)


# --------------------------------------------------------------------------------------------
# Largest exponent from two trajectories
# --------------------------------------------------------------------------------------------


def test_max_lyapunov_linear_flow():
    """Eigenvalues 0.5 and -1 (upper-triangular A): λ1 = 0.5. After a transient of 10 the companion
    is aligned to within e^{-1.5·10}; the remaining error is the nonlinearity-free rounding of the
    difference (sqrt(eps) relative) and the solver error: tolerance 1e-6."""
    A = torch.tensor([[0.5, 1.0], [0.0, -1.0]])
    res = max_lyapunov(LinearSystem(A), torch.ones(2), t_total=20.0, t_transient=10.0,
                       solver=_solver())
    assert res.exponents.shape == (1,) and res.stderr.shape == (1,)
    assert abs(float(res.exponents[0]) - 0.5) <= 1e-6


def test_max_lyapunov_map_linear():
    """x <- diag(1.1, 0.8) x: λ1 = ln 1.1; alignment error (0.8/1.1)^{50} after 50 transient steps."""
    res = max_lyapunov_map(LinearMap(torch.diag(torch.tensor([1.1, 0.8]))), torch.ones(3, 2),
                           n_steps=200, n_transient=50)
    assert res.exponents.shape == (3, 1)
    assert ((res.exponents - math.log(1.1)).abs() <= 1e-6).all()


def test_max_lyapunov_warns_at_the_rounding_floor():
    """dy/dt = -50 y with Δ = 1: the separation shrinks by e^{-50} < eps per interval."""
    with pytest.warns(UserWarning, match=r"separation of the two trajectories fell to the rounding level"):
        max_lyapunov(_diag_flow(-50.0), torch.ones(1), t_total=3.0, solver=_solver(), n_blocks=2)


def test_max_lyapunov_bad_input():
    with pytest.raises(ValueError, match=r"`d0` must be finite and > 0, got -1\.0"):
        max_lyapunov(_F, _Y0, t_total=1.0, d0=-1.0, solver=_solver())
    with pytest.raises(ValueError, match=r"`dt_renorm` must be finite and > 0"):
        max_lyapunov(_F, _Y0, t_total=1.0, dt_renorm=0.0, solver=_solver())
    with pytest.raises(ValueError, match=r"`renorm_every` must be an integer >= 1"):
        max_lyapunov_map(lambda x, a: x, _Y0, n_steps=3, renorm_every=0)


# --------------------------------------------------------------------------------------------
# Kaplan–Yorke dimension
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exponents, expected",
    [
        ([1.0, -2.0], 1.5),  # j = 1, S_1 = 1: 1 + 1/2
        ([0.9056, 0.0, -14.5723], 2 + 0.9056 / 14.5723),  # Lorenz (Sprott): 2.0621
        ([0.419217, -1.623190], 1 + 0.419217 / 1.623190),  # Hénon (Sprott): 1.2583
        ([-0.1, -1.0], 0.0),  # λ1 < 0: a fixed point
        ([0.0, 0.0], 2.0),  # every partial sum >= 0: D = k
        ([-14.5723, 0.9056, 0.0], 2 + 0.9056 / 14.5723),  # order does not matter
        ([0.5, 0.2, -0.3, -1.0], 3 + 0.4 / 1.0),  # S_3 = 0.4 >= 0, S_4 < 0
    ],
)
def test_kaplan_yorke(exponents, expected):
    assert abs(float(kaplan_yorke_dimension(exponents)) - expected) <= 1e2 * EPS64


def test_kaplan_yorke_batched_and_nan():
    lam = torch.tensor([[1.0, -2.0], [-0.1, -1.0], [float("nan"), -1.0]])
    D = kaplan_yorke_dimension(lam)
    assert D.shape == (3,)
    assert D[:2].tolist() == [1.5, 0.0] and math.isnan(float(D[2]))


def test_kaplan_yorke_of_a_result_and_bad_input():
    res = lyapunov_spectrum_map(LinearMap(torch.diag(torch.tensor([2.0, 0.25]))), torch.ones(2),
                                n_steps=10, q0=torch.eye(2))
    # ln 2 + ln 0.25 = -ln 2 < 0, so D = 1 + ln 2 / ln 4 = 1.5 (exact exponents, rounding only).
    assert abs(float(kaplan_yorke_dimension(res)) - 1.5) <= 1e3 * EPS64
    with pytest.raises(ValueError, match=r"`exponents` must have shape \(\*batch, k\) with k >= 1"):
        kaplan_yorke_dimension(torch.zeros(2, 0))
    with pytest.raises(TypeError, match=r"`exponents` must be a tensor"):
        kaplan_yorke_dimension("abc")


def test_result_repr():
    res = lyapunov_spectrum_map(LinearMap(torch.tensor([[0.5]])), torch.ones(1), n_steps=10)
    assert isinstance(res, LyapunovResult)
    assert repr(res) == "LyapunovResult(exponents=[-0.6931], n_renorm=10, failed=0/1)"


def test_ngc_structured_jvp_path_equals_dense_jacobian_path():
    """NGCSystem declares has_structured_jvp: the tangent columns are propagated by its
    O(N r + G² r²) JVP. Same mathematics as J @ Q with the dense Jacobian, so the exponents agree
    to round-off amplified by the solver (same steps: the state part is identical)."""
    from ngcdyn.analysis._tangent import StructuredJVP, resolve_flow_jacobian
    from ngcdyn.systems import NGCSystem

    sys = NGCSystem.random(3, 8, 2, gain=1.5, generator=torch.Generator().manual_seed(2))
    jac, label = resolve_flow_jacobian(sys, None)
    assert isinstance(jac, StructuredJVP) and label == "structured JVP (system)"
    y0 = torch.randn(2, sys.dim)
    kw = dict(t_total=10.0, k=3, t_transient=2.0)
    structured = lyapunov_spectrum(sys, y0, **kw)
    dense = lyapunov_spectrum(sys, y0, jacobian=lambda t, y: sys.jacobian(t, y), **kw)
    torch.testing.assert_close(structured.exponents, dense.exponents, rtol=0, atol=1e-9)
