"""Reverse-time samplers: one jitted ``lax.scan`` over a fixed time grid (theory section 6).

Generation runs the forward process dx = f(t) x dt + g(t) dW backwards, from t_max (hot) to a
small t (cold). With the exact score of an ensemble this is quasi-static cooling: the law of x_t
is p_t at every t (theory section 6). Two families of dynamics share the marginals:

    reverse SDE:  dx = [f x - g^2 score] dt + g dW_bar
    PF-ODE:       dx = [f x - g^2 score / 2] dt

``sample(model, schedule, solver, key, x_T, steps=...)`` integrates one trajectory of one state
x_T of shape (d,); batches of seeds, temperatures, ensemble or schedule parameters are jax.vmap
over the same call (DESIGN.md). Solvers are objects in the diffrax style:

| solver | dynamics | strong/weak order | evaluations/step |
|---|---|---|---|
| ``EulerMaruyama()`` | reverse SDE | 1/2 / 1 | 1 |
| ``StochasticHeun()`` | reverse SDE (additive noise) | 1 / 1 (2 for the drift) | 2 |
| ``ProbabilityFlowEuler()`` | PF-ODE | 1 | 1 |
| ``ProbabilityFlowHeun()`` | PF-ODE | 2 | 2 |
| ``DDIM(eta)`` | eta = 0: PF-ODE (DPM-Solver-1), eta = 1: ancestral (DDPM) | 1 | 1 |
| ``ExponentialEuler(ode=False)`` | reverse SDE or PF-ODE, linear drift exact | 1 | 1 |
| ``LangevinCorrector(predictor, snr, n_steps)`` | predictor + Langevin MCMC at each new t | that of predictor | + n_steps |

The linear part f x of the drift is integrated exactly by the solvers that work in the VE picture
(DDIM, ExponentialEuler): u = x/theta is a VE state of temperature T(t), where the reverse
dynamics is du = -score_u dT (+ dW over dT) and the schedule drops out.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Key, Vector
from ._models import AbstractModel, as_model
from ._random import normal as _normal
from ._schedules import AbstractSchedule
from ._validate import check_finite, check_float32_range, check_key, check_real, check_temperature, concrete
from ._validate import check_scalar, check_size, check_temperature_scalar, guard


# ----------------------------------------------------------------------------- solvers
class AbstractSolver(eqx.Module):
    """One step of a reverse-time integrator from time t0 to t1 < t0 (native coordinates)."""

    evaluations: ClassVar[int]  # model evaluations per step

    @abc.abstractmethod
    def step(self, model: AbstractModel, schedule: AbstractSchedule, t0, t1, x: Vector, key: Key) -> Vector:
        """x at t1 given x at t0 (t1 < t0); ``key`` drives the step's noise.

        Under jit: an out-of-domain t0 or t1 gives NaN (through the schedule).
        """


def _check_step(model, schedule, t0, t1, x, key) -> None:
    """Validate a direct call of ``solver.step`` (inside ``sample`` the values are traced and only
    the types and shapes are checked; an invalid time then gives NaN through the schedule)."""
    if not isinstance(model, AbstractModel):
        raise TypeError(f"model must be an AbstractModel (wrap with td.Score/Denoiser/NoisePrediction; "
                        f"td.sample wraps ensembles and callables for you), got {type(model).__name__}")
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"schedule must be an AbstractSchedule (VE, VP, DDPM, OU, Cosine), got {type(schedule).__name__}")
    check_scalar("t0", t0, what="a scalar diffusion time")
    check_scalar("t1", t1, what="a scalar diffusion time")
    check_key("key", key)
    check_real("x", x, what="one state, a real vector")
    if len(jnp.shape(x)) != 1:
        raise ValueError(f"x must be one state of shape (d,) (use jax.vmap for batches), got shape {jnp.shape(x)}")
    check_finite("x", x)
    c0, c1 = concrete(t0), concrete(t1)
    if c0 is not None and c1 is not None:
        for name, t in (("t0", t0), ("t1", t1)):
            try:
                schedule.temperature(t)  # in [0, t_max]
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
        if not c1 < c0:
            raise ValueError(f"t1 must be < t0 (a reverse-time step), got t0 = {float(c0)!r}, t1 = {float(c1)!r}")


def _sde_drift(model, schedule, x, t):
    f, g = schedule.drift_coefficient(t), schedule.diffusion(t)
    return f * x - g**2 * model.score(x, t, schedule)


def _ode_drift(model, schedule, x, t):
    f, g = schedule.drift_coefficient(t), schedule.diffusion(t)
    return f * x - 0.5 * g**2 * model.score(x, t, schedule)


class EulerMaruyama(AbstractSolver):
    """Euler-Maruyama for the reverse SDE: weak order 1, strong order 1/2.

    Under jit: an out-of-domain t0 or t1 gives NaN (through the schedule).
    """

    evaluations: ClassVar[int] = 1

    def step(self, model, schedule, t0, t1, x, key):
        _check_step(model, schedule, t0, t1, x, key)
        dt = t1 - t0
        dw = jnp.sqrt(-dt) * _normal(key, x.shape, x.dtype)
        return x + _sde_drift(model, schedule, x, t0) * dt + schedule.diffusion(t0) * dw


class StochasticHeun(AbstractSolver):
    """Heun's predictor-corrector for the reverse SDE with additive noise (one shared dW).

    The noise of the reverse SDE is additive (g depends on t only), so the Stratonovich and Ito
    solutions coincide; the trapezoidal drift makes the deterministic part second order.

    Under jit: an out-of-domain t0 or t1 gives NaN (through the schedule).
    """

    evaluations: ClassVar[int] = 2

    def step(self, model, schedule, t0, t1, x, key):
        _check_step(model, schedule, t0, t1, x, key)
        dt = t1 - t0
        dw = jnp.sqrt(-dt) * _normal(key, x.shape, x.dtype)
        g0, g1 = schedule.diffusion(t0), schedule.diffusion(t1)
        b0 = _sde_drift(model, schedule, x, t0)
        x_pred = x + b0 * dt + g0 * dw
        b1 = _sde_drift(model, schedule, x_pred, t1)
        return x + 0.5 * (b0 + b1) * dt + 0.5 * (g0 + g1) * dw


class ProbabilityFlowEuler(AbstractSolver):
    """Explicit Euler for the probability-flow ODE (deterministic, order 1).

    Under jit: an out-of-domain t0 or t1 gives NaN (through the schedule).
    """

    evaluations: ClassVar[int] = 1

    def step(self, model, schedule, t0, t1, x, key):
        _check_step(model, schedule, t0, t1, x, key)
        return x + _ode_drift(model, schedule, x, t0) * (t1 - t0)


class ProbabilityFlowHeun(AbstractSolver):
    """Heun's method (explicit trapezoid) for the probability-flow ODE: order 2 (Karras et al.).

    Under jit: an out-of-domain t0 or t1 gives NaN (through the schedule).
    """

    evaluations: ClassVar[int] = 2

    def step(self, model, schedule, t0, t1, x, key):
        _check_step(model, schedule, t0, t1, x, key)
        dt = t1 - t0
        b0 = _ode_drift(model, schedule, x, t0)
        b1 = _ode_drift(model, schedule, x + b0 * dt, t1)
        return x + 0.5 * (b0 + b1) * dt


def _ve(schedule, x, t):
    theta = schedule.signal_scale(t)
    return x / theta, schedule.temperature(t), theta


class DDIM(AbstractSolver):
    """DDIM (Song, Meng & Ermon 2021) for any schedule, written in the VE picture.

    With u = x/theta, T = T(t) and D = E[y|x_t]:
    u1 = D + sqrt(T1 - sigma^2) (u0 - D)/sqrt(T0) + sigma xi, sigma^2 = eta^2 T1 (T0 - T1)/T0.
    ``eta = 0`` is the deterministic DDIM, the exponential integrator of the PF-ODE with D frozen
    over the step (DPM-Solver-1); ``eta = 1`` samples the exact Gaussian posterior
    q(u1 | u0, y = D), i.e. DDPM's ancestral sampler.

    **Arguments:**
    - ``eta``: stochasticity in [0, 1] (default 0).

    Under jit: an out-of-domain t0 or t1 gives NaN (through the schedule).
    """

    eta: float = 0.0
    evaluations: ClassVar[int] = 1

    def __check_init__(self):
        check_real("eta", self.eta, what="a real number in [0, 1]")
        e = concrete(self.eta)
        if e is not None and not (np.all(np.isfinite(e)) and np.all(e >= 0) and np.all(e <= 1)):
            raise ValueError(f"DDIM: eta must lie in [0, 1], got {e!r}")

    def step(self, model, schedule, t0, t1, x, key):
        _check_step(model, schedule, t0, t1, x, key)
        u0, T0, _ = _ve(schedule, x, t0)
        theta1, T1 = schedule.signal_scale(t1), schedule.temperature(t1)
        D = model.denoise(x, t0, schedule)
        var = self.eta**2 * T1 * (T0 - T1) / T0
        u1 = D + jnp.sqrt(jnp.maximum(T1 - var, 0.0) / T0) * (u0 - D)
        u1 = u1 + jnp.sqrt(var) * _normal(key, x.shape, x.dtype)
        return theta1 * u1


class ExponentialEuler(AbstractSolver):
    """Exponential integrator: the linear drift f x exactly, the noise prediction frozen.

    In the VE picture u = x/theta the linear part of the drift disappears (that is its exact
    integration); freezing eps = (u - D)/sqrt(T0) over the step, the reverse SDE integrates to
    u1 = u0 - 2 eps (sqrt T0 - sqrt T1) + sqrt(T0 - T1) xi, and the PF-ODE (``ode=True``) to
    u1 = u0 - eps (sqrt T0 - sqrt T1) (which is DDIM with eta = 0). Weak order 1 (DEIS-1 of
    Zhang & Chen 2023 in the epsilon parametrisation).

    **Arguments:**
    - ``ode``: integrate the probability-flow ODE instead of the reverse SDE (default False).

    Under jit: an out-of-domain t0 or t1 gives NaN (through the schedule).
    """

    ode: bool = eqx.field(static=True, default=False)
    evaluations: ClassVar[int] = 1

    def step(self, model, schedule, t0, t1, x, key):
        _check_step(model, schedule, t0, t1, x, key)
        u0, T0, _ = _ve(schedule, x, t0)
        theta1, T1 = schedule.signal_scale(t1), schedule.temperature(t1)
        D = model.denoise(x, t0, schedule)
        eps = (u0 - D) / jnp.sqrt(T0)
        dsq = jnp.sqrt(T0) - jnp.sqrt(T1)
        if self.ode:
            return theta1 * (u0 - eps * dsq)
        xi = _normal(key, x.shape, x.dtype)
        return theta1 * (u0 - 2 * eps * dsq + jnp.sqrt(T0 - T1) * xi)


class LangevinCorrector(AbstractSolver):
    """A predictor followed by ``n_steps`` Langevin MCMC steps at the new time (Song et al. 2021).

    Each corrector step is x <- x + e score + sqrt(2 e) xi with e = 2 snr^2 s(t)^2. The curvature
    of -log p_t is (I - theta^2 Cov[y|x_t]/s^2)/s^2 <= I/s^2 for every data law, so this step is
    stable per state (Song et al.'s norm-ratio rule is a batch statistic and blows up on single
    low-dimensional states whose score happens to vanish); each step leaves p_t invariant up to
    a relative bias of e/(2 Var) in the variance.

    **Arguments:**
    - ``predictor``: any non-corrector solver.
    - ``snr``: signal-to-noise ratio of the Langevin steps, > 0 (default 0.16).
    - ``n_steps``: corrector steps per time step, >= 1 (default 1).

    Under jit: an out-of-domain t0 or t1 gives NaN (through the schedule).
    """

    predictor: AbstractSolver
    snr: float = 0.16
    n_steps: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        if not isinstance(self.predictor, AbstractSolver) or isinstance(self.predictor, LangevinCorrector):
            raise TypeError(
                "LangevinCorrector: predictor must be a (non-corrector) solver such as EulerMaruyama(), "
                f"got {type(self.predictor).__name__}"
            )
        check_size("n_steps", self.n_steps, 1, 1000)
        check_real("snr", self.snr, what="a real number > 0")
        s = concrete(self.snr)
        if s is not None and not (np.all(np.isfinite(s)) and np.all(s > 0)):
            raise ValueError(f"LangevinCorrector: snr must be > 0, got {s!r}")

    @property
    def evaluations(self) -> int:  # type: ignore[override]
        return self.predictor.evaluations + self.n_steps

    def step(self, model, schedule, t0, t1, x, key):
        _check_step(model, schedule, t0, t1, x, key)
        kp, kc = jax.random.split(key)
        x = self.predictor.step(model, schedule, t0, t1, x, kp)

        def corrector(x, k):
            xi = _normal(k, x.shape, x.dtype)
            return x + e * model.score(x, t1, schedule) + jnp.sqrt(2 * e) * xi, None

        e = 2 * self.snr**2 * schedule.noise_scale(t1) ** 2

        x, _ = jax.lax.scan(corrector, x, jax.random.split(kc, self.n_steps))
        return x


# ----------------------------------------------------------------------------- time grids
MAX_STEPS = 10**7  # steps of one time grid (an array of steps + 1 times): a clear limit


def _float(value) -> Array:
    return jnp.asarray(value, jnp.result_type(value, float))


def _grid_args(T_start, T_end, steps):
    """The arguments every grid shares: eager calls are checked, traced ones guarded (NaN)."""
    steps = check_size("steps", steps, 1, MAX_STEPS)
    check_temperature_scalar(T_start, "T_start")
    check_temperature_scalar(T_end, "T_end")
    cs, ce = concrete(T_start), concrete(T_end)
    if cs is not None and ce is not None and not float(cs) > float(ce):
        raise ValueError(f"T_start must be > T_end (sampling cools), got T_start={float(cs)!r}, T_end={float(ce)!r}")
    Ts, Te = _float(T_start), _float(T_end)
    ok = jnp.isfinite(Ts) & jnp.isfinite(Te) & (Te > 0) & (Ts > Te)
    return guard(Ts, ok), guard(Te, ok), steps


def _check_schedule(schedule) -> None:
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"schedule must be an AbstractSchedule (VE, VP, DDPM, OU, Cosine), got {type(schedule).__name__}")


def _check_grid_param(name: str, value, ok, allowed: str) -> None:
    check_scalar(name, value, what="a real scalar")
    check_float32_range(name, value)
    c = concrete(value)
    if c is not None and not (np.isfinite(c) and ok(float(c))):
        raise ValueError(f"{name} must be {allowed}, got {float(c)!r}")


class AbstractGrid(eqx.Module):
    """A rule placing steps + 1 diffusion times from T_start down to T_end (strictly decreasing)."""

    @abc.abstractmethod
    def times(self, schedule: AbstractSchedule, T_start, T_end, steps: int) -> Array:
        """Strictly decreasing diffusion times, shape (steps + 1,), from T(t) = T_start to T_end.

        ``steps`` is an integer in [1, 10^7]; T_start > T_end > 0 are scalars that the schedule
        reaches. Under jit: invalid T_start or T_end give NaN times.
        """


class UniformGrid(AbstractGrid):
    """Uniform in the schedule's own diffusion time t (the common default)."""

    def times(self, schedule, T_start, T_end, steps):
        _check_schedule(schedule)
        T_start, T_end, steps = _grid_args(T_start, T_end, steps)
        t0, t1 = schedule._time_at(T_start, "T_start"), schedule._time_at(T_end, "T_end")
        k = jnp.arange(steps + 1, dtype=jnp.result_type(t0, float))
        # weights (steps - k)/steps and k/steps: relative accuracy at both ends (t0 + i (t1 - t0)
        # loses eps * t0 at the cold end: 5e-4 relative in float32 for VE()'s t0 = 100, t1 = 1e-3)
        return t0 * ((steps - k) / steps) + t1 * (k / steps)


