"""Mean-field self-consistency by autodiff (theory sections 2, 4 and 5).

The fixed points of the generative dynamics obey the equation of state x* = m_T(x* + h): the
zeros of the score in the field h, i.e. the stationary points of Phi_T(u) - h.u with u = x* + h.
``fixed_point`` solves it by a safeguarded Newton method and differentiates it implicitly
(``jax.lax.custom_root``): derivatives with respect to T, h and the ensemble's parameters are
exact, never finite differences. Everything else here is built on it: the self-consistent
susceptibility chi = dx*/dh = (I - J)^{-1} J with J = Cov[y|x* + h]/T, the equilibrium free
energy F(T) = Phi_T(x*(T)) and its heat capacity, the critical temperature where the symmetric
branch loses stability, the Landau coefficients, and the critical exponents as local
log-derivatives.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import jet

from ._blocked_vmap import blocked_vmap
from ._custom_types import Array, RealScalarLike, Scalar, Vector
from ._ensembles._base import AbstractEnsemble, ensemble_dtype
from ._ensembles._finite import FiniteDataset
from ._validate import (
    check_finite,
    check_float32_range,
    check_int,
    check_real,
    check_temperature,
    check_temperature_scalar,
    guard_temperature,
    is_concrete,
    x64_enabled,
)

_BACKTRACK_TRIALS = 12  # line-search trials per Newton step at most (step sizes 1, 1/2, ..., 2^-11)
_DESCENT_STEPS = 64  # mean-shift steps before the Newton polish on the equilibrium branch
_POLISH_STEPS = 4  # extra Newton steps to the rounding level (susceptibility: Goldstone detection)
_MAX_STEPS = 100_000  # largest max_steps accepted (each step is cheap; the loop stops at convergence)
_MAX_ORDER = 12  # highest Landau order: Taylor mode costs ~order^2 and compiles in seconds up to here
_NESTED_JVP_MAX_ORDER = 6  # without Taylor rules (lax.scan, ...): nested jvp, 2^order passes

# Boolean reductions have no Taylor-mode rule in jax.experimental.jet (their output carries no
# derivative); the ensembles' NaN guards (jnp.all(jnp.isfinite(x))) use them.
for _prim in (lax.reduce_and_p, lax.reduce_or_p):
    if _prim not in jet.jet_rules:
        jet.defzero(_prim)


# ---------------------------------------------------------------------------- boundary
# The input policy of the public functions (theory section 13): eager calls validate
# every argument before any tracing (ValueError/TypeError naming the argument and its range);
# under jax.jit/vmap an invalid T or a non-finite vector makes every output NaN (``_nan_unless``).
# Precision: the mean-field solves run in float64 whatever the ensemble's dtype (``_in_float64``):
# in float32 a fixed point near T_c, a Goldstone eigenvalue or a critical temperature has too few
# digits left (the stability eigenvalue at 0.999 T_c came out 9-25% off).


def _check_ensemble(ensemble):
    if not isinstance(ensemble, AbstractEnsemble):
        raise TypeError(f"ensemble must be an AbstractEnsemble, got {type(ensemble).__name__}")


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def _vector_arg(name, value, dim, dtype=None):
    """None, or a finite real vector of shape (dim,): eager checks (type, shape, finite, float32
    range); tracers are checked for shape and dtype only (``_finite`` guards their values)."""
    if value is None:
        return None
    what = f"a real vector of shape ({dim},)"
    check_real(name, value, what=what)
    shape = tuple(getattr(value, "shape", np.shape(value)))
    if shape != (dim,):
        raise ValueError(f"{name} must have shape ({dim},) to match the ensemble's dimension, got {shape}")
    if is_concrete(value):
        arr = np.asarray(value)
        check_finite(name, arr)
        check_float32_range(name, arr)
        value = arr.astype(np.float64)
    return value if dtype is None else jnp.asarray(value, dtype)


def _poison(ok, a):
    """``a`` where ``ok``, NaN elsewhere, as ``a + (0 or NaN)``: unlike ``jnp.where`` its
    derivative is 1, so the NaN reaches derivatives too (jax.grad at an invalid T is NaN, not 0)."""
    return a + jnp.where(ok, jnp.zeros((), a.dtype), jnp.asarray(jnp.nan, a.dtype))


def _temperature(T, dtype):
    """T as a ``dtype`` scalar, NaN if invalid (traced calls; ``guard_temperature``'s rule), and
    whether it is valid."""
    T = jnp.asarray(T).astype(dtype)
    ok = ~jnp.isnan(guard_temperature(T))
    # T (1 + 0) or T (1 + NaN): the factor's derivative makes d/dT of every output NaN too (the
    # ensembles' own guards are selects, whose derivative at an invalid T is 0)
    return T * _poison(ok, jnp.ones((), dtype)), ok


def _finite(*vectors):
    ok = jnp.asarray(True)
    for v in vectors:
        if v is not None:
            ok = ok & jnp.all(jnp.isfinite(v))
    return ok


def _nan_unless(ok, tree):
    """Every floating leaf of ``tree`` where ``ok`` holds, NaN elsewhere (the jit policy)."""
    return jax.tree.map(lambda a: _poison(ok, a) if jnp.issubdtype(a.dtype, jnp.inexact) else a, tree)


def _cast(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree)


def _in_float64(fn, ensemble, *args, out_dtype=None):
    """``fn(ensemble, *args)`` computed in float64, its floating outputs cast to ``out_dtype``
    (default: the ensemble's dtype). With float64 already on and a float64 ensemble it is a plain
    call; otherwise (JAX's default float32, or a float32 ensemble) the ensemble and the arguments
    are cast to float64 inside ``jax.enable_x64(True)``, which also works under jit and vmap."""
    out_dtype = ensemble_dtype(ensemble) if out_dtype is None else out_dtype
    if x64_enabled() and ensemble_dtype(ensemble) == jnp.float64 and out_dtype == jnp.float64:
        return fn(ensemble, *args)
    with jax.enable_x64(True):
        ens64 = _cast(ensemble, jnp.float64)
        if ensemble_dtype(ens64) != jnp.float64:  # pragma: no cover - no floating leaves to cast
            raise ValueError("ensemble must have floating-point parameters")
        return _cast(fn(ens64, *_cast(args, jnp.float64)), out_dtype)


# Largest dimension solved by the pure-jnp elimination of ``_small_solve``; above it, LAPACK.
_SMALL_SOLVE_MAX_DIM = 64


def _first_argmax(v: Array) -> Array:
    """The first index of the maximum of a real vector (``jnp.argmax`` without its variadic
    reduction, which fails to trace inside ``jax.enable_x64(True)`` under an outer float32 jit)."""
    idx = jnp.arange(v.shape[0])
    return jnp.min(jnp.where(v == jnp.max(v), idx, v.shape[0] - 1))  # NaN: the last index


def _small_solve(A: Array, b: Array) -> Array:
    """Solve A x = b for a small dense (d, d) matrix A; b of shape (d,) or (d, k).

    Gauss-Jordan elimination with partial pivoting written in plain jnp ops (plain division
    for d = 1), so that it is safe under ``jax.vmap`` (and about as fast as LAPACK there): the
    LAPACK custom calls behind ``jnp.linalg.solve`` become *batched* kernels under vmap, and
    jaxlib 0.10's batched kernels (a parallel batch map on XLA:CPU's intra-op pool) deadlock
    when several run at once on a small pool (seen for >= ~1000 lanes in d = 8 on 2 threads).
    Differentiable in forward and reverse mode (the pivot choice is piecewise constant).
    Dimensions above ``_SMALL_SOLVE_MAX_DIM`` (where O(d^3) jnp ops lose to LAPACK, and where
    sweeps are rare) use ``jnp.linalg.solve``.
    """
    d = A.shape[-1]
    vec = b.ndim == 1
    B = b[:, None] if vec else b
    dtype = jnp.result_type(A.dtype, B.dtype)
    if d == 1:
        x = B.astype(dtype) / A[0, 0].astype(dtype)
    elif d > _SMALL_SOLVE_MAX_DIM:
        x = jnp.linalg.solve(A.astype(dtype), B.astype(dtype))
    else:
        idx = jnp.arange(d)

        # Gauss-Jordan elimination with partial pivoting on [A | B], one fori_loop over the
        # columns (fewer sequential steps than LU + two triangular solves, and a loop rather
        # than unrolled code, which multiplied the compile times). The right-hand side only
        # meets row swaps and multiplications/divisions by functions of A, so the solve stays
        # linear in b (transposable, as custom_root's reverse mode needs).
        def step(j, carry):
            U, B = carry
            p = _first_argmax(jnp.where(idx >= j, jnp.abs(U[:, j]), -1.0))
            perm = jnp.where(idx == j, p, jnp.where(idx == p, j, idx))
            U, B = U[perm], B[perm]
            row_u, row_b = U[j] / U[j, j], B[j] / U[j, j]
            f = jnp.where(idx == j, 0.0, U[:, j])
            U = (U - f[:, None] * row_u[None, :]).at[j].set(row_u)
            B = (B - f[:, None] * row_b[None, :]).at[j].set(row_b)
            return U, B

        _, x = jax.lax.fori_loop(0, d, step, (A.astype(dtype), B.astype(dtype)))
    return x[:, 0] if vec else x


def _newton(G, jac, u0, max_steps, tol):
    """Safeguarded Newton for G(u) = 0 with Jacobian ``jac(u)``: Levenberg-regularised steps
    and a backtracking line search on |G|^2 (the full step first, then halved at most 11
    times, only while the merit does not decrease), so it never increases the residual and
    survives a singular Jacobian at a critical point (where it degrades to linear
    convergence). Stops when the residual is at tolerance and the last step below sqrt(tol),
    or when no trial step decreases the residual (rounding level)."""
    d = u0.shape[0]
    eye = jnp.eye(d, dtype=u0.dtype)

    def step(state):
        k, u, g, _ = state
        A = jac(u)
        AtA = A.T @ A
        now = jnp.sum(g * g)
        # Levenberg shift at the rounding level of A^T A: steps stay finite on a singular
        # Jacobian (a critical point, the Goldstone directions of a continuous symmetry), yet
        # |I - J| down to ~sqrt(eps) (near-critical temperatures) is resolved at full Newton
        # speed (a fixed 1e-14 damped |I - J| ~ 1e-7 to linear convergence and stopped early).
        mu = 4 * jnp.finfo(A.dtype).eps * (1.0 + jnp.trace(AtA))
        delta = -_small_solve(AtA + mu * eye, A.T @ g)

        def trial(j):
            u_t = u + jnp.asarray(2.0, u.dtype) ** (-j) * delta
            g_t = G(u_t)
            return u_t, g_t, jnp.sum(g_t * g_t)

        def backtrack(s):
            j = s[0]
            return (j + 1, *trial(j.astype(u.dtype)))

        # merit < now is False for NaN: a non-finite trial is rejected like a worse one
        _, u_t, g_t, m_t = jax.lax.while_loop(
            lambda s: (s[0] < _BACKTRACK_TRIALS) & ~(s[3] < now), backtrack, (1, *trial(jnp.zeros((), u.dtype)))
        )
        ok = m_t < now
        u_new = jnp.where(ok, u_t, u)
        g_new = jnp.where(ok, g_t, g)
        return k + 1, u_new, g_new, jnp.sum((u_new - u) ** 2)

    def cond(state):
        k, u, g, du2 = state
        scale = 1.0 + jnp.sqrt(jnp.sum(u * u))
        # Converged: residual at tolerance and, after a step, that step small. Near a critical
        # point (I - J nearly singular) a residual at tolerance still leaves an error
        # |(I - J)^{-1} G| in u; the next Newton step removes it (quadratic convergence), so a
        # last step below sqrt(tol) means an error in u of order tol.
        unconverged = (jnp.sqrt(jnp.sum(g * g)) > tol * scale) | ((k > 0) & (du2 > tol * scale * scale))
        stalled = (k > 0) & (du2 == 0)  # the line search found no decrease: at rounding level
        return (k < max_steps) & unconverged & ~stalled

    g0 = G(u0)
    init = (jnp.asarray(0), u0, g0, jnp.asarray(jnp.inf, u0.dtype))
    _, u, _, _ = jax.lax.while_loop(cond, step, init)
    return u


def _regulariser(A):
    """mu = eps (1 + max|A|): the rounding-level shift of a tangent system, a constant.

    Under ``stop_gradient``: it is no physics, and the JVP of ``jnp.max`` divides by the number
    of entries equal to the maximum, which XLA can make 0 (0/0 = NaN) when it recomputes the
    operand of the comparison in a different fusion than the reduction (different rounding);
    that NaN then leaked into second derivatives (heat capacities) at a few lanes of a vmap."""
    return jax.lax.stop_gradient(jnp.finfo(A.dtype).eps * (1.0 + jnp.max(jnp.abs(A))))


def _solve(ensemble, T, h, u, max_steps, descent_steps, polish):
    """The iterations of ``_fixed_point`` from u = x0 + h: descent, Newton, polish."""
    tol = 8 * jnp.finfo(u.dtype).eps ** 0.75 if u.dtype == jnp.float32 else 1e-13
    eye = jnp.eye(u.shape[0], dtype=u.dtype)

    def G(u):
        return u - ensemble.denoiser(u, T) - h

    def jac(u):  # dG/du = I - dm/du = I - Cov[y|u]/T (fluctuation-dissipation, theory 2)
        return eye - ensemble.posterior_cov(u, T) / T

    if descent_steps:
        u = jax.lax.fori_loop(0, descent_steps, lambda i, u: ensemble.denoiser(u, T) + h, u)
    u = _newton(G, jac, u, max_steps, tol)
    return _newton(G, jac, u, _POLISH_STEPS, 0.0) if polish else u


_solve_blocked = blocked_vmap(_solve)


@eqx.filter_jit
def _fixed_point(ensemble, T, x0, h, max_steps, descent_steps=0, polish=False):
    """x* = m_T(x* + h), solved in u = x* + h, implicitly differentiated.

    With ``descent_steps`` > 0 the Newton polish is preceded by that many mean-shift steps
    u <- m_T(u) + h: a concave-convex procedure that decreases Phi_T(u) - h.u monotonically, so
    the result is the local minimum (stable fixed point) reached from x0, never a saddle.
    With ``polish`` a few more Newton steps with tolerance 0 follow (they stop when no step
    decreases the residual): x* to the rounding level, as the Goldstone test needs."""

    def G(u):
        return u - ensemble.denoiser(u, T) - h

    def solve(f, u_init):
        # the iterations (never differentiated: custom_root) as their own blocked function, so
        # that a vmap of a derivative of a fixed point also solves in blocks of lanes
        return _solve_blocked(ensemble, T, h, u_init, max_steps, descent_steps, polish)

    def tangent_solve(g, y):
        # (I - J + mu I)^{-1} y with mu at rounding level: the ordinary solve (relative bias
        # ~ eps/|T - T_c|), finite at a critical point itself (where the symmetric rhs has no
        # component along the null direction), and smoothly differentiable again (an SVD-based
        # least squares is not, for degenerate spectra such as the hypersphere's).
        A = jax.jacfwd(g)(y)
        return _small_solve(A + _regulariser(A) * jnp.eye(A.shape[0], dtype=A.dtype), y)

    u = jax.lax.custom_root(G, x0 + h, solve, tangent_solve)
    return u - h


def fixed_point(
    ensemble: AbstractEnsemble,
    T: RealScalarLike,
    *,
    x0: Vector | None = None,
    h: Vector | None = None,
    max_steps: int = 100,
    stable: bool = False,
) -> Vector:
    """Solve the self-consistency equation x* = m_T(x* + h) (theory section 2).

    The branch is the one the safeguarded Newton iteration reaches from ``x0``: start at the
    data mean (the default) for the symmetric branch, away from it for a broken-symmetry branch.
    Gradients with respect to ``T``, ``h`` and the ensemble's parameters come from the implicit
    function theorem (``jax.lax.custom_root``); they diverge where I - Cov[y|x*+h]/T is singular,
    i.e. at a critical point, as they should.

    **Arguments** (all but ``ensemble`` and ``T`` keyword-only):
    - ``ensemble``: any ``AbstractEnsemble``.
    - ``T``: scalar temperature, finite and > 0 (VE-equivalent noise variance).
    - ``x0``: starting point, finite, shape (d,); default ``ensemble.mean()``.
    - ``h``: external field, finite, shape (d,); default 0.
    - ``max_steps``: Newton iterations at most, an integer in [1, 100000] (static).
    - ``stable``: first descend Phi_T by mean-shift steps (x <- m_T(x + h)), so that the result
      is the stable fixed point (local minimum) reached from x0 rather than whatever stationary
      point Newton finds nearest (which may be a saddle or the mirror branch).

    **Returns:** the fixed point x*, shape (d,), in the ensemble's dtype. Solved in float64
    whatever that dtype (a float32 result is the float64 one rounded). Jittable and vmappable
    over T, x0, h and the ensemble's parameters (a sweep over 10^4 temperatures is one
    ``jax.vmap``, which runs in blocks of lanes like ``jax.lax.map(..., batch_size=B)``:
    theory section 14). Under jit: an invalid T or a non-finite x0/h gives NaN.
    """
    _check_ensemble(ensemble)
    check_temperature_scalar(T)
    x0 = _vector_arg("x0", x0, ensemble.dim)
    h = _vector_arg("h", h, ensemble.dim)
    max_steps = check_int("max_steps", max_steps, 1, _MAX_STEPS)
    _check_bool("stable", stable)
    return _in_float64(_fixed_point_blocked, ensemble, T, x0, h, max_steps, bool(stable))


def _fixed_point_at(ensemble, T, x0, h, max_steps, stable, polish=False):
    """The traceable body of ``fixed_point`` (validated arguments, any dtype)."""
    dtype = ensemble_dtype(ensemble)
    T, ok = _temperature(T, dtype)
    x0 = ensemble.mean().astype(dtype) if x0 is None else jnp.asarray(x0, dtype)
    h = jnp.zeros(ensemble.dim, dtype) if h is None else jnp.asarray(h, dtype)
    x = _fixed_point(ensemble, T, x0, h, max_steps, _DESCENT_STEPS if stable else 0, polish)
    return _nan_unless(ok & _finite(x0, h), x)


# The public entries: a plain jax.vmap of them runs in blocks of lanes (``_blocked_vmap``).
_fixed_point_blocked = blocked_vmap(_fixed_point_at)


def _linear_response(ensemble, T, u, heat: bool = False):
    """Closed-form implicit derivatives at a fixed point u = x* + h of x* = m_T(x* + h).

    chi = dx*/dh = (I - J)^{-1} J with J = Cov[y|u]/T (theory 2); with ``heat`` also the
    curvature d^2F/dT^2 of F(T) = Phi_T(x*(T)) at h = 0: since grad Phi = x - m vanishes at x*
    (envelope), dF/dT = d_T Phi and d^2F/dT^2 = d_TT Phi - d_T m . (I - J)^{-1} d_T m, the
    partial T-derivatives at fixed x by autodiff. One solve with I - J (shifted by the same
    rounding-level mu as the implicit tangent solve, so finite at a critical point) serves
    both. Returns (chi, d^2F/dT^2 or None); differentiable (x* through ``custom_root``)."""
    d = u.shape[0]
    J = ensemble.posterior_cov(u, T) / T
    eye = jnp.eye(d, dtype=J.dtype)
    A = eye - J
    A = A + _regulariser(A) * eye
    if not heat:
        return _small_solve(A, J), None
    one = jnp.ones_like(T)
    _, m_T = jax.jvp(lambda T_: ensemble.denoiser(u, T_), (T,), (one,))
    _, phi_TT = jax.jvp(jax.grad(lambda T_: ensemble.landau(u, T_)), (T,), (one,))
    sol = _small_solve(A, jnp.concatenate([J, m_T[:, None]], axis=1))
    return sol[:, :d], phi_TT - m_T @ sol[:, d]


def _equilibrium_point(ensemble, T, x0):
    """(x*, chi, C) on the equilibrium branch from x0 (h = 0): one descent + Newton solve,
    then ``_linear_response``. Traceable core of ``_equilibrium`` and ``heat_capacity``."""
    x = _fixed_point(ensemble, T, x0, jnp.zeros_like(x0), 200, _DESCENT_STEPS)
    chi, d2F = _linear_response(ensemble, T, x, heat=True)
    return x, chi, -T * d2F


_equilibrium_blocked = blocked_vmap(_equilibrium_point)


def _equilibrium(ensemble: AbstractEnsemble, T: RealScalarLike, x0: Vector | None = None):
    """Fused equilibrium-branch kernel (private): (x*, chi, C) from ONE fixed-point solve.

    The same quantities as ``fixed_point(ens, T, x0, stable=True)``,
    ``susceptibility(ens, T, x0=x0)`` and ``heat_capacity(ens, T, x0=x0)`` (default x0: the
    broken-symmetry start), which solve once each; chi and C come from closed forms at x*
    sharing one solve with I - J (``_linear_response``). Jittable and vmappable over T."""
    _check_ensemble(ensemble)
    check_temperature(T)
    dtype = ensemble_dtype(ensemble)
    x0 = _broken_start(ensemble)[0].astype(dtype) if x0 is None else _vector_arg("x0", x0, ensemble.dim, dtype)
    return _equilibrium_blocked(ensemble, jnp.asarray(T, dtype), x0)


def susceptibility(
    ensemble: AbstractEnsemble,
    T: RealScalarLike,
    *,
    h: Vector | None = None,
    x0: Vector | None = None,
    goldstone: str = "inf",
) -> Array:
    """Self-consistent susceptibility chi = dx*/dh = (I - J)^{-1} J, J = Cov[y|x*+h]/T (theory 2).

    Obtained by implicit differentiation of the fixed point (the implicit function theorem in
    closed form at x*, one linear solve with I - J, J from the ensemble's ``posterior_cov``),
    never by finite differences; differentiable again (with respect to T, h and parameters).
    The branch is the one reached from ``x0``; the default is the equilibrium branch (the start
    of ``order_parameter``); pass ``x0 = ensemble.mean()`` for the symmetric branch below T_c.
    Two deltas +-1 at h = 0: 1/(T - 1) above T_c = 1, -> 1/(2(1 - T)) below.

    **Continuous symmetry (Goldstone modes, theory 3.4 and 13).** Where a continuous symmetry
    is broken (the hypersphere below T_c = r^2/d) the fixed points form a manifold and I - J has
    the eigenvalue 0 along its d - 1 flat directions: chi is infinite there, not large. A
    direction is flat when its eigenvalue a of I - J is zero to the rounding level,
    |a| <= 1024 eps (1 + max|J|), eps the float64 epsilon (x* is first polished to the rounding
    level). A critical eigenvalue is ~|T - T_c|/T_c, so it is resolved down to ~1e-12 from T_c;
    exactly at T_c the critical direction is flat as well and reported infinite. With P the
    orthogonal projector onto the flat directions (basis-free), ``goldstone`` chooses:

    - ``"inf"`` (default): the entries where |P_ij| > sqrt(eps) are +-inf (the sign of P_ij),
      the others those of the projected chi below. Hypersphere with x* on axis k:
      chi = diag(inf, ..., chi_par, ..., inf), chi_par exact. A contraction n.chi.n meets
      inf * 0 = NaN: use ``"projected"`` for contractions.
    - ``"projected"``: (I - P) chi (I - P), the response to fields orthogonal to the flat
      directions: finite and exact there (n.chi.n = chi_par for n along x*).

    Without flat directions (every ensemble without a continuous symmetry, and the symmetric
    phase) both are the plain (I - J)^{-1} J. Derivatives hold P fixed (it is a detection).

    **Arguments:** ``ensemble``; ``T`` scalar, finite, > 0; keyword-only ``h`` (field, shape (d,),
    default 0), ``x0`` (branch start, shape (d,)), ``goldstone`` ("inf" or "projected").

    **Returns:** the (d, d) matrix chi (a 1x1 matrix when d = 1) in the ensemble's dtype,
    computed in float64 (so identical eager, under jit and under vmap; a vmap runs in blocks of
    lanes, theory section 14). Under jit: an invalid T or a non-finite h/x0 gives NaN.
    """
    _check_ensemble(ensemble)
    check_temperature_scalar(T)
    h = _vector_arg("h", h, ensemble.dim)
    x0 = _vector_arg("x0", x0, ensemble.dim)
    if not isinstance(goldstone, str) or goldstone not in _GOLDSTONE:
        raise ValueError(f"goldstone must be one of {', '.join(map(repr, _GOLDSTONE))}, got {goldstone!r}")
    return _in_float64(_susceptibility_blocked, ensemble, T, h, x0, goldstone)


def _susceptibility_at(ensemble, T, h, x0, goldstone):
    dtype = ensemble_dtype(ensemble)
    stable = x0 is None
    x0 = _broken_start(ensemble)[0].astype(dtype) if x0 is None else jnp.asarray(x0, dtype)
    h_ = jnp.zeros(ensemble.dim, dtype) if h is None else jnp.asarray(h, dtype)
    x = _fixed_point_at(ensemble, T, x0, h_, 100, stable, polish=True)
    T, ok = _temperature(T, dtype)
    return _nan_unless(ok & _finite(x0, h_), _goldstone_response(ensemble, T, x + h_, goldstone))


_susceptibility_blocked = blocked_vmap(_susceptibility_at)


def principal_axis(ensemble: AbstractEnsemble) -> tuple[Scalar, Vector]:
    """(lambda_max, v): top eigenvalue and eigenvector of the data covariance (theory section 3).

    The sign of v is fixed (its largest-magnitude component positive). Computed in float64,
    returned in the ensemble's dtype."""
    _check_ensemble(ensemble)
    return _in_float64(_principal_axis, ensemble)


def _principal_axis(ensemble):
    evals, evecs = jnp.linalg.eigh(ensemble.covariance())
    v = evecs[:, -1]
    # a deterministic sign: the largest-magnitude component positive
    v = v * jnp.sign(v[_first_argmax(jnp.abs(v))])
    return evals[-1], v


def _broken_start(ensemble):
    lam, v = _principal_axis(ensemble)
    return ensemble.mean() + jnp.sqrt(jnp.maximum(lam, 0.0)) * v, v


def order_parameter(ensemble: AbstractEnsemble, T: RealScalarLike, *, x0: Vector | None = None) -> Scalar:
    """The order parameter (x* - mean).v on the branch reached from ``x0`` (theory sections 2-4).

    v is the top principal axis of the data; the default start is mean + sqrt(lambda_max) v, so
    the Newton iteration lands on the broken-symmetry branch below T_c and on the symmetric one
    above. Two deltas +-1: the root of m = tanh(m/T). Hypersphere: |x*|.

    ``T``: scalar, finite, > 0; ``x0`` (keyword-only): finite start of shape (d,). Computed in
    float64, returned in the ensemble's dtype; a vmap runs in blocks of lanes (theory section 14).
    Under jit: an invalid T or a non-finite x0 gives NaN.
    """
    _check_ensemble(ensemble)
    check_temperature_scalar(T)
    x0 = _vector_arg("x0", x0, ensemble.dim)
    return _in_float64(_order_parameter_blocked, ensemble, T, x0)


def _order_parameter_at(ensemble, T, x0):
    dtype = ensemble_dtype(ensemble)
    start, v = _broken_start(ensemble)
    x0 = start.astype(dtype) if x0 is None else jnp.asarray(x0, dtype)
    return (_fixed_point_at(ensemble, T, x0, None, 100, True) - ensemble.mean()) @ v


_order_parameter_blocked = blocked_vmap(_order_parameter_at)


def landau_coefficients(
    ensemble: AbstractEnsemble,
    T: RealScalarLike,
    *,
    order: int = 6,
    x: Vector | None = None,
    direction: Vector | None = None,
) -> Array:
    """Taylor coefficients c_k of Phi_T(x + s v) = sum_k c_k s^k at s = 0, k = 0..order
    (theory section 4), by Taylor-mode autodiff (``jax.experimental.jet``).

    Defaults: x = the symmetric fixed point (the data mean), v = the top principal axis (v is
    used as given, not normalised). Two deltas +-1: c2 = (1 - 1/T)/2, c4 = 1/(12 T^3),
    c6 = -1/(45 T^5).

    **Arguments:** ``T`` scalar, finite, > 0; keyword-only ``order``, an integer in [1, 12]
    (Taylor mode costs ~order^2; for an ensemble whose Landau free energy uses operations without
    Taylor rules, e.g. the ``lax.scan`` of a chunked ``FiniteDataset``, nested forward mode is
    used, 2^order passes, and order must be <= 6), ``x`` and ``direction`` finite, shape (d,).

    **Returns:** the order + 1 coefficients, computed in float64, in the ensemble's dtype.
    Under jit: an invalid T or a non-finite x/direction gives NaN.
    """
    _check_ensemble(ensemble)
    check_temperature_scalar(T)
    order = check_int("order", order, 1, _MAX_ORDER)
    x = _vector_arg("x", x, ensemble.dim)
    direction = _vector_arg("direction", direction, ensemble.dim)
    return _in_float64(_landau_coefficients_at, ensemble, T, order, x, direction)


def _landau_coefficients_at(ensemble, T, order, x, direction):
    dtype = ensemble_dtype(ensemble)
    T, ok = _temperature(T, dtype)
    x = ensemble.mean().astype(dtype) if x is None else jnp.asarray(x, dtype)
    v = _principal_axis(ensemble)[1] if direction is None else jnp.asarray(direction, dtype)
    f = lambda s: ensemble.landau(x + s * v, T)  # noqa: E731
    s0 = jnp.zeros((), dtype)
    try:
        series = [jnp.ones((), dtype)] + [jnp.zeros((), dtype)] * (order - 1)
        y0, ys = jet.jet(f, (s0,), (series,))
        derivs = jnp.stack([y0] + list(ys))
    except Exception as err:  # an operation jet cannot expand (no Taylor rule: lax.scan, custom rules)
        if order > _NESTED_JVP_MAX_ORDER:
            raise ValueError(
                f"order must be an integer in [1, {_NESTED_JVP_MAX_ORDER}] for {type(ensemble).__name__}: its "
                f"Landau free energy uses an operation without a Taylor-mode rule ({err}), so the "
                f"coefficients come from nested forward mode (2^order passes); got order={order}"
            ) from None
        derivs = jnp.stack(_nested_derivatives(f, s0, order))
    c = derivs / jnp.asarray([math.factorial(k) for k in range(order + 1)], dtype)
    return _nan_unless(ok & _finite(x, v), c)


def _nested_derivatives(f, s0, order):
    """[f(s0), f'(s0), ..., f^(order)(s0)] by nested forward mode (2^order passes)."""

    def taylor(k):
        if k == 0:
            return lambda s: [f(s)]
        inner = taylor(k - 1)

        def up_to_k(s):
            primal, tangent = jax.jvp(inner, (s,), (jnp.ones_like(s),))
            return [primal[0]] + tangent

        return up_to_k

    return taylor(order)(s0)


# ---------------------------------------------------------------------------- Goldstone modes
_GOLDSTONE = ("inf", "projected")
_GOLDSTONE_EPS_FACTOR = 1024  # flat: |eigenvalue of I - J| <= 1024 eps (1 + max|J|)
_PURIFY_STEPS = 12  # McWeeny steps: eigenvalues in (1/2, 1] -> 1, [0, 1/2) -> 0, quadratically


def _flat_projector(A: Array, tol: Array) -> Array:
    """Orthogonal projector onto the eigenvectors of the symmetric A with |eigenvalue| < tol.

    No eigendecomposition (LAPACK's eigh becomes a batched kernel under vmap, which deadlocks
    jaxlib 0.10 on a small CPU pool; see ``_small_solve``): the Lorentzian filter
    tol^2/(a^2 + tol^2) = -tol Im (A + i tol)^{-1} (one complex solve, conditioned like
    |A|/tol) is ~1 on |a| << tol and ~(tol/a)^2 beyond; McWeeny purification P <- 3P^2 - 2P^3
    then drives every eigenvalue of the filter to 0 or 1, with the boundary at |a| = tol. The
    result is basis-free: it does not depend on how eigenvectors in a degenerate subspace (the
    d - 1 flat directions of a hypersphere) would have been chosen."""
    d = A.shape[0]
    eye = jnp.eye(d, dtype=A.dtype)
    cdt = jnp.result_type(A.dtype, jnp.complex64)
    X = _small_solve(A.astype(cdt) + (1j * tol).astype(cdt) * eye.astype(cdt), eye.astype(cdt))
    P = -tol * jnp.imag(X)

    def purify(_, P):
        P = 0.5 * (P + P.T)
        P2 = P @ P
        return 3.0 * P2 - 2.0 * P2 @ P

    P = jax.lax.fori_loop(0, _PURIFY_STEPS, purify, P)
    return 0.5 * (P + P.T)


def _goldstone_response(ensemble, T, u, goldstone: str = "inf") -> Array:
    """chi = (I - J)^{-1} J at the fixed point u = x* + h with the flat (Goldstone) directions
    of I - J reported as ``goldstone`` says (see ``susceptibility``). Traceable; the plain
    solve (``_linear_response``) wherever there is no flat direction."""
    d = u.shape[0]
    J = ensemble.posterior_cov(u, T) / T
    J = 0.5 * (J + J.T)
    eye = jnp.eye(d, dtype=J.dtype)
    A = eye - J
    eps = jnp.finfo(J.dtype).eps
    tol = jax.lax.stop_gradient(_GOLDSTONE_EPS_FACTOR * eps * (1.0 + jnp.max(jnp.abs(J))))
    P = jax.lax.stop_gradient(_flat_projector(A, tol))
    plain = _linear_response(ensemble, T, u)[0]
    # A + P is regular (the flat eigenvalues ~0 become ~1, the others are untouched: P is a
    # spectral projector of A); (A + P)^{-1} J restricted to the complement of P is chi there.
    Q = eye - P
    regular = Q @ _small_solve(A + P, J) @ Q
    if goldstone == "inf":
        regular = jnp.where(jnp.abs(P) > jnp.sqrt(eps), jnp.sign(P) * jnp.inf, regular)
    return jnp.where(jnp.trace(P) > 0.5, regular, plain)


# ---------------------------------------------------------------------------- critical points
_CRITERIA = ("thermodynamic", "vp_drift", "first_split", "pf_ode")


def _stability_function(ensemble, criterion):
    """g(log T): > 0 below the critical point, < 0 above, on the symmetric branch (theory 5)."""
    x_sym = ensemble.mean()

    def g(logT):
        T = jnp.exp(logT)
        x = _fixed_point(ensemble, T, x_sym.astype(logT.dtype), jnp.zeros_like(x_sym, logT.dtype), 100)
        lam = jnp.linalg.eigvalsh(ensemble.posterior_cov(x, T))[-1]
        if criterion == "thermodynamic":
            return lam / T - 1.0
        # VP reverse drift beta [x/2 + score]: linearised at the symmetric point its top rate is
        # 1/2 + (lam/T - 1)/s^2 with s^2 = 1 - abar = T/(1 + T) (theory section 5.2).
        return 0.5 + (lam / T - 1.0) * (1.0 + T) / T

    return g


def _bracket_and_solve(g, log_t_top, max_expand=64, max_iter=80):
    """The highest sign change of g (positive at low T) below ``log_t_top``: expand upwards
    until g < 0, then walk down in steps of a factor 1.05 until g > 0 (a coarse step can skip
    a window where the symmetric point is briefly unstable, so the walk is fine), then Illinois
    regula falsi in log T. Returns NaN when g never becomes positive (no transition)."""
    dtype = log_t_top.dtype
    ln2 = jnp.asarray(math.log(2.0), dtype)
    step = jnp.asarray(math.log(1.05), dtype)

    def expand_hi(state):
        k, hi, _ = state
        return k + 1, hi + ln2, g(hi + ln2)

    _, hi, ghi = jax.lax.while_loop(
        lambda s: (s[0] < max_expand) & (s[2] >= 0), expand_hi, (0, log_t_top, g(log_t_top))
    )

    # g > 0 only by rounding (a single Gaussian has lambda/T - 1 = -T/(s^2 + T) -> 0^- as T -> 0)
    # is no transition: within one 5% step below a real one g is O(step).
    def descend(state):
        k, upper, g_upper, lo, _ = state
        return k + 1, lo, g(lo), lo - step, g(lo - step)

    # Walk no lower than sqrt(eps) below the top: beneath that, lambda/T - 1 is rounding noise
    # (e.g. a single Gaussian's -T/s^2 becomes exactly 0 and the VP-drift criterion reads +1/2).
    max_descent = int(math.ceil(0.5 * -math.log(float(jnp.finfo(dtype).eps)) / math.log(1.05)))
    _, hi, ghi, lo, glo = jax.lax.while_loop(
        lambda s: (s[0] < max_descent) & (s[4] <= 1e-6), descend, (0, hi, ghi, hi - step, g(hi - step))
    )
    # The walk stops with g(lo) > 1e-6 >= g(hi): the highest crossing is in [lo, hi] (at hi
    # itself when g(hi) = 0 on the grid; a value in (0, 1e-6] is rounding and is treated as 0).
    found = (glo > 1e-6) & (ghi <= 1e-6)
    ghi = jnp.minimum(ghi, 0.0)

    def body(state):
        k, a, ga, b, gb, side = state
        c = (a * gb - b * ga) / (gb - ga)
        c = jnp.where(jnp.isfinite(c) & (c > jnp.minimum(a, b)) & (c < jnp.maximum(a, b)), c, 0.5 * (a + b))
        gc = g(c)
        # Illinois: keep the bracket, halve the stale end's value to avoid one-sided stalls.
        left = gc > 0  # root lies between c and b
        a_new, ga_new = jnp.where(left, c, a), jnp.where(left, gc, jnp.where(side == -1, ga * 0.5, ga))
        b_new, gb_new = jnp.where(left, b, c), jnp.where(left, jnp.where(side == 1, gb * 0.5, gb), gc)
        return k + 1, a_new, ga_new, b_new, gb_new, jnp.where(left, 1, -1)

    tol = 4 * jnp.finfo(dtype).eps
    _, a, ga_end, b, gb_end, _ = jax.lax.while_loop(
        lambda s: (s[0] < max_iter) & (jnp.abs(s[3] - s[1]) > tol * (1 + jnp.abs(s[1]))) & (s[2] != 0) & (s[4] != 0),
        body,
        (0, lo, glo, hi, ghi, 0),
    )
    root = jnp.where(ga_end == 0, a, jnp.where(gb_end == 0, b, 0.5 * (a + b)))
    return jnp.where(found, root, jnp.nan)


def critical_temperature(ensemble: AbstractEnsemble, *, criterion: str = "thermodynamic") -> Scalar:
    """The temperature at which the symmetric branch loses stability (theory sections 3-5).

    ``criterion="thermodynamic"`` (theory 5.1): the largest eigenvalue of Cov[y|x*]/T reaches 1 on
    the symmetric branch x*(T) (continued from the data mean): the pitchfork where p_T becomes
    bimodal. Two deltas: |mu|^2; mixture +-mu, s^2: |mu|^2 - s^2; hypersphere: r^2/d; constant-norm
    data (Curie-Weiss at finite N): lambda_max of the data covariance.

    ``criterion="vp_drift"`` (theory 5.2, Raya & Ambrogioni): where x = x* stops being attractive
    for the VP reverse-SDE drift beta(t)[x/2 + score], returned as a VE-equivalent temperature
    (abar = 1/(1 + T)). Two deltas +-a: abar_c = sqrt(a^4 + 1) - a^2, i.e. T = sqrt(2) for a = 1.

    ``criterion="first_split"`` (theory 3, first transition of general data): the highest
    temperature at which Phi_T acquires a second minimum (``first_split_temperature``: a saddle-node
    for asymmetric data; the pitchfork above when it is the first split of symmetric data, which
    it need not be: symmetric data can first split by a mirror pair of saddle-nodes elsewhere).
    "thermodynamic" and "vp_drift" need a symmetric point and raise a ValueError for a law
    without one (checked on concrete parameters).

    ``criterion="pf_ode"`` (theory 5.3) raises: the probability-flow ODE has no such point.

    The root is found by bracketing and regula falsi in log T, then differentiated implicitly
    (``jax.lax.custom_root``), so dT_c/d(parameter) works with ``jax.grad``. Returns NaN when
    there is no transition (e.g. a single Gaussian, or |mu|^2 <= s^2).

    ``criterion`` is keyword-only. **Precision:** computed in float64 whatever the ensemble's
    dtype (in float32 the stability function lambda/T - 1 has ~7 digits, and T_c inherits the
    rounding of every solve along the branch); the result is returned in the ensemble's dtype.
    Under jit: the ensemble's parameters are its own to guard (a NaN parameter gives NaN).
    """
    _check_ensemble(ensemble)
    _check_criterion(criterion)
    if criterion == "first_split":
        from ._hierarchy import first_split_temperature

        return _in_float64(first_split_temperature, ensemble)
    return _in_float64(_critical_temperature_checked, ensemble, criterion)


def _critical_temperature_checked(ensemble, criterion):
    _check_symmetric_point(ensemble)
    return _critical_temperature(ensemble, criterion)


def _check_symmetric_point(ensemble):
    """The symmetric branch exists only if the data mean is a fixed point at every T (a law
    symmetric about its mean). Checked on concrete parameters; skipped under tracing."""
    if not all(is_concrete(leaf) for leaf in jax.tree.leaves(ensemble)):
        return
    mean = ensemble.mean()
    lam = jnp.linalg.eigvalsh(ensemble.covariance())[-1]
    scale = jnp.sqrt(jnp.maximum(lam, jnp.finfo(mean.dtype).tiny))
    for T in (lam, lam / 8):
        res = float(jnp.max(jnp.abs(ensemble.denoiser(mean, T) - mean)) / scale)
        if not res < 1e-6:
            raise ValueError(
                "criterion='thermodynamic'/'vp_drift' needs a symmetric point (a law symmetric about "
                "its mean, so that the mean is a fixed point at every T); this law has none. Its first "
                "speciation is criterion='first_split' (theory 3, first transition of general data)"
            )


def _check_criterion(criterion):
    if not isinstance(criterion, str):
        raise TypeError(f"criterion must be one of {', '.join(map(repr, _CRITERIA[:3]))} (a string), got {criterion!r}")
    if criterion == "pf_ode":
        raise ValueError(
            "criterion='pf_ode' has no critical point: the probability-flow ODE drift has no sign "
            "change at the symmetric point, which stays repulsive (theory section 5.3); use "
            "'thermodynamic' or 'vp_drift'"
        )
    if criterion not in _CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(map(repr, _CRITERIA))}, got {criterion!r}")


@eqx.filter_jit
def _critical_temperature(ensemble, criterion):
    dtype = ensemble_dtype(ensemble)
    lam0 = jnp.linalg.eigvalsh(ensemble.covariance().astype(dtype))[-1]
    top = lam0
    if isinstance(ensemble, FiniteDataset):
        # Cov[y|x] <= max_n |y_n - mean|^2 I: no instability above it (Phi is convex there).
        top = jnp.maximum(top, jnp.max(jnp.sum((ensemble.points - ensemble.mean()[None, :]) ** 2, axis=1)))
    log_top = jnp.log(jnp.maximum(1.05 * top, jnp.finfo(dtype).tiny ** 0.5))
    g = _stability_function(ensemble, criterion)
    log_tc = jax.lax.stop_gradient(_bracket_and_solve(g, jax.lax.stop_gradient(log_top)))
    # Implicit differentiation of the extended (Moore-Spence) system in z = (u, log T, v):
    #   u = m_T(u),   criterion(u, T, v) = 0,   |v|^2 = 1,
    # which is regular at a fold of the symmetric branch; at a symmetric pitchfork it is
    # singular but consistent, and the least-squares tangent solve returns the exact derivative
    # (the symmetric point does not move, du = 0).
    x_sym = ensemble.mean().astype(dtype)
    T_star = jnp.exp(log_tc)
    u_star = _fixed_point(ensemble, T_star, x_sym, jnp.zeros_like(x_sym), 100)
    _, vecs = jnp.linalg.eigh(ensemble.posterior_cov(u_star, T_star))
    z_star = jax.lax.stop_gradient(jnp.concatenate([u_star, log_tc[None], vecs[:, -1]]))
    d = ensemble.dim

    def extended(z):
        u, logT, v = z[:d], z[d], z[d + 1 :]
        T = jnp.exp(logT)
        C = ensemble.posterior_cov(u, T)
        if criterion == "thermodynamic":
            crit = v - C @ v / T
        else:  # (1/2 + (C/T - I)(1 + T)/T) v = 0
            crit = 0.5 * v + (C @ v / T - v) * (1.0 + T) / T
        return jnp.concatenate([u - ensemble.denoiser(u, T), crit, (v @ v - 1.0)[None]])

    def solve(f, z0):
        return z_star

    def tangent_solve(lin, y):
        return jnp.linalg.lstsq(jax.jacfwd(lin)(y), y)[0]

    z = jax.lax.custom_root(extended, z_star, solve, tangent_solve)
    return jnp.where(jnp.isnan(log_tc), jnp.nan, jnp.exp(z[d]))


# ---------------------------------------------------------------------------- exponents
class Exponent(eqx.Module):
    """A critical exponent: the extrapolated local log-derivative, its error estimate, the
    local values it was extrapolated from, and a least-squares log-log fit as a cross-check."""

    value: float
    error: float
    fit: float
    eps: tuple
    local: tuple

    def as_dict(self) -> dict:
        return dict(value=self.value, error=self.error, loglog_fit=self.fit, eps=list(self.eps), local=list(self.local))


def _extrapolate(eps: np.ndarray, local: np.ndarray) -> tuple[float, float]:
    """Extrapolate local exponents E(eps) = a + b eps + c eps^2 to eps -> 0 (Richardson on the
    three smallest eps). The error estimate is the larger of the spread between the linear and
    quadratic extrapolations and the distance of the smallest-eps value from the result (which
    also captures the rounding noise of the solves at the smallest eps)."""
    lin = np.polyfit(eps[-2:], local[-2:], 1)[-1]
    quad = np.polyfit(eps[-3:], local[-3:], 2)[-1]
    err = max(abs(quad - lin), abs(local[-1] - quad))
    return float(quad), float(err + 8 * np.finfo(float).eps * (1 + abs(quad)))


def _exponent(eps, local, fit_x, fit_y, sign=1.0):
    eps, local = np.asarray(eps, float), np.asarray(local, float)
    value, err = _extrapolate(eps, local)
    slope = float(np.polyfit(np.log(fit_x), np.log(fit_y), 1)[0]) * sign
    return Exponent(value=value, error=err, fit=slope, eps=tuple(eps.tolist()), local=tuple(local.tolist()))


@eqx.filter_jit
def _exponent_data(ensemble, Tc, T_below, T_above, etas, start, mean, v):
    """Everything ``critical_exponents`` differentiates, in one compiled function (module
    level, arrays as arguments: a second call with the same shapes reuses the compilation).

    For each T of a branch (below T_c from the broken start, above from the mean): the order
    parameter m = (x* - mean).v, chi = v.chi.v and the longitudinal relaxation rate
    r = 1 - v.J.v (J = Cov[y|x*]/T), each with its T-derivative by forward mode through the
    implicit fixed point, and the heat capacity C; on the critical isotherm x*(eta v) at T_c,
    (x* - mean).v and its eta-derivative."""
    zeros = jnp.zeros_like(mean)

    def branch(T, x0):
        def obs(T_):
            x = _fixed_point(ensemble, T_, x0, zeros, 200, _DESCENT_STEPS)
            J = ensemble.posterior_cov(x, T_) / T_
            chi = _linear_response(ensemble, T_, x)[0]
            # Longitudinal rate along the order-parameter axis v (for a continuous symmetry the
            # transverse Goldstone directions relax at rate 0 below T_c and carry no exponent).
            return ((x - mean) @ v, v @ chi @ v, 1.0 - v @ J @ v), x

        (m, chi, r), (dm, dchi, dr), x = jax.jvp(obs, (T,), (jnp.ones_like(T),), has_aux=True)
        x = jax.lax.stop_gradient(x)
        C = -T * _linear_response(ensemble, T, x, heat=True)[1]
        return m, dm, chi, dchi, r, dr, C

    def isotherm(eta):
        x_of = lambda e_: (_fixed_point(ensemble, Tc, start, e_ * v, 200, _DESCENT_STEPS) - mean) @ v  # noqa: E731
        return jax.jvp(x_of, (eta,), (jnp.ones_like(eta),))

    below = jax.vmap(lambda T: branch(T, start))(T_below)
    above = jax.vmap(lambda T: branch(T, mean))(T_above)
    return below, above, jax.vmap(isotherm)(etas)


_MAX_EPS = 64  # reduced distances at most (each is two fixed-point solves and their derivatives)


def _check_eps(eps) -> np.ndarray:
    """eps: 3 to 64 distinct reduced distances |T - T_c|/T_c in (0, 1), sorted decreasing."""
    what = f"a sequence of 3 to {_MAX_EPS} distinct reduced distances |T - T_c|/T_c in (0, 1)"
    if isinstance(eps, (str, bytes)) or not isinstance(eps, (tuple, list, np.ndarray, jax.Array)):
        raise TypeError(f"eps must be {what}, got {type(eps).__name__} {eps!r}")
    if any(isinstance(e, (bool, np.bool_, str, bytes)) or e is None for e in np.asarray(eps, dtype=object).ravel()):
        raise TypeError(f"eps must be {what}, got {eps!r}")
    check_real("eps", np.asarray(eps), what=what)
    arr = np.asarray(eps, dtype=float)
    if arr.ndim != 1 or not 3 <= arr.size <= _MAX_EPS:
        raise ValueError(f"eps must be {what}, got shape {arr.shape}")
    if not (np.all(np.isfinite(arr)) and np.all(arr > 0) and np.all(arr < 1)) or len(set(arr.tolist())) != arr.size:
        raise ValueError(f"eps must be {what}, got {arr.tolist()}")
    return np.sort(arr)[::-1]


def critical_exponents(
    ensemble: AbstractEnsemble,
    *,
    eps: tuple = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6),
) -> dict:
    """Mean-field critical exponents by autodiff through the implicit fixed point (theory section 4).

    With T_c = ``critical_temperature(ensemble)`` and reduced distances eps = |T - T_c|/T_c, each
    exponent is a local log-derivative evaluated exactly by automatic differentiation and
    extrapolated to eps -> 0 (error: spread of the linear and quadratic extrapolations), with a
    least-squares log-log fit over the same eps as a cross-check:

    - beta: m*(T) ~ (T_c - T)^beta, beta_eff = -(T_c - T) m*'/m* (order parameter, broken branch);
    - gamma (T > T_c) and gamma_prime (T < T_c): chi ~ |T - T_c|^-gamma with chi = v.chi.v on the
      principal axis v, and the amplitude ratio chi(T_c + dT)/chi(T_c - dT) (mean field: 2);
    - delta: the critical isotherm x*(h) ~ h^(1/delta) at T_c, delta_eff = h/(x* dx*/dh), and the
      amplitude x*/h^(1/3) (two deltas: 3^(1/3));
    - heat_capacity_jump: C(T_c^-) - C(T_c^+) of the equilibrium free energy (two deltas: 3/2);
    - z_nu: the relaxation rate of the linearised generative drift along the order-parameter
      axis, 1 - v.Cov[y|x*].v/T (the Hessian of Phi_T at the stable fixed point along v),
      ~ |T - T_c|^(z nu), z nu = 1 (critical slowing down), on both sides.

    Two deltas: beta = 1/2, gamma = gamma' = 1, delta = 3, jump 3/2.

    **Precision.** The log-derivatives are evaluated down to eps = 1e-6, where float32 has no
    digits left (beta came out as 2.7e-7 in float32), so the computation always runs in float64:
    with JAX's default float32 the ensemble is cast to float64 inside ``jax.enable_x64(True)``.

    ``eps`` (keyword-only): 3 to 64 distinct reduced distances in (0, 1). Eager only (the
    extrapolation runs in NumPy); raises a ValueError when the ensemble has no thermodynamic T_c.

    **Returns:** a dict of ``Exponent`` records and amplitudes (see ``Exponent.as_dict``).
    """
    _check_ensemble(ensemble)
    eps = _check_eps(eps)
    return _in_float64(_critical_exponents, ensemble, eps)


