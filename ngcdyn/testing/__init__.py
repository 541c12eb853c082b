"""Test utilities for ngcdyn and its users: convergence-order estimation, hypothesis strategies."""

from ._convergence import ConvergenceResult, convergence_order
from ._strategies import (
    general_matrices,
    hurwitz_matrices,
    matrix_batches,
    non_normal_matrices,
    orthogonal_matrices,
    symmetric_matrices,
)

__all__ = [
    "ConvergenceResult", "convergence_order",
    "general_matrices", "hurwitz_matrices", "symmetric_matrices", "non_normal_matrices",
    "orthogonal_matrices", "matrix_batches",
]
