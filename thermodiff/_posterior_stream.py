"""Streaming posterior statistics over stored points, shared by the Hopfield and REM modules.

Everything that acts on one state x streams over the dataset in chunks with an online
log-sum-exp (memory O(chunk), never O(N), theory section 3.2) and is jittable and vmappable over
x and T. Patterns are given as an (N, d) array or a ``FiniteDataset`` (whose ``chunk_size`` sets
the streaming chunk). Also the validation helpers of those modules (theory section 13).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Scalar, Vector
from ._ensembles._base import as_float_array
from ._ensembles._finite import FiniteDataset
from ._validate import (
    check_finite,
    check_float32_range,
    check_int,
    check_real,
    check_state,
    check_temperature_scalar,
    concrete,
    guard_temperature,
    is_concrete,
)

_NEG = -1e30  # the log-weight FiniteDataset gives padding rows (see _ensembles/_finite.py)


# ============================================================================ validation
def _as_dataset(patterns, name: str = "patterns") -> FiniteDataset:
    """A FiniteDataset from an (N, d) array of patterns (validated), or the dataset itself."""
    if isinstance(patterns, FiniteDataset):
        return patterns
    arr = as_float_array(name, patterns)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be an (N, d) array of N patterns in d dimensions (or a FiniteDataset), "
                         f"got shape {tuple(arr.shape)}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must hold at least one pattern of dimension >= 1 (N >= 1, d >= 1), "
                         f"got shape {tuple(arr.shape)}")
    check_finite(name, arr)
    return FiniteDataset(arr)


def _check_T(T, name: str = "T"):
    """A scalar temperature > 0 (the value is checked when concrete, the shape always)."""
    check_temperature_scalar(T, name)
    return T


def _check_int(name: str, value, lo: int, hi: int = 10**7) -> int:
    """An integer in [lo, hi] (starts, trials, samples, dimensions are held in memory at once)."""
    return check_int(name, value, lo, hi)


def _check_at_least(name: str, value, lo: float, what: str) -> None:
    check_real(name, value, what="a real number or array")
    check_float32_range(name, value)
    arr = concrete(value)
    if arr is None:
        return
    if not np.all(np.isfinite(arr)) or np.any(arr < lo):
        raise ValueError(f"{name} ({what}) must be finite and >= {lo} (allowed range: [{lo}, inf)), got {arr!r}")


def _check_positive(name: str, value, what: str) -> None:
    check_real(name, value, what="a real number or array")
    check_float32_range(name, value)
    arr = concrete(value)
    if arr is None:
        return
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} ({what}) must be finite and > 0 (allowed range: (0, inf)), got {arr!r}")


def _check_dim_state(ds: FiniteDataset, x, name: str = "x") -> None:
    check_state(x, ds.dim, name)


# ============================================================================ the streaming core
class _Stats(NamedTuple):
    lse: Scalar  # log Z = logsumexp_n(log pi_n + (x.y_n - |y_n|^2/2)/T)
    mean: Vector  # m_T(x) = sum_n w_n y_n
    entropy: Scalar  # -sum_n w_n log w_n
    sum_w2: Scalar  # sum_n w_n^2
    log_w_max: Scalar  # log max_n w_n
    argmax: Array  # index of the largest weight
    anchor: Scalar  # |x - y*|^2/2 - T log pi*, y* = the point of largest weight


def _chunk_stats(pts, logw, x, T, offset, exclude):
    """Per-chunk sums, relative to the chunk's own maximum logit."""
    half_sq = 0.5 * jnp.sum(pts * pts, axis=1)
    logits = logw + (pts @ x - half_sq) / T
    idx = offset + jnp.arange(pts.shape[0])
    logits = jnp.where(idx == exclude, _NEG, logits)
    i = jnp.argmax(logits)
    mx = logits[i]
    e = jnp.exp(logits - mx)
    diff = x - pts[i]
    anchor = 0.5 * jnp.sum(diff * diff) - T * logw[i]
    return (mx, jnp.sum(e), e @ pts, jnp.sum(e * (logits - mx)), jnp.sum(e * e), idx[i], anchor)


