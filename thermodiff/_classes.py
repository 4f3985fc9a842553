"""How many classes has an unlabelled dataset? k-means with the gap statistic.

``thermodiff analyze`` needs class labels for the cloning probability and the commitment tables
(theory section 10). When the data come without labels, ``infer_classes`` estimates them: k-means
(k-means++ seeding, several restarts, Lloyd iterations) for k = 1..max_classes, and the number of
classes chosen by the gap statistic of Tibshirani, Walther & Hastie (2001),

    Gap(k) = E*[log W*_k] - log W_k,    W_k = sum_r D_r / (2 n_r) = within-cluster sum of squares,

with the expectation over B reference sets drawn uniformly in the bounding box of the data in
its principal-component coordinates (the paper's recommended variant (b)), and k the smallest
within one standard error of the largest gap, Gap(k) >= Gap(k*) - s_{k*}, k* = argmax Gap,
s_k = sd_k sqrt(1 + 1/B) (the "first SE max" rule, the default of R's ``cluster::clusGap``). The
gap statistic can choose k = 1 (no class structure), unlike criteria that compare k >= 2 only.

Everything is host-side NumPy and deterministic given the seed. For speed with large data
(d up to a few thousand, N up to ~10^5 on two CPU cores) the data are first projected on their
top principal components (at most ``max_components``, computed by randomized subspace iteration
when d is large, never a d x d eigendecomposition), and the gap statistic and the k-means fits
run on a random subsample of at most ``max_points`` points; every point is then assigned to its
nearest centre.

Reference: R. Tibshirani, G. Walther and T. Hastie (2001), "Estimating the number of clusters in
a data set via the gap statistic", J. R. Stat. Soc. B 63(2), 411-423,
https://doi.org/10.1111/1467-9868.00293; k-means++: D. Arthur and S. Vassilvitskii (2007),
"k-means++: the advantages of careful seeding", SODA 2007, 1027-1035; randomized SVD:
N. Halko, P.-G. Martinsson and J. A. Tropp (2011), SIAM Review 53(2), 217-288.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

SINGLE_CLASS_CAVEAT = "no class structure: cloning probability and commitment tables are not meaningful"

_CHUNK = 8192  # rows per block when scanning or projecting the full data
_MAX_ITER = 100  # Lloyd iterations per k-means run (stops earlier on convergence)
_TOL = 1e-4  # k-means convergence: squared centre shift <= _TOL * mean variance per coordinate
_REFINE_ITERS = 20  # Lloyd iterations on all points after a subsample fit
_OVERSAMPLE = 10  # randomized SVD: extra columns
_POWER_ITERS = 4  # randomized SVD: subspace iterations
_RANK_RTOL = 1e-10  # singular values below this fraction of the largest count as zero


class GapStatistic(NamedTuple):
    """The gap statistic of Tibshirani, Walther & Hastie (2001) for k = 1..K (see ``infer_classes``).

    - ``ks``: (K,) int64, the candidate numbers of classes 1..K.
    - ``gap``: (K,) Gap(k) = mean_b log W*_kb - log W_k (``+inf`` where W_k = 0, i.e. the data
      have at most k distinct points; NaN where not computed).
    - ``s``: (K,) the standard errors s_k = sd_k sqrt(1 + 1/B), sd_k the standard deviation
      (divisor B) of log W*_kb over the B reference sets.
    - ``log_w``: (K,) log W_k of the data (W_k the within-cluster sum of squares of the best
      k-means fit, in principal-component coordinates).
    - ``log_w_ref``: (K, B) log W*_kb of each uniform reference set.
    """

    ks: np.ndarray
    gap: np.ndarray
    s: np.ndarray
    log_w: np.ndarray
    log_w_ref: np.ndarray

    @property
    def n_refs(self) -> int:
        """B, the number of reference sets."""
        return int(self.log_w_ref.shape[1])

    def rows(self) -> list[dict]:
        """One JSON-able dict per k: ``k``, ``gap``, ``s``, ``log_w``, ``e_log_w_ref`` (None if not finite)."""
        e_ref = self.log_w_ref.mean(axis=1) if self.log_w_ref.shape[1] else np.full(len(self.ks), np.nan)

        def f(x):
            x = float(x)
            return x if math.isfinite(x) else None

        return [dict(k=int(k), gap=f(g), s=f(s), log_w=f(w), e_log_w_ref=f(e))
                for k, g, s, w, e in zip(self.ks, self.gap, self.s, self.log_w, e_ref)]


@dataclasses.dataclass(frozen=True, eq=False)
class ClassInference:
    """Inferred classes of an unlabelled dataset (see ``infer_classes``).

    - ``labels``: (N,) int64 in 0..n_classes-1, numbered in order of first appearance in the data
      (point 0 is in class 0).
    - ``n_classes``: k, the number of classes (every label 0..k-1 occurs).
    - ``method``: one sentence saying how k was chosen (for a report).
    - ``gap``: the ``GapStatistic`` table for the candidate k (values and standard errors s_k).
    - ``caveat``: ``None``, or a sentence to print next to the results: too few points per
      candidate class, no class structure (k = 1: ``SINGLE_CLASS_CAVEAT``), the gap statistic
      still rising at the largest candidate k, ... (several joined by "; ").
    - ``n_components``: number of principal components the clustering used.
    - ``n_fit``: number of points the gap statistic and k-means were fitted on (N, or the size
      of the random subsample).
    """

    labels: np.ndarray
    n_classes: int
    method: str
    gap: GapStatistic
    caveat: str | None
    n_components: int
    n_fit: int

    def summary(self) -> dict:
        """A JSON-able dict of everything except the labels (class sizes instead)."""
        return dict(n_classes=int(self.n_classes), method=self.method, caveat=self.caveat,
                    class_sizes=np.bincount(self.labels, minlength=self.n_classes).tolist(),
                    n_components=int(self.n_components), n_fit=int(self.n_fit),
                    gap=self.gap.rows())


# ============================================================================ validation
def _check_int(name: str, value, lo: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int >= {lo} (allowed range: {name} >= {lo}), got {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be an int >= {lo} (allowed range: {name} >= {lo}), got {value!r}")
    return int(value)


def _check_data(X) -> np.ndarray:
    try:
        X = np.asarray(X)
    except Exception as err:
        raise ValueError(f"X must be a 2-D numeric array (N points x d features), "
                         f"got {type(X).__name__}") from err
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (N points x d features), got shape {X.shape}")
    real = np.issubdtype(X.dtype, np.number) and not np.issubdtype(X.dtype, np.complexfloating)
    if not (real or X.dtype == np.bool_):
        raise ValueError(f"X must be a real numeric array, got dtype {X.dtype}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have N >= 1 points and d >= 1 features (allowed range: N >= 1, d >= 1), "
                         f"got shape {X.shape}")
    if np.issubdtype(X.dtype, np.inexact):
        for i in range(0, X.shape[0], _CHUNK):
            if not np.isfinite(X[i:i + _CHUNK]).all():
                raise ValueError("X must be finite (no NaN or inf)")
    return X


def _rng(key_or_seed) -> np.random.Generator:
    """A NumPy generator from an int seed >= 0 or a JAX PRNG key (typed or raw uint32 (2,))."""
    msg = (f"key_or_seed must be an int >= 0 (allowed range: key_or_seed >= 0) or a single JAX PRNG "
           f"key, got {key_or_seed!r}")
    if isinstance(key_or_seed, (bool, np.bool_)):
        raise ValueError(msg)
    if isinstance(key_or_seed, (int, np.integer)):
        if key_or_seed < 0:
            raise ValueError(msg)
        return np.random.default_rng(int(key_or_seed))
    dtype = getattr(key_or_seed, "dtype", None)
    if dtype is None:
        raise ValueError(msg)
    try:
        import jax

        if jax.numpy.issubdtype(dtype, jax.dtypes.prng_key):
            key_or_seed = jax.random.key_data(key_or_seed)
        words = np.asarray(key_or_seed)
    except Exception as err:
        raise ValueError(msg) from err
    if words.dtype != np.uint32 or words.shape != (2,):
        raise ValueError(msg)
    return np.random.default_rng([int(w) for w in words])


# ============================================================================ principal components
def _orthonormal(Z: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the columns of ``Z`` (n, l), from the eigenvectors of its small
    Gram matrix, twice (like CholeskyQR2); directions below 1e-12 of the largest are dropped."""
    for _ in range(2):
        w, U = np.linalg.eigh(np.einsum("ni,nj->ij", Z, Z))  # no BLAS: small and fast
        keep = w > 1e-12 * w[-1]
        Z = Z @ (U[:, keep] / np.sqrt(w[keep]))
    return Z


