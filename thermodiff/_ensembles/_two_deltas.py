"""Two deltas at +-mu (theory section 3.1): the Curie-Weiss magnet of generative diffusion."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .._custom_types import Array, Key, Matrix, RealScalarLike, Scalar, Vector
from .._validate import check_finite, concrete
from ._base import AbstractEnsemble, as_float_array


def log_cosh(u: Array) -> Array:
    """log cosh(u), overflow-free: |u| + log1p(exp(-2|u|)) - log 2."""
    a = jnp.abs(u)
    return a + jnp.log1p(jnp.exp(-2 * a)) - math.log(2.0)


def sech2(u: Array) -> Array:
    """1 - tanh(u)^2 without cancellation: 4 e^{-2|u|} / (1 + e^{-2|u|})^2."""
    e = jnp.exp(-2 * jnp.abs(u))
    return 4 * e / (1 + e) ** 2


class TwoDeltas(AbstractEnsemble):
    """phi = (delta(y - mu) + delta(y + mu))/2 (theory section 3.1).

    m_T(x) = mu tanh(mu.x/T), Cov[y|x] = mu mu^T (1 - tanh^2), Phi_T(x) = |x|^2/2 + a^2/2 -
    T log cosh(mu.x/T) with a = |mu|: exactly the Curie-Weiss Landau free energy (m <-> x,
    J = a^2). Critical temperature T_c = a^2.

    **Arguments:**
    - ``mu``: the position of the positive delta, a vector of shape (d,) or a scalar (d = 1),
      finite and not all zero.

    Under jit (every method): an invalid T or a non-finite x gives NaN (theory section 13).
    """

    mu: Array

    def __init__(self, mu=1.0):
        mu = as_float_array("mu", mu)
        if mu.ndim == 0:
            mu = mu[None]
        if mu.ndim != 1 or mu.shape[0] < 1:
            raise ValueError(f"mu must be a scalar or a non-empty 1-D vector, got shape {mu.shape}")
        check_finite("mu", mu)
        c = concrete(mu)
        if c is not None and not (c != 0).any():
            raise ValueError("mu must be non-zero (|mu| > 0): two deltas at the same point are one delta")
        self.mu = mu

    @property
    def dim(self) -> int:
        return self.mu.shape[0]

    @property
    def critical_temperature(self) -> Scalar:
        """T_c = |mu|^2 (theory section 3.1)."""
        return jnp.sum(self.mu**2)

    def _field(self, x, T):
        return jnp.dot(self.mu, x) / T

    def landau(self, x: Vector, T: RealScalarLike) -> Scalar:
        x, T = self._check(x, T)
        return 0.5 * jnp.sum(x * x) + 0.5 * jnp.sum(self.mu**2) - T * log_cosh(self._field(x, T))

    def log_partition(self, x: Vector, T: RealScalarLike) -> Scalar:
        x, T = self._check(x, T)
        return -0.5 * jnp.sum(self.mu**2) / T + log_cosh(self._field(x, T))

    def denoiser(self, x: Vector, T: RealScalarLike) -> Vector:
        x, T = self._check(x, T)
        return self.mu * jnp.tanh(self._field(x, T))

    def posterior_cov(self, x: Vector, T: RealScalarLike) -> Matrix:
        x, T = self._check(x, T)
        return jnp.outer(self.mu, self.mu) * sech2(self._field(x, T))

    def energy_moments(self, x: Vector, T: RealScalarLike) -> tuple[Scalar, Scalar]:
        """<E> and Var[E] of E(y) = |y|^2/2 - x.y (theory section 2): E = a^2/2 -+ mu.x.

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        u = self._field(x, T)
        b = jnp.dot(self.mu, x)
        return 0.5 * jnp.sum(self.mu**2) - b * jnp.tanh(u), b**2 * sech2(u)

    def sample(self, key: Key, n: int) -> Array:
        n = self._check_sample(key, n)
        signs = jax.random.rademacher(key, (n, 1), dtype=self.mu.dtype)
        return signs * self.mu[None, :]

    def mean(self) -> Vector:
        return jnp.zeros_like(self.mu)

    def covariance(self) -> Matrix:
        return jnp.outer(self.mu, self.mu)
