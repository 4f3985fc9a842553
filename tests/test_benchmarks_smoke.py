"""Smoke test of the benchmark suite, and the README's claims about it.

Every registered benchmark runs in its own ``--quick`` mode (one subprocess per benchmark, run on
first use and cached for the module, so one test pays for one benchmark) and writes a well-formed
JSON; its correctness claims are asserted: streaming equals dense, thermodiff equals NumPy, SciPy
and diffrax, the CriticalGrid beats the uniform and Karras grids, sharded equals unsharded, the
targets' flags agree with the numbers they summarise. Timing claims are not asserted (the machine
is shared and noisy).

The README's own numbers are checked at the README's sizes by the tests below marked
"README size": the streaming FiniteDataset's peak memory (N = 10^6, d = 64, B = 256) is below the
1 GiB budget and near the README's figure while the dense path's is not; the CriticalGrid's class
error beats the uniform and Karras grids at 10 evaluations with 2e5 samples; sharded runs equal
unsharded ones to the README's tolerance. The README's figures are parsed from its benchmark table,
so a changed claim is tested as written.

Everything runs in subprocesses: the suite must see float32 (this test session's conftest enables
x64) and its own environment, untouched. Benchmark runs are marked slow (``.ci/run``'s slow step);
the helpers' tests run in the default suite (3 s). Measured on the shared 2-core CPU at a load of
4-6 (each test's time is one benchmark's): quick runs of collapse 8 s, denoiser 17 s, bath 23 s,
denoiser_memory 24 s, sampler 34 s, accuracy 48 s, analyze 49 s, scaling 59 s, train 107 s and
meanfield_sweep 181 s (the last two are over 90 s: their quick modes are the benchmarks' own);
README size: streaming memory 28 s, dense memory 47 s, accuracy 53 s, sharding 54 s.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import _common  # noqa: E402  (imports no JAX at module level)

README = os.path.join(ROOT, "README.md")
GiB = 1 << 30


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("JAX_ENABLE_X64", None)
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _run(args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _readme_row(name: str) -> str:
    """The README benchmark table's 'measured here' cell of benchmark ``name``."""
    text = open(README).read()
    m = re.search(rf"^\| `{re.escape(name)}` \|(.*)$", text, re.M)
    assert m, f"README.md has no benchmark table row for `{name}`"
    return m.group(1)


def _readme_number(name: str, pattern: str) -> tuple[float, ...]:
    """Numbers captured by ``pattern`` in the README's row of benchmark ``name`` (the claim tested)."""
    row = _readme_row(name)
    m = re.search(pattern, row)
    assert m, f"README.md's `{name}` row no longer states {pattern!r}: update this test with the claim"
    return tuple(float(g) for g in m.groups())


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """name -> (result JSON, stdout) of ``python -m benchmarks --quick --only name``, run once."""
    cache = {}

    def get(name):
        if name not in cache:  # a failed run is cached too: each benchmark runs once per module
            out = tmp_path_factory.mktemp(f"bench_{name}")
            t0 = time.perf_counter()
            proc = _run(["--quick", "--only", name, "--out", str(out), "--platform", "cpu"], timeout=900)
            cache[name] = (proc, time.perf_counter() - t0, out / f"{name}.json")
        proc, wall, path = cache[name]
        assert proc.returncode == 0, f"{name} ({wall:.0f} s)\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        assert path.exists(), f"{path} missing; stdout:\n{proc.stdout[-2000:]}"
        return json.loads(path.read_text()), proc.stdout

    return get


BENCHMARKS = sorted(_common.load_all())


def test_registry_names():
    assert {"denoiser", "denoiser_memory", "accuracy", "scaling", "sampler", "meanfield_sweep", "train", "geometry",
            "memorization", "scale"} <= set(BENCHMARKS)


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_wrote_common_fields(quick, name):
    r, stdout = quick(name)
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
    assert f"[ok] {name} in " in stdout


@pytest.mark.slow
def test_denoiser_result(quick):
    r = quick("denoiser")[0]
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
    for key in ("roofline_gflops", "numpy_matmul_gflops", "thermodiff_gflops", "roofline_fraction", "speedup_vs_numpy"):
        assert s[key] > 0, key
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