class _TemperatureGrid(AbstractGrid):
    @abc.abstractmethod
    def temperatures(self, T_start, T_end, steps: int) -> Array:
        """Strictly decreasing temperatures, shape (steps + 1,), from T_start to T_end.

        ``steps`` is an integer in [1, 10^7]; T_start > T_end > 0 scalars. Under jit: invalid
        arguments or grid parameters give NaN temperatures.
        """

    def times(self, schedule, T_start, T_end, steps):
        _check_schedule(schedule)
        T_start, T_end, steps = _grid_args(T_start, T_end, steps)
        if concrete(T_start) is not None:  # name the bad end now (traced: NaN below)
            schedule._time_at(T_start, "T_start"), schedule._time_at(T_end, "T_end")
        ends = schedule.time_at_temperature(jnp.stack([T_start, T_end]))  # NaN if out of range (traced)
        return guard(schedule.time_at_temperature(self.temperatures(T_start, T_end, steps)), jnp.all(jnp.isfinite(ends)))


class KarrasGrid(_TemperatureGrid):
    """Karras et al. (2022): sigma = sqrt(T) uniform in sigma^(1/rho); ``rho=7`` by default
    (a finite scalar > 0). Under jit: an invalid rho gives NaN temperatures."""

    rho: float = 7.0

    def __check_init__(self):
        _check_grid_param("rho", self.rho, lambda r: r > 0, "finite and > 0 (KarrasGrid's exponent)")

    def temperatures(self, T_start, T_end, steps):
        T_start, T_end, steps = _grid_args(T_start, T_end, steps)
        rho = jnp.asarray(self.rho)
        i = jnp.arange(steps + 1, dtype=jnp.result_type(T_start, float)) / steps
        a, b = jnp.sqrt(T_start) ** (1 / rho), jnp.sqrt(T_end) ** (1 / rho)
        sig = (a + i * (b - a)) ** rho
        return guard((sig**2).at[0].set(T_start).at[-1].set(T_end), jnp.isfinite(rho) & (rho > 0))


