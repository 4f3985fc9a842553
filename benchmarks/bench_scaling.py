"""Scaling of full sampling runs: vmapped parameter sweeps, and sharding over host devices.

``scaling``
    Issue: "temperatures per second of a vmapped sweep of full sampling runs (vmap over T_end or
    over an ensemble parameter), and scaling over forced host devices (subprocesses with
    XLA_FLAGS=--xla_force_host_platform_device_count=1,2, the batch sharded with jax.sharding
    NamedSharding; on a 2-core box expect <= 2x; report the ratio)".

    (1) Sweeps. Each point of a sweep is a full reverse-SDE run (Euler-Maruyama, VP schedule)
    of B trajectories of a two-component Gaussian mixture in d = 2 (weights 0.3/0.7), ending at
    its own temperature: a sweep over T_end (the order parameter <|x.mu|>/|mu| of the generated
    states at each T_end, the generated law being p_{T_end}) and a sweep over the separation
    |mu| (which moves T_c = |mu|^2 - s^2) ending at a fixed T_end. The whole sweep is one
    ``jax.jit(jax.vmap(...))`` (one trace, checked), timed against a Python loop over the same
    points calling one jitted single-point function; both in the same interleaved rounds.

    (2) Devices. A FiniteDataset sampler (the ``sampler`` benchmark's problem at a smaller batch)
    and the mixture sweep are run in fresh subprocesses with 1 and then 2 forced host devices,
    the batch axis sharded over a 1-D mesh with ``NamedSharding(mesh, P("batch"))`` (on 1 device
    the same code is a trivial mesh). The subprocesses alternate (1, 2, 1, 2, ...) and each pair
    gives a ratio; the median ratio is reported. The 2-device worker also checks that its sharded
    result equals the unsharded one (per-trajectory keys make the runs identical) and times the
    single-device placement in the same process, interleaved with the sharded one.

Run ``python -m benchmarks --only scaling`` (``--quick``: small sizes, one subprocess pair).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from ._common import register, time_interleaved

MIX = {"a": 2.0, "s2": 0.25, "w": 0.3, "d": 2}


def _mixture(a, jnp, td):
    d = MIX["d"]
    mu = jnp.zeros((d,), jnp.float32).at[0].set(a)
    return td.GaussianMixture(jnp.stack([mu, -mu]), MIX["s2"], jnp.asarray([MIX["w"], 1 - MIX["w"]], jnp.float32))


def make_sweeps(B: int, steps: int):
    """Single-point functions and their inputs for the two sweeps (see the module docstring)."""
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    sched = td.VP()
    solver = td.EulerMaruyama()
    d = MIX["d"]
    keys = jax.random.split(jax.random.key(0), B)
    x0 = jax.random.normal(jax.random.key(1), (B, d), jnp.float32)

    def order_parameter(x, T_end, a):
        t = sched.time_at_temperature(T_end)
        u = x / sched.signal_scale(t)
        return jnp.mean(jnp.abs(u[:, 0])) / a, jnp.mean(u[:, 0] > 0)

    def point_T(T_end):
        ens = _mixture(MIX["a"], jnp, td)
        ts = td.time_grid(sched, steps, T_end=T_end)  # T_end traced under vmap: validated outside
        x = jax.vmap(lambda k, x: td.sample(ens, sched, solver, k, x, ts=ts))(keys, x0)
        return order_parameter(x, T_end, MIX["a"])

    T_fixed = 0.05

    def point_a(a):
        ens = _mixture(a, jnp, td)
        x = jax.vmap(lambda k, x: td.sample(ens, sched, solver, k, x, steps=steps, T_end=T_fixed))(keys, x0)
        return order_parameter(x, T_fixed, a)

    return point_T, point_a


def _sweep_benchmark(quick: bool) -> dict:
    import jax
    import jax.numpy as jnp

    B, steps, n_points, rounds = (256, 20, 8, 3) if quick else (2048, 100, 64, 5)
    point_T, point_a = make_sweeps(B, steps)
    sweeps = {
        "T_end": (point_T, jnp.asarray(np.geomspace(0.01, 20.0, n_points), jnp.float32)),
        "separation": (point_a, jnp.asarray(np.linspace(1.0, 3.0, n_points), jnp.float32)),
    }
    rows, out = [], {}
    for name, (point, values) in sweeps.items():
        traces = {"vmap": 0}

        def traced(v, point=point):
            traces["vmap"] += 1
            return jax.vmap(point)(v)

        vm = jax.jit(traced)
        one = jax.jit(point)

        def loop(values, one=one):
            return [one(v) for v in values]

        t0 = time.perf_counter()
        res_v = jax.block_until_ready(vm(values))
        compile_v = time.perf_counter() - t0
        t0 = time.perf_counter()
        res_l = jax.block_until_ready(loop(values))
        compile_l = time.perf_counter() - t0
        timing = time_interleaved({"vmap": (vm, (values,)), "loop": (loop, (values,))}, rounds=rounds, warmup=0, seed=1)
        m_v, m_l = timing["vmap"]["median_s"], timing["loop"]["median_s"]
        op_v = np.asarray(res_v[0])
        op_l = np.asarray([r[0] for r in res_l])
        out[name] = {
            "values": np.asarray(values).tolist(),
            "order_parameter": op_v.tolist(),
            "class_fraction": np.asarray(res_v[1]).tolist(),
            "timing": timing,
            "first_call_s": {"vmap": compile_v, "loop": compile_l},
            "traces": traces["vmap"],
            "vmap_vs_loop_max_abs_diff": float(np.max(np.abs(op_v - op_l))),
        }
        rows.append(
            {
                "sweep": name,
                "points": n_points,
                "B": B,
                "steps": steps,
                "vmap s": m_v,
                "loop s": m_l,
                "vmap points/s": n_points / m_v,
                "loop points/s": n_points / m_l,
                "vmap speedup": m_l / m_v,
                "traj-steps/s (vmap)": n_points * B * steps / m_v,
                "traces": traces["vmap"],
                "|vmap - loop|": out[name]["vmap_vs_loop_max_abs_diff"],
            }
        )
    return {"rows": rows, "sweeps": out, "config": {"B": B, "steps": steps, "n_points": n_points, "rounds": rounds}}


# ---------------------------------------------------------------------------------- device worker
def _emit(obj):
    print("@@" + json.dumps(obj), flush=True)


def device_worker(cfg: dict) -> None:
    """Fresh interpreter with XLA_FLAGS set by the parent: time the sharded workloads."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import thermodiff as td

    n_dev = len(jax.devices())
    assert n_dev == cfg["devices"], (n_dev, cfg["devices"])
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    sharded = NamedSharding(mesh, P("batch"))
    single = jax.devices()[0]
    results = {"devices": n_dev, "cpu_count": os.cpu_count()}

    # workload 1: FiniteDataset exact-score sampler (GEMM-bound)
    rng = np.random.default_rng(0)
    N, d, B, steps = cfg["finite"]
    Y = rng.uniform(0.0, 16.0, size=(N, d)).astype(np.float32)
    ds = td.FiniteDataset(jnp.asarray(Y))
    sched = td.VE(0.01, 100.0)
    solver = td.EulerMaruyama()
    keys = jax.random.split(jax.random.key(0), B)
    x0 = jnp.asarray((100.0 * rng.standard_normal((B, d))).astype(np.float32))

    @jax.jit
    def finite(keys, x0):
        return jax.vmap(lambda k, x: td.sample(ds, sched, solver, k, x, steps=steps))(keys, x0)

    # workload 2: the mixture T_end sweep (elementwise-bound), points sharded
    point_T, _ = make_sweeps(cfg["mixture"][0], cfg["mixture"][1])
    n_points = cfg["mixture"][2]
    Ts = jnp.asarray(np.geomspace(0.01, 20.0, n_points), jnp.float32)
    sweep = jax.jit(jax.vmap(point_T))

    work = {
        "finite": (finite, (keys, x0), B * steps),
        "mixture_sweep": (sweep, (Ts,), n_points * cfg["mixture"][0] * cfg["mixture"][1]),
    }
    work = {k: v for k, v in work.items() if k in cfg["workloads"]}
    for name, (f, args, units) in work.items():
        a_sh = tuple(jax.device_put(a, sharded) for a in args)
        a_1 = tuple(jax.device_put(a, single) for a in args)
        t0 = time.perf_counter()
        r_sh = jax.block_until_ready(f(*a_sh))
        first = time.perf_counter() - t0
        r_1 = jax.block_until_ready(f(*a_1))
        diff = max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(jax.tree.leaves(r_sh), jax.tree.leaves(r_1)))
        cases = {"sharded": (f, a_sh)}
        if n_dev > 1:
            cases["one_device"] = (f, a_1)
        tm = time_interleaved(cases, rounds=cfg["repeats"], warmup=1, seed=n_dev)
        out_sharding = str(jax.tree.leaves(r_sh)[0].sharding)
        results[name] = {
            "timing": tm,
            "units": units,
            "first_call_s": first,
            "sharded_vs_single_max_abs_diff": diff,
            "output_sharding": out_sharding,
            "n_shards": len(jax.tree.leaves(r_sh)[0].addressable_shards),
        }
    _emit(results)


