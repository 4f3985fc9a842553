"""``thermodiff analyze``: where a dataset speciates and where it memorises (theory sections 3, 6, 9).

One pass over a dataset (the embedded UCI digits by default) that answers the practitioner's two
questions before any training: at which noise level does a diffusion model commit to a class
(speciation), and below which does it start to reproduce training points (memorization)? Each
question gets one headline answer with an uncertainty, chosen by a stated rule, and the other
estimators as supporting evidence:

1. units: the data are mapped to the chosen scale ([-1, 1] by default, as images are trained);
   every temperature is reported in those units, in the data's own units and as schedule times;
2. spectrum: the leading eigenvalues of the data covariance (randomized for large d);
3. classes: given labels, or inferred by k-means with the gap statistic;
4. speciation predicted: Biroli et al.'s T_S = Lambda - 1 and the exact first split of the
   empirical law (in the leading principal subspace for large d, with the restriction's error);
5. memorization predicted: the REM threshold and the zero of the excess entropy;
6. cloning curve phi(T) simulated with the exact empirical score: the speciation headline;
7. trajectories: posterior condensation, settling and closeness to training points: the
   memorization headline.

Temperatures are VE-equivalent noise variances (theory section 1).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._progress import Progress

STAGES = ("spectrum", "classes", "speciation", "memorization prediction", "cloning curve", "trajectories", "geometry",
          "train probe", "figures")
N_BOOT = 200  # bootstrap resamples behind every headline uncertainty


def _f(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def conventions(T: float | None, scale) -> dict:
    """A temperature of the scaled data with its data-unit value and schedule times (theory 1)."""
    from ._units import noise_conventions

    if T is None or not math.isfinite(T) or T <= 0:
        return dict(T=None, T_data=None, ou_t=None, vp_t=None, ddpm_step=None, abar=None)
    nl = noise_conventions(T)
    return dict(T=float(T), T_data=float(scale.temperature_to_data_units(T)), ou_t=_f(nl.ou_t), vp_t=_f(nl.vp_t),
                ddpm_step=_f(nl.ddpm_step), abar=_f(nl.abar))


def _estimate(formula: str, T, scale, stderr=None, **extra) -> dict:
    out = dict(formula=formula, **conventions(T, scale))
    if stderr is not None and out["T"] is not None:
        out["stderr"] = float(stderr)
        out["stderr_data"] = float(stderr) / scale.a**2
    out.update(extra)
    return out


@dataclasses.dataclass
class _Data:
    X: np.ndarray  # scaled data, float32 or float64
    scale: object  # DataScale
    labels: np.ndarray  # 0..C-1
    classes: list  # original label values
    class_info: dict
    ens: object  # FiniteDataset
    sampler_ens: object = None  # what the simulations sample with: ens, or its CertifiedDataset


def analyze(X: np.ndarray, labels: np.ndarray | None, *, seed: int = 0, quick: bool = False, scale: str = "minus-one-one",
            progress: Progress | None = None, name: str = "data", model=None, model_train=None,
            model_info: dict | None = None, rate: float | None = None,
            subspace_split: bool | None = None, target_temperature: float | None = None,
            train_probe=None, certified: bool = False) -> tuple[dict, dict]:
    """Run the whole analysis; returns (results for results.json, {filename: png bytes}).

    **Arguments:**
    - ``X``: the raw data (N, d), N >= 2; ``labels``: integer labels (N,) or None (inferred).
    - ``seed``: PRNG seed; ``quick``: smaller sample sizes (a smoke run).
    - ``scale``: data scale of the analysis, one of ``td.DATA_SCALES`` (``"minus-one-one"``:
      x -> 2 (x - min)/(max - min) - 1, as image diffusion models are trained).
    - ``model``: a trained network (acting on the raw data units) to simulate beside the exact
      score; ``model_train``: indices of its training points in X (default all).
    - ``rate``: the machine's matmul rate in flop/s (default: measured) for the cost plan.
    - ``subspace_split``: compute the first split in the leading principal subspace (True), in
      the full space (False), or by size (None: the subspace above d = 64).
    - ``target_temperature``: T* (scaled units, > 0) of the "data and stopping" section: the n
      for which the exact score's collapse temperature stays below it (default: 0.1 x the
      speciation headline).
    - ``train_probe``: a ``TrainProbe`` (``_analyze_probe``) to run: two short trainings at small
      n predicting the memorization onset for this n, or None.
    - ``certified``: simulate (cloning curve, trajectories) with the certified sublinear exact
      denoiser (``td.CertifiedDataset``, tolerance 1e-6 of the data radius, theory section 14)
      instead of the dense sum: the same numbers to that tolerance, faster once the posterior has
      condensed, after a one-off index build (seconds at N = 10^5). The report records the index
      and the fraction of states that fell back to the dense sum.
    """
    import jax

    from ._analyze_figures import figures
    from ._analyze_geometry import effective_dimension_section
    from ._analyze_stopping import stopping_section
    from ._analyze_plan import plan_analysis
    from ._units import data_scale

    progress = Progress(False) if progress is None else progress
    ds = data_scale(X, scale)  # X: finite, 2-D (checked there)
    n, d = np.shape(X)
    if n < 2:
        raise ValueError(f"X must hold at least 2 points (N >= 2), got N = {n}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers of shape (N,) = ({n},), got {labels.dtype} {labels.shape}")
    split_dim = None if subspace_split is None else (0 if subspace_split else d)
    plan = plan_analysis(n, d, quick=quick, rate=_rate() if rate is None else rate, split_dim=split_dim)
    keys = jax.random.split(jax.random.key(seed), 5)
    progress.stage("spectrum")
    data, spec = _spectrum(X, ds, n, d)
    progress.stage("classes")
    data = _classes(data, labels, seed)
    data.sampler_ens, index_info = (_certified_index(data.ens) if certified else (data.ens, None))
    progress.stage("speciation")
    speciation, plan = _speciation(data, spec, plan, progress)
    progress.stage("memorization prediction")
    memorization = _memorization_prediction(data, spec, plan, keys[0])
    progress.stage("cloning curve")
    # the grids span both transitions: in high dimension the posterior can condense onto single
    # points (REM) far above the class split, and both crossings must lie inside the grid
    T_spec = max(t for t in (speciation["biroli"]["T"], speciation["first_split"]["T"], spec["mean_variance"]) if t)
    T_hi = 4.0 * max(T_spec, memorization["rem"]["T"])
    T_lo = min(memorization["rem"]["T"], T_spec) / 30.0
    cloning = _cloning(data, plan, T_hi, T_lo, keys[1], progress, model)
    progress.stage("trajectories")
    traj = _trajectories(data, plan, T_hi, T_lo / 10.0, keys[2], progress)
    progress.stage("geometry")
    geometry = effective_dimension_section(data, spec, T_hi, T_lo / 10.0, keys[3], quick)
    res = _assemble(name, data, spec, plan, speciation, memorization, cloning, traj, seed, quick)
    geometry["T_zero"] = _estimate("the mean effective dimension of the exact empirical score falls below 1/2 "
                                   "(geometric memorization, theory 12)", geometry["T_zero"], data.scale)
    res["geometry"] = geometry
    res["exact_index"] = (dict(used=False) if index_info is None else
                          dict(index_info, used=True, fallback=_fallback_fractions(data.sampler_ens, data.X, cloning["T"])))
    if model is not None:
        from ._analyze_model import model_measurements

        res["model"] = model_measurements(res, data, model, model_train, model_info, plan, T_hi, T_lo / 10.0,
                                          keys[2], cloning)
    probe = None
    if train_probe is not None:
        progress.stage("train probe")
        probe = train_probe.run(data, keys[4], progress)
    info = None if model is None else dict(model_info or {}, n_train_points=res["model"]["n_train_points"])
    res["stopping"] = stopping_section(res, spec, data.scale, target_temperature=target_temperature,
                                       model_info=info, probe=probe)
    progress.stage("figures")
    return res, figures(res)


def _certified_index(ens):
    """The certified sublinear denoiser over the same points, and what the report says about it."""
    import time

    import thermodiff as td

    t0 = time.perf_counter()
    cert = td.CertifiedDataset.from_dataset(ens)
    ix = cert.index
    return cert, dict(tol=float(cert.tol), n_groups=int(ix.n_groups), group_size=int(ix.group_size),
                      build_s=time.perf_counter() - t0)


def _fallback_fractions(cert, X, Ts, n_states: int = 64) -> dict:
    """Fraction of noisy data states x = y + sqrt(T) z whose certificate failed (dense fallback),
    at five temperatures of the cloning grid (hot to cold)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    Y = jnp.asarray(X[rng.choice(X.shape[0], min(n_states, X.shape[0]), replace=False)], jnp.float32)
    Z = jnp.asarray(rng.standard_normal(Y.shape), jnp.float32)
    run = jax.jit(jax.vmap(lambda c, x, T: c.certified_denoiser(x, T)[2], in_axes=(None, 0, None)))
    Ts = [float(t) for t in np.asarray(Ts)[np.linspace(0, len(Ts) - 1, 5).round().astype(int)]]
    return dict(T=Ts, fraction=[float(jnp.mean(run(cert, Y + np.float32(np.sqrt(T)) * Z, jnp.float32(T))))
                                for T in Ts])


