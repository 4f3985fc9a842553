"""Critical instability of the generative dynamics (theory section 6).

Observables of *which* sample comes out, exact where the ensemble allows and simulated through
``td.sample`` for any model:

- ``cloning_probability``: two copies branched at temperature T (same x_T, independent noise
  afterwards) end in the same class with probability phi(T). With the exact score the reverse
  dynamics started at x_T samples the posterior p(y | x_T), so phi(T) = E_{x ~ p_T}[sum_c
  P(c | x)^2]; for two deltas E_x[(1 + tanh^2(mu.x/T))/2], and phi(T_c) = 0.775200.
- ``class_change_probability``: forward-backward, noise a data point to T and regenerate; with
  the exact score P(change) = 1 - phi(T) (the two draws are again conditionally independent).
- ``perturbation_response``: |dx_0/dx_T . v| through the whole sampler by a JVP with shared noise.
- ``susceptibility_trace``: tr Cov[y | x_T] = T tr(dm_T/du) by Hutchinson JVPs of any denoiser.
- ``decision_sensitivity``: the exact E_x |dP(+|x)/dx| for two deltas, whose maximum is *not*
  at T_c (theory section 6 note).
- ``speciation_temperature``: where a measured phi(T) crosses 0.775200, to set against T_c.

Temperatures are VE-equivalent (theory section 1); ``schedule`` maps them to diffusion times.
"""

from __future__ import annotations

from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Key, RealScalarLike, Vector
from ._ensembles._base import AbstractEnsemble, as_float_array
from ._ensembles._diffused import Diffused
from ._ensembles._finite import FiniteDataset
from ._ensembles._mixture import GaussianMixture
from ._ensembles._two_deltas import TwoDeltas
from ._models import as_model
from ._samplers import AbstractGrid, AbstractSolver, EulerMaruyama, sample, time_grid
from ._schedules import AbstractSchedule
from ._validate import (
    check_int,
    check_key,
    check_finite,
    check_range,
    check_real,
    check_scalar,
    check_size,
    check_temperature,
    check_temperature_scalar,
    guard_temperature,
    is_concrete,
)

#: phi(T_c) for two deltas (and at Biroli's t_S): E_z[(1 + tanh^2(1 + z))/2], z ~ N(0, 1).
PHI_CRITICAL = 0.7752002453966634


class Estimate(eqx.Module):
    """A Monte Carlo estimate: ``value`` and its standard error ``stderr`` (0 if exact)."""

    value: Array
    stderr: Array


# ----------------------------------------------------------------------------- classes
def class_posterior(
    ensemble: AbstractEnsemble, x: Vector, T: RealScalarLike, *, labels=None, n_classes: int | None = None
) -> Array:
    """P(c | x) at temperature T: the posterior over the ensemble's classes (theory section 6; VE picture,
T the VE-equivalent noise variance).

    Classes are the two deltas (+mu first), the components of a ``GaussianMixture``, or, for a
    ``FiniteDataset``, the given integer ``labels`` (shape (N,), values 0..C-1) or each training
    point on its own when ``labels`` is None (``n_classes`` defaults to max(labels) + 1; give it
    when ``labels`` is traced, an integer in [1, 10^6]).

    Under jit: an invalid T or a non-finite x gives NaN probabilities.
    """
    if not isinstance(ensemble, (TwoDeltas, GaussianMixture, FiniteDataset)):
        raise TypeError(
            "ensemble must be a TwoDeltas, GaussianMixture or FiniteDataset (class posteriors are "
            f"exact for those; for others pass classify= and simulate), got {type(ensemble).__name__}"
        )
    x, T = ensemble._check(x, T)
    if isinstance(ensemble, TwoDeltas):
        th = jnp.tanh(jnp.dot(ensemble.mu, x) / T)
        return jnp.stack([(1 + th) / 2, (1 - th) / 2])
    if isinstance(ensemble, GaussianMixture):
        return ensemble.responsibilities(x, T)
    if labels is None and n_classes is not None:
        raise ValueError("n_classes needs labels (without labels every training point is its own class)")
    if n_classes is not None:
        n_classes = check_int("n_classes", n_classes, 1, _MAX_CLASSES)
    w = ensemble.posterior_weights(x, T)
    if labels is None:
        return w
    if is_concrete(labels):  # a negative or too large label would silently drop its weight
        check_real("labels", labels, what="an integer array of class labels")
        lab = np.asarray(labels)
        top = _MAX_CLASSES if n_classes is None else n_classes
        if (lab.shape != (ensemble.n_points,) or not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0
                or lab.max() >= top):
            raise ValueError(f"labels must be integers in [0, n_classes) of shape ({ensemble.n_points},), got "
                             f"{lab.dtype} {lab.shape} with values in [{lab.min()}, {lab.max()}]")
        if n_classes is None:
            n_classes = int(lab.max()) + 1
    elif n_classes is None:
        raise ValueError("n_classes must be given when labels are traced (the number of classes is a static shape)")
    return jax.ops.segment_sum(w, labels, num_segments=n_classes)


