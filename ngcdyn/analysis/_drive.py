"""The drive (potential): split a vector field into an autonomous part and an external drive.

ngcdyn's reading of the source paper's claim that reasoning is "an external driving force or
potential that pushes the dynamics away from trivial trajectories while stability is preserved"
(DESIGN.md section 2). **The split, the departure and the verdict below are ngcdyn's definitions,
not formulas of the paper** (whose body we do not have); both measures are pluggable.

- Split: ``dx/dt = f(t, x) = f0(t, x) + d(t, x)`` (:class:`DrivenSystem`).
- Departure ("away from trivial trajectories"): ``D(t) = ||x_driven(t) - x_undriven(t)||`` for
  trajectories from the same initial state, and its time average.
- Stability ("while preserving stability"): the conditional Lyapunov exponent of the driven
  trajectory (:func:`~ngcdyn.analysis.conditional_lyapunov`) is negative.

Derivations for linear systems and the tests that check them: ``theory/13_drive.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from .._validation import check_state, describe
from ..solvers import AbstractSolver
from ..systems import AbstractVectorField, GroundTruth
from ._conditional import conditional_lyapunov
from ._lyapunov import LyapunovResult

__all__ = [
    "DrivenSystem",
    "DriveResult",
    "drive_departure",
    "euclidean_departure",
    "conditional_exponent",
]

_MODES = ("split", "baseline", "pair")


class DrivenSystem(AbstractVectorField):
    r"""A vector field split into an autonomous part and an external drive.

    .. math:: \dot x = f(t, x) = f_0(t, x) + d(t, x)

    ``f0`` is the *undriven* system (the "trivial" dynamics) and ``d`` the *drive* (ngcdyn's
    reading of the paper's external force or potential; ngcdyn's definition, not the paper's).
    The object is itself a vector field (the driven one) that every ngcdyn solver and analysis
    accepts; :attr:`undriven` is the undriven field and :meth:`drive_term` evaluates ``d``.

    Three ways to build one:

    - ``DrivenSystem(f0, drive)``: the split given explicitly, ``f = f0 + drive``;
    - ``DrivenSystem.from_baseline(f, baseline)``: a full ``f(t, x, args)`` that receives its input
      through ``args``; the undriven system is ``f(t, x, baseline)`` (e.g. a zero input);
    - ``DrivenSystem.from_pair(driven, undriven)``: two full vector fields (e.g. an
      :class:`~ngcdyn.systems.NGCSystem` with and without its ``drive``, or a token's dynamics
      with and without its context); ``d = driven - undriven``.

    Parameters
    ----------
    f0 : callable ``f0(t, x, args)``
        The undriven vector field, ``x (*batch, n) -> (*batch, n)``.
    drive : callable ``drive(t, x, args)``
        The drive ``d``, same shapes (it may ignore ``x``: an additive input ``u(t)``).
    dim : int, optional
        State size ``n``; taken from ``f0`` (or ``f``/``driven``) when it is an
        :class:`~ngcdyn.systems.AbstractVectorField`.

    Attributes
    ----------
    dim : int or None
    mode : str
        ``"split"``, ``"baseline"`` or ``"pair"``: how it was built.
    undriven : AbstractVectorField
        The undriven vector field ``f0(t, x, args)``.

    Raises
    ------
    TypeError
        If a part is not callable.

    References
    ----------
    Pei, Huang & Wang, arXiv:2510.16851 (2025): the claim this formalises (the formalisation is
    ngcdyn's); ``theory/13_drive.md``.

    See also
    --------
    drive_departure : departure and stability verdict of a driven system.

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.analysis import DrivenSystem
    >>> A = torch.tensor([[-1.0]], dtype=torch.float64)
    >>> sys = DrivenSystem(lambda t, x, a: x @ A.T, lambda t, x, a: torch.ones_like(x))
    >>> x = torch.tensor([[2.0]], dtype=torch.float64)
    >>> float(sys(0.0, x)), float(sys.undriven(0.0, x)), float(sys.drive_term(0.0, x))
    (-1.0, -2.0, 1.0)
    >>> lin = DrivenSystem.from_baseline(lambda t, x, u: -x + u, baseline=0.0)
    >>> float(lin(0.0, x, 5.0)), float(lin.undriven(0.0, x, 5.0))  # input 5 vs. the baseline 0
    (3.0, -2.0)
    """

    def __init__(self, f0: Callable, drive: Callable, *, dim: int | None = None) -> None:
        _check_callable("f0", f0, "the undriven vector field f0(t, x, args)")
        _check_callable("drive", drive, "the drive d(t, x, args)")
        self._set(
            mode="split", driven=None, undriven=f0, drive=drive, baseline=None, dim=dim, ref=f0
        )

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_baseline(cls, f: Callable, baseline: Any, *, dim: int | None = None) -> "DrivenSystem":
        """A full ``f(t, x, args)`` whose ``args`` is the input; undriven means ``args = baseline``.

        ``f0(t, x) = f(t, x, baseline)`` and ``d(t, x, args) = f(t, x, args) - f(t, x, baseline)``.

        Parameters
        ----------
        f : callable ``f(t, x, args)``
            The full driven vector field; the input travels in ``args``.
        baseline : any
            The ``args`` value meaning "undriven" (e.g. zero input, an empty context).
        dim : int, optional
            State size (from ``f`` if it is an AbstractVectorField).

        Returns
        -------
        DrivenSystem
        """
        _check_callable("f", f, "the full vector field f(t, x, args)")
        obj = cls.__new__(cls)
        obj._set(
            mode="baseline", driven=f, undriven=None, drive=None, baseline=baseline, dim=dim, ref=f
        )
        return obj

    @classmethod
    def from_pair(
        cls, driven: Callable, undriven: Callable, *, dim: int | None = None
    ) -> "DrivenSystem":
        """Two full vector fields, driven and undriven; ``d = driven - undriven``.

        Parameters
        ----------
        driven, undriven : callables ``f(t, x, args)``
            Both receive the same ``args``.
        dim : int, optional
            State size (from ``driven`` if it is an AbstractVectorField).

        Returns
        -------
        DrivenSystem
        """
        _check_callable("driven", driven, "the driven vector field f(t, x, args)")
        _check_callable("undriven", undriven, "the undriven vector field f0(t, x, args)")
        obj = cls.__new__(cls)
        obj._set(
            mode="pair", driven=driven, undriven=undriven, drive=None, baseline=None, dim=dim,
            ref=driven,
        )
        return obj

    def _set(self, *, mode, driven, undriven, drive, baseline, dim, ref) -> None:
        self.mode = mode
        self._driven = driven
        self._undriven_fn = undriven
        self._drive = drive
        self._baseline = baseline
        if dim is None and isinstance(ref, AbstractVectorField):
            dim = ref.dim
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ValueError(
                f"`dim` must be a positive integer (the state size n) or None, got {dim!r}."
            )
        self.dim = dim  # type: ignore[assignment]
        self.ground_truth = GroundTruth(reference="ngcdyn theory/13_drive.md (drive split)")
        self.undriven = _Undriven(self)

    # ------------------------------------------------------------------ evaluation

    def _call_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        if self.mode == "split":
            return self._undriven_fn(t, y, args) + self._drive(t, y, args)
        return self._driven(t, y, args)

    def _undriven_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        if self.mode == "baseline":
            return self._driven(t, y, self._baseline)
        return self._undriven_fn(t, y, args)

    def drive_term(self, t: Tensor | float, y: Tensor, args: Any = None) -> Tensor:
        """The drive ``d(t, x, args) = f(t, x, args) - f0(t, x, args)``, shape ``(*batch, n)``."""
        if not isinstance(t, Tensor):
            t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        if self.mode == "split":
            return self._drive(t, y, args)
        return self._call_impl(t, y, args) - self._undriven_impl(t, y, args)

    def __repr__(self) -> str:
        return f"DrivenSystem(mode={self.mode!r}, dim={self.dim})"


class _Undriven(AbstractVectorField):
    """The undriven part ``f0`` of a :class:`DrivenSystem`, as a vector field."""

    def __init__(self, parent: DrivenSystem) -> None:
        self._parent = parent
        self.dim = parent.dim  # type: ignore[assignment]
        self.ground_truth = GroundTruth(reference="undriven part of a DrivenSystem")

    def _call_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        return self._parent._undriven_impl(t, y, args)

    def __repr__(self) -> str:
        return f"{self._parent!r}.undriven"


def _check_callable(name: str, fn: Any, what: str) -> None:
    if not callable(fn):
        raise TypeError(f"`{name}` must be callable ({what}), got {describe(fn)}.")


# --------------------------------------------------------------------------------------------
# Pluggable measures
# --------------------------------------------------------------------------------------------


def euclidean_departure(x_driven: Tensor, x_undriven: Tensor) -> Tensor:
    r"""Default departure measure: ``D(t) = ||x_driven(t) - x_undriven(t)||_2``.

    Parameters
    ----------
    x_driven, x_undriven : (*batch, T, n) tensors
        Trajectories from the same initial state.

    Returns
    -------
    (*batch, T) tensor

    See also
    --------
    drive_departure : where a departure measure is plugged in.

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.analysis import euclidean_departure
    >>> euclidean_departure(torch.tensor([[[3.0, 4.0]]]), torch.zeros(1, 1, 2))
    tensor([[5.]])
    """
    return torch.linalg.vector_norm(x_driven - x_undriven, dim=-1)


def conditional_exponent(
    f: Callable, x0: Tensor, t_eval: Tensor, solver: AbstractSolver, args: Any = None
) -> LyapunovResult:
    r"""Default stability metric: the leading conditional exponent of the driven trajectory.

    Runs :func:`~ngcdyn.analysis.conditional_lyapunov` on the driven field ``f`` (drive included)
    from ``x0`` over ``[t_eval[0], t_eval[-1]]`` with the given solver, no transient, and
    renormalisation interval ``min(1, span / 20)``: the finite-time conditional exponent over the
    same span as the departure. For ``dx/dt = A x + u(t)`` it equals ``max Re eig A`` for any ``u``
    (``theory/13_drive.md``). Pass your own callable to :func:`drive_departure` for other settings,
    e.g. ``lambda f, x0, t, s, a: conditional_lyapunov(..., t_transient=50.0)``.

    Parameters
    ----------
    f : callable ``f(t, x, args)``
        The driven vector field.
    x0 : (*batch, n)
        Initial states.
    t_eval : (T,)
        Increasing times; only the first and last are used.
    solver : AbstractSolver
        The integrator.
    args : any
        Passed to ``f``.

    Returns
    -------
    LyapunovResult
        With ``exponents`` of shape ``(*batch, 1)`` and their ``stderr``.

    References
    ----------
    L. M. Pecora, T. L. Carroll, Phys. Rev. Lett. 64:821, 1990 (conditional exponents).

    See also
    --------
    drive_departure, ngcdyn.analysis.conditional_lyapunov
    """
    t0 = float(t_eval[0])
    span = float(t_eval[-1]) - t0
    dt_renorm = min(1.0, span / 20.0)
    drive_stub = x0.new_zeros(())  # the drive already lives inside f

    def g(t: Tensor, x: Tensor, u: Any, a: Any) -> Tensor:
        return f(t, x, a)

    return conditional_lyapunov(
        g, x0, drive_stub, t_total=span, k=1, dt_renorm=dt_renorm, t0=t0, solver=solver, args=args
    )


# --------------------------------------------------------------------------------------------
# Departure and verdict
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriveResult:
    """Departure of a driven trajectory from the undriven one, and the stability verdict.

    Attributes
    ----------
    ts : (T,)
        The evaluation times.
    driven, undriven : (*batch, T, n)
        The two trajectories (same initial state).
    departure : (*batch, T)
        ``D(t)`` from the departure measure (default ``||x_driven - x_undriven||_2``).
    mean_departure : (*batch,)
        Its time average ``(1/(t_T - t_0)) int D dt`` (trapezoidal rule on ``ts``).
    exponent : (*batch,)
        The stability metric (default: the leading conditional Lyapunov exponent of the driven
        trajectory).
    stderr : (*batch,) or None
        Its standard error, when the metric returned a :class:`~ngcdyn.analysis.LyapunovResult`.
    stability : LyapunovResult or None
        The metric's full result, when it returned one.
    threshold : float
        The departure threshold used.
    departs : (*batch,) bool
        ``mean_departure > threshold``: driven away from the trivial (undriven) trajectory.
    stable : (*batch,) bool
        ``exponent < 0``: perturbations of the driven trajectory decay.
    verdict : (*batch,) bool
        ``departs & stable``: "away from trivial trajectories while preserving stability"
        (ngcdyn's definition).
    """

    ts: Tensor
    driven: Tensor
    undriven: Tensor
    departure: Tensor
    mean_departure: Tensor
    exponent: Tensor
    stderr: Tensor | None
    stability: LyapunovResult | None
    threshold: float
    departs: Tensor
    stable: Tensor
    verdict: Tensor


def drive_departure(
    system: DrivenSystem,
    x0: Tensor,
    t_eval: Tensor,
    solver: AbstractSolver,
    *,
    args: Any = None,
    threshold: float = 0.0,
    departure: Callable[[Tensor, Tensor], Tensor] | None = None,
    stability: Callable[..., Tensor | LyapunovResult] | None = None,
) -> DriveResult:
    r"""Does the drive push the trajectory away from the undriven one while keeping it stable?

    Integrates the driven system ``dx/dt = f0 + d`` and the undriven one ``dx/dt = f0`` from the
    same ``x0`` with ``solver`` and measures (ngcdyn's definitions, not the paper's formulas):

    .. math::

        D(t) = \|x_{\mathrm{driven}}(t) - x_{\mathrm{undriven}}(t)\|, \qquad
        \bar D = \frac{1}{t_T - t_0}\int_{t_0}^{t_T} D(t)\,dt,

    and the leading conditional Lyapunov exponent ``lambda_1`` of the driven trajectory. The
    verdict "away from trivial trajectories while preserving stability" is
    ``D_bar > threshold and lambda_1 < 0``. For ``dx/dt = A x + u(t)``,
    ``x_driven(t) - x_undriven(t) = int_0^t e^{A(t-s)} u(s) ds`` and ``lambda_1 = max Re eig A``
    whatever ``u`` (``theory/13_drive.md``).

    Parameters
    ----------
    system : DrivenSystem
        The split vector field.
    x0 : (*batch, n)
        Common initial state.
    t_eval : (T,) tensor
        Strictly increasing times, ``T >= 2``; ``t_eval[0]`` is the initial time.
    solver : AbstractSolver
        Integrator used for both trajectories (and by the default stability metric), e.g.
        ``ngcdyn.RungeKutta("dopri5", rtol=1e-8, atol=1e-10)``.
    args : any, optional
        Passed to the vector fields.
    threshold : float, default 0.0
        ``departs`` means ``mean_departure > threshold`` (strictly). With the default, any
        non-zero departure counts; set it to the scale that matters for your system.
    departure : callable ``departure(x_driven, x_undriven) -> (*batch, T)``, optional
        The departure measure; default :func:`euclidean_departure`.
    stability : callable ``stability(f, x0, t_eval, solver, args)``, optional
        The stability metric of the driven field ``f``; returns a ``(*batch,)`` tensor, or a
        :class:`~ngcdyn.analysis.LyapunovResult` whose leading exponent (and its ``stderr``) is
        used. Default :func:`conditional_exponent`.

    Returns
    -------
    DriveResult

    Raises
    ------
    TypeError
        If ``system`` is not a :class:`DrivenSystem`, ``solver`` not an AbstractSolver, or a
        measure is not callable.
    ValueError
        Bad ``x0``/``t_eval``/``threshold``, or a measure returning the wrong shape.
    ngcdyn.solvers.SolveError
        If a trajectory fails (the failed members are named).

    References
    ----------
    Pecora & Carroll, Phys. Rev. Lett. 64:821 (1990), conditional exponents; Jaeger, GMD Report
    148 (2001), echo-state property.

    See also
    --------
    DrivenSystem, euclidean_departure, conditional_exponent, ngcdyn.analysis.conditional_lyapunov

    Examples
    --------
    ``dx/dt = -x + 1`` against ``dx/dt = -x`` from 0: ``D(t) = 1 - e^{-t}``, ``lambda_1 = -1``.

    >>> import torch
    >>> from ngcdyn.analysis import DrivenSystem, drive_departure
    >>> from ngcdyn.solvers import RungeKutta
    >>> sys = DrivenSystem(lambda t, x, a: -x, lambda t, x, a: torch.ones_like(x))
    >>> ts = torch.linspace(0.0, 4.0, 41, dtype=torch.float64)
    >>> res = drive_departure(sys, torch.zeros(1, dtype=torch.float64), ts,
    ...                       RungeKutta("dopri5", rtol=1e-10, atol=1e-12))
    >>> round(float(res.departure[-1]), 6), round(1 - float(torch.exp(torch.tensor(-4.0))), 6)
    (0.981684, 0.981684)
    >>> round(float(res.exponent), 3), bool(res.verdict)
    (-1.0, True)
    """
    if not isinstance(system, DrivenSystem):
        raise TypeError(
            f"`system` must be a DrivenSystem (the split f = f0 + d), got {type(system).__name__}. "
            "Build one with DrivenSystem(f0, drive), DrivenSystem.from_baseline(f, baseline) or "
            "DrivenSystem.from_pair(driven, undriven)."
        )
    if not isinstance(solver, AbstractSolver):
        raise TypeError(
            "`solver` must be an ngcdyn solver object (AbstractSolver), got "
            f"{type(solver).__name__}. Pass e.g. ngcdyn.RungeKutta('dopri5', rtol=1e-8, "
            "atol=1e-10)."
        )
    if departure is None:
        departure = euclidean_departure
    if stability is None:
        stability = conditional_exponent
    _check_callable("departure", departure, "departure(x_driven, x_undriven) -> (*batch, T)")
    _check_callable("stability", stability, "stability(f, x0, t_eval, solver, args)")
    x0 = check_state("x0", x0, dim=system.dim)
    ts = _check_t_eval(t_eval, x0)
    thr = _check_threshold(threshold)
    batch = x0.shape[:-1]

    sol_d = solver.solve(system, x0, ts, args=args)
    sol_u = solver.solve(system.undriven, x0, ts, args=args)
    xd, xu = sol_d.ys, sol_u.ys  # (*batch, T, n) each

    D = departure(xd, xu)
    T = ts.shape[0]
    if not isinstance(D, Tensor) or tuple(D.shape) != (*xd.shape[:-2], T):
        got = tuple(D.shape) if isinstance(D, Tensor) else type(D).__name__
        raise ValueError(
            "`departure` must return one value per batch member and time, shape (*batch, T) = "
            f"{(*xd.shape[:-2], T)}, got {got}. Reduce over the state axis (the last)."
        )
    span = ts[-1] - ts[0]
    mean_D = torch.trapezoid(D, ts, dim=-1) / span  # (*batch,)

    out = stability(system, x0, ts, solver, args)
    stab_result: LyapunovResult | None = None
    stderr: Tensor | None = None
    if isinstance(out, LyapunovResult):
        stab_result = out
        exponent = out.exponents[..., 0]
        stderr = out.stderr[..., 0]
    elif isinstance(out, Tensor):
        exponent = out
    else:
        raise TypeError(
            "`stability` must return a tensor (*batch,) or a LyapunovResult, got "
            f"{type(out).__name__}."
        )
    expected_batch = xd.shape[:-2]
    if tuple(exponent.shape) != tuple(expected_batch):
        raise ValueError(
            f"`stability` must give one exponent per batch member, shape {tuple(expected_batch)}, "
            f"got {tuple(exponent.shape)}. Return the leading exponent only (e.g. "
            "res.exponents[..., 0])."
        )
    if bool(torch.isnan(exponent).any()):
        bad = torch.isnan(exponent).reshape(-1).nonzero().flatten().tolist()
        raise ValueError(
            f"The stability metric is NaN for the batch members at flat indices {bad[:10]} (of "
            f"batch shape {tuple(batch)}); their driven trajectory may diverge. Shorten `t_eval` "
            "or check the system."
        )
    departs = mean_D > thr
    stable = exponent < 0
    return DriveResult(
        ts=ts,
        driven=xd,
        undriven=xu,
        departure=D,
        mean_departure=mean_D,
        exponent=exponent,
        stderr=stderr,
        stability=stab_result,
        threshold=thr,
        departs=departs,
        stable=stable,
        verdict=departs & stable,
    )


def _check_t_eval(t_eval: Any, x0: Tensor) -> Tensor:
    if not isinstance(t_eval, Tensor):
        raise TypeError(
            f"`t_eval` must be a 1-D tensor of increasing times, got {type(t_eval).__name__}. Pass "
            "torch.linspace(t0, t1, T, dtype=x0.dtype)."
        )
    if t_eval.ndim != 1 or t_eval.shape[0] < 2:
        raise ValueError(
            "`t_eval` must be a 1-D tensor of at least 2 increasing times (the departure is "
            f"averaged over [t_eval[0], t_eval[-1]]), got {describe(t_eval)}."
        )
    if t_eval.dtype != x0.dtype or t_eval.device != x0.device:
        raise TypeError(
            f"`t_eval` has dtype {t_eval.dtype} on {t_eval.device} but `x0` has {x0.dtype} on "
            f"{x0.device}; convert with t_eval.to(x0)."
        )
    if not bool(torch.isfinite(t_eval).all()) or not bool((torch.diff(t_eval) > 0).all()):
        raise ValueError(
            f"`t_eval` must be finite and strictly increasing, got {describe(t_eval)}. Sort it and "
            "drop repeated times."
        )
    return t_eval


def _check_threshold(threshold: Any) -> float:
    try:
        thr = float(threshold)
    except (TypeError, ValueError):
        raise TypeError(
            f"`threshold` must be a real number >= 0, got {describe(threshold)}."
        ) from None
    if not (math.isfinite(thr) and thr >= 0):
        raise ValueError(
            f"`threshold` must be finite and >= 0 (a departure level), got {threshold!r}. Use 0.0 "
            "to count any non-zero departure."
        )
    return thr