class CriticalGrid(_TemperatureGrid):
    """Puts the steps where trajectories commit to a class, around a critical T_c (theory section 6).

    The step density in log T is a mixture: ``1 - fraction`` of the steps uniform in log T over
    [T_end, T_start] and ``fraction`` in a Gaussian bump of standard deviation ``width`` (in
    log T) centred at log T_c + ``skew * width``.

    Why this shape (the defaults). What the grid must resolve is the class decision. The class
    balance of the samples is E[r(x, T)] at the last step, r the committor (the posterior class
    probability), a martingale of the exact dynamics; so its error is the sum of the steps' local
    errors, and these arise where trajectories commit, at the rate kappa = -dVar[r]/dlog T. A
    first-order sampler's global error ~ sum_i c(l_i) dl_i^2 = (1/n) int c/rho dl (l = log T,
    rho the step density) is smallest for rho ~ sqrt(c) (equidistribution); take c ~ kappa. For
    the canonical symmetry breaking (two deltas, Var[r] = E_z[tanh((T_c + sqrt(T_c T) z)/T)]/4)
    sqrt(kappa) peaks just below T_c with a long hot tail ~ (T/T_c)^(-1/2) (the committor is not
    yet saturated while T >> T_c): on log(T/T_c) in [-6, 10] its mean is 0.98 and its standard
    deviation 2.19 (1.04 and 2.32 on [-8, 24]: the tail is heavy). The bump is that
    moment-matched Gaussian (``width=2.2``, ``skew=0.45``) and carries 3/4 of the steps
    (``fraction=0.75``, the best of 0.6/0.75/0.9 in the measurements). This matches direct measurements (quadrature of the
    local error of one step, two-component mixtures): the local class-balance error of
    first-order steps is spread over ~[T_c/10, 100 T_c] and peaks near T_c (DDIM) to ~4 T_c
    (Euler-Maruyama). A narrow bump on T_c (the former defaults: width 0.5, fraction 0.5, no
    skew) starves the hot side and does worse than a uniform grid; ``python -m benchmarks
    --only accuracy`` compares the grids.

    **Arguments** (real scalars):
    - ``T_c``: the critical temperature (e.g. ``td.critical_temperature(ensemble)``, or a
      mixture's speciation point), finite, > 0.
    - ``width``: standard deviation of the bump in log T, finite, > 0 (default 2.2).
    - ``fraction``: share of steps in the bump, in [0, 1) (default 0.75; 0 is uniform in log T).
    - ``skew``: centre of the bump above log T_c, in units of ``width`` (default 0.45; 0 centres
      it on T_c). Finite.

    Under jit: invalid parameters (or T_start, T_end) give NaN temperatures. Float32: the
    temperatures agree with float64 to 1e-5 relative (tests/test_schedule_domain.py).
    """

    T_c: float
    width: float = 2.2
    fraction: float = 0.75
    skew: float = 0.45

    def __check_init__(self):
        check_temperature_scalar(self.T_c, "T_c")
        _check_grid_param("width", self.width, lambda w: w > 0, "finite and > 0 (the bump's standard deviation in log T)")
        _check_grid_param("fraction", self.fraction, lambda f: 0 <= f < 1, "in [0, 1) (the share of steps in the bump)")
        _check_grid_param("skew", self.skew, lambda s: True, "finite (the bump's shift in units of width)")

    def _params_ok(self):
        T_c, w, f, s = (jnp.asarray(v) for v in (self.T_c, self.width, self.fraction, self.skew))
        finite = jnp.isfinite(T_c) & jnp.isfinite(w) & jnp.isfinite(f) & jnp.isfinite(s)
        return finite & (T_c > 0) & (w > 0) & (f >= 0) & (f < 1)

    def temperatures(self, T_start, T_end, steps):
        T_start, T_end, steps = _grid_args(T_start, T_end, steps)
        dtype = jnp.result_type(T_start, float)
        lo, hi = jnp.log(T_end), jnp.log(T_start)
        ell = jnp.linspace(lo, hi, 4097, dtype=dtype)
        z = (ell - jnp.log(self.T_c)) / self.width - self.skew
        bump = jnp.exp(-0.5 * z**2)
        bump_mass = jnp.sum(0.5 * (bump[1:] + bump[:-1]) * jnp.diff(ell))
        dens = (1 - self.fraction) / (hi - lo) + self.fraction * bump / jnp.maximum(bump_mass, jnp.finfo(dtype).tiny)
        cdf = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(0.5 * (dens[1:] + dens[:-1]) * jnp.diff(ell))])
        cdf = cdf / cdf[-1]
        q = 1 - jnp.arange(steps + 1, dtype=dtype) / steps  # from T_start (cdf 1) down
        T = jnp.exp(jnp.interp(q, cdf, ell))
        return guard(T.at[0].set(T_start).at[-1].set(T_end), self._params_ok())