_MAX_CLASSES = 10**6
_MAX_DRAWS = 10**8  # pairs, states or data points drawn at once (each a full trajectory)


def _check_schedule(schedule, *, allow_none: bool = False) -> None:
    if schedule is None and allow_none:
        return
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"schedule must be an AbstractSchedule (VE, VP, DDPM, OU, Cosine), got {type(schedule).__name__}")


def _check_labels(ensemble, labels):
    if labels is None:
        return None
    if not isinstance(ensemble, FiniteDataset):
        raise ValueError("labels are only meaningful for a FiniteDataset")
    if isinstance(labels, jax.core.Tracer):
        raise ValueError("labels must be a concrete integer array (the number of classes is static): "
                         "close over them instead of passing them through jax.jit/vmap")
    lab = np.asarray(labels)
    if lab.shape != (ensemble.n_points,) or not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0:
        raise ValueError(f"labels must be non-negative integers of shape ({ensemble.n_points},), got {lab.dtype} {lab.shape}")
    return lab.astype(np.int32)  # NumPy, not jnp: inside a jit a jnp constant is a tracer


# ----------------------------------------------------------------------------- cloning
def _two_delta_field(ens: TwoDeltas, T):
    """(a, u, w): 160-point Gauss-Hermite nodes of the field u = mu.x/T for x ~ p_T (theory 3.1).

    By symmetry x = +mu + sqrt(T) xi, and only the projection u = (a^2 + a sqrt(T) z)/T matters.
    """
    a = jnp.sqrt(jnp.sum(ens.mu**2))
    z, w = np.polynomial.hermite_e.hermegauss(160)
    z, w = jnp.asarray(z, a.dtype), jnp.asarray(w / w.sum(), a.dtype)
    return a, (a**2 + a * jnp.sqrt(T) * z) / T, w


def _phi_two_deltas(ens: TwoDeltas, T):
    _, u, w = _two_delta_field(ens, T)
    return jnp.sum(w * (1 + jnp.tanh(u) ** 2) / 2)