def _rate() -> float:
    from ._subspace import measure_matmul_rate

    return float(measure_matmul_rate())


def _spectrum(X, ds, n, d):
    """Scaled data, their mean variance, participation ratio and leading eigenvalues."""
    import jax.numpy as jnp

    import thermodiff as td

    from ._subspace import principal_subspace

    big = n * d > 2**26  # over 64 M entries: keep one float32 copy only
    Xs = (ds.a * np.asarray(X, np.float32) + np.float32(ds.b)).astype(np.float32) if big else ds.apply(X)
    k = min(d, n, 64)
    ps = principal_subspace(Xs, k, seed=0)
    evals = np.maximum(np.asarray(ps.eigenvalues, np.float64), 0.0)
    total = float(ps.total_variance)
    s2 = total / d
    if not s2 > 0:
        raise ValueError("DATA has zero variance (all points identical): nothing to analyse")
    rest = max(total - evals.sum(), 0.0)  # variance outside the leading k, spread evenly (approximation)
    sq = float(np.sum(evals**2) + (rest**2 / (d - k) if d > k else 0.0))
    spec = dict(eigenvalues=evals.tolist(), n_computed=int(k), total_variance=total, mean_variance=s2,
                participation_ratio_dimension=total**2 / sq, explained_fraction=float(evals.sum() / total),
                subspace=ps)
    ens = td.FiniteDataset(jnp.asarray(Xs, jnp.float32))
    return _Data(Xs, ds, None, [], {}, ens, ens), spec


