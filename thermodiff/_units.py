"""Units: noise-level conventions and data scales (theory section 1).

thermodiff labels every noise level by its temperature T, the VE-equivalent noise variance
(x = y + sqrt(T) z). Papers and codebases use other labels for the same level; for the
variance-preserving family abar = theta^2 = 1/(1 + T), so each label is a function of T:

| convention | meaning | from T |
|---|---|---|
| ``T`` | VE noise variance (thermodiff) | T |
| ``sigma`` | VE noise standard deviation (EDM / Karras) | sqrt(T) |
| ``ou_t`` | Ornstein-Uhlenbeck time (Biroli et al., ``OU()``) | log(1 + T)/2 |
| ``vp_t`` | VP-SDE time of ``VP(0.1, 20)`` in [0, 1] | t^2 (bmax-bmin)/2 + t bmin = log(1+T) |
| ``ddpm_step`` | 0-based DDPM step, ``alphas_cumprod[k] = 1/(1 + T)`` | ``noise_conventions`` |
| ``abar`` | DDPM alpha-bar, theta^2 | 1/(1 + T) |
| ``theta`` | signal scale sqrt(abar) | 1/sqrt(1 + T) |
| ``log_snr`` | log signal-to-noise ratio, log(abar/(1 - abar)) | -log T |

**The DDPM off-by-one.** Codebases (Ho et al., diffusers) index the 1000 linear betas from 0 and
define ``alphas_cumprod[k] = prod_{j=0..k} (1 - beta_j)``: step k = 0 already carries beta_0.
thermodiff's ``DDPM`` schedule time is 1-based instead, abar(t) = prod_{j=1..t} (1 - beta_j) with
abar(0) = 1. The same noise level therefore has ``ddpm_step = t - 1``, i.e. t = k + 1; this module
always reports the 0-based ``ddpm_step``.

**Data scales.** T has the units of data squared: if the data are mapped affinely,
x_scaled = a x + b with a > 0, every temperature scales as T_scaled = a^2 T_raw (a shift does not
change T). ``scale_data`` offers the three usual scales and returns the map (``DataScale``), which
converts temperatures between the two units.

These are NumPy functions (float64 in and out), meant for the Python boundary (command line,
reports, loading a checkpoint trained elsewhere); they are not jittable.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._schedules import DDPM, VP
from ._validate import check_finite, check_positive, check_range, check_real

CONVENTIONS = ("T", "sigma", "ou_t", "vp_t", "ddpm_step", "abar", "theta", "log_snr")
DATA_SCALES = ("raw", "unit-variance", "minus-one-one")
_EDGE_RTOL = 1e-12  # relative slack at the ends of the VP and DDPM ranges (rounding in round trips)


def _f64(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _check_temperature(T, name: str = "T") -> None:
    """Real, finite, > 0 (in float64: these are NumPy functions, whatever JAX's precision)."""
    check_real(name, T, what="a temperature (a real number or array)")
    arr = _f64(T)
    if not np.all(np.isfinite(arr) & (arr > 0)):
        bad = arr.reshape(-1)[~(np.isfinite(arr) & (arr > 0)).reshape(-1)][0]
        raise ValueError(f"{name} (temperature = VE-equivalent noise variance) must be finite and > 0, got {float(bad)!r}")


def _out(arr: np.ndarray):
    """A NumPy float64 scalar for 0-d input, else the array."""
    return arr[()]


def _vp_betas(vp) -> tuple[float, float]:
    vp = VP() if vp is None else vp
    if not isinstance(vp, VP):
        raise TypeError(f"vp must be a VP schedule or None, got {type(vp).__name__}")
    bmin, bmax = _f64(vp.beta_min), _f64(vp.beta_max)
    if bmin.ndim or bmax.ndim:
        raise ValueError("vp must have scalar beta_min and beta_max (not a batched schedule)")
    return float(bmin), float(bmax)


def _ddpm_log_abar(ddpm) -> np.ndarray:
    """thermodiff's 1-based log abar_t, t = 0..K (log abar_0 = 0), in float64."""
    if ddpm is None:
        betas = np.linspace(1e-4, 0.02, 1000)
        return np.concatenate([[0.0], np.cumsum(np.log1p(-betas))])
    if not isinstance(ddpm, DDPM):
        raise TypeError(f"ddpm must be a DDPM schedule or None, got {type(ddpm).__name__}")
    log_abar = _f64(ddpm.log_abar)
    if log_abar.ndim != 1:
        raise ValueError("ddpm must be a single schedule (not a batched one)")
    return log_abar


def _vp_time(L: np.ndarray, vp) -> np.ndarray:
    """VP time at L = log(1 + T); NaN above t = 1."""
    bmin, bmax = _vp_betas(vp)
    D = bmax - bmin
    L_max = 0.5 * D + bmin
    t = 2 * L / (bmin + np.sqrt(bmin**2 + 2 * D * L))
    return np.where(L <= L_max * (1 + _EDGE_RTOL), np.minimum(t, 1.0), np.nan)


def _ddpm_step(L: np.ndarray, ddpm) -> np.ndarray:
    """0-based DDPM step at L = log(1 + T); NaN outside [step 0, step K-1]."""
    minus_log_acp = -_ddpm_log_abar(ddpm)[1:]  # alphas_cumprod[k], k = 0..K-1
    steps = np.interp(L, minus_log_acp, np.arange(minus_log_acp.size, dtype=np.float64))
    lo, hi = minus_log_acp[0] * (1 - _EDGE_RTOL), minus_log_acp[-1] * (1 + _EDGE_RTOL)
    inside = (L >= lo) & (L <= hi)
    return np.where(inside, steps, np.nan)


@dataclasses.dataclass(frozen=True, eq=False)
class NoiseLevel:
    """One noise level (or an array of them) in every convention (theory section 1).

    All fields are float64 NumPy arrays of the shape of ``T`` (NumPy scalars for a scalar ``T``):

    - ``T``: VE-equivalent noise variance; ``sigma`` = sqrt(T).
    - ``ou_t``: OU time log(1 + T)/2 (``OU()``, Biroli et al.).
    - ``vp_t``: time of the VP-SDE (default ``VP(0.1, 20)``) in [0, 1]; NaN above T(1) = 2.3e4.
    - ``ddpm_step``: real-valued **0-based** DDPM step k with ``alphas_cumprod[k] = 1/(1 + T)``
      (default linear 1000-step betas), log abar interpolated linearly between integers; equals
      ``DDPM().time_at_temperature(T) - 1`` (thermodiff's DDPM time is 1-based, t = k + 1). NaN
      below step 0 (T < 1.0001e-4) and above step 999 (T about 2.5e4).
    - ``abar`` = 1/(1 + T); ``theta`` = sqrt(abar); ``log_snr`` = log(abar/(1 - abar)) = -log T.
    """

    T: np.ndarray
    sigma: np.ndarray
    ou_t: np.ndarray
    vp_t: np.ndarray
    ddpm_step: np.ndarray
    abar: np.ndarray
    theta: np.ndarray
    log_snr: np.ndarray

    def as_dict(self) -> dict:
        """The fields by convention name (the keys are ``CONVENTIONS``)."""
        return {name: getattr(self, name) for name in CONVENTIONS}


def noise_conventions(T, *, ddpm=None, vp=None) -> NoiseLevel:
    """Express temperatures in every common noise-level convention (theory section 1).

    **Arguments:**
    - ``T``: temperature(s), the VE-equivalent noise variance; a scalar or array, finite, > 0.
    - ``ddpm``: the ``DDPM`` schedule whose 0-based step is reported (default ``None``: the
      linear betas linspace(1e-4, 0.02, 1000) of Ho et al.).
    - ``vp``: the ``VP`` schedule whose time is reported (default ``None``: ``VP(0.1, 20)``).

    **Returns:** a ``NoiseLevel`` whose fields have the shape of ``T`` (float64). Out-of-range
    ``vp_t`` and ``ddpm_step`` are NaN. Vectorised; the inverse is ``temperature_from``.
    """
    _check_temperature(T)
    T = _f64(T)
    L = np.log1p(T)
    return NoiseLevel(
        T=_out(T),
        sigma=_out(np.sqrt(T)),
        ou_t=_out(0.5 * L),
        vp_t=_out(_vp_time(L, vp)),
        ddpm_step=_out(_ddpm_step(L, ddpm)),
        abar=_out(np.exp(-L)),
        theta=_out(np.exp(-0.5 * L)),
        log_snr=_out(-np.log(T)),
    )


def _check_value(value, convention: str, ddpm, vp) -> None:
    name = f"value (convention {convention!r})"
    check_real(name, value, what="a real number or array")
    if convention in ("T", "sigma", "ou_t"):
        check_positive(name, value)
    elif convention == "vp_t":
        check_range(name, value, 0.0, 1.0, lo_open=True)
    elif convention == "ddpm_step":
        check_range(name, value, 0.0, float(_ddpm_log_abar(ddpm).size - 2))
    elif convention in ("abar", "theta"):
        check_range(name, value, 0.0, 1.0, lo_open=True, hi_open=True)
    else:
        check_finite(name, value)


def temperature_from(value, convention: str, *, ddpm=None, vp=None):
    """The temperature T of a noise level given in another convention (theory section 1).

    The inverse of ``noise_conventions``: ``temperature_from(noise_conventions(T).ou_t, "ou_t")``
    is T again (to rounding).

    **Arguments:**
    - ``value``: scalar or array in the units of ``convention``.
    - ``convention``: one of ``CONVENTIONS``, with the allowed values: ``"T"``, ``"sigma"``,
      ``"ou_t"`` > 0; ``"vp_t"`` in (0, 1]; ``"ddpm_step"`` (0-based, real-valued) in
      [0, K - 1] (K = 1000 by default; thermodiff's 1-based DDPM time is ddpm_step + 1);
      ``"abar"``, ``"theta"`` in (0, 1); ``"log_snr"`` any finite real.
    - ``ddpm``, ``vp``: the schedules, as in ``noise_conventions``.

    **Returns:** T, float64, of the shape of ``value`` (a NumPy scalar for a scalar).
    """
    if not isinstance(convention, str) or convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    _check_value(value, convention, ddpm, vp)
    with np.errstate(over="ignore"):  # an overflow is refused below, by name
        v = _f64(value)
        if convention == "sigma":
            v = v**2
        elif convention == "ou_t":
            v = np.expm1(2 * v)
        elif convention == "vp_t":
            bmin, bmax = _vp_betas(vp)
            v = np.expm1(0.5 * v**2 * (bmax - bmin) + v * bmin)
        elif convention == "ddpm_step":
            log_abar = _ddpm_log_abar(ddpm)
            v = np.expm1(-np.interp(v + 1, np.arange(log_abar.size, dtype=np.float64), log_abar))
        elif convention == "abar":
            v = np.expm1(-np.log(v))
        elif convention == "theta":
            v = np.expm1(-2 * np.log(v))
        elif convention == "log_snr":
            v = np.exp(-v)
    if not np.all(np.isfinite(v)):
        bad = float(_f64(value).reshape(-1)[~np.isfinite(v).reshape(-1)][0])
        raise ValueError(
            f"value (convention {convention!r}) = {bad!r} is a temperature beyond float64 (T <= 1.8e308): "
            "choose a less extreme value"
        )
    return _out(v)


@dataclasses.dataclass(frozen=True, eq=False)
class DataScale:
    """An affine data map x_scaled = a x + b (a > 0) and its action on temperatures.

    - ``name``: one of ``DATA_SCALES``.
    - ``a``: the positive scalar factor; ``b``: the shift, a float64 scalar or a (d,) vector.

    Temperatures have the units of data squared (theory section 1): T_scaled = a^2 T_raw; the
    shift b does not change them.
    """

    name: str
    a: float
    b: np.ndarray

    def apply(self, X) -> np.ndarray:
        """Map raw data (one point (d,) or a batch (N, d)) to the scaled units."""
        return self.a * self._points("X", X) + self.b

    def invert(self, X_scaled) -> np.ndarray:
        """Map scaled data back to the raw units: x = (x_scaled - b)/a."""
        return (self._points("X_scaled", X_scaled) - self.b) / self.a

    def _points(self, name: str, X) -> np.ndarray:
        check_real(name, X, what="a point (d,) or a batch of points (N, d)")
        shape, d = np.shape(X), np.shape(self.b)
        if len(shape) not in (1, 2) or (d and shape[-1] != d[0]):
            want = f"({d[0]},) or (N, {d[0]})" if d else "(d,) or (N, d)"
            raise ValueError(f"{name} must have shape {want}, got shape {shape}")
        check_finite(name, X)
        return _f64(X)

    def temperature_to_data_units(self, T_scaled):
        """T_raw = T_scaled / a^2: a temperature of the scaled data in the raw data's units."""
        check_real("T_scaled", T_scaled, what="a temperature (a real number or array)")
        check_positive("T_scaled", T_scaled, allow_zero=True)
        return _out(_f64(T_scaled) / self.a**2)

    def temperature_to_scaled_units(self, T_raw):
        """T_scaled = a^2 T_raw: a temperature of the raw data in the scaled data's units."""
        check_real("T_raw", T_raw, what="a temperature (a real number or array)")
        check_positive("T_raw", T_raw, allow_zero=True)
        return _out(self.a**2 * _f64(T_raw))


def _check_data(X) -> np.ndarray:
    shape = np.shape(X)
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(
            f"X must be a non-empty 2-D array of shape (N, d) (N points in d dimensions), "
            f"got shape {shape}"
        )
    check_real("X", X, what="a real array of shape (N, d)")
    check_finite("X", X)
    return _f64(X)


def data_scale(X, scale: str) -> DataScale:
    """Fit one of the three standard data scales to a dataset (theory section 1).

    **Arguments:**
    - ``X``: the raw dataset, shape (N, d), finite (flatten images to d = pixels x channels).
    - ``scale``: one of ``DATA_SCALES``:
      ``"raw"``: unchanged (a = 1, b = 0);
      ``"unit-variance"``: x -> (x - mu)/s with mu the per-coordinate mean and s^2 the mean over
      the d coordinates of the per-coordinate (population) variance, so the scaled data have
      mean 0 and average per-coordinate variance 1; s is one global factor, so the geometry is
      only shifted and rescaled (unlike per-feature standardisation);
      ``"minus-one-one"``: x -> 2 (x - min)/(max - min) - 1 with the global min and max over the
      whole array (not per coordinate), the usual pixel map to [-1, 1] of image diffusion models.

    **Returns:** the fitted ``DataScale``. Raises ``ValueError`` for constant data (max == min or
    zero variance) under the two non-raw scales.
    """
    if not isinstance(scale, str) or scale not in DATA_SCALES:
        raise ValueError(f"scale must be one of {DATA_SCALES}, got {scale!r}")
    X = _check_data(X)
    if scale == "raw":
        return DataScale(scale, 1.0, np.float64(0.0))
    if scale == "unit-variance":
        mu = X.mean(axis=0)
        s = float(np.sqrt(X.var(axis=0).mean()))
        if not s > 0:
            raise ValueError(
                "X has zero variance in every coordinate: scale 'unit-variance' needs "
                "non-constant data"
            )
        return DataScale(scale, 1.0 / s, -mu / s)
    lo, hi = float(X.min()), float(X.max())
    if not hi > lo:
        raise ValueError(
            f"X is constant (max == min == {lo!r}): scale 'minus-one-one' needs max > min"
        )
    return DataScale(scale, 2.0 / (hi - lo), np.float64(-2.0 * lo / (hi - lo) - 1.0))


def scale_data(X, scale: str) -> tuple[np.ndarray, DataScale]:
    """Rescale a dataset to one of ``DATA_SCALES`` (see ``data_scale`` for their definitions).

    **Arguments:** ``X``, the raw dataset (N, d); ``scale``, ``"raw"``, ``"unit-variance"`` or
    ``"minus-one-one"``.

    **Returns:** ``(X_scaled, data_scale)``: the scaled data (float64, shape (N, d)) and the fitted
    ``DataScale``, whose ``temperature_to_data_units`` converts temperatures of the scaled data
    back to the raw units.
    """
    ds = data_scale(X, scale)
    return ds.apply(X), ds


__all__ = [
    "CONVENTIONS",
    "DATA_SCALES",
    "DataScale",
    "NoiseLevel",
    "data_scale",
    "noise_conventions",
    "scale_data",
    "temperature_from",
]