def _default_range(schedule, T_start, T_end):
    if T_start is None:
        T_start = schedule.temperature(schedule.t_max)
    if T_end is None:
        T_end = jnp.maximum(schedule.temperature(schedule.t_min), 1e-4)
    return _float(T_start), _float(T_end)


def time_grid(schedule: AbstractSchedule, steps: int, grid: AbstractGrid | None = None, *, T_start=None, T_end=None) -> Array:
    """The sampler's diffusion times, shape (steps + 1,), strictly decreasing (theory section 6).

    **Arguments:**
    - ``schedule``: the forward process (VE, VP, DDPM, OU, Cosine).
    - ``steps``: number of steps, an integer in [1, 10^7].
    - ``grid``: ``UniformGrid()`` (uniform in t, default), ``KarrasGrid(rho)`` or
      ``CriticalGrid(T_c, width, fraction, skew)``; anything else is a TypeError.
    - ``T_start``, ``T_end``: scalar temperatures of the first and last node, T_start > T_end > 0,
      both in the schedule's range (0, T(t_max)] (VE geometric: [sigma_min^2, sigma_max^2]).
      Defaults: T(t_max) and max(T(t_min), 1e-4) (the schedule's range, stopped short of T = 0
      where the score diverges).

    **Returns:** the times t_0 > t_1 > ... > t_steps, in [0, t_max]. Under jit: invalid or
    out-of-range T_start or T_end give NaN times. Float32 gives the float64 times to 1e-5
    relative.
    """
    _check_schedule(schedule)
    steps = check_size("steps", steps, 1, MAX_STEPS)
    grid = UniformGrid() if grid is None else grid
    if not isinstance(grid, AbstractGrid):
        raise TypeError(f"grid must be UniformGrid(), KarrasGrid() or CriticalGrid(...), got {type(grid).__name__}")
    if T_start is not None:
        check_temperature_scalar(T_start, "T_start")
    if T_end is not None:
        check_temperature_scalar(T_end, "T_end")
    Ts, Te = _default_range(schedule, T_start, T_end)
    cs, ce = concrete(Ts), concrete(Te)
    if cs is not None and ce is not None and not cs > ce:
        note = "" if T_start is not None and T_end is not None else (
            " (defaults: T_start = T(t_max), T_end = max(T(t_min), 1e-4))")
        raise ValueError(f"T_start must be > T_end (sampling cools), got T_start={float(cs)!r}, T_end={float(ce)!r}{note}")
    if cs is not None:
        schedule._time_at(Ts, "T_start")
    if ce is not None:
        schedule._time_at(Te, "T_end")
    return grid.times(schedule, Ts, Te, steps)


