"""Principal subspaces of large datasets and the cost of analysing them (theory sections 3, 3.2).

``thermodiff analyze`` needs the covariance spectrum of the data and the exact first split of the
empirical law. Done naively both are O(d^3): the spectrum by forming the d x d covariance, the
first split by a Moore-Spence Newton solve whose Jacobian is (2d + 1) x (2d + 1) and is built
from 2d + 1 tangents of the d x d posterior covariance (O(d^3) memory). For image-sized data
(d up to 4096, N up to 70000) this module provides

- ``principal_subspace``: the top-k principal directions and eigenvalues of the covariance by a
  randomized subspace iteration (Halko, Martinsson & Tropp 2011) that streams over the rows of
  the data: it never forms a d x d matrix nor a centred copy of the data, and its memory is
  O(d (k + p) + chunk x d);
- ``subspace_dimension``: the rule choosing the dimension k in which to compute the first split
  (the split is then computed exactly for the data projected on the subspace);
- ``analysis_cost`` / ``measure_matmul_rate``: order-of-magnitude flop and memory estimates of
  the stages of ``analyze``, to decide before running whether the full-dimensional first split
  fits a memory and time budget.

Reference: N. Halko, P.-G. Martinsson, J. A. Tropp (2011), "Finding structure with randomness:
probabilistic algorithms for constructing approximate matrix decompositions", SIAM Review 53(2),
217-288 (Algorithm 4.4, subspace iteration, and section 5.3, Rayleigh-Ritz extraction).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, NamedTuple

import numpy as np

# Dimension up to which ``principal_subspace(method="auto")`` forms the covariance exactly.
EXACT_MAX_DIM = 512
# ``subspace_dimension`` defaults (see its docstring for the measurements behind them).
DEFAULT_FRACTION = 0.95
DEFAULT_K_MIN = 2
DEFAULT_K_MAX = 64
# Bytes of one streamed chunk of rows (float64 working copy) in ``principal_subspace``/``project``.
_CHUNK_BYTES = 1 << 25  # 32 MiB
# Inputs with more entries than this, stored in float32 (or narrower), are processed with
# float32 GEMMs by default (the small Rayleigh-Ritz problems always run in float64).
_FLOAT32_MIN_ENTRIES = 1 << 26  # 64 Mi entries = 256 MiB in float32
_METHODS = ("auto", "exact", "randomized")


# ============================================================================ validation helpers
def _check_int(name: str, value, lo: int, hi: int | None = None, hi_text: str | None = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    ok = ok and value >= lo and (hi is None or value <= hi)
    if not ok:
        if hi is None:
            raise ValueError(f"{name} must be an integer >= {lo} (allowed range: [{lo}, inf)), got {value!r}")
        rng = f"[{lo}, {hi_text}] = [{lo}, {hi}]" if hi_text else f"[{lo}, {hi}]"
        raise ValueError(f"{name} must be an integer in {rng}, got {value!r}")
    return int(value)


def _check_float(name: str, value, lo: float, hi: float | None = None, *, lo_open=True, hi_open=False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (hi is None or (v < hi if hi_open else v <= hi))
    if not ok:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open or hi is None else "]")
        raise ValueError(f"{name} must be a finite number in {lb}{lo}, {'inf' if hi is None else hi}{rb}, got {value!r}")
    return float(value)


def _check_data(name: str, X) -> np.ndarray:
    """A real (N, d) array with N, d >= 1 and finite entries (checked chunk by chunk, no copy)."""
    X = np.asarray(X)
    if not (np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.floating)):
        raise TypeError(f"{name} must be a real numeric array (integer or floating), got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, d), got shape {X.shape}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name} must have N >= 1 rows and d >= 1 columns, got shape {X.shape}")
    if np.issubdtype(X.dtype, np.floating):
        for s in range(0, X.shape[0], _chunk_rows(X.shape[1])):
            if not np.isfinite(X[s : s + _chunk_rows(X.shape[1])]).all():
                raise ValueError(f"{name} must be finite (no NaN or inf)")
    return X


def _chunk_rows(d: int) -> int:
    return max(1, _CHUNK_BYTES // (8 * d))


def _centred_chunks(X: np.ndarray, mean: np.ndarray, dtype):
    """Yield (start, A) with A = X[start:start+c] - mean in ``dtype``, reusing one buffer."""
    n, d = X.shape
    c = min(n, _chunk_rows(d))
    buf = np.empty((c, d), dtype)
    mu = mean.astype(dtype)
    for s in range(0, n, c):
        rows = X[s : s + c]
        out = buf[: rows.shape[0]]
        np.subtract(rows, mu, out=out, casting="unsafe")
        yield s, out


def _sign_fix(V: np.ndarray) -> np.ndarray:
    """Make the entry of largest magnitude of each column positive (a deterministic sign)."""
    if V.size == 0:
        return V
    idx = np.argmax(np.abs(V), axis=0)
    s = np.sign(V[idx, np.arange(V.shape[1])])
    return V * np.where(s == 0, 1.0, s)[None, :]


# ============================================================================ principal subspace
@dataclasses.dataclass(frozen=True, eq=False)
class PrincipalSubspace:
    """The top-k principal subspace of a dataset (see ``principal_subspace``).

    - ``mean``: (d,) the data mean.
    - ``basis``: (d, k) orthonormal columns, the principal directions (eigenvectors of the
      covariance, by decreasing eigenvalue; the largest entry of each column is positive).
    - ``eigenvalues``: (k,) the top-k eigenvalues of the covariance (population, ``ddof=0``), in
      decreasing order.
    - ``total_variance``: the trace of the covariance, (1/N) sum_n |y_n - mean|^2, computed
      exactly (a sum of squares, not from the eigenvalues).
    - ``n_points``: N.
    - ``method``: ``"exact"`` (eigendecomposition of the formed covariance) or ``"randomized"``.
    - ``n_passes``: passes over the data used by the eigen-solver (0 for exact beyond the
      covariance pass; the randomized solver's power iterations + 1).
    """

    mean: np.ndarray
    basis: np.ndarray
    eigenvalues: np.ndarray
    total_variance: float
    n_points: int
    method: str
    n_passes: int

    @property
    def dim(self) -> int:
        """d, the ambient dimension."""
        return self.basis.shape[0]

    @property
    def k(self) -> int:
        """The subspace dimension."""
        return self.basis.shape[1]

    @property
    def explained_fraction(self) -> float:
        """sum(eigenvalues) / total_variance, the fraction of the variance in the subspace (1 for
        data of zero variance)."""
        tv = self.total_variance
        return float(min(1.0, np.sum(self.eigenvalues) / tv)) if tv > 0 else 1.0

    @property
    def explained_cumulative(self) -> np.ndarray:
        """(k,) the fraction of the variance captured by the first 1, 2, ..., k directions."""
        tv = self.total_variance
        return np.minimum(np.cumsum(self.eigenvalues) / tv, 1.0) if tv > 0 else np.ones(self.k)

    def project(self, X) -> np.ndarray:
        """Coordinates of ``X`` in the subspace: (X - mean) @ basis.

        **Arguments:**
        - ``X``: (N, d) points or one point (d,), real and finite.

        **Returns:** (N, k) (or (k,)) float64 coordinates; streamed over row chunks, so no
        centred copy of a large ``X`` is made.
        """
        X = np.asarray(X)
        single = X.ndim == 1
        if single:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"X must have shape (N, {self.dim}) or ({self.dim},), got shape {np.shape(X)}")
        X = _check_data("X", X)
        Z = np.empty((X.shape[0], self.k), np.float64)
        for s, A in _centred_chunks(X, self.mean, np.float64):
            Z[s : s + A.shape[0]] = A @ self.basis
        return Z[0] if single else Z

    def lift(self, z) -> np.ndarray:
        """Points of the ambient space with subspace coordinates ``z``: mean + z @ basis.T.

        **Arguments:**
        - ``z``: (N, k) coordinates or one (k,) vector, finite.

        **Returns:** (N, d) (or (d,)) float64. ``lift(project(X))`` is the orthogonal projection of
        ``X`` onto the affine subspace mean + span(basis); ``project(lift(z)) == z``.
        """
        z = np.asarray(z, np.float64)
        single = z.ndim == 1
        if single:
            z = z[None, :]
        if z.ndim != 2 or z.shape[1] != self.k:
            raise ValueError(f"z must have shape (N, {self.k}) or ({self.k},), got shape {np.shape(z)}")
        if not np.isfinite(z).all():
            raise ValueError("z must be finite (no NaN or inf)")
        Y = self.mean[None, :] + z @ self.basis.T
        return Y[0] if single else Y

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no basis): eigenvalues, total variance, explained fraction."""
        return dict(
            k=self.k, dim=self.dim, n_points=self.n_points, method=self.method, n_passes=self.n_passes,
            eigenvalues=self.eigenvalues.tolist(), total_variance=float(self.total_variance),
            explained_fraction=self.explained_fraction,
        )


def principal_subspace(
    X,
    k: int,
    *,
    seed: int = 0,
    n_iter: int = 8,
    oversample: int | None = None,
    tol: float = 1e-9,
    method: str = "auto",
    dtype=None,
) -> PrincipalSubspace:
    """The top-k principal subspace of the rows of ``X`` (eigenpairs of the population covariance).

    ``method="exact"`` forms the d x d covariance (1/N) sum_n (y_n - mean)(y_n - mean)^T chunk by
    chunk in float64 and diagonalises it (``np.linalg.eigh``): O(N d^2 + d^3) time, O(d^2)
    memory. ``method="randomized"`` is subspace iteration on the covariance operator (Halko,
    Martinsson & Tropp 2011, Algorithm 4.4 with Rayleigh-Ritz extraction): a Gaussian d x l test
    matrix (l = k + ``oversample``), then ``n_iter`` power iterations Q <- orth(C Q), where every
    product C Q = (1/N) sum_chunks A_c^T (A_c Q) is one streamed pass over row chunks A_c of the
    centred data (centred on the fly, one chunk of at most 32 MiB at a time). Each pass also yields
    the Rayleigh-Ritz eigenvalues of Q^T C Q; the iteration stops early once every one of the top
    k changes by at most ``tol`` relative between passes. Time O(passes x 4 N d l), memory
    O(d l + 32 MiB): no d x d matrix and no centred copy of ``X``. The eigenvalue error decays like
    (lambda_{l+1} / lambda_k)^(2 n_iter) (quickly for data with a spectral gap; image data with a
    slowly decaying spectrum may want a larger ``oversample``). ``"auto"`` (default) is
    ``"exact"`` for d <= 512 (where it is the cheaper of the two) and ``"randomized"`` above.

    Working precision: float64, except for floating inputs of at most 32 bits with more than 2^26
    entries (e.g. N = 70000, d = 4096 in float32, 1.1 GB), whose passes run as float32 GEMMs
    (half the time and memory of float64; eigenvalues then carry ~1e-6 relative rounding); the
    Rayleigh-Ritz problems and the returned record are always float64. The mean and the total
    variance are accumulated in float64.

    **Arguments:**
    - ``X``: (N, d) data, real and finite (any integer or floating dtype; not copied).
    - ``k``: number of principal directions, an integer in [1, min(N, d)].
    - ``seed``: seed of the Gaussian test matrix (randomized method), an integer >= 0.
    - ``n_iter``: maximum number of power iterations (randomized; n_iter + 1 passes over the data
      at most), an integer in [1, 100].
    - ``oversample``: extra directions p of the sketch (randomized), an integer >= 0; default
      max(10, k // 2). The sketch width l = min(k + p, d).
    - ``tol``: relative change of the Ritz values that stops the iteration early, in [0, 1)
      (0: always run ``n_iter`` iterations).
    - ``method``: ``"auto"``, ``"exact"`` or ``"randomized"``.
    - ``dtype``: working precision of the passes over the data, ``None`` (the rule above),
      ``np.float32`` or ``np.float64``.

    **Returns:** a ``PrincipalSubspace`` (``mean``, ``basis``, ``eigenvalues``,
    ``total_variance``, ``explained_fraction``, ``project``, ``lift``).

    Reference: Halko, Martinsson & Tropp (2011), SIAM Review 53(2), 217-288, Algorithm 4.4 and
    section 5.3.
    """
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    X = _check_data("X", X)
    n, d = X.shape
    k = _check_int("k", k, 1, min(n, d), "min(N, d)")
    seed = _check_int("seed", seed, 0)
    n_iter = _check_int("n_iter", n_iter, 1, 100)
    if oversample is None:
        oversample = max(10, k // 2)
    oversample = _check_int("oversample", oversample, 0)
    tol = _check_float("tol", tol, 0.0, 1.0, lo_open=False, hi_open=True)
    if dtype is None:
        small_float = np.issubdtype(X.dtype, np.floating) and X.dtype.itemsize <= 4
        wdtype = np.dtype(np.float32) if small_float and X.size > _FLOAT32_MIN_ENTRIES else np.dtype(np.float64)
    else:
        wdtype = np.dtype(dtype)
        if wdtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be None, float32 or float64, got {dtype!r}")
    if method == "auto":
        method = "exact" if d <= EXACT_MAX_DIM else "randomized"

    mean = X.mean(axis=0, dtype=np.float64)
    if method == "exact":
        return _exact(X, mean, k)
    return _randomized(X, mean, k, min(d, k + oversample), n_iter, tol, seed, wdtype)


def _exact(X, mean, k):
    n, d = X.shape
    C = np.zeros((d, d), np.float64)
    sumsq = 0.0
    for _, A in _centred_chunks(X, mean, np.float64):
        C += A.T @ A
        sumsq += float(np.vdot(A, A))
    C /= n
    evals, V = np.linalg.eigh(C)
    evals, V = evals[::-1][:k], V[:, ::-1][:, :k]
    return PrincipalSubspace(
        mean=mean, basis=_sign_fix(np.ascontiguousarray(V)), eigenvalues=np.maximum(evals, 0.0),
        total_variance=sumsq / n, n_points=n, method="exact", n_passes=1,
    )


def _randomized(X, mean, k, l, n_iter, tol, seed, wdtype):
    n, d = X.shape
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((d, l)))[0]
    sumsq = 0.0
    prev = None
    passes = 0
    for it in range(n_iter + 1):
        Qw = Q.astype(wdtype, copy=False)
        Z = np.zeros((d, l), wdtype)
        for _, A in _centred_chunks(X, mean, wdtype):
            if it == 0:
                sumsq += float(np.einsum("ij,ij->", A, A, dtype=np.float64))
            Z += A.T @ (A @ Qw)
        passes += 1
        Z = Z.astype(np.float64) / n  # C Q
        B = Q.T @ Z
        evals, U = np.linalg.eigh(0.5 * (B + B.T))  # Rayleigh-Ritz on span(Q)
        evals, U = evals[::-1], U[:, ::-1]
        ritz = evals[:k]
        if it >= 2 and tol > 0:
            floor = 1e-12 * max(float(ritz[0]), 0.0)
            if np.all(np.abs(ritz - prev) <= tol * np.maximum(np.abs(ritz), floor)):
                break
        prev = ritz
        if it < n_iter:
            Q = np.linalg.qr(Z)[0]
    V = Q @ U[:, :k]  # orthonormal to rounding (Q and U are)
    return PrincipalSubspace(
        mean=mean, basis=_sign_fix(np.ascontiguousarray(V)), eigenvalues=np.maximum(ritz, 0.0),
        total_variance=sumsq / n, n_points=n, method="randomized", n_passes=passes,
    )


# ============================================================================ choosing k
def subspace_dimension(
    evals_or_subspace,
    *,
    fraction: float = DEFAULT_FRACTION,
    k_min: int = DEFAULT_K_MIN,
    k_max: int = DEFAULT_K_MAX,
    total_variance: float | None = None,
) -> int:
    """The dimension k of the principal subspace in which to compute the first split.

    Rule: the smallest k whose top-k eigenvalues capture at least ``fraction`` of the total
    variance, clipped to [``k_min``, ``k_max``] and to the number of eigenvalues available. If
    the eigenvalues given are a truncated spectrum (a ``PrincipalSubspace``, or ``total_variance``
    passed) that does not reach ``fraction``, the answer is min(k_max, number available).

    Why this rule: the first split happens at a temperature of the order of the top eigenvalue
    (it is the instability lambda_max(Cov[y|x]) = T of the free energy), and the directions
    dropped by the projection enter the posterior only through the squared residual norms
    |P_perp(y_n - mean)|^2, whose spread shrinks with the discarded variance. Measured on the UCI
    digits (d = 64, float32, ``first_split_temperature(FiniteDataset(P), max_starts=64)`` with P
    the data projected on the top k components; full answer 178.51): k = 8 (67.4% of the
    variance) gives 133.76 (-25%), k = 16 (84.9%) 162.63 (-8.9%), k = 32 (96.6%) 176.13 (-1.3%),
    k = 48 (99.9%) 178.38 (-0.07%). The projected answer approaches the full one from below with
    a relative error below the discarded variance fraction; 95% (k = 29 for the digits) brings it
    to the few-percent accuracy of the rest of the analysis. The cap ``k_max`` = 64 bounds the
    cost, O(N k^3) time and O(min(N, 4096) k^2 + k^3) memory (``analysis_cost``: ~0.3 GB and
    ~10 minutes at 1e10 flop/s for N = 70000, k = 64).

    **Arguments:**
    - ``evals_or_subspace``: a ``PrincipalSubspace`` (its eigenvalues and total variance) or a
      1-D array of covariance eigenvalues (any order; negative round-off is clipped to 0), taken
      as the full spectrum unless ``total_variance`` is given.
    - ``fraction``: target fraction of the variance, in (0, 1].
    - ``k_min``, ``k_max``: bounds on k, integers with 1 <= k_min <= k_max.
    - ``total_variance``: the trace of the covariance (> 0) when the eigenvalues are truncated.

    **Returns:** an int k.
    """
    if isinstance(evals_or_subspace, PrincipalSubspace):
        ev = np.asarray(evals_or_subspace.eigenvalues, np.float64)
        tv = evals_or_subspace.total_variance if total_variance is None else total_variance
    else:
        ev = np.asarray(evals_or_subspace)
        if not (np.issubdtype(ev.dtype, np.integer) or np.issubdtype(ev.dtype, np.floating)):
            raise TypeError(f"evals_or_subspace must be a PrincipalSubspace or a real 1-D array, got dtype {ev.dtype}")
        if ev.ndim != 1 or ev.size < 1:
            raise ValueError(f"evals_or_subspace must be a non-empty 1-D array of eigenvalues, got shape {ev.shape}")
        if not np.isfinite(ev).all():
            raise ValueError("evals_or_subspace must be finite (no NaN or inf)")
        ev = ev.astype(np.float64)
        tv = total_variance
    fraction = _check_float("fraction", fraction, 0.0, 1.0)
    k_min = _check_int("k_min", k_min, 1)
    k_max = _check_int("k_max", k_max, k_min)
    if tv is not None and not isinstance(evals_or_subspace, PrincipalSubspace):
        tv = _check_float("total_variance", tv, 0.0)
    ev = np.sort(np.maximum(ev, 0.0))[::-1]
    avail = ev.size
    total = float(np.sum(ev)) if tv is None else float(tv)
    if not total > 0:
        return max(1, min(k_min, avail))
    cum = np.cumsum(ev) / total
    hit = np.nonzero(cum >= fraction * (1 - 1e-12))[0]
    k = int(hit[0]) + 1 if hit.size else avail
    return max(1, min(max(k, k_min), k_max, avail))


# ============================================================================ cost model
class StageCost(NamedTuple):
    """Estimated floating-point operations and peak working memory (bytes) of one stage."""

    flops: float
    bytes: float


# Settings of ``analyze`` (thermodiff/_analyze.py) the cost model assumes: (quick, full).
_FS_STARTS = (8, 16)  # max_starts of the first split; the descent is vmapped over 2x this
_FS_TEMPERATURES = (36, 48)  # temperatures visited: grid scan, continuation, bisection (rtol 1e-2, 1e-3)
_FS_NEWTON = 4  # Newton steps per temperature (calibrated: digits projected to k = 8..64, see below)
_FS_POLISH = 8  # Moore-Spence Newton iterations
_CHUNK = 4096  # FiniteDataset chunk_size: the logits of a batch are B x min(N, chunk)
_SIM = (  # (cloning temperatures, pairs, steps, trajectories, trajectory steps, entropy grid, entropy samples)
    (6, 128, 40, 96, 80, 13, 128),
    (10, 384, 80, 256, 160, 25, 256),
)
DEFAULT_FLOPS_PER_SECOND = 1e10  # a sustained rate for this mixed workload on a few CPU cores


@dataclasses.dataclass(frozen=True)
class AnalysisCost:
    """Estimated cost of the stages of ``thermodiff analyze`` (see ``analysis_cost``).

    ``stages`` maps a stage name to its ``StageCost`` (flops, bytes):
    ``"spectrum"`` (dense covariance + eigh), ``"spectrum_subspace"`` (randomized top-k),
    ``"first_split"`` (full dimension d), ``"first_split_subspace"`` (dimension k, projection
    included), ``"simulation"`` (every exact-score evaluation of the cloning, collapse and
    trajectory stages). Times are flops / ``flops_per_second``.
    """

    n: int
    d: int
    k: int
    quick: bool
    itemsize: int
    flops_per_second: float
    stages: dict[str, StageCost]
    score_evaluations: int

    def seconds(self, stage: str) -> float:
        """Estimated wall time of ``stage`` in seconds."""
        if stage not in self.stages:
            raise ValueError(f"stage must be one of {tuple(self.stages)}, got {stage!r}")
        return self.stages[stage].flops / self.flops_per_second

    def fits(self, stage: str, memory_budget: float = 2e9, time_budget: float | None = None) -> bool:
        """Whether ``stage`` fits ``memory_budget`` bytes (and ``time_budget`` seconds, if given)."""
        if stage not in self.stages:
            raise ValueError(f"stage must be one of {tuple(self.stages)}, got {stage!r}")
        memory_budget = _check_float("memory_budget", memory_budget, 0.0)
        if time_budget is not None:
            time_budget = _check_float("time_budget", time_budget, 0.0)
        ok = self.stages[stage].bytes <= memory_budget
        return bool(ok and (time_budget is None or self.seconds(stage) <= time_budget))

    def full_first_split_fits(self, memory_budget: float = 2e9, time_budget: float | None = 300.0) -> bool:
        """Whether the full-dimensional first split fits the budgets (default 2 GB, 5 minutes);
        if not, compute it in the principal subspace of dimension ``k``."""
        return self.fits("first_split", memory_budget, time_budget)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the settings and, per stage, flops, bytes and seconds."""
        return dict(
            n=self.n, d=self.d, k=self.k, quick=self.quick, itemsize=self.itemsize,
            flops_per_second=self.flops_per_second, score_evaluations=self.score_evaluations,
            stages={s: dict(flops=c.flops, bytes=c.bytes, seconds=self.seconds(s)) for s, c in self.stages.items()},
        )


def _first_split_cost(n: int, d: int, quick: bool, itemsize: int) -> StageCost:
    lanes = 2 * _FS_STARTS[not quick]
    n_t = _FS_TEMPERATURES[not quick]
    m = 2 * d + 1
    # descent: per lane, temperature and Newton step a posterior covariance (2 N d^2), an eigh of
    # the d x d Hessian (~9 d^3) and a line search of a few denoiser calls (~5 x 4 N d)
    descent = n_t * lanes * _FS_NEWTON * (2.0 * n * d * d + 9.0 * d**3 + 20.0 * n * d)
    # polish: per Newton iteration a forward-mode Jacobian (m tangents of the posterior
    # covariance, ~4 N d^2 each), a least-squares solve (~4 m^3) and 12 trial residuals
    polish = _FS_POLISH * (m * 4.0 * n * d * d + 4.0 * m**3 + 12 * 2.0 * n * d * d)
    chunk = min(n, _CHUNK)
    mem_descent = lanes * (chunk * d + 4.0 * d * d) * itemsize
    # jacfwd materialises the m tangents of the (chunk x d) weighted centred points (twice) and of
    # the d x d covariance: fitted to XLA's compiled temporary sizes (float32, N = 1797,
    # d = 64..400: 0.12, 0.63, 2.03, 5.14 GB) within 5%
    mem_polish = (2.0 * m * chunk * d + m * d * d + m * m) * itemsize
    data = n * d * itemsize
    return StageCost(flops=descent + polish, bytes=data + max(mem_descent, mem_polish))


def analysis_cost(
    n: int,
    d: int,
    *,
    k: int | None = None,
    quick: bool = False,
    flops_per_second: float | None = None,
    itemsize: int = 4,
) -> AnalysisCost:
    """Order-of-magnitude flops and memory of the stages of ``thermodiff analyze``.

    The model (constants from the code of ``analyze`` and ``first_split``; estimates, good to a
    factor of a few, meant for deciding what to run, not for benchmarking):

    - spectrum (dense): covariance 2 N d^2 + eigh ~10 d^3 flops; 3 d^2 float64 bytes.
    - spectrum_subspace (``principal_subspace``, 9 passes, l = k + max(10, k // 2)):
      9 x 4 N d l flops; (3 d l + 32 MiB) bytes.
    - first_split at dimension D (D = d, or k for the subspace, plus the projection 2 N d k):
      the descent runs 2 S starts (S = 8 quick, 16 full) over ~36 / 48 temperatures with ~4
      Newton steps, each a posterior covariance (2 N D^2) and an eigh (~9 D^3); the Moore-Spence
      polish, ~8 iterations, builds a (2D+1) x (2D+1) Jacobian by forward mode, 2D+1 tangents of
      the posterior covariance (~(2D+1) 4 N D^2 flops), and solves it (~4 (2D+1)^3). Memory: the
      larger of the descent (2S (M D + 4 D^2)) and the Jacobian's tangents
      (2 (2D+1) M D + (2D+1) D^2, M = min(N, 4096) the chunk of points), plus the data N D, times
      ``itemsize``: O(M D^2 + D^3) memory, O(N D^3) time. Calibration (digits, N = 1797): XLA's
      compiled temporaries for D = 64..400 match the memory within 5% (D = 784: ~21 GB in
      float32; the 11.6 GB reported by an out-of-memory error is one of its buffers); the flops
      at D = 8..64 ran at 1.3-1.9e10 flop/s on 2 shared cores.
    - simulation: every exact-score evaluation of one state costs ~4 N d flops (logits and the
      weighted mean); a batch of B states holds B x min(N, 4096) logits. The count of evaluations
      follows analyze's settings (cloning: temperatures x 2 pairs x steps, trajectories x steps,
      the entropy grid).

    **Arguments:**
    - ``n``, ``d``: number of points and dimension, integers >= 1.
    - ``k``: subspace dimension, an integer in [1, d]; default min(d, 64).
    - ``quick``: the settings of ``analyze --quick``.
    - ``flops_per_second``: sustained rate (> 0) for converting flops to seconds; default 1e10.
      ``measure_matmul_rate()`` gives this machine's float32 GEMM rate, an optimistic bound.
    - ``itemsize``: bytes per float of the JAX stages, 4 (float32, as analyze) or 8.

    **Returns:** an ``AnalysisCost`` (``stages``, ``seconds(stage)``, ``fits(stage, ...)``,
    ``full_first_split_fits(...)``, ``to_dict()``).
    """
    n = _check_int("n", n, 1)
    d = _check_int("d", d, 1)
    k = min(d, DEFAULT_K_MAX) if k is None else _check_int("k", k, 1, d, "d")
    quick = bool(quick)
    rate = DEFAULT_FLOPS_PER_SECOND if flops_per_second is None else _check_float("flops_per_second", flops_per_second, 0.0)
    if itemsize not in (4, 8) or isinstance(itemsize, bool):
        raise ValueError(f"itemsize must be 4 (float32) or 8 (float64), got {itemsize!r}")

    spectrum = StageCost(2.0 * n * d * d + 10.0 * d**3, 3.0 * d * d * 8)
    l = min(d, k + max(10, k // 2))
    spectrum_sub = StageCost(9 * 4.0 * n * d * l, 3.0 * d * l * 8 + _CHUNK_BYTES)
    fs_full = _first_split_cost(n, d, quick, itemsize)
    fs_k = _first_split_cost(n, k, quick, itemsize)
    fs_sub = StageCost(fs_k.flops + 2.0 * n * d * k, fs_k.bytes)

    n_tc, pairs, steps, n_traj, traj_steps, n_ent, ent_samples = _SIM[not quick]
    evals = n_tc * (2 * pairs * steps + 4 * pairs + pairs) + n_traj * traj_steps + n_ent * ent_samples
    batch = max(2 * pairs, 4 * pairs, n_traj, ent_samples)
    sim = StageCost(4.0 * evals * n * d, (batch * min(n, _CHUNK) + 2 * batch * d + n * d) * itemsize)
    stages = {
        "spectrum": spectrum, "spectrum_subspace": spectrum_sub, "first_split": fs_full,
        "first_split_subspace": fs_sub, "simulation": sim,
    }
    return AnalysisCost(n=n, d=d, k=k, quick=quick, itemsize=itemsize, flops_per_second=rate, stages=stages,
                        score_evaluations=int(evals))


def measure_matmul_rate(size: int = 1024, repeats: int = 5) -> float:
    """This machine's float32 matrix-multiply rate with NumPy, in flops per second.

    Times ``a @ b`` for two ``size`` x ``size`` float32 matrices (2 size^3 flops) ``repeats``
    times after one warm-up and returns the median rate: a peak GEMM rate, so an optimistic
    ``flops_per_second`` for ``analysis_cost`` (the first split's eighs and small batched products
    run several times slower).

    **Arguments:**
    - ``size``: matrix size, an integer in [16, 8192].
    - ``repeats``: timed repetitions, an integer in [1, 100].

    **Returns:** flops per second (float).
    """
    size = _check_int("size", size, 16, 8192)
    repeats = _check_int("repeats", repeats, 1, 100)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2.0 * size**3 / max(float(np.median(times)), 1e-9)


__all__ = [
    "AnalysisCost",
    "PrincipalSubspace",
    "StageCost",
    "analysis_cost",
    "measure_matmul_rate",
    "principal_subspace",
    "subspace_dimension",
]
