"""``thermodiff data-need``: the table, --json written whole, the DATA arguments of analyze, and bad input."""

import json
import os

import numpy as np
import pytest

import thermodiff as td
from thermodiff._cli import main
from thermodiff._data_need import data_need


def _run(argv, capsys):
    code = main(["data-need", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_default_digits_table_and_json(tmp_path, capsys):
    out = tmp_path / "sub" / "need.json"
    code, text, err = _run(["--target-temperature", "0.1", "--probe", "64:1200,128:2500", "--tau-gen", "300",
                            "--features", "1000", "--target-kl", "0.1", "--json", str(out)], capsys)
    assert code == 0, err
    assert "UCI optical digits" in text and "d = 64, n = 1797" in text and "n = (1 + s^2/T*)^(d/2)" in text
    r = json.loads(out.read_text())
    # the same numbers as the library on the analyze units (minus-one-one: a = 2/16)
    X = td.load_digits()[0]
    ref = data_need(X / 8.0 - 1.0, target_temperature=0.1, probe={64: 1200, 128: 2500}, tau_gen=300)
    assert r["collapse_temperature_spectrum"] == pytest.approx(ref.collapse_temperature_spectrum, rel=1e-9)
    assert r["log10_n"] == pytest.approx(ref.log10_n, rel=1e-9) and r["scale"]["a"] == 0.125
    keys = [row["key"] for row in r["rows"]]
    assert {"rem_isotropic", "rem_spectrum", "tau_mem", "window", "random_features", "linear_n_for_kl"} <= set(keys)
    # digits in [-1, 1] units: T_C = 1.112 (isotropic REM, as `thermodiff analyze` reports), 0.7902 (spectrum)
    assert r["collapse_temperature"] == pytest.approx(1.112, rel=1e-3)
    assert r["collapse_temperature_spectrum"] == pytest.approx(0.7902, rel=1e-3)
    T_data = r["temperatures_in_data_units"]
    assert T_data["collapse_spectrum"] == pytest.approx(0.7902 * 64, rel=1e-3) and T_data["target_temperature"] == 6.4
    assert [p.name for p in out.parent.iterdir()] == ["need.json"]  # no temporary file left behind


def test_data_file_and_scales(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = 3.0 * rng.standard_normal((500, 12)) + 5.0
    f = tmp_path / "x.npz"
    np.savez(f, data=X, labels=np.arange(500) % 2)
    res = {}
    for scale in ("raw", "unit-variance", "minus-one-one"):
        out = tmp_path / f"{scale}.json"
        code, text, err = _run([str(f), "--scale", scale, "--json", str(out)], capsys)
        assert code == 0, err
        res[scale] = json.loads(out.read_text())
    raw = res["raw"]["collapse_temperature_spectrum"]
    assert raw == pytest.approx(data_need(X).collapse_temperature_spectrum, rel=1e-12)
    for scale in ("unit-variance", "minus-one-one"):  # the same collapse in the data's own units
        assert res[scale]["temperatures_in_data_units"]["collapse_spectrum"] == pytest.approx(raw, rel=1e-9)
    assert res["unit-variance"]["inputs"]["variance"] == pytest.approx(1.0, rel=1e-12)
    # without --json: only the table on stdout
    code, text, err = _run([str(f)], capsys)
    assert code == 0 and err == "" and "collapse temperature T_C at n = 500" in text and "wrote" not in text


def _one_line_2(argv, capsys, needle):
    code, text, err = _run(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("thermodiff: error: "), (argv, err)
    assert needle in lines[0] and text == "" and "Traceback" not in err, (needle, lines[0])


@pytest.mark.parametrize("argv, needle", [
    (["--target-temperature", "nan"], "--target-temperature must be a number in [1e-60, 1e60]"),
    (["--target-temperature", "0"], "--target-temperature must be"),
    (["--target-temperature=-1"], "--target-temperature must be"),
    (["--target-temperature", "abc"], "--target-temperature must be"),
    (["--target-kl", "0"], "--target-kl must be"),
    (["--features", "0"], "--features must be an integer in [1, 2147483647]"),
    (["--features", "1.5"], "--features must be an integer"),
    (["--probe", "64"], "--probe must be a comma-separated list of 1 to 64 N:TAU_MEM pairs"),
    (["--probe", "64:0"], "--probe must be"),
    (["--probe", "1:100"], "--probe must be"),
    (["--probe", "64:nan,128:5"], "--probe must be"),
    (["--probe", "64:1:2:3"], "--probe must be"),
    (["--probe", "64:1,64:2"], "distinct N, got N = 64 twice"),
    (["--probe", "64:1,128:2:0.5"], "all with or all without STDERR"),
    (["--probe", ""], "--probe must be"),
    (["--tau-gen", "0"], "--tau-gen must be a number in (0, 1e15]"),
    (["--train-steps", "inf"], "--train-steps must be"),
    (["--tau-gen", "300"], "--tau-gen needs --probe"),
    (["--train-steps", "300"], "--train-steps needs --probe"),
    (["--probe", "64:100", "--fit-exponent"], "--fit-exponent needs --probe with at least 2"),
    (["--scale", "bogus"], "--scale"),
    (["nonexistent.npy"], "DATA: cannot read 'nonexistent.npy': no such file"),
    (["--json", ""], "--json must be a file path"),
])
def test_bad_options_are_one_line_and_exit_2(argv, needle, capsys, monkeypatch):
    import thermodiff._data

    def reached(*a, **k):
        raise AssertionError("the computation started before the options were checked")

    monkeypatch.setattr(thermodiff._data, "load_digits", reached)
    _one_line_2(argv, capsys, needle)


def test_bad_json_destinations(tmp_path, capsys, monkeypatch):
    import thermodiff._data

    monkeypatch.setattr(thermodiff._data, "load_digits", lambda *a, **k: (_ for _ in ()).throw(AssertionError("work")))
    _one_line_2(["--json", str(tmp_path)], capsys, "is a folder")
    f = tmp_path / "afile"
    f.write_text("keep")
    _one_line_2(["--json", str(f / "x.json")], capsys, "is a file, not a folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m, *a, **k: False if str(p) == str(locked) else real_access(p, m, *a, **k))
    _one_line_2(["--json", str(locked / "x.json")], capsys, "is not writable")
    assert f.read_text() == "keep" and list(locked.iterdir()) == []


def test_bad_data_files(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([[1.0, np.nan], [2.0, 3.0]]))
    _one_line_2([str(bad)], capsys, "DATA: the array contains NaN or inf")
    const = tmp_path / "const.npy"
    np.save(const, np.ones((10, 3)))
    _one_line_2([str(const)], capsys, "all points are identical")
    text = tmp_path / "t.npy"
    text.write_text("not numpy")
    _one_line_2([str(text)], capsys, "cannot read")


def test_a_failed_run_leaves_the_previous_json(tmp_path, capsys, monkeypatch):
    """--json is replaced by one rename after everything was computed: a failure leaves it byte-identical."""
    out = tmp_path / "need.json"
    code, _, err = _run(["--target-temperature", "0.1", "--json", str(out)], capsys)
    assert code == 0, err
    before = out.read_bytes()
    import thermodiff._io as io

    def broken(obj):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(io, "json_bytes", broken)
    _one_line_2(["--target-temperature", "0.5", "--json", str(out)], capsys, "disk full (simulated)")
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["need.json"]

    real_replace = os.replace

    def cut(src, dst):  # the write itself fails at the rename: the temporary file goes, the old one stays
        raise OSError("rename failed (simulated)")

    monkeypatch.undo()
    monkeypatch.setattr(os, "replace", cut)
    _one_line_2(["--target-temperature", "0.5", "--json", str(out)], capsys, "rename failed (simulated)")
    monkeypatch.setattr(os, "replace", real_replace)
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["need.json"]


def test_help_states_the_ranges(capsys):
    assert main(["data-need", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--target-temperature" in text and "[1e-60, 1e60]" in text and "N:TAU_MEM" in text
