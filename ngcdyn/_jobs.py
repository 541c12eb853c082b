"""The jobs behind the ``ngcdyn`` command: system specs, resumable stages, and the main job's report.

A job is a sequence of *stages* (:class:`AbstractStage`). Each stage owns one output folder and
is resumable:

- its configuration (a JSON object) is hashed; the folder's ``stage.done`` marker records the hash
  of the run that produced the folder's files;
- rerunning skips a stage whose marker holds the same hash (``force=True`` redoes it);
- a stage computes into a temporary folder ``.tmp-<name>-*`` inside its folder, and the files are
  renamed into place only after it finished; the old marker is deleted before the new run starts
  and the new one is written last, so an interrupted run never leaves files that look done.

The main job (:func:`run_main_job`, ``ngcdyn run``) runs the stages ``simulate`` (trajectories of
the default NGC group system and their figures) and ``stability`` (Lyapunov exponents with
standard errors, the contraction certificate) and writes ``report.md`` and ``report.json``.
Later issues add stages by subclassing :class:`AbstractStage` and appending to
:data:`MAIN_STAGES`.
"""

from __future__ import annotations

import abc
import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch
from torch import Tensor

from ._io import write_atomic

__all__ = [
    "DEFAULT_SYSTEM",
    "SpecError",
    "SystemSpec",
    "SimulationSpec",
    "StabilitySpec",
    "LyapunovSpec",
    "load_system_spec",
    "build_system",
    "initial_states",
    "group_signals",
    "simulate",
    "AbstractStage",
    "StageOutcome",
    "SimulateStage",
    "StabilityStage",
    "LyapunovStage",
    "MAIN_STAGES",
    "run_stages",
    "run_main_job",
    "write_report",
]

# Seeds of the independent random streams derived from the job's ``--seed`` (documented in the
# CLI help): system parameters use ``seed``, initial states ``seed + offset``.
_X0_SEED_OFFSET = {"simulate": 1, "stability": 2, "lyapunov": 3}


class SpecError(ValueError):
    """An invalid job option or configuration field; the message names the option and the fix."""


# --------------------------------------------------------------------------------------------
# The system
# --------------------------------------------------------------------------------------------

#: The embedded default NGC system of ``ngcdyn simulate`` and ``ngcdyn run``: 4 groups of 32
#: neurons, rank 4 per group, gain 1.5, tanh, tau = 1, parameters drawn with the job's seed by
#: :meth:`ngcdyn.systems.NGCSystem.random` (in float64 on the CPU, then cast, so every device and
#: dtype sees the same system).
DEFAULT_SYSTEM: dict[str, Any] = {
    "n_groups": 4,
    "group_size": 32,
    "rank": 4,
    "gain": 1.5,
    "symmetric": False,
    "tau": 1.0,
    "phi": "tanh",
}

# Config field -> command-line option, for messages.
_OPTION = {
    "n_groups": "--n-groups", "group_size": "--group-size", "rank": "--rank", "gain": "--gain",
    "symmetric": "--symmetric", "tau": "--tau", "phi": "--phi",
}
_PHIS = ("tanh", "identity", "linear")
_ARRAY_KEYS = ("A", "B", "C")


def _where(field_name: str) -> str:
    opt = _OPTION.get(field_name)
    return f"`{opt}` (config field \"{field_name}\")" if opt else f"config field \"{field_name}\""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


