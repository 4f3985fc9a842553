"""Input validation at the Python boundary (theory section 13).

Every check runs only on concrete values: inside ``jax.jit``/``jax.vmap`` the arguments are
tracers and the check is skipped (their values cannot be known before tracing), so validated
functions stay jittable and vmappable. Shapes are always static and always checked.
"""

from __future__ import annotations

import jax
import numpy as np


def is_concrete(value) -> bool:
    """True if ``value`` holds data we can look at now (not a tracer)."""
    return not isinstance(value, jax.core.Tracer)


def concrete(value):
    """A NumPy view of ``value`` if it is concrete, else ``None``."""
    if not is_concrete(value):
        return None
    try:
        return np.asarray(value)
    except Exception:  # pragma: no cover - exotic array-likes
        return None


def check_finite(name: str, value) -> None:
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a real number or array, got {type(value).__name__} {value!r}")
    arr = concrete(value)
    if arr is None:
        return
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)) and arr.dtype != np.bool_:
        raise TypeError(f"{name} must be a real number or array, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")


def check_positive(name: str, value, *, allow_zero: bool = False) -> None:
    """``value`` (scalar or array) must be finite and > 0 (or >= 0)."""
    arr = concrete(value)
    if arr is None:
        return
    check_finite(name, arr)
    bad = np.any(arr < 0) if allow_zero else np.any(arr <= 0)
    if bad:
        rng = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {rng} (allowed range: {name} {rng}), got {arr.min()!r}")


def check_temperature(T, name: str = "T") -> None:
    """Temperature (VE-equivalent noise variance, theory section 1): finite and > 0."""
    check_real(name, T, what="a temperature (a real number or array)")
    check_float32_range(name, T)
    arr = concrete(T)
    if arr is None:
        return
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(
            f"{name} (temperature = VE-equivalent noise variance) must be finite and > 0, "
            f"got {arr if arr.ndim == 0 else arr.min()!r}"
        )


def check_range(name: str, value, lo=None, hi=None, *, lo_open=False, hi_open=False) -> None:
    arr = concrete(value)
    if arr is None:
        return
    check_finite(name, arr)
    ok = True
    if lo is not None:
        ok &= bool(np.all(arr > lo) if lo_open else np.all(arr >= lo))
    if hi is not None:
        ok &= bool(np.all(arr < hi) if hi_open else np.all(arr <= hi))
    if not ok:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else repr(lo)
        hi_s = "inf" if hi is None else repr(hi)
        raise ValueError(f"{name} must lie in {lb}{lo_s}, {hi_s}{rb}, got {arr!r}")


def check_state(x, dim: int, name: str = "x") -> None:
    """A single state vector of shape (dim,). Batching is jax.vmap's job."""
    shape = getattr(x, "shape", np.shape(x))
    if tuple(shape) != (dim,):
        raise ValueError(
            f"{name} must have shape ({dim},) (one state of this {dim}-dimensional ensemble; "
            f"use jax.vmap for batches), got shape {tuple(shape)}"
        )
    check_real(name, x, what="a real vector")
    check_finite(name, x)
    check_float32_range(name, x)


# ---------------------------------------------------------------------------------------------
# Types, ranks, sizes, keys, float32 range, and the jit policy (NaN propagation).
#
# Policy (theory section 13): eager calls raise a ValueError/TypeError naming the
# argument and its allowed range. Under jax.jit/vmap the values are tracers, so an invalid value
# cannot be refused; instead the guarded argument is replaced by NaN (``guard``), which propagates
# deterministically to every output. A traced call with a bad temperature therefore returns NaN,
# never a plausible number.

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_SIZE = 2**31 - 1  # XLA's array dimensions are int32


def x64_enabled() -> bool:
    return bool(jax.config.jax_enable_x64)


def check_real(name: str, value, *, what: str = "a real number or array") -> None:
    """Reject None, strings, bools, complex and object dtypes with a TypeError naming ``name``."""
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    if is_concrete(value):
        try:
            arr = np.asarray(value)
        except Exception as err:
            raise TypeError(f"{name} must be {what}, got {type(value).__name__}") from err
        if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise TypeError(f"{name} must be {what}, got dtype {arr.dtype}")
    else:
        dt = value.dtype
        if dt == jax.numpy.bool_ or not (jax.numpy.issubdtype(dt, jax.numpy.integer) or jax.numpy.issubdtype(dt, jax.numpy.floating)):
            raise TypeError(f"{name} must be {what}, got dtype {dt}")


