"""ngcdyn: Neuronal Group Communication as continuous-time dynamics.

Solvers (:mod:`ngcdyn.solvers`), systems (:mod:`ngcdyn.systems`), stability analysis
(:mod:`ngcdyn.analysis`) and test utilities (:mod:`ngcdyn.testing`).
"""

from .solvers import (
    AbstractSolver,
    ButcherTableau,
    RungeKutta,
    Solution,
    SolveError,
    Status,
    TorchdiffeqSolver,
    make_solver,
    solve,
)
from .systems import AbstractMap, AbstractVectorField, GroundTruth

__version__ = "0.1.0"

__all__ = [
    "AbstractSolver", "ButcherTableau", "RungeKutta", "Solution", "SolveError", "Status",
    "TorchdiffeqSolver", "make_solver", "solve",
    "AbstractMap", "AbstractVectorField", "GroundTruth",
]
