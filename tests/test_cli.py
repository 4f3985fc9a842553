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
    # Two deltas +-1: T_c = 1; below it the minima sit at +-x* with x* = tanh(x*/T) (theory 3.1).
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
    assert len(err) == 1 and "--variance must be 0 or a number in [1e-60, 1e60], got '-1'" in err[0]


# ---------------------------------------------------------------------------- phase-diagram
def _pd(tmp_path, *args):
    out = tmp_path / "pd"
    assert main(["phase-diagram", "--out", str(out), *args]) == 0
    assert (out / "phase_diagram.png").stat().st_size > 10_000
    res = json.loads((out / "phase_diagram.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["phase_diagram.json", "phase_diagram.png"]
    n = len(res["temperatures"])
    for key in ("order_parameter", "susceptibility", "susceptibility_trace", "heat_capacity", "stability"):
        assert len(res[key]) == n, key
    return res


def test_phase_diagram_two_deltas(tmp_path, capsys):
    temps = [0.5, 0.75, 0.9, 0.99, 0.999, 1.001, 1.5, 2.0, 3.0]
    res = _pd(tmp_path, "--temperatures", ",".join(map(str, temps)))
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "T_c = 1 (thermodynamic)" in out[0] and "phase_diagram.json" in out[0]
    assert res["ensemble"] == "two-deltas" and res["parameters"] == {"mu": [1.0]}
    assert res["convention"].startswith("T = VE-equivalent noise variance")
    # theory 3.1 and 5: two critical points, never conflated.
    assert res["critical_temperature"]["thermodynamic"]["T"] == pytest.approx(1.0, abs=1e-10)
    assert res["critical_temperature"]["vp_drift"]["T"] == pytest.approx(np.sqrt(2.0), abs=1e-10)
    assert res["transition"] is True and res["thermodiff_version"] and res["wall_time_s"] > 0
    T = res["temperatures"]
    assert T == temps
    row = {t: i for i, t in enumerate(T)}
    m, chi, C = (np.array(res[k]) for k in ("order_parameter", "susceptibility", "heat_capacity"))
    # order parameter: the root of m = tanh(m/T) (theory 3.1)
    for t, ref in [(0.5, 0.9575040241), (0.75, 0.7755163139), (0.9, 0.5254295127), (0.99, 0.1725110700)]:
        assert abs(m[row[t]]) == pytest.approx(ref, abs=1e-6), t
    for t in (1.001, 1.5, 2.0, 3.0):
        assert abs(m[row[t]]) < 1e-8
        assert chi[row[t]] == pytest.approx(1.0 / (t - 1.0), rel=1e-6), t  # Curie-Weiss chi above T_c
    assert np.array(res["susceptibility_trace"]) == pytest.approx(chi, rel=1e-12)  # d = 1
    assert chi[row[0.999]] == pytest.approx(1.0 / (2 * 0.001), rel=0.01)  # -> 1/(2(1 - T)) below
    # heat capacity: 0 above T_c, -> 3/2 just below (theory 4)
    assert C[row[0.999]] == pytest.approx(1.5, abs=0.01)
    assert abs(C[row[1.001]]) < 1e-8 and abs(C[row[2.0]]) < 1e-8
    assert np.all(np.array(res["stability"]) > 0) and res["unstable_points"] == []


def test_phase_diagram_default_grid_and_exponents(tmp_path):
    res = _pd(tmp_path, "--n-temperatures", "9", "--exponents")  # 9: the compiled sweep above is reused
    T = np.array(res["temperatures"])
    assert len(T) == 9 and T[0] == pytest.approx(0.2) and T[-1] == pytest.approx(5.0)
    assert np.allclose(np.diff(np.log(T)), np.log(25) / 8)
    ex = res["exponents"]
    assert ex["beta"]["value"] == pytest.approx(0.5, abs=1e-4)
    assert ex["gamma"]["value"] == pytest.approx(1.0, abs=1e-4)
    assert ex["delta"]["value"] == pytest.approx(3.0, abs=1e-3)
    assert ex["heat_capacity_jump"]["value"] == pytest.approx(1.5, abs=1e-3)
    assert "loglog_fit" in ex["beta"]


def test_phase_diagram_no_transition(tmp_path):
    res = _pd(tmp_path, "--ensemble", "gaussian", "--variance", "0.25", "--n-temperatures", "12", "--exponents")
    assert res["transition"] is False and res["critical_temperature"]["thermodynamic"]["T"] is None
    assert "no transition" in res["grid"] and "skipped" in res["exponents"]
    T = np.array(res["temperatures"])
    assert T[0] == pytest.approx(0.05) and T[-1] == pytest.approx(1.25)  # around lambda_max = 0.25
    assert np.array(res["susceptibility"]) == pytest.approx(0.25 / T, rel=1e-8)  # chi = s^2/T


def test_phase_diagram_on_user_file(tmp_path):
    rng = np.random.default_rng(1)
    half = rng.normal(size=(20, 2)) * [0.3, 0.1] + [1.5, 0.5]
    data = np.concatenate([half, -half])
    data[:5] += [0.7, -0.2]  # a generic (asymmetric) training set, as a user's file would be
    f = tmp_path / "mine.npy"
    np.save(f, data)
    res = _pd(tmp_path, "--ensemble", "finite", "--data", str(f), "--n-temperatures", "16", "--exponents")
    assert res["parameters"]["n_points"] == 40 and res["dim"] == 2
    lam = np.linalg.eigvalsh(np.cov(data.T, bias=True))[-1]
    assert res["top_covariance_eigenvalue"] == pytest.approx(lam, rel=1e-12)
    # No symmetric point: the thermodynamic and VP-drift criteria are undefined (reported, not
    # guessed); the first split (a saddle-node, theory 3) sets the grid.
    tc = res["critical_temperature"]
    assert tc["thermodynamic"]["defined"] is False and tc["thermodynamic"]["T"] is None
    assert tc["vp_drift"]["defined"] is False and tc["vp_drift"]["T"] is None
    T_split = tc["first_split"]["T"]
    assert 0 < T_split < lam and res["transition"] is True
    assert res["reference_critical_temperature"] == {"criterion": "first_split", "T": T_split}
    assert res["temperatures"][0] == pytest.approx(T_split / 5) and "skipped" in res["exponents"]
    m = np.abs(res["order_parameter"])
    assert m[0] > 1.0 and m[-1] < 0.1  # one cluster's side at T_split/5, near the mean at 5 T_split
    assert res["unstable_points"] == []


def test_phase_diagram_hypersphere_and_curie_weiss(tmp_path):
    res = _pd(tmp_path, "--ensemble", "hypersphere", "--radius", "1", "--dim", "3",
              "--temperatures", f"{1 / 6!r},0.5,1")
    assert res["critical_temperature"]["thermodynamic"]["T"] == pytest.approx(1 / 3, rel=1e-10)
    assert res["order_parameter"][0] == pytest.approx(0.788887, abs=1e-6)  # theory 3.4
    assert res["susceptibility"][1] == pytest.approx(1 / (0.5 * 3 - 1), rel=1e-8)  # T_c/(T - T_c)
    res = _pd(tmp_path, "--ensemble", "curie-weiss", "--n-spins", "6", "--data-temperature", "2",
              "--n-temperatures", "8")
    # constant-norm data: T_c = lambda_max of the data covariance (theory 3.5)
    assert res["critical_temperature"]["thermodynamic"]["T"] == pytest.approx(res["top_covariance_eigenvalue"], rel=1e-8)
    assert res["parameters"] == {"n_spins": 6, "data_temperature": 2.0, "coupling": 1.0}
    C = np.array(res["heat_capacity"])
    assert np.all(C[np.array(res["temperatures"]) > res["critical_temperature"]["thermodynamic"]["T"]] < 1e-8)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--ensemble", "nonsense"], "--ensemble must be one of"),
        (["--mu", "1,abc"], "--mu must be a comma-separated list"),
        (["--mu", "nan"], "--mu must be a comma-separated list of 1 to 4096 numbers in [-1e30, 1e30], got 'nan'"),
        (["--ensemble", "mixture", "--variance", "-1"], "--variance must be 0 or a number in [1e-60, 1e60]"),
        (["--ensemble", "hypersphere", "--dim", "0"], "--dim must be an integer in [1, 4096], got '0'"),
        (["--ensemble", "curie-weiss", "--data-temperature", "-2"], "--data-temperature must be a number in [1e-6, 1e6]"),
        (["--ensemble", "curie-weiss", "--n-spins", "100000"], "--n-spins must be an integer in [1, 4096]"),
        (["--n-temperatures", "2"], "--n-temperatures must be an integer in [3, 100000], got '2'"),
        (["--temperatures", "0.5,-1,2"], "--temperatures must be a comma-separated list of 1 to 100000 numbers in [1e-60, 1e60], got '-1'"),
        (["--temperatures", "0.5,2"], "at least 3 distinct"),
        (["--ensemble", "finite"], "needs --data"),
        (["--ensemble", "finite", "--data", "{nan}"], "NaN"),
        (["--ensemble", "finite", "--data", "{one}"], "at least 2 points"),
        (["--ensemble", "finite", "--data", "{junk}"], "cannot read"),
        (["--ensemble", "finite", "--data", "{missing}"], "no such file"),
    ],
)
def test_phase_diagram_bad_input(tmp_path, capsys, args, match):
    files = dict(nan=tmp_path / "nan.npy", one=tmp_path / "one.npy", junk=tmp_path / "junk.npy",
                 missing=tmp_path / "missing.npy")
    np.save(files["nan"], np.array([[1.0, np.nan], [0.0, 1.0]]))
    np.save(files["one"], np.array([2.0]))  # 1-D with a single point
    files["junk"].write_bytes(b"not numpy at all")
    out = tmp_path / "out"
    argv = ["phase-diagram", "--out", str(out)] + [a.format(**files) for a in args]
    assert main(argv) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("thermodiff: error:") and match in lines[0], cap.err
    assert cap.out == "" and not out.exists()