def check_scalar(name: str, value, *, what: str = "a scalar") -> None:
    """``value`` must be rank 0 (a Python number or a 0-d array); batch with jax.vmap."""
    check_real(name, value, what=what)
    shape = tuple(getattr(value, "shape", np.shape(value)))
    if shape != ():
        raise ValueError(f"{name} must be {what} (shape ()), got shape {shape}; batch with jax.vmap")


def check_float32_range(name: str, value) -> None:
    """Finite values that JAX's default float32 cannot hold (|v| > 3.4e38) are refused unless x64 is on."""
    arr = concrete(value)
    if arr is None or x64_enabled():
        return
    if arr.size and (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        finite = np.abs(arr[np.isfinite(arr)].astype(np.float64))
        big = finite.max() if finite.size else 0.0
        if big > FLOAT32_MAX:
            raise ValueError(
                f"{name} = {big:.3g} overflows float32 (JAX's default precision; |{name}| <= 3.4e38); "
                "enable float64 with jax.config.update('jax_enable_x64', True)"
            )


def check_temperature_scalar(T, name: str = "T") -> None:
    """A scalar temperature: real, rank 0, finite, > 0, and representable in the working precision."""
    check_scalar(name, T, what="a scalar temperature")
    check_float32_range(name, T)
    check_temperature(T, name)


def guard(value, ok):
    """``value`` where ``ok`` holds, NaN elsewhere: the traced-call policy for invalid inputs."""
    value = jax.numpy.asarray(value)
    if not jax.numpy.issubdtype(value.dtype, jax.numpy.floating):
        value = value.astype(jax.numpy.result_type(float))
    return jax.numpy.where(ok, value, jax.numpy.nan)


def guard_temperature(T):
    """T unchanged if finite and > 0, else NaN (traced calls: the result becomes NaN)."""
    T = jax.numpy.asarray(T)
    if not jax.numpy.issubdtype(T.dtype, jax.numpy.floating):
        T = T.astype(jax.numpy.result_type(float))
    return jax.numpy.where(jax.numpy.isfinite(T) & (T > 0), T, jax.numpy.nan)


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """A Python/NumPy integer (not bool) in [lo, hi]; returns it as ``int``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else str(lo)
        hi_s = "inf" if hi is None else str(hi)
        raise ValueError(f"{name} must be an integer in [{lo_s}, {hi_s}], got {value}")
    return value


def check_size(name: str, value, lo: int = 1, hi: int = MAX_SIZE) -> int:
    """A count of things (samples, steps, points): an integer in [lo, hi]."""
    return check_int(name, value, lo, hi)


def check_key(name: str, key) -> None:
    """A JAX PRNG key: a typed key (jax.random.key) or a raw uint32 key of shape (2,)."""
    if key is None or isinstance(key, (str, bytes, bool, int, float)):
        raise TypeError(f"{name} must be a JAX PRNG key (jax.random.key(seed)), got {type(key).__name__} {key!r}")
    dtype = getattr(key, "dtype", None)
    if dtype is None:
        raise TypeError(f"{name} must be a JAX PRNG key (jax.random.key(seed)), got {type(key).__name__}")
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if tuple(key.shape) != ():
            raise ValueError(f"{name} must be a single PRNG key (shape ()), got shape {tuple(key.shape)}; split or vmap for many")
        return
    if dtype != np.uint32 or tuple(key.shape) != (2,):
        raise TypeError(
            f"{name} must be a JAX PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
            f"got an array of dtype {dtype} and shape {tuple(key.shape)}"
        )


def check_callable(name: str, fn) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__} {fn!r}")


def check_sample_count(n, dim: int, name: str = "n") -> int:
    """Number of samples: an integer >= 0 with n * dim below XLA's 2**31 - 1 elements."""
    limit = max(1, MAX_SIZE // max(int(dim), 1))
    return check_int(name, n, 0, limit)
