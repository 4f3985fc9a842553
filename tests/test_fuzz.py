"""Fuzz of the public API (issue 12, "Correct by default"): counts that must hold.

``tests/_fuzz.py`` generates about 2,800 one-argument mutations of valid calls of every public
callable (NaN, inf, T <= 0, T = 1e39, wrong ranks and lengths, empty arrays, None, strings,
bools, bad keys, absurd sizes, bad labels, non-callables) and runs them in a child process in
JAX's default float32 mode. Required:

- every eager bad call raises a ValueError/TypeError from thermodiff naming the argument
  (100% CLEAN), none returns a value (0 silent), none kills or hangs the process;
- under jax.jit an invalid temperature/time/state gives an entirely NaN result (or an
  eqx.error_if error), under jax.vmap NaN in that lane only, and every such function says so
  in its docstring ("Under jit: ...").

The tallies (per outcome and per function) are written to ``tests/fuzz_counts.json`` for the
README; the grouped list of failing calls goes to the assertion message (first 30) and to
``fuzz_failures_<variant>.txt`` in pytest's temporary directory.
"""

from __future__ import annotations

import json
import os

import equinox as eqx
import jax
import numpy as np
import pytest

import _fuzz
import thermodiff as td

COUNTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_counts.json")
SHOW = 30


def _record(variant: str, tally: dict) -> None:
    """Merge this variant's tallies into tests/fuzz_counts.json (sorted keys: stable diffs)."""
    data = {}
    if os.path.exists(COUNTS):
        try:
            with open(COUNTS) as fh:
                data = json.load(fh)
        except (OSError, json.JSONDecodeError):
            data = {}
    data[variant] = tally
    tmp = COUNTS + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, COUNTS)


def _run(variant: str, tmp_path_factory) -> list[dict]:
    d = tmp_path_factory.mktemp(f"fuzz_{variant}")
    records = _fuzz.run_all(str(d / "results.jsonl"), variant)
    _record(variant, _fuzz.tally(records))
    (d / f"fuzz_failures_{variant}.txt").write_text(_fuzz.report_text(records))
    return records


def _message(bad: list[dict], total: int, what: str) -> str:
    lines = [f"{len(bad)} of {total} {what}; first {min(len(bad), SHOW)}:"]
    lines += ["  " + _fuzz.format_failure(r) for r in bad[:SHOW]]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    return _run("fast", tmp_path_factory)


def _check_complete(records, variant):
    assert [r["i"] for r in records] == list(range(len(_fuzz.CASES[variant]))), "the fuzz did not run every case"


def _check_valid_calls(records):
    bad = [r for r in records if r["slot"] is None and r["outcome"] != "VALID_OK"]
    assert not bad, _message(bad, sum(r["slot"] is None for r in records), "valid calls fail (fix the table or the code)")


def _check_eager(records):
    eager = [r for r in records if r["mode"] == "eager" and r["slot"] is not None]
    bad = [r for r in eager if r["outcome"] != "CLEAN"]
    assert not bad, _message(bad, len(eager), "eager bad calls are not a clean ValueError/TypeError naming the argument")


def _check_traced(records):
    traced = [r for r in records if r["mode"] != "eager"]
    bad = [r for r in traced if r["outcome"] not in ("JIT_NAN", "JIT_ERROR", "VMAP_OK", "VMAP_ERROR")]
    assert not bad, _message(bad, len(traced), "traced bad calls do not give NaN (or an eqx.error_if error)")


def _check_documented(records):
    undocumented = sorted({r["target"] for r in records if r["mode"] != "eager" and r.get("documented") is False})
    assert not undocumented, f"docstrings without an 'Under jit: ...' line: {undocumented}"


# ------------------------------------------------------------------------------ the fast variant
def test_fuzz_runs_every_case(fast):
    _check_complete(fast, "fast")
    crashed = [r for r in fast if r["outcome"] in ("CRASH", "HANG")]
    assert not crashed, _message(crashed, len(fast), "calls kill or hang the process")


def test_fuzz_valid_calls_work(fast):
    _check_valid_calls(fast)


def test_fuzz_eager_bad_calls_are_clean(fast):
    _check_eager(fast)


def test_fuzz_no_silent_answers(fast):
    silent = [r for r in fast if r["outcome"].startswith("SILENT")]
    assert not silent, _message(silent, len(fast), "bad calls return a value (NaN or a plausible number)")


def test_fuzz_traced_bad_values_give_nan(fast):
    _check_traced(fast)


def test_fuzz_jit_behaviour_documented(fast):
    _check_documented(fast)


# ------------------------------------------------------------------------------ the slow variant
@pytest.mark.slow
def test_fuzz_slow_targets(tmp_path_factory):
    """The targets whose valid call compiles for seconds (training, exponents, trees, ...)."""
    records = _run("slow", tmp_path_factory)
    _check_complete(records, "slow")
    _check_valid_calls(records)
    _check_eager(records)
    _check_traced(records)
    _check_documented(records)


