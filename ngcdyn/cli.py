"""The ``ngcdyn`` command line.

Subcommands
-----------
``ngcdyn run``
    The main job on the embedded default NGC system (no arguments needed): stages ``simulate``
    and ``stability`` into ``ngcdyn-results/`` (relative to the current folder), then
    ``report.md`` and ``report.json``.
``ngcdyn simulate``
    Simulate a batch of an NGC group system and write ``trajectories.npz`` and figures.
``ngcdyn lyapunov NAME``
    Lyapunov spectrum of a library system (``ngcdyn.systems.SYSTEMS``) or of an NGC system
    (``ngc``, the default one or ``--config``).

Every subcommand takes ``--out DIR``, ``--seed``, ``--device``, ``--dtype {float32,float64}``,
``--force`` and ``--quiet``. Jobs are resumable: each stage folder holds a ``stage.done`` marker
with the hash of its configuration, and a rerun with the same configuration skips it.

Exit status: 0 success; 1 the job ran but failed (batch members failed, or an error while
computing); 2 invalid usage (bad option or configuration), with one line on stderr naming the
option and the fix. Set ``NGCDYN_TRACEBACK=1`` to see the traceback of an unexpected error.

Examples
--------
>>> import tempfile, os
>>> out = os.path.join(tempfile.mkdtemp(), "sim")
>>> main(["simulate", "--quiet", "--out", out, "--n-groups", "2", "--group-size", "3",
...       "--rank", "1", "--batch", "2", "--t1", "1", "--n-points", "5"])
0
>>> sorted(f for f in os.listdir(out) if f.endswith((".npz", ".done")))
['stage.done', 'trajectories.npz']
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["main", "build_parser"]

_DEFAULT_RUN_OUT = "ngcdyn-results"
_DEFAULT_SIMULATE_OUT = "ngcdyn-simulate"
_DEFAULT_LYAPUNOV_OUT = "ngcdyn-lyapunov"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``prog: error: message (see `prog --help`)``, exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# ---------------------------------------------------------------------------------- value types


def _typed(rule: str, conv: Callable[[str], Any], ok: Callable[[Any], bool], example: str):
    def parse(text: str) -> Any:
        try:
            v = conv(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}; e.g. {example}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}; e.g. {example}")
        return v

    parse.__name__ = rule
    return parse


_pos_float = _typed("a positive number", float, lambda v: math.isfinite(v) and v > 0, "1e-6")
_nonneg_float = _typed("a number >= 0", float, lambda v: math.isfinite(v) and v >= 0, "1.5")
_pos_int = _typed("an integer >= 1", int, lambda v: v >= 1, "8")
_min2_int = _typed("an integer >= 2", int, lambda v: v >= 2, "501")
_nonneg_int = _typed("an integer >= 0", int, lambda v: v >= 0, "0")


def _int_list(text: str) -> int | tuple[int, ...]:
    parts = [p for p in text.split(",") if p.strip()]
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        vals = []
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(
            f"must be an integer >= 1 or a comma-separated list of them (one per group), got "
            f"{text!r}; e.g. 32 or 16,32,16,64")
    return vals[0] if len(vals) == 1 else tuple(vals)


def _float_list(text: str) -> float | tuple[float, ...]:
    try:
        vals = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        vals = []
    if not vals or any(not (math.isfinite(v) and v > 0) for v in vals):
        raise argparse.ArgumentTypeError(
            f"must be a positive number or a comma-separated list (one per group), got {text!r}; "
            "e.g. 1.0 or 1,2,1,2")
    return vals[0] if len(vals) == 1 else tuple(vals)


def _version_string() -> str:
    from . import __version__

    return f"ngcdyn {__version__}"


# ---------------------------------------------------------------------------------- the parser


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    g = p.add_argument_group("output and execution")
    g.add_argument("--out", metavar="DIR", default=default_out,
                   help=f"output folder (default: {default_out}, relative to the current folder)")
    g.add_argument("--seed", type=_nonneg_int, default=0,
                   help="random seed: system parameters use SEED, initial states SEED+1 (simulate), "
                        "SEED+2 (stability), SEED+3 (lyapunov) (default: 0)")
    g.add_argument("--device", default="auto",
                   help="torch device: auto (cuda if available, else cpu), cpu, cuda, cuda:N "
                        "(default: auto)")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                   help="floating-point precision (default: float64)")
    g.add_argument("--force", action="store_true",
                   help="redo stages that are already done with the same configuration")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars or messages; errors still go to stderr")


def _system_options(p: argparse.ArgumentParser) -> None:
    from ._jobs import DEFAULT_SYSTEM as D

    g = p.add_argument_group(
        "NGC system",
        "The default is NGCSystem.random with the values below (4 groups of 32 neurons, rank 4, "
        "gain 1.5, tanh, tau 1), drawn with --seed. Options override the defaults and --config.")
    g.add_argument("--config", metavar="FILE.json",
                   help="JSON object with the fields of NGCSystem.random (n_groups, group_size, "
                        "rank, gain, symmetric, tau, phi, and optionally seed) or explicit arrays "
                        "A, B, C (per-group lists, as in NGCSystem.from_arrays) with tau and phi")
    g.add_argument("--n-groups", type=_pos_int, help=f"number of groups G (default: {D['n_groups']})")
    g.add_argument("--group-size", type=_int_list,
                   help=f"neurons per group, one number or one per group (default: {D['group_size']})")
    g.add_argument("--rank", type=_pos_int, help=f"rank r of the neuronal states (default: {D['rank']})")
    g.add_argument("--gain", type=_nonneg_float,
                   help=f"coupling gain g: W entries have variance g^2/N (default: {D['gain']})")
    g.add_argument("--tau", type=_float_list, help=f"time constant(s) (default: {D['tau']})")
    g.add_argument("--phi", choices=("tanh", "identity", "linear"),
                   help=f"gain function (default: {D['phi']})")
    g.add_argument("--symmetric", action="store_true", default=None,
                   help="symmetric coupling B = A, C_gh = C_hg^T (an energy function exists)")


def _solver_options(p: argparse.ArgumentParser) -> None:
    from ._jobs import SimulationSpec
    from .solvers import TABLEAUX

    d = SimulationSpec()
    g = p.add_argument_group("simulation")
    g.add_argument("--batch", type=_pos_int, default=d.batch,
                   help=f"number of random initial states x0 ~ N(0, s^2 I) (default: {d.batch})")
    g.add_argument("--init-scale", type=_nonneg_float, default=d.init_scale,
                   help=f"s, the scale of the initial states (default: {d.init_scale})")
    g.add_argument("--t1", type=_pos_float, default=d.t1, help=f"end time (default: {d.t1})")
    g.add_argument("--n-points", type=_min2_int, default=d.n_points,
                   help=f"output times, evenly spaced on [0, t1] (default: {d.n_points})")
    g.add_argument("--method", choices=sorted(TABLEAUX), default=d.method,
                   help=f"Runge-Kutta method (default: {d.method}); euler, midpoint, rk4 need --dt")
    g.add_argument("--rtol", type=_pos_float,
                   help="relative tolerance (default: 1e-6 in float64, 1e-4 in float32)")
    g.add_argument("--atol", type=_pos_float,
                   help="absolute tolerance (default: 1e-8 in float64, 1e-6 in float32)")
    g.add_argument("--dt", type=_pos_float, help="fixed step size (turns step control off)")
    g.add_argument("--chunks", type=_pos_int, default=d.chunks,
                   help=f"consecutive solves the span is cut into, for the progress bar "
                        f"(default: {d.chunks}; 1 = one solve)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ngcdyn`` command (see the module docstring)."""
    from ._jobs import MAIN_STAGES, LyapunovSpec, StabilitySpec

    parser = _Parser(
        prog="ngcdyn",
        description="Neuronal Group Communication as continuous-time dynamics: simulate NGC group "
                    "systems, measure their stability, and run the main job.",
        epilog="Exit status: 0 success, 1 the job failed, 2 invalid usage. "
               "NGCDYN_TRACEBACK=1 prints the traceback of unexpected errors.",
    )
    parser.add_argument("--version", action="version", version=_version_string())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p_run = sub.add_parser(
        "run", help="the main job on the embedded default system (no arguments needed)",
        description="The main job: run the stages simulate (trajectories and figures of the "
                    "default NGC system) and stability (Lyapunov exponents with standard errors, "
                    "the contraction certificate) into OUT/<stage>/, then write OUT/report.md and "
                    "OUT/report.json. Completed stages with an unchanged configuration are skipped "
                    "on a rerun (--force redoes them).")
    _common(p_run, _DEFAULT_RUN_OUT)
    p_run.add_argument("--stages", default=",".join(MAIN_STAGES),
                       help=f"comma-separated stages to run, in order (default: {','.join(MAIN_STAGES)})")
    _system_options(p_run)
    _solver_options(p_run)
    s = StabilitySpec()
    g = p_run.add_argument_group("stability stage")
    g.add_argument("--lyap-k", type=_pos_int, default=s.k,
                   help=f"number of leading Lyapunov exponents (default: {s.k})")
    g.add_argument("--lyap-t", type=_pos_float, default=s.t_total,
                   help=f"measured time of the Lyapunov run (default: {s.t_total})")
    g.add_argument("--lyap-transient", type=_nonneg_float, default=s.t_transient,
                   help=f"discarded transient time (default: {s.t_transient})")
    g.add_argument("--lyap-dt", type=_pos_float, default=s.dt_renorm,
                   help=f"time between re-orthonormalisations (default: {s.dt_renorm})")
    g.add_argument("--lyap-batch", type=_pos_int, default=s.batch,
                   help=f"number of initial states of the Lyapunov run (default: {s.batch})")
    p_run.set_defaults(handler=_cmd_run, subparser=p_run)

    p_sim = sub.add_parser(
        "simulate", help="simulate an NGC group system and write trajectories and figures",
        description="Simulate a batch of random initial states of an NGC group system with "
                    "ngcdyn.solve and write OUT/trajectories.npz (ts, ys, status, stats, the "
                    "system's parameters) and PNG figures (group signals s_g = B_g^T phi(x_g), "
                    "neuron traces, activity heatmap, linear spectrum).")
    _common(p_sim, _DEFAULT_SIMULATE_OUT)
    _system_options(p_sim)
    _solver_options(p_sim)
    p_sim.set_defaults(handler=_cmd_simulate, subparser=p_sim)

    ls = LyapunovSpec()
    p_ly = sub.add_parser(
        "lyapunov", help="Lyapunov spectrum of a library system or an NGC system",
        description="Lyapunov spectrum (QR method) with standard errors of a library system, "
                    "compared with its known exponents where they exist, or of an NGC system "
                    "(NAME = ngc: the default system, or --config). Writes OUT/lyapunov.npz, "
                    "OUT/lyapunov_convergence.png and OUT/report.md.")
    p_ly.add_argument("system", metavar="NAME",
                      help=f"ngc, or one of: {', '.join(_library_names())}")
    _common(p_ly, _DEFAULT_LYAPUNOV_OUT)
    _system_options(p_ly)
    g = p_ly.add_argument_group("Lyapunov run")
    g.add_argument("--k", type=_pos_int, help="number of leading exponents (default: all; 4 for ngc)")
    g.add_argument("--batch", type=_pos_int, default=ls.batch,
                   help=f"number of initial states (default: {ls.batch})")
    g.add_argument("--t-total", type=_pos_float, default=ls.t_total,
                   help=f"flows: measured time (default: {ls.t_total})")
    g.add_argument("--t-transient", type=_nonneg_float, default=ls.t_transient,
                   help=f"flows: discarded transient time (default: {ls.t_transient})")
    g.add_argument("--dt-renorm", type=_pos_float, default=ls.dt_renorm,
                   help=f"flows: time between re-orthonormalisations (default: {ls.dt_renorm})")
    g.add_argument("--n-steps", type=_pos_int, default=ls.n_steps,
                   help=f"maps: measured iterations (default: {ls.n_steps})")
    g.add_argument("--n-transient", type=_nonneg_int, default=ls.n_transient,
                   help=f"maps: discarded iterations (default: {ls.n_transient})")
    g.add_argument("--rtol", type=_pos_float, help="flows: relative tolerance (default: 1e-6; float32 1e-4)")
    g.add_argument("--atol", type=_pos_float, help="flows: absolute tolerance (default: 1e-8; float32 1e-6)")
    p_ly.set_defaults(handler=_cmd_lyapunov, subparser=p_ly)
    return parser


