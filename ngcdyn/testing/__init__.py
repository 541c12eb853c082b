"""Test utilities for ngcdyn and its users: convergence-order estimation, hypothesis strategies."""

from ._convergence import ConvergenceResult, convergence_order

__all__ = ["ConvergenceResult", "convergence_order"]
