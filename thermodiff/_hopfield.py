"""Associative memory: the modern Hopfield network of a finite dataset (theory section 8).

For the empirical law of N stored patterns y_n (weights pi_n), the Landau free energy
Phi_T(x) = |x|^2/2 - T log Z_T(x) is the modern (dense) Hopfield energy at inverse temperature
beta = 1/T,

    E_T(x) = |x|^2/2 - T logsumexp_n(log(N pi_n) + (x.y_n - |y_n|^2/2)/T) = Phi_T(x) - T log N,

and its gradient step x <- x - grad E_T(x) = m_T(x) = sum_n softmax_n(...) y_n is the Hopfield
retrieval update, which is exactly the optimal denoiser (Tweedie). Stored memories are the stable
fixed points x* = m_T(x*) whose posterior is dominated by one pattern; spurious memories are the
other stable fixed points (mixtures of patterns). A fixed point is stable when the Hessian of
Phi_T, I - Cov[y|x*]/T, is positive definite. The REM threshold of ``_condensation``, read as a
critical number of patterns N_c = (1 + s^2/T)^{d/2}, is the log-capacity log(N_c)/d =
log(1 + s^2/T)/2 for retrieval from noisy cues.

Everything that acts on one state streams over the patterns (``_posterior_stream``) and is
jittable and vmappable over x and T.

References: H. Ramsauer et al., "Hopfield networks is all you need" (arXiv:2008.02217);
L. Ambrogioni, "In search of dispersed memories" (arXiv:2309.17290).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Key, RealScalarLike, Scalar, Vector
from ._ensembles._base import as_float_array
from ._ensembles._finite import FiniteDataset
from ._hierarchy import basins
from ._posterior_stream import (
    _as_T,
    _as_dataset,
    _as_x,
    _check_T,
    _check_at_least,
    _check_dim_state,
    _check_int,
    _check_positive,
    _energy_jit,
    _nan_unless,
    _stream,
    _stream_jit,
    _weight_margin,
)
from ._validate import (
    check_finite,
    check_key,
    check_temperature,
    concrete,
)


# ============================================================================ Hopfield (theory 8)
def hopfield_energy(patterns, x: Vector, T: RealScalarLike) -> Scalar:
    """The modern Hopfield energy of a state x, the Landau free energy up to a constant (theory 8).

        E_T(x) = |x|^2/2 - T logsumexp_n(log(N pi_n) + (x.y_n - |y_n|^2/2)/T)
               = Phi_T(x) - T log N,

    with Phi_T the Landau free energy of the empirical law (theory sections 2, 3.2), so E_T and
    Phi_T have the same gradient, minima and Hessian I - Cov[y|x]/T. For uniform weights pi_n =
    1/N the sum is the plain logsumexp_n((x.y_n - |y_n|^2/2)/T) (Ramsauer et al.'s energy at
    beta = 1/T, with the pattern-norm bias -|y_n|^2/2 that makes it the diffusion free energy).
    Evaluated in a cancellation-free form (|x - y*|^2/2 - T log(pi* N) - T log sum_n w_n/w*,
    y* the dominant pattern), accurate in float32 down to small T; streams over the patterns.

    **Arguments:**
    - ``patterns``: (N, d) array of stored patterns, or a ``FiniteDataset`` (weights pi_n).
    - ``x``: the state, shape (d,).
    - ``T``: temperature > 0 (1/beta), a scalar.

    **Returns:** the scalar E_T(x). Differentiable: ``jax.grad`` gives x - ``hopfield_update``.
    Under jit: an invalid T or a non-finite x gives NaN.
    """
    ds = _as_dataset(patterns)
    _check_dim_state(ds, x)
    _check_T(T)
    return _energy_jit(ds, _as_x(x), _as_T(T))


def hopfield_update(patterns, x: Vector, T: RealScalarLike) -> Vector:
    """One Hopfield retrieval step x -> sum_n softmax_n(log pi_n + (x.y_n - |y_n|^2/2)/T) y_n.

    This is the posterior mean m_T(x) = E[y | x], the optimal denoiser of the empirical law, equal
    to ``FiniteDataset.denoiser`` to rounding error (theory section 8), and the gradient step
    x - grad E_T(x) of ``hopfield_energy`` with unit step (a concave-convex procedure that
    decreases E_T monotonically). Streams over the patterns with an online log-sum-exp.

    **Arguments:**
    - ``patterns``: (N, d) array or ``FiniteDataset``.
    - ``x``: the state (query), shape (d,).
    - ``T``: temperature > 0 (1/beta), a scalar.

    **Returns:** the updated state, shape (d,). Jittable, vmappable over x and T.
    Under jit: an invalid T or a non-finite x gives NaN.
    """
    ds = _as_dataset(patterns)
    _check_dim_state(ds, x)
    _check_T(T)
    return _stream_jit(ds, _as_x(x), _as_T(T), jnp.asarray(-1)).mean


class HopfieldFixedPoints(NamedTuple):
    """The stable fixed points (memories) of the Hopfield retrieval at one temperature (theory section 8;
T is the VE-equivalent noise variance, beta = 1/T).

    - ``memories``: (K, d) the distinct minima of E_T reached from the starts.
    - ``stored``: (K,) bool, a stored memory: one pattern holds posterior weight > ``threshold``
      there (the memory retrieves that pattern); otherwise spurious (a mixture state).
    - ``pattern``: (K,) index of the pattern with the largest posterior weight.
    - ``max_weight``: (K,) that weight; ``participation_ratio``: (K,) 1/sum_n w_n^2.
    - ``lambda_min``: (K,) smallest eigenvalue of the Hessian I - Cov[y|x]/T at each memory.
    - ``stable``: (K,) ``lambda_min > stable_tol`` (strict minimum).
    - ``basin_fraction``: (K,) fraction of the random starts that end at each memory.
    - ``pattern_labels``: (N,) memory reached from each stored pattern; ``start_labels``: (S,)
      memory reached from each random start; ``starts``: (S, d) the random starts.
    - ``retrieved``: (N,) bool, pattern n's own descent ends at a stable stored memory of n.
    - ``converged``: (N + S,) whether each descent converged; ``temperature``: T.
    """

    memories: np.ndarray
    stored: np.ndarray
    pattern: np.ndarray
    max_weight: np.ndarray
    participation_ratio: np.ndarray
    lambda_min: np.ndarray
    stable: np.ndarray
    basin_fraction: np.ndarray
    pattern_labels: np.ndarray
    start_labels: np.ndarray
    starts: np.ndarray
    retrieved: np.ndarray
    converged: np.ndarray
    temperature: float

    @property
    def n_stored(self) -> int:
        """Number of stable stored memories."""
        return int(np.sum(self.stored & self.stable))

    @property
    def n_spurious(self) -> int:
        """Number of stable spurious (mixture) memories."""
        return int(np.sum(~self.stored & self.stable))


@eqx.filter_jit
def _memory_props(ds, X, T):
    def one(x):
        st = _stream(ds, x, T)
        C = ds.posterior_cov(x, T)
        lam = jnp.linalg.eigvalsh(jnp.eye(ds.dim, dtype=x.dtype) - 0.5 * (C + C.T) / T)[0]
        return jnp.exp(st.log_w_max), st.argmax, 1.0 / st.sum_w2, lam

    return jax.vmap(one)(X)


def hopfield_fixed_points(
    patterns,
    T: RealScalarLike,
    *,
    key: Key | None = None,
    n_starts: int = 256,
    starts=None,
    threshold: float = 0.5,
    stable_tol: float = 1e-8,
    tol: float | None = None,
) -> HopfieldFixedPoints:
    """The memories of the Hopfield network at temperature T: stored and spurious (theory section 8).

    Every stored pattern and every random start descends E_T (equivalently Phi_T) with the
    retrieval update x <- m_T(x) followed by a safeguarded Newton polish (``thermodiff.descend``),
    so each ends at a minimum: an attractor of the retrieval dynamics (saddles are not reached).
    End points closer than ``tol`` are one memory (``thermodiff.basins``). Each memory is then
    classified: stable if the Hessian I - Cov[y|x*]/T is positive definite (smallest eigenvalue >
    ``stable_tol``); stored if one pattern carries posterior weight > ``threshold`` there
    (default 1/2: the memory retrieves that pattern; a margin of 64 sqrt(eps) keeps the
    symmetric two-pattern mixture, weight 1/2 exactly, spurious under rounding), spurious
    otherwise (a mixture of patterns, e.g. the single memory at the data mean at high T).
    Basins: the fraction of the random starts that fall into each memory. Host-side (the number
    of memories is data dependent); the descents are one jitted vmap.

    **Arguments:**
    - ``patterns``: (N, d) array or ``FiniteDataset``.
    - ``T``: temperature > 0.
    - ``key``: PRNG key for the random starts (needed unless ``starts`` is given or
      ``n_starts = 0``).
    - ``n_starts``: number of random starts drawn from N(mean, (v + T) I), v = tr Cov/d the mean
      per-coordinate data variance: the Gaussian with the first two moments of the noisy law p_T.
    - ``starts``: (S, d) explicit random starts instead (then ``key``/``n_starts`` are unused).
    - ``threshold``: posterior weight above which a memory counts as stored, in [0.5, 1).
    - ``stable_tol``: Hessian eigenvalue above which a memory counts as stable (>= 0).
    - ``tol``: merge distance of end points (default as ``thermodiff.basins``).

    **Returns:** a ``HopfieldFixedPoints`` (NumPy arrays; see its docstring).
    """
    if key is not None:
        check_key("key", key)
    ds = _as_dataset(patterns)
    _check_T(T)
    T = float(np.asarray(T))
    if not isinstance(threshold, (int, float, np.floating)) or not 0.5 <= threshold < 1.0:
        raise ValueError(
            f"threshold must be a float in [0.5, 1) (posterior weight of a stored memory), got {threshold!r}"
        )
    if not isinstance(stable_tol, (int, float, np.floating)) or not np.isfinite(stable_tol) or stable_tol < 0:
        raise ValueError(f"stable_tol must be a finite float >= 0, got {stable_tol!r}")
    d = ds.dim
    dtype = ds.chunks.dtype
    P = np.asarray(ds.points)
    if starts is None:
        n_starts = _check_int("n_starts", n_starts, 0)
        if n_starts > 0:
            if key is None:
                raise ValueError("key must be a PRNG key to draw the random starts (or pass starts=, or n_starts=0)")
            mean = np.asarray(ds.mean())
            v = float(np.trace(np.asarray(ds.covariance()))) / d
            z = np.asarray(jax.random.normal(key, (n_starts, d), dtype))
            R = mean[None, :] + math.sqrt(v + T) * z
        else:
            R = np.zeros((0, d), P.dtype)
    else:
        R = np.asarray(as_float_array("starts", starts))
        if R.ndim != 2 or R.shape[1] != d:
            raise ValueError(f"starts must have shape (S, {d}), got shape {R.shape}")
        check_finite("starts", R)
    N = P.shape[0]
    all_starts = np.concatenate([P, R.astype(P.dtype)])
    b = basins(ds, T, all_starts, tol=tol)
    K = b.minima.shape[0]
    Kp = 1 << max(0, (K - 1).bit_length())  # pad to a power of two: few compiled shapes
    Mp = np.concatenate([b.minima, np.repeat(b.minima[-1:], Kp - K, axis=0)])
    props = _memory_props(ds, jnp.asarray(Mp, dtype), jnp.asarray(T, dtype))
    wmax, arg, pr, lam = (np.asarray(a)[:K] for a in props)
    stored = wmax > threshold + _weight_margin(dtype)
    stable = lam > stable_tol
    start_labels = b.labels[N:]
    S = start_labels.shape[0]
    basin = np.bincount(start_labels, minlength=K) / S if S else np.full(K, np.nan)
    pl = b.labels[:N]
    retrieved = stored[pl] & stable[pl] & (arg[pl] == np.arange(N))
    return HopfieldFixedPoints(
        memories=b.minima,
        stored=stored,
        pattern=arg.astype(np.int64),
        max_weight=wmax,
        participation_ratio=pr,
        lambda_min=lam,
        stable=stable,
        basin_fraction=basin,
        pattern_labels=pl,
        start_labels=start_labels,
        starts=R,
        retrieved=retrieved,
        converged=b.converged,
        temperature=T,
    )


def hopfield_capacity_prediction(dim, T, variance=1.0) -> Array:
    """The critical number of patterns N_c = (1 + s^2/T)^{d/2} (theory sections 8 and 9).

    The log-capacity log(N_c)/d = log(1 + s^2/T)/2 of a Hopfield network at temperature T storing
    N(0, s^2 I) patterns in d dimensions: the REM condensation threshold of ``rem_entropy``
    (equivalently N_c solves ``collapse_temperature(N_c, d, s^2) = T``). For N < N_c the posterior
    at a noisy cue x = y_n + sqrt(T) z condenses on y_n and retrieval returns pattern n; above,
    the cue's posterior spreads over ~N/N_c patterns. To leading order in d the median cue is
    retrieved exactly at N = N_c (``hopfield_capacity(..., cue="noisy")`` measures it).

    **Arguments:** ``dim`` (d >= 1), ``T`` (> 0), ``variance`` (s^2 > 0); scalars or arrays
    (broadcast; vmappable).

    **Returns:** N_c (float array; may overflow to inf in float32 for large d).
    Under jit: arguments out of their ranges give NaN.
    """
    _check_at_least("dim", dim, 1, "dimension d")
    check_temperature(T)
    _check_positive("variance", variance, "pattern variance s^2")
    dim, T, variance = (jnp.asarray(a, dtype=jnp.result_type(float)) for a in (dim, T, variance))
    return _nan_unless(jnp.exp(0.5 * dim * jnp.log1p(variance / T)), d=dim, T=T, s2=variance)


_RETRIEVE_STEPS = 100  # retrieval updates at most before the Newton polish (hopfield_capacity)
_NEWTON_STEPS = 6  # safeguarded Newton steps on x - m_T(x) = 0 after the retrieval updates


def _retrieve(ds, x0, T, tol):
    """Iterate the retrieval update x <- m_T(x) (a monotone descent of E_T) until the step is
    below ``tol`` or ``_RETRIEVE_STEPS`` updates, then polish with ``_NEWTON_STEPS`` safeguarded
    Newton steps on G(x) = x - m_T(x) (Jacobian I - Cov[y|x]/T; a step is taken only if it lowers
    |G| and does not raise E_T), which converge quadratically where the updates crawl (near a
    loss of stability).
    Returns the end point and whether |G| < tol there."""
    eye = jnp.eye(x0.shape[0], dtype=x0.dtype)

    def resid_energy(x):
        st = _stream(ds, x, T)
        return x - st.mean, st.anchor + T * st.log_w_max  # G(x) and E_T(x) + const

    def cond(s):
        k, _, step = s
        return (k < _RETRIEVE_STEPS) & (step > tol)

    def body(s):
        k, x, _ = s
        g, _ = resid_energy(x)
        return k + 1, x - g, jnp.sqrt(jnp.sum(g * g))

    _, x, _ = jax.lax.while_loop(cond, body, (jnp.asarray(0), x0, jnp.asarray(jnp.inf, x0.dtype)))

    def newton(_, x):
        # accepted only if it lowers |G| without raising E_T: it polishes the minimum the updates
        # were descending into and cannot climb to a saddle (another root of G)
        g, e = resid_energy(x)
        C = ds.posterior_cov(x, T)
        x_new = x - jnp.linalg.solve(eye - C / T, g)
        g_new, e_new = resid_energy(x_new)
        e_tol = 64 * jnp.finfo(x.dtype).eps * (jnp.abs(e) + jnp.sum(x * x))
        ok = jnp.all(jnp.isfinite(x_new)) & (jnp.sum(g_new * g_new) < jnp.sum(g * g)) & (e_new <= e + e_tol)
        return jnp.where(ok, x_new, x)

    x = jax.lax.fori_loop(0, _NEWTON_STEPS, newton, x)
    g, _ = resid_energy(x)
    return x, jnp.sqrt(jnp.sum(g * g)) <= tol


def _capacity_one(G, Z, n, T, variance, cue_noise, d: int, n_max: int):
    """Retained patterns (count) among n of N(0, s^2 I) patterns (padded to n_max) at T, from
    standard normal draws G (patterns) and Z (cue noise), both (n_max, d). cue_noise: 1 for
    noisy cues y_n + sqrt(T) z, 0 for the patterns themselves (an array: one compilation)."""
    dtype = G.dtype
    Y = jnp.sqrt(variance) * G
    mask = jnp.arange(n_max) < n
    ds = FiniteDataset(Y, weights=mask.astype(dtype))
    X0 = Y + (cue_noise * jnp.sqrt(T)) * Z
    tol = (1e-7 if dtype == jnp.float64 else 1e-4) * jnp.sqrt(variance * d)
    eye = jnp.eye(d, dtype=dtype)

    def one(x0, i):
        x, ok = _retrieve(ds, x0, T, tol)
        st = _stream(ds, x, T)
        l_i = ds.log_weights[i] + (x @ Y[i] - 0.5 * Y[i] @ Y[i]) / T
        w_self = jnp.exp(l_i - st.lse)
        C = ds.posterior_cov(x, T)
        lam = jnp.linalg.eigvalsh(eye - 0.5 * (C + C.T) / T)[0]
        return ok & (lam > 0) & (w_self > 0.5 + _weight_margin(dtype))

    ret = jax.vmap(one)(X0, jnp.arange(n_max))
    return jnp.sum(ret & mask)


@eqx.filter_jit
def _capacity_impl(key, ns, Ts, variance, cue_noise, d, n_max, n_trials):
    # ns: (S,); Ts: (P,) -> fractions (S, P). The random draws are made once, outside the vmaps
    # (one threefry call: it dominates the compile time otherwise).
    S = ns.shape[0]
    G, Z = jax.random.normal(key, (2, S, n_trials, n_max, d), Ts.dtype)

    def one(g, z, n, T):
        return _capacity_one(g, z, n, T, variance, cue_noise, d, n_max)

    # one flat vmap over (N, trial, T) lanes: much cheaper to compile than nested vmaps
    P = Ts.shape[0]
    shape = (S, n_trials, P)
    g = jnp.broadcast_to(G[:, :, None], shape + G.shape[2:]).reshape((-1,) + G.shape[2:])
    z = jnp.broadcast_to(Z[:, :, None], shape + Z.shape[2:]).reshape((-1,) + Z.shape[2:])
    n = jnp.broadcast_to(ns[:, None, None], shape).reshape(-1)
    T = jnp.broadcast_to(Ts[None, None, :], shape).reshape(-1)
    counts = jax.vmap(one)(g, z, n, T).reshape(shape)
    return jnp.sum(counts, axis=1) / (n_trials * ns[:, None].astype(Ts.dtype))


def hopfield_capacity(
    key: Key,
    n_patterns,
    dim: int,
    T,
    variance: RealScalarLike = 1.0,
    *,
    cue: str = "noisy",
    n_trials: int = 1,
    n_max: int | None = None,
) -> Array:
    """Measured retrieval capacity: the fraction of stored N(0, s^2 I) patterns that are retrieved
    as stable memories, for each number of patterns and temperature (theory sections 8 and 9).

    For each N in ``n_patterns`` and each trial, N patterns y_n ~ N(0, s^2 I_d) are stored. Each
    pattern's retrieval starts at its cue x_0 and iterates the retrieval update x <- m_T(x) (a
    monotone descent of E_T) until the step falls below 1e-7 sqrt(d s^2) (float32: 1e-4), at most
    100 updates, then takes up to 6 safeguarded Newton steps on x = m_T(x). Pattern n counts as
    retained when this converged (|x - m_T(x)| below the same tolerance) to a strict minimum x*
    (Hessian I - Cov[y|x*]/T positive definite: a stable fixed point) where pattern n holds
    posterior weight w_n(x*, T) > 1/2 + 64 sqrt(eps) (the memory is near y_n, not a mixture or
    another pattern; the margin keeps the symmetric two-pattern mixture out). Cues:

    - ``"noisy"`` (default): x_0 = y_n + sqrt(T) z, a draw of the noisy law p_T given y_n. Theory
      (``hopfield_capacity_prediction``): the retained fraction crosses 1/2 at the log-capacity
      log(N_c)/d = log(1 + s^2/T)/2, the REM condensation threshold of theory section 9; the width
      of the transition in log N is ~ sqrt(d s^2/(s^2 + T)) (the fluctuation of the cue's log
      self-weight). Measured at d = 8, s = 1: the 1/2-crossing lies at 0.6-1.1 N_c for T = 1, 2.
    - ``"pattern"``: x_0 = y_n, i.e. whether the stored pattern itself remains a stable fixed
      point near itself. Stored patterns outlive noisy cues: to leading order in d the self-weight
      at a typical pattern (|y_n|^2 = d s^2) stays above 1/2 up to log(N)/d = [log(1 + s^2/T) +
      s^2/(s^2 + T)]/2, minus sub-exponential (log d) corrections from the stability condition.
      Measured at d = 8: crossing at 0.7-1.1 N_c (T = 1, 2); at d = 12, T = 1 still 87% retained
      at N = N_c = 64: the crossing moves above N_c as d grows. N = 2 is exact: the pair is two
      deltas with T_c = |y_1 - y_2|^2/4 (theory 3.1).

    All sizes are padded to ``n_max`` patterns (zero weight on the padding), so the sweep over N,
    trials and T is one ``jit`` of one ``vmap`` over all (N, trial, T) lanes; the same patterns are used at every T
    (common random numbers), independent ones for each N and trial. Cost ~ len(N) x trials x
    len(T) x n_max^2 x d per retrieval step.

    **Arguments:**
    - ``key``: PRNG key.
    - ``n_patterns``: int or 1-D array of ints >= 1, the numbers of stored patterns N.
    - ``dim``: dimension d >= 1 (static).
    - ``T``: temperature > 0, scalar or 1-D array.
    - ``variance``: pattern variance s^2 > 0.
    - ``cue``: ``"noisy"`` or ``"pattern"`` (see above).
    - ``n_trials``: independent pattern sets per N (>= 1); the fraction pools them.
    - ``n_max``: padding size (static); default max(n_patterns) (required if n_patterns is traced).

    **Returns:** retained fractions, shape ``np.shape(n_patterns) + np.shape(T)``.
    """
    check_key("key", key)
    dim = _check_int("dim", dim, 1)
    n_trials = _check_int("n_trials", n_trials, 1)
    if cue not in ("noisy", "pattern"):
        raise ValueError(f"cue must be 'noisy' or 'pattern', got {cue!r}")
    _check_at_least("n_patterns", n_patterns, 1, "number of stored patterns N")
    check_temperature(T)
    _check_positive("variance", variance, "pattern variance s^2")
    if np.ndim(variance) != 0:
        raise ValueError(f"variance must be a scalar, got shape {np.shape(variance)}")
    if np.ndim(n_patterns) > 1 or np.ndim(T) > 1:
        raise ValueError(
            f"n_patterns and T must be scalars or 1-D arrays, got shapes {np.shape(n_patterns)} and {np.shape(T)}"
        )
    n_arr = concrete(n_patterns)
    if n_max is None:
        if n_arr is None:
            raise ValueError("n_max must be given (an integer >= max(n_patterns)) when n_patterns is traced")
        n_max = int(np.max(n_arr))
    n_max = _check_int("n_max", n_max, 1)
    if n_arr is not None:
        if not np.all(np.asarray(n_arr) == np.round(n_arr)):
            raise ValueError(f"n_patterns must be integers >= 1, got {n_arr!r}")
        if np.max(n_arr) > n_max:
            raise ValueError(f"n_max must be >= max(n_patterns) = {int(np.max(n_arr))}, got {n_max}")
    dtype = jnp.result_type(float)
    ns = jnp.atleast_1d(jnp.asarray(n_patterns)).astype(jnp.int32)
    Ts = jnp.atleast_1d(jnp.asarray(T, dtype))
    cue_noise = jnp.asarray(1.0 if cue == "noisy" else 0.0, dtype)
    out = _capacity_impl(key, ns, Ts, jnp.asarray(variance, dtype), cue_noise, dim, n_max, n_trials)
    return out.reshape(np.shape(n_patterns) + np.shape(T))


__all__ = [
    "HopfieldFixedPoints",
    "hopfield_capacity",
    "hopfield_capacity_prediction",
    "hopfield_energy",
    "hopfield_fixed_points",
    "hopfield_update",
]
