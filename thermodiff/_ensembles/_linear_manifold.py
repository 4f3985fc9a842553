"""Gaussian data on a linear manifold with blocks of variances (theory sections 3 and 12).

phi = N(mean, U diag(v) U^T): r orthonormal directions (the columns of U, d x r) carry variances
v_1..v_r >= 0 and the d - r directions orthogonal to them carry none (flat, normal directions).
Blocks of equal variances model data with several scales (Achilli et al. 2024, "Losing
dimensions"; Ventura et al. 2025): a block of large variance is a manifold's tangent space, a
block of tiny variance its thickness. The posterior is Gaussian at every T, so every quantity is
closed-form; in particular the score-Jacobian spectrum of theory section 12 is exactly
T/(v_i + T) (and 1 on the flat directions) at every state x.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Key, Matrix, RealScalarLike, Scalar, Vector
from .._validate import (
    check_finite,
    check_float32_range,
    check_key,
    check_real,
    check_sample_count,
    check_scalar,
    check_temperature_scalar,
    concrete,
    guard_temperature,
    is_concrete,
)
from ._base import AbstractEnsemble, as_float_array

# Largest |U^T U - I| accepted for a basis with orthonormal columns, relative to the precision.
_ORTHO_TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-8}


def _check_variances(name: str, variances) -> Array:
    v = as_float_array(name, variances)
    if v.ndim == 0:
        v = v[None]
    if v.ndim != 1 or v.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty 1-D array of variances (r,), got shape {v.shape}")
    check_finite(name, v)
    c = concrete(v)
    if c is not None and np.any(c < 0):
        raise ValueError(f"{name} must be >= 0 (allowed range: [0, inf)), got {float(c.min())!r}")
    return v


def _check_basis(basis, r: int, dtype) -> Array:
    U = as_float_array("basis", basis, ndim=2).astype(dtype)
    d, cols = U.shape
    if cols != r or d < r:
        raise ValueError(
            f"basis must have shape (d, r) = (d, {r}) with d >= r = len(variances) "
            f"(orthonormal columns), got shape {U.shape}"
        )
    check_finite("basis", U)
    c = concrete(U)
    if c is not None:
        err = float(np.max(np.abs(c.T.astype(np.float64) @ c.astype(np.float64) - np.eye(r))))
        tol = _ORTHO_TOL.get(np.dtype(c.dtype), 1e-4)
        if not err <= tol:
            raise ValueError(
                f"basis must have orthonormal columns (|U^T U - I| <= {tol:g}), got max deviation {err:.3g}; "
                "orthonormalise it first, e.g. with jnp.linalg.qr"
            )
    return U


class LinearManifold(AbstractEnsemble):
    """Gaussian data N(mean, U diag(v) U^T) on a linear manifold (theory sections 3 and 12).

    With p = U^T (x - mean) and x_perp = (x - mean) - U p the part of x - mean off the manifold:

    - denoiser m_T(x) = mean + U diag(v/(v + T)) p,
    - posterior covariance Cov[y|x] = U diag(v T/(v + T)) U^T (independent of x),
    - Landau free energy Phi_T(x) = (T/2) sum_i log1p(v_i/T) + |x_perp|^2/2
      + (1/2) sum_i T/(v_i + T) p_i^2 (stable: O(|x - y|^2), no |x|^2/T cancellation),
    - score-Jacobian spectrum: the eigenvalues of I - Cov/T are T/(v_i + T) on the manifold and 1
      on the d - r flat directions (``spectrum``), so the effective dimension (eigenvalues below
      1/2) is #{v_i > T}: a block of directions of variance v opens at T = v.

    Zero variances are allowed (flat directions inside the basis). A single Gaussian has no
    phase transition (theory section 3.3): the geometry changes smoothly with T.

    **Arguments:**
    - ``variances``: (r,) variances v_i >= 0 (e.g. from ``block_variances``).
    - ``basis``: optional (d, r) matrix with orthonormal columns, d >= r (default: the first r
      coordinate axes, d = r, and no matrix is stored: every method is O(d)).
    - ``mean``: optional (d,) data mean (default 0).

    Under jit (every method): an invalid T or a non-finite x gives NaN (theory section 13).
    """

    variances: Array
    basis: Array | None
    data_mean: Array

    def __init__(self, variances, basis=None, mean=None):
        v = _check_variances("variances", variances)
        r = v.shape[0]
        U = None if basis is None else _check_basis(basis, r, v.dtype)
        dtype = v.dtype if U is None else jnp.result_type(v.dtype, U.dtype)
        d = r if U is None else U.shape[0]
        if mean is None:
            mu = jnp.zeros((d,), dtype)
        else:
            mu = as_float_array("mean", mean)
            if mu.shape != (d,):
                raise ValueError(f"mean must have shape ({d},) to match the basis, got shape {mu.shape}")
            check_finite("mean", mu)
        self.variances = v
        self.basis = U
        self.data_mean = mu

    @property
    def dim(self) -> int:
        return self.data_mean.shape[0]

    @property
    def rank(self) -> int:
        """r, the number of directions of the basis (variances may still be 0)."""
        return self.variances.shape[0]

    # ------------------------------------------------------------------ coordinates
    def _split(self, x):
        """(p, x_perp) with p = U^T (x - mean) and x_perp the part off the span of U."""
        delta = x - self.data_mean
        if self.basis is None:
            return delta, jnp.zeros_like(delta)
        p = self.basis.T @ delta
        return p, delta - self.basis @ p

    def _embed(self, c):
        return c if self.basis is None else self.basis @ c

    # ------------------------------------------------------------------ physics
    def landau(self, x: Vector, T: RealScalarLike) -> Scalar:
        x, T = self._check(x, T)
        p, perp = self._split(x)
        v = self.variances
        return (0.5 * T * jnp.sum(jnp.log1p(v / T)) + 0.5 * jnp.sum(perp * perp)
                + 0.5 * jnp.sum(T / (v + T) * p * p))

    def denoiser(self, x: Vector, T: RealScalarLike) -> Vector:
        x, T = self._check(x, T)
        p, _ = self._split(x)
        v = self.variances
        return self.data_mean + self._embed(v / (v + T) * p)

    def posterior_cov(self, x: Vector, T: RealScalarLike) -> Matrix:
        x, T = self._check(x, T)
        v = self.variances
        c = jnp.where(jnp.all(jnp.isfinite(x)), v * T / (v + T), jnp.nan)  # a NaN x (traced) gives NaN
        if self.basis is None:
            return jnp.diag(c)
        return (self.basis * c[None, :]) @ self.basis.T

    def spectrum(self, T: RealScalarLike) -> Vector:
        """The exact eigenvalues of A = I - Cov[y|x]/T = -T grad_x score (theory section 12), ascending.

        T/(v_i + T) for the r directions of the basis and 1 for the d - r flat directions off it,
        the same at every state x.

        **Arguments:** ``T``: temperature > 0 (scalar).

        **Returns:** (d,) eigenvalues in ascending order.
        Under jit: an invalid T gives NaN.
        """
        check_temperature_scalar(T)
        if not is_concrete(T):
            T = guard_temperature(T)
        v = self.variances
        lam = T / (v + T)
        ones = jnp.ones((self.dim - self.rank,), lam.dtype)
        return jnp.sort(jnp.concatenate([lam, ones]))

    def sample(self, key: Key, n: int) -> Array:
        n = self._check_sample(key, n)
        z = jax.random.normal(key, (n, self.rank), self.data_mean.dtype)
        c = z * jnp.sqrt(self.variances)[None, :]
        return self.data_mean[None, :] + (c if self.basis is None else c @ self.basis.T)

    def mean(self) -> Vector:
        return self.data_mean

    def covariance(self) -> Matrix:
        v = self.variances
        if self.basis is None:
            return jnp.diag(v).astype(self.data_mean.dtype)
        return (self.basis * v[None, :]) @ self.basis.T


def block_variances(blocks) -> Array:
    """Variances of a ``LinearManifold`` made of blocks of equal variance (theory section 12).

    ``block_variances([(1.0, 5), (0.09, 10), (1e-4, 15)])`` gives 5 directions of variance 1, 10
    of variance 0.09 and 15 of variance 1e-4 (d = 30): the score-Jacobian spectrum then has
    plateaus of effective dimension 0, 5, 15 and 30, opening at T = 1, 0.09 and 1e-4.

    **Arguments:** ``blocks``: a non-empty sequence of (variance >= 0, count >= 1) pairs.

    **Returns:** the (sum of counts,) array of variances, in the order given (JAX's default float).
    Under jit: not jittable (host-side constructor); validates eagerly.
    """
    if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__len__") or len(blocks) < 1:
        raise ValueError(f"blocks must be a non-empty sequence of (variance, count) pairs, got {blocks!r}")
    out = []
    for i, block in enumerate(blocks):
        if not hasattr(block, "__len__") or len(block) != 2:
            raise ValueError(f"blocks[{i}] must be a (variance, count) pair, got {block!r}")
        v, n = block
        check_scalar(f"blocks[{i}] variance", v, what="a variance >= 0")
        v = float(v)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"blocks[{i}] variance must be finite and >= 0 (allowed range: [0, inf)), got {v!r}")
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"blocks[{i}] count must be an integer >= 1, got {n!r}")
        out += [v] * int(n)
    return jnp.asarray(np.asarray(out, np.float64), jnp.result_type(float))


def manifold_points(key: Key, n: int, variances, *, basis=None, mean=None, sphere: bool = False,
                    radius=None) -> Array:
    """``n`` points of the ``LinearManifold`` law, optionally normalised onto a sphere (theory 12).

    Draws g = U (sqrt(v) * z), z ~ N(0, I_r). With ``sphere=False`` returns mean + g (the Gaussian
    law of ``LinearManifold(variances, basis, mean)``); with ``sphere=True`` returns
    mean + radius g/|g|: the same directions on a sphere of the manifold (constant norm, so the
    first split of the empirical law sits at T = lambda_max of its covariance, theory section 3).
    Wrap the points in ``td.FiniteDataset`` for the empirical law of a training set.

    **Arguments:**
    - ``key``: PRNG key; ``n``: number of points (>= 0).
    - ``variances``: (r,) variances >= 0 (with ``sphere``, at least one > 0).
    - ``basis``: optional (d, r) orthonormal columns (default: the first r axes, d = r).
    - ``mean``: optional (d,) offset (default 0).
    - ``sphere``: normalise onto the sphere of radius ``radius`` around ``mean``.
    - ``radius``: > 0, default sqrt(sum v) (the root-mean-square norm of g).

    **Returns:** (n, d) points.
    Under jit: not jittable as a whole (n, sphere are static; validates eagerly); the law's
    parameters may be traced inside ``LinearManifold``.
    """
    check_key("key", key)
    law = LinearManifold(variances, basis, mean)
    n = check_sample_count(n, law.dim)
    if not isinstance(sphere, (bool, np.bool_)):
        raise TypeError(f"sphere must be True or False, got {type(sphere).__name__} {sphere!r}")
    if not sphere:
        if radius is not None:
            raise ValueError("radius is only used with sphere=True")
        return law.sample(key, n)
    v = concrete(law.variances)
    if v is not None and not np.any(v > 0):
        raise ValueError("variances must have at least one entry > 0 to normalise onto a sphere (sphere=True)")
    if radius is None:
        radius = jnp.sqrt(jnp.sum(law.variances))
    else:
        check_scalar("radius", radius, what="a radius > 0")
        check_real("radius", radius)
        check_float32_range("radius", radius)
        rc = concrete(radius)
        if rc is not None and not (np.isfinite(rc) and rc > 0):
            raise ValueError(f"radius must be finite and > 0 (allowed range: (0, inf)), got {float(rc)!r}")
    g = law.sample(key, n) - law.data_mean[None, :]
    norm = jnp.sqrt(jnp.sum(g * g, axis=1, keepdims=True))
    return law.data_mean[None, :] + radius * g / norm


__all__ = ["LinearManifold", "block_variances", "manifold_points"]
