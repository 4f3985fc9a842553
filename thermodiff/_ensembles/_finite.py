"""Finite datasets: the empirical distribution of a training set (theory sections 3.2 and 8).

The posterior over training points is a softmax (a modern Hopfield retrieval, theory section 8):

    w_n(x, T) = softmax_n(log pi_n + (x.y_n - |y_n|^2/2)/T),   m_T(x) = sum_n w_n y_n.

Large datasets stream over their points in chunks with an online log-sum-exp, so memory is
O(batch x chunk) and never O(batch x N) (theory section 3.2). The points are stored already split
into chunks (padding rows carry zero weight), so a call never copies the dataset.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Key, Matrix, RealScalarLike, Scalar, Vector
from .._validate import check_finite, check_size, concrete
from ._base import AbstractEnsemble, as_float_array

# Log-weight of padding rows and zero-weight points: exp(_NEG - anything finite) == 0 in
# float32 and float64, while _NEG - _NEG stays finite (no NaN when a chunk has no weight).
_NEG = -1e30


def _chunk_logits(pts: Array, logw: Array, x: Vector, T) -> tuple[Array, Array, Array]:
    """Logits log pi_n + (x.y_n - |y_n|^2/2)/T of one chunk, with x.y_n and |y_n|^2/2."""
    half_sq = 0.5 * jnp.sum(pts * pts, axis=1)
    xy = pts @ x
    return logw + (xy - half_sq) / T, xy, half_sq


class FiniteDataset(AbstractEnsemble):
    """The empirical law sum_n pi_n delta(y - y_n) of N points in R^d (theory section 3.2).

    **Arguments:**
    - ``points``: array (N, d), N >= 1, d >= 1, finite.
    - ``weights``: optional (N,) non-negative weights with a positive sum (normalised here);
      default uniform.
    - ``chunk_size``: points per streaming chunk (default 4096). Datasets with N <= chunk_size
      are evaluated in one dense pass; larger ones with a ``lax.scan`` over chunks and an online
      log-sum-exp, so peak memory is O(batch x chunk_size), independent of N.
    """

    chunks: Array  # (n_chunks, chunk, d)
    chunk_log_weights: Array  # (n_chunks, chunk); padding rows = _NEG
    n_points: int = eqx.field(static=True)

    def __init__(self, points, weights=None, *, chunk_size: int = 4096):
        points = as_float_array("points", points)
        if points.ndim != 2:
            raise ValueError(f"points must be a 2-D array of shape (N, d), got shape {points.shape}")
        n, d = points.shape
        if n < 1:
            raise ValueError("points must contain at least one point (N >= 1), got an empty array")
        if d < 1:
            raise ValueError(f"points must have dimension d >= 1, got shape {points.shape}")
        check_finite("points", points)
        chunk_size = check_size("chunk_size", chunk_size)
        if weights is None:
            logw = jnp.full((n,), -math.log(n), dtype=points.dtype)
        else:
            weights = as_float_array("weights", weights)
            if weights.shape != (n,):
                raise ValueError(
                    f"weights must have shape (N,) = ({n},) to match points, got {weights.shape}"
                )
            check_finite("weights", weights)
            w = concrete(weights)
            if w is not None:
                if np.any(w < 0):
                    raise ValueError("weights must be >= 0 (allowed range: [0, inf)), got a negative weight")
                if not np.sum(w) > 0:
                    raise ValueError("weights must have a positive sum (allowed: weights >= 0, sum > 0)")
            weights = weights.astype(points.dtype)
            logw = jnp.log(weights) - jnp.log(jnp.sum(weights))
            logw = jnp.maximum(logw, _NEG)
        n_chunks = max(1, -(-n // chunk_size))
        chunk = n if n_chunks == 1 else chunk_size
        pad = n_chunks * chunk - n
        if pad:
            raw = concrete(points)
            if raw is not None:  # pad on the host: one device copy of the dataset, not three
                padded = np.zeros((n + pad, d), raw.dtype)
                padded[:n] = raw
                points = jnp.asarray(padded)
            else:
                points = jnp.concatenate([points, jnp.zeros((pad, d), points.dtype)])
            logw = jnp.concatenate([logw, jnp.full((pad,), _NEG, logw.dtype)])
        self.chunks = points.reshape(n_chunks, chunk, d)
        self.chunk_log_weights = logw.reshape(n_chunks, chunk)
        self.n_points = n

    # ------------------------------------------------------------------ data access
    @property
    def dim(self) -> int:
        return self.chunks.shape[-1]

    @property
    def chunk_size(self) -> int:
        return self.chunks.shape[1]

    @property
    def points(self) -> Array:
        """The N data points, shape (N, d)."""
        return self.chunks.reshape(-1, self.dim)[: self.n_points]

    @property
    def log_weights(self) -> Array:
        """Normalised log pi_n, shape (N,)."""
        return self.chunk_log_weights.reshape(-1)[: self.n_points]

    @property
    def weights(self) -> Array:
        """Normalised pi_n, shape (N,)."""
        return jnp.exp(self.log_weights)

    # ------------------------------------------------------------------ streaming core
    def _map_reduce(self, fn, init):
        """sum over chunks of fn(pts, logw) (a pytree), streaming when there are several chunks."""
        if self.chunks.shape[0] == 1:
            return fn(self.chunks[0], self.chunk_log_weights[0])

        @jax.checkpoint
        def body(acc, chunk):
            pts, logw = chunk
            return jax.tree.map(jnp.add, acc, fn(pts, logw)), None

        acc, _ = jax.lax.scan(body, init, (self.chunks, self.chunk_log_weights))
        return acc

    @eqx.filter_jit
    def _first_moments(self, x: Vector, T, with_energy: bool):
        """One online log-sum-exp pass: (log Z, E[y|x], E[E|x] or None).

        Jitted (T must be an array, not a Python float, to share one compilation across
        temperatures) so that eager calls reuse a compiled scan instead of retracing it.
        """

        def stats(pts, logw):
            logits, xy, half_sq = _chunk_logits(pts, logw, x, T)
            # The shift cancels exactly in every output, so it is a constant to AD: differentiating
            # max would split its gradient over the lanes that tie with a max that XLA may
            # recompute with another rounding (0/0 when none tie; see _meanfield._regulariser).
            mx = jax.lax.stop_gradient(jnp.max(logits))
            e = jnp.exp(logits - mx)
            out = [mx, jnp.sum(e), e @ pts]
            if with_energy:
                out.append(e @ (half_sq - xy))
            return tuple(out)

        if self.chunks.shape[0] == 1:
            mx, s0, s1, *sE = stats(self.chunks[0], self.chunk_log_weights[0])
        else:
            dtype = jnp.result_type(self.chunks.dtype, x.dtype, T)

            @jax.checkpoint
            def body(carry, chunk):
                c_mx, c_s0, c_s1, *c_sE = carry
                b_mx, b_s0, b_s1, *b_sE = stats(*chunk)
                mx = jnp.maximum(c_mx, b_mx)
                ca, cb = jnp.exp(c_mx - mx), jnp.exp(b_mx - mx)
                new = [mx, ca * c_s0 + cb * b_s0, ca * c_s1 + cb * b_s1]
                if with_energy:
                    new.append(ca * c_sE[0] + cb * b_sE[0])
                return tuple(new), None

            init = [jnp.asarray(_NEG, dtype), jnp.zeros((), dtype), jnp.zeros((self.dim,), dtype)]
            if with_energy:
                init.append(jnp.zeros((), dtype))
            (mx, s0, s1, *sE), _ = jax.lax.scan(
                body, tuple(init), (self.chunks, self.chunk_log_weights)
            )
        lse = mx + jnp.log(s0)
        return lse, s1 / s0, (sE[0] / s0 if with_energy else None)

    # ------------------------------------------------------------------ physics
    def log_partition(self, x: Vector, T: RealScalarLike) -> Scalar:
        """log Z_T(x) = logsumexp_n(log pi_n + (x.y_n - |y_n|^2/2)/T) (theory section 3.2).

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return self._first_moments(x, jnp.asarray(T), False)[0]

    def landau(self, x: Vector, T: RealScalarLike) -> Scalar:
        """Phi_T(x) = |x|^2/2 - T log Z_T(x): the modern Hopfield energy (theory sections 2, 8).

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return 0.5 * jnp.sum(x * x) - T * self._first_moments(x, jnp.asarray(T), False)[0]

    def denoiser(self, x: Vector, T: RealScalarLike) -> Vector:
        """m_T(x) = sum_n w_n y_n, the Hopfield retrieval update (theory sections 3.2, 8).

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return self._first_moments(x, jnp.asarray(T), False)[1]

    def posterior_weights(self, x: Vector, T: RealScalarLike) -> Array:
        """The posterior w_n(x, T) over the N training points, shape (N,) (dense: O(N) memory).

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        logits, _, _ = jax.vmap(_chunk_logits, in_axes=(0, 0, None, None))(
            self.chunks, self.chunk_log_weights, x, T
        )
        return jax.nn.softmax(logits.reshape(-1)[: self.n_points])

    def posterior_cov(self, x: Vector, T: RealScalarLike) -> Matrix:
        """Cov[y|x] = sum_n w_n (y_n - m)(y_n - m)^T, two streaming passes (theory section 3.2).

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return self._posterior_cov(x, jnp.asarray(T))

    @eqx.filter_jit
    def _posterior_cov(self, x, T):
        lse, m, _ = self._first_moments(x, T, False)

        def second(pts, logw):
            logits, _, _ = _chunk_logits(pts, logw, x, T)
            w = jnp.exp(logits - lse)
            c = pts - m[None, :]
            return (c * w[:, None]).T @ c

        return self._map_reduce(second, jnp.zeros((self.dim, self.dim), m.dtype))

    def posterior_trace(self, x: Vector, T: RealScalarLike) -> Scalar:
        """tr Cov[y|x] = sum_n w_n |y_n - m|^2, two streaming passes (O(N d), memory O(chunk)).

        The irreducible denoising loss at (x, T) (theory section 10) and T tr(dm/dx) (section 2),
        without forming the d x d covariance.
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return self._posterior_trace(x, jnp.asarray(T))

    @eqx.filter_jit
    def _posterior_trace(self, x, T):
        lse, m, _ = self._first_moments(x, T, False)

        def second(pts, logw):
            # centred at m itself, not at the data mean: sum_n w_n |y_n - c|^2 - |m - c|^2 is a
            # difference of O(R^2) terms that rounds to noise (or a clamped 0) deep in the
            # memorised phase, where the trace is exponentially small
            logits, _, _ = _chunk_logits(pts, logw, x, T)
            yc = pts - m[None, :]
            return jnp.exp(logits - lse) @ jnp.sum(yc * yc, axis=1)

        return self._map_reduce(second, jnp.zeros((), m.dtype))

    def energy_moments(self, x: Vector, T: RealScalarLike) -> tuple[Scalar, Scalar]:
        """<E> and Var[E] of E(y) = |y|^2/2 - x.y under the posterior (theory section 2).

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return self._energy_moments(x, jnp.asarray(T))

    @eqx.filter_jit
    def _energy_moments(self, x, T):
        lse, _, mean_e = self._first_moments(x, T, True)

        def second(pts, logw):
            logits, xy, half_sq = _chunk_logits(pts, logw, x, T)
            w = jnp.exp(logits - lse)
            return w @ (half_sq - xy - mean_e) ** 2

        return mean_e, self._map_reduce(second, jnp.zeros((), mean_e.dtype))

    # ------------------------------------------------------------------ data law
    def sample(self, key: Key, n: int) -> Array:
        """n points drawn with their weights (inverse CDF: O(N + n log N), not the O(n N) of
        ``jax.random.categorical``, which draws one Gumbel number per point and draw)."""
        n = self._check_sample(key, n)
        idx = jax.random.choice(key, self.n_points, (n,), p=self.weights)
        return self.points[idx]

    def mean(self) -> Vector:
        return self.weights @ self.points

    def covariance(self) -> Matrix:
        c = self.points - self.mean()[None, :]
        return (c * self.weights[:, None]).T @ c
