"""NGCSystem against its theory notes: linear spectrum (theory/02), energy (theory/03),
contraction bound (theory/04), random-constructor statistics (theory/01, section 4), and the
sympy derivation scripts in theory/.
"""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from ngcdyn.systems import Gain, NGCSystem

THEORY = Path(__file__).resolve().parents[2] / "theory"

SOFTSIGN = Gain(lambda x: x / (1 + x.abs()), lambda x: (1 + x.abs()) ** -2,
                integral=lambda x: x.abs() - torch.log1p(x.abs()),  # int_0^x s/(1+|s|) ds
                derivative_bound=1.0, nondecreasing=True, name="softsign")
GAINS = {"tanh": "tanh", "identity": "identity", "softsign": SOFTSIGN}


@st.composite
def ngc_cases(draw, max_groups=4, max_size=6, max_rank=4):
    """A general valid NGC system: any group layout (groups may be smaller than the rank), any
    positive per-group time constants, a gain, a coupling scale, and a seed for the tensors."""
    G = draw(st.integers(1, max_groups))
    sizes = tuple(draw(st.lists(st.integers(1, max_size), min_size=G, max_size=G)))
    r = draw(st.integers(1, max_rank))
    taus = tuple(draw(st.lists(st.floats(0.1, 10.0), min_size=G, max_size=G)))
    scale = draw(st.floats(0.05, 3.0))
    seed = draw(st.integers(0, 2**31 - 1))
    return sizes, r, taus, scale, seed


def build(case, *, phi="identity", symmetric=False, drive_scale=0.0):
    sizes, r, taus, scale, seed = case
    g = torch.Generator().manual_seed(seed)
    N, G = sum(sizes), len(sizes)
    A = torch.randn(N, r, generator=g)
    C = torch.randn(G, G, r, r, generator=g) * scale / math.sqrt(N * r)
    u = torch.randn(N, generator=g) * drive_scale if drive_scale else None
    tau = torch.tensor(taus)
    if symmetric:
        return NGCSystem.symmetric(A, C, group_sizes=sizes, tau=tau, phi=GAINS[phi], drive=u), g
    B = torch.randn(N, r, generator=g)
    return NGCSystem(A, B, C, group_sizes=sizes, tau=tau, phi=GAINS[phi], drive=u), g


def dense_linear_matrix(sys, kappa=1.0):
    """M = diag(1/tau) (-I + kappa W), from the dense W."""
    N = sys.dim
    return (kappa * sys.materialize() - torch.eye(N)) / sys.tau[..., sys.group_index].unsqueeze(-1)


def max_matched_distance(a, b):
    """Largest |a_i - b_pi(i)| under the optimal matching (Hungarian algorithm): a multiset
    comparison of two spectra that does not depend on how ties are ordered."""
    a, b = a.numpy(), b.numpy()
    D = np.abs(a[:, None] - b[None, :])
    rows, cols = linear_sum_assignment(D)
    return float(D[rows, cols].max())


# --------------------------------------------------------------------------- linear spectrum


@given(ngc_cases())
@example(((3, 3, 3), 2, (1.0, 1.0, 1.0), 1.0, 0))  # uniform tau: -1/tau with multiplicity N - G r
@example(((1, 1, 2), 3, (0.5, 2.0, 1.0), 2.0, 1))  # groups smaller than the rank (deflation)
@example(((5,), 5, (0.3,), 1.0, 2))  # n_g = r: no extra eigenvalue at all
@example(((6, 1), 1, (4.0, 0.2), 3.0, 3))  # rank one, very different time constants
def test_linear_spectrum_equals_dense_eigenvalues(case):
    sys, _ = build(case, phi="identity")
    ev = sys.linear_spectrum()
    M = dense_linear_matrix(sys)
    dense = torch.linalg.eigvals(M)
    assert ev.shape == (sys.dim,) and ev.is_complex()
    # Tolerance: LAPACK's eig is backward stable, |d lambda| <= cond(lambda) * O(N eps) ||M||;
    # 1e-8 ||M||_F leaves room for cond(lambda) up to ~1e5 at N <= 24 and is still ~1e8 times
    # smaller than the error of any wrong reduction (an O(||M||) change of the spectrum).
    scale = float(torch.linalg.matrix_norm(M)) + 1.0
    assert max_matched_distance(ev, dense) <= 1e-8 * scale
    # sorted by descending real part
    assert bool((ev.real[:-1] >= ev.real[1:]).all())


