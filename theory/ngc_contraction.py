"""Symbolic check of the structured norm in the NGC contraction bound.

See theory/04_contraction_bound.md.

Claims, for W = A~ C~ B~^T (A~, B~ block-diagonal with blocks A_g, B_g of shape (n_g, r)),
T = diag(tau) constant on each group and D = blockdiag(I_r / tau_g):

1. T^{-1} A~ = A~ D, hence T^{-1} W = A~ D C~ B~^T;
2. det(lam I_N - W^T T^{-2} W) = lam^(N - G r) det(lam I - C~^T D G_A D C~ G_B) with the per-group
   Gram matrices G_A = blockdiag(A_g^T A_g), G_B = blockdiag(B_g^T B_g): the singular values of
   T^{-1} W are those of the (G r)-square K = R_A D C~ R_B^T, since a QR factorisation
   A_g = Q_g R_g has R_g^T R_g = A_g^T A_g (also checked);
3. mu_2(-T^{-1}) = -1 / tau_max.
Checked exactly with rational entries and symbolic tau_g. Run: python theory/ngc_contraction.py
"""

import random

import sympy as sp


def rand_matrix(rng, rows, cols):
    return sp.Matrix(rows, cols, lambda i, j: sp.Rational(rng.randint(-4, 4), rng.randint(1, 2)))


def main(sizes=(3, 2), r=1, seed=0):
    rng = random.Random(seed)
    G, N = len(sizes), sum(sizes)
    lam = sp.symbols("lam")
    tau = sp.symbols(f"tau0:{G}", positive=True)
    A = [rand_matrix(rng, n, r) for n in sizes]
    B = [rand_matrix(rng, n, r) for n in sizes]
    Cb = rand_matrix(rng, G * r, G * r)
    At, Bt = sp.diag(*A), sp.diag(*B)  # block-diagonal embeddings (N, G r)
    W = At * Cb * Bt.T
    Tinv = sp.diag(*[1 / tau[g] for g in range(G) for _ in range(sizes[g])])
    D = sp.diag(*[1 / tau[g] for g in range(G) for _ in range(r)])
    assert sp.simplify(Tinv * At - At * D) == sp.zeros(N, G * r)
    print("1. T^{-1} A~ = A~ D  OK")

    GA, GB = At.T * At, Bt.T * Bt
    lhs = (lam * sp.eye(N) - W.T * Tinv * Tinv * W).det(method="berkowitz")
    small = (lam * sp.eye(G * r) - Cb.T * D * GA * D * Cb * GB).det(method="berkowitz")
    assert sp.simplify(sp.expand(lhs - lam ** (N - G * r) * small)) == 0
    for Ag in A:
        _, R = Ag.QRdecomposition()
        assert sp.simplify(R.T * R - Ag.T * Ag) == sp.zeros(r, r)
    print("2. charpoly(W^T T^-2 W) = lam^(N - G r) charpoly(C~^T D G_A D C~ G_B), "
          f"R^T R = A_g^T A_g  [group sizes {sizes}, r = {r}]  OK")

    # 3. -T^{-1} is symmetric, so mu_2 = its largest eigenvalue = max_g(-1/tau_g) = -1/max_g tau_g.
    vals = {tau[0]: sp.Rational(3, 2), tau[1]: sp.Rational(1, 3)}
    assert max((-Tinv).subs(vals).eigenvals()) == -1 / max(vals.values())
    print("3. mu_2(-T^{-1}) = -1/tau_max  OK")


if __name__ == "__main__":
    main()
    main(sizes=(2, 3), r=2, seed=1)
