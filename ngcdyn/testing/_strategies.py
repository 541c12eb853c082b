"""Hypothesis strategies that build mathematically valid matrices for property tests.

Each strategy draws the entries through Hypothesis (so failures shrink to small, readable
matrices) and returns a ``torch.Tensor``. The size ``n`` is an ``int`` or a strategy of ints.

- :func:`general_matrices`: any real ``n x n`` matrix with bounded entries.
- :func:`hurwitz_matrices`: every eigenvalue has real part ``<= -margin`` (a stable linear flow).
- :func:`symmetric_matrices`: ``A = Aᵀ``.
- :func:`non_normal_matrices`: ``A = U T Uᵀ`` with ``U`` orthogonal and ``T`` upper triangular
  with a non-zero strictly upper part (``A Aᵀ != Aᵀ A``); its eigenvalues are ``diag T``.
- :func:`orthogonal_matrices`, :func:`matrix_batches` (several matrices of one size).

References
----------
Hypothesis documentation, "Domain modelling" and "Custom strategies": build valid objects instead
of filtering invalid ones.

Examples
--------
>>> from hypothesis import given, settings
>>> import torch
>>> from ngcdyn.testing import hurwitz_matrices
>>> @settings(max_examples=5, deadline=None)
... @given(hurwitz_matrices(n=3, margin=0.1))
... def check(A):
...     assert torch.linalg.eigvals(A).real.max() <= -0.1 + 1e-9
>>> check()
"""

from __future__ import annotations

from typing import Union

import torch
from hypothesis import strategies as st
from torch import Tensor

__all__ = [
    "general_matrices",
    "hurwitz_matrices",
    "symmetric_matrices",
    "non_normal_matrices",
    "orthogonal_matrices",
    "matrix_batches",
]

SizeLike = Union[int, st.SearchStrategy]
FloatLike = Union[float, st.SearchStrategy]


def _as_strategy(value, name: str) -> st.SearchStrategy:
    if isinstance(value, st.SearchStrategy):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number or a hypothesis strategy, got {value!r}.")
    return st.just(value)


def _entries(bound: float) -> st.SearchStrategy:
    return st.floats(
        min_value=-bound, max_value=bound, allow_nan=False, allow_infinity=False,
        allow_subnormal=False, width=64,
    )


def _check_bound(bound: float) -> float:
    if not (isinstance(bound, (int, float)) and not isinstance(bound, bool) and bound > 0):
        raise ValueError(f"`bound` must be a positive number (the largest |entry|), got {bound!r}.")
    return float(bound)


@st.composite
def general_matrices(draw, n: SizeLike = st.integers(1, 4), *, bound: float = 2.0,
                     dtype: torch.dtype = torch.float64) -> Tensor:
    """Real ``n x n`` matrices with entries in ``[-bound, bound]``.

    Parameters
    ----------
    n
        Size, an int or a strategy of ints (default 1..4).
    bound
        Largest absolute entry (default 2).
    dtype
        Of the returned tensor.

    Returns
    -------
    SearchStrategy of Tensor ``(n, n)``.
    """
    bound = _check_bound(bound)
    size = draw(_as_strategy(n, "n"))
    vals = draw(st.lists(_entries(bound), min_size=size * size, max_size=size * size))
    return torch.tensor(vals, dtype=torch.float64).reshape(size, size).to(dtype)


@st.composite
def hurwitz_matrices(draw, n: SizeLike = st.integers(1, 4), *,
                     margin: FloatLike = st.floats(0.05, 1.0), bound: float = 2.0,
                     dtype: torch.dtype = torch.float64) -> Tensor:
    """Hurwitz (stable) matrices: ``max Re eig(A) = -margin`` exactly (up to rounding).

    Built as ``A = M - (max Re eig(M) + margin) I`` from a general ``M``, so every eigenvalue
    structure of general matrices (complex pairs, non-normality) is reachable; the shift moves the
    spectrum rigidly.

    Parameters
    ----------
    n
        Size, an int or a strategy (default 1..4).
    margin
        Stability margin > 0, a float or a strategy (default uniform in [0.05, 1]).
    bound
        Largest absolute entry of ``M``.
    dtype
        Of the returned tensor.

    Returns
    -------
    SearchStrategy of Tensor ``(n, n)``.
    """
    M = draw(general_matrices(n, bound=bound, dtype=torch.float64))
    m = float(draw(_as_strategy(margin, "margin")))
    if not m > 0:
        raise ValueError(
            f"`margin` must be > 0 (the distance of the spectrum from the imaginary axis), got {m}."
        )
    shift = float(torch.linalg.eigvals(M).real.max()) + m
    return (M - shift * torch.eye(M.shape[0], dtype=torch.float64)).to(dtype)