# ----------------------------------------------------------------------------- sample
class Trajectory(eqx.Module):
    """States saved during sampling.

    - ``x``: the final state, shape (d,).
    - ``t``: the saved diffusion times, shape (n,), in the order they were reached (decreasing).
    - ``T``: their temperatures, shape (n,).
    - ``xs``: the saved states, shape (n, d).
    """

    x: Array
    t: Array
    T: Array
    xs: Array


def _check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")


def _validate_ts(schedule, ts):
    ts = jnp.asarray(ts)
    if not jnp.issubdtype(ts.dtype, jnp.floating):
        ts = ts.astype(jnp.result_type(float))
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"ts must be a 1-D array of at least 2 times (start, ..., end), got shape {ts.shape}")
    c = concrete(ts)
    if c is None:
        return ts
    check_finite("ts", c)
    if not np.all(np.diff(c) < 0):
        raise ValueError("ts must be strictly decreasing (sampling runs from hot t_max to cold t_min)")
    try:  # the schedule's own domain check, with its rounding slack
        schedule.temperature(ts)
    except ValueError as err:
        lo, hi = schedule.t_min, schedule.t_max
        raise ValueError(f"ts must lie in the schedule's range [{float(lo)}, {float(hi)}], got [{c[-1]}, {c[0]}]") from err
    T_end = concrete(schedule.temperature(c[-1]))
    if T_end is not None and not T_end > 0:
        raise ValueError(f"the last time ts[-1] = {c[-1]} has temperature T = {T_end} <= 0; stop at T > 0")
    return ts


