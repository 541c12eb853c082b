"""The drive / potential: split, departure, stability verdict (issue 3; ngcdyn's definitions).

Derivations of every expected value: theory/13_drive.md. For dx/dt = A x + u(t) from a common x0,
e(t) = x_driven(t) - x_undriven(t) solves de/dt = A e + u, e(0) = 0, so
e(t) = int_0^t e^{A(t-s)} u(s) ds, = A^{-1}(e^{At} - I) u for constant u; the variational equation
d(dx)/dt = A dx does not involve u, so the conditional exponents are those of A.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ngcdyn.analysis import (
    DriveResult,
    DrivenSystem,
    LyapunovResult,
    conditional_exponent,
    contraction_rate,
    drive_departure,
    euclidean_departure,
    ngc_contraction_certificate,
)
from ngcdyn.solvers import RungeKutta, SolveError
from ngcdyn.systems import NGCSystem

RTOL, ATOL = 1e-8, 1e-10
SOLVER = RungeKutta("dopri5", rtol=RTOL, atol=ATOL)
# Global error allowance, in units of (atol + rtol |value|): a local-error controller keeps the global
# error of these contracting linear problems within a small multiple of the tolerance (measured: < 1).
C_TOL = 20.0


def _no_stability(f, x0, ts, solver, args):
    """A stand-in metric for tests that only look at the departure (keeps them fast)."""
    return torch.full(x0.shape[:-1], -1.0, dtype=x0.dtype)


def _linear(A: torch.Tensor, u) -> DrivenSystem:
    """dx/dt = A x + u(t): f0 = A x, d = u(t) (u a constant tensor or a callable of t)."""
    drive = (lambda t, x, a: u(t).expand_as(x)) if callable(u) else (lambda t, x, a: u.expand_as(x))
    return DrivenSystem(lambda t, x, a: x @ A.mT, drive, dim=A.shape[-1])


@st.composite
def hurwitz_and_inputs(draw):
    """A Hurwitz A = M - (abscissa(M) + margin) I, a constant input u and an initial state x0."""
    n = draw(st.integers(1, 4))
    M = draw(hnp.arrays(np.float64, (n, n), elements=st.floats(-2, 2, width=64)))
    margin = draw(st.floats(0.2, 2.0))
    A = M - (np.linalg.eigvals(M).real.max() + margin) * np.eye(n)
    u = draw(hnp.arrays(np.float64, (n,), elements=st.floats(-3, 3, width=64)))
    x0 = draw(hnp.arrays(np.float64, (n,), elements=st.floats(-3, 3, width=64)))
    return A, u, x0


def _exact_constant(A: np.ndarray, u: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """e(t) = A^{-1}(e^{At} - I) u, shape (T, n)."""
    n = A.shape[0]
    return np.stack([np.linalg.solve(A, (scipy.linalg.expm(A * t) - np.eye(n)) @ u) for t in ts])


@pytest.mark.slow  # ~15 s: two adaptive solves and T matrix exponentials per Hypothesis example
@given(data=hurwitz_and_inputs())
@example(data=(np.array([[-1.0]]), np.array([1.0]), np.array([0.0])))
@example(data=(np.array([[-1.0, 4.0], [0.0, -1.0]]), np.array([1.0, -2.0]), np.array([0.5, 0.5])))
def test_linear_departure_equals_closed_form(data):
    # Constant u: e(t) = A^{-1}(e^{At} - I) u (module docstring); D(t) = ||e(t)||_2, error in units of
    # the solver tolerance. Its time average: trapezoid of the exact D on the same grid.
    A, u, x0 = data
    ts = torch.linspace(0.0, 5.0, 26)
    res = drive_departure(_linear(torch.as_tensor(A), torch.as_tensor(u)), torch.as_tensor(x0), ts, SOLVER,
                          stability=_no_stability)
    D = np.linalg.norm(_exact_constant(A, u, ts.numpy()), axis=-1)
    err = np.abs(res.departure.numpy() - D) / (ATOL + RTOL * D)
    assert err.max() < C_TOL
    mean_exact = np.trapezoid(D, ts.numpy()) / 5.0
    assert abs(float(res.mean_departure) - mean_exact) / (ATOL + RTOL * mean_exact) < C_TOL


@pytest.mark.parametrize("a,u", [(-1.0, 1.0), (-0.3, -2.0), (-4.0, 0.5)])
def test_scalar_mean_departure_closed_form(a, u):
    # 1-D, constant u, common x0: e(s) = (u/a)(e^{as} - 1), D(s) = |u/a| (1 - e^{as}) (a < 0), whose
    # exact time average over [0, t] is |u/a| (1 - (e^{at} - 1)/(a t)). mean_departure uses the
    # trapezoidal rule on ts, error <= t h^2 max|D''| / (12 t) = h^2 |u a| / 12 (D'' = -|u/a| a^2 e^{as}).
    t_end, T = 6.0, 601
    ts = torch.linspace(0.0, t_end, T)
    h = t_end / (T - 1)
    res = drive_departure(_linear(torch.tensor([[a]]), torch.tensor([u])), torch.tensor([0.7]), ts, SOLVER,
                          stability=_no_stability)
    exact = abs(u / a) * (1 - math.expm1(a * t_end) / (a * t_end))
    quad_err = h**2 * abs(u * a) / 12
    assert abs(float(res.mean_departure) - exact) <= quad_err + C_TOL * (ATOL + RTOL * exact)


def test_time_varying_drive_departure_equals_duhamel_integral():
    # u(t) = b sin(w t): e(t) = int_0^t e^{A(t-s)} b sin(w s) ds, evaluated by adaptive quadrature
    # (scipy quad_vec, epsabs 1e-13) as an independent reference.
    A = np.array([[-0.5, 2.0, 0.0], [-2.0, -0.5, 0.0], [0.3, 0.0, -1.5]])
    b = np.array([1.0, 0.0, -2.0])
    w = 3.0
    ts = torch.linspace(0.0, 4.0, 9)
    u = lambda t: torch.as_tensor(b) * torch.sin(w * t)[..., None]  # noqa: E731
    res = drive_departure(_linear(torch.as_tensor(A), u), torch.tensor([1.0, 2.0, 3.0]), ts, SOLVER,
                          stability=_no_stability)
    for i, t in enumerate(ts.numpy()):
        ref, _ = scipy.integrate.quad_vec(lambda s: scipy.linalg.expm(A * (t - s)) @ b * math.sin(w * s), 0.0, t,
                                          epsabs=1e-13, epsrel=1e-12)
        D = np.linalg.norm(ref)
        assert abs(float(res.departure[i]) - D) / (ATOL + RTOL * D) < C_TOL


@pytest.mark.parametrize("a", [-1.0, -0.25, 0.4])
@pytest.mark.parametrize("drive", ["constant", "sine", "none"])
def test_scalar_conditional_exponent_equals_a_for_any_input(a, drive):
    # dx/dt = a x + u(t): the variational equation is d(dx)/dt = a dx whatever u, so every finite-time
    # conditional exponent equals a exactly (1-D: no frame alignment); error = solver error, ~ rtol.
    # Verdict: departs iff u != 0 (D = 0 identically for u = 0: the two fields are the same function),
    # stable iff a < 0.
    u = {"constant": lambda t: torch.tensor([1.5]), "sine": lambda t: 2.0 * torch.sin(4.0 * t)[..., None],
         "none": lambda t: torch.zeros(1)}[drive]
    sys = DrivenSystem(lambda t, x, args: a * x, lambda t, x, args: u(t).expand_as(x))
    res = drive_departure(sys, torch.tensor([0.3]), torch.linspace(0.0, 4.0, 21), SOLVER)
    assert isinstance(res, DriveResult) and isinstance(res.stability, LyapunovResult)
    assert float(res.exponent) == pytest.approx(a, abs=1e-6)
    assert bool(res.stable) == (a < 0)
    assert bool(res.departs) == (drive != "none")
    assert bool(res.verdict) == (a < 0 and drive != "none")
    if drive == "none":
        assert float(res.departure.abs().max()) == 0.0


def test_conditional_exponent_of_a_linear_system_is_max_re_eig():
    # n-D: exponents of d(dx)/dt = A dx are Re eig A (module docstring). A = diag(-0.4, -1, -2) is
    # normal, so the finite-time estimate from a frame q obeys
    # lambda_max + log|<v1, q>| / T <= lambda_1(T) <= lambda_max; over T = 40 with a generic q this
    # is within 0.1 of lambda_max = -0.4 (|<v1, q>| > e^{-4} fails with probability < 2%).
    A = torch.diag(torch.tensor([-0.4, -1.0, -2.0]))
    sys = _linear(A, lambda t: torch.stack([torch.sin(t), torch.cos(2 * t), torch.ones_like(t)], -1))
    res = drive_departure(sys, torch.zeros(3), torch.linspace(0.0, 40.0, 81), SOLVER)
    assert -0.4 - 0.1 <= float(res.exponent) <= -0.4 + 1e-6
    assert bool(res.verdict)


def test_the_three_constructors_agree():
    # The same dx/dt = A x + u three ways: split, full f with the input in args (baseline 0), and
    # a pair of full fields. Same trajectories and departures (the same arithmetic up to rounding).
    A = torch.tensor([[-1.0, 0.5], [0.0, -2.0]])
    u = torch.tensor([1.0, -1.0])
    split = _linear(A, u)
    base = DrivenSystem.from_baseline(lambda t, x, v: x @ A.T + v, baseline=torch.zeros(2), dim=2)
    pair = DrivenSystem.from_pair(lambda t, x, a: x @ A.T + u, lambda t, x, a: x @ A.T, dim=2)
    ts = torch.linspace(0.0, 3.0, 16)
    x0 = torch.tensor([[0.5, 0.5], [-1.0, 2.0]])
    r1 = drive_departure(split, x0, ts, SOLVER, stability=_no_stability)
    r2 = drive_departure(base, x0, ts, SOLVER, args=u, stability=_no_stability)
    r3 = drive_departure(pair, x0, ts, SOLVER, stability=_no_stability)
    for r in (r2, r3):
        torch.testing.assert_close(r.departure, r1.departure, atol=1e-14, rtol=0)
        torch.testing.assert_close(r.driven, r1.driven, atol=1e-14, rtol=0)
    x = torch.randn(4, 2)
    t = torch.tensor(0.3)
    for s, args in ((split, None), (base, u), (pair, None)):
        torch.testing.assert_close(s.drive_term(t, x, args), u.expand(4, 2), atol=1e-15, rtol=0)
        torch.testing.assert_close(s.undriven(t, x, args), x @ A.T, atol=1e-15, rtol=0)
    assert (split.mode, base.mode, pair.mode) == ("split", "baseline", "pair")
    assert r1.departure.shape == (2, 16) and r1.mean_departure.shape == (2,)


def test_pluggable_departure_and_stability():
    # A user's departure (the max-norm) and stability metrics (a constant tensor; minus a contraction
    # rate estimate) replace the defaults. For A = -I, u constant, x0 common: e(t) = (1 - e^{-t}) u,
    # so the max-norm departure is (1 - e^{-t}) max|u|; the Euclidean mu_2 of -I is -1.
    A = -torch.eye(3)
    u = torch.tensor([1.0, -4.0, 2.0])
    sys = _linear(A, u)
    ts = torch.linspace(0.0, 2.0, 11)
    maxnorm = lambda xd, xu: (xd - xu).abs().amax(-1)  # noqa: E731
    res = drive_departure(sys, torch.zeros(3), ts, SOLVER, departure=maxnorm,
                          stability=lambda f, x0, t, s, a: torch.tensor(0.25), threshold=1.0)
    expected = (1 - torch.exp(-ts)) * 4.0
    assert bool((((res.departure - expected).abs()) / (ATOL + RTOL * expected) < C_TOL).all())
    assert float(res.exponent) == 0.25 and res.stderr is None and res.stability is None
    assert bool(res.departs) and not bool(res.stable) and not bool(res.verdict)

    def minus_rate(f, x0, t, solver, args):
        return -contraction_rate(f, solver.solve(f, x0, t, args=args).ys, t=t, args=args).rate

    res2 = drive_departure(sys, torch.zeros(3), ts, SOLVER, stability=minus_rate)
    assert float(res2.exponent) == pytest.approx(-1.0, abs=1e-14)
    # The threshold: the exact mean of ||e|| = ||u|| (1 - e^{-s}) over [0, 2] is
    # ||u|| (1 - (1 - e^{-2})/2) = 2.6014 for ||u|| = sqrt(21); the trapezoidal rule with h = 0.2 is
    # within h^2 max|D''| / 12 = h^2 ||u|| / 12 = 0.0153 of it. Thresholds 0.02 either side decide.
    norm_u = math.sqrt(21)
    mean = norm_u * (1 - (1 - math.exp(-2)) / 2)
    quad_err = 0.2**2 * norm_u / 12
    assert float(res2.mean_departure) == pytest.approx(mean, abs=quad_err)
    above = drive_departure(sys, torch.zeros(3), ts, SOLVER, stability=minus_rate, threshold=mean - 0.02)
    below = drive_departure(sys, torch.zeros(3), ts, SOLVER, stability=minus_rate, threshold=mean + 0.02)
    assert bool(above.departs) and bool(above.verdict) and above.threshold == mean - 0.02
    assert not bool(below.departs) and not bool(below.verdict)


def test_euclidean_departure_and_default_metric_directly():
    xd = torch.tensor([[[3.0, 4.0], [0.0, 1.0]]])
    assert euclidean_departure(xd, torch.zeros(1, 2, 2)).tolist() == [[5.0, 1.0]]  # 3-4-5 and unit
    res = conditional_exponent(lambda t, x, a: -2.0 * x, torch.ones(3, 1), torch.linspace(0.0, 2.0, 5), SOLVER)
    # d(dx)/dt = -2 dx: exponent -2 exactly (1-D), for each of 3 members.
    torch.testing.assert_close(res.exponents, torch.full((3, 1), -2.0), atol=1e-6, rtol=0)


def test_ngc_drive_certified_system_departs_and_stays_stable():
    # A certified NGC system (small gain) with a drive u(t), built from the pair "with / without drive".
    # Contraction at rate c holds for every input (theory/12 section 3), so the conditional exponent
    # is <= -c (up to 3 standard errors), and a non-zero drive moves the trajectory: verdict True.
    g = torch.Generator().manual_seed(0)
    undriven = NGCSystem.random(2, 3, 2, gain=0.3, generator=g)
    A, B, C = undriven.states()
    amp = 2.0 * torch.randn(6, generator=g)
    driven = NGCSystem(A, B, C, group_sizes=[3, 3], drive=lambda t: amp * torch.sin(2 * t)[..., None])
    c = float(ngc_contraction_certificate(undriven).rate)
    sys = DrivenSystem.from_pair(driven, undriven)
    assert sys.dim == 6
    res = drive_departure(sys, torch.randn(2, 6, generator=g), torch.linspace(0.0, 10.0, 51), SOLVER)
    assert bool((res.exponent <= -c + 3 * res.stderr).all())
    assert bool(res.verdict.all())
    assert res.exponent.shape == (2,) and res.driven.shape == (2, 51, 6)


def test_float32():
    # Everything follows the input dtype; the scalar case a = -1, u = 1, x0 = 0: D(t) = 1 - e^{-t}.
    sys = DrivenSystem(lambda t, x, a: -x, lambda t, x, a: torch.ones_like(x))
    ts = torch.linspace(0.0, 2.0, 5, dtype=torch.float32)
    res = drive_departure(sys, torch.zeros(1, dtype=torch.float32), ts,
                          RungeKutta("dopri5", rtol=1e-4, atol=1e-6))
    assert res.departure.dtype == torch.float32 and res.exponent.dtype == torch.float32
    expected = 1 - torch.exp(-ts)
    assert bool(((res.departure - expected).abs() / (1e-6 + 1e-4 * expected) < C_TOL).all())
    assert float(res.exponent) == pytest.approx(-1.0, abs=1e-3)


def test_divergent_driven_trajectory_is_reported():
    # f0 = -x, d = x^2 + x + 1, so the driven field is x^2 + 1: from x0 = 1, x = tan(t + pi/4) blows up
    # at t = pi/4 < 2; from x0 = -3, x = tan(t - atan 3) only at t = atan 3 + pi/2 = 2.82 > 2. The
    # solve fails for member 0 only and the error names it (no silent NaN).
    sys = DrivenSystem(lambda t, x, a: x**2 * 0.0 - x, lambda t, x, a: x**2 + x + 1.0)
    solver = RungeKutta("dopri5", rtol=1e-6, atol=1e-8, max_steps=2000)
    with pytest.raises(SolveError, match=r"1 of 2 batch member\(s\) failed"):
        drive_departure(sys, torch.tensor([[1.0], [-3.0]]), torch.linspace(0.0, 2.0, 5), solver)


def test_errors():
    sys = DrivenSystem(lambda t, x, a: -x, lambda t, x, a: torch.ones_like(x), dim=1)
    ts = torch.linspace(0.0, 1.0, 3)
    x0 = torch.zeros(1)
    with pytest.raises(TypeError, match=r"`system` must be a DrivenSystem.*got function"):
        drive_departure(lambda t, x, a: -x, x0, ts, SOLVER)
    with pytest.raises(TypeError, match=r"`solver` must be an ngcdyn solver object.*got str"):
        drive_departure(sys, x0, ts, "dopri5")
    with pytest.raises(ValueError, match=r"`t_eval` must be a 1-D tensor of at least 2 increasing times"):
        drive_departure(sys, x0, torch.tensor([0.0]), SOLVER)
    with pytest.raises(ValueError, match=r"`t_eval` must be a 1-D tensor"):
        drive_departure(sys, x0, torch.zeros(2, 3), SOLVER)
    with pytest.raises(ValueError, match=r"`t_eval` must be finite and strictly increasing"):
        drive_departure(sys, x0, torch.tensor([0.0, 1.0, 1.0]), SOLVER)
    with pytest.raises(TypeError, match=r"`t_eval` has dtype torch.float32"):
        drive_departure(sys, x0, ts.float(), SOLVER)
    with pytest.raises(TypeError, match=r"`t_eval` must be a 1-D tensor of increasing times, got list"):
        drive_departure(sys, x0, [0.0, 1.0], SOLVER)
    with pytest.raises(ValueError, match=r"`threshold` must be finite and >= 0.*-1.0"):
        drive_departure(sys, x0, ts, SOLVER, threshold=-1.0)
    with pytest.raises(ValueError, match=r"`x0` must have last dimension n=1"):
        drive_departure(sys, torch.zeros(2), ts, SOLVER)
    with pytest.raises(ValueError, match=r"`departure` must return one value per batch member and time.*\(3,\)"):
        drive_departure(sys, x0, ts, SOLVER, departure=lambda a, b: (a - b).norm(), stability=_no_stability)
    with pytest.raises(ValueError, match=r"`stability` must give one exponent per batch member, shape \(\)"):
        drive_departure(sys, x0, ts, SOLVER, stability=lambda *a: torch.zeros(3))
    with pytest.raises(TypeError, match=r"`stability` must return a tensor"):
        drive_departure(sys, x0, ts, SOLVER, stability=lambda *a: -1.0)
    with pytest.raises(ValueError, match=r"The stability metric is NaN for the batch members at flat indices \[1\]"):
        drive_departure(sys, torch.zeros(2, 1), ts, SOLVER, stability=lambda *a: torch.tensor([-1.0, math.nan]))
    with pytest.raises(TypeError, match=r"`departure` must be callable"):
        drive_departure(sys, x0, ts, SOLVER, departure="l2")
    with pytest.raises(TypeError, match=r"`f0` must be callable"):
        DrivenSystem(None, lambda t, x, a: x)
    with pytest.raises(TypeError, match=r"`drive` must be callable"):
        DrivenSystem(lambda t, x, a: x, 1.0)
    with pytest.raises(TypeError, match=r"`f` must be callable"):
        DrivenSystem.from_baseline(3, baseline=0.0)
    with pytest.raises(TypeError, match=r"`undriven` must be callable"):
        DrivenSystem.from_pair(lambda t, x, a: x, None)
    with pytest.raises(ValueError, match=r"`dim` must be a positive integer"):
        DrivenSystem(lambda t, x, a: x, lambda t, x, a: x, dim=0)