@st.composite
def symmetric_matrices(draw, n: SizeLike = st.integers(1, 4), *, bound: float = 2.0,
                       dtype: torch.dtype = torch.float64) -> Tensor:
    """Symmetric matrices ``(M + Mᵀ) / 2`` with ``M`` general (real spectrum, orthogonal basis)."""
    M = draw(general_matrices(n, bound=bound, dtype=torch.float64))
    return ((M + M.T) / 2).to(dtype)


@st.composite
def orthogonal_matrices(draw, n: SizeLike = st.integers(1, 4), *,
                        dtype: torch.dtype = torch.float64) -> Tensor:
    """Orthogonal matrices: the ``Q`` factor of a drawn, diagonally shifted matrix.

    ``M + 3 n I`` with entries of ``M`` in ``[-1, 1]`` is strictly diagonally dominant, hence
    invertible, so its QR factor is a well-defined orthogonal matrix.
    """
    M = draw(general_matrices(n, bound=1.0, dtype=torch.float64))
    size = M.shape[0]
    Q, R = torch.linalg.qr(M + 3 * size * torch.eye(size, dtype=torch.float64))
    Q = Q * torch.sign(torch.diagonal(R)).unsqueeze(0)
    return Q.to(dtype)


@st.composite
def non_normal_matrices(draw, n: SizeLike = st.integers(2, 4), *, diagonal_bound: float = 2.0,
                        coupling: FloatLike = st.floats(0.5, 4.0),
                        dtype: torch.dtype = torch.float64) -> Tensor:
    """Non-normal matrices ``A = U T Uᵀ``, eigenvalues ``diag T`` (real).

    ``T`` is upper triangular with diagonal in ``[-diagonal_bound, diagonal_bound]`` and a strictly
    upper part of Frobenius norm ``coupling`` (so ``‖A Aᵀ - Aᵀ A‖ > 0`` and ``A`` is
    non-normal); ``U`` is orthogonal. The 2 x 2 case with equal diagonal is the classic
    ``[[-1, a], [0, -1]]`` example whose ``mu_2 = -1 + |a|/2`` exceeds its exponents.

    Parameters
    ----------
    n
        Size >= 2 (default 2..4).
    diagonal_bound
        Bound on the eigenvalues ``diag T``.
    coupling
        Frobenius norm of the strictly upper part, > 0.
    dtype
        Of the returned tensor.
    """
    size = draw(_as_strategy(n, "n"))
    if size < 2:
        raise ValueError(
            f"`n` must be >= 2 for a non-normal matrix (1 x 1 matrices are normal), got {size}."
        )
    c = float(draw(_as_strategy(coupling, "coupling")))
    if not c > 0:
        raise ValueError(f"`coupling` must be > 0 (the size of the strictly upper part), got {c}.")
    diag = draw(st.lists(_entries(_check_bound(diagonal_bound)), min_size=size, max_size=size))
    n_up = size * (size - 1) // 2
    # Draw the direction of the strictly upper part on the unit sphere (a non-zero vector scaled).
    up = draw(st.lists(_entries(1.0), min_size=n_up, max_size=n_up).filter(
        lambda v: sum(x * x for x in v) > 1e-2))
    up_t = torch.tensor(up, dtype=torch.float64)
    up_t = up_t * (c / up_t.norm())
    T = torch.diag(torch.tensor(diag, dtype=torch.float64))
    iu = torch.triu_indices(size, size, offset=1)
    T[iu[0], iu[1]] = up_t
    U = draw(orthogonal_matrices(size))
    return (U @ T @ U.T).to(dtype)


@st.composite
def matrix_batches(draw, kind=hurwitz_matrices, n: SizeLike = st.integers(1, 4),
                   batch: SizeLike = st.integers(1, 4), **kwargs) -> Tensor:
    """A batch ``(B, n, n)`` of matrices of one size drawn from the strategy function ``kind``.

    Parameters
    ----------
    kind
        One of the matrix strategies of this module (the function, not a drawn strategy).
    n, batch
        Size and batch size, ints or strategies.
    **kwargs
        Passed to ``kind``.
    """
    size = draw(_as_strategy(n, "n"))
    B = draw(_as_strategy(batch, "batch"))
    return torch.stack([draw(kind(size, **kwargs)) for _ in range(B)])
