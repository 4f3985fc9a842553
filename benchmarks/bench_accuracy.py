"""Accuracy of the samplers against exact samples: error versus score evaluations (theory section 6).

``accuracy``
    Issue: "for a 2-component GaussianMixture in low d, error versus number of score evaluations
    for each solver and grid (uniform, Karras, critical-aware with T_c the mixture's speciation
    point): class balance error |frac - w| and sliced Wasserstein-2 against exact samples. The
    critical-aware grid must beat the uniform and Karras grids at 10-20 evaluations."

    Data: pi_1 N(mu, s^2 I) + pi_2 N(-mu, s^2 I) in d = 2, |mu| = 2, s^2 = 0.25, weights
    (0.3, 0.7) (asymmetric: with equal weights the class balance is exact for every grid by
    symmetry). Speciation point T_c = |mu|^2 - s^2 = 3.75 (theory 3.3; the thermodynamic T_c of the
    equal-weight pair, checked against ``td.critical_temperature``). Schedule ``td.VP()`` from
    its top (x_T ~ N(0, I)) to T_end = 1e-3; grids ``UniformGrid()`` (uniform in the VP time),
    ``KarrasGrid()`` (rho = 7), ``CriticalGrid(T_c)`` (defaults), and, for reference, the former
    defaults ``CriticalGrid(T_c, width=0.5, fraction=0.5, skew=0)``. Each (solver, steps) is one
    jit, vmapped over the grids, with the same keys and initial states for every grid (common
    random numbers: grid differences are less noisy than each error).

    Metrics: class balance error frac - P_exact, frac the share of samples with x.mu > 0 and
    P_exact = pi_1 Phi(|mu|/sigma) + pi_2 Phi(-|mu|/sigma), sigma^2 = s^2 + T_end, the exact
    probability of that event under p_{T_end} (differs from pi_1 by 1e-15), with its Monte Carlo
    standard error sqrt(P(1 - P)/n); sliced Wasserstein-2 to exact samples of p_{T_end}
    (``ensemble.sample`` plus N(0, T_end) noise, scaled by theta), next to that of a second exact
    sample (the Monte Carlo floor). Evaluations = steps x the solver's evaluations per step.

Run ``python -m benchmarks --only accuracy`` (``--quick``: 2 solvers, NFE 10 and 20, n = 4000).
"""

from __future__ import annotations

import math

import numpy as np

from ._common import register

A, S2, W1, DIM = 2.0, 0.25, 0.3, 2
T_END = 1e-3


