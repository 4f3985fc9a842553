"""``thermodiff landscape``: the Landau free energy Phi_T(x) along an ensemble's principal axis.

At temperatures around the top covariance eigenvalue (theory section 2), with the minima found
along the axis (a double well is two minima, whatever the symmetry of the data) and the
thermodynamics at the data mean; the figure counts the wells and shows the curvature at the
mean, which decides the question only for symmetric data.
"""

from __future__ import annotations

import math

import numpy as np


def landscape(args, build_ensemble, floats, progress=None) -> dict:
    """Phi_T along the principal axis of the ensemble of ``args`` at each temperature, its minima
    along the axis, and the thermodynamics at the data mean."""
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    jax.config.update("jax_enable_x64", True)
    ens = build_ensemble(args)
    mean = np.asarray(ens.mean())
    cov = np.asarray(ens.covariance())
    evals, evecs = np.linalg.eigh(cov)
    lam, v = float(evals[-1]), evecs[:, -1]
    if not (np.all(np.isfinite(cov)) and math.isfinite(lam) and lam < 1e100):
        raise ValueError(f"the ensemble's covariance is not finite in float64 (top eigenvalue {lam:.3g}): its "
                         "parameters or data must stay below about 1e50 in magnitude")
    if args.temperatures:
        temps = floats(args.temperatures, "--temperatures")
        if min(temps) <= 0 or not all(math.isfinite(t) for t in temps):
            raise ValueError("--temperatures must be finite and > 0 (VE-equivalent noise variances)")
    else:
        scale = lam if lam > 0 else 1.0
        temps = [scale * f for f in (2.0, 1.25, 1.0, 0.75, 0.5, 0.25)]
    half = 2.0 * math.sqrt(max(lam, 1e-12)) + 1.0
    s = np.linspace(-half, half, args.points)
    xs = jnp.asarray(mean[None, :] + s[:, None] * v[None, :])
    x0 = jnp.asarray(mean)
    v_j = jnp.asarray(v)

    from ._phase_diagram import batched_vmap, map_batch, state_bytes

    batch = map_batch(len(s), state_bytes(ens, matrices=False))  # bounded memory for large data

    @jax.jit
    def at_temperature(T):
        phi = batched_vmap(lambda x: ens.landau(x, T), xs, batch) - ens.landau(x0, T)
        cov0 = ens.posterior_cov(x0, T)
        return dict(
            phi=phi,
            curvature=1.0 - (v_j @ cov0 @ v_j) / T,
            chi0=jnp.max(jnp.linalg.eigvalsh(cov0)) / T,
            F=td.free_energy(ens, T, x0), S=td.entropy(ens, T, x0), C=td.heat_capacity(ens, T, x0),
        )

    rows = []
    if progress is not None:
        progress.stage("free-energy landscapes")
    for i, T in enumerate(temps):
        out = {k: np.asarray(val) for k, val in at_temperature(jnp.asarray(T)).items()}
        phi = out["phi"]
        interior = np.where((phi[1:-1] < phi[:-2]) & (phi[1:-1] <= phi[2:]))[0] + 1
        rows.append(dict(
            T=T, phi=phi.tolist(), minima=[float(s[i]) for i in interior],
            curvature_at_mean=float(out["curvature"]), bare_susceptibility_at_mean=float(out["chi0"]),
            free_energy_at_mean=float(out["F"]), entropy_at_mean=float(out["S"]),
            heat_capacity_at_mean=float(out["C"]),
        ))
        if progress is not None:
            progress.update(i + 1, len(temps))
    for r in rows:
        if not all(math.isfinite(val) for val in r["phi"]):
            raise ValueError(f"non-finite free energy at T={r['T']}: the ensemble parameters are too large for float64")
    from ._phase_diagram import _clean

    return _clean(dict(  # JSON-safe: a non-finite value at the mean (e.g. C at a degenerate T) is null
        ensemble=args.ensemble, dim=int(ens.dim), convention="T = VE-equivalent noise variance (theory 1)",
        top_covariance_eigenvalue=lam, axis=v.tolist(), s=s.tolist(), temperatures=rows,
    ))


def plot_landscape(result) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._io import figure_bytes

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    cmap = plt.get_cmap("coolwarm")
    rows = result["temperatures"]
    for i, r in enumerate(rows):
        ax.plot(result["s"], r["phi"], color=cmap(i / max(1, len(rows) - 1)), label=f"T = {r['T']:.3g}")
    ax.set_xlabel("position along the principal axis (data units)")
    ax.set_ylabel(r"$\Phi_T(x) - \Phi_T(\bar y)$")
    ax.set_title(f"Landau free energy, {result['ensemble']} (d = {result['dim']})")
    ax.legend(fontsize=8)
    T = [r["T"] for r in rows]
    bx.plot(T, [len(r["minima"]) for r in rows], "o-", color="k", label="minima of Phi_T along the axis")
    bx.set_ylabel("number of minima along the axis")
    bx.set_yticks(range(0, max(len(r["minima"]) for r in rows) + 2))
    bx.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    bx.set_xticks(T, [f"{t:.3g}" for t in T], fontsize=7)
    bx.xaxis.set_minor_formatter(NullFormatter())
    bx.set_xlabel("T (VE noise variance, data units)")
    cx = bx.twinx()
    curv = [np.nan if r["curvature_at_mean"] is None else r["curvature_at_mean"] for r in rows]
    cx.plot(T, curv, "s--", color="C1", ms=4,
            label=r"curvature $1 - v^\top C v / T$ at the mean")
    cx.axhline(0, color="C1", lw=0.6)
    cx.set_ylabel("curvature at the data mean (< 0: unstable there)", color="C1")
    bx.set_title("Wells: counted along the axis (the curvature test\nat the mean only decides for symmetric data)", fontsize=9)
    h1, l1 = bx.get_legend_handles_labels()
    h2, l2 = cx.get_legend_handles_labels()
    bx.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    data = figure_bytes(fig)
    plt.close(fig)
    return data


__all__ = ["landscape", "plot_landscape"]
