"""A static-shape group index over a finite dataset (theory section 14: exact scores at scale).

The N points are cut into G groups of exactly S points each (zero-weight padding rows fill the
last group of every cluster), each group with a centre c_g and a radius r_g = max |y_n - c_g|,
so that a state x bounds every member's Gaussian factor from the group alone:

    exp(-|x - y_n|^2 / (2T)) <= exp(-max(0, |x - c_g| - r_g)^2 / (2T)).

Construction (on the host, NumPy, deterministic given the seed): k-means (k-means++ seeding on a
subsample, a few Lloyd iterations with GEMM distances) into about G/16 clusters, then every cluster
is split recursively at the median of its principal axis (power iteration) until each piece holds
at most S points. Clusters follow the data's own structure; the principal-axis bisection keeps the
pieces compact in every direction (a slab cut along one axis would keep the cluster's radius in the
other d - 1). Cost: O(N d (k + log(n_cluster/S))) flops, a few seconds at N = 10^6, d = 64.

The stored points are centred at the data mean mu (y' = y - mu), which keeps the distance GEMMs
accurate for data far from the origin; radii are computed in float64 and rounded up.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array

# Log-weight of padding rows (as in _ensembles/_finite.py): exp(_NEG - finite) == 0.
_NEG = -1e30


class GroupIndex(eqx.Module):
    """Points in G groups of S, with centres and radii (built by :func:`build_index`).

    Fields: ``points`` (G, S, d) centred at ``mean``; ``log_weights`` (G, S), padding = -1e30;
    ``centres`` (G, d) centred; ``centre_norms`` (G,) = |c_g|; ``radii`` (G,) = max |y_n - c_g|
    over the group's points (rounded up); ``log_group_weights`` (G,) = log sum_n pi_n;
    ``mean`` (d,) the data mean mu; ``radius`` () the data radius R = max |y_n - mu| over points of
    positive weight. ``n_groups``, ``group_size`` are static.
    """

    points: Array
    log_weights: Array
    centres: Array
    centre_norms: Array
    radii: Array
    log_group_weights: Array
    mean: Array
    radius: Array
    n_groups: int = eqx.field(static=True)
    group_size: int = eqx.field(static=True)


def _kmeans(X: np.ndarray, k: int, rng: np.random.Generator, iters: int) -> np.ndarray:
    """Labels (N,) of k-means with k-means++ seeding on a subsample and GEMM Lloyd steps."""
    n = X.shape[0]
    if k <= 1:
        return np.zeros(n, np.int64)
    sub = X[rng.choice(n, min(n, max(16 * k, 4096)), replace=False)]
    sub_sq = np.einsum("ij,ij->i", sub, sub)
    centres = np.empty((k, X.shape[1]), X.dtype)
    centres[0] = sub[rng.integers(sub.shape[0])]
    best = np.maximum(sub_sq - 2 * sub @ centres[0] + centres[0] @ centres[0], 0)
    for j in range(1, k):
        tot = best.sum()
        i = rng.choice(sub.shape[0], p=best / tot) if tot > 0 else rng.integers(sub.shape[0])
        centres[j] = sub[i]
        best = np.minimum(best, np.maximum(sub_sq - 2 * sub @ centres[j] + centres[j] @ centres[j], 0))
    # Lloyd steps on a subsample of 64 points per cluster (at least), then one pass over all N.
    fit = X if n <= 64 * k else X[rng.choice(n, 64 * k, replace=False)]
    for it in range(iters + 1):
        data = X if it == iters else fit
        c_sq = np.einsum("ij,ij->i", centres, centres)
        labels = np.concatenate([np.argmin(c_sq[None, :] - 2 * data[s : s + 32768] @ centres.T, axis=1)
                                 for s in range(0, data.shape[0], 32768)])
        if it == iters:
            break
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=k)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        nz = counts > 0
        sums = np.add.reduceat(data[order], starts[nz], axis=0)
        centres[nz] = (sums / counts[nz, None]).astype(X.dtype)
    return labels


def _principal_axis(P: np.ndarray, rng: np.random.Generator, iters: int = 8) -> np.ndarray:
    C = P - P.mean(axis=0)
    v = rng.standard_normal(P.shape[1]).astype(P.dtype)
    for _ in range(iters):
        v = C.T @ (C @ v)
        nv = np.linalg.norm(v)
        if not nv > 0:
            break
        v = v / nv
    return C @ v


def _bisect(X: np.ndarray, idx: np.ndarray, S: int, rng, out: list) -> None:
    """Split the rows ``idx`` at the median of their principal axis into pieces of <= S rows."""
    stack = [idx]
    while stack:
        idx = stack.pop()
        n_groups = -(-idx.size // S)
        if n_groups <= 1:
            out.append(idx)
            continue
        n_left = n_groups // 2
        n_right = n_groups - n_left
        left = int(round(idx.size * n_left / n_groups))
        left = min(max(left, idx.size - n_right * S), n_left * S)
        order = np.argsort(_principal_axis(X[idx], rng), kind="stable")
        stack.append(idx[order[left:]])
        stack.append(idx[order[:left]])


def _split(labels: np.ndarray) -> list:
    """The index arrays of each non-empty label."""
    order = np.argsort(labels, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(labels))])
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def build_index(points, log_weights, *, group_size: int, n_clusters: int, seed: int, iters: int = 3) -> GroupIndex:
    """Build the :class:`GroupIndex` of ``points`` (N, d) with normalised ``log_weights`` (N,).

    Host-side (NumPy): not jittable. ``group_size`` S, ``n_clusters`` for the k-means level,
    ``seed`` for k-means++ and the power iterations, ``iters`` Lloyd iterations.
    """
    Y = np.asarray(points)
    dtype = Y.dtype
    lw = np.asarray(log_weights, np.float64)
    w = np.exp(lw)
    n, d = Y.shape
    rng = np.random.default_rng(seed)
    mean = (w @ Y.astype(np.float64)) / w.sum()
    Yc = (Y.astype(np.float64) - mean).astype(dtype)
    pieces: list = []
    for top in _split(_kmeans(Yc, min(n_clusters, n), rng, iters)):
        # second level: clusters of about 3/4 S points, so most fit one group after padding
        k2 = -(-top.size * 4 // (3 * group_size))
        for sub in _split(_kmeans(Yc[top], min(k2, top.size), rng, iters)):
            _bisect(Yc, top[sub], group_size, rng, pieces)
    G = len(pieces)
    gid = np.zeros((G, group_size), np.int64)
    valid = np.zeros((G, group_size), bool)
    for g, p in enumerate(pieces):
        gid[g, : p.size] = p
        valid[g, : p.size] = True
    P = np.where(valid[..., None], Yc[gid], 0).astype(dtype)
    LW = np.where(valid, np.maximum(lw[gid], _NEG), _NEG)
    P64 = P.astype(np.float64)
    cnt = valid.sum(axis=1)
    centres = (P64 * valid[..., None]).sum(axis=1) / cnt[:, None]
    centres = centres.astype(dtype).astype(np.float64)  # the stored centres, exactly
    dist = np.sqrt(np.sum((P64 - centres[:, None, :]) ** 2, axis=2))
    radii = np.where(valid, dist, 0).max(axis=1) * (1 + 1e-6) + 1e-30
    wg = np.where(valid, np.exp(np.minimum(LW, 0.0)), 0).sum(axis=1)
    log_wg = np.where(wg > 0, np.log(np.maximum(wg, 1e-300)), _NEG) + 1e-6  # rounded up
    pos = w > 0
    R = float(np.sqrt(np.max(np.sum((Y[pos].astype(np.float64) - mean) ** 2, axis=1))))
    up = lambda a: jnp.asarray(np.nextafter(a.astype(dtype), np.asarray(np.inf, dtype)))  # noqa: E731
    return GroupIndex(
        points=jnp.asarray(P),
        log_weights=jnp.asarray(LW.astype(dtype)),
        centres=jnp.asarray(centres.astype(dtype)),
        centre_norms=up(np.linalg.norm(centres, axis=1)),
        radii=up(radii),
        log_group_weights=up(log_wg),
        mean=jnp.asarray(mean.astype(dtype)),
        radius=jnp.asarray(np.asarray(R * (1 + 1e-7), dtype)),
        n_groups=G,
        group_size=int(group_size),
    )


def default_group_size(n: int) -> int:
    """S ~ sqrt(N/16) as a power of two in [16, 256]: balances the O(N d / S) centre distances
    against the O(K S d) exact groups per state."""
    return int(min(256, max(16, 2 ** round(math.log2(max(1.0, math.sqrt(n / 16)))))))


__all__ = ["GroupIndex", "build_index", "default_group_size"]
