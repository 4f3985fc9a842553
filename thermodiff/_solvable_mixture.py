"""The trainable Gaussian mixture: the exact posterior mean of a learnable mixture (theory 3.3, 10).

``MixtureNet`` holds K learnable means and one learnable log-variance; with the ``"direct"``
output form of ``td.Preconditioned`` its denoiser is exactly the posterior mean of the mixture
(1/K) sum_k N(mean + mu_k, s^2 I) at every temperature (``td.GaussianMixture(...).denoiser``),
so samples of the trained model are samples of that mixture. Trained by DSM with ``td.train``:

- K = n means placed on the n training points (any s^2) is the exact empirical denoiser smoothed
  by s^2; DSM drives s^2 -> 0 (the exact empirical denoiser minimises the loss at every T), so
  the model memorises (theory section 9);
- K small, means on data points chosen k-means++ style (Arthur & Vassilvitskii 2007), learns
  the clusters: it generalises.

The means are stored relative to the model's ``data_mean`` (the net acts on u - mean); the
mixture weights are uniform and fixed.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Key, RealScalarLike, Vector
from ._ensembles._mixture import GaussianMixture
from ._nets import Preconditioned, _int_arg
from ._solvable_linear import _points
from ._validate import check_finite, check_key, check_real


class MixtureNet(eqx.Module):
    """The raw network F(v, T) = E[y - mean | u = mean + v] of a learnable Gaussian mixture.

    The mixture is (1/K) sum_k N(mean + mu_k, exp(log_variance) I), its posterior mean exact at
    every T (theory sections 3.3, 10; module docstring).

    **Arguments:**
    - ``dim``: state dimension d >= 1.
    - ``n_components``: K >= 1.
    - ``means``: the initial centred means mu_k, shape (K, d), finite (default: N(0, 1) draws
      from ``key``, the skeleton a checkpoint fills).
    - ``log_variance``: the initial log s^2, a finite scalar (default 0).
    - ``key``: PRNG key of the default means (default key 0).

    Under jit: ``__call__`` is jittable (an invalid T gives NaN); the constructor validates eagerly.
    """

    dim: int = eqx.field(static=True)
    n_components: int = eqx.field(static=True)
    means: Array
    log_variance: Array

    def __init__(self, dim: int, n_components: int, *, means=None, log_variance=None, key: Key | None = None):
        self.dim = _int_arg("dim", dim, 1, 2**15)
        self.n_components = _int_arg("n_components", n_components, 1, 2**24)
        if self.dim * self.n_components > 2**31 - 1:
            raise ValueError(f"n_components x dim = {self.n_components} x {self.dim} exceeds 2^31 - 1 elements")
        dtype = jnp.result_type(float)
        if means is None:
            key = jax.random.key(0) if key is None else key
            check_key("key", key)
            self.means = jax.random.normal(key, (self.n_components, self.dim), dtype)
        else:
            check_real("means", means, what="a (K, d) array")
            m = jnp.asarray(means, dtype)
            if m.shape != (self.n_components, self.dim):
                raise ValueError(f"means must have shape (n_components, dim) = ({self.n_components}, {self.dim}), "
                                 f"got {m.shape}")
            check_finite("means", m)
            self.means = m
        if log_variance is None:
            self.log_variance = jnp.zeros((), dtype)
        else:
            check_real("log_variance", log_variance, what="a finite scalar")
            lv = jnp.asarray(log_variance, dtype)
            if lv.shape != ():
                raise ValueError(f"log_variance must be a scalar, got shape {lv.shape}")
            check_finite("log_variance", lv)
            self.log_variance = lv

    def architecture(self) -> dict:
        return dict(name="MixtureNet", dim=self.dim, n_components=self.n_components)

    @property
    def variance(self) -> Array:
        """The common component variance s^2 = exp(log_variance). Under jit: jittable."""
        return jnp.exp(self.log_variance)

    def mixture(self, mean=None) -> GaussianMixture:
        """The mixture as a ``td.GaussianMixture`` (means shifted by ``mean``, default 0).

        Under jit: jittable (the mixture's checks run only on concrete values).
        """
        mu = self.means if mean is None else self.means + jnp.asarray(mean)[None, :]
        return GaussianMixture(mu, self.variance)

    def __call__(self, v: Vector, T: RealScalarLike) -> Vector:
        return self.mixture().denoiser(v, T)


def kmeans_plus_plus(data, k: int, key: Key) -> Array:
    """k distinct rows of ``data`` chosen by k-means++ seeding (D^2 sampling), shape (k, d).

    The first row is uniform; each next one is drawn with probability proportional to its
    squared distance to the nearest row already chosen (Arthur & Vassilvitskii 2007). k = N
    returns every row (in random order). The initial means of ``mixture_model`` (theory 10).

    **Arguments:** ``data`` (N, d), finite; ``k`` in [1, N]; ``key``.

    Under jit: not jittable (host-side seeding); validates eagerly.
    """
    pts = _points("data", data)
    k = _int_arg("k", k, 1, pts.shape[0])
    check_key("key", key)
    raw = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    rng = np.random.default_rng(np.asarray(raw))
    if k == pts.shape[0]:
        return pts[rng.permutation(k)]
    chosen = [int(rng.integers(pts.shape[0]))]
    d2 = np.sum((pts - pts[chosen[0]]) ** 2, axis=1)
    for _ in range(k - 1):
        p = d2.copy()
        p[chosen] = 0.0
        if p.sum() > 0:
            i = int(rng.choice(pts.shape[0], p=p / p.sum()))
        else:  # every point left coincides with a chosen one: any unchosen row
            i = int(rng.choice(np.setdiff1d(np.arange(pts.shape[0]), chosen)))
        chosen.append(i)
        d2 = np.minimum(d2, np.sum((pts - pts[i]) ** 2, axis=1))
    return pts[np.asarray(chosen)]


def _nearest_sq_distance(pts: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """min_k |y_i - mu_k|^2 for every row y_i, in chunks of about 2^22 numbers."""
    step = max(1, 2**22 // (mu.shape[0] * pts.shape[1]))
    return np.concatenate([np.min(np.sum((pts[i: i + step, None, :] - mu[None]) ** 2, axis=-1), axis=1)
                           for i in range(0, pts.shape[0], step)])


def mixture_model(data, n_components: int | None = None, *, key: Key | None = None, means=None,
                  variance=None) -> Preconditioned:
    """A trainable Gaussian-mixture denoiser for the data (module docstring; theory sections 3.3, 10).

    **Arguments:**
    - ``data``: the training set (N, d) (sets ``data_mean`` and ``sigma_data``).
    - ``n_components``: K in [1, N]; the initial means are K data points chosen by
      ``kmeans_plus_plus`` with ``key`` (K = N: every training point).
    - ``means``: or the initial means themselves, (K, d) in data units, finite (then
      ``n_components`` may be omitted and ``key`` is not needed).
    - ``variance``: the initial common variance s^2 > 0 (default: the mean squared distance of a
      training point to its nearest initial mean, per coordinate, at least 1e-4 sigma_data^2).

    **Returns:** a ``td.Preconditioned`` model (``"direct"`` output form) that ``td.train`` trains.

    Under jit: not jittable (a host-side constructor); validates eagerly.
    """
    pts = _points("data", data)
    n, d = pts.shape
    if means is None:
        if n_components is None or key is None:
            raise ValueError("give n_components and key (k-means++ initial means), or means")
        mu = kmeans_plus_plus(pts, _int_arg("n_components", n_components, 1, n), key)
    else:
        check_real("means", means, what="a (K, d) array of initial means")
        mu = np.asarray(means, np.float64)
        if mu.ndim != 2 or mu.shape[1] != d or mu.shape[0] < 1:
            raise ValueError(f"means must have shape (K >= 1, {d}), got {mu.shape}")
        check_finite("means", mu)
        if n_components is not None and _int_arg("n_components", n_components, 1, 2**24) != mu.shape[0]:
            raise ValueError(f"n_components = {n_components} but means holds {mu.shape[0]} rows")
    sd2 = float(np.mean(np.var(pts, axis=0)))
    if variance is None:
        nearest = _nearest_sq_distance(pts, mu)
        variance = max(float(np.mean(nearest)) / d, 1e-4 * sd2)
    check_real("variance", variance, what="a variance > 0")
    v = np.asarray(variance, np.float64)
    if v.shape != () or not (np.isfinite(v) and v > 0):
        raise ValueError(f"variance must be a finite scalar > 0 (allowed range: (0, inf)), got {variance!r}")
    mean = pts.mean(0)
    net = MixtureNet(d, mu.shape[0], means=mu - mean[None, :], log_variance=np.log(v))
    return Preconditioned.for_data(net, pts, "direct")


__all__ = ["MixtureNet", "kmeans_plus_plus", "mixture_model"]
