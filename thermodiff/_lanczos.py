"""Lanczos with full reorthogonalisation: extreme eigenpairs from matrix-vector products (theory 12).

For a symmetric d x d operator A known only through v -> A v (for the score Jacobian: one JVP of
the denoiser, theory section 12), m steps build an orthonormal Krylov basis Q (m x d) and the
tridiagonal T_m = Q A Q^T, whose extreme eigenvalues (Ritz values) converge first to the extreme
eigenvalues of A. Memory is O(m d): A is never formed.

Every new direction is orthogonalised twice against all of Q ("twice is enough", Parlett), so no
spurious copies of converged eigenvalues appear. When the Krylov space closes (an invariant
subspace: beta_j at rounding level, which happens after a few steps for data with a few distinct
variances) the next direction is a fresh random vector orthogonal to Q and beta_j is set to 0: the
iteration goes on in the complement, so repeated eigenvalues come out with their multiplicity
(a single Krylov space holds only one copy of each).

Reference: B. N. Parlett, "The Symmetric Eigenvalue Problem" (SIAM, 1998), chapters 12-13;
G. H. Golub & C. F. Van Loan, "Matrix Computations" (4th ed.), section 10.1.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from ._custom_types import Array, Key


class LanczosResult(NamedTuple):
    """Ritz pairs of ``lanczos``.

    - ``eigenvalues``: (k,) Ritz values, ascending.
    - ``vectors``: (d, k) Ritz vectors (orthonormal columns) or None.
    - ``residuals``: (k,) |A v - theta v| of each Ritz pair, |beta_m s_{m,i}|; for a symmetric A
      some eigenvalue lies within the residual of each Ritz value (and within residual^2/gap).
    - ``aux``: the sum over the m steps of the auxiliary output of ``matvec``.

    Under jit: a pytree of arrays.
    """

    eigenvalues: Array
    vectors: Array | None
    residuals: Array
    aux: Any


def _orth(Q: Array, w: Array) -> Array:
    return w - Q.T @ (Q @ w)


def lanczos(matvec: Callable, d: int, dtype, k: int, m: int, *, which: str, key: Key,
            vectors: bool = False) -> LanczosResult:
    """The k smallest or largest eigenpairs of a symmetric operator from m Lanczos steps.

    **Arguments:**
    - ``matvec``: v -> (A v, aux), A symmetric d x d; ``aux`` is any pytree of arrays, summed
      over the steps (e.g. an asymmetry estimate).
    - ``d``, ``dtype``: size and floating dtype of the vectors.
    - ``k``: number of eigenpairs, 1 <= k <= m; ``m``: Lanczos steps, k <= m <= d (m = d gives
      the whole spectrum to rounding).
    - ``which``: ``"smallest"`` or ``"largest"``; ``key``: PRNG key of the start and restart
      vectors; ``vectors``: also return the Ritz vectors.

    **Returns:** a ``LanczosResult``; eigenvalues ascending in both cases.
    Under jit: jittable and vmappable (fixed m, no data-dependent control flow); NaN in A gives NaN.
    """
    k_start, k_restart = jax.random.split(key)
    q0 = jax.random.normal(k_start, (d,), dtype)
    q0 = q0 / jnp.linalg.norm(q0)
    aux0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(lambda q: matvec(q)[1], q0))
    eps = jnp.finfo(dtype).eps
    tol = 10.0 * (d ** 0.5) * eps  # relative to |A|: below it beta is rounding, the Krylov space closed
    tiny = jnp.finfo(dtype).tiny

    def step(j, carry):
        Q, alpha, beta, q, q_prev, b_prev, scale, aux = carry
        Q = Q.at[j].set(q)
        w, a_aux = matvec(q)
        aux = jax.tree.map(jnp.add, aux, a_aux)
        scale = jnp.maximum(scale, jnp.linalg.norm(w))
        a = jnp.dot(q, w)
        w = _orth(Q, _orth(Q, w - a * q - b_prev * q_prev))
        b = jnp.linalg.norm(w)
        r = _orth(Q, _orth(Q, jax.random.normal(jax.random.fold_in(k_restart, j), (d,), dtype)))
        r = r / jnp.maximum(jnp.linalg.norm(r), tiny)
        fresh = b <= tol * scale
        q_next = jnp.where(fresh, r, w / jnp.where(fresh, 1.0, b))
        b = jnp.where(fresh, jnp.zeros_like(b), b)
        return Q, alpha.at[j].set(a), beta.at[j].set(b), q_next, q, b, scale, aux

    zero = jnp.zeros((), dtype)
    init = (jnp.zeros((m, d), dtype), jnp.zeros((m,), dtype), jnp.zeros((m,), dtype), q0,
            jnp.zeros((d,), dtype), zero, zero, aux0)
    Q, alpha, beta, _, _, _, _, aux = jax.lax.fori_loop(0, m, step, init)
    off = beta[: m - 1]
    Tm = jnp.diag(alpha) + jnp.diag(off, 1) + jnp.diag(off, -1)
    theta, S = jnp.linalg.eigh(Tm)
    idx = jnp.arange(k) if which == "smallest" else jnp.arange(m - k, m)
    S = S[:, idx]
    residuals = jnp.abs(beta[m - 1] * S[m - 1, :])
    V = Q.T @ S if vectors else None
    return LanczosResult(theta[idx], V, residuals, aux)


__all__ = ["LanczosResult", "lanczos"]
