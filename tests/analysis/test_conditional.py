"""The conditional (input-driven) Lyapunov exponent, ngcdyn's stability metric (issue 3).

The derivations are in theory/11_conditional_exponent.md; the key facts used here:

- The tangent dynamics of a driven system is δx_{t+1} = ∂F/∂x(x_t, u_t) δx_t: the input enters
  only through where the Jacobian is evaluated. For x_{t+1} = A x_t + B u_t the Jacobian is A
  whatever the input, so the conditional exponents are those of the map x <- A x; in one
  dimension δx_T = a^T δx_0, so λ = ln|a| exactly, at every T and in every window.
- In one dimension the QR method reduces to the chain rule: λ_T = (1/T) Σ_t log|F'(x_t, u_t)|
  (maps) and λ_T = (1/T) ∫ ∂f/∂x dt (flows), computable along the driven orbit.
- For k = n exponents, Σ λ_i = (1/T) Σ_t log|det J_t| (maps): exact at every T.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import ngcdyn.solvers as solvers
from ngcdyn.analysis import (
    conditional_lyapunov,
    conditional_lyapunov_map,
    lyapunov_spectrum,
    lyapunov_spectrum_map,
)
from ngcdyn.analysis._tangent import random_orthonormal
from ngcdyn.systems import LinearMap, LinearSystem
from ngcdyn.testing import general_matrices, hurwitz_matrices

RTOL, ATOL = 1e-8, 1e-10
EPS64 = torch.finfo(torch.float64).eps


def _solver() -> solvers.AbstractSolver:
    return solvers.RungeKutta("dopri5", rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------------------------
# Driven maps
# --------------------------------------------------------------------------------------------

_input_values = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@settings(max_examples=40)
@given(
    a=st.floats(0.05, 3.0).flatmap(lambda m: st.sampled_from([m, -m])),
    inputs=st.lists(_input_values, min_size=4, max_size=60),
    x0=st.floats(-10, 10),
    renorm_every=st.integers(1, 3),
)
@example(a=1.0, inputs=[0.0] * 4, x0=0.0, renorm_every=1)  # neutral map: exponent 0
@example(a=-0.5, inputs=[1e3, -1e3, 1e3, -1e3], x0=5.0, renorm_every=1)  # sign flips, large input
def test_driven_scalar_linear_map_is_ln_abs_a(a, inputs, x0, renorm_every):
    """x_{t+1} = a x_t + u_t: λ = ln|a| for any input, in every window (δx_T = a^T δx_0).
    Tolerance: rounding of a product of at most 3 factors and its log, 10 eps (1 + |ln|a||)."""
    u = torch.tensor(inputs).unsqueeze(-1)  # (T, 1)
    res = conditional_lyapunov_map(lambda x, v, args: a * x + v, torch.tensor([x0]), u,
                                   renorm_every=renorm_every, n_blocks=1 if len(inputs) < 2 * renorm_every else 2)
    tol = 10 * EPS64 * (1 + abs(math.log(abs(a))))
    assert abs(float(res.exponents[0]) - math.log(abs(a))) <= tol
    assert (res.finite_time[:, 0] - math.log(abs(a))).abs().max() <= tol
    assert res.settings["metric"] == "conditional (input-driven) Lyapunov exponent"


@settings(max_examples=15)
@given(A=general_matrices(n=st.integers(1, 3), bound=1.5), data=st.data())
def test_driven_linear_map_equals_autonomous_map(A, data):
    """x_{t+1} = A x_t + B u_t has Jacobian A for any input: the conditional exponents equal the
    exponents of x <- A x computed from the same initial frame (rounding only: 1e3 eps, the same
    operations on the same tangent vectors)."""
    assume(float(torch.linalg.svdvals(A).min()) > 0.05)  # a singular map has exponent -inf
    n = A.shape[-1]
    k = data.draw(st.integers(1, n), label="k")
    m = data.draw(st.integers(1, 3), label="m")
    B = torch.linspace(-1.0, 1.0, n * m).reshape(n, m)
    u = torch.randn(80, m)
    q0 = random_orthonormal(n, k, seed=4, dtype=A.dtype, device=A.device)
    drv = conditional_lyapunov_map(lambda x, v, a: x @ A.T + v @ B.T, torch.zeros(n), u, k=k, q0=q0,
                                   n_transient=20, n_blocks=5)
    aut = lyapunov_spectrum_map(LinearMap(A), torch.zeros(n), n_steps=60, n_transient=20, q0=q0,
                                n_blocks=5)
    assert drv.exponents.shape == (k,)
    assert (drv.exponents - aut.exponents).abs().max() <= 1e3 * EPS64


def _tanh_map(w: float):
    return lambda x, u, a: torch.tanh(w * x + u)


def test_driven_nonlinear_scalar_map_chain_rule():
    """x_{t+1} = tanh(w x_t + u_t): λ_T = mean_t log|w sech²(w x_t + u_t)| along the driven orbit,
    recomputed here (rounding only: 1e3 eps); per window of 5 steps, the window means."""
    w, T = 1.7, 200
    u = torch.randn(T, 1, generator=torch.Generator().manual_seed(0))
    res = conditional_lyapunov_map(_tanh_map(w), torch.tensor([0.3]), u, renorm_every=5)
    x = torch.tensor([0.3])
    local = []
    for t in range(T):
        z = w * x + u[t]
        local.append(torch.log((w * (1 - torch.tanh(z) ** 2)).abs()))
        x = torch.tanh(z)
    local = torch.cat(local)
    assert abs(float(res.exponents[0]) - float(local.mean())) <= 1e3 * EPS64
    assert torch.allclose(res.finite_time[:, 0], local.reshape(-1, 5).mean(-1), rtol=0, atol=1e3 * EPS64)
    # A user Jacobian (x, u) -> (*batch, 1, 1) gives the same number.
    jac = lambda x, v: (w * (1 - torch.tanh(w * x + v) ** 2)).unsqueeze(-1)  # noqa: E731
    res_j = conditional_lyapunov_map(_tanh_map(w), torch.tensor([0.3]), u, renorm_every=5, jacobian=jac)
    assert res_j.settings["jacobian"] == "analytic (user callable)"
    assert abs(float(res_j.exponents[0] - res.exponents[0])) <= 1e3 * EPS64


def test_echo_state_reservoir_contracts():
    """x_{t+1} = tanh(W x_t + w_in u_t) with ‖W‖₂ = 0.9: ‖J_t‖₂ <= 0.9 max sech² <= 0.9, so every
    conditional exponent is <= ln 0.9 and two copies from different initial states approach each
    other at least like 0.9^t (the echo-state property). The full spectrum sums to
    mean_t [Σ_i ln sech²(z_{t,i})] + ln|det W| (det J_t = det(diag(sech² z_t)) det W), exact up
    to rounding of the QR of the product (1e3 eps per exponent, times n)."""
    n, T = 6, 300
    gen = torch.Generator().manual_seed(5)
    W = torch.randn(n, n, generator=gen)
    W = 0.9 * W / torch.linalg.matrix_norm(W, ord=2)
    w_in = torch.randn(n, generator=gen)
    u = torch.randn(T, 1, generator=gen)
    F = lambda x, v, a: torch.tanh(x @ W.T + v * w_in)  # noqa: E731
    x0 = torch.randn(2, n, generator=gen)  # two copies, one input
    res = conditional_lyapunov_map(F, x0, u, k=n, n_transient=50)
    assert res.exponents.shape == (2, n)
    assert (res.exponents <= math.log(0.9)).all()
    x = x0.clone()
    d0 = float((x[0] - x[1]).norm())
    sum_log_det = torch.zeros(2)
    for t in range(T):
        z = x @ W.T + u[t] * w_in
        if t >= 50:
            sum_log_det += torch.log(1 - torch.tanh(z) ** 2).sum(-1) + torch.linalg.slogdet(W).logabsdet
        x = torch.tanh(z)
    assert float((x[0] - x[1]).norm()) <= 0.9 ** T * d0
    assert (res.exponents.sum(-1) - sum_log_det / (T - 50)).abs().max() <= n * 1e3 * EPS64


def test_per_member_inputs_batched_equals_single():
    """Inputs (B, T, m): member b is driven by its own sequence; batched == one-by-one (the same
    arithmetic per member: 1e3 eps)."""
    gen = torch.Generator().manual_seed(6)
    u = torch.randn(3, 100, 1, generator=gen)
    x0 = torch.randn(3, 2, generator=gen)
    A = torch.tensor([[0.5, 1.0], [-1.0, 0.2]])
    F = lambda x, v, a: torch.tanh(x @ A.T + v)  # noqa: E731
    batched = conditional_lyapunov_map(F, x0, u, k=2)
    for b in range(3):
        single = conditional_lyapunov_map(F, x0[b], u[b], k=2)
        assert (batched.exponents[b] - single.exponents).abs().max() <= 1e3 * EPS64


def test_callable_inputs_equal_tensor_inputs():
    u = torch.randn(50, 2, generator=torch.Generator().manual_seed(7))
    F = lambda x, v, a: 0.8 * torch.sin(x) + v.sum(-1, keepdim=True)  # noqa: E731
    a = conditional_lyapunov_map(F, torch.tensor([0.1]), u)
    b = conditional_lyapunov_map(F, torch.tensor([0.1]), lambda i: u[i], n_steps=50)
    assert torch.equal(a.exponents, b.exponents)
    assert b.settings["inputs"] == "callable"


# --------------------------------------------------------------------------------------------
# Driven flows
# --------------------------------------------------------------------------------------------


@settings(max_examples=6)
@given(amp=st.floats(0.0, 10.0), omega=st.floats(0.1, 5.0), x0=st.floats(-5, 5))
@example(amp=0.0, omega=1.0, x0=0.0)
def test_driven_scalar_linear_flow_is_minus_one(amp, omega, x0):
    """dx/dt = -x + amp sin(ω t): ∂f/∂x = -1 whatever the drive, so λ = -1 in every interval
    (δx(t) = e^{-t} δx(0)); integration error rtol per interval / Δ."""
    res = conditional_lyapunov(lambda t, x, u, a: -x + u, torch.tensor([x0]),
                               lambda t: (amp * torch.sin(omega * t)).unsqueeze(-1),
                               t_total=4.0, n_blocks=2, solver=_solver())
    assert (res.finite_time[:, 0] + 1.0).abs().max() <= 10 * RTOL


@settings(max_examples=4)
@given(A=hurwitz_matrices(n=st.integers(1, 3), bound=1.0))
def test_driven_linear_flow_equals_autonomous(A):
    """dx/dt = A x + B u(t): Jacobian A, so the conditional exponents equal those of dx/dt = A x
    from the same frame; each is within rtol·exp(spread Δ)/Δ of the exact value
    (test_lyapunov_linear.py), hence twice that."""
    n = A.shape[-1]
    B = torch.ones(n, 1)
    q0 = random_orthonormal(n, n, seed=8, dtype=A.dtype, device=A.device)
    drv = conditional_lyapunov(lambda t, x, u, a: x @ A.T + u @ B.T, torch.ones(n),
                               lambda t: torch.cos(3 * t).unsqueeze(-1), t_total=6.0, k=n,
                               dt_renorm=0.5, q0=q0, solver=_solver(), n_blocks=3)
    aut = lyapunov_spectrum(LinearSystem(A), torch.ones(n), t_total=6.0, dt_renorm=0.5, q0=q0,
                            solver=_solver(), n_blocks=3)
    re = torch.linalg.eigvals(A).real
    tol = 2 * RTOL * math.exp(float(re.max() - re.min()) * 0.5) / 0.5
    assert (drv.exponents - aut.exponents).abs().max() <= tol


def test_driven_nonlinear_scalar_flow_quadrature():
    """dx/dt = -x + tanh(w x + u(t)): λ_T = (1/T) ∫_0^T (-1 + w sech²(w x + u(t))) dt, computed by
    integrating the quadrature q' = ∂f/∂x along with x (same solver); integration error 10 rtol.
    Also the autodiff and the user-Jacobian paths agree."""
    w, T = 2.5, 6.0
    drive = lambda t: (1.5 * torch.sin(2.0 * t)).unsqueeze(-1)  # noqa: E731
    f = lambda t, x, u, a: -x + torch.tanh(w * x + u)  # noqa: E731

    def aug(t, z, a):
        x = z[..., :1]
        s = 1 - torch.tanh(w * x + drive(t)) ** 2
        return torch.cat([f(t, x, drive(t), a), -1 + w * s], -1)

    ref = _solver().solve(aug, torch.tensor([0.2, 0.0]), torch.tensor([0.0, T])).ys[-1, 1] / T
    res = conditional_lyapunov(f, torch.tensor([0.2]), drive, t_total=T, n_blocks=3, solver=_solver())
    assert abs(float(res.exponents[0] - ref)) <= 10 * RTOL
    jac = lambda t, x, u: (-1 + w * (1 - torch.tanh(w * x + u) ** 2)).unsqueeze(-1)  # noqa: E731
    res_j = conditional_lyapunov(f, torch.tensor([0.2]), drive, t_total=T, n_blocks=3,
                                 solver=_solver(), jacobian=jac)
    assert abs(float(res_j.exponents[0] - ref)) <= 10 * RTOL


def test_constant_tensor_drive():
    """dx/dt = -x^3 + u with constant u = 8: x -> 2, ∂f/∂x -> -3 x² = -12; after a transient of 5
    (relaxation rate 12, distance e^{-60}) the exponent is -12. Error of one interval: relative
    rtol, plus atol relative to the tangent vector, which shrinks to e^{-12 Δ}; over Δ:
    (rtol + atol e^{12 Δ}) / Δ, times 10."""
    dt = 0.25
    res = conditional_lyapunov(lambda t, x, u, a: -x ** 3 + u, torch.tensor([0.0]),
                               torch.tensor([8.0]), t_total=2.0, t_transient=5.0, n_blocks=2,
                               dt_renorm=dt, solver=_solver())
    assert abs(float(res.exponents[0]) + 12.0) <= 10 * (RTOL + ATOL * math.exp(12 * dt)) / dt


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

_G = lambda x, u, a: 0.5 * x + u  # noqa: E731


@pytest.mark.parametrize(
    "inputs, kwargs, exc, pattern",
    [
        (torch.ones(5), {}, ValueError, r"`inputs` must have shape \(T, m\) or \(\*batch, T, m\)"),
        (torch.ones(5, 1), dict(n_transient=5), ValueError, r"`inputs` has T=5 steps, which leaves none after `n_transient`=5"),
        (torch.ones(5, 1), dict(n_steps=5, n_transient=1), ValueError, r"`n_steps`=5 plus `n_transient`=1 exceeds the T=5 steps"),
        (lambda i: torch.ones(1), {}, ValueError, r"`n_steps` is required when `inputs` is a callable"),
        ([1.0, 2.0], {}, TypeError, r"`inputs` must be a tensor .* or a callable u\(i\)"),
        (torch.ones(4, 5, 1), {}, ValueError, r"`inputs` batch shape \(4,\) does not broadcast against `x0` batch shape \(3,\)"),
        (torch.ones(5, 1), dict(k=2), ValueError, r"`k` must satisfy 1 <= k <= n = 1"),
        (torch.ones(5, 1), dict(jacobian="fd"), ValueError, r"`jacobian` must be None or 'autodiff' .* got 'fd'"),
        (torch.ones(5, 1), dict(jacobian=lambda x, u: torch.ones(3, 1, 2)), ValueError, r"`jacobian` must return square Jacobians"),
    ],
)
def test_map_bad_input(inputs, kwargs, exc, pattern):
    x0 = torch.zeros(3, 1) if isinstance(inputs, torch.Tensor) and inputs.ndim == 3 else torch.zeros(1)
    with pytest.raises(exc, match=pattern):
        conditional_lyapunov_map(_G, x0, inputs, **kwargs)


def test_flow_bad_input():
    f = lambda t, x, u, a: -x + u  # noqa: E731
    with pytest.raises(TypeError, match=r"`drive` must be a callable drive\(t\) -> u or a constant tensor, got list"):
        conditional_lyapunov(f, torch.zeros(1), [1.0], t_total=1.0)
    with pytest.raises(ValueError, match=r"`dt_renorm` must be finite and > 0"):
        conditional_lyapunov(f, torch.zeros(1), torch.ones(1), t_total=1.0, dt_renorm=-1.0)
    with pytest.raises(TypeError, match=r"`jacobian` must be None or 'autodiff' .* jacobian\(t, x, u\)"):
        conditional_lyapunov(f, torch.zeros(1), torch.ones(1), t_total=1.0, jacobian=3)