@pytest.mark.slow
def test_denoiser_memory_result(quick):
    """Quick size (N = 20000): the three variants run, agree, and the streaming one passes the budget."""
    r = quick("denoiser_memory")[0]
    s = r["summary"]
    assert set(r["variants"]) == {"streaming", "dense", "streaming_closure"}
    for name, v in r["variants"].items():
        xla = v["xla_compiled"]
        assert xla["available"] is True
        if not v["closure"]:  # the points are an argument (closed over, they are constants)
            assert xla["argument_size_in_bytes"] >= r["config"]["n_points"] * r["config"]["dim"] * 4, name
        assert xla["output_size_in_bytes"] == r["config"]["batch"] * r["config"]["dim"] * 4, name
        sp = v["subprocess"]
        assert sp["ok"] is True, (name, sp.get("failure"), sp.get("stderr_tail"))
        assert sp["output_finite"] is True
        assert 0 < sp["peak_above_import"] < GiB, name
        assert _finite_number(v["median_s"]) and v["median_s"] > 0
        assert _finite_number(v["query_points_per_s"]) and v["query_points_per_s"] > 0
    # streaming and dense compute the same thing
    cs = [r["variants"][k]["subprocess"]["checksum"] for k in ("streaming", "dense", "streaming_closure")]
    assert max(cs) - min(cs) <= 1e-3 * max(1.0, abs(cs[0]))
    # XLA's own accounting: the dense program holds a (B, N) block, the streaming one a (B, chunk) block
    B, N = r["config"]["batch"], r["config"]["n_points"]
    chunk = r["variants"]["streaming"]["chunk_size"]
    temp = {k: r["variants"][k]["xla_compiled"]["temp_size_in_bytes"] for k in ("streaming", "dense")}
    assert temp["dense"] >= 4 * B * N, temp
    assert temp["streaming"] < 4 * B * N, temp
    assert temp["streaming"] <= 16 * 4 * B * chunk + 4 * N * r["config"]["dim"], temp
    assert s["budget_MB"] == pytest.approx(GiB / 1e6)
    assert s["streaming_pass"] is True and s["streaming_peak_MB"] < s["budget_MB"]
    assert r["config"]["budget_counts_points"] is True


def _memory_worker(chunk_size):
    """The denoiser_memory benchmark's worker at the README's size, in a fresh float32 process."""
    from benchmarks import bench_denoiser as bd

    n, d, batch = 1_000_000, 64, 256
    assert re.search(r"N = 10\^6, d = 64, B = 256, streaming \(chunk 4096\)", _readme_row("denoiser_memory"))
    cfg = {"n": n, "d": d, "batch": batch, "chunk_size": chunk_size, "T": 1.0, "repeats": 1, "closure": False}
    rec = bd._run_memory_worker(cfg, cap_bytes=6 * GiB, timeout_s=480)
    assert rec["ok"] is True, (rec.get("failure"), rec.get("stderr_tail"))
    assert rec["output_finite"] is True
    return rec, 4 * batch * n  # bytes of one dense (B, N) float32 block


@pytest.mark.slow
def test_denoiser_memory_streaming_readme_size_within_budget(monkeypatch):
    """README size: the streaming denoiser's peak (points included) is below the 1 GiB budget and
    within 25% of the README's figure; the call itself adds far less than one dense (B, N) block."""
    monkeypatch.delenv("JAX_ENABLE_X64", raising=False)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    readme_mb, _ = _readme_number("denoiser_memory", r"peak (\d+) MB \(points included\) vs (\d+) MB dense")
    rec, dense_block = _memory_worker(4096)
    peak = rec["peak_above_import"]
    assert peak < GiB, f"streaming peak {peak / 1e6:.0f} MB >= the 1 GiB budget"
    assert peak <= 1.25 * readme_mb * 1e6, f"streaming peak {peak / 1e6:.0f} MB vs the README's {readme_mb:.0f} MB"
    assert rec["peak_above_precall"] < 0.1 * dense_block, rec["peak_above_precall"]


@pytest.mark.slow
def test_denoiser_memory_dense_readme_size(monkeypatch):
    """README size: the dense path (one chunk of N) holds the (B, N) block: its peak is the README's
    dense figure (within 25%), several times the budget the streaming path keeps."""
    monkeypatch.delenv("JAX_ENABLE_X64", raising=False)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    readme_stream_mb, readme_dense_mb = _readme_number("denoiser_memory", r"peak (\d+) MB \(points included\) vs (\d+) MB dense")
    rec, dense_block = _memory_worker(1_000_000)
    peak = rec["peak_above_import"]
    assert 0.75 * readme_dense_mb * 1e6 <= peak <= 1.25 * readme_dense_mb * 1e6, (peak / 1e6, readme_dense_mb)
    assert rec["peak_above_precall"] >= dense_block, rec["peak_above_precall"]
    assert readme_dense_mb > 2 * readme_stream_mb and peak > GiB


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
    t = _common.time_median(lambda: calls.append(time.sleep(0.01)), repeats=5, warmup=2)
    assert 0.01 <= t < 1.0 and len(calls) == 7
    res = _common.time_interleaved({"a": (lambda: None, ()), "b": (lambda x: x, (1,))}, rounds=3)
    assert set(res) == {"a", "b"} and res["a"]["repeats"] == 3
    path = _common.write_result({"benchmark": "x", "v": float("nan"), "w": [1.5, 2]}, str(tmp_path))
    data = json.loads(open(path).read())
    assert data == {"benchmark": "x", "v": None, "w": [1.5, 2]}
    table = _common.format_table([{"a": 1.23456, "b": "x"}, {"a": 1e-9}])
    assert "1.235" in table and "1e-09" in table


