"""The command line's contract (issue "Correct by default", item 6), for every subcommand:

- every numeric option has an explicit allowed range, checked while parsing: a huge value, a
  negative one, zero where it is not allowed, NaN, inf or a non-number is one line on stderr
  naming the option, exit status 2, before any work (never exit 1, never a traceback);
- --out is checked before any computation (an existing file, a path under a file, an
  unwritable folder, no room on its disk);
- a failed re-run into an existing --out leaves the previous report byte-identical (the report
  is staged in a temporary folder and swapped in at the end);
- every exception class ends in one line and exit 2 (internal errors: one line naming the file
  that keeps the traceback);
- Ctrl-C exits promptly with 130, one line, and no partial files.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from thermodiff import _cli, _io
from thermodiff._cli import main

# ---------------------------------------------------------------------------- the option table
# (kind, lo, hi, lo_open, hi_open) of every numeric option, per subcommand: the ranges the
# command line promises (--help prints them).
_ENSEMBLE = {
    "--mu": ("reals", -1e30, 1e30, False, False),
    "--variance": ("real0", 1e-60, 1e60, False, False),  # 0, or a number in [1e-60, 1e60]
    "--radius": ("real", 1e-30, 1e30, False, False),
    "--dim": ("int", 1, 4096, False, False),
    "--n-spins": ("int", 1, 4096, False, False),
    "--data-temperature": ("real", 1e-6, 1e6, False, False),
    "--coupling": ("real", 1e-6, 1e6, False, False),
}
OPTIONS = {
    "landscape": {**_ENSEMBLE, "--temperatures": ("reals", 1e-60, 1e60, False, False),
                  "--points": ("int", 3, 10_000, False, False)},
    "phase-diagram": {**_ENSEMBLE, "--temperatures": ("reals", 1e-60, 1e60, False, False),
                      "--n-temperatures": ("int", 3, 100_000, False, False)},
    "analyze": {"--seed": ("int", 0, 2**31 - 1, False, False), "--max-points": ("int", 2, 2**31 - 1, False, False),
                "--target-temperature": ("real", 1e-60, 1e60, True, False),
                "--train-probe": ("ints", 2, 4096, False, False), "--probe-steps": ("int", 100, 10**6, False, False)},
    "data-need": {"--target-temperature": ("real", 1e-60, 1e60, False, False),
                  "--target-kl": ("real", 1e-12, 1e12, False, False),
                  "--features": ("int", 1, 2**31 - 1, False, False), "--probe": ("reals", 0.0, 1e15, True, False),
                  "--tau-gen": ("real", 0.0, 1e15, True, False), "--train-steps": ("real", 0.0, 1e15, True, False)},
    "train": {
        "--width": ("int", 1, 8192, False, False), "--depth": ("int", 0, 64, False, False),
        "--channels": ("ints", 1, 1024, False, False), "--steps": ("int", 1, 10**8, False, False),
        "--batch-size": ("int", 1, 65536, False, False), "--lr": ("real", 0.0, 1.0, True, False),
        "--ema": ("real", 0.0, 1.0, False, True), "--seed": ("int", 0, 2**31 - 1, False, False),
        "--held-out": ("real", 0.0, 0.5, False, False), "--n-samples": ("int", 0, 100_000, False, False),
    },
}


def _bad_values(kind, lo, hi, lo_open, hi_open):
    """Values outside the range: huge, negative, zero where not allowed, NaN, inf, non-numbers."""
    common = ["nan", "NaN", "inf", "-inf", "abc", "", "1,x" if kind.endswith("s") else "0x10"]
    if kind in ("int", "ints"):
        vals = [str(10**30), str(-(10**30)), str(hi + 1), str(lo - 1), "1.5", "1e3", "9" * 5000]
        if lo > 0:
            vals += ["0", "-1"]
        elif lo == 0:
            vals += ["-1"]
    elif kind == "real0":
        vals = ["1e300", "-1e300", "1e99999", "1e61", "1e-61", "5e-324", "-1", "-1e-300"]
    else:
        vals = ["1e300", "-1e300", "1e99999", repr(hi * 10 if hi > 0 else 1.0), repr(-hi * 10 if lo < 0 else -1.0)]
        if lo > 0 or (lo == 0 and lo_open):
            vals += ["0", "-0.0"] + (["5e-324"] if lo > 0 else [])
        if lo >= 0:
            vals += ["-1", "-1e-300"]
        if hi_open:
            vals += [repr(hi)]
    if kind in ("reals", "ints"):
        vals += ["1," + str(vals[0]), "1,,nan"]
    return vals + common


CASES = [(cmd, opt, v) for cmd, opts in OPTIONS.items() for opt, spec in opts.items() for v in _bad_values(*spec)]
CASES += [
    ("landscape", "--mu", ",".join(["1"] * 4097)),  # more entries than allowed
    ("landscape", "--temperatures", ",".join(["1"] * 101)),
    ("train", "--channels", "1,2,3,4,5,6,7,8,9"),
]


@pytest.fixture
def no_work(monkeypatch):
    """Every command's first piece of work fails loudly if reached: the checks must come first."""
    import thermodiff._data
    import thermodiff._landscape

    def reached(*a, **k):
        raise AssertionError("the computation started before the options were checked")

    monkeypatch.setattr(_cli, "analyze_command", reached)
    monkeypatch.setattr(_cli, "phase_diagram", reached)
    monkeypatch.setattr(thermodiff._landscape, "landscape", reached)
    monkeypatch.setattr(thermodiff._data, "load_digits", reached)  # train's default data


