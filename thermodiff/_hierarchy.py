"""Hierarchies of symmetry breaking: every minimum of Phi_T followed as T decreases (theory 2, 3.2, 8).

The stable fixed points x* = m_T(x*) of the denoiser are the minima of the Landau free energy
Phi_T(x) = |x|^2/2 - T log Z_T(x) (theory section 2). For a finite dataset Phi_T is the modern
Hopfield energy and m_T its retrieval update (theory section 8). Above T = max_n |y_n - mean|^2 the
Hessian I - Cov[y|x]/T is positive definite everywhere, so there is one minimum; as T decreases the
minima split (pitchforks of a symmetric point, saddle-nodes generically), and as T -> 0 every
training point becomes its own minimum (memorization, theory section 3.2). This module follows that
cascade. Two things the scans show that a symmetric-branch analysis does not: symmetric data can
split first by a mirror pair of saddle-nodes away from the symmetric point (above the temperature
where the symmetric point loses stability), and the cascade need not be monotone (a symmetric
phase can be re-entrant, minima can annihilate as T decreases).

How the minima are found (``descend``). The iteration x <- m_T(x) is a concave-convex procedure
(mean shift / Hopfield update): it is gradient descent on Phi_T with unit step, decreases Phi_T
monotonically and converges to a minimum from almost every start. It is slow near a bifurcation
(its rate is 1 - lambda_min(I - Cov/T)), so after at most ``_N_CCCP`` of those steps a safeguarded
saddle-free Newton method takes over: Newton steps with the Hessian eigenvalues replaced by their
absolute values, a push along negative curvature (so a start that sits exactly on a saddle, e.g. on
a symmetry plane, falls off it, always to the same side), a step cap, and a line search that only
accepts points lowering Phi_T (or, at rounding level, lowering |grad Phi_T|), with the mean-shift
step as the fallback. The basin of a start is the minimum this procedure reaches; it is the basin
of the mean-shift dynamics except for starts within rounding of a separatrix.

Which starts go where (``basins``) is a partition of the starts; ``bifurcation_tree`` scans it on a
log grid of temperatures, builds the nested hierarchy (the meet of the partitions from the top),
refines every split by bisection in T (all splits in parallel, one representative start per
sub-branch, dividing a bracket whenever it holds a cascade of several splits, so the number of
rounds is ~log2(grid step / rtol) whatever the depth of the tree), and returns the tree.
``first_split`` / ``first_split_temperature`` find the highest bifurcation (the first speciation of
general data, theory section 3 "First transition of general data"), polish it on the Moore-Spence
system and differentiate it implicitly.

Reference: Ambrogioni, "The statistical thermodynamics of generative diffusion models"
(arXiv:2310.17467), section on hierarchies of symmetry breaking; Raya & Ambrogioni (arXiv:2305.19693).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, RealScalarLike, Scalar, Vector
from ._ensembles._base import AbstractEnsemble, as_float_array, ensemble_dtype
from ._ensembles._finite import FiniteDataset
from ._ensembles._mixture import GaussianMixture
from ._ensembles._two_deltas import TwoDeltas
from ._validate import (
    check_finite,
    check_int,
    check_real,
    check_temperature,
    check_temperature_scalar,
    concrete,
    guard_temperature,
    is_concrete,
)

# Descent settings (see the module docstring).
_N_CCCP = 40  # mean-shift steps at most before Newton takes over
_N_NEWTON = 100  # safeguarded Newton steps at most
_ALPHAS = (1.0, 0.25, 1.0 / 16, 1.0 / 64)  # line-search fractions of the (capped) Newton step
_LAM_TOL = 1e-9  # Hessian eigenvalues >= -_LAM_TOL count as a minimum (degenerate allowed)
_MAX_BATCH = 512  # starts per compiled call of the descent kernel

_SUPPORTED = (FiniteDataset, GaussianMixture, TwoDeltas)


# ============================================================================ validation helpers
def _check_ensemble(ensemble, *, supported: bool) -> None:
    if supported:
        if not isinstance(ensemble, _SUPPORTED):
            raise TypeError(
                "ensemble must be a FiniteDataset, GaussianMixture or TwoDeltas (ensembles with "
                f"isolated minima and natural starts), got {type(ensemble).__name__}"
            )
    elif not isinstance(ensemble, AbstractEnsemble):
        raise TypeError(f"ensemble must be an AbstractEnsemble, got {type(ensemble).__name__}")


def _check_starts(starts, dim: int, dtype):
    arr = as_float_array("starts", starts)
    if arr.ndim == 1 and dim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(
            f"starts must have shape (S, {dim}) (S start points in the ensemble's {dim}-D space), "
            f"got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] < 1:
        raise ValueError(f"starts must contain at least one start point (S >= 1), got shape {tuple(arr.shape)}")
    check_finite("starts", arr)
    return arr.astype(dtype)


def _check_positive_float(name: str, value, allow_none: bool = True):
    if value is None and allow_none:
        return None
    check_real(name, value, what="a finite scalar > 0")
    arr = concrete(value)
    if arr is None:
        return value
    if arr.ndim != 0 or not np.isfinite(arr) or not arr > 0:
        raise ValueError(f"{name} must be a finite scalar > 0 (allowed range: {name} > 0), got {value!r}")
    return float(arr)


def _check_int(name: str, value, lo: int, hi: int = 10**5):
    """An integer in [lo, hi]: temperatures and starts each cost a batched descent."""
    return check_int(name, value, lo, hi)


def _check_rtol(rtol):
    if not isinstance(rtol, (int, float, np.floating)) or not (0 < rtol < 0.5):
        raise ValueError(f"rtol must be a float in (0, 0.5) (relative tolerance on T), got {rtol!r}")
    return float(rtol)


# ============================================================================ scales and starts
def _scale2(ensemble) -> Scalar:
    """R^2: a data-scale squared. For a finite dataset (and two deltas) max_n |y_n - mean|^2, the
    temperature above which Phi_T is convex; for a mixture max_k |mu_k - mean|^2 + max_k s_k^2."""
    if isinstance(ensemble, FiniteDataset):
        c = ensemble.points - ensemble.mean()[None, :]
        sq = jnp.sum(c * c, axis=1)
        return jnp.max(jnp.where(ensemble.log_weights > -1e29, sq, 0.0))
    if isinstance(ensemble, GaussianMixture):
        c = ensemble.means - ensemble.mean()[None, :]
        sq = jnp.sum(c * c, axis=1)
        return jnp.max(jnp.where(ensemble.log_weights > -1e29, sq, 0.0)) + jnp.max(ensemble.variances)
    if isinstance(ensemble, TwoDeltas):
        return jnp.sum(ensemble.mu**2)
    return jnp.trace(ensemble.covariance())


def _scale(ensemble) -> Scalar:
    """The length that tolerances are relative to: R, or 1 for a degenerate (one-point) law."""
    r2 = _scale2(ensemble)
    return jnp.where(r2 > 0, jnp.sqrt(jnp.where(r2 > 0, r2, 1.0)), 1.0)


def _merge_rtol(dtype) -> float:
    """Two end points closer than this times the data scale are the same minimum."""
    return max(1e-6, 1e4 * float(jnp.finfo(dtype).eps))


def _natural_starts(ensemble, max_starts: int | None, seed: int):
    """(starts, index into the data or None): the points of a finite dataset (positive weight,
    randomly subsampled to ``max_starts``), the component means of a mixture, +-mu of two deltas."""
    if isinstance(ensemble, FiniteDataset):
        pts = ensemble.points
        lw = concrete(ensemble.log_weights)
        idx = np.arange(ensemble.n_points) if lw is None else np.nonzero(lw > -1e29)[0]
    elif isinstance(ensemble, GaussianMixture):
        pts = ensemble.means
        lw = concrete(ensemble.log_weights)
        idx = np.arange(pts.shape[0]) if lw is None else np.nonzero(lw > -1e29)[0]
    else:  # TwoDeltas
        return jnp.stack([ensemble.mu, -ensemble.mu]), np.arange(2)
    if max_starts is not None and idx.size > max_starts:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(idx, size=max_starts, replace=False))
    return pts[idx], idx


def _default_tmin_factor(ensemble) -> float:
    """t_min = factor * (min distance between distinct starts)^2. Deltas: 1/50 makes every point
    its own minimum (neighbour weights e^-25); mixtures split later (T_c = |mu|^2 - s^2 can be
    small), so they scan further down."""
    return 1e-3 if isinstance(ensemble, GaussianMixture) else 1.0 / 50.0


# ============================================================================ the descent kernel
def _descend_one(ensemble, x0, T, scale, n_cccp: int, n_newton: int):
    """Mean-shift (CCCP) steps, then safeguarded saddle-free Newton, from one start at one T.

    Returns (x, lambda_min of the Hessian I - Cov/T at x, converged, iterations), iterations =
    mean-shift steps + 1000 * Newton steps (a diagnostic)."""
    dtype = x0.dtype
    eps = float(jnp.finfo(dtype).eps)
    d = x0.shape[0]
    eye = jnp.eye(d, dtype=dtype)
    T = jnp.asarray(T, dtype)
    scale = jnp.asarray(scale, dtype)
    xtol = max(1e-9, 16 * eps)
    floor = max(1e-12, 4 * eps)
    tiny = jnp.finfo(dtype).tiny
    alphas = jnp.asarray(_ALPHAS, dtype)

    def norm(v):
        return jnp.sqrt(jnp.sum(v * v))

    def f_and_g(x):
        return ensemble.landau(x, T), x - ensemble.denoiser(x, T)

    # Phase 1: x <- m_T(x), monotone in Phi_T (the Hopfield retrieval / mean shift).
    def c_cond(s):
        k, _, step = s
        return (k < n_cccp) & (step > 1e-3 * scale)

    def c_body(s):
        k, x, _ = s
        m = ensemble.denoiser(x, T)
        return k + 1, m, norm(m - x)

    k1, x, _ = jax.lax.while_loop(c_cond, c_body, (jnp.asarray(0), x0, jnp.asarray(jnp.inf, dtype)))

    # Phase 2: saddle-free Newton with a negative-curvature push, a cap and a line search over
    # fractions of the step, the mean-shift point m_T(x) = x - g as the last resort.
    n_cand = len(_ALPHAS) + 1

    def n_cond(s):
        k, _, _, _, _, done, stalled = s
        return (k < n_newton) & ~done & ~stalled

    def n_body(s):
        k, x, f, g, _, _, _ = s
        gn = norm(g)
        C = ensemble.posterior_cov(x, T)
        H = eye - 0.5 * (C + C.T) / T
        lam, V = jnp.linalg.eigh(H)
        gv = V.T @ g
        p_newton = -(V @ (gv / jnp.maximum(jnp.abs(lam), floor)))
        xnorm = norm(x)
        done = (norm(p_newton) <= xtol * scale + 16 * eps * xnorm) & (lam[0] >= -_LAM_TOL)
        v0 = V[:, 0]
        canonical = jnp.sign(v0[jnp.argmax(jnp.abs(v0))])
        side = jnp.where(gv[0] != 0, -jnp.sign(gv[0]), canonical)
        push_len = jnp.where(lam[0] < -_LAM_TOL, 0.5 * jnp.sqrt(jnp.maximum(-lam[0], 0.0)) * scale, 0.0)
        p = p_newton + (side * push_len) * v0
        p = p * jnp.minimum(1.0, 0.25 * scale / jnp.maximum(norm(p), tiny))
        cands = jnp.concatenate([x[None, :] + alphas[:, None] * p[None, :], (x - g)[None, :]])
        ftol = 64 * eps * (jnp.abs(f) + xnorm**2 + scale**2)

        def ls_cond(ls):
            i, found, _, _, _ = ls
            return (i < n_cand) & ~found & ~done

        def ls_body(ls):
            i, _, _, _, _ = ls
            xc = cands[i]
            fc, gc = f_and_g(xc)
            ok = (fc < f) | ((fc <= f + ftol) & (norm(gc) < gn))
            return i + 1, ok, xc, fc, gc

        _, found, xc, fc, gc = jax.lax.while_loop(ls_cond, ls_body, (0, jnp.asarray(False), x, f, g))
        move = found & ~done
        x_new = jnp.where(move, xc, x)
        f_new = jnp.where(move, fc, f)
        g_new = jnp.where(move, gc, g)
        return k + 1, x_new, f_new, g_new, lam[0], done, ~done & ~found

    f0, g0 = f_and_g(x)
    init = (jnp.asarray(0), x, f0, g0, jnp.asarray(-jnp.inf, dtype), jnp.asarray(False), jnp.asarray(False))
    k2, x, _, g, lam0, done, stalled = jax.lax.while_loop(n_cond, n_body, init)
    converged = done | (stalled & (norm(g) <= math.sqrt(eps) * scale) & (lam0 >= -_LAM_TOL))
    return x, lam0, converged, k1 + 1000 * k2


def _descend_batch_impl(ensemble, x0, T, scale):
    return _descend_batch_counts(ensemble, x0, T, scale)[:3]


def _descend_batch_counts(ensemble, x0, T, scale):
    return jax.vmap(_descend_one, in_axes=(None, 0, 0, None, None, None))(
        ensemble, x0, T, scale, _N_CCCP, _N_NEWTON
    )


_descend_batch = eqx.filter_jit(_descend_batch_impl)


def descend(ensemble: AbstractEnsemble, T: RealScalarLike, x0: Vector) -> tuple[Vector, Scalar, Array]:
    """The minimum of Phi_T reached from ``x0`` (theory sections 2 and 8).

    Mean-shift / Hopfield steps x <- m_T(x) (a concave-convex procedure: Phi_T decreases
    monotonically), then a safeguarded saddle-free Newton method with the Hessian I - Cov[y|x]/T
    that converges quadratically to the minimum (see the module docstring). Jittable; batch over
    starts or temperatures with ``jax.vmap``. No gradient is defined through it (use
    ``thermodiff._meanfield.fixed_point`` from the result for implicit derivatives).

    **Arguments:**
    - ``ensemble``: any ``AbstractEnsemble`` (its ``landau``, ``denoiser``, ``posterior_cov``).
    - ``T``: temperature > 0.
    - ``x0``: the start, shape (d,).

    **Returns:** ``(x, lambda_min, converged)``: the end point, the smallest eigenvalue of the
    Hessian I - Cov[y|x]/T there (>= 0 at a minimum, ~0 at a bifurcation) and whether the Newton
    step fell below 1e-9 times the data scale.
    Under jit: an invalid T gives NaN.
    """
    _check_ensemble(ensemble, supported=False)
    check_temperature_scalar(T)
    check_real("x0", x0, what="a start state, a real vector")
    if not is_concrete(T):
        T = guard_temperature(T)
    dtype = ensemble_dtype(ensemble)
    x0 = jnp.asarray(x0, dtype)
    if x0.shape != (ensemble.dim,):
        raise ValueError(f"x0 must have shape ({ensemble.dim},), got {x0.shape}")
    check_finite("x0", x0)
    x, lam, ok = _descend_batch(ensemble, x0[None, :], jnp.asarray(T, dtype)[None], _scale(ensemble).astype(dtype))
    return x[0], lam[0], ok[0]


def _run_descent(ensemble, X0: np.ndarray, Ts: np.ndarray, scale: float, batch: int):
    """Host driver: descents from rows of X0 at temperatures Ts, in padded chunks of ``batch``
    (one compiled shape per tree). Returns NumPy (end points, lambda_min, converged)."""
    dtype = ensemble_dtype(ensemble)
    n = X0.shape[0]
    outs_x, outs_l, outs_c = [], [], []
    sc = jnp.asarray(scale, dtype)
    for a in range(0, n, batch):
        xb, tb = X0[a : a + batch], Ts[a : a + batch]
        m = xb.shape[0]
        if m < batch:  # pad by repeating the last row
            xb = np.concatenate([xb, np.repeat(xb[-1:], batch - m, axis=0)])
            tb = np.concatenate([tb, np.repeat(tb[-1:], batch - m)])
        x, lam, ok = _descend_batch(ensemble, jnp.asarray(xb, dtype), jnp.asarray(tb, dtype), sc)
        outs_x.append(np.asarray(x)[:m])
        outs_l.append(np.asarray(lam)[:m])
        outs_c.append(np.asarray(ok)[:m])
    return np.concatenate(outs_x), np.concatenate(outs_l), np.concatenate(outs_c)


def _cluster(E: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels (first-occurrence order) and representatives of end points closer than ``tol``."""
    n = E.shape[0]
    labels = -np.ones(n, dtype=np.int64)
    sq = np.sum(E * E, axis=1)
    D2 = np.maximum(sq[:, None] + sq[None, :] - 2 * E @ E.T, 0.0)
    tol2 = tol * tol
    reps = []
    for i in range(n):
        if labels[i] >= 0:
            continue
        close = (D2[i] <= tol2) & (labels < 0)
        labels[close] = len(reps)
        reps.append(i)
    return labels, E[np.asarray(reps, dtype=np.int64)]


