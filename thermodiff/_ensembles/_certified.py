"""A finite dataset with a certified sublinear denoiser (theory section 14: exact scores at scale).

Below the speciation temperature the posterior w_n(x, T) lives on few points, so most of the N
logits are provably negligible. ``CertifiedDataset`` stores a static-shape group index
(``thermodiff._index``: G groups of S points with centres c_g and radii r_g) and evaluates the
denoiser m_T(x) = sum_n u_n y_n / sum_n u_n, u_n = pi_n exp(-|x - y_n|^2/(2T)), from the K groups
whose bound is largest, with a guaranteed error:

    |m_hat - m|_2 <= 2R B/(U_hat - B) <= tol R,

where U_hat = sum of the kept u_n, B = sum over the other groups of W_g exp(-max(0, |x - c_g| -
r_g)^2/(2T)) >= their total weight (W_g = sum of the group's pi_n), and R = max_n |y_n - mu| the
data radius about the data mean mu. Derivation: m - m_hat = sum_n (u_n - u_hat_n)(y_n - m_hat)/
sum_n u_n (the kept terms have u_hat = u; sum_n u_hat_n (y_n - m_hat) = 0), |y_n - m_hat| <= 2R
(both lie in the ball of radius R about mu, m_hat being a convex combination of points) and
sum_n u_n >= U_hat - B. The error is relative to R, the scale of the denoiser's range: m lies in
the convex hull of the data, and |m| itself can be 0 (a symmetric dataset at its centre), so no
bound relative to |m| can exist.

Above the speciation point (hot) the weights are spread over every group but vary slowly inside
each: a group can then be *expanded* instead of pruned (the fast Gauss transform of Greengard &
Strain): with z = (x - c_g)/sqrt(2T), exp(-|x - y_n|^2/(2T)) = e^{-|z|^2} sum_beta
(delta_n/sqrt(2T))^beta/beta! H_beta(z) (Hermite polynomials, delta_n = y_n - c_g), truncated at
total degree p, so the group's two sums need only its moments sum_n pi_n delta_n^beta/beta!
(|beta| <= p + 1), built once with the index (independent of x and T). Its error is bounded by
W_g e^{-|z|^2} tail_p(eps, rho), eps = |x - c_g| r_g/T, rho = r_g^2/(2T) (tail of the series of
exp(eps s + rho s^2) beyond s^p, at s = 1), and used only where it keeps every u_hat_n > 0. The
certificate is unchanged with B = the pruned groups' bounds + the expanded groups' remainders:
m_hat is still the convex combination sum u_hat y/sum u_hat. Every group is pruned, expanded or
summed exactly, whichever residual is smaller, the K largest residuals exactly.

A state whose certificate fails is evaluated by the exact streaming path of ``FiniteDataset``.
Under ``jax.vmap`` (the sampler's batches) a per-state ``lax.cond`` would become a select that runs
both branches; a ``jax.custom_batching.custom_vmap`` rule sees the whole batch instead: it runs the
certified path for every state, then evaluates only the failing ones densely, ``max_fallback`` at a
time (a ``lax.while_loop`` whose trip count is the number of failures / max_fallback; none when all
pass). When no state of the batch can pass (hot temperatures), the exact groups are not gathered.
Nested vmaps (keys x temperatures) are flattened into one batch by the same rule.
"""

from __future__ import annotations

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, RealScalarLike, Vector
from .._index import GroupIndex, build_index, default_group_size
from .._validate import check_int, check_key, check_real, check_scalar, concrete
from ._finite import _NEG, FiniteDataset

_HI = jax.lax.Precision.HIGHEST


def _check_tol(tol) -> float:
    check_scalar("tol", tol, what="a tolerance in (0, 1)")
    t = float(tol)
    if not (math.isfinite(t) and 0 < t < 1):
        raise ValueError(f"tol must lie in (0, 1) (an error relative to the data radius R), got {tol!r}")
    return t


