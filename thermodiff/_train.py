"""Denoising score matching: the objective, its noise levels and weightings, and the training loop.

In the VE picture (theory section 1) a denoiser D_theta(u, T) is trained on

    L = E_T lambda(T) E_{y ~ p_n, z ~ N(0, I)} |D_theta(y + sqrt(T) z, T) - y|^2 / d,

the per-coordinate squared error weighted by lambda(T), with T drawn from a noise-level law.
Every schedule maps to this (a native state x_t is the VE state x_t/theta at T(t)); the schedule
enters only through the law of T (uniform in *its* diffusion time) and the sampler used later.
At every T the unweighted loss splits exactly into an irreducible part and the excess over the
exact empirical denoiser (theory section 10; ``td.irreducible_loss``, ``td.excess_loss``).

``Trainer`` holds the recipe (optimizer, schedule, noise levels, weighting, batch, EMA, clipping,
temperature range). ``trainer.init`` makes a ``TrainState``; ``trainer.step`` takes one step;
``trainer.run`` takes many as one compiled loop (no per-step Python dispatch). ``td.train`` is the
driver: chunks of steps, diagnostics at log-spaced steps, checkpoints, a progress bar, and
``vmap=True`` to train a stack of models (seeds, dataset sizes) in one call.

Per-step randomness is ``fold_in(key, step)``: a run cut into chunks, or resumed from a
checkpoint, draws exactly the same batches, noise levels and noise as an uninterrupted one.
"""

from __future__ import annotations

import abc
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._custom_types import Array, Key
from ._nets import Preconditioned
from ._schedules import AbstractSchedule, VP
from ._validate import check_finite, check_int, check_key, check_real, check_temperature, check_temperature_scalar, concrete


# ----------------------------------------------------------------------------- noise levels
class AbstractNoiseLevels(eqx.Module):
    """A law of training temperatures T (VE-equivalent noise variances)."""

    @abc.abstractmethod
    def sample(self, key: Key, n: int, schedule: AbstractSchedule, T_min, T_max, sigma_data) -> Array:
        """n temperatures, shape (n,)."""


def _uniform_in_time(u, schedule, T_min, T_max):
    t0, t1 = schedule.time_at_temperature(T_min), schedule.time_at_temperature(T_max)
    return jnp.clip(schedule.temperature(t0 + u * (t1 - t0)), T_min, T_max)


class UniformTime(AbstractNoiseLevels):
    """t uniform between the schedule times of T_min and T_max; T = T(t) (the DDPM / score-SDE law)."""

    def sample(self, key, n, schedule, T_min, T_max, sigma_data):
        check_key("key", key)
        return _uniform_in_time(jax.random.uniform(key, (n,)), schedule, T_min, T_max)


class LowDiscrepancy(AbstractNoiseLevels):
    """Stratified uniform times, u_i = (u_0 + i/n) mod 1 (Kingma et al. 2021): the same law as
    ``UniformTime`` with a lower-variance batch estimate of the loss."""

    def sample(self, key, n, schedule, T_min, T_max, sigma_data):
        check_key("key", key)
        u = jnp.mod(jax.random.uniform(key, ()) + jnp.arange(n) / n, 1.0)
        return _uniform_in_time(u, schedule, T_min, T_max)


class LogNormal(AbstractNoiseLevels):
    """EDM's law (Karras et al. 2022): log(sigma/sigma_data) ~ N(p_mean + log 2, p_std^2), T = sigma^2.

    The defaults p_mean = -1.2, p_std = 1.2 are EDM's for data with sigma_data = 0.5; the shift
    log 2 = -log 0.5 carries them to any data scale. Clipped to [T_min, T_max].
    """

    p_mean: float = -1.2
    p_std: float = 1.2

    def __check_init__(self):
        s = concrete(self.p_std)
        if s is not None and not (np.isfinite(s) and s > 0):
            raise ValueError(f"LogNormal: p_std must be finite and > 0, got {s!r}")

    def sample(self, key, n, schedule, T_min, T_max, sigma_data):
        check_key("key", key)
        log_sigma = jnp.log(sigma_data / 0.5) + self.p_mean + self.p_std * jax.random.normal(key, (n,))
        return jnp.clip(jnp.exp(2 * log_sigma), T_min, T_max)


