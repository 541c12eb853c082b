"""Convergence order of every tableau on a linear system with a matrix-exponential solution."""

import math

import numpy as np
import pytest
import torch

import ngcdyn as nd
from ngcdyn.solvers import TABLEAUX
from ngcdyn.testing import convergence_order

# dy/dt = A y with a damped rotation: exact solution expm(A t) y0 (torch.linalg.matrix_exp).
A = torch.tensor([[-0.5, 2.0], [-2.0, -0.5]], dtype=torch.float64)
Y0 = torch.tensor([[1.0, 0.5], [-0.3, 2.0]], dtype=torch.float64)  # a batch of two states
T1 = 2.0


def linear(t, y, args):
    return y @ A.T


def exact(t):
    return Y0 @ torch.linalg.matrix_exp(A * t).T


# Step sizes chosen so the errors lie between ~1e-13 and ~1e-2 for each order (asymptotic regime,
# above round-off): higher orders need larger steps.
DTS = {1: [0.02, 0.01, 0.005, 0.0025], 2: [0.05, 0.025, 0.0125, 0.00625],
       3: [0.1, 0.05, 0.025, 0.0125], 4: [0.1, 0.05, 0.025, 0.0125], 5: [0.1, 0.05, 0.025, 0.0125]}


@pytest.mark.parametrize("name", sorted(TABLEAUX))
def test_fixed_step_order_matches_declared(name):
    tab = TABLEAUX[name]
    res = convergence_order(name, linear, Y0, T1, exact(T1), DTS[tab.order])
    # Band ±0.3 around the declared order (DiffEqDevTools uses ±0.2 on the fitted slope; the
    # 4-point fit on this problem lands within 0.1 for every method, so 0.3 leaves room for the
    # pre-asymptotic curvature of Euler without accepting a wrong order).
    assert abs(res.order - tab.order) < 0.3, (name, res.order, res.errors)


@pytest.mark.parametrize("name", ["dopri5", "bosh3", "tsit5", "rk4"])
def test_dense_output_order(name):
    """Interpolated values between steps converge with the interpolant's order.

    For a fixed step h the interpolant's local error is O(h^{q+1}) (q = interp_order); at fixed
    output times the global error then scales like h^{min(order, q+1)}.
    """
    tab = TABLEAUX[name]
    q = min(tab.order, tab.interp_order + 1)
    t_out = torch.tensor([0.0, 0.37, 1.13, 1.71], dtype=torch.float64)  # never on a step boundary
    errs = []
    hs = [0.2, 0.1, 0.05, 0.025]
    for h in hs:
        sol = nd.RungeKutta(name, dt=h).solve(linear, Y0, torch.tensor([0.0, T1]), dense=True)
        got = sol.evaluate(t_out)  # (2, 4, 2)
        want = torch.stack([exact(t) for t in t_out], 1)
        errs.append(float((got - want).abs().max()))
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert slope > q - 0.3, (name, slope, errs)


def test_t_eval_points_use_the_interpolant_at_the_declared_order():
    """Adaptive dopri5: errors at t_eval scale with the tolerance (Shampine's 4th-order output)."""
    t_eval = torch.linspace(0, T1, 37, dtype=torch.float64)
    want = torch.stack([exact(t) for t in t_eval], 1)
    for tol in (1e-6, 1e-9):
        sol = nd.solve(linear, Y0, t_eval, rtol=tol, atol=tol)
        err = (sol.ys - want).abs() / (tol + tol * want.abs())
        # Error in units of the tolerance: a well-behaved linear problem stays within a factor
        # ~10 of the requested local tolerance (global accumulation over ~20 steps).
        assert float(err.max()) < 10.0, (tol, float(err.max()))
