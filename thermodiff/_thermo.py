"""Thermodynamics by automatic differentiation (SPEC section 2).

At a fixed noisy state x the posterior p_T(y|x) is a canonical ensemble of microstates y with
energy E(y) = |y|^2/2 - x.y and density of states phi(y). Its free energy is the Landau free
energy F(T) = Phi_T(x) = |x|^2/2 - T log Z_T(x); entropy and heat capacity are T-derivatives of
F taken with ``jax.grad`` through the ensemble's ``log_partition``/``landau``:

    S = -dF/dT = log Z + <E>/T = -KL(p_T(.|x) || phi)      (<= 0),
    U = F + T S = E[|x - y|^2/2 | x],
    C = -T d^2F/dT^2 = Var[E | x]/T^2                       (>= 0, fluctuation identity).

With x = x*(T), the fixed point of the generative dynamics, these are the equilibrium
quantities of SPEC section 2 (mean-field layer).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._custom_types import RealScalarLike, Scalar, Vector
from ._ensembles._base import AbstractEnsemble
from ._validate import check_state, check_temperature


def _prepare(ensemble, T, x):
    if not isinstance(ensemble, AbstractEnsemble):
        raise TypeError(f"ensemble must be an AbstractEnsemble, got {type(ensemble).__name__}")
    check_temperature(T)
    x = jnp.asarray(x)
    check_state(x, ensemble.dim)
    T = jnp.asarray(T, dtype=jnp.result_type(x.dtype, float))
    return T, x


def free_energy(ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector) -> Scalar:
    """F(T) = Phi_T(x) = |x|^2/2 - T log Z_T(x) at the state x (SPEC section 2).

    **Arguments:** ``ensemble``; ``T`` > 0 (VE-equivalent noise variance); ``x`` of shape (d,).
    **Returns:** a scalar.
    """
    T, x = _prepare(ensemble, T, x)
    return ensemble.landau(x, T)


def entropy(ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector) -> Scalar:
    """S(T) = -dF/dT at fixed x, by ``jax.grad`` (SPEC section 2); equals -KL(posterior || phi)."""
    T, x = _prepare(ensemble, T, x)
    return -jax.grad(ensemble.landau, argnums=1)(x, T)


def internal_energy(ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector) -> Scalar:
    """U(T) = F + T S = E[|x - y|^2/2 | x] at fixed x (SPEC section 2)."""
    T, x = _prepare(ensemble, T, x)
    F, dF = jax.value_and_grad(ensemble.landau, argnums=1)(x, T)
    return F - T * dF


def heat_capacity(ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector) -> Scalar:
    """C(T) = -T d^2F/dT^2 = dU/dT at fixed x, forward-over-reverse autodiff (SPEC section 2)."""
    T, x = _prepare(ensemble, T, x)
    dF = jax.grad(ensemble.landau, argnums=1)
    _, d2F = jax.jvp(lambda T_: dF(x, T_), (T,), (jnp.ones_like(T),))
    return -T * d2F
