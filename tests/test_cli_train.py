"""``thermodiff train`` and ``thermodiff analyze --model``: end to end, resume, and bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import thermodiff as td
from thermodiff._cli import main

SMALL = ["--steps", "40", "--width", "16", "--depth", "1", "--batch-size", "32", "--n-samples", "16", "--no-progress"]


def _clusters(n=90, d=4, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.arange(n) % 3
    return 3.0 * np.eye(d)[:3][lab] + 0.5 * rng.standard_normal((n, d)), lab


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    X, lab = _clusters()
    f = tmp_path_factory.mktemp("data") / "mine.npz"
    np.savez(f, data=X, labels=lab)
    return f


@pytest.fixture(scope="module")
def trained(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    assert main(["train", str(data_file), "--out", str(out), *SMALL]) == 0
    return out


def test_train_end_to_end(trained, data_file):
    names = {p.name for p in trained.iterdir()}
    assert {"checkpoint", "training.json", "loss.png", "diagnostics.png"} <= names
    r = json.loads((trained / "training.json").read_text())
    assert r["final"]["step"] == 40 and r["dataset"]["n_train"] == 81 and r["dataset"]["n_held_out"] == 9
    assert len(r["diagnostics"]) >= 2 and len(r["diagnostics"][0]["excess"]) == len(r["temperatures"]) == 8
    assert "proxy" in r["definitions"]["generalization"] and r["loss_floor"] > 0
    ck = td.load_checkpoint(trained)
    assert ck.step == 40 and ck.meta["architecture"]["name"] == "ResidualMLP" and ck.state is None
    assert ck.meta["extra"]["cli"]["width"] == 16 and ck.history["losses"].shape == (40,)


def test_resumed_run_equals_an_uninterrupted_one(trained, data_file, tmp_path):
    out = tmp_path / "cut"
    small = [a if a != "40" else "25" for a in SMALL]
    assert main(["train", str(data_file), "--out", str(out), *small]) == 0
    assert main(["train", str(data_file), "--out", str(out), "--steps", "40", "--resume", "--no-progress"]) == 0
    for name in ("model.eqx", "optimizer.eqx"):
        assert (out / "checkpoint" / name).read_bytes() == (trained / "checkpoint" / name).read_bytes()


def test_analyze_with_the_model(trained, data_file, tmp_path, capsys):
    out = tmp_path / "an"
    assert main(["analyze", str(data_file), "--model", str(trained), "--out", str(out), "--quick", "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    m = res["model"]
    assert m["n_train_points"] == 81 and m["info"]["step"] == 40
    assert len(m["cloning"]["phi"]) == len(res["cloning"]["T"])
    assert all(0 <= p <= 1 for p in m["cloning"]["phi"])
    md = (out / "report.md").read_text()
    assert "Measured in your model" in md and "phi your model" in md


def _one_line_exit_2(argv, capsys, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err


@pytest.mark.parametrize("extra, match", [
    (["--steps", "0"], "--steps"),
    (["--held-out", "0.9"], "--held-out"),
    (["--arch", "transformer"], "--arch"),
    (["--lr", "-1"], "--lr"),
    (["--ema", "1"], "--ema"),
    (["--n-samples", "1"], "--n-samples"),
    (["--channels", "a,b"], "--channels"),
    (["--steps", "100000000", "--batch-size", "60000"], "1e11"),
])
def test_train_bad_options(data_file, tmp_path, capsys, extra, match):
    out = tmp_path / "o"
    _one_line_exit_2(["train", str(data_file), "--out", str(out), "--no-progress", *extra], capsys, match)
    assert not out.exists()


def test_train_bad_data_and_folders(data_file, trained, tmp_path, capsys):
    bad = tmp_path / "nan.npy"
    X, _ = _clusters()
    X[3, 1] = np.nan
    np.save(bad, X)
    _one_line_exit_2(["train", str(bad), "--out", str(tmp_path / "o1")], capsys, "NaN")
    f = tmp_path / "file"
    f.write_text("x")
    _one_line_exit_2(["train", str(data_file), "--out", str(f)], capsys, "not a folder")
    _one_line_exit_2(["train", str(data_file), "--out", str(trained)], capsys, "--resume")
    _one_line_exit_2(["train", str(data_file), "--out", str(tmp_path / "none"), "--resume"], capsys, "no checkpoint")
    d5 = tmp_path / "d5.npy"
    np.save(d5, np.random.default_rng(0).standard_normal((20, 5)))
    _one_line_exit_2(["train", str(d5), "--out", str(tmp_path / "o2"), "--arch", "unet"], capsys, "square")
    before = sorted(p.name for p in trained.iterdir())
    _one_line_exit_2(["train", str(data_file), "--out", str(trained), "--resume", "--width", "32"], capsys, "--width")
    other = tmp_path / "other.npy"
    np.save(other, _clusters(seed=1)[0])
    _one_line_exit_2(["train", str(other), "--out", str(trained), "--resume"], capsys, "another dataset")
    assert sorted(p.name for p in trained.iterdir()) == before
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_analyze_refuses_a_model_of_other_data_or_a_corrupt_one(trained, tmp_path, capsys):
    other = tmp_path / "other.npy"
    np.save(other, _clusters(seed=1)[0])
    _one_line_exit_2(["analyze", str(other), "--model", str(trained), "--out", str(tmp_path / "a")], capsys,
                     "another dataset")
    _one_line_exit_2(["analyze", str(other), "--model", str(tmp_path), "--out", str(tmp_path / "a")], capsys,
                     "not a thermodiff checkpoint")
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_ctrl_c_keeps_the_last_checkpoint_and_resume_finishes_identically(data_file, tmp_path):
    args = ["--steps", "3000", "--width", "16", "--depth", "1", "--batch-size", "16", "--n-samples", "0", "--no-progress"]
    cmd = [sys.executable, "-m", "thermodiff", "train", str(data_file)]
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)
    cut = tmp_path / "cut"
    proc = subprocess.Popen([*cmd, "--out", str(cut), *args], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (cut / "checkpoint" / "meta.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "--resume" in err
    step = json.loads((cut / "checkpoint" / "meta.json").read_text())["step"]
    assert 0 < step < 3000
    assert not (cut / "training.json").exists()
    done = subprocess.run([*cmd, "--out", str(cut), "--resume", "--no-progress"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ref = tmp_path / "ref"
    full = subprocess.run([*cmd, "--out", str(ref), *args], env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    for name in ("model.eqx", "optimizer.eqx", "history.npz"):
        assert (cut / "checkpoint" / name).read_bytes() == (ref / "checkpoint" / name).read_bytes()