def _expansion_order(expansion, d: int):
    if isinstance(expansion, str) and expansion == "auto":
        if d > 8:
            return None
        return max(p for p in range(1, 7) if math.comb(p + d, d) <= 80 or p == 1)
    if expansion is None:
        return None
    if isinstance(expansion, (bool, str)) or not isinstance(expansion, (int, np.integer)):
        raise TypeError(f'expansion must be "auto", None or an int order in [0, 6], got {expansion!r}')
    return check_int("expansion", int(expansion), 0, 6)


def _seed(key) -> int:
    if key is None:
        return 0
    check_key("key", key)
    data = jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return int(np.asarray(data, np.uint64).ravel().sum() % (2**63))


class CertifiedDataset(FiniteDataset):
    """A ``FiniteDataset`` whose denoiser is certified and sublinear in N (theory section 14).

    It is a ``FiniteDataset`` (every tool that takes one accepts it; everything but ``denoiser``
    and ``score`` keeps the exact streaming path), plus a group index built once on the host.

    **Arguments:**
    - ``points``, ``weights``, ``chunk_size``: as ``FiniteDataset``.
    - ``tol``: guaranteed error |m_hat - m|_2 <= tol R, R = max_n |y_n - mean| (default 1e-6),
      in (0, 1). The bound covers the pruning, not floating-point rounding (the kept terms are
      summed in the working precision, like the dense path; in float32 tol R below ~1e-6 R is at
      the rounding level of either path).
    - ``group_size``: S, points per group (default ~sqrt(N/16), a power of two in [16, 256]).
    - ``n_clusters``: k-means clusters cut into groups (default ~sqrt(N/S)); each is cut again by k-means into
      clusters of ~3S/4 points, then bisected into groups.
    - ``max_exact_groups``: K, groups evaluated exactly per state at most (default min(G, 64):
      the exact loop stops as soon as every state that can pass has passed, so a large K costs
      only where it is needed; at N = 10^6, d = 64, S = 256 a cluster of 1000 points spans ~5
      groups and K = 16 left every state of the T = 1 step to the dense fallback, K = 64 none).
    - ``max_fallback``: states evaluated densely at a time when their certificate fails (default 8).
    - ``expansion``: order p of the moment expansion used for groups whose bound allows it (the
      hot regime, theory section 14): an int in [0, 6], None (off), or "auto" (default): the
      largest p <= 6 with C(p + d, d) <= 80 moment terms for d <= 8 (p = 6 at d = 2, 5 at d = 3,
      4 at d = 4, 3 at d = 5, 2 at d = 6..8), off for d > 8 (there |x - c_g| r_g/T is rarely below 1 and the
      moments cost more than the points). Used only when the batch shares one temperature.
    - ``key``: PRNG key for the index construction (default: seed 0; deterministic either way).

    Rounding: the bound covers the truncation (pruned groups, expansion remainders), not the
    rounding of the sums that are kept, which is that of the dense path (about 1e-14 R in
    float64, 1e-6 R in float32, where tol = 1e-6 is therefore at the rounding level): a ``tol``
    below ~1e-12 (float64) certifies nothing more than the dense sum would.

    Memory: the index holds a second, reordered copy of the points (G S d >= N d numbers); a
    batch of B states needs O(B (G + K S d)) temporaries, independent of N beyond the points.

    Under jit: an invalid T or a non-finite x gives NaN. Construction is host-side (not jittable).
    """

    index: GroupIndex
    tol: float = eqx.field(static=True)
    max_exact_groups: int = eqx.field(static=True)
    max_fallback: int = eqx.field(static=True)
    moments: Array | None
    expansion_order: int | None = eqx.field(static=True)

    def __init__(self, points, weights=None, *, tol=1e-6, group_size=None, n_clusters=None,
                 max_exact_groups=None, max_fallback=8, expansion="auto", key=None, chunk_size: int = 4096):
        super().__init__(points, weights, chunk_size=chunk_size)
        self.tol = _check_tol(tol)
        n = self.n_points
        S = default_group_size(n) if group_size is None else check_int("group_size", group_size, 1, 2**16)
        S = min(S, n)
        k = max(1, round(math.sqrt(n / S))) if n_clusters is None else check_int("n_clusters", n_clusters, 1, n)
        max_fallback = check_int("max_fallback", max_fallback, 1, 2**20)
        if max_exact_groups is not None:
            max_exact_groups = check_int("max_exact_groups", max_exact_groups, 1, 2**31 - 1)
        pts, lw = concrete(self.points), concrete(self.log_weights)
        if pts is None or lw is None:
            raise TypeError("CertifiedDataset needs concrete points and weights (build it outside jit)")
        self.index = build_index(pts, lw, group_size=S, n_clusters=k, seed=_seed(key))
        G = self.index.n_groups
        self.max_exact_groups = min(G, 64 if max_exact_groups is None else max_exact_groups)
        self.max_fallback = max_fallback
        self.expansion_order = _expansion_order(expansion, self.points.shape[1])
        self.moments = None
        if self.expansion_order is not None:
            W = _moment_matrix(self.index, self.expansion_order)
            self.moments = jnp.asarray(W.astype(self.index.points.dtype))

    @classmethod
    def from_dataset(cls, ds: FiniteDataset, **kwargs) -> "CertifiedDataset":
        """A ``CertifiedDataset`` with the points and weights of ``ds`` (keyword arguments as the
        constructor; ``chunk_size`` defaults to that of ``ds``)."""
        if not isinstance(ds, FiniteDataset):
            raise TypeError(f"ds must be a FiniteDataset, got {type(ds).__name__}")
        kwargs.setdefault("chunk_size", ds.chunk_size)
        return cls(ds.points, ds.weights, **kwargs)

    # ------------------------------------------------------------------ physics
    def denoiser(self, x: Vector, T: RealScalarLike) -> Vector:
        """m_T(x), certified to |m_hat - m| <= tol R or evaluated densely (theory section 14).

        Differentiation (jax.grad/jvp/jacfwd) goes through the exact streaming path.
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        T = jnp.asarray(T, jnp.result_type(x.dtype, T))
        return _denoise_ad(self, x, T)

    def certified_denoiser(self, x: Vector, T: RealScalarLike) -> tuple[Vector, Array, Array]:
        """(m, error_bound, used_fallback): the denoiser with its certificate (theory section 14).

        ``error_bound`` is the guaranteed |m - m_exact|_2 of the certified path (<= tol R), or 0
        where the state fell back to the dense path (``used_fallback`` True). Not differentiable
        (use ``denoiser``).
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        T = jnp.asarray(T, jnp.result_type(x.dtype, T))
        return _certified_one(self, x, T)

    def _dense(self, x, T):
        return FiniteDataset._first_moments(self, x, T, False)[1]


