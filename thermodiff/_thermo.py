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
2 and 4). On the equilibrium branch a ``jax.vmap`` of any of them (over T, x0 or the ensemble's
parameters) runs in blocks of lanes like ``jax.lax.map(..., batch_size=B)`` (``_blocked_vmap``,
theory section 14); derivatives are unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._blocked_vmap import blocked_vmap
from ._custom_types import RealScalarLike, Scalar, Vector
from ._ensembles._base import AbstractEnsemble, ensemble_dtype
from ._meanfield import (
    _DESCENT_STEPS,
    _broken_start,
    _check_ensemble,
    _equilibrium_point,
    _finite,
    _fixed_point,
    _in_float64,
    _nan_unless,
    _temperature,
    _vector_arg,
)
from ._validate import check_temperature_scalar


def _thermo(kind, ensemble, T, x, x0):
    """Validate (eagerly), then evaluate ``kind`` ("F", "S", "U" or "C") in float64; the result
    in the promotion of the ensemble's dtype and x's (see the module docstring)."""
    _check_ensemble(ensemble)
    check_temperature_scalar(T)
    out_dtype = ensemble_dtype(ensemble)
    if x is not None:
        if x0 is not None:
            raise ValueError("give either a state x (fixed-state thermodynamics) or x0 (branch start), not both")
        x_dtype = getattr(x, "dtype", None)
        x = _vector_arg("x", x, ensemble.dim)
        if x_dtype is not None and jnp.issubdtype(x_dtype, jnp.floating):
            out_dtype = jnp.result_type(out_dtype, x_dtype)
    x0 = _vector_arg("x0", x0, ensemble.dim)
    # blocked vmap for the equilibrium branch (an iterative solve per lane); at a fixed state x
    # the computation is loop-free and one vmap over all lanes is as fast
    body = _thermo_at if x is not None else _thermo_blocked
    return _in_float64(body, ensemble, kind, T, x, x0, out_dtype=out_dtype)


def _thermo_at(ensemble, kind, T, x, x0):
    dtype = ensemble_dtype(ensemble)
    T, ok = _temperature(T, dtype)
    if x is not None:
        x = jnp.asarray(x, dtype)
        ok = ok & _finite(x)
    else:
        x0 = _broken_start(ensemble)[0].astype(dtype) if x0 is None else jnp.asarray(x0, dtype)
        ok = ok & _finite(x0)

    def F(T_):
        if x is not None:
            return ensemble.landau(x, T_)
        xs = _fixed_point(ensemble, T_, x0, jnp.zeros(ensemble.dim, dtype), 200, _DESCENT_STEPS)
        return ensemble.landau(xs, T_)

    if kind == "F":
        out = F(T)
    elif kind == "S":
        out = -jax.grad(F)(T)
    elif kind == "U":
        f, df = jax.value_and_grad(F)(T)
        out = f - T * df
    elif x is None:  # "C" on the equilibrium branch: closed form of the implicit second derivative
        out = _equilibrium_point(ensemble, T, x0)[2]
    else:
        out = -T * jax.jvp(jax.grad(F), (T,), (jnp.ones_like(T),))[1]
    return _nan_unless(ok, out)


# The public entries' body: a plain jax.vmap of it runs in blocks of lanes (``_blocked_vmap``).
_thermo_blocked = blocked_vmap(_thermo_at)


def free_energy(
    ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector | None = None, *, x0: Vector | None = None
) -> Scalar:
    """F(T) = Phi_T(x) = |x|^2/2 - T log Z_T(x) at the state x, or Phi_T(x*(T)) on the
    equilibrium branch when x is None (theory section 2). Returns a scalar.

    **Arguments:** ``ensemble``; ``T`` a scalar, finite and > 0 (VE-equivalent noise variance);
    ``x``: the state (shape (d,), finite) at which the quantity is evaluated, or None for the
    equilibrium branch; ``x0`` (keyword-only, only with x None): start of the branch (default:
    the broken-symmetry start). Computed in float64, returned in the ensemble's dtype (promoted
    with x's). Under jit: an invalid T or a non-finite x/x0 gives NaN.
    """
    return _thermo("F", ensemble, T, x, x0)


def entropy(
    ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector | None = None, *, x0: Vector | None = None
) -> Scalar:
    """S(T) = -dF/dT by ``jax.grad`` (theory section 2); at fixed x it equals -KL(posterior || phi).

    **Arguments:** ``ensemble``; ``T`` a scalar, finite and > 0 (VE-equivalent noise variance);
    ``x``: the state (shape (d,), finite) at which the quantity is evaluated, or None for the
    equilibrium branch; ``x0`` (keyword-only, only with x None): start of the branch (default:
    the broken-symmetry start). Computed in float64, returned in the ensemble's dtype (promoted
    with x's). Under jit: an invalid T or a non-finite x/x0 gives NaN.
    """
    return _thermo("S", ensemble, T, x, x0)


def internal_energy(
    ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector | None = None, *, x0: Vector | None = None
) -> Scalar:
    """U(T) = F + T S; at fixed x it is E[|x - y|^2/2 | x] (theory section 2).

    **Arguments:** ``ensemble``; ``T`` a scalar, finite and > 0 (VE-equivalent noise variance);
    ``x``: the state (shape (d,), finite) at which the quantity is evaluated, or None for the
    equilibrium branch; ``x0`` (keyword-only, only with x None): start of the branch (default:
    the broken-symmetry start). Computed in float64, returned in the ensemble's dtype (promoted
    with x's). Under jit: an invalid T or a non-finite x/x0 gives NaN.
    """
    return _thermo("U", ensemble, T, x, x0)


def heat_capacity(
    ensemble: AbstractEnsemble, T: RealScalarLike, x: Vector | None = None, *, x0: Vector | None = None
) -> Scalar:
    """C(T) = -T d^2F/dT^2 (theory section 2).

    At fixed x: forward-over-reverse autodiff of Phi_T(x); it equals Var[E|x]/T^2. On the
    equilibrium branch (x None): F(T) = Phi_T(x*(T)), whose T-dependence through x*(T) is
    implicit; since grad Phi = 0 at x*, d^2F/dT^2 = d_TT Phi - d_T m . (I - J)^{-1} d_T m
    exactly (J = Cov[y|x*]/T, partial derivatives at fixed x by autodiff, one linear solve),
    the same as differentiating twice through the implicit fixed point at a fraction of the
    cost. It shows the mean-field jump at T_c (two deltas: 0 above T_c = 1, -> 3/2 below).
    Differentiable again.

    **Arguments:** ``ensemble``; ``T`` a scalar, finite and > 0 (VE-equivalent noise variance);
    ``x``: the state (shape (d,), finite) at which the quantity is evaluated, or None for the
    equilibrium branch; ``x0`` (keyword-only, only with x None): start of the branch (default:
    the broken-symmetry start). Computed in float64, returned in the ensemble's dtype (promoted
    with x's). Under jit: an invalid T or a non-finite x/x0 gives NaN.
    """
    return _thermo("C", ensemble, T, x, x0)
