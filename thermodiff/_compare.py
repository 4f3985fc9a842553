"""A trained model next to the exact empirical and population laws, temperature by temperature.

``compare_to_exact`` puts every observable of thermodiff on one temperature grid for three
models of the same data (theory sections 6, 9, 10):

- the **trained** model (any sampler model; usually a ``td.Preconditioned`` network);
- the **exact empirical** law of its training set (the ``FiniteDataset``: what a perfectly
  trained network would learn, and which memorises below its collapse temperature);
- the **population** law (an exact ensemble, when the data were drawn from one).

Columns: the irreducible, excess and denoising losses (section 10); the generalisation error
(against the population, or a held-out set's empirical denoiser named as a proxy); the posterior
variance tr Cov[y|x] = T tr(dD/du) (the susceptibility trace of section 6, from the model's own
Jacobian); the cloning probability phi(T), simulated for the trained and the empirical model
from the *same* states with the *same* noise, and exact for the population; the memorised
fraction, the top posterior weight and the share of trajectories committed to their final class
(posterior >= 0.9 from T on) along each model's own trajectories (section 9). From
them: the speciation temperature where phi crosses 0.775200 and the temperature where half the
trajectories are memorised, for each model.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._diagnostics import (
    denoising_loss,
    excess_loss,
    generalization_error,
    irreducible_loss,
    ve_denoiser,
)
from ._dynamics import PHI_CRITICAL, _default_classifier, cloning_probability, speciation_temperature
from ._ensembles._base import AbstractEnsemble, as_float_array
from ._ensembles._finite import FiniteDataset
from ._ensembles._mixture import GaussianMixture
from ._ensembles._two_deltas import TwoDeltas
from ._samplers import AbstractSolver, EulerMaruyama, KarrasGrid
from ._schedules import AbstractSchedule, VP
from ._speciation import measure_collapse
from ._validate import check_key, check_temperature


@dataclasses.dataclass
class ModelComparison:
    """Per-temperature comparison of a trained model with the exact empirical and population laws.

    - ``temperatures``: the grid (K,), decreasing.
    - ``columns``: name -> (K,) values (NaN where not computed); ``stderr``: name -> (K,).
    - ``summary``: speciation temperatures (phi = 0.775200 crossings) and half-memorised
      temperatures of each model (None where the curve does not cross), each with a ``_stderr``
      propagated from the two bracketing points (it ignores the grid's interpolation error:
      refine the grid around a crossing to shrink that).
    - ``reference``: what the generalisation error is measured against.
    """

    temperatures: np.ndarray
    columns: dict
    stderr: dict
    summary: dict
    reference: str

    def rows(self) -> list[dict]:
        """One dict per temperature (JSON-able; NaN becomes None)."""
        out = []
        for i, T in enumerate(self.temperatures):
            row = dict(T=float(T))
            for k, v in self.columns.items():
                x = float(v[i])
                row[k] = x if np.isfinite(x) else None
            out.append(row)
        return out

    def markdown(self, columns: list[str] | None = None) -> str:
        """A Markdown table of the comparison (all columns by default)."""
        cols = [c for c in (columns or list(self.columns)) if np.any(np.isfinite(self.columns[c]))]
        lines = ["| T | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for row in self.rows():
            cells = [f"{row['T']:.4g}"] + ["n/a" if row[c] is None else f"{row[c]:.4g}" for c in cols]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _trace_fn(model, schedule, dim, n_probes=16):
    """x -> T tr dD/du at (u, T): exact (jacfwd) for d <= 128, Hutchinson beyond."""
    f = ve_denoiser(model, schedule)

    def exact(u, T, key):
        return T * jnp.trace(jax.jacfwd(lambda v: f(v, T))(u))

    def hutch(u, T, key):
        vs = jax.random.rademacher(key, (n_probes,) + u.shape, u.dtype)
        return T * jnp.mean(jax.vmap(lambda v: jnp.dot(v, jax.jvp(lambda w: f(w, T), (u,), (v,))[1]))(vs))

    return exact if dim <= 128 else hutch


@eqx.filter_jit
def _mean_trace(fn, x, T, key):
    keys = jax.random.split(key, x.shape[0])
    v = jax.vmap(lambda u, k: fn(u, T, k))(x, keys)
    return jnp.mean(v), jnp.std(v) / np.sqrt(x.shape[0])


def _states(source, T, key, n):
    ky, kz = jax.random.split(key)
    y = source.sample(ky, n)
    return y + jnp.sqrt(T) * jax.random.normal(kz, y.shape, y.dtype)


def _has_classes(ens) -> bool:
    return isinstance(ens, (TwoDeltas, GaussianMixture))


def _training_labels(ens, population, labels):
    """Class labels of the training points: given, else the population's most probable class."""
    if labels is not None:
        return np.asarray(labels)
    if population is None or not _has_classes(population):
        return None
    from ._dynamics import class_posterior

    T0 = jnp.asarray(1e-6, ens.chunks.dtype)
    return np.asarray(jnp.argmax(jax.vmap(lambda y: class_posterior(population, y, T0))(ens.points), axis=1))


