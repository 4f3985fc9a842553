"""The command line: end to end on the default and on a user's file; bad input -> exit 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

from thermodiff._cli import main


def test_landscape_default_two_deltas(tmp_path, capsys):
    assert main(["landscape", "--out", str(tmp_path), "--points", "201"]) == 0
    res = json.loads((tmp_path / "landscape.json").read_text())
    assert (tmp_path / "landscape.png").stat().st_size > 10_000
    rows = {r["T"]: r for r in res["temperatures"]}
    # Two deltas +-1: T_c = 1; below it the minima sit at +-x* with x* = tanh(x*/T) (SPEC 3.1).
    assert rows[2.0]["minima"] == [0.0]
    assert rows[1.0]["curvature_at_mean"] == pytest.approx(0.0, abs=1e-12)
    assert rows[0.5]["minima"] == pytest.approx([-0.9575040241, 0.9575040241], abs=0.02)
    assert rows[0.5]["curvature_at_mean"] == pytest.approx(-1.0, abs=1e-12)


def test_landscape_on_user_file(tmp_path):
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.normal(2.0, 0.3, size=(50, 3)), rng.normal(-2.0, 0.3, size=(50, 3))])
    f = tmp_path / "mydata.npz"
    np.savez(f, data=data)
    out = tmp_path / "out"
    assert main(["landscape", "--ensemble", "finite", "--data", str(f), "--out", str(out),
                 "--temperatures", "20,5,1", "--points", "101"]) == 0
    res = json.loads((out / "landscape.json").read_text())
    assert res["dim"] == 3 and len(res["temperatures"]) == 3
    assert len(res["temperatures"][0]["minima"]) == 1 and len(res["temperatures"][-1]["minima"]) == 2


@pytest.mark.parametrize(
    "content, args, match",
    [
        (None, ["--data", "missing.npy"], "no such file"),
        (b"not numpy at all", ["--data", "{f}"], "cannot read"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), ["--data", "{f}"], "NaN"),
        (np.ones((1, 3)), ["--data", "{f}"], "at least 2 points"),
        (np.array([["a", "b"], ["c", "d"]]), ["--data", "{f}"], "numeric"),
        (np.ones((4, 2)), ["--data", "{f}", "--temperatures", "1,-2"], "temperatures"),
        (None, ["--ensemble", "nonsense"], "--ensemble must be one of"),
    ],
)
def test_bad_input_one_line_exit_2_no_files(tmp_path, content, args, match):
    f = tmp_path / "in.npy"
    if isinstance(content, bytes):
        f.write_bytes(content)
    elif content is not None:
        np.save(f, content)
    out = tmp_path / "out"
    argv = ["landscape", "--ensemble", "finite", "--out", str(out)] + [a.format(f=f) for a in args]
    proc = subprocess.run([sys.executable, "-m", "thermodiff", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("thermodiff: error:") and match in lines[0], proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_bad_ensemble_parameter_is_reported(tmp_path, capsys):
    assert main(["landscape", "--ensemble", "mixture", "--variance", "-1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "variances" in err[0]
