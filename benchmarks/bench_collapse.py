"""Collapse measurement at scale, and the ``thermodiff analyze`` job by stage (issue: finite datasets).

1. ``collapse``: the streaming nearest-point/posterior statistics behind ``td.measure_collapse``
   (``thermodiff._speciation.nearest_points``: online top-2 distances, argmin and log-sum-exp over
   chunks) on N = 60000 points in d = 64 for Q query states, against a dense NumPy version that
   materialises the Q x N distance and logit matrices. Reported: points x queries per second of
   each (interleaved medians, same run), their ratio, agreement, and the peak RSS of each in a
   fresh subprocess (streaming memory does not grow with N; dense grows like Q x N).

The ``analyze`` benchmark (``thermodiff analyze`` end to end) lives in ``bench_analyze.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from ._common import register, time_interleaved

MiB = 2**20


def _data(n, d, q, seed=0):
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((n, d), dtype=np.float32)
    X = Y[rng.integers(0, n, q)] + np.float32(0.5) * rng.standard_normal((q, d), dtype=np.float32)
    return Y, X


def numpy_stats(Y, X, T, half_sq=None):
    """Dense reference: (d1, d2, argmin, top posterior weight) for each row of X."""
    half_sq = 0.5 * np.einsum("nd,nd->n", Y, Y) if half_sq is None else half_sq
    G = X @ Y.T  # (Q, N)
    d2 = np.maximum(np.einsum("qd,qd->q", X, X)[:, None] - 2 * G + 2 * half_sq[None, :], 0)
    part = np.partition(d2, 1, axis=1)[:, :2]
    idx = np.argmin(d2, axis=1)
    logits = (G - half_sq[None, :]) / T
    mx = logits.max(1)
    top = 1.0 / np.exp(logits - mx[:, None]).sum(1)
    return np.sqrt(part[:, 0]), np.sqrt(part[:, 1]), idx, top


def _stream_fn(chunk_size):
    import jax

    from thermodiff._speciation import nearest_points

    @jax.jit
    def f(ds, X, T):
        return jax.vmap(lambda u: nearest_points(ds, u, T))(X)

    return f


def _worker(cfg):
    """Fresh process: build the data, run one implementation once, print its peak RSS."""
    n, d, q, T = cfg["n"], cfg["d"], cfg["q"], cfg["T"]
    Y, X = _data(n, d, q)
    if cfg["impl"] == "baseline":  # the runtime and the data alone
        import jax  # noqa: F401

        import thermodiff  # noqa: F401

        out = (X,)
    elif cfg["impl"] == "numpy":
        out = numpy_stats(Y, X, T)
    else:
        import jax
        import jax.numpy as jnp

        import thermodiff as td

        ds = td.FiniteDataset(Y, chunk_size=cfg["chunk"])
        out = jax.block_until_ready(_stream_fn(cfg["chunk"])(ds, jnp.asarray(X), jnp.float32(T)))
    # VmHWM, not ru_maxrss: ru_maxrss survives exec and would report the forking parent's peak
    peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print("@@" + json.dumps({"peak_rss_mb": peak / MiB, "checksum": float(np.sum(np.asarray(out[0], np.float64)))}))


def _peak(cfg):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-m", "benchmarks.bench_collapse", "--worker", json.dumps(cfg)],
                         capture_output=True, text=True, cwd=root, env=env, timeout=600)
    for line in res.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    return {"error": res.stderr[-500:]}


@register("collapse", description="streaming nearest-point/posterior statistics (N = 60000, d = 64) vs dense NumPy")
def bench_collapse(quick: bool) -> dict:
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    n, d, q, T, chunk = (6000, 64, 64, 0.5, 1024) if quick else (60000, 64, 512, 0.5, 4096)
    Y, X = _data(n, d, q)
    ds = td.FiniteDataset(Y, chunk_size=chunk)
    f = _stream_fn(chunk)
    Xj, Tj = jnp.asarray(X), jnp.float32(T)
    half_sq = 0.5 * np.einsum("nd,nd->n", Y, Y)
    ref = numpy_stats(Y, X, T, half_sq)
    got = [np.asarray(a) for a in jax.block_until_ready(f(ds, Xj, Tj))]
    agree = dict(
        argmin_equal=float(np.mean(got[2] == ref[2])),
        d1_max_rel=float(np.max(np.abs(got[0] - ref[0]) / ref[0])),
        top_weight_max_abs=float(np.max(np.abs(got[3] - ref[3]))),
    )
    t = time_interleaved({"thermodiff": (f, (ds, Xj, Tj)), "numpy": (numpy_stats, (Y, X, T, half_sq))},
                         rounds=3 if quick else 7)
    rate = {k: n * q / v["median_s"] for k, v in t.items()}
    mem = {}
    if not quick:
        mem["baseline"] = _peak(dict(impl="baseline", n=n, d=d, q=q, T=T, chunk=chunk))
        for impl in ("thermodiff", "numpy"):
            mem[impl] = _peak(dict(impl=impl, n=n, d=d, q=q, T=T, chunk=chunk))
        # the dense matrices grow like Q x N: at 4x the queries
        mem["numpy_4q"] = _peak(dict(impl="numpy", n=n, d=d, q=4 * q, T=T, chunk=chunk))
        mem["thermodiff_4q"] = _peak(dict(impl="thermodiff", n=n, d=d, q=4 * q, T=T, chunk=chunk))
    summary = {
        "N": n, "d": d, "queries": q,
        "thermodiff_pts_x_queries_per_s": rate["thermodiff"],
        "numpy_pts_x_queries_per_s": rate["numpy"],
        "speedup_vs_numpy": rate["thermodiff"] / rate["numpy"],
        **{f"peak_rss_mb_{k}": v.get("peak_rss_mb") for k, v in mem.items()},
        **agree,
    }
    return {"summary": summary, "timings": t, "memory": mem,
            "notes": ["peak RSS of a fresh process; 'baseline' imports jax and thermodiff and builds the data only, "
                      "so peak - baseline is what each implementation adds"]}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(json.loads(sys.argv[2]))
