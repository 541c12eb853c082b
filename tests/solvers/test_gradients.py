"""Gradients: backprop through the ngcdyn steps and the torchdiffeq adjoint agree with calculus."""

import math

import pytest
import torch

import ngcdyn as nd


def decay(t, y, lam):
    return lam[:, None] * y


def test_backprop_through_adaptive_solver():
    # y(T) = y0 e^{λT}  ⇒  ∂y(T)/∂λ = T y0 e^{λT}, ∂y(T)/∂y0 = e^{λT}.
    lam = torch.tensor([-0.5, 0.3], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([[1.0], [2.0]], dtype=torch.float64, requires_grad=True)
    T = 1.7
    sol = nd.solve(decay, y0, torch.tensor([0.0, T], dtype=torch.float64), args=lam, rtol=1e-10, atol=1e-12)
    sol.ys[:, -1, 0].sum().backward()
    with torch.no_grad():
        want_lam = T * y0[:, 0] * torch.exp(lam * T)
        want_y0 = torch.exp(lam * T)
    torch.testing.assert_close(lam.grad, want_lam, rtol=1e-7, atol=0)
    torch.testing.assert_close(y0.grad[:, 0], want_y0, rtol=1e-7, atol=0)


@pytest.mark.parametrize("adjoint", [False, True])
def test_torchdiffeq_backend_gradients(adjoint):
    lam = torch.tensor([-0.5, 0.3], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    T = 1.7
    sol = nd.solve(decay, y0, torch.tensor([0.0, T], dtype=torch.float64), args=lam, rtol=1e-10,
                   atol=1e-12, backend="torchdiffeq", adjoint=adjoint)
    sol.ys[:, -1, 0].sum().backward()
    want = (T * y0[:, 0] * torch.exp(lam * T)).detach()
    torch.testing.assert_close(lam.grad, want, rtol=1e-6, atol=0)


def test_backends_agree():
    lam = torch.tensor([-0.5, 0.3, -2.0], dtype=torch.float64)
    y0 = torch.ones(3, 1, dtype=torch.float64)
    ts = torch.linspace(0, 2, 11, dtype=torch.float64)
    a = nd.solve(decay, y0, ts, args=lam, rtol=1e-10, atol=1e-12)
    b = nd.solve(decay, y0, ts, args=lam, rtol=1e-10, atol=1e-12, backend="torchdiffeq")
    exact = torch.exp(lam[:, None] * ts)
    for sol in (a, b):
        assert float(((sol.ys[..., 0] - exact).abs() / (1e-12 + 1e-10 * exact.abs())).max()) < 20
    assert (b.stats["n_f_evals"] > 0).all() and (b.stats["n_accepted"] == -1).all()


def test_dense_evaluate_any_time_and_backward_direction():
    lam = torch.tensor([-0.5, 0.3], dtype=torch.float64)
    y0 = torch.ones(2, 1, dtype=torch.float64)
    sol = nd.solve(decay, y0, torch.tensor([2.0, 0.0], dtype=torch.float64), args=lam, rtol=1e-10,
                   atol=1e-12, dense=True)
    tq = torch.tensor([1.9, 1.234, 0.5, 0.0], dtype=torch.float64)
    got = sol.evaluate(tq)[..., 0]  # (2, 4)
    want = torch.exp(lam[:, None] * (tq - 2.0))
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
    # A scalar query gives (*batch, n).
    assert sol.evaluate(1.0).shape == (2, 1)
    with pytest.raises(ValueError, match="outside the integrated span"):
        sol.evaluate(3.0)
