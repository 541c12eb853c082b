"""Batched solves equal per-member solves; per-member grids, start times and directions."""

import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import ngcdyn as nd


def decay_rotation(t, y, args):
    """dy/dt = A_i y with a per-member matrix A_i = args[i] (shape (B, 2, 2))."""
    return torch.einsum("bij,bj->bi", args, y)


@st.composite
def linear_batches(draw):
    B = draw(st.integers(1, 5))
    rows = []
    for _ in range(B):
        a = draw(st.floats(-2.0, 0.5))
        w = draw(st.floats(-4.0, 4.0))
        rows.append([[a, w], [-w, a]])
    y0 = draw(st.lists(st.lists(st.floats(-3, 3), min_size=2, max_size=2), min_size=B, max_size=B))
    return torch.tensor(rows, dtype=torch.float64), torch.tensor(y0, dtype=torch.float64)


@given(linear_batches())
@example((torch.tensor([[[0.0, 0.0], [0.0, 0.0]]]), torch.tensor([[0.0, 0.0]])))  # f ≡ 0, y0 = 0
def test_batched_equals_per_member(batch):
    A, y0 = batch
    t_eval = torch.linspace(0, 1.5, 7, dtype=torch.float64)
    sol = nd.solve(decay_rotation, y0, t_eval, args=A, rtol=1e-7, atol=1e-9)
    for i in range(y0.shape[0]):
        one = nd.solve(decay_rotation, y0[i : i + 1], t_eval, args=A[i : i + 1], rtol=1e-7, atol=1e-9)
        # Members are independent: same steps, same arithmetic row by row. Allow 1e-12 for BLAS
        # kernels that block differently for different batch sizes.
        torch.testing.assert_close(sol.ys[i], one.ys[0], rtol=1e-12, atol=1e-12)
        assert int(sol.stats["n_accepted"][i]) == int(one.stats["n_accepted"][0])


def test_multi_dim_batch_shape_and_per_member_grids():
    lam = -torch.tensor([[0.5, 1.0, 2.0], [0.1, 0.2, 3.0]], dtype=torch.float64)  # (2, 3)
    y0 = torch.ones(2, 3, 1, dtype=torch.float64)
    # Per-member grids (2, 3, T) with different end times.
    t1 = torch.tensor([[1.0, 2.0, 3.0], [0.5, 1.5, 2.5]], dtype=torch.float64)
    frac = torch.linspace(0, 1, 6, dtype=torch.float64)
    t_eval = t1[..., None] * frac
    sol = nd.solve(lambda t, y, a: lam[..., None] * y, y0, t_eval, rtol=1e-9, atol=1e-12)
    assert sol.ys.shape == (2, 3, 6, 1)
    exact = torch.exp(lam[..., None] * t_eval)
    err = (sol.ys[..., 0] - exact).abs() / (1e-12 + 1e-9 * exact.abs())
    assert float(err.max()) < 10  # in units of the tolerance (linear decay: no amplification)


def test_per_member_start_times_and_time_argument():
    """f receives each member's own time: dy/dt = t gives y(t1) = y0 + (t1² − t0²)/2."""
    t0 = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    t_eval = torch.stack([t0, t0 + 1, t0 + 3], -1)  # (3, 3)
    y0 = torch.zeros(3, 1, dtype=torch.float64)
    sol = nd.solve(lambda t, y, a: t[:, None].expand_as(y), y0, t_eval, rtol=1e-10, atol=1e-12)
    want = (t_eval**2 - t0[:, None] ** 2) / 2
    torch.testing.assert_close(sol.ys[..., 0], want, rtol=1e-9, atol=1e-10)