def full_spectrum(spec: dict, d: int) -> np.ndarray:
    """The d covariance eigenvalues: the computed leading ones, the rest of the variance spread
    evenly over the remaining directions (the approximation made in ``_spectrum``)."""
    ev = np.asarray(spec["eigenvalues"], np.float64)
    if d <= ev.size:
        return ev[:d]
    rest = max(spec["total_variance"] - ev.sum(), 0.0)
    return np.concatenate([ev, np.full(d - ev.size, rest / (d - ev.size))])


def _classes(data: _Data, labels, seed: int) -> _Data:
    """Labels as given, else inferred by k-means with the gap statistic (with the caveats)."""
    if labels is not None:
        labels = np.asarray(labels, np.int64)
        classes = np.unique(labels)
        lab = np.searchsorted(classes, labels).astype(np.int32)
        n_min = int(np.bincount(lab).min())
        caveat = None
        if classes.size == 1:
            caveat = "one class only: the cloning probability is 1 at every T and speciation is not defined"
        elif n_min < 2:
            caveat = f"a class with {n_min} point: its commitment statistics are not meaningful"
        info = dict(source="given", n_classes=int(classes.size), method="labels given with the data", caveat=caveat)
        return dataclasses.replace(data, labels=lab, classes=[int(c) for c in classes], class_info=info)
    from ._classes import infer_classes

    inf = infer_classes(data.X, max_classes=10, key_or_seed=seed)
    lab = np.asarray(inf.labels, np.int32)
    info = dict(source="inferred", n_classes=int(inf.n_classes), method=inf.method, caveat=inf.caveat)
    return dataclasses.replace(data, labels=lab, classes=list(range(int(inf.n_classes))), class_info=info)


