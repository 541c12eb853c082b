"""The NGC contraction certificate against measured rates (issue 3: "NGC certificate holds on
trajectories"). Derivations: theory/12_contraction.md section 3 and theory/04_contraction_bound.md.
"""

from __future__ import annotations

import math

import pytest
import torch

from ngcdyn.analysis import (
    ContractionCertificate,
    contraction_rate,
    ngc_contraction_certificate,
    sample_region,
)
from ngcdyn.solvers import RungeKutta
from ngcdyn.systems import Gain, NGCSystem

EPS64 = torch.finfo(torch.float64).eps
SOLVER = RungeKutta("dopri5", rtol=1e-9, atol=1e-11)


def _system(gain: float, sizes: list[int], tau: str, drive: str, seed: int) -> NGCSystem:
    g = torch.Generator().manual_seed(seed)
    G = len(sizes)
    N = sum(sizes)
    taus = 1.0 if tau == "scalar" else 0.5 + torch.rand(G, generator=g)  # tau_g in [0.5, 1.5)
    if drive == "none":
        u = None
    elif drive == "constant":
        u = 2.0 * torch.randn(N, generator=g)
    else:
        amp = 2.0 * torch.randn(N, generator=g)
        u = lambda t: amp * torch.sin(3.0 * t)[..., None]  # noqa: E731  time-dependent input
    return NGCSystem.random(G, sizes, 3, gain=gain, tau=taus, drive=u, generator=g)


@pytest.mark.parametrize("gain", [0.2, 0.7, 3.0])
@pytest.mark.parametrize("sizes,tau", [([4, 4, 4], "scalar"), ([2, 7, 3], "per_group")])
@pytest.mark.parametrize("drive", ["none", "constant", "sine"])
def test_certificate_holds_on_trajectories(gain, sizes, tau, drive):
    # The bound holds at every state and time for every input u (theory/12 section 3), so along any
    # trajectory max_k mu_2(J(t_k, x_k)) <= bound, i.e. certified rate <= measured rate. Checked for
    # contracting (small gain) and non-contracting (large gain) systems alike.
    sys = _system(gain, sizes, tau, drive, seed=int(10 * gain) + len(sizes))
    cert = ngc_contraction_certificate(sys)
    assert isinstance(cert, ContractionCertificate)
    g = torch.Generator().manual_seed(1)
    x0 = 2.0 * torch.randn(6, sys.dim, generator=g)
    sol = SOLVER.solve(sys, x0, torch.linspace(0.0, 8.0, 41))
    res = contraction_rate(sys, sol.ys, t=sol.ts)
    assert res.jacobian_source == "analytic"
    assert bool(cert.holds_on(res).all())
    # The same at states far from any trajectory (the bound is global).
    xs = sample_region(200, low=-5 * torch.ones(sys.dim), high=5 * torch.ones(sys.dim), generator=g)
    assert bool(cert.holds_on(contraction_rate(sys, xs, t=0.3)).all())


@pytest.mark.parametrize("tau", ["scalar", "per_group"])
@pytest.mark.parametrize("gain", [0.3, 2.0])
def test_certificate_value_matches_the_dense_formula(tau, gain):
    # Independent evaluation of the bound through the dense W (materialize): for J = T^{-1}(-I + W D),
    # T = diag(tau), 0 <= D <= gamma I (gamma = sup tanh' = 1), theory/04 gives
    # bound = -1/tau_max + gamma ||T^{-1} W||_2; certified iff bound < 0; rate = -bound.
    sys = _system(gain, [3, 5, 4], tau, "none", seed=3)
    cert = ngc_contraction_certificate(sys)
    W = sys.materialize()
    tau_n = sys.tau[sys.group_index]  # (N,): each neuron's time constant
    coupling = torch.linalg.matrix_norm(W / tau_n[:, None], ord=2)
    expected = -1.0 / float(sys.tau.max()) + float(coupling)
    tol = 64 * sys.dim * EPS64 * (1 + abs(expected))
    assert float(cert.bound) == pytest.approx(expected, abs=tol)
    assert float(cert.rate) == pytest.approx(-expected, abs=tol)
    assert float(cert.coupling_norm) == pytest.approx(float(coupling), abs=tol)
    assert bool(cert.certified) == (expected < 0)


