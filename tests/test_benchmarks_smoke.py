"""Smoke test of the benchmark suite: every registered benchmark runs in --quick mode and writes
a well-formed JSON. No timing assertions (the machine is shared and noisy); only structure,
finiteness and the thermodiff-vs-NumPy agreement are checked.

The suite runs in a subprocess: it must see float32 (this test session's conftest enables x64)
and its own environment, untouched.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import _common  # noqa: E402  (imports no JAX at module level)


def _run(args, timeout=300):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("JAX_ENABLE_X64", None)
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = _run(["--quick", "--out", str(out), "--platform", "cpu"])
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    names = list(_common.load_all())
    results = {}
    for name in names:
        path = out / f"{name}.json"
        assert path.exists(), f"{path} missing; stdout:\n{proc.stdout[-2000:]}"
        results[name] = json.loads(path.read_text())
    return results, proc.stdout


def test_every_benchmark_wrote_common_fields(quick_results):
    results, stdout = quick_results
    assert {"denoiser", "denoiser_memory"} <= set(results)
    for name, r in results.items():
        assert r["benchmark"] == name
        assert r["status"] == "ok", r.get("error")
        assert r["quick"] is True
        assert _finite_number(r["wall_s"]) and r["wall_s"] > 0
        env = r["env"]
        for key in ("jax_version", "backend", "device_kind", "cpu_count", "numpy"):
            assert key in env, key
        assert env["backend"] == "cpu"
        assert env["x64_enabled"] is False
        assert isinstance(r["summary"], dict) and r["summary"]
        assert name in stdout


def test_denoiser_result(quick_results):
    r = quick_results[0]["denoiser"]
    s = r["summary"]
    for key in (
        "roofline_gflops",
        "numpy_matmul_gflops",
        "thermodiff_gflops",
        "roofline_fraction",
        "speedup_vs_numpy",
        "speedup_vs_best_numpy",
        "gemm_only_roofline_fraction",
        "max_rel_diff_vs_numpy",
    ):
        assert _finite_number(s[key]), (key, s.get(key))
        assert s[key] >= 0, key
    assert s["roofline_gflops"] > 0 and s["thermodiff_gflops"] > 0
    assert r["config"]["dtype"] == "float32"
    assert r["config"]["flops_per_call"] == 4 * s["B"] * s["N"] * s["d"]
    assert _finite_number(r["roofline_standalone"]["jnp_gflops"])
    assert len(r["per_temperature"]) >= 3
    for row in r["per_temperature"]:
        acc = row["accuracy"]
        assert _finite_number(acc["max_abs_diff_vs_numpy"])
        assert acc["max_rel_diff_vs_numpy"] < 1e-3, row["T"]
        for impl in ("thermodiff", "thermodiff_arg", "numpy", "gemm_only"):
            t = row["impls"][impl]
            for key in ("median_s", "min_s", "gflops", "roofline_fraction", "speedup_vs_numpy"):
                assert _finite_number(t[key]) and t[key] > 0, (impl, key)
        # every variant (library options and prototypes) agrees with NumPy too
        for key, v in acc.items():
            if key.endswith("_max_abs_diff_vs_numpy"):
                assert v / 16.0 < 1e-3, key  # data in [0, 16]
    assert s["max_rel_diff_vs_numpy"] < 1e-3
    assert _common.all_finite(r["breakdown"]["rows"]) == []
    assert r["dim_scan"] and r["small_batch"]


def test_denoiser_memory_result(quick_results):
    r = quick_results[0]["denoiser_memory"]
    s = r["summary"]
    assert set(r["variants"]) == {"streaming", "dense", "streaming_closure"}
    for name, v in r["variants"].items():
        xla = v["xla_compiled"]
        assert xla["available"] is True
        for key in ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes", "total_bytes"):
            assert isinstance(xla[key], int) and xla[key] >= 0, (name, key)
        sp = v["subprocess"]
        assert sp["ok"] is True, (name, sp.get("failure"), sp.get("stderr_tail"))
        assert sp["output_finite"] is True
        for key in ("peak_above_import", "peak_above_precall", "rss_import", "rss_data", "rss_compiled"):
            assert isinstance(sp[key], int), (name, key)
        assert sp["peak_above_import"] > 0
        assert _finite_number(v["median_s"]) and v["median_s"] > 0
        assert _finite_number(v["query_points_per_s"]) and v["query_points_per_s"] > 0
    # streaming and dense compute the same thing
    cs = [r["variants"][k]["subprocess"]["checksum"] for k in ("streaming", "dense", "streaming_closure")]
    assert max(cs) - min(cs) <= 1e-3 * max(1.0, abs(cs[0]))
    for key in ("streaming_peak_MB", "dense_peak_MB", "streaming_xla_MB", "dense_xla_MB", "budget_MB"):
        assert _finite_number(s[key]), key
    assert isinstance(s["streaming_pass"], bool)
    assert r["config"]["budget_counts_points"] is True


def test_unknown_benchmark_is_an_error():
    proc = _run(["--only", "no_such_benchmark"], timeout=120)
    assert proc.returncode == 2
    assert "unknown benchmark" in proc.stderr


# ---------------------------------------------------------------------------------- helpers


def test_register_rejects_duplicates():
    reg = dict(_common.REGISTRY)
    try:

        @_common.register("_smoke_dummy")
        def first(quick):
            """A dummy."""
            return {}

        assert _common.REGISTRY["_smoke_dummy"].description == "A dummy."
        with pytest.raises(ValueError, match="registered twice"):

            @_common.register("_smoke_dummy")
            def second(quick):
                return {}

    finally:
        _common.REGISTRY.clear()
        _common.REGISTRY.update(reg)


def test_timing_helpers_and_output(tmp_path):
    calls = []
    t = _common.time_median(lambda: calls.append(1), repeats=5, warmup=2)
    assert t >= 0 and len(calls) == 7
    res = _common.time_interleaved({"a": (lambda: None, ()), "b": (lambda x: x, (1,))}, rounds=3)
    assert set(res) == {"a", "b"} and res["a"]["repeats"] == 3
    path = _common.write_result({"benchmark": "x", "v": float("nan"), "w": [1.5, 2]}, str(tmp_path))
    data = json.loads(open(path).read())
    assert data == {"benchmark": "x", "v": None, "w": [1.5, 2]}
    table = _common.format_table([{"a": 1.23456, "b": "x"}, {"a": 1e-9}])
    assert "1.235" in table and "1e-09" in table