# ---------------------------------------------------------------------------------- meanfield_sweep


@pytest.mark.slow
def test_meanfield_sweep_result(quick):
    r = quick("meanfield_sweep")[0]
    s = r["summary"]
    n = r["config"]["n_temperatures"]
    (x_tol,) = _readme_number("meanfield_sweep", r"x\* agrees to ([0-9.]+e-\d+)")
    assert n == 200 and s["n_temperatures"] == n
    assert r["config"]["dtype"] == "float64"
    for short in ("td1", "fd8", "gm8"):
        for key in ("thermodiff_us_per_T", "scipy_us_per_T", "speedup_vs_scipy", "compile_s",
                    "x_max_abs_diff", "chi_max_rel_diff", "C_max_abs_diff", "fused_us_per_T",
                    "fused_speedup_vs_scipy", "fused_speedup_vs_vmap", "fused_map_us_per_T",
                    "fused_map_speedup_vs_scipy"):
            assert _finite_number(s[f"{short}_{key}"]), (short, key, s.get(f"{short}_{key}"))
        assert s[f"{short}_thermodiff_us_per_T"] > 0 and s[f"{short}_scipy_us_per_T"] > 0
        assert s[f"{short}_batched_lapack_calls"] == 0, short  # the kernels that deadlocked jaxlib 0.10
    assert set(r["cases"]) == {"two_deltas", "finite_dataset", "gaussian_mixture"}
    bm_variants = {"thermodiff_vmap", "thermodiff_map", "thermodiff_fused", "thermodiff_fused_map"}
    for case, rec in r["cases"].items():
        assert rec["ok"] is True, (case, rec.get("failure"), rec.get("stderr_tail"))
        assert rec["x64"] is True
        assert _finite_number(rec["T_c"]) and rec["T_c"] > 0
        timed = set(rec["variants_timed"])
        assert timed == {"scipy", *bm_variants}, timed
        for v in timed - {"scipy"}:
            c = rec["compile"][v]
            assert c["traces"] == 1, (case, v)  # the whole sweep is one trace
            assert c["batched_lapack_calls"] == 0, (case, v)
            for key in ("trace_lower_s", "xla_compile_s", "first_call_s", "second_call_s"):
                assert _finite_number(c[key]) and c[key] > 0, (case, v, key)
            assert rec["timing"][v]["median_s"] > 0
            ag = rec["agreement"][v]
            # thermodiff and the SciPy loop find the same branch and agree to solver precision;
            # C only to the accuracy of SciPy's finite difference
            assert ag["branch_mismatches"] == 0, (case, v)
            assert ag["x_max_abs_diff"] < 1e-8, (case, v, ag["x_max_abs_diff"])
            assert ag["chi_max_rel_diff"] < 1e-6, (case, v, ag["chi_max_rel_diff"])
            assert ag["C_max_abs_diff"] < 1e-4, (case, v, ag["C_max_abs_diff"])
            assert ag["nonfinite_x"] == 0 and ag["nonfinite_chi"] == 0 and ag["nonfinite_C"] == 0, (case, v)
            # README: "x* agrees to 4e-12", "no NaN lanes"
            assert ag["x_max_abs_diff"] <= x_tol, (case, v, ag["x_max_abs_diff"])
        assert rec["scipy_stats"]["root_calls"] == 3 * n
    ex = r["cases"]["two_deltas"]["critical_exponents"]
    assert abs(ex["beta"] - 0.5) < 1e-3 and abs(ex["gamma"] - 1.0) < 1e-3
    assert _finite_number(s["critical_exponents_first_s"]) and _finite_number(s["fd8_critical_temperature_first_s"])


