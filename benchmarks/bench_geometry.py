"""Score-Jacobian spectra over a temperature sweep (issue 14, theory section 12).

``geometry``: spectra per second of A = -T grad s = I - Cov[y|x]/T for a finite dataset (N points
of a three-block linear-manifold law) at d = 64 and 784, over a grid of temperatures and states
x = y + sqrt(T) z, by

- ``closed-form``: the exact posterior covariance (two streaming passes) and a dense ``eigh``;
- ``jacfwd``: the denoiser's Jacobian by d JVPs (``jax.jacfwd``) and ``eigh`` (the path of nets);
- ``lanczos``: the k = 10 smallest eigenvalues by Lanczos with full reorthogonalisation from JVPs
  only (default krylov_dim = 2k + 32 = 52), never forming d x d;
- ``fd-svd``: the finite-perturbation estimate of Achilli et al.'s reference code: the score at x
  and at the d points x + eps e_i, a forward-difference Jacobian, its singular values (SVD) times T
  (singular values are |eigenvalues|: a negative eigenvalue comes back with the wrong sign);
  eps = 1e-2 sqrt(T) and 1e-3 sqrt(T).

Accuracy: the largest error of the k = 10 smallest eigenvalues against the exact spectrum computed
in NumPy float64 from the posterior weights (for fd-svd also against the smallest |eigenvalues|,
which is what singular values estimate: the sign of negative eigenvalues is lost). float32
throughout (JAX's default), one jitted ``lax.map`` over all (T, state) pairs per method;
interleaved timing, medians. ``--quick``: N = 256, 4 spectra at d = 64 and 1 at d = 784 (~20 s).
"""

from __future__ import annotations

import numpy as np

from ._common import register, time_interleaved

K_EIG = 10