@pytest.mark.parametrize(
    "argv, match",
    [
        (["phase-diagram", "--n-temperatures", "2.5"], "--n-temperatures must be an integer in [3, 100000], got '2.5'"),
        (["phase-diagram", "--variance", "abc"], "--variance must be 0 or a number in [1e-60, 1e60], got 'abc'"),
        (["phase-diagram", "--bogus"], "unrecognized arguments"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_usage_errors_are_one_line_exit_2(tmp_path, capsys, argv, match):
    # main returns the status of a usage error too (it never raises SystemExit)
    assert main(argv + (["--out", str(tmp_path / "out")] if argv and argv[0] == "phase-diagram" else [])) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("thermodiff: error:") and match in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_phase_diagram_as_a_program_no_traceback(tmp_path):
    """The installed entry point: a usage error and a bad file each give one line and exit 2."""
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    for argv in (["phase-diagram", "--n-temperatures", "x"],
                 ["phase-diagram", "--ensemble", "finite", "--data", "bad.npy"]):
        proc = subprocess.run([sys.executable, "-m", "thermodiff", *argv, "--out", "out"], capture_output=True,
                              text=True, cwd=tmp_path, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("thermodiff: error:"), proc.stderr
        assert not (tmp_path / "out").exists()


def test_phase_diagram_unwritable_out(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["phase-diagram", "--out", str(tmp_path / "afile" / "sub"), "--temperatures", "0.5,1.5,2"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("thermodiff: error:")


def test_landscape_with_overflowing_parameters_is_one_line(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["landscape", "--mu", "1e200", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--mu must be a comma-separated list of 1 to 4096 numbers in [-1e30, 1e30], got '1e200'" in err[0]
    assert not out.exists()


def test_phase_diagram_sweep_in_batches_equals_one_vmap(monkeypatch):
    """Large ensembles are swept a memory-bounded batch at a time (jax.lax.map): same numbers."""
    import jax
    import jax.numpy as jnp

    import thermodiff as td
    from thermodiff import _phase_diagram as P

    xs = jnp.linspace(-1.0, 1.0, 7)
    f = lambda x: jnp.stack([jnp.sin(x), x**2])  # noqa: E731
    for batch in (1, 2, 3, 7, 100):
        np.testing.assert_array_equal(P.batched_vmap(f, xs, batch), jax.vmap(f)(xs))
    assert P.map_batch(200, 384) == 200 and P.map_batch(200, 2**29) == 2 and P.map_batch(200, 2**40) == 1
    # a Curie-Weiss magnet of 4096 spins needs a batch of one; a digits-sized finite set fewer than 200
    cw = td.CurieWeiss(4096, 0.01, 1.0)
    assert P.map_batch(200, P.state_bytes(cw)) == 1
    ens = td.TwoDeltas(jnp.array([1.0, 0.5]))
    temps = np.array([0.5, 0.9, 1.1, 1.5, 3.0])
    whole = P._sweep(ens, temps)
    monkeypatch.setattr(P, "map_batch", lambda n, per: 2)  # batches of 2, 2 and 1
    batched = P._sweep(ens, temps)
    for k in whole:
        np.testing.assert_allclose(batched[k], whole[k], rtol=1e-12, atol=1e-12, err_msg=k)