def test_linear_spectrum_multiplicity_uniform_tau():
    """DESIGN.md section 2: with one tau, -1/tau has multiplicity (at least) N - G r and the rest
    is (-1 + eig(C~ B~^T A~))/tau."""
    sizes, r, tau = (5, 7, 4), 2, 0.5
    sys, _ = build((sizes, r, (tau,) * 3, 1.5, 11), phi="identity")
    ev = sys.linear_spectrum()
    N, Gr = sys.dim, 3 * r
    n_at_minus = int(((ev + 1 / tau).abs() < 1e-12).sum())
    assert n_at_minus == N - Gr  # generic random states: exactly N - G r
    A, B, C = sys.states()
    At, Bt = sys._embed(A), sys._embed(B)
    Cb = C.transpose(1, 2).reshape(Gr, Gr)
    small = torch.linalg.eigvals(Cb @ Bt.T @ At)
    rest = ev[(ev + 1 / tau).abs() >= 1e-12]
    assert max_matched_distance(rest, (-1 + small) / tau) <= 1e-10  # same eigenproblem, O(10 eps)


def test_linear_spectrum_of_tanh_is_jacobian_at_origin():
    sys, _ = build(((3, 2, 4), 2, (0.5, 1.0, 2.0), 2.0, 4), phi="tanh")
    ev = sys.linear_spectrum()
    J0 = sys.jacobian(0.0, torch.zeros(sys.dim))  # tanh'(0) = 1: J(0) = diag(1/tau)(-I + W)
    assert max_matched_distance(ev, torch.linalg.eigvals(J0)) <= 1e-10 * (1 + float(J0.norm()))


def test_linear_spectrum_batched_equals_members():
    sys = NGCSystem.random(3, [2, 5, 3], 2, gain=1.2, phi="identity", batch_shape=(4,),
                           tau=torch.rand(4, 3) + 0.5, generator=torch.Generator().manual_seed(5))
    ev = sys.linear_spectrum()
    assert ev.shape == (4, 10)
    A, B, C = sys.states()
    for k in range(4):
        single = NGCSystem(A[k], B[k], C[k], group_sizes=sys.group_sizes, tau=sys.tau[k],
                           phi="identity")
        assert max_matched_distance(ev[k], single.linear_spectrum()) <= 1e-12


def test_ground_truth_of_linear_system():
    """Exponents of a linear flow = real parts of its eigenvalues (REFERENCES.md section 1); the
    exact Euclidean contraction rate = -lambda_max((M + M^T)/2) (Lohmiller & Slotine 1998)."""
    sys, _ = build(((4, 3), 2, (0.7, 1.3), 1.0, 6), phi="identity")
    gt = sys.ground_truth
    M = dense_linear_matrix(sys)
    dense = torch.linalg.eigvals(M).real.sort(descending=True).values
    np.testing.assert_allclose(gt.lyapunov_exponents, dense.numpy(), rtol=0, atol=1e-10)
    rate = -float(torch.linalg.eigvalsh(0.5 * (M + M.T)).max())
    assert gt.contraction_rate == pytest.approx(rate, abs=1e-12)
    assert sys.ground_truth is gt  # cached


# --------------------------------------------------------------------------- energy


