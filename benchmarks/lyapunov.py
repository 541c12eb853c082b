"""Lyapunov benchmark: accuracy against cost on Lorenz, batched throughput, and nolds.lyap_r.

The problem is the Lorenz system (σ = 10, ρ = 28, β = 8/3, float64), whose spectrum is
(0.9056, 0, −14.5723) (Sprott; REFERENCES.md section 1). Every ngcdyn estimate is the full
spectrum (k = 3) by the QR method (``ngcdyn.analysis.lyapunov_spectrum``) with the analytic
Jacobian of ``ngcdyn.systems.Lorenz``, renormalisation interval 1, and RK4 with a fixed step 0.01
(its bias on the exactly known sum of the exponents is ~1e-4, far below the errors measured here).
Initial states are seeded, ``(0, 0, 25) + 5 N(0, I)``. A transient of 20 (state and tangent
vectors) is discarded first: the Gaussian ensemble needs it to relax onto the attractor's
invariant measure (measured over 1,024 states: the first 5 intervals after a transient of 5
average λ1 = 0.852, after 10: 0.893, after 20: 0.903).

Part 1 — accuracy against cost. (a) One trajectory, total time T in {25, 50, 100, 200}: the error
of λ1 against T and against the wall time, with the batch-means standard error the result reports.
(b) Ensembles of B in {16, 64, 256, 512, 1024} independent initial states in one batched call, T = 50
each: the error of the ensemble mean of λ1 (by ergodicity an ensemble of independent states is
worth one run B times longer) and its standard error std/sqrt(B), against the wall time.
Target (issue 3): λ1 within 0.5 % of 0.9056 using at most 20 s.

Part 2 — batched throughput: spectra of 1,024 Lorenz systems with different initial states
(T = 20 each) in one batched call, against a loop of single-system calls (a subset of the loop is
timed and the per-system time extrapolated to 1,024 — the report says how many were timed), and
against ``nolds.lyap_r`` (Rosenstein et al. 1993) on the x component sampled every 0.01 (5,000
points; λ1 only), for its error and time, with its default parameters and a few common
alternatives (the method is sensitive to them). Target (issue 3): the batched call at least 20x the
throughput of the loop.

The protocol of ``_common.py``: one process, a warm-up call before timing, garbage collection off
while timing, torch's intra-op threads set by ``--threads`` (default 1) and recorded, load averages
recorded. The long calls of part 1 are timed once each (after the warm-up); part 2's batched call
and loop are timed ``--repeats`` times, interleaved.

Run from the repository root::

    python benchmarks/lyapunov.py            # full run (several minutes on 2 cores)
    python benchmarks/lyapunov.py --quick    # small smoke run

Results: ``benchmarks/results/lyapunov.json`` and ``lyapunov.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402  (the path above must be set first)
    command_line,
    configure_threads,
    fmt_float,
    fmt_time,
    gc_disabled,
    interleaved_timings,
    load_average,
    machine_info,
    markdown_table,
    portable_path,
    sanitize_message,
    sync,
    write_json,
)

import ngcdyn as nd  # noqa: E402
from ngcdyn.analysis import lyapunov_spectrum  # noqa: E402
from ngcdyn.systems import Lorenz  # noqa: E402

SPROTT = (0.9056, 0.0, -14.5723)
TARGET_REL_ERROR = 0.005
TARGET_WALL_S = 20.0
TARGET_SPEEDUP = 20.0
DT_RENORM = 1.0
T_TRANSIENT = 20.0
RK4_DT = 0.01
PACKAGES = ("torch", "numpy", "scipy", "nolds")


def lorenz_states(B: int, seed: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y0 = torch.randn(B, 3, generator=g, dtype=torch.float64) * 5 + torch.tensor([0.0, 0.0, 25.0])
    return y0.to(device)


def solver() -> nd.AbstractSolver:
    return nd.RungeKutta("rk4", dt=RK4_DT)


def spectrum(y0: torch.Tensor, T: float):
    return lyapunov_spectrum(Lorenz(), y0, t_total=T, t_transient=T_TRANSIENT, dt_renorm=DT_RENORM,
                             solver=solver(), n_blocks=min(10, int(T / DT_RENORM)))


def timed(fn, device) -> tuple[float, Any]:
    sync(device)
    with gc_disabled():
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        return time.perf_counter() - t0, out


def load_nolds_measures():
    """``nolds.measures`` without running ``nolds/__init__``.

    nolds 0.6.3's package import loads its bundled data sets with
    ``importlib.resources.files(__name__)`` on a module, which raises ``TypeError: 'nolds.datasets'
    is not a package`` on Python 3.11; its algorithms live in ``measures.py``, which imports only
    numpy and the standard library, so it is loaded directly from the installed file.
    """
    spec = importlib.util.find_spec("nolds")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "measures.py"
    mspec = importlib.util.spec_from_file_location("nolds_measures", path)
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    return module


# ============================================================================ part 1


def run_accuracy(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    ref = SPROTT[0]
    spectrum(lorenz_states(2, args.seed + 99, device), 2.0)  # warm-up
    single = []
    y_single = lorenz_states(1, args.seed, device)[0]
    for T in args.single_T:
        wall, res = timed(lambda: spectrum(y_single, T), device)
        lam = res.exponents.cpu()
        single.append({
            "T": T, "wall_s": wall, "exponents": lam.tolist(), "lambda1": float(lam[0]),
            "abs_error": abs(float(lam[0]) - ref), "rel_error": abs(float(lam[0]) - ref) / ref,
            "stderr_batch_means": float(res.stderr[0]),
            "sum_error": abs(float(lam.sum()) + (10 + 1 + 8 / 3)),
        })
        print(f"  single T={T:6.0f}: λ1 = {float(lam[0]):.4f} ± {float(res.stderr[0]):.4f} "
              f"(err {single[-1]['rel_error'] * 100:.2f} %) in {wall:.1f} s")
    ensemble = []
    for B in args.ensemble_B:
        y0 = lorenz_states(B, args.seed + 1, device)
        wall, res = timed(lambda: spectrum(y0, args.ensemble_T), device)
        lam = res.exponents.cpu()
        mean = lam.mean(0)
        se = lam[:, 0].std(correction=1) / math.sqrt(B)
        err = abs(float(mean[0]) - ref)
        row = {
            "B": B, "T_each": args.ensemble_T, "total_time": B * args.ensemble_T, "wall_s": wall,
            "mean_exponents": mean.tolist(), "lambda1": float(mean[0]), "abs_error": err,
            "rel_error": err / ref, "stderr_ensemble": float(se),
            "target_met": bool(err / ref <= TARGET_REL_ERROR and wall <= TARGET_WALL_S),
            "target_met_at_2_stderr": bool(err / ref <= TARGET_REL_ERROR and
                                           2 * float(se) / ref <= TARGET_REL_ERROR and
                                           wall <= TARGET_WALL_S),
        }
        ensemble.append(row)
        print(f"  ensemble B={B:5d}: λ1 = {row['lambda1']:.4f} ± {row['stderr_ensemble']:.4f} "
              f"(err {row['rel_error'] * 100:.2f} %) in {wall:.1f} s")
    met = [r for r in ensemble if r["target_met"]]
    met2 = [r for r in ensemble if r["target_met_at_2_stderr"]]
    return {
        "reference_lambda1": ref, "single": single, "ensemble": ensemble,
        "target": {"rel_error_max": TARGET_REL_ERROR, "wall_s_max": TARGET_WALL_S,
                   "met": bool(met), "met_by": [r["B"] for r in met],
                   "met_with_2_stderr_margin": bool(met2),
                   "met_with_2_stderr_margin_by": [r["B"] for r in met2]},
    }


# ============================================================================ part 2


def run_throughput(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    B, T, n_loop = args.batch, args.throughput_T, args.loop_subset
    y0 = lorenz_states(B, args.seed + 2, device)
    cases = {
        "batched": lambda: spectrum(y0, T),
        "loop_subset": lambda: [spectrum(y0[i], T) for i in range(n_loop)],
    }
    t = interleaved_timings(cases, args.repeats, device=device)
    batched_s = t["batched"]["timing"]["median_s"]
    loop_subset_s = t["loop_subset"]["timing"]["median_s"]
    per_system_loop = loop_subset_s / n_loop
    loop_extrapolated = per_system_loop * B
    res_b = t["batched"]["result"]
    lam_b = res_b.exponents.cpu()
    lam_loop = torch.stack([r.exponents.cpu() for r in t["loop_subset"]["result"]])
    # The same systems: the loop members must reproduce the batched numbers (fixed-step RK4, the
    # same arithmetic per member up to batched-kernel rounding).
    agree = float((lam_loop - lam_b[:n_loop]).abs().max())
    speedup = loop_extrapolated / batched_s
    out = {
        "B": B, "T_each": T, "t_transient": T_TRANSIENT, "loop_timed_systems": n_loop,
        "batched": {"timing": t["batched"]["timing"], "systems_per_s": B / batched_s,
                    "mean_exponents": lam_b.mean(0).tolist(),
                    "rel_error_lambda1_mean": abs(float(lam_b[:, 0].mean()) - SPROTT[0]) / SPROTT[0]},
        "loop": {"timing_subset": t["loop_subset"]["timing"], "per_system_s": per_system_loop,
                 "extrapolated_s": loop_extrapolated, "systems_per_s": 1 / per_system_loop,
                 "max_abs_difference_vs_batched": agree},
        "speedup_batched_over_loop": speedup,
        "target": {"speedup_min": TARGET_SPEEDUP, "met": bool(speedup >= TARGET_SPEEDUP)},
    }
    print(f"  batched {B} systems: {batched_s:.2f} s ({B / batched_s:.1f} systems/s); loop: "
          f"{per_system_loop:.2f} s per system (timed {n_loop}, extrapolated {loop_extrapolated:.0f} s); "
          f"speedup x{speedup:.0f}")
    out["nolds"] = run_nolds(args, device)
    return out


NOLDS_PARAMS = [
    ("defaults (fit='poly')", {}),
    ("emb_dim=3, lag=11", {"emb_dim": 3, "lag": 11}),
    ("emb_dim=5, lag=10, min_tsep=100, trajectory_len=20",
     {"emb_dim": 5, "lag": 10, "min_tsep": 100, "trajectory_len": 20}),
    ("emb_dim=5, lag=10, min_tsep=100, trajectory_len=100",
     {"emb_dim": 5, "lag": 10, "min_tsep": 100, "trajectory_len": 100}),
]


def run_nolds(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    measures = load_nolds_measures()
    if measures is None:
        return {"error": "nolds is not installed (pip install -e '.[bench]')"}
    # The x series of one trajectory, after the transient, sampled every 0.01 (high accuracy).
    n_points = args.nolds_points
    dt = 0.01
    ref_solver = nd.RungeKutta("dopri5", rtol=1e-10, atol=1e-12)
    y0 = lorenz_states(1, args.seed + 3, device)[0]
    t_eval = torch.linspace(0.0, T_TRANSIENT + (n_points - 1) * dt,
                            int(round(T_TRANSIENT / dt)) + n_points, dtype=torch.float64, device=device)
    sim_s, sol = timed(lambda: ref_solver.solve(Lorenz(), y0, t_eval), device)
    x = sol.ys[-n_points:, 0].cpu().numpy()
    rows = []
    for label, kw in NOLDS_PARAMS:
        try:
            measures.lyap_r(x[:500], fit="poly", **kw)  # warm-up
            wall, lam = timed(lambda: measures.lyap_r(x, fit="poly", **kw), None)
            lam1 = float(lam) / dt  # lyap_r returns a rate per sample
            rows.append({"params": label, "lambda1": lam1, "wall_s": wall,
                         "rel_error": abs(lam1 - SPROTT[0]) / SPROTT[0]})
            print(f"  nolds.lyap_r [{label}]: λ1 = {lam1:.3f} (err {rows[-1]['rel_error'] * 100:.0f} %) "
                  f"in {wall:.2f} s")
        except Exception as exc:  # a peer failing is a result
            rows.append({"params": label, "error": sanitize_message(f"{type(exc).__name__}: {exc}")})
    return {"n_points": n_points, "sample_dt": dt, "simulation_s": sim_s, "rows": rows,
            "version": _nolds_version()}


def _nolds_version() -> str | None:
    try:
        import importlib.metadata as md
        return md.version("nolds")
    except Exception:
        return None


# ============================================================================ report


def make_notes(res: dict[str, Any]) -> list[str]:
    """Notes derived from the measured numbers (so that they stay true when the numbers change)."""
    acc = res["accuracy"]
    big = max(acc["ensemble"], key=lambda r: r["B"])
    spread = big["stderr_ensemble"] * math.sqrt(big["B"])  # std of single-run λ1 at T_each
    per_unit = spread * math.sqrt(big["T_each"])
    notes = [
        "Chaotic exponents are statistical. The spread of single-run estimates of λ1 over the "
        f"{big['B']} ensemble members at T = {big['T_each']:g} is {spread:.3f}, i.e. about "
        f"{per_unit:.2f}/sqrt(T); the ensemble rows average independent initial states "
        "(ergodicity), which one batched call computes at little extra cost per member.",
    ]
    short = [r for r in acc["single"] if r["T"] <= 50]
    if short:
        r = short[0]
        notes.append(
            f"The batch-means standard error of one run is conservative when its blocks are short: "
            f"at T = {r['T']:g} (10 blocks of {r['T'] / 10:g}) it reports "
            f"{r['stderr_batch_means']:.3f}, against a spread of about "
            f"{per_unit / math.sqrt(r['T']):.3f} of single-run estimates (neighbouring short "
            "blocks are anti-correlated); use longer runs or ensembles for tight error bars.")
    thr = res["throughput"]
    notes += [
        f"The loop is extrapolated from {thr['loop_timed_systems']} timed single-system calls to "
        f"{thr['B']} (the full loop would take about the extrapolated time); it runs the same code "
        "with a batch of one.",
        "Timings on a shared 2-core machine vary with its load; the load averages are recorded.",
    ]
    return notes


def write_markdown(res: dict[str, Any], path: Path) -> None:
    acc, thr = res["accuracy"], res["throughput"]
    L = ["# Lyapunov benchmark (Lorenz σ=10, ρ=28, β=8/3)", ""]
    L.append(f"Command: `{res['command']}`. Threads: {res['config']['threads']['torch_num_threads']}. "
             f"Load average (1/5/15 min) at start {res['load_average']['start']}, end "
             f"{res['load_average']['end']}. Reference λ = {SPROTT} (Sprott).")
    L.append("")
    L.append("ngcdyn: full spectrum by QR re-orthonormalisation (analytic Jacobian), Δ = 1, "
             f"transient {T_TRANSIENT:g}, RK4 with dt = {RK4_DT}.")
    L.append("")
    L.append("## 1. Accuracy against cost")
    L.append("")
    L.append("### One trajectory")
    L.append("")
    L.append(markdown_table(
        ["T", "λ1", "stderr (batch means)", "rel. error of λ1", "error of Σλ", "wall time"],
        [[r["T"], fmt_float(r["lambda1"], 4), fmt_float(r["stderr_batch_means"]),
          f"{r['rel_error'] * 100:.2f} %", fmt_float(r["sum_error"]), fmt_time(r["wall_s"])]
         for r in acc["single"]]))
    L.append("")
    L.append(f"### Ensembles of independent initial states (T = {acc['ensemble'][0]['T_each']:g} each, one batched call)")
    L.append("")
    L.append(markdown_table(
        ["B", "total time B·T", "mean λ1", "stderr std/√B", "rel. error of λ1", "2·stderr / λ1",
         "wall time", "target met (with 2·stderr margin)"],
        [[r["B"], r["total_time"], fmt_float(r["lambda1"], 4), fmt_float(r["stderr_ensemble"]),
          f"{r['rel_error'] * 100:.2f} %", f"{2 * r['stderr_ensemble'] / acc['reference_lambda1'] * 100:.2f} %",
          fmt_time(r["wall_s"]),
          ("yes" if r["target_met"] else "no")
          + (" (yes)" if r["target_met_at_2_stderr"] else " (no)")] for r in acc["ensemble"]]))
    tg = acc["target"]
    L.append("")
    L.append(f"**Target** λ1 within {TARGET_REL_ERROR * 100:g} % in ≤ {TARGET_WALL_S:g} s: "
             f"{'met' if tg['met'] else 'NOT met'}"
             + (f" by B = {tg['met_by']}" if tg["met"] else "")
             + ("; with the error bar inside the target too (2 standard errors ≤ "
                f"{TARGET_REL_ERROR * 100:g} %) by B = {tg['met_with_2_stderr_margin_by']}"
                if tg["met_with_2_stderr_margin"] else
                "; not with a 2-standard-error margin, so partly the luck of the seed")
             + ". Rows whose error is inside the target but whose standard error is not are "
               "luck of the seed, not accuracy.")
    L.append("")
    L.append("## 2. Batched throughput")
    L.append("")
    b, lp = thr["batched"], thr["loop"]
    L.append(markdown_table(
        ["way", "systems", "wall time", "systems / s"],
        [["one batched call", thr["B"], fmt_time(b["timing"]["median_s"]), fmt_float(b["systems_per_s"])],
         [f"loop of single calls (timed {thr['loop_timed_systems']}, extrapolated)", thr["B"],
          fmt_time(lp["extrapolated_s"]), fmt_float(lp["systems_per_s"])]]))
    L.append("")
    L.append(f"Speedup of the batched call: x{thr['speedup_batched_over_loop']:.0f} "
             f"(target ≥ {TARGET_SPEEDUP:g}: {'met' if thr['target']['met'] else 'NOT met'}). "
             f"T = {thr['T_each']:g} per system after a transient of {T_TRANSIENT:g}. The looped "
             f"members reproduce the batched numbers to {fmt_float(lp['max_abs_difference_vs_batched'])}.")
    L.append("")
    nl = thr["nolds"]
    L.append(f"### nolds.lyap_r (Rosenstein) on the x series ({nl.get('n_points')} points, dt = {nl.get('sample_dt')})")
    L.append("")
    if "rows" in nl:
        L.append(markdown_table(
            ["parameters", "λ1", "rel. error", "wall time"],
            [[r["params"], fmt_float(r.get("lambda1"), 4),
              f"{r['rel_error'] * 100:.0f} %" if "rel_error" in r else r.get("error", ""),
              fmt_time(r.get("wall_s"))] for r in nl["rows"]]))
        L.append("")
        L.append(f"Simulating the series took {fmt_time(nl['simulation_s'])} (not included). "
                 "lyap_r estimates λ1 only, from one scalar series, and its value depends strongly "
                 "on the embedding and fit parameters; ngcdyn's QR method uses the equations and "
                 "gives the whole spectrum with an error bar.")
    else:
        L.append(nl.get("error", ""))
    L.append("")
    L.append("## Notes")
    L.append("")
    L.extend(f"- {n}" for n in res["notes"])
    L.append("")
    path.write_text("\n".join(L), encoding="utf-8")


# ============================================================================ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run (seconds)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                    help="output folder (default: benchmarks/results)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats of part 2 (default 3; quick 1)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1; 0 keeps torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.single_T, args.ensemble_B, args.ensemble_T = [5.0, 10.0], [4, 16], 5.0
        args.batch, args.throughput_T, args.loop_subset = 32, 2.0, 2
        args.nolds_points = 1000
        args.repeats = args.repeats or 1
    else:
        args.single_T, args.ensemble_B, args.ensemble_T = [25.0, 50.0, 100.0, 200.0], [16, 64, 256, 512, 1024], 50.0
        args.batch, args.throughput_T, args.loop_subset = 1024, 20.0, 4
        args.nolds_points = 5000
        args.repeats = args.repeats or 3
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    start = time.perf_counter()
    device = torch.device(args.device)
    threads = configure_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    loads = {"start": load_average()}
    result: dict[str, Any] = {
        "benchmark": "lyapunov",
        "command": command_line(argv if argv is None else [sys.argv[0], *argv]),
        "config": {"quick": args.quick, "repeats": args.repeats, "threads": threads,
                   "device": str(device), "seed": args.seed, "dt_renorm": DT_RENORM,
                   "t_transient": T_TRANSIENT, "solver": f"RungeKutta('rk4', dt={RK4_DT})",
                   "jacobian": "analytic (Lorenz)", "k": 3,
                   "targets": {"rel_error_max": TARGET_REL_ERROR, "wall_s_max": TARGET_WALL_S,
                               "speedup_min": TARGET_SPEEDUP}},
        "machine": machine_info(device, PACKAGES),
    }
    print("Part 1: accuracy against cost")
    result["accuracy"] = run_accuracy(args, device)
    loads["after_accuracy"] = load_average()
    print("Part 2: batched throughput")
    result["throughput"] = run_throughput(args, device)
    loads["end"] = load_average()
    result["load_average"] = loads
    result["notes"] = make_notes(result)
    result["run_time_s"] = time.perf_counter() - start
    result["outputs"] = {"json": portable_path(out / "lyapunov.json"),
                         "markdown": portable_path(out / "lyapunov.md")}
    write_json(out / "lyapunov.json", result)
    write_markdown(result, out / "lyapunov.md")
    print(f"  wrote {result['outputs']['json']} in {result['run_time_s']:.0f} s")
    return result


if __name__ == "__main__":
    main()