def _one_line_2(argv, capsys, *needles):
    code = main(argv)
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert code == 2, (argv[:4], code, cap.err[-500:])
    prefix = "thermodiff: internal error: " if any("internal error" in n for n in needles) else "thermodiff: error: "
    assert len(lines) == 1 and lines[0].startswith(prefix), (argv[:4], cap.err[-500:])
    assert "Traceback" not in cap.err and cap.out == ""
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_every_numeric_option_is_range_checked_while_parsing(tmp_path, capsys, no_work):
    """The table-driven test: every subcommand, every numeric option, every kind of bad value."""
    out = tmp_path / "out"
    t0 = time.perf_counter()
    for cmd, opt, value in CASES:
        line = _one_line_2([cmd, "--out", str(out), f"{opt}={value}"], capsys, f"{opt} must be ")
        assert "internal error" not in line
    elapsed = time.perf_counter() - t0
    assert not out.exists()
    assert len(CASES) > 250 and elapsed < 30, (len(CASES), elapsed)  # parse time: about a millisecond each


def test_the_messages_state_the_range(tmp_path, capsys, no_work):
    out = str(tmp_path / "out")
    line = _one_line_2(["analyze", "--out", out, "--seed", "1180591620717411303424"], capsys)
    assert line.startswith("thermodiff: error: --seed must be an integer in [0, 2147483647], got '1180591620717411303424'")
    line = _one_line_2(["phase-diagram", "--ensemble", "curie-weiss", "--n-spins", "100000", "--out", out], capsys)
    assert "--n-spins must be an integer in [1, 4096], got '100000'" in line
    line = _one_line_2(["landscape", "--mu", "1e200", "--out", out], capsys)
    assert "--mu must be a comma-separated list of 1 to 4096 numbers in [-1e30, 1e30], got '1e200'" in line
    line = _one_line_2(["train", "--lr", "0", "--out", out], capsys)
    assert "--lr must be a number in (0, 1], got '0'" in line
    line = _one_line_2(["train", "--ema", "1", "--out", out], capsys)
    assert "--ema must be a number in [0, 1), got '1'" in line
    line = _one_line_2(["landscape", "--mu", "-1,1", "--out", out], capsys)  # argparse's own case
    assert "--mu" in line and "--option=-value" in line


@pytest.mark.parametrize("argv, needle", [
    (["phase-diagram", "--ensemble", "curie-weiss", "--coupling", "1000"], "--coupling / --data-temperature must be <= 100"),
    (["landscape", "--mu", "0,0"], "--mu must not be all zeros"),
    (["phase-diagram", "--temperatures", "1,1,2"], "--temperatures needs at least 3 distinct"),
    (["landscape", "--ensemble", "finite"], "--ensemble finite needs --data"),
    (["landscape", "--ensemble", "nonsense"], "--ensemble must be one of"),
])
def test_checks_between_options_come_before_any_work(tmp_path, capsys, no_work, argv, needle):
    _one_line_2(argv + ["--out", str(tmp_path / "out")], capsys, needle)
    assert not (tmp_path / "out").exists()


def test_the_ranges_fit_inside_the_constructors():
    """The command line refuses first, and never less than the library: its extreme values
    build ensembles without an error (e.g. CurieWeiss limits n_spins itself)."""
    import jax.numpy as jnp

    import thermodiff as td

    n, big = _cli.MAX_DIM, _cli.LENGTH
    td.CurieWeiss(n, 1e-6, 1e-6 * _cli.MAX_CW_RATIO)
    td.CurieWeiss(n, 1e6, 1e-6)
    td.CurieWeiss(1, 1e-6, 1e-4)
    td.Hypersphere(big, n)
    td.Hypersphere(1 / big, 1)
    mu = jnp.full((n,), big)
    td.TwoDeltas(mu)
    td.GaussianMixture(jnp.stack([mu, -mu]), _cli.VARIANCE)
    td.Gaussian(-mu, 0.0)
    td.Gaussian(mu[:1], _cli.TINY_T)