@dataclass(frozen=True)
class SystemSpec:
    """What defines an NGC system in a job: the arguments of ``NGCSystem.random`` or explicit arrays.

    Parameters
    ----------
    n_groups, group_size, rank, gain, symmetric, tau, phi
        As in :meth:`ngcdyn.systems.NGCSystem.random` (``group_size`` an int or ``G`` sizes,
        ``tau`` a number or ``G`` numbers, ``phi`` ``"tanh"``, ``"identity"`` or ``"linear"``).
    seed
        Seed of the parameters; ``None`` (default): the job's ``--seed``.
    arrays
        ``{"A": [...], "B": [...], "C": ...}``: per-group receiver and sender states (lists of
        ``(n_g, r)`` nested lists) and the channels ``(G, G, r, r)`` or ``(G r, G r)``, as in
        :meth:`ngcdyn.systems.NGCSystem.from_arrays`. When given, ``n_groups``, ``group_size``,
        ``rank``, ``gain``, ``symmetric`` and ``seed`` are unused.

    Raises
    ------
    SpecError
        For invalid values, naming the command-line option and the config field.

    Examples
    --------
    >>> SystemSpec().n_groups, SystemSpec(gain=0.5).gain
    (4, 0.5)
    """

    n_groups: int = DEFAULT_SYSTEM["n_groups"]
    group_size: int | tuple[int, ...] = DEFAULT_SYSTEM["group_size"]
    rank: int = DEFAULT_SYSTEM["rank"]
    gain: float = DEFAULT_SYSTEM["gain"]
    symmetric: bool = DEFAULT_SYSTEM["symmetric"]
    tau: float | tuple[float, ...] = DEFAULT_SYSTEM["tau"]
    phi: str = DEFAULT_SYSTEM["phi"]
    seed: int | None = None
    arrays: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.group_size, list):
            object.__setattr__(self, "group_size", tuple(self.group_size))
        if isinstance(self.tau, list):
            object.__setattr__(self, "tau", tuple(self.tau))
        for name in ("n_groups", "rank"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise SpecError(f"{_where(name)} must be an integer >= 1, got {v!r}.")
        gs = self.group_size
        if _is_int(gs):
            if gs < 1:
                raise SpecError(f"{_where('group_size')} must be an integer >= 1, got {gs!r}.")
        elif isinstance(gs, tuple):
            if len(gs) != self.n_groups or not all(_is_int(s) and s >= 1 for s in gs):
                raise SpecError(
                    f"{_where('group_size')} must be one integer >= 1 or n_groups = {self.n_groups} "
                    f"of them (one size per group), got {list(gs)}."
                )
        else:
            raise SpecError(f"{_where('group_size')} must be an integer or a list, got {gs!r}.")
        if not _is_real(self.gain) or self.gain < 0:
            raise SpecError(f"{_where('gain')} must be a finite number >= 0, got {self.gain!r}.")
        if not isinstance(self.symmetric, bool):
            raise SpecError(f"{_where('symmetric')} must be true or false, got {self.symmetric!r}.")
        taus = self.tau if isinstance(self.tau, tuple) else (self.tau,)
        if not all(_is_real(t) and t > 0 for t in taus):
            raise SpecError(
                f"{_where('tau')} must be a positive number (or one per group), got {self.tau!r}."
            )
        if isinstance(self.tau, tuple) and self.arrays is None and len(self.tau) != self.n_groups:
            raise SpecError(
                f"{_where('tau')} must hold one number or n_groups = {self.n_groups} numbers, "
                f"got {len(self.tau)}."
            )
        if self.phi not in _PHIS:
            raise SpecError(f"{_where('phi')} must be one of {list(_PHIS)}, got {self.phi!r}.")
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise SpecError(f"config field \"seed\" must be an integer >= 0, got {self.seed!r}.")
        if self.arrays is not None:
            missing = [k for k in _ARRAY_KEYS if k not in self.arrays]
            if missing:
                raise SpecError(
                    f"config fields {missing} are missing: an explicit system needs all of "
                    "\"A\", \"B\" (lists of per-group (n_g, r) arrays) and \"C\" ((G, G, r, r))."
                )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the form that is hashed and reported)."""
        d = asdict(self)
        for k in ("group_size", "tau"):
            if isinstance(d[k], tuple):
                d[k] = list(d[k])
        if self.arrays is None:
            d.pop("arrays")
        else:
            for k in ("n_groups", "group_size", "rank", "gain", "symmetric", "seed"):
                d.pop(k)
        return d


def load_system_spec(path: str | os.PathLike, **overrides: Any) -> SystemSpec:
    """Read a :class:`SystemSpec` from a JSON file; ``overrides`` (not ``None``) win over the file.

    The file holds one JSON object whose fields are those of
    :meth:`ngcdyn.systems.NGCSystem.random` (``n_groups``, ``group_size``, ``rank``, ``gain``,
    ``symmetric``, ``tau``, ``phi``) plus an optional ``seed``, or explicit arrays ``A``, ``B``,
    ``C`` (with optional ``tau``, ``phi``) as in :meth:`ngcdyn.systems.NGCSystem.from_arrays`.
    Missing fields take the defaults of :data:`DEFAULT_SYSTEM`.

    Raises
    ------
    SpecError
        Unreadable file, invalid JSON, unknown or conflicting fields, invalid values.

    Examples
    --------
    >>> import json, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "sys.json")
    >>> with open(p, "w") as fh:
    ...     json.dump({"n_groups": 2, "group_size": [3, 5], "rank": 2, "gain": 0.8}, fh)
    >>> load_system_spec(p, gain=1.2).gain
    1.2
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(
            f"`--config` file {str(p)!r} cannot be read ({exc.strerror}). Pass the path of a JSON "
            "file with the fields of NGCSystem.random."
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"`--config` file {str(p)!r} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}). Fix the file; it must hold one JSON object."
        ) from None
    if not isinstance(data, dict):
        raise SpecError(
            f"`--config` file {str(p)!r} must hold a JSON object (fields of NGCSystem.random), got "
            f"a {type(data).__name__}."
        )
    allowed = {f.name for f in fields(SystemSpec)} - {"arrays"}
    unknown = sorted(set(data) - allowed - set(_ARRAY_KEYS))
    if unknown:
        raise SpecError(
            f"`--config` file {str(p)!r} has unknown field(s) {unknown}; allowed: "
            f"{sorted(allowed)} or explicit arrays {list(_ARRAY_KEYS)} with tau and phi."
        )
    kw = {k: v for k, v in data.items() if k in allowed}
    if any(k in data for k in _ARRAY_KEYS):
        clash = sorted(set(kw) - {"tau", "phi"})
        if clash:
            raise SpecError(
                f"`--config` file {str(p)!r} gives explicit arrays A, B, C together with "
                f"{clash}, which only describe random systems. Remove those fields."
            )
        kw["arrays"] = {k: data[k] for k in _ARRAY_KEYS if k in data}
    kw.update({k: v for k, v in overrides.items() if v is not None})
    if "arrays" in kw:
        clash = sorted(set(k for k, v in overrides.items() if v is not None) - {"tau", "phi"})
        if clash:
            raise SpecError(
                f"{', '.join(_OPTION.get(k, k) for k in clash)} cannot be combined with a "
                "`--config` that gives explicit arrays A, B, C. Drop the option(s)."
            )
    return SystemSpec(**kw)


def _tau_tensor(tau: Any, dtype: torch.dtype, device: torch.device) -> Any:
    if isinstance(tau, tuple):
        return torch.tensor(tau, dtype=dtype, device=device)
    return float(tau)


def build_system(spec: SystemSpec, *, seed: int, dtype: torch.dtype, device: torch.device | str):
    """The :class:`~ngcdyn.systems.NGCSystem` described by ``spec``, in ``dtype`` on ``device``.

    Random parameters are drawn in float64 on the CPU from ``torch.Generator().manual_seed(s)``
    (``s = spec.seed`` if set, else ``seed``) and then cast, so the system is the same on every
    device and in every dtype (up to the cast).

    Raises
    ------
    SpecError
        If the explicit arrays are inconsistent (the message of the system's own check).

    Examples
    --------
    >>> import torch
    >>> sys = build_system(SystemSpec(n_groups=2, group_size=3, rank=1), seed=0,
    ...                    dtype=torch.float32, device="cpu")
    >>> sys.dim, sys.dtype
    (6, torch.float32)
    """
    from .systems import NGCSystem

    device = torch.device(device)
    if spec.arrays is not None:
        try:
            return NGCSystem.from_arrays(
                spec.arrays["A"], spec.arrays["B"], spec.arrays["C"],
                tau=list(spec.tau) if isinstance(spec.tau, tuple) else spec.tau,
                phi=spec.phi, dtype=dtype, device=device,
            )
        except (TypeError, ValueError, RuntimeError) as exc:
            raise SpecError(f"the `--config` arrays do not define an NGC system: {exc}") from None
    s = spec.seed if spec.seed is not None else seed
    gen = torch.Generator().manual_seed(int(s))
    ref = NGCSystem.random(
        spec.n_groups, list(spec.group_size) if isinstance(spec.group_size, tuple) else spec.group_size,
        spec.rank, gain=float(spec.gain), symmetric=spec.symmetric, phi=spec.phi,
        generator=gen, dtype=torch.float64, device="cpu",
    )
    A, B, C = (p.to(dtype=dtype, device=device) for p in ref.states())
    return NGCSystem(A, B, C, group_sizes=ref.group_sizes,
                     tau=_tau_tensor(spec.tau, dtype, device), phi=spec.phi)


def initial_states(n_members: int, dim: int, *, seed: int, scale: float, dtype: torch.dtype,
                   device: torch.device | str, center: float = 0.0,
                   uniform: bool = False) -> Tensor:
    """Seeded initial states ``(n_members, dim)``, drawn in float64 on the CPU and cast.

    ``center + scale * N(0, 1)`` entrywise, or ``center + scale * U(0, 1)`` with ``uniform``.

    Examples
    --------
    >>> x0 = initial_states(3, 2, seed=0, scale=1.0, dtype=torch.float32, device="cpu")
    >>> x0.shape, x0.dtype
    (torch.Size([3, 2]), torch.float32)
    """
    gen = torch.Generator().manual_seed(int(seed))
    draw = torch.rand if uniform else torch.randn
    x = center + scale * draw(n_members, dim, generator=gen, dtype=torch.float64)
    return x.to(dtype=dtype, device=device)


