"""What exactness costs: k-NN and Gaussian denoisers against the exact one (issue 15, item 4).

Part of the ``scale`` benchmark (``bench_scale.py`` calls ``run``). Two datasets of N points in
d dimensions (full: N = 60000, d = 64; quick: N = 4096, d = 16), float32 (JAX's default):

- ``clusters``: 1000 (quick: 128) cluster centres ~ N(0, I_d), each point a centre plus
  N(0, 0.1^2 I_d) (structure like real data: tight groups far apart);
- ``gaussian``: isotropic N(0, I_d) (no structure; the worst case for a sparse posterior).

For each, ``td``'s ``approximation_error`` of the k-NN denoiser (``KNearestDataset``, k = 1, 16,
256) and the Gaussian denoiser (``gaussian_approximation``) against the exact ``FiniteDataset``,
on a temperature grid from deep in the memorised phase to well above speciation, with the same
states (same key) for every approximation. Errors: ``relative_loss`` = excess / irreducible
denoising loss, ``relative_score`` = E|s_approx - s|^2 / E|s|^2, and the fraction of states where
the k-NN set drops posterior mass > 1e-6. From them: the temperature where each approximation's
relative error first exceeds 1e-3 and 1e-2 (k-NN: going up in T; Gaussian: going down in T).

Cost: states per second of each denoiser on one batch of B states (jit(vmap)), timed in
shuffled interleaved rounds against the dense exact denoiser, so the ratios come from one run.
"""

from __future__ import annotations

import time

import numpy as np

from ._common import time_interleaved

LEVELS = (1e-3, 1e-2)
KS = (1, 16, 256)


def _datasets(quick: bool):
    import jax
    import jax.numpy as jnp

    n, d, n_centres = (4096, 16, 128) if quick else (60000, 64, 1000)
    k1, k2, k3, k4 = jax.random.split(jax.random.key(15), 4)
    centres = jax.random.normal(k1, (n_centres, d))
    labels = jax.random.randint(k2, (n,), 0, n_centres)
    clusters = centres[labels] + 0.1 * jax.random.normal(k3, (n, d))
    gauss = jax.random.normal(k4, (n, d))
    return {"clusters": jnp.asarray(clusters), "gaussian": jnp.asarray(gauss)}, n, d


def _approximations(exact):
    from thermodiff._approx_scores import gaussian_approximation
    from thermodiff._ensembles._knn import KNearestDataset

    out = {f"knn{k}": KNearestDataset(exact, k=k) for k in KS if k <= exact.n_points}
    out["gaussian"] = gaussian_approximation(exact)
    return out


def _threshold(res, level: float, column: str, increasing: bool):
    """The T where the error first exceeds ``level``: going up in T (k-NN) or down (Gaussian).

    "never" when it stays below on the whole grid, "always" when it is above everywhere."""
    v, T = np.asarray(res.columns[column]), res.temperatures
    bad = ~(v <= level)
    if not bad.any():
        return "never"
    if bad.all():
        return "always"
    cross = res.crossings(level, column)
    if not cross:
        return "always"
    return float(min(cross) if increasing else max(cross))


def _errors(name, Y, quick, n_states):
    import jax

    import thermodiff as td
    from thermodiff._approx_scores import approximation_error

    exact = td.FiniteDataset(Y)
    Ts = np.geomspace(1e-3, 1e2, 8 if quick else 13)
    rows, summary, t0 = [], {}, time.perf_counter()
    for label, approx in _approximations(exact).items():
        res = approximation_error(approx, exact, Ts, key=jax.random.key(0), n_states=n_states)
        for r in res.table():
            rows.append({"data": name, "approx": label, "T": r["T"], "relative_loss": r["relative_loss"],
                         "relative_loss_se": r["relative_loss_stderr"], "relative_score": r["relative_score"],
                         "rms": r["rms"], "dropped_fraction": r["dropped_fraction"],
                         "irreducible": r["irreducible"]})
        up = label != "gaussian"
        for level in LEVELS:
            for col in ("relative_loss", "relative_score"):
                summary[f"{name}_{label}_{col}_T_exceeds_{level:g}"] = _threshold(res, level, col, up)
    return rows, summary, time.perf_counter() - t0


def _costs(name, Y, batch, rounds):
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    exact = td.FiniteDataset(Y)
    models = {"exact": exact, **_approximations(exact)}
    X = Y[:batch] + 0.3 * jax.random.normal(jax.random.key(1), (batch, Y.shape[1]))
    T = jnp.asarray(0.3, Y.dtype)
    fn = jax.jit(lambda ens, X, T: jax.vmap(lambda x: ens.denoiser(x, T))(X))
    cases = {k: (fn, (m, X, T)) for k, m in models.items()}
    stats = time_interleaved(cases, rounds=rounds)
    base = stats["exact"]["median_s"]
    rows = [{"data": name, "denoiser": k, "median_s": s["median_s"], "iqr_s": s["iqr_s"],
             "states_per_s": batch / s["median_s"], "speed_vs_exact": base / s["median_s"]}
            for k, s in stats.items()]
    return rows


def run(quick: bool) -> dict:
    """The approximation part of the scale benchmark (module doc). ``quick``: N = 4096, d = 16."""
    import jax

    datasets, n, d = _datasets(quick)
    n_states, batch, rounds = (64, 256, 5) if quick else (96, 512, 7)
    err_rows, cost_rows, summary, walls = [], [], {}, {}
    for name, Y in datasets.items():
        rows, s, wall = _errors(name, Y, quick, n_states)
        err_rows += rows
        summary.update({f"approx_{k}": v for k, v in s.items()})
        walls[name] = wall
        cost_rows += _costs(name, Y, batch, rounds)
    for r in cost_rows:
        summary[f"approx_{r['data']}_{r['denoiser']}_states_per_s"] = r["states_per_s"]
        if r["denoiser"] != "exact":
            summary[f"approx_{r['data']}_{r['denoiser']}_speed_vs_exact"] = r["speed_vs_exact"]
    notes = [
        "relative_loss = E|m_approx - m|^2 / E tr Cov[y|x] (excess over irreducible denoising loss, theory 10); "
        "relative_score = E|m_approx - m|^2 / E|x - m|^2 (relative squared score error); states x = y + sqrt(T) z, "
        "y from the data, the same states for every approximation.",
        "T_exceeds_L: k-NN, the lowest T where the error exceeds L (exact below it); Gaussian, the highest T where "
        "it exceeds L (good above it); 'never'/'always' on the whole grid [1e-3, 1e2].",
        "Costs: one jit(vmap) batch of states at T = 0.3, interleaved rounds; the k-NN pass streams the same chunks "
        "as the exact one (GEMM for the logits, then lax.top_k instead of exp + GEMV), so it is not cheaper per "
        "state without an index: its value is the error it measures, the sublinear path is the certified denoiser.",
    ]
    return {
        "summary": summary,
        "tables": {"approximation error": err_rows, "approximation cost": cost_rows},
        "config": {"N": n, "d": d, "ks": list(KS), "levels": list(LEVELS), "n_states": n_states,
                   "batch": batch, "rounds": rounds, "dtype": "float32", "device": str(jax.devices()[0]),
                   "error_wall_s": walls},
        "notes": notes,
    }