# ------------------------------------------------------------------------------ the harness itself
# Public names the fuzz does not call, with the reason. Everything else in thermodiff.__all__
# must appear in the table (as a function, a class or one of its methods).
NOT_FUZZED = {
    # result containers and abstract bases: nothing to compute
    "AbstractEnsemble", "AbstractGrid", "AbstractModel", "AbstractNoiseLevels", "AbstractSchedule",
    "AbstractSolver", "AbstractWeighting", "Basins", "BathMoments", "BathTrajectory", "BifurcationTree",
    "Checkpoint", "CheckpointError", "ClassInference", "CollapseMeasurement", "Condensation", "Estimate",
    "ExcessEntropy", "Exponent", "FirstSplit", "HopfieldFixedPoints", "ModelComparison", "NoiseLevel",
    "PrincipalSubspace", "SpeciationPrediction", "SplitNode", "Trajectory", "TrainResult", "TrainState",
    "DataScale",
    # constants
    "CONVENTIONS", "DATA_SCALES", "PHI_CRITICAL",
    # argument-free strategy objects (their methods are fuzzed through sample/train)
    "EDMWeighting", "NoiseVarianceWeighting", "UnitWeighting", "UniformTime", "LowDiscrepancy",
    "ExponentialEuler", "ProbabilityFlowEuler", "ProbabilityFlowHeun", "StochasticHeun",
    "UniformGrid", "EulerMaruyama",
    # file input/output (the CLI tests cover them) and heavy composites of fuzzed functions
    "load_checkpoint", "save_checkpoint", "data_fingerprint", "compare_to_exact", "Diagnostics",
    "load_digits_upsampled", "stack_models", "UNet", "SinusoidalEmbedding", "LogNormal", "SNRWeighting",
    "detect_tau_gen", "detect_tau_mem", "excess_loss", "generalization_error", "first_split_temperature",
    # result containers of the geometry, data-need, memorisation-law and solvable-model modules
    # (their computing functions and MemorizationLaw.predict / LinearModes.weight_at are fuzzed)
    "JacobianSpectrum", "SpectralGaps", "SpectrumSweep", "Freezing", "DataNeed", "NeedRow", "MemorizationStudy",
    "AgreementStudy", "LinearModes", "TrainTestGap",
    # host-side drivers that train networks for minutes (their building blocks are fuzzed: train,
    # fit_memorization_law, sample_agreement, cosine_agreement, memorization_fraction), and
    # compare_spectra, a dict loop over spectrum_sweep (fuzzed) with the same arguments
    "memorization_study", "agreement_study", "compare_spectra",
    # the result container of approximation_error (its crossings method is fuzzed)
    "ApproximationError",
    # initialises the process-global distributed runtime; its validation is tested in tests/test_distributed.py
    "distributed_init",
    # a module setting read at trace time and its getter; their validation is tested in
    # tests/test_sweep_vmap.py::test_block_size_setting (a fuzzed call would change the global setting)
    "set_vmap_block_size", "vmap_block_size",
}


def test_fuzz_table_covers_public_api():
    covered = {t.name.split(".")[0].split("[")[0] for t in _fuzz.TARGETS}
    missing = sorted(set(td.__all__) - covered - NOT_FUZZED)
    assert not missing, f"public names neither fuzzed nor listed in NOT_FUZZED: {missing}"
    assert len(_fuzz.CASES["all"]) > 1500
    assert len({c[0] for c in _fuzz.CASES["all"]}) == len(_fuzz.CASES["all"]), "case ids must be unique"


def test_classifier_has_teeth():
    """The classifier tells CLEAN from UNCLEAN and SILENT on known calls (in float32 mode)."""
    from thermodiff import _validate

    def outside(T):  # raises a ValueError naming T, but from outside thermodiff
        if not (isinstance(T, float) and T == 0.5):
            raise ValueError("T must be > 0")

    def returns_nan(T):
        return jax.numpy.asarray(float("nan"))

    def returns_value(T):
        return jax.numpy.asarray(1.0)

    def vague(T):  # a thermodiff-raised error that names no argument (T_start is not T)
        _validate.check_temperature(T, "T_start")

    T = _fuzz.Slot("T", "T", 0)
    cases = [
        (_validate.check_temperature_scalar, "nan", "CLEAN"),
        (_validate.check_temperature_scalar, "shape(2,)", "CLEAN"),
        (_validate.check_temperature_scalar, "1e39", "CLEAN"),
        (outside, "nan", "UNCLEAN"),
        (vague, "-1", "UNCLEAN"),
        (returns_nan, "nan", "SILENT_NAN"),
        (returns_value, "nan", "SILENT_FINITE"),
    ]
    with jax.enable_x64(False):
        for i, (fn, label, want) in enumerate(cases):
            target = _fuzz.Target(f"_selftest{i}", lambda fn=fn: (fn, (0.5,), {}), [T])
            got = _fuzz.run_eager(target, "T", label)
            assert got["outcome"] == want, (fn.__name__, label, got)


def test_classifier_jit_outcomes():
    """JIT_NAN for a guarded function, JIT_FINITE for an unguarded one; vmap keeps good lanes."""
    from thermodiff import _validate

    T = _fuzz.Slot("T", "T", 0)
    guarded = _fuzz.Target("_selftest_guarded", lambda: (lambda T: 2.0 * _validate.guard_temperature(T), (0.5,), {}), [T], jit=("T",))
    plain = _fuzz.Target("_selftest_plain", lambda: (lambda T: 2.0 * T, (0.5,), {}), [T], jit=("T",))
    checked = _fuzz.Target("_selftest_error_if", lambda: (lambda T: eqx.error_if(T, T <= 0, "T must be > 0"), (0.5,), {}), [T], jit=("T",))
    with jax.enable_x64(False):
        assert _fuzz.run_traced(checked, "T", "-1", "jit")["outcome"] == "JIT_ERROR"
        assert _fuzz.run_traced(guarded, "T", "-1", "jit")["outcome"] == "JIT_NAN"
        assert _fuzz.run_traced(guarded, "T", "-1", "vmap")["outcome"] == "VMAP_OK"
        assert _fuzz.run_traced(plain, "T", "-1", "jit")["outcome"] == "JIT_FINITE"
        assert _fuzz.run_traced(plain, "T", "-1", "vmap")["outcome"] == "VMAP_FINITE"
    assert np.isnan(_fuzz._jit_value(T, "nan", 0.5))