def _batch_size(n: int) -> int:
    return int(min(_MAX_BATCH, max(8, 1 << max(0, (n - 1).bit_length()))))


# ============================================================================ basins
class Basins(NamedTuple):
    """The distinct minima of Phi_T reached from a set of starts (see ``basins``).

    - ``minima``: (K, d) NumPy array, the distinct minima in order of first appearance.
    - ``labels``: (S,) int array, ``labels[i]`` is the index of the minimum start i converges to.
    - ``endpoints``: (S, d), where each start ended.
    - ``lambda_min``: (S,), smallest Hessian eigenvalue of I - Cov/T at each end point (>= 0).
    - ``converged``: (S,) bool.
    - ``temperature``: the T.
    """

    minima: np.ndarray
    labels: np.ndarray
    endpoints: np.ndarray
    lambda_min: np.ndarray
    converged: np.ndarray
    temperature: float


def basins(ensemble: AbstractEnsemble, T: RealScalarLike, starts, *, tol: float | None = None) -> Basins:
    """The minima of Phi_T(x) = |x|^2/2 - T log Z_T(x) and which start falls into which (theory 2, 3.2, 8).

    Every start descends Phi_T (mean-shift / Hopfield steps x <- m_T(x), then safeguarded Newton,
    see ``descend``); end points closer than ``tol`` are the same minimum. For a ``FiniteDataset``
    with the data points as starts, the labels say which data points go to which branch. This is
    a host-side function (the number of minima is data dependent); the kernel is one jitted vmap.

    **Arguments:**
    - ``ensemble``: any ``AbstractEnsemble`` with isolated minima (finite datasets, mixtures, two
      deltas; a hypersphere's continuum of minima is not merged).
    - ``T``: temperature > 0.
    - ``starts``: (S, d) start points, S >= 1.
    - ``tol``: merge distance; default 1e-6 (float32: ~1e-3) times the data scale
      R = max_n |y_n - mean| (mixtures: sqrt(max |mu_k - mean|^2 + max s_k^2)).

    **Returns:** a ``Basins`` (NumPy arrays): ``minima`` (K, d), ``labels`` (S,), ``endpoints``,
    ``lambda_min``, ``converged``, ``temperature``.
    """
    _check_ensemble(ensemble, supported=False)
    check_temperature_scalar(T)
    T = float(np.asarray(T))
    dtype = ensemble_dtype(ensemble)
    starts = np.asarray(_check_starts(starts, ensemble.dim, dtype))
    scale = float(_scale(ensemble))
    tol = _merge_rtol(dtype) * scale if tol is None else _check_positive_float("tol", tol)
    S = starts.shape[0]
    E, lam, ok = _run_descent(ensemble, starts, np.full(S, T), scale, _batch_size(S))
    labels, minima = _cluster(E, tol)
    return Basins(minima, labels, E, lam, ok, T)