# ----------------------------------------------------------------------------- weightings
class AbstractWeighting(eqx.Module):
    """lambda(T): the weight of the squared denoising error |D - y|^2 at temperature T."""

    @abc.abstractmethod
    def __call__(self, T, sigma_data) -> Array: ...


class UnitWeighting(AbstractWeighting):
    """lambda = 1: the plain clean-data (x0) regression, the L(T) of theory section 10."""

    def __call__(self, T, sigma_data):
        return jnp.ones_like(T)


class NoiseVarianceWeighting(AbstractWeighting):
    """lambda = 1/T: score matching with Song et al.'s lambda(t) = s(t)^2 in any schedule
    (s^2 |s_theta - grad log p(x_t|y)|^2 = |D - y|^2/T), i.e. the epsilon-prediction loss."""

    def __call__(self, T, sigma_data):
        return 1 / T


class EDMWeighting(AbstractWeighting):
    """lambda = (T + sigma_data^2)/(T sigma_data^2) = 1/c_out^2 (Karras et al. 2022): with EDM
    preconditioning the raw network's regression error has unit weight at every T."""

    def __call__(self, T, sigma_data):
        return (T + sigma_data**2) / (T * sigma_data**2)


class SNRWeighting(AbstractWeighting):
    """lambda = min(SNR, gamma) with SNR = sigma_data^2/T (Min-SNR-gamma, Hang et al. 2023).

    ``gamma=None`` is the plain SNR weighting (proportional to ``NoiseVarianceWeighting``).
    """

    gamma: float | None = 5.0

    def __check_init__(self):
        g = None if self.gamma is None else concrete(self.gamma)
        if g is not None and not (np.isfinite(g) and g > 0):
            raise ValueError(f"SNRWeighting: gamma must be > 0 or None, got {g!r}")

    def __call__(self, T, sigma_data):
        snr = sigma_data**2 / T
        return snr if self.gamma is None else jnp.minimum(snr, self.gamma)


# ----------------------------------------------------------------------------- state
class TrainState(eqx.Module):
    """Everything that changes during training (a pytree; checkpoints serialise it).

    - ``model``: the trained ``Preconditioned`` network.
    - ``ema``: its exponential moving average (the model to sample with).
    - ``opt_state``: the optax state of the trainable parameters.
    - ``step``: steps taken (int32 scalar).
    - ``key``: raw key data (uint32) of the run; step k uses fold_in(key, k).
    """

    model: Preconditioned
    ema: Preconditioned
    opt_state: object
    step: Array
    key: Array


def trainable(model: Preconditioned):
    """Filter spec: the network's inexact arrays train; sigma_data and the data mean do not."""
    spec = jax.tree.map(lambda _: False, model)
    return eqx.tree_at(lambda m: m.net, spec, jax.tree.map(eqx.is_inexact_array, model.net))


def _check_int(name, value, lo, hi=10**9):
    """An integer in [lo, hi]; the default cap (10^9 steps, batch rows, ...) is far past any run
    that finishes, and keeps the int32 step counters and host-side schedules finite."""
    return check_int(name, value, lo, hi)


# One instance, so that default trainers hash alike and reuse one compilation (an optax
# transformation is static in a jit and hashes by the identity of its functions).
_DEFAULT_OPTIMIZER = optax.adam(1e-3)