def _top_components(Xc: np.ndarray, q: int, rng: np.random.Generator) -> np.ndarray:
    """(d, r) orthonormal top principal axes of the centred ``Xc`` (n, d); r <= q (zero directions dropped)."""
    n, d = Xc.shape
    m = min(n, d)
    ell = min(m, q + _OVERSAMPLE)
    if not np.any(Xc):
        return np.zeros((d, 0))
    if m <= 4 * ell:  # small: the exact thin SVD costs no more than the randomized one
        _, s, vt = np.linalg.svd(Xc, full_matrices=False)
        V = vt.T
    else:  # randomized subspace iteration (Halko, Martinsson & Tropp 2011, algorithm 4.4)
        Q = _orthonormal(Xc @ rng.standard_normal((d, ell)))
        for _ in range(_POWER_ITERS):
            Q = _orthonormal(Xc @ _orthonormal(Xc.T @ Q))
        B = Q.T @ Xc  # (l, d): Xc ~ Q B; B B^T = U diag(s^2) U^T, right singular vectors B^T U / s
        w, U = np.linalg.eigh(B @ B.T)
        w, U = w[::-1], U[:, ::-1]
        keep = w > 1e-12 * w[0]  # below: round-off of s^2
        s = np.sqrt(w[keep])
        V = (B.T @ U[:, keep]) / s
    if s.size == 0 or not s[0] > 0:
        return np.zeros((d, 0))
    r = int(min(q, np.sum(s > _RANK_RTOL * s[0])))
    return np.ascontiguousarray(V[:, :r])