def magnitude_scale(sys, y):
    """sum_i tau_i phi'(x_i) m_i^2 with m_i = (|x_i| + (|W||phi|)_i + |u_i|) / tau_i: the size of
    the terms whose cancellation dE/dt is, hence the scale of its rounding error."""
    W = sys.materialize()
    p = sys.phi.fn(y)
    u = sys.drive.abs() if sys.drive is not None else 0.0
    tau_n = sys.tau[sys.group_index]
    m = (y.abs() + p.abs() @ W.abs().T + u) / tau_n
    return (tau_n * sys.phi.derivative(y) * m * m).sum(-1)


@given(ngc_cases(), st.sampled_from(["tanh", "identity", "softsign"]), st.floats(0.0, 2.0),
       st.floats(0.01, 5.0))
@example(((3, 3), 2, (1.0, 1.0), 1.0, 0), "tanh", 0.0, 1.0)
@example(((1, 1, 1), 3, (0.2, 5.0, 1.0), 3.0, 1), "tanh", 1.0, 5.0)  # saturated, small groups
def test_energy_decreases_at_arbitrary_states(case, phi, drive_scale, x_scale):
    """dE/dt = grad E . f (autodiff) is <= 0 up to rounding and equals -sum tau phi' xdot^2."""
    sys, g = build(case, phi=phi, symmetric=True, drive_scale=drive_scale)
    y = (torch.randn(6, sys.dim, generator=g) * x_scale).requires_grad_(True)
    E = sys.energy(y)
    (grad,) = torch.autograd.grad(E.sum(), y)
    y = y.detach()
    rate = (grad * sys(0.0, y)).sum(-1)
    closed = sys.energy_rate(y)
    scale = magnitude_scale(sys, y) + 1e-300
    # Rounding: both are sums of <= N + G r <= 40 products per entry, so errors are
    # <= 40 * 10 * eps * scale ~ 1e-13 scale; 1e-12 scale is the stated bound.
    assert float((rate / scale).max()) <= 1e-12
    assert float(((rate - closed).abs() / scale).max()) <= 1e-12
    assert bool((closed <= 0).all())  # closed form: a sum of non-positive terms


def test_energy_closed_form_value():
    """E at a hand-computed point: one group, one neuron, r = 1, W = [w], phi = tanh, u:
    E(x) = -w tanh(x)^2 / 2 + x tanh x - log cosh x - u tanh x."""
    w, u, x = 0.7, 0.3, 1.2
    sys = NGCSystem(torch.tensor([[1.0]]), torch.tensor([[1.0]]), torch.tensor([[[[w]]]]),
                    group_sizes=[1], drive=torch.tensor([u]))
    want = -w * math.tanh(x) ** 2 / 2 + x * math.tanh(x) - math.log(math.cosh(x)) - u * math.tanh(x)
    assert float(sys.energy(torch.tensor([x]))) == pytest.approx(want, rel=1e-14)


def test_energy_accepts_symmetric_w_with_b_not_a():
    """The symmetry check is on W, not on B = A: B_g = A_g M_g with invertible M_g and
    C~ = S M~^{-T} (S symmetric) give W = A~ S A~^T."""
    sizes, r = (3, 4), 2
    g = torch.Generator().manual_seed(7)
    A = torch.randn(7, r, generator=g)
    Mg = torch.randn(2, r, r, generator=g) + 3 * torch.eye(r)
    B = torch.cat([A[:3] @ Mg[0], A[3:] @ Mg[1]])
    X = torch.randn(4, 4, generator=g)
    S = X + X.T
    Minv_T = torch.block_diag(*[torch.linalg.inv(m).T for m in Mg])
    Cb = S @ Minv_T
    C = Cb.reshape(2, r, 2, r).transpose(1, 2)
    sys = NGCSystem(A, B, C, group_sizes=sizes)
    assert not torch.allclose(A, B)
    W = sys.materialize()
    dense_defect = float((W - W.T).norm() / W.norm())
    assert float(sys.symmetry_defect()) == pytest.approx(dense_defect, abs=1e-13)
    assert dense_defect < 1e-13
    y = torch.randn(3, 7, generator=g)
    assert bool((sys.energy_rate(y) <= 0).all())


