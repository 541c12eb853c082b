"""Smoke test of ``benchmarks/lyapunov.py``: a ``--quick`` run writes complete, consistent results.

The script runs once, in a subprocess, into a temporary folder (about 30 s on 2 loaded cores). The
tests check the JSON's structure and exact bookkeeping identities; never wall-clock times.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "lyapunov.py"

pytestmark = pytest.mark.slow

# What `--quick` runs (see parse_args in the script).
QUICK_SINGLE_T, QUICK_ENSEMBLE_B, QUICK_BATCH, QUICK_LOOP = [5.0, 10.0], [4, 16], 32, 2


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_lyapunov")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return out, json.loads((out / "lyapunov.json").read_text(encoding="utf-8"))


def test_structure_and_files(quick):
    out, res = quick
    assert set(res) == {"benchmark", "command", "config", "machine", "accuracy", "throughput",
                        "load_average", "notes", "run_time_s", "outputs"}
    assert res["benchmark"] == "lyapunov" and res["config"]["quick"] is True
    assert (out / "lyapunov.md").stat().st_size > 0
    assert [r["T"] for r in res["accuracy"]["single"]] == QUICK_SINGLE_T
    assert [r["B"] for r in res["accuracy"]["ensemble"]] == QUICK_ENSEMBLE_B
    text = (out / "lyapunov.json").read_text(encoding="utf-8") + (out / "lyapunov.md").read_text(encoding="utf-8")
    assert str(ROOT) not in text and str(out) not in text  # no machine paths in the results


def test_bookkeeping(quick):
    _, res = quick
    ref = res["accuracy"]["reference_lambda1"]
    assert ref == 0.9056  # Sprott
    for r in res["accuracy"]["single"]:
        # the relative error is |λ1 - ref| / ref of the reported λ1
        assert math.isclose(r["rel_error"], abs(r["lambda1"] - ref) / ref, rel_tol=1e-12)
        # Liouville: Σλ = -(σ + 1 + β) up to the RK4 bias (~1e-4 at dt = 0.01)
        assert r["sum_error"] <= 1e-3
    for r in res["accuracy"]["ensemble"]:
        assert r["total_time"] == r["B"] * r["T_each"]
    thr = res["throughput"]
    assert thr["B"] == QUICK_BATCH and thr["loop_timed_systems"] == QUICK_LOOP
    lp = thr["loop"]
    assert math.isclose(lp["extrapolated_s"], lp["per_system_s"] * thr["B"], rel_tol=1e-12)
    assert math.isclose(thr["speedup_batched_over_loop"],
                        lp["extrapolated_s"] / thr["batched"]["timing"]["median_s"], rel_tol=1e-12)
    # The looped single-system calls reproduce the batched members (fixed-step RK4: the same
    # arithmetic per member, up to batched-kernel rounding).
    assert lp["max_abs_difference_vs_batched"] <= 1e-9
    rows = thr["nolds"]["rows"]
    assert len(rows) == 4 and all(("lambda1" in r) or ("error" in r) for r in rows)