def _project(X: np.ndarray, mu: np.ndarray, V: np.ndarray) -> np.ndarray:
    """(X - mu) V as float64 (n, r), block by block (never a float64 copy of a large X).

    Single-precision data (float16/32, small integers, bools) are projected in float32, the
    rest in float64."""
    small = X.dtype in (np.float16, np.float32, np.bool_) or (
        np.issubdtype(X.dtype, np.integer) and X.dtype.itemsize <= 2)
    dt = np.float32 if small else np.float64
    Vd = V.astype(dt)
    out = np.empty((X.shape[0], V.shape[1]))
    for i in range(0, X.shape[0], _CHUNK):
        out[i:i + _CHUNK] = np.asarray(X[i:i + _CHUNK], dt) @ Vd
    out -= mu @ V
    return out


# ============================================================================ k-means
# The products here are many small ones (one per run); they use einsum's own loops and
# bincount, not BLAS: a threaded BLAS on small stacked products is slow on busy machines.
def _nearest(Yt: np.ndarray, yy: np.ndarray, C: np.ndarray):
    """Nearest centre of each point: ``(labels, sqdist)``, both (A, n).

    ``Yt`` (A, q, n) the points of A runs (coordinates first), ``yy`` (A, n) their squared
    norms, ``C`` (A, k, q) the runs' centres.
    """
    H = np.einsum("akq,aqn->akn", C, Yt)
    H *= -2.0
    H += np.einsum("akq,akq->ak", C, C)[:, :, None]  # |c|^2 - 2 c.y: same argmin as |y - c|^2
    best = H[:, 0].copy()
    lab = np.zeros(best.shape, np.intp)
    closer = np.empty(best.shape, bool)
    for j in range(1, C.shape[1]):
        np.less(H[:, j], best, out=closer)
        np.putmask(lab, closer, j)
        np.minimum(best, H[:, j], out=best)
    best += yy
    return lab, np.maximum(best, 0.0, out=best)


