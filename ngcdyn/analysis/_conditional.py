"""The conditional (input-driven) Lyapunov exponent: ngcdyn's neuronal stability metric.

For a system driven by an input sequence or signal ``u`` — a map ``x_{t+1} = F(x_t, u_t)``
(tokens of a sequence, or layers in depth) or a flow ``dx/dt = f(t, x, u(t))`` — hold the input
fixed and ask how perturbations of the *state* grow along the driven trajectory:

.. math::

    \\lambda_i(u) = \\lim_{T\\to\\infty} \\frac1T \\log \\sigma_i\\big(
        J(x_{T-1}, u_{T-1}) \\cdots J(x_0, u_0)\\big),
    \\qquad J = \\partial F / \\partial x ,

(for flows the fundamental matrix of ``d(δx)/dt = ∂f/∂x (t, x(t), u(t)) δx``). These are the
*conditional Lyapunov exponents* of a driven (response) system of Pecora & Carroll (1990). A
negative ``λ_1`` means the driven system forgets its initial state: every initial condition
converges to one input-determined trajectory (the echo-state property of Jaeger (2001) /
generalised synchronisation, Kocarev & Parlitz (1996)). ngcdyn uses ``λ_1`` as its reading of the
source paper's "neuronal stability metric" (activations contracting toward stable patterns during
sequence processing). **This definition is ngcdyn's, not a formula from the paper**, whose body we
do not have; see DESIGN.md section 2 and ``theory/11_conditional_exponent.md``.

The estimators reuse the QR machinery of :mod:`ngcdyn.analysis._lyapunov` with the input bound
into the dynamics, so they return the same :class:`LyapunovResult` with the same diagnostics:
``finite_time`` holds the finite-time (per-window) exponents and ``exponents`` the whole-run
(asymptotic) estimate.

References
----------
.. [PC90] L. M. Pecora, T. L. Carroll, "Synchronization in chaotic systems", Phys. Rev. Lett.
   64(8):821–824, 1990.
.. [J01] H. Jaeger, "The 'echo state' approach to analysing and training recurrent neural
   networks", GMD Report 148, 2001.
.. [KP96] L. Kocarev, U. Parlitz, "Generalized synchronization, predictability, and equivalence of
   unidirectionally coupled dynamical systems", Phys. Rev. Lett. 76(11):1816–1819, 1996.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from .._validation import check_nonnegative_int, describe
from ._lyapunov import LyapunovResult, _check_map_counts, _check_real_state, _qr_flow, _qr_map

__all__ = ["conditional_lyapunov", "conditional_lyapunov_map"]


def _input_source(
    inputs: Any, x0: Tensor, n_transient: int, n_steps: Any
) -> tuple[Callable[[int], Any], int, str]:
    """``u(i)`` for step i, the number of measured steps, and a description of the inputs."""
    batch = x0.shape[:-1]
    if isinstance(inputs, Tensor):
        if inputs.ndim < 2:
            raise ValueError(
                f"`inputs` must have shape (T, m) or (*batch, T, m) (one input vector per step), "
                f"got {describe(inputs)}. For scalar inputs use inputs.unsqueeze(-1)."
            )
        if inputs.device != x0.device:
            raise ValueError(
                f"`inputs` is on {inputs.device} but `x0` is on {x0.device}; move it with "
                "inputs.to(x0.device)."
            )
        try:
            torch.broadcast_shapes(inputs.shape[:-2], batch)
        except RuntimeError:
            raise ValueError(
                f"`inputs` batch shape {tuple(inputs.shape[:-2])} does not broadcast against `x0` "
                f"batch shape {tuple(batch)}. Pass (T, m) for inputs shared by all members or "
                f"(*batch, T, m) with *batch = {tuple(batch)}."
            ) from None
        T = inputs.shape[-2]
        avail = T - n_transient
        if n_steps is None:
            if avail < 1:
                raise ValueError(
                    f"`inputs` has T={T} steps, which leaves none after "
                    f"`n_transient`={n_transient}. Pass a longer input sequence or a smaller "
                    "`n_transient`."
                )
            n_steps = avail
        else:
            n_steps = check_nonnegative_int("n_steps", n_steps, minimum=1)
            if n_steps > avail:
                raise ValueError(
                    f"`n_steps`={n_steps} plus `n_transient`={n_transient} exceeds the T={T} steps "
                    "of `inputs`. Pass n_steps=None to use all remaining inputs, or more inputs."
                )
        return (lambda i: inputs[..., i, :]), n_steps, f"tensor{tuple(inputs.shape)}"
    if callable(inputs):
        if n_steps is None:
            raise ValueError(
                "`n_steps` is required when `inputs` is a callable u(i) (the number of measured "
                "steps cannot be read from it). Pass n_steps=..., or a tensor of inputs (T, m)."
            )
        return inputs, n_steps, "callable"
    raise TypeError(
        f"`inputs` must be a tensor (T, m) / (*batch, T, m) or a callable u(i) returning the input "
        f"of step i, got {type(inputs).__name__}."
    )


def conditional_lyapunov_map(
    F: Callable,
    x0: Tensor,
    inputs: Tensor | Callable[[int], Tensor],
    *,
    k: int = 1,
    n_steps: int | None = None,
    n_transient: int = 0,
    renorm_every: int = 1,
    args: Any = None,
    jacobian: Any = None,
    n_blocks: int = 10,
    q0: Tensor | None = None,
    seed: int = 0,
    on_failure: str = "raise",
) -> LyapunovResult:
    """Conditional (input-driven) Lyapunov exponents of a driven map ``x_{t+1} = F(x_t, u_t)``.

    The input sequence is held fixed and the ``k`` leading exponents of the product of state
    Jacobians ``J_t = ∂F/∂x (x_t, u_t)`` along the driven orbit are estimated by QR
    re-orthonormalisation (Benettin et al. 1980; Geist et al. 1990):

    .. math::

        \\lambda_i(u) = \\frac{1}{N} \\sum_j \\log R^{(j)}_{ii},
        \\qquad J_{t+m-1} \\cdots J_t\\, Q_j = Q_{j+1} R^{(j)} .

    ngcdyn's neuronal stability metric is ``λ_1``: negative means the state forgets where it
    started and contracts toward an input-determined pattern (echo-state property). This is
    ngcdyn's definition (the conditional exponents of Pecora & Carroll 1990 applied to input
    sequences), **not a formula of the NGC paper**. For ``x_{t+1} = A x_t + B u_t`` the exponents
    are ``log |eig A|`` whatever the input; in one dimension ``ln |a|`` exactly, at every ``T``
    (``theory/11_conditional_exponent.md``).

    Parameters
    ----------
    F
        The driven map ``F(x, u, args) -> x_next``, ``x (*batch, n)``, ``u`` the input of the step.
    x0 : (*batch, n)
        Initial states.
    inputs : (T, m) or (*batch, T, m) tensor, or callable
        The input sequence; step ``i`` (counting the transient) receives ``inputs[..., i, :]``.
        A callable ``inputs(i)`` returns step ``i``'s input (then ``n_steps`` is required).
        Any dtype (e.g. token ids, if ``F`` embeds them).
    k
        Number of exponents (default 1, the metric).
    n_steps
        Measured steps; default all inputs after the transient.
    n_transient
        Steps run first (consuming the first inputs) and discarded.
    renorm_every
        Steps per window between re-orthonormalisations (default 1); the finite-time exponents
        are per window.
    args
        Passed to ``F``.
    jacobian
        ``None``/``"autodiff"``: JVPs by forward-mode autodiff with the input held fixed; or a
        callable ``jacobian(x, u) -> (*batch, n, n)``.
    n_blocks
        Blocks for the batch-means standard error.

    Other Parameters
    ----------------
    q0, seed, on_failure
        As in :func:`~ngcdyn.analysis.lyapunov_spectrum_map`.

    Returns
    -------
    LyapunovResult
        ``exponents`` (whole run, the asymptotic estimate) and ``stderr`` ``(*batch, k)``;
        ``finite_time`` ``(*batch, N, k)``: the finite-time exponent of every window;
        ``history``: the running estimate.

    Raises
    ------
    ValueError
        ``k > n``; inputs of the wrong shape or too short; a non-square Jacobian.
    DivergenceError
        A driven orbit diverges (with ``on_failure="raise"``).

    References
    ----------
    Pecora & Carroll 1990 [PC90]_; Jaeger 2001 [J01]_; Benettin et al. 1980; Geist, Parlitz &
    Lauterborn 1990.

    See also
    --------
    conditional_lyapunov : the same for driven flows.
    lyapunov_spectrum_map : exponents of an autonomous map.

    Examples
    --------
    ``x_{t+1} = 0.5 x_t + u_t``: the exponent is ln 0.5 = -0.6931 for any input.

    >>> import torch
    >>> from ngcdyn.analysis import conditional_lyapunov_map
    >>> u = torch.randn(200, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> x0 = torch.zeros(1, dtype=torch.float64)
    >>> res = conditional_lyapunov_map(lambda x, u, a: 0.5 * x + u, x0, u)
    >>> round(float(res.exponents), 4)
    -0.6931
    """
    where = "conditional_lyapunov_map"
    x0 = _check_real_state("x0", x0)
    n_transient = check_nonnegative_int("n_transient", n_transient, fix="Use 0 for no transient.")
    u_of, n_steps, desc = _input_source(inputs, x0, n_transient, n_steps)
    n_steps, n_transient, renorm_every = _check_map_counts(n_steps, n_transient, renorm_every)

    if jacobian is None or (isinstance(jacobian, str) and jacobian == "autodiff"):
        jac_label = "autodiff (JVP)"
        user_jac = None
    elif callable(jacobian) and not isinstance(jacobian, str):
        jac_label = "analytic (user callable)"
        user_jac = jacobian
    else:
        raise (ValueError if isinstance(jacobian, str) else TypeError)(
            "`jacobian` must be None or 'autodiff' (Jacobian-vector products by forward-mode "
            f"autodiff) or a callable jacobian(x, u) -> (*batch, n, n); got {jacobian!r}."
        )

    def step_factory(i: int):
        u = u_of(i)
        fn = lambda x: F(x, u, args)  # noqa: E731
        jf = None if user_jac is None else (lambda x: user_jac(x, u))
        return fn, jf

    return _qr_map(
        step_factory, x0, n_steps=n_steps, k=k, n_transient=n_transient, renorm_every=renorm_every,
        n_blocks=n_blocks, q0=q0, seed=seed, on_failure=on_failure, where=where, name="F",
        jac_label=jac_label, stacklevel=4,
        extra_settings={"metric": "conditional (input-driven) Lyapunov exponent", "inputs": desc},
    )


def conditional_lyapunov(
    f: Callable,
    y0: Tensor,
    drive: Tensor | Callable[[Tensor], Tensor],
    *,
    t_total: float,
    k: int = 1,
    dt_renorm: float = 1.0,
    t_transient: float = 0.0,
    solver: Any = None,
    args: Any = None,
    jacobian: Any = None,
    n_blocks: int = 10,
    t0: float = 0.0,
    q0: Tensor | None = None,
    seed: int = 0,
    on_failure: str = "raise",
) -> LyapunovResult:
    """Conditional (input-driven) Lyapunov exponents of a driven flow ``dx/dt = f(t, x, u(t))``.

    The drive ``u(t)`` is a given signal; the exponents are those of the non-autonomous flow
    ``dx/dt = f(t, x, u(t))`` along the driven trajectory, i.e. of the variational equation

    .. math::

        \\frac{d\\,\\delta x}{dt}
        = \\frac{\\partial f}{\\partial x}\\big(t, x(t), u(t)\\big)\\, \\delta x,

    estimated by QR re-orthonormalisation every ``dt_renorm`` (Benettin et al. 1980; Geist et al.
    1990) with the same machinery as :func:`~ngcdyn.analysis.lyapunov_spectrum`. ``λ_1 < 0``: the
    driven system forgets its initial state (ngcdyn's stability metric; **ngcdyn's definition, not
    the NGC paper's formula**; conditional exponents after Pecora & Carroll 1990). For
    ``dx/dt = A x + B u(t)`` the exponents are ``Re eig A`` for any drive.

    Parameters
    ----------
    f
        ``f(t, x, u, args) -> dx/dt`` with ``x (*batch, n)`` and ``u = drive(t)``.
    y0 : (*batch, n)
        Initial states.
    drive : callable or tensor
        ``drive(t) -> u``, a tensor broadcastable as ``f`` needs (``t`` is 0-d or ``(*batch,)``,
        as the solver passes it); a tensor is a constant input.
    t_total, k, dt_renorm, t_transient, solver, args, n_blocks
        As in :func:`~ngcdyn.analysis.lyapunov_spectrum`; ``k`` defaults to 1 (the metric).
    jacobian
        ``None``/``"autodiff"``: JVPs by forward-mode autodiff with the drive held fixed; or a
        callable ``jacobian(t, x, u) -> (*batch, n, n)``.

    Other Parameters
    ----------------
    t0, q0, seed, on_failure
        As in :func:`~ngcdyn.analysis.lyapunov_spectrum`.

    Returns
    -------
    LyapunovResult
        ``exponents``/``stderr`` ``(*batch, k)`` (the asymptotic estimate over the run),
        ``finite_time`` ``(*batch, N, k)`` (per renormalisation interval), ``history``.

    Raises
    ------
    ValueError, TypeError, DivergenceError
        As in :func:`~ngcdyn.analysis.lyapunov_spectrum`; a ``drive`` that is neither callable
        nor a tensor.

    References
    ----------
    Pecora & Carroll 1990 [PC90]_; Kocarev & Parlitz 1996 [KP96]_.

    See also
    --------
    conditional_lyapunov_map : the discrete-time version.
    lyapunov_spectrum : exponents of an autonomous flow.

    Examples
    --------
    ``dx/dt = -x + sin(t)``: the conditional exponent is -1 whatever the drive.

    >>> import torch
    >>> from ngcdyn.analysis import conditional_lyapunov
    >>> res = conditional_lyapunov(lambda t, x, u, a: -x + u, torch.zeros(1, dtype=torch.float64),
    ...                            lambda t: torch.sin(t).unsqueeze(-1), t_total=10.0)
    >>> round(float(res.exponents), 4)
    -1.0
    """
    where = "conditional_lyapunov"
    y0 = _check_real_state("y0", y0)
    if isinstance(drive, Tensor):
        if drive.device != y0.device:
            raise ValueError(
                f"`drive` is on {drive.device} but `y0` is on {y0.device}; move it with "
                "drive.to(y0.device)."
            )
        const = drive
        u_of: Callable[[Tensor], Any] = lambda t: const  # noqa: E731
        desc = f"constant tensor{tuple(drive.shape)}"
    elif callable(drive):
        u_of = drive
        desc = "callable"
    else:
        raise TypeError(
            "`drive` must be a callable drive(t) -> u or a constant tensor, got "
            f"{type(drive).__name__}."
        )

    def g(t: Tensor, y: Tensor, a: Any) -> Tensor:
        return f(t, y, u_of(t), a)

    if jacobian is None or (isinstance(jacobian, str) and jacobian == "autodiff"):
        jac_opt: Any = "autodiff"
    elif callable(jacobian) and not isinstance(jacobian, str):
        jac_opt = lambda t, y: jacobian(t, y, u_of(t))  # noqa: E731
    else:
        raise (ValueError if isinstance(jacobian, str) else TypeError)(
            "`jacobian` must be None or 'autodiff' (Jacobian-vector products by forward-mode "
            f"autodiff) or a callable jacobian(t, x, u) -> (*batch, n, n); got {jacobian!r}."
        )

    return _qr_flow(
        g, y0, t_total=t_total, k=k, dt_renorm=dt_renorm, t_transient=t_transient, solver=solver,
        args=args, jacobian=jac_opt, n_blocks=n_blocks, t0=t0, q0=q0, seed=seed,
        on_failure=on_failure, where=where, stacklevel=4,
        extra_settings={"metric": "conditional (input-driven) Lyapunov exponent", "drive": desc},
    )
