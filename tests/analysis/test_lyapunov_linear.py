"""Lyapunov spectra of linear flows and maps against exact values (issue 3, analytic checks).

Two references are used for every linear system:

1. The *exact finite-time* value of the QR method. For ``dy/dt = A y`` the propagator of one
   renormalisation interval is exactly ``P = expm(A Δ)`` (for ``x <- A x`` with ``m`` iterations
   per window, ``P = A^m``), so running the same QR recursion ``Q_{j+1} R_j = P Q_j`` from the same
   initial frame ``q0`` gives what the estimator must return up to the integration error alone.
   Tolerance, in units of the solver's ``rtol``: the relative error of one adaptive solve over an
   interval is at most ``~rtol``; the smallest ``R_ii`` is smaller than the evolved vectors by up to
   ``exp(spread Δ)`` (``spread = Re μ_1 − Re μ_n``), which amplifies the relative error of its log
   by that factor; dividing by ``Δ`` turns a per-interval log error into a rate error. So
   ``|λ − λ_exact| <= rtol · exp(spread Δ) / Δ`` (measured: below 0.05 of that). When the tangent
   vectors shrink (``Re μ_n < 0``) the absolute tolerance adds ``atol · exp(-Re μ_n Δ)`` to ``rtol``.
2. The asymptotic value, ``Re eig(A)`` (flows) / ``log |eig(A)|`` (maps) (standard; ChaosTools
   tests ``diag(0.1, -0.4)`` and ``diag(1.1, 0.8)``). The finite-time exponents differ from it by
   ``O(1/T)``: with ``A = V Λ V⁻¹`` the ``i``-volume grows like ``exp(S_i T)`` times a factor in
   ``[κ(V)^{-i} c_i, κ(V)^{i}]`` (``S_i`` the sum of the top ``i`` real parts, ``c_i`` the
   alignment of the initial frame, which the transient drives toward 1), so each exponent is off
   by at most about ``(2 i ln κ(V) + |ln c_i|)/T``; we assert ``(2 + 2 n ln κ(V)) / T`` (measured
   over 600 random matrices: at most 1.15 ``(1 + 2 ln κ)/T``).

See ``theory/10_lyapunov_qr.md`` for the derivations.
"""

from __future__ import annotations


import pytest
import torch
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import ngcdyn.solvers as solvers
from ngcdyn.analysis import lyapunov_spectrum, lyapunov_spectrum_map
from ngcdyn.analysis._tangent import qr_positive, random_orthonormal
from ngcdyn.systems import LinearMap, LinearSystem, Lorenz
from ngcdyn.testing import general_matrices, hurwitz_matrices, matrix_batches

RTOL, ATOL = 1e-8, 1e-10
EPS64 = torch.finfo(torch.float64).eps


def _solver() -> solvers.AbstractSolver:
    return solvers.RungeKutta("dopri5", rtol=RTOL, atol=ATOL)


def exact_qr_exponents(P: torch.Tensor, q0: torch.Tensor, n_transient: int, n_measured: int,
                       duration: float) -> torch.Tensor:
    """The QR recursion with the exact one-interval propagator ``P (*b, n, n)``: ``(*b, k)``."""
    Q = q0.expand(*P.shape[:-2], *q0.shape)
    total = torch.zeros(*P.shape[:-2], q0.shape[-1], dtype=P.dtype)
    for j in range(n_transient + n_measured):
        Q, r = qr_positive(P @ Q)
        if j >= n_transient:
            total = total + r.log()
    return total / (n_measured * duration)