def _library_names() -> list[str]:
    try:
        from .systems import SYSTEMS
    except ImportError:  # pragma: no cover - the library ships with the package
        return []
    return sorted(SYSTEMS)


# ---------------------------------------------------------------------------------- helpers


class _Env:
    """Resolved common options: device, dtype, logging."""

    def __init__(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
        import torch

        self.quiet = bool(args.quiet)
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
        self.device = _resolve_device(args.device, parser)
        self.out = Path(args.out)
        if self.out.exists() and not self.out.is_dir():
            parser.error(f"`--out` {str(self.out)!r} exists and is not a folder; choose another path")

    def log(self, msg: str) -> None:
        if not self.quiet:
            from tqdm import tqdm

            tqdm.write(f"ngcdyn: {msg}", file=sys.stderr)  # above any progress bar, not through it

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)


def _resolve_device(text: str, parser: argparse.ArgumentParser):
    import torch

    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        parser.error(f"argument --device: {text!r} is not a torch device; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            parser.error(f"argument --device: {text!r} requested but CUDA is not available "
                         "(torch.cuda.is_available() is False); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            parser.error(f"argument --device: {text!r} does not exist ({torch.cuda.device_count()} "
                         "CUDA device(s)); use cuda:0")
    elif dev.type != "cpu":
        parser.error(f"argument --device: {text!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev


def _system_spec(args: argparse.Namespace, parser: argparse.ArgumentParser):
    from ._jobs import DEFAULT_SYSTEM, SpecError, SystemSpec, load_system_spec

    overrides = {"n_groups": args.n_groups, "group_size": args.group_size, "rank": args.rank,
                 "gain": args.gain, "tau": args.tau, "phi": args.phi, "symmetric": args.symmetric}
    try:
        if args.config:
            return load_system_spec(args.config, **overrides)
        kw = dict(DEFAULT_SYSTEM)
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return SystemSpec(**kw)
    except SpecError as exc:
        parser.error(str(exc))


def _check_method(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from .solvers import TABLEAUX

    if not TABLEAUX[args.method].adaptive and args.dt is None:
        parser.error(f"argument --method: {args.method!r} has no error estimate and needs a fixed "
                     "step: pass --dt (e.g. --dt 0.01) or use --method dopri5")
    if args.dt is not None and args.dt > args.t1:
        parser.error(f"argument --dt: the step {args.dt:g} is longer than the span --t1 {args.t1:g}; "
                     "pass a smaller --dt")


def _sim_spec(args: argparse.Namespace):
    from ._jobs import SimulationSpec

    return SimulationSpec(batch=args.batch, t1=args.t1, n_points=args.n_points, method=args.method,
                          rtol=args.rtol, atol=args.atol, dt=args.dt, init_scale=args.init_scale,
                          chunks=args.chunks)


def _command_line(argv: Sequence[str]) -> str:
    import shlex

    return "ngcdyn " + " ".join(shlex.quote(a) for a in argv)


# ---------------------------------------------------------------------------------- commands


def _cmd_simulate(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    from ._jobs import SimulateStage

    env = _Env(args, parser)
    spec = _system_spec(args, parser)
    _check_method(args, parser)
    stage = SimulateStage(spec, _sim_spec(args), seed=args.seed, dtype=env.dtype, device=env.device)
    oc = stage.run(env.out, force=args.force, progress=not env.quiet, log=env.log)
    s = oc.summary
    env.say(f"simulate: {s['n_success']}/{s['n_members']} members succeeded; "
            f"mean {s['stats']['n_f_evals']['mean']:.0f} f-evaluations per member; "
            f"linear spectral abscissa {s['linear_spectrum']['abscissa']:.4f}; "
            f"contraction bound {s['contraction_bound']['bound']:.4f}"
            + (" (reused)" if oc.skipped else "") + f" -> {env.out / 'trajectories.npz'}")
    if oc.failed:
        from .solvers import Status

        why = "; ".join(f"{n} ({c}): {Status[n].message}" for n, c in sorted(s["status_counts"].items())
                        if n != "SUCCESS" and n in Status.__members__)
        print(f"ngcdyn simulate: {s['n_members'] - s['n_success']} of {s['n_members']} members "
              f"failed, their points after the failure are NaN. {why}", file=sys.stderr)
        return 1
    return 0


def _cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    from ._jobs import MAIN_STAGES, StabilitySpec, run_main_job

    env = _Env(args, parser)
    spec = _system_spec(args, parser)
    _check_method(args, parser)
    names = [n.strip() for n in args.stages.split(",") if n.strip()]
    bad = [n for n in names if n not in MAIN_STAGES]
    if bad or not names or len(set(names)) != len(names):
        parser.error(f"argument --stages: must be distinct names from {list(MAIN_STAGES)}, got "
                     f"{args.stages!r}; e.g. --stages {','.join(MAIN_STAGES)}")
    stab = StabilitySpec(k=args.lyap_k, t_total=args.lyap_t, t_transient=args.lyap_transient,
                         dt_renorm=args.lyap_dt, batch=args.lyap_batch, init_scale=args.init_scale)
    n = sum(spec.group_size) if isinstance(spec.group_size, tuple) else spec.n_groups * spec.group_size
    if "stability" in names and spec.arrays is None and args.lyap_k > n:
        parser.error(f"argument --lyap-k: must be at most N = {n} (the number of neurons), got "
                     f"{args.lyap_k}")
    outcomes, md, js = run_main_job(
        env.out, system=spec, sim=_sim_spec(args), stability=stab, stage_names=names,
        seed=args.seed, dtype=env.dtype, device=env.device, force=args.force,
        progress=not env.quiet, log=env.log, command=_command_line(argv))
    env.say(f"report: {md} and {js.name}")
    failed = [oc.name for oc in outcomes if oc.failed]
    if failed:
        print(f"ngcdyn run: batch members failed in stage(s) {failed}; see {md}.", file=sys.stderr)
        return 1
    return 0


def _cmd_lyapunov(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    from ._jobs import LyapunovSpec, LyapunovStage, write_report

    names = _library_names()
    if args.system != "ngc" and args.system not in names:
        parser.error(f"argument NAME: unknown system {args.system!r}; choose ngc or one of {names}")
    env = _Env(args, parser)
    ngc = None
    given = [o for o, v in (("--config", args.config), ("--n-groups", args.n_groups),
                            ("--group-size", args.group_size), ("--rank", args.rank),
                            ("--gain", args.gain), ("--tau", args.tau), ("--phi", args.phi),
                            ("--symmetric", args.symmetric)) if v is not None]
    if args.system == "ngc":
        ngc = _system_spec(args, parser)
    elif given:
        parser.error(f"argument {given[0]}: NGC system options apply only to NAME = ngc, not to "
                     f"{args.system!r}; drop them or use `ngcdyn lyapunov ngc`")
    k = args.k if args.k is not None else (4 if ngc is not None else None)
    spec = LyapunovSpec(k=k, t_total=args.t_total, t_transient=args.t_transient,
                        dt_renorm=args.dt_renorm, n_steps=args.n_steps, n_transient=args.n_transient,
                        batch=args.batch, rtol=args.rtol, atol=args.atol)
    stage = LyapunovStage(args.system, spec, ngc=ngc, seed=args.seed, dtype=env.dtype,
                          device=env.device)
    oc = stage.run(env.out, force=args.force, progress=not env.quiet, log=env.log)
    meta = {"command": _command_line(argv), "ngcdyn_version": _version_string().split()[1],
            "seed": args.seed, "device": str(env.device),
            "dtype": str(env.dtype).replace("torch.", ""), "ngc": ngc is not None}
    write_report(env.out, [stage], [oc], meta)
    s = oc.summary
    ref = s["reference"]
    for i, (v, e) in enumerate(zip(s["mean"], s["mean_stderr"])):
        r = f"   (reference {ref[i]:.5g})" if ref is not None and i < len(ref) else ""
        v_txt = "nan" if v is None else f"{v:.5g}"
        e_txt = "nan" if e is None else f"{e:.2g}"
        env.say(f"lambda_{i + 1} = {v_txt} +- {e_txt}{r}")
    if oc.failed:
        print(f"ngcdyn lyapunov: {s['n_failed']} of {s['n_members']} members failed (their "
              "trajectories diverged); shorten --t-total or check the system.", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ngcdyn`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Invalid usage raises ``SystemExit(2)`` after one line on stderr (as argparse does);
    ``--help`` and ``--version`` raise ``SystemExit(0)``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.error("a command is required: run, simulate or lyapunov")
    sub = args.subparser
    from ._jobs import SpecError

    try:
        return int(args.handler(args, sub, argv))
    except SpecError as exc:  # invalid configuration discovered while running a stage
        sub.error(str(exc))
    except KeyboardInterrupt:
        print(f"{sub.prog}: interrupted; completed stages are kept and a rerun resumes after "
              "them", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user, traceback on request
        if os.environ.get("NGCDYN_TRACEBACK"):
            raise
        msg = " ".join(str(exc).split())
        print(f"{sub.prog}: error: {type(exc).__name__}: {msg} (set NGCDYN_TRACEBACK=1 for the "
              "traceback)", file=sys.stderr)
        return 1
    return 0  # pragma: no cover - parser.error above never returns


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
