"""Isotropic Gaussian mixtures (theory section 3.3), a single Gaussian included."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Key, Matrix, RealScalarLike, Scalar, Vector
from .._validate import check_finite, check_float32_range, check_range, check_scalar, concrete
from ._base import AbstractEnsemble, as_float_array


class GaussianMixture(AbstractEnsemble):
    """phi = sum_k pi_k N(mu_k, s_k^2 I) (theory section 3.3).

    Exact posterior: the component responsibilities
    r_k(x) = softmax_k(log pi_k + (d/2) log(T/(T + s_k^2)) - |x - mu_k|^2/(2(T + s_k^2)))
    times the Gaussian posterior within each component, mean (s_k^2 x + T mu_k)/(s_k^2 + T) and
    covariance s_k^2 T/(s_k^2 + T) I. Then Phi_T(x) = -T logsumexp_k(...) (stable at any |x|).
    Two components +-mu with variance s^2 have T_c = |mu|^2 - s^2 (no transition when
    |mu|^2 <= s^2); a single Gaussian has none. Zero variances are allowed (deltas).

    **Arguments:**
    - ``means``: (K, d) component means (a (d,) vector is one component).
    - ``variances``: (K,) or scalar isotropic variances s_k^2 >= 0.
    - ``weights``: optional (K,) non-negative weights with positive sum; default uniform.

    Under jit (every method): an invalid T or a non-finite x gives NaN (theory section 13).
    """

    means: Array
    variances: Array
    log_weights: Array

    def __init__(self, means, variances=1.0, weights=None):
        means = as_float_array("means", means)
        if means.ndim == 1:
            means = means[None, :]
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"means must have shape (K, d) with K, d >= 1, got {means.shape}")
        check_finite("means", means)
        k = means.shape[0]
        variances = as_float_array("variances", variances).astype(means.dtype)
        if variances.ndim == 0:
            variances = jnp.broadcast_to(variances, (k,))
        if variances.shape != (k,):
            raise ValueError(f"variances must be a scalar or have shape (K,) = ({k},), got {variances.shape}")
        check_finite("variances", variances)
        v = concrete(variances)
        if v is not None and np.any(v < 0):
            raise ValueError("variances must be >= 0 (allowed range: [0, inf))")
        if weights is None:
            logw = jnp.full((k,), -math.log(k), means.dtype)
        else:
            weights = as_float_array("weights", weights).astype(means.dtype)
            if weights.shape != (k,):
                raise ValueError(f"weights must have shape (K,) = ({k},) to match means, got {weights.shape}")
            check_finite("weights", weights)
            w = concrete(weights)
            if w is not None and (np.any(w < 0) or not np.sum(w) > 0):
                raise ValueError("weights must be >= 0 with a positive sum (allowed range: [0, inf))")
            logw = jnp.maximum(jnp.log(weights) - jnp.log(jnp.sum(weights)), -1e30)
        self.means, self.variances, self.log_weights = means, variances, logw

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def weights(self) -> Array:
        return jnp.exp(self.log_weights)

    def _component_logits(self, x, T):
        tot = T + self.variances
        sq = jnp.sum((x[None, :] - self.means) ** 2, axis=1)
        return self.log_weights + 0.5 * self.dim * jnp.log(T / tot) - 0.5 * sq / tot

    def responsibilities(self, x: Vector, T: RealScalarLike) -> Array:
        """Posterior probability r_k(x) of each component, shape (K,) (theory section 3.3).

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return jax.nn.softmax(self._component_logits(x, T))

    def landau(self, x: Vector, T: RealScalarLike) -> Scalar:
        x, T = self._check(x, T)
        return -T * jax.nn.logsumexp(self._component_logits(x, T))

    def _posterior_parts(self, x, T):
        r = jax.nn.softmax(self._component_logits(x, T))
        s2 = self.variances
        comp_mean = (s2[:, None] * x[None, :] + T * self.means) / (s2 + T)[:, None]
        comp_var = s2 * T / (s2 + T)
        return r, comp_mean, comp_var

    def denoiser(self, x: Vector, T: RealScalarLike) -> Vector:
        x, T = self._check(x, T)
        r, cm, _ = self._posterior_parts(x, T)
        return r @ cm

    def posterior_cov(self, x: Vector, T: RealScalarLike) -> Matrix:
        x, T = self._check(x, T)
        r, cm, cv = self._posterior_parts(x, T)
        m = r @ cm
        c = cm - m[None, :]
        return (c * r[:, None]).T @ c + jnp.sum(r * cv) * jnp.eye(self.dim, dtype=m.dtype)

    def energy_moments(self, x: Vector, T: RealScalarLike) -> tuple[Scalar, Scalar]:
        """<E> and Var[E] of E(y) = |y|^2/2 - x.y (theory section 2), from Gaussian moments.

        Within component k (posterior mean c_k, variance v_k I): <E>_k = |c_k|^2/2 + d v_k/2 -
        x.c_k and Var_k[E] = v_k |c_k - x|^2 + d v_k^2/2; then the law of total variance.
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        r, cm, cv = self._posterior_parts(x, T)
        d = self.dim
        mean_k = 0.5 * jnp.sum(cm * cm, axis=1) + 0.5 * d * cv - cm @ x
        var_k = cv * jnp.sum((cm - x[None, :]) ** 2, axis=1) + 0.5 * d * cv**2
        mean_e = r @ mean_k
        return mean_e, r @ (var_k + (mean_k - mean_e) ** 2)

    def sample(self, key: Key, n: int) -> Array:
        n = self._check_sample(key, n)
        kc, kz = jax.random.split(key)
        idx = jax.random.categorical(kc, self.log_weights, shape=(n,))
        z = jax.random.normal(kz, (n, self.dim), self.means.dtype)
        return self.means[idx] + jnp.sqrt(self.variances[idx])[:, None] * z

    def mean(self) -> Vector:
        return self.weights @ self.means

    def covariance(self) -> Matrix:
        w = self.weights
        c = self.means - self.mean()[None, :]
        return (c * w[:, None]).T @ c + jnp.sum(w * self.variances) * jnp.eye(self.dim, dtype=c.dtype)


def Gaussian(mean, variance=1.0) -> GaussianMixture:
    """A single isotropic Gaussian N(mean, variance I) as a one-component ``GaussianMixture``.

    Its posterior is Gaussian at every T and it has no phase transition (theory section 3.3).
    """
    mean = as_float_array("mean", mean)
    if mean.ndim == 0:
        mean = mean[None]
    if mean.ndim != 1 or mean.shape[0] < 1:
        raise ValueError(f"mean must be a non-empty vector of shape (d,), got shape {mean.shape}")
    check_finite("mean", mean)
    check_scalar("variance", variance, what="a scalar variance >= 0")
    check_float32_range("variance", variance)
    check_range("variance", variance, 0.0, None)
    return GaussianMixture(mean[None, :], variance)