def _speciation(data: _Data, spec: dict, plan, progress):
    """Biroli's spectral estimate and the exact first split (full space or leading subspace)."""
    import thermodiff as td

    lam = spec["eigenvalues"][0]
    T_bir = lam - 1.0 if lam > 1.0 else None
    why = None if T_bir is not None else (
        f"Biroli et al.'s t_S = log(Lambda)/2 needs a top eigenvalue Lambda > 1 (above the unit noise variance of "
        f"their OU process); here Lambda = {lam:.3g} in {data.scale.name} units, so the estimate does not apply")
    n, d = data.X.shape
    if plan.quick:  # the exact first split costs about 30 s of compilation alone: not in a smoke run
        T_fs, err, dims, note = None, None, [], "not computed with --quick (its compilation alone takes about 30 s)"
    elif plan.split_dim == d:
        T_fs = _f(td.first_split_temperature(data.ens, max_starts=16, rtol=1e-3))
        err, dims, note = None, [d], "computed in the full space"
    else:
        T_fs, err, dims, note, plan = _subspace_split(data, spec, plan, progress)
    levels = [ev - 1.0 for ev in spec["eigenvalues"][:5]]
    sp = dict(
        biroli=_estimate("T_S = Lambda - 1 (Biroli et al.: t_S = log(Lambda)/2 in OU time)", T_bir, data.scale,
                         Lambda=lam, why_na=why),
        first_split=_estimate("exact first split of the minima of the free energy of the empirical law (theory 3)",
                              T_fs, data.scale, stderr=err, dims=dims, note=note),
        spectral_levels=[conventions(t if t > 0 else None, data.scale) for t in levels],
    )
    return sp, plan