# ============================================================================ the tree
@dataclasses.dataclass(eq=False)
class SplitNode:
    """A branch of the hierarchy: a group of starts that share one minimum of Phi_T.

    - ``members``: indices into ``BifurcationTree.starts`` of the starts in this branch.
    - ``t_birth``: the temperature at which the branch separated from its parent (the parent's
      ``t_split``); ``None`` for the root.
    - ``t_split``: the temperature below which the members stop sharing one minimum (refined to
      relative ``rtol``: the change lies in [t_split / (1 + rtol), t_split]); ``None`` for a leaf
      (never splits above ``t_min``).
    - ``minimum``: (d,) position of the branch's minimum at ``minimum_temperature`` (= t_split,
      just before the split; at t_min for a leaf).
    - ``kind``: ``"bifurcation"`` when a child's minimum does not exist just above t_split (it was
      born there: pitchfork or saddle-node), ``"basin_change"`` when all child minima already
      existed and only a basin boundary swept across some starts; ``None`` without refinement.
    - ``children``: the sub-branches (two for a pitchfork or saddle-node, more for degenerate
      symmetric splits), ordered by their smallest member.
    """

    members: tuple[int, ...]
    minimum: np.ndarray
    minimum_temperature: float
    t_birth: float | None = None
    t_split: float | None = None
    kind: str | None = None
    depth: int = 0
    children: list["SplitNode"] = dataclasses.field(default_factory=list)

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def walk(self):
        """This node and all its descendants, depth first (pre-order); iterative, so deep
        peeling cascades (depth ~ N) do not hit the recursion limit."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def to_dict(self, recursive: bool = True) -> dict[str, Any]:
        """JSON-serialisable dict (lists and floats only); ``children`` are nested dicts, or the
        children's member lists with ``recursive=False`` (deep trees: use
        ``BifurcationTree.to_dict``, which is flat)."""
        return {
            "members": [int(i) for i in self.members],
            "t_birth": None if self.t_birth is None else float(self.t_birth),
            "t_split": None if self.t_split is None else float(self.t_split),
            "kind": self.kind,
            "depth": int(self.depth),
            "minimum": [float(v) for v in np.asarray(self.minimum)],
            "minimum_temperature": float(self.minimum_temperature),
            "children": [c.to_dict() if recursive else [int(i) for i in c.members] for c in self.children],
        }


@dataclasses.dataclass(eq=False)
class BifurcationTree:
    """The tree of splits of the minima of Phi_T as T decreases (see ``bifurcation_tree``).

    - ``root``: the ``SplitNode`` holding every start (one minimum at ``t_max``).
    - ``starts``: (S, d) the start points; node ``members`` index into it.
    - ``start_index``: (S,) for default starts, the index of each start in the dataset's points
      (mixture: component index); ``None`` for user-given starts.
    - ``temperatures``: the scan grid (decreasing); ``n_basins``: distinct minima reached from the
      starts at each grid temperature.
    - ``t_max``, ``t_min``, ``rtol`` (``None`` without refinement), ``tol`` (merge distance).
    - ``n_unconverged``: descents that hit the iteration limit (should be 0).
    """

    root: SplitNode
    starts: np.ndarray
    start_index: np.ndarray | None
    temperatures: np.ndarray
    n_basins: np.ndarray
    t_max: float
    t_min: float
    rtol: float | None
    tol: float
    n_unconverged: int

    def nodes(self) -> list[SplitNode]:
        """Every node, depth first."""
        return list(self.root.walk())

    def leaves(self) -> list[SplitNode]:
        return [n for n in self.root.walk() if n.is_leaf]

    @property
    def memorized(self) -> bool:
        """True if at t_min every leaf holds starts that coincide (within ``tol``): each distinct
        start is its own minimum (memorization, theory section 3.2)."""
        for leaf in self.leaves():
            pts = self.starts[list(leaf.members)]
            if np.max(np.linalg.norm(pts - pts[:1], axis=1)) > self.tol:
                return False
        return True

    def splits(self) -> list[dict[str, Any]]:
        """Flat list of the splits, highest temperature first: dicts with ``t_split``, ``kind``,
        ``depth``, ``members``, ``children`` (list of member lists) and ``minimum``."""
        out = []
        for n in self.root.walk():
            if n.t_split is None or not n.children:
                continue
            out.append(
                {
                    "t_split": float(n.t_split),
                    "kind": n.kind,
                    "depth": int(n.depth),
                    "members": [int(i) for i in n.members],
                    "children": [[int(i) for i in c.members] for c in n.children],
                    "minimum": [float(v) for v in np.asarray(n.minimum)],
                }
            )
        out.sort(key=lambda s: -s["t_split"])
        return out

    def partition(self, T: float) -> list[tuple[int, ...]]:
        """The groups of starts sharing a branch at temperature T (a node splits below t_split)."""
        T = float(T)
        out = []

        def visit(n):
            if n.children and n.t_split is not None and T < n.t_split:
                for c in n.children:
                    visit(c)
            else:
                out.append(n.members)

        visit(self.root)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of the whole tree (``json.dumps`` works on it)."""
        return {
            "t_max": float(self.t_max),
            "t_min": float(self.t_min),
            "rtol": None if self.rtol is None else float(self.rtol),
            "tol": float(self.tol),
            "n_starts": int(self.starts.shape[0]),
            "starts": self.starts.tolist(),
            "start_index": None if self.start_index is None else [int(i) for i in self.start_index],
            "temperatures": [float(t) for t in self.temperatures],
            "n_basins": [int(k) for k in self.n_basins],
            "n_unconverged": int(self.n_unconverged),
            "splits": self.splits(),
            "nodes": self._flat_nodes(),
        }

    def _flat_nodes(self) -> list[dict[str, Any]]:
        nodes = self.nodes()
        ids = {id(n): i for i, n in enumerate(nodes)}
        parent = {id(c): ids[id(n)] for n in nodes for c in n.children}
        out = []
        for i, n in enumerate(nodes):
            d = n.to_dict(recursive=False)
            d["id"] = i
            d["parent"] = parent.get(id(n))
            d["children"] = [ids[id(c)] for c in n.children]
            out.append(d)
        return out