def _check_model_output(model, schedule, x_T, t):
    try:
        out = jax.eval_shape(lambda x: model.denoise(x, t, schedule), x_T)
    except Exception as err:
        raise ValueError(f"model could not be evaluated on one state of shape {x_T.shape}: {err}") from err
    if getattr(out, "shape", None) != x_T.shape:
        raise ValueError(
            f"model output must have the state's shape {x_T.shape}, got {getattr(out, 'shape', type(out))}"
        )


def sample(
    model,
    schedule: AbstractSchedule,
    solver: AbstractSolver,
    key: Key,
    x_T: Vector,
    *,
    steps: int | None = None,
    ts=None,
    grid: AbstractGrid | None = None,
    T_start=None,
    T_end=None,
    save_at=None,
    denoise_final: bool = False,
):
    """Integrate the reverse dynamics from x_T down to a cold time (theory section 6).

    **Arguments:**
    - ``model``: an ensemble (exact score), ``Score(fn)``, ``Denoiser(fn)``,
      ``NoisePrediction(fn)``, or any callable ``fn(x, t)`` returning the score (e.g. an
      equinox module). ``fn`` acts on one state in the schedule's native coordinates.
    - ``schedule``: the forward process (VE, VP, DDPM, OU, Cosine).
    - ``solver``: a solver object (``EulerMaruyama()``, ``DDIM(eta)``, ...).
    - ``key``: PRNG key; the same key gives the same trajectory.
    - ``x_T``: the initial state, shape (d,), at the first time of the grid (N(0, s^2 I) of the
      schedule's top, or ``late_start``).
    - ``steps``: number of steps on ``grid`` between ``T_start`` and ``T_end`` (see
      ``time_grid``); or
    - ``ts``: explicit strictly decreasing diffusion times (overrides steps/grid/T_start/T_end).
    - ``save_at``: temperatures at which to save the state. They are inserted into the grid as
      extra nodes, so the saved states are at exactly those temperatures (each adds one step).
    - ``denoise_final``: return E[y | x] at the last time instead of x (a final denoising step).

    **Returns:** the final state (shape (d,)), or a ``Trajectory`` when ``save_at`` is given.
    """
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"schedule must be an AbstractSchedule (VE, VP, DDPM, OU, Cosine), got {type(schedule).__name__}")
    if not isinstance(solver, AbstractSolver):
        raise TypeError(f"solver must be a solver object such as td.EulerMaruyama(), got {type(solver).__name__}")
    check_key("key", key)
    check_real("x_T", x_T, what="one state, a real vector")
    model = as_model(model, schedule)
    x_T = jnp.asarray(x_T)
    if not jnp.issubdtype(x_T.dtype, jnp.floating):
        x_T = x_T.astype(jnp.result_type(float))
    if isinstance(x_T, jax.core.Tracer):  # traced: a non-finite start gives a NaN sample
        x_T = jnp.where(jnp.all(jnp.isfinite(x_T)), x_T, jnp.nan)
    dim = model.dim
    if x_T.ndim != 1 or (dim is not None and x_T.shape[0] != dim):
        want = f"({dim},)" if dim is not None else "(d,)"
        raise ValueError(f"x_T must have shape {want} (one state; use jax.vmap for batches), got {x_T.shape}")
    check_finite("x_T", x_T)
    if ts is None:
        if steps is None:
            raise ValueError("give either steps (with an optional grid) or ts (explicit times)")
        ts = time_grid(schedule, steps, grid, T_start=T_start, T_end=T_end)
    else:
        if steps is not None or grid is not None or T_start is not None or T_end is not None:
            raise ValueError("ts overrides steps/grid/T_start/T_end: give one or the other")
    ts = _validate_ts(schedule, ts)
    _check_model_output(model, schedule, x_T, ts[0])
    save_T = None
    if save_at is not None:
        check_real("save_at", save_at, what="a temperature or a 1-D array of temperatures")
        check_float32_range("save_at", save_at)
        save_T = jnp.atleast_1d(jnp.asarray(save_at, jnp.result_type(ts.dtype, float)))
        if save_T.ndim != 1 or save_T.size == 0:
            raise ValueError(f"save_at must be a temperature or a 1-D array of temperatures, got shape {save_T.shape}")
        check_temperature(save_T, "save_at")
        c, cts = concrete(save_T), concrete(schedule.temperature(ts))
        if c is not None and cts is not None and (c.max() > cts[0] * (1 + 1e-9) or c.min() < cts[-1] * (1 - 1e-9)):
            raise ValueError(
                f"save_at temperatures must lie in the sampled range [{cts[-1]:.6g}, {cts[0]:.6g}], got [{c.min():.6g}, {c.max():.6g}]"
            )
    return _sample(model, schedule, solver, key, x_T, ts, save_T, denoise_final)


