"""Exact second moments of W = A C B^T for NGCSystem.random (theory/01_ngc_system.md, section 4).

States A, B have i.i.d. N(0, 1/r) entries, channels C i.i.d. N(0, s2) with s2 = g^2/N; for
symmetric=True, B = A and the (G r x G r) channel matrix is symmetric with every entry N(0, s2).
W_ij = sum_ab A_ia C_{g(i)g(j), ab} B_jb. Claims, for every rank r:

* independent states:  E[W_ij] = 0 and E[W_ij^2] = r^2 (1/r)(1/r) s2 = s2 for all i, j;
* symmetric:           E[W_ij^2] = s2 for i != j (same or different group),
                       E[W_ii^2] = (2 + 1/r) s2 on the diagonal.

Expectations are taken exactly by Isserlis/Wick: expand the polynomial and replace each monomial
by the product of the Gaussian moments E[z^(2m)] = v^m (2m-1)!!, odd moments zero.
Run: python theory/ngc_random_scaling.py
"""

import sympy as sp

s2 = sp.symbols("s2", positive=True)


def gaussian_expectation(expr, variances):
    """E[expr] for independent centred Gaussians with the given variances (dict symbol -> v)."""
    poly = sp.Poly(sp.expand(expr), *variances)
    total = sp.Integer(0)
    for powers, coeff in poly.terms():
        term = coeff
        for sym, k in zip(variances, powers):
            if k % 2:
                term = 0
                break
            term *= variances[sym] ** (k // 2) * sp.factorial2(k - 1)
        total += term
    return sp.simplify(total)


def check(r):
    v = sp.Rational(1, r)
    a = sp.symbols(f"a0:{r}")  # A_i
    b = sp.symbols(f"b0:{r}")  # B_j
    a2 = sp.symbols(f"c0:{r}")  # A_j (a second neuron, symmetric case)
    C = sp.Matrix(r, r, lambda i, j: sp.Symbol(f"C{i}{j}"))
    var = {**{s: v for s in a + b + a2}, **{s: s2 for s in C}}
    w = sum(a[i] * C[i, j] * b[j] for i in range(r) for j in range(r))
    assert gaussian_expectation(w, var) == 0
    assert sp.simplify(gaussian_expectation(w ** 2, var) - s2) == 0
    # Symmetric: C_ab = C_ba (one variable per unordered pair, variance s2 each).
    Cs = sp.Matrix(r, r, lambda i, j: sp.Symbol(f"S{min(i, j)}{max(i, j)}"))
    var_s = {**{s: v for s in a + a2}, **{s: s2 for s in set(Cs)}}
    w_off = sum(a[i] * Cs[i, j] * a2[j] for i in range(r) for j in range(r))  # i != j
    assert sp.simplify(gaussian_expectation(w_off ** 2, var_s) - s2) == 0
    w_diag = sum(a[i] * Cs[i, j] * a[j] for i in range(r) for j in range(r))  # W_ii
    assert sp.simplify(gaussian_expectation(w_diag ** 2, var_s) - (2 + sp.Rational(1, r)) * s2) == 0


if __name__ == "__main__":
    for r in (1, 2, 3):
        check(r)
        print(f"rank {r}: E W_ij = 0, E W_ij^2 = g^2/N (independent states, all i, j; "
              f"symmetric, i != j); symmetric diagonal E W_ii^2 = (2 + 1/r) g^2/N  OK")
