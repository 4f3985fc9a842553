"""Exact diagnostics of a denoiser against the exact empirical and population denoisers (theory 10).

For a training set Y = {y_1..y_n} (empirical law p_n) and any denoiser D(u, T) of the VE picture
(a trained ``Preconditioned`` network, or an ensemble), at every temperature T:

    L(T) = E|D(y + sqrt(T) z, T) - y|^2 = I(T) + E(T),
    I(T) = E_{x ~ p_n,T} tr Cov_n[y | x]          (irreducible: no denoiser does better),
    E(T) = E_{x ~ p_n,T} |D(x, T) - m^n_T(x)|^2   (excess over the exact empirical denoiser m^n),

and the generalisation error G(T) = E_{x ~ p_T} |D(x, T) - m_T(x)|^2 against the population
denoiser m_T (exact for an ensemble; for real data the empirical denoiser of a held-out set is a
*proxy*, named as such, and memorises its own points below its collapse temperature). Each is a
Monte Carlo mean over states with the integrand exact, returned as ``Estimate(value, stderr)``.

The memorisation fraction of generated samples is f_mem = P(d_1/d_2 < 1/3), d_1 <= d_2 the
distances to the two nearest training points (Yoon et al. 2023, Bonnaire et al. 2025), with a
bootstrap standard error. ``detect_tau_gen`` and ``detect_tau_mem`` read the generalisation time
and the memorisation onset off a training history (theory section 10).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Key
from ._dynamics import Estimate
from ._ensembles._base import AbstractEnsemble, as_float_array
from ._ensembles._finite import FiniteDataset
from ._models import as_model, denoise_ve
from ._nets import Preconditioned
from ._samplers import AbstractSolver, KarrasGrid, ProbabilityFlowHeun, sample, time_grid
from ._schedules import AbstractSchedule, VP
from ._speciation import nearest_points
from ._validate import check_finite, check_key, check_scalar, check_size, check_temperature

#: A generated sample counts as memorised when d_1/d_2 < 1/3 (theory section 10).
MEMORIZED_RATIO = 1.0 / 3.0


def ve_denoiser(model, schedule: AbstractSchedule | None = None):
    """f(u, T): the VE-picture denoiser of an ensemble, a ``Preconditioned`` net or any model
    (a sampler model is evaluated at the ``schedule`` time of T, default VP)."""
    if isinstance(model, (AbstractEnsemble, Preconditioned)):
        return model.denoiser
    schedule = VP() if schedule is None else schedule
    m = as_model(model, schedule)
    return lambda u, T: denoise_ve(m, u, T, schedule)


def masked_dataset(points: Array, n_valid) -> FiniteDataset:
    """The empirical law of points[:n_valid] (the rest carry zero weight; n_valid may be traced)."""
    w = (jnp.arange(points.shape[0]) < n_valid).astype(points.dtype)
    return FiniteDataset(points, w)


def _as_train(train) -> FiniteDataset:
    if isinstance(train, FiniteDataset):
        return train
    pts = as_float_array("train", train, ndim=2)
    check_finite("train", pts)
    return FiniteDataset(pts)


def _noisy_states(ens: FiniteDataset, T, key, n):
    ky, kz = jax.random.split(key)
    y = ens.sample(ky, n)
    return y, y + jnp.sqrt(T) * jax.random.normal(kz, y.shape, y.dtype)


def _mean_se(v):
    return Estimate(jnp.mean(v), jnp.std(v) / np.sqrt(v.shape[0]))


def _check_n(name, n, lo=2):
    """A count of states or samples: an integer in [lo, 10^8] (each is a d-vector held at once)."""
    check_size(name, n, lo, 10**8)


# ----------------------------------------------------------------------------- losses
def irreducible_loss(train, T, key: Key, *, n_states: int = 1024) -> Estimate:
    """I(T) = E_{x ~ p_n,T} tr Cov_n[y | x]: the lowest DSM loss at T (theory section 10).

    **Arguments:** ``train``: the training set (N, d) or a ``FiniteDataset``; ``T`` > 0 (VE);
    ``key``; ``n_states`` >= 2 Monte Carlo states.
    """
    check_key("key", key)
    check_temperature(T)
    _check_n("n_states", n_states)
    ens = _as_train(train)
    return _irreducible(ens, jnp.asarray(T, ens.chunks.dtype), key, n_states)


def _irreducible_raw(ens, T, key, n):
    _, x = _noisy_states(ens, T, key, n)
    return _mean_se(jax.vmap(lambda xi: ens.posterior_trace(xi, T))(x))


_irreducible = eqx.filter_jit(_irreducible_raw)


def excess_loss(model, train, T, key: Key, *, n_states: int = 1024, schedule=None) -> Estimate:
    """E(T) = E_{x ~ p_n,T} |D(x, T) - m^n_T(x)|^2, the excess over the exact empirical denoiser.

    **Arguments:** ``model``: a ``Preconditioned`` net, an ensemble, or any sampler model (then
    ``schedule`` maps T to its time, default VP); the rest as ``irreducible_loss``.
    """
    check_key("key", key)
    check_temperature(T)
    _check_n("n_states", n_states)
    ens = _as_train(train)
    return _excess(ve_denoiser(model, schedule), ens, jnp.asarray(T, ens.chunks.dtype), key, n_states)


def _excess_raw(f, ens, T, key, n):
    _, x = _noisy_states(ens, T, key, n)
    err = jax.vmap(lambda xi: jnp.sum((f(xi, T) - ens.denoiser(xi, T)) ** 2))(x)
    return _mean_se(err)


_excess = eqx.filter_jit(_excess_raw)


def denoising_loss(model, train, T, key: Key, *, n_states: int = 1024, schedule=None) -> Estimate:
    """L(T) = E|D(y + sqrt(T) z, T) - y|^2 over the training set: the unweighted DSM loss at T."""
    check_key("key", key)
    check_temperature(T)
    _check_n("n_states", n_states)
    ens = _as_train(train)
    return _dsm(ve_denoiser(model, schedule), ens, jnp.asarray(T, ens.chunks.dtype), key, n_states)


def _dsm_raw(f, ens, T, key, n):
    y, x = _noisy_states(ens, T, key, n)
    return _mean_se(jax.vmap(lambda yi, xi: jnp.sum((f(xi, T) - yi) ** 2))(y, x))


_dsm = eqx.filter_jit(_dsm_raw)


def generalization_error(model, reference, T, key: Key, *, n_states: int = 1024, schedule=None) -> Estimate:
    """G(T) = E_{x ~ p_T} |D(x, T) - m_T(x)|^2 against a population denoiser (theory section 10).

    **Arguments:**
    - ``model``: as in ``excess_loss``.
    - ``reference``: the population law as an ensemble (exact m_T, states x ~ p_T exactly), or a
      held-out set (M, d) / ``FiniteDataset``: then m_T is the held-out set's empirical denoiser,
      a *proxy* that is only meaningful above the held-out set's own collapse temperature.
    - ``T``, ``key``, ``n_states``, ``schedule``: as in ``excess_loss``.
    """
    check_key("key", key)
    check_temperature(T)
    _check_n("n_states", n_states)
    ens = reference if isinstance(reference, AbstractEnsemble) else _as_train(reference)
    dtype = ens.chunks.dtype if isinstance(ens, FiniteDataset) else jnp.result_type(float)
    return _generalization(ve_denoiser(model, schedule), ens, jnp.asarray(T, dtype), key, n_states)


def _generalization_raw(f, ens, T, key, n):
    ky, kz = jax.random.split(key)
    y = ens.sample(ky, n)
    x = y + jnp.sqrt(T) * jax.random.normal(kz, y.shape, y.dtype)
    return _mean_se(jax.vmap(lambda xi: jnp.sum((f(xi, T) - ens.denoiser(xi, T)) ** 2))(x))


_generalization = eqx.filter_jit(_generalization_raw)


# ----------------------------------------------------------------------------- memorisation
def memorization_fraction(samples, train, *, key: Key | None = None, n_boot: int = 1000,
                          ratio: float = MEMORIZED_RATIO) -> Estimate:
    """f_mem = P(d_1/d_2 < ratio) of samples against a training set, with a bootstrap stderr.

    **Arguments:**
    - ``samples``: generated samples (S, d) in data units (e.g. ``generate(...)``).
    - ``train``: the training set (N >= 2, d) or a ``FiniteDataset``.
    - ``key``: PRNG key of the bootstrap (default key 0); ``n_boot`` >= 2 resamples.
    - ``ratio``: the threshold on d_1/d_2 in (0, 1) (default 1/3).

    **Returns:** ``Estimate(f_mem, bootstrap standard error)``.
    """
    if key is not None:
        check_key("key", key)
    ens = _as_train(train)
    if ens.n_points < 2:
        raise ValueError("train must hold at least 2 points (f_mem compares the two nearest)")
    s = as_float_array("samples", samples, ndim=2)
    if s.shape[1] != ens.dim or s.shape[0] < 1:
        raise ValueError(f"samples must have shape (S >= 1, {ens.dim}), got {s.shape}")
    check_finite("samples", s)
    _check_n("n_boot", n_boot)
    check_scalar("ratio", ratio, what="a threshold in (0, 1)")
    if not 0 < ratio < 1:
        raise ValueError(f"ratio must lie in (0, 1), got {ratio!r}")
    key = jax.random.key(0) if key is None else key
    return _fmem(s.astype(ens.chunks.dtype), ens, key, n_boot, ratio)


def _fmem_raw(samples, ens, key, n_boot, ratio):
    d1, d2, _, _ = jax.vmap(lambda u: nearest_points(ens, u, jnp.ones((), u.dtype)))(samples)
    hit = (d1 < ratio * d2).astype(samples.dtype)
    idx = jax.random.randint(key, (n_boot, hit.shape[0]), 0, hit.shape[0])
    boot = jnp.mean(hit[idx], axis=1)
    return Estimate(jnp.mean(hit), jnp.std(boot, ddof=1))


_fmem = eqx.filter_jit(_fmem_raw)


def generate(model, key: Key, n: int, *, dim: int | None = None, schedule: AbstractSchedule | None = None,
             solver: AbstractSolver | None = None, steps: int = 50, T_start=None, T_end=None,
             mean=None, sigma_data=None) -> Array:
    """n samples of a model in data units: reverse dynamics from T_start to T_end, then E[y|x].

    Defaults: VP schedule, the probability-flow ODE by Heun's method (``ProbabilityFlowHeun``,
    second order, two evaluations per step) on a Karras grid of ``steps`` steps (Karras et al.
    2022), T_start = 1e3 sigma_data^2 and T_end = 1e-4 sigma_data^2, started from the isotropic
    Gaussian N(mean, (T_start + sigma_data^2) I) of the VE picture (exact to O(sigma_data^2/T_start)).
    Measured on a Gaussian with the exact score: 50 Heun steps reproduce the variance to 1%, while
    first-order samplers lose O(1/steps) of it (DDIM with 60 steps: 7-12%).
    ``mean``/``sigma_data`` default to a ``Preconditioned`` net's own, an ensemble's mean and
    sqrt(tr Cov/d), else 0 and 1.

    **Returns:** samples of shape (n, d).
    """
    check_key("key", key)
    _check_n("n", n, 1)
    schedule = VP() if schedule is None else schedule
    solver = ProbabilityFlowHeun() if solver is None else solver
    d = dim if dim is not None else getattr(model, "dim", None)
    if not isinstance(d, (int, np.integer)):
        raise ValueError("give dim= for a model that does not know its dimension")
    if isinstance(model, AbstractEnsemble):  # an exact law knows its own mean and scale
        mean = model.mean() if mean is None else mean
        sigma_data = float(jnp.sqrt(jnp.trace(model.covariance()) / model.dim)) if sigma_data is None else sigma_data
    sd = float(getattr(model, "sigma_data", 1.0) if sigma_data is None else sigma_data)
    mu = getattr(model, "data_mean", None) if mean is None else mean
    mu = jnp.zeros((d,)) if mu is None else jnp.asarray(mu)
    T_start = min(1e3 * sd**2, schedule.max_temperature()) if T_start is None else T_start  # the schedule's top at most
    T_end = 1e-4 * sd**2 if T_end is None else T_end
    ts = time_grid(schedule, steps, KarrasGrid(), T_start=T_start, T_end=T_end)
    return _generate(as_model(model, schedule), schedule, solver, key, n, ts, mu, jnp.asarray(sd, mu.dtype))


def _generate_raw(model, schedule, solver, key, n, ts, mu, sd):
    kx, ks = jax.random.split(key)
    t0 = ts[0]
    T0 = schedule.temperature(t0)
    u = mu[None, :] + jnp.sqrt(T0 + sd**2) * jax.random.normal(kx, (n,) + mu.shape, mu.dtype)
    x = schedule.signal_scale(t0) * u
    run = lambda k, xi: sample(model, schedule, solver, k, xi, ts=ts, denoise_final=True)
    return jax.vmap(run)(jax.random.split(ks, n), x)


_generate = eqx.filter_jit(_generate_raw)


# ----------------------------------------------------------------------------- monitor
class Diagnostics(eqx.Module):
    """What ``td.train`` measures at log-spaced steps, all against exact denoisers (theory 10).

    At each logged step and each temperature of ``temperatures``: the excess loss E(T) against
    the training set's exact empirical denoiser and the generalisation error G(T) (against the
    exact ``population`` ensemble, or the ``held_out`` set's empirical denoiser as a named
    proxy); once per run, the irreducible loss I(T); and f_mem of ``n_samples`` generated samples
    with its bootstrap error. The model evaluated is the EMA (``evaluate="ema"``) or the raw one.

    **Arguments:**
    - ``temperatures``: 1-D array of T > 0 (VE-equivalent).
    - ``population``: an ensemble (exact population law), or None.
    - ``held_out``: held-out points (M, d) for the proxy when there is no population, or None.
    - ``n_states``: Monte Carlo states per temperature (default 256).
    - ``n_samples``: generated samples for f_mem (default 256; 0 skips f_mem).
    - ``sample_steps``: Heun steps of those samples (default 32; ``generate`` uses 50).
    - ``n_floor``: training temperatures drawn for the loss floor (default 256; its stderr, from
      the spread of lambda(T) I(T) over T, is reported).
    - ``n_logs``: number of log-spaced logged steps (default 16).
    - ``evaluate``: ``"ema"`` (default) or ``"raw"``.
    """

    temperatures: Array
    population: AbstractEnsemble | None
    held_out: Array | None
    n_states: int = eqx.field(static=True)
    n_samples: int = eqx.field(static=True)
    sample_steps: int = eqx.field(static=True)
    n_logs: int = eqx.field(static=True)
    evaluate: str = eqx.field(static=True)
    n_floor: int = eqx.field(static=True)

    def __init__(self, temperatures, population=None, *, held_out=None, n_states: int = 256, n_samples: int = 256,
                 sample_steps: int = 32, n_logs: int = 16, evaluate: str = "ema", n_floor: int = 256):
        Ts = as_float_array("temperatures", temperatures)
        if Ts.ndim != 1 or Ts.shape[0] < 1:
            raise ValueError(f"temperatures must be a non-empty 1-D array, got shape {Ts.shape}")
        check_temperature(Ts, "temperatures")
        if population is not None and held_out is not None:
            raise ValueError("give population (an exact ensemble) or held_out (points), not both")
        if population is not None and not isinstance(population, AbstractEnsemble):
            raise TypeError(f"population must be an ensemble, got {type(population).__name__}")
        if held_out is not None:
            held_out = as_float_array("held_out", held_out, ndim=2)
            if held_out.shape[0] < 2:
                raise ValueError(f"held_out must hold at least 2 points, got {held_out.shape[0]}")
        _check_n("n_states", n_states)
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples == 1 or n_samples < 0:
            raise ValueError(f"n_samples must be 0 (no f_mem) or an integer >= 2, got {n_samples!r}")
        _check_n("sample_steps", sample_steps, 1)
        _check_n("n_logs", n_logs, 2)
        if evaluate not in ("ema", "raw"):
            raise ValueError(f"evaluate must be 'ema' or 'raw', got {evaluate!r}")
        self.temperatures, self.population, self.held_out = Ts, population, held_out
        self.n_states, self.n_samples, self.sample_steps = int(n_states), int(n_samples), int(sample_steps)
        self.n_logs, self.evaluate = int(n_logs), evaluate
        _check_n("n_floor", n_floor)
        self.n_floor = int(n_floor)

    @property
    def reference(self) -> str:
        if self.population is not None:
            return "population (exact)"
        if self.held_out is not None:
            return "held-out empirical denoiser (proxy)"
        return "none"

    def log_steps(self, total: int) -> np.ndarray:
        """Step 0 and ``n_logs - 1`` log-spaced steps up to ``total`` (unique integers)."""
        return np.unique(np.concatenate([[0], np.round(np.geomspace(1, max(total, 1), self.n_logs - 1))]).astype(int))

    def floor(self, points, n_valid, key, T_law=None) -> dict:
        """I(T) on the grid with its stderr; and, given ``T_law = (T samples, weights)``, the
        lowest value of the training objective E_T[lambda I]/d (the loss curve's floor) with its
        standard error over the drawn temperatures."""
        check_key("key", key)
        ens = masked_dataset(points, n_valid)
        k1, k2 = jax.random.split(key)
        irr = lambda T, k: _irreducible_raw(ens, T, k, self.n_states)

        Ts = self.temperatures.astype(points.dtype)
        est = jax.vmap(irr)(Ts, jax.random.split(k1, Ts.shape[0]))
        out = dict(irreducible=est.value, irreducible_se=est.stderr)
        if T_law is not None:
            TT, lam = T_law
            per = jax.vmap(irr)(TT.astype(points.dtype), jax.random.split(k2, TT.shape[0]))
            v = lam * per.value / points.shape[1]
            out["loss_floor"] = jnp.mean(v)
            out["loss_floor_se"] = jnp.std(v) / np.sqrt(v.shape[0])
        return out

    def __call__(self, model, points, n_valid, key) -> dict:
        """The diagnostics of one model at one step (jit and vmap friendly)."""
        ens = masked_dataset(points, n_valid)
        f = model.denoiser
        Ts = self.temperatures.astype(points.dtype)
        ke, kg, ks, kb = jax.random.split(key, 4)
        exc = jax.vmap(lambda T, k: _excess_raw(f, ens, T, k, self.n_states))(Ts, jax.random.split(ke, Ts.shape[0]))
        out = dict(excess=exc.value, excess_se=exc.stderr)
        ref = self.population if self.population is not None else (
            FiniteDataset(self.held_out.astype(points.dtype)) if self.held_out is not None else None)
        if ref is not None:
            gen = jax.vmap(lambda T, k: _generalization_raw(f, ref, T, k, self.n_states))(Ts, jax.random.split(kg, Ts.shape[0]))
            out.update(generalization=gen.value, generalization_se=gen.stderr)
        if self.n_samples:
            sd = model.sigma_data
            with jax.ensure_compile_time_eval():  # concrete parameters, also inside td.train's trace
                sched = VP()
                top = sched.max_temperature()
            T_top = jnp.minimum(1e3 * sd**2, top)  # sd may be traced (inside td.train)
            ts = time_grid(sched, self.sample_steps, KarrasGrid(), T_start=T_top, T_end=1e-4 * sd**2)
            x = _generate_raw(model, sched, ProbabilityFlowHeun(), ks, self.n_samples, ts, model.data_mean, sd)
            fm = _fmem_raw(x, ens, kb, 500, MEMORIZED_RATIO)
            out.update(f_mem=fm.value, f_mem_se=fm.stderr)
        return out


# ----------------------------------------------------------------------------- onset times
def _log_interp(s0, s1, f):
    s0, s1 = max(float(s0), 1.0), max(float(s1), 1.0)
    return float(np.exp(np.log(s0) + f * (np.log(s1) - np.log(s0))))


def detect_tau_gen(steps, gen_error, *, fraction: float = 0.9) -> float | None:
    """Generalisation time: the first step at which ``fraction`` of the total drop of the
    generalisation error (from its first value to its minimum) is reached, interpolated in log
    step; None if it never drops. ``gen_error`` is one number per logged step (e.g. G summed
    over the temperature grid)."""
    s, g = np.asarray(steps, float), np.asarray(gen_error, float)
    if s.ndim != 1 or s.shape != g.shape or s.size < 2:
        raise ValueError(f"steps and gen_error must be 1-D of equal length >= 2, got {s.shape}, {g.shape}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    drop = g[0] - np.min(g)
    if not drop > 0:
        return None
    level = g[0] - fraction * drop
    i = int(np.argmax(g <= level))
    if i == 0:
        return float(s[0])
    f = (g[i - 1] - level) / (g[i - 1] - g[i])
    return _log_interp(s[i - 1], s[i], f)


def detect_tau_mem(steps, f_mem, *, threshold: float = 0.1) -> float | None:
    """Memorisation onset: the first step at which f_mem reaches ``threshold`` (default 0.1),
    interpolated in log step; None if it never does (theory section 10)."""
    s, f = np.asarray(steps, float), np.asarray(f_mem, float)
    if s.ndim != 1 or s.shape != f.shape or s.size < 1:
        raise ValueError(f"steps and f_mem must be 1-D of equal length >= 1, got {s.shape}, {f.shape}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
    above = f >= threshold
    if not above.any():
        return None
    i = int(np.argmax(above))
    if i == 0:
        return float(s[0])
    return _log_interp(s[i - 1], s[i], (threshold - f[i - 1]) / (f[i] - f[i - 1]))


__all__ = [
    "MEMORIZED_RATIO",
    "denoising_loss",
    "detect_tau_gen",
    "detect_tau_mem",
    "excess_loss",
    "generalization_error",
    "generate",
    "irreducible_loss",
    "masked_dataset",
    "memorization_fraction",
    "ve_denoiser",
]
