"""Noise schedules (theory section 1): diffusion time t <-> temperature T.

Every schedule describes a forward process x_t = theta(t) y + s(t) z, z ~ N(0, I), driven by the
linear SDE dx = f(t) x dt + g(t) dW. Its **temperature** is the VE-equivalent noise variance
T(t) = (s(t)/theta(t))^2: the rescaled state x_t/theta(t) is a VE state at temperature T(t), so
every posterior quantity of an ensemble (denoiser, covariance, free energy) is evaluated there.

All schedules are ``eqx.Module`` pytrees with array parameters: they can be vmapped over their
parameters (construct them inside the vmapped function) and differentiated. Methods act
elementwise on t (or T), so they accept scalars or arrays alike.

| schedule | theta(t) | s(t) | T(t) |
|---|---|---|---|
| VE (Brownian)  | 1 | sqrt(t) | t |
| VE (geometric) | 1 | smin (smax/smin)^t | s(t)^2 |
| VP(bmin, bmax) | exp(-t^2 (bmax-bmin)/4 - t bmin/2) | sqrt(1 - theta^2) | 1/theta^2 - 1 |
| DDPM           | sqrt(abar(t)), abar_k = prod_{j<=k}(1 - beta_j) | sqrt(1 - abar) | 1/abar - 1 |
| OU             | exp(-t) | sqrt(1 - exp(-2t)) | exp(2t) - 1 |
| Cosine         | cos(u(t))/cos(u(0)), u = (t + s0)/(1 + s0) pi/2 | sqrt(1 - theta^2) | 1/theta^2 - 1 |
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, ArrayLike
from ._validate import check_finite, check_positive, check_range, concrete


def _arr(value) -> Array:
    a = jnp.asarray(value)
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.result_type(float))
    return a


class AbstractSchedule(eqx.Module):
    """A forward noising process x_t = theta(t) y + s(t) z with SDE dx = f(t) x dt + g(t) dW.

    Subclasses define ``signal_scale`` (theta), ``noise_scale`` (s), ``drift_coefficient`` (f),
    ``diffusion`` (g), ``temperature`` and its inverse ``time_at_temperature``, and the time
    interval [t_min, t_max] on which the schedule is defined.
    """

    @property
    @abc.abstractmethod
    def t_min(self) -> float:
        """Smallest diffusion time of the schedule (T(t_min) is its lowest temperature)."""

    @property
    @abc.abstractmethod
    def t_max(self) -> float:
        """Largest diffusion time of the schedule."""

    @abc.abstractmethod
    def signal_scale(self, t: ArrayLike) -> Array:
        """theta(t): the scale of the clean signal in x_t."""

    @abc.abstractmethod
    def noise_scale(self, t: ArrayLike) -> Array:
        """s(t): the standard deviation of the noise in x_t."""

    @abc.abstractmethod
    def drift_coefficient(self, t: ArrayLike) -> Array:
        """f(t) in the forward SDE dx = f(t) x dt + g(t) dW; f = d log theta/dt."""

    @abc.abstractmethod
    def diffusion(self, t: ArrayLike) -> Array:
        """g(t) in the forward SDE; g^2 = d(s^2)/dt - 2 f s^2."""

    def temperature(self, t: ArrayLike) -> Array:
        """T(t) = (s/theta)^2, the VE-equivalent noise variance (theory section 1)."""
        return (self.noise_scale(t) / self.signal_scale(t)) ** 2

    @abc.abstractmethod
    def time_at_temperature(self, T: ArrayLike) -> Array:
        """The inverse of ``temperature``: the diffusion time t with T(t) = T."""

    def drift(self, x: Array, t: ArrayLike) -> Array:
        """Forward drift f(t) x."""
        return self.drift_coefficient(t) * x

    def abar(self, t: ArrayLike) -> Array:
        """theta(t)^2 (DDPM's alpha-bar); equals 1/(1 + T(t))."""
        return self.signal_scale(t) ** 2


class VE(AbstractSchedule):
    """Variance-exploding schedule (theory section 1): x_t = y + sigma(t) z, T = sigma(t)^2.

    ``VE()`` is pure Brownian motion, sigma(t)^2 = t (so T = t) on [0, t_max]. ``VE(sigma_min,
    sigma_max)`` is the geometric schedule of Song et al., sigma(t) = sigma_min (sigma_max /
    sigma_min)^t on t in [0, 1]; its forward SDE has g(t) = sigma(t) sqrt(2 log(sigma_max /
    sigma_min)) and describes the increments above the sigma_min^2 already present at t = 0.

    **Arguments:**
    - ``sigma_min``, ``sigma_max``: both None (Brownian) or both given, 0 < sigma_min < sigma_max.
    - ``t_max``: end of the Brownian time interval (default 100.0; ignored when geometric).
    """

    sigma_min: Array | None
    sigma_max: Array | None
    brownian_t_max: Array

    def __init__(self, sigma_min=None, sigma_max=None, *, t_max=100.0):
        if (sigma_min is None) != (sigma_max is None):
            raise ValueError("VE: give both sigma_min and sigma_max (geometric) or neither (Brownian)")
        if sigma_min is not None:
            check_positive("sigma_min", sigma_min)
            check_positive("sigma_max", sigma_max)
            lo, hi = concrete(sigma_min), concrete(sigma_max)
            if lo is not None and hi is not None and np.any(lo >= hi):
                raise ValueError(f"VE: need sigma_min < sigma_max, got {lo!r} >= {hi!r}")
            self.sigma_min, self.sigma_max = _arr(sigma_min), _arr(sigma_max)
        else:
            self.sigma_min = self.sigma_max = None
        check_positive("t_max", t_max)
        self.brownian_t_max = _arr(t_max)

    @property
    def geometric(self) -> bool:
        return self.sigma_min is not None

    @property
    def t_min(self):
        return 0.0

    @property
    def t_max(self):
        return 1.0 if self.geometric else self.brownian_t_max

    def _log_ratio(self):
        return jnp.log(self.sigma_max / self.sigma_min)

    def signal_scale(self, t):
        return jnp.ones_like(_arr(t))

    def noise_scale(self, t):
        t = _arr(t)
        if self.geometric:
            return self.sigma_min * jnp.exp(t * self._log_ratio())
        return jnp.sqrt(t)

    def temperature(self, t):
        t = _arr(t)
        if self.geometric:
            return self.sigma_min**2 * jnp.exp(2 * t * self._log_ratio())
        return t

    def time_at_temperature(self, T):
        T = _arr(T)
        if self.geometric:
            return (0.5 * jnp.log(T) - jnp.log(self.sigma_min)) / self._log_ratio()
        return T

    def drift_coefficient(self, t):
        return jnp.zeros_like(_arr(t))

    def diffusion(self, t):
        t = _arr(t)
        if self.geometric:
            return self.noise_scale(t) * jnp.sqrt(2 * self._log_ratio())
        return jnp.ones_like(t)


class _AbstractVPFamily(AbstractSchedule):
    """Variance-preserving schedules: theta^2 + s^2 = 1, so T = 1/theta^2 - 1 and g^2 = -2f."""

    @abc.abstractmethod
    def log_signal(self, t: ArrayLike) -> Array:
        """log theta(t)."""

    def signal_scale(self, t):
        return jnp.exp(self.log_signal(t))

    def noise_scale(self, t):
        # s = sqrt(1 - theta^2) = sqrt(-expm1(2 log theta)), accurate as theta -> 1.
        return jnp.sqrt(-jnp.expm1(2 * self.log_signal(t)))

    def temperature(self, t):
        # T = 1/theta^2 - 1 = expm1(-2 log theta), accurate at small t.
        return jnp.expm1(-2 * self.log_signal(t))

    def abar(self, t):
        return jnp.exp(2 * self.log_signal(t))

    def diffusion(self, t):
        return jnp.sqrt(-2 * self.drift_coefficient(t))


class VP(_AbstractVPFamily):
    """Continuous VP-SDE of Song et al. (theory section 1), t in [0, 1]:
    beta(t) = beta_min + t (beta_max - beta_min), dx = -beta/2 x dt + sqrt(beta) dW,
    theta(t) = exp(-t^2 (beta_max - beta_min)/4 - t beta_min/2), T = exp(int beta) - 1.

    **Arguments:** ``beta_min`` (default 0.1) and ``beta_max`` (default 20.0), 0 <= beta_min <=
    beta_max, beta_max > 0.
    """

    beta_min: Array
    beta_max: Array

    def __init__(self, beta_min=0.1, beta_max=20.0):
        check_positive("beta_min", beta_min, allow_zero=True)
        check_positive("beta_max", beta_max)
        lo, hi = concrete(beta_min), concrete(beta_max)
        if lo is not None and hi is not None and np.any(lo > hi):
            raise ValueError(f"VP: need beta_min <= beta_max, got {lo!r} > {hi!r}")
        self.beta_min, self.beta_max = _arr(beta_min), _arr(beta_max)

    @property
    def t_min(self):
        return 0.0

    @property
    def t_max(self):
        return 1.0

    def beta(self, t):
        return self.beta_min + _arr(t) * (self.beta_max - self.beta_min)

    def integrated_beta(self, t):
        t = _arr(t)
        return 0.5 * t**2 * (self.beta_max - self.beta_min) + t * self.beta_min

    def log_signal(self, t):
        return -0.5 * self.integrated_beta(t)

    def drift_coefficient(self, t):
        return -0.5 * self.beta(t)

    def time_at_temperature(self, T):
        # Solve t^2 D/2 + t bmin = L, L = log(1 + T), in the cancellation-free form
        # t = 2L / (bmin + sqrt(bmin^2 + 2 D L)).
        L = jnp.log1p(_arr(T))
        D = self.beta_max - self.beta_min
        return 2 * L / (self.beta_min + jnp.sqrt(self.beta_min**2 + 2 * D * L))


class OU(_AbstractVPFamily):
    """Ornstein-Uhlenbeck forward process of Biroli et al. (theory section 1):
    dx = -x dt + sqrt(2) dW, x_t = e^{-t} y + sqrt(1 - e^{-2t}) z, T = e^{2t} - 1,
    t = log(1 + T)/2. Defined on [0, t_max] (default t_max = 10).
    """

    ou_t_max: Array

    def __init__(self, t_max=10.0):
        check_positive("t_max", t_max)
        self.ou_t_max = _arr(t_max)

    @property
    def t_min(self):
        return 0.0

    @property
    def t_max(self):
        return self.ou_t_max

    def log_signal(self, t):
        return -_arr(t)

    def drift_coefficient(self, t):
        return -jnp.ones_like(_arr(t))

    def time_at_temperature(self, T):
        return 0.5 * jnp.log1p(_arr(T))


class DDPM(_AbstractVPFamily):
    """Discrete DDPM schedule of Ho et al. (theory section 1): abar_k = prod_{j=1..k} (1 - beta_j).

    Time is the step index t in [0, K] (abar(0) = 1, abar(K) = abar_K); between integers log abar
    is linear, which is the VP-SDE with piecewise-constant beta(t) = -log(1 - beta_ceil(t)). So
    ``temperature(k)`` at integer k is exactly (1 - abar_k)/abar_k, and the forward SDE drift
    f(t) = log(1 - beta_ceil(t))/2 is exact for this interpolation.

    **Arguments:**
    - ``betas``: the K noise increments, each in (0, 1). Default: linspace(beta_start,
      beta_end, num_steps).
    - ``beta_start=1e-4``, ``beta_end=0.02``, ``num_steps=1000``: the linear default.
    """

    log_abar: Array  # shape (K + 1,), log_abar[0] = 0

    def __init__(self, betas=None, *, beta_start=1e-4, beta_end=0.02, num_steps=1000):
        if betas is None:
            if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
                raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
            check_range("beta_start", beta_start, 0.0, 1.0, lo_open=True, hi_open=True)
            check_range("beta_end", beta_end, 0.0, 1.0, lo_open=True, hi_open=True)
            betas = jnp.linspace(_arr(beta_start), _arr(beta_end), num_steps)
        betas = _arr(betas)
        if betas.ndim != 1 or betas.shape[0] < 1:
            raise ValueError(f"betas must be a non-empty 1-D array, got shape {betas.shape}")
        check_finite("betas", betas)
        check_range("betas", betas, 0.0, 1.0, lo_open=True, hi_open=True)
        zero = jnp.zeros((1,), betas.dtype)
        self.log_abar = jnp.concatenate([zero, jnp.cumsum(jnp.log1p(-betas))])

    @property
    def num_steps(self) -> int:
        return self.log_abar.shape[0] - 1

    @property
    def betas(self) -> Array:
        return -jnp.expm1(jnp.diff(self.log_abar))

    @property
    def t_min(self):
        return 0.0

    @property
    def t_max(self):
        return float(self.num_steps)

    def log_signal(self, t):
        ks = jnp.arange(self.num_steps + 1, dtype=self.log_abar.dtype)
        return 0.5 * jnp.interp(_arr(t), ks, self.log_abar)

    def drift_coefficient(self, t):
        t = _arr(t)
        k = jnp.clip(jnp.ceil(t).astype(jnp.int32), 1, self.num_steps)
        rate = self.log_abar[k] - self.log_abar[k - 1]  # log(1 - beta_k) < 0
        return 0.5 * rate

    def time_at_temperature(self, T):
        # log abar is decreasing in t: interpolate t as a function of -log abar = log(1 + T).
        ks = jnp.arange(self.num_steps + 1, dtype=self.log_abar.dtype)
        return jnp.interp(jnp.log1p(_arr(T)), -self.log_abar, ks)


class Cosine(_AbstractVPFamily):
    """Cosine schedule of Nichol & Dhariwal (theory section 1 family, VP):
    theta(t) = cos(u(t))/cos(u(0)), u(t) = (t + s0)/(1 + s0) * pi/2, t in [0, t_max].

    T(t) = cos(u0)^2/cos(u)^2 - 1 diverges as t -> 1, so the schedule stops at ``t_max``
    (default 0.999, where T is about 4.1e5). ``offset`` is s0 (default 0.008).
    """

    offset: Array
    cos_t_max: Array

    def __init__(self, offset=0.008, *, t_max=0.999):
        check_positive("offset", offset, allow_zero=True)
        check_range("t_max", t_max, 0.0, 1.0, lo_open=True, hi_open=True)
        self.offset = _arr(offset)
        self.cos_t_max = _arr(t_max)

    @property
    def t_min(self):
        return 0.0

    @property
    def t_max(self):
        return self.cos_t_max

    def _u(self, t):
        return (_arr(t) + self.offset) / (1 + self.offset) * (math.pi / 2)

    def log_signal(self, t):
        return jnp.log(jnp.cos(self._u(t))) - jnp.log(jnp.cos(self._u(0.0)))

    def drift_coefficient(self, t):
        return -jnp.tan(self._u(t)) * (math.pi / 2) / (1 + self.offset)

    def time_at_temperature(self, T):
        u = jnp.arccos(jnp.cos(self._u(0.0)) / jnp.sqrt(1 + _arr(T)))
        return u * (1 + self.offset) / (math.pi / 2) - self.offset