def _crossing(Ts, y, se, level):
    """(T*, stderr) where y(T) crosses ``level``, linear between the bracketing points, with the
    stderr of the two bracketing values propagated; (None, None) without a crossing."""
    try:
        T_star = speciation_temperature(Ts, y, level=level)
    except ValueError:
        return None, None
    order = np.argsort(Ts)
    T, v, e = np.asarray(Ts)[order], np.asarray(y)[order], np.asarray(se)[order]
    i = int(np.clip(np.searchsorted(T, T_star) - 1, 0, T.size - 2))
    dT, dv = T[i + 1] - T[i], v[i + 1] - v[i]
    f = (T_star - T[i]) / dT
    err = abs(dT / dv) * np.sqrt((1 - f) ** 2 * e[i] ** 2 + f**2 * e[i + 1] ** 2) if dv != 0 else np.inf
    return T_star, float(err)


def compare_to_exact(
    model,
    train,
    population: AbstractEnsemble | None = None,
    *,
    temperatures,
    key,
    schedule: AbstractSchedule | None = None,
    held_out=None,
    labels=None,
    classify=None,
    n_states: int = 1024,
    n_pairs: int = 2000,
    steps: int = 100,
    solver: AbstractSolver | None = None,
    n_trajectories: int = 256,
    T_end=None,
    cloning: bool = True,
    collapse: bool = True,
) -> ModelComparison:
    """The trained model, the exact empirical law and the population law on one grid (module doc).

    **Arguments:**
    - ``model``: the trained model (a ``td.Preconditioned`` network or any sampler model).
    - ``train``: its training set (N, d) or ``FiniteDataset``.
    - ``population``: the exact population ensemble, if the data were drawn from one.
    - ``temperatures``: the grid (1-D, > 0; VE-equivalent noise variances).
    - ``key``: PRNG key.
    - ``schedule``: the process the samplers run (default VP()).
    - ``held_out``: held-out points for the generalisation-error proxy (without ``population``).
    - ``labels``: class labels of the training points (classes of phi and of commitment when the
      population has no classes of its own).
    - ``classify``: ``classify(x) -> int`` of a final native state (default: the population's
      component posterior, else the training label of the nearest point).
    - ``n_states``: Monte Carlo states per temperature for the losses and traces.
    - ``n_pairs``, ``steps``, ``solver``, ``T_end``: the cloning simulation (defaults 2000 pairs,
      100 Euler-Maruyama steps on a Karras grid, T_end = min(temperatures)/30).
    - ``n_trajectories``: trajectories of the collapse measurement.
    - ``cloning``, ``collapse``: switch those (slower) parts off.

    **Returns:** a ``ModelComparison``.
    """
    check_key("key", key)
    ens = train if isinstance(train, FiniteDataset) else FiniteDataset(as_float_array("train", train, ndim=2))
    Ts = np.sort(np.asarray(temperatures, np.float64).reshape(-1))[::-1]
    if Ts.size < 2:
        raise ValueError(f"temperatures must hold at least 2 values, got {temperatures!r}")
    check_temperature(Ts, "temperatures")
    if population is not None and not isinstance(population, AbstractEnsemble):
        raise TypeError(f"population must be an ensemble, got {type(population).__name__}")
    if population is not None and held_out is not None:
        raise ValueError("give population (exact) or held_out (a proxy), not both")
    schedule = VP() if schedule is None else schedule
    dtype = ens.chunks.dtype
    K, nan = Ts.size, np.full(Ts.size, np.nan)
    cols = {k: nan.copy() for k in ("irreducible", "excess", "denoising_loss", "generalization", "trace_model",
                                    "trace_empirical", "trace_population", "phi_model", "phi_empirical",
                                    "phi_population", "memorized_model", "memorized_empirical",
                                    "top_weight_model", "top_weight_empirical", "committed_model",
                                    "committed_empirical")}
    errs = {k: nan.copy() for k in cols}
    keys = jax.random.split(key, 6)
    ref = population if population is not None else (
        FiniteDataset(as_float_array("held_out", held_out, ndim=2)) if held_out is not None else None)
    source = population if population is not None else ens
    tr_model = _trace_fn(model, schedule, ens.dim)
    tr_emp = lambda u, T, k: ens.posterior_trace(u, T)
    for i, T in enumerate(Ts):
        Tj = jnp.asarray(T, dtype)
        k = jax.random.fold_in(keys[0], i)
        for name, est in (("irreducible", irreducible_loss(ens, Tj, k, n_states=n_states)),
                          ("excess", excess_loss(model, ens, Tj, k, n_states=n_states, schedule=schedule)),
                          ("denoising_loss", denoising_loss(model, ens, Tj, k, n_states=n_states, schedule=schedule))):
            cols[name][i], errs[name][i] = float(est.value), float(est.stderr)
        if ref is not None:
            g = generalization_error(model, ref, Tj, jax.random.fold_in(keys[1], i), n_states=n_states, schedule=schedule)
            cols["generalization"][i], errs["generalization"][i] = float(g.value), float(g.stderr)
        x = _states(source, Tj, jax.random.fold_in(keys[2], i), n_states).astype(dtype)
        kt = jax.random.fold_in(keys[3], i)
        for name, fn in (("trace_model", tr_model), ("trace_empirical", tr_emp)):
            m, s = _mean_trace(fn, x, Tj, kt)
            cols[name][i], errs[name][i] = float(m), float(s)
        if population is not None:
            m, s = _mean_trace(lambda u, T, k: jnp.trace(population.posterior_cov(u, T)), x, Tj, kt)
            cols["trace_population"][i], errs["trace_population"][i] = float(m), float(s)
    if cloning:
        _cloning(cols, errs, model, ens, population, source, schedule, Ts, keys[4], labels, classify,
                 n_pairs, steps, solver, T_end)
    if collapse:
        lab = _training_labels(ens, population, labels)
        for name, dyn in (("model", model), ("empirical", None)):
            meas = measure_collapse(ens, schedule, keys[5], n_trajectories=n_trajectories, steps=steps,
                                    model=dyn, temperatures=Ts, labels=lab, solver=solver)
            for col, v in (("memorized", meas.memorized_fraction), ("top_weight", meas.top_weight)):
                cols[f"{col}_{name}"] = np.asarray(v, np.float64)
            errs[f"memorized_{name}"] = np.sqrt(cols[f"memorized_{name}"] * (1 - cols[f"memorized_{name}"]) / n_trajectories)
            if lab is not None:  # class commitment: the share of trajectories already committed at T
                commit = np.asarray(meas.commit_T, np.float64)
                cols[f"committed_{name}"] = np.array([np.mean(np.nan_to_num(commit, nan=-np.inf) >= T) for T in Ts])
                errs[f"committed_{name}"] = np.sqrt(cols[f"committed_{name}"] * (1 - cols[f"committed_{name}"]) / n_trajectories)
    summary = {}
    for name in ("model", "empirical", "population"):
        phi = cols[f"phi_{name}"]
        T_s, e = _crossing(Ts, phi, errs[f"phi_{name}"], PHI_CRITICAL) if np.all(np.isfinite(phi)) else (None, None)
        summary[f"T_speciation_{name}"], summary[f"T_speciation_{name}_stderr"] = T_s, e
    for name in ("model", "empirical"):
        mem = cols[f"memorized_{name}"]
        T_m, e = _crossing(Ts, mem, errs[f"memorized_{name}"], 0.5) if np.all(np.isfinite(mem)) else (None, None)
        summary[f"T_half_memorized_{name}"], summary[f"T_half_memorized_{name}_stderr"] = T_m, e
    reference = ("population (exact)" if population is not None else
                 "held-out empirical denoiser (proxy)" if held_out is not None else "none")
    return ModelComparison(temperatures=Ts, columns=cols, stderr=errs, summary=summary, reference=reference)