@dataclasses.dataclass(eq=False)
class _Task:
    """Refinement of a split: ``node`` (one group at ``hi``) falls apart into ``items`` (nodes,
    each represented by one start in ``reps``). The items are all distinct at ``bottom``; at ``lo``
    they are grouped by ``lo_labels`` (at least two groups). Bisection shrinks [lo, hi]; when the
    partition at the midpoint is intermediate, the task divides into an upper and lower tasks
    that run in parallel, so the number of rounds does not grow with the length of a cascade."""

    node: SplitNode
    items: list
    reps: np.ndarray
    bottom: float
    bottom_points: np.ndarray  # (m, d) end points of the reps at bottom
    lo: float
    lo_labels: np.ndarray
    lo_points: np.ndarray  # (m, d) end points of the reps at lo
    hi: float
    hi_point: np.ndarray  # the common minimum at hi


def _group_node(items, point, T) -> SplitNode:
    if len(items) == 1:
        return items[0]
    members = tuple(sorted(i for it in items for i in it.members))
    return SplitNode(members, point, T)


def _first_occurrence(labels: np.ndarray) -> np.ndarray:
    order: dict = {}
    return np.asarray([order.setdefault(int(v), len(order)) for v in labels], dtype=np.int64)


def bifurcation_tree(
    ensemble: AbstractEnsemble,
    *,
    starts=None,
    t_max: float | None = None,
    t_min: float | None = None,
    n_temperatures: int = 64,
    refine: bool = True,
    rtol: float = 1e-6,
    max_starts: int | None = 1024,
    seed: int = 0,
    tol: float | None = None,
) -> BifurcationTree:
    """The hierarchy of symmetry breakings: the tree of splits of the minima of Phi_T (theory 2, 3.2, 8).

    Follows every minimum of Phi_T(x) = |x|^2/2 - T log Z_T(x) as T decreases from ``t_max`` (one
    minimum) to ``t_min`` (for a finite dataset: every distinct point its own minimum,
    memorization). At each temperature of a log grid every start descends to its minimum
    (``basins``); a branch is a group of starts that have shared one minimum at every higher T.
    Each split is refined by bisection in T on "the members still share one minimum" to relative
    ``rtol``. A pitchfork splits a branch in two; a degenerate (symmetric) split can give more
    children at once; a partition that changes because a basin boundary moves (no new minimum) is
    marked ``kind="basin_change"``.

    **Arguments:**
    - ``ensemble``: a ``FiniteDataset``, ``GaussianMixture`` or ``TwoDeltas``.
    - ``starts``: (S, d) start points. Default: the data points with positive weight (a random
      subsample of ``max_starts`` of them, drawn with ``seed``, if there are more), the component
      means of a mixture, +-mu for two deltas.
    - ``t_max``: highest temperature; there must be one basin there. Default 1.05 R^2 with
      R^2 = max_n |y_n - mean|^2 (Phi_T is convex above R^2), for a mixture
      1.05 (max_k |mu_k - mean|^2 + max_k s_k^2), doubled until the starts share one basin.
    - ``t_min``: lowest temperature, < t_max. Default (min distance between distinct starts)^2/50
      (each point its own minimum); mixtures: that distance^2 / 1000.
    - ``n_temperatures``: points of the log grid (>= 2). A split and a re-merge between two grid
      points are not seen; splits are never missed for a nested cascade.
    - ``refine``: bisect each split temperature (default); otherwise report the grid bracket.
    - ``rtol``: relative tolerance of the refined split temperatures.
    - ``max_starts``: cap on the default (data-point) starts; ``None`` uses all points.
    - ``seed``: seed of that subsample.
    - ``tol``: merge distance for minima (default 1e-6 of the data scale R, float32 ~1e-3).

    **Returns:** a ``BifurcationTree``: ``root`` (``SplitNode`` with ``members``, ``t_birth``,
    ``t_split``, ``minimum``, ``kind``, ``children``), ``splits()`` (flat list, highest T first),
    ``partition(T)``, ``to_dict()`` (JSON-serialisable, flat list of nodes with ids; node 0 is
    the root) and ``memorized``.

    Cost: one jitted descent of S starts per grid temperature (batched), then ~log2(grid step /
    rtol) bisection rounds in all (every split refines in parallel, one start per sub-branch, so
    the count does not grow with the depth of the tree). A descent costs O(N d) per mean-shift
    step and O(N d^2 + d^3) per Newton step for N points in d dimensions. Measured (CPU, float64,
    2 shared cores): 200 Gaussian points in d = 8, 199 splits down to memorization, ~3 s after
    a ~2 s compilation.
    """
    _check_ensemble(ensemble, supported=True)
    n_temperatures = _check_int("n_temperatures", n_temperatures, 2)
    if max_starts is not None:
        max_starts = _check_int("max_starts", max_starts, 1)
    if refine:
        rtol = _check_rtol(rtol)
    t_max = _check_positive_float("t_max", t_max)
    t_min = _check_positive_float("t_min", t_min)
    if t_max is not None and t_min is not None and not t_min < t_max:
        raise ValueError(
            f"t_min must be < t_max (the scan runs from t_max down to t_min), got t_min={t_min}, t_max={t_max}"
        )
    dtype = ensemble_dtype(ensemble)
    if starts is None:
        X, start_index = _natural_starts(ensemble, max_starts, seed)
        X = np.asarray(X, dtype=dtype)
    else:
        X = np.asarray(_check_starts(starts, ensemble.dim, dtype))
        start_index = None
    S = X.shape[0]
    scale = float(_scale(ensemble))
    tol = _merge_rtol(dtype) * scale if tol is None else _check_positive_float("tol", tol)
    batch = _batch_size(S)
    n_unconverged = 0

    def run(X0, Ts):
        nonlocal n_unconverged
        E, lam, ok = _run_descent(ensemble, X0, Ts, scale, batch)
        n_unconverged += int(np.sum(~ok))
        return E, lam, ok

    # ---- temperature range
    _, reps = _cluster(X, tol)
    distinct = reps.shape[0]
    if t_max is None:
        r2 = float(_scale2(ensemble))
        t_max = 1.05 * r2 if r2 > 0 else 1.0
        if t_min is not None and t_max <= t_min:
            t_max = 10.0 * t_min
        for _ in range(40):
            E, _, _ = run(X, np.full(S, t_max))
            if _cluster(E, tol)[1].shape[0] == 1:
                break
            t_max *= 2.0
        else:  # pragma: no cover - Phi_T is convex for large T
            raise RuntimeError("could not find a temperature with a single basin")
    else:
        E, _, _ = run(X, np.full(S, t_max))
        k = _cluster(E, tol)[1].shape[0]
        if k != 1:
            raise ValueError(
                f"t_max={t_max} is too low: the starts fall into {k} basins there; the tree needs one "
                "basin at t_max (pass a larger t_max or leave it at the default)"
            )
    if t_min is None:
        if distinct > 1:
            sq = np.sum(reps * reps, axis=1)
            D2 = np.maximum(sq[:, None] + sq[None, :] - 2 * reps @ reps.T, 0.0)
            D2[np.diag_indices_from(D2)] = np.inf
            t_min = _default_tmin_factor(ensemble) * float(np.min(D2))
        else:
            t_min = t_max / 10.0
        t_min = min(t_min, t_max / 2.0)
    if not t_min < t_max:
        raise ValueError(f"t_min must be < t_max, got t_min={t_min}, t_max={t_max}")

    # ---- the grid scan
    grid = np.geomspace(t_max, t_min, n_temperatures)
    E_all, _, _ = run(np.tile(X, (n_temperatures, 1)), np.repeat(grid, S))
    labels_grid = np.zeros((n_temperatures, S), dtype=np.int64)
    minima_grid = []
    for k in range(n_temperatures):
        lab, mins = _cluster(E_all[k * S : (k + 1) * S], tol)
        labels_grid[k] = lab
        minima_grid.append(mins)
    n_basins = np.asarray([m.shape[0] for m in minima_grid])

    def member_minimum(k, members):
        return minima_grid[k][labels_grid[k, members[0]]]

    # ---- the grid-level tree: meets of the grid partitions
    root = SplitNode(tuple(range(S)), member_minimum(0, np.arange(S)), float(grid[0]))
    blocks = [(np.arange(S), root)]
    pending: list[_Task] = []
    for k in range(1, n_temperatures):
        new_blocks = []
        for members, node in blocks:
            lab = _first_occurrence(labels_grid[k, members])
            if lab.max() == 0:
                new_blocks.append((members, node))
                continue
            items, reps = [], []
            for c in range(lab.max() + 1):
                sub = members[lab == c]
                child = SplitNode(tuple(int(i) for i in sub), member_minimum(k, sub), float(grid[k]))
                items.append(child)
                reps.append(int(sub[0]))
                new_blocks.append((sub, child))
            reps = np.asarray(reps)
            pts_k = minima_grid[k][labels_grid[k, reps]]
            pending.append(
                _Task(node, items, reps, float(grid[k]), pts_k, float(grid[k]), np.arange(len(items)), pts_k,
                      float(grid[k - 1]), member_minimum(k - 1, members))
            )
        blocks = new_blocks
    for members, node in blocks:  # leaves: their minimum at t_min
        node.minimum, node.minimum_temperature = member_minimum(n_temperatures - 1, members), float(grid[-1])

    # ---- refinement: every split bisects in parallel, on one start per item
    finished: list[tuple[SplitNode, np.ndarray, float]] = []  # (node, child minima at lo, hi)

    def finish(t: _Task) -> list[_Task]:
        node = t.node
        node.t_split, node.minimum, node.minimum_temperature = t.hi, t.hi_point, t.hi
        new, child_pts = [], []
        for g in range(t.lo_labels.max() + 1):
            idx = np.nonzero(t.lo_labels == g)[0]
            child = _group_node([t.items[j] for j in idx], t.lo_points[idx[0]], t.lo)
            child_pts.append(t.lo_points[idx[0]])
            if idx.size > 1:  # still together just below t_split; distinct at bottom
                new.append(
                    _Task(child, [t.items[j] for j in idx], t.reps[idx], t.bottom, t.bottom_points[idx], t.bottom,
                          np.arange(idx.size), t.bottom_points[idx], t.lo, t.lo_points[idx[0]])
                )
            child.t_birth = t.hi
            node.children.append(child)
        node.children.sort(key=lambda c: min(c.members))
        finished.append((node, np.stack(child_pts), t.hi))
        return new

    def divide(t: _Task, mid: float, lab: np.ndarray, E: np.ndarray) -> list[_Task]:
        """The partition at mid is strictly between those at lo and hi: an upper task on the
        groups at mid over [mid, hi] and a lower task per group over [.., mid]."""
        new, items, firsts = [], [], []
        for g in range(lab.max() + 1):
            idx = np.nonzero(lab == g)[0]
            sub_items = [t.items[j] for j in idx]
            node = _group_node(sub_items, E[idx[0]], mid)
            items.append(node)
            firsts.append(idx[0])
            if idx.size > 1:
                sub_lo = _first_occurrence(t.lo_labels[idx])
                if sub_lo.max() >= 1:
                    new.append(_Task(node, sub_items, t.reps[idx], t.bottom, t.bottom_points[idx], t.lo, sub_lo,
                                     t.lo_points[idx], mid, E[idx[0]]))
                else:
                    new.append(_Task(node, sub_items, t.reps[idx], t.bottom, t.bottom_points[idx], t.bottom,
                                     np.arange(idx.size), t.bottom_points[idx], t.lo, t.lo_points[idx[0]]))
        firsts = np.asarray(firsts)
        t.items, t.reps = items, t.reps[firsts]
        t.bottom, t.bottom_points = mid, E[firsts]
        t.lo, t.lo_labels, t.lo_points = mid, np.arange(len(items)), E[firsts]
        return [t] + new

    while pending:
        if refine:
            active = [t for t in pending if t.hi / t.lo > 1 + rtol]
            if active:
                mids = [math.sqrt(t.lo * t.hi) for t in active]
                X0 = np.concatenate([X[t.reps] for t in active])
                Ts = np.concatenate([np.full(t.reps.size, m) for t, m in zip(active, mids)])
                E, _, _ = run(X0, Ts)
                a = 0
                divided = []
                for t, m in zip(active, mids):
                    Et = E[a : a + t.reps.size]
                    a += t.reps.size
                    lab, _ = _cluster(Et, tol)
                    n_joint = len(set(zip(lab.tolist(), t.lo_labels.tolist())))
                    if lab.max() == 0:
                        t.hi, t.hi_point = m, Et[0]
                    elif n_joint == lab.max() + 1 == t.lo_labels.max() + 1:  # same partition as at lo
                        t.lo, t.lo_labels, t.lo_points = m, lab, Et
                    else:
                        divided.append((t, m, lab, Et))
                for t, m, lab, Et in divided:
                    pending.remove(t)
                    pending.extend(divide(t, m, lab, Et))
            ready = [t for t in pending if t.hi / t.lo <= 1 + rtol]
        else:
            ready = pending
        pending = [t for t in pending if all(t is not r for r in ready)]
        for t in ready:
            pending.extend(finish(t))

    # ---- kinds: does every child minimum at lo still exist just above, at t_split?
    if refine and finished:
        X0 = np.concatenate([pts for _, pts, _ in finished])
        Ts = np.concatenate([np.full(pts.shape[0], hi) for _, pts, hi in finished])
        E, _, _ = run(X0, Ts)
        a = 0
        for node, cp, _ in finished:
            Ec = E[a : a + cp.shape[0]]
            a += cp.shape[0]
            D = np.linalg.norm(cp[:, None, :] - cp[None, :, :], axis=-1)
            D[np.diag_indices_from(D)] = np.inf
            moved = np.linalg.norm(Ec - cp, axis=1)
            persists = moved < np.minimum(0.25 * D.min(axis=1), 1e-2 * scale)
            node.kind = "basin_change" if np.all(persists) else "bifurcation"

    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        node.depth = depth
        stack.extend((c, depth + 1) for c in node.children)

    return BifurcationTree(
        root=root,
        starts=X,
        start_index=None if start_index is None else np.asarray(start_index),
        temperatures=grid,
        n_basins=n_basins,
        t_max=float(t_max),
        t_min=float(t_min),
        rtol=rtol if refine else None,
        tol=float(tol),
        n_unconverged=n_unconverged,
    )


