"""A FiniteDataset sharded over devices and processes (theory sections 3.2 and 9; issue 15 item 2).

Multi-process checks spawn real processes (tests/_distributed_worker.py) joined by a
jax.distributed coordinator on localhost, each with a hard timeout. Sizes are tiny: the time is
process start-up and compilation (about 45 s for the module fixture on 2 busy cores).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td
from thermodiff._distributed import distributed_init
from thermodiff._ensembles._sharded import ShardedDataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "_distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _spawn(out, *args):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env.pop("XLA_FLAGS", None)
    return subprocess.Popen([sys.executable, WORKER, "--out", str(out), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _wait(procs, timeout):
    """(returncode, stderr) of every process; any still running at the deadline is killed."""
    deadline, res = time.monotonic() + timeout, []
    for p in procs:
        try:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        res.append((p.returncode, err))
    return res


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two float32 processes (1 CPU device each, sharded) and one float64 process with 4 CPU
    devices (sharded, and the plain FiniteDataset as reference), run concurrently."""
    two, four = tmp_path_factory.mktemp("two"), tmp_path_factory.mktemp("four")
    port = _free_port()
    procs = [_spawn(two, "--mode", "check", "--nproc", 2, "--pid", i, "--port", port, "--deadline", 170)
             for i in (0, 1)]
    procs.append(_spawn(four, "--mode", "check", "--devices", 4, "--x64", "--deadline", 170))
    procs.append(_spawn(two, "--mode", "check", "--plain", "--pid", 9, "--deadline", 170))
    for rc, err in _wait(procs, 180):
        assert rc == 0, err[-3000:]
    load = lambda path: dict(np.load(path))  # noqa: E731
    return {"p0": load(two / "result_0.npz"), "p1": load(two / "result_1.npz"),
            "plain32": load(two / "result_9.npz"),
            "four": load(four / "result_0.npz"), "plain64": load(four / "result_plain.npz")}


_FLOAT_KEYS = ("samples", "denoiser", "cond_entropy", "cond_participation_ratio", "cond_max_weight",
               "cond_log_partition", "excess_f", "excess_s")


def _close(a, b, rtol):
    """Agreement to rtol relative to each quantity's scale (max |b|)."""
    for k in _FLOAT_KEYS:
        scale = float(np.max(np.abs(b[k])))
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=rtol * scale, err_msg=k)
    np.testing.assert_array_equal(a["cond_nearest"], b["cond_nearest"])


def test_two_processes_replicated_and_sharded(runs):
    """Both processes hold the same results bit for bit (replicated outputs), and each held only
    its own half of the rows (7 of 14 chunks of 4 rows: the data are never gathered)."""
    p0, p1 = runs["p0"], runs["p1"]
    assert int(p0["n_processes"]) == 2 and int(p0["n_devices"]) == 2
    for k in _FLOAT_KEYS + ("cond_nearest",):
        np.testing.assert_array_equal(p0[k], p1[k], err_msg=k)
    for p in (p0, p1):
        assert 2 * int(p["held_rows"]) == int(p["total_rows"])


def test_two_processes_sample_like_one(runs):
    """Sampler (8 Euler-Maruyama steps, 6 states, same keys), denoiser and collapse measurement
    (posterior_condensation at T = 0.05, 0.3, 2; excess_entropy) of 2 processes equal one process
    with a plain FiniteDataset to float32 rounding. Measured: max relative deviation 6.4e-6
    (cond entropy near 0 at T = 0.05, log_partition 6.3e-6), samples 2.7e-7; tolerance 5e-5
    relative to each quantity's scale. Nearest points identical."""
    _close(runs["p0"], runs["plain32"], rtol=5e-5)


def test_four_devices_equal_dense_float64(runs):
    """One process, 4 CPU devices (--xla_force_host_platform_device_count=4), float64: the
    sharded dataset equals the plain FiniteDataset (measured max deviation ~1e-15 relative;
    tolerance 1e-11)."""
    four = runs["four"]
    assert int(four["n_devices"]) == 4 and four["samples"].dtype == np.float64
    _close(four, runs["plain64"], rtol=1e-11)


