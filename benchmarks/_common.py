"""Shared helpers for the benchmark scripts: timing, machine description and result writers.

Every benchmark in this folder follows the same protocol (STYLE.md, principle 15):

1. the same problem, the same weights and the same right-hand side for every peer, in one process,
   so that machine load affects all of them alike;
2. garbage collection off while a timed call runs, the accelerator synchronised before the clock is
   read;
3. a warm-up call before timing, then at least three timed repeats, interleaved across the peers
   (repeat 1 of every peer, then repeat 2, ...), and the median reported with the spread;
4. results written as JSON (machine-readable, every number) and Markdown (for people), with the
   machine, library versions, torch thread settings and load average recorded beside them.

Nothing written here may contain a path of the machine that ran it: :func:`portable_path` turns
paths into ones relative to the repository (or a bare file name).

Import it from a script in this folder as ``from _common import ...``; the scripts put their own
folder on ``sys.path`` first.

Examples
--------
>>> t = median_timing([0.3, 0.1, 0.2])
>>> t["median_s"], t["min_s"], t["max_s"], t["n"]
(0.2, 0.1, 0.3, 3)
>>> print(markdown_table(["a", "b"], [[1, "x"], [22, "y"]]))
| a | b |
|---:|:---|
| 1 | x |
| 22 | y |
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import importlib.metadata
import itertools
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "REPO_ROOT",
    "command_line",
    "configure_threads",
    "gc_disabled",
    "interleaved_timings",
    "load_average",
    "machine_info",
    "markdown_table",
    "median_timing",
    "portable_path",
    "sanitize_message",
    "fmt_float",
    "fmt_time",
    "sync",
    "time_per_call",
    "to_jsonable",
    "write_json",
]

REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- machine


def configure_threads(n_threads: int) -> dict[str, int]:
    """Set torch's intra-op threads (``0`` keeps torch's default) and say what is in force.

    On a shared, oversubscribed CPU, OpenMP worker threads that are descheduled make parallel
    kernels wait at their barriers: we measured ``Tensor.nonzero`` on a (256, 200) mask taking
    27 ms with 2 threads against 0.76 ms with 1 thread while the 2-core machine ran at load 8.
    Small batched solves gain nothing from intra-op parallelism, so the benchmarks default to one
    thread and record the setting.

    Returns
    -------
    dict
        ``{"torch_num_threads": ..., "torch_num_interop_threads": ..., "requested": n_threads}``.
    """
    if n_threads < 0:
        raise ValueError(f"`n_threads` must be >= 0 (0 keeps torch's default), got {n_threads}.")
    if n_threads > 0:
        torch.set_num_threads(n_threads)
    return {
        "requested": int(n_threads),
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``None`` where the OS does not report them)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:  # Linux only; other systems report None
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        return None
    return None


def machine_info(device: torch.device | str = "cpu",
                 packages: Sequence[str] = ()) -> dict[str, Any]:
    """What ran the benchmark: CPU, cores, memory, OS, Python, library versions, threads, load.

    No host name and no paths are recorded.

    Parameters
    ----------
    device
        The torch device the benchmark used; for CUDA the device name is recorded too.
    packages
        Distribution names whose installed versions to record (``None`` when not installed).
    """
    device = torch.device(device)
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count()
    cpu_model = platform.processor() or None
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    parallel = torch.__config__.parallel_info().splitlines()
    keys = ("ATen parallel backend", "MKL", "OpenMP", "MKLDNN")
    backend = [ln.strip() for ln in parallel if ln.strip().startswith(keys)]
    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": cpu_model,
        "logical_cpus": os.cpu_count(),
        "cpus_available": affinity,
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_parallel_backend": backend,
        "torch_num_threads": torch.get_num_threads(),
        "device": str(device),
        "load_average_1_5_15": load_average(),
        "versions": {p: _version(p) for p in packages},
    }
    if device.type == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(device)
    return info


# ---------------------------------------------------------------------------- timing


def sync(device: torch.device | str | None) -> None:
    """Wait for queued kernels on ``device`` (a no-op on CPU) so a clock read is meaningful."""
    if device is None:
        return
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextlib.contextmanager
def gc_disabled() -> Iterator[None]:
    """Collect garbage, then keep the collector off for the block (restored afterwards)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def median_timing(times: Sequence[float]) -> dict[str, Any]:
    """Summary of repeated wall times in seconds: median, min, max and all samples.

    Examples
    --------
    >>> median_timing([2.0, 1.0])["median_s"]
    1.5
    """
    if len(times) == 0:
        raise ValueError("`times` must hold at least one measurement, got an empty sequence.")
    return {
        "median_s": float(statistics.median(times)),
        "min_s": float(min(times)),
        "max_s": float(max(times)),
        "n": len(times),
        "all_s": [float(t) for t in times],
    }


def _timed(fn: Callable[[], Any], device: torch.device | str | None) -> tuple[float, Any]:
    sync(device)
    with gc_disabled():
        start = time.perf_counter()
        result = fn()
        sync(device)
        elapsed = time.perf_counter() - start
    return elapsed, result


