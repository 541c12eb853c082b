"""Contraction analysis: matrix measures of Jacobians, contraction-rate estimates, sampled regions.

A system ``dx/dt = f(t, x)`` is *contracting* at rate ``c > 0`` in the norm ``‖P x‖`` on a convex
region when the matrix measure (logarithmic norm) of its Jacobian satisfies
``mu_P(J(t, x)) <= -c`` there; then any two trajectories in the region approach each other at
least like ``e^{-c t}`` (Lohmiller & Slotine 1998). This module evaluates ``mu`` along
trajectories or at sampled points, turns it into a rate estimate, and issues the NGC certificate of
``theory/12_contraction.md``.

References
----------
.. [LS98] W. Lohmiller, J.-J. E. Slotine, "On contraction analysis for non-linear systems",
   Automatica 34(6):683–696, 1998.
.. [DV75] C. A. Desoer, M. Vidyasagar, *Feedback Systems: Input-Output Properties*, Academic Press,
   1975, section II.8 (the measure of a matrix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Union

import torch
from torch import Tensor

from .._validation import check_positive, check_same_device_dtype, check_state, describe
from ..systems import AbstractVectorField, NGCSystem

__all__ = [
    "matrix_measure",
    "contraction_rate",
    "ContractionResult",
    "sample_region",
    "ngc_contraction_certificate",
    "ContractionCertificate",
]

#: The norms whose induced matrix measure has a closed form: 1, 2 and "inf".
Norm = Union[int, float, str]


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _check_norm(norm: Any) -> int | str:
    """Normalise ``norm`` to 1, 2 or "inf"."""
    if not isinstance(norm, bool) and isinstance(norm, (int, float)):
        if norm == 1 or norm == 2:
            return int(norm)
        if norm == math.inf:
            return "inf"
    if isinstance(norm, str) and norm.strip().lower() in ("inf", "1", "2"):
        s = norm.strip().lower()
        return "inf" if s == "inf" else int(s)
    raise ValueError(
        "`norm` must be 1, 2 or 'inf' (the vector norm whose induced matrix measure mu_1, mu_2 or "
        f"mu_inf is computed), got {norm!r}. For a weighted norm ||P x|| pass the matrix as `P` "
        "together with one of these."
    )


def _check_square(name: str, J: Any) -> Tensor:
    """``J`` must be a floating tensor of shape ``(*batch, n, n)`` with ``n >= 1``."""
    if not isinstance(J, Tensor):
        raise TypeError(
            f"`{name}` must be a torch.Tensor of shape (*batch, n, n), got {type(J).__name__}. "
            f"Convert it with torch.as_tensor({name}, dtype=torch.float64)."
        )
    if not (J.is_floating_point() or J.is_complex()):
        raise TypeError(
            f"`{name}` must be a floating-point tensor, got dtype={J.dtype}. Use "
            f"{name}.to(torch.float64) (or float32)."
        )
    if J.ndim < 2 or J.shape[-1] != J.shape[-2] or J.shape[-1] == 0:
        raise ValueError(
            f"`{name}` must be a batch of non-empty square matrices, shape (*batch, n, n) with n "
            f">= 1, got shape {tuple(J.shape)}. A Jacobian of a vector field on R^n is n x n; for "
            "a single scalar equation use shape (1, 1)."
        )
    return J


def _check_weight(P: Any, J: Tensor) -> Tensor:
    """``P`` must be an invertible ``(*batch, n, n)`` matrix matching ``J``."""
    P = _check_square("P", P)
    n = J.shape[-1]
    if P.shape[-1] != n:
        raise ValueError(
            f"`P` must be n x n with n={n} (the size of `J`), got shape {tuple(P.shape)}. The "
            "weighted norm is ||P x|| for states x in R^n."
        )
    check_same_device_dtype("J", J, P=P)
    try:
        torch.broadcast_shapes(P.shape[:-2], J.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"The batch shape of `P` {tuple(P.shape[:-2])} does not broadcast against the batch "
            f"shape of `J` {tuple(J.shape[:-2])}. Pass one (n, n) matrix, or add singleton "
            "dimensions (e.g. P.unsqueeze(-3) for one metric per trajectory of a (*batch, T, n, "
            "n) Jacobian)."
        ) from None
    if not bool(torch.isfinite(P).all()):
        raise ValueError(f"`P` must be finite, got {describe(P)}. Replace its NaN/inf entries.")
    with torch.no_grad():
        cond = torch.linalg.cond(P)
    eps = torch.finfo(P.dtype).eps
    singular = ~torch.isfinite(cond) | (cond * eps >= 1.0)
    if bool(singular.any()):
        worst = float(cond.max())
        raise ValueError(
            "`P` must be invertible (the weighted norm ||P x|| is a norm only then), but its "
            f"condition number is {worst:.3g} >= 1/eps = {1 / eps:.3g} for {describe(P)}: P is "
            "singular to working precision. Use a full-rank P, e.g. the Cholesky factor of a "
            "positive definite metric M = P^T P."
        )
    return P


# --------------------------------------------------------------------------------------------
# Matrix measures
# --------------------------------------------------------------------------------------------


def matrix_measure(J: Tensor, norm: Norm = 2, P: Tensor | None = None) -> Tensor:
    r"""Matrix measure (logarithmic norm) ``mu(J)`` of the 1-, 2- or inf-norm, optionally weighted.

    The measure induced by a vector norm is ``mu(J) = lim_{h -> 0+} (||I + h J|| - 1) / h``
    [DV75]_. For the three classic norms it has a closed form (``J`` real):

    .. math::

        \mu_2(J) &= \lambda_{\max}\big((J + J^\top)/2\big),\\
        \mu_1(J) &= \max_j \Big(J_{jj} + \sum_{i \ne j} |J_{ij}|\Big)\quad\text{(columns)},\\
        \mu_\infty(J) &= \max_i \Big(J_{ii} + \sum_{j \ne i} |J_{ij}|\Big)\quad\text{(rows)}.

    With a weight ``P`` (invertible) the norm is ``||x||_P = ||P x||`` and
    ``mu_P(J) = mu(P J P^{-1})``. For complex ``J`` the Hermitian part and the real part of the
    diagonal are used.

    Parameters
    ----------
    J : (*batch, n, n) tensor
        Matrices (typically Jacobians), real or complex floating point.
    norm : {2, 1, "inf"}, default 2
        The vector norm (``math.inf`` is accepted for ``"inf"``).
    P : (*batch_P, n, n) tensor, optional
        Invertible weight; ``batch_P`` broadcasts against ``batch``. Same dtype and device as ``J``.

    Returns
    -------
    (broadcast batch,) real tensor
        ``mu(J)`` for every matrix. Differentiable (autograd) in ``J`` and ``P``.

    Raises
    ------
    TypeError
        If ``J`` or ``P`` is not a floating-point tensor, or their dtypes differ.
    ValueError
        If a matrix is not square, ``norm`` is unknown, or ``P`` is singular or mis-shaped.

    Notes
    -----
    Facts used throughout ngcdyn (all in [DV75]_): ``max Re eig(J) <= mu(J) <= ||J||``;
    ``mu(J + c I) = mu(J) + c``; ``mu(a J) = a mu(J)`` for ``a >= 0``;
    ``mu(A + B) <= mu(A) + mu(B)``; ``mu_1(J) = mu_inf(J^T)``. The solution of
    ``dx/dt = A(t) x`` obeys ``||x(t)|| <= exp(int_0^t mu(A(s)) ds) ||x(0)||`` (Coppel's
    inequality).

    References
    ----------
    .. [DV75] C. A. Desoer, M. Vidyasagar, *Feedback Systems: Input-Output Properties*, 1975, II.8.

    See Also
    --------
    contraction_rate : the measure of a system's Jacobian along states.

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.analysis import matrix_measure
    >>> A = torch.tensor([[-1.0, 3.0], [0.0, -1.0]], dtype=torch.float64)
    >>> round(float(matrix_measure(A, norm=2)), 12)  # -1 + |a|/2
    0.5
    >>> float(matrix_measure(A, norm=1)), float(matrix_measure(A, norm="inf"))  # -1 + |a|
    (2.0, 2.0)
    >>> P = torch.diag(torch.tensor([1.0, 6.0], dtype=torch.float64))
    >>> round(float(matrix_measure(A, norm=2, P=P)), 12)  # -1 + |a| / (2 * 6)
    -0.75
    """
    J = _check_square("J", J)
    which = _check_norm(norm)
    if P is not None:
        P = _check_weight(P, J)
        # P J P^{-1}: solve X P = (P J) for X instead of forming the inverse.
        J = torch.linalg.solve(P, P @ J, left=False)  # (*batch, n, n)
    diag = J.diagonal(dim1=-2, dim2=-1)  # (*batch, n)
    if which == 2:
        sym = 0.5 * (J + J.mH)  # Hermitian part
        return torch.linalg.eigvalsh(sym)[..., -1]
    off = J.abs()
    if which == 1:
        sums = off.sum(dim=-2) - diag.abs()  # column sums without the diagonal, (*batch, n)
    else:
        sums = off.sum(dim=-1) - diag.abs()  # row sums without the diagonal, (*batch, n)
    return (diag.real + sums).amax(dim=-1)


# --------------------------------------------------------------------------------------------
# Jacobians along states
# --------------------------------------------------------------------------------------------


def _broadcast_times(t: Any, ys: Tensor) -> Tensor | None:
    """``t`` as a tensor broadcast to the points ``ys.shape[:-1]`` (or 0-d), or None."""
    if t is None:
        return None
    if not isinstance(t, Tensor):
        try:
            t = torch.as_tensor(t, dtype=ys.dtype, device=ys.device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"`t` must be a tensor of times, got {describe(t)}. Pass sol.ts, a 0-d tensor, or "
                "None for an autonomous system."
            ) from None
    if t.ndim == 0:
        return t.to(dtype=ys.dtype, device=ys.device)
    try:
        return torch.broadcast_to(t.to(dtype=ys.dtype, device=ys.device), ys.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"`t` must broadcast against the points of `ys`, shape {tuple(ys.shape[:-1])} = "
            f"(*batch, T), got shape {tuple(t.shape)}. Pass the trajectory's times (T,) such as "
            "sol.ts, per-member times (*batch, T), a 0-d time, or None for an autonomous system."
        ) from None


def _jvp_jacobian(f: Callable, t: Tensor, y: Tensor, args: Any) -> Tensor:
    """``df/dy`` at every point of ``y (*pts, n)``, shape ``(*pts, n, n)``, from ``n`` JVPs.

    Column ``k`` is the JVP with the tangent ``e_k`` at every point (``f`` acts member-wise), so the
    whole batch goes through ``f`` at once: parameter batches of the system and per-point times
    broadcast exactly as in a plain call. The ``n`` columns are batched with ``vmap`` over the
    tangents only (the primal states are not batched, so data-dependent control flow is fine).
    """
    n = y.shape[-1]
    eye = torch.eye(n, dtype=y.dtype, device=y.device)
    basis = eye.reshape(n, *([1] * (y.ndim - 1)), n).expand(n, *y.shape)  # (n, *pts, n)

    def column(v: Tensor) -> Tensor:  # J v at every point, (*pts, n)
        return torch.func.jvp(lambda x: f(t, x, args), (y,), (v,))[1]

    cols = torch.func.vmap(column)(basis)  # (n, *pts, n): cols[k] = J e_k
    return cols.movedim(0, -1)  # (*pts, n, n): [..., i, k] = J_ik


def _jacobian_along(
    f: Callable, ys: Tensor, t: Tensor | None, args: Any, jacobian: Callable | None
) -> tuple[Tensor, str]:
    """Jacobians ``(*batch, T, n, n)`` at the points of ``ys (*batch, T, n)``, and the path taken.

    The system is evaluated with the points axis moved to the front, ``(T, *batch, n)``, so that
    parameters batched over ``*batch`` (rule 5 of ``ngcdyn.systems``) broadcast against the
    trajectories they belong to.
    """
    y_m = ys.movedim(-2, 0)  # (T, *batch, n)
    if t is None:
        t_m = torch.zeros((), dtype=ys.dtype, device=ys.device)
    else:
        t_m = t if t.ndim == 0 else t.movedim(-1, 0)  # (T, *batch) or 0-d
    if jacobian is not None:
        J, source = jacobian(t_m, y_m, args), "user"
    elif isinstance(f, AbstractVectorField) and f.has_analytic_jacobian:
        J, source = f.jacobian(t_m, y_m, args), "analytic"
    else:
        J, source = _jvp_jacobian(f, t_m, y_m, args), "autodiff"
    n = ys.shape[-1]
    if not isinstance(J, Tensor) or tuple(J.shape) != (*y_m.shape, n):
        got = tuple(J.shape) if isinstance(J, Tensor) else type(J).__name__
        raise ValueError(
            f"The Jacobian ({source}) must have one n x n matrix per point, shape "
            f"{(*y_m.shape, n)} for the states of shape {tuple(y_m.shape)} it was evaluated at "
            f"(points first), got {got}. A `jacobian` callable acts member-wise like f: "
            "jacobian(t, y, args) -> (*y.shape, n). For a system with batched parameters, pass "
            "`ys` whose batch shape contains them."
        )
    J = J.movedim(0, -3)  # (*batch, T, n, n)
    if J.numel() and not bool(torch.isfinite(J).all()):
        bad = (~torch.isfinite(J)).reshape(-1, n * n).any(-1).nonzero().flatten().tolist()
        raise ValueError(
            f"The Jacobian is NaN/inf at the points with flat indices {bad[:10]} of `ys` (shape "
            f"{tuple(ys.shape)}). Check the system there, or drop those points."
        )
    return J, source


# --------------------------------------------------------------------------------------------
# Contraction rate along states
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractionResult:
    """Matrix measures of a Jacobian along states, and the contraction-rate estimate.

    Shapes use ``ys`` of shape ``(*batch, T, n)``: the points axis is the one before last.

    Attributes
    ----------
    measures : (*batch, T)
        ``mu(J)`` at every point.
    rate : (*batch,)
        ``-max_T mu``: positive means contracting at (at least) that rate at the evaluated points.
    argmax : (*batch,) int64
        Index along the points axis where the largest measure (the binding point) was attained.
    worst_state : (*batch, n)
        The state at ``argmax``.
    worst_time : (*batch,) or None
        Its time, when ``t`` was given.
    mean_measure : (*batch,)
        Arithmetic mean of ``measures`` over the points; along a trajectory sampled on a uniform
        time grid this approximates the time average that bounds the largest Lyapunov exponent.
    norm : int or str
        1, 2 or "inf".
    weighted : bool
        Whether a weight ``P`` was used.
    jacobian_source : str
        "analytic", "autodiff" or "user": which Jacobian path was taken.
    """

    measures: Tensor
    rate: Tensor
    argmax: Tensor
    worst_state: Tensor
    worst_time: Tensor | None
    mean_measure: Tensor
    norm: int | str
    weighted: bool
    jacobian_source: str

    @property
    def contracting(self) -> Tensor:
        """``(*batch,)`` bool: ``rate > 0`` (every evaluated measure is negative)."""
        return self.rate > 0


def contraction_rate(
    f: Callable,
    ys: Tensor,
    *,
    t: Tensor | float | None = None,
    args: Any = None,
    norm: Norm = 2,
    P: Tensor | None = None,
    jacobian: Callable | None = None,
) -> ContractionResult:
    r"""Contraction-rate estimate ``-max mu(J)`` from the Jacobian along states.

    Evaluates ``J = df/dy`` at every point of ``ys`` and its matrix measure ``mu`` (see
    :func:`matrix_measure`); the estimate is

    .. math:: c = -\max_{k} \mu\big(J(t_k, y_k)\big).

    If ``mu(J) <= -c`` holds on a convex region that contains the trajectories, any two of them
    approach each other like ``||x(t) - y(t)|| <= e^{-c t} ||x(0) - y(0)||`` [LS98]_. Evaluated at
    finitely many points (a trajectory such as ``sol.ys``, or :func:`sample_region`), ``c`` is an
    *estimate* of that rate (an upper bound on the true rate over any region containing the points);
    a certificate needs a bound over the whole region, like :func:`ngc_contraction_certificate`.
    Along one trajectory, perturbations obey ``||dx(t)|| <= exp(int mu) ||dx(0)||``, hence every
    Lyapunov exponent is ``<= mean_measure`` (time average) ``<= -rate``.

    Parameters
    ----------
    f : callable ``f(t, y, args)`` or AbstractVectorField
        The vector field. An :class:`~ngcdyn.systems.AbstractVectorField` supplies its analytic
        Jacobian when it has one; otherwise the Jacobian is computed by forward-mode autodiff
        (``n`` Jacobian-vector products over all points at once, ``torch.func.jvp``). The system
        is called with the points axis first, states ``(T, *batch, n)``, so parameters batched
        over ``*batch`` broadcast against their own trajectories.
    ys : (*batch, T, n) tensor
        States: trajectories (``sol.ys``) or sampled points (the points axis is the one before last;
        for a single state use ``ys.unsqueeze(-2)``).
    t : tensor, optional
        Times of the points: ``(T,)`` (e.g. ``sol.ts``), ``(*batch, T)``, or 0-d. ``None`` (default)
        evaluates at ``t = 0``, right for autonomous systems.
    args : any, optional
        Passed to ``f`` (and ``jacobian``).
    norm : {2, 1, "inf"}, default 2
        Norm of the measure.
    P : (n, n) tensor, optional
        Constant invertible metric: the norm is ``||P x||``. It broadcasts against the Jacobians
        ``(*batch, T, n, n)``; one metric per trajectory is ``(*batch, 1, n, n)``.
    jacobian : callable ``jacobian(t, y, args) -> (*y.shape, n)``, optional
        A user Jacobian, used instead of the system's or autodiff; member-wise like ``f`` (it is
        called once with all points, ``y`` of shape ``(T, *batch, n)``).

    Returns
    -------
    ContractionResult
        ``measures (*batch, T)``, ``rate (*batch,)``, ``argmax``, ``worst_state``, ``worst_time``,
        ``mean_measure`` and the path taken.

    Raises
    ------
    TypeError
        If ``f`` is not callable or ``ys`` is not a floating tensor.
    ValueError
        If ``ys`` has fewer than 2 dimensions or non-finite entries (the members are named), ``t``
        does not broadcast, the Jacobian has the wrong shape or is non-finite, or ``norm``/``P``
        is invalid.

    References
    ----------
    .. [LS98] W. Lohmiller, J.-J. E. Slotine, "On contraction analysis for non-linear systems",
       Automatica 34(6), 1998.

    See Also
    --------
    matrix_measure, sample_region, ngc_contraction_certificate

    Examples
    --------
    Symmetric linear system: the Euclidean rate is ``-lambda_max(A)`` everywhere.

    >>> import torch
    >>> from ngcdyn.analysis import contraction_rate
    >>> A = torch.tensor([[-2.0, 0.5], [0.5, -3.0]], dtype=torch.float64)
    >>> f = lambda t, y, args: y @ A.T
    >>> ys = torch.randn(4, 10, 2, dtype=torch.float64)  # 4 "trajectories" of 10 points
    >>> res = contraction_rate(f, ys)
    >>> res.rate.shape, res.measures.shape
    (torch.Size([4]), torch.Size([4, 10]))
    >>> round(float(res.rate[0]), 10) == round(-float(torch.linalg.eigvalsh(A)[-1]), 10)
    True
    """
    if not callable(f):
        raise TypeError(
            "`f` must be a vector field f(t, y, args) (a callable or an AbstractVectorField), got "
            f"{type(f).__name__}."
        )
    if jacobian is not None and not callable(jacobian):
        raise TypeError(
            "`jacobian` must be a callable jacobian(t, ys, args) -> (*batch, T, n, n) or None, "
            f"got {type(jacobian).__name__}."
        )
    dim = f.dim if isinstance(f, AbstractVectorField) else None
    ys = check_state("ys", ys, dim=dim)
    if ys.ndim < 2:
        raise ValueError(
            "`ys` must have shape (*batch, T, n): points along the axis before last, got shape "
            f"{tuple(ys.shape)}. For a single state pass ys.unsqueeze(0)."
        )
    if ys.shape[-2] == 0:
        raise ValueError(
            f"`ys` holds no points (shape {tuple(ys.shape)}, T = 0); pass at least one state per "
            "member."
        )
    which = _check_norm(norm)
    tt = _broadcast_times(t, ys)
    J, source = _jacobian_along(f, ys, tt, args, jacobian)  # (*batch, T, n, n)
    measures = matrix_measure(J, norm=which, P=P)  # (*batch, T)
    if measures.shape != ys.shape[:-1]:
        # A batched P broadcast the batch further; the states are shared along the new dimensions.
        ys = ys.expand(*measures.shape, ys.shape[-1])
    worst, argmax = measures.max(dim=-1)  # (*batch,)
    idx = argmax[..., None, None].expand(*argmax.shape, 1, ys.shape[-1])
    worst_state = ys.gather(-2, idx).squeeze(-2)  # (*batch, n)
    worst_time = None
    if tt is not None:
        tpts = tt.expand(measures.shape) if tt.ndim == 0 else torch.broadcast_to(tt, measures.shape)
        worst_time = tpts.gather(-1, argmax[..., None]).squeeze(-1)
    return ContractionResult(
        measures=measures,
        rate=-worst,
        argmax=argmax,
        worst_state=worst_state,
        worst_time=worst_time,
        mean_measure=measures.mean(dim=-1),
        norm=which,
        weighted=P is not None,
        jacobian_source=source,
    )


# --------------------------------------------------------------------------------------------
# Sampled regions
# --------------------------------------------------------------------------------------------


def sample_region(
    n_samples: int,
    *,
    low: Tensor | None = None,
    high: Tensor | None = None,
    center: Tensor | None = None,
    radius: Tensor | float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Uniform samples in a box ``[low, high]`` or a Euclidean ball ``||x - center||_2 <= radius``.

    Box: ``x = low + (high - low) * U`` with ``U ~ Uniform[0, 1)^n``. Ball: ``x = center + radius
    * V^{1/n} z / ||z||`` with ``z ~ N(0, I_n)`` and ``V ~ Uniform[0, 1)``; the radial law
    ``P(||x - c|| <= s R) = s^n`` makes the density uniform in volume (Muller 1959).

    Parameters
    ----------
    n_samples : int
        Points per region (>= 1).
    low, high : (*batch, n) tensors
        Corners of a box (``low < high`` entry-wise). Give both, or neither.
    center : (*batch, n) tensor
        Centre of a ball.
    radius : float or (*batch,) tensor
        Its radius (> 0).
    generator : torch.Generator, optional
        For reproducible draws (on the tensors' device).

    Returns
    -------
    (*batch, n_samples, n) tensor
        Ready for :func:`contraction_rate` (the points axis is the one before last). dtype and
        device follow ``low`` / ``center``.

    Raises
    ------
    ValueError
        If neither or both regions are given, ``low >= high`` somewhere, ``radius <= 0``, shapes do
        not match or ``n_samples < 1``.
    TypeError
        If the tensors are not floating point or ``n_samples`` is not an integer.

    References
    ----------
    M. E. Muller, "A note on a method for generating points uniformly on n-dimensional spheres",
    Comm. ACM 2(4):19–20, 1959.

    See Also
    --------
    contraction_rate

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.analysis import sample_region
    >>> g = torch.Generator().manual_seed(0)
    >>> x = sample_region(100, center=torch.zeros(3, dtype=torch.float64), radius=2.0, generator=g)
    >>> x.shape, bool((x.norm(dim=-1) <= 2.0).all())
    (torch.Size([100, 3]), True)
    >>> b = sample_region(5, low=-torch.ones(2, 2), high=torch.ones(2, 2), generator=g)
    >>> b.shape
    torch.Size([2, 5, 2])
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int):
        raise TypeError(f"`n_samples` must be an integer >= 1, got {describe(n_samples)}.")
    if n_samples < 1:
        raise ValueError(f"`n_samples` must be an integer >= 1, got {n_samples}.")
    box = low is not None or high is not None
    ball = center is not None or radius is not None
    if box == ball:
        raise ValueError(
            "Give exactly one region: a box with `low` and `high`, or a ball with `center` and "
            f"`radius`; got low={'set' if low is not None else None}, "
            f"high={'set' if high is not None else None}, "
            f"center={'set' if center is not None else None}, radius={radius!r}."
        )
    if box:
        if low is None or high is None:
            raise ValueError("A box needs both `low` and `high` (tensors of shape (*batch, n)).")
        low = check_state("low", low)
        high = check_state("high", high)
        check_same_device_dtype("low", low, high=high)
        try:
            shape = torch.broadcast_shapes(low.shape, high.shape)
        except RuntimeError:
            raise ValueError(
                f"`low` {tuple(low.shape)} and `high` {tuple(high.shape)} must have broadcastable "
                "shapes (*batch, n)."
            ) from None
        if not bool((high > low).all()):
            raise ValueError(
                "`high` must be > `low` entry-wise (a box with positive volume), got "
                f"low={describe(low)}, high={describe(high)}. Swap them or widen the box."
            )
        u = torch.rand(
            (*shape[:-1], n_samples, shape[-1]),
            dtype=low.dtype,
            device=low.device,
            generator=generator,
        )
        return low.unsqueeze(-2) + (high - low).unsqueeze(-2) * u  # (*batch, n_samples, n)
    if center is None or radius is None:
        raise ValueError("A ball needs both `center` (shape (*batch, n)) and `radius` (> 0).")
    center = check_state("center", center)
    if isinstance(radius, Tensor):
        radius = radius.to(dtype=center.dtype, device=center.device)
        if not bool(torch.isfinite(radius).all() & (radius > 0).all()):
            raise ValueError(f"`radius` must be finite and > 0, got {describe(radius)}.")
    else:
        radius = torch.as_tensor(
            check_positive("radius", radius), dtype=center.dtype, device=center.device
        )
    n = center.shape[-1]
    try:
        batch = torch.broadcast_shapes(center.shape[:-1], radius.shape)
    except RuntimeError:
        raise ValueError(
            f"`radius` of shape {tuple(radius.shape)} must broadcast against the batch shape "
            f"{tuple(center.shape[:-1])} of `center`."
        ) from None
    like = dict(dtype=center.dtype, device=center.device, generator=generator)
    z = torch.randn((*batch, n_samples, n), **like)
    v = torch.rand((*batch, n_samples, 1), **like)
    direction = z / z.norm(dim=-1, keepdim=True)  # (*batch, n_samples, n), on the unit sphere
    r = radius[..., None, None] * v ** (1.0 / n)  # (*batch, n_samples, 1)
    return center.unsqueeze(-2) + r * direction


# --------------------------------------------------------------------------------------------
# The NGC certificate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractionCertificate:
    """A Euclidean contraction certificate: a bound on ``mu_2(J)`` valid at every state.

    Attributes
    ----------
    bound : (*pbatch,)
        ``b`` with ``mu_2(J(t, x)) <= b`` for all states ``x`` (at the certified time for
        time-dependent systems).
    rate : (*pbatch,)
        The certified rate ``-b``: positive means contracting at least at this rate.
    certified : (*pbatch,) bool
        ``b < 0``.
    coupling_norm : (*pbatch,)
        The norm entering the bound (for NGC: ``||diag(1/tau) W||_2``).
    dim : int
        State size ``n`` (sets the rounding allowance of :meth:`holds_on`).
    source : str
        Where the bound comes from.
    """

    bound: Tensor
    rate: Tensor
    certified: Tensor
    coupling_norm: Tensor
    dim: int
    source: str

    def holds_on(self, measured: ContractionResult, *, atol: float | None = None) -> Tensor:
        """Check the certificate against measured Euclidean measures: ``max mu_2 <= bound``.

        Equivalently ``certified rate <= measured rate``. Must hold for every trajectory and every
        sampled state, since the bound holds at every state.

        Parameters
        ----------
        measured : ContractionResult
            From :func:`contraction_rate` with ``norm=2`` and no weight, on the same system.
        atol : float, optional
            Rounding allowance; default ``64 n eps (1 + |bound| + coupling_norm)`` (an eigenvalue
            of an ``n x n`` symmetric matrix is computed to about ``n eps ||J||``).

        Returns
        -------
        (broadcast batch,) bool tensor

        Raises
        ------
        ValueError
            If ``measured`` used another norm or a weight.
        """
        if measured.norm != 2 or measured.weighted:
            raise ValueError(
                "`measured` must hold unweighted Euclidean measures (contraction_rate(..., "
                f"norm=2, P=None)), got norm={measured.norm!r}, weighted={measured.weighted}. The "
                "NGC certificate bounds mu_2 only."
            )
        if atol is None:
            eps = torch.finfo(self.bound.dtype).eps
            atol_t = 64 * self.dim * eps * (1 + self.bound.abs() + self.coupling_norm)
        else:
            atol_t = torch.as_tensor(check_positive("atol", atol), dtype=self.bound.dtype,
                                     device=self.bound.device)
        return -measured.rate <= self.bound + atol_t


def ngc_contraction_certificate(
    system: Any, *, t: Tensor | float | None = None
) -> ContractionCertificate:
    r"""The Euclidean contraction certificate of an NGC system, from its structural bound.

    For ``tau_g dx_g/dt = -x_g + A_g sum_h C_gh B_h^T phi(x_h) + u_g`` with ``|phi'| <= gamma``, the
    Jacobian is ``J = diag(1/tau)(-I + W diag(phi'(x)))``, ``W = A C B^T``, and at every state

    .. math:: \mu_2(J) \le -\frac{1}{\tau_{\max}} + \gamma\,\|\mathrm{diag}(1/\tau)\, W\|_2 ,

    (with one ``tau``: ``(-1 + gamma ||W||_2)/tau``), computed by
    :meth:`~ngcdyn.systems.NGCSystem.contraction_bound` without forming ``W``. A negative bound
    certifies contraction at rate ``-bound`` in the Euclidean norm for every input ``u`` [LS98]_;
    by ``theory/12_contraction.md`` every Lyapunov exponent (and every conditional exponent under
    any drive) is then ``<= -rate``.

    Parameters
    ----------
    system : NGCSystem
        The system (its gain must declare ``derivative_bound``).
    t : float or tensor, optional
        Time at which time-dependent states are frozen (required for those).

    Returns
    -------
    ContractionCertificate
        ``bound``, ``rate = -bound``, ``certified``, ``coupling_norm``, each ``(*pbatch,)``; check
        it against measurements with :meth:`ContractionCertificate.holds_on`.

    Raises
    ------
    TypeError
        If ``system`` is not an :class:`~ngcdyn.systems.NGCSystem`.
    ValueError
        From the system: a gain without ``derivative_bound``; time-dependent states without ``t``.

    References
    ----------
    .. [LS98] W. Lohmiller, J.-J. E. Slotine, Automatica 34(6), 1998. The bound's derivation:
       ``theory/04_contraction_bound.md``.

    See also
    --------
    contraction_rate, ngcdyn.systems.NGCSystem.contraction_bound

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.systems import NGCSystem
    >>> from ngcdyn.analysis import contraction_rate, ngc_contraction_certificate
    >>> g = torch.Generator().manual_seed(0)
    >>> sys = NGCSystem.random(4, 8, 2, gain=0.3, generator=g, dtype=torch.float64)
    >>> cert = ngc_contraction_certificate(sys)
    >>> bool(cert.certified), bool(cert.rate > 0)
    (True, True)
    >>> xs = torch.randn(100, 32, generator=g, dtype=torch.float64) * 3  # 100 states
    >>> bool(cert.holds_on(contraction_rate(sys, xs)))  # certified rate <= measured rate
    True
    """
    if not isinstance(system, NGCSystem):
        raise TypeError(
            "`system` must be an ngcdyn.systems.NGCSystem (the certificate uses its structural "
            f"bound), got {type(system).__name__}. For other systems estimate the rate with "
            "contraction_rate(f, sample_region(...))."
        )
    res = system.contraction_bound(t)
    return ContractionCertificate(
        bound=res.bound,
        rate=-res.bound,
        certified=res.certified,
        coupling_norm=res.coupling_norm,
        dim=int(system.dim),
        source=(
            f"NGCSystem.contraction_bound (gamma = sup|phi'| = {system.phi.derivative_bound}; "
            "theory/04_contraction_bound.md)"
        ),
    )