def cloning_probability(
    model,
    schedule: AbstractSchedule | None,
    T: RealScalarLike,
    *,
    key: Key | None = None,
    n_pairs: int = 4096,
    solver: AbstractSolver | None = None,
    steps: int = 100,
    grid: AbstractGrid | None = None,
    T_end: RealScalarLike | None = None,
    classify: Callable | None = None,
    labels=None,
    x_T: Array | None = None,
) -> Estimate:
    """phi(T): probability that two copies branched at temperature T end in the same class.

    theory section 6. **Exact** (``key=None``; ensembles only): E_{x ~ p_T}[sum_c P(c|x)^2], by
    160-point Gauss-Hermite quadrature for two deltas (stderr 0; 0.775200 at T_c), otherwise by
    Monte Carlo over x ~ p_T (``n_pairs`` states, the integrand exact; stderr reported).
    **Simulated** (``key`` given): draw x_T ~ p_T exactly (ensembles) or take ``x_T`` (n, d)
    from the caller (any model, e.g. states produced by ``td.sample`` from the top), run two
    independent copies of ``solver`` from T down to ``T_end`` and compare their classes.

    **Arguments:**
    - ``model``: an ensemble, or any sampler model (then ``x_T`` and ``classify`` are needed).
    - ``schedule``: the process the sampler runs (unused, may be None, for the exact value).
    - ``T``: the branching temperature (VE-equivalent), > 0.
    - ``key``: None for the exact value, else the PRNG key of the simulation.
    - ``n_pairs``: number of pairs (or Monte Carlo states), >= 1.
    - ``solver``, ``steps``, ``grid``, ``T_end``: how each copy is integrated from T (defaults:
      EulerMaruyama, 100 Karras-free uniform steps, T_end = max(T(t_min), 1e-4)).
    - ``classify``: ``classify(x) -> int`` on a final state (native coordinates); default for
      ensembles: the most probable class under the exact posterior at T_end. For overlapping
      mixture components this labels a sample by where it lands, not by the component that drew
      it, which biases the simulated phi against the exact one by the overlap.
    - ``labels``: class labels of a FiniteDataset's points (default: each point its own class).
    - ``x_T``: states at T, shape (n_pairs, d), for non-ensemble models.

    **Returns:** ``Estimate(value, stderr)``.
    Under jit: an invalid T gives NaN.
    """
    check_temperature_scalar(T)
    n_pairs = check_size("n_pairs", n_pairs, 1, _MAX_DRAWS)
    if key is not None:
        check_key("key", key)
    _check_schedule(schedule, allow_none=True)
    ens = model.ensemble if isinstance(model, Diffused) else model
    labels = _check_labels(ens, labels) if isinstance(ens, AbstractEnsemble) else labels
    if key is None:
        if not isinstance(ens, AbstractEnsemble):
            raise ValueError("the exact cloning probability needs an ensemble; give key= to simulate a model")
        T = guard_temperature(jnp.asarray(T, jnp.result_type(float)))
        if isinstance(ens, TwoDeltas):
            return Estimate(_phi_two_deltas(ens, T), jnp.zeros_like(T))
        n_classes = None if labels is None else int(np.max(np.asarray(labels))) + 1
        y = ens.sample(jax.random.key(0), n_pairs)
        x = y + jnp.sqrt(T) * jax.random.normal(jax.random.key(1), y.shape, y.dtype)
        s = jax.vmap(lambda xi: jnp.sum(class_posterior(ens, xi, T, labels=labels, n_classes=n_classes) ** 2))(x)
        return Estimate(jnp.mean(s), jnp.std(s) / np.sqrt(n_pairs))

    if schedule is None:
        raise ValueError("schedule is required to simulate the cloning experiment")
    solver = EulerMaruyama() if solver is None else solver
    t_T = schedule.time_at_temperature(T)
    ts = time_grid(schedule, steps, grid, T_start=T, T_end=T_end)
    kx, k1, k2 = jax.random.split(key, 3)
    x0 = _states_at(model, schedule, t_T, kx, n_pairs, x_T)
    classify = _default_classifier(ens, schedule, ts[-1], labels) if classify is None else classify
    same = _clone_pairs(as_model(model, schedule), schedule, solver, ts, x0, k1, k2, classify)
    p = jnp.mean(same)
    return Estimate(p, jnp.sqrt(p * (1 - p) / n_pairs))


def _states_at(model, schedule, t, key, n, x_T):
    if x_T is not None:
        x_T = as_float_array("x_T", x_T, ndim=2)
        if x_T.shape[0] != n:
            raise ValueError(f"x_T must have n_pairs = {n} rows, got shape {x_T.shape}")
        return x_T
    ens = model.ensemble if isinstance(model, Diffused) else model
    if not isinstance(ens, AbstractEnsemble):
        raise ValueError("give x_T (states at T, shape (n, d)) to simulate a model that is not an ensemble")
    return Diffused(ens, schedule).sample_marginal(key, n, t)[1]


class _PosteriorClassifier(eqx.Module):
    """The Bayes classifier of a final state: argmax_c P(c | x/theta, T_end)."""

    ensemble: AbstractEnsemble
    theta: Array
    T_end: Array
    labels: Array | None
    n_classes: int | None = eqx.field(static=True)

    def __call__(self, x):
        return jnp.argmax(class_posterior(self.ensemble, x / self.theta, self.T_end, labels=self.labels, n_classes=self.n_classes))


def _default_classifier(ens, schedule, t_end, labels):
    if not isinstance(ens, AbstractEnsemble):
        raise ValueError("give classify=(final state -> int) for a model that is not an ensemble")
    n_classes = None if labels is None else int(np.max(np.asarray(labels))) + 1
    return _PosteriorClassifier(ens, schedule.signal_scale(t_end), schedule.temperature(t_end), labels, n_classes)


@eqx.filter_jit
def _clone_pairs(model, schedule, solver, ts, x0, k1, k2, classify):
    n = x0.shape[0]
    run = jax.vmap(lambda k, x: sample(model, schedule, solver, k, x, ts=ts))
    a = run(jax.random.split(k1, n), x0)
    b = run(jax.random.split(k2, n), x0)
    return (jax.vmap(classify)(a) == jax.vmap(classify)(b)).astype(x0.dtype)