def eig_sorted(A: torch.Tensor, log_abs: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(Re eig or log|eig| sorted descending, condition number of the eigenvector matrix)."""
    ev, V = torch.linalg.eig(A)
    vals = ev.abs().log() if log_abs else ev.real
    return vals.sort(dim=-1, descending=True).values, torch.linalg.cond(V)


def integration_unit(re: torch.Tensor, dt: float) -> torch.Tensor:
    """rtol·exp(spread Δ)/Δ, with atol·exp(-Re μ_n Δ) added to rtol when the tangent vectors
    shrink (an absolute error atol on a vector of size exp(Re μ_n Δ)): reference 1's tolerance."""
    shrink = torch.exp((-re[..., -1] * dt).clamp(min=0.0))
    return (RTOL + ATOL * shrink) * torch.exp((re[..., 0] - re[..., -1]) * dt) / dt


def asymptotic_bound(kappa: torch.Tensor, n: int, T: float) -> torch.Tensor:
    """(2 + 2 n ln κ(V)) / T: the finite-time bias bound of reference 2 (module docstring)."""
    return (2 + 2 * n * torch.log(kappa.clamp(min=1.0))) / T


# --------------------------------------------------------------------------------------------
# Flows
# --------------------------------------------------------------------------------------------

DT, T_TRANSIENT, T_TOTAL = 0.5, 5.0, 20.0


def _check_linear_flow(A: torch.Tensor, k: int, jacobian) -> None:
    B, n = A.shape[0], A.shape[-1]
    q0 = random_orthonormal(n, k, seed=3, dtype=A.dtype, device=A.device)
    y0 = torch.ones(B, n)
    res = lyapunov_spectrum(LinearSystem(A), y0, t_total=T_TOTAL, dt_renorm=DT,
                            t_transient=T_TRANSIENT, q0=q0, solver=_solver(), jacobian=jacobian,
                            n_blocks=4)
    assert res.exponents.shape == (B, k)
    re, kappa = eig_sorted(A)
    # Reference 1: the exact QR recursion with expm(A Δ); 10 transient + 40 measured intervals.
    exact = exact_qr_exponents(torch.linalg.matrix_exp(A * DT), q0, int(T_TRANSIENT / DT),
                               int(T_TOTAL / DT), DT)
    unit = integration_unit(re, DT)  # (B,)
    err = (res.exponents - exact).abs() / unit.unsqueeze(-1)
    assert err.max() <= 1.0, (err, res.exponents, exact)
    # Reference 2: Re eig(A), within the O(1/T) bias bound.
    bound = asymptotic_bound(kappa, n, T_TOTAL).unsqueeze(-1)
    assert ((res.exponents - re[:, :k]).abs() / bound).max() <= 1.0, (res.exponents, re)
    if k == n:
        # Liouville: log det of the exact propagator is tr(A) Δ per interval, so the full
        # spectrum sums to tr(A) at every finite T; error as in reference 1, n exponents.
        trace = A.diagonal(dim1=-2, dim2=-1).sum(-1)
        assert ((res.exponents.sum(-1) - trace).abs() / (n * unit)).max() <= 1.0


@pytest.mark.parametrize("family", ["hurwitz", "general"])
@settings(max_examples=6)  # each example integrates 3 systems for 25 time units (~1.5 s)
@given(data=st.data())
def test_linear_flow_analytic_jacobian(family, data):
    kind = hurwitz_matrices if family == "hurwitz" else general_matrices
    A = data.draw(matrix_batches(kind, n=st.integers(1, 4), batch=3, bound=1.0), label="A")
    k = data.draw(st.integers(1, A.shape[-1]), label="k")
    _check_linear_flow(A, k, jacobian=None)  # LinearSystem declares an analytic Jacobian


@pytest.mark.parametrize("family", ["hurwitz", "general"])
@settings(max_examples=2)  # the JVP path costs ~1 ms per evaluation on this CPU build
@given(data=st.data())
def test_linear_flow_autodiff_jacobian(family, data):
    kind = hurwitz_matrices if family == "hurwitz" else general_matrices
    A = data.draw(matrix_batches(kind, n=st.integers(1, 3), batch=2, bound=1.0), label="A")
    k = data.draw(st.integers(1, A.shape[-1]), label="k")
    _check_linear_flow(A, k, jacobian="autodiff")


def test_diagonal_flow_chaostools_case():
    """ChaosTools' case diag(0.1, -0.4): exponents (0.1, -0.4) (Re eig of a diagonal matrix).

    After the transient the frame is aligned with the eigenvectors to within exp(-0.5 · 10), so
    the remaining bias is ln(1 + e^{-5}) / T < 1e-3 / 20; tolerance 1e-3 relative as in ChaosTools.
    """
    A = torch.diag(torch.tensor([0.1, -0.4]))
    res = lyapunov_spectrum(LinearSystem(A), torch.ones(2), t_total=T_TOTAL, t_transient=10.0,
                            solver=_solver())
    expected = torch.tensor([0.1, -0.4])
    assert torch.allclose(res.exponents, expected, rtol=1e-3, atol=0)


def test_batched_equals_single_flow():
    """Each batch member is an independent system: batched == one-by-one, within the solver error.

    Both are within rtol·exp(spread Δ)/Δ of the exact value (reference 1), so they differ by at
    most twice that.
    """
    A = torch.tensor([[[-1.0, 2.0], [0.0, -3.0]], [[0.2, 1.0], [-1.0, 0.2]], [[0.5, 0.0], [1.0, -0.5]]])
    y0 = torch.tensor([[1.0, 0.5], [0.3, -1.0], [2.0, 1.0]])
    batched = lyapunov_spectrum(LinearSystem(A), y0, t_total=10.0, dt_renorm=DT, solver=_solver())
    re, _ = eig_sorted(A)
    unit = integration_unit(re, DT)
    for b in range(3):
        single = lyapunov_spectrum(LinearSystem(A[b]), y0[b], t_total=10.0, dt_renorm=DT,
                                   solver=_solver())
        assert single.exponents.shape == (2,)
        assert ((batched.exponents[b] - single.exponents).abs() / (2 * unit[b])).max() <= 1.0
        assert torch.allclose(batched.history[b], single.history, rtol=0, atol=float(2 * unit[b]))


def test_partial_equals_leading_part_of_full():
    """The first k columns of a QR factorisation do not depend on the later columns, so with the
    same first k initial vectors the partial spectrum equals the first k exponents of the full one
    (up to the solver error, which differs only through the step-size control)."""
    A = torch.tensor([[-0.5, 1.0, 0.0], [-1.0, -0.5, 0.3], [0.0, 0.2, -2.0]])
    q0 = random_orthonormal(3, 3, seed=1, dtype=A.dtype, device=A.device)
    full = lyapunov_spectrum(LinearSystem(A), torch.ones(3), t_total=10.0, dt_renorm=DT, q0=q0,
                             solver=_solver())
    part = lyapunov_spectrum(LinearSystem(A), torch.ones(3), t_total=10.0, dt_renorm=DT,
                             q0=q0[:, :2], solver=_solver())
    re, _ = eig_sorted(A)
    unit = float(integration_unit(re, DT))
    assert ((full.exponents[:2] - part.exponents).abs() / (2 * unit)).max() <= 1.0


def test_autodiff_equals_analytic_on_lorenz():
    """Lorenz: the JVP path, a user callable and the system's analytic Jacobian compute the same
    J·Q (to rounding), so the three estimates agree within twice the solver error of
    reference 1 with Sprott's spectrum (0.9056, 0, -14.5723) as the rates."""
    sys = Lorenz()
    y0 = torch.tensor([1.0, 1.0, 20.0])
    kw = dict(t_total=0.5, dt_renorm=0.25, solver=_solver(), n_blocks=2)
    res_sys = lyapunov_spectrum(sys, y0, **kw)
    res_ad = lyapunov_spectrum(sys, y0, jacobian="autodiff", **kw)
    res_user = lyapunov_spectrum(sys, y0, jacobian=lambda t, y: sys.jacobian(t, y), **kw)
    tol = 2 * float(integration_unit(torch.tensor([0.9056, 0.0, -14.5723]), 0.25))
    assert res_sys.settings["jacobian"] == "analytic (system)"
    assert res_ad.settings["jacobian"] == "autodiff (JVP)"
    assert (res_sys.exponents - res_ad.exponents).abs().max() <= tol
    assert (res_sys.exponents - res_user.exponents).abs().max() <= tol


@settings(max_examples=8)
@given(c=st.floats(0.25, 4.0), A=general_matrices(n=st.integers(1, 3), bound=1.0))
@example(c=1.0, A=torch.tensor([[0.0]]))
def test_time_rescaling(c, A):
    """f -> c f with every time divided by c: the same trajectory in a new clock, so λ -> c λ.

    Exactly: y_c(t) = y(c t) and Φ_c(t) = Φ(c t), so every R_j is the same and every duration is
    divided by c (for cA this is expm(cA Δ/c) = expm(A Δ)). Each estimate is within
    rtol·exp(spread Δ)/Δ of its exact value in its own clock (reference 1; the rescaled run has
    spread c·spread and interval Δ/c, so c times the bound), hence the 2 c tolerance.
    """
    sys = LinearSystem(A)
    y0 = torch.ones(A.shape[-1])
    q0 = random_orthonormal(A.shape[-1], A.shape[-1], seed=2, dtype=A.dtype, device=A.device)
    base = lyapunov_spectrum(sys, y0, t_total=8.0, dt_renorm=DT, q0=q0, solver=_solver(), n_blocks=2)
    scaled = lyapunov_spectrum(LinearSystem(c * A), y0, t_total=8.0 / c, dt_renorm=DT / c, q0=q0,
                               solver=_solver(), n_blocks=2)
    re, _ = eig_sorted(A)
    tol = 2 * c * float(integration_unit(re, DT))
    assert ((scaled.exponents - c * base.exponents).abs() / tol).max() <= 1.0, (scaled.exponents, base.exponents)
    # The clock of the result is rescaled too.
    assert torch.allclose(scaled.times * c, base.times, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("renorm_every", [1, 3])
@settings(max_examples=15)
@given(data=st.data())
def test_linear_map_spectrum(renorm_every, data):
    """x <- A x: exact QR recursion with P = A^m (tolerance: rounding only, 1e4 eps amplified by
    the conditioning exp(spread m) of the evolved frame) and log|eig A| within the O(1/N) bound."""
    A = data.draw(matrix_batches(general_matrices, n=st.integers(1, 4), batch=3, bound=1.5), label="A")
    assume(float(torch.linalg.svdvals(A).min()) > 0.05)  # a singular map has exponent -inf
    n = A.shape[-1]
    k = data.draw(st.integers(1, n), label="k")
    q0 = random_orthonormal(n, k, seed=5, dtype=A.dtype, device=A.device)
    n_tr, n_steps = 30, 300
    res = lyapunov_spectrum_map(LinearMap(A), torch.ones(3, n), n_steps=n_steps, n_transient=n_tr,
                                renorm_every=renorm_every, q0=q0, n_blocks=5)
    logabs, kappa = eig_sorted(A, log_abs=True)
    P = torch.linalg.matrix_power(A, renorm_every)
    exact = exact_qr_exponents(P, q0, n_tr // renorm_every, n_steps // renorm_every, renorm_every)
    unit = 1e4 * EPS64 * torch.exp((logabs[:, 0] - logabs[:, -1]) * renorm_every)
    assert ((res.exponents - exact).abs() / unit.unsqueeze(-1)).max() <= 1.0
    bound = asymptotic_bound(kappa, n, n_steps).unsqueeze(-1)
    assert ((res.exponents - logabs[:, :k]).abs() / bound).max() <= 1.0
    if k == n:
        # log|det A| per iteration, exactly, at every N (rounding only).
        logdet = torch.linalg.slogdet(A).logabsdet
        assert ((res.exponents.sum(-1) - logdet).abs() / (n * unit)).max() <= 1.0


def test_linear_map_autodiff_equals_analytic():
    """The JVP path and the analytic Jacobian give the same J·Q up to rounding (tolerance 1e4 eps)."""
    A = torch.tensor([[1.1, 0.3], [-0.2, 0.8]])
    x0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ana = lyapunov_spectrum_map(LinearMap(A), x0, n_steps=50, n_blocks=5)
    ad = lyapunov_spectrum_map(lambda x, a: x @ A.T, x0, n_steps=50, n_blocks=5)
    assert ana.settings["jacobian"] == "analytic (system)"
    assert ad.settings["jacobian"] == "autodiff (JVP)"
    assert (ana.exponents - ad.exponents).abs().max() <= 1e4 * EPS64


def test_diagonal_map_chaostools_case():
    """ChaosTools' case diag(1.1, 0.8): (ln 1.1, ln 0.8). With identity initial vectors the frame is
    invariant, so the estimate is exact at every N (rounding only)."""
    A = torch.diag(torch.tensor([1.1, 0.8]))
    res = lyapunov_spectrum_map(LinearMap(A), torch.ones(2), n_steps=100, q0=torch.eye(2))
    assert torch.allclose(res.exponents, torch.log(torch.tensor([1.1, 0.8])), rtol=0, atol=1e3 * EPS64)
