"""Matrix measures, contraction-rate estimates and sampled regions (issue 3, contraction).

Every expected value carries its derivation (or source) beside the assertion; the facts about
matrix measures are from Desoer & Vidyasagar (1975), section II.8, and theory/12_contraction.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ngcdyn.analysis import ContractionResult, contraction_rate, matrix_measure, sample_region
from ngcdyn.systems import AbstractVectorField, GroundTruth

EPS64 = torch.finfo(torch.float64).eps
EPS32 = torch.finfo(torch.float32).eps

# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

_entries = st.floats(min_value=-5.0, max_value=5.0, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def square_matrices(draw, min_n: int = 1, max_n: int = 6) -> np.ndarray:
    """A general real n x n matrix with entries in [-5, 5]."""
    n = draw(st.integers(min_n, max_n))
    return draw(hnp.arrays(np.float64, (n, n), elements=_entries))


@st.composite
def symmetric_matrices(draw, min_n: int = 1, max_n: int = 6) -> np.ndarray:
    m = draw(square_matrices(min_n, max_n))
    return 0.5 * (m + m.T)


@st.composite
def invertible_matrices(draw, n: int) -> np.ndarray:
    """A well-conditioned n x n matrix: I*s + small perturbation, s in [1, 3] (cond <= ~10)."""
    s = draw(st.floats(1.0, 3.0))
    pert = draw(hnp.arrays(np.float64, (n, n), elements=st.floats(-0.45 / n, 0.45 / n, width=64)))
    sign = draw(st.sampled_from([1.0, -1.0]))
    return sign * s * np.eye(n) + s * pert


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Closed forms of mu_1, mu_2, mu_inf
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a", [0.0, 0.5, -1.5, 2.0, 3.0, -7.25, 40.0])
def test_non_normal_example_closed_forms(a):
    # A = [[-1, a], [0, -1]]. Derivations (theory/12_contraction.md, "non-normal example"):
    # - Hermitian part [[-1, a/2], [a/2, -1]] has eigenvalues -1 +- |a|/2  =>  mu_2 = -1 + |a|/2;
    # - columns: -1 + 0 and -1 + |a|  =>  mu_1 = -1 + |a|;
    # - rows: -1 + |a| and -1 + 0  =>  mu_inf = -1 + |a|.
    A = torch.tensor([[-1.0, a], [0.0, -1.0]])
    tol = 8 * EPS64 * (1 + abs(a))  # a few roundings of entries of size |a|
    assert float(matrix_measure(A, norm=2)) == pytest.approx(-1 + abs(a) / 2, abs=tol)
    assert float(matrix_measure(A, norm=1)) == pytest.approx(-1 + abs(a), abs=tol)
    assert float(matrix_measure(A, norm="inf")) == pytest.approx(-1 + abs(a), abs=tol)
    assert float(matrix_measure(A, norm=math.inf)) == pytest.approx(-1 + abs(a), abs=tol)


def test_non_normal_example_growth_is_bounded_by_mu2_not_by_exponents():
    # For A = [[-1, a], [0, -1]], e^{At} = e^{-t} [[1, a t], [0, 1]] (A = -I + N, N^2 = 0), so
    # ||e^{At}||_2 = e^{-t} * sigma_max([[1, a t], [0, 1]]) = e^{-t} (|a|t/2 + sqrt(1 + (a t/2)^2)).
    # Coppel: ||e^{At}|| <= e^{mu_2 t}; and at t -> 0+ the slope of ||e^{At}|| is exactly mu_2.
    a = 4.0
    A = np.array([[-1.0, a], [0.0, -1.0]])
    mu2 = float(matrix_measure(_t(A), norm=2))  # = -1 + 2 = 1 (closed form above)
    for t in (1e-3, 0.1, 0.5, 1.0, 3.0):
        exact = math.exp(-t) * (abs(a) * t / 2 + math.sqrt(1 + (a * t / 2) ** 2))
        norm_expm = np.linalg.norm(scipy.linalg.expm(A * t), 2)
        assert norm_expm == pytest.approx(exact, rel=1e-12)  # the closed form above
        assert norm_expm <= math.exp(mu2 * t) * (1 + 1e-12)  # Coppel's inequality (one-sided by nature)
    h = 1e-7
    slope = (math.exp(-h) * (abs(a) * h / 2 + math.sqrt(1 + (a * h / 2) ** 2)) - 1) / h
    assert slope == pytest.approx(mu2, abs=10 * h * a**2)  # d/dt ||e^{At}|| at 0+ = mu_2, O(h) error


@pytest.mark.parametrize("norm,ord_", [(1, 1), (2, 2), ("inf", math.inf)])
@given(m=square_matrices())
@example(m=np.zeros((1, 1)))
@example(m=np.array([[-1.0, 5.0], [0.0, -1.0]]))
@example(m=np.array([[0.0, -5.0], [5.0, 0.0]]))  # skew: mu_2 = 0
def test_measure_equals_its_definition(norm, ord_, m):
    # Definition (Desoer & Vidyasagar II.8): mu(J) = lim_{h->0+} (||I + h J|| - 1)/h.
    # The difference quotient q(h) is non-decreasing in h (convexity of h -> ||I + hJ||), so q(h) >= mu,
    # and ||I + hJ|| <= ||e^{hJ}|| + ||e^{hJ} - I - hJ|| <= e^{h mu} + (e^{hL} - 1 - hL) with L = ||J||,
    # hence 0 <= q(h) - mu <= 2 (e^{hL} - 1 - hL)/h. Rounding adds ~4 eps (1 + hL)/h.
    J = _t(m)
    h = 1e-5
    L = float(torch.linalg.matrix_norm(J, ord=ord_))
    q = (float(torch.linalg.matrix_norm(torch.eye(J.shape[0]) + h * J, ord=ord_)) - 1) / h
    mu = float(matrix_measure(J, norm=norm))
    upper = 2 * (math.expm1(h * L) - h * L) / h
    rounding = 8 * EPS64 * (1 + h * L) / h
    assert -rounding <= q - mu <= upper + rounding


@pytest.mark.parametrize("norm,ord_", [(1, 1), (2, 2), ("inf", math.inf)])
@given(m=square_matrices(), c=st.floats(-10, 10), s=st.floats(0, 10))
def test_measure_algebra(norm, ord_, m, c, s):
    # Desoer & Vidyasagar II.8: mu(J + cI) = mu(J) + c; mu(sJ) = s mu(J), s >= 0;
    # max Re eig(J) <= mu(J) <= ||J|| (induced norm); mu_1(J) = mu_inf(J^T).
    J = _t(m)
    n = J.shape[0]
    L = float(torch.linalg.matrix_norm(J, ord=ord_))
    mu = float(matrix_measure(J, norm=norm))
    tol = 16 * EPS64 * (1 + L + abs(c)) * n
    assert float(matrix_measure(J + c * torch.eye(n), norm=norm)) == pytest.approx(mu + c, abs=tol)
    assert float(matrix_measure(s * J, norm=norm)) == pytest.approx(s * mu, abs=tol * (1 + s))
    abscissa = float(np.linalg.eigvals(m).real.max())
    assert abscissa - 1e-7 * (1 + L) <= mu <= L + tol  # eigenvalue error of a defective m ~ sqrt(eps)
    assert float(matrix_measure(J.T, norm=1)) == pytest.approx(
        float(matrix_measure(J, norm="inf")), abs=tol
    )


@given(a=square_matrices(2, 2), b=square_matrices(2, 2), norm=st.sampled_from([1, 2, "inf"]))
def test_measure_is_subadditive(a, b, norm):
    # Desoer & Vidyasagar II.8: mu(A + B) <= mu(A) + mu(B) (a property, one-sided by nature).
    lhs = float(matrix_measure(_t(a + b), norm=norm))
    rhs = float(matrix_measure(_t(a), norm=norm)) + float(matrix_measure(_t(b), norm=norm))
    assert lhs <= rhs + 64 * EPS64 * (1 + abs(rhs) + np.abs(a).sum() + np.abs(b).sum())


@given(s=symmetric_matrices())
@example(s=np.diag([-3.0, -1.0, 2.0]))
@example(s=np.array([[-2.0]]))
def test_symmetric_linear_rate_is_minus_lambda_max(s):
    # Lohmiller & Slotine 1998: for dx/dt = A x with A symmetric, J = A everywhere and
    # mu_2(A) = lambda_max(A), so the Euclidean contraction rate is -lambda_max(A).
    # Expected value from an independent eigensolver (scipy), tolerance ~ eps * ||A|| * n.
    A = _t(s)
    expected = -float(scipy.linalg.eigvalsh(s)[-1])
    f = lambda t, y, args: y @ A.T  # noqa: E731
    ys = torch.randn(3, 7, A.shape[0])
    res = contraction_rate(f, ys)
    tol = 32 * EPS64 * (1 + np.abs(s).sum())
    torch.testing.assert_close(res.rate, torch.full((3,), expected), atol=tol, rtol=0)
    torch.testing.assert_close(res.measures, torch.full((3, 7), -expected), atol=tol, rtol=0)
    assert res.jacobian_source == "autodiff"
    assert isinstance(res, ContractionResult)


# --------------------------------------------------------------------------------------------
# Weighted measures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", [1, 2, "inf"])
@given(m=square_matrices(2, 4))
def test_weight_identity_is_unweighted(norm, m):
    # ||I x|| = ||x||, so mu_I(J) = mu(I J I^{-1}) = mu(J) (definition).
    J = _t(m)
    I = torch.eye(J.shape[0])
    torch.testing.assert_close(
        matrix_measure(J, norm=norm, P=I), matrix_measure(J, norm=norm), atol=8 * EPS64 * (1 + np.abs(m).sum()), rtol=0
    )


@pytest.mark.parametrize("norm", [1, 2, "inf"])
@given(data=st.data(), n=st.integers(1, 4))
def test_weighted_measure_similarity_relation(norm, data, n):
    # mu_P(J) = mu(P J P^{-1}) by definition; therefore, for invertible S,
    # mu_{P S}(S^{-1} J S) = mu(P S S^{-1} J S S^{-1} P^{-1}) = mu_P(J).
    m = data.draw(hnp.arrays(np.float64, (n, n), elements=_entries))
    P = _t(data.draw(invertible_matrices(n)))
    S = _t(data.draw(invertible_matrices(n)))
    J = _t(m)
    direct = matrix_measure(P @ J @ torch.linalg.inv(P), norm=norm)
    weighted = matrix_measure(J, norm=norm, P=P)
    moved = matrix_measure(torch.linalg.solve(S, J @ S), norm=norm, P=P @ S)
    # cond(P), cond(S) <= ~10 (strategy), entries <= 5: errors ~ eps * cond^2 * ||J|| * n.
    tol = 1e-12 * (1 + np.abs(m).sum())
    torch.testing.assert_close(weighted, direct, atol=tol, rtol=0)
    torch.testing.assert_close(moved, weighted, atol=tol, rtol=0)


@pytest.mark.parametrize("k", [1.0, 2.0, 10.0, 1e3])
def test_weighted_non_normal_example(k):
    # P = diag(1, k): (P A P^{-1})_{01} = a / k, so mu_{2,P}(A) = -1 + |a| / (2k) (closed form above):
    # a metric in which A = [[-1, a], [0, -1]] contracts once k > |a|/2.
    a = 6.0
    A = torch.tensor([[-1.0, a], [0.0, -1.0]])
    P = torch.diag(torch.tensor([1.0, k]))
    got = float(matrix_measure(A, norm=2, P=P))
    assert got == pytest.approx(-1 + abs(a) / (2 * k), abs=16 * EPS64 * (1 + a))


def test_batched_measure_equals_per_matrix_and_broadcasts_P():
    # Batching: each output equals the unbatched call on its own matrix (same formula per member).
    J = torch.randn(3, 4, 5, 5)
    P = torch.eye(5) + 0.1 * torch.randn(4, 5, 5)  # broadcasts over the leading 3
    for norm in (1, 2, "inf"):
        batched = matrix_measure(J, norm=norm, P=P)
        assert batched.shape == (3, 4)
        single = torch.stack(
            [torch.stack([matrix_measure(J[i, j], norm=norm, P=P[j]) for j in range(4)]) for i in range(3)]
        )
        torch.testing.assert_close(batched, single, atol=1e-13, rtol=0)


def test_matrix_measure_float32_and_gradient():
    # float32: the non-normal closed form -1 + |a|/2 within a few float32 roundings.
    A32 = torch.tensor([[-1.0, 3.0], [0.0, -1.0]], dtype=torch.float32)
    out = matrix_measure(A32, norm=2)
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(0.5, abs=16 * EPS32 * 4)
    P32 = torch.diag(torch.tensor([1.0, 6.0], dtype=torch.float32))
    assert float(matrix_measure(A32, norm=2, P=P32)) == pytest.approx(-0.75, abs=16 * EPS32 * 4)
    # Gradient: mu_2(J) = lambda_max((J + J^T)/2), a simple top eigenvalue with eigenvector v has
    # d mu_2 / dJ = v v^T (first-order perturbation theory); gradcheck compares with finite differences.
    J = torch.tensor([[-1.0, 3.0, 0.5], [0.0, -2.0, 1.0], [0.2, 0.0, -4.0]], requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: matrix_measure(x, norm=2), (J,))
    with torch.no_grad():
        v = torch.linalg.eigh(0.5 * (J + J.T))[1][:, -1]
    (g,) = torch.autograd.grad(matrix_measure(J, norm=2), J)
    torch.testing.assert_close(g, torch.outer(v, v), atol=1e-12, rtol=0)


# --------------------------------------------------------------------------------------------
# contraction_rate: the Jacobian paths and time handling
# --------------------------------------------------------------------------------------------


class _Linear(AbstractVectorField):
    """dx/dt = A x with its analytic Jacobian (test double)."""

    has_analytic_jacobian = True

    def __init__(self, A: torch.Tensor):
        self.A = A
        self.dim = A.shape[-1]
        self.ground_truth = GroundTruth(reference="test double")

    def _call_impl(self, t, y, args):
        return y @ self.A.mT

    def _jacobian_impl(self, t, y, args):
        return self.A.expand(*y.shape, self.dim)


class _LinearAutodiff(AbstractVectorField):
    """The same field without an analytic Jacobian (autodiff path of AbstractVectorField)."""

    def __init__(self, A: torch.Tensor):
        self.A = A
        self.dim = A.shape[-1]
        self.ground_truth = GroundTruth(reference="test double")

    def _call_impl(self, t, y, args):
        return y @ self.A.mT


@pytest.mark.parametrize("path", ["analytic", "autodiff-field", "autodiff-callable", "user"])
@pytest.mark.parametrize("norm", [1, 2, "inf"])
def test_every_jacobian_path_gives_the_linear_measure(path, norm):
    # For dx/dt = A x the Jacobian is A at every point, so every point's measure is mu(A) computed by
    # the closed forms (checked above); A = [[-1, a], [0, -1]] gives -1 + |a|/2 (norm 2), -1 + |a| (1, inf).
    a = -2.5
    A = torch.tensor([[-1.0, a], [0.0, -1.0]])
    expected = -1 + abs(a) / 2 if norm == 2 else -1 + abs(a)
    ys = torch.randn(2, 5, 2)
    if path == "analytic":
        res = contraction_rate(_Linear(A), ys, norm=norm)
    elif path == "autodiff-field":
        res = contraction_rate(_LinearAutodiff(A), ys, norm=norm)
    elif path == "autodiff-callable":
        res = contraction_rate(lambda t, y, args: y @ A.T, ys, norm=norm)
    else:
        res = contraction_rate(
            lambda t, y, args: None,  # never called: the user Jacobian is used
            ys,
            norm=norm,
            jacobian=lambda t, y, args: A.expand(*y.shape, 2),
        )
    assert res.jacobian_source == {"autodiff-field": "autodiff", "autodiff-callable": "autodiff"}.get(path, path)
    torch.testing.assert_close(res.measures, torch.full((2, 5), expected), atol=1e-14, rtol=0)
    torch.testing.assert_close(res.rate, torch.full((2,), -expected), atol=1e-14, rtol=0)


def test_time_dependent_field_uses_each_points_time():
    # dx/dt = (-2 + sin t) x + args * x^2 / 2 at x: J(t, x) = -2 + sin t + args * x (1x1), so
    # mu(J) = -2 + sin t_k + args x_k at each point; the max over a grid of t and x at known positions
    # gives rate, argmax, worst_state and worst_time exactly.
    ts = torch.linspace(0, 6, 61)  # (T,)
    ys = torch.zeros(2, 61, 1)
    ys[1, 10, 0] = 3.0  # member 1: a spike at t = 1.0 dominates: -2 + sin(1) + 0.5 * 3
    f = lambda t, y, args: (-2 + torch.sin(t))[..., None] * y + args * y**2 / 2  # noqa: E731
    res = contraction_rate(f, ys, t=ts, args=0.5)
    expected = -2 + torch.sin(ts)[None, :] + 0.5 * ys[..., 0]
    torch.testing.assert_close(res.measures, expected, atol=1e-14, rtol=0)
    # member 0: max of -2 + sin t on the grid is at the grid point nearest pi/2 (t = 1.6, index 16).
    assert res.argmax.tolist() == [16, 10]
    torch.testing.assert_close(res.worst_time, ts[[16, 10]])
    torch.testing.assert_close(res.worst_state, ys[[0, 1], [16, 10]])
    torch.testing.assert_close(res.rate, -expected.amax(-1))
    torch.testing.assert_close(res.mean_measure, expected.mean(-1))
    assert res.contracting.tolist() == [True, False]  # -2 + sin(1) + 1.5 = 0.34 > 0 for member 1


def test_time_dependent_field_per_member_times():
    # Per-member times (*batch, T): the same formula with each member's own grid.
    ts = torch.stack([torch.linspace(0, 1, 5), torch.linspace(2, 3, 5)])  # (2, 5)
    ys = torch.ones(2, 5, 1)
    f = lambda t, y, args: (-2 + torch.sin(t))[..., None] * y  # noqa: E731
    res = contraction_rate(f, ys, t=ts)
    torch.testing.assert_close(res.measures, -2 + torch.sin(ts), atol=1e-14, rtol=0)


def test_parameter_batched_system_pairs_each_trajectory_with_its_parameters():
    # LinearSystem with A of shape (3, 2, 2) (rule 5: parameters broadcast against *batch): the
    # trajectory batch (3, T, 2) must see A[i] for member i at every point, so measures[i] = mu(A[i])
    # (closed forms above, via the library's ground truth exact_mu) for every path.
    from ngcdyn.systems import LinearSystem

    a = torch.tensor([0.0, 3.0, -5.0])
    A = torch.zeros(3, 2, 2)
    A[:, 0, 0] = A[:, 1, 1] = -1.0
    A[:, 0, 1] = a
    sys = LinearSystem(A)
    ys = torch.randn(3, 7, 2)
    for norm in (1, 2, "inf"):
        expected = sys.exact_mu(norm)  # (3,): -1 + |a|/2 (norm 2) or -1 + |a| (norms 1, inf)
        closed = -1 + a.abs() / 2 if norm == 2 else -1 + a.abs()
        torch.testing.assert_close(expected, closed, atol=1e-14, rtol=0)
        analytic = contraction_rate(sys, ys, norm=norm)
        auto = contraction_rate(lambda t, y, args: sys(t, y, args), ys, norm=norm)
        assert analytic.jacobian_source == "analytic" and auto.jacobian_source == "autodiff"
        for res in (analytic, auto):
            torch.testing.assert_close(res.measures, expected[:, None].expand(3, 7), atol=1e-14, rtol=0)


def test_autodiff_with_data_dependent_control_flow():
    # Only the tangents are batched, so Python branches on the state's values work: here the branch
    # taken gives J = diag(-1, -2) at every point, so mu_2 = -1 (largest diagonal entry, symmetric J).
    def f(t, y, args):
        if float(y.abs().max()) < 100.0:
            return -y * torch.tensor([1.0, 2.0])
        return y

    res = contraction_rate(f, torch.randn(4, 2))
    assert float(res.rate) == pytest.approx(1.0, abs=1e-15)


def test_contraction_rate_float32():
    # dtype follows the input; the symmetric rate -lambda_max within float32 rounding.
    A = torch.tensor([[-3.0, 1.0], [1.0, -3.0]], dtype=torch.float32)  # eigenvalues -2, -4
    ys = torch.randn(4, 3, 2, dtype=torch.float32)
    res = contraction_rate(lambda t, y, args: y @ A.T, ys)
    assert res.rate.dtype == torch.float32
    torch.testing.assert_close(res.rate, torch.full((4,), 2.0, dtype=torch.float32), atol=8 * EPS32 * 4, rtol=0)


def test_single_point_sets():
    # ys of shape (T, n) (no batch): rate is 0-d; the max over T points.
    A = torch.diag(torch.tensor([-1.0, -3.0]))  # mu_2 = -1
    res = contraction_rate(lambda t, y, args: y @ A.T, torch.randn(6, 2))
    assert res.rate.shape == ()
    assert float(res.rate) == pytest.approx(1.0, abs=1e-15)


@given(wu=st.tuples(square_matrices(2, 3), st.floats(0.1, 10.0), st.integers(0, 2**16)))
def test_rate_scales_with_time_and_moves_with_coordinates(wu):
    # Time rescaling: dx/ds = c f(x) (s = t / c) has Jacobian c J, so mu scales by c >= 0 and the rate
    # by c. Change of coordinates z = P x: dz/dt = P f(P^{-1} z) has Jacobian P J P^{-1}, so its
    # unweighted measure at z = P x equals the weighted measure mu_P(J(x)) (theory/12 section 1).
    m, c, seed = wu
    n = m.shape[0]
    W = _t(m)
    f = lambda t, x, args: -x + torch.tanh(x) @ W.T  # noqa: E731
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(3, 5, n, generator=g)
    P = torch.eye(n) + 0.3 * torch.rand(n, n, generator=g).triu(1)  # unit upper triangular
    base = contraction_rate(f, xs)
    scaled = contraction_rate(lambda t, x, args: c * f(t, x, args), xs)
    tol = 64 * EPS64 * (1 + np.abs(m).sum()) * (1 + c)
    torch.testing.assert_close(scaled.rate, c * base.rate, atol=tol, rtol=0)
    Pinv = torch.linalg.inv(P)
    fz = lambda t, z, args: f(t, z @ Pinv.T, args) @ P.T  # noqa: E731
    moved = contraction_rate(fz, xs @ P.T)
    weighted = contraction_rate(f, xs, P=P)
    torch.testing.assert_close(moved.measures, weighted.measures, atol=8 * tol, rtol=0)


# --------------------------------------------------------------------------------------------
# The rate network bound: dx/dt = -x + W tanh x + u
# --------------------------------------------------------------------------------------------


@st.composite
def weight_and_input(draw):
    n = draw(st.integers(1, 5))
    W = draw(hnp.arrays(np.float64, (n, n), elements=st.floats(-2, 2, width=64)))
    u = draw(hnp.arrays(np.float64, (n,), elements=st.floats(-3, 3, width=64)))
    seed = draw(st.integers(0, 2**16))
    return W, u, seed


@given(wu=weight_and_input())
@example(wu=(np.array([[0.0]]), np.array([0.0]), 0))
def test_rate_network_mu2_bounded_by_weight_norm(wu):
    # J(x) = -I + W diag(1 - tanh^2 x); subadditivity + mu_2(M) <= ||M||_2 + ||diag(sech^2)||_2 <= 1:
    # mu_2(J) <= -1 + ||W||_2 at every state (REFERENCES.md section 1). One-sided by nature.
    W, u, seed = wu
    Wt, ut = _t(W), _t(u)
    f = lambda t, x, args: -x + torch.tanh(x) @ Wt.T + ut  # noqa: E731
    g = torch.Generator().manual_seed(seed)
    n = W.shape[0]
    xs = sample_region(64, low=-3 * torch.ones(n), high=3 * torch.ones(n), generator=g)  # (64, n)
    res = contraction_rate(f, xs)
    bound = -1 + float(np.linalg.norm(W, 2))
    assert float(res.measures.max()) <= bound + 32 * EPS64 * (1 + np.abs(W).sum())


@given(m=symmetric_matrices(1, 5))
def test_rate_network_bound_is_attained_at_zero_for_psd_weights(m):
    # W = M M^T / ||M||_2 (symmetric PSD): at x = 0, J = -I + W, mu_2 = -1 + lambda_max(W) = -1 + ||W||_2,
    # so the bound above is tight there (two-sided check).
    W = m @ m.T
    Wt = _t(W)
    f = lambda t, x, args: -x + torch.tanh(x) @ Wt.T  # noqa: E731
    res = contraction_rate(f, torch.zeros(1, W.shape[0]))
    expected = -1 + float(np.linalg.norm(W, 2))
    assert float(res.measures[0]) == pytest.approx(expected, abs=64 * EPS64 * (1 + np.abs(W).sum()))


# --------------------------------------------------------------------------------------------
# sample_region
# --------------------------------------------------------------------------------------------


def test_box_samples_are_uniform_in_the_box():
    # Uniform on [l, h]: mean (l + h)/2, variance (h - l)^2 / 12; the sample mean of M draws has
    # standard error sqrt(var / M); a 5-sigma band fails with probability ~6e-7 per coordinate.
    low = torch.tensor([-1.0, 2.0, 0.0])
    high = torch.tensor([1.0, 5.0, 0.1])
    M = 20_000
    x = sample_region(M, low=low, high=high, generator=torch.Generator().manual_seed(1))
    assert x.shape == (M, 3)
    assert bool(((x >= low) & (x < high)).all())
    se = (high - low) / math.sqrt(12 * M)
    assert bool(((x.mean(0) - (low + high) / 2).abs() <= 5 * se).all())
    var = (high - low) ** 2 / 12
    # variance of the sample variance of a uniform: (mu_4 - sigma^4)/M with mu_4 = (h-l)^4/80.
    se_var = torch.sqrt(((high - low) ** 4 / 80 - var**2) / M)
    assert bool(((x.var(0) - var).abs() <= 5 * se_var).all())


@pytest.mark.parametrize("n", [1, 2, 5])
def test_ball_samples_have_the_uniform_radial_law(n):
    # Uniform in a ball of radius R in R^n: P(|x - c| <= s R) = s^n, so E[|x - c|/R] = n/(n+1) and
    # Var = n/(n+2) - (n/(n+1))^2; the direction is uniform on the sphere (mean 0, E[u u^T] = I/n).
    c = torch.arange(n, dtype=torch.float64)
    R = 2.5
    M = 20_000
    x = sample_region(M, center=c, radius=R, generator=torch.Generator().manual_seed(2))
    r = (x - c).norm(dim=-1) / R
    assert bool((r <= 1).all())
    mean, var = n / (n + 1), n / (n + 2) - (n / (n + 1)) ** 2
    assert abs(float(r.mean()) - mean) <= 5 * math.sqrt(var / M)
    u = (x - c) / (x - c).norm(dim=-1, keepdim=True)
    assert float(u.mean(0).abs().max()) <= 5 * math.sqrt(1 / (n * M))  # Var(u_i) = 1/n


def test_sample_region_batched_regions_and_tensor_radius():
    centers = torch.zeros(3, 2)
    radius = torch.tensor([0.5, 1.0, 2.0])
    x = sample_region(50, center=centers, radius=radius, generator=torch.Generator().manual_seed(3))
    assert x.shape == (3, 50, 2)
    assert bool((x.norm(dim=-1) <= radius[:, None]).all())
    x32 = sample_region(4, low=torch.zeros(2, dtype=torch.float32), high=torch.ones(2, dtype=torch.float32))
    assert x32.dtype == torch.float32


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_errors_matrix_measure():
    with pytest.raises(ValueError, match=r"`J` must be a batch of non-empty square matrices.*\(2, 3\)"):
        matrix_measure(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"`J` must be a batch of non-empty square.*\(3,\)"):
        matrix_measure(torch.zeros(3))
    with pytest.raises(TypeError, match=r"`J` must be a floating-point tensor, got dtype=torch.int64"):
        matrix_measure(torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"`J` must be a torch.Tensor"):
        matrix_measure([[1.0]])
    with pytest.raises(ValueError, match=r"`norm` must be 1, 2 or 'inf'.*got 'fro'"):
        matrix_measure(torch.eye(2), norm="fro")
    with pytest.raises(ValueError, match=r"`norm` must be 1, 2 or 'inf'.*got 3"):
        matrix_measure(torch.eye(2), norm=3)
    with pytest.raises(ValueError, match=r"`norm` must be 1, 2 or 'inf'.*got True"):
        matrix_measure(torch.eye(2), norm=True)
    with pytest.raises(ValueError, match=r"`P` must be invertible.*condition number"):
        matrix_measure(torch.eye(2), P=torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"`P` must be invertible"):
        matrix_measure(torch.eye(2), P=torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"`P` must be n x n with n=2.*\(3, 3\)"):
        matrix_measure(torch.eye(2), P=torch.eye(3))
    with pytest.raises(ValueError, match=r"`P` must be a batch of non-empty square"):
        matrix_measure(torch.eye(2), P=torch.ones(2, 3))
    with pytest.raises(TypeError, match=r"`P` has dtype torch.float32 but `J` has dtype torch.float64"):
        matrix_measure(torch.eye(2), P=torch.eye(2, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"batch shape of `P` \(3,\) does not broadcast.*\(4,\)"):
        matrix_measure(torch.zeros(4, 2, 2), P=torch.eye(2).expand(3, 2, 2))
    with pytest.raises(ValueError, match=r"`P` must be finite"):
        matrix_measure(torch.eye(2), P=torch.tensor([[1.0, math.nan], [0.0, 1.0]]))


def test_errors_contraction_rate():
    f = lambda t, y, args: -y  # noqa: E731
    with pytest.raises(TypeError, match=r"`f` must be a vector field"):
        contraction_rate(3.0, torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"`ys` must have shape \(\*batch, T, n\).*\(3,\)"):
        contraction_rate(f, torch.zeros(3))
    with pytest.raises(ValueError, match=r"`ys` holds no points"):
        contraction_rate(f, torch.zeros(2, 0, 3))
    bad = torch.zeros(3, 4, 2)
    bad[1, 2, 0] = math.nan
    with pytest.raises(ValueError, match=r"`ys` must be finite.*flat indices \[6\]"):
        contraction_rate(f, bad)
    with pytest.raises(ValueError, match=r"`t` must broadcast against the points of `ys`.*\(3, 4\).*\(5,\)"):
        contraction_rate(f, torch.zeros(3, 4, 2), t=torch.zeros(5))
    with pytest.raises(ValueError, match=r"The Jacobian \(user\) must have one n x n matrix per point, shape \(4, 3, 2, 2\)"):
        contraction_rate(f, torch.zeros(3, 4, 2), jacobian=lambda t, y, a: torch.zeros(2, 2))
    with pytest.raises(TypeError, match=r"`jacobian` must be a callable"):
        contraction_rate(f, torch.zeros(3, 4, 2), jacobian=torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"`ys` must have last dimension n=2"):
        contraction_rate(_Linear(torch.eye(2)), torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"The Jacobian is NaN/inf at the points with flat indices \[1\]"):
        contraction_rate(lambda t, y, a: torch.sqrt(y), torch.tensor([[1.0], [0.0]]))
    with pytest.raises(ValueError, match=r"`norm` must be 1, 2 or 'inf'"):
        contraction_rate(f, torch.zeros(3, 4, 2), norm="two")


def test_errors_sample_region():
    with pytest.raises(ValueError, match=r"Give exactly one region"):
        sample_region(5)
    with pytest.raises(ValueError, match=r"Give exactly one region"):
        sample_region(5, low=torch.zeros(2), high=torch.ones(2), center=torch.zeros(2), radius=1.0)
    with pytest.raises(ValueError, match=r"A box needs both `low` and `high`"):
        sample_region(5, low=torch.zeros(2))
    with pytest.raises(ValueError, match=r"A ball needs both `center`"):
        sample_region(5, radius=1.0)
    with pytest.raises(ValueError, match=r"`high` must be > `low` entry-wise"):
        sample_region(5, low=torch.zeros(2), high=torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"`radius` must be finite and > 0, got -1.0"):
        sample_region(5, center=torch.zeros(2), radius=-1.0)
    with pytest.raises(ValueError, match=r"`radius` must be finite and > 0"):
        sample_region(5, center=torch.zeros(2), radius=torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"`n_samples` must be an integer >= 1, got 0"):
        sample_region(0, low=torch.zeros(2), high=torch.ones(2))
    with pytest.raises(TypeError, match=r"`n_samples` must be an integer >= 1"):
        sample_region(2.5, low=torch.zeros(2), high=torch.ones(2))
    with pytest.raises(ValueError, match=r"`low` \(3,\) and `high` \(2,\) must have broadcastable shapes"):
        sample_region(2, low=torch.zeros(3), high=torch.ones(2))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    # Device-agnostic code: the same numbers on CUDA as on the CPU (same formulas; eigvalsh on either
    # device is accurate to ~n eps ||J||).
    A = torch.randn(3, 4, 4)
    P = torch.eye(4) + 0.1 * torch.randn(4, 4)
    ys = torch.randn(2, 5, 4)
    f = lambda t, y, args: torch.tanh(y) @ A[0].T.to(y.device) - y  # noqa: E731
    for norm in (1, 2, "inf"):
        torch.testing.assert_close(
            matrix_measure(A.cuda(), norm=norm, P=P.cuda()).cpu(), matrix_measure(A, norm=norm, P=P), atol=1e-12, rtol=0
        )
        torch.testing.assert_close(
            contraction_rate(f, ys.cuda(), norm=norm).measures.cpu(), contraction_rate(f, ys, norm=norm).measures,
            atol=1e-12, rtol=0,
        )
    g = torch.Generator(device="cuda").manual_seed(0)
    x = sample_region(10, center=torch.zeros(3, device="cuda"), radius=1.0, generator=g)
    assert x.device.type == "cuda" and bool((x.norm(dim=-1) <= 1.0).all())
