"""The link "contracting at rate c => every Lyapunov exponent <= -c", checked numerically with
`lyapunov_spectrum` / `conditional_lyapunov` (theory/12_contraction.md section 4), and the
non-normal example where the converse fails.
"""

from __future__ import annotations

import math

import pytest
import torch

from ngcdyn.analysis import (
    conditional_lyapunov,
    contraction_rate,
    lyapunov_spectrum,
    matrix_measure,
    ngc_contraction_certificate,
)
from ngcdyn.solvers import RungeKutta
from ngcdyn.systems import LinearSystem, NGCSystem

TIGHT = RungeKutta("dopri5", rtol=1e-10, atol=1e-12)


def test_symmetric_linear_top_exponent_equals_minus_rate():
    # For symmetric A, mu_2(A) = lambda_max(A) = lambda_1: the chain lambda_1 <= mean mu <= -rate is
    # an equality. A = Q diag(-0.5, -1, -2) Q^T; exponents = eigenvalues (REFERENCES.md section 1).
    # QR estimate: with orthonormal eigenvectors, after a transient t_tr the frame's misalignment is
    # ~ e^{-gap t_tr} = e^{-0.5 * 20} ~ 5e-5, whose effect on the exponents is ~ its square / T ~ 1e-10;
    # plus the solver error (rtol 1e-10): tolerance 1e-7.
    g = torch.Generator().manual_seed(4)
    Q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    eig = torch.tensor([-0.5, -1.0, -2.0])
    A = Q @ torch.diag(eig) @ Q.T
    sys = LinearSystem(A)
    y0 = torch.randn(3, generator=g)
    res = lyapunov_spectrum(sys, y0, t_total=20.0, t_transient=20.0, dt_renorm=2.0, solver=TIGHT)
    torch.testing.assert_close(res.exponents, eig, atol=1e-7, rtol=0)
    traj = TIGHT.solve(sys, y0, torch.linspace(0.0, 5.0, 11))
    rate = contraction_rate(sys, traj.ys, t=traj.ts).rate
    assert float(res.exponents[0]) == pytest.approx(-float(rate), abs=1e-7)


@pytest.mark.parametrize("a", [4.0, -3.0])
def test_non_normal_example_exponents_minus_one_while_mu2_is_positive(a):
    # A = [[-1, a], [0, -1]] (theory/12 section 2): mu_2 = -1 + |a|/2 > 0 for |a| > 2, yet both
    # exponents are -1. Finite-time bound (k = n, QR from any frame): lambda_1(T) = (1/T) log||e^{AT} q||
    # with e^{AT} = e^{-T}(I + T N), so |lambda_i(T) + 1| <= log(sigma_1(T)) / T where
    # sigma_1(T) = |a|T/2 + sqrt(1 + (aT/2)^2), and lambda_1 + lambda_2 = tr A = -2 (Liouville).
    A = torch.tensor([[-1.0, a], [0.0, -1.0]])
    T = 100.0
    res = lyapunov_spectrum(
        LinearSystem(A), torch.tensor([1.0, 1.0]), t_total=T, dt_renorm=5.0, solver=RungeKutta("rk4", dt=0.05)
    )
    sigma1 = abs(a) * T / 2 + math.sqrt(1 + (a * T / 2) ** 2)
    band = math.log(sigma1) / T  # ~0.06 at T = 100
    solver_err = 1e-5  # RK4, h = 0.05: relative error ~ T h^4 / 120 per exponent unit, far below this
    assert bool(((res.exponents + 1.0).abs() <= band + solver_err).all())
    assert float(res.exponents.sum()) == pytest.approx(-2.0, abs=solver_err)
    mu2 = float(matrix_measure(A, norm=2))
    assert mu2 == pytest.approx(-1 + abs(a) / 2, abs=1e-14)  # positive: not contracting for I
    # In the metric P = diag(1, k): mu_{2,P}(A) = -1 + |a|/(2k) (theory/12); k = |a| gives -1/2, so the
    # system contracts at c = 1/2 there and every exponent must be <= -1/2 (norm-independent).
    P = torch.diag(torch.tensor([1.0, abs(a)]))
    c = -float(matrix_measure(A, norm=2, P=P))
    assert c == pytest.approx(0.5, abs=1e-14)
    assert bool((res.exponents <= -c).all())


@pytest.mark.parametrize("seed", [0, 2])
def test_certified_ngc_exponents_are_below_minus_rate(seed):
    # Certified NGC system (gain 0.3, unforced): every exponent <= -c with c the certified rate
    # (theory/12 section 4). Its trajectories converge to x* = 0 (a contracting system has one
    # equilibrium, and 0 is one), so also sum(exponents) = tr J(0) = tr(-I + W) (Liouville), and
    # lambda_1 <= mean mu_2 along the trajectory. Allowance: 3 standard errors of the estimate.
    g = torch.Generator().manual_seed(seed)
    sys = NGCSystem.random(2, 3, 2, gain=0.3, generator=g)
    cert = ngc_contraction_certificate(sys)
    assert bool(cert.certified)
    c = float(cert.rate)
    y0 = torch.randn(6, generator=g)
    res = lyapunov_spectrum(sys, y0, t_total=30.0, t_transient=10.0, dt_renorm=2.0, solver=RungeKutta("rk4", dt=0.05))
    assert bool((res.exponents <= -c + 3 * res.stderr).all())
    W = sys.materialize()
    trace = float(torch.trace(W - torch.eye(6)))
    # After the transient |x| ~ e^{-10 c}|x0| and tr J(x) - tr J(0) = O(|x|^2): tolerance 1e-4.
    assert float(res.exponents.sum()) == pytest.approx(trace, abs=1e-4)
    traj = TIGHT.solve(sys, y0, torch.linspace(0.0, 40.0, 401))
    along = contraction_rate(sys, traj.ys[200:], t=traj.ts[200:])  # the measured span's states
    assert float(res.exponents[0]) <= float(along.mean_measure) + 3 * float(res.stderr[0])
    assert float(along.mean_measure) <= -float(along.rate) <= -c + 1e-12


def test_certified_ngc_conditional_exponent_below_minus_rate_for_any_drive():
    # The certificate holds for every input u(t) (the bound does not involve u), so the conditional
    # exponent of the driven trajectory is <= -c as well (theory/12 section 4, theory/13).
    g = torch.Generator().manual_seed(3)
    sys = NGCSystem.random(2, 3, 2, gain=0.3, generator=g)
    c = float(ngc_contraction_certificate(sys).rate)
    amp = 3.0 * torch.randn(6, generator=g)
    res = conditional_lyapunov(
        lambda t, x, u, a: sys(t, x) + u,  # tau = 1: the drive enters as + u
        torch.randn(6, generator=g),
        lambda t: amp * torch.sin(2.0 * t)[..., None],
        t_total=20.0,
        k=1,
        dt_renorm=2.0,
        solver=RungeKutta("rk4", dt=0.05),
    )
    assert float(res.exponents[0]) <= -c + 3 * float(res.stderr[0])