# ---------------------------------------------------------------------- the moment expansion
# Hot regime (the fast Gauss transform, Greengard & Strain 1991): with y_n = c_g + delta_n,
# z = (x - c_g)/sqrt(2T) and sigma = 1/sqrt(2T), the Hermite generating function gives
#   exp(-|x - y_n|^2/(2T)) = e^{-|z|^2} sum_beta (sigma delta_n)^beta/beta! H_beta(z),
# so the order-p truncation (|beta| <= p) turns a group's sums into its moments
# mu_beta = sum_n pi_n delta_n^beta/beta! (|beta| <= p + 1), independent of x and T: built once.


def _multi_indices(d: int, p: int) -> list:
    """All beta in N^d with |beta| <= p, by degree (static)."""
    out = [(0,) * d]
    for k in range(1, p + 1):
        out += [tuple(sum(1 for j in c if j == i) for i in range(d))
                for c in itertools.combinations_with_replacement(range(d), k)]
    return out


def _moment_matrix(index: GroupIndex, p: int):
    """W (G, n_alpha, 1 + d), float64 on the host, such that the group's expanded sums are
    [sum_n u_hat_n, sum_n u_hat_n delta_n] = e^{-|z|^2} sum_alpha sigma^|alpha| H_alpha(z) W_g[alpha]:
    W_g[alpha] = [mu_alpha, (alpha_i + 1) mu_{alpha + e_i}]."""
    P = np.asarray(index.points, np.float64)
    delta = P - np.asarray(index.centres, np.float64)[:, None, :]
    w = np.exp(np.asarray(index.log_weights, np.float64))
    d = P.shape[-1]
    alphas, betas = _multi_indices(d, p), _multi_indices(d, p + 1)
    pw = [np.ones_like(delta)]
    for k in range(1, p + 2):
        pw.append(pw[-1] * delta / k)  # delta^k / k!
    mu = {b: np.einsum("gs,gs->g", w, np.prod([pw[k][..., i] for i, k in enumerate(b)], axis=0)) for b in betas}
    cols = [np.stack([mu[al] for al in alphas], axis=1)]
    for i in range(d):
        up = [tuple(k + (j == i) for j, k in enumerate(al)) for al in alphas]
        cols.append(np.stack([(al[i] + 1) * mu[u] for al, u in zip(alphas, up)], axis=1))
    return np.stack(cols, axis=-1)