def _subspace_split(data: _Data, spec: dict, plan, progress):
    """The first split in the leading k-dimensional principal subspace and, for its error, in the
    leading k/2 (the same array shape with the trailing coordinates zeroed: one compilation)."""
    import thermodiff as td

    from ._subspace import subspace_dimension

    k = int(subspace_dimension(spec["subspace"]))
    dims = [max(1, k // 2), k]
    P = np.asarray(spec["subspace"].project(data.X)[:, :k], np.float32)
    T = []
    for i, kk in enumerate(dims):
        Q = P.copy()
        Q[:, kk:] = 0.0  # zero variance there: those directions never split
        T.append(_f(td.first_split_temperature(td.FiniteDataset(Q), max_starts=64, rtol=1e-3)))
        progress.update(i + 1, len(dims))
    err = abs(T[1] - T[0]) if None not in T else None
    note = (f"computed in the leading {k}-dimensional principal subspace ({_pct(spec, k)} of the variance); "
            f"the restriction's error is estimated by the change from {dims[0]} to {k} dimensions (the subspace "
            "answer approaches the full one from below)")
    return T[-1], err, dims, note, dataclasses.replace(plan, split_dim=k)


def _pct(spec, k) -> str:
    ev = np.asarray(spec["eigenvalues"][:k])
    return f"{100 * ev.sum() / spec['total_variance']:.0f}%"


def _memorization_prediction(data: _Data, spec: dict, plan, key):
    """The REM threshold (closed form) and the zero of the excess entropy (Monte Carlo)."""
    from ._condensation import collapse_temperature, collapse_temperature_from_data

    n, d = data.X.shape
    s2 = spec["mean_variance"]
    T_rem = float(collapse_temperature(n, d, s2))
    Ts = np.geomspace(T_rem / 30.0, 30.0 * T_rem, plan.ent_T)
    T_ent, note = None, "not computed with --quick (a smoke run)"
    if not plan.quick:
        T_ent, note = _f(collapse_temperature_from_data(data.ens, key, Ts=Ts, n_samples=plan.ent_samples)), None
    return dict(
        rem=_estimate("T_C = s^2/(N^(2/d) - 1), s^2 = mean variance: condensation of Gaussian data of the same "
                      "size and variance (random energy model, theory 9)", T_rem, data.scale),
        excess_entropy_zero=_estimate("zero of the excess entropy s_sep - s of the exact empirical density "
                                      f"(Monte Carlo, {plan.ent_samples} samples at {plan.ent_T} temperatures)",
                                      T_ent, data.scale, note=note),
    )


def _cloning(data: _Data, plan, T_hi, T_lo, key, progress, model):
    """phi(T) simulated with the exact empirical score, the exact E sum_c P(c|x)^2, and the
    states and noise reused for a model."""
    import jax

    import thermodiff as td

    sched = td.VP()
    grid = np.geomspace(T_hi, T_lo, plan.n_T)
    out = dict(T=grid.tolist(), phi_simulated=[], phi_simulated_stderr=[], phi_exact=[], phi_exact_stderr=[],
               n_pairs=plan.n_pairs, steps=plan.clone_steps, T_end=T_lo / 10, states=[])
    for i, T in enumerate(grid):
        kc = jax.random.fold_in(key, i)
        x_T = _noisy_states(data.ens, sched, jax.random.fold_in(kc, 1), plan.n_pairs, np.float32(T))
        e = td.cloning_probability(data.sampler_ens, sched, float(T), key=kc, n_pairs=plan.n_pairs, steps=plan.clone_steps,
                                   grid=td.KarrasGrid(), T_end=T_lo / 10, labels=data.labels, x_T=x_T)
        out["phi_simulated"].append(float(e.value)), out["phi_simulated_stderr"].append(float(e.stderr))
        if not plan.quick:  # the posterior curve is supporting evidence; a smoke run saves its compilation
            x = td.cloning_probability(data.ens, None, float(T), n_pairs=4 * plan.n_pairs, labels=data.labels)
            out["phi_exact"].append(float(x.value)), out["phi_exact_stderr"].append(float(x.stderr))
        if model is not None:
            out["states"].append((kc, x_T))
        progress.update(i + 1, plan.n_T)
    lab = data.labels
    out["chance"] = float(np.sum((np.bincount(lab) / lab.size) ** 2))
    out["half_level"] = out["chance"] + 0.5 * (1 - out["chance"])
    return out


def _noisy_states(ens, sched, key, n, T):
    """n states of the diffused data at temperature T (one compiled program for every T)."""
    import equinox as eqx

    global _noisy_states_jit
    if _noisy_states_jit is None:
        import thermodiff as td

        _noisy_states_jit = eqx.filter_jit(
            lambda ens, sched, key, n, T: td.Diffused(ens, sched).sample_marginal(key, n, sched.time_at_temperature(T))[1])
    return _noisy_states_jit(ens, sched, key, n, T)


_noisy_states_jit = None


def _trajectories(data: _Data, plan, T_hi, T_lo, key, progress):
    """Exact-score trajectories in four batches (the bar moves), joined into one measurement."""
    import jax

    import thermodiff as td

    parts, n_b = [], 4 if plan.n_traj >= 64 else 1
    for b in range(n_b):
        parts.append(td.measure_collapse(data.sampler_ens, td.VP(), jax.random.fold_in(key, b), n_trajectories=plan.n_traj // n_b,
                                         T_high=T_hi, T_low=T_lo, n_save=plan.n_save, steps=plan.traj_steps,
                                         labels=data.labels))
        progress.update(b + 1, n_b)
    cat = lambda f: np.concatenate([np.asarray(getattr(p, f)) for p in parts])
    return dict(T=np.asarray(parts[0].T, np.float64), top=cat("top_weight_paths"), mem=cat("memorized_paths"),
                settle=cat("settle_T"), commit=cat("commit_T"), final_class=cat("final_class"))


# ----------------------------------------------------------------------------- headlines
def crossing_desc(T, y, level):
    """T where y(T) (T decreasing along the array, y rising) first reaches ``level`` (log-linear
    interpolation); None if it never does."""
    for i in range(1, len(T)):
        if (y[i - 1] - level) * (y[i] - level) <= 0 and y[i] != y[i - 1]:
            f = (level - y[i - 1]) / (y[i] - y[i - 1])
            return float(math.exp(math.log(T[i - 1]) + f * (math.log(T[i]) - math.log(T[i - 1]))))
    return None


def _boot_std(values) -> float | None:
    """Spread of bootstrap crossings: their standard deviation in log T times their geometric mean
    (crossings are positive and skewed); None when fewer than half the resamples crossed."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    return float(np.std(np.log(v)) * np.exp(np.mean(np.log(v)))) if v.size >= N_BOOT // 2 else None


def phi_crossing(T, phi, stderr, level, seed=0):
    """The crossing of phi(T) with ``level`` and its parametric-bootstrap standard error (each phi
    redrawn from N(phi, stderr^2); None when fewer than half the redraws cross)."""
    T0 = crossing_desc(T, phi, level)
    rng = np.random.default_rng(seed)
    phi, stderr = np.asarray(phi), np.asarray(stderr)
    boot = [crossing_desc(T, phi + stderr * rng.standard_normal(phi.size), level) for _ in range(N_BOOT)]
    return T0, (_boot_std(boot) if T0 is not None else None)


def paths_crossing(T, paths, level, seed=0):
    """The crossing of the trajectory mean of ``paths`` (n, S) with ``level`` and its bootstrap
    standard error over trajectories."""
    paths = np.asarray(paths, np.float64)
    T0 = crossing_desc(T, paths.mean(0), level)
    rng = np.random.default_rng(seed)
    n = paths.shape[0]
    boot = [crossing_desc(T, paths[rng.integers(0, n, n)].mean(0), level) for _ in range(N_BOOT)]
    return T0, (_boot_std(boot) if T0 is not None else None)


def median_with_error(values, seed=0):
    """The median of the finite ``values`` and its bootstrap standard error."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None, None
    rng = np.random.default_rng(seed)
    boot = [float(np.median(v[rng.integers(0, v.size, v.size)])) for _ in range(N_BOOT)]
    return float(np.median(v)), _boot_std(boot)


def _assemble(name, data: _Data, spec, plan, speciation, memorization, cloning, traj, seed, quick) -> dict:
    """results.json: headlines chosen by the stated rules, supporting estimators, raw curves."""
    from ._analyze_text import HEADLINE_RULES, headline_text

    sc, cl = data.scale, cloning
    T_half, e_half = phi_crossing(cl["T"], cl["phi_simulated"], cl["phi_simulated_stderr"], cl["half_level"], seed)
    speciation["cloning_half"] = _estimate(
        "phi(T), simulated with the exact empirical score, halfway between chance and 1", T_half, sc, stderr=e_half)
    Ts = traj["T"]
    T_top, e_top = paths_crossing(Ts, traj["top"], 0.5, seed)
    T_set, e_set = median_with_error(traj["settle"], seed)
    T_mh, e_mh = paths_crossing(Ts, traj["mem"], 0.5, seed)
    memorization.update(
        top_weight_half=_estimate("the posterior weight of the most probable training point, averaged over "
                                  "exact-score trajectories, reaches 1/2", T_top, sc, stderr=e_top),
        settle=_estimate("median T below which a trajectory's nearest training point never changes", T_set, sc,
                         stderr=e_set),
        memorized_half=_estimate("half the states lie much closer to one training point than to any other "
                                 "(d1/d2 < 1/3)", T_mh, sc, stderr=e_mh),
    )
    res = dict(
        dataset=dict(name=name, n_points=int(data.X.shape[0]), dim=int(data.X.shape[1]),
                     mean_variance=spec["mean_variance"], participation_ratio_dimension=spec["participation_ratio_dimension"],
                     classes=data.classes, labels=data.class_info["method"], class_inference=data.class_info),
        scale=dict(name=sc.name, a=float(sc.a), temperature_factor=float(sc.a**2)),
        convention=("T = VE-equivalent noise variance of the scaled data (theory section 1); T_data = T/a^2 in the "
                    "data's own units; OU time t = log(1 + T)/2; vp_t of VP(0.1, 20); ddpm_step = 0-based k with "
                    "alphas_cumprod[k] = 1/(1 + T) for the linear 1e-4..0.02 x 1000 schedule; abar = 1/(1 + T)"),
        plan=plan.as_dict(),
        spectrum={k: v for k, v in spec.items() if k != "subspace"},
        speciation=speciation,
        memorization=memorization,
        cloning={k: v for k, v in cl.items() if k != "states"},
        trajectories=dict(T=Ts.tolist(), top_weight=traj["top"].mean(0).tolist(),
                          memorized_fraction=traj["mem"].mean(0).tolist(), n_trajectories=int(traj["top"].shape[0])),
        classes=_per_class(data, traj),
        seed=seed, quick=quick,
    )
    res["headline"] = headline_text(res)
    res["headline"]["rules"] = HEADLINE_RULES
    return res


def _per_class(data: _Data, traj) -> list[dict]:
    fc, commit = traj["final_class"], traj["commit"]
    rows = []
    for i, c in enumerate(data.classes):
        sel = (fc == i) & np.isfinite(commit)
        q = np.percentile(commit[sel], [25, 50, 75]) if sel.any() else [None] * 3
        rows.append(dict(label=int(c), n_points=int(np.sum(data.labels == i)), generated_fraction=float(np.mean(fc == i)),
                         n_trajectories=int(np.sum(fc == i)), median_commit_T=_f(q[1]) if sel.any() else None,
                         commit_T_quartiles=[_f(q[0]), _f(q[2])] if sel.any() else None))
    return rows


__all__ = ["STAGES", "analyze", "conventions", "crossing_desc", "phi_crossing", "paths_crossing"]