def _setup(d, n_points, n_T, n_states, seed=0):
    import jax
    import jax.numpy as jnp

    import thermodiff as td
    from thermodiff._ensembles._linear_manifold import block_variances, manifold_points

    n1, n2 = max(1, d // 50), max(1, d // 8)
    v = block_variances([(1.0, n1), (0.1, n2), (0.01, d - n1 - n2)])
    Y = manifold_points(jax.random.key(seed), n_points, v)
    ds = td.FiniteDataset(Y)
    Ts = np.geomspace(0.05, 5.0, n_T) if n_T > 1 else np.array([0.5])
    k1, k2 = jax.random.split(jax.random.key(seed + 1))
    y0 = Y[jax.random.choice(k1, n_points, (n_states,), replace=False)]
    z = jax.random.normal(k2, (n_states, d), Y.dtype)
    X = jnp.concatenate([y0 + np.float32(np.sqrt(T)) * z for T in Ts])
    T_all = jnp.asarray(np.repeat(Ts, n_states), jnp.float32)
    return ds, np.asarray(Y, np.float64), X, T_all


def _exact_smallest(Y64, X, T_all, k):
    """NumPy float64: the k smallest eigenvalues of I - Cov[y|x]/T from the posterior weights, and
    the k smallest of their absolute values (what singular values estimate)."""
    out, out_abs = [], []
    half = 0.5 * np.sum(Y64 * Y64, axis=1)
    for x, T in zip(np.asarray(X, np.float64), np.asarray(T_all, np.float64)):
        logits = (Y64 @ x - half) / T
        w = np.exp(logits - logits.max())
        w /= w.sum()
        c = Y64 - w @ Y64
        C = (c * w[:, None]).T @ c
        lam = np.linalg.eigvalsh(np.eye(len(x)) - C / T)
        out.append(lam[:k])
        out_abs.append(np.sort(np.abs(lam))[:k])
    return np.array(out), np.array(out_abs)


def _programs(k):
    import jax
    import jax.numpy as jnp

    from thermodiff._geometry import score_jacobian_spectrum

    def per_pair(fn):
        return jax.jit(lambda ds, X, T: jax.lax.map(lambda a: fn(ds, a[0], a[1]), (X, T)))

    def fd_svd(rel_eps):
        def one(ds, x, T):
            eps = rel_eps * jnp.sqrt(T)
            pts = jnp.concatenate([x[None, :], x[None, :] + eps * jnp.eye(x.shape[0], dtype=x.dtype)])
            S = jax.vmap(lambda p: ds.score(p, T))(pts)
            J = (S[1:] - S[0][None, :]).T / eps  # J[:, i] = (s(x + eps e_i) - s(x))/eps
            return jnp.sort(jnp.linalg.svd(-T * J, compute_uv=False))[:k]

        return one

    return {
        "closed-form": per_pair(lambda ds, x, T: score_jacobian_spectrum(ds, x, T, method="dense").eigenvalues[:k]),
        "jacfwd": per_pair(lambda ds, x, T: jnp.linalg.eigvalsh(
            jnp.eye(x.shape[0], dtype=x.dtype) - jax.jacfwd(ds.denoiser)(x, T))[:k]),
        "lanczos": per_pair(lambda ds, x, T: score_jacobian_spectrum(ds, x, T, k=k, method="lanczos").eigenvalues),
        "fd-svd eps=1e-2": per_pair(fd_svd(1e-2)),
        "fd-svd eps=1e-3": per_pair(fd_svd(1e-3)),
    }


# (points N, temperatures, states per temperature, timing rounds) per (d, quick)
SIZES = {(64, True): (256, 2, 2, 3), (784, True): (256, 1, 1, 1),
         (64, False): (2048, 8, 4, 7), (784, False): (2048, 8, 2, 3)}


def _one_dim(d, quick):
    import jax

    n_points, n_T, n_states, rounds = SIZES[(d, quick)]
    ds, Y64, X, T_all = _setup(d, n_points, n_T, n_states)
    exact, exact_abs = _exact_smallest(Y64, X, T_all, K_EIG)
    progs = _programs(K_EIG)
    errors, abs_errors = {}, {}
    for name, f in progs.items():  # compiles, checks accuracy, and is the timing's warm-up call
        got = np.asarray(jax.block_until_ready(f(ds, X, T_all)), np.float64)
        errors[name] = float(np.max(np.abs(got - exact)))
        abs_errors[name] = float(np.max(np.abs(got - exact_abs))) if name.startswith("fd") else None
    t = time_interleaved({name: (f, (ds, X, T_all)) for name, f in progs.items()}, rounds=rounds, warmup=0)
    n_spec = X.shape[0]
    rows = []
    for name in progs:
        rate = n_spec / t[name]["median_s"]
        rows.append({"method": name, "spectra/s": rate, "ms/spectrum": 1e3 / rate,
                     "max |err| (10 smallest)": errors[name], "max |err| vs |lambda|": abs_errors[name]})
    rate = {r["method"]: r["spectra/s"] for r in rows}
    for r in rows:
        r["speed vs fd-svd"] = r["spectra/s"] / rate["fd-svd eps=1e-2"]
        r["speed vs closed-form"] = r["spectra/s"] / rate["closed-form"]
    return rows, {"d": d, "n_points": n_points, "temperatures": n_T, "states": n_states, "spectra": n_spec}, t


@register("geometry", description="score-Jacobian spectra per second (d = 64, 784): closed-form, jacfwd, "
                                  "JVP-Lanczos top-10 vs finite-perturbation SVD, with accuracy")
def bench_geometry(quick: bool) -> dict:
    import jax

    if jax.config.jax_enable_x64:
        raise RuntimeError("the geometry benchmark is a float32 benchmark: run it with jax_enable_x64 off")
    tables, configs, timings, summary = {}, {}, {}, {}
    for d in (64, 784):
        rows, cfg, t = _one_dim(d, quick)
        tables[f"d = {d}"] = rows
        configs[d] = cfg
        timings[d] = t
        by = {r["method"]: r for r in rows}
        summary[f"d{d}_lanczos_spectra_per_s"] = by["lanczos"]["spectra/s"]
        summary[f"d{d}_closed_form_spectra_per_s"] = by["closed-form"]["spectra/s"]
        summary[f"d{d}_fd_svd_spectra_per_s"] = by["fd-svd eps=1e-2"]["spectra/s"]
        summary[f"d{d}_lanczos_over_fd_svd"] = by["lanczos"]["speed vs fd-svd"]
        summary[f"d{d}_closed_form_over_fd_svd"] = by["closed-form"]["speed vs fd-svd"]
        summary[f"d{d}_lanczos_max_err"] = by["lanczos"]["max |err| (10 smallest)"]
        summary[f"d{d}_closed_form_max_err"] = by["closed-form"]["max |err| (10 smallest)"]
        summary[f"d{d}_fd_svd_max_err"] = min(by["fd-svd eps=1e-2"]["max |err| (10 smallest)"],
                                              by["fd-svd eps=1e-3"]["max |err| (10 smallest)"])
        summary[f"d{d}_fd_svd_max_err_vs_abs"] = min(by["fd-svd eps=1e-2"]["max |err| vs |lambda|"],
                                                     by["fd-svd eps=1e-3"]["max |err| vs |lambda|"])
    return {
        "summary": summary,
        "tables": tables,
        "config": {"k": K_EIG, "dtype": "float32", "per_dim": configs,
                   "data": "FiniteDataset of N points of LinearManifold blocks (1.0 x d/50, 0.1 x d/8, 0.01 x rest)",
                   "temperatures": "geomspace(0.05, 5, n_T)", "reference": "NumPy float64 posterior covariance"},
        "timings": timings,
        "notes": [
            "spectra/s counts (T, state) pairs; every method runs as one jitted lax.map over them",
            "lanczos: the 10 smallest eigenvalues from 52 JVPs (memory O(52 d)); closed-form and jacfwd "
            "compute all d, fd-svd all d singular values from d + 1 score evaluations",
            "fd-svd is Achilli et al.'s finite-perturbation estimate: forward differences (float32 rounding "
            "~ eps_machine |s| / eps) and singular values, which are |eigenvalues|: states between training "
            "points have negative eigenvalues (negative curvature of the Landau free energy), which the SVD "
            "returns with the wrong sign and order ('max |err| (10 smallest)'); 'max |err| vs |lambda|' "
            "compares with the sorted absolute eigenvalues, the finite-difference error alone",
        ],
    }
