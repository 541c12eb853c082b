"""Tests of the library of canonical systems (ngcdyn/systems/_library.py).

Every expected value carries its derivation or source beside the assertion. Sources of the
published spectra are those of REFERENCES.md section 1 (Sprott's tables).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.integrate import quad, solve_ivp

from ngcdyn.systems import (
    SYSTEMS,
    AbstractMap,
    AbstractVectorField,
    HarmonicOscillator,
    HenonMap,
    LinearMap,
    LinearSystem,
    LogisticMap,
    Lorenz,
    RateNetwork,
    Rossler,
    VanDerPol,
    autodiff_jacobian,
)

# Round-off tolerances for float64 identities between two evaluations of the same formula
# (analytic vs autodiff, batched vs loop): a few ulps times the magnitudes involved (<= 1e2).
TIGHT = dict(rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Systems under test, and valid states for them
# --------------------------------------------------------------------------------------------


def _rand_matrix(n: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, n, generator=g, dtype=torch.float64)


# name -> factory of one system of each kind (reference and non-reference parameters). Their
# test states (_states) are 3 * N(0, 1), except the logistic map's, uniform in [0, 1].
CASES = {
    "linear3": lambda: LinearSystem(_rand_matrix(3, 1)),
    "harmonic": lambda: HarmonicOscillator(1.7),
    "vanderpol": lambda: VanDerPol(3.0),
    "lorenz": lambda: Lorenz(),
    "lorenz_other": lambda: Lorenz(sigma=3.0, rho=0.5, beta=1.0),
    "rossler": lambda: Rossler(),
    "rate": lambda: RateNetwork.random(7, 1.5, generator=torch.Generator().manual_seed(3)),
    "rate_diag": lambda: RateNetwork.random(
        5, 0.8, zero_diagonal=False, generator=torch.Generator().manual_seed(4)
    ),
    "henon": lambda: HenonMap(),
    "logistic": lambda: LogisticMap(3.7),
    "linearmap": lambda: LinearMap(_rand_matrix(4, 2)),
}


def _states(system, batch: tuple[int, ...], seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if isinstance(system, LogisticMap):
        return torch.rand(*batch, 1, generator=g, dtype=torch.float64).to(dtype)
    return (3.0 * torch.randn(*batch, system.dim, generator=g, dtype=torch.float64)).to(dtype)


def _apply(system, y: torch.Tensor, t=0.0) -> torch.Tensor:
    return system(y) if isinstance(system, AbstractMap) else system(t, y)


def _jac(system, y: torch.Tensor, t=0.0) -> torch.Tensor:
    return system.jacobian(y) if isinstance(system, AbstractMap) else system.jacobian(t, y)


# --------------------------------------------------------------------------------------------
# Analytic Jacobians
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [(6,), (2, 3), ()], ids=["b6", "b2x3", "unbatched"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_analytic_jacobian_matches_autodiff(name, batch):
    system = CASES[name]()
    assert system.has_analytic_jacobian
    y = _states(system, batch, seed=11)
    J = _jac(system, y)
    assert J.shape == (*batch, system.dim, system.dim)
    # Reference: forward-mode autodiff of the vector field itself (independent of _jacobian_impl).
    J_ad = autodiff_jacobian(lambda v: _apply(system, v), y)
    torch.testing.assert_close(J, J_ad, **TIGHT)


@pytest.mark.parametrize(
    "system, member",
    [
        (VanDerPol(torch.tensor([0.5, 2.0, 7.0])), lambda i: VanDerPol([0.5, 2.0, 7.0][i])),
        (HarmonicOscillator(torch.tensor([0.5, 1.0, 3.0])),
         lambda i: HarmonicOscillator([0.5, 1.0, 3.0][i])),
        (Lorenz(sigma=torch.tensor([5.0, 10.0, 16.0]), rho=20.0),
         lambda i: Lorenz(sigma=[5.0, 10.0, 16.0][i], rho=20.0)),
        (Rossler(c=torch.tensor([4.0, 5.7, 9.0])), lambda i: Rossler(c=[4.0, 5.7, 9.0][i])),
        (HenonMap(b=torch.tensor([0.1, 0.3, -0.2])), lambda i: HenonMap(b=[0.1, 0.3, -0.2][i])),
        (LogisticMap(torch.tensor([1.0, 3.5, 4.0])), lambda i: LogisticMap([1.0, 3.5, 4.0][i])),
        (LinearSystem(torch.stack([_rand_matrix(3, s) for s in range(3)])),
         lambda i: LinearSystem(_rand_matrix(3, i))),
        (LinearMap(torch.stack([_rand_matrix(3, s) for s in range(3)])),
         lambda i: LinearMap(_rand_matrix(3, i))),
        (RateNetwork(torch.stack([_rand_matrix(4, s, 0.7) for s in range(3)])),
         lambda i: RateNetwork(_rand_matrix(4, i, 0.7))),
    ],
    ids=["vanderpol", "harmonic", "lorenz", "rossler", "henon", "logistic", "linear", "linearmap",
         "rate"],
)
def test_batched_parameters_equal_loop_over_members(system, member):
    assert system.batch_shape == (3,)
    y = _states(member(0), (3,), seed=5)  # member i of the batch gets state y[i]
    out, J = _apply(system, y), _jac(system, y)
    assert out.shape == (3, system.dim) and J.shape == (3, system.dim, system.dim)
    for i in range(3):
        single = member(i)
        torch.testing.assert_close(out[i], _apply(single, y[i]), rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(J[i], _jac(single, y[i]), rtol=1e-14, atol=1e-14)
        # The analytic Jacobian of each member also equals its autodiff Jacobian.
        torch.testing.assert_close(
            J[i], autodiff_jacobian(lambda v: _apply(single, v), y[i : i + 1])[0], **TIGHT
        )


def test_batched_parameters_broadcast_against_one_state():
    A = torch.stack([_rand_matrix(3, s) for s in range(4)])  # (4, 3, 3)
    y = torch.tensor([1.0, -2.0, 0.5])
    out = LinearSystem(A)(0.0, y)
    # Broadcasting (4, 3, 3) @ (3,) gives one output per parameter member.
    torch.testing.assert_close(out, A @ y, rtol=1e-15, atol=1e-15)
    out = VanDerPol(torch.tensor([[1.0], [2.0]]))(0.0, torch.zeros(3, 2) + torch.tensor([2.0, 1.0]))
    # mu (2, 1) against batch (3,): shape (2, 3, 2); y' = mu (1 - 4) * 1 - 2 = -3 mu - 2.
    assert out.shape == (2, 3, 2)
    torch.testing.assert_close(out[..., 1], torch.tensor([[-5.0] * 3, [-8.0] * 3]), rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Exact solutions
# --------------------------------------------------------------------------------------------


@st.composite
def square_matrices(draw, min_n: int = 1, max_n: int = 4, bound: float = 2.0):
    n = draw(st.integers(min_n, max_n))
    # No subnormal entries (< 2.2e-308): LAPACK does not handle them reliably (numpy and torch even
    # disagree on whether [[a, a], [a, a]] with a = 5e-324 is singular). Tiny normal entries stay.
    elements = st.floats(
        -bound, bound, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=64
    )
    return draw(arrays(np.float64, (n, n), elements=elements))


def _time_derivative(system, t: torch.Tensor, y0: torch.Tensor):
    """(y(t), dy/dt) of the exact solution, by forward-mode autodiff in t (per member)."""
    return torch.func.jvp(lambda s: system.exact_solution(s, y0), (t,), (torch.ones_like(t),))


@given(A=square_matrices(), t_scale=st.floats(0.0, 2.0))
@example(A=np.array([[-1.0, 3.0], [0.0, -1.0]]), t_scale=1.0)  # defective (Jordan block)
@example(A=np.zeros((3, 3)), t_scale=0.5)  # y(t) = y0
@example(A=np.array([[0.0, 1.0], [-1.0, 0.0]]), t_scale=2.0)  # rotation
def test_linear_exact_solution_satisfies_the_ode(A, t_scale):
    system = LinearSystem(torch.from_numpy(A))
    n = A.shape[0]
    y0 = torch.linspace(-1.0, 1.0, 3 * n).reshape(3, n)
    t = t_scale * torch.tensor([0.3, 1.0, 0.7])  # one time per batch member
    y, dydt = _time_derivative(system, t, y0)
    # d/dt expm(A t) y0 = A expm(A t) y0 = f(y(t)); the scale bounds |A| |y| (|A| <= 2n).
    scale = 1.0 + y.abs().max() * 2 * n
    torch.testing.assert_close(dydt, system(t, y), rtol=0, atol=1e-12 * scale)
    # At t = 0 the solution is the initial state (expm(0) = I).
    torch.testing.assert_close(system.exact_solution(0.0, y0), y0, rtol=0, atol=1e-15)


@given(omega=st.floats(0.05, 20.0), t=st.floats(-5.0, 5.0))
@example(omega=1.0, t=0.0)
def test_harmonic_exact_solution_satisfies_ode_and_conserves_energy(omega, t):
    system = HarmonicOscillator(omega)
    y0 = torch.tensor([[1.0, 0.0], [0.3, -2.0], [-1.5, 0.7]])
    tt = torch.full((3,), t)
    y, dydt = _time_derivative(system, tt, y0)
    scale = 1.0 + (omega**2 + 1.0) * y.abs().max()
    torch.testing.assert_close(dydt, system(tt, y), rtol=0, atol=1e-12 * scale)
    energy = lambda s: omega**2 * s[..., 0] ** 2 + s[..., 1] ** 2  # conserved: d/dt = 0
    torch.testing.assert_close(energy(y), energy(y0), rtol=1e-12, atol=1e-12)


def test_harmonic_exact_solution_equals_matrix_exponential():
    # Cross-implementation: [[0, 1], [-w^2, 0]] is the same flow, solved by matrix_exp.
    w = torch.tensor([0.5, 2.0, 3.0])
    A = torch.stack([torch.tensor([[0.0, 1.0], [-wi**2, 0.0]]) for wi in w])
    y0 = torch.tensor([[1.0, 2.0], [-0.5, 0.1], [0.0, 1.0]])
    t = torch.tensor([1.3, 0.2, 4.0])
    torch.testing.assert_close(
        HarmonicOscillator(w).exact_solution(t, y0), LinearSystem(A).exact_solution(t, y0), **TIGHT
    )


@pytest.mark.parametrize(
    "system",
    [
        LinearSystem(_rand_matrix(3, 7)),
        HarmonicOscillator(2.5),
        LinearSystem(torch.tensor([[0.2]])),
    ],
    ids=["linear3", "harmonic", "scalar"],
)
def test_exact_solution_agrees_with_scipy_dop853(system):
    rtol = atol = 1e-12
    y0 = torch.linspace(-1.0, 1.0, system.dim)
    t_eval = np.array([0.25, 1.0, 2.0, 3.0])
    ref = solve_ivp(
        lambda t, y: system(t, torch.from_numpy(y)).numpy(),
        (0.0, 3.0), y0.numpy(), method="DOP853", rtol=rtol, atol=atol, t_eval=t_eval,
    )
    assert ref.success
    y_ref = torch.from_numpy(ref.y.T)  # (T, n)
    y = system.exact_solution(torch.from_numpy(t_eval), y0.expand(len(t_eval), -1))
    err = (y - y_ref).abs() / (atol + rtol * y_ref.abs())
    # DOP853's global error over a few time units is a small multiple of its local tolerance
    # (measured: below 3 units on random 3x3 systems); 50 units leaves margin without hiding a bug
    # (a wrong sign or factor in the exact solution gives errors of order 1e11 units).
    assert float(err.max()) < 50.0


def test_exact_solution_semigroup_and_batched_times():
    system = LinearSystem(torch.stack([_rand_matrix(3, s) for s in range(2)]))  # (2, 3, 3)
    y0 = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    s, t = torch.tensor([0.4, 1.1]), torch.tensor([0.9, 0.3])
    # Phi(s + t) = Phi(t) Phi(s) for an autonomous flow.
    torch.testing.assert_close(
        system.exact_solution(s + t, y0),
        system.exact_solution(t, system.exact_solution(s, y0)), **TIGHT,
    )
    # Per-member times equal a loop over members with their own A and t.
    y = system.exact_solution(t, y0)
    for i in range(2):
        single = LinearSystem(system.A[i])
        torch.testing.assert_close(y[i], single.exact_solution(t[i], y0[i]), rtol=1e-14, atol=1e-14)


def test_systems_without_exact_solution_say_so():
    with pytest.raises(NotImplementedError, match="VanDerPol has no exact solution"):
        VanDerPol().exact_solution(1.0, torch.zeros(2))
    assert not Lorenz.has_exact_solution and LinearSystem.has_exact_solution


# --------------------------------------------------------------------------------------------
# Ground truth: published values and exact identities
# --------------------------------------------------------------------------------------------


def test_lorenz_ground_truth_is_consistent():
    gt = Lorenz().ground_truth
    lam = gt.lyapunov_exponents
    assert lam == (0.9056, 0.0, -14.5723)  # Sprott, lorenzle page (REFERENCES.md section 1)
    # Liouville: div f = -(sigma + 1 + beta) = -(10 + 1 + 8/3) = -13.6667 is constant, so the
    # published exponents must sum to it; each is rounded to 4 decimals (error <= 1.5e-4 in all).
    exact_sum = float(Lorenz().exact_exponent_sum())
    assert exact_sum == pytest.approx(-(10.0 + 1.0 + 8.0 / 3.0), abs=1e-15)
    assert abs(sum(lam) - exact_sum) < 1e-3
    assert abs(sum(lam) - (-13.6667)) < 1e-3
    # Kaplan-Yorke: D = 2 + lambda_1 / |lambda_3| = 2.062145...; Sprott's 2.0622 agrees to rounding.
    assert abs(2 + lam[0] / abs(lam[2]) - gt.kaplan_yorke_dimension) < 1e-4


def test_ground_truth_only_at_reference_parameters():
    assert Lorenz(rho=20.0).ground_truth.lyapunov_exponents is None
    assert Lorenz(sigma=torch.tensor([10.0, 10.0])).ground_truth.lyapunov_exponents is None
    assert Rossler(c=9.0).ground_truth.lyapunov_exponents is None
    assert HenonMap(a=1.2).ground_truth.lyapunov_exponents is None
    assert LogisticMap(3.9).ground_truth.lyapunov_exponents is None
    # A float32 reference parameter is the reference value up to float32 rounding.
    f32 = Lorenz(sigma=torch.tensor(10.0, dtype=torch.float32),
                 beta=torch.tensor(8.0 / 3.0, dtype=torch.float32))
    assert f32.ground_truth.lyapunov_exponents == (0.9056, 0.0, -14.5723)
    assert Lorenz().ground_truth.params == {"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0}


def test_henon_ground_truth_is_consistent():
    gt = HenonMap().ground_truth
    lam = gt.lyapunov_exponents
    assert lam == (0.419217, -1.623190)  # Sprott, lespec page (REFERENCES.md section 1)
    # det J = -b everywhere, so lambda_1 + lambda_2 = ln|b| = ln 0.3 = -1.2039728; the published
    # values are rounded to 6 decimals (error <= 1e-6).
    assert float(HenonMap().exact_exponent_sum()) == pytest.approx(math.log(0.3), abs=1e-15)
    assert abs(sum(lam) - math.log(0.3)) < 1e-5
    # Kaplan-Yorke: 1 + 0.419217 / 1.623190 = 1.258267..., stored rounded to 4 decimals.
    assert gt.kaplan_yorke_dimension == pytest.approx(1 + 0.419217 / 1.623190, abs=5e-5)


@given(
    xy=arrays(np.float64, (5, 2), elements=st.floats(-10, 10, width=64)),
    a=st.floats(-3, 3), b=st.floats(-2, 2),
)
@example(xy=np.zeros((5, 2)), a=1.4, b=0.3)
def test_henon_jacobian_determinant_is_minus_b_everywhere(xy, a, b):
    F = HenonMap(a, b)
    det = torch.linalg.det(F.jacobian(torch.from_numpy(xy)))
    # det [[-2 a x, 1], [b, 0]] = -b, for every state.
    torch.testing.assert_close(det, torch.full((5,), -b), rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_rossler_exponent_sum_matches_the_time_average_of_the_divergence():
    a, b, c = Rossler.REFERENCE_PARAMS.values()
    lam = Rossler().ground_truth.lyapunov_exponents
    assert lam == (0.0714, 0.0, -5.3943)  # Sprott (2003), common chaotic flows

    # div f = a + x - c, so sum(lambda) = a - c + <x>, with <x> the time average on the attractor.
    def rhs(t, u):  # Rossler plus the running integral of x
        return [-u[1] - u[2], u[0] + a * u[1], b + u[2] * (u[0] - c), u[0]]

    u0 = solve_ivp(rhs, (0, 100), [1.0, 1.0, 1.0, 0.0], rtol=1e-9, atol=1e-9).y[:, -1]  # transient
    T = 5000.0
    run = solve_ivp(rhs, (0, T), [*u0[:3], 0.0], method="DOP853", rtol=1e-9, atol=1e-9)
    mean_x = run.y[3, -1] / T
    # Over T = 5000 the sample std of <x> measured over independent windows is about 1.5e-3
    # (values 0.1747-0.1776); 1e-2 is ~6 sigma, while Sprott's 4-decimal rounding adds < 1e-4.
    # A wrong lambda_3 (e.g. -5.145) would miss by 0.25.
    assert abs(sum(lam) - (a - c + mean_x)) < 1e-2


def test_rossler_kaplan_yorke_dimension():
    lam = Rossler().ground_truth.lyapunov_exponents
    # 2 + 0.0714 / 5.3943 = 2.013236..., stored to 4 decimals.
    D = Rossler().ground_truth.kaplan_yorke_dimension
    assert D == pytest.approx(2 + lam[0] / -lam[2], abs=5e-5)


def test_logistic_r4_exponent_is_ln2_by_the_invariant_density():
    (lam,) = LogisticMap(4.0).ground_truth.lyapunov_exponents
    F = LogisticMap(4.0)
    # lambda = ∫ ln|F'(x)| rho(x) dx with rho = 1/(pi sqrt(x(1-x))); substituting
    # x = (1 - cos phi)/2 gives (1/pi) ∫_0^pi ln|F'(x(phi))| dphi (log singularity at phi = pi/2).
    def integrand(phi):
        x = torch.tensor([[(1 - math.cos(phi)) / 2]])
        return math.log(abs(float(F.jacobian(x)))) / math.pi

    value, _ = quad(integrand, 0, math.pi, points=[math.pi / 2], limit=200)
    assert lam == math.log(2.0)
    assert abs(value - lam) < 1e-8  # quad's absolute error estimate is ~1e-10 here


@given(A=square_matrices())
@example(A=np.array([[-1.0, 3.0], [0.0, -1.0]]))  # defective: eigenvalue -1 twice
@example(A=np.array([[0.0, 2.0], [-2.0, -1.0]]))  # complex pair: real parts -0.5, -0.5
@example(A=np.diag([0.1, -0.4]))  # ChaosTools' diag test
def test_linear_exponents_are_sorted_real_parts_of_eigenvalues(A):
    system = LinearSystem(torch.from_numpy(A))
    exps = system.exact_exponents()
    assert system.ground_truth.lyapunov_exponents == tuple(exps.tolist())
    # Sum of exponents = tr A, for every matrix: the trace is perfectly conditioned, so the sum of
    # computed eigenvalues carries round-off only (n eps ||A|| < 1e-14).
    torch.testing.assert_close(exps.sum(), torch.tensor(np.trace(A)), rtol=0, atol=1e-12)
    # Against numpy's independent eigensolver, where the eigenvalues are well conditioned:
    # Bauer-Fike bounds each eigenvalue's error by cond(V) eps ||A|| <= 1e6 * 2.2e-16 * 8 = 2e-9.
    # (Nearly defective matrices are left to the triangular test below, whose answer is exact.)
    eigvals, V = np.linalg.eig(A)
    if np.linalg.cond(V) < 1e6:
        expected = np.sort(eigvals.real)[::-1].copy()
        torch.testing.assert_close(exps, torch.from_numpy(expected), rtol=0, atol=1e-8)
    torch.testing.assert_close(
        system.exact_exponent_sum(), torch.tensor(np.trace(A)), rtol=0, atol=1e-15
    )


@given(T=arrays(np.float64, (4, 4), elements=st.floats(-3, 3, width=64)))
@example(T=np.eye(4) * -1.0 + np.diag([3.0, 1.0, 1.0], k=1))  # one 4 x 4 Jordan block
def test_linear_exponents_of_triangular_matrices_are_the_sorted_diagonal(T):
    A = np.triu(T)  # eigenvalues of a triangular matrix are its diagonal, exactly
    exps = LinearSystem(torch.from_numpy(A)).exact_exponents()
    expected = torch.from_numpy(np.sort(np.diag(A))[::-1].copy())
    torch.testing.assert_close(exps, expected, rtol=0, atol=1e-12)


def test_linear_batched_exponents_and_measures_equal_loop():
    A = torch.stack([_rand_matrix(3, s) for s in range(5)]).reshape(5, 1, 3, 3)
    system = LinearSystem(A)
    assert system.ground_truth.lyapunov_exponents is None  # batched: use the methods
    exps = system.exact_exponents()
    assert exps.shape == (5, 1, 3)
    for i in range(5):
        single = LinearSystem(A[i, 0])
        torch.testing.assert_close(exps[i, 0], single.exact_exponents(), rtol=1e-14, atol=1e-14)
        for norm in (1, 2, math.inf):
            torch.testing.assert_close(
                system.exact_mu(norm)[i, 0], single.exact_mu(norm), rtol=1e-14, atol=1e-14
            )


@pytest.mark.parametrize("a", [0.0, 1.0, -3.0, 4.0])
def test_mu2_of_the_nonnormal_reference_matrix(a):
    system = LinearSystem(torch.tensor([[-1.0, a], [0.0, -1.0]]))
    # REFERENCES.md: mu_2([[-1, a], [0, -1]]) = -1 + |a|/2 (symmetric part [[-1, a/2], [a/2, -1]]),
    # exponents -1, -1: not contracting in the identity metric for |a| > 2.
    assert float(system.exact_mu(2)) == pytest.approx(-1 + abs(a) / 2, abs=1e-14)
    assert system.ground_truth.contraction_rate == pytest.approx(1 - abs(a) / 2, abs=1e-14)
    assert system.ground_truth.lyapunov_exponents == (-1.0, -1.0)
    # mu_1: columns (-1, |a| - 1) -> max(-1, |a| - 1); mu_inf: rows (|a| - 1, -1) -> the same.
    assert float(system.exact_mu(1)) == max(-1.0, abs(a) - 1)
    assert float(system.exact_mu("inf")) == max(-1.0, abs(a) - 1)


def test_mu1_and_muinf_by_hand():
    A = torch.tensor([[-4.0, 1.0, -2.0], [3.0, -1.0, 0.5], [0.0, -2.0, -6.0]])
    # mu_1 (columns, a_jj + sum_{i != j} |a_ij|): -4+3+0 = -1, -1+1+2 = 2, -6+2+0.5 = -3.5 -> 2.
    # mu_inf (rows, a_ii + sum_{j != i} |a_ij|): -4+1+2 = -1, -1+3+0.5 = 2.5, -6+0+2 = -4 -> 2.5.
    system = LinearSystem(A)
    assert float(system.exact_mu(1)) == 2.0
    assert float(system.exact_mu(math.inf)) == 2.5


@given(A=square_matrices(bound=1.0), norm=st.sampled_from([1, 2, math.inf]))
@example(A=np.array([[-1.0, 3.0], [0.0, -1.0]]), norm=2)
def test_mu_is_the_derivative_of_the_induced_norm_at_identity(A, norm):
    # Definition (Desoer & Vidyasagar II.8): mu(A) = lim_{h->0+} (||I + h A|| - 1)/h; the one-sided
    # difference quotient differs from the limit by O(h ||A||^2) <= h n^2 (entries <= 1, n <= 4).
    At = torch.from_numpy(A)
    n = A.shape[0]
    h = 1e-7
    quotient = (torch.linalg.matrix_norm(torch.eye(n) + h * At, ord=norm) - 1) / h
    mu = LinearSystem(At).exact_mu(norm)
    # Round-off of the quotient: ~eps/h = 2e-9; truncation <= h n^2 = 1.6e-6.
    assert abs(float(quotient - mu)) < 2e-6
    # The spectral abscissa never exceeds a matrix measure (Desoer & Vidyasagar II.8, property 4).
    assert float(LinearSystem(At).exact_exponents()[0]) <= float(mu) + 1e-12


@pytest.mark.parametrize("omega", [0.3, 1.0, 2.5])
def test_harmonic_contraction_rate_is_minus_mu2_of_the_jacobian(omega):
    system = HarmonicOscillator(omega)
    J = system.jacobian(0.0, _states(system, (4,)))
    mu2 = torch.linalg.eigvalsh(0.5 * (J + J.transpose(-1, -2)))[..., -1]
    # Derived: the symmetric part [[0, (1 - w^2)/2], [(1 - w^2)/2, 0]] has eigenvalues
    # ±|1 - w^2|/2.
    torch.testing.assert_close(mu2, torch.full((4,), abs(1 - omega**2) / 2), rtol=0, atol=1e-14)
    assert system.ground_truth.contraction_rate == pytest.approx(-abs(1 - omega**2) / 2, abs=1e-15)
    assert system.ground_truth.lyapunov_exponents == (0.0, 0.0)


def test_vanderpol_with_mu_zero_is_the_unit_harmonic_oscillator():
    y = _states(VanDerPol(), (5,))
    torch.testing.assert_close(
        VanDerPol(0.0)(0.0, y), HarmonicOscillator(1.0)(0.0, y), rtol=0, atol=0
    )
    torch.testing.assert_close(
        VanDerPol(0.0).jacobian(0.0, y), HarmonicOscillator(1.0).jacobian(0.0, y), rtol=0, atol=0
    )
    # lambda_2 has no closed form: the ground truth must not pretend to know it.
    assert VanDerPol(2.0).ground_truth.lyapunov_exponents is None
    assert "time average of mu (1 - x^2)" in VanDerPol(2.0).ground_truth.reference


def test_vanderpol_parameters_are_differentiable():
    mu = torch.tensor([1.5, 4.0], requires_grad=True)
    y = torch.tensor([[2.0, 1.0], [0.5, -3.0]])
    out = VanDerPol(mu)(0.0, y)
    out[..., 1].sum().backward()
    # d/dmu [mu (1 - x^2) y - x] = (1 - x^2) y: (1 - 4) * 1 = -3 and (1 - 0.25) * (-3) = -2.25.
    torch.testing.assert_close(mu.grad, torch.tensor([-3.0, -2.25]), rtol=0, atol=1e-15)


# --------------------------------------------------------------------------------------------
# Rate network
# --------------------------------------------------------------------------------------------


@given(
    x=arrays(np.float64, (3, 8), elements=st.floats(-20, 20, width=64)),
    g=st.floats(0.0, 5.0),
    seed=st.integers(0, 2**16),
)
@example(x=np.zeros((3, 8)), g=2.0, seed=0)
def test_rate_network_trace_is_minus_n_everywhere_with_zero_diagonal(x, g, seed):
    net = RateNetwork.random(8, g, generator=torch.Generator().manual_seed(seed))
    tr = torch.diagonal(net.jacobian(0.0, torch.from_numpy(x)), dim1=-2, dim2=-1).sum(-1)
    # tr(-I + J diag(sech^2 x)) = -n + sum_i J_ii sech^2(x_i) = -n when diag(J) = 0 (exactly:
    # the diagonal products are 0 * sech^2 = 0).
    torch.testing.assert_close(tr, torch.full((3,), -8.0), rtol=0, atol=0)
    assert float(net.exact_exponent_sum()) == -8.0


def test_rate_network_random_statistics_and_reproducibility():
    n, g = 200, 1.5
    net = RateNetwork.random(n, g, generator=torch.Generator().manual_seed(123))
    J = net.J
    assert J.shape == (n, n) and J.dtype == torch.float64
    assert bool((torch.diagonal(J) == 0).all())
    off = J[~torch.eye(n, dtype=torch.bool)] * math.sqrt(n) / g  # should be N(0, 1), 39,800 draws
    # Sample variance of N = 39,800 standard normals has std sqrt(2/N) = 0.0071 and the sample
    # mean has std 1/sqrt(N) = 0.005: 5 sigma bounds.
    assert abs(float(off.var()) - 1.0) < 5 * math.sqrt(2 / off.numel())
    assert abs(float(off.mean())) < 5 / math.sqrt(off.numel())
    same = RateNetwork.random(n, g, generator=torch.Generator().manual_seed(123))
    torch.testing.assert_close(same.J, J, rtol=0, atol=0)  # same seed, same network
    with_diag = RateNetwork.random(
        n, g, zero_diagonal=False, generator=torch.Generator().manual_seed(123)
    )
    assert bool((torch.diagonal(with_diag.J) != 0).all())
    f32 = RateNetwork.random(4, g, dtype=torch.float32, device="cpu")
    assert f32.J.dtype == torch.float32 and f32.J.device.type == "cpu"


def test_rate_network_contracting_case_has_exact_exponents():
    net = RateNetwork.random(20, 0.3, generator=torch.Generator().manual_seed(9))
    # ||J||_2 ~ 2 g = 0.6 < 1: contraction certified, every trajectory converges to 0, and the
    # exponents are those of the linearisation -I + J (a LinearSystem), i.e. Re eig(J - I).
    bound = float(net.contraction_rate_bound())
    assert 0.2 < bound < 0.6  # 1 - ||J||_2 with ||J||_2 near 2 g = 0.6 (finite-n fluctuation)
    lin = LinearSystem(net.J - torch.eye(20))
    torch.testing.assert_close(
        net.fixed_point_exponents(), lin.exact_exponents(), rtol=0, atol=1e-14
    )
    assert net.ground_truth.lyapunov_exponents == tuple(lin.exact_exponents().tolist())
    assert net.ground_truth.kaplan_yorke_dimension == 0.0
    # The certificate: mu_2 of the Jacobian <= -(1 - ||J||_2) at every state (an inequality by
    # theorem, checked at spread-out states including saturated ones).
    Jx = net.jacobian(0.0, 4.0 * torch.randn(64, 20))
    mu2 = torch.linalg.eigvalsh(0.5 * (Jx + Jx.transpose(-1, -2)))[..., -1]
    assert float(mu2.max()) <= -bound + 1e-12
    # Chaotic regime: no exact spectrum is claimed.
    assert RateNetwork.random(20, 2.0).ground_truth.lyapunov_exponents is None


def test_rate_network_exponent_sum_needs_zero_diagonal():
    net = CASES["rate_diag"]()
    with pytest.raises(ValueError, match=r"exactly -n only when diag\(J\) = 0.*zero_diagonal=True"):
        net.exact_exponent_sum()


# --------------------------------------------------------------------------------------------
# Linear map
# --------------------------------------------------------------------------------------------


def test_linear_map_exponents():
    F = LinearMap(torch.diag(torch.tensor([1.1, 0.8])))
    # ChaosTools' map test: exponents of diag(1.1, 0.8) are (ln 1.1, ln 0.8).
    expected = (math.log(1.1), math.log(0.8))
    assert F.ground_truth.lyapunov_exponents == pytest.approx(expected, abs=1e-15)
    # s R(theta): eigenvalues s e^{±i theta}, both of modulus s -> exponents (ln s, ln s).
    s, th = 0.7, 0.9
    R = s * torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    torch.testing.assert_close(
        LinearMap(R).exact_exponents(), torch.full((2,), math.log(s)), rtol=0, atol=1e-14
    )
    assert LinearMap(R).ground_truth.kaplan_yorke_dimension == 0.0  # both negative: the origin


@given(A=square_matrices())
@example(A=np.array([[1.0, 2.0], [2.0, 4.0]]))  # singular: det = 0, one exponent -inf
def test_linear_map_exponent_sum_is_log_abs_det(A):
    F = LinearMap(torch.from_numpy(A))
    total = float(F.exact_exponent_sum())
    n = A.shape[0]
    svals = np.linalg.svd(A, compute_uv=False)
    # |det A| = prod sigma_i <= sigma_max^n (a bound, hence one-sided), for every matrix.
    assert total <= n * math.log(max(svals[0], 1e-300)) + 1e-9
    if svals[-1] == 0 or svals[0] / svals[-1] > 1e8:
        # (Nearly) singular: ln|det| is ill-conditioned (LU round-off decides between -inf and a
        # very negative number), so only the bound above is checked.
        return
    # Well conditioned: LU gives ln|det| to about cond(A) eps <= 2e-8 (numpy: independent LU).
    _, logabs = np.linalg.slogdet(A)
    assert abs(total - logabs) < 1e-7
    # sum ln|eig| = ln|prod eig| = ln|det A|. Computed eigenvalues carry relative errors up to
    # cond(V) eps cond(A) (Bauer-Fike, and |eig| >= sigma_min); with both conditions < 1e4 that is
    # 2e-8 per eigenvalue, so the sum agrees to n * 2e-8 < 1e-6. Ill-conditioned draws are skipped.
    _, V = np.linalg.eig(A)
    if np.linalg.cond(V) < 1e4 and svals[0] / svals[-1] < 1e4:
        assert abs(float(F.exact_exponents().sum()) - logabs) < 1e-6


# --------------------------------------------------------------------------------------------
# float32, dtype/device following
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_states_give_float32_results_close_to_float64(name):
    system = CASES[name]()  # parameters stored in float64
    y32 = _states(system, (5,), seed=2, dtype=torch.float32)
    y64 = y32.double()  # the same states, so only the arithmetic's round-off differs
    out32, J32 = _apply(system, y32), _jac(system, y32)
    assert out32.dtype == torch.float32 and J32.dtype == torch.float32
    out64, J64 = _apply(system, y64), _jac(system, y64)
    # float32 round-off of a few operations: a few eps32 = 1.2e-7 times the largest term involved
    # (|terms| <= 1e3 here); 1e-6 relative to that magnitude is ~8 eps32.
    scale = 1.0 + max(float(out64.abs().max()), float(y64.abs().max()) ** 2)
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=1e-6 * scale)
    torch.testing.assert_close(J32.double(), J64, rtol=0, atol=1e-6 * (1.0 + J64.abs().max()))


def test_float32_parameters_and_exact_solutions():
    A = _rand_matrix(3, 0).to(torch.float32)
    system = LinearSystem(A)
    y0 = torch.ones(2, 3, dtype=torch.float32)
    y = system.exact_solution(torch.tensor([0.5, 1.0], dtype=torch.float32), y0)
    assert y.dtype == torch.float32
    ref = LinearSystem(A.double()).exact_solution(torch.tensor([0.5, 1.0]), y0.double())
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5)
    ho = HarmonicOscillator(torch.tensor(2.0, dtype=torch.float32))
    assert ho.exact_solution(1.0, y0[:, :2]).dtype == torch.float32
    # float32 parameters with float64 states follow the states.
    vdp32 = VanDerPol(torch.tensor(2.0, dtype=torch.float32))
    assert vdp32(0.0, torch.ones(2)).dtype == torch.float64


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_states_match_cpu(name):
    system = CASES[name]()  # parameters on the CPU: cast (and cached) on the state's device
    y = _states(system, (4,), seed=3)
    out, J = _apply(system, y.cuda()), _jac(system, y.cuda())
    assert out.device.type == "cuda" and J.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), _apply(system, y), **TIGHT)
    torch.testing.assert_close(J.cpu(), _jac(system, y), **TIGHT)


# --------------------------------------------------------------------------------------------
# Validation, repr, SYSTEMS
# --------------------------------------------------------------------------------------------


_SQUARE = "must be a non-empty square"
INVALID = {
    "linear-not-square": (lambda: LinearSystem(torch.ones(2, 3)), ValueError,
                          rf"`A` of LinearSystem {_SQUARE}.*\(2, 3\)"),
    "linear-1d": (lambda: LinearSystem(torch.ones(3)), ValueError,
                  rf"`A` of LinearSystem {_SQUARE}.*\(3,\)"),
    "linear-empty": (lambda: LinearSystem(torch.ones(0, 0)), ValueError,
                     r"shape \(\*pbatch, n, n\) with n >= 1"),
    "linear-nan": (lambda: LinearSystem(torch.tensor([[1.0, math.nan], [0.0, 1.0]])), ValueError,
                   r"`A` of LinearSystem must be finite"),
    "linear-complex": (lambda: LinearSystem(torch.eye(2, dtype=torch.complex128)), TypeError,
                       r"`A` of LinearSystem must be a real floating-point matrix, "
                       r"got dtype=torch.complex128"),
    "linear-str": (lambda: LinearSystem("abc"), TypeError,
                   r"`A` of LinearSystem must be a real square matrix"),
    "linearmap-not-square": (lambda: LinearMap(torch.ones(2, 2, 3)), ValueError,
                             rf"`A` of LinearMap {_SQUARE}"),
    "rate-not-square": (lambda: RateNetwork(torch.ones(4, 5)), ValueError,
                        rf"`J` of RateNetwork {_SQUARE}"),
    "lorenz-sigma-negative": (lambda: Lorenz(sigma=-1.0), ValueError,
                              r"`sigma` of Lorenz must be > 0 \(the Prandtl number\), got -1.0\. "
                              r"The reference value is sigma=10"),
    "lorenz-beta-zero": (lambda: Lorenz(beta=0.0), ValueError, r"`beta` of Lorenz must be > 0"),
    "lorenz-rho-negative": (lambda: Lorenz(rho=-2.0), ValueError, r"`rho` of Lorenz must be >= 0"),
    "lorenz-rho-inf": (lambda: Lorenz(rho=math.inf), ValueError, r"`rho` of Lorenz must be finite"),
    "lorenz-bool": (lambda: Lorenz(sigma=True), TypeError,
                    r"`sigma` of Lorenz must be a real number or a real tensor.*got True"),
    "lorenz-str": (lambda: Lorenz(sigma="10"), TypeError,
                   r"`sigma` of Lorenz must be a real number"),
    "lorenz-shapes": (lambda: Lorenz(sigma=torch.ones(3), rho=torch.ones(4)), ValueError,
                      r"parameters of Lorenz must broadcast.*`sigma` \(3,\), `rho` \(4,\)"),
    "rossler-nan": (lambda: Rossler(c=math.nan), ValueError, r"`c` of Rossler must be finite"),
    "vanderpol-negative": (lambda: VanDerPol(-0.5), ValueError,
                           r"`mu` of VanDerPol must be >= 0.*backward in time"),
    "vanderpol-negative-member": (lambda: VanDerPol(torch.tensor([1.0, -1.0])), ValueError,
                                  r"`mu` of VanDerPol must be >= 0"),
    "harmonic-zero": (lambda: HarmonicOscillator(0.0), ValueError,
                      r"`omega` of HarmonicOscillator must be > 0"),
    "harmonic-complex": (lambda: HarmonicOscillator(torch.tensor(1.0 + 1j)), TypeError,
                         r"`omega` of HarmonicOscillator must be a real floating-point tensor"),
    "logistic-r": (lambda: LogisticMap(4.5), ValueError,
                   r"`r` of LogisticMap must be in \[0, 4\].*diverge"),
    "henon-shapes": (lambda: HenonMap(b=torch.ones(2), a=torch.ones(3)), ValueError,
                     r"parameters of HenonMap must broadcast"),
    "random-n-zero": (lambda: RateNetwork.random(0, 1.0), ValueError,
                      r"`n` must be an integer >= 1, got 0"),
    "random-n-float": (lambda: RateNetwork.random(2.5, 1.0), TypeError,
                       r"`n` must be an integer >= 1"),
    "random-g-negative": (lambda: RateNetwork.random(5, -1.0), ValueError,
                          r"`g` of RateNetwork.random must be >= 0"),
    "random-g-batched": (lambda: RateNetwork.random(5, torch.ones(2)), ValueError,
                         r"`g` of RateNetwork.random must be a single number"),
    "mu-norm-3": (lambda: LinearSystem(torch.eye(2)).exact_mu(3), ValueError,
                  r"`norm` must be 1, 2 or 'inf'.*got 3"),
    "mu-norm-fro": (lambda: LinearSystem(torch.eye(2)).exact_mu("fro"), ValueError,
                    r"`norm` must be 1, 2 or 'inf'"),
}


@pytest.mark.parametrize("build, exc, match", list(INVALID.values()), ids=list(INVALID))
def test_invalid_input_raises_with_a_clear_message(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_accepts_lists_and_integer_tensors():
    assert LinearSystem([[1, 2], [3, 4]]).A.dtype == torch.float64
    assert VanDerPol(torch.tensor([1, 2])).mu.dtype == torch.float64  # default dtype (float64 here)


@pytest.mark.parametrize(
    "system, text",
    [
        (Lorenz(), "Lorenz(sigma=10.0, rho=28.0, beta=2.6666666666666665)"),
        (Rossler(c=9.0), "Rossler(a=0.2, b=0.2, c=9.0)"),
        (VanDerPol(2.0), "VanDerPol(mu=2.0)"),
        (HarmonicOscillator(0.5), "HarmonicOscillator(omega=0.5)"),
        (HenonMap(), "HenonMap(a=1.4, b=0.3)"),
        (LogisticMap(3.5), "LogisticMap(r=3.5)"),
        (LinearSystem(torch.eye(2)),
         "LinearSystem(A=tensor([[1.0, 0.0], [0.0, 1.0]], shape=(2, 2), dtype=torch.float64, "
         "device=cpu))"),
        (LinearMap(torch.eye(3)),
         "LinearMap(A=tensor(shape=(3, 3), dtype=torch.float64, device=cpu))"),
        (RateNetwork(torch.zeros(3, 3)),
         "RateNetwork(n=3, J=tensor(shape=(3, 3), dtype=torch.float64, device=cpu))"),
        (VanDerPol(torch.tensor([1.0, 2.0])),
         "VanDerPol(mu=tensor([1.0, 2.0], shape=(2,), dtype=torch.float64, device=cpu))"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else "",
)
def test_repr_shows_parameters(system, text):
    assert repr(system) == text


def test_reference_systems():
    assert set(SYSTEMS) == {
        "lorenz", "rossler", "vanderpol", "harmonic", "linear", "rate", "henon", "logistic"
    }
    for name, factory in SYSTEMS.items():
        system = factory()
        assert isinstance(system, (AbstractVectorField, AbstractMap)), name
        y = _states(system, (3,))
        out = _apply(system, y)
        assert out.shape == (3, system.dim) and bool(torch.isfinite(out).all()), name
    # The published-spectrum systems come at their reference parameters.
    for name in ("lorenz", "rossler", "henon", "logistic", "harmonic"):
        assert SYSTEMS[name]().ground_truth.lyapunov_exponents is not None, name
    # "linear": exponents (-0.1, -0.4) (triangular), yet mu_2 > 0: symmetric part
    # [[-0.1, 0.5], [0.5, -0.4]] has lambda_max = -0.25 + sqrt(0.15^2 + 0.5^2) = 0.27202.
    lin = SYSTEMS["linear"]()
    assert lin.ground_truth.lyapunov_exponents == (-0.1, -0.4)
    assert float(lin.exact_mu(2)) == pytest.approx(-0.25 + math.sqrt(0.15**2 + 0.25), abs=1e-14)
    # "rate": n = 100, g = 2, seeded: the same network every time, chaotic regime (no spectrum).
    rate = SYSTEMS["rate"]()
    assert rate.dim == 100 and rate.ground_truth.lyapunov_exponents is None
    torch.testing.assert_close(SYSTEMS["rate"]().J, rate.J, rtol=0, atol=0)
    assert float(rate.exact_exponent_sum()) == -100.0