def group_signals(system: Any, ys: Tensor) -> Tensor:
    r"""The group signals ``s_g = B_g^T \phi(x_g)`` of states ``ys``.

    Parameters
    ----------
    system : NGCSystem
        With constant states (a time-dependent system needs its states at each time).
    ys : (..., N)
        States, e.g. ``sol.ys`` of shape ``(*batch, T, N)``.

    Returns
    -------
    (..., G, r) tensor

    Examples
    --------
    >>> import torch
    >>> from ngcdyn.systems import NGCSystem
    >>> A = torch.ones(3, 1, dtype=torch.float64)
    >>> sys = NGCSystem(A, A, torch.zeros(2, 2, 1, 1, dtype=torch.float64), group_sizes=[1, 2],
    ...                 phi="identity")
    >>> group_signals(sys, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).tolist()  # [x1], [x2 + x3]
    [[1.0], [5.0]]
    """
    return system.group_signals(ys)  # (..., G, r)


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------


def _default_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    # float32 cannot meet rtol = 1e-6 (the solver would raise it to 100 eps = 1.2e-5 with a warning).
    return (1e-6, 1e-8) if dtype == torch.float64 else (1e-4, 1e-6)


@dataclass(frozen=True)
class SimulationSpec:
    """How ``simulate`` integrates: batch, time span, output grid, method and tolerances.

    ``rtol``/``atol`` ``None`` mean the dtype's defaults (1e-6/1e-8 in float64, 1e-4/1e-6 in
    float32). ``dt`` fixes the step (required by ``euler``, ``midpoint``, ``rk4``). The span is cut
    into ``chunks`` consecutive solves (each restarts from the previous end state) so that the
    progress bar moves; ``chunks=1`` is a single solve.
    """

    batch: int = 8
    t1: float = 50.0
    n_points: int = 501
    method: str = "dopri5"
    rtol: float | None = None
    atol: float | None = None
    dt: float | None = None
    init_scale: float = 1.0
    chunks: int = 10

    def tolerances(self, dtype: torch.dtype) -> tuple[float, float]:
        r, a = _default_tolerances(dtype)
        return (self.rtol if self.rtol is not None else r, self.atol if self.atol is not None else a)


def _progress(iterable: Any, *, enabled: bool, desc: str, total: int | None = None) -> Any:
    from tqdm import tqdm

    # disable=None lets tqdm switch itself off when stderr is not a terminal.
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False,
                disable=None if enabled else True, dynamic_ncols=True)


def simulate(system: Any, x0: Tensor, ts: Tensor, *, method: str = "dopri5",
             rtol: float = 1e-6, atol: float = 1e-8, dt: float | None = None, chunks: int = 1,
             progress: bool = False) -> dict[str, Any]:
    """Integrate a batch with :func:`ngcdyn.solve`, in ``chunks`` consecutive solves.

    Members that fail in a chunk keep their status and stop (their later points are NaN); the
    others continue. Statistics are summed over chunks.

    Parameters
    ----------
    system
        Vector field ``f(t, y, args)``.
    x0 : (B, n)
        Initial states.
    ts : (T,)
        Output times, strictly increasing, ``T >= 2``.
    method, rtol, atol, dt
        Passed to :func:`ngcdyn.solve`.
    chunks
        Number of consecutive solves (at most ``T - 1``).
    progress
        Show a tqdm bar on stderr.

    Returns
    -------
    dict
        ``ys (B, T, n)``, ``status (B,)``, ``stats`` (dict of ``(B,)`` int64, summed).

    Examples
    --------
    >>> import torch
    >>> ts = torch.linspace(0, 1, 5, dtype=torch.float64)
    >>> out = simulate(lambda t, y, a: -y, torch.ones(2, 1, dtype=torch.float64), ts, chunks=2,
    ...                rtol=1e-10, atol=1e-12)
    >>> bool(torch.allclose(out["ys"][:, -1, 0], torch.exp(-ts[-1]), rtol=1e-8))
    True
    """
    import ngcdyn as nd

    Bn, n = x0.shape
    T = ts.shape[0]
    k = max(1, min(int(chunks), T - 1))
    bounds = sorted(set(np.linspace(0, T - 1, k + 1).round().astype(int).tolist()))
    ys = torch.full((Bn, T, n), float("nan"), dtype=x0.dtype, device=x0.device)
    ys[:, 0] = x0
    status = torch.zeros(Bn, dtype=torch.int64, device=x0.device)
    stats: dict[str, Tensor] = {}
    active = torch.arange(Bn, device=x0.device)
    y = x0
    for a, b in _progress(list(zip(bounds[:-1], bounds[1:])), enabled=progress,
                          desc="simulate"):
        if active.numel() == 0:
            break
        sol = nd.solve(system, y, ts[a:b + 1], method=method, rtol=rtol, atol=atol, dt=dt,
                       throw=False)
        ys[active, a:b + 1] = sol.ys
        for key, v in sol.stats.items():
            if key not in stats:
                stats[key] = torch.zeros(Bn, dtype=torch.int64, device=x0.device)
            stats[key][active] += v.to(torch.int64)
        ok = sol.success
        status[active[~ok]] = sol.status[~ok]
        y = sol.ys[ok, -1]
        active = active[ok]
    return {"ys": ys, "status": status, "stats": stats}


# --------------------------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------------------------


def _jsonable(obj: Any) -> Any:
    """Plain JSON: tensors/arrays to lists, non-finite floats to None, tuples to lists."""
    if isinstance(obj, Tensor):
        obj = obj.detach().cpu()
        if obj.is_complex():
            return [[_jsonable(float(z.real)), _jsonable(float(z.imag))] for z in obj.reshape(-1)]
        return _jsonable(obj.tolist())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda fh: fh.write(text))


