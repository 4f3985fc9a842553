"""Scale benchmark, part "distributed": two processes against one on the same dataset (issue 15).

Three configurations of the same N x d N(0, I) float32 dataset (rows generated block by block,
so every process makes only its own rows), each in fresh worker processes
(tests/_distributed_worker.py, ``--mode bench``):

- ``plain_1proc``: one process, a plain ``FiniteDataset`` (today's path);
- ``sharded_1proc``: one process, a ``ShardedDataset`` on its one device (the shard_map and
  merge overhead alone);
- ``sharded_2proc``: two processes joined by ``jax.distributed`` on localhost (gloo
  collectives on CPU), each holding half of the rows.

Each worker times a batch of ``batch`` states through a ``steps``-step Euler-Maruyama
trajectory (``td.sample`` under jit(vmap)) and a denoiser throughput loop (one vmapped
denoiser call over the batch), median of ``repeats`` after a compile call, and reports its
peak RSS (``getrusage``), its RSS before loading data, and the bytes of dataset it holds. The
configurations run in rounds (plain, sharded 1, sharded 2, then again) so that machine noise
hits them alike; the ratios are of the medians over rounds. The final states of the
2-process run are compared with the plain run (same keys).

On a GPU host with >= 2 GPUs the workers use one GPU each; otherwise they run on CPU (one
device per process) and the device is recorded.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "_distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _platform() -> tuple[str, int]:
    import jax

    backend = jax.default_backend()
    if backend != "cpu" and jax.local_device_count() >= 2:
        return backend, jax.local_device_count()
    return "cpu", 0


def _launch(out: str, nproc: int, plain: bool, cfg: dict, platform: str, timeout: float) -> list[dict]:
    port = _free_port()
    procs = []
    for pid in range(nproc):
        env = dict(os.environ, JAX_PLATFORMS=platform, PYTHONPATH=ROOT)
        env.pop("XLA_FLAGS", None)
        if platform != "cpu":
            env["CUDA_VISIBLE_DEVICES"] = str(pid)
        args = [sys.executable, WORKER, "--mode", "bench", "--out", out, "--nproc", str(nproc), "--pid", str(pid),
                "--port", str(port), "--deadline", str(timeout), "--platform", platform]
        args += [f"--{k}={v}" for k, v in cfg.items()] + (["--plain"] if plain else [])
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    errs = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        errs.append(err)
    res = []
    for pid, (p, err) in enumerate(zip(procs, errs)):
        if p.returncode != 0:
            raise RuntimeError(f"worker {pid} of {nproc} failed (rc {p.returncode}): {err[-1500:]}")
        with open(os.path.join(out, f"bench_{pid}.json")) as f:
            res.append(json.load(f))
    return res


def run(quick: bool) -> dict:
    import tempfile

    import numpy as np

    from benchmarks._common import env_info

    cfg = (dict(n=20_000, d=64, batch=16, steps=5, repeats=2) if quick
           else dict(n=200_000, d=64, batch=64, steps=10, repeats=5))
    rounds = 1 if quick else 2
    platform, _ = _platform()
    configs = {"plain_1proc": (1, True), "sharded_1proc": (1, False), "sharded_2proc": (2, False)}
    per: dict[str, list[list[dict]]] = {k: [] for k in configs}
    finals: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for name, (nproc, plain) in configs.items():
                out = os.path.join(tmp, name)
                os.makedirs(out, exist_ok=True)
                per[name].append(_launch(out, nproc, plain, cfg, platform, 300.0))
                finals[name] = np.load(os.path.join(out, "bench_0.npy"))
    rows = []
    med = {}
    for name, runs in per.items():
        sampler = statistics.median(max(w["sampler_s"] for w in r) for r in runs)
        denoiser = statistics.median(max(w["denoiser_s"] for w in r) for r in runs)
        med[name] = (sampler, denoiser)
        for w in runs[-1]:
            rows.append({
                "config": name, "process": w["pid"], "sampler_s": sampler,
                "sampler_states_steps_per_s": cfg["batch"] * cfg["steps"] / sampler,
                "denoiser_s": denoiser, "denoiser_states_per_s": cfg["batch"] / denoiser,
                "maxrss_mb": w["maxrss_mb"], "rss_before_data_mb": w["rss_before_data_mb"],
                "dataset_mb_held": w["dataset_bytes_held"] / 2**20, "device": w["device"],
            })
    two = [w for w in per["sharded_2proc"][-1]]
    one = per["plain_1proc"][-1][0]
    dev = float(np.max(np.abs(finals["sharded_2proc"] - finals["plain_1proc"])))
    scale = float(np.max(np.abs(finals["plain_1proc"])))
    summary = {
        "distributed_sampler_speedup_2proc_vs_plain": med["plain_1proc"][0] / med["sharded_2proc"][0],
        "distributed_denoiser_speedup_2proc_vs_plain": med["plain_1proc"][1] / med["sharded_2proc"][1],
        "distributed_sampler_overhead_sharded1_vs_plain": med["sharded_1proc"][0] / med["plain_1proc"][0],
        "distributed_dataset_mb_per_process_2proc": max(w["dataset_bytes_held"] for w in two) / 2**20,
        "distributed_dataset_mb_1proc": one["dataset_bytes_held"] / 2**20,
        "distributed_maxrss_mb_per_process_2proc": max(w["maxrss_mb"] for w in two),
        "distributed_maxrss_mb_1proc": one["maxrss_mb"],
        "distributed_max_abs_dev_2proc_vs_plain": dev,
        "distributed_max_abs_state": scale,
    }
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    notes = [
        f"workers on {platform} ({one['device']}); {cores} CPU cores visible; each CPU worker has one device; "
        f"load average at the end {os.getloadavg()[0]:.1f} (other jobs on the machine add noise to every ratio). "
        "Two processes split the O(N d) work of every denoiser call in halves. On one machine this helps only "
        "as far as one XLA:CPU process leaves cores idle: the streamed chunk loop (a scan of batch x chunk "
        "GEMMs) runs largely on one core per process, so on 2 cores two processes can approach 2x; where one "
        "process already saturates the cores, expect about 1x minus two small all-reduces per denoiser call. "
        "The point of sharding is memory (each process holds 1/P of the points) and hosts: on P hosts or GPUs "
        "the per-step time divides by P up to the all-reduce latency.",
        "maxrss includes the Python + JAX + XLA runtime (rss_before_data_mb) and compiled programs; the dataset "
        "itself is dataset_mb_held (half per process with two).",
        f"final states of the 2-process run vs the plain run (same keys): max |diff| = {dev:.3g} on states of "
        f"size {scale:.3g} (float32 rounding of the reduction order).",
    ]
    return {
        "summary": summary,
        "tables": {"distributed: one vs two processes": rows},
        "config": dict(cfg, rounds=rounds, platform=platform, wall_s=time.perf_counter() - t0),
        "notes": notes,
        "env": env_info(),
    }
