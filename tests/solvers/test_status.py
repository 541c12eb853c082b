"""Per-member status: one diverging member never spoils the others; throw/no-throw."""

import pytest
import torch

import ngcdyn as nd
from ngcdyn.solvers import SolveError, Status


def riccati(t, y, c):
    """dy/dt = c y²: y(t) = y0 / (1 − c y0 t), a finite-time blow-up at t* = 1/(c y0) if c y0 > 0."""
    return c[:, None] * y * y


C = torch.tensor([-1.0, 1.0, -0.5], dtype=torch.float64)  # member 1 blows up at t* = 1
Y0 = torch.ones(3, 1, dtype=torch.float64)
T_EVAL = torch.linspace(0, 2.0, 9, dtype=torch.float64)


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "bosh3"])
def test_blow_up_member_is_isolated(method):
    sol = nd.solve(riccati, Y0, T_EVAL, args=C, method=method, rtol=1e-8, atol=1e-10, throw=False)
    assert sol.status.tolist()[0] == Status.SUCCESS and sol.status.tolist()[2] == Status.SUCCESS
    assert sol.status.tolist()[1] in (Status.DT_UNDERFLOW, Status.NONFINITE, Status.MAX_STEPS)
    # The healthy members equal their own solves exactly (same arithmetic, row by row) ...
    alone = nd.solve(riccati, Y0[[0, 2]], T_EVAL, args=C[[0, 2]], method=method, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(sol.ys[[0, 2]], alone.ys, rtol=0, atol=0)
    # ... and the exact solution y0 / (1 − c y0 t) within the tolerance scale.
    exact = 1.0 / (1.0 - C[[0, 2], None] * T_EVAL)
    assert float(((sol.ys[[0, 2], :, 0] - exact).abs() / (1e-10 + 1e-8 * exact.abs())).max()) < 50
    # The failed member: valid before the blow-up (t < 1), NaN at the times it never reached.
    assert torch.isfinite(sol.ys[1, T_EVAL < 0.99]).all()
    assert torch.isnan(sol.ys[1, T_EVAL > 1.01]).all()


def test_throw_names_failed_member():
    with pytest.raises(SolveError, match=r"(?s)1 of 3 batch member\(s\) failed.*member \(1,\): (?:DT_UNDERFLOW|NONFINITE)") as info:
        nd.solve(riccati, Y0, T_EVAL, args=C, rtol=1e-8, atol=1e-10)
    assert info.value.failed == [(1,)]
    assert bool(info.value.solution.success[0])


def test_max_steps_status_and_message():
    sol = nd.solve(riccati, Y0, T_EVAL, args=C, max_steps=5, throw=False)
    assert (sol.status == Status.MAX_STEPS).all()
    assert (sol.stats["n_steps"] == 5).all()
    msg = sol.messages()[(0,)]
    assert "MAX_STEPS" in msg and "max_steps" in msg


def test_dt_min_triggers_underflow():
    sol = nd.solve(riccati, Y0, T_EVAL, args=C, dt_min=1e-3, throw=False)
    assert int(sol.status[1]) in (Status.DT_UNDERFLOW, Status.NONFINITE)
    assert int(sol.status[0]) == Status.SUCCESS


def test_fixed_step_nonfinite_member():
    sol = nd.solve(riccati, Y0, T_EVAL, args=C, method="rk4", dt=0.01, throw=False)
    assert int(sol.status[1]) == Status.NONFINITE
    assert sol.status[[0, 2]].eq(0).all()


def test_nonfinite_derivative_at_start():
    f = lambda t, y, a: torch.where(y > 0, torch.log(y), -y)  # noqa: E731  log(0) = -inf
    y0 = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    sol = nd.solve(f, y0, T_EVAL, throw=False)
    # Member 0 starts with dy/dt = -y = 0 (where picks -y for y <= 0): fine. Member 1 fine too.
    assert sol.success.all()
    f2 = lambda t, y, a: 1.0 / (y - 1.0)  # noqa: E731  inf at y = 1
    sol = nd.solve(f2, y0, T_EVAL, throw=False)
    assert int(sol.status[1]) == Status.NONFINITE and int(sol.status[0]) == Status.SUCCESS


def test_stats_counts_are_consistent():
    sol = nd.solve(riccati, Y0[[0, 2]], T_EVAL, args=C[[0, 2]])
    s = sol.stats
    assert torch.equal(s["n_steps"], s["n_accepted"] + s["n_rejected"])
    # dopri5 is FSAL: 6 new evaluations per attempted step, plus the first derivative and the
    # second evaluation of Hairer's starting-step algorithm.
    assert torch.equal(s["n_f_evals"], 6 * s["n_steps"] + 2)