# ============================================================================ the first split
class FirstSplit(NamedTuple):
    """The highest bifurcation of the minima of Phi_T (see ``first_split``).

    - ``temperature``: T of the first split, polished on the Moore-Spence system and
      differentiable (implicit function theorem); NaN if no split was found above t_min.
    - ``location``: (d,) the point u* where the newborn minimum meets its saddle (a symmetric
      pitchfork: the symmetric point), u* = m_T(u*).
    - ``direction``: (d,) unit soft mode v, Cov[y|u*] v = T v (the Hessian's null vector).
    - ``lower``, ``upper``: the bisection bracket (several minima at ``lower``, one at ``upper``).
    - ``newborn``: (d,) the newborn minimum at ``lower`` (before polishing).
    - ``newborn_lambda_min``: smallest Hessian eigenvalue of I - Cov/T at ``newborn`` (-> 0 as the
      bracket shrinks: ~sqrt(rtol) at a saddle-node, ~rtol at a pitchfork).
    - ``polished``: whether the Moore-Spence Newton polish converged inside the bracket (if not,
      ``temperature`` is ``upper`` and carries no useful derivative).
    """

    temperature: Scalar
    location: Vector
    direction: Vector
    lower: Scalar
    upper: Scalar
    newborn: Vector
    newborn_lambda_min: Scalar
    polished: Array


