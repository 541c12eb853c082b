"""Butcher tableaux of explicit Runge–Kutta methods, validated when built.

A method is data plus a declared order (STYLE.md principle 3). For a tableau with stages
``c, a`` and weights ``b`` the step is

.. math::

    k_i = f\\big(t + c_i h,\\; y + h \\sum_{j<i} a_{ij} k_j\\big), \\qquad
    y_{n+1} = y_n + h \\sum_i b_i k_i,

and an embedded pair adds error weights ``e = b - \\hat b`` so that the local error estimate is
``h \\sum_i e_i k_i``. Dense output uses the polynomial ``y(t + θh) = y + h Σ_i k_i P_i(θ)`` with
``P_i(θ) = Σ_j P[i, j] θ^{j+1}``; a tableau without its own interpolant gets the cubic Hermite
interpolant built from ``y_n, y_{n+1}, f_n, f_{n+1}`` (order 3).

References: Hairer, Nørsett, Wanner, *Solving ODEs I*, II.1–II.6; Dormand & Prince (1980);
Shampine (1986) for the DOPRI5 dense output; Bogacki & Shampine (1989); Tsitouras (2011).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as Fr

import numpy as np

__all__ = [
    "ButcherTableau",
    "EULER",
    "MIDPOINT",
    "HEUN",
    "RK4",
    "BOSH3",
    "DOPRI5",
    "TSIT5",
    "TABLEAUX",
]


def _arr(rows) -> np.ndarray:
    return np.array([[float(x) for x in r] for r in rows], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class ButcherTableau:
    """An explicit Runge–Kutta method: coefficients plus its declared order.

    Parameters
    ----------
    name
        Short method name (``"dopri5"``).
    c : (s,)
        Stage times.
    a : (s, s)
        Strictly lower-triangular stage matrix.
    b : (s,)
        Weights of the propagated solution (order ``order``).
    order
        Classical order of ``b``.
    error_weights : (s,), optional
        ``b - b_hat`` of the embedded method, whose order is ``error_order``; ``None`` for
        fixed-step-only methods.
    error_order
        Order of the embedded method (the error estimate is ``O(h^{error_order + 1})``).
    fsal
        First-same-as-last: the last stage is evaluated at ``(t + h, y_{n+1})`` and is reused as
        the first stage of the next step.
    interp : (s, d), optional
        Dense-output coefficients ``P`` (see module docstring) and ``interp_order`` their order.

    Raises
    ------
    ValueError
        When the row sums of ``a`` differ from ``c``, ``Σ b ≠ 1``, ``Σ e ≠ 0``, ``a`` is not
        strictly lower-triangular, ``P(1) ≠ b``, or shapes disagree (tolerance 1e-12).
    """

    name: str
    c: np.ndarray
    a: np.ndarray
    b: np.ndarray
    order: int
    error_weights: np.ndarray | None = None
    error_order: int | None = None
    fsal: bool = False
    interp: np.ndarray | None = None
    interp_order: int = 3
    citation: str = ""

    def __post_init__(self) -> None:
        s = len(self.c)
        tol = 1e-12
        if self.a.shape != (s, s) or self.b.shape != (s,):
            raise ValueError(
                f"tableau `{self.name}`: `a` must be ({s}, {s}) and `b` ({s},), got "
                f"{self.a.shape} and {self.b.shape}."
            )
        if np.any(np.triu(self.a) != 0):
            raise ValueError(f"tableau `{self.name}`: `a` must be strictly lower-triangular (explicit).")
        rows = self.a.sum(axis=1)
        if np.max(np.abs(rows - self.c)) > tol:
            raise ValueError(
                f"tableau `{self.name}`: row sums of `a` must equal `c`; differences "
                f"{(rows - self.c).tolist()}."
            )
        if abs(self.b.sum() - 1.0) > tol:
            raise ValueError(f"tableau `{self.name}`: Σ b must be 1, got {self.b.sum()!r}.")
        if self.error_weights is not None:
            if self.error_weights.shape != (s,) or self.error_order is None:
                raise ValueError(
                    f"tableau `{self.name}`: `error_weights` must have shape ({s},) and come with "
                    "`error_order`."
                )
            if abs(self.error_weights.sum()) > tol:
                raise ValueError(
                    f"tableau `{self.name}`: Σ error_weights must be 0, got {self.error_weights.sum()!r}."
                )
        if self.fsal and (abs(self.c[-1] - 1.0) > tol or np.max(np.abs(self.a[-1] - self.b)) > tol):
            raise ValueError(
                f"tableau `{self.name}`: fsal=True needs c[-1] = 1 and a[-1] = b."
            )
        if self.interp is not None:
            if self.interp.shape[0] != s:
                raise ValueError(f"tableau `{self.name}`: `interp` must have {s} rows.")
            if np.max(np.abs(self.interp.sum(axis=1) - self.b)) > 1e-10:
                raise ValueError(
                    f"tableau `{self.name}`: the interpolant at θ = 1 must reproduce b."
                )

    @property
    def n_stages(self) -> int:
        return len(self.c)

    @property
    def adaptive(self) -> bool:
        """True when the tableau carries an embedded error estimate."""
        return self.error_weights is not None

    def __repr__(self) -> str:
        emb = f", embedded order {self.error_order}" if self.adaptive else ""
        return f"ButcherTableau({self.name!r}, order {self.order}{emb}, {self.n_stages} stages)"


def _tab(name, c, a, b, order, **kw) -> ButcherTableau:
    s = len(c)
    A = np.zeros((s, s))
    for i, row in enumerate(a):
        A[i + 1, : len(row)] = [float(x) for x in row]
    return ButcherTableau(
        name=name,
        c=np.array([float(x) for x in c]),
        a=A,
        b=np.array([float(x) for x in b]),
        order=order,
        **kw,
    )


EULER = _tab("euler", [0], [], [1], 1, citation="Euler (1768)")
MIDPOINT = _tab("midpoint", [0, Fr(1, 2)], [[Fr(1, 2)]], [0, 1], 2, citation="Runge (1895)")
HEUN = _tab(
    "heun", [0, 1], [[1]], [Fr(1, 2), Fr(1, 2)], 2,
    error_weights=np.array([-0.5, 0.5]), error_order=1,  # embedded Euler: b_hat = (1, 0)
    citation="Heun (1900), with embedded Euler",
)
RK4 = _tab(
    "rk4", [0, Fr(1, 2), Fr(1, 2), 1],
    [[Fr(1, 2)], [0, Fr(1, 2)], [0, 0, 1]],
    [Fr(1, 6), Fr(1, 3), Fr(1, 3), Fr(1, 6)], 4, citation="Kutta (1901)",
)

# Bogacki–Shampine 3(2), FSAL.
_b3 = [Fr(2, 9), Fr(1, 3), Fr(4, 9), 0]
_b3_hat = [Fr(7, 24), Fr(1, 4), Fr(1, 3), Fr(1, 8)]
BOSH3 = _tab(
    "bosh3", [0, Fr(1, 2), Fr(3, 4), 1],
    [[Fr(1, 2)], [0, Fr(3, 4)], _b3[:3]],
    _b3, 3,
    error_weights=np.array([float(x - y) for x, y in zip(_b3, _b3_hat)]), error_order=2, fsal=True,
    citation="Bogacki & Shampine, Appl. Math. Lett. 2 (1989) 321–325",
)

# Dormand–Prince 5(4), FSAL, with Shampine's (1986) 4th-order dense output.
_b5 = [Fr(35, 384), 0, Fr(500, 1113), Fr(125, 192), Fr(-2187, 6784), Fr(11, 84), 0]
_b5_hat = [Fr(5179, 57600), 0, Fr(7571, 16695), Fr(393, 640), Fr(-92097, 339200), Fr(187, 2100), Fr(1, 40)]
_dopri_P = [
    [1, Fr(-8048581381, 2820520608), Fr(8663915743, 2820520608), Fr(-12715105075, 11282082432)],
    [0, 0, 0, 0],
    [0, Fr(131558114200, 32700410799), Fr(-68118460800, 10900136933), Fr(87487479700, 32700410799)],
    [0, Fr(-1754552775, 470086768), Fr(14199869525, 1410260304), Fr(-10690763975, 1880347072)],
    [0, Fr(127303824393, 49829197408), Fr(-318862633887, 49829197408), Fr(701980252875, 199316789632)],
    [0, Fr(-282668133, 205662961), Fr(2019193451, 616988883), Fr(-1453857185, 822651844)],
    [0, Fr(40617522, 29380423), Fr(-110615467, 29380423), Fr(69997945, 29380423)],
]
DOPRI5 = _tab(
    "dopri5", [0, Fr(1, 5), Fr(3, 10), Fr(4, 5), Fr(8, 9), 1, 1],
    [
        [Fr(1, 5)],
        [Fr(3, 40), Fr(9, 40)],
        [Fr(44, 45), Fr(-56, 15), Fr(32, 9)],
        [Fr(19372, 6561), Fr(-25360, 2187), Fr(64448, 6561), Fr(-212, 729)],
        [Fr(9017, 3168), Fr(-355, 33), Fr(46732, 5247), Fr(49, 176), Fr(-5103, 18656)],
        _b5[:6],
    ],
    _b5, 5,
    error_weights=np.array([float(x - y) for x, y in zip(_b5, _b5_hat)]), error_order=4, fsal=True,
    interp=_arr(_dopri_P), interp_order=4,
    citation="Dormand & Prince, J. Comput. Appl. Math. 6 (1980) 19–26; dense output Shampine (1986)",
)

# Tsitouras 5(4), FSAL (coefficients from Tsitouras 2011, Table 1; the published error weights are
# b - b_hat with the sign of the last one corrected to -1/66 so that they sum to zero).
_bt = [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
       2.324710524099774, 0.0]


def _tsit5_interp() -> np.ndarray:
    """Tsitouras' (2011) 4th-order continuous extension, from the paper's factored b_i(θ).

    Returns P (7, 4) with b_i(θ) = Σ_j P[i, j] θ^{j+1}. The paper's rounding leaves the θ
    coefficient of b_1 at 1 + O(1e-16); it is set to 1 exactly (consistency: Σ_i b_i'(0) = 1).
    """
    from numpy.polynomial import polynomial as npp

    def prod(scale, *factors):
        coef = np.array([float(scale)])
        for fac in factors:
            coef = npp.polymul(coef, np.array(fac, dtype=float))
        return coef

    th, th2 = [0.0, 1.0], [0.0, 0.0, 1.0]
    polys = [
        prod(-1.0530884977290216, th, [-1.3299890189751412, 1], [0.7139816917074209, -1.4364028541716351, 1]),
        prod(0.1017, th2, [1.2949852507374631, -2.1966568338249754, 1]),
        prod(2.490627285651252793, th2, [1.57803468208092486, -2.38535645472061657, 1]),
        prod(-16.54810288924490272, th2, [-1.21712927295533244, 1], [-0.61620406037800089, 1]),
        prod(47.37952196281928122, th2, [-1.203071208372362603, 1], [-0.658047292653547382, 1]),
        prod(-34.87065786149660974, th2, [-1.2, 1], [-2.0 / 3.0, 1]),
        prod(2.5, th2, [-1.0, 1], [-0.6, 1]),
    ]
    P = np.zeros((7, 4))
    for i, c in enumerate(polys):
        P[i, : len(c) - 1] = c[1:5]
    P[0, 0] = 1.0
    return P


TSIT5 = _tab(
    "tsit5", [0, 0.161, 0.327, 0.9, 0.9800255409045097, 1, 1],
    [
        [0.161],
        [-0.008480655492356989, 0.335480655492357],
        [2.8971530571054935, -6.359448489975075, 4.3622954328695815],
        [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
        [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401,
         -0.028269050394068383],
        _bt[:6],
    ],
    _bt, 5,
    error_weights=np.array([0.001780011052226, 0.000816434459657, -0.007880878010262,
                            0.144711007173263, -0.582357165452555, 0.458082105929187, -1.0 / 66.0]),
    error_order=4, fsal=True, interp=_tsit5_interp(), interp_order=4,
    citation="Tsitouras, Comput. Math. Appl. 62 (2011) 770–775 (tableau and continuous extension)",
)

#: Every shipped tableau by name.
TABLEAUX: dict[str, ButcherTableau] = {
    t.name: t for t in (EULER, MIDPOINT, HEUN, RK4, BOSH3, DOPRI5, TSIT5)
}