def _merge(c, b):
    c_mx, c0, c1, cL, c2, ci, ca = c
    b_mx, b0, b1, bL, b2, bi, ba = b
    mx = jnp.maximum(c_mx, b_mx)
    fa, fb = jnp.exp(c_mx - mx), jnp.exp(b_mx - mx)
    take_b = b_mx > c_mx
    return (
        mx,
        fa * c0 + fb * b0,
        fa * c1 + fb * b1,
        fa * (cL + (c_mx - mx) * c0) + fb * (bL + (b_mx - mx) * b0),
        fa * fa * c2 + fb * fb * b2,
        jnp.where(take_b, bi, ci),
        jnp.where(take_b, ba, ca),
    )


def _stream(ds: FiniteDataset, x: Vector, T, exclude=-1) -> _Stats:
    """One online pass over the chunks of ``ds``: everything the posterior w_n(x, T) gives.

    ``exclude``: index of a point to leave out (its weight set to zero; -1: none). Memory
    O(chunk). Differentiable: the running maximum m enters only through m + log sum e^{l - m},
    whose derivative in m is zero, so autodiff gives the exact gradients."""
    exclude = jnp.asarray(exclude)
    # A dataset sharded over devices and processes (ShardedDataset, _ensembles/_sharded.py) runs
    # this same pass on each of its shards and merges the shards' statistics exactly.
    if hasattr(ds, "_sharded_stream"):
        return ds._sharded_stream(x, T, exclude)
    chunks, logws = ds.chunks, ds.chunk_log_weights
    n_chunks, chunk = chunks.shape[0], chunks.shape[1]
    if n_chunks == 1:
        acc = _chunk_stats(chunks[0], logws[0], x, T, 0, exclude)
    else:
        offsets = jnp.arange(n_chunks) * chunk

        @jax.checkpoint
        def body(carry, inp):
            pts, logw, off = inp
            return _merge(carry, _chunk_stats(pts, logw, x, T, off, exclude)), None

        first = _chunk_stats(chunks[0], logws[0], x, T, 0, exclude)
        acc, _ = jax.lax.scan(body, first, (chunks[1:], logws[1:], offsets[1:]))
    mx, s0, s1, sL, s2, i, anchor = acc
    log_s0 = jnp.log(s0)  # s0 = sum_n exp(l_n - l_max) >= 1
    lse = mx + log_s0
    return _Stats(
        lse=lse,
        mean=s1 / s0,
        entropy=log_s0 - sL / s0,
        sum_w2=s2 / (s0 * s0),
        log_w_max=-log_s0,
        argmax=i,
        anchor=anchor,
    )


@eqx.filter_jit
def _stream_jit(ds, x, T, exclude):
    """``_stream`` compiled once per dataset structure (eager calls reuse it; T, x and exclude
    are traced arrays, so new values do not recompile)."""
    return _stream(ds, x, T, exclude)


@eqx.filter_jit
def _energy_jit(ds, x, T):
    st = _stream(ds, x, T)
    # |x - y*|^2/2 - T log pi* - T log sum_n w_n/w*  (log_w_max = -log sum_n w_n/w*)
    return st.anchor + T * st.log_w_max - T * math.log(ds.n_points)


def _weight_margin(dtype) -> float:
    """Margin above a weight threshold: the symmetric mixture of two patterns has weights 1/2
    exactly, which rounding must not push over a threshold of 1/2."""
    return 64 * math.sqrt(float(jnp.finfo(dtype).eps))


def _as_T(T):
    """T as an array (a Python scalar stays weakly typed: it does not promote float32 data).

    Traced (jit/vmap): an invalid T becomes NaN, so every result is NaN (theory section 13).
    """
    return jnp.asarray(T) if is_concrete(T) else guard_temperature(T)


def _as_x(x):
    """The state as an array; traced, a non-finite state becomes all NaN."""
    x = jnp.asarray(x)
    return x if is_concrete(x) else jnp.where(jnp.all(jnp.isfinite(x)), x, jnp.nan)


def _nan_unless(value, *, N=None, d=None, T=None, s2=None):
    """The closed forms' traced-call policy: NaN wherever an argument is out of its range
    (N >= 2, d >= 1, T > 0, s^2 > 0, all finite); eager calls were refused before this."""
    ok = jnp.ones(jnp.shape(value), bool)  # an overflow to inf (N_c at large d) is legitimate
    for arr, lo, strict in ((N, 2.0, False), (d, 1.0, False), (T, 0.0, True), (s2, 0.0, True)):
        if arr is not None:
            ok = ok & jnp.isfinite(arr) & ((arr > lo) if strict else (arr >= lo))
    return jnp.where(ok, value, jnp.nan)