def test_every_numeric_option_has_a_range():
    """No numeric option slips through with a plain int/float type (no range) or without a row above."""
    parser = _cli.make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(OPTIONS), "a new subcommand needs rows in OPTIONS"
    for cmd, p in sub.choices.items():
        for action in p._actions:
            if not action.option_strings or action.type is None:
                continue
            opt = action.option_strings[-1]
            assert action.type not in (int, float), (cmd, opt, "a numeric option without a range")
            assert opt in OPTIONS[cmd], (cmd, opt, "missing from the table")
            assert getattr(action.type, "what", None) or opt == "--channels"
            assert action.help and ("[" in action.help or "(" in action.help), (cmd, opt, "--help must state the range")


def test_help_and_version_return_0_without_systemexit(capsys):
    assert main(["--version"]) == 0
    assert main(["analyze", "--help"]) == 0
    assert "an integer in [0, 2147483647]" in " ".join(capsys.readouterr().out.split())


# ---------------------------------------------------------------------------- --out
ALL = [["landscape"], ["phase-diagram"], ["analyze"], ["train"]]


@pytest.mark.parametrize("cmd", ALL, ids=lambda c: c[0])
def test_out_is_checked_before_any_work(tmp_path, capsys, no_work, cmd):
    f = tmp_path / "afile"
    f.write_text("keep me")
    t0 = time.perf_counter()
    _one_line_2(cmd + ["--out", str(f)], capsys, "--out", "not a folder")
    _one_line_2(cmd + ["--out", str(f / "sub" / "deeper")], capsys, "--out", "is a file, not a folder")
    assert f.read_text() == "keep me"
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("cmd", ALL, ids=lambda c: c[0])
def test_out_without_room_on_its_disk(tmp_path, capsys, no_work, monkeypatch, cmd):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=200_000))
    _one_line_2(cmd + ["--out", str(tmp_path / "out")], capsys, "--out", "0.2 MB free on its disk, the report needs about")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cmd", ALL, ids=lambda c: c[0])
def test_unwritable_out(tmp_path, capsys, no_work, monkeypatch, cmd):
    locked = tmp_path / "locked"
    (locked / "old").mkdir(parents=True)
    os.chmod(locked / "old", 0o500)
    os.chmod(locked, 0o500)
    if os.geteuid() == 0:  # root may write anywhere: let os.access answer as it would for a user
        real_access = os.access

        def access(path, mode, *a, **k):
            if Path(path) in (locked, locked / "old") and mode & os.W_OK:
                return False
            return real_access(path, mode, *a, **k)

        monkeypatch.setattr(os, "access", access)
    try:
        _one_line_2(cmd + ["--out", str(locked / "new")], capsys, "--out", "not writable")
        _one_line_2(cmd + ["--out", str(locked / "old")], capsys, "--out", "not writable")
    finally:
        os.chmod(locked, 0o700)
        os.chmod(locked / "old", 0o700)


# ---------------------------------------------------------------------------- the report is swapped in whole
def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.fixture(scope="module")
def landscape_report(tmp_path_factory):
    """A real report of a cheap subcommand, and what it returned (to replay without computing)."""
    import thermodiff._landscape as L

    out = tmp_path_factory.mktemp("report") / "out"
    captured = {}
    real_landscape, real_plot = L.landscape, L.plot_landscape

    def keep(fn, key):
        def wrapped(*a, **k):
            captured[key] = fn(*a, **k)
            return captured[key]
        return wrapped

    L.landscape, L.plot_landscape = keep(real_landscape, "result"), keep(real_plot, "png")
    try:
        assert main(["landscape", "--out", str(out), "--points", "41", "--temperatures", "2,1,0.5"]) == 0
    finally:
        L.landscape, L.plot_landscape = real_landscape, real_plot
    assert sorted(p.name for p in out.iterdir()) == ["landscape.json", "landscape.png"]
    return out, captured


def _replay(monkeypatch, captured, *, fail_compute=False):
    """Make `thermodiff landscape` return the captured result (or fail mid-computation)."""
    import thermodiff._landscape as L

    def result(*a, **k):
        if fail_compute:
            raise RuntimeError("the computation broke half way")
        return json.loads(json.dumps(captured["result"]))

    monkeypatch.setattr(L, "landscape", result)
    monkeypatch.setattr(L, "plot_landscape", lambda r: captured["png"] + b"new")


