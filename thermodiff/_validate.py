"""Input validation at the Python boundary (DESIGN.md "Bad input").

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
    arr = concrete(value)
    if arr is None:
        return
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
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
    check_finite(name, x)
