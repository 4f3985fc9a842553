"""``thermodiff analyze``: end to end on a small user file, and the bad-input contract."""

import json
import subprocess
import sys

import numpy as np
import pytest

from thermodiff._cli import main


def _clusters(n=120, d=4, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.arange(n) % 3
    centres = 3.0 * np.eye(d)[:3]
    return centres[lab] + 0.5 * rng.standard_normal((n, d)), lab


def test_analyze_small_user_file_end_to_end(tmp_path, capsys):
    X, lab = _clusters()
    f = tmp_path / "mine.npz"
    np.savez(f, data=X, labels=lab)
    out = tmp_path / "out"
    assert main(["analyze", str(f), "--out", str(out), "--quick", "--no-progress"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "results.json", "spectrum.png", "cloning.png", "collapse.png", "commitment.png"} <= names
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["n_points"] == 120 and res["dataset"]["dim"] == 4
    ev = np.sort(np.linalg.eigvalsh(np.cov(X.T, bias=True)))[::-1]
    np.testing.assert_allclose(res["spectrum"]["eigenvalues"], ev, rtol=1e-8)
    sp = res["speciation"]
    np.testing.assert_allclose(sp["biroli"]["T"], ev[0] - 1, rtol=1e-6)
    np.testing.assert_allclose(sp["biroli"]["ou_t"], np.log(ev[0]) / 2, rtol=1e-6)
    T_rem = res["dataset"]["mean_variance"] / (120 ** (2 / 4) - 1)
    np.testing.assert_allclose(res["collapse"]["rem"]["T"], T_rem, rtol=1e-5)
    # speciation above collapse; cloning curve rises from near chance to 1 as T falls
    assert sp["first_split"]["T"] > res["collapse"]["rem"]["T"]
    phi = res["cloning"]["phi_exact"]
    assert phi[-1] > 0.99 and phi[0] < 0.6
    assert abs(sum(c["generated_fraction"] for c in res["classes"]) - 1) < 1e-9
    md = (out / "report.md").read_text()
    assert "speciation" in md and "collapse" in md and "OU time" in md
    assert "analyze:" in capsys.readouterr().out


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


@pytest.mark.slow
def test_analyze_default_digits(tmp_path):
    """The README's main job on the embedded digits (about a minute on 2 cores)."""
    out = tmp_path / "out"
    assert main(["analyze", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["n_points"] == 1797
    sp, co = res["speciation"], res["collapse"]
    np.testing.assert_allclose(sp["biroli"]["Lambda"], 178.9, rtol=1e-3)
    assert abs(sp["first_split"]["T"] / sp["biroli"]["T"] - 1) < 0.05
    assert co["measured_settle"]["T"] < sp["first_split"]["T"]
