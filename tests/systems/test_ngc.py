"""NGCSystem: structured right-hand side, batching, time dependence, Jacobian products, errors.

The reference for every structured computation is the same quantity built from the dense
effective weight ``W = A~ C~ B~^T`` (block ``(g, h)`` = ``A_g C_gh B_h^T``), formed here
independently of the library with an explicit Python loop over blocks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from ngcdyn.systems import Gain, NGCSystem
from ngcdyn.systems._base import autodiff_jacobian

# --------------------------------------------------------------------------- helpers


def dense_w_reference(A, B, C, sizes):
    """W from its definition, block by block (no library code): block (g, h) = A_g C_gh B_h^T."""
    offs = np.concatenate([[0], np.cumsum(sizes)])
    N = int(offs[-1])
    W = torch.zeros(*torch.broadcast_shapes(A.shape[:-2], B.shape[:-2], C.shape[:-4]), N, N,
                    dtype=A.dtype)
    for g in range(len(sizes)):
        for h in range(len(sizes)):
            Ag = A[..., offs[g]:offs[g + 1], :]
            Bh = B[..., offs[h]:offs[h + 1], :]
            W[..., offs[g]:offs[g + 1], offs[h]:offs[h + 1]] = Ag @ C[..., g, h, :, :] @ Bh.mT
    return W


def abs_bound(A, B, C, sizes):
    """|A~| |C~| |B~|^T, elementwise, the magnitude that scales the rounding of W q."""
    return dense_w_reference(A.abs(), B.abs(), C.abs(), sizes)


def make_params(sizes, r, *, seed=0, pbatch=(), dtype=torch.float64, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    G, N = len(sizes), sum(sizes)
    A = torch.randn(*pbatch, N, r, generator=g, dtype=dtype) * scale
    B = torch.randn(*pbatch, N, r, generator=g, dtype=dtype) * scale
    C = torch.randn(*pbatch, G, G, r, r, generator=g, dtype=dtype) / math.sqrt(N * r)
    tau = torch.rand(*pbatch, G, generator=g, dtype=dtype) * 2.0 + 0.1
    return A, B, C, tau


def assert_within_rounding(got, want, magnitude, n_terms, dtype):
    """|got - want| <= 4 (n_terms + 2) eps |magnitude|: the standard bound for two summation orders
    of the same dot products (Higham, Accuracy and Stability, Lemma 3.1: gamma_n = n eps)."""
    eps = torch.finfo(dtype).eps
    err = (got - want).abs()
    tol = 4 * (n_terms + 2) * eps * magnitude + torch.finfo(dtype).tiny
    ratio = float((err / tol).max())
    assert ratio <= 1.0, f"error is {ratio:.3g} x the rounding bound"


@st.composite
def structures(draw, max_groups=4, max_size=6, max_rank=4):
    G = draw(st.integers(1, max_groups))
    sizes = tuple(draw(st.lists(st.integers(1, max_size), min_size=G, max_size=G)))
    r = draw(st.integers(1, max_rank))
    seed = draw(st.integers(0, 2**31 - 1))
    return sizes, r, seed


# --------------------------------------------------------------------------- right-hand side


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sizes,r", [((4, 4, 4), 3), ((1, 5, 2, 7), 3), ((3,), 5), ((2, 1), 4)])
@pytest.mark.parametrize("phi", ["tanh", "identity"])
def test_rhs_matches_dense_reference(sizes, r, phi, dtype):
    A, B, C, tau = make_params(sizes, r, dtype=dtype)
    N = sum(sizes)
    u = torch.randn(3, N, dtype=dtype)
    sys = NGCSystem(A, B, C, group_sizes=sizes, tau=tau, phi=phi, drive=u)
    y = torch.randn(3, N, dtype=dtype) * 2
    got = sys(torch.tensor(0.3, dtype=dtype), y)
    assert got.shape == (3, N) and got.dtype == dtype
    W = dense_w_reference(A, B, C, sizes)
    p = sys.phi.fn(y)
    inv_tau = 1 / tau[sys.group_index]
    want = (-y + (W @ p.unsqueeze(-1)).squeeze(-1) + u) * inv_tau
    # Rounding: N + G r terms per output, magnitudes |A~||C~||B~||phi| + |y| + |u|.
    coupling_mag = (abs_bound(A, B, C, sizes) @ p.abs().unsqueeze(-1)).squeeze(-1)
    mag = (coupling_mag + y.abs() + u.abs()) * inv_tau
    assert_within_rounding(got, want, mag, N + len(sizes) * r, dtype)
    # dense_rhs uses the library's materialize: same value, independent code path.
    assert_within_rounding(sys.dense_rhs(0.3, y), want, mag, N + len(sizes) * r, dtype)


@given(structures())
@example(((3, 3, 3), 2, 0))  # equal groups (reshape path)
@example(((1, 1, 1, 1), 4, 1))  # every group smaller than the rank
@example(((7,), 1, 2))  # one group, rank one
def test_rhs_matches_dense_property(struct):
    sizes, r, seed = struct
    A, B, C, tau = make_params(sizes, r, seed=seed)
    N = sum(sizes)
    sys = NGCSystem(A, B, C, group_sizes=sizes, tau=tau)
    y = torch.randn(4, N, generator=torch.Generator().manual_seed(seed)) * 3
    W = dense_w_reference(A, B, C, sizes)
    p = torch.tanh(y)
    inv_tau = 1 / tau[sys.group_index]
    want = (-y + p @ W.mT) * inv_tau
    mag = (p.abs() @ abs_bound(A, B, C, sizes).mT + y.abs()) * inv_tau
    assert_within_rounding(sys(0.0, y), want, mag, N + len(sizes) * r, torch.float64)


@pytest.mark.parametrize("sizes", [(3, 3), (2, 4)])
def test_batched_parameters_broadcast_against_states(sizes):
    """A (P, N, r), B (N, r) shared, C (P, G, G, r, r), tau (P, G) broadcast with states
    (S, P, N); each member equals the unbatched system built from that member's parameters."""
    P, S, r = 3, 2, 2
    A, _, _, _ = make_params(sizes, r, seed=1, pbatch=(P,))
    _, B, _, _ = make_params(sizes, r, seed=2)
    _, _, C, tau = make_params(sizes, r, seed=3, pbatch=(P,))
    sys = NGCSystem(A, B, C, group_sizes=sizes, tau=tau)
    assert sys.batch_shape == (P,)
    N = sum(sizes)
    y = torch.randn(S, P, N)
    out = sys(0.0, y)
    assert out.shape == (S, P, N)
    for p in range(P):
        single = NGCSystem(A[p], B, C[p], group_sizes=sizes, tau=tau[p])
        # Same arithmetic in the same order per member: equal to rounding of batched BLAS calls.
        torch.testing.assert_close(out[:, p], single(0.0, y[:, p]), rtol=1e-13, atol=1e-14)
    W = sys.materialize()
    assert W.shape == (P, N, N)
    torch.testing.assert_close(W, dense_w_reference(A, B, C, sizes), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("sizes", [(3, 3, 3), (1, 4, 2)])
def test_callable_drive_and_per_sample_times(sizes):
    N, r = sum(sizes), 2
    A, B, C, tau = make_params(sizes, r, seed=4)
    amp = torch.randn(N)

    def drive(t):  # u(t) = amp sin(t): works for 0-d t and per-sample t of shape (S,)
        return torch.sin(t)[..., None] * amp

    sys = NGCSystem(A, B, C, group_sizes=sizes, tau=tau, drive=drive)
    y = torch.randn(4, N)
    t = torch.tensor([0.0, 0.5, 1.0, 2.0])
    out = sys(t, y)
    for i in range(4):
        # member i with its own time equals a call at that scalar time (same operations)
        torch.testing.assert_close(out[i], sys(t[i], y[i:i + 1])[0], rtol=1e-14, atol=1e-15)
    W = dense_w_reference(A, B, C, sizes)
    want = (-y + torch.tanh(y) @ W.mT + torch.sin(t)[:, None] * amp) / tau[sys.group_index]
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)  # 1e-12: rounding, N <= 9 terms


