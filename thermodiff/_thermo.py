"""Thermodynamics by automatic differentiation (theory section 2).

At a fixed noisy state x the posterior p_T(y|x) is a canonical ensemble of microstates y with
energy E(y) = |y|^2/2 - x.y and density of states phi(y). Its free energy is the Landau free
energy F(T) = Phi_T(x) = |x|^2/2 - T log Z_T(x); entropy and heat capacity are T-derivatives of
F taken with ``jax.grad`` through the ensemble's ``log_partition``/``landau``:

    S = -dF/dT = log Z + <E>/T = -KL(p_T(.|x) || phi)      (<= 0),
    U = F + T S = E[|x - y|^2/2 | x],
    C = -T d^2F/dT^2 = Var[E | x]/T^2                       (>= 0, fluctuation identity).

Without x, every function works on the **equilibrium branch**: F(T) = Phi_T(x*(T)) with x*(T)
the stable fixed point of the generative dynamics (``fixed_point`` from the start ``x0``, by
default the broken-symmetry start of ``order_parameter``), differentiated through the implicit
fixed point (the heat capacity by the equivalent closed form of the implicit second derivative,
see ``heat_capacity``). Two deltas: C = 0 above T_c = 1 and C -> 3/2 just below (theory sections
2 and 4).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._custom_types import RealScalarLike, Scalar, Vector
from ._ensembles._base import AbstractEnsemble, ensemble_dtype
from ._meanfield import _DESCENT_STEPS, _broken_start, _equilibrium_point, _fixed_point
from ._validate import check_state, check_temperature


def _prepare(ensemble, T, x, x0):
    if not isinstance(ensemble, AbstractEnsemble):
        raise TypeError(f"ensemble must be an AbstractEnsemble, got {type(ensemble).__name__}")
    check_temperature(T)
    dtype = ensemble_dtype(ensemble)
    if x is not None:
        x = jnp.asarray(x)
        check_state(x, ensemble.dim)
        dtype = jnp.result_type(dtype, x.dtype)
        if x0 is not None:
            raise ValueError("give either a state x (fixed-state thermodynamics) or x0 (branch start), not both")
    elif x0 is not None:
        x0 = jnp.asarray(x0, dtype)
        check_state(x0, ensemble.dim, "x0")
    else:
        x0 = _broken_start(ensemble)[0].astype(dtype)
    T = jnp.asarray(T, dtype=dtype)

    def F(T_):
        if x is not None:
            return ensemble.landau(x, T_)
        xs = _fixed_point(ensemble, T_, x0, jnp.zeros(ensemble.dim, dtype), 200, _DESCENT_STEPS)
        return ensemble.landau(xs, T_)

    return T, F, x0


def free_energy(ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector | None = None, *, x0=None) -> Scalar:
    """F(T) = Phi_T(x) = |x|^2/2 - T log Z_T(x) at the state x, or Phi_T(x*(T)) on the
    equilibrium branch when x is None (theory section 2).

    **Arguments:** ``ensemble``; ``T`` > 0 (VE-equivalent noise variance); ``x`` of shape (d,)
    or None; ``x0``: start of the branch when x is None (default: the broken-symmetry start).
    **Returns:** a scalar.
    """
    T, F, _ = _prepare(ensemble, T, x, x0)
    return F(T)


def entropy(ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector | None = None, *, x0=None) -> Scalar:
    """S(T) = -dF/dT by ``jax.grad`` (theory section 2); at fixed x it equals -KL(posterior || phi)."""
    T, F, _ = _prepare(ensemble, T, x, x0)
    return -jax.grad(F)(T)


def internal_energy(ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector | None = None, *, x0=None) -> Scalar:
    """U(T) = F + T S; at fixed x it is E[|x - y|^2/2 | x] (theory section 2)."""
    T, F, _ = _prepare(ensemble, T, x, x0)
    f, df = jax.value_and_grad(F)(T)
    return f - T * df


def heat_capacity(ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector | None = None, *, x0=None) -> Scalar:
    """C(T) = -T d^2F/dT^2 (theory section 2).

    At fixed x: forward-over-reverse autodiff of Phi_T(x); it equals Var[E|x]/T^2. On the
    equilibrium branch (x None): F(T) = Phi_T(x*(T)), whose T-dependence through x*(T) is
    implicit; since grad Phi = 0 at x*, d^2F/dT^2 = d_TT Phi - d_T m . (I - J)^{-1} d_T m
    exactly (J = Cov[y|x*]/T, partial derivatives at fixed x by autodiff, one linear solve),
    the same as differentiating twice through the implicit fixed point at a fraction of the
    cost. It shows the mean-field jump at T_c (two deltas: 0 above T_c = 1, -> 3/2 below).
    Differentiable again."""
    T, F, x0 = _prepare(ensemble, T, x, x0)
    if x is None:
        return _equilibrium_point(ensemble, T, x0)[2]
    _, d2F = jax.jvp(jax.grad(F), (T,), (jnp.ones_like(T),))
    return -T * d2F