# inline=True: compiled when called on its own, but inlined into an enclosing jit (the usual
# jax.jit(jax.vmap(sample)) batch) instead of staying a nested call: the model's arrays then
# reach the loop as the caller's constants. Measured ~7% per step for an exact FiniteDataset
# score (B = 1024, N = 1797, d = 64; benchmarks/bench_sampler.py); results are unchanged.
@eqx.filter_jit(inline=True)
def _sample(model, schedule, solver, key, x_T, ts, save_T, denoise_final):
    ts = ts.astype(jnp.result_type(ts.dtype, x_T.dtype))
    n_nodes = ts.shape[0]
    if save_T is not None:
        t_save = schedule.time_at_temperature(save_T).astype(ts.dtype)
        allt = jnp.concatenate([ts, t_save])
        order = jnp.argsort(-allt, stable=True)
        ts_all = allt[order]
        rank = jnp.argsort(order)  # position of each original entry in the merged grid
        is_save = jnp.zeros(ts_all.shape, bool).at[rank[n_nodes:]].set(True)
        slot = jnp.cumsum(is_save) - 1
        n_save = save_T.shape[0]
        buf = jnp.zeros((n_save,) + x_T.shape, x_T.dtype)
        buf = jnp.where(is_save[0], buf.at[0].set(x_T), buf)
    else:
        ts_all = ts
    keys = jax.random.split(key, ts_all.shape[0] - 1)

    if save_T is None:

        def body(x, inp):
            t0, t1, k = inp
            return solver.step(model, schedule, t0, t1, x, k).astype(x.dtype), None

        x, _ = jax.lax.scan(body, x_T, (ts_all[:-1], ts_all[1:], keys))
    else:

        def body(carry, inp):
            x, buf = carry
            t0, t1, k, save, s = inp
            x = solver.step(model, schedule, t0, t1, x, k).astype(x.dtype)
            buf = jax.lax.dynamic_update_index_in_dim(buf, jnp.where(save, x, buf[s]), s, 0)
            return (x, buf), None

        (x, buf), _ = jax.lax.scan(
            body, (x_T, buf), (ts_all[:-1], ts_all[1:], keys, is_save[1:], jnp.maximum(slot[1:], 0))
        )
    if denoise_final:
        x = model.denoise(x, ts_all[-1], schedule)
    if save_T is None:
        return x
    t_saved = jnp.sort(schedule.time_at_temperature(save_T).astype(ts.dtype))[::-1]
    return Trajectory(x=x, t=t_saved, T=schedule.temperature(t_saved), xs=buf)