def _contract(z, sigma, W, p: int):
    """sum_alpha sigma^|alpha| H_alpha(z) W[g, alpha] for every state and group: (B, G, C). The
    1-D Hermite polynomials come from H_{k+1} = 2 z H_k - 2k H_{k-1}; the products over dimensions
    are built one factor at a time in an unrolled sum that XLA fuses (no (B, G, n_alpha) array)."""
    d = z.shape[-1]
    h = [jnp.ones_like(z), 2 * sigma * z]  # sigma^k H_k(z_i), (B, G, d)
    for k in range(1, p):
        h.append(2 * sigma * z * h[k] - 2 * k * sigma**2 * h[k - 1])
    mons = {(0,) * d: None}
    out = W[None, :, 0, :] + jnp.zeros(z.shape[:2] + (1,), z.dtype)
    for k, al in enumerate(_multi_indices(d, p)[1:], start=1):
        i = next(j for j, e in enumerate(al) if e)
        rest = tuple(0 if j == i else e for j, e in enumerate(al))
        f = h[al[i]][..., i]
        mons[al] = f if mons[rest] is None else mons[rest] * f
        out = out + mons[al][..., None] * W[None, :, k, :]
    return out


def _tail_log(eps, rho, p: int, extra: int = 8):
    """log of a bound on the tail sum_{k>p} c_k of exp(eps s + rho s^2) = sum_k c_k s^k at s = 1
    (eps, rho >= 0, eps + 2 rho <= 1). The c_k obey (k+1) c_{k+1} = eps c_k + 2 rho c_{k-1};
    scaled by lam^k (lam = max(eps, sqrt(2 rho))) they are summed exactly up to K = p + 1 + extra,
    and beyond K every second term shrinks by q = (eps + 2 rho)/(K + 1): the rest is at most
    2 max(c_{K-1}, c_K) q/(1 - q)."""
    lam = jnp.maximum(jnp.maximum(eps, jnp.sqrt(2 * rho)), 1e-30)
    e1, r1 = eps / lam, 2 * rho / lam**2
    c_prev, c = jnp.zeros_like(eps), jnp.ones_like(eps)
    K = p + 1 + extra
    tail = jnp.zeros_like(eps)
    for k in range(K):  # c <- d_{k+1} (scaled)
        c_prev, c = c, (e1 * c + r1 * c_prev) / (k + 1)
        if k + 1 > p:
            tail = tail + c * lam ** (k + 1 - (p + 1))
    q = (eps + 2 * rho) / (K + 1)
    tail = tail + 2 * jnp.maximum(c, c_prev) * lam ** (K - 1 - (p + 1)) * q / (1 - q)
    return jnp.log(tail) + (p + 1) * jnp.log(lam)