def _dump(obj: Any) -> str:
    return json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def config_hash(name: str, version: int, config: dict[str, Any]) -> str:
    """The first 16 hex digits of the SHA-256 of a stage's canonical JSON configuration.

    Examples
    --------
    >>> config_hash("a", 1, {"x": 1}) == config_hash("a", 1, {"x": 1})
    True
    >>> config_hash("a", 1, {"x": 1}) == config_hash("a", 1, {"x": 2})
    False
    """
    blob = json.dumps({"stage": name, "version": version, "config": _jsonable(config)},
                      sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------

DONE_MARKER = "stage.done"
RESULT_FILE = "result.json"


@dataclass
class StageContext:
    """What a stage's ``_run_impl`` receives: the temporary folder to write into, and I/O switches."""

    directory: Path
    progress: bool
    log: Callable[[str], None]


@dataclass
class StageOutcome:
    """The result of running (or skipping) one stage.

    Attributes
    ----------
    name, directory, config_hash, config
        Which stage, where its files are, and what it was run with.
    summary : dict
        The stage's JSON summary (numbers for the report).
    skipped : bool
        True when an earlier run with the same configuration was reused.
    seconds : float
        Wall time of the run that produced the files.
    files : list of str
        Files the stage wrote (besides ``result.json`` and ``stage.done``).
    failed : bool
        Whether the stage reports failed members (the command then exits with status 1).
    """

    name: str
    directory: Path
    config_hash: str
    config: dict[str, Any]
    summary: dict[str, Any]
    skipped: bool
    seconds: float
    files: list[str] = field(default_factory=list)
    failed: bool = False


class AbstractStage(abc.ABC):
    """A resumable step of a job with one output folder.

    Rules for implementers:

    1. Set the class attributes ``name`` (a folder-safe identifier), ``title`` (one line for the
       report) and ``version`` (bump it when the stage's computation changes, so that old results
       are not reused).
    2. :meth:`config` returns a JSON-ready dict holding *everything* the outputs depend on (system,
       solver settings, seed, dtype, device type); its hash decides whether a rerun is skipped.
    3. ``_run_impl(ctx)`` writes plain files (no subfolders) into ``ctx.directory`` only and
       returns a JSON-ready summary dict; put ``"failed": true`` in it if batch members failed.
    4. ``_run_impl`` never writes to the final folder and never writes the marker; :meth:`run`
       does the bookkeeping (skip, temporary folder, renames, marker).
    5. ``report_section(outcome)`` returns the stage's Markdown section for ``report.md``.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    version: ClassVar[int]

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything the outputs depend on, JSON-ready."""

    @abc.abstractmethod
    def _run_impl(self, ctx: StageContext) -> dict[str, Any]:
        """Compute, write files into ``ctx.directory``, return the summary."""

    @abc.abstractmethod
    def report_section(self, outcome: StageOutcome, rel: str) -> str:
        """Markdown for the report; ``rel`` is the stage folder relative to the report."""

    def config_hash(self) -> str:
        """Hash of :meth:`config` (see :func:`config_hash`)."""
        return config_hash(self.name, self.version, self.config())

    def run(self, directory: str | os.PathLike, *, force: bool = False, progress: bool = False,
            log: Callable[[str], None] = lambda s: None) -> StageOutcome:
        """Run the stage into ``directory``, or skip it if it is already done with this config.

        Parameters
        ----------
        directory
            The stage's folder (created if missing). Other files in it are left alone.
        force
            Redo the stage even when the marker matches.
        progress
            Show progress bars.
        log
            Receives one-line status messages ("skipped", "done in ...").

        Returns
        -------
        StageOutcome
        """
        directory = Path(directory)
        marker = directory / DONE_MARKER
        h = self.config_hash()
        cfg = self.config()
        if not force and marker.exists():
            prev = _read_json(marker)
            result = _read_json(directory / RESULT_FILE)
            if prev is not None and result is not None and prev.get("config_hash") == h:
                log(f"stage {self.name}: skipped (already done in {directory} with the same "
                    f"configuration, hash {h}; pass --force to redo)")
                summary = result.get("summary", {})
                return StageOutcome(self.name, directory, h, cfg, summary, True,
                                    float(result.get("seconds", float("nan"))),
                                    list(result.get("files", [])), bool(summary.get("failed")))
            if prev is not None and prev.get("config_hash") != h:
                log(f"stage {self.name}: configuration changed (hash {prev.get('config_hash')} -> "
                    f"{h}); running it again")
        directory.mkdir(parents=True, exist_ok=True)
        if marker.exists():
            marker.unlink()  # from here on the folder must not look done until the new marker
        for stale in directory.glob(f".tmp-{self.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted run
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{self.name}-", dir=directory))
        try:
            log(f"stage {self.name}: running ({self.title})")
            t0 = time.perf_counter()
            summary = self._run_impl(StageContext(tmp, progress, log))
            seconds = time.perf_counter() - t0
            files = sorted(p.name for p in tmp.iterdir())
            for name in files:
                if (tmp / name).is_dir():
                    raise RuntimeError(f"stage {self.name} wrote a folder {name!r}; stages write files only")
            _write_text_atomic(tmp / RESULT_FILE, _dump({
                "stage": self.name, "title": self.title, "version": self.version,
                "config_hash": h, "config": cfg, "summary": summary, "files": files,
                "seconds": seconds, "ngcdyn_version": _version(),
            }))
            for name in files + [RESULT_FILE]:
                os.replace(tmp / name, directory / name)
            tmp.rmdir()
            _write_text_atomic(marker, _dump({
                "stage": self.name, "config_hash": h, "version": self.version,
                "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"stage {self.name}: done in {seconds:.1f} s -> {directory}")
        return StageOutcome(self.name, directory, h, cfg, _jsonable(summary), False, seconds,
                            files, bool(summary.get("failed")))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _version() -> str:
    from . import __version__

    return __version__


def _device_key(device: torch.device) -> str:
    return device.type


def _stats_summary(stats: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    out = {}
    for k, v in stats.items():
        v = v.double().cpu()
        out[k] = {"min": float(v.min()), "mean": float(v.mean()), "max": float(v.max()),
                  "total": float(v.sum())}
    return out


def _status_counts(status: Tensor) -> dict[str, int]:
    from .solvers import Status

    counts: dict[str, int] = {}
    for code in status.cpu().tolist():
        name = Status(code).name if code in {int(s) for s in Status} else f"CODE_{code}"
        counts[name] = counts.get(name, 0) + 1
    return counts


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a"
        return f"{x:.{digits}g}"
    return str(x)


def _spectrum_summary(system: Any, n_top: int = 8) -> dict[str, Any]:
    ev = system.linear_spectrum().detach().cpu()  # (N,) complex, descending real part
    return {
        "abscissa": float(ev.real[0]),
        "top": [[float(z.real), float(z.imag)] for z in ev[:n_top]],
        "n_reduced": int(min(system.rank, min(system.group_sizes)) * system.n_groups),
    }


def _contraction_summary(system: Any) -> dict[str, Any]:
    from .analysis import ngc_contraction_certificate

    cert = ngc_contraction_certificate(system)
    return {"bound": float(cert.bound), "certified": bool(cert.certified),
            "coupling_norm": float(cert.coupling_norm), "gamma": system.phi.derivative_bound}


class SimulateStage(AbstractStage):
    """Simulate a batch of the NGC system, save ``trajectories.npz`` and figures.

    Files: ``trajectories.npz`` (``ts``, ``ys``, ``x0``, ``status``, ``stats_<name>``,
    ``signals``, ``A``, ``B``, ``C``, ``tau``, ``group_sizes``, ``phi``, ``linear_spectrum``,
    ``config``), ``group_signals.png``, ``neuron_traces.png``, ``activity_heatmap.png``,
    ``spectrum.png``.
    """

    name = "simulate"
    title = "trajectories of the NGC system from random initial states"
    version = 1

    #: Largest N for which the Euclidean measure mu_2(J) is evaluated along the trajectories
    #: (it needs dense (N, N) Jacobians).
    MEASURE_MAX_DIM = 1024

    def __init__(self, system: SystemSpec, sim: SimulationSpec, *, seed: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        self.system_spec, self.sim, self.seed = system, sim, seed
        self.dtype, self.device = dtype, torch.device(device)

    def config(self) -> dict[str, Any]:
        rtol, atol = self.sim.tolerances(self.dtype)
        sim = asdict(self.sim) | {"rtol": rtol, "atol": atol}
        return {"system": self.system_spec.to_json(), "simulation": sim, "seed": self.seed,
                "dtype": str(self.dtype).replace("torch.", ""),
                "device": _device_key(self.device)}

    def _run_impl(self, ctx: StageContext) -> dict[str, Any]:
        from . import plotting
        from .solvers import Status

        sim = self.sim
        system = build_system(self.system_spec, seed=self.seed, dtype=self.dtype, device=self.device)
        x0 = initial_states(sim.batch, system.dim, seed=self.seed + _X0_SEED_OFFSET["simulate"],
                            scale=sim.init_scale, dtype=self.dtype, device=self.device)
        ts = torch.linspace(0.0, sim.t1, sim.n_points, dtype=self.dtype, device=self.device)
        rtol, atol = sim.tolerances(self.dtype)
        out = simulate(system, x0, ts, method=sim.method, rtol=rtol, atol=atol, dt=sim.dt,
                       chunks=sim.chunks, progress=ctx.progress)
        ys, status, stats = out["ys"], out["status"], out["stats"]
        ok = status == int(Status.SUCCESS)
        signals = group_signals(system, ys)  # (B, T, G, r)
        A, B, C = system.states()
        spectrum = system.linear_spectrum()

        # How far from rest the trajectories end: |f(x(t1))| (0 at a fixed point) and |x(t1)|.
        x_end = ys[:, -1]
        speed = torch.linalg.vector_norm(system(ts[-1], x_end), dim=-1)
        rms_end = x_end.pow(2).mean(-1).sqrt()

        # mu_2(J) along (a subsample of) the successful trajectories: an estimate, not a bound.
        measured = None
        if system.dim <= self.MEASURE_MAX_DIM and bool(ok.any()):
            from .analysis import contraction_rate

            idx = torch.linspace(0, sim.n_points - 1, min(40, sim.n_points)).round().long()
            idx = idx.to(self.device)
            res = contraction_rate(system, ys[ok][:, idx], t=ts[idx])
            measured = {"max": float(res.measures.max()),
                        "mean_time_average": float(res.mean_measure.mean()),
                        "n_points_per_member": int(idx.numel())}

        cfg = self.config()
        np.savez(
            ctx.directory / "trajectories.npz",
            ts=ts.cpu().numpy(), ys=ys.cpu().numpy(), x0=x0.cpu().numpy(),
            status=status.cpu().numpy(),
            **{f"stats_{k}": v.cpu().numpy() for k, v in stats.items()},
            signals=signals.cpu().numpy(),
            A=A.cpu().numpy(), B=B.cpu().numpy(), C=C.cpu().numpy(),
            tau=system.tau.cpu().numpy(), group_sizes=np.asarray(system.group_sizes),
            phi=np.asarray(system.phi.name), linear_spectrum=spectrum.cpu().numpy(),
            config=np.asarray(json.dumps(_jsonable(cfg), sort_keys=True)),
        )
        m = int(ok.nonzero()[0, 0]) if bool(ok.any()) else 0  # first successful member for plots
        plotting.save_figure(plotting.plot_group_signals(ts, signals[m],
                             title=f"group signals $s_g = B_g^T\\phi(x_g)$, member {m}"),
                             ctx.directory / "group_signals.png")
        plotting.save_figure(plotting.plot_neuron_traces(ts, ys[m], group_sizes=system.group_sizes,
                             title=f"neuron activities, member {m}"),
                             ctx.directory / "neuron_traces.png")
        plotting.save_figure(plotting.plot_activity_heatmap(ts, ys[m], group_sizes=system.group_sizes,
                             title=f"activity x(t), member {m}"),
                             ctx.directory / "activity_heatmap.png")
        contraction = _contraction_summary(system)
        plotting.save_figure(plotting.plot_spectrum(spectrum, bound=contraction["bound"],
                             title="spectrum of the linearisation at x = 0"),
                             ctx.directory / "spectrum.png")
        n_fail = int((~ok).sum())
        return {
            "system": {"N": system.dim, "G": system.n_groups, "r": system.rank,
                       "group_sizes": list(system.group_sizes), "phi": system.phi.name,
                       "spec": self.system_spec.to_json()},
            "n_members": int(sim.batch), "n_success": int(ok.sum()), "failed": n_fail > 0,
            "status_counts": _status_counts(status),
            "solver": {"method": sim.method, "rtol": rtol, "atol": atol, "dt": sim.dt,
                       "chunks": sim.chunks, "t1": sim.t1, "n_points": sim.n_points},
            "stats": _stats_summary(stats),
            "final": {"speed_min": float(speed[ok].min()) if n_fail < sim.batch else None,
                      "speed_max": float(speed[ok].max()) if n_fail < sim.batch else None,
                      "rms_x_median": float(rms_end[ok].median()) if n_fail < sim.batch else None},
            "linear_spectrum": _spectrum_summary(system),
            "contraction_bound": contraction,
            "measured_mu2": measured,
            "plot_member": m,
        }

    def report_section(self, outcome: StageOutcome, rel: str) -> str:
        s = outcome.summary
        sysd, solver = s["system"], s["solver"]
        lines = [
            f"## Simulation (`{rel}/`)",
            "",
            f"NGC system: N = {sysd['N']} neurons in G = {sysd['G']} groups "
            f"{sysd['group_sizes']}, rank r = {sysd['r']}, phi = {sysd['phi']}; "
            f"specification `{json.dumps(sysd['spec'], sort_keys=True)}`.",
            "",
            f"{s['n_members']} initial states x0 ~ N(0, {self.sim.init_scale}^2 I), integrated to "
            f"t1 = {solver['t1']} with `{solver['method']}` (rtol = {solver['rtol']:g}, "
            f"atol = {solver['atol']:g}"
            + (f", dt = {solver['dt']:g}" if solver["dt"] is not None else "")
            + f"), output on {solver['n_points']} points, in {solver['chunks']} chunk(s).",
            "",
            f"Status: {s['n_success']} of {s['n_members']} members succeeded "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(s['status_counts'].items()))}).",
            "",
            "| solver statistic (per member) | min | mean | max |",
            "|---|---|---|---|",
        ]
        for k, v in s["stats"].items():
            lines.append(f"| {k} | {_fmt(v['min'])} | {_fmt(v['mean'])} | {_fmt(v['max'])} |")
        fin = s["final"]
        lines += [
            "",
            f"At t1: speed |f(x(t1))| between {_fmt(fin['speed_min'], 3)} and "
            f"{_fmt(fin['speed_max'], 3)} (0 at a fixed point); median RMS activity "
            f"{_fmt(fin['rms_x_median'], 3)}.",
            "",
            f"![group signals]({rel}/group_signals.png)",
            "",
            f"![neuron traces]({rel}/neuron_traces.png)",
            "",
            f"![activity]({rel}/activity_heatmap.png)",
            "",
            "### Linear spectrum and contraction bound",
            "",
        ]
        ls, cb = s["linear_spectrum"], s["contraction_bound"]
        top = ", ".join(f"{re:.4f}{im:+.4f}i" for re, im in ls["top"])
        lines += [
            "Eigenvalues of the Jacobian at x = 0, diag(1/tau)(-I + phi'(0) W), W = A C B^T, from "
            f"the reduced problem of size {ls['n_reduced']} (`NGCSystem.linear_spectrum`): "
            f"spectral abscissa **{ls['abscissa']:.4f}** "
            + ("(x = 0 is a locally stable fixed point)" if ls["abscissa"] < 0
               else "(x = 0 is unstable)")
            + f"; leading eigenvalues {top}.",
            "",
            f"Contraction bound (`NGCSystem.contraction_bound`): mu_2(J) <= **{cb['bound']:.4f}** "
            f"at every state (coupling norm ||diag(1/tau) W||_2 = {cb['coupling_norm']:.4f}, "
            f"sup|phi'| = {cb['gamma']}); "
            + ("contraction is **certified** at rate "
               f"{-cb['bound']:.4f}." if cb["certified"] else
               "**not certified** (the bound is not negative)."),
        ]
        mm = s.get("measured_mu2")
        if mm:
            lines += [
                "",
                f"Measured along the trajectories ({mm['n_points_per_member']} points per "
                f"member): max mu_2(J) = {mm['max']:.4f}, mean over members of the time-averaged "
                f"mu_2 = {mm['mean_time_average']:.4f} (the largest Lyapunov exponent of a "
                "trajectory is at most its time-averaged mu_2).",
            ]
        lines += ["", f"![spectrum]({rel}/spectrum.png)", ""]
        return "\n".join(lines)


@dataclass(frozen=True)
class StabilitySpec:
    """Settings of the Lyapunov run of the ``stability`` stage (QR method, leading ``k`` exponents)."""

    k: int = 4
    t_total: float = 100.0
    t_transient: float = 50.0
    dt_renorm: float = 1.0
    batch: int = 2
    init_scale: float = 1.0


class StabilityStage(AbstractStage):
    """Lyapunov exponents (with standard errors) and the contraction certificate of the system.

    Files: ``lyapunov.npz`` (``exponents``, ``stderr``, ``history``, ``times``, ``x0``,
    ``linear_prediction``), ``lyapunov_convergence.png``, ``stability_spectrum.png``.
    """

    name = "stability"
    title = "Lyapunov exponents and the contraction certificate"
    version = 1

    def __init__(self, system: SystemSpec, spec: StabilitySpec, *, rtol: float | None,
                 atol: float | None, seed: int, dtype: torch.dtype, device: torch.device) -> None:
        self.system_spec, self.spec, self.seed = system, spec, seed
        r, a = _default_tolerances(dtype)
        self.rtol = r if rtol is None else rtol
        self.atol = a if atol is None else atol
        self.dtype, self.device = dtype, torch.device(device)

    def config(self) -> dict[str, Any]:
        return {"system": self.system_spec.to_json(), "lyapunov": asdict(self.spec),
                "rtol": self.rtol, "atol": self.atol, "seed": self.seed,
                "dtype": str(self.dtype).replace("torch.", ""), "device": _device_key(self.device)}

    def _run_impl(self, ctx: StageContext) -> dict[str, Any]:
        import ngcdyn as nd

        from . import plotting
        from .analysis import kaplan_yorke_dimension, lyapunov_spectrum

        sp = self.spec
        system = build_system(self.system_spec, seed=self.seed, dtype=self.dtype, device=self.device)
        if sp.k > system.dim:
            raise SpecError(f"`--lyap-k` must be at most N = {system.dim}, got {sp.k}.")
        x0 = initial_states(sp.batch, system.dim, seed=self.seed + _X0_SEED_OFFSET["stability"],
                            scale=sp.init_scale, dtype=self.dtype, device=self.device)
        ctx.log(f"stage {self.name}: QR Lyapunov run, k = {sp.k}, {sp.batch} member(s), "
                f"transient {sp.t_transient} + measured {sp.t_total} time units")
        res = lyapunov_spectrum(
            system, x0, t_total=sp.t_total, k=sp.k, t_transient=sp.t_transient,
            dt_renorm=sp.dt_renorm, solver=nd.RungeKutta("dopri5", rtol=self.rtol, atol=self.atol),
            seed=self.seed, on_failure="nan",
        )
        ex, se = res.exponents.double().cpu(), res.stderr.double().cpu()  # (B, k)
        ok = ~res.failed.cpu()
        spectrum = system.linear_spectrum()
        lin = spectrum.real.double().cpu()[: sp.k]  # (k,) exponents of the linearisation at 0
        contraction = _contraction_summary(system)
        ky = kaplan_yorke_dimension(res.exponents).double().cpu()
        n_ok = int(ok.sum())
        mean = ex[ok].mean(0) if n_ok else torch.full((sp.k,), float("nan"))
        # Standard error of the mean of independent members: sqrt(sum se_i^2) / n.
        mean_se = se[ok].pow(2).sum(0).sqrt() / n_ok if n_ok else torch.full((sp.k,), float("nan"))
        # Certificate check: a certified bound b gives every exponent <= b (theory/12_contraction).
        lam1 = float(ex[ok, 0].max()) if n_ok else float("nan")
        np.savez(ctx.directory / "lyapunov.npz", exponents=ex.numpy(), stderr=se.numpy(),
                 history=res.history.double().cpu().numpy(), times=res.times.double().cpu().numpy(),
                 x0=x0.cpu().numpy(), failed=res.failed.cpu().numpy(), linear_prediction=lin.numpy())
        m = int(ok.nonzero()[0, 0]) if n_ok else 0
        plotting.save_figure(
            plotting.plot_lyapunov_convergence(res.times, res.history[m], stderr=se[m],
                                               reference=lin,
                                               title=f"running Lyapunov estimates, member {m} "
                                                     "(dotted: linearisation at 0)"),
            ctx.directory / "lyapunov_convergence.png")
        plotting.save_figure(
            plotting.plot_spectrum(spectrum, bound=contraction["bound"], exponents=mean,
                                   title="linear spectrum, contraction bound, Lyapunov exponents"),
            ctx.directory / "stability_spectrum.png")
        return {
            "k": sp.k, "n_members": sp.batch, "n_failed": sp.batch - n_ok, "failed": n_ok < sp.batch,
            "exponents": ex, "stderr": se, "mean": mean, "mean_stderr": mean_se,
            "kaplan_yorke": ky,
            "linear_prediction": lin,
            "max_abs_deviation_from_linear": float((mean - lin).abs().max()) if n_ok else None,
            "contraction_bound": contraction,
            "lambda1_max": lam1,
            "certificate_consistent": (not contraction["certified"]) or lam1 <= contraction["bound"],
            "settings": {"t_total": sp.t_total, "t_transient": sp.t_transient,
                         "dt_renorm": sp.dt_renorm, "rtol": self.rtol, "atol": self.atol,
                         "n_renormalisations": int(res.times.shape[0])},
        }

    def report_section(self, outcome: StageOutcome, rel: str) -> str:
        s = outcome.summary
        st = s["settings"]
        lines = [
            f"## Stability (`{rel}/`)",
            "",
            f"Leading k = {s['k']} Lyapunov exponents by QR re-orthonormalisation (Benettin et al. "
            f"1980; Geist, Parlitz & Lauterborn 1990; `ngcdyn.analysis.lyapunov_spectrum`), "
            f"{s['n_members']} initial state(s), transient {st['t_transient']}, measured time "
            f"{st['t_total']}, renormalisation every {st['dt_renorm']} "
            f"({st['n_renormalisations']} intervals), dopri5 at rtol = {st['rtol']:g}, "
            f"atol = {st['atol']:g}. Standard errors by batch means over 10 blocks; the mean over "
            "members has standard error sqrt(sum se_i^2)/n. The standard error measures the "
            "fluctuations of the estimate, not the O(1/T) bias of a finite run (slow alignment of "
            "the tangent vectors when exponents are close); lengthen --lyap-t and "
            "--lyap-transient to shrink that bias."
            + (f" **{s['n_failed']} member(s) failed.**" if s["n_failed"] else ""),
            "",
            "| i | lambda_i (mean over members) | stderr | Re eig at x = 0 |",
            "|---|---|---|---|",
        ]
        for i in range(s["k"]):
            lines.append(f"| {i + 1} | {_fmt(s['mean'][i], 5)} | {_fmt(s['mean_stderr'][i], 2)} | "
                         f"{_fmt(s['linear_prediction'][i], 5)} |")
        cb = s["contraction_bound"]
        lines += [
            "",
            "Per member: " + "; ".join(
                f"member {j}: [" + ", ".join(
                    f"{_fmt(v, 4)} ± {_fmt(e, 2)}" for v, e in zip(row, erow)) + "]"
                for j, (row, erow) in enumerate(zip(s["exponents"], s["stderr"]))) + ".",
            "",
            "The last column holds the real parts of the eigenvalues of the linearisation at "
            "x = 0; a trajectory that converges to x = 0 has exactly these exponents, so agreement "
            "says the members relax to the origin; disagreement says they do not. Largest "
            "deviation of the mean from it: "
            f"{_fmt(s['max_abs_deviation_from_linear'], 3)}.",
            "",
            f"Kaplan–Yorke dimension per member (from the k exponents): "
            f"{', '.join(_fmt(v, 3) for v in s['kaplan_yorke'])}.",
            "",
            f"Contraction certificate: mu_2(J) <= {cb['bound']:.4f} everywhere, "
            + ("certified: every exponent must be <= the bound; the largest measured exponent "
               f"{_fmt(s['lambda1_max'], 4)} "
               + ("satisfies it." if s["certificate_consistent"] else "**violates it.**")
               if cb["certified"] else
               f"not certified (bound >= 0), so it does not constrain the exponents; the largest "
               f"measured exponent is {_fmt(s['lambda1_max'], 4)}."),
            "",
            f"![Lyapunov convergence]({rel}/lyapunov_convergence.png)",
            "",
            f"![spectrum and exponents]({rel}/stability_spectrum.png)",
            "",
        ]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# `ngcdyn lyapunov`: a library system or an NGC system
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LyapunovSpec:
    """Settings of ``ngcdyn lyapunov``: flows use times, maps use iteration counts."""

    k: int | None = None
    t_total: float = 200.0
    t_transient: float = 20.0
    dt_renorm: float = 1.0
    n_steps: int = 10_000
    n_transient: int = 100
    batch: int = 4
    rtol: float | None = None
    atol: float | None = None


class LyapunovStage(AbstractStage):
    """The Lyapunov spectrum of a library system (``ngcdyn.systems.SYSTEMS``) or an NGC system.

    Library systems start from ``0.2 + 0.1 U(0, 1)`` per coordinate (inside the basin of every
    reference system: the logistic and Hénon maps need small positive starts); NGC systems from
    ``N(0, 1)``. Files: ``lyapunov.npz``, ``lyapunov_convergence.png``.
    """

    name = "lyapunov"
    title = "Lyapunov spectrum"
    version = 1

    def __init__(self, system_name: str, spec: LyapunovSpec, *, ngc: SystemSpec | None,
                 seed: int, dtype: torch.dtype, device: torch.device) -> None:
        self.system_name, self.spec, self.ngc = system_name, spec, ngc
        self.seed, self.dtype, self.device = seed, dtype, torch.device(device)

    def config(self) -> dict[str, Any]:
        r, a = _default_tolerances(self.dtype)
        spec = asdict(self.spec) | {"rtol": self.spec.rtol if self.spec.rtol is not None else r,
                                    "atol": self.spec.atol if self.spec.atol is not None else a}
        return {"system": self.system_name, "ngc": None if self.ngc is None else self.ngc.to_json(),
                "lyapunov": spec, "seed": self.seed,
                "dtype": str(self.dtype).replace("torch.", ""), "device": _device_key(self.device)}

    def _make(self) -> Any:
        if self.ngc is not None:
            return build_system(self.ngc, seed=self.seed, dtype=self.dtype, device=self.device)
        from .systems import SYSTEMS

        prev = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)  # reference instances build parameters in the default dtype
        try:
            return SYSTEMS[self.system_name]()
        finally:
            torch.set_default_dtype(prev)

    def _run_impl(self, ctx: StageContext) -> dict[str, Any]:
        import ngcdyn as nd

        from . import plotting
        from .analysis import kaplan_yorke_dimension, lyapunov_spectrum, lyapunov_spectrum_map
        from .systems import AbstractMap

        system = self._make()
        cfg = self.config()["lyapunov"]
        sp = self.spec
        k = sp.k if sp.k is not None else system.dim
        if k > system.dim:
            raise SpecError(f"`--k` must be at most the system's dimension {system.dim}, got {k}.")
        seed = self.seed + _X0_SEED_OFFSET["lyapunov"]
        if self.ngc is not None:
            x0 = initial_states(sp.batch, system.dim, seed=seed, scale=1.0, dtype=self.dtype,
                                device=self.device)
        else:
            x0 = initial_states(sp.batch, system.dim, seed=seed, scale=0.1, center=0.2,
                                uniform=True, dtype=self.dtype, device=self.device)
        is_map = isinstance(system, AbstractMap)
        ctx.log(f"stage {self.name}: {self.system_name} ({'map' if is_map else 'flow'}, n = "
                f"{system.dim}), k = {k}, {sp.batch} member(s)")
        if is_map:
            res = lyapunov_spectrum_map(system, x0, n_steps=sp.n_steps, k=k,
                                        n_transient=sp.n_transient, seed=self.seed,
                                        on_failure="nan")
        else:
            res = lyapunov_spectrum(system, x0, t_total=sp.t_total, k=k,
                                    t_transient=sp.t_transient, dt_renorm=sp.dt_renorm,
                                    solver=nd.RungeKutta("dopri5", rtol=cfg["rtol"], atol=cfg["atol"]),
                                    seed=self.seed, on_failure="nan")
        ex, se = res.exponents.double().cpu(), res.stderr.double().cpu()
        ok = ~res.failed.cpu()
        n_ok = int(ok.sum())
        mean = ex[ok].mean(0) if n_ok else torch.full((k,), float("nan"))
        mean_se = se[ok].pow(2).sum(0).sqrt() / n_ok if n_ok else torch.full((k,), float("nan"))
        gt = system.ground_truth
        ref = list(gt.lyapunov_exponents)[:k] if gt.lyapunov_exponents is not None else None
        np.savez(ctx.directory / "lyapunov.npz", exponents=ex.numpy(), stderr=se.numpy(),
                 history=res.history.double().cpu().numpy(), times=res.times.double().cpu().numpy(),
                 x0=x0.cpu().numpy(), failed=res.failed.cpu().numpy())
        m = int(ok.nonzero()[0, 0]) if n_ok else 0
        plotting.save_figure(
            plotting.plot_lyapunov_convergence(res.times, res.history[m], stderr=se[m],
                                               reference=ref,
                                               title=f"{self.system_name}: running estimates, "
                                                     f"member {m}"),
            ctx.directory / "lyapunov_convergence.png")
        return {
            "system": self.system_name, "kind": "map" if is_map else "flow", "dim": system.dim,
            "k": k, "n_members": sp.batch, "n_failed": sp.batch - n_ok, "failed": n_ok < sp.batch,
            "exponents": ex, "stderr": se, "mean": mean, "mean_stderr": mean_se,
            "kaplan_yorke": kaplan_yorke_dimension(res.exponents).double().cpu(),
            "reference": ref, "reference_source": gt.reference if ref is not None else None,
        }

    def report_section(self, outcome: StageOutcome, rel: str) -> str:
        s = outcome.summary
        unit = "per iteration" if s["kind"] == "map" else "per unit time"
        lines = [f"## Lyapunov spectrum of `{s['system']}` (`{rel}/`)", "",
                 f"{s['kind']}, n = {s['dim']}, {s['n_members']} member(s), exponents {unit}.", "",
                 "| i | lambda_i | stderr | reference |", "|---|---|---|---|"]
        for i in range(s["k"]):
            ref = s["reference"][i] if s["reference"] is not None and i < len(s["reference"]) else None
            lines.append(f"| {i + 1} | {_fmt(s['mean'][i], 5)} | {_fmt(s['mean_stderr'][i], 2)} "
                         f"| {_fmt(ref, 5)} |")
        if s["reference_source"]:
            lines += ["", f"Reference: {s['reference_source']}."]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Running stages, the main job, the report
# --------------------------------------------------------------------------------------------

#: Stage names of the main job, in order (``ngcdyn run --stages``).
MAIN_STAGES: tuple[str, ...] = ("simulate", "stability")


def run_stages(stages: Sequence[tuple[AbstractStage, Path]], *, force: bool = False,
               progress: bool = False, log: Callable[[str], None] = lambda s: None
               ) -> list[StageOutcome]:
    """Run ``(stage, folder)`` pairs in order, with a progress bar over stages when there are several.

    Returns the outcomes in order.
    """
    outcomes = []
    it = stages if len(stages) < 2 else _progress(list(stages), enabled=progress, desc="stages")
    for stage, folder in it:
        outcomes.append(stage.run(folder, force=force, progress=progress, log=log))
    return outcomes


def write_report(out: Path, stages: Sequence[AbstractStage], outcomes: Sequence[StageOutcome],
                 meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.json`` into ``out`` (atomically); returns their paths.

    ``meta`` holds what was run: the command line, version, seed, device, dtype, and ``ngc``
    (default True: the report explains the NGC system).
    """
    md = [
        "# ngcdyn report",
        "",
        "Produced by `" + meta.get("command", "ngcdyn run") + "` "
        f"(ngcdyn {meta.get('ngcdyn_version')}, torch {torch.__version__}, seed {meta.get('seed')}, "
        f"device {meta.get('device')}, dtype {meta.get('dtype')}).",
        "",
    ]
    if meta.get("ngc", True):
        md += [
            "The NGC system is ngcdyn's continuous-time reading of neuronal group communication "
            "(Pei, Huang & Wang 2025, arXiv:2510.16851): "
            "tau_g dx_g/dt = -x_g + A_g sum_h C_gh B_h^T phi(x_h), with receiver states A_g, "
            "sender states B_g and channels C_gh; the definitions are ngcdyn's own (see "
            "`theory/`), not the paper's.",
            "",
        ]
    md += [
        "| stage | what | status | time (s) | config hash |",
        "|---|---|---|---|---|",
    ]
    for st, oc in zip(stages, outcomes):
        state = "reused (skipped)" if oc.skipped else "ran"
        if oc.failed:
            state += ", **members failed**"
        md.append(f"| {oc.name} | {st.title} | {state} | {_fmt(oc.seconds, 3)} | `{oc.config_hash}` |")
    md.append("")
    for st, oc in zip(stages, outcomes):
        rel = os.path.relpath(oc.directory, out)
        md.append(st.report_section(oc, rel.replace(os.sep, "/")))
    report = {
        "meta": meta,
        "stages": {oc.name: {"title": st.title, "directory": os.path.relpath(oc.directory, out),
                             "config_hash": oc.config_hash, "config": oc.config,
                             "skipped": oc.skipped, "seconds": oc.seconds, "failed": oc.failed,
                             "files": oc.files, "summary": oc.summary}
                   for st, oc in zip(stages, outcomes)},
    }
    out.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out / "report.md", out / "report.json"
    _write_text_atomic(md_path, "\n".join(md))
    _write_text_atomic(json_path, _dump(report))
    return md_path, json_path


def run_main_job(out: Path, *, system: SystemSpec, sim: SimulationSpec, stability: StabilitySpec,
                 stage_names: Sequence[str] = MAIN_STAGES, seed: int = 0,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
                 force: bool = False, progress: bool = False,
                 log: Callable[[str], None] = lambda s: None,
                 command: str = "ngcdyn run") -> tuple[list[StageOutcome], Path, Path]:
    """The main job: the chosen stages of :data:`MAIN_STAGES` into ``out/<stage>/``, then the report.

    Returns the outcomes and the paths of ``report.md`` and ``report.json``.
    """
    device = torch.device(device)
    all_stages: dict[str, AbstractStage] = {
        "simulate": SimulateStage(system, sim, seed=seed, dtype=dtype, device=device),
        "stability": StabilityStage(system, stability, rtol=sim.rtol, atol=sim.atol, seed=seed,
                                    dtype=dtype, device=device),
    }
    chosen = [all_stages[n] for n in stage_names]
    outcomes = run_stages([(s, out / s.name) for s in chosen], force=force, progress=progress,
                          log=log)
    meta = {"command": command, "ngcdyn_version": _version(), "seed": seed,
            "device": str(device), "dtype": str(dtype).replace("torch.", ""),
            "stages": list(stage_names)}
    md, js = write_report(out, chosen, outcomes, meta)
    return outcomes, md, js