def _copy_report(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    (dst / "notes.txt").write_text("the user's own file")  # not part of any report: never touched
    return dst


def _fail_on_call(monkeypatch, module, name, n, err):
    real, calls = getattr(module, name), []

    def fake(*a, **k):
        calls.append(1)
        if len(calls) == n:
            raise err
        return real(*a, **k)

    monkeypatch.setattr(module, name, fake)


def test_a_failed_rerun_leaves_the_previous_report_byte_identical(landscape_report, tmp_path, monkeypatch, capsys):
    out0, captured = landscape_report
    argv = ["landscape", "--points", "41", "--temperatures", "2,1,0.5", "--out"]
    # 1. the previous report, byte for byte, after a re-run that fails mid-computation
    out = _copy_report(out0, tmp_path / "a")
    before = _snapshot(out)
    _replay(monkeypatch, captured, fail_compute=True)
    line = _one_line_2(argv + [str(out)], capsys, "internal error: RuntimeError: the computation broke half way")
    Path(line.split("full traceback in ")[1].split(";")[0]).unlink()
    assert _snapshot(out) == before
    # 2. ... after a re-run whose second file cannot be written (no space while staging)
    _replay(monkeypatch, captured)
    _fail_on_call(monkeypatch, os, "fdopen", 2, OSError(errno.ENOSPC, "No space left on device"))
    _one_line_2(argv + [str(out)], capsys, "No space left on device")
    assert _snapshot(out) == before  # no staging folder left behind either
    monkeypatch.undo()
    # 3. ... after a re-run whose swap fails on the second file (the first is already swapped):
    #    every old file is put back
    _replay(monkeypatch, captured)
    _fail_on_call(monkeypatch, os, "replace", 4, OSError(errno.EIO, "Input/output error"))
    _one_line_2(argv + [str(out)], capsys, "Input/output error")
    assert _snapshot(out) == before
    monkeypatch.undo()
    # 4. a successful re-run replaces the report's files, and only those
    _replay(monkeypatch, captured)
    assert main(argv + [str(out)]) == 0
    after = _snapshot(out)
    assert sorted(after) == sorted(before) and after["notes.txt"] == before["notes.txt"]
    assert after["landscape.png"] == captured["png"] + b"new"
    assert json.loads(after["landscape.json"]) == json.loads(before["landscape.json"])


def test_a_failed_first_run_leaves_nothing(landscape_report, tmp_path, monkeypatch, capsys):
    _, captured = landscape_report
    _replay(monkeypatch, captured)
    _fail_on_call(monkeypatch, os, "fdopen", 2, OSError(errno.ENOSPC, "No space left on device"))
    out = tmp_path / "new" / "deeper" / "out"
    _one_line_2(["landscape", "--out", str(out)], capsys, "No space left on device")
    assert list(tmp_path.iterdir()) == []  # neither the report, nor its staging folder, nor its parents


def test_report_files_keep_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        _io.write_report(tmp_path / "r", {"a.json": b"{}"})
    finally:
        os.umask(old)
    assert (tmp_path / "r").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "r" / "a.json").stat().st_mode & 0o777 == 0o644
    with pytest.raises(ValueError, match="plain name"):
        _io.write_report(tmp_path / "r", {"../escape": b""})


# ---------------------------------------------------------------------------- every exception: one line, exit 2
class _Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no message")


def _jax_oom():
    import jax

    return jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 80000000000 bytes.")


@pytest.mark.parametrize("make, needle, internal", [
    (lambda: ValueError("a bad\nvalue"), "thermodiff: error: a bad value", False),
    (lambda: TypeError("a bad type"), "thermodiff: error: a bad type", False),
    (lambda: OSError(errno.ENOSPC, "No space left on device"), "No space left on device", False),
    (lambda: MemoryError(), "thermodiff: error: out of memory (MemoryError)", False),
    (_jax_oom, "thermodiff: error: out of memory (RESOURCE_EXHAUSTED", False),
    (lambda: RuntimeError("inside"), "internal error: RuntimeError: inside", True),
    (lambda: KeyError("k"), "internal error: KeyError: 'k'", True),
    (lambda: AssertionError(), "internal error: AssertionError: (no message)", True),
    (lambda: ZeroDivisionError("division by zero"), "internal error: ZeroDivisionError", True),
    (lambda: RecursionError("maximum recursion depth exceeded"), "internal error: RecursionError", True),
    (lambda: _Unprintable(), "internal error: _Unprintable: (a _Unprintable whose message cannot be shown)", True),
    (lambda: SystemExit(3), "internal error: SystemExit: 3", True),
    (lambda: GeneratorExit(), "internal error: GeneratorExit", True),
])
def test_every_exception_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, make, needle, internal):
    def broken(args):
        raise make()

    monkeypatch.setattr(_cli, "analyze_command", broken)
    line = _one_line_2(["analyze", "--out", str(tmp_path / "out")], capsys, needle)
    assert not (tmp_path / "out").exists()
    if internal:
        path = Path(line.split("full traceback in ")[1].split(";")[0])
        assert "Traceback (most recent call last)" in path.read_text()
        path.unlink()
    else:
        assert "traceback" not in line