def _cell_means(Yt: np.ndarray, lab: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Means (A, k, q) of the points of each label; an empty cell keeps its centre from ``C``."""
    A, q, n = Yt.shape
    k = C.shape[1]
    flat = (np.arange(A)[:, None] * k + lab).reshape(-1)
    cnt = np.bincount(flat, minlength=A * k).reshape(A, k, 1)
    Yc = Yt.transpose(1, 0, 2).reshape(q, -1)  # (q, A n), one copy
    sums = np.stack([np.bincount(flat, weights=Yc[j], minlength=A * k) for j in range(q)], -1)
    return np.where(cnt > 0, sums.reshape(A, k, q) / np.maximum(cnt, 1), C)


def _lloyd(Yt: np.ndarray, yy: np.ndarray, C: np.ndarray, tol: np.ndarray, max_iter: int) -> np.ndarray:
    """Lloyd iterations for A runs from centres ``C`` (A, k, q); a run stops when the squared
    shift of its centres is <= its ``tol`` (A,). Returns the final centres."""
    C = C.copy()
    act = np.arange(C.shape[0])
    Ya, yya = Yt, yy
    for _ in range(max_iter):
        Ca = C[act]
        newC = _cell_means(Ya, _nearest(Ya, yya, Ca)[0], Ca)
        shift = ((newC - Ca) ** 2).sum(axis=(-1, -2))
        C[act] = newC
        go = shift > tol[act]
        if not go.all():
            act = act[go]
            if act.size == 0:
                break
            Ya, yya = Ya[go], yya[go]
    return C


def _kmeans(Y: np.ndarray, k: int, n_init: int, rng: np.random.Generator):
    """Best of ``n_init`` k-means++/Lloyd runs on each of S datasets ``Y`` (S, n, q) at once.

    Returns ``(W, C)``: (S,) within-cluster sums of squares of the best run of each dataset and
    (S, k, q) its centres. Runs leave the batch as they converge (squared centre shift below
    ``_TOL`` times the mean variance per coordinate of their dataset).
    """
    S, n, q = Y.shape
    ds = np.repeat(np.arange(S), n_init)  # dataset of each run
    A = ds.size
    Yt = np.ascontiguousarray(Y.transpose(0, 2, 1))[ds]  # (A, q, n)
    yy = np.einsum("aqn,aqn->an", Yt, Yt)
    ar = np.arange(A)
    # k-means++ seeding (Arthur & Vassilvitskii 2007), all runs together
    C = np.empty((A, k, q))
    C[:, 0] = Yt[ar, :, rng.integers(n, size=A)]
    D2 = _nearest(Yt, yy, C[:, :1])[1]  # (A, n)
    for j in range(1, k):
        cum = np.cumsum(D2, axis=-1)
        u = rng.random(A) * cum[:, -1]
        idx = np.minimum((cum <= u[:, None]).sum(-1), n - 1)  # first point with cum > u
        C[:, j] = Yt[ar, :, idx]
        np.minimum(D2, _nearest(Yt, yy, C[:, j:j + 1])[1], out=D2)
    tol = _TOL * Y.var(axis=1).mean(axis=-1)[ds]  # (A,)
    C = _lloyd(Yt, yy, C, tol, _MAX_ITER)
    lab = _nearest(Yt, yy, C)[0]
    own = np.take_along_axis(C, lab[..., None], axis=1)  # (A, n, q)
    W = ((Yt.transpose(0, 2, 1) - own) ** 2).sum(axis=(-1, -2)).reshape(S, n_init)  # exact, no cancellation
    best = W.argmin(axis=1)
    return W[np.arange(S), best], C.reshape(S, n_init, k, q)[np.arange(S), best]


def _relabel(lab: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..k-1 in order of first appearance."""
    _, first, inv = np.unique(lab, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inv.reshape(-1)].astype(np.int64)


# ============================================================================ public
def infer_classes(X, *, max_classes: int = 10, key_or_seed=0, n_refs: int = 10, n_init: int = 4,
                  max_components: int = 20, max_points: int = 3000) -> ClassInference:
    """Infer the number of classes of unlabelled data and label them (k-means + gap statistic).

    Projects the data on their top principal components, runs k-means (k-means++ seeding,
    ``n_init`` restarts, Lloyd iterations) for k = 1..K with K = min(max_classes, n // 2) (n the
    number of points fitted), and picks k by the gap statistic of Tibshirani, Walther & Hastie
    (2001) against ``n_refs`` reference sets uniform in the bounding box of the data in
    principal-component coordinates: the smallest k whose Gap(k) lies within one standard error of
    the largest gap, Gap(k) >= Gap(k*) - s_{k*} with k* = argmax Gap (the "first SE max" rule of
    R's clusGap; the paper's "smallest k with Gap(k) >= Gap(k+1) - s_{k+1}" stops at k = 1 on
    clusters at the corners of a simplex, where merging them in pairs barely lowers W). k = 1 means no class structure. For N > ``max_points`` everything is fitted
    on a random subsample of ``max_points`` points, the chosen k's centres are refined by Lloyd
    iterations on all points and every point is assigned to its nearest centre. Host-side NumPy,
    deterministic given ``key_or_seed``; d = 2048, N = 3000 takes a few seconds on two CPU cores.

    **Arguments:**
    - ``X``: (N, d) real finite data, N >= 1 points (any real dtype; not copied to float64 as a
      whole).
    - ``max_classes``: largest candidate number of classes, an int >= 1. With fewer than 2
      points per candidate class (N < 2 max_classes) the candidates stop at N // 2 and the result
      carries a caveat.
    - ``key_or_seed``: an int seed >= 0 or a JAX PRNG key (typed or raw) for the subsample, the
      random projections, the k-means++ seeding and the reference sets.
    - ``n_refs``: B, number of uniform reference sets, an int >= 2 (the paper uses 10 to 20).
    - ``n_init``: k-means restarts per k and per dataset (the best is kept), an int >= 1.
    - ``max_components``: at most this many principal components are used, an int >= 1.
    - ``max_points``: fit on a random subsample of this many points when N is larger, an
      int >= 2.

    **Returns:** a ``ClassInference``: ``labels`` (N,) int64 in 0..k-1 (in order of first
    appearance), ``n_classes`` k, ``method`` (one sentence for a report), ``gap`` (the
    ``GapStatistic`` table: Gap(k) and s_k per candidate k), ``caveat`` (None or a sentence),
    ``n_components``, ``n_fit``.

    Reference: R. Tibshirani, G. Walther and T. Hastie (2001), "Estimating the number of
    clusters in a data set via the gap statistic", J. R. Stat. Soc. B 63(2), 411-423.
    """
    X = _check_data(X)
    max_classes = _check_int("max_classes", max_classes, 1)
    n_refs = _check_int("n_refs", n_refs, 2)
    n_init = _check_int("n_init", n_init, 1)
    max_components = _check_int("max_components", max_components, 1)
    max_points = _check_int("max_points", max_points, 2)
    rng = _rng(key_or_seed)

    N, d = X.shape
    caveats = []
    nan1 = np.full(1, np.nan)
    no_gap = GapStatistic(np.ones(1, np.int64), nan1, nan1.copy(), nan1.copy(), np.full((1, n_refs), np.nan))

    def single(why: str, method: str, n_fit: int, q: int = 0) -> ClassInference:
        caveat = f"{why}; {SINGLE_CLASS_CAVEAT}"
        return ClassInference(np.zeros(N, np.int64), 1, method, no_gap, caveat, q, n_fit)

    if N == 1:
        return single("a single data point", "k = 1: a single data point is one class.", 1)

    # subsample, centre, principal components
    if N > max_points:
        fit_idx = np.sort(rng.choice(N, size=max_points, replace=False))
        Xs = np.asarray(X[fit_idx], np.float64)
    else:
        fit_idx = None
        Xs = np.array(X, np.float64)
    n = Xs.shape[0]
    mu = Xs.mean(axis=0)
    Xs -= mu
    V = _top_components(Xs, max_components, rng)
    q = V.shape[1]
    if q == 0:
        what = f"all {n} {'' if fit_idx is None else 'subsampled '}points are identical"
        return single(what, f"k = 1: {what}, so they form one class.", n, 0)
    Y = Xs @ V  # (n, q), centred principal-component coordinates
    del Xs

    # candidate k and reference sets uniform in the bounding box
    K = min(max_classes, n // 2)
    if K < max_classes:  # N < 2 max_classes (or a tiny max_points)
        caveats.append(f"only {n} points{' fitted' if fit_idx is not None else ''} for up to {max_classes} "
                       f"candidate classes (fewer than 2 points per candidate class), so k was limited to "
                       f"at most {K} and the inferred class structure is unreliable")
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    refs = lo + (hi - lo) * rng.random((n_refs, n, q))
    data = np.concatenate([Y[None], refs], axis=0)  # (1 + B, n, q)
    del refs

    # Gap(k) for every candidate k, then the "first SE max" rule
    rows, centres = [], {}
    for k in range(1, K + 1):
        if k == 1:
            W = ((data - data.mean(axis=1, keepdims=True)) ** 2).sum(axis=(1, 2))
            centres[1] = Y.mean(axis=0)[None]
        else:
            W, Cs = _kmeans(data, k, n_init, rng)
            centres[k] = Cs[0]
        with np.errstate(divide="ignore"):
            rows.append(np.log(W))  # log W_k = -inf (Gap = +inf) when the data have <= k distinct points
    logW = np.array(rows)
    log_w, log_w_ref = logW[:, 0], logW[:, 1:]
    gap = log_w_ref.mean(axis=1) - log_w
    s = log_w_ref.std(axis=1) * math.sqrt(1.0 + 1.0 / n_refs)
    table = GapStatistic(np.arange(1, len(rows) + 1, dtype=np.int64), gap, s, log_w, log_w_ref)
    k_best = int(np.argmax(np.where(np.isfinite(gap), gap, -np.inf)) + 1) if np.isfinite(gap).any() else 1
    if np.isinf(gap).any():  # at most k distinct points: the first infinite gap is exact
        k_best = int(np.argmax(np.isinf(gap)) + 1)
    k = int(np.argmax(gap >= gap[k_best - 1] - s[k_best - 1]) + 1) if np.isfinite(gap[k_best - 1]) else k_best
    levelled = k_best < K
    # labels of all points: nearest centre in principal-component coordinates (after a
    # subsample fit, the centres are first refined by Lloyd iterations on all points)
    if k == 1:
        labels = np.zeros(N, np.int64)
    else:
        Yall = Y if fit_idx is None else _project(X, mu, V)
        Yt = np.ascontiguousarray(Yall.T)[None]
        yy = np.einsum("aqn,aqn->an", Yt, Yt)
        C = centres[k][None]
        if fit_idx is not None:
            C = _lloyd(Yt, yy, C, np.array([_TOL * Yall.var(axis=0).mean()]), _REFINE_ITERS)
        labels = _relabel(_nearest(Yt, yy, C)[0][0])
    n_classes = int(labels.max()) + 1

    # the sentence for the report
    rule = ("the smallest k whose Gap(k) is within one standard error s of the largest gap, "
            "the 'first SE max' rule of Tibshirani et al. as used by R's clusGap")
    plural = lambda m: "s" if m > 1 else ""  # noqa: E731
    method = (f"k = {n_classes} of the candidates 1..{K} by the gap statistic of Tibshirani, Walther & "
              f"Hastie (2001) ({rule}), for k-means (k-means++, {n_init} restart{plural(n_init)}) on the "
              f"top {q} principal component{plural(q)} against {n_refs} reference sets uniform in their "
              f"bounding box")
    if fit_idx is not None:
        method += (f", fitted on a random subsample of {n} of the {N} points, the centres refined on all "
                   f"points and every point assigned to its nearest centre")
    method += "."
    if K == 1:
        method = (f"k = 1: only one candidate class (max_classes = {max_classes}, N = {N}), so no choice "
                  f"was made (Gap(1) of the gap statistic of Tibshirani, Walther & Hastie (2001) on the top "
                  f"{q} principal component{plural(q)} is reported).")
    if not levelled and 1 < K == max_classes:
        caveats.append(f"the gap statistic was largest at k = {K}, the largest candidate: there may be "
                       f"more classes (raise max_classes)")
    if n_classes == 1:
        caveats.append(SINGLE_CLASS_CAVEAT)
    return ClassInference(labels, n_classes, method, table, "; ".join(caveats) if caveats else None, q, n)


__all__ = ["ClassInference", "GapStatistic", "SINGLE_CLASS_CAVEAT", "infer_classes"]
