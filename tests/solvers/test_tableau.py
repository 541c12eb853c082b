"""Every shipped Butcher tableau satisfies its consistency conditions; bad tableaux are refused."""

import numpy as np
import pytest

from ngcdyn.solvers import TABLEAUX, ButcherTableau


@pytest.mark.parametrize("name", sorted(TABLEAUX))
def test_shipped_tableau_conditions(name):
    tab = TABLEAUX[name]
    # Consistency (Hairer–Nørsett–Wanner II.1): c_i = Σ_j a_ij, Σ b = 1, Σ (b − b̂) = 0.
    np.testing.assert_allclose(tab.a.sum(1), tab.c, atol=1e-14)
    assert abs(tab.b.sum() - 1.0) < 1e-14
    assert np.all(np.triu(tab.a) == 0)
    if tab.adaptive:
        assert abs(tab.error_weights.sum()) < 1e-14
        assert tab.error_order < tab.order
    if tab.fsal:
        np.testing.assert_allclose(tab.a[-1], tab.b, atol=1e-15)
    if tab.interp is not None:
        # The interpolant at θ = 1 is the step itself: Σ_j P_ij = b_i.
        np.testing.assert_allclose(tab.interp.sum(1), tab.b, atol=1e-12)


@pytest.mark.parametrize("name", sorted(TABLEAUX))
def test_order_conditions_up_to_declared_order(name):
    """The algebraic order conditions for orders 1..min(order, 4) hold (HNW II.2, Table 2.2)."""
    tab = TABLEAUX[name]
    a, b, c = tab.a, tab.b, tab.c
    conds = {
        1: [(b.sum(), 1.0)],
        2: [(b @ c, 1 / 2)],
        3: [(b @ c**2, 1 / 3), (b @ a @ c, 1 / 6)],
        4: [(b @ c**3, 1 / 4), (b @ (c * (a @ c)), 1 / 8), (b @ a @ c**2, 1 / 12), (b @ a @ a @ c, 1 / 24)],
    }
    for p in range(1, min(tab.order, 4) + 1):
        for lhs, rhs in conds[p]:
            assert abs(lhs - rhs) < 1e-12, (name, p, lhs, rhs)
    if tab.order < 4:
        # ... and the next order fails (the declared order is exact, not a lower bound).
        nxt = conds[tab.order + 1]
        assert any(abs(lhs - rhs) > 1e-6 for lhs, rhs in nxt)


def _bad(**kw):
    base = dict(name="bad", c=np.array([0.0, 0.5]), a=np.array([[0, 0], [0.5, 0]]),
                b=np.array([0.0, 1.0]), order=2)
    base.update(kw)
    return ButcherTableau(**base)


def test_bad_tableaux_are_refused():
    with pytest.raises(ValueError, match="row sums of `a` must equal `c`"):
        _bad(c=np.array([0.0, 0.4]))
    with pytest.raises(ValueError, match="Σ b must be 1"):
        _bad(b=np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="strictly lower-triangular"):
        _bad(a=np.array([[0, 0.1], [0.5, 0]]), c=np.array([0.1, 0.5]))
    with pytest.raises(ValueError, match="Σ error_weights must be 0"):
        _bad(error_weights=np.array([0.1, 0.1]), error_order=1)
