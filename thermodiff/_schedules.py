"""Noise schedules (theory section 1): diffusion time t <-> temperature T.

Every schedule describes a forward process x_t = theta(t) y + s(t) z, z ~ N(0, I), driven by the
linear SDE dx = f(t) x dt + g(t) dW. Its **temperature** is the VE-equivalent noise variance
T(t) = (s(t)/theta(t))^2: the rescaled state x_t/theta(t) is a VE state at temperature T(t), so
every posterior quantity of an ensemble (denoiser, covariance, free energy) is evaluated there.

All schedules are ``eqx.Module`` pytrees with scalar array parameters: they can be vmapped over
their parameters (construct them inside the vmapped function) and differentiated. Methods act
elementwise on t (or T), so they accept scalars or arrays alike.

| schedule | theta(t) | s(t) | T(t) |
|---|---|---|---|
| VE (Brownian)  | 1 | sqrt(t) | t |
| VE (geometric) | 1 | smin (smax/smin)^t | s(t)^2 |
| VP(bmin, bmax) | exp(-t^2 (bmax-bmin)/4 - t bmin/2) | sqrt(1 - theta^2) | 1/theta^2 - 1 |
| DDPM           | sqrt(abar(t)), abar_k = prod_{j<=k}(1 - beta_j) | sqrt(1 - abar) | 1/abar - 1 |
| OU             | exp(-t) | sqrt(1 - exp(-2t)) | exp(2t) - 1 |
| Cosine         | cos(u(t))/cos(u(0)), u = (t + s0)/(1 + s0) pi/2 | sqrt(1 - theta^2) | 1/theta^2 - 1 |

**Domain.** Every method taking a time checks t in [0, t_max]; ``time_at_temperature`` checks T
in (0, T_max] (VE geometric: [sigma_min^2, sigma_max^2]), T_max = T(t_max) the largest
temperature the schedule reaches. Eager calls outside raise a ValueError naming t or T and the
range; None, strings, bools and complex values raise a TypeError. Under jax.jit/vmap the values
are tracers: an out-of-domain t or T gives NaN. Rounding slack: t up to t_max (1 + r) is accepted
(and T whose time is there, returned as t_max), r = max(1e-9, 16 eps) of the working precision.

**Float32** (JAX's default): every T(t) and t(T) is computed in a cancellation-free form, so
float32 agrees with float64 to a relative 1e-5 on the whole domain (measured in
tests/test_schedule_domain.py; the worst cases, a few 1e-6, are exponentials with large
exponents: VE geometric, OU at large t, DDPM's 1000-term cumulative sum which is done in float64
at construction). What float32 cannot do better is the input's own rounding: T(t) has relative
condition number t T'(t)/T(t), largest near the top of VE geometric (2 t log(smax/smin), 17 for
VE(0.01, 50)) and of Cosine (about 2/(1 - t_max), 2000 for t_max = 0.999: a float32 t near
t_max fixes T only to ~2e-4).
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, ArrayLike
from ._validate import (
    FLOAT32_MAX,
    check_finite,
    check_float32_range,
    check_range,
    check_real,
    check_scalar,
    check_size,
    concrete,
    guard,
)

MAX_DDPM_STEPS = 10**6  # DDPM(num_steps=...) and len(betas): a clear limit, not an allocation failure


def _arr(value) -> Array:
    a = jnp.asarray(value)
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.result_type(float))
    return a


def _slack(dtype) -> float:
    """Relative rounding slack at the ends of the time interval (see the module docstring)."""
    return max(1e-9, 16 * float(jnp.finfo(dtype).eps))


def _fmt(value) -> str:
    return f"{float(value):.6g}"


def _first_bad(name: str, values: np.ndarray, ok: np.ndarray) -> str:
    bad = np.asarray(values).reshape(-1)[~np.asarray(ok).reshape(-1)]
    more = f" (and {bad.size - 1} more of shape {np.shape(values)})" if bad.size > 1 else ""
    return f"{name} = {float(bad[0])!r}{more}"


def _param(name: str, value, *, lo: float = 0.0, lo_open: bool = True, hi=None, hi_open: bool = False) -> Array:
    """A schedule parameter: a real scalar, finite, in the given range, representable in float32."""
    check_scalar(name, value, what="a real scalar")
    check_float32_range(name, value)
    check_range(name, value, lo, hi, lo_open=lo_open, hi_open=hi_open)
    return _arr(value)


class AbstractSchedule(eqx.Module):
    """A forward noising process x_t = theta(t) y + s(t) z with SDE dx = f(t) x dt + g(t) dW.

    The public methods check their argument (t in [0, t_max], T in (0, T_max]) and then call the
    subclass's formulas ``_signal_scale`` (theta), ``_noise_scale`` (s), ``_drift_coefficient``
    (f), ``_diffusion`` (g), ``_temperature`` and ``_time_raw`` (its inverse, unclipped), on the
    interval [t_min, t_max] = [0, t_max]. Under jit: an out-of-domain t or T gives NaN.
    """

    _reach_params: ClassVar[str] = "its parameters"  # named when T(t_max) overflows

    @property
    @abc.abstractmethod
    def t_min(self) -> float:
        """Smallest diffusion time of the schedule (T(t_min) is its lowest temperature)."""

    @property
    @abc.abstractmethod
    def t_max(self) -> float:
        """Largest diffusion time of the schedule."""

    # ------------------------------------------------------------------ formulas (unchecked)
    @abc.abstractmethod
    def _signal_scale(self, t: Array) -> Array: ...

    @abc.abstractmethod
    def _noise_scale(self, t: Array) -> Array: ...

    @abc.abstractmethod
    def _drift_coefficient(self, t: Array) -> Array: ...

    @abc.abstractmethod
    def _diffusion(self, t: Array) -> Array: ...

    def _temperature(self, t: Array) -> Array:
        return (self._noise_scale(t) / self._signal_scale(t)) ** 2

    @abc.abstractmethod
    def _time_raw(self, T: Array) -> Array:
        """The inverse of ``_temperature``, continued monotonically outside the domain."""

    def _abar(self, t: Array) -> Array:
        return self._signal_scale(t) ** 2

    # ------------------------------------------------------------------ domain
    def __check_init__(self):
        with jax.ensure_compile_time_eval():  # constants are checked also while tracing
            T_hi = concrete(self._temperature(_arr(self.t_max)))
        if T_hi is not None and not np.all(np.isfinite(T_hi)):
            dtype = jnp.result_type(float)
            raise ValueError(
                f"{type(self).__name__}: {self._reach_params} give a largest temperature T(t_max) that overflows "
                f"{jnp.dtype(dtype).name} (max {float(jnp.finfo(dtype).max):.3g}); choose a smaller range"
                + ("" if dtype == jnp.float64 else " or enable float64 with jax.config.update('jax_enable_x64', True)")
            )

    def _t_range_text(self, name: str = "t") -> str:
        tmax = concrete(self.t_max)
        shown = "t_max" if tmax is None else f"t_max = {_fmt(tmax)}"
        return f"{name} must be finite and lie in [0, t_max] for this {type(self).__name__} schedule ({shown})"

    def _T_range_text(self, name: str = "T") -> str:
        with jax.ensure_compile_time_eval():
            T_hi = concrete(self._temperature(_arr(self.t_max)))
        top = "T(t_max)" if T_hi is None else _fmt(T_hi)
        return (
            f"{name} (temperature) must be finite and lie in (0, T_max] for this {type(self).__name__} schedule, "
            f"T_max = T(t_max) = {top} being the largest temperature it reaches"
        )

    def _check_t(self, t, name: str = "t"):
        """(t as a float array, mask of valid entries or None when checked eagerly)."""
        check_real(name, t, what="a real diffusion time (scalar or array)")
        raw, tmax = concrete(t), concrete(self.t_max)
        t = _arr(t)
        if raw is not None and tmax is not None:  # eager (or a constant inside a trace): refuse now
            r = raw.astype(np.float64)
            hi = np.float64(tmax) * (1 + _slack(t.dtype))
            ok = np.isfinite(r) & (r >= 0) & (r <= hi)
            if not ok.all():
                raise ValueError(f"{self._t_range_text(name)}, got {_first_bad(name, r, ok)}")
            return t, None
        tmax = jnp.asarray(self.t_max)
        ok = jnp.isfinite(t) & (t >= 0) & (t <= tmax + _slack(t.dtype) * jnp.abs(tmax))
        return t, ok

    def _on_t(self, t, formula, name: str = "t"):
        t, ok = self._check_t(t, name)
        out = formula(t)
        return out if ok is None else guard(out, ok)

    def _T_ok(self, T: Array, t: Array) -> Array:
        """Mask: T finite, > 0, and its (unclipped) time within [0, t_max] up to the rounding slack."""
        tmax = jnp.asarray(self.t_max, t.dtype)
        tol = _slack(t.dtype) * jnp.abs(tmax)
        return jnp.isfinite(T) & (T > 0) & jnp.isfinite(t) & (t >= -tol) & (t <= tmax + tol)

    def _time_at(self, T, name: str = "T"):
        """time_at_temperature with ``name`` in the messages (time_grid passes T_start, T_end)."""
        check_real(name, T, what="a real temperature (scalar or array)")
        raw, checked = concrete(T), False
        if raw is not None:  # refuse now, also while tracing when T and the schedule are constants
            r = raw.astype(np.float64)
            with jax.ensure_compile_time_eval():
                Tc = _arr(raw)
                okc = concrete(self._T_ok(Tc, self._time_raw(Tc)))
                if okc is not None:
                    okc = okc & np.isfinite(r) & (r > 0)
                elif not np.all(np.isfinite(r) & (r > 0)):
                    okc = np.isfinite(r) & (r > 0)
                if okc is not None and not okc.all():
                    raise ValueError(f"{self._T_range_text(name)}, got {_first_bad(name, r, okc)}")
            checked = okc is not None and okc.size == r.size
        T = _arr(T)
        t_raw = self._time_raw(T)
        tmax = jnp.asarray(self.t_max, t_raw.dtype)
        t = jnp.where(t_raw > tmax, tmax, jnp.where(t_raw < 0, jnp.zeros_like(t_raw), t_raw))  # rounding at the ends
        return t if checked else guard(t, self._T_ok(T, t_raw))

    # ------------------------------------------------------------------ public, checked
    def signal_scale(self, t: ArrayLike) -> Array:
        """theta(t): the scale of the clean signal in x_t. Under jit: an invalid t gives NaN."""
        return self._on_t(t, self._signal_scale)

    def noise_scale(self, t: ArrayLike) -> Array:
        """s(t): the standard deviation of the noise in x_t. Under jit: an invalid t gives NaN."""
        return self._on_t(t, self._noise_scale)

    def drift_coefficient(self, t: ArrayLike) -> Array:
        """f(t) in the forward SDE dx = f(t) x dt + g(t) dW; f = d log theta/dt.

        Under jit: an invalid t gives NaN.
        """
        return self._on_t(t, self._drift_coefficient)

    def diffusion(self, t: ArrayLike) -> Array:
        """g(t) in the forward SDE; g^2 = d(s^2)/dt - 2 f s^2. Under jit: an invalid t gives NaN."""
        return self._on_t(t, self._diffusion)

    def temperature(self, t: ArrayLike) -> Array:
        """T(t) = (s/theta)^2, the VE-equivalent noise variance (theory section 1), for t in [0, t_max].

        Under jit: an invalid t gives NaN.
        """
        return self._on_t(t, self._temperature)

    def time_at_temperature(self, T: ArrayLike) -> Array:
        """The inverse of ``temperature``: the diffusion time t in [0, t_max] with T(t) = T.

        T must lie in (0, T_max], T_max = T(t_max) the largest temperature the schedule reaches
        (VE geometric: [sigma_min^2, sigma_max^2]). Under jit: an invalid T gives NaN.
        """
        return self._time_at(T, "T")

    def max_temperature(self) -> float:
        """T(t_max), the largest temperature the schedule reaches (a Python float, concrete)."""
        with jax.ensure_compile_time_eval():  # a constant, also when called inside a jit trace
            dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
            return float(self._temperature(jnp.asarray(self.t_max, dtype)))

    def drift(self, x: Array, t: ArrayLike) -> Array:
        """Forward drift f(t) x. Under jit: an invalid t gives NaN."""
        check_real("x", x, what="a real state array")
        check_finite("x", x)
        return self.drift_coefficient(t) * x

    def abar(self, t: ArrayLike) -> Array:
        """theta(t)^2 (DDPM's alpha-bar); equals 1/(1 + T(t)). Under jit: an invalid t gives NaN."""
        return self._on_t(t, self._abar)


class VE(AbstractSchedule):
    """Variance-exploding schedule (theory section 1): x_t = y + sigma(t) z, T = sigma(t)^2.

    ``VE()`` is pure Brownian motion, sigma(t)^2 = t (so T = t) on [0, t_max]. ``VE(sigma_min,
    sigma_max)`` is the geometric schedule of Song et al., sigma(t) = sigma_min (sigma_max /
    sigma_min)^t on t in [0, 1]; its forward SDE has g(t) = sigma(t) sqrt(2 log(sigma_max /
    sigma_min)) and describes the increments above the sigma_min^2 already present at t = 0.

    **Arguments:**
    - ``sigma_min``, ``sigma_max``: both None (Brownian) or both given, finite scalars,
      0 < sigma_min < sigma_max.
    - ``t_max``: end of the Brownian time interval, finite, > 0 (default 100.0; ignored when
      geometric).

    **Domain:** t in [0, t_max]; T in (0, t_max] (Brownian) or [sigma_min^2, sigma_max^2]
    (geometric). Eager calls outside raise ValueError; under jit an out-of-domain t or T gives
    NaN. Float32: Brownian is exact; geometric agrees with float64 to 1e-5 relative (condition
    number 2 t log(sigma_max/sigma_min)).
    """

    sigma_min: Array | None
    sigma_max: Array | None
    brownian_t_max: Array
    _reach_params: ClassVar[str] = "sigma_max (or the Brownian t_max)"

    def __init__(self, sigma_min=None, sigma_max=None, *, t_max=100.0):
        if (sigma_min is None) != (sigma_max is None):
            missing = "sigma_max" if sigma_max is None else "sigma_min"
            raise ValueError(f"VE: {missing} is missing: give both sigma_min and sigma_max (geometric) or neither (Brownian)")
        if sigma_min is not None:
            self.sigma_min = _param("sigma_min", sigma_min)
            self.sigma_max = _param("sigma_max", sigma_max)
            lo, hi = concrete(sigma_min), concrete(sigma_max)
            if lo is not None and hi is not None and not float(lo) < float(hi):
                raise ValueError(f"VE: sigma_min must be < sigma_max, got sigma_min = {lo!r} >= sigma_max = {hi!r}")
            tiny = float(jnp.finfo(self.sigma_min.dtype).tiny)
            if lo is not None and not float(lo) ** 2 >= tiny:
                raise ValueError(
                    f"sigma_min = {float(lo)!r} is too small: T(0) = sigma_min^2 underflows {self.sigma_min.dtype} "
                    f"(sigma_min >= {np.sqrt(tiny):.3g})"
                )
        else:
            self.sigma_min = self.sigma_max = None
        self.brownian_t_max = _param("t_max", t_max)

    @property
    def geometric(self) -> bool:
        return self.sigma_min is not None

    @property
    def t_min(self):
        return 0.0

    @property
    def t_max(self):
        return 1.0 if self.geometric else self.brownian_t_max

    def _T_range_text(self, name: str = "T") -> str:
        if not self.geometric:
            return super()._T_range_text(name)
        lo, hi = concrete(self.sigma_min), concrete(self.sigma_max)
        shown = "" if lo is None or hi is None else f" = [{_fmt(lo**2)}, {_fmt(hi**2)}]"
        return (
            f"{name} (temperature) must be finite and lie in [sigma_min^2, sigma_max^2]{shown} for this geometric "
            "VE schedule (the temperatures it reaches)"
        )

    def _log_ratio(self):
        return jnp.log(self.sigma_max / self.sigma_min)

    def _signal_scale(self, t):
        return jnp.ones_like(t)

    def _noise_scale(self, t):
        if self.geometric:
            return self.sigma_min * jnp.exp(t * self._log_ratio())
        return jnp.sqrt(t)

    def _temperature(self, t):
        if self.geometric:
            return (self.sigma_min * jnp.exp(t * self._log_ratio())) ** 2
        return t

    def _time_raw(self, T):
        if self.geometric:
            # log(T/smin^2) without cancellation (T/smin^2 rounds to relative eps).
            return jnp.log(T / self.sigma_min / self.sigma_min) / (2 * self._log_ratio())
        return T

    def _drift_coefficient(self, t):
        return jnp.zeros_like(t)

    def _diffusion(self, t):
        if self.geometric:
            return self._noise_scale(t) * jnp.sqrt(2 * self._log_ratio())
        return jnp.ones_like(t)


class _AbstractVPFamily(AbstractSchedule):
    """Variance-preserving schedules: theta^2 + s^2 = 1, so T = 1/theta^2 - 1 and g^2 = -2f."""

    @abc.abstractmethod
    def _log_signal(self, t: Array) -> Array: ...

    def log_signal(self, t: ArrayLike) -> Array:
        """log theta(t). Under jit: an invalid t gives NaN."""
        return self._on_t(t, self._log_signal)

    def _signal_scale(self, t):
        return jnp.exp(self._log_signal(t))

    def _noise_scale(self, t):
        # s = sqrt(1 - theta^2) = sqrt(-expm1(2 log theta)), accurate as theta -> 1.
        return jnp.sqrt(-jnp.expm1(2 * self._log_signal(t)))

    def _temperature(self, t):
        # T = 1/theta^2 - 1 = expm1(-2 log theta), accurate at small t.
        return jnp.expm1(-2 * self._log_signal(t))

    def _abar(self, t):
        return jnp.exp(2 * self._log_signal(t))

    def _diffusion(self, t):
        return jnp.sqrt(-2 * self._drift_coefficient(t))


class VP(_AbstractVPFamily):
    """Continuous VP-SDE of Song et al. (theory section 1), t in [0, 1]:
    beta(t) = beta_min + t (beta_max - beta_min), dx = -beta/2 x dt + sqrt(beta) dW,
    theta(t) = exp(-t^2 (beta_max - beta_min)/4 - t beta_min/2), T = exp(int beta) - 1.

    **Arguments:** ``beta_min`` (default 0.1) and ``beta_max`` (default 20.0), finite scalars,
    0 <= beta_min <= beta_max, beta_max > 0 (beta_min = beta_max is a constant rate, an OU
    process); T_max = expm1((beta_min + beta_max)/2) must not overflow the working precision.

    **Domain:** t in [0, 1]; T in (0, T(1)] (T(1) = 2.3e4 for the defaults). Eager calls outside
    raise ValueError; under jit an out-of-domain t or T gives NaN. Float32 agrees with float64 to
    1e-5 relative on the whole domain, down to t -> 0 where T ~ beta_min t (expm1/log1p forms).
    """

    beta_min: Array
    beta_max: Array
    _reach_params: ClassVar[str] = "beta_min and beta_max"

    def __init__(self, beta_min=0.1, beta_max=20.0):
        self.beta_min = _param("beta_min", beta_min, lo_open=False)
        self.beta_max = _param("beta_max", beta_max)
        lo, hi = concrete(beta_min), concrete(beta_max)
        if lo is not None and hi is not None and float(lo) > float(hi):
            raise ValueError(f"VP: beta_min must be <= beta_max, got beta_min = {lo!r} > beta_max = {hi!r}")

    @property
    def t_min(self):
        return 0.0

    @property
    def t_max(self):
        return 1.0

    def _beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _integrated_beta(self, t):
        return 0.5 * t**2 * (self.beta_max - self.beta_min) + t * self.beta_min

    def beta(self, t: ArrayLike) -> Array:
        """beta(t) = beta_min + t (beta_max - beta_min). Under jit: an invalid t gives NaN."""
        return self._on_t(t, self._beta)

    def integrated_beta(self, t: ArrayLike) -> Array:
        """int_0^t beta = log(1 + T(t)). Under jit: an invalid t gives NaN."""
        return self._on_t(t, self._integrated_beta)

    def _log_signal(self, t):
        return -0.5 * self._integrated_beta(t)

    def _drift_coefficient(self, t):
        return -0.5 * self._beta(t)

    def _time_raw(self, T):
        # Solve t^2 D/2 + t bmin = L, L = log(1 + T), in the cancellation-free form
        # t = 2L / (bmin + sqrt(bmin^2 + 2 D L)).
        L = jnp.log1p(T)
        D = self.beta_max - self.beta_min
        return 2 * L / (self.beta_min + jnp.sqrt(self.beta_min**2 + 2 * D * L))


class OU(_AbstractVPFamily):
    """Ornstein-Uhlenbeck forward process of Biroli et al. (theory section 1):
    dx = -x dt + sqrt(2) dW, x_t = e^{-t} y + sqrt(1 - e^{-2t}) z, T = e^{2t} - 1,
    t = log(1 + T)/2. Defined on [0, t_max] (default t_max = 10; finite, > 0, with
    T_max = e^{2 t_max} - 1 representable: t_max <= 44 in float32, 354 in float64).

    **Domain:** t in [0, t_max]; T in (0, e^{2 t_max} - 1]. Eager calls outside raise ValueError;
    under jit an out-of-domain t or T gives NaN. Float32 agrees with float64 to 1e-5 relative
    (expm1/log1p forms; condition number 2t).
    """

    ou_t_max: Array
    _reach_params: ClassVar[str] = "t_max"

    def __init__(self, t_max=10.0):
        self.ou_t_max = _param("t_max", t_max)

    @property
    def t_min(self):
        return 0.0

    @property
    def t_max(self):
        return self.ou_t_max

    def _log_signal(self, t):
        return -t

    def _drift_coefficient(self, t):
        return -jnp.ones_like(t)

    def _time_raw(self, T):
        return 0.5 * jnp.log1p(T)


class DDPM(_AbstractVPFamily):
    """Discrete DDPM schedule of Ho et al. (theory section 1): abar_k = prod_{j=1..k} (1 - beta_j).

    Time is the step index t in [0, K] (abar(0) = 1, abar(K) = abar_K); between integers log abar
    is linear, which is the VP-SDE with piecewise-constant beta(t) = -log(1 - beta_ceil(t)). So
    ``temperature(k)`` at integer k is exactly (1 - abar_k)/abar_k, and the forward SDE drift
    f(t) = log(1 - beta_ceil(t))/2 is exact for this interpolation.

    **Arguments:**
    - ``betas``: the K noise increments, a 1-D array of 1 <= K <= 10^6 values, each in (0, 1).
      Default: linspace(beta_start, beta_end, num_steps).
    - ``beta_start=1e-4``, ``beta_end=0.02`` (each in (0, 1)), ``num_steps=1000`` (an integer in
      [1, 10^6]): the linear default.

    **Domain:** t in [0, K]; T in (0, 1/abar_K - 1] (2.5e4 for the default). Eager calls outside
    raise ValueError; under jit an out-of-domain t or T gives NaN. log abar is accumulated in
    float64 at construction (concrete betas), so float32 agrees with float64 to 1e-5 relative.
    """

    log_abar: Array  # shape (K + 1,), log_abar[0] = 0
    log_alpha: Array  # shape (K,), log(1 - beta_k): the drift's rates, exact also in float32
    _reach_params: ClassVar[str] = "betas"

    def __init__(self, betas=None, *, beta_start=1e-4, beta_end=0.02, num_steps=1000):
        dtype = jnp.result_type(float)
        if betas is None:
            num_steps = check_size("num_steps", num_steps, 1, MAX_DDPM_STEPS)
            _param("beta_start", beta_start, hi=1.0, hi_open=True)
            _param("beta_end", beta_end, hi=1.0, hi_open=True)
            bs, be = concrete(beta_start), concrete(beta_end)
            if bs is not None and be is not None:  # float64, rounded once when stored
                betas = np.linspace(float(bs), float(be), num_steps)
            else:
                betas = jnp.linspace(_arr(beta_start), _arr(beta_end), num_steps)
        else:
            check_real("betas", betas, what="a 1-D array of noise increments in (0, 1)")
            dtype = _arr(betas).dtype
        shape = tuple(getattr(betas, "shape", np.shape(betas)))
        if len(shape) != 1 or not 1 <= shape[0] <= MAX_DDPM_STEPS:
            raise ValueError(f"betas must be a 1-D array of 1 to {MAX_DDPM_STEPS} values in (0, 1), got shape {shape}")
        check_range("betas", betas, 0.0, 1.0, lo_open=True, hi_open=True)
        c = concrete(betas)
        if c is not None:  # accumulate in float64: the cumulative sum is where float32 would lose digits
            log_alpha = np.log1p(-c.astype(np.float64))
            self.log_abar = jnp.asarray(np.concatenate([[0.0], np.cumsum(log_alpha)]), dtype)
            self.log_alpha = jnp.asarray(log_alpha, dtype)
        else:
            self.log_alpha = jnp.log1p(-_arr(betas))
            self.log_abar = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(self.log_alpha)])

    @property
    def num_steps(self) -> int:
        return self.log_abar.shape[0] - 1

    @property
    def betas(self) -> Array:
        return -jnp.expm1(self.log_alpha)

    @property
    def t_min(self):
        return 0.0

    @property
    def t_max(self):
        return float(self.num_steps)

    def _log_signal(self, t):
        ks = jnp.arange(self.num_steps + 1, dtype=self.log_abar.dtype)
        return 0.5 * jnp.interp(t, ks, self.log_abar)

    def _drift_coefficient(self, t):
        k = jnp.clip(jnp.ceil(t).astype(jnp.int32), 1, self.num_steps)
        return 0.5 * self.log_alpha[k - 1]  # log(1 - beta_k) < 0

    def _time_raw(self, T):
        # log abar is decreasing in t: interpolate t as a function of -log abar = log(1 + T);
        # beyond step K, continue with the last step's rate (so out-of-range T maps past t_max).
        L = jnp.log1p(T)
        ks = jnp.arange(self.num_steps + 1, dtype=self.log_abar.dtype)
        t = jnp.interp(L, -self.log_abar, ks)
        L_top = -self.log_abar[-1]
        rate = -self.log_alpha[-1]
        return jnp.where(L > L_top, self.num_steps + (L - L_top) / rate, t)