class SlicedW2:
    """Sliced Wasserstein-2 to a fixed reference sample of the same size: random unit directions
    (fixed seed), sorted projections; the reference's sorted projections are computed once."""

    def __init__(self, ref: np.ndarray, n_proj: int = 64, seed: int = 0):
        rng = np.random.default_rng(seed)
        v = rng.standard_normal((ref.shape[1], n_proj))
        self.v = v / np.linalg.norm(v, axis=0, keepdims=True)
        self.ref = np.sort(ref.astype(np.float64) @ self.v, axis=0)

    def __call__(self, a: np.ndarray) -> float:
        pa = np.sort(a.astype(np.float64) @ self.v, axis=0)
        return float(np.sqrt(np.mean((pa - self.ref) ** 2)))


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@register("accuracy", description="error vs score evaluations per solver and grid (2-component mixture, class balance, sliced W2)")
def bench_accuracy(quick: bool) -> dict:
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    n = 4000 if quick else 200_000
    nfes = [10, 20] if quick else [6, 10, 14, 20, 40, 80]
    solvers = {
        "EulerMaruyama": td.EulerMaruyama(),
        "StochasticHeun": td.StochasticHeun(),
        "PF-Euler": td.ProbabilityFlowEuler(),
        "PF-Heun": td.ProbabilityFlowHeun(),
        "DDIM(0)": td.DDIM(0.0),
        "DDIM(1)": td.DDIM(1.0),
        "ExponentialEuler": td.ExponentialEuler(),
    }
    if quick:
        solvers = {k: solvers[k] for k in ("EulerMaruyama", "DDIM(1)")}

    mu = np.zeros(DIM, np.float32)
    mu[0] = A
    ens = td.GaussianMixture(jnp.asarray(np.stack([mu, -mu])), S2, jnp.asarray([W1, 1 - W1], jnp.float32))
    T_c = A * A - S2
    # the library's thermodynamic T_c of the equal-weight pair (a root search: skipped in quick mode)
    T_c_lib = None if quick else float(td.critical_temperature(td.GaussianMixture(jnp.asarray(np.stack([mu, -mu])), S2)))
    grids = {
        "uniform": td.UniformGrid(),
        "karras": td.KarrasGrid(),
        "critical": td.CriticalGrid(T_c),
        "critical_old_defaults": td.CriticalGrid(T_c, width=0.5, fraction=0.5, skew=0.0),
    }
    sched = td.VP()
    t_end = sched.time_at_temperature(T_END)
    theta_end = float(sched.signal_scale(t_end))
    sigma = math.sqrt(S2 + T_END)
    p_exact = W1 * _phi(A / sigma) + (1 - W1) * _phi(-A / sigma)
    se = math.sqrt(p_exact * (1 - p_exact) / n)

    kx, ks, ke1, ke2, kn1, kn2 = jax.random.split(jax.random.key(0), 6)
    x0 = jax.random.normal(kx, (n, DIM), jnp.float32)  # N(0, I): the VP top (theta^2 ~ 4.5e-5)
    keys = jax.random.split(ks, n)

    @jax.jit
    def _exact(k1, k2):
        y = ens.sample(k1, n)
        return theta_end * (y + math.sqrt(T_END) * jax.random.normal(k2, y.shape, y.dtype))

    def exact(k1, k2):
        return np.asarray(_exact(k1, k2))

    ref, ref2 = exact(ke1, kn1), exact(ke2, kn2)
    sliced_w2 = SlicedW2(ref)
    swd_floor = sliced_w2(ref2)

    results = []
    for nfe in nfes:
        for sname, solver in solvers.items():
            steps = max(1, nfe // solver.evaluations)

            @jax.jit
            def run(solver=solver, steps=steps):
                # the grids' times (float32), then every grid in one vmap
                tss = jnp.stack([td.time_grid(sched, steps, g, T_end=T_END) for g in grids.values()]).astype(jnp.float32)
                return jax.vmap(lambda ts: jax.vmap(lambda k, x: td.sample(ens, sched, solver, k, x, ts=ts))(keys, x0))(tss)

            out = np.asarray(run())
            for gi, gname in enumerate(grids):
                x = out[gi]
                finite = bool(np.all(np.isfinite(x)))
                frac = float(np.mean(x @ mu > 0))
                results.append(
                    {
                        "nfe": steps * solver.evaluations,
                        "nfe_target": nfe,
                        "solver": sname,
                        "grid": gname,
                        "steps": steps,
                        "class_fraction": frac,
                        "class_error": frac - p_exact,
                        "class_stderr": se,
                        "swd": sliced_w2(x) if finite else float("inf"),
                        "finite": finite,
                    }
                )

    # --- tables and the headline comparison
    def err(nfe, s, g, key="class_error"):
        for r in results:
            if r["nfe_target"] == nfe and r["solver"] == s and r["grid"] == g:
                return r[key]
        return None

    rows_class, rows_swd = [], []
    for nfe in nfes:
        for s in solvers:
            rows_class.append({"NFE": nfe, "solver": s, **{g: 1e3 * err(nfe, s, g) for g in grids}})
            rows_swd.append({"NFE": nfe, "solver": s, **{g: err(nfe, s, g, "swd") for g in grids}})
        rows_class.append({"NFE": nfe, "solver": "mean |error|", **{g: 1e3 * np.mean([abs(err(nfe, s, g)) for s in solvers]) for g in grids}})
        rows_swd.append({"NFE": nfe, "solver": "mean", **{g: np.mean([err(nfe, s, g, "swd") for s in solvers]) for g in grids}})

    window = [v for v in nfes if 10 <= v <= 20]
    verdict = {}
    for nfe in window:
        mean_abs = {g: float(np.mean([abs(err(nfe, s, g)) for s in solvers])) for g in grids}
        wins = sum(
            abs(err(nfe, s, "critical")) < min(abs(err(nfe, s, "uniform")), abs(err(nfe, s, "karras"))) for s in solvers
        )
        # a win beyond Monte Carlo noise: the paired difference exceeds 2 sqrt(2) se
        clear_wins = sum(
            min(abs(err(nfe, s, "uniform")), abs(err(nfe, s, "karras"))) - abs(err(nfe, s, "critical")) > 2 * math.sqrt(2) * se
            for s in solvers
        )
        clear_losses = sum(
            abs(err(nfe, s, "critical")) - min(abs(err(nfe, s, "uniform")), abs(err(nfe, s, "karras"))) > 2 * math.sqrt(2) * se
            for s in solvers
        )
        verdict[nfe] = {
            "mean_abs_class_error": mean_abs,
            "critical_beats_both_on_mean": mean_abs["critical"] < min(mean_abs["uniform"], mean_abs["karras"]),
            "solvers_where_critical_is_best_of_three": wins,
            "clear_wins": clear_wins,
            "clear_losses": clear_losses,
            "mean_swd": {g: float(np.mean([err(nfe, s, g, "swd") for s in solvers])) for g in grids},
        }
    summary = {
        "n_samples": n,
        "class_stderr": se,
        "T_c": T_c,
        "T_c_library": T_c_lib,
        "swd_mc_floor": swd_floor,
        "critical_beats_uniform_and_karras_10_20": all(v["critical_beats_both_on_mean"] for v in verdict.values()),
    }
    for nfe, v in verdict.items():
        for g in ("uniform", "karras", "critical", "critical_old_defaults"):
            summary[f"nfe{nfe}_mean_abs_class_error_{g}"] = v["mean_abs_class_error"][g]
        summary[f"nfe{nfe}_critical_best_solvers"] = v["solvers_where_critical_is_best_of_three"]
    notes = [
        f"class error x 1e3 (Monte Carlo standard error {1e3 * se:.2f} x 1e-3 per entry; grids share keys, so "
        "differences between grids are less noisy); sliced W2 floor (exact vs exact) "
        f"{swd_floor:.4g}",
        f"T_c = |mu|^2 - s^2 = {T_c:g}; td.critical_temperature of the equal-weight pair: "
        + ("(skipped in quick mode)" if T_c_lib is None else f"{T_c_lib:.6g}"),
    ]
    for nfe, v in verdict.items():
        m = v["mean_abs_class_error"]
        notes.append(
            f"NFE {nfe}: mean |class error| x1e3 uniform {1e3 * m['uniform']:.2f}, karras {1e3 * m['karras']:.2f}, "
            f"critical {1e3 * m['critical']:.2f} (old defaults {1e3 * m['critical_old_defaults']:.2f}); critical best of the "
            f"three for {v['solvers_where_critical_is_best_of_three']}/{len(solvers)} solvers "
            f"({v['clear_wins']} beyond 2 sqrt(2) se, {v['clear_losses']} clearly worse)"
        )
    return {
        "config": {
            "mixture": {"mu_norm": A, "variance": S2, "weights": [W1, 1 - W1], "dim": DIM},
            "schedule": "td.VP()",
            "T_end": T_END,
            "n_samples": n,
            "nfes": nfes,
            "solvers": list(solvers),
            "grids": {k: repr(v) for k, v in grids.items()},
            "P_exact": p_exact,
            "dtype": "float32",
        },
        "results": results,
        "verdict": {str(k): v for k, v in verdict.items()},
        "summary": summary,
        "tables": {
            "class balance error x 1e3 (frac - P_exact)": rows_class,
            "sliced W2 to exact samples": rows_swd,
        },
        "notes": notes,
    }
