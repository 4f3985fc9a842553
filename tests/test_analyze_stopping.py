"""``thermodiff analyze``: the geometry and the "data and stopping" sections (theory 9-12).

The effective dimension of the exact empirical score against T beside the Gaussian count
#{lambda_i > T}; the collapse temperature at this n and the n for a target T* (round trips with
``collapse_temperature``); a train probe's law and the verdict on a checkpoint's step.
"""

import json

import numpy as np
import pytest

import thermodiff as td
from thermodiff._analyze import analyze
from thermodiff._analyze_probe import ProbeResult, TrainProbe, probe_settings
from thermodiff._analyze_stopping import stopping_markdown, stopping_section
from thermodiff._analyze_text import report_markdown
from thermodiff._cli import _logged_onsets, main

RATE = 2e10


def _clusters(n=160, d=6, k=4, seed=1, sep=3.0):
    rng = np.random.default_rng(seed)
    lab = np.arange(n) % k
    return sep * np.eye(d)[:k][lab] + 0.5 * rng.standard_normal((n, d)), lab


@pytest.fixture(scope="module")
def quick_run():
    X, lab = _clusters()
    res, figs = analyze(X, lab, quick=True, scale="raw", rate=RATE)
    return X, res, figs


def test_geometry_section_counts_and_falls_to_zero(quick_run):
    X, res, figs = quick_run
    g = res["geometry"]
    T = np.asarray(g["T"])
    ev = np.linalg.eigvalsh(np.cov(X.T, bias=True))
    np.testing.assert_array_equal(g["gaussian"], [np.sum(ev > t) for t in T])  # d = 6: the exact spectrum
    emp = np.asarray(g["empirical"])
    assert np.all((emp >= 0) & (emp <= X.shape[1]))
    assert emp[-1] == 0.0  # the coldest grid point lies far below the collapse: every direction frozen
    assert emp.max() >= 1.0  # some direction is open above it
    z = g["T_zero"]["T"]
    assert z is not None and T.min() < z < T.max()
    assert "effective_dimension.png" in figs and figs["effective_dimension.png"][:4] == b"\x89PNG"
    md = report_markdown(res, {})
    assert "## Geometry: effective dimension" in md and f"T = {z:.4g}" in md


def test_stopping_section_round_trips_the_collapse_formula(quick_run):
    X, res, _ = quick_run
    s = res["stopping"]
    n, d, s2 = X.shape[0], X.shape[1], res["dataset"]["mean_variance"]
    np.testing.assert_allclose(s["collapse_isotropic"]["T"], res["memorization"]["rem"]["T"], rtol=1e-6)
    key = res["headline"]["speciation_estimator"]
    T_star = s["target"]["T"]
    assert T_star == pytest.approx(0.1 * res["speciation"][key]["T"], rel=1e-12)
    n_iso = s["n_isotropic"]["value"]
    np.testing.assert_allclose(float(td.collapse_temperature(n_iso, d, s2)), T_star, rtol=1e-6)
    ev = np.linalg.eigvalsh(np.cov(X.T, bias=True))
    log_n = 0.5 * np.sum(np.log1p(np.maximum(ev, 0) / T_star))
    np.testing.assert_allclose(np.log(s["n_spectrum"]["value"]), log_n, rtol=1e-9)
    # more data are needed exactly when the collapse at this n lies above the target
    assert (s["n_isotropic"]["value"] > n) == (s["collapse_isotropic"]["T"] > T_star)
    md = stopping_markdown(res)
    assert "## Data and stopping" in md[1] and f"T* = {T_star:.4g}" in "\n".join(md)


def _probe(law_taus=(100.0, 210.0), sizes=(16, 32), tau_gen=40.0):
    law = td.fit_memorization_law(list(sizes), list(law_taus), exponent=1.0) if law_taus else None
    return ProbeResult(sizes=sizes, steps=500, table=[], law_a1=law, tau_gen_estimate=tau_gen,
                       settings=probe_settings(None), wall_s=1.0)


