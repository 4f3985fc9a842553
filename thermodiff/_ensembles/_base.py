"""The abstract exact ensemble (theory sections 2 and 3).

An ensemble is a law phi(y) of clean data y in R^d. Diffusing it at temperature T (the
VE-equivalent noise variance, theory section 1) gives the Boltzmann posterior

    p_T(y | x) = phi(y) exp(-|x - y|^2 / (2T)) / Z_T(x),
    Z_T(x) = E_phi[exp((x.y - |y|^2/2) / T)],

and every posterior quantity follows from the Landau free energy
Phi_T(x) = |x|^2/2 - T log Z_T(x) (theory section 2):

- denoiser / magnetization  m_T(x) = E[y | x] = x - grad Phi_T(x)   (Tweedie),
- score                     grad log p_T(x) = (m_T(x) - x) / T = -grad Phi_T(x) / T,
- posterior covariance      Cov[y | x] = T dm/dx = T (I - hess Phi_T(x))  (fluctuation-dissipation),
- noisy marginal            log p_T(x) = -(d/2) log(2 pi T) - Phi_T(x) / T.

Concrete ensembles implement ``landau`` in a numerically stable form (it stays O(|x - y|^2),
where log Z_T itself grows like |x|^2 / T) and override the derivatives with closed forms when
they have them; the generic versions here are exact autodiff of ``landau``.

Everything acts on one state x of shape (d,) and one scalar T; batch with ``jax.vmap``.
Ensembles are ``eqx.Module`` pytrees, so they can be differentiated and vmapped over their own
parameters (construct them inside the vmapped function).
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Key, Matrix, RealScalarLike, Scalar, Vector
from .._validate import (
    check_float32_range,
    check_key,
    check_sample_count,
    check_state,
    check_temperature_scalar,
    guard_temperature,
    is_concrete,
)


class AbstractEnsemble(eqx.Module):
    """A data law phi(y) on R^d with exact posterior statistics under Gaussian noise.

    Subclasses implement ``dim``, ``landau``, ``sample``, ``mean`` and ``covariance``; they may
    override ``denoiser``, ``posterior_cov`` and ``log_partition`` with closed forms.
    """

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Dimension d of the data space."""

    # ------------------------------------------------------------------ primitives
    @abc.abstractmethod
    def landau(self, x: Vector, T: RealScalarLike) -> Scalar:
        """Landau free energy Phi_T(x) = |x|^2/2 - T log Z_T(x) (theory section 2).

        Under jit: an invalid T or a non-finite x gives NaN.
        """

    @abc.abstractmethod
    def sample(self, key: Key, n: int) -> Array:
        """``n`` i.i.d. clean samples y ~ phi, shape (n, d)."""

    @abc.abstractmethod
    def mean(self) -> Vector:
        """Exact data mean E_phi[y]."""

    @abc.abstractmethod
    def covariance(self) -> Matrix:
        """Exact data covariance Cov_phi[y], shape (d, d)."""

    # ------------------------------------------------------------------ derived
    def log_partition(self, x: Vector, T: RealScalarLike) -> Scalar:
        """log Z_T(x) = log E_phi[exp((x.y - |y|^2/2)/T)] (theory section 2).

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return (0.5 * jnp.sum(x * x) - self.landau(x, T)) / T

    def log_density(self, x: Vector, T: RealScalarLike) -> Scalar:
        """log p_T(x) of the VE-noised state x = y + sqrt(T) z (theory section 2).

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return -0.5 * self.dim * jnp.log(2 * math.pi * T) - self.landau(x, T) / T

    def denoiser(self, x: Vector, T: RealScalarLike) -> Vector:
        """Optimal denoiser = magnetization m_T(x) = E[y | x] = x - grad Phi_T(x) (theory section 2).

        Under jit: an invalid T or a non-finite x gives NaN (theory section 13).
        """
        x, T = self._check(x, T)
        return x - jax.grad(self.landau)(x, T)

    def score(self, x: Vector, T: RealScalarLike) -> Vector:
        """Score grad_x log p_T(x) = (m_T(x) - x)/T (theory section 2).

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return (self.denoiser(x, T) - x) / T

    def posterior_cov(self, x: Vector, T: RealScalarLike) -> Matrix:
        """Posterior covariance Cov[y | x] = T dm_T/dx (fluctuation-dissipation, theory section 2).

        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return T * jax.jacfwd(self.denoiser)(x, T)

    def energy_moments(self, x: Vector, T: RealScalarLike) -> tuple[Scalar, Scalar]:
        """Posterior mean and variance of the microstate energy E(y) = |y|^2/2 - x.y.

        These are the internal energy U = <E> and the heat-capacity fluctuation
        Var[E] = T^2 C (theory section 2). Generic version: U = T^2 d(log Z)/dT and
        Var[E] = T^2 dU/dT by autodiff; ensembles with explicit posteriors override it.
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        T = jnp.asarray(T, dtype=jnp.result_type(x.dtype, float))

        def U(T_):
            return T_**2 * jax.grad(self.log_partition, argnums=1)(x, T_)

        u, du = jax.jvp(U, (T,), (jnp.ones_like(T),))
        return u, T**2 * du

    # ------------------------------------------------------------------ helpers
    def _check(self, x, T) -> tuple[Vector, Scalar]:
        """Validate one state and one scalar temperature; return them guarded.

        Eager calls raise (x of shape (d,), finite; T a finite scalar > 0 that the working
        precision can hold). Under jit/vmap the values are unknown, so an invalid T or a
        non-finite x is replaced by NaN: every output of the method is then NaN, never a
        plausible number (the traced-call policy of theory section 13).
        """
        check_state(x, self.dim)
        check_temperature_scalar(T)
        if not is_concrete(x):
            if not jnp.issubdtype(x.dtype, jnp.floating):
                x = x.astype(jnp.result_type(float))
            x = jnp.where(jnp.all(jnp.isfinite(x)), x, jnp.nan)
        if not is_concrete(T):
            T = guard_temperature(T)
        return x, T

    def _check_sample(self, key, n) -> int:
        """Validate ``sample``'s arguments: a PRNG key and a count whose output array fits."""
        check_key("key", key)
        return check_sample_count(n, self.dim)


def ensemble_dtype(ensemble) -> jnp.dtype:
    """The floating dtype an ensemble computes in: the promotion of its floating leaves."""
    leaves = [x for x in jax.tree.leaves(ensemble) if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.result_type(*leaves) if leaves else jnp.result_type(float)


def as_float_array(name: str, value, *, ndim: int | None = None) -> Array:
    """``value`` as a floating JAX array; a clear error for non-numeric input or wrong rank."""
    if isinstance(value, jax.core.Tracer):
        arr = value
    else:
        if value is None or isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a real number or array, got {type(value).__name__} {value!r}")
        np_arr = np.asarray(value)
        if not (np.issubdtype(np_arr.dtype, np.integer) or np.issubdtype(np_arr.dtype, np.floating)):
            raise TypeError(f"{name} must be a real number or array (not bool or complex), got dtype {np_arr.dtype}")
        check_float32_range(name, np_arr)
        arr = jnp.asarray(value)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    return arr


__all__ = ["AbstractEnsemble", "as_float_array", "ensemble_dtype"]
