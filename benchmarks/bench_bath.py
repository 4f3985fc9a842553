"""Generative bath Monte Carlo throughput (theory section 7): site updates per second.

thermodiff's ``GenerativeBath.run_chains`` (Gibbs update of x, heat-bath update of every site,
vmapped over temperatures and seeds in one jit) against the same sampler written in vectorised
NumPy (all chains and temperatures as one array per sweep), measured in the same run.
"""

from __future__ import annotations

import numpy as np

from ._common import register, time_interleaved


def _numpy_chains(rng, temps, n_chains, n_sweeps, M):
    """The same Gibbs sampler as GenerativeBath for two deltas +-1, vectorised in NumPy."""
    T = np.asarray(temps, np.float32)[:, None]  # (n_T, 1)
    sites = rng.choice(np.array([-1.0, 1.0], np.float32), size=(len(temps), n_chains, M))
    mags = np.empty((len(temps), n_chains, n_sweeps), np.float32)
    for k in range(n_sweeps):
        mean = sites.mean(-1)
        x = mean + np.sqrt(T / M) * rng.standard_normal(mean.shape, dtype=np.float32)
        p_up = 0.5 * (1.0 + np.tanh(x / T))
        sites = np.where(rng.random(sites.shape, dtype=np.float32) < p_up[..., None], 1.0, -1.0).astype(np.float32)
        mags[..., k] = sites.mean(-1)
    return mags


@register("bath", description="generative bath Monte Carlo: site updates/s, thermodiff vs NumPy")
def bench_bath(quick: bool) -> dict:
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    temps = jnp.array([0.8, 1.0, 1.3], jnp.float32)
    n_chains = 8 if quick else 32
    n_sweeps = 50 if quick else 200
    rows = []
    for M in ((64, 1024) if quick else (64, 1024, 16384)):
        bath = td.GenerativeBath(M, td.TwoDeltas(jnp.float32(1.0)))
        key = jax.random.key(0)
        rng = np.random.default_rng(0)

        def run_td():
            return bath.run_chains(key, temps, n_chains, n_sweeps).magnetization

        def run_np():
            return _numpy_chains(rng, np.asarray(temps), n_chains, n_sweeps, M)

        t = time_interleaved({"thermodiff": (run_td, ()), "numpy": (run_np, ())}, rounds=3 if quick else 5)
        updates = len(temps) * n_chains * n_sweeps * M
        m2_td = float(np.mean(np.asarray(run_td())[1, :, n_sweeps // 4 :] ** 2))
        m2_np = float(np.mean(run_np()[1, :, n_sweeps // 4 :] ** 2))
        exact = float(bath.exact_moments(1.0).m2)
        rows.append(dict(
            M=M, site_updates=updates,
            thermodiff_updates_per_s=updates / t["thermodiff"]["median_s"],
            numpy_updates_per_s=updates / t["numpy"]["median_s"],
            speedup_vs_numpy=t["numpy"]["median_s"] / t["thermodiff"]["median_s"],
            m2_at_Tc_thermodiff=m2_td, m2_at_Tc_numpy=m2_np, m2_at_Tc_exact=exact,
        ))
    best = max(rows, key=lambda r: r["M"])
    return dict(
        table=rows,
        summary=dict(
            M=best["M"],
            thermodiff_updates_per_s=best["thermodiff_updates_per_s"],
            speedup_vs_numpy=best["speedup_vs_numpy"],
            median_speedup_vs_numpy=float(np.median([r["speedup_vs_numpy"] for r in rows])),
        ),
        notes=["float32, two deltas +-1, 3 temperatures x chains x sweeps x M site updates per call",
               "<m^2> at T_c from both samplers vs the exact finite-M value (short runs: a sanity check, not a test)"],
    )
