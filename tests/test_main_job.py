"""The main job, `ngcdyn run`: stages, report, resuming, and the numbers it reports.

Fast tests use an 8-neuron system; the embedded default (N = 128) runs in the slow tier.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from ngcdyn import _jobs
from ngcdyn.cli import main

SMALL = ["--n-groups", "2", "--group-size", "4", "--rank", "2", "--batch", "2", "--t1", "5",
         "--n-points", "21", "--lyap-k", "3", "--lyap-t", "40", "--lyap-transient", "20",
         "--lyap-batch", "2"]


def _run(out, *extra, quiet=True):
    return main(["run", *SMALL, "--out", str(out), *extra] + (["--quiet"] if quiet else []))


def _report(out):
    return json.loads((out / "report.json").read_text())


def test_run_writes_stages_and_a_report_whose_links_exist(tmp_path):
    out = tmp_path / "res"
    assert _run(out, "--gain", "0.5", "--phi", "identity") == 0
    for stage, files in {
        "simulate": ["trajectories.npz", "group_signals.png", "neuron_traces.png",
                     "activity_heatmap.png", "spectrum.png"],
        "stability": ["lyapunov.npz", "lyapunov_convergence.png", "stability_spectrum.png"],
    }.items():
        for f in files + ["result.json", "stage.done"]:
            assert (out / stage / f).is_file(), (stage, f)
    md = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 6
    for link in links:
        assert (out / link).is_file(), link
    rep = _report(out)
    assert list(rep["stages"]) == ["simulate", "stability"]
    assert rep["meta"]["seed"] == 0 and rep["meta"]["dtype"] == "float64"
    assert rep["meta"]["command"].startswith("ngcdyn run ")
    for name, st in rep["stages"].items():
        assert st["skipped"] is False and st["failed"] is False
        assert st["config_hash"] == json.loads((out / name / "stage.done").read_text())["config_hash"]
    # The report states the solver statistics and the status.
    sim = rep["stages"]["simulate"]["summary"]
    assert sim["status_counts"] == {"SUCCESS": 2}
    assert f"| n_f_evals | {sim['stats']['n_f_evals']['min']:.4g} |" in md
    assert "2 of 2 members succeeded" in md
    assert "neuronal group communication" in md and "not the paper's" in md


def test_linear_system_exponents_equal_the_linear_spectrum(tmp_path):
    # phi = identity: the system is dx/dt = (-I + W) x, whose Lyapunov exponents are exactly the
    # real parts of the eigenvalues of -I + W (REFERENCES.md, "linear flow"), sorted descending.
    out = tmp_path / "res"
    assert _run(out, "--gain", "0.5", "--phi", "identity", "--stages", "stability") == 0
    s = _report(out)["stages"]["stability"]["summary"]
    system = _jobs.build_system(
        _jobs.SystemSpec(n_groups=2, group_size=4, rank=2, gain=0.5, phi="identity"),
        seed=0, dtype=torch.float64, device="cpu")
    M = system.materialize() - torch.eye(8, dtype=torch.float64)
    exact = torch.linalg.eigvals(M).real.sort(descending=True).values[:3].numpy()
    np.testing.assert_allclose(s["linear_prediction"], exact, atol=1e-12)
    # The QR estimate has an O(1/T) bias from the non-normal transient of the tangent frame:
    # about log(condition of the eigenbasis)/T <~ 1/T = 0.025 at T = 40 (measured: 2e-3).
    np.testing.assert_allclose(s["mean"], exact, atol=0.025)
    assert s["max_abs_deviation_from_linear"] == pytest.approx(
        float(np.abs(np.asarray(s["mean"]) - exact).max()), rel=1e-9)
    assert all(0 < e < 0.02 for e in s["mean_stderr"])  # measured 5e-5 .. 6e-3


def test_certified_contraction_bounds_the_exponents(tmp_path):
    # tanh with gain 0.3: ||W||_2 < 1, so mu_2(J) <= -1 + ||W||_2 < 0 everywhere (the
    # certificate); then every Lyapunov exponent is <= that bound (theory/12_contraction.md), and
    # all trajectories converge to the unique equilibrium x = 0, where the exponents are the real
    # parts of the eigenvalues of -I + phi'(0) W (phi'(0) = 1).
    out = tmp_path / "res"
    assert _run(out, "--gain", "0.3") == 0
    rep = _report(out)
    stab = rep["stages"]["stability"]["summary"]
    cb = stab["contraction_bound"]
    system = _jobs.build_system(_jobs.SystemSpec(n_groups=2, group_size=4, rank=2, gain=0.3),
                                seed=0, dtype=torch.float64, device="cpu")
    W = system.materialize()
    # With one tau the bound is exactly -1 + gamma ||W||_2 (gamma = sup tanh' = 1).
    assert cb["bound"] == pytest.approx(-1.0 + float(torch.linalg.matrix_norm(W, ord=2)), abs=1e-12)
    assert cb["certified"] is True and stab["certificate_consistent"] is True
    ex = np.asarray(stab["exponents"])
    assert (ex <= cb["bound"]).all()
    # O(1/T) bias as in the linear test (measured 6e-3).
    np.testing.assert_allclose(stab["mean"], stab["linear_prediction"], atol=0.025)
    # The simulation stage agrees: trajectories relax towards 0 at t1 = 5 (|x| shrinks at
    # least like e^{bound t}: by a factor >= e^{0.41 * 5} ~ 7.8).
    d = np.load(out / "simulate" / "trajectories.npz")
    shrink = np.linalg.norm(d["ys"][:, -1], axis=-1) / np.linalg.norm(d["ys"][:, 0], axis=-1)
    assert (shrink <= np.exp(cb["bound"] * 5.0) * (1 + 1e-6)).all()
    assert "certified" in (out / "report.md").read_text()


def test_rerun_skips_both_stages_and_a_changed_stage_reruns_alone(tmp_path, capsys):
    out = tmp_path / "res"
    assert _run(out, quiet=False) == 0
    capsys.readouterr()
    mtimes = {s: (out / s / "stage.done").stat().st_mtime_ns for s in ("simulate", "stability")}
    assert _run(out, quiet=False) == 0
    err = capsys.readouterr().err
    assert "stage simulate: skipped" in err and "stage stability: skipped" in err
    assert {s: (out / s / "stage.done").stat().st_mtime_ns for s in mtimes} == mtimes
    rep = _report(out)
    assert all(st["skipped"] for st in rep["stages"].values())
    assert rep["stages"]["stability"]["summary"]["k"] == 3  # loaded from the earlier run
    assert "reused (skipped)" in (out / "report.md").read_text()
    # Only the stability settings change: simulate is reused, stability reruns.
    assert _run(out, "--lyap-t", "20", quiet=False) == 0
    err = capsys.readouterr().err
    assert "stage simulate: skipped" in err
    assert "stage stability: configuration changed" in err
    assert (out / "simulate" / "stage.done").stat().st_mtime_ns == mtimes["simulate"]
    assert _report(out)["stages"]["stability"]["summary"]["settings"]["t_total"] == 20.0


def test_stage_selection(tmp_path):
    out = tmp_path / "res"
    assert _run(out, "--stages", "simulate") == 0
    assert (out / "simulate" / "stage.done").exists()
    assert not (out / "stability").exists()
    assert list(_report(out)["stages"]) == ["simulate"]


def test_default_output_folder_is_relative_to_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", *SMALL, "--stages", "simulate", "--quiet"]) == 0
    assert (tmp_path / "ngcdyn-results" / "simulate" / "trajectories.npz").is_file()
    assert (tmp_path / "ngcdyn-results" / "report.md").is_file()


def test_stage_rules_are_enforced(tmp_path):
    class Bad(_jobs.AbstractStage):
        name, title, version = "bad", "writes a folder", 1

        def config(self):
            return {}

        def _run_impl(self, ctx):
            (ctx.directory / "sub").mkdir()
            return {}

        def report_section(self, outcome, rel):
            return ""

    with pytest.raises(RuntimeError, match="stages write files only"):
        Bad().run(tmp_path / "bad")
    assert not (tmp_path / "bad" / "stage.done").exists()
    assert not list((tmp_path / "bad").glob(".tmp-*"))


def test_config_hash_covers_every_option():
    spec, sim = _jobs.SystemSpec(), _jobs.SimulationSpec()
    base = _jobs.SimulateStage(spec, sim, seed=0, dtype=torch.float64, device="cpu").config_hash()
    variants = [
        _jobs.SimulateStage(_jobs.SystemSpec(gain=1.4), sim, seed=0, dtype=torch.float64, device="cpu"),
        _jobs.SimulateStage(spec, _jobs.SimulationSpec(batch=7), seed=0, dtype=torch.float64, device="cpu"),
        _jobs.SimulateStage(spec, _jobs.SimulationSpec(rtol=1e-7), seed=0, dtype=torch.float64, device="cpu"),
        _jobs.SimulateStage(spec, sim, seed=1, dtype=torch.float64, device="cpu"),
        _jobs.SimulateStage(spec, sim, seed=0, dtype=torch.float32, device="cpu"),
    ]
    hashes = {v.config_hash() for v in variants}
    assert base not in hashes and len(hashes) == len(variants)
    # Tolerances given explicitly equal to the defaults hash like the defaults.
    same = _jobs.SimulateStage(spec, _jobs.SimulationSpec(rtol=1e-6, atol=1e-8), seed=0,
                               dtype=torch.float64, device="cpu")
    assert same.config_hash() == base


def test_embedded_default_system():
    # The documented default: NGCSystem.random(4 groups of 32, rank 4, gain 1.5, tanh, tau 1).
    assert _jobs.DEFAULT_SYSTEM == {"n_groups": 4, "group_size": 32, "rank": 4, "gain": 1.5,
                                    "symmetric": False, "tau": 1.0, "phi": "tanh"}
    system = _jobs.build_system(_jobs.SystemSpec(), seed=0, dtype=torch.float64, device="cpu")
    assert (system.dim, system.n_groups, system.rank, system.phi.name) == (128, 4, 4, "tanh")
    # The cast path gives the same parameters as NGCSystem.random itself with the same seed.
    from ngcdyn.systems import NGCSystem

    ref = NGCSystem.random(4, 32, 4, gain=1.5, generator=torch.Generator().manual_seed(0),
                           dtype=torch.float64)
    for p, q in zip(system.states(), ref.states()):
        assert torch.equal(p, q)


@pytest.mark.slow
def test_main_job_on_the_embedded_default(tmp_path, monkeypatch):
    # `ngcdyn run` exactly as a user runs it, no arguments (about 45 s on 2 idle cores).
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--quiet"]) == 0
    out = tmp_path / "ngcdyn-results"
    rep = _report(out)
    sim = rep["stages"]["simulate"]["summary"]
    assert sim["system"]["N"] == 128 and sim["n_success"] == 8
    d = np.load(out / "simulate" / "trajectories.npz")
    assert d["ys"].shape == (8, 501, 128) and np.isfinite(d["ys"]).all()
    # Seed 0 of the default system: the linearisation at 0 has spectral abscissa -0.2826
    # (NGCSystem.linear_spectrum, checked against dense eigenvalues in tests/systems), and the
    # trajectories relax to x = 0: |f(x(50))| is tiny (measured <= 3e-6).
    assert sim["linear_spectrum"]["abscissa"] == pytest.approx(-0.2826, abs=1e-4)
    assert sim["final"]["speed_max"] < 1e-3
    # So the exponents are those of the linearisation at 0, up to the O(1/T) bias of the QR
    # method at T = 100 (close exponents -0.2826, -0.3098: slow frame alignment; measured 5e-3).
    stab = rep["stages"]["stability"]["summary"]
    assert stab["n_failed"] == 0
    np.testing.assert_allclose(stab["mean"], stab["linear_prediction"], atol=0.025)
    assert (out / "report.md").read_text().count("![") == 6


def test_float32_run(tmp_path):
    out = tmp_path / "res"
    assert _run(out, "--gain", "0.3", "--dtype", "float32") == 0
    rep = _report(out)
    assert rep["meta"]["dtype"] == "float32"
    d = np.load(out / "simulate" / "trajectories.npz")
    assert d["ys"].dtype == np.float32 and np.isfinite(d["ys"]).all()
    stab = rep["stages"]["stability"]["summary"]
    assert stab["settings"]["rtol"] == 1e-4  # the float32 default
    # Same O(1/T) band as the float64 test of this system (measured deviation 6e-3 here too).
    np.testing.assert_allclose(stab["mean"], stab["linear_prediction"], atol=0.025)


# ---------------------------------------------------------------------------- properties

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def system_specs(draw):
    G = draw(st.integers(1, 5))
    sizes = draw(st.one_of(st.integers(1, 40), st.lists(st.integers(1, 40), min_size=G, max_size=G)))
    tau = draw(st.one_of(st.floats(0.01, 100.0),
                         st.lists(st.floats(0.01, 100.0), min_size=G, max_size=G)))
    return _jobs.SystemSpec(
        n_groups=G, group_size=sizes, rank=draw(st.integers(1, 8)),
        gain=draw(st.floats(0.0, 10.0)), symmetric=draw(st.booleans()), tau=tau,
        phi=draw(st.sampled_from(["tanh", "identity", "linear"])),
        seed=draw(st.one_of(st.none(), st.integers(0, 2**31))),
    )


@given(spec=system_specs())
@example(spec=_jobs.SystemSpec())
@example(spec=_jobs.SystemSpec(n_groups=3, group_size=[1, 2, 3], tau=[0.5, 1.0, 2.0], seed=7))
def test_system_spec_round_trips_through_a_config_file(tmp_path_factory, spec):
    path = tmp_path_factory.mktemp("cfg") / "sys.json"
    path.write_text(json.dumps(spec.to_json()))
    back = _jobs.load_system_spec(path)
    assert back == spec
    # The hash sees the same configuration whatever the key order of the file.
    cfg = spec.to_json()
    shuffled = dict(reversed(list(cfg.items())))
    assert _jobs.config_hash("s", 1, cfg) == _jobs.config_hash("s", 1, shuffled)


@given(
    rates=st.lists(st.floats(0.05, 3.0), min_size=1, max_size=4),
    n_points=st.integers(2, 30),
    chunks=st.integers(1, 40),
)
@example(rates=[1.0], n_points=2, chunks=1)
@example(rates=[3.0, 0.05], n_points=30, chunks=40)  # more chunks than intervals: capped
def test_chunked_simulation_matches_the_exact_solution(rates, n_points, chunks):
    # dy/dt = -k y per coordinate: y(t) = y0 exp(-k t). Cutting the span into chunks restarts the
    # solver from the last state; the result must stay within a few tolerance units of the exact
    # solution whatever the number of chunks (measured max about 1 unit).
    k = torch.tensor(rates, dtype=torch.float64)
    x0 = torch.linspace(0.5, 2.0, 3, dtype=torch.float64)[:, None].expand(3, k.numel()).contiguous()
    ts = torch.linspace(0.0, 3.0, n_points, dtype=torch.float64)
    rtol, atol = 1e-8, 1e-10
    out = _jobs.simulate(lambda t, y, a: -k * y, x0, ts, rtol=rtol, atol=atol, chunks=chunks)
    exact = x0[:, None, :] * torch.exp(-k * ts[:, None])
    err = (out["ys"] - exact).abs() / (atol + rtol * exact.abs())
    assert float(err.max()) < 20
    assert out["status"].tolist() == [0, 0, 0]
    assert (out["stats"]["n_accepted"] >= min(chunks, n_points - 1)).all()  # >= 1 step per chunk


def test_a_member_failing_mid_run_stops_alone():
    # dy/dt = y^2: y(t) = y0 / (1 - y0 t). Member 0 (y0 = 1) blows up at t = 1, inside the second
    # of four chunks of [0, 2]; member 1 (y0 = -1) decays as -1/(1 + t) and must finish unharmed.
    ts = torch.linspace(0.0, 2.0, 9, dtype=torch.float64)  # chunks [0, .5], [.5, 1], [1, 1.5], [1.5, 2]
    x0 = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    rtol, atol = 1e-8, 1e-10
    out = _jobs.simulate(lambda t, y, a: y * y, x0, ts, rtol=rtol, atol=atol, chunks=4)
    status, ys = out["status"], out["ys"]
    assert status[0] != 0 and status[1] == 0
    exact1 = -1.0 / (1.0 + ts)
    err1 = (ys[1, :, 0] - exact1).abs() / (atol + rtol * exact1.abs())
    assert float(err1.max()) < 20  # tolerance units, as in the chunked-simulation property test
    # Member 0 completed the first chunk exactly (y = 1/(1 - t) on [0, 0.5]) and is NaN after t = 1.
    exact0 = 1.0 / (1.0 - ts[:3])
    err0 = (ys[0, :3, 0] - exact0).abs() / (atol + rtol * exact0.abs())
    assert float(err0.max()) < 20
    assert torch.isnan(ys[0, 5:, 0]).all()
    # Member 1 was solved in all 4 chunks: at least one accepted step in each.
    assert int(out["stats"]["n_accepted"][1]) >= 4