def interleaved_timings(
    cases: Mapping[str, Callable[[], Any]],
    repeats: int,
    *,
    warmup: bool | Mapping[str, bool] = True,
    device: torch.device | str | None = None,
    on_error: str = "record",
) -> dict[str, dict[str, Any]]:
    """Time several callables side by side: one warm-up each, then ``repeats`` rounds.

    Round ``k`` runs every case once, in the given order, so slow drifts of the machine's load
    are shared by all cases instead of penalising whichever ran last.

    Parameters
    ----------
    cases
        ``name -> fn``; ``fn()`` does the whole timed job and returns its result.
    repeats
        Timed calls per case (>= 1; use >= 3 for reported numbers).
    warmup
        Whether to run each case once untimed first (or a per-case mapping).
    device
        Synchronised before and after each call.
    on_error
        ``"record"``: an exception drops that case from later rounds and is stored as its
        ``"error"`` (``"ExcType: message"``); ``"raise"``: propagate it.

    Returns
    -------
    dict
        ``name -> {"timing": median_timing(...) or None, "result": last result or None,
        "error": str or None}``.
    """
    if repeats < 1:
        raise ValueError(f"`repeats` must be >= 1, got {repeats}.")
    if on_error not in ("record", "raise"):
        raise ValueError(f"`on_error` must be 'record' or 'raise', got {on_error!r}.")
    times: dict[str, list[float]] = {k: [] for k in cases}
    results: dict[str, Any] = {k: None for k in cases}
    errors: dict[str, str | None] = {k: None for k in cases}

    def run(name: str, timed: bool) -> None:
        try:
            elapsed, res = _timed(cases[name], device)
        except Exception as exc:  # a peer failing is a result, not a crash of the benchmark
            if on_error == "raise":
                raise
            errors[name] = sanitize_message(f"{type(exc).__name__}: {exc}")
            return
        results[name] = res
        if timed:
            times[name].append(elapsed)

    for name in cases:
        do_warm = warmup if isinstance(warmup, bool) else warmup.get(name, True)
        if do_warm:
            run(name, timed=False)
    for _ in range(repeats):
        for name in cases:
            if errors[name] is None:
                run(name, timed=True)
    return {
        k: {
            "timing": median_timing(times[k]) if times[k] else None,
            "result": results[k],
            "error": errors[k],
        }
        for k in cases
    }


def time_per_call(
    fn: Callable[[], Any],
    *,
    min_time: float = 0.05,
    device: torch.device | str | None = None,
) -> float:
    """Seconds per call of a fast ``fn``: call it in a loop that lasts at least ``min_time``.

    The loop length is found like ``timeit.Timer.autorange`` (1, 2, 5, 10, 20, ... calls); the
    returned value is the total of the final loop divided by its number of calls.
    """
    for number in _one_two_five():
        sync(device)
        with gc_disabled():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            sync(device)
            elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / number
    raise AssertionError("unreachable")  # _one_two_five is infinite


def _one_two_five() -> Iterator[int]:
    """1, 2, 5, 10, 20, 50, ... (the loop lengths ``timeit.Timer.autorange`` tries)."""
    for exponent in itertools.count():
        for mantissa in (1, 2, 5):
            yield mantissa * 10**exponent


# ---------------------------------------------------------------------------- output


_PATH_RE = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.\-+~@]+){2,}[\\/]?")


def sanitize_message(message: str, limit: int = 400) -> str:
    """An error message without file-system paths (replaced by ``<path>``), cut to ``limit`` chars.

    Examples
    --------
    >>> sanitize_message("No such file: /home/u/x.py, line 3")
    'No such file: <path>, line 3'
    """
    text = _PATH_RE.sub("<path>", str(message))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def portable_path(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the repository root if it lies inside it, else its bare name.

    Examples
    --------
    >>> portable_path(REPO_ROOT / "benchmarks" / "results" / "solvers.json")
    'benchmarks/results/solvers.json'
    """
    p = Path(path).resolve()
    try:
        return p.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return p.name


def to_jsonable(obj: Any) -> Any:
    """Convert tensors, numpy values, tuples and paths to JSON types; NaN and inf become ``None``.

    Examples
    --------
    >>> to_jsonable({"a": torch.tensor([1.0, float("nan")]), "b": np.int64(3), "c": (1, 2)})
    {'a': [1.0, None], 'b': 3, 'c': [1, 2]}
    """
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return portable_path(obj)
    if isinstance(obj, (torch.dtype, torch.device)):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``to_jsonable(data)`` as strict JSON (no NaN tokens), indented, newline-terminated."""
    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                   align: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table; ``align`` gives ``"l"`` or ``"r"`` per column.

    By default a column is right-aligned if its entry in the first row is a number, else
    left-aligned.
    """
    if align is None:
        first = rows[0] if rows else [""] * len(headers)
        align = ["r" if isinstance(v, (int, float, np.number)) else "l" for v in first]
    if len(align) != len(headers):
        raise ValueError(f"`align` needs one entry per column ({len(headers)}), got {len(align)}.")
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "|".join(sep) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def fmt_float(x: float | None, digits: int = 3) -> str:
    """Compact scientific/fixed formatting for tables; ``None`` or NaN prints as an em dash.

    Examples
    --------
    >>> fmt_float(0.000123456), fmt_float(12.3456), fmt_float(None)
    ('1.23e-04', '12.3', '—')
    """
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    ax = abs(x)
    if ax != 0 and (ax < 1e-2 or ax >= 1e5):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def fmt_time(seconds: float | None) -> str:
    """Seconds as ``"1.23 s"``, ``"4.56 ms"`` or ``"7.8 µs"``.

    Examples
    --------
    >>> fmt_time(1.5), fmt_time(0.00456), fmt_time(7.8e-6)
    ('1.50 s', '4.56 ms', '7.80 µs')
    """
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} µs"


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran the script, with path arguments made portable."""
    argv = list(sys.argv if argv is None else argv)
    out = []
    for a in argv:
        if os.sep in a or "/" in a:
            out.append(portable_path(a))
        else:
            out.append(a)
    return "python " + " ".join(out)