def _expansion(ds, Xc, T):
    """The order-p Hermite expansion of every group for every state (T shared by the batch).

    Returns log_err (B, G): log of a bound on sum_n |u_n - u_hat_n| (+inf where the group cannot
    be expanded), L (B, G) = -|x - c_g|^2/(2T), and dn (B, G, 1 + d) with
    e^L dn = [sum u_hat, sum u_hat y'] (y' centred). Error: for each point, the truncation is that
    of s -> exp(s v.delta - s^2 |delta|^2/(2T)) at s = 1 (degree in delta = degree in s), whose
    coefficients are bounded by those of exp(eps s + rho s^2), eps = |x - c_g| r_g/T, rho =
    r_g^2/(2T); so sum_n |u_n - u_hat_n| <= W_g e^L tail. A group is expanded only where
    eps + 2 rho <= 1 and tail <= e^{-eps - rho}/2, so every u_hat_n > 0 and m_hat stays a convex
    combination of the points.
    """
    index, p = ds.index, ds.expansion_order
    diff = Xc[:, None, :] - index.centres[None, :, :]  # (B, G, d), direct: no GEMM cancellation
    dist2 = jnp.sum(diff * diff, axis=-1)
    r = index.radii[None, :]
    eps = jnp.sqrt(dist2) * r / T * (1 + 1e-5)
    rho = jnp.broadcast_to(r * r / (2 * T), eps.shape) * (1 + 1e-5)
    small = eps + 2 * rho <= 1
    lt = _tail_log(jnp.where(small, eps, 0.25), jnp.where(small, rho, 0.25), p)
    ok = small & (lt <= -(eps + rho) - math.log(2))
    L = -dist2 / (2 * T)
    log_err = jnp.where(ok, L + index.log_group_weights[None, :] + lt, jnp.inf)
    sigma = jax.lax.rsqrt(2 * T)
    z = jnp.where(ok[..., None], diff * sigma, 0)
    dn = _contract(z, sigma, ds.moments, p)
    num = dn[..., 1:] + index.centres[None, :, :] * dn[..., :1]  # sum u_hat (c_g + delta)
    return log_err, L, jnp.concatenate([dn[..., :1], num], axis=-1), ok


# ---------------------------------------------------------------------- the certified batch
def _bounds(index: GroupIndex, Xc, T2):
    """log of the upper bounds W_g exp(-max(0, |x - c_g| - r_g)^2/(2T)), shape (B, G).

    |x - c|^2 comes from one GEMM, lowered by the worst-case rounding of that formula
    (gamma_{d+2} (|x| + |c|)^2, Higham's dot-product bound), so the bounds stay bounds.
    """
    d = Xc.shape[-1]
    u = float(jnp.finfo(Xc.dtype).eps) / 2
    gamma = (d + 3) * u / (1 - (d + 3) * u)
    xn = jnp.sqrt(jnp.sum(Xc * Xc, axis=1))
    cross = jnp.matmul(Xc, index.centres.T, precision=_HI)
    cn = index.centre_norms
    d2 = xn[:, None] ** 2 + cn[None, :] ** 2 - 2 * cross
    d2 = d2 - gamma * (xn[:, None] + cn[None, :]) ** 2
    dmin = jnp.maximum(jnp.sqrt(jnp.maximum(d2, 0.0)) - index.radii[None, :], 0.0)
    return index.log_group_weights[None, :] - dmin * dmin / T2


def _group_terms(index: GroupIndex, Xc, T2, ik):
    """Logits log pi_n - |x - y_n|^2/(2T) of group ik (B,) of each state, and its points."""
    P = index.points[ik]  # (B, S, d)
    diff = Xc[:, None, :] - P
    return index.log_weights[ik] - jnp.sum(diff * diff, axis=-1) / T2, P


