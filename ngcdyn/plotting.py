"""Figures of trajectories, group signals, spectra and Lyapunov convergence (matplotlib, Agg).

Every function builds a :class:`matplotlib.figure.Figure` attached to the Agg canvas (no pyplot
state, no display, safe in scripts, tests and on headless machines) and returns it; write it with
:func:`save_figure`, which writes to a temporary name and renames, so a figure on disk is never
half-written. Inputs may be torch tensors (any device or dtype) or NumPy arrays.

See also
--------
ngcdyn.systems.NGCSystem : the system whose group signals these functions draw.
ngcdyn.analysis.lyapunov_spectrum : produces the running estimates drawn by
    :func:`plot_lyapunov_convergence`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._io import write_atomic

__all__ = [
    "new_figure",
    "save_figure",
    "plot_group_signals",
    "plot_neuron_traces",
    "plot_activity_heatmap",
    "plot_spectrum",
    "plot_lyapunov_convergence",
]


def _np(x: Any, name: str) -> np.ndarray:
    """A NumPy array from a tensor (detached, moved to the CPU) or anything array-like."""
    if hasattr(x, "detach"):  # a torch.Tensor; torch is not imported here so plots stay light
        x = x.detach().cpu()
        if x.is_complex():
            return x.numpy()
        return x.double().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - re-raised with the argument's name
        raise TypeError(f"`{name}` must be a tensor or an array, got {type(x).__name__}.") from exc


def _check_ndim(name: str, a: np.ndarray, ndim: int, shape: str) -> None:
    if a.ndim != ndim:
        raise ValueError(
            f"`{name}` must have shape {shape}, got shape {a.shape}. "
            + ("Select one batch member first, e.g. ys[0]." if a.ndim > ndim else "")
        )


def new_figure(n_rows: int = 1, n_cols: int = 1, *, width: float = 7.0,
               height: float = 3.5, sharex: bool = True) -> tuple[Figure, np.ndarray]:
    """A figure on the Agg canvas with an ``(n_rows, n_cols)`` grid of axes.

    Parameters
    ----------
    n_rows, n_cols
        Grid of subplots.
    width, height
        Figure size in inches (``height`` is per row).
    sharex
        Share the x axis between rows.

    Returns
    -------
    fig : Figure
    axes : ndarray of Axes, shape ``(n_rows, n_cols)``

    Examples
    --------
    >>> fig, axes = new_figure(2, 1)
    >>> axes.shape
    (2, 1)
    """
    fig = Figure(figsize=(width, height * n_rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, sharex=sharex, squeeze=False)
    return fig, axes


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` atomically (temporary file in the same folder, then rename).

    The format follows the suffix (``.png``, ``.pdf``, ``.svg``). Returns the path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> fig, ax = new_figure()
    >>> p = save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "empty.png")
    >>> p.exists(), p.suffix
    (True, '.png')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".") or "png"
    write_atomic(path, lambda fh: fig.savefig(fh, dpi=dpi, format=fmt), binary=True)
    return path


def _group_colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def plot_group_signals(ts: Any, signals: Any, *, title: str | None = None) -> Figure:
    r"""Group signals ``s_g(t) = B_g^T \phi(x_g(t))`` of one trajectory, one panel per group.

    These are the ``r``-dimensional messages each group broadcasts to the others in the NGC
    system ``\tau_g \dot x_g = -x_g + A_g \sum_h C_{gh} s_h + u_g``.

    Parameters
    ----------
    ts : (T,)
        Times.
    signals : (T, G, r)
        The signals of one batch member (e.g. ``signals[0]`` of a batch).
    title
        Figure title.

    Returns
    -------
    Figure
        ``G`` rows of axes; row ``g`` shows the ``r`` components of ``s_g``.

    See also
    --------
    plot_neuron_traces, ngcdyn.systems.NGCSystem

    Examples
    --------
    >>> import numpy as np
    >>> ts = np.linspace(0, 1, 5)
    >>> fig = plot_group_signals(ts, np.zeros((5, 3, 2)))
    >>> len(fig.axes)
    3
    """
    t = _np(ts, "ts")
    s = _np(signals, "signals")
    _check_ndim("ts", t, 1, "(T,)")
    _check_ndim("signals", s, 3, "(T, G, r)")
    if s.shape[0] != t.shape[0]:
        raise ValueError(
            f"`signals` must have T = {t.shape[0]} rows (one per time of `ts`), got shape {s.shape}."
        )
    G, r = s.shape[1], s.shape[2]
    fig, axes = new_figure(G, 1, height=1.6 if G > 2 else 2.4)
    colors = _group_colors(G)
    for g in range(G):
        ax = axes[g, 0]
        for k in range(r):
            ax.plot(t, s[:, g, k], lw=1.0, color=colors[g], alpha=0.35 + 0.65 * (k + 1) / r)
        ax.set_ylabel(f"$s_{{{g + 1}}}$")
        ax.axhline(0.0, color="0.7", lw=0.5)
    axes[-1, 0].set_xlabel("t")
    fig.suptitle(title or f"group signals $s_g = B_g^T\\phi(x_g)$ ({G} groups, rank {r})")
    return fig


def plot_neuron_traces(ts: Any, ys: Any, *, group_sizes: Sequence[int] | None = None,
                       per_group: int = 2, title: str | None = None) -> Figure:
    """A few neuron activities ``x_i(t)`` of one trajectory, coloured by group.

    Parameters
    ----------
    ts : (T,)
        Times.
    ys : (T, N)
        One trajectory.
    group_sizes
        Sizes of the groups in neuron order (default: one group).
    per_group
        Number of neurons drawn from each group (the first ones).
    title
        Figure title.

    Returns
    -------
    Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_neuron_traces(np.arange(3.0), np.zeros((3, 6)), group_sizes=[3, 3])
    >>> len(fig.axes[0].lines)  # 2 neurons from each of the 2 groups
    4
    """
    t = _np(ts, "ts")
    y = _np(ys, "ys")
    _check_ndim("ts", t, 1, "(T,)")
    _check_ndim("ys", y, 2, "(T, N)")
    sizes = list(group_sizes) if group_sizes is not None else [y.shape[1]]
    if sum(sizes) != y.shape[1]:
        raise ValueError(
            f"`group_sizes` must sum to N = {y.shape[1]} (columns of `ys`), got {sizes}."
        )
    fig, axes = new_figure(1, 1)
    ax = axes[0, 0]
    colors = _group_colors(len(sizes))
    start = 0
    for g, n in enumerate(sizes):
        for j in range(min(per_group, n)):
            ax.plot(t, y[:, start + j], lw=1.0, color=colors[g],
                    label=f"group {g + 1}" if j == 0 else None)
        start += n
    ax.set_xlabel("t")
    ax.set_ylabel("$x_i(t)$")
    if len(sizes) > 1:
        ax.legend(fontsize="small", ncols=min(len(sizes), 4))
    fig.suptitle(title or "neuron activities")
    return fig


def plot_activity_heatmap(ts: Any, ys: Any, *, group_sizes: Sequence[int] | None = None,
                          title: str | None = None) -> Figure:
    """Heatmap (raster) of all activities ``x_i(t)`` of one trajectory, neurons by time.

    Group boundaries are drawn as horizontal lines. The colour scale is symmetric about 0.

    Parameters
    ----------
    ts : (T,)
        Times.
    ys : (T, N)
        One trajectory.
    group_sizes
        Sizes of the groups in neuron order.
    title
        Figure title.

    Returns
    -------
    Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_activity_heatmap(np.arange(4.0), np.ones((4, 5)), group_sizes=[2, 3])
    >>> len(fig.axes)  # the heatmap and its colour bar
    2
    """
    t = _np(ts, "ts")
    y = _np(ys, "ys")
    _check_ndim("ts", t, 1, "(T,)")
    _check_ndim("ys", y, 2, "(T, N)")
    fig, axes = new_figure(1, 1, height=4.0)
    ax = axes[0, 0]
    finite = y[np.isfinite(y)]
    vmax = float(np.abs(finite).max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    im = ax.imshow(y.T, aspect="auto", origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                   extent=(float(t[0]), float(t[-1]), -0.5, y.shape[1] - 0.5),
                   interpolation="nearest")
    if group_sizes is not None:
        for b in np.cumsum(list(group_sizes))[:-1]:
            ax.axhline(b - 0.5, color="k", lw=0.8)
    ax.set_xlabel("t")
    ax.set_ylabel("neuron i")
    fig.colorbar(im, ax=ax, label="$x_i(t)$")
    fig.suptitle(title or "activity $x(t)$")
    return fig


def plot_spectrum(eigenvalues: Any, *, bound: float | None = None,
                  exponents: Any = None, title: str | None = None) -> Figure:
    """Eigenvalues in the complex plane, optionally with a contraction bound and Lyapunov exponents.

    Parameters
    ----------
    eigenvalues : (N,) complex
        E.g. :meth:`ngcdyn.systems.NGCSystem.linear_spectrum` of one system.
    bound
        A bound on ``mu_2(J)``: every eigenvalue of every Jacobian has real part at most ``bound``
        (drawn as a dashed vertical line).
    exponents : (k,)
        Lyapunov exponents, drawn as crosses on the real axis.
    title
        Figure title.

    Returns
    -------
    Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_spectrum(np.array([-1 + 1j, -1 - 1j, -0.5]), bound=0.2, exponents=[-0.5])
    >>> len(fig.axes)
    1
    """
    ev = _np(eigenvalues, "eigenvalues").astype(complex).ravel()
    fig, axes = new_figure(1, 1, width=5.0, height=4.0)
    ax = axes[0, 0]
    ax.scatter(ev.real, ev.imag, s=14, color="C0", label="eigenvalues", zorder=3)
    ax.axvline(0.0, color="0.5", lw=0.8)
    if bound is not None:
        ax.axvline(float(bound), color="C3", ls="--", lw=1.0, label=f"bound on $\\mu_2$ = {bound:.3g}")
    if exponents is not None:
        ex = _np(exponents, "exponents").ravel()
        ax.scatter(ex, np.zeros_like(ex), marker="x", s=50, color="C2", zorder=4,
                   label="Lyapunov exponents")
    ax.set_xlabel("Re")
    ax.set_ylabel("Im")
    ax.legend(fontsize="small")
    fig.suptitle(title or "spectrum")
    return fig


def plot_lyapunov_convergence(times: Any, history: Any, *, stderr: Any = None,
                              reference: Any = None, title: str | None = None) -> Figure:
    """Running Lyapunov estimates against time, to judge convergence.

    Parameters
    ----------
    times : (M,)
        Time (or iteration count) after each renormalisation.
    history : (M, k)
        Running estimates of ``k`` exponents (``LyapunovResult.history`` of one member).
    stderr : (k,), optional
        Standard errors of the final estimates, shown as shaded bands at the end.
    reference : (k,), optional
        Known values (dotted horizontal lines).
    title
        Figure title.

    Returns
    -------
    Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_lyapunov_convergence(np.arange(1.0, 4.0), np.zeros((3, 2)), reference=[0.0, -1.0])
    >>> len(fig.axes[0].lines)  # 2 running estimates and 2 reference lines
    4
    """
    t = _np(times, "times")
    h = _np(history, "history")
    _check_ndim("times", t, 1, "(M,)")
    _check_ndim("history", h, 2, "(M, k)")
    fig, axes = new_figure(1, 1)
    ax = axes[0, 0]
    k = h.shape[1]
    se = None if stderr is None else _np(stderr, "stderr").ravel()
    ref = None if reference is None else _np(reference, "reference").ravel()
    for i in range(k):
        color = f"C{i % 10}"
        ax.plot(t, h[:, i], color=color, lw=1.0, label=f"$\\lambda_{{{i + 1}}}$")
        if se is not None and np.isfinite(se[i]):
            ax.fill_between([t[0], t[-1]], h[-1, i] - se[i], h[-1, i] + se[i], color=color,
                            alpha=0.15, lw=0)
        if ref is not None and i < ref.shape[0]:
            ax.axhline(float(ref[i]), color=color, ls=":", lw=1.0)
    ax.set_xlabel("t")
    ax.set_ylabel("running estimate")
    if k <= 10:
        ax.legend(fontsize="small", ncols=min(k, 5))
    fig.suptitle(title or "Lyapunov exponents: running estimates")
    return fig