class Trainer(eqx.Module):
    """The training recipe of denoising score matching (module docstring; theory section 10).

    **Arguments:**
    - ``optimizer``: any optax ``GradientTransformation`` (default ``optax.adam(1e-3)``). It is a
      static part of the compiled loop, hashed by identity: reuse one optimizer object across
      calls to reuse their compilation.
    - ``schedule``: the forward process whose time the noise levels are uniform in (default VP()).
    - ``noise``: ``UniformTime()`` (default), ``LowDiscrepancy()`` or ``LogNormal()``.
    - ``weighting``: ``EDMWeighting()`` (default), ``UnitWeighting()``,
      ``NoiseVarianceWeighting()`` or ``SNRWeighting(gamma)``.
    - ``T_min``, ``T_max``: the training temperature range, 0 < T_min < T_max (the driver
      ``td.train`` defaults it to [1e-4, 1e3] sigma_data^2).
    - ``batch_size``: examples per step, >= 1 (default 512).
    - ``ema_decay``: EMA decay in [0, 1) (default 0.999, reached after a warm-up, see
      ``ema_decay_at``; 0 makes the EMA the model itself).
    - ``grad_clip``: clip the gradient's global norm to this (> 0), or None (default 1.0).
    """

    optimizer: optax.GradientTransformation = eqx.field(static=True)
    schedule: AbstractSchedule
    noise: AbstractNoiseLevels
    weighting: AbstractWeighting
    T_min: float
    T_max: float
    batch_size: int = eqx.field(static=True)
    ema_decay: float
    grad_clip: float | None = eqx.field(static=True)

    def __init__(self, optimizer=None, schedule=None, noise=None, weighting=None, *, T_min, T_max,
                 batch_size: int = 512, ema_decay: float = 0.999, grad_clip: float | None = 1.0):
        self.optimizer = _DEFAULT_OPTIMIZER if optimizer is None else optimizer
        if not isinstance(self.optimizer, optax.GradientTransformation):
            raise TypeError(f"optimizer must be an optax GradientTransformation, got {type(self.optimizer).__name__}")
        self.schedule = VP() if schedule is None else schedule
        if not isinstance(self.schedule, AbstractSchedule):
            raise TypeError(f"schedule must be a thermodiff schedule (VE, VP, DDPM, OU, Cosine), got {type(self.schedule).__name__}")
        self.noise = UniformTime() if noise is None else noise
        if not isinstance(self.noise, AbstractNoiseLevels):
            raise TypeError(f"noise must be UniformTime(), LowDiscrepancy() or LogNormal(), got {type(self.noise).__name__}")
        self.weighting = EDMWeighting() if weighting is None else weighting
        if not isinstance(self.weighting, AbstractWeighting):
            raise TypeError(f"weighting must be EDMWeighting(), UnitWeighting(), NoiseVarianceWeighting() or SNRWeighting(), "
                            f"got {type(self.weighting).__name__}")
        check_temperature_scalar(T_min, "T_min")
        check_temperature_scalar(T_max, "T_max")
        if not float(T_min) < float(T_max):
            raise ValueError(f"T_min must be < T_max, got T_min={T_min!r}, T_max={T_max!r}")
        top = self.schedule.max_temperature()
        if float(T_max) > top * (1 + 1e-6):
            raise ValueError(
                f"T_max = {float(T_max):.6g} exceeds the largest temperature the {type(self.schedule).__name__} "
                f"schedule reaches ({top:.6g}); rescale the data (sigma_data ~ 1) or pass a schedule that "
                "reaches it, e.g. td.VE(sigma_max=...)"
            )
        self.T_min, self.T_max = float(T_min), float(T_max)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        if not (isinstance(ema_decay, (int, float, np.floating)) and 0 <= ema_decay < 1):
            raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay!r}")
        self.ema_decay = float(ema_decay)
        if grad_clip is not None and not (isinstance(grad_clip, (int, float, np.floating)) and np.isfinite(grad_clip) and grad_clip > 0):
            raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
        self.grad_clip = None if grad_clip is None else float(grad_clip)

    @property
    def transform(self) -> optax.GradientTransformation:
        """The optimizer, preceded by global-norm clipping when ``grad_clip`` is set."""
        if self.grad_clip is None:
            return self.optimizer
        return optax.chain(optax.clip_by_global_norm(self.grad_clip), self.optimizer)

    def init(self, model: Preconditioned, key: Key) -> TrainState:
        """A fresh ``TrainState`` at step 0 (the EMA starts at the model)."""
        check_key("key", key)
        if not isinstance(model, Preconditioned):
            raise TypeError(f"model must be a td.Preconditioned network, got {type(model).__name__}")
        params = eqx.filter(model, trainable(model))
        return TrainState(model=model, ema=model, opt_state=self.transform.init(params),
                          step=jnp.zeros((), jnp.int32), key=_key_data(key))

    # -------------------------------------------------------------- the objective
    def loss(self, model: Preconditioned, y: Array, T: Array, z: Array) -> Array:
        """The weighted DSM loss of a batch: mean_i lambda(T_i) |D(y_i + sqrt(T_i) z_i, T_i) - y_i|^2 / d."""
        u = y + jnp.sqrt(T)[:, None] * z
        D = jax.vmap(model.denoiser)(u, T)
        lam = self.weighting(T, model.sigma_data)
        return jnp.mean(lam * jnp.sum((D - y) ** 2, axis=1)) / y.shape[1]

    def batch(self, state: TrainState, data: Array, n_valid) -> tuple[Array, Array, Array]:
        """(y, T, z) of the state's current step: points drawn uniformly from data[:n_valid]."""
        k = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
        kb, kT, kz = jax.random.split(k, 3)
        idx = jax.random.randint(kb, (self.batch_size,), 0, n_valid)
        y = data[idx]
        T = self.noise.sample(kT, self.batch_size, self.schedule, self.T_min, self.T_max, state.model.sigma_data)
        z = jax.random.normal(kz, y.shape, y.dtype)
        return y, T.astype(y.dtype), z

    def ema_decay_at(self, step) -> Array:
        """The EMA decay at a step, with warm-up: min(ema_decay, (1 + step)/(10 + step)).

        Without warm-up a decay of 0.999 keeps 2/3 of the *initial* weights in the average after
        400 steps; with it the average follows the model early and settles to ``ema_decay``.
        """
        step = jnp.asarray(step, jnp.float32)
        return jnp.minimum(self.ema_decay, (1 + step) / (10 + step))

    def step(self, state: TrainState, data: Array, n_valid=None) -> tuple[TrainState, Array]:
        """One optimisation step; returns (new state, loss of the step's batch)."""
        n_valid = data.shape[0] if n_valid is None else n_valid
        spec = trainable(state.model)
        params, static = eqx.partition(state.model, spec)
        y, T, z = self.batch(state, data, n_valid)
        loss, grads = jax.value_and_grad(lambda p: self.loss(eqx.combine(p, static), y, T, z))(params)
        updates, opt_state = self.transform.update(grads, state.opt_state, params)
        params = eqx.apply_updates(params, updates)
        ema_params = eqx.filter(state.ema, spec)
        decay = self.ema_decay_at(state.step)
        ema_params = jax.tree.map(lambda e, p: e + (1 - decay) * (p - e), ema_params, params)
        return TrainState(
            model=eqx.combine(params, static), ema=eqx.combine(ema_params, static), opt_state=opt_state,
            step=state.step + 1, key=state.key,
        ), loss

    def run(self, state: TrainState, data: Array, n_valid, n_steps, max_steps: int) -> tuple[TrainState, Array]:
        """``n_steps`` (<= ``max_steps``, may be traced) steps as one loop; losses padded with NaN to max_steps."""
        losses = jnp.full((max_steps,), jnp.nan, data.dtype)

        def body(i, carry):
            s, ls = carry
            s, loss = self.step(s, data, n_valid)
            return s, ls.at[i].set(loss.astype(ls.dtype))

        return jax.lax.fori_loop(0, n_steps, body, (state, losses))