@given(st.floats(-0.5, 0.5), st.floats(0.2, 3.0), st.floats(-2.0, 2.0))
@example(0.0, 3.0, 0.0)
def test_forward_then_backward_returns_y0(a, t1, x0):
    """Integrating forward to t1 and back to 0 recovers y0 within the tolerance scale.

    Damped/undamped oscillator x'' = −x + a x' (linear, eigenvalues with real part a/2): errors
    are amplified by at most e^{|a| t1 / 2} ≤ e^{0.75} each way.
    """
    f = lambda t, y, args: torch.stack([y[..., 1], -y[..., 0] + a * y[..., 1]], -1)  # noqa: E731
    y0 = torch.tensor([[x0, 0.3]], dtype=torch.float64)
    tol = 1e-10
    fwd = nd.solve(f, y0, torch.tensor([0.0, t1], dtype=torch.float64), rtol=tol, atol=tol)
    back = nd.solve(f, fwd.ys[:, -1], torch.tensor([t1, 0.0], dtype=torch.float64), rtol=tol, atol=tol)
    err = float((back.ys[0, -1] - y0[0]).abs().max())
    # At most ~2×30 steps each contributing ≤ 1 tolerance unit (scale ≤ 1 + |y| ≤ 4), amplified
    # by ≤ e^{1.5}: under 60·4·4.5 ≈ 1.1e3 units; 2e3 × tol keeps a margin.
    assert err < 2e3 * tol, err


def test_mixed_directions_in_one_batch():
    lam = -0.7
    y0 = torch.ones(2, 1, dtype=torch.float64)
    t_eval = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]], dtype=torch.float64)
    sol = nd.solve(lambda t, y, a: lam * y, y0, t_eval, rtol=1e-10, atol=1e-12)
    want = torch.exp(lam * (t_eval - t_eval[:, :1]))
    torch.testing.assert_close(sol.ys[..., 0], want, rtol=1e-9, atol=1e-12)


def test_float32_solve():
    y0 = torch.ones(4, 2, dtype=torch.float32)
    t_eval = torch.linspace(0, 1, 5, dtype=torch.float32)
    sol = nd.solve(lambda t, y, a: -y, y0, t_eval, rtol=1e-4, atol=1e-6)
    assert sol.ys.dtype == torch.float32
    torch.testing.assert_close(sol.ys[0, :, 0], torch.exp(-t_eval), rtol=1e-4, atol=1e-5)


def test_output_flushing_does_not_change_results():
    """Evaluating the interpolant after every step or in one batch at the end gives the same ys."""
    lam = torch.tensor([[-0.5], [0.2], [-3.0]], dtype=torch.float64)
    y0 = torch.ones(3, 1, dtype=torch.float64)
    t_eval = torch.linspace(0, 2, 33, dtype=torch.float64)
    f = lambda t, y, a: lam * y  # noqa: E731
    every_step = nd.RungeKutta("dopri5", output_buffer_bytes=0).solve(f, y0, t_eval)
    at_end = nd.RungeKutta("dopri5").solve(f, y0, t_eval)
    torch.testing.assert_close(every_step.ys, at_end.ys, rtol=0, atol=0)
    assert torch.isfinite(at_end.ys).all()


@pytest.mark.slow
def test_compiled_step_matches_eager():
    """compile=True fuses the step; the arithmetic is reassociated, so allow a few ulp per step."""
    mu = torch.tensor([1.0, 4.0], dtype=torch.float64)

    def vdp(t, y, mu):
        x, v = y[..., 0], y[..., 1]
        return torch.stack([v, mu * (1 - x * x) * v - x], -1)

    y0 = torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    t_eval = torch.linspace(0, 5, 11, dtype=torch.float64)
    eager = nd.RungeKutta("dopri5", rtol=1e-8, atol=1e-10).solve(vdp, y0, t_eval, args=mu)
    comp = nd.RungeKutta("dopri5", rtol=1e-8, atol=1e-10, compile=True).solve(vdp, y0, t_eval, args=mu)
    # Same steps (acceptance decisions far from the threshold), values within 1e-9 absolute:
    # well inside the tolerance 1e-8·|y| + 1e-10 of the solve.
    assert torch.equal(eager.stats["n_accepted"], comp.stats["n_accepted"])
    torch.testing.assert_close(comp.ys, eager.ys, rtol=0, atol=1e-9)
