"""The uniform law on a hypersphere (theory section 3.4)."""

from __future__ import annotations

import functools
import operator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._bessel import _log_hyp0f1_parts, _rho, series_cutoff
from .._custom_types import Array, Key, Matrix, RealScalarLike, Scalar, Vector
from .._validate import MAX_SIZE, concrete
from ._base import AbstractEnsemble, as_float_array


def _sech2(u: Array) -> Array:
    """1 - tanh(u)^2 = 4 e^{-2|u|} / (1 + e^{-2|u|})^2, without cancellation or overflow."""
    e = jnp.exp(-2.0 * jnp.abs(u))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


class Hypersphere(AbstractEnsemble):
    """Uniform law on the sphere of radius r in R^d (theory section 3.4).

    With k = r|x|/T, q = k^2/4 and nu = d/2 - 1 the posterior p_T(y | x) is a von Mises-Fisher
    law and everything is closed form:

    - Z_T(x) = exp(-r^2/(2T)) 0F1(; d/2; q),
    - Phi_T(x) = |x|^2/2 + r^2/2 - T log 0F1(; d/2; q),
    - m_T(x) = r xhat A_d(k) = r^2 rho_nu(q) x / (d T), A_d(k) = I_{d/2}(k)/I_{d/2-1}(k),
    - Cov[y | x] = (r^2/d) [rho_nu(q) I + rho_nu'(q) (r^2/(2T^2)) x x^T],

    with the normalised ratio rho_nu(q) = d A_d(k)/k of ``thermodiff._bessel`` (smooth in q, so
    every derivative is finite at x = 0). Critical temperature T_c = r^2/d: Cov[y | 0] = (r^2/d) I.
    Below T_c the broken-phase fixed points form a sphere of radius u r with u = A_d(r^2 u/T)
    (r = 1, d = 10, T = 0.05: u = 0.730982). d = 1 is exactly two deltas at +-r.

    **Arguments:**

    - `radius`: sphere radius r > 0 (scalar; stored as a JAX array, so the module can be
      vmapped and differentiated in r; its dtype sets the working precision).
    - `dim`: ambient dimension d, a static Python integer >= 1 (the sphere is S^{d-1}).
    """

    radius: Array
    _dim: int = eqx.field(static=True)

    def __init__(self, radius: RealScalarLike, dim: int):
        try:
            d = operator.index(dim)
        except TypeError:
            raise ValueError(
                "dim must be a static Python integer >= 1 (allowed range: integer dim >= 1), "
                f"got {dim!r}"
            ) from None
        if isinstance(dim, bool) or d < 1 or d > MAX_SIZE:
            raise ValueError(f"dim must be an integer in [1, {MAX_SIZE}] (allowed range: integer dim >= 1), got {dim!r}")
        radius = as_float_array("radius", radius, ndim=0)
        r = concrete(radius)
        if r is not None and not (bool(np.isfinite(r)) and float(r) > 0):
            raise ValueError(f"radius must be finite and > 0 (allowed range: 0 < radius < inf), got {r!r}")
        self.radius = radius
        self._dim = int(d)

    @property
    def dim(self) -> int:
        """Ambient dimension d."""
        return self._dim

    # ------------------------------------------------------------------ internals
    def _q(self, x: Vector, T) -> tuple[Array, Array]:
        sq = jnp.sum(x * x)
        c = self.radius / (2.0 * T)  # q = (r |x| / (2T))^2; no T^2, which underflows first
        return sq, sq * (c * c)

    def _rho_and_slope(self, q: Array) -> tuple[Array, Array]:
        """rho_nu(q) and rho_nu'(q), the slope clipped so the radial variance
        (r^2/d)(rho + 2 q rho') stays >= 0 (it is O(1/k^2), a difference of O(1/k) terms, and
        rounding could otherwise make it slightly negative at k ~ 1/eps)."""
        rho, drho = jax.jvp(functools.partial(_rho, dim=self._dim), (q,), (jnp.ones_like(q),))
        big = q > 1.0
        floor = -rho / (2.0 * jnp.where(big, q, 1.0))
        return rho, jnp.where(big, jnp.maximum(drho, floor), drho)

    def _field(self, x: Vector, T) -> Array:
        """d = 1 only: the signed field u = r x / T of the equivalent two deltas at +-r."""
        return self.radius * x[0] / T

    # ------------------------------------------------------------------ primitives
    def landau(self, x: Vector, T: RealScalarLike) -> Scalar:
        """Landau free energy Phi_T(x) = |x|^2/2 - T log Z_T(x) (theory sections 2 and 3.4).

        Phi_T(x) = |x|^2/2 + r^2/2 - T log 0F1(; d/2; q) for q <= max(4, d/2) (where log 0F1 is
        well below k = r|x|/T, so nothing cancels) and the algebraically equal
        (|x| - r)^2/2 - T (log 0F1(; d/2; q) - k) above, which keeps full relative accuracy at
        small T (near the sphere Phi_T ~ T log k while its pieces are ~ r^2).
        Smooth at x = 0 (a function of q), with NaN-free derivatives of every order there.

        **Arguments:**

        - `x`: noisy state, shape (d,).
        - `T`: temperature (VE-equivalent noise variance) > 0.

        **Returns:**

        Phi_T(x), a scalar.
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        r = self.radius
        sq, q = self._q(x, T)
        big = q > series_cutoff(self._dim)
        lf, lfs = _log_hyp0f1_parts(q, self._dim)
        norm = jnp.sqrt(jnp.where(big, sq, 1.0))  # |x| only where it is bounded away from 0
        phi_small = 0.5 * sq + 0.5 * (r * r) - T * lf
        phi_big = 0.5 * (norm - r) ** 2 - T * lfs
        return jnp.where(big, phi_big, phi_small)

    def log_partition(self, x: Vector, T: RealScalarLike) -> Scalar:
        """log Z_T(x) = log 0F1(; d/2; q) - r^2/(2T), q = (r|x|/(2T))^2 (theory sections 2 and 3.4).

        **Arguments:**

        - `x`: noisy state, shape (d,).
        - `T`: temperature > 0.

        **Returns:**

        log Z_T(x), a scalar.
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        _, q = self._q(x, T)
        lf, _ = _log_hyp0f1_parts(q, self._dim)
        return lf - (self.radius * self.radius) / (2.0 * T)

    def denoiser(self, x: Vector, T: RealScalarLike) -> Vector:
        """Optimal denoiser m_T(x) = E[y | x] = r xhat A_d(r|x|/T) (theory sections 2 and 3.4).

        Evaluated as r^2 rho_nu(q) x / (d T) (no division by |x|; m_T(0) = 0).

        **Arguments:**

        - `x`: noisy state, shape (d,).
        - `T`: temperature > 0.

        **Returns:**

        m_T(x), shape (d,).
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        if self._dim == 1:  # two deltas at +-r: r tanh(r x / T), exactly
            return self.radius * jnp.tanh(self._field(x, T))[None]
        _, q = self._q(x, T)
        rho = _rho(q, self._dim)
        return ((self.radius * self.radius) * rho / (self._dim * T)) * x

    def posterior_cov(self, x: Vector, T: RealScalarLike) -> Matrix:
        """Posterior covariance Cov[y | x] = T dm_T/dx (theory sections 2 and 3.4).

        Cov = (r^2/d) [rho_nu(q) I + rho_nu'(q) (r^2/(2T^2)) x x^T], with rho_nu' by forward-mode
        autodiff of the ratio. Tangential variance r^2 A_d(k)/k, radial variance r^2 A_d'(k);
        Cov[y | 0] = (r^2/d) I. The radial variance, O(r^2/k^2) at large k, is the difference of
        two O(r^2/k) numbers: its absolute error is ~ eps r^2/k, i.e. eps relative to the largest
        eigenvalue, but only ~ eps k relative to itself (float32, k >~ 1e6: no correct digits).
        It is clipped at 0 so the matrix stays positive semi-definite. d = 1 uses the two-deltas
        form r^2 sech^2(r x/T), which has no cancellation.

        **Arguments:**

        - `x`: noisy state, shape (d,).
        - `T`: temperature > 0.

        **Returns:**

        Cov[y | x], shape (d, d).
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        r2 = self.radius * self.radius
        if self._dim == 1:  # two deltas at +-r: r^2 sech^2(r x / T), without cancellation
            return (r2 * _sech2(self._field(x, T)))[None, None]
        _, q = self._q(x, T)
        rho, drho = self._rho_and_slope(q)
        c = self.radius / T
        eye = jnp.eye(self._dim, dtype=rho.dtype)
        outer = jnp.outer(x, x)
        return (r2 / self._dim) * (rho * eye + (0.5 * drho * (c * c)) * outer)

    def energy_moments(self, x: Vector, T: RealScalarLike) -> tuple[Scalar, Scalar]:
        """Posterior mean and variance of the energy E(y) = |y|^2/2 - x.y (theory sections 2 and 3.4).

        On the sphere |y|^2 = r^2, so E = r^2/2 - x.y: U = r^2/2 - x.m_T(x) and
        Var[E] = x^T Cov[y | x] x = (r^2 |x|^2/d) (rho_nu + 2 q rho_nu') (= T^2 C).

        **Arguments:**

        - `x`: noisy state, shape (d,).
        - `T`: temperature > 0.

        **Returns:**

        (U, Var[E]), two scalars.
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        r2 = self.radius * self.radius
        sq, q = self._q(x, T)
        if self._dim == 1:
            f = self._field(x, T)
            return 0.5 * r2 - self.radius * x[0] * jnp.tanh(f), r2 * sq * _sech2(f)
        rho, drho = self._rho_and_slope(q)
        u = 0.5 * r2 - (r2 * rho / (self._dim * T)) * sq
        var = (r2 * sq / self._dim) * (rho + 2.0 * q * drho)
        return u, var

    def sample(self, key: Key, n: int) -> Array:
        """``n`` i.i.d. points uniform on the sphere of radius r (theory section 3.4).

        Normalised standard Gaussians times r.

        **Arguments:**

        - `key`: a JAX PRNG key.
        - `n`: number of samples, an integer >= 0 (n d < 2^31).

        **Returns:**

        Samples, shape (n, d), in the dtype of `radius`.
        """
        n_ = self._check_sample(key, n)
        z = jax.random.normal(key, (n_, self._dim), dtype=self.radius.dtype)
        norm = jnp.sqrt(jnp.sum(z * z, axis=1, keepdims=True))
        return (self.radius / norm) * z

    def mean(self) -> Vector:
        """Exact data mean E_phi[y] = 0 (theory section 3.4).

        **Returns:**

        Zeros, shape (d,).
        """
        return jnp.zeros((self._dim,), dtype=self.radius.dtype)

    def covariance(self) -> Matrix:
        """Exact data covariance Cov_phi[y] = (r^2/d) I (theory section 3.4); T_c = r^2/d.

        **Returns:**

        (r^2/d) I, shape (d, d).
        """
        return (self.radius * self.radius / self._dim) * jnp.eye(self._dim, dtype=self.radius.dtype)


__all__ = ["Hypersphere"]