def _pairwise_far(E, ok, tol):
    diff = E[:, None, :] - E[None, :, :]
    D2 = jnp.sum(diff * diff, axis=-1)
    both = ok[:, None] & ok[None, :]
    return jnp.any(both & (D2 > tol * tol))


def _moore_spence(ensemble, z, d):
    """F(u, log T, v) = [u - m_T(u); v - Cov(u, T) v / T; (v.v - 1)/2]: zero at a fold of the
    fixed points (regular there) and at a pitchfork (singular but consistent)."""
    u, logT, v = z[:d], z[d], z[d + 1 :]
    T = jnp.exp(logT)
    C = ensemble.posterior_cov(u, T)
    return jnp.concatenate([u - ensemble.denoiser(u, T), v - C @ v / T, 0.5 * (v @ v - 1.0)[None]])


@eqx.filter_jit
def _first_split_impl(ensemble, starts, t_max, t_min, n_grid, rtol, tmin_factor):
    ens = jax.lax.stop_gradient(ensemble)
    starts = jax.lax.stop_gradient(starts)
    dtype = starts.dtype
    S, d = starts.shape
    eps = float(jnp.finfo(dtype).eps)
    scale = jax.lax.stop_gradient(_scale(ens)).astype(dtype)
    tol = _merge_rtol(dtype) * scale
    ln2 = math.log(2.0)
    width = math.log1p(rtol)

    # ---- temperature range (defaults as in bifurcation_tree; t_max is doubled below if needed)
    if t_max is None:
        r2 = _scale2(ens).astype(dtype)
        log_tmax0 = jnp.log(jnp.where(r2 > 0, 1.05 * r2, 1.0))
    else:
        log_tmax0 = jnp.log(jnp.asarray(t_max, dtype))
    if t_max is None and t_min is not None:
        log_tmax0 = jnp.maximum(log_tmax0, math.log(10.0 * t_min))
    if t_min is None:
        diff = starts[:, None, :] - starts[None, :, :]
        D2 = jnp.sum(diff * diff, axis=-1)
        D2 = jnp.where(D2 > tol * tol, D2, jnp.inf)
        dmin2 = jnp.min(D2)
        finite = jnp.isfinite(dmin2)
        log_tmin_raw = jnp.where(finite, jnp.log(tmin_factor * jnp.where(finite, dmin2, 1.0)), jnp.inf)
    else:
        log_tmin_raw = jnp.log(jnp.asarray(t_min, dtype))

    def grid(k, log_tmax):
        log_tmin = jnp.where(jnp.isfinite(log_tmin_raw), log_tmin_raw, log_tmax - math.log(10.0))
        if t_min is None:
            log_tmin = jnp.minimum(log_tmin, log_tmax - ln2)
        return log_tmax + (log_tmin - log_tmax) * k / (n_grid - 1)

    # ---- one state machine, so the (large) descent kernel is traced once:
    # phase 0: double t_max until the starts share one basin (default t_max only);
    # phase 1: scan down the log grid for the first temperature with several minima;
    # phase 2: continue the minima found there back up the grid (a newborn minimum may exist
    #          before any start falls into it);
    # phase 3: bisection in log T on "several minima among the starts and the minima continued
    #          from the lower end"; phase 4: done.
    def body(st):
        it, phase, log_tmax, k, j, lo, hi, X, valid = st
        logT = jnp.select(
            [phase == 0, phase == 1, phase == 2], [log_tmax, grid(k, log_tmax), grid(j, log_tmax)], 0.5 * (lo + hi)
        )
        Xb = jnp.where(phase >= 2, X, starts)
        E, _, ok, _ = jax.vmap(_descend_one, in_axes=(None, 0, None, None, None, None))(
            ens, jnp.concatenate([starts, Xb]), jnp.exp(logT), scale, _N_CCCP, _N_NEWTON
        )
        Ea, Eb, oka, okb = E[:S], E[S:], ok[:S], ok[S:]
        many = _pairwise_far(E, ok, tol)
        picked = jnp.where(_pairwise_far(Eb, okb, tol), Eb, Ea)

        # phase 0
        p0_next = jnp.where(many, jnp.where(it >= 40, 4, 0), 1)
        p0 = (phase, p0_next, jnp.where(many, log_tmax + ln2, log_tmax), jnp.asarray(1), j, lo, hi, X,
              ~(many & (it >= 40)))
        # phase 1
        at_top = k == 0
        p1_next = jnp.where(many, jnp.where(at_top, 4, 2), jnp.where(k + 1 >= n_grid, 4, 1))
        p1 = (phase, p1_next, log_tmax, k + 1, k - 1, logT, hi, jnp.where(many, Ea, X),
              jnp.where(many, ~at_top, k + 1 < n_grid))
        # phase 2
        j_next = jnp.where(many, j - 1, j)
        p2_next = jnp.where(many, jnp.where(j_next < 0, 4, 2), 3)
        p2 = (phase, p2_next, log_tmax, k, j_next, jnp.where(many, logT, lo), jnp.where(many, hi, logT),
              jnp.where(many, picked, X), ~(many & (j_next < 0)))
        # phase 3
        lo3, hi3 = jnp.where(many, logT, lo), jnp.where(many, hi, logT)
        p3 = (phase, jnp.where(hi3 - lo3 <= width, 4, 3), log_tmax, k, j, lo3, hi3, jnp.where(many, picked, X),
              jnp.asarray(True))

        new = jax.tree.map(
            lambda a0, a1, a2, a3: jnp.select([phase == 0, phase == 1, phase == 2], [a0, a1, a2], a3), p0, p1, p2, p3
        )
        return (it + 1,) + new[1:]

    def cond(st):
        return (st[1] < 4) & (st[0] < 40 + 2 * n_grid + 100)

    zero = jnp.asarray(0.0, dtype)
    init = (jnp.asarray(0), jnp.asarray(0 if t_max is None else 1), log_tmax0, jnp.asarray(0), jnp.asarray(0),
            zero, zero, starts, jnp.asarray(True))
    it, phase, log_tmax, k, j, lo, hi, X, valid = jax.lax.while_loop(cond, body, init)
    valid = valid & (phase == 4) & (hi > lo)

    # ---- the newborn: the minimum at lo closest to instability
    T_lo = jnp.exp(lo)
    covs = jax.vmap(ens.posterior_cov, in_axes=(0, None))(X, T_lo)
    evals, evecs = jnp.linalg.eigh(covs)
    lam_min = 1.0 - evals[:, -1] / T_lo
    i = jnp.argmin(lam_min)
    u0, v0 = X[i], evecs[i, :, -1]

    # ---- Moore-Spence Newton polish (least squares: works at a singular pitchfork too)
    F = lambda z: _moore_spence(ens, z, d)  # noqa: E731
    alphas = 2.0 ** -jnp.arange(12, dtype=dtype)
    ms_tol = 256 * eps * jnp.maximum(1.0, scale)  # stop; the polish then stalls at rounding level

    def p_body(s):
        it, z, fz, _ = s
        J = jax.jacfwd(F)(z)
        step = jnp.linalg.lstsq(J, -fz)[0]
        trials = z[None, :] + alphas[:, None] * step[None, :]
        ft = jax.vmap(F)(trials)
        mt = jnp.sum(ft * ft, axis=1)
        better = mt < jnp.sum(fz * fz)
        idx = jnp.argmax(better)
        moved = jnp.any(better)
        return it + 1, jnp.where(moved, trials[idx], z), jnp.where(moved, ft[idx], fz), ~moved

    z0 = jnp.concatenate([u0, (0.5 * (lo + hi))[None], v0])
    _, z_star, f_star, _ = jax.lax.while_loop(
        lambda s: valid & (s[0] < 60) & ~s[3] & (jnp.sqrt(jnp.sum(s[2] ** 2)) > ms_tol), p_body,
        (0, z0, F(z0), jnp.asarray(False)),
    )
    w = hi - lo
    polished = (
        valid
        & (jnp.sqrt(jnp.sum(f_star**2)) <= math.sqrt(eps) * jnp.maximum(1.0, scale))
        & (z_star[d] >= lo - 10 * w - 1e-9)
        & (z_star[d] <= hi + 10 * w + 1e-9)
    )
    z_star = jax.lax.stop_gradient(jnp.where(polished, z_star, z0))

    # ---- implicit differentiation through the Moore-Spence system
    def solve(f, z_init):
        return z_star

    def tangent_solve(g, y):
        return jnp.linalg.lstsq(jax.jacfwd(g)(y), y)[0]

    z = jax.lax.custom_root(lambda z_: _moore_spence(ensemble, z_, d), z_star, solve, tangent_solve)
    nan = jnp.asarray(jnp.nan, dtype)
    T = jnp.where(valid, jnp.where(polished, jnp.exp(z[d]), jnp.exp(hi)), nan)
    u = jnp.where(valid, z[:d], nan)
    v = jnp.where(valid, z[d + 1 :] / jnp.sqrt(jnp.sum(z[d + 1 :] ** 2)), nan)
    return FirstSplit(
        temperature=T,
        location=u,
        direction=v,
        lower=jnp.where(valid, jnp.exp(lo), nan),
        upper=jnp.where(valid, jnp.exp(hi), nan),
        newborn=jnp.where(valid, u0, nan),
        newborn_lambda_min=jnp.where(valid, lam_min[i], nan),
        polished=polished,
    )