def _cloning(cols, errs, model, ens, population, source, schedule, Ts, key, labels, classify, n_pairs, steps,
             solver, T_end):
    solver = EulerMaruyama() if solver is None else solver
    T_end = float(Ts.min()) / 30 if T_end is None else T_end
    if classify is None:
        if population is not None and _has_classes(population):
            t_end = schedule.time_at_temperature(T_end)
            classify = _default_classifier(population, schedule, t_end, None)
        elif labels is not None:
            t_end = schedule.time_at_temperature(T_end)
            classify = _default_classifier(ens, schedule, t_end, np.asarray(labels, np.int32))
        else:
            return  # no classes to compare: the phi columns stay NaN
    for i, T in enumerate(Ts):
        t = schedule.time_at_temperature(jnp.asarray(T, ens.chunks.dtype))
        kx, ks = jax.random.split(jax.random.fold_in(key, i))
        x = schedule.signal_scale(t) * _states(source, jnp.asarray(T, ens.chunks.dtype), kx, n_pairs).astype(ens.chunks.dtype)
        for name, dyn in (("phi_model", model), ("phi_empirical", ens)):
            e = cloning_probability(dyn, schedule, float(T), key=ks, n_pairs=n_pairs, solver=solver, steps=steps,
                                    grid=KarrasGrid(), T_end=T_end, classify=classify, x_T=x)
            cols[name][i], errs[name][i] = float(e.value), float(e.stderr)
        if population is not None and _has_classes(population):
            e = cloning_probability(population, None, float(T), n_pairs=max(n_pairs, 4096))
            cols["phi_population"][i], errs["phi_population"][i] = float(e.value), float(e.stderr)


__all__ = ["ModelComparison", "compare_to_exact"]