def _key_data(key) -> Array:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    if key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
        return key
    raise TypeError(f"key must be a PRNG key (jax.random.key(seed)), got dtype {key.dtype} shape {key.shape}")


@eqx.filter_jit
def _step_jit(trainer, state, data, n_valid):
    return trainer.step(state, data, n_valid)


@eqx.filter_jit
def _run_jit(trainer, state, data, n_valid, n_steps, max_steps, vmapped):
    if vmapped:
        return eqx.filter_vmap(lambda s, n: trainer.run(s, data, n, n_steps, max_steps))(state, n_valid)
    return trainer.run(state, data, n_valid, n_steps, max_steps)


def train_step(trainer: Trainer, state: TrainState, data, *, n_valid=None) -> tuple[TrainState, Array]:
    """One jitted training step (the loop a user would write from the equinox example)."""
    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainer must be a td.Trainer, got {type(trainer).__name__}")
    check_real("data", data, what="an (N, d) array of training points")
    data = jnp.asarray(data)
    d = state.model.data_mean.shape[-1]
    if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] != d:
        raise ValueError(f"data must have shape (N >= 1, {d}) to match the model, got {data.shape}")
    check_finite("data", data)
    return _step_jit(trainer, state, data, jnp.asarray(data.shape[0] if n_valid is None else n_valid, jnp.int32))


