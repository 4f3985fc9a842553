"""Exact scores at dataset scale (theory section 14): one benchmark, ``scale``, in four parts.

- ``certified``: full 200-step reverse trajectories with the certified sublinear denoiser
  (``td.CertifiedDataset``) against the dense streaming one, on clustered and isotropic data at
  N = 60k and 10^6 (d = 64) and N = 50k, d = 3072 (CIFAR shape); whole-trajectory and per-step
  speedups, fallback fractions, peak memory (``benchmarks/_scale_certified.py``).
- ``distributed``: two ``jax.distributed`` processes on localhost against one, same dataset and
  keys: throughput ratio and peak memory per process (``benchmarks/_scale_distributed.py``).
- ``sweep``: a 10^4-temperature mean-field sweep (fixed point, chi, C) as one plain ``jax.vmap``
  against the best blocked ``jax.lax.map`` (``benchmarks/_scale_sweep.py``).
- ``approx``: what exactness costs: the k-nearest-points and Gaussian denoisers' measured errors
  and speeds against the exact one (``benchmarks/_scale_approx.py``).

Each part returns its own summary (keys prefixed with the part's name), tables and notes; the
parts run one after another in this process (the distributed part spawns its own workers), so
each part's ratios are measured within the part, in the same run.
Run ``python -m benchmarks --only scale`` (``--quick`` for a smoke run, ``--platform gpu`` on a GPU).
"""

from __future__ import annotations

import importlib
import time

from ._common import register

PARTS = ("certified", "distributed", "sweep", "approx")


def _part(name: str, quick: bool) -> dict:
    mod = importlib.import_module(f"{__package__}._scale_{name}")
    t0 = time.perf_counter()
    out = mod.run(quick)
    out.setdefault("config", {})["wall_s"] = time.perf_counter() - t0
    return out


@register("scale", description="exact scores at dataset scale: certified sublinear denoiser vs dense, "
                               "2 processes vs 1, vmapped vs blocked 10^4-T sweeps, k-NN/Gaussian errors")
def bench_scale(quick: bool) -> dict:
    summary, tables, notes, configs = {}, {}, [], {}
    for name in PARTS:
        out = _part(name, quick)
        for k, v in out.get("summary", {}).items():
            summary[k if k.startswith(name) else f"{name}_{k}"] = v
        for title, rows in out.get("tables", {}).items():
            tables[f"{name}: {title}"] = rows
        notes += [f"{name}: {n}" for n in out.get("notes", [])]
        configs[name] = out.get("config", {})
    return {"summary": summary, "tables": tables, "notes": notes, "config": configs}
