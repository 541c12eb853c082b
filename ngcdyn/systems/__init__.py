"""Vector fields and maps: the NGC group system and a library of canonical systems.

Every system carries its ground truth where known (:class:`GroundTruth`).
"""

from ._base import AbstractMap, AbstractVectorField, GroundTruth, autodiff_jacobian
from ._library import (
    SYSTEMS,
    HarmonicOscillator,
    HenonMap,
    LinearMap,
    LinearSystem,
    LogisticMap,
    Lorenz,
    RateNetwork,
    Rossler,
    VanDerPol,
)
from ._ngc import ContractionBound, Gain, NGCSystem

__all__ = [
    "AbstractMap", "AbstractVectorField", "GroundTruth", "autodiff_jacobian",
    "NGCSystem", "Gain", "ContractionBound",
    "SYSTEMS", "LinearSystem", "HarmonicOscillator", "VanDerPol", "Lorenz", "Rossler",
    "RateNetwork", "HenonMap", "LogisticMap", "LinearMap",
]
