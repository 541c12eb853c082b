"""Stability analysis: tangent dynamics, Lyapunov spectra, the conditional exponent, contraction.

- Lyapunov exponents of flows and maps by QR re-orthonormalisation (:func:`lyapunov_spectrum`,
  :func:`lyapunov_spectrum_map`), the largest one from two trajectories (:func:`max_lyapunov`,
  :func:`max_lyapunov_map`), the Kaplan–Yorke dimension; results with convergence diagnostics
  (:class:`LyapunovResult`).
- The conditional (input-driven) Lyapunov exponent, ngcdyn's neuronal stability metric
  (:func:`conditional_lyapunov_map`, :func:`conditional_lyapunov`).
- Contraction: matrix measures, contraction-rate estimates, the NGC certificate.
- The drive (potential), ngcdyn's definition: departure of driven from undriven trajectories and
  the stability verdict (:class:`DrivenSystem`, :func:`drive_departure`).

Analysis code receives solver objects (:class:`ngcdyn.AbstractSolver`); it imports no concrete
solver.
"""

# Lyapunov exponents and tangent dynamics
from ._conditional import conditional_lyapunov, conditional_lyapunov_map
from ._lyapunov import (
    DivergenceError,
    LyapunovResult,
    kaplan_yorke_dimension,
    lyapunov_spectrum,
    lyapunov_spectrum_map,
    max_lyapunov,
    max_lyapunov_map,
)
from ._tangent import tangent_vector_field

# Contraction
from ._contraction import (
    ContractionCertificate,
    ContractionResult,
    contraction_rate,
    matrix_measure,
    ngc_contraction_certificate,
    sample_region,
)

# The drive (potential)
from ._drive import (
    DriveResult,
    DrivenSystem,
    conditional_exponent,
    drive_departure,
    euclidean_departure,
)

__all__ = [
    # Lyapunov exponents and tangent dynamics
    "LyapunovResult",
    "DivergenceError",
    "lyapunov_spectrum",
    "lyapunov_spectrum_map",
    "max_lyapunov",
    "max_lyapunov_map",
    "kaplan_yorke_dimension",
    "tangent_vector_field",
    # The conditional (input-driven) exponent: ngcdyn's neuronal stability metric
    "conditional_lyapunov",
    "conditional_lyapunov_map",
    # Contraction
    "matrix_measure",
    "contraction_rate",
    "ContractionResult",
    "sample_region",
    "ngc_contraction_certificate",
    "ContractionCertificate",
    # The drive (potential): ngcdyn's definition, pluggable
    "DrivenSystem",
    "drive_departure",
    "DriveResult",
    "euclidean_departure",
    "conditional_exponent",
]
