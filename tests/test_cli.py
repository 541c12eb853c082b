"""The `ngcdyn` command line, run in-process with `main([...])` on small systems in tmp folders.

Checks: exit codes (0 success, 1 failed job, 2 usage), one-line error messages naming the option
and the fix, the files of `ngcdyn simulate` and their contents (trajectories against SciPy's DOP853,
group signals against their definition, seeding, float32), and resuming (skip, --force, config
change, interruption).
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import ngcdyn
from ngcdyn import _jobs
from ngcdyn.cli import main

# A 2-group, 6-neuron system with a short span: every run below takes about a second.
SMALL = ["--n-groups", "2", "--group-size", "3", "--rank", "2", "--batch", "3", "--t1", "2",
         "--n-points", "11", "--quiet"]


def _simulate(out, *extra):
    return main(["simulate", *SMALL, "--out", str(out), *extra])


def _error_line(capsys):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one error line, got {lines!r}"
    return lines[0]


# ---------------------------------------------------------------------------- version and help


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"ngcdyn {ngcdyn.__version__}"


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], ["simulate", "run", "lyapunov", "--version", "Exit status"]),
        (["run"], ["--stages", "--force", "--lyap-k", "ngcdyn-results", "--config"]),
        (["simulate"], ["--config", "--batch", "--t1", "--n-points", "--method", "--rtol",
                        "--atol", "--dtype", "--device", "--seed", "--quiet", "--out"]),
        (["lyapunov"], ["NAME", "lorenz", "--k", "--t-total", "--n-steps"]),
    ],
)
def test_help_of_every_command(capsys, argv, expected):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in expected:
        assert word in out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "a command is required" in _error_line(capsys)


# ---------------------------------------------------------------------------- bad options

BAD_OPTIONS = [
    (["simulate", "--rtol", "-1"], r"ngcdyn simulate: error: argument --rtol: must be a positive number, got '-1'; e\.g\. 1e-6"),
    (["simulate", "--atol", "abc"], r"argument --atol: must be a positive number, got 'abc'"),
    (["simulate", "--batch", "0"], r"argument --batch: must be an integer >= 1, got '0'"),
    (["simulate", "--n-points", "1"], r"argument --n-points: must be an integer >= 2"),
    (["simulate", "--dtype", "float16"], r"argument --dtype: invalid choice: 'float16'.*float32"),
    (["simulate", "--method", "nope"], r"argument --method: invalid choice: 'nope'.*dopri5"),
    (["simulate", "--method", "rk4"], r"argument --method: 'rk4' has no error estimate .* pass --dt"),
    (["simulate", "--dt", "5", "--method", "rk4", "--t1", "1"], r"argument --dt: .*longer than the span --t1"),
    (["simulate", "--device", "tpu:x"], r"argument --device: 'tpu:x' is not a torch device; use auto, cpu"),
    (["simulate", "--group-size", "0"], r"argument --group-size: must be an integer >= 1 or a comma-separated list"),
    (["simulate", "--n-groups", "2", "--group-size", "3,3,3"],
     r"`--group-size` \(config field \"group_size\"\) must be one integer >= 1 or n_groups = 2 of them"),
    (["simulate", "--tau", "1,0"], r"argument --tau: must be a positive number or a comma-separated list"),
    (["simulate", "--phi", "relu"], r"argument --phi: invalid choice: 'relu'"),
    (["simulate", "--seed", "-3"], r"argument --seed: must be an integer >= 0"),
    (["run", "--stages", "simulate,bogus"], r"argument --stages: must be distinct names from \['simulate', 'stability'\]"),
    (["run", "--n-groups", "1", "--group-size", "2", "--lyap-k", "3"], r"argument --lyap-k: must be at most N = 2"),
    (["lyapunov", "nosuch"], r"argument NAME: unknown system 'nosuch'; choose ngc or one of \[.*'lorenz'"),
    (["lyapunov", "lorenz", "--gain", "2"], r"argument --gain: NGC system options apply only to NAME = ngc"),
]


@pytest.mark.parametrize("argv, pattern", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_option_exits_2_with_one_clear_line(tmp_path, capsys, argv, pattern):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    line = _error_line(capsys)
    assert line.startswith("ngcdyn ")
    assert "--help" in line  # points to the help of the command
    assert re.search(pattern, line), line
    assert not (tmp_path / "o").exists()  # nothing was written


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_without_cuda(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--device", "cuda", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "CUDA is not available" in _error_line(capsys)


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit) as exc:
        _simulate(f)
    assert exc.value.code == 2
    assert "`--out`" in _error_line(capsys)


CONFIG_ERRORS = [
    ("{not json", r"`--config` file .* is not valid JSON \(line 1, column 2"),
    ("[1, 2]", r"must hold a JSON object .*got a list"),
    ('{"n_groups": 2, "colour": 1}', r"unknown field\(s\) \['colour'\]; allowed"),
    ('{"gain": -1}', r"`--gain` \(config field \"gain\"\) must be a finite number >= 0, got -1"),
    ('{"rank": 1.5}', r"`--rank` \(config field \"rank\"\) must be an integer >= 1, got 1\.5"),
    ('{"A": [[[1.0]]], "B": [[[1.0]]], "C": [[[[0.5]]]], "gain": 2}',
     r"gives explicit arrays A, B, C together with \['gain'\]"),
    ('{"A": [[[1.0]]], "C": [[[[0.5]]]]}', r"config fields \['B'\] are missing"),
    ('{"A": [[[1.0, 2.0]]], "B": [[[1.0]]], "C": [[[[0.5]]]]}', r"the `--config` arrays do not define an NGC system"),
]


@pytest.mark.parametrize("text, pattern", CONFIG_ERRORS, ids=[c[0][:30] for c in CONFIG_ERRORS])
def test_bad_config_file(tmp_path, capsys, text, pattern):
    cfg = tmp_path / "sys.json"
    cfg.write_text(text)
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--quiet", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    line = _error_line(capsys)
    assert re.search(pattern, line), line


def test_missing_config_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--config", str(tmp_path / "none.json"), "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "cannot be read" in _error_line(capsys)


# ---------------------------------------------------------------------------- simulate outputs


def _dense_rhs(d):
    """The NGC right-hand side rebuilt from the saved parameters with NumPy (dense W)."""
    A, B, C, tau, sizes = d["A"], d["B"], d["C"], d["tau"], d["group_sizes"]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    G = len(sizes)
    # Block (g, h) of W is A_g C_gh B_h^T (the definition of the NGC coupling).
    W = np.block([[A[starts[g]:starts[g] + sizes[g]] @ C[g, h] @ B[starts[h]:starts[h] + sizes[h]].T
                   for h in range(G)] for g in range(G)])
    tau_n = np.repeat(tau, sizes)
    return lambda t, x: (-x + W @ np.tanh(x)) / tau_n


def test_simulate_writes_files_and_trajectories_match_scipy(tmp_path, capsys):
    out = tmp_path / "sim"
    rtol, atol = 1e-9, 1e-11
    assert _simulate(out, "--rtol", str(rtol), "--atol", str(atol), "--chunks", "3",
                     "--tau", "1,2") == 0
    for name in ("trajectories.npz", "group_signals.png", "neuron_traces.png",
                 "activity_heatmap.png", "spectrum.png", "result.json", "stage.done"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".tmp-*"))
    d = np.load(out / "trajectories.npz")
    B, T, N = 3, 11, 6
    assert d["ys"].shape == (B, T, N) and d["ys"].dtype == np.float64
    assert d["ts"].shape == (T,) and d["status"].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(d["ys"][:, 0], d["x0"])
    assert d["signals"].shape == (B, T, 2, 2)
    assert d["tau"].tolist() == [1.0, 2.0]
    assert str(d["phi"]) == "tanh"
    assert json.loads(str(d["config"]))["simulation"]["rtol"] == rtol
    # Every member did some steps; n_steps = n_accepted + n_rejected by definition.
    assert (d["stats_n_accepted"] > 0).all()
    np.testing.assert_array_equal(d["stats_n_steps"], d["stats_n_accepted"] + d["stats_n_rejected"])
    # Independent oracle: SciPy DOP853 at 1e-13 on the dense system rebuilt from the saved
    # parameters. The global error of a tolerance-controlled solve over 2 time units (3 chunks)
    # is a few tolerance units (measured here: 1.5); 20 leaves room for other platforms, while a
    # wrong system, chunk seam or time grid gives errors of order 1e6 units or more.
    f = _dense_rhs(d)
    for b in range(B):
        ref = solve_ivp(f, (0.0, 2.0), d["x0"][b], method="DOP853", t_eval=d["ts"],
                        rtol=1e-13, atol=1e-13).y.T
        err = np.abs(d["ys"][b] - ref) / (atol + rtol * np.abs(ref))
        assert err.max() < 20, (b, err.max())
    # Group signals are s_g = B_g^T tanh(x_g) (their definition), recomputed here.
    Bm = d["B"]
    s0 = np.tanh(d["ys"][..., :3]) @ Bm[:3]
    s1 = np.tanh(d["ys"][..., 3:]) @ Bm[3:]
    np.testing.assert_allclose(d["signals"], np.stack([s0, s1], axis=-2), rtol=1e-12, atol=1e-14)
    assert capsys.readouterr().out == ""  # --quiet


def test_simulate_summary_numbers_match_the_system(tmp_path):
    out = tmp_path / "sim"
    assert _simulate(out, "--gain", "0.4") == 0
    res = json.loads((out / "result.json").read_text())
    s = res["summary"]
    system = _jobs.build_system(_jobs.SystemSpec(n_groups=2, group_size=3, rank=2, gain=0.4),
                                seed=0, dtype=torch.float64, device="cpu")
    cb = system.contraction_bound()
    # Same system, same formula: equal to rounding.
    assert s["contraction_bound"]["bound"] == pytest.approx(float(cb.bound), rel=1e-12, abs=1e-14)
    assert s["contraction_bound"]["certified"] == bool(cb.certified)
    ev = system.linear_spectrum()
    assert s["linear_spectrum"]["abscissa"] == pytest.approx(float(ev.real[0]), rel=1e-12, abs=1e-14)
    assert s["n_success"] == 3 and s["status_counts"] == {"SUCCESS": 3} and s["failed"] is False
    d = np.load(out / "trajectories.npz")
    assert s["stats"]["n_f_evals"]["total"] == float(d["stats_n_f_evals"].sum())


def test_config_file_and_explicit_arrays(tmp_path):
    # Explicit arrays (NGCSystem.from_arrays): one neuron per group, rank 1, identity gain.
    cfg = tmp_path / "arrays.json"
    cfg.write_text(json.dumps({"A": [[[1.0]], [[1.0]]], "B": [[[1.0]], [[1.0]]],
                               "C": [[-0.5, 0.0], [0.0, -1.0]], "phi": "identity"}))
    out = tmp_path / "sim"
    assert main(["simulate", "--quiet", "--config", str(cfg), "--out", str(out), "--batch", "2",
                 "--t1", "1", "--n-points", "3", "--rtol", "1e-10", "--atol", "1e-12"]) == 0
    d = np.load(out / "trajectories.npz")
    # W = diag(-0.5, -1) (block (g, h) = A_g C_gh B_h^T), so dx/dt = (-1 + W) x: x(t) = x0 exp(-1.5 t),
    # x0 exp(-2 t) per coordinate.
    rates = np.array([-1.5, -2.0])
    expected = d["x0"][:, None, :] * np.exp(rates[None, None, :] * d["ts"][None, :, None])
    err = np.abs(d["ys"] - expected) / (1e-12 + 1e-10 * np.abs(expected))
    assert err.max() < 20  # tolerance units, as above
    # A random-system config, overridden by an option.
    cfg2 = tmp_path / "random.json"
    cfg2.write_text(json.dumps({"n_groups": 3, "group_size": [1, 2, 3], "rank": 1, "gain": 0.5}))
    out2 = tmp_path / "sim2"
    assert main(["simulate", "--quiet", "--config", str(cfg2), "--gain", "0.7", "--out", str(out2),
                 "--batch", "2", "--t1", "1", "--n-points", "3"]) == 0
    d2 = np.load(out2 / "trajectories.npz")
    assert d2["group_sizes"].tolist() == [1, 2, 3]
    spec = json.loads((out2 / "result.json").read_text())["config"]["system"]
    assert spec["gain"] == 0.7 and spec["n_groups"] == 3


def test_same_seed_same_results_other_seed_other_system(tmp_path):
    assert _simulate(tmp_path / "a") == 0
    assert _simulate(tmp_path / "b") == 0
    assert _simulate(tmp_path / "c", "--seed", "1") == 0
    a, b, c = (np.load(tmp_path / x / "trajectories.npz") for x in "abc")
    for key in ("A", "B", "C", "x0", "ys"):
        np.testing.assert_array_equal(a[key], b[key])
    assert np.abs(a["A"] - c["A"]).max() > 1e-3  # a new seed draws new states
    assert np.abs(a["x0"] - c["x0"]).max() > 1e-3


def test_float32_matches_float64(tmp_path):
    assert _simulate(tmp_path / "d64") == 0
    assert _simulate(tmp_path / "d32", "--dtype", "float32") == 0
    a, b = np.load(tmp_path / "d64" / "trajectories.npz"), np.load(tmp_path / "d32" / "trajectories.npz")
    assert b["ys"].dtype == np.float32 and b["A"].dtype == np.float32
    cfg = json.loads((tmp_path / "d32" / "result.json").read_text())["config"]["simulation"]
    assert (cfg["rtol"], cfg["atol"]) == (1e-4, 1e-6)  # the float32 defaults
    # Same system and x0 (drawn in float64, then cast); the float32 solve at rtol 1e-4 differs
    # from the float64 one by its own global error, a few of its tolerance units (measured: 0.16).
    err = np.abs(b["ys"] - a["ys"]) / (1e-6 + 1e-4 * np.abs(a["ys"]))
    assert err.max() < 5


def test_failed_members_exit_1(tmp_path, capsys):
    # phi = identity with gain 10: the origin has a spectral abscissa of about +5.8, so in float32
    # (max ~3.4e38 = e^88.7) the state overflows long before t = 100: every member fails.
    out = tmp_path / "f"
    rc = main(["simulate", "--out", str(out), "--dtype", "float32", "--phi", "identity",
               "--gain", "10", "--n-groups", "2", "--group-size", "3", "--rank", "2",
               "--batch", "2", "--t1", "100", "--n-points", "3", "--chunks", "1"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "2 of 2 members failed" in err and "NONFINITE" in err
    d = np.load(out / "trajectories.npz")
    assert d["status"].tolist() == [3, 3]  # Status.NONFINITE
    assert np.isnan(d["ys"][:, -1]).all()


def test_unexpected_error_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("simulated\nfailure")

    monkeypatch.setattr(_jobs, "simulate", boom)
    monkeypatch.delenv("NGCDYN_TRACEBACK", raising=False)
    assert _simulate(tmp_path / "e") == 1
    line = _error_line(capsys)
    assert line.startswith("ngcdyn simulate: error: RuntimeError: simulated failure")
    assert "NGCDYN_TRACEBACK=1" in line


# ---------------------------------------------------------------------------- resuming


def test_rerun_skips_a_completed_stage(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", *SMALL[:-1], "--out", str(out)]) == 0  # not quiet: logs on stderr
    first = capsys.readouterr()
    assert "stage simulate: running" in first.err and "skipped" not in first.err
    marker = out / "stage.done"
    old = marker.read_text()
    os.utime(marker, ns=(10**18, 10**18))  # a recognisable mtime
    os.utime(out / "trajectories.npz", ns=(10**18, 10**18))
    assert main(["simulate", *SMALL[:-1], "--out", str(out)]) == 0
    second = capsys.readouterr()
    assert "stage simulate: skipped" in second.err and "--force" in second.err
    assert "(reused)" in second.out
    assert marker.stat().st_mtime_ns == 10**18 and marker.read_text() == old
    assert (out / "trajectories.npz").stat().st_mtime_ns == 10**18
    # --force redoes it.
    assert main(["simulate", *SMALL[:-1], "--out", str(out), "--force"]) == 0
    assert "running" in capsys.readouterr().err
    assert marker.stat().st_mtime_ns != 10**18
    assert json.loads(marker.read_text())["config_hash"] == json.loads(old)["config_hash"]


def test_changed_config_reruns(tmp_path, capsys):
    out = tmp_path / "sim"
    assert _simulate(out) == 0
    h1 = json.loads((out / "stage.done").read_text())["config_hash"]
    assert main(["simulate", *SMALL[:-1], "--out", str(out), "--t1", "3"]) == 0
    err = capsys.readouterr().err
    assert "configuration changed" in err and "running" in err
    h2 = json.loads((out / "stage.done").read_text())["config_hash"]
    assert h1 != h2
    assert np.load(out / "trajectories.npz")["ts"][-1] == 3.0


def test_interrupted_run_never_looks_done(tmp_path, monkeypatch, capsys):
    out = tmp_path / "sim"
    assert _simulate(out) == 0
    assert (out / "stage.done").exists()
    real = _jobs.simulate

    def interrupted(*a, **k):
        real(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(_jobs, "simulate", interrupted)
    # A different configuration is interrupted mid-stage: the old marker is gone (the folder no
    # longer holds a finished result of *any* configuration) and no temporary folder is left.
    assert main(["simulate", *SMALL, "--out", str(out), "--t1", "3"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (out / "stage.done").exists()
    assert not list(out.glob(".tmp-*"))
    # The old files were not replaced by half-written ones.
    assert np.load(out / "trajectories.npz")["ts"][-1] == 2.0
    monkeypatch.setattr(_jobs, "simulate", real)
    assert main(["simulate", *SMALL[:-1], "--out", str(out)]) == 0
    assert "running" in capsys.readouterr().err  # not skipped: no marker
    assert (out / "stage.done").exists()


def test_stale_temporary_folder_is_removed(tmp_path):
    out = tmp_path / "sim"
    (out / ".tmp-simulate-left").mkdir(parents=True)
    (out / ".tmp-simulate-left" / "trajectories.npz").write_text("half")
    assert _simulate(out) == 0
    assert not list(out.glob(".tmp-*"))


# ---------------------------------------------------------------------------- lyapunov


def test_lyapunov_of_a_library_linear_system(tmp_path, capsys):
    # SYSTEMS["linear"]: A = [[-0.1, 1], [0, -0.4]], exponents -0.1, -0.4 (real parts of eig A).
    out = tmp_path / "ly"
    rc = main(["lyapunov", "linear", "--out", str(out), "--t-total", "100", "--t-transient", "20",
               "--batch", "2", "--rtol", "1e-9", "--atol", "1e-11"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "lambda_1 = " in text and "(reference -0.1)" in text
    for name in ("lyapunov.npz", "lyapunov_convergence.png", "result.json", "stage.done",
                 "report.md", "report.json"):
        assert (out / name).is_file(), name
    s = json.loads((out / "result.json").read_text())["summary"]
    assert s["kind"] == "flow" and s["reference"] == [-0.1, -0.4]
    md = (out / "report.md").read_text()
    assert "| 1 | " in md and "neuronal group communication" not in md  # not an NGC system
    # QR estimate: a linear flow's exponents converge with an O(1/T) error; after a transient
    # of 20 (frame aligned: e^{-0.3 * 20} ~ 2e-3) the measured error is 3e-5 at T = 100.
    np.testing.assert_allclose(s["mean"], [-0.1, -0.4], atol=1e-3)


def test_lyapunov_of_a_map(tmp_path):
    # Logistic map r = 4: lambda = ln 2 (Sprott; conjugacy to the tent map).
    out = tmp_path / "ly"
    rc = main(["lyapunov", "logistic", "--quiet", "--out", str(out), "--n-steps", "4000",
               "--n-transient", "100", "--batch", "4"])
    assert rc == 0
    s = json.loads((out / "result.json").read_text())["summary"]
    assert s["kind"] == "map" and s["k"] == 1
    # 4 members x 4000 iterations: measured standard error 4e-4; 3e-3 is about 7 of them.
    assert s["mean"][0] == pytest.approx(np.log(2.0), abs=3e-3)
    assert 0 < s["mean_stderr"][0] < 3e-3


def test_lyapunov_of_an_ngc_system(tmp_path, capsys):
    # tanh with gain 0.3 on 8 neurons: contracting, so every trajectory converges to x = 0 and
    # the exponents are Re eig(-I + W) (phi'(0) = 1), up to the O(1/T) bias of the QR method.
    out = tmp_path / "ly"
    rc = main(["lyapunov", "ngc", "--quiet", "--out", str(out), "--n-groups", "2",
               "--group-size", "4", "--rank", "2", "--gain", "0.3", "--k", "2",
               "--t-total", "40", "--t-transient", "20", "--batch", "2"])
    assert rc == 0
    s = json.loads((out / "result.json").read_text())["summary"]
    system = _jobs.build_system(_jobs.SystemSpec(n_groups=2, group_size=4, rank=2, gain=0.3),
                                seed=0, dtype=torch.float64, device="cpu")
    exact = torch.linalg.eigvals(system.materialize() - torch.eye(8, dtype=torch.float64))
    exact = exact.real.sort(descending=True).values[:2].numpy()
    np.testing.assert_allclose(s["mean"], exact, atol=0.025)  # bias <~ 1/T at T = 40
    assert s["reference"] is None  # no published values for a random NGC system