def class_change_probability(
    model,
    schedule: AbstractSchedule,
    T: RealScalarLike,
    key: Key,
    *,
    y: Array | None = None,
    n: int = 4096,
    solver: AbstractSolver | None = None,
    steps: int = 100,
    grid: AbstractGrid | None = None,
    T_end: RealScalarLike | None = None,
    classify: Callable | None = None,
    labels=None,
) -> Estimate:
    """Forward-backward class change: noise data to T, regenerate, compare classes (theory 6).

    With the exact score this equals 1 - phi(T) (``cloning_probability``).

    **Arguments:**
    - ``model``, ``schedule``, ``T``, ``solver``, ``steps``, ``grid``, ``T_end``, ``classify``,
      ``labels``: as in ``cloning_probability``.
    - ``key``: PRNG key.
    - ``y``: clean data points (n, d) (default: ``n`` samples of the ensemble).

    **Returns:** ``Estimate(value, stderr)``.
    """
    check_temperature_scalar(T)
    check_key("key", key)
    _check_schedule(schedule)
    n = check_size("n", n, 1, _MAX_DRAWS)
    ens = model.ensemble if isinstance(model, Diffused) else model
    ky, kz, ks = jax.random.split(key, 3)
    if y is None:
        if not isinstance(ens, AbstractEnsemble):
            raise ValueError("give data points y (n, d) for a model that is not an ensemble")
        y = ens.sample(ky, n)
    y = as_float_array("y", y, ndim=2)
    labels = _check_labels(ens, labels) if isinstance(ens, AbstractEnsemble) else labels
    solver = EulerMaruyama() if solver is None else solver
    ts = time_grid(schedule, steps, grid, T_start=T, T_end=T_end)
    t_T = ts[0]
    x = schedule.signal_scale(t_T) * y + schedule.noise_scale(t_T) * jax.random.normal(kz, y.shape, y.dtype)
    classify = _default_classifier(ens, schedule, ts[-1], labels) if classify is None else classify
    theta_end = schedule.signal_scale(ts[-1])
    changed = _forward_backward(as_model(model, schedule), schedule, solver, ts, x, theta_end * y, ks, classify)
    p = jnp.mean(changed)
    return Estimate(p, jnp.sqrt(p * (1 - p) / y.shape[0]))


@eqx.filter_jit
def _forward_backward(model, schedule, solver, ts, x, y_scaled, key, classify):
    out = jax.vmap(lambda k, xi: sample(model, schedule, solver, k, xi, ts=ts))(jax.random.split(key, x.shape[0]), x)
    return (jax.vmap(classify)(out) != jax.vmap(classify)(y_scaled)).astype(x.dtype)


# ----------------------------------------------------------------------------- responses
def perturbation_response(
    model,
    schedule: AbstractSchedule,
    T: RealScalarLike,
    key: Key,
    x_T: Vector,
    *,
    v: Vector | None = None,
    solver: AbstractSolver | None = None,
    steps: int = 100,
    grid: AbstractGrid | None = None,
    T_end: RealScalarLike | None = None,
) -> Array:
    """|dx_0/dx_T . v| / |v|: how much a perturbation at temperature T moves the final sample.

    One forward-mode JVP through the whole sampler from T to ``T_end`` with the noise shared
    between the two runs (same key), theory section 6. ``v`` defaults to a random unit direction
    drawn from ``key``; E_v |J v|^2 = |J|_F^2/d for a random unit v.

    Both x_T and x_0 are in the schedule's native coordinates (multiply by theta_T/theta_end for
    the VE-picture response). As T_end -> 0 the response concentrates on the few trajectories
    that sit on a decision boundary (spikes of height ~1/T_end): average over many x_T, or stop
    at a moderate ``T_end`` (the default stops at max(T(t_min), 1e-4)).

    **Returns:** the scalar response.
    """
    check_temperature_scalar(T)
    check_key("key", key)
    _check_schedule(schedule)
    solver = EulerMaruyama() if solver is None else solver
    ts = time_grid(schedule, steps, grid, T_start=T, T_end=T_end)
    kv, ks = jax.random.split(key)
    x_T = as_float_array("x_T", x_T, ndim=1)
    if v is None:
        v = jax.random.normal(kv, x_T.shape, x_T.dtype)
    v = as_float_array("v", v, ndim=1)
    check_finite("x_T", x_T)
    check_finite("v", v)
    if v.shape != x_T.shape:
        raise ValueError(f"v must have the shape of x_T {x_T.shape}, got {v.shape}")
    m = as_model(model, schedule)
    f = lambda x: sample(m, schedule, solver, ks, x, ts=ts)
    _, jv = jax.jvp(f, (x_T,), (v,))
    return jnp.linalg.norm(jv) / jnp.linalg.norm(v)