def test_an_internal_error_with_no_room_for_its_traceback(tmp_path, monkeypatch, capsys):
    import tempfile

    def broken(args):
        raise RuntimeError("inside")

    def no_tmp(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(_cli, "analyze_command", broken)
    monkeypatch.setattr(tempfile, "mkstemp", no_tmp)
    _one_line_2(["analyze", "--out", str(tmp_path / "out")], capsys, "internal error: RuntimeError: inside",
                "the traceback could not be saved: PermissionError")


def test_keyboard_interrupt_in_process_is_130_and_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "analyze_command", interrupted)
    assert main(["analyze", "--out", str(tmp_path / "out")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"thermodiff: interrupted; nothing was written to {tmp_path / 'out'}"]


# ---------------------------------------------------------------------------- Ctrl-C
def _old_report(folder: Path) -> dict:
    folder.mkdir()
    for name in ("report.md", "results.json", "spectrum.png"):
        (folder / name).write_text(f"the previous {name}")
    return _snapshot(folder)


@pytest.mark.parametrize("delay, previous", [(2.0, False), (2.5, True), (3.0, False), (0.7, True)])
def test_ctrl_c_during_analyze(tmp_path, delay, previous):
    """SIGINT into `thermodiff analyze` on the default data: exit 130 within seconds, exactly one
    line, no traceback, and --out either absent or holding the previous report unchanged. (Near
    0.5 s the signal lands while JAX is being imported, where a KeyboardInterrupt used to crash
    the process with a segmentation fault.)"""
    out = tmp_path / "out"
    before = _old_report(out) if previous else None
    proc = subprocess.Popen([sys.executable, "-m", "thermodiff", "analyze", "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    t0 = time.perf_counter()
    _, err = proc.communicate(timeout=60)
    waited = time.perf_counter() - t0
    assert proc.returncode == 130, err
    said = [f"thermodiff: interrupted; nothing was written to {out}"]
    if delay < 1:  # possibly before the options were parsed
        said.append("thermodiff: interrupted")
    assert len(err.splitlines()) == 1 and err.splitlines()[0] in said, err
    assert waited < 5, waited
    if previous:
        assert _snapshot(out) == before  # no staging folder, no partial file
    else:
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == (["out"] if previous else [])


_WRITE_SCRIPT = textwrap.dedent("""
    import argparse, os, signal, sys, time
    from pathlib import Path
    from thermodiff import _cli, _io

    out, where = Path(sys.argv[1]), sys.argv[2]
    _cli._install_interrupt()
    _cli._CONTEXT["args"] = argparse.Namespace(command="analyze", out=str(out))
    real = getattr(os, where)

    def hook(*a, **k):  # Ctrl-C while the report is staged (fdopen) or swapped in (replace)
        if not getattr(hook, "done", False):
            hook.done = True
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)
        return real(*a, **k)

    setattr(os, where, hook)
    _io.write_report(out, {"report.md": b"new report", "results.json": b"new results", "spectrum.png": b"new png"})
    time.sleep(10)  # the interrupt ends the process before this
    print("not interrupted")
""")


@pytest.mark.parametrize("where", ["fdopen", "replace"])
def test_ctrl_c_while_the_report_is_written_never_leaves_half_a_report(tmp_path, where):
    out = tmp_path / "out"
    before = _old_report(out)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRITE_SCRIPT, str(out), where], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 130 and proc.stdout == "", proc.stderr
    assert proc.stderr.splitlines() == [f"thermodiff: interrupted after the report was written completely to {out}"]
    assert time.perf_counter() - t0 < 8
    after = _snapshot(out)
    assert after != before and sorted(after) == sorted(before)
    assert all(v.startswith(b"new") for v in after.values())  # the whole new report, no staging folder