def _run_worker(n_dev: int, cfg: dict, timeout_s: float) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n_dev}"])
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("JAX_ENABLE_X64", None)
    cfg = dict(cfg, devices=n_dev)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_scaling", "--device-worker", json.dumps(cfg)],
            cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "failure": f"timeout after {timeout_s:.0f} s", "devices": n_dev}
    rec = {"ok": False, "returncode": proc.returncode, "wall_s": time.perf_counter() - t0, "devices": n_dev}
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            rec.update(json.loads(line[2:]))
            rec["ok"] = proc.returncode == 0
    if not rec["ok"]:
        rec["failure"] = f"exit status {proc.returncode}"
        rec["stderr_tail"] = proc.stderr[-2000:]
    return rec


def _device_benchmark(quick: bool) -> dict:
    if quick:
        cfg = {"finite": [1797, 64, 64, 10], "mixture": [128, 10, 8], "repeats": 3, "workloads": ["finite"]}
        pairs = 1
    else:
        cfg = {"finite": [1797, 64, 512, 50], "mixture": [2048, 100, 32], "repeats": 5, "workloads": ["finite", "mixture_sweep"]}
        pairs = 3
    runs = {1: [], 2: []}
    for _ in range(pairs):
        for n in (1, 2):
            runs[n].append(_run_worker(n, cfg, timeout_s=300 if quick else 900))
    failures = [r for rs in runs.values() for r in rs if not r["ok"]]
    if failures:
        raise RuntimeError(f"device worker failed: {failures[0].get('failure')}\n{failures[0].get('stderr_tail', '')}")
    rows, summary = [], {}
    for work in cfg["workloads"]:
        m1 = [r[work]["timing"]["sharded"]["median_s"] for r in runs[1]]
        m2 = [r[work]["timing"]["sharded"]["median_s"] for r in runs[2]]
        pair_ratios = [a / b for a, b in zip(m1, m2)]
        in_proc = [r[work]["timing"]["one_device"]["median_s"] / r[work]["timing"]["sharded"]["median_s"] for r in runs[2]]
        units = runs[1][0][work]["units"]
        ratio = statistics.median(pair_ratios)
        rows.append(
            {
                "workload": work,
                "1 device s": statistics.median(m1),
                "2 devices s": statistics.median(m2),
                "speedup 2/1 (subprocess pairs)": ratio,
                "pair ratios": ", ".join(f"{v:.2f}" for v in pair_ratios),
                "speedup 2/1 (same process)": statistics.median(in_proc),
                "units/s 2 devices": units / statistics.median(m2),
                "shards": runs[2][0][work]["n_shards"],
                "|sharded - single|": max(r[work]["sharded_vs_single_max_abs_diff"] for r in runs[2]),
            }
        )
        summary[f"{work}_speedup_2dev"] = ratio
        summary[f"{work}_speedup_2dev_same_process"] = statistics.median(in_proc)
        summary[f"{work}_max_abs_diff_sharded"] = rows[-1]["|sharded - single|"]
    return {"rows": rows, "summary": summary, "runs": runs, "config": cfg}


