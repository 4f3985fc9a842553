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

# The whole suite in --quick mode takes 2.5-6 minutes on 2 cores (train alone 0.8-1.7, most of it
# compilation): run by .ci/run's slow step.
pytestmark = pytest.mark.slow


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
    proc = _run(["--quick", "--out", str(out), "--platform", "cpu"], timeout=900)
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


# ---------------------------------------------------------------------------------- meanfield_sweep


def test_meanfield_sweep_result(quick_results):
    r = quick_results[0]["meanfield_sweep"]
    s = r["summary"]
    n = r["config"]["n_temperatures"]
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
            assert ag["nonfinite_x"] == 0 and ag["nonfinite_chi"] == 0
            assert isinstance(ag["nonfinite_C"], int)
        assert rec["scipy_stats"]["root_calls"] == 3 * n
    ex = r["cases"]["two_deltas"]["critical_exponents"]
    assert abs(ex["beta"] - 0.5) < 1e-3 and abs(ex["gamma"] - 1.0) < 1e-3
    assert _finite_number(s["critical_exponents_first_s"]) and _finite_number(s["fd8_critical_temperature_first_s"])


def test_meanfield_sweep_heat_capacity_finite(quick_results):
    """Regression (was xfail): heat_capacity vmapped over a FiniteDataset's temperatures gave NaN
    at a few lanes. Every variant is finite, the vmapped sweep equals the per-temperature loop,
    and the fused kernel equals the public API."""
    r = quick_results[0]["meanfield_sweep"]
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


def test_sampler_result(quick_results):
    r = quick_results[0]["sampler"]
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
    assert set(r["targets"]) and all(isinstance(v, bool) for v in r["targets"].values())


def test_accuracy_result(quick_results):
    r = quick_results[0]["accuracy"]
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
    assert isinstance(s["critical_beats_uniform_and_karras_10_20"], bool)
    for nfe, v in r["verdict"].items():
        assert 10 <= int(nfe) <= 20
        assert set(v["mean_abs_class_error"]) == grids


def test_scaling_result(quick_results):
    r = quick_results[0]["scaling"]
    s = r["summary"]
    for sweep in ("T_end", "separation"):
        assert s[f"{sweep}_traces"] == 1  # the whole sweep is one trace
        assert _finite_number(s[f"{sweep}_points_per_s"]) and s[f"{sweep}_points_per_s"] > 0
        assert _finite_number(s[f"{sweep}_vmap_speedup_vs_loop"])
        assert r["sweeps"][sweep]["vmap_vs_loop_max_abs_diff"] < 1e-4
    for work in r["config"]["devices"]["workloads"]:
        assert _finite_number(s[f"{work}_speedup_2dev"]) and s[f"{work}_speedup_2dev"] > 0
        # sharded and single-device runs compute the same trajectories (up to GEMM blocking round-off)
        assert s[f"{work}_max_abs_diff_sharded"] < 0.05, work
    for run in r["device_runs"]["2"]:
        assert run["ok"] is True and run["devices"] == 2
        assert all(run[w]["n_shards"] == 2 for w in r["config"]["devices"]["workloads"])


# ---------------------------------------------------------------------------------- train


def test_train_result(quick_results):
    r = quick_results[0]["train"]
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
    t = r["targets"]
    for key in ("small_net_1.5x_pyloop_met", "w512_40pct_roofline_met"):
        assert isinstance(t[key], bool) and isinstance(s[key], bool), key
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
