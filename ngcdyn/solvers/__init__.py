"""Batched ODE solvers: explicit Runge–Kutta with per-member adaptive steps, and a torchdiffeq backend."""

from ._base import AbstractSolver
from ._rk import RungeKutta
from ._solution import Solution, SolveError, Status
from ._solve import make_solver, solve
from ._tableau import BOSH3, DOPRI5, EULER, HEUN, MIDPOINT, RK4, TABLEAUX, TSIT5, ButcherTableau
from ._torchdiffeq import TorchdiffeqSolver

__all__ = [
    "AbstractSolver", "RungeKutta", "TorchdiffeqSolver", "Solution", "SolveError", "Status",
    "solve", "make_solver", "ButcherTableau", "TABLEAUX",
    "EULER", "MIDPOINT", "HEUN", "RK4", "BOSH3", "DOPRI5", "TSIT5",
]