@pytest.mark.slow
def test_meanfield_sweep_heat_capacity_finite(quick):
    """Regression (was xfail): heat_capacity vmapped over a FiniteDataset's temperatures gave NaN
    at a few lanes. Every variant is finite, the vmapped sweep equals the per-temperature loop,
    and the fused kernel equals the public API."""
    r = quick("meanfield_sweep")[0]
    for case, rec in r["cases"].items():
        for v, ag in rec["agreement"].items():
            assert ag["nonfinite_C"] == 0, (case, v, ag["nonfinite_C_T_over_Tc"])
        lc = rec["loop_check"]
        assert lc["n"] == r["config"]["n_temperatures"]
        assert lc["nonfinite_vmap"] == 0 and lc["nonfinite_loop"] == 0, (case, lc)
        assert lc["x_max_abs_diff"] < 1e-10 and lc["chi_max_rel_diff"] < 1e-8, (case, lc)
        assert lc["C_max_abs_diff"] < 1e-8, (case, lc)
        for v in ("thermodiff_map", "thermodiff_fused", "thermodiff_fused_map"):
            bv = rec["between_variants"][f"{v}_vs_thermodiff_vmap"]
            assert bv["C_nonfinite_in_either"] == 0, (case, v)
            assert bv["C_max_abs_diff"] < 1e-8 and bv["x_max_abs_diff"] < 1e-8, (case, v, bv)