def _certified_batch(ds: CertifiedDataset, X, T):
    """The certified path alone on a batch X (B, d), T () or (B,): (m_hat, bound (B,), usage)
    with usage = (groups summed exactly (the same for the batch), groups expanded (B,)).

    Every group is pruned (u_hat = 0, error <= its bound W_g e^{-...}), expanded (order-p Hermite
    expansion, error <= W_g e^{L_g} tail_p(eps_g, rho_g); only with T shared by the batch) or exact.
    Each group's residual is the smaller of its two error bounds; the K groups of largest
    residual are summed exactly in decreasing order (one group for the whole batch per
    iteration, an online log-sum-exp: O(B S d) temporaries) until every state that can pass has
    passed; the expanded groups among the K that were not reached keep their expansion.
    bound = 2R rho/(1 - rho) with rho = (residuals of the groups not summed exactly)/U_hat, inf
    where rho >= 1; it is a valid bound on |m_hat - m| whatever its size.
    """
    index, K = ds.index, ds.max_exact_groups
    B = X.shape[0]
    dt = X.dtype
    Xc = X - index.mean[None, :]
    T2 = 2 * (T if T.ndim == 0 else T[:, None])
    log_ub = _bounds(index, Xc, T2)
    p = ds.expansion_order if T.ndim == 0 else None
    rows = jnp.arange(B)[:, None]
    if p is None:
        log_res = log_ub
    else:
        log_err, Lx, dn, ok = _expansion(ds, Xc, T)
        expand = ok & (log_err < log_ub)  # expanded rather than pruned
        log_res = jnp.minimum(log_ub, log_err)
    top, idx = jax.lax.top_k(log_res, K)  # decreasing residuals
    log_out = jax.nn.logsumexp(log_res.at[rows, idx].set(-jnp.inf), axis=1)
    log_out = jnp.where(K == index.n_groups, -jnp.inf, log_out)
    suffix = jax.lax.cumlogsumexp(top[:, ::-1], axis=1)[:, ::-1]
    suffix = jnp.concatenate([suffix, jnp.full((B, 1), -jnp.inf, top.dtype)], axis=1)
    log_rest = jnp.logaddexp(log_out[:, None], suffix)  # (B, K + 1): left out after j groups
    log_top_ub = jax.nn.logsumexp(jnp.take_along_axis(log_ub, idx, axis=1), axis=1)
    if p is None:
        L0, U0, num0 = jnp.full((B,), _NEG, dt), jnp.zeros((B,), dt), jnp.zeros_like(Xc)
        log_umax = log_top_ub
    else:  # the expanded groups outside the top K, summed once (shifted by their largest L)
        use = expand.at[rows, idx].set(False)
        L0 = jnp.maximum(jnp.max(jnp.where(use, Lx, -jnp.inf), axis=1), _NEG)
        w = jnp.where(use, jnp.exp(Lx - L0[:, None]), 0)
        acc = jnp.einsum("bg,bgc->bc", w, jnp.where(use[..., None], dn, 0), precision=_HI)
        U0, num0 = acc[:, 0], acc[:, 1:]
        # U_hat <= the expanded sum + 2 x (prune bounds of the top K): e^L den <= u + err <= 2 ub
        log_umax = jnp.logaddexp(L0 + jnp.log(U0), math.log(2) + log_top_ub)
    # A pass needs rest <= tol/(2 + tol) U_hat.
    log_tol = math.log(ds.tol / (2 + ds.tol))
    hopeful = log_rest[:, K] - log_umax <= log_tol

    def passed(j, L, U):
        return log_rest[:, j] - L - jnp.log(U) <= log_tol

    def cond(c):
        j, L, U, _ = c
        return (j < K) & jnp.any(hopeful & ~passed(j, L, U))

    def body(c):
        j, L, U, num = c
        logits, P = _group_terms(index, Xc, T2, idx[:, j])
        Lj = jnp.maximum(L, jnp.max(logits, axis=1))
        a, e = jnp.exp(L - Lj), jnp.exp(logits - Lj[:, None])
        num = a[:, None] * num + jnp.einsum("bs,bsd->bd", e, P, precision=_HI)
        return j + 1, Lj, a * U + jnp.sum(e, axis=1), num

    j, L, U, num = jax.lax.while_loop(cond, body, (jnp.asarray(0), L0, U0, num0))
    n_exp = jnp.zeros((B,), jnp.int32)
    if p is not None:  # expanded groups of the top K not reached by the exact loop
        left = jnp.take_along_axis(expand, idx, axis=1) & (jnp.arange(K)[None, :] >= j)
        Lk = jnp.where(left, jnp.take_along_axis(Lx, idx, axis=1), -jnp.inf)
        L1 = jnp.maximum(L, jnp.max(Lk, axis=1))
        wk = jnp.where(left, jnp.exp(Lk - L1[:, None]), 0)
        dnk = jnp.where(left[..., None], jnp.take_along_axis(dn, idx[..., None], axis=1), 0)
        acc = jnp.einsum("bk,bkc->bc", wk, dnk, precision=_HI)
        a = jnp.exp(L - L1)
        L, U, num = L1, a * U + acc[:, 0], a[:, None] * num + acc[:, 1:]
        n_exp = jnp.sum(use, axis=1, dtype=jnp.int32) + jnp.sum(left, axis=1, dtype=jnp.int32)
    m = num / U[:, None] + index.mean[None, :]
    rho = jnp.exp(log_rest[:, j] - L - jnp.log(U))
    bound = jnp.where(rho < 1, 2 * index.radius * rho / (1 - rho), jnp.inf)
    return m, bound, (j, n_exp)


