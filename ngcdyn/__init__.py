"""ngcdyn: Neuronal Group Communication as continuous-time dynamics.

- :mod:`ngcdyn.solvers`: batched explicit Runge–Kutta with per-member adaptive steps, a
  torchdiffeq backend, :class:`Solution` with per-member status;
- :mod:`ngcdyn.systems`: the NGC group system and canonical systems with their ground truth;
- :mod:`ngcdyn.analysis`: Lyapunov spectra, the conditional exponent (ngcdyn's neuronal
  stability metric), contraction, the drive;
- :mod:`ngcdyn.testing`: convergence-order estimation and hypothesis strategies.
"""

from .analysis import (
    DivergenceError,
    DrivenSystem,
    LyapunovResult,
    conditional_lyapunov,
    conditional_lyapunov_map,
    contraction_rate,
    drive_departure,
    kaplan_yorke_dimension,
    lyapunov_spectrum,
    lyapunov_spectrum_map,
    matrix_measure,
    max_lyapunov,
    max_lyapunov_map,
    ngc_contraction_certificate,
)
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
from .systems import (
    SYSTEMS,
    AbstractMap,
    AbstractVectorField,
    GroundTruth,
    HarmonicOscillator,
    HenonMap,
    LinearMap,
    LinearSystem,
    LogisticMap,
    Lorenz,
    NGCSystem,
    RateNetwork,
    Rossler,
    VanDerPol,
)

__version__ = "0.1.0"

__all__ = [
    # solvers
    "solve", "make_solver", "AbstractSolver", "RungeKutta", "TorchdiffeqSolver", "ButcherTableau",
    "Solution", "SolveError", "Status",
    # systems
    "AbstractVectorField", "AbstractMap", "GroundTruth", "NGCSystem", "SYSTEMS", "LinearSystem",
    "HarmonicOscillator", "VanDerPol", "Lorenz", "Rossler", "RateNetwork", "HenonMap",
    "LogisticMap", "LinearMap",
    # analysis
    "lyapunov_spectrum", "lyapunov_spectrum_map", "max_lyapunov", "max_lyapunov_map",
    "kaplan_yorke_dimension", "LyapunovResult", "DivergenceError", "conditional_lyapunov",
    "conditional_lyapunov_map", "matrix_measure", "contraction_rate",
    "ngc_contraction_certificate", "DrivenSystem", "drive_departure",
]