@given(ngc_cases())
def test_symmetry_defect_equals_dense(case):
    sys, _ = build(case)
    W = sys.materialize()
    want = float((W - W.T).norm() / W.norm())
    # joint-frame identity ||W - W^T||_F / ||W||_F = ||K - K^T||_F / ||K||_F (theory/03);
    # the QR route is backward stable: error O(G r eps) relative
    assert float(sys.symmetry_defect()) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_energy_errors():
    sys, _ = build(((2, 3), 2, (1.0, 1.0), 1.0, 0))
    with pytest.raises(ValueError, match=r"symmetric coupling W = W\^T, but .* = \d\.\d+e[+-]\d+ > "
                                         r"symmetry_rtol = 1\.5e-08.*NGCSystem\.symmetric"):
        sys.energy(torch.zeros(5))
    A, _, C = sys.states()
    moving = NGCSystem.symmetric(A, C, group_sizes=(2, 3),
                                 drive=lambda t: torch.sin(t) * torch.ones(5))
    with pytest.raises(ValueError, match=r"needs a constant `drive`.*Freeze it"):
        moving.energy(torch.zeros(5))
    no_integral = Gain(torch.tanh, lambda x: 1 - torch.tanh(x) ** 2, nondecreasing=True)
    with pytest.raises(ValueError, match=r"must be declared nondecreasing and carry its integral"):
        NGCSystem.symmetric(A, C, group_sizes=(2, 3), phi=no_integral).energy_rate(torch.zeros(5))


# --------------------------------------------------------------------------- contraction


@given(ngc_cases(), st.sampled_from(["tanh", "identity", "softsign"]), st.floats(0.01, 4.0))
@example(((2, 2), 1, (1.0, 1.0), 0.1, 0), "tanh", 1.0)  # certified
@example(((1, 4, 2), 3, (0.1, 10.0, 1.0), 3.0, 1), "tanh", 3.0)  # very unequal tau
def test_contraction_bound_dominates_mu2(case, phi, x_scale):
    """mu_2(J(x)) <= bound at every state (theory/04): x = 0 and sampled states."""
    sys, g = build(case, phi=phi)
    res = sys.contraction_bound()
    y = torch.cat([torch.zeros(1, sys.dim), torch.randn(16, sys.dim, generator=g) * x_scale])
    J = sys.jacobian(0.0, y)
    mu2 = torch.linalg.eigvalsh(0.5 * (J + J.mT)).max(-1).values
    # one-sided by nature (an upper bound); slack for rounding of eigvalsh/QR: 1e-10 x magnitude
    slack = 1e-10 * (1.0 + float(res.coupling_norm) + float((1 / sys.tau).max()))
    assert float((mu2 - res.bound).max()) <= slack
    assert bool(res.certified) == bool(res.bound < 0)


@given(ngc_cases())
def test_coupling_norm_equals_dense(case):
    """||diag(1/tau) W||_2 from per-group QR equals the dense spectral norm."""
    sys, _ = build(case)
    dense = torch.linalg.matrix_norm(sys.materialize() / sys.tau[sys.group_index][:, None], ord=2)
    res = sys.contraction_bound()
    assert float(res.coupling_norm) == pytest.approx(float(dense), rel=1e-10, abs=1e-13)
    # and the bound is no worse than the form of DESIGN.md, -1/tau_max + ||W|| sup phi' / tau_min
    w_norm = float(torch.linalg.matrix_norm(sys.materialize(), ord=2))
    loose = -1 / max(case[2]) + w_norm / min(case[2])
    assert float(res.bound) <= loose + 1e-10 * (1 + abs(loose))