@pytest.mark.parametrize("tau", [1.0, 0.25, 4.0])
@pytest.mark.parametrize("scale", [0.3, 0.9, 2.5])
def test_certificate_is_attained_for_symmetric_psd_coupling(tau, scale):
    # B = A and a positive semi-definite block channel matrix C~ = M M^T make W = A~ C~ A~^T symmetric
    # PSD, so ||W||_2 = lambda_max(W). At x = 0, tanh'(0) = 1 = gamma and J(0) = (-I + W)/tau, whose
    # mu_2 is (-1 + lambda_max(W))/tau = (-1 + ||W||_2)/tau: exactly the bound (two-sided check).
    g = torch.Generator().manual_seed(7)
    G, n, r = 3, 4, 2
    A = torch.randn(G * n, r, generator=g) / math.sqrt(r)
    M = torch.randn(G * r, G * r, generator=g)
    Cb = M @ M.T
    Cb = scale * Cb / torch.linalg.matrix_norm(Cb, ord=2)
    C = Cb.reshape(G, r, G, r).transpose(1, 2)  # block (g, h) = Cb[g r:(g+1) r, h r:(h+1) r]
    sys = NGCSystem.symmetric(A, C, group_sizes=[n] * G, tau=tau)
    cert = ngc_contraction_certificate(sys)
    at_zero = contraction_rate(sys, torch.zeros(1, G * n))
    tol = 64 * G * n * EPS64 * (1 + abs(float(cert.bound)))
    assert float(at_zero.measures[0]) == pytest.approx(float(cert.bound), abs=tol)
    W = sys.materialize()
    assert float(cert.bound) == pytest.approx(
        (-1 + float(torch.linalg.eigvalsh(W)[-1])) / tau, abs=tol
    )


@pytest.mark.parametrize("gain", [0.1, 0.3])
def test_certified_systems_contract_trajectories(gain):
    # Lohmiller & Slotine 1998: mu_2(J) <= -c on R^N gives ||x(t) - y(t)|| <= e^{-ct} ||x(0) - y(0)||
    # for any two solutions under the same input. Checked with a time-dependent drive, allowing the
    # solver's error (rtol 1e-9 on states of size ~ 10: ~1e-7 absolute).
    sys = _system(gain, [4, 4, 4], "per_group", "sine", seed=11)
    cert = ngc_contraction_certificate(sys)
    assert bool(cert.certified)  # small gains: ||diag(1/tau) W||_2 < 1/tau_max here
    c = float(cert.rate)
    g = torch.Generator().manual_seed(2)
    x0 = 3.0 * torch.randn(2, 5, sys.dim, generator=g)  # 5 pairs of initial states
    ts = torch.linspace(0.0, 6.0, 31)
    ys = SOLVER.solve(sys, x0.reshape(10, sys.dim), ts).ys.reshape(2, 5, 31, sys.dim)
    dist = (ys[0] - ys[1]).norm(dim=-1)  # (5, T)
    bound = dist[:, :1] * torch.exp(-c * ts)
    assert bool((dist <= bound + 1e-6).all())


def test_certificate_for_batched_parameters_and_errors():
    # A parameter batch of 3 systems: one bound per member, each equal to its unbatched bound.
    g = torch.Generator().manual_seed(5)
    sys = NGCSystem.random(2, 3, 2, gain=0.8, batch_shape=(3,), generator=g)
    cert = ngc_contraction_certificate(sys)
    assert cert.bound.shape == (3,)
    A, B, C = sys.states()
    for i in range(3):
        single = NGCSystem(A[i], B[i], C[i], group_sizes=[3, 3])
        assert float(cert.bound[i]) == pytest.approx(float(ngc_contraction_certificate(single).bound), abs=1e-13)
    xs = torch.randn(3, 20, 6, generator=g)  # (pbatch, points, N)
    assert bool(cert.holds_on(contraction_rate(sys, xs)).all())

    with pytest.raises(TypeError, match=r"`system` must be an ngcdyn.systems.NGCSystem.*got function"):
        ngc_contraction_certificate(lambda t, y, a: -y)
    no_bound = Gain(torch.tanh, lambda x: 1 - torch.tanh(x) ** 2, name="tanh-no-bound")
    sys2 = NGCSystem.random(2, 3, 2, gain=0.5, phi=no_bound, generator=g)
    with pytest.raises(ValueError, match=r"derivative_bound"):
        ngc_contraction_certificate(sys2)
    res1 = contraction_rate(sys, xs, norm=1)
    with pytest.raises(ValueError, match=r"`measured` must hold unweighted Euclidean measures.*norm=1"):
        cert.holds_on(res1)
    with pytest.raises(ValueError, match=r"`atol` must be finite and > 0"):
        cert.holds_on(contraction_rate(sys, xs), atol=-1.0)