# ----------------------------------------------------------------------------- the driver
@dataclasses.dataclass
class TrainResult:
    """What ``td.train`` returns.

    - ``state``: the final ``TrainState`` (``state.model`` raw, ``state.ema`` the average).
    - ``model``: the model to use (the EMA; the raw model when ``ema_decay`` = 0).
    - ``trainer``: the recipe.
    - ``losses``: the loss of every step, shape (steps,) or (M, steps) for M vmapped models.
    - ``history``: the diagnostics: ``step`` (L,), ``excess``/``generalization`` (+ ``_se``)
      (L, K) or (L, M, K), ``f_mem``/``f_mem_se`` (L,) or (L, M), and the run constants
      ``temperatures`` (K,), ``irreducible``/``irreducible_se`` ((K,) or (M, K)), ``loss_floor``
      and ``loss_floor_se``.
      Empty without ``diagnostics``.
    - ``tau_gen``, ``tau_mem``: detected generalisation time and memorisation onset (steps;
      None if not reached; lists for vmapped models).
    - ``wall_s``, ``steps_per_s``: training time (excluding diagnostics) and rate of this call.
    """

    state: TrainState
    trainer: Trainer
    losses: np.ndarray
    history: dict
    tau_gen: object = None
    tau_mem: object = None
    wall_s: float = 0.0
    steps_per_s: float = 0.0

    @property
    def model(self) -> Preconditioned:
        return self.state.ema


_RECIPE = ("optimizer", "schedule", "noise", "weighting", "T_min", "T_max", "batch_size", "ema_decay", "grad_clip")


def _validate_data(data, model, vmap):
    from ._ensembles._base import as_float_array
    from ._validate import check_finite

    pts = as_float_array("data", data, ndim=2)
    if pts.shape[0] < 1:
        raise ValueError("data must hold at least one point, got an empty array")
    check_finite("data", pts)
    if pts.shape[1] != model.dim:
        raise ValueError(f"data have dimension d = {pts.shape[1]} but the model acts on d = {model.dim}")
    return pts


def _validate_n_points(n_points, N, M):
    if n_points is None:
        return np.full((M,), N, np.int32) if M else np.int32(N)
    arr = np.asarray(n_points)
    if not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1) or np.any(arr > N):
        raise ValueError(f"n_points must be integers in [1, {N}] (the number of data points), got {n_points!r}")
    if M:
        if arr.ndim == 0:
            arr = np.full((M,), int(arr))
        if arr.shape != (M,):
            raise ValueError(f"n_points must be one integer or one per model, shape ({M},), got shape {arr.shape}")
        return arr.astype(np.int32)
    if arr.ndim != 0:
        raise ValueError(f"n_points must be one integer without vmap=True, got shape {arr.shape}")
    return np.int32(arr)


def _n_models(model) -> int:
    sd = np.shape(model.sigma_data)
    if len(sd) != 1:
        raise ValueError("vmap=True needs a stack of models (leading axis M on every array, e.g. from "
                         "eqx.filter_vmap(make)(keys) or td.stack_models); got an unbatched model")
    return int(sd[0])


def stack_models(models) -> Preconditioned:
    """Stack a list of models with the same architecture along a new leading axis (for vmap=True)."""
    models = list(models)
    if not models:
        raise ValueError("models must be a non-empty list")
    try:
        return jax.tree.map(lambda *xs: jnp.stack(xs), *models)
    except ValueError as err:
        raise ValueError(f"models must share one architecture to be stacked ({err})") from None


def _default_trainer(model, recipe, M):
    sd = float(np.max(np.asarray(model.sigma_data))) if M else float(model.sigma_data)
    recipe = dict(recipe)
    recipe.setdefault("T_min", 1e-4 * sd**2)
    top = (recipe.get("schedule") or VP()).max_temperature()
    recipe.setdefault("T_max", min(1e3 * sd**2, top))  # the schedule's top at most
    return Trainer(**recipe)


def _boundaries(start, total, chunk, extra):
    pts = set(range(start - start % chunk + chunk, total, chunk)) | {total}
    pts |= {int(e) for e in extra if start < e <= total}
    return sorted(p for p in pts if p > start)