def test_contraction_bound_uniform_tau_and_tightness():
    """One tau, W = A~ S A~^T with S positive semi-definite, phi = tanh: the bound is
    (-1 + ||W||_2)/tau, and mu_2(J(0)) = (-1 + lambda_max(W))/tau equals it (||W|| = lambda_max)."""
    sizes, r, tau = (4, 3, 5), 2, 0.8
    g = torch.Generator().manual_seed(8)
    A = torch.randn(12, r, generator=g)
    X = torch.randn(6, 6, generator=g) / 6
    C = (X @ X.T).reshape(3, r, 3, r).transpose(1, 2)
    sys = NGCSystem.symmetric(A, C, group_sizes=sizes, tau=tau)
    res = sys.contraction_bound()
    W = sys.materialize()
    assert float(res.bound) == pytest.approx((-1 + float(torch.linalg.matrix_norm(W, ord=2))) / tau,
                                             rel=1e-12)
    J0 = sys.jacobian(0.0, torch.zeros(12))
    mu2_0 = float(torch.linalg.eigvalsh(0.5 * (J0 + J0.T)).max())
    assert mu2_0 == pytest.approx(float(res.bound), rel=1e-10, abs=1e-12)


def test_contraction_bound_batched_and_certifies():
    sys = NGCSystem.random(4, 6, 2, gain=1.0, batch_shape=(3,),
                           generator=torch.Generator().manual_seed(9))
    res = sys.contraction_bound()
    assert res.bound.shape == res.certified.shape == res.coupling_norm.shape == (3,)
    weak = NGCSystem.random(4, 6, 2, gain=0.05, generator=torch.Generator().manual_seed(9))
    # ||W||_2 <= ||W||_F ~ 0.05 sqrt(N) = 0.24 < 1 at this seed: certified, rate ~ 1 - ||W||
    r_weak = weak.contraction_bound()
    assert bool(r_weak.certified)
    assert float(r_weak.bound) == pytest.approx(-1 + float(r_weak.coupling_norm), rel=1e-14)


def test_contraction_needs_derivative_bound():
    sizes, r = (2, 2), 1
    unbounded = Gain(torch.sinh, torch.cosh, name="sinh")
    sys = NGCSystem(torch.ones(4, 1), torch.ones(4, 1), torch.ones(2, 2, 1, 1), group_sizes=sizes,
                    phi=unbounded)
    with pytest.raises(ValueError, match=r"`phi` \(Gain\('sinh'\)\) has no derivative_bound"):
        sys.contraction_bound()


# --------------------------------------------------------------------------- random statistics


@pytest.mark.parametrize("symmetric", [False, True])
def test_random_weight_variance_is_gain_squared_over_n(symmetric):
    """theory/01 section 4 (and theory/ngc_random_scaling.py): E W_ij = 0 and E W_ij^2 = g^2/N
    (off-diagonal; for independent states also the diagonal; symmetric diagonal (2 + 1/r) g^2/N).
    K independent systems give K i.i.d. per-system ratios rho_k = mean(W^2) N / g^2 with
    E rho = 1; by the CLT the K-average lies within 5 standard errors of 1 (two-sided)."""
    K, sizes, r, gain = 200, (6, 10, 3, 13), 3, 1.7
    N = sum(sizes)
    sys = NGCSystem.random(4, list(sizes), r, gain=gain, symmetric=symmetric, batch_shape=(K,),
                           generator=torch.Generator().manual_seed(10))
    W = sys.materialize()  # (K, N, N)
    off = ~torch.eye(N, dtype=torch.bool)

    def z_score(samples, expected):
        return abs(float(samples.mean()) - expected) / (float(samples.std()) / math.sqrt(K))

    rho_off = (W[:, off] ** 2).mean(-1) * N / gain**2
    assert z_score(rho_off, 1.0) <= 5.0
    mean_off = W[:, off].mean(-1) * math.sqrt(N) / gain
    assert z_score(mean_off, 0.0) <= 5.0
    diag = torch.diagonal(W, dim1=-2, dim2=-1)
    rho_diag = (diag**2).mean(-1) * N / gain**2
    assert z_score(rho_diag, (2 + 1 / r) if symmetric else 1.0) <= 5.0
    # power: a variance off by the factor (1 + 1/r) would be detected
    assert z_score(rho_off, 1.0 + 1 / r) > 5.0