@register("scaling", description="temperatures/s of vmapped sweeps of full sampling runs; sharding over 1 vs 2 host devices")
def bench_scaling(quick: bool) -> dict:
    import jax

    if jax.config.jax_enable_x64:
        raise RuntimeError("the scaling benchmark runs in float32: run it with jax_enable_x64 off")
    sw = _sweep_benchmark(quick)
    dev = _device_benchmark(quick)
    summary = {}
    for row in sw["rows"]:
        summary[f"{row['sweep']}_points_per_s"] = row["vmap points/s"]
        summary[f"{row['sweep']}_vmap_speedup_vs_loop"] = row["vmap speedup"]
        summary[f"{row['sweep']}_traces"] = row["traces"]
    summary.update(dev["summary"])
    notes = [
        "points/s = full sampling runs (B trajectories x steps each) per second; the vmapped sweep is "
        "one jit and one trace; the loop calls one jitted single-point function per point",
        f"devices: {os.cpu_count()} CPU cores; forced host devices share them, so 2 devices can give at most "
        "~2x and less when one device's computation already uses both cores (XLA's intra-op threads)",
    ]
    return {
        "config": {"sweep": sw["config"], "devices": dev["config"], "mixture": MIX, "schedule": "td.VP()", "solver": "Euler-Maruyama"},
        "sweeps": sw["sweeps"],
        "device_runs": dev["runs"],
        "summary": summary,
        "tables": {"vmapped sweeps vs a Python loop (medians of interleaved rounds)": sw["rows"],
                   "sharding over forced host devices (subprocesses alternating 1, 2, ...)": dev["rows"]},
        "notes": notes,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--device-worker":
        device_worker(json.loads(sys.argv[2]))
    else:
        print("usage: python -m benchmarks --only scaling  (this module is not a CLI)", file=sys.stderr)
        sys.exit(2)