def first_split(
    ensemble: AbstractEnsemble,
    *,
    starts=None,
    t_max: float | None = None,
    t_min: float | None = None,
    n_temperatures: int = 32,
    rtol: float = 1e-6,
    max_starts: int | None = 256,
    seed: int = 0,
) -> FirstSplit:
    """The first (highest-temperature) bifurcation of the minima of Phi_T (theory 3, "First
    transition of general data"; sections 2, 3.2, 8).

    Scans a log grid from ``t_max`` (one minimum) down for the first temperature where the starts
    reach more than one distinct minimum, continues the minima found there back up the grid (a
    newborn minimum may exist before any start falls into it), and bisects in log T on "more than
    one distinct minimum" among the starts and the minima continued from the lower end of the
    bracket, to relative ``rtol``. The newborn minimum (smallest Hessian eigenvalue at the lower
    end) then seeds a least-squares Newton solve of the Moore-Spence system
    F(u, log T, v) = [u - m_T(u); v - Cov(u, T) v / T; (v.v - 1)/2] = 0, the point where the
    newborn minimum meets its saddle (lambda_max(Cov[y|u])/T = 1). For symmetric data this is the
    pitchfork of the symmetric branch and equals ``critical_temperature``; for asymmetric data it
    is a saddle-node, which ``critical_temperature`` (the symmetric branch from the data mean)
    does not see in general. The result is differentiated implicitly through F (``custom_root``
    with a least-squares tangent solve): ``jax.grad`` with respect to the data works and is exact
    at a saddle-node; at an exactly symmetric pitchfork the split temperature is not
    differentiable in symmetry-breaking directions (it unfolds like |h|^(2/3)) and the
    least-squares solve returns the symmetric part.

    Jittable and differentiable (the search runs on stopped gradients inside one ``jit``); the
    defaults of ``t_max``/``t_min`` are those of ``bifurcation_tree``.

    **Arguments:**
    - ``ensemble``: a ``FiniteDataset``, ``GaussianMixture`` or ``TwoDeltas``.
    - ``starts``: (S, d) start points; default the data points (positive weight; a random
      subsample of ``max_starts``), the component means, or +-mu.
    - ``t_max``, ``t_min``: the scan range (t_min < t_max).
    - ``n_temperatures``: grid points (>= 2).
    - ``rtol``: relative width of the final bisection bracket.
    - ``max_starts``, ``seed``: subsampling of the default starts (``None``: all points).

    **Returns:** a ``FirstSplit`` (``temperature``, ``location``, ``direction``, ``lower``,
    ``upper``, ``newborn``, ``newborn_lambda_min``, ``polished``); NaNs if nothing splits above
    t_min (e.g. a mixture +-mu with |mu|^2 <= s^2, or a single Gaussian).
    """
    _check_ensemble(ensemble, supported=True)
    n_temperatures = _check_int("n_temperatures", n_temperatures, 2)
    if max_starts is not None:
        max_starts = _check_int("max_starts", max_starts, 1)
    rtol = _check_rtol(rtol)
    t_max = _check_positive_float("t_max", t_max)
    t_min = _check_positive_float("t_min", t_min)
    if isinstance(t_max, float) and isinstance(t_min, float) and not t_min < t_max:
        raise ValueError(
            f"t_min must be < t_max (the scan runs from t_max down to t_min), got t_min={t_min}, t_max={t_max}"
        )
    dtype = ensemble_dtype(ensemble)
    if starts is None:
        starts = jnp.asarray(_natural_starts(ensemble, max_starts, seed)[0], dtype)
    else:
        starts = _check_starts(starts, ensemble.dim, dtype)
    return _first_split_impl(ensemble, starts, t_max, t_min, n_temperatures, rtol, _default_tmin_factor(ensemble))


def first_split_temperature(ensemble: AbstractEnsemble, *, starts=None, **kwargs) -> Scalar:
    """The temperature of the first split of the minima of Phi_T (theory 3, "First transition of
    general data"): ``first_split(ensemble, starts=starts, **kwargs).temperature``.

    Equals ``critical_temperature(ensemble)`` for symmetric data whose first split is the
    pitchfork of the symmetric point (where lambda_max(Cov[y|x*])/T = 1; mixture +-mu, s^2:
    |mu|^2 - s^2); symmetric data can also split first by a mirror pair of saddle-nodes away from
    it. For asymmetric data: the saddle-node where the first new minimum is born. Differentiable in the
    data by implicit differentiation of the Moore-Spence system. NaN if nothing splits.

    **Arguments:** as ``first_split``.

    **Returns:** a scalar temperature.
    """
    return first_split(ensemble, starts=starts, **kwargs).temperature


__all__ = [
    "BifurcationTree",
    "Basins",
    "FirstSplit",
    "SplitNode",
    "basins",
    "bifurcation_tree",
    "descend",
    "first_split",
    "first_split_temperature",
]