def _evaluate_batch(ds: CertifiedDataset, X, T):
    """Certified path for the batch, then dense for the failing states, max_fallback at a time."""
    m, bound, _ = _certified_batch(ds, X, T)
    fail = ~(bound <= ds.tol * ds.index.radius)  # NaN fails
    B = X.shape[0]
    F = min(ds.max_fallback, B)
    dense = jax.vmap(ds._dense, in_axes=(0, None if T.ndim == 0 else 0))

    def body(carry):
        m, todo = carry
        sel = jnp.nonzero(todo, size=F, fill_value=B)[0]
        at = jnp.minimum(sel, B - 1)
        mf = dense(X[at], T if T.ndim == 0 else T[at])
        return m.at[sel].set(mf, mode="drop"), todo.at[sel].set(False, mode="drop")

    def blocks(m):
        return jax.lax.while_loop(lambda c: jnp.any(c[1]), body, (m, fail))[0]

    def everything(m):  # most states failed (hot phase): one dense pass over the whole batch
        return jnp.where(fail[:, None], dense(X, T), m)

    m = jax.lax.cond(jnp.sum(fail) > max(F, B // 4), everything, blocks, m)
    # a dense fallback is exact (bound 0), unless its result is NaN (an invalid T or x under jit):
    # then the bound is NaN too, so every floating output of that state is NaN
    ok = jnp.all(jnp.isfinite(m), axis=1)
    return m, jnp.where(fail, jnp.where(ok, 0.0, jnp.nan).astype(bound.dtype), bound), fail


@jax.custom_batching.custom_vmap
def _batch(ds, X, T):
    return _evaluate_batch(ds, X, T)


@_batch.def_vmap
def _batch_rule(axis_size, in_batched, ds, X, T):
    """An outer vmap of a batch: flatten (A, B) into one batch of A B states."""
    ds_b, X_b, T_b = in_batched
    if any(jax.tree.leaves(ds_b)):  # a vmap over datasets: no shared index, plain batching
        axes = (jax.tree.map(lambda b: 0 if b else None, ds_b), 0 if X_b else None, 0 if T_b else None)
        return jax.vmap(_evaluate_batch, in_axes=axes)(ds, X, T), (True, True, True)
    B = X.shape[-2]
    if not X_b:
        X = jnp.broadcast_to(X, (axis_size,) + X.shape)
    if T_b or T.ndim:
        T = jnp.broadcast_to(T.reshape(T.shape + (1,) * (T_b and T.ndim == 1)), (axis_size, B))
        T = T.reshape(-1)
    out = _batch(ds, X.reshape(axis_size * B, -1), T)
    out = jax.tree.map(lambda a: a.reshape((axis_size, B) + a.shape[1:]), out)
    return out, (True, True, True)


@jax.custom_batching.custom_vmap
def _certified_one(ds, x, T):
    m, bound, fb = _batch(ds, x[None, :], T)
    return m[0], bound[0], fb[0]


@_certified_one.def_vmap
def _certified_one_rule(axis_size, in_batched, ds, x, T):
    ds_b, x_b, T_b = in_batched
    if any(jax.tree.leaves(ds_b)):
        axes = (jax.tree.map(lambda b: 0 if b else None, ds_b), 0 if x_b else None, 0 if T_b else None)
        return jax.vmap(_certified_one, in_axes=axes)(ds, x, T), (True, True, True)
    X = x if x_b else jnp.broadcast_to(x, (axis_size,) + x.shape)
    return _batch(ds, X, T), (True, True, True)


@jax.custom_jvp
def _denoise_ad(ds, x, T):
    return _certified_one(ds, x, T)[0]


@_denoise_ad.defjvp
def _denoise_ad_jvp(primals, tangents):
    ds, x, T = primals
    return jax.jvp(lambda d_, x_, T_: d_._dense(x_, T_), primals, tangents)


__all__ = ["CertifiedDataset"]
