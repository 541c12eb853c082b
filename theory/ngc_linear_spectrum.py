"""Symbolic check of the linear-spectrum reduction (theory/02_linear_spectrum.md).

Claim: for M = T^{-1}(-I + k W), W = A~ C~ B~^T, per-group time constants tau_g, and the reduced
matrix L (size sum_g q_g, q_g = min(n_g, r))

    L_gh = (1/tau_g) (-delta_gh I + k Y_g^T A_g C'_gh),
    Y_g = B_g, C'_gh = C_gh            if n_h >= r (resp. n_g >= r for Y_g),
    Y_g = I_{n_g}, C'_gh = C_gh B_h^T  if n_h < r,

    det(lam I - M) = det(lam I - L) * prod_g (lam + 1/tau_g)^(n_g - q_g).

Checked exactly (rational matrices, symbolic lam, tau_g, k) for several group layouts, including
groups smaller than the rank. Run: python theory/ngc_linear_spectrum.py
"""

import random

import sympy as sp


def rand_matrix(rng, rows, cols):
    return sp.Matrix(rows, cols, lambda i, j: sp.Rational(rng.randint(-5, 5), rng.randint(1, 3)))


def check(sizes, r, seed):
    rng = random.Random(seed)
    G, N = len(sizes), sum(sizes)
    lam, k = sp.symbols("lam k")
    taus = sp.symbols(f"tau0:{G}", positive=True)
    A = [rand_matrix(rng, n, r) for n in sizes]
    B = [rand_matrix(rng, n, r) for n in sizes]
    C = [[rand_matrix(rng, r, r) for _ in range(G)] for _ in range(G)]
    # Dense M.
    W = sp.BlockMatrix([[A[g] * C[g][h] * B[h].T for h in range(G)]
                        for g in range(G)]).as_explicit()
    Tinv = sp.diag(*[1 / taus[g] for g in range(G) for _ in range(sizes[g])])
    M = Tinv * (-sp.eye(N) + k * W)
    # Reduced L.
    Y = [B[g] if sizes[g] >= r else sp.eye(sizes[g]) for g in range(G)]
    Cp = [[C[g][h] if sizes[h] >= r else C[g][h] * B[h].T for h in range(G)] for g in range(G)]
    q = [min(n, r) for n in sizes]
    blocks = [[(-(sp.eye(q[g]) if g == h else sp.zeros(q[g], q[h])) + k * Y[g].T * A[g] * Cp[g][h])
               / taus[g] for h in range(G)] for g in range(G)]
    L = sp.BlockMatrix(blocks).as_explicit()
    lhs = (lam * sp.eye(N) - M).det(method="berkowitz")
    rhs = (lam * sp.eye(sum(q)) - L).det(method="berkowitz")
    for g in range(G):
        rhs *= (lam + 1 / taus[g]) ** (sizes[g] - q[g])
    assert sp.simplify(sp.expand(lhs - rhs)) == 0, (sizes, r)
    return L.shape[0]


if __name__ == "__main__":
    cases = [((3, 2), 1, 0), ((3, 1), 2, 1), ((1, 1, 2), 2, 2), ((4,), 2, 3), ((2, 3), 2, 4)]
    for sizes, r, seed in cases:
        q = check(sizes, r, seed)
        print(f"group sizes {sizes}, rank {r}: det(lam I - M) = det(lam I - L) "
              f"prod (lam + 1/tau_g)^(n_g - q_g)  [N = {sum(sizes)}, reduced size {q}]  OK")