class Cosine(_AbstractVPFamily):
    """Cosine schedule of Nichol & Dhariwal (theory section 1 family, VP):
    theta(t) = cos(u(t))/cos(u(0)), u(t) = (t + s0)/(1 + s0) * pi/2, t in [0, t_max].

    T(t) = cos(u0)^2/cos(u)^2 - 1 diverges as t -> 1, so the schedule stops at ``t_max``
    (default 0.999, where T is about 4.1e5; in (0, 1), with T(t_max) representable in the working
    precision). ``offset`` is s0 (default 0.008), in [0, 1].

    Computed as T = sin(u - u0) sin(u + u0)/sin(pi/2 - u)^2 and its inverse through arctan, both
    free of cancellation (the cos/arccos forms lose all digits of T at small t in float32).

    **Domain:** t in [0, t_max]; T in (0, T(t_max)]. Eager calls outside raise ValueError; under
    jit an out-of-domain t or T gives NaN. Float32 agrees with float64 to 1e-5 relative for the
    same float32 input t (T's condition number is about 2/(1 - t) near the pole).
    """

    offset: Array
    cos_t_max: Array
    _reach_params: ClassVar[str] = "t_max"

    def __init__(self, offset=0.008, *, t_max=0.999):
        self.offset = _param("offset", offset, lo_open=False, hi=1.0)
        self.cos_t_max = _param("t_max", t_max, hi=1.0, hi_open=True)
        if concrete(self.cos_t_max) is not None and not float(concrete(self.cos_t_max)) < 1:
            raise ValueError(
                f"t_max must lie in (0, 1) (Cosine's T diverges at t = 1), got {t_max!r}, which rounds to 1 in "
                f"{self.cos_t_max.dtype}"
            )

    @property
    def t_min(self):
        return 0.0

    @property
    def t_max(self):
        return self.cos_t_max

    def _c(self):
        return (math.pi / 2) / (1 + self.offset)

    def _temperature(self, t):
        c = self._c()
        # cos^2(u0) - cos^2(u) = sin(u - u0) sin(u + u0); cos(u) = sin(c (1 - t)).
        return jnp.sin(c * t) * jnp.sin(c * (t + 2 * self.offset)) / jnp.sin(c * (1 - t)) ** 2

    def _log_signal(self, t):
        return -0.5 * jnp.log1p(self._temperature(t))

    def _drift_coefficient(self, t):
        c = self._c()
        v = c * (1 - t)  # pi/2 - u: tan(u) = cos(v)/sin(v), accurate near the pole
        return -c * jnp.cos(v) / jnp.sin(v)

    def _time_raw(self, T):
        # tan(u) = sqrt(sin^2 u0 + T)/cos u0, and u - u0 = arctan of
        # T cos u0 / ((q + sin u0)(cos^2 u0 + q sin u0)), q = sqrt(sin^2 u0 + T): no cancellation.
        c = self._c()
        s, k = jnp.sin(c * self.offset), jnp.cos(c * self.offset)
        q = jnp.sqrt(s**2 + T)
        return jnp.arctan2(T * k, (q + s) * (k**2 + q * s)) / c


__all__ = ["AbstractSchedule", "Cosine", "DDPM", "OU", "VE", "VP"]
