"""An ensemble seen through a noise schedule: posterior quantities of VP/OU/DDPM states.

theory section 1: a state x_t = theta(t) y + s(t) z of any schedule is converted to the VE state
x_t/theta(t) at temperature T(t) = (s/theta)^2, where the ensemble's exact formulas apply. Only
the score picks up the chain rule: grad log p_t(x_t) = (theta m_T(x_t/theta) - x_t)/s^2.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Key, Matrix, RealScalarLike, Scalar, Vector
from .._schedules import AbstractSchedule
from .._validate import check_key, check_scalar, check_state, concrete
from ._base import AbstractEnsemble


class Diffused(eqx.Module):
    """The marginals p_t(x_t) of ``ensemble`` pushed through ``schedule`` (theory section 1).

    **Arguments:**
    - ``ensemble``: any ``AbstractEnsemble``.
    - ``schedule``: any ``AbstractSchedule`` (VE, VP, DDPM, OU, Cosine).

    Methods take a state x_t of shape (d,) and a diffusion time t of the schedule; they are
    exact, jittable and vmappable like the ensemble's own.
    """

    ensemble: AbstractEnsemble
    schedule: AbstractSchedule

    def __init__(self, ensemble: AbstractEnsemble, schedule: AbstractSchedule):
        if not isinstance(ensemble, AbstractEnsemble):
            raise TypeError(f"ensemble must be an AbstractEnsemble, got {type(ensemble).__name__}")
        if not isinstance(schedule, AbstractSchedule):
            raise TypeError(f"schedule must be an AbstractSchedule, got {type(schedule).__name__}")
        self.ensemble, self.schedule = ensemble, schedule

    def _check(self, x, t):
        """Validate one state and one scalar time; return them guarded (NaN under jit if invalid)."""
        check_state(x, self.ensemble.dim)
        check_scalar("t", t, what="a scalar diffusion time")
        tc = concrete(t)
        lo, hi = concrete(self.schedule.t_min), concrete(self.schedule.t_max)
        if tc is None or lo is None or hi is None:
            # traced: an invalid time or state becomes NaN (theory section 13)
            t = jnp.asarray(t, jnp.result_type(float))
            ok = jnp.isfinite(t) & (t >= self.schedule.t_min) & (t <= self.schedule.t_max)
            x = jnp.where(jnp.all(jnp.isfinite(x)), x, jnp.nan)
            return x, jnp.where(ok, t, jnp.nan)
        temp = concrete(self.schedule.temperature(t))
        if not (np.isfinite(tc) and lo <= tc <= hi and (temp is None or temp > 0)):
            raise ValueError(
                f"t must lie in [{float(lo)}, {float(hi)}] with T(t) > 0 for this "
                f"{type(self.schedule).__name__} schedule, got {tc!r}"
            )
        return x, t

    def temperature(self, t: RealScalarLike) -> Scalar:
        """T(t), the VE-equivalent temperature of diffusion time t (a scalar).

        Under jit: an out-of-domain t gives NaN.
        """
        check_scalar("t", t, what="a scalar diffusion time")
        return self.schedule.temperature(t)

    def to_ve(self, x: Vector, t: RealScalarLike) -> tuple[Vector, Scalar]:
        """(x_t/theta(t), T(t)): the equivalent VE state and its temperature.

        Under jit: an out-of-domain t or a non-finite x gives NaN.
        """
        x, t = self._check(x, t)
        return x / self.schedule.signal_scale(t), self.schedule.temperature(t)

    def denoiser(self, x: Vector, t: RealScalarLike) -> Vector:
        """E[y | x_t] (the clean-data prediction, not rescaled).

        Under jit: an out-of-domain t or a non-finite x gives NaN.
        """
        return self.ensemble.denoiser(*self.to_ve(x, t))

    def posterior_cov(self, x: Vector, t: RealScalarLike) -> Matrix:
        """Cov[y | x_t].

        Under jit: an out-of-domain t or a non-finite x gives NaN.
        """
        return self.ensemble.posterior_cov(*self.to_ve(x, t))

    def score(self, x: Vector, t: RealScalarLike) -> Vector:
        """grad_x log p_t(x_t) = (theta m_T(x_t/theta) - x_t)/s^2 (theory section 2, VP form).

        Under jit: an out-of-domain t or a non-finite x gives NaN.
        """
        x, t = self._check(x, t)
        theta, s = self.schedule.signal_scale(t), self.schedule.noise_scale(t)
        return (theta * self.denoiser(x, t) - x) / s**2

    def noise_prediction(self, x: Vector, t: RealScalarLike) -> Vector:
        """E[z | x_t] = (x_t - theta E[y|x_t])/s: the epsilon-parametrisation target.

        Under jit: an out-of-domain t or a non-finite x gives NaN.
        """
        x, t = self._check(x, t)
        theta, s = self.schedule.signal_scale(t), self.schedule.noise_scale(t)
        return (x - theta * self.denoiser(x, t)) / s

    def log_density(self, x: Vector, t: RealScalarLike) -> Scalar:
        """log p_t(x_t) = log p^VE_T(x_t/theta) - d log theta.

        Under jit: an out-of-domain t or a non-finite x gives NaN.
        """
        xv, T = self.to_ve(x, t)
        return self.ensemble.log_density(xv, T) - self.ensemble.dim * jnp.log(self.schedule.signal_scale(t))

    def sample_marginal(self, key: Key, n: int, t: RealScalarLike) -> tuple[Array, Array]:
        """(y, x_t): n clean samples and their noised states at time t, shapes (n, d).

        Under jit: an out-of-domain t or a non-finite x gives NaN.
        """
        check_key("key", key)
        _, t = self._check(jnp.zeros(self.ensemble.dim), t)
        ky, kz = jax.random.split(key)
        y = self.ensemble.sample(ky, n)
        z = jax.random.normal(kz, y.shape, y.dtype)
        return y, self.schedule.signal_scale(t) * y + self.schedule.noise_scale(t) * z