def susceptibility_trace(
    model, schedule: AbstractSchedule, T: RealScalarLike, key: Key, x: Vector, *, n_probes: int = 16
) -> Estimate:
    """tr Cov[y | x_t] = T theta tr(dD/dx) by Hutchinson's estimator with Rademacher JVPs.

    Works for any denoiser/score model (theory sections 2 and 6: the fluctuation-dissipation
    relation Cov[y|x] = T dm_T/du in the VE picture u = x/theta). For an ensemble the exact
    value is ``jnp.trace(ensemble.posterior_cov(x/theta, T))``.

    **Arguments:** ``x`` is a state at temperature T in the schedule's native coordinates;
    ``n_probes`` >= 1 Rademacher vectors.

    **Returns:** ``Estimate(value, stderr)`` (stderr over the probes).
    """
    check_temperature_scalar(T)
    check_key("key", key)
    _check_schedule(schedule)
    n_probes = check_size("n_probes", n_probes, 1, 10**6)
    m = as_model(model, schedule)
    x = as_float_array("x", x, ndim=1)
    check_finite("x", x)
    t = schedule.time_at_temperature(T)
    theta = schedule.signal_scale(t)
    f = lambda xi: m.denoise(xi, t, schedule)
    vs = jax.random.rademacher(key, (n_probes,) + x.shape, x.dtype)
    quad = jax.vmap(lambda v: jnp.dot(v, jax.jvp(f, (x,), (v,))[1]))(vs) * T * theta
    se = jnp.std(quad, ddof=1) / np.sqrt(n_probes) if n_probes > 1 else jnp.zeros_like(quad[0])
    return Estimate(jnp.mean(quad), se)


def decision_sensitivity(ensemble: TwoDeltas, T: RealScalarLike) -> Array:
    """E_{x ~ p_T} |dP(+ | x)/dx . mu/|mu|| for two deltas: (a/(2T)) E[sech^2(mu.x/T)].

    How strongly the eventual class responds to a nudge at temperature T (theory section 6 note);
    its maximum lies below T_c (at T = 0.6630 a^2 by this definition), not at T_c.
    Under jit: an invalid T gives NaN.
    """
    if not isinstance(ensemble, TwoDeltas):
        raise TypeError(f"ensemble must be a TwoDeltas (decision_sensitivity is exact for it only), got {type(ensemble).__name__}")
    check_temperature_scalar(T)
    T = T if is_concrete(T) else guard_temperature(T)
    a, u, w = _two_delta_field(ensemble, T)
    return a / (2 * T) * jnp.sum(w / jnp.cosh(u) ** 2)


def speciation_temperature(temperatures, phi, *, level: float = PHI_CRITICAL) -> float:
    """The temperature where a measured cloning curve phi(T) crosses ``level`` (0.775200).

    Linear interpolation between the bracketing points of the (monotone decreasing in T) curve;
    compare with ``td.critical_temperature`` (theory section 6: phi(T_c) = 0.775200).
    """
    check_real("temperatures", temperatures, what="a 1-D array of temperatures")
    check_real("phi", phi, what="a 1-D array of cloning probabilities")
    check_scalar("level", level, what="a probability level in (0, 1)")
    check_range("level", level, 0.0, 1.0, lo_open=True, hi_open=True)
    Ts, ph = np.asarray(temperatures, float), np.asarray(phi, float)
    if Ts.ndim != 1 or Ts.shape != ph.shape or Ts.size < 2:
        raise ValueError(f"temperatures and phi must be 1-D of equal length >= 2, got {Ts.shape}, {ph.shape}")
    check_temperature(Ts, "temperatures")
    check_range("phi", ph, 0.0, 1.0)
    order = np.argsort(Ts)
    Ts, ph = Ts[order], ph[order]
    above = ph - level
    idx = np.nonzero(np.sign(above[:-1]) != np.sign(above[1:]))[0]
    if idx.size == 0:
        raise ValueError(f"phi never crosses {level:.6f} on [{Ts[0]:.4g}, {Ts[-1]:.4g}]: widen the temperature range")
    i = idx[0]
    f = above[i] / (above[i] - above[i + 1])
    return float(Ts[i] + f * (Ts[i + 1] - Ts[i]))


__all__ = [
    "PHI_CRITICAL",
    "Estimate",
    "class_change_probability",
    "class_posterior",
    "cloning_probability",
    "decision_sensitivity",
    "perturbation_response",
    "speciation_temperature",
    "susceptibility_trace",
]