@pytest.mark.parametrize("sizes", [(3, 3), (2, 5, 1)])
def test_time_dependent_states(sizes):
    """A(t), B(t), C(t) callables: the right-hand side at t uses the states at t, for a shared
    0-d time and for per-sample times; Jacobian, jvp and materialize follow."""
    N, r, G = sum(sizes), 2, len(sizes)
    A0, B0, C0, tau = make_params(sizes, r, seed=5)

    def A(t):
        return A0 * (1 + 0.5 * torch.sin(t))[..., None, None]

    def B(t):
        return B0 + torch.cos(t)[..., None, None]

    def C(t):
        return C0 * torch.exp(-t)[..., None, None, None, None]

    sys = NGCSystem(A, B, C, group_sizes=sizes, tau=tau)
    y = torch.randn(3, N)
    for t in (0.0, 0.7):
        tt = torch.tensor(t)
        W = dense_w_reference(A(tt), B(tt), C(tt), sizes)
        want = (-y + torch.tanh(y) @ W.mT) / tau[sys.group_index]
        torch.testing.assert_close(sys(t, y), want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(sys.materialize(t), W, rtol=1e-13, atol=1e-14)
    ts = torch.tensor([0.0, 0.4, 1.3])
    out = sys(ts, y)
    for i in range(3):
        torch.testing.assert_close(out[i], sys(ts[i], y[i:i + 1])[0], rtol=1e-13, atol=1e-14)
    J = sys.jacobian(ts, y)
    assert J.shape == (3, N, N)
    for i in range(3):
        Ji = autodiff_jacobian(lambda v: sys(ts[i], v), y[i:i + 1])[0]
        torch.testing.assert_close(J[i], Ji, rtol=1e-12, atol=1e-12)
    v = torch.randn(3, N)
    torch.testing.assert_close(sys.jvp(ts, y, v), (J @ v.unsqueeze(-1)).squeeze(-1),
                               rtol=1e-12, atol=1e-12)
    assert sys.states(0.7)[2].shape == (G, G, r, r)


# --------------------------------------------------------------------------- Jacobian & products


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sizes", [(4, 4), (1, 3, 2)])
def test_analytic_jacobian_jvp_vjp(sizes, dtype):
    N, r = sum(sizes), 3
    A, B, C, tau = make_params(sizes, r, seed=6, dtype=dtype)
    sys = NGCSystem(A, B, C, group_sizes=sizes, tau=tau, drive=torch.randn(N, dtype=dtype))
    y = torch.randn(5, N, dtype=dtype)
    t = torch.tensor(0.0, dtype=dtype)
    J = sys.jacobian(t, y)
    J_ad = autodiff_jacobian(lambda v: sys(t, v), y)
    # J = diag(1/tau)(-I + W diag(phi')) analytically vs forward-mode autodiff of the structured
    # RHS: both exact up to rounding of N + G r term sums.
    tol = 50 * (N + len(sizes) * r) * torch.finfo(dtype).eps
    torch.testing.assert_close(J, J_ad, rtol=tol, atol=tol)
    v = torch.randn(5, N, dtype=dtype)
    w = torch.randn(5, N, dtype=dtype)
    Jv = (J @ v.unsqueeze(-1)).squeeze(-1)
    JTw = (J.mT @ w.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(sys.jvp(t, y, v), Jv, rtol=tol, atol=tol)
    torch.testing.assert_close(sys.vjp(t, y, w), JTw, rtol=tol, atol=tol)
    # k tangent vectors through a batch dimension
    V = torch.randn(5, 4, N, dtype=dtype)
    torch.testing.assert_close(sys.jvp(t, y[:, None, :], V), V @ J.mT, rtol=tol, atol=tol)


def test_gradients_flow_to_states():
    """The RHS is differentiable in A, B, C (backprop through a solver needs it)."""
    sizes, r = (2, 3), 2
    A, B, C, tau = make_params(sizes, r, seed=7)
    A.requires_grad_(True)
    C.requires_grad_(True)
    y = torch.randn(2, 5)
    NGCSystem(A, B, C, group_sizes=sizes, tau=tau)(0.0, y).square().sum().backward()
    Ad, Cd = A.detach().clone().requires_grad_(True), C.detach().clone().requires_grad_(True)
    W = dense_w_reference(Ad, B, Cd, sizes)
    ((-y + torch.tanh(y) @ W.mT) / tau[torch.tensor([0, 0, 1, 1, 1])]).square().sum().backward()
    torch.testing.assert_close(A.grad, Ad.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(C.grad, Cd.grad, rtol=1e-12, atol=1e-12)


def test_custom_gain():
    sizes, r = (3, 2), 2
    A, B, C, tau = make_params(sizes, r, seed=8)
    softsign = Gain(lambda x: x / (1 + x.abs()), lambda x: (1 + x.abs()) ** -2,
                    derivative_bound=1.0, name="softsign")
    sys = NGCSystem(A, B, C, group_sizes=sizes, tau=tau, phi=softsign)
    y = torch.randn(4, 5)
    W = dense_w_reference(A, B, C, sizes)
    want = (-y + (y / (1 + y.abs())) @ W.mT) / tau[sys.group_index]
    torch.testing.assert_close(sys(0.0, y), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sys.jacobian(0.0, y), autodiff_jacobian(lambda v: sys(0.0, v), y),
                               rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- constructors


def test_from_arrays_matches_stacked_constructor():
    rng = np.random.default_rng(0)
    As = [rng.standard_normal((n, 2)) for n in (2, 3, 1)]
    Bs = [rng.standard_normal((n, 2)) for n in (2, 3, 1)]
    C = rng.standard_normal((3, 3, 2, 2))
    a = NGCSystem.from_arrays(As, Bs, C, tau=[1.0, 2.0, 0.5])
    b = NGCSystem(torch.as_tensor(np.concatenate(As)), torch.as_tensor(np.concatenate(Bs)),
                  torch.as_tensor(C), group_sizes=[2, 3, 1], tau=torch.tensor([1.0, 2.0, 0.5]))
    y = torch.randn(4, 6)
    torch.testing.assert_close(a(0.0, y), b(0.0, y), rtol=0, atol=0)  # identical inputs
    # the (G r, G r) block-matrix form of C gives the same system: block (g, h) = C[g, h]
    Cb = C.transpose(0, 2, 1, 3).reshape(6, 6)
    c = NGCSystem.from_arrays(As, Bs, Cb, tau=[1.0, 2.0, 0.5])
    torch.testing.assert_close(c(0.0, y), b(0.0, y), rtol=0, atol=0)


def test_symmetric_constructor_uses_symmetric_part():
    sizes, r = (2, 3), 2
    A, _, C, _ = make_params(sizes, r, seed=9)
    sys = NGCSystem.symmetric(A, C, group_sizes=sizes)
    W = sys.materialize()
    torch.testing.assert_close(W, W.mT, rtol=0, atol=1e-15)  # W = A~ C~s A~^T, C~s symmetric
    Cs = 0.5 * (C + C.permute(1, 0, 3, 2))
    torch.testing.assert_close(W, dense_w_reference(A, A, Cs, sizes), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("symmetric", [False, True])
def test_random_constructor_shapes_dtype(symmetric):
    sys = NGCSystem.random(3, [2, 4, 1], 2, gain=1.3, symmetric=symmetric, batch_shape=(2, 5),
                           dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    assert (sys.dim, sys.n_groups, sys.rank, sys.group_sizes) == (7, 3, 2, (2, 4, 1))
    assert sys.batch_shape == (2, 5) and sys.dtype == torch.float32
    out = sys(0.0, torch.zeros(2, 5, 7, dtype=torch.float32))
    assert out.dtype == torch.float32 and out.shape == (2, 5, 7)
    # seeded generator: reproducible
    again = NGCSystem.random(3, [2, 4, 1], 2, gain=1.3, symmetric=symmetric, batch_shape=(2, 5),
                             dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.materialize(), sys.materialize(), rtol=0, atol=0)


def test_repr_and_ground_truth_nonlinear():
    sys = NGCSystem.random(2, 3, 1, generator=torch.Generator().manual_seed(0))
    assert "NGCSystem(N=6, G=2, r=1" in repr(sys)
    gt = sys.ground_truth
    assert gt.lyapunov_exponents is None and gt.contraction_rate is None  # tanh: not exact
    assert "theory/01_ngc_system.md" in gt.reference


# --------------------------------------------------------------------------- validation


def _ok(**over):
    A, B, C, tau = make_params((2, 3), 2, seed=10)
    kw = dict(A=A, B=B, C=C, group_sizes=(2, 3), tau=tau)
    kw.update(over)
    return kw


def _build(kw):
    return NGCSystem(kw.pop("A"), kw.pop("B"), kw.pop("C"), **kw)


@pytest.mark.parametrize(
    "over,exc,match",
    [
        (
            dict(group_sizes=(2, 2)), ValueError,
            r"`group_sizes` must sum to N = 5 .* \[2, 2\] summing to 4",
        ),
        (dict(group_sizes=(5, 0)), ValueError, r"`group_sizes` must contain positive integers"),
        (dict(group_sizes=5), TypeError, r"`group_sizes` must be a non-empty sequence"),
        (
            dict(B=torch.randn(5, 3)), ValueError,
            r"`B` must have the shape .* same rank r.*\(5, 3\)",
        ),
        (
            dict(C=torch.randn(2, 2, 3, 3)), ValueError,
            r"`C` must have shape .* \(\.\.\., 2, 2, 2, 2\).*got \(2, 2, 3, 3\)",
        ),
        (dict(tau=torch.tensor([1.0, -1.0])), ValueError, r"`tau` must be finite and > 0.*-1\.0"),
        (dict(tau=0.0), ValueError, r"`tau` must be finite and > 0"),
        (
            dict(tau=torch.ones(3)), ValueError,
            r"`tau` must be a number or have shape \(\*pbatch, G\) with G = 2",
        ),
        (dict(tau="fast"), TypeError, r"`tau` must be a positive number"),
        (
            dict(phi="relu6"), ValueError,
            r"`phi` must be one of \['identity', 'linear', 'tanh'\] .* got 'relu6'",
        ),
        (dict(phi=torch.sin), TypeError, r"`phi` got a bare callable .*phi=Gain\(fn, derivative\)"),
        (
            dict(B=torch.randn(5, 2, dtype=torch.float32)), TypeError,
            r"`B` has dtype torch.float32 but `A` has dtype torch.float64",
        ),
        (
            dict(B=torch.randn(5, 2, device="meta")), ValueError,
            r"`B` is on device meta but `A` is on cpu",
        ),
        (
            dict(A=torch.randn(4, 5, 2), tau=torch.ones(3, 2)), ValueError,
            r"leading \(batch\) dimensions must broadcast.*A \(4,\).*tau \(3,\)",
        ),
        (
            dict(A=np.ones((5, 2))), TypeError,
            r"(?s)`A` must be a torch.Tensor or a callable .*from_arrays",
        ),
        (
            dict(A=torch.ones(5, 2, dtype=torch.long)), TypeError,
            r"`A` must be a floating-point tensor",
        ),
        (
            dict(C=lambda t: 1 / 0), ValueError,
            r"`C` is a callable of t, but calling it at t = 0 .* ZeroDivisionError",
        ),
        (
            dict(drive=torch.ones(4)), ValueError,
            r"`drive` must have shape \(\*batch, N\) with N = 5",
        ),
        (dict(drive="noise"), TypeError, r"`drive` must be None, a tensor"),
    ],
)
def test_constructor_errors(over, exc, match):
    with pytest.raises(exc, match=match):
        _build(_ok(**over))


def test_materialize_limit():
    big = NGCSystem(torch.ones(4097, 1), torch.ones(4097, 1), torch.ones(1, 1, 1, 1),
                    group_sizes=[4097], phi="identity")
    with pytest.raises(ValueError, match=r"refuses N = 4097 > 4096 .* force=True"):
        big.materialize()
    with pytest.raises(ValueError, match=r"refuses N = 4097"):
        big.dense_rhs(0.0, torch.zeros(4097))
    W = big.materialize(force=True)  # W = 1 1^T exactly
    assert W.shape == (4097, 4097) and float(W.min()) == 1.0 == float(W.max())


def test_time_dependent_needs_t():
    A, B, C, tau = make_params((2, 2), 1)
    sys = NGCSystem(lambda t: A * torch.cos(t), B, C, group_sizes=(2, 2), tau=tau)
    methods = (sys.materialize, sys.linear_spectrum, sys.contraction_bound, sys.symmetry_defect)
    for method in methods:
        with pytest.raises(ValueError, match=r"`t` is required: this NGCSystem has time-dependent"):
            method()


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (
            dict(n_groups=0, group_size=2, rank=1), ValueError,
            r"`n_groups` must be an integer >= 1, got 0",
        ),
        (
            dict(n_groups=2, group_size=[2, 2, 2], rank=1), ValueError,
            r"`group_size` must be an int or a sequence of n_groups = 2",
        ),
        (dict(n_groups=2, group_size=2, rank=1.5), TypeError, r"`rank` must be an integer >= 1"),
        (
            dict(n_groups=2, group_size=2, rank=1, gain=-1.0), ValueError,
            r"`gain` must be finite and >= 0, got -1.0",
        ),
    ],
)
def test_random_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        NGCSystem.random(**kwargs)


def test_from_arrays_errors():
    with pytest.raises(TypeError, match=r"sequences of per-group arrays .* group_sizes=\.\.\."):
        NGCSystem.from_arrays(torch.ones(3, 1), torch.ones(3, 1), torch.ones(1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"`A\[1\]` and `B\[1\]` must both have shape \(n_g, r\)"):
        NGCSystem.from_arrays([np.ones((2, 1)), np.ones((2, 1))],
                              [np.ones((2, 1)), np.ones((3, 1))], np.eye(2))
    with pytest.raises(ValueError, match=r"same number G >= 1 of groups, got 2 and 1"):
        NGCSystem.from_arrays([np.ones((2, 1))] * 2, [np.ones((2, 1))], np.eye(2))


def test_gain_errors():
    with pytest.raises(TypeError, match=r"`derivative` of Gain must be callable"):
        Gain(torch.tanh, 1.0)
    with pytest.raises(ValueError, match=r"`derivative_bound` of Gain must be finite and >= 0"):
        Gain(torch.tanh, torch.cos, derivative_bound=-1.0)
    with pytest.raises(TypeError, match=r"`integral` of Gain must be callable or None"):
        Gain(torch.tanh, torch.cos, integral="logcosh")


@pytest.mark.slow
@pytest.mark.parametrize("sizes", [(2000,) * 50, tuple(1000 + 40 * k for k in range(50))])
def test_structured_methods_never_form_w(sizes):
    """N = 1e5 (equal groups) and N = 99,000 (unequal): a dense W would need 80 GB; the structured
    RHS, jvp, energy rate, linear spectrum (a 200 x 200 problem) and contraction bound run in
    O(N r) memory. Their values are checked against dense references on small systems elsewhere;
    here they must run and agree with closed forms that hold at any size."""
    G, r = len(sizes), 4
    sys = NGCSystem.random(G, list(sizes), r, gain=0.5, symmetric=True, phi="identity",
                           generator=torch.Generator().manual_seed(0))
    N = sys.dim
    y = torch.randn(2, N)
    f = sys(0.0, y)
    assert f.shape == (2, N) and bool(torch.isfinite(f).all())
    # linearity of the identity-gain system: f(y) + y = W y, and jvp(y, v) = f(v) for phi = id
    torch.testing.assert_close(sys.jvp(0.0, y, y), f, rtol=1e-12, atol=1e-12)
    ev = sys.linear_spectrum()
    assert ev.shape == (N,)
    # W symmetric: real spectrum (the reduced matrix P C~ is similar to the symmetric
    # P^1/2 C~ P^1/2, so eig returns imaginary parts at rounding level only); -1 with
    # multiplicity N - G r (tau = 1)
    assert float(ev.imag.abs().max()) < 1e-8
    assert int(((ev + 1).abs() < 1e-12).sum()) == N - G * r
    res = sys.contraction_bound()
    # ||W||_2 = max |eig(W)| for symmetric W: bound = -1 + max |lambda + 1|
    assert float(res.bound) == pytest.approx(-1 + float((ev + 1).abs().max()), rel=1e-8)
    assert bool((sys.energy_rate(y) <= 0).all())


@pytest.mark.parametrize("backend", ["ngcdyn", "torchdiffeq"])
def test_solve_time_dependent_system_matches_dense(backend):
    """Through a solver (per-member times for backend='ngcdyn', a shared 0-d time for
    torchdiffeq), the structured field with time-dependent states and a callable drive gives the
    same trajectory as its dense form dense_rhs: the two fields agree to rounding and take the
    same steps, so the solutions agree far below the solver tolerance (rtol 1e-7; bound 1e-9)."""
    solvers = pytest.importorskip("ngcdyn.solvers")
    sizes, r = (3, 1, 4), 2
    A0, B0, C0, tau = make_params(sizes, r, seed=15, scale=1.5)

    def A(t):
        return A0 * (1 + 0.3 * torch.sin(t))[..., None, None]

    def drive(t):
        return torch.cos(2 * t)[..., None] * torch.linspace(-1, 1, 8)

    sys = NGCSystem(A, B0, C0, group_sizes=sizes, tau=tau, drive=drive)
    y0 = torch.randn(3, 8, generator=torch.Generator().manual_seed(16))
    t = torch.linspace(0.0, 2.0, 5)
    kw = dict(method="dopri5", rtol=1e-7, atol=1e-9, backend=backend)
    ys = solvers.solve(sys, y0, t, **kw).ys
    ys_dense = solvers.solve(lambda tt, y, args: sys.dense_rhs(tt, y), y0, t, **kw).ys
    assert ys.shape == (3, 5, 8)
    torch.testing.assert_close(ys, ys_dense, rtol=1e-9, atol=1e-11)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sizes", [(4, 4, 4), (2, 5, 1)])
def test_cuda_matches_cpu(sizes, dtype):
    """Device-agnostic code: every method on CUDA equals the CPU result to the dtype's rounding
    (different kernels, same arithmetic: 1e3 eps relative)."""
    cpu = NGCSystem.random(len(sizes), list(sizes), 2, gain=1.2, symmetric=True, phi="tanh",
                           tau=torch.tensor([0.5, 1.0, 2.0], dtype=dtype), dtype=dtype,
                           generator=torch.Generator().manual_seed(17))
    A, _, C = cpu.states()
    dev = torch.device("cuda")
    gpu = NGCSystem.symmetric(A.to(dev), C.to(dev), group_sizes=sizes, tau=cpu.tau.to(dev))
    y = torch.randn(3, cpu.dim, dtype=dtype)
    tol = 1e3 * torch.finfo(dtype).eps
    for name, a, b in [
        ("rhs", cpu(0.0, y), gpu(0.0, y.to(dev))),
        ("jvp", cpu.jvp(0.0, y, y), gpu.jvp(0.0, y.to(dev), y.to(dev))),
        ("jacobian", cpu.jacobian(0.0, y), gpu.jacobian(0.0, y.to(dev))),
        ("energy", cpu.energy(y), gpu.energy(y.to(dev))),
        ("bound", cpu.contraction_bound().bound, gpu.contraction_bound().bound),
    ]:
        assert b.device.type == "cuda", name
        torch.testing.assert_close(b.cpu(), a, rtol=tol, atol=tol, msg=name)
    ev_cpu, ev_gpu = cpu.linear_spectrum(), gpu.linear_spectrum()
    assert ev_gpu.device.type == "cuda"
    torch.testing.assert_close(ev_gpu.cpu().real.sort().values, ev_cpu.real.sort().values,
                               rtol=tol, atol=tol)


def test_group_signals_equal_per_group_products():
    """s_g = B_gᵀ φ(x_g), computed group by group with explicit slices (unequal group sizes)."""
    sizes = [3, 5, 2]
    sys = NGCSystem.random(n_groups=3, group_size=sizes, rank=2, gain=1.3,
                           generator=torch.Generator().manual_seed(4))
    _, B, _ = sys.states()
    ys = torch.randn(4, 7, sum(sizes))  # (*batch, T, N)
    got = sys.group_signals(ys)
    start = 0
    for g, n_g in enumerate(sizes):
        want = torch.tanh(ys[..., start:start + n_g]) @ B[start:start + n_g]  # (4, 7, r)
        torch.testing.assert_close(got[..., g, :], want, rtol=1e-13, atol=1e-13)
        start += n_g
