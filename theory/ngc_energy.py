"""Symbolic check of the NGC energy identity (theory/03_energy.md).

Claims, for tau_i xdot_i = -x_i + (W phi(x))_i + u_i with W = W^T and a generic gain phi whose
antiderivative Phi (Phi' = phi) is used in

    E(x) = -1/2 phi(x)^T W phi(x) + sum_i (x_i phi(x_i) - Phi(x_i)) - u^T phi(x):

1. dE/dx_i = -tau_i phi'(x_i) xdot_i   (so dE/dt = grad E . xdot = -sum_i tau_i phi'(x_i) xdot_i^2);
2. x phi(x) - Phi(x) = int_0^x s phi'(s) ds when Phi(0) = 0;
3. for tanh, Phi = log cosh and the overflow-free form |x| + log(1 + e^{-2|x|}) - log 2 equals it;
4. the identity needs W symmetric: with an antisymmetric part the gradient picks up
   phi'(x_i) ((W - W^T) phi / 2)_i.
Run: python theory/ngc_energy.py
"""

import sympy as sp

N = 3
x = sp.symbols(f"x0:{N}", real=True)
u = sp.symbols(f"u0:{N}", real=True)
tau = sp.symbols(f"tau0:{N}", positive=True)
phi, Phi = sp.Function("phi"), sp.Function("Phi")


def energy(W):
    p = sp.Matrix([phi(xi) for xi in x])
    return (-(p.T * W * p)[0] / 2 + sum(xi * phi(xi) - Phi(xi) for xi in x)
            - sum(ui * phi(xi) for ui, xi in zip(u, x)))


def xdot(W):
    p = sp.Matrix([phi(xi) for xi in x])
    f = -sp.Matrix(x) + W * p + sp.Matrix(u)
    return [f[i] / tau[i] for i in range(N)]


def grad(E):
    # d/dx Phi(x) = phi(x) by definition of the antiderivative.
    return [sp.diff(E, xi).subs(sp.Derivative(Phi(xi), xi), phi(xi)).doit() for xi in x]


def main():
    w = sp.symbols("w0:6", real=True)
    W = sp.Matrix([[w[0], w[1], w[2]], [w[1], w[3], w[4]], [w[2], w[4], w[5]]])  # symmetric
    E, f = energy(W), xdot(W)
    g = grad(E)
    for i in range(N):
        assert sp.simplify(g[i] + tau[i] * sp.diff(phi(x[i]), x[i]) * f[i]) == 0
    rate = sum(gi * fi for gi, fi in zip(g, f))
    closed = -sum(tau[i] * sp.diff(phi(x[i]), x[i]) * f[i] ** 2 for i in range(N))
    assert sp.simplify(sp.expand(rate - closed)) == 0
    print("1. W = W^T:  dE/dx_i = -tau_i phi'(x_i) xdot_i  and  "
          "dE/dt = -sum tau_i phi'(x_i) xdot_i^2  OK")

    X = sp.symbols("X", real=True)
    # Generic phi: F(X) = X phi(X) - Phi(X) has F' = X phi'(X) and F(0) = -Phi(0) = 0, so by the
    # fundamental theorem of calculus F(X) = int_0^X s phi'(s) ds.
    F = X * phi(X) - Phi(X)
    dF = sp.diff(F, X).subs(sp.Derivative(Phi(X), X), phi(X)).doit()
    assert sp.simplify(dF - X * sp.diff(phi(X), X)) == 0
    gains = [("tanh", sp.tanh(X), sp.log(sp.cosh(X))), ("identity", X, X ** 2 / 2)]
    for name, fn, antider in gains:
        assert sp.simplify(sp.diff(antider, X) - fn) == 0, name  # Phi' = phi
        assert antider.subs(X, 0) == 0, name  # Phi(0) = 0
        leak = X * fn - antider
        assert sp.simplify(sp.diff(leak, X) - X * sp.diff(fn, X)) == 0, name
    print("2. x phi(x) - Phi(x) = int_0^x s phi'(s) ds  "
          "(generic phi; tanh with Phi = log cosh; identity)  OK")

    a = sp.symbols("a", positive=True)
    stable = a + sp.log(1 + sp.exp(-2 * a)) - sp.log(2)
    # exp is injective: exp(stable) = e^a (1 + e^{-2a}) / 2 = (e^a + e^{-a}) / 2 = cosh a.
    assert sp.simplify(sp.exp(stable) - sp.cosh(a).rewrite(sp.exp)) == 0
    assert sp.simplify(sp.diff(sp.log(sp.cosh(X)), X) - sp.tanh(X)) == 0
    print("3. log cosh a = a + log(1 + e^{-2a}) - log 2 (a >= 0), d/dx log cosh = tanh  OK")

    v = sp.symbols("v0:9", real=True)
    Wg = sp.Matrix(3, 3, v)  # general, not symmetric
    g2, f2 = grad(energy(Wg)), xdot(Wg)
    p = sp.Matrix([phi(xi) for xi in x])
    extra = (Wg - Wg.T) * p / 2
    for i in range(N):
        resid = g2[i] + tau[i] * sp.diff(phi(x[i]), x[i]) * f2[i]
        assert sp.simplify(resid - sp.diff(phi(x[i]), x[i]) * extra[i]) == 0
    print("4. general W: dE/dx_i + tau_i phi' xdot_i = phi'(x_i) ((W - W^T) phi / 2)_i, "
          "vanishes for W = W^T  OK")


if __name__ == "__main__":
    main()