# ----------------------------------------------------------------------------- late start
def late_start(key: Key, data, schedule: AbstractSchedule, t) -> Vector:
    """One state from the Gaussian late start of Raya & Ambrogioni (theory section 6).

    x_t ~ N(theta mu, theta^2 (C + T I)) with mu, C the data mean and covariance (in VP:
    abar C + (1 - abar) I); start the sampler at t with ``ts`` beginning at t (or
    ``T_start=schedule.temperature(t)``) instead of at the schedule's top.

    **Arguments:**
    - ``key``: PRNG key (vmap over keys for a batch).
    - ``data``: an ensemble (its ``mean()`` and ``covariance()``), or data points (N, d).
    - ``schedule``, ``t``: the process and the late start time.

    **Returns:** a state of shape (d,).
    """
    from ._ensembles._base import AbstractEnsemble, as_float_array

    check_key("key", key)
    _check_schedule(schedule)
    check_scalar("t", t, what="a scalar diffusion time")
    if isinstance(data, AbstractEnsemble):
        mu, C = data.mean(), data.covariance()
    else:
        pts = as_float_array("data", data, ndim=2)
        if pts.shape[0] < 2:
            raise ValueError(f"data must hold at least 2 points to estimate a covariance, got {pts.shape[0]}")
        check_finite("data", pts)
        mu = pts.mean(0)
        C = jnp.cov(pts, rowvar=False).reshape(pts.shape[1], pts.shape[1])
    T = schedule.temperature(t)
    check_temperature(T, "T(t)")
    theta = schedule.signal_scale(t)
    L = jnp.linalg.cholesky(C + T * jnp.eye(C.shape[0], dtype=C.dtype))
    z = jax.random.normal(key, mu.shape, mu.dtype)
    return theta * (mu + L @ z)


__all__ = [
    "AbstractGrid",
    "AbstractSolver",
    "CriticalGrid",
    "DDIM",
    "EulerMaruyama",
    "ExponentialEuler",
    "KarrasGrid",
    "LangevinCorrector",
    "ProbabilityFlowEuler",
    "ProbabilityFlowHeun",
    "StochasticHeun",
    "Trajectory",
    "UniformGrid",
    "late_start",
    "sample",
    "time_grid",
]
