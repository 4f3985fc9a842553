"""``thermodiff analyze``: end to end, one answer per question, units, classes, bad input."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import thermodiff as td
from thermodiff._analyze import analyze
from thermodiff._analyze_text import report_markdown
from thermodiff._cli import main

RATE = 2e10  # a fixed matmul rate: the plan (sample sizes) must not depend on the machine in tests


def _clusters(n=120, d=4, k=3, seed=0, sep=3.0):
    rng = np.random.default_rng(seed)
    lab = np.arange(n) % k
    centres = sep * np.eye(d)[:k]
    return centres[lab] + 0.5 * rng.standard_normal((n, d)), lab


def test_analyze_small_user_file_end_to_end(tmp_path, capsys):
    X, lab = _clusters()
    f = tmp_path / "mine.npz"
    np.savez(f, data=X, labels=lab)
    out = tmp_path / "out"
    assert main(["analyze", str(f), "--out", str(out), "--no-progress", "--scale", "raw"]) == 0  # the full run
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "results.json", "spectrum.png", "cloning.png", "collapse.png", "commitment.png"} <= names
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["n_points"] == 120 and res["dataset"]["dim"] == 4
    ev = np.sort(np.linalg.eigvalsh(np.cov(X.T, bias=True)))[::-1]
    np.testing.assert_allclose(res["spectrum"]["eigenvalues"], ev, rtol=1e-8)
    sp, mem = res["speciation"], res["memorization"]
    np.testing.assert_allclose(sp["biroli"]["T"], ev[0] - 1, rtol=1e-6)
    np.testing.assert_allclose(sp["biroli"]["ou_t"], np.log(ev[0]) / 2, rtol=1e-6)
    T_rem = res["dataset"]["mean_variance"] / (120 ** (2 / 4) - 1)
    np.testing.assert_allclose(mem["rem"]["T"], T_rem, rtol=1e-5)
    # the 0-based DDPM step: alphas_cumprod[k] = 1/(1 + T)
    acp = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    k = mem["rem"]["ddpm_step"]
    assert acp[int(np.floor(k))] >= 1 / (1 + T_rem) >= acp[int(np.ceil(k))]
    assert sp["first_split"]["T"] > mem["rem"]["T"]
    phi = res["cloning"]["phi_exact"]
    assert phi[-1] > 0.99 and phi[0] < 0.6
    assert abs(sum(c["generated_fraction"] for c in res["classes"]) - 1) < 1e-9
    assert res["dataset"]["class_inference"]["source"] == "given"
    assert "speciation T =" in capsys.readouterr().out


def _headline_numbers(md: str):
    """(T, +-) of the two bold headline lines of report.md."""
    out = {}
    for kind in ("Speciation", "Memorization"):
        m = re.search(rf"\*\*{kind} at T = ([0-9.e+-]+)(?: \+- ([0-9.e+-]+))?\*\*", md)
        out[kind.lower()] = (float(m.group(1)), float(m.group(2)) if m.group(2) else None) if m else None
    return out


def test_headlines_lie_among_their_estimators_and_the_report_quotes_results_json():
    X, lab = _clusters(n=160, d=6, k=4, seed=1)
    res, figs = analyze(X, lab, quick=True, scale="raw", rate=RATE)
    h = res["headline"]
    assert h["speciation_estimator"] == "cloning_half" and h["memorization_estimator"] == "top_weight_half"
    for kind, keys in (("speciation", ("cloning_half", "first_split", "biroli")),
                       ("memorization", ("top_weight_half", "excess_entropy_zero", "rem", "settle", "memorized_half"))):
        Ts = [res[kind][k]["T"] for k in keys if res[kind][k]["T"] is not None]
        head = res[kind][h[f"{kind}_estimator"]]
        assert min(Ts) <= head["T"] <= max(Ts)
        assert head["stderr"] > 0 and head["stderr"] < head["T"]
    md = report_markdown(res, {})
    nums = _headline_numbers(md)
    for kind in ("speciation", "memorization"):
        e = res[kind][h[f"{kind}_estimator"]]
        T, pm = nums[kind]
        assert T == pytest.approx(e["T"], rel=5e-4) and pm == pytest.approx(e["stderr"], rel=5e-2)
        assert f"DDPM step {e['ddpm_step']:.4g}" in md
    # every estimator's row is in the table with the number of results.json
    for kind in ("speciation", "memorization"):
        for key, e in res[kind].items():
            if isinstance(e, dict) and e.get("T") is not None:
                assert f"| {e['T']:.4g} |" in md
    # every n/a in the table is explained below it
    from thermodiff._analyze_text import LABELS

    for kind in ("speciation", "memorization"):
        for key, e in res[kind].items():
            if isinstance(e, dict) and "formula" in e and e["T"] is None:
                assert f"{LABELS[key]} n/a:" in md or (key == "first_split" and "First split: not computed" in md), key
    assert set(figs) == {"spectrum.png", "cloning.png", "collapse.png", "commitment.png", "effective_dimension.png"}


def test_unlabelled_four_clusters_are_four_classes_and_tiny_data_get_a_caveat():
    X, lab = _clusters(n=160, d=6, k=4, seed=2, sep=4.0)
    res, _ = analyze(X, None, quick=True, scale="raw", rate=RATE)
    ci = res["dataset"]["class_inference"]
    assert ci["source"] == "inferred" and ci["n_classes"] == 4 and ci["caveat"] is None
    assert "gap statistic" in ci["method"]
    rng = np.random.default_rng(0)
    one, _ = analyze(rng.standard_normal((100, 3)), None, quick=True, scale="raw", rate=RATE)
    assert one["dataset"]["class_inference"]["n_classes"] == 1 and one["dataset"]["class_inference"]["caveat"]
    assert one["headline"]["speciation_estimator"] is None and "not defined" in one["headline"]["speciation"]
    two, _ = analyze(np.array([[0.0, 0.0], [1.0, 2.0]]), None, quick=True, scale="raw", rate=RATE)
    assert two["dataset"]["class_inference"]["caveat"]
    assert "Caveat:" in report_markdown(two, {})


def test_three_scales_of_one_dataset_agree_in_data_units():
    X, lab = _clusters(n=120, d=4, seed=3)
    runs = [analyze(a * X + b, lab, quick=True, scale="unit-variance", rate=RATE)[0]
            for a, b in ((1.0, 0.0), (10.0, 3.0), (0.05, -1.0))]
    for res, a in zip(runs, (1.0, 10.0, 0.05)):
        assert res["scale"]["temperature_factor"] == pytest.approx(runs[0]["scale"]["temperature_factor"] / a**2, rel=1e-9)
        for kind, key in (("speciation", "biroli"), ("speciation", "cloning_half"), ("memorization", "rem"),
                          ("memorization", "top_weight_half")):
            e, e0 = res[kind][key], runs[0][kind][key]
            assert e["T"] == pytest.approx(e0["T"], rel=2e-2)  # the same scaled data: the same schedule columns
            assert e["ddpm_step"] == pytest.approx(e0["ddpm_step"], rel=2e-2)
            assert e["T_data"] == pytest.approx(a**2 * e0["T_data"], rel=2e-2)  # data units scale as a^2
    # raw: the schedule columns move with the data's units as documented (T -> a^2 T)
    raw = analyze(10.0 * X, lab, quick=True, scale="raw", rate=RATE)[0]
    T = raw["memorization"]["rem"]["T"]
    assert T == pytest.approx(100 * runs[0]["memorization"]["rem"]["T_data"], rel=1e-6)
    assert raw["memorization"]["rem"]["ddpm_step"] == pytest.approx(float(td.noise_conventions(T).ddpm_step), rel=1e-9)


def test_plan_shrinks_sample_sizes_for_large_data_and_refuses_impossible_ones():
    from thermodiff._analyze_plan import plan_analysis

    small = plan_analysis(1797, 64, rate=2e10)
    assert not small.reduced and small.n_pairs == 384
    big = plan_analysis(70000, 4096, rate=5e10)
    assert big.reduced and big.estimated_s <= big.budget_s * 1.05 + 1e-9 or big.n_pairs == 32
    assert big.n_pairs < small.n_pairs and big.n_traj < small.n_traj
    with pytest.raises(ValueError, match="--max-points"):
        plan_analysis(10**7, 4096, rate=5e10)


@pytest.mark.parametrize(
    "content,match",
    [
        ("garbage", "cannot read"),
        ("rank1", "2-D"),
        ("rank3", "2-D"),
        ("nan", "NaN"),
        ("one", "at least 2"),
        ("strings", "numeric"),
        ("missing", "no such file"),
    ],
)
def test_analyze_bad_input_one_line_exit_2_no_output(tmp_path, content, match):
    f = tmp_path / "bad.npy"
    if content == "garbage":
        f.write_bytes(b"not a numpy file")
    elif content == "rank1":
        np.save(f, np.arange(10.0))
    elif content == "rank3":
        np.save(f, np.zeros((5, 2, 2)))
    elif content == "nan":
        np.save(f, np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]))
    elif content == "one":
        np.save(f, np.zeros((1, 3)))
    elif content == "strings":
        np.save(f, np.array([["a", "b"], ["c", "d"]]))
    else:
        f = tmp_path / "absent.npy"
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "thermodiff", "analyze", str(f), "--out", str(out), "--no-progress"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("thermodiff: error:") and match in lines[0], res.stderr
    assert not out.exists()


@pytest.mark.parametrize("argv,match", [(["--scale", "pixels"], "--scale"), (["--max-points", "1"], "--max-points")])
def test_analyze_bad_options(tmp_path, capsys, argv, match):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        code = main(["analyze", "--out", str(out), *argv])
        raise SystemExit(code)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert not out.exists()


def test_version_and_fast_help():
    import time

    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "thermodiff", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"thermodiff {td.__version__}"
    r = subprocess.run([sys.executable, "-c", "import sys, thermodiff._cli; print('jax' in sys.modules)"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False"  # --help and --version never import JAX
    assert time.perf_counter() - t0 < 60


@pytest.mark.slow
def test_analyze_default_digits(tmp_path):
    """The README's main job on the embedded digits (about two minutes on 2 cores)."""
    out = tmp_path / "out"
    assert main(["analyze", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["n_points"] == 1797 and res["scale"]["name"] == "minus-one-one"
    sp, mem = res["speciation"], res["memorization"]
    # raw digits: top eigenvalue 178.9; in [-1, 1] units (a = 1/8) that is 178.9/64
    np.testing.assert_allclose(sp["biroli"]["Lambda"], 178.9 / 64, rtol=1e-3)
    assert abs(sp["first_split"]["T_data"] / 178.9 - 1) < 0.05
    assert mem["settle"]["T"] < sp["first_split"]["T"]
    assert mem["top_weight_half"]["T"] < sp["cloning_half"]["T"]


def test_a_failed_write_leaves_the_previous_report_intact(tmp_path, monkeypatch):
    """Files are staged in full before any is renamed into place: a failure while staging (here
    'no space left' on the third file) removes the staged files and keeps the old report."""
    import errno
    import os

    from thermodiff import _cli

    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.png", "results.json", "report.md"):
        (out / name).write_text(f"old {name}")
    real_fdopen, calls = os.fdopen, []

    def failing_fdopen(fd, *a, **k):
        calls.append(fd)
        if len(calls) == 3:
            os.close(fd)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fdopen(fd, *a, **k)

    monkeypatch.setattr(os, "fdopen", failing_fdopen)
    files = [(out / n, b"new") for n in ("a.png", "results.json", "report.md")]
    with pytest.raises(OSError, match="No space"):
        _cli._write_all(files)
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "report.md", "results.json"]  # no temporaries
    assert all((out / n).read_text() == f"old {n}" for n in ("a.png", "results.json", "report.md"))
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    _cli._write_all(files)
    assert all((out / n).read_bytes() == b"new" for n in ("a.png", "results.json", "report.md"))


def test_internal_errors_and_ctrl_c_are_one_line(tmp_path, monkeypatch, capsys):
    from thermodiff import _cli

    def bug(args):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(_cli, "analyze_command", bug)
    out = tmp_path / "out"
    assert main(["analyze", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error: RuntimeError: something inside broke" in err[0]
    path = err[0].split("full traceback in ")[1].split(";")[0]
    assert "RuntimeError" in open(path).read()
    import os

    os.unlink(path)

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "analyze_command", interrupted)
    assert main(["analyze", "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("delay", [1.5, 6.0])
def test_sigint_stops_analyze_promptly(tmp_path, delay):
    """Ctrl-C at any moment: exit 130, one line, nothing written. At 1.5 s the interrupt tends to
    land in JAX's garbage-collector callback during its import, where Python used to drop it."""
    import signal
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "thermodiff", "analyze", "--out", str(out), "--no-progress"],
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err, err
    assert time.time() - t0 < 10
    assert not out.exists()


def test_certified_simulations_equal_the_dense_ones_and_the_report_says_so():
    """--certified (theory 14) samples with td.CertifiedDataset: its error bound is 1e-6 of the data
    radius, far below the statistics' noise: with the same keys the cloning curve came out
    identical (difference 0.0 here and on the digits) and the mean top-weight path within 1.8e-5
    (the float32 states differ by ~1e-6 R per step, amplified by 1/T in the weights at the coldest
    T; 0.0 on the digits, where every cold state fell back), against 1e-3 allowed, two orders below
    the paths' Monte Carlo error. On these clusters the cold states are certified without the dense
    sum (fallback at most 25% allowed at the coldest reported T)."""
    X, lab = _clusters(n=400, d=4, k=4, sep=4.0)
    kw = dict(quick=True, scale="raw", rate=RATE)
    dense, _ = analyze(X, lab, **kw)
    cert, _ = analyze(X, lab, certified=True, **kw)
    assert dense["exact_index"] == {"used": False}
    ix = cert["exact_index"]
    assert ix["used"] and ix["tol"] == 1e-6 and ix["n_groups"] >= 4
    np.testing.assert_allclose(cert["cloning"]["phi_simulated"], dense["cloning"]["phi_simulated"], atol=1e-6)
    np.testing.assert_allclose(cert["trajectories"]["top_weight"], dense["trajectories"]["top_weight"], atol=1e-3)
    fb = ix["fallback"]["fraction"]
    assert len(fb) == 5 and all(0.0 <= f <= 1.0 for f in fb) and fb[-1] <= 0.25, fb
    md = report_markdown(cert, {})
    assert "Simulated with the certified exact denoiser" in md and "fell back to the dense sum" in md
    assert "certified exact denoiser" not in report_markdown(dense, {})
