"""The k-nearest-points approximation of the empirical posterior (theory section 14).

The exact posterior of a finite dataset is a softmax over all N points (theory section 3.2):

    w_n(x, T) = softmax_n(l_n),   l_n = log pi_n + (x.y_n - |y_n|^2/2)/T.

The k-NN score of Niedoba et al. (2024) keeps only the k largest logits, i.e. the k points nearest
to x in the weighted distance |x - y_n|^2 - 2T log pi_n, and renormalises the softmax over them.
With S the kept set and delta = sum_{n not in S} w_n the exact posterior mass it drops, the k-NN
denoiser is exactly the posterior mean conditioned on S, so

    m_T(x) - m_k(x) = delta (m_rest - m_k),   |m_T - m_k| <= delta diam(data) <= 2 R delta,

(m_rest the posterior mean of the dropped points, R = max_n |y_n - c| for any centre c), and
log Z_T - log Z_k = -log(1 - delta). The mass itself obeys delta <= b/(1 + b) with
b = (N - k) exp(l_(k) - log Z_k), l_(k) the k-th largest logit: a certificate from the top-k alone.

The points stream in the chunks of ``FiniteDataset`` with a running top-k merge: each chunk's
logits are concatenated with the k carried ones and ``lax.top_k`` keeps k, so memory is
O(batch x (chunk + k)) and never O(batch x N).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Matrix, RealScalarLike, Scalar, Vector
from .._validate import check_int
from ._finite import FiniteDataset, _chunk_logits


class KNearestDataset(FiniteDataset):
    """A finite dataset whose posterior keeps only the k largest logits (theory section 14).

    The k-NN empirical denoiser (Niedoba et al. 2024): every posterior quantity (``denoiser``,
    ``score``, ``log_partition``, ``landau``, ``posterior_weights``, ``posterior_cov``,
    ``posterior_trace``, ``energy_moments``) is that of the softmax restricted to the k points
    with the largest logits log pi_n - |x - y_n|^2/(2T) (the k nearest in weighted L2), and
    renormalised over them. k = N is the exact ``FiniteDataset``; k = 1 returns the nearest point.
    The data law itself (``points``, ``weights``, ``sample``, ``mean``, ``covariance``) is the
    dataset's. ``dropped_mass`` is the exact posterior mass the approximation ignores and
    ``dropped_mass_bound`` a bound on it from the kept logits alone; the denoiser error is at most
    diam(data) times the dropped mass.

    **Arguments:**
    - ``points``: array (N, d) as for ``FiniteDataset``, or a ``FiniteDataset`` (its chunks are
      shared, not copied; then ``weights`` and ``chunk_size`` must be left out).
    - ``weights``: optional (N,) non-negative weights (default uniform).
    - ``k``: the number of points kept, an integer in [1, N] (static: a new k recompiles).
    - ``chunk_size``: points per streaming chunk (default 4096).

    Under jit (every method): an invalid T or a non-finite x gives NaN (theory section 13).
    """

    k: int = eqx.field(static=True)

    def __init__(self, points, weights=None, *, k, chunk_size: int | None = None):
        if isinstance(points, FiniteDataset):
            if weights is not None or chunk_size is not None:
                raise ValueError("weights and chunk_size must be left out when points is a FiniteDataset "
                                 "(its own weights and chunks are used)")
            self.chunks, self.chunk_log_weights = points.chunks, points.chunk_log_weights
            self.n_points = points.n_points
        else:
            super().__init__(points, weights, chunk_size=4096 if chunk_size is None else chunk_size)
        self.k = check_int("k", k, 1, self.n_points)

    # ------------------------------------------------------------------ streaming top-k
    def _top_pass(self, x: Vector, T, with_dropped: bool):
        """(top logits (k,) descending, their flat indices (k,), dropped sum or None).

        The dropped sum is sum_{n not kept} exp(l_n - l_max), accumulated exactly (term by term,
        never as a difference of totals) as points leave the running top-k.
        """
        k = self.k
        n_chunks, chunk, _ = self.chunks.shape
        if n_chunks == 1:
            logits = _chunk_logits(self.chunks[0], self.chunk_log_weights[0], x, T)[0]
            top, idx = jax.lax.top_k(logits, k)
            drop = None
            if with_dropped:
                kept = jnp.zeros(logits.shape, bool).at[idx].set(True)
                drop = jnp.sum(jnp.where(kept, 0.0, jnp.exp(logits - top[0])))
            return top, idx, drop

        dtype = jnp.result_type(self.chunks.dtype, x.dtype, T)

        @jax.checkpoint
        def body(carry, inputs):
            c_top, c_idx, c_drop = carry
            pts, logw, i = inputs
            logits = _chunk_logits(pts, logw, x, T)[0]
            cand = jnp.concatenate([c_top, logits.astype(dtype)])
            cand_idx = jnp.concatenate([c_idx, i * chunk + jnp.arange(chunk, dtype=jnp.int32)])
            top, pos = jax.lax.top_k(cand, k)
            new_drop = c_drop
            if with_dropped:
                kept = jnp.zeros(cand.shape, bool).at[pos].set(True)
                shift = jnp.exp(c_top[0] - top[0])  # the old max against the new one (exp(-inf) = 0)
                new_drop = c_drop * shift + jnp.sum(jnp.where(kept, 0.0, jnp.exp(cand - top[0])))
            return (top, cand_idx[pos], new_drop), None

        init = (jnp.full((k,), -jnp.inf, dtype), jnp.zeros((k,), jnp.int32), jnp.zeros((), dtype))
        steps = (self.chunks, self.chunk_log_weights, jnp.arange(n_chunks, dtype=jnp.int32))
        (top, idx, drop), _ = jax.lax.scan(body, init, steps)
        return top, idx, (drop if with_dropped else None)

    def _kept(self, x: Vector, T):
        """The kept points (k, d) and their logits (k,), recomputed from the gathered points so
        that derivatives in x and T are those of the restricted softmax (the set is piecewise
        constant)."""
        _, idx, _ = self._top_pass(jax.lax.stop_gradient(x), jax.lax.stop_gradient(T), False)
        pts = self.chunks.reshape(-1, self.dim)[idx]
        logw = self.chunk_log_weights.reshape(-1)[idx]
        logits, xy, half_sq = _chunk_logits(pts, logw, x, T)
        return pts, logits, xy, half_sq, idx

    @eqx.filter_jit
    def _first_moments(self, x: Vector, T, with_energy: bool):
        """(log Z_k, E_k[y|x], E_k[E|x] or None) over the kept points."""
        pts, logits, xy, half_sq, _ = self._kept(x, T)
        lse = jax.nn.logsumexp(logits)
        w = jnp.exp(logits - lse)
        return lse, w @ pts, (w @ (half_sq - xy) if with_energy else None)

    # ------------------------------------------------------------------ physics
    def posterior_weights(self, x: Vector, T: RealScalarLike) -> Array:
        """The k-NN posterior over the N points, shape (N,): zero outside the kept set.

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        _, logits, _, _, idx = self._kept(x, jnp.asarray(T))
        w = jax.nn.softmax(logits)
        rest = jnp.where(jnp.all(jnp.isfinite(w)), 0.0, jnp.nan).astype(w.dtype)  # NaN state: all NaN
        return jnp.full((self.chunks.shape[0] * self.chunk_size,), rest, w.dtype).at[idx].set(w)[: self.n_points]

    @eqx.filter_jit
    def _posterior_cov(self, x, T):
        pts, logits, _, _, _ = self._kept(x, T)
        w = jax.nn.softmax(logits)
        c = pts - (w @ pts)[None, :]
        return (c * w[:, None]).T @ c

    @eqx.filter_jit
    def _posterior_trace(self, x, T):
        pts, logits, _, _, _ = self._kept(x, T)
        w = jax.nn.softmax(logits)
        c = pts - (w @ pts)[None, :]
        return w @ jnp.sum(c * c, axis=1)

    @eqx.filter_jit
    def _energy_moments(self, x, T):
        _, logits, xy, half_sq, _ = self._kept(x, T)
        w = jax.nn.softmax(logits)
        e = half_sq - xy
        mean_e = w @ e
        return mean_e, w @ (e - mean_e) ** 2

    # ------------------------------------------------------------------ certificates
    def dropped_mass(self, x: Vector, T: RealScalarLike) -> Scalar:
        """delta(x, T) = sum of the exact posterior weights outside the kept set (theory 14).

        Exact to rounding (the dropped terms are summed one by one, never as 1 - kept): one
        streaming pass over all N points. The k-NN denoiser error is |m - m_k| <= delta diam(data).

        **Arguments:** ``x``: one state (d,); ``T``: temperature > 0 (scalar).

        **Returns:** the dropped mass in [0, 1) (0 for k = N).
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return self._dropped(x, jnp.asarray(T))

    @eqx.filter_jit
    def _dropped(self, x, T):
        return self._denoise_and_drop(x, T)[1]

    def _denoise_and_drop(self, x, T):
        """(m_k(x), dropped mass) from one streaming pass (for error measurements)."""
        top, idx, drop = self._top_pass(x, T, True)
        w = jnp.exp(top - top[0])
        keep = jnp.sum(w)
        return (w / keep) @ self.chunks.reshape(-1, self.dim)[idx], drop / (drop + keep)

    def dropped_mass_bound(self, x: Vector, T: RealScalarLike) -> Scalar:
        """A bound on ``dropped_mass`` from the kept logits alone: b/(1 + b) (theory section 14).

        With l_(k) the smallest kept logit and Z_k the kept partition sum, every dropped point has
        a logit <= l_(k), so the dropped sum is at most (N - k) exp(l_(k)) and
        delta <= b/(1 + b), b = (N - k) exp(l_(k) - log Z_k). Costs one top-k pass (no extra work
        over the denoiser).

        **Arguments:** ``x``: one state (d,); ``T``: temperature > 0 (scalar).

        **Returns:** the bound in [0, 1] (0 for k = N).
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return self._bound(x, jnp.asarray(T))

    @eqx.filter_jit
    def _bound(self, x, T):
        top, _, _ = self._top_pass(x, T, False)
        n_rest = self.n_points - self.k
        if n_rest == 0:
            return jnp.zeros((), top.dtype)
        log_b = jnp.log(jnp.asarray(n_rest, top.dtype)) + top[-1] - jax.nn.logsumexp(top)
        return jax.nn.sigmoid(log_b)


__all__ = ["KNearestDataset"]