def test_probe_prediction_and_the_verdict_on_a_checkpoint(quick_run):
    X, res, _ = quick_run
    spec = dict(eigenvalues=res["spectrum"]["eigenvalues"], total_variance=res["spectrum"]["total_variance"],
                mean_variance=res["dataset"]["mean_variance"])
    probe = _probe()
    c = probe.law_a1.c
    for step, verdict in ((10, "before"), (10**6, "past")):
        info = dict(step=step, n_train_points=120, logged_f_mem=False)
        s = stopping_section(res, spec, _Scale(), model_info=info, probe=probe)
        tau = s["probe"]["tau_mem"]
        assert tau["value"] == pytest.approx(c * 120, rel=1e-9) and tau["lo"] < tau["value"] < tau["hi"]
        assert s["model"]["verdict"].startswith(verdict)
        assert s["probe"]["window"]["lo"] == 40.0
    # no probe run memorised: a lower bound tau_mem(n) > steps n / n_max, and no verdict past it
    s = stopping_section(res, spec, _Scale(), model_info=dict(step=10, n_train_points=120), probe=_probe(None))
    assert s["probe"]["tau_mem"] is None and s["probe"]["lower_bound"] == pytest.approx(500 * 120 / 32)
    assert s["model"]["verdict"].startswith("before the memorization onset (no probe run memorised")
    assert "a lower bound" in "\n".join(stopping_markdown(dict(res, stopping=s)))


class _Scale:  # the raw scale of a unit test: data units = analysis units
    a, b, name = 1.0, 0.0, "raw"

    @staticmethod
    def temperature_to_data_units(T):
        return T


def test_logged_onsets_of_a_checkpoint_history():
    steps = np.array([0, 10, 100, 1000])
    fm = np.array([0.0, 0.0, 0.05, 0.5])
    gen = np.array([[4.0, 4.0], [1.0, 1.0], [0.5, 0.5], [0.6, 0.6]])
    out = _logged_onsets(dict(step=steps, f_mem=fm, generalization=gen))
    assert out["logged_f_mem"] and out["tau_mem"] == pytest.approx(td.detect_tau_mem(steps, fm))
    assert out["tau_gen"] == pytest.approx(td.detect_tau_gen(steps, gen.sum(-1)))
    assert _logged_onsets({}) == dict(logged_f_mem=False)


def test_a_small_train_probe_end_to_end(tmp_path):
    """A tiny probe (width 32, 300 steps, n = 8 and 16) runs inside analyze and reports either a law
    (tau_mem = c n with c > 0) or the lower bound steps n / 16."""
    X, lab = _clusters(n=96, d=4, k=3, seed=3)
    settings = dict(probe_settings(None), width=32, depth=1, batch_size=64)
    res, _ = analyze(X, lab, quick=True, scale="raw", rate=RATE, train_probe=TrainProbe((8, 16), 300, settings=settings))
    p = res["stopping"]["probe"]
    assert p["sizes"] == [8, 16] and len(p["runs"]) == 4 and p["settings"]["width"] == 32
    if p["tau_mem"] is None:
        assert p["lower_bound"] == pytest.approx(300 * 96 / 16)
    else:
        assert p["c"] > 0 and p["tau_mem"]["value"] == pytest.approx(p["c"] * 96, rel=1e-9)
    json.dumps(res["stopping"])  # JSON-able


@pytest.mark.parametrize("argv, match", [
    (["--train-probe", "16,5000"], "--train-probe"),
    (["--train-probe", "2000,3000"], "--train-probe needs"),
    (["--target-temperature", "0"], "--target-temperature"),
    (["--probe-steps", "10"], "--probe-steps"),
])
def test_bad_probe_and_target_options(tmp_path, capsys, argv, match):
    assert main(["analyze", "--out", str(tmp_path / "o"), "--no-progress", "--quick"] + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert not (tmp_path / "o").exists()
