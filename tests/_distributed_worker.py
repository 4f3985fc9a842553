"""One process of the multi-process tests and benchmark (tests/test_distributed.py,
benchmarks/_scale_distributed.py). Not a test module: run as a script.

    python tests/_distributed_worker.py --mode check --nproc 2 --pid 0 --port 12345 --out DIR

Modes:
- ``check``: a tiny dataset (every process builds its own rows only, with
  ``ShardedDataset.process_rows``); saves the sampler's states, posterior_condensation and
  excess_entropy to DIR/result_<pid>.npz. ``--plain`` uses a plain FiniteDataset instead (the
  one-process reference), ``--devices k`` gives the process k CPU devices.
- ``die``: as ``check``, but process 1 calls os._exit(3) after its first sampler call, while
  the others keep sampling: they must stop with an error (not hang).
- ``bench``: N x d Gaussian data, sampler and denoiser throughput; saves timings, maxrss and
  the dataset bytes this process holds to DIR/bench_<pid>.json.

Every run has a hard deadline (--deadline seconds, a watchdog thread), so it never hangs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time


def _args():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("check", "die", "bench"), default="check")
    p.add_argument("--nproc", type=int, default=1)
    p.add_argument("--pid", type=int, default=0)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--plain", action="store_true")
    p.add_argument("--x64", action="store_true")
    p.add_argument("--deadline", type=float, default=120.0)
    p.add_argument("--heartbeat", type=int, default=10)
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--platform", default="cpu")
    return p.parse_args()


def _watchdog(seconds: float, pid: int) -> None:
    def fire():
        print(f"worker {pid}: deadline of {seconds:.0f} s passed, exiting", file=sys.stderr, flush=True)
        os._exit(124)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def _data(n: int, d: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(n, d))
    w = rng.uniform(0.5, 1.5, size=n)
    return Y, w


def _gaussian_rows(start: int, stop: int, d: int, block: int = 4096):
    """Rows [start, stop) of a fixed N(0, I) dataset, generated block by block (seed = block
    index), so that a process can make its own rows without the others'."""
    import numpy as np

    out = np.empty((stop - start, d), np.float32)
    for b in range(start // block, -(-stop // block)):
        rows = np.random.default_rng([0, b]).standard_normal((block, d), dtype=np.float32)
        lo, hi = max(start, b * block), min(stop, (b + 1) * block)
        out[lo - start: hi - start] = rows[lo - b * block: hi - b * block]
    return out


def _setup(a):
    if a.platform == "cpu":
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={a.devices}"
    os.environ.setdefault("JAX_PLATFORMS", a.platform)
    import jax

    if a.x64:
        jax.config.update("jax_enable_x64", True)
    if a.nproc > 1:
        from thermodiff._distributed import distributed_init

        distributed_init(f"localhost:{a.port}", a.nproc, a.pid, heartbeat_timeout=a.heartbeat,
                         initialization_timeout=60, shutdown_timeout=10)
    return jax


def _dataset(a, Y, w, chunk_size):
    import thermodiff as td
    from thermodiff._ensembles._sharded import ShardedDataset

    if a.plain:
        return td.FiniteDataset(Y, w, chunk_size=chunk_size)
    start, stop = ShardedDataset.process_rows(Y.shape[0], chunk_size=chunk_size)
    return ShardedDataset(Y[start:stop], w[start:stop], n_points=Y.shape[0], chunk_size=chunk_size)


def _check(a, jax):
    import numpy as np

    dtype = np.float64 if a.x64 else np.float32
    Y, w = _data(50, 4)
    Y, w = Y.astype(dtype), w.astype(dtype)
    ds = _dataset(a, Y, w, chunk_size=4)
    out = _results(a, jax, ds, dtype)
    out["held_rows"] = np.array(sum(s.data.shape[0] * s.data.shape[1] for s in ds.chunks.addressable_shards))
    out["total_rows"] = np.array(ds.chunks.shape[0] * ds.chunks.shape[1])
    np.savez(os.path.join(a.out, f"result_{a.pid}.npz"), **out)
    if a.nproc == 1 and not a.plain:  # the plain dataset in the same process: the reference
        import thermodiff as td

        ref = _results(a, jax, td.FiniteDataset(Y, w, chunk_size=4), dtype)
        np.savez(os.path.join(a.out, "result_plain.npz"), **ref)


def _results(a, jax, ds, dtype):
    import jax.numpy as jnp
    import numpy as np

    import thermodiff as td

    rng = np.random.default_rng(1)
    B = 6
    X = jnp.asarray(rng.normal(size=(B, 4)).astype(dtype) * 3.0)
    keys = jax.random.split(jax.random.key(7), B)
    # The dataset is an argument of the jitted function, not a closure: a jit may not close over
    # an array that spans other processes' devices (JAX refuses it), and the same script must
    # run everywhere.
    run = jax.jit(jax.vmap(lambda ds, k, x: td.sample(ds, td.VE(), td.EulerMaruyama(), k, x, steps=8, T_end=0.02),
                           in_axes=(None, 0, 0)))
    out = {"samples": np.asarray(run(ds, keys, X))}
    if a.mode == "die":
        if a.pid == 1:
            print("worker 1: exiting abruptly (os._exit) mid-run", file=sys.stderr, flush=True)
            os._exit(3)
        for _ in range(10**6):  # the survivor keeps sampling: its collectives lose their peer
            out["samples"] = np.asarray(run(ds, keys, X + 1.0))
    Ts = np.array([0.05, 0.3, 2.0], dtype)
    one = jax.vmap(lambda ds, x, T: td.posterior_condensation(ds, x, T), (None, 0, None))
    c = jax.jit(jax.vmap(one, (None, None, 0)))(ds, X, jnp.asarray(Ts))
    for name in ("entropy", "participation_ratio", "max_weight", "nearest", "log_partition"):
        out["cond_" + name] = np.asarray(getattr(c, name))
    ex = td.excess_entropy(ds, Ts, jax.random.key(3), n_samples=32)
    out["excess_f"], out["excess_s"] = ex.f, ex.s
    out["denoiser"] = np.asarray(jax.jit(jax.vmap(lambda ds, x: ds.denoiser(x, 0.3), (None, 0)))(ds, X))
    out["n_devices"] = np.array(jax.device_count())
    out["n_processes"] = np.array(jax.process_count())
    return out


def _bench(a, jax):
    import resource

    import jax.numpy as jnp
    import numpy as np

    import thermodiff as td

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # jax + thermodiff loaded
    t0 = time.perf_counter()
    if a.plain:
        ds = td.FiniteDataset(_gaussian_rows(0, a.n, a.d), chunk_size=4096)
    else:  # each process generates only its own rows, as each host would load its shard
        from thermodiff._ensembles._sharded import ShardedDataset

        start, stop = ShardedDataset.process_rows(a.n, chunk_size=4096)
        ds = ShardedDataset(_gaussian_rows(start, stop, a.d), n_points=a.n, chunk_size=4096)
    held = sum(s.data.nbytes for s in ds.chunks.addressable_shards)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    X = jnp.asarray(rng.normal(size=(a.batch, a.d)).astype(np.float32) * 3.0)
    keys = jax.random.split(jax.random.key(7), a.batch)
    sampler = jax.jit(jax.vmap(lambda ds, k, x: td.sample(ds, td.VE(), td.EulerMaruyama(), k, x, steps=a.steps),
                               (None, 0, 0)))
    denoise = jax.jit(jax.vmap(lambda ds, x: ds.denoiser(x, 1.0), (None, 0)))

    def timed(fn, *args):
        jax.block_until_ready(fn(*args))  # compile
        times = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    res = {
        "pid": a.pid, "nproc": a.nproc, "plain": a.plain, "n": a.n, "d": a.d, "batch": a.batch,
        "steps": a.steps, "build_s": build_s, "dataset_bytes_held": int(held),
        "sampler_s": timed(sampler, ds, keys, X), "denoiser_s": timed(denoise, ds, X),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "rss_before_data_mb": rss0,
        "device": str(jax.devices()[0].device_kind), "n_devices": jax.device_count(),
    }
    np.save(os.path.join(a.out, f"bench_{a.pid}.npy"), np.asarray(sampler(ds, keys, X)))
    with open(os.path.join(a.out, f"bench_{a.pid}.json"), "w") as f:
        json.dump(res, f)


def main():
    a = _args()
    _watchdog(a.deadline, a.pid)
    jax = _setup(a)
    (_bench if a.mode == "bench" else _check)(a, jax)
    print(f"worker {a.pid}: done", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