def train(model, data, *, key, steps: int, trainer: Trainer | None = None, diagnostics=None, n_points=None,
          vmap: bool = False, checkpoint=None, checkpoint_every: int | None = None, resume: bool = False,
          chunk: int = 1000, progress: bool = True, metadata: dict | None = None, **recipe) -> TrainResult:
    """Train a ``Preconditioned`` network by denoising score matching (theory section 10).

    **Arguments:**
    - ``model``: a ``td.Preconditioned`` network (or, with ``vmap=True``, a stack of M of them).
    - ``data``: the training set (N, d), finite.
    - ``key``: PRNG key of the run (with ``vmap``, split into one key per model).
    - ``steps``: the total number of steps (a resumed run continues up to it), >= 1.
    - ``trainer``: a ``td.Trainer``; or give its arguments here (``optimizer``, ``schedule``,
      ``noise``, ``weighting``, ``T_min``, ``T_max``, ``batch_size``, ``ema_decay``,
      ``grad_clip``); T_min/T_max default to [1e-4, 1e3] sigma_data^2.
    - ``diagnostics``: a ``td.Diagnostics`` to evaluate at log-spaced steps, or None.
    - ``n_points``: train on data[:n] (one int; with ``vmap``, one per model: dataset sizes as masks).
    - ``vmap``: train the stack of models in one call (seeds, sizes).
    - ``checkpoint``: a directory to save to every ``checkpoint_every`` steps (default: at the end
      and at every logged step) and at the end; ``resume=True`` continues from it if it exists.
    - ``chunk``: most steps per compiled loop call (default 1000).
    - ``progress``: a progress bar on stderr.
    - ``metadata``: extra JSON-able metadata for the checkpoint.

    **Returns:** a ``TrainResult``.
    """
    check_key("key", key)
    import time

    from ._progress import Progress
    from ._checkpoint import checkpoint_exists, save_checkpoint
    from ._diagnostics import Diagnostics, detect_tau_gen, detect_tau_mem

    if not isinstance(model, Preconditioned):
        raise TypeError(f"model must be a td.Preconditioned network, got {type(model).__name__}")
    unknown = set(recipe) - set(_RECIPE)
    if unknown:
        raise TypeError(f"train() got unexpected arguments {sorted(unknown)}")
    if trainer is not None and recipe:
        raise ValueError(f"give either trainer or its arguments {sorted(recipe)}, not both")
    steps = _check_int("steps", steps, 1)
    chunk = _check_int("chunk", chunk, 1)
    if checkpoint_every is not None:
        checkpoint_every = _check_int("checkpoint_every", checkpoint_every, 1)
    if diagnostics is not None and not isinstance(diagnostics, Diagnostics):
        raise TypeError(f"diagnostics must be a td.Diagnostics, got {type(diagnostics).__name__}")
    M = _n_models(model) if vmap else 0
    pts_np = _validate_data(data, model, vmap)
    n_valid = jnp.asarray(_validate_n_points(n_points, pts_np.shape[0], M))
    trainer = _default_trainer(model, recipe, M) if trainer is None else trainer
    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainer must be a td.Trainer, got {type(trainer).__name__}")
    points = jnp.asarray(pts_np, model.data_mean.dtype)
    keys = jax.random.split(key, M) if M else key

    if resume and checkpoint is not None and checkpoint_exists(checkpoint):
        state, history, losses = _resume(checkpoint, trainer, pts_np, M)
    else:
        state = eqx.filter_vmap(trainer.init)(model, keys) if M else trainer.init(model, keys)
        history, losses = {}, []
    start = int(np.max(np.asarray(state.step)))
    if start > steps:
        raise ValueError(f"the checkpoint is at step {start}, beyond steps = {steps}")

    diag_steps = diagnostics.log_steps(steps) if diagnostics is not None else np.zeros((0,), int)
    ck_steps = set(range(checkpoint_every, steps, checkpoint_every)) if checkpoint_every else set(diag_steps.tolist())
    # the diagnostics' randomness, per model: a vmapped run measures exactly what a loop would
    fold = lambda k, i: jax.vmap(jax.random.fold_in, (0, None))(k, i) if M else jax.random.fold_in(k, i)
    run_key = fold(keys, 2**31 - 1)
    evaluate = _evaluator(diagnostics, M) if diagnostics is not None else None
    if diagnostics is not None and "irreducible" not in history:
        history.update(_floor(diagnostics, trainer, state.model, points, n_valid, run_key, M))
        history["temperatures"] = np.asarray(diagnostics.temperatures)

    bar = Progress(enabled=progress, stages=("training",))
    bar.stage("training")
    t_train, done = 0.0, 0
    meta = dict(metadata or {}, diagnostics_reference=diagnostics.reference if diagnostics is not None else None)
    step = start
    for b in [start] + _boundaries(start, steps, chunk, set(diag_steps.tolist()) | ck_steps):
        if b > step:
            t0 = time.perf_counter()
            state, ls = _run_jit(trainer, state, points, n_valid, jnp.asarray(b - step, jnp.int32), chunk, bool(M))
            ls = np.asarray(ls)[..., : b - step]
            t_train += time.perf_counter() - t0
            done += b - step
            losses.append(ls)
            step = b
            bar.suffix = f"  step {step}/{steps}  loss {np.mean(ls[..., -min(50, ls.shape[-1]):]):.4g}"
            bar.update(step, steps)
        if evaluate is not None and step in set(diag_steps.tolist()) and not _logged(history, step):
            rec = evaluate(state, points, n_valid, fold(run_key, step))
            _append(history, step, rec)
        if checkpoint is not None and (step in ck_steps or step == steps) and step > start:
            save_checkpoint(checkpoint, state, trainer, data=pts_np, n_models=M or None,
                            history=dict(history, losses=np.concatenate(losses, axis=-1) if losses else np.zeros((0,))),
                            extra=meta)
    bar.finish()
    all_losses = np.concatenate(losses, axis=-1) if losses else np.zeros((M, 0) if M else (0,))
    tau_gen, tau_mem = _taus(history, M, detect_tau_gen, detect_tau_mem)
    return TrainResult(state=state, trainer=trainer, losses=all_losses, history=history, tau_gen=tau_gen,
                       tau_mem=tau_mem, wall_s=t_train, steps_per_s=done / t_train if t_train > 0 else 0.0)