@pytest.mark.slow  # 10-25 s: the SciPy reference of every case in float64
def test_meanfield_numpy_references_match_thermodiff():
    """The SciPy benchmark's NumPy formulas (m, Cov, Phi) are the library's conventions."""
    import jax.numpy as jnp
    import numpy as np

    import thermodiff as td
    from benchmarks import bench_meanfield as bm

    rng = np.random.default_rng(1)
    for case in bm.CASES:
        ens, ref, _ = bm.make_case(case, True)
        for T in (0.3, 1.7, 6.0):
            x = rng.standard_normal(ref.d)
            m, cov = ref.m_cov(x, T)
            np.testing.assert_allclose(m, ens.denoiser(jnp.asarray(x), T), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(cov, ens.posterior_cov(jnp.asarray(x), T), rtol=1e-9, atol=1e-12)
            assert ref.phi(x, T) == pytest.approx(float(ens.landau(jnp.asarray(x), T)), rel=1e-11, abs=1e-12)
    # the SciPy loop on two deltas: m = tanh(m/T) and chi = J/(1 - J), J = sech^2(m/T)/T
    ref = bm.NpTwoDeltas(1.0)
    X, CHI, C, stats = bm.scipy_sweep(ref, np.array([0.5, 2.0]), np.array([1.0]), rel_step=1e-4, xtol=1e-12)
    assert X[0, 0] == pytest.approx(0.9575040241, abs=1e-9) and abs(X[1, 0]) < 1e-10
    J = (1 - np.tanh(X[:, 0] / [0.5, 2.0]) ** 2) / [0.5, 2.0]
    np.testing.assert_allclose(CHI[:, 0, 0], J / (1 - J), rtol=1e-8)
    assert C[1] == pytest.approx(0.0, abs=1e-6)  # C = 0 above T_c
    np.testing.assert_allclose(C[0], float(td.heat_capacity(td.TwoDeltas(1.0), 0.5)), rtol=1e-5)
    assert stats["root_calls"] == 6


def test_meanfield_batched_lapack_detector():
    """The benchmark's check for the batched LAPACK kernels that deadlocked jaxlib 0.10 under
    vmap: jnp.linalg.solve under vmap is counted, an unbatched one and the library's sweep not."""
    import jax
    import jax.numpy as jnp

    from benchmarks import bench_meanfield as bm

    A, b = jnp.eye(3)[None].repeat(4, 0), jnp.ones((4, 3))
    assert bm.batched_lapack_calls(jax.jit(jax.vmap(jnp.linalg.solve)).lower(A, b).as_text()) > 0
    assert bm.batched_lapack_calls(jax.jit(jnp.linalg.solve).lower(A[0], b[0]).as_text()) == 0
    ens, _, _ = bm.make_case("gaussian_mixture", True)
    for v in bm.JAX_VARIANTS:
        f = jax.jit(bm.sweep_fn(v, []))
        assert bm.batched_lapack_calls(f.lower(ens, jnp.linspace(1.0, 5.0, 8)).as_text()) == 0, v


# ---------------------------------------------------------------------------------- sampler, accuracy, scaling


@pytest.mark.slow
def test_sampler_result(quick):
    r = quick("sampler")[0]
    s = r["summary"]
    for key in (
        "thermodiff_s",
        "speedup_vs_diffrax_unsafe",
        "speedup_vs_diffrax_vbt",
        "speedup_vs_numpy",
        "speedup_vs_numpy_tuned",
        "paired_speedup_vs_diffrax_unsafe",
        "roofline_gflops",
        "thermodiff_gflops",
        "roofline_fraction",
        "roofline_fraction_vs_numpy_blas",
        "two_gemms_only_s",
        "gemm_exp_gemm_s",
        "swd_thermodiff",
        "swd_mc_floor",
    ):
        assert _finite_number(s[key]) and s[key] > 0, (key, s.get(key))
    assert r["config"]["dtype"] == "float32"
    assert r["config"]["flops_per_step"] == 4 * s["B"] * s["N"] * s["d"]
    assert {"thermodiff", "diffrax_unsafe", "diffrax_vbt", "numpy", "numpy_tuned", "matmul_roofline"} <= set(r["timing"])
    # the same noise gives the same trajectories (float32 round-off) in NumPy and diffrax
    for pair, agree in r["same_noise"].items():
        assert agree["same_training_point_fraction"] >= 0.95, pair
        assert agree["max_abs_diff_same_point"] < 1e-3, pair  # data in [0, 16]
    # independent noise: every implementation is as close to exact samples as exact samples are
    assert all(v == 0 for v in r["nonfinite"].values())
    for impl, w2 in r["sliced_w2"].items():
        assert _finite_number(w2) and w2 < 2.0 * s["swd_mc_floor"] + 0.1 * r["data_scale_rms"], impl
    # README: "with the same noise all three reach the same points"
    for pair, agree in r["same_noise"].items():
        assert agree["same_training_point_fraction"] == 1.0, pair
    # each target flag states its inequality, e.g. "speedup_vs_numpy >= 4": it agrees with the number
    assert r["targets"]
    for name, met in r["targets"].items():
        key, bound = re.fullmatch(r"(\w+) >= ([0-9.]+)", name).groups()
        assert met is (s[key] >= float(bound)), (name, s[key])
    assert s["targets_met"] == sum(r["targets"].values())


@pytest.mark.slow
def test_accuracy_result(quick):
    r = quick("accuracy")[0]
    s = r["summary"]
    cfg = r["config"]
    grids = {"uniform", "karras", "critical", "critical_old_defaults"}
    assert set(cfg["grids"]) == grids
    assert len(r["results"]) == len(cfg["nfes"]) * len(cfg["solvers"]) * len(grids)
    for row in r["results"]:
        assert row["finite"] is True, row
        assert _finite_number(row["class_error"]) and abs(row["class_error"]) < 0.25, row
        assert _finite_number(row["swd"]) and row["swd"] < 2.0, row
        assert row["nfe"] <= row["nfe_target"]
    assert _finite_number(s["class_stderr"]) and s["class_stderr"] > 0
    assert s["T_c"] == pytest.approx(3.75)
    # README: "the CriticalGrid beats the uniform and Karras grids" (at every NFE of the quick window)
    assert s["critical_beats_uniform_and_karras_10_20"] is True
    assert set(r["verdict"]) == {"10", "20"}
    for nfe, v in r["verdict"].items():
        e = v["mean_abs_class_error"]
        assert set(e) == grids
        assert e["critical"] < e["uniform"] and e["critical"] < e["karras"], (nfe, e)
        assert v["critical_beats_both_on_mean"] is True and v["clear_losses"] == 0, (nfe, v)
        # the verdict is the mean of the rows
        for g in grids:
            rows = [abs(x["class_error"]) for x in r["results"] if x["nfe_target"] == int(nfe) and x["grid"] == g]
            assert e[g] == pytest.approx(sum(rows) / len(rows), rel=1e-12), (nfe, g)


_ACCURACY_SCRIPT = r"""
import json, math, sys
import numpy as np, jax, jax.numpy as jnp
import thermodiff as td
from benchmarks import bench_accuracy as ba

n, nfe = int(sys.argv[1]), int(sys.argv[2])
solvers = {"EulerMaruyama": td.EulerMaruyama(), "StochasticHeun": td.StochasticHeun(),
           "PF-Euler": td.ProbabilityFlowEuler(), "PF-Heun": td.ProbabilityFlowHeun(), "DDIM(0)": td.DDIM(0.0),
           "DDIM(1)": td.DDIM(1.0), "ExponentialEuler": td.ExponentialEuler()}
mu = np.zeros(ba.DIM, np.float32)
mu[0] = ba.A
ens = td.GaussianMixture(jnp.asarray(np.stack([mu, -mu])), ba.S2, jnp.asarray([ba.W1, 1 - ba.W1], jnp.float32))
grids = {"uniform": td.UniformGrid(), "karras": td.KarrasGrid(), "critical": td.CriticalGrid(ba.A ** 2 - ba.S2)}
sched = td.VP()
sigma = math.sqrt(ba.S2 + ba.T_END)
p_exact = ba.W1 * ba._phi(ba.A / sigma) + (1 - ba.W1) * ba._phi(-ba.A / sigma)
kx, ks, *_ = jax.random.split(jax.random.key(0), 6)  # the benchmark's keys and initial states
x0 = jax.random.normal(kx, (n, ba.DIM), jnp.float32)
keys = jax.random.split(ks, n)
errors = {g: {} for g in grids}
for name, solver in solvers.items():
    steps = max(1, nfe // solver.evaluations)

    @jax.jit
    def run(solver=solver, steps=steps):
        tss = jnp.stack([td.time_grid(sched, steps, g, T_end=ba.T_END) for g in grids.values()]).astype(jnp.float32)
        return jax.vmap(lambda ts: jax.vmap(lambda k, x: td.sample(ens, sched, solver, k, x, ts=ts))(keys, x0))(tss)

    out = np.asarray(run())
    for i, g in enumerate(grids):
        errors[g][name] = float(np.mean(out[i] @ mu > 0)) - p_exact
print("@@" + json.dumps({"errors": errors, "stderr": math.sqrt(p_exact * (1 - p_exact) / n)}))
"""


@pytest.mark.slow
def test_accuracy_readme_size_critical_grid_beats_uniform_and_karras():
    """README size (2e5 samples, every solver, 10 evaluations, the benchmark's keys): the mean class
    error of each grid is the README's figure, and the CriticalGrid's is the lowest."""
    crit, uni, kar, se = _readme_number(
        "accuracy", r"mean class error at 10: ([0-9.]+) vs ([0-9.]+) uniform, ([0-9.]+) Karras; stderr ([0-9.]+)")
    assert "beats the uniform and Karras grids" in _readme_row("accuracy")
    proc = subprocess.run([sys.executable, "-c", _ACCURACY_SCRIPT, "200000", "10"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(next(line[2:] for line in proc.stdout.splitlines() if line.startswith("@@")))
    assert res["stderr"] == pytest.approx(se, abs=5e-5)
    mean = {g: sum(abs(v) for v in e.values()) / len(e) for g, e in res["errors"].items()}
    # the same keys and float32: the README's numbers up to a few flipped samples
    for g, want in (("critical", crit), ("uniform", uni), ("karras", kar)):
        assert mean[g] == pytest.approx(want, abs=5e-4), (g, mean)
    assert mean["critical"] < mean["uniform"] < mean["karras"], mean
    # and by more than two standard errors of one entry (the grids share keys and initial states)
    assert mean["uniform"] - mean["critical"] > 2 * se, mean


@pytest.mark.slow
def test_scaling_result(quick):
    r = quick("scaling")[0]
    s = r["summary"]
    for sweep in ("T_end", "separation"):
        assert s[f"{sweep}_traces"] == 1  # the whole sweep is one trace
        assert _finite_number(s[f"{sweep}_points_per_s"]) and s[f"{sweep}_points_per_s"] > 0
        assert _finite_number(s[f"{sweep}_vmap_speedup_vs_loop"])
        assert r["sweeps"][sweep]["vmap_vs_loop_max_abs_diff"] < 1e-4
    for work in r["config"]["devices"]["workloads"]:
        assert _finite_number(s[f"{work}_speedup_2dev"]) and s[f"{work}_speedup_2dev"] > 0
        # sharded and single-device runs compute the same trajectories up to GEMM-blocking round-off:
        # quick mode's 10 steps from |x| ~ 100 amplify it to ~2e-4 (data in [0, 16]); the README's
        # tolerance is checked at the README's size below
        assert s[f"{work}_max_abs_diff_sharded"] < 1e-3, work
    for run in r["device_runs"]["2"]:
        assert run["ok"] is True and run["devices"] == 2
        assert all(run[w]["n_shards"] == 2 for w in r["config"]["devices"]["workloads"])


@pytest.mark.slow
def test_scaling_readme_size_sharded_equals_unsharded(monkeypatch):
    """README size (the benchmark's full configuration, one round): on 2 forced host devices the
    sharded batch gives the single-device result to the README's tolerance, in 2 shards."""
    from benchmarks import bench_scaling as bs

    monkeypatch.delenv("JAX_ENABLE_X64", raising=False)
    (tol,) = _readme_number("scaling", r"sharded equals unsharded to ([0-9.]+e-\d+)")
    cfg = {"finite": [1797, 64, 512, 50], "mixture": [2048, 100, 32], "repeats": 1,
           "workloads": ["finite", "mixture_sweep"]}
    run = bs._run_worker(2, cfg, timeout_s=480)
    assert run["ok"] is True, (run.get("failure"), run.get("stderr_tail"))
    assert run["devices"] == 2
    for work in cfg["workloads"]:
        assert run[work]["n_shards"] == 2, work
        assert "'batch'" in run[work]["output_sharding"], run[work]["output_sharding"]
        assert run[work]["sharded_vs_single_max_abs_diff"] <= tol, (work, run[work]["sharded_vs_single_max_abs_diff"])


# ---------------------------------------------------------------------------------- collapse, bath


@pytest.mark.slow
def test_collapse_result(quick):
    """README: "identical nearest points" (streaming vs dense NumPy), the same distances and weights."""
    r = quick("collapse")[0]
    s = r["summary"]
    assert s["argmin_equal"] == 1.0
    assert s["d1_max_rel"] < 1e-4 and s["top_weight_max_abs"] < 1e-5, s
    assert s["speedup_vs_numpy"] > 0 and s["thermodiff_pts_x_queries_per_s"] > 0


def _curie_weiss_m2(M: int, T: float) -> float:
    """<m^2> of M Curie-Weiss spins (J = 1) at T by the exact sum over magnetization sectors (theory 7)."""
    logw = [math.lgamma(M + 1) - math.lgamma(k + 1) - math.lgamma(M - k + 1) + M * ((2 * k - M) / M) ** 2 / (2 * T)
            for k in range(M + 1)]
    top = max(logw)
    w = [math.exp(v - top) for v in logw]
    return sum(wk * ((2 * k - M) / M) ** 2 for k, wk in enumerate(w)) / sum(w)


@pytest.mark.slow
def test_bath_result(quick):
    """The bath benchmark's exact finite-M reference is the Curie-Weiss sum (theory 7); both samplers
    ran and gave finite magnetizations."""
    r = quick("bath")[0]
    assert r["table"]
    for row in r["table"]:
        assert row["m2_at_Tc_exact"] == pytest.approx(_curie_weiss_m2(row["M"], 1.0), rel=1e-5), row["M"]
        for key in ("m2_at_Tc_thermodiff", "m2_at_Tc_numpy"):
            assert _finite_number(row[key]) and 0.0 < row[key] < 1.0, (row["M"], key)
        assert row["thermodiff_updates_per_s"] > 0 and row["numpy_updates_per_s"] > 0
    assert r["summary"]["M"] == max(row["M"] for row in r["table"])


# ---------------------------------------------------------------------------------- train


@pytest.mark.slow
def test_train_result(quick):
    r = quick("train")[0]
    s = r["summary"]
    assert r["config"]["dtype"] == "float32"
    assert _common.all_finite(r) == []
    assert "mlp_w128_d8" in r["mlp"] and any(k.startswith("mlp_w512") for k in r["mlp"])
    cases = {"compiled_chunk", "jitted_step", "python_loop", "python_loop_nosync"}
    timed = list(r["mlp"].items())
    if r["unet"] is not None:  # skipped in --quick
        timed.append(("unet", r["unet"]))
    for label, rec in timed:
        assert set(rec["steps_per_s"]) == cases, label
        for k, v in rec["steps_per_s"].items():
            assert _finite_number(v) and v > 0, (label, k)
        row = rec["row"]
        for key in ("chunk_over_step", "chunk_over_pyloop", "chunk_over_pyloop_nosync"):
            assert _finite_number(row[key]) and row[key] > 0, (label, key)
        ag = rec["agreement"]
        assert ag["all_finite"] is True, label
        assert ag["chunk_steps_taken"] == rec["n_steps_per_call"], label
        # the compiled chunk and the jitted step take the same steps (same batches and noise)
        assert ag["chunk_vs_step_max_abs_param_diff"] < 1e-2, (label, ag)
        # the user loop does the same work: the same loss level (its own batches and noise)
        assert 0.2 < ag["loss_ratio_python_loop_over_chunk"] < 5.0, (label, ag)
    for label, rec in r["mlp"].items():
        cfg = rec["config"]
        w, d, B = cfg["width"], cfg["d"], cfg["batch"]
        # emb_in (64 -> w), emb_proj (w -> depth w), inp (d -> w), two per block (w -> w -> w), out (w -> d);
        # emb_dim 64, hidden = width
        macs = 64 * w + cfg["depth"] * w * w + d * w + cfg["depth"] * 2 * w * w + w * d
        assert rec["flops_per_step"] == 3 * 2 * B * macs, label
        assert len(rec["linears"]) == 4 + 2 * cfg["depth"], label
        assert _finite_number(rec["roofline_fraction"]) and rec["roofline_fraction"] > 0, label
        assert _finite_number(s[f"{label}_roofline_fraction"]), label
    assert _finite_number(s["roofline_gflops"]) and s["roofline_gflops"] > 0
    cl = r["conv_in_loop"]
    for key in ("top_level_s_per_step", "fori_loop_s_per_step", "fori_loop_slowdown"):
        assert _finite_number(cl[key]) and cl[key] > 0, key
    # each target flag agrees with the number it summarises, and the summary repeats the flags
    t = r["targets"]
    small = r["mlp"]["mlp_w128_d8"]["row"]
    assert t["small_net_speedup_vs_pyloop"] == small["chunk_over_pyloop"]
    assert t["small_net_1.5x_pyloop_met"] is (small["chunk_over_pyloop"] >= 1.5)
    assert t["small_net_1.5x_pyloop_nosync_met"] is (small["chunk_over_pyloop_nosync"] >= 1.5)
    assert t["small_net_1.5x_pyloop_met_paired"] is (small["paired_chunk_over_pyloop"] >= 1.5)
    w512 = [rec["roofline_fraction"] for label, rec in r["mlp"].items() if label.startswith("mlp_w512")]
    assert t["w512_roofline_fraction_min"] == min(w512)
    assert t["w512_40pct_roofline_met"] is (min(w512) >= 0.4)
    assert t["w512_40pct_roofline_met_paired"] is (t["w512_roofline_fraction_paired_min"] >= 0.4)
    for key, met in t.items():
        if key.endswith(("_met", "_met_paired")):
            assert s[key] is met, key
    mem = r["memorization"]["n16"]
    row = mem["row"]
    assert row["tau_mem"] is None or (_finite_number(row["tau_mem"]) and 0 <= row["tau_mem"] <= row["steps"])
    assert row["reached"] is (row["tau_mem"] is not None)
    assert row["s_to_tau_mem"] is None or _finite_number(row["s_to_tau_mem"])
    assert _finite_number(row["run_steps_per_s"]) and row["run_steps_per_s"] > 0
    h = mem["history"]
    assert len(h["step"]) == len(h["f_mem"]) >= 2
    assert all(0.0 <= f <= 1.0 for f in h["f_mem"])


def test_train_flop_count():
    """Every Linear of the ResidualMLP is counted, and the count is the analytic one."""
    import jax
    import numpy as np

    import thermodiff as td
    from benchmarks import bench_train as bt

    net = td.ResidualMLP(8, 32, 2, emb_dim=16, hidden=48, key=jax.random.key(0))
    lins = bt.mlp_linears(net)
    assert sorted(n for n, _, _ in lins) == sorted([
        ".emb_in", ".emb_proj", ".inp",
        ".blocks[0].lin1", ".blocks[0].lin2", ".blocks[1].lin1", ".blocks[1].lin2", ".out",
    ])
    macs = 16 * 32 + 8 * 32 + 2 * (32 * 48 + 32 * 48 + 48 * 32) + 32 * 8
    assert sum(i * o for _, i, o in lins) == macs == bt.mlp_macs_per_example(8, 32, 2, 16, 48)
    assert bt.mlp_train_step_flops(net, 4) == 3 * 2 * 4 * macs
    # the host dataloader of the user loop: full batches, each epoch a permutation
    data = np.arange(10.0)[:, None]
    it = bt.numpy_dataloader(data, 5, seed=0)
    epoch = np.concatenate([next(it), next(it)])[:, 0]
    assert sorted(epoch.tolist()) == list(range(10))


# ---------------------------------------------------------------------------------- scale
@pytest.mark.slow
def test_scale_result(quick):
    """The four parts of ``scale`` ran and their correctness claims hold at quick sizes: the
    certified trajectory equals the dense one within a few tol R (float32 trajectories, 20 steps:
    measured 1.9e-6 R), the certificate was exercised (cold steps certified), two processes'
    states equal one process's to float32 rounding (measured 1.4e-6 on states of size 15), the
    vmapped sweep equals the blocked map, and the k-NN error grows with T."""
    r = quick("scale")[0]
    s, tables = r["summary"], r["tables"]
    assert s["certified_device"] == "cpu" and s["sweep_backend"] == "cpu"
    (row,) = tables["certified: certified trajectories"]
    assert row["traj_err_over_R"] < 2e-5
    assert min(f for f in row["fallback_frac_per_step"]) < 1.0  # some states certified without the dense sum
    assert s["distributed_max_abs_dev_2proc_vs_plain"] <= 1e-5 * max(1.0, s["distributed_max_abs_state"])
    assert s["distributed_dataset_mb_per_process_2proc"] < s["distributed_dataset_mb_1proc"]
    for row in tables["sweep: vmap against blocked lax.map"]:
        assert row["max rel diff vs vmap"] is None or row["max rel diff vs vmap"] < 1e-10, row
    knn1 = [x for x in tables["approx: approximation error"] if x["approx"] == "knn1" and x["data"] == "clusters"]
    assert knn1 and knn1[0]["relative_score"] < 1e-3 < knn1[-1]["relative_score"]