def _critical_exponents(ensemble, eps):
    dtype = ensemble_dtype(ensemble)
    Tc = float(critical_temperature(ensemble))
    if not math.isfinite(Tc):
        raise ValueError("this ensemble has no thermodynamic critical temperature (critical_temperature is NaN)")
    lam = principal_axis(ensemble)[0]
    start, v = _broken_start(ensemble)
    mean = ensemble.mean().astype(dtype)
    T_below = jnp.asarray(Tc * (1 - eps), dtype)
    T_above = jnp.asarray(Tc * (1 + eps), dtype)
    etas = jnp.asarray(lam * eps ** 1.5, dtype)  # critical-isotherm fields, small enough for the asymptotic regime
    below, above, (x, dx) = _exponent_data(
        ensemble, jnp.asarray(Tc, dtype), T_below, T_above, etas, start.astype(dtype), mean, v.astype(dtype)
    )
    m, dm, chi_b, dchi_b, r_b, dr_b, c_b = map(np.asarray, below)
    _, _, chi_a, dchi_a, r_a, dr_a, c_a = map(np.asarray, above)
    dT = Tc * eps
    out = {"T_c": Tc}
    out["beta"] = _exponent(eps, -dT * dm / m, eps, m)
    out["gamma"] = _exponent(eps, -dT * dchi_a / chi_a, eps, chi_a, sign=-1.0)
    out["gamma_prime"] = _exponent(eps, dT * dchi_b / chi_b, eps, chi_b, sign=-1.0)
    ratio = chi_a / chi_b
    r_val, r_err = _extrapolate(eps, ratio)
    out["amplitude_ratio"] = dict(value=r_val, error=r_err, local=ratio.tolist())
    jump = c_b - c_a
    j_val, j_err = _extrapolate(eps, jump)
    out["heat_capacity_jump"] = dict(value=j_val, error=j_err, local=jump.tolist())
    out["z_nu_above"] = _exponent(eps, dT * dr_a / r_a, eps, r_a)
    out["z_nu_below"] = _exponent(eps, -dT * dr_b / r_b, eps, r_b)

    # Critical isotherm at T_c: x*(h) along v for h = eta v.
    x, dx = np.asarray(x), np.asarray(dx)
    etas = np.asarray(etas)
    # delta_eff = d log h / d log x* = x* / (h dx*/dh); the log-log fit regresses log h on log x*.
    out["delta"] = _exponent(eps**1.5, x / (etas * dx), x, etas)
    amp = x / np.cbrt(etas)
    a_val, a_err = _extrapolate(eps ** 1.5, amp)
    out["isotherm_amplitude"] = dict(value=a_val, error=a_err, local=amp.tolist())
    return out