def _resume(checkpoint, trainer, pts_np, M):
    """(state, diagnostic history, [losses so far]) of a checkpoint this run can continue."""
    from ._checkpoint import CheckpointError, load_checkpoint

    ck = load_checkpoint(checkpoint, trainer, data=pts_np)
    if (ck.meta.get("n_models") or 0) != M:
        raise CheckpointError(f"checkpoint holds {ck.meta.get('n_models') or 1} model(s), this run trains {M or 1}")
    history = {k: v for k, v in ck.history.items() if k != "losses"}
    return ck.state, history, [ck.history["losses"]] if "losses" in ck.history else []


def _evaluator(diagnostics, M):
    def one(state, points, n, key):
        model = state.ema if diagnostics.evaluate == "ema" else state.model
        return diagnostics(model, points, n, key)

    if M:
        f = eqx.filter_jit(eqx.filter_vmap(one, in_axes=(0, None, 0, 0)))
    else:
        f = eqx.filter_jit(one)
    return lambda s, p, n, k: {name: np.asarray(v) for name, v in f(s, p, n, k).items()}


def _floor(diagnostics, trainer, model, points, n_valid, key, M):
    """I(T) on the diagnostic grid and the floor E_T[lambda I]/d of the training objective."""

    def one(model, n, k):
        kT, kf = jax.random.split(k)
        sd = model.sigma_data
        TT = trainer.noise.sample(kT, diagnostics.n_floor, trainer.schedule, trainer.T_min, trainer.T_max, sd)
        return diagnostics.floor(points, n, kf, (TT, trainer.weighting(TT, sd)))

    f = eqx.filter_jit(eqx.filter_vmap(one) if M else one)
    out = f(model, n_valid, key)
    return {k: np.asarray(v) for k, v in out.items()}


def _logged(history, step) -> bool:
    return "step" in history and int(step) in set(np.asarray(history["step"]).astype(int).tolist())


def _append(history, step, rec):
    for k, v in dict(rec, step=np.asarray(step)).items():
        v = np.asarray(v)[None]
        history[k] = v if k not in history else np.concatenate([history[k], v], axis=0)


def _taus(history, M, detect_gen, detect_mem):
    if "step" not in history or len(history["step"]) < 2:
        return None, None
    s = history["step"]

    def one(gen, fm):
        tg = detect_gen(s, gen.sum(-1)) if gen is not None else None
        tm = detect_mem(s, fm) if fm is not None else None
        return tg, tm

    gen, fm = history.get("generalization"), history.get("f_mem")
    if not M:
        return one(gen, fm)
    pairs = [one(None if gen is None else gen[:, m], None if fm is None else fm[:, m]) for m in range(M)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


__all__ = [
    "AbstractNoiseLevels",
    "TrainResult",
    "stack_models",
    "train",
    "AbstractWeighting",
    "EDMWeighting",
    "LogNormal",
    "LowDiscrepancy",
    "NoiseVarianceWeighting",
    "SNRWeighting",
    "TrainState",
    "Trainer",
    "UniformTime",
    "UnitWeighting",
    "train_step",
    "trainable",
]