def test_dead_process_gives_error_not_hang(tmp_path):
    """Process 1 dies (os._exit) after its first sampler call while process 0 keeps sampling:
    process 0 must exit non-zero with JAX's error (gloo: connection reset; coordination
    service: heartbeat timeout), not by our 90 s watchdog (exit 124) and not hang. Measured:
    the survivor raises at once and exits ~5 s later (heartbeat_timeout = 5); 19 s in all."""
    port = _free_port()
    t0 = time.monotonic()
    procs = [_spawn(tmp_path, "--mode", "die", "--nproc", 2, "--pid", i, "--port", port,
                    "--heartbeat", 5, "--deadline", 90) for i in (0, 1)]
    (rc0, err0), (rc1, _) = _wait(procs, 120)
    elapsed = time.monotonic() - t0
    assert rc1 == 3
    assert rc0 not in (0, 124, None), err0[-2000:]
    assert elapsed < 90
    clear = ("Gloo", "heartbeat timeout", "detected fatal errors", "Connection reset")
    assert any(m in err0 for m in clear), err0[-2000:]


# ----------------------------------------------------------------------------- in this process
def test_one_device_equals_dense_under_jit_vmap_grad():
    """On this process's single device the sharded dataset is the plain one (float64, 1e-13):
    denoiser under jit(vmap), the gradient of log Z, energy moments, mean, covariance."""
    rng = np.random.default_rng(0)
    Y, w = rng.normal(size=(23, 3)), rng.uniform(0.1, 1.0, 23)
    ds, ref = ShardedDataset(Y, w, chunk_size=5), td.FiniteDataset(Y, w, chunk_size=5)
    X = jnp.asarray(rng.normal(size=(4, 3)))
    f = lambda d: jax.jit(jax.vmap(lambda d, x: d.denoiser(x, 0.2), (None, 0)))(d, X)  # noqa: E731
    np.testing.assert_allclose(f(ds), f(ref), rtol=1e-13, atol=1e-13)
    g = lambda d: jax.grad(lambda x: d.log_partition(x, 0.7))(X[0])  # noqa: E731
    np.testing.assert_allclose(g(ds), g(ref), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(ds.energy_moments(X[1], 0.4), ref.energy_moments(X[1], 0.4), rtol=1e-12)
    np.testing.assert_allclose(ds.mean(), ref.mean(), atol=1e-14)
    np.testing.assert_allclose(ds.covariance(), ref.covariance(), atol=1e-13)
    np.testing.assert_allclose(ds.points, Y, atol=0)
    assert ShardedDataset.process_rows(23, chunk_size=5) == (0, 23)


def test_bad_input_names_the_argument():
    Y = np.zeros((5, 2))
    cases = [
        (TypeError, "points", lambda: ShardedDataset("abc")),
        (ValueError, "points", lambda: ShardedDataset(np.zeros(5))),
        (ValueError, "points must be finite", lambda: ShardedDataset(np.full((5, 2), np.nan))),
        (ValueError, "weights", lambda: ShardedDataset(Y, -np.ones(5))),
        (ValueError, "weights", lambda: ShardedDataset(Y, np.ones(4))),
        (ValueError, "weights", lambda: ShardedDataset(Y, np.zeros(5))),
        (ValueError, "process_rows", lambda: ShardedDataset(Y, n_points=9)),
        (ValueError, "n_points", lambda: ShardedDataset(Y, n_points=0)),
        (ValueError, "chunk_size", lambda: ShardedDataset(Y, chunk_size=0)),
        (TypeError, "mesh", lambda: ShardedDataset(Y, mesh="data")),
        (ValueError, "mesh must be 1-D", lambda: ShardedDataset(
            Y, mesh=jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("a", "b")))),
        (ValueError, "coordinator_address", lambda: distributed_init("nohost", 2, 0)),
        (ValueError, "process_id", lambda: distributed_init("localhost:1", 2, 2)),
        (ValueError, "num_processes", lambda: distributed_init("localhost:1", 0, 0)),
    ]
    for exc, match, fn in cases:
        with pytest.raises(exc, match=match):
            fn()