# --------------------------------------------------------------------------- trajectories


def test_energy_non_increasing_along_dopri5_solution():
    solve = pytest.importorskip("ngcdyn.solvers").solve
    sys = NGCSystem.random(3, [4, 6, 5], 2, gain=3.0, symmetric=True,
                           tau=torch.tensor([0.5, 1.0, 2.0]),
                           drive=torch.linspace(-0.5, 0.5, 15),
                           generator=torch.Generator().manual_seed(12))
    y0 = torch.randn(4, 15, generator=torch.Generator().manual_seed(13)) * 2
    t = torch.linspace(0.0, 10.0, 201)
    rtol, atol = 1e-8, 1e-10
    sol = solve(sys, y0, t, method="dopri5", rtol=rtol, atol=atol)
    assert bool((sol.status == 0).all())
    ys = sol.ys  # (4, 201, 15)
    E = sys.energy(ys)  # (4, 201)
    dE = E[:, 1:] - E[:, :-1]
    # Energy error at a sample ~ |grad E| . |y error|; grad E_i = -tau_i phi' xdot_i -> 0 at rest.
    ys_g = ys.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(sys.energy(ys_g).sum(), ys_g)
    err = (grad.abs() * (atol + rtol * ys.abs())).sum(-1)  # (4, 201), one local tolerance
    allowed = 100 * (err[:, 1:] + err[:, :-1])  # global vs local error factor 100
    assert float((dE / allowed).max()) <= 1.0
    # and the energy really goes down (the check above is not vacuous)
    assert bool((E[:, -1] < E[:, 0] - 1e-3 * (1 + E[:, 0].abs())).all())


# --------------------------------------------------------------------------- sympy derivations


@pytest.mark.slow
@pytest.mark.parametrize("script", ["ngc_linear_spectrum.py", "ngc_energy.py",
                                    "ngc_contraction.py", "ngc_random_scaling.py"])
def test_theory_script_runs(script, capsys):
    runpy.run_path(str(THEORY / script), run_name="__main__")
    out = capsys.readouterr().out
    assert out.count("OK") >= 3


def test_analysis_methods_in_float32():
    """Every method runs in float32 and agrees with float64 to float32 accuracy: relative
    1e-4 (~ 1000 eps_32; eigenvalues of a 12 x 12 non-normal matrix, SVD, QR)."""
    tau = torch.tensor([0.5, 1.0, 2.0])
    s64 = NGCSystem.random(3, [5, 3, 4], 2, gain=1.3, symmetric=True, phi="identity", tau=tau,
                           generator=torch.Generator().manual_seed(14))
    A, _, C = s64.states()
    s32 = NGCSystem.symmetric(A.float(), C.float(), group_sizes=s64.group_sizes,
                              tau=tau.float(), phi="identity")
    ev64, ev32 = s64.linear_spectrum(), s32.linear_spectrum()
    assert ev32.dtype == torch.complex64
    assert max_matched_distance(ev32.to(torch.complex128), ev64) <= 1e-4 * float(ev64.abs().max())
    b64, b32 = s64.contraction_bound(), s32.contraction_bound()
    assert b32.bound.dtype == torch.float32
    assert float(b32.coupling_norm) == pytest.approx(float(b64.coupling_norm), rel=1e-4)
    y = torch.randn(3, 12)
    e32 = s32.energy(y.float())
    assert e32.dtype == torch.float32
    torch.testing.assert_close(e32.double(), s64.energy(y), rtol=1e-4, atol=1e-4)
    assert float(s32.symmetry_defect()) < 3.5e-4  # below the float32 default sqrt(eps_32)
