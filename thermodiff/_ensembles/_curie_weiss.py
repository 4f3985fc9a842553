"""Diffused Ising / Curie-Weiss data (theory section 3.5), exact at finite N.

The data are N Ising spins y in {-1, +1}^N with law

    phi(y) ∝ exp(J S^2 / (2 N T_d)),    S = sum_i y_i,

and the diffusion posterior p_T(y | x) is a Curie-Weiss magnet in the random field h = x/T.
Everything here is exact at finite N (no mean-field approximation) through the
Hubbard-Stratonovich identity: with a = J/(N T_d),

    exp(a S^2 / 2) = (2 pi a)^{-1/2} ∫ dz exp(-z^2/(2a) + z S),

and given z the spins are independent, sum_y exp(z S + h.y) = prod_i 2 cosh(z + h_i). With
f_h(z) = -z^2/(2a) + sum_i log(2 cosh(z + h_i)),

    log Z_T(x)      = log ∫ e^{f_h} - log ∫ e^{f_0} - N/(2T)             (|y|^2 = N),
    p(z | x)        ∝ e^{f_h(z)},
    E[y_i | x]      = E_z[tanh(z + h_i)],
    Cov[y_i, y_j|x] = Cov_z[t_i, t_j] + delta_ij E_z[1 - t_i^2],   t_i = tanh(z + h_i).

Quadrature (why the grid below is exact to rounding error).

* Support. Every stationary point of f_h satisfies z = a sum_i tanh(z + h_i), so the modes lie in
  |z| <= a N = J/T_d; beyond that f_h'(z) <= -(|z| - J/T_d)/a, so the mass outside
  |z| <= J/T_d + c sqrt(a) is below e^{-c^2/2} relative to the total (the total is at least
  e^{max f} sqrt(2 pi a) because f_h'' >= -1/a). We use c = 13 (e^{-84}). The bound holds for
  any field and any T_d, including the quartic critical case T_d = J, so the margin need not
  scale with the widest posterior width.
* Spacing. e^{f_h} times tanh(u_i) or tanh(u_i) tanh(u_j) (i != j) is an entire function
  (cosh and sinh factors times a Gaussian) whose modulus on the line Im z = d is at most
  e^{d^2/(2a)} times its value on the real axis, so the equispaced (trapezoid) rule with
  spacing h has relative error <= ~exp(-2 pi^2 a / h^2) for all of log Z, m and the off-diagonal
  covariance. We take h <= sqrt(a)/2 (error e^{-8 pi^2} ~ 1e-34). The diagonal Var[y_i] is
  assembled so that it equals 1 - m_i^2 exactly at the quadrature level (y_i^2 = 1), which avoids
  the poles of 1 - tanh^2.

So n_nodes = ceil(4 sqrt(N J / T_d) + 4 c) + 1: about 180 nodes for N = 2000, J = 1, T_d = 2,
and memory O(n_nodes * N) per state (O(n_nodes * N^2) flops for the full posterior covariance).

Data-space quantities (``sample``, ``covariance``, magnetization moments) are exact sums over the
N + 1 magnetization sectors k = number of up spins, P(k) ∝ C(N, k) exp(a (2k - N)^2 / 2).
"""

from __future__ import annotations

import math
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp

from .._custom_types import Array, Key, Matrix, RealScalarLike, Scalar, Vector
from .._validate import MAX_SIZE, concrete
from ._base import AbstractEnsemble, as_float_array

_HI = jax.lax.Precision.HIGHEST

# Quadrature constants (see the module docstring).
_MARGIN = 13.0  # grid half-width = J/T_d + _MARGIN sqrt(a): neglected tail mass < e^{-84}
_SPACING = 0.5  # target spacing in units of sqrt(a): trapezoid error ~ exp(-2 pi^2 / 0.25)
_MAX_SPACING = 0.75  # coarsest spacing accepted (error ~ exp(-2 pi^2 / 0.5625) ~ 6e-16)
# When the parameters are tracers (construction inside jit/vmap/grad) and ``n_nodes`` is not
# given, the grid is sized for J/T_d <= _DEFAULT_RATIO (data temperature down to J/10).
_DEFAULT_RATIO = 10.0


def _largest_n_spins(ratio: float, n_nodes: int | None) -> int:
    """The largest N whose quadrature (n_nodes x N values per state) fits XLA's int32 sizes."""
    if n_nodes is not None:
        return MAX_SIZE // n_nodes
    lo, hi = 1, MAX_SIZE
    while lo < hi:  # N * _required_nodes(N, ratio) grows monotonically in N
        mid = (lo + hi + 1) // 2
        if mid * _required_nodes(mid, ratio) <= MAX_SIZE:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _required_nodes(n_spins: int, ratio: float, spacing: float = _SPACING) -> int:
    """Nodes of the uniform grid on |z| <= r + c sqrt(a) with spacing ``spacing * sqrt(a)``.

    r = J/T_d = a N. The number of intervals is 2 (r + c sqrt(a)) / (spacing sqrt(a)) =
    (2 sqrt(r N) + 2 c) / spacing.
    """
    intervals = (2.0 * math.sqrt(ratio * n_spins) + 2.0 * _MARGIN) / spacing
    return int(math.ceil(intervals - 1e-9)) + 1


@jax.custom_jvp
def _shifted_log2cosh(z: Array, h: Array) -> Array:
    """log(2 cosh(z + h)) - |h|, accurate even when |h| >> |z| (e.g. float32, h = x/T ~ 1e7).

    ``z`` and ``h`` broadcast against each other (nodes (n, 1) against sites (1, N)). The shift
    by |h| is what keeps the Landau free energy O(|x - y|^2) instead of O(|x|^2/T); it uses
    |z + h| - |h| = z (z + 2h) / (|z + h| + |h|), free of cancellation. Derivatives:
    d/dz = tanh(z + h), d/dh = tanh(z + h) - sign(h) (sign(0) = 0, matching ``_abs0``).
    """
    au = jnp.abs(z + h)
    den = jnp.maximum(au + jnp.abs(h), jnp.finfo(au.dtype).tiny)
    return z * (z + 2 * h) / den + jnp.log1p(jnp.exp(-2 * au))


@_shifted_log2cosh.defjvp
def _shifted_log2cosh_jvp(primals, tangents):
    z, h = primals
    dz, dh = tangents
    t = jnp.tanh(z + h)
    return _shifted_log2cosh(z, h), t * dz + (t - jnp.sign(h)) * dh


def _abs0(x: Array) -> Array:
    """|x| whose derivative is sign(x) with sign(0) = 0 (consistent with the shift above)."""
    return x * jnp.sign(x)


def _sech2(u: Array) -> Array:
    """1 - tanh(u)^2 without cancellation: 4 e^{-2|u|} / (1 + e^{-2|u|})^2."""
    e = jnp.exp(-2 * jnp.abs(u))
    return 4 * e / (1 + e) ** 2


@eqx.filter_jit
def _compiled(method: str, ensemble, *args):
    """Run ``ensemble.<method>(*args)`` as one compiled program.

    Eager calls then compile once per (method, N, n_nodes, shapes, dtypes) instead of op by op;
    inside an outer jit/vmap/grad this is inlined. Arguments must already be arrays (Python
    scalars would be static to ``filter_jit``).
    """
    return getattr(ensemble, method)(*args)


def _as_arrays(x, T):
    return jnp.asarray(x), jnp.asarray(T)


def _check_param(name: str, value, what: str) -> Array:
    arr = as_float_array(name, value)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar ({what}), got shape {arr.shape}")
    c = concrete(arr)
    if c is not None and not (np.isfinite(c) and c > 0):
        raise ValueError(
            f"{name} must be finite and > 0 (allowed range: 0 < {name} < inf; {what}), got {c!r}"
        )
    return arr


class CurieWeiss(AbstractEnsemble):
    """Diffused Ising / Curie-Weiss data (theory section 3.5), exact at finite N.

    Spins y in {-1, +1}^N with phi(y) ∝ exp(J S^2 / (2 N T_d)), S = sum_i y_i. The posterior
    p_T(y | x) is a Curie-Weiss magnet at temperature 1 in the random field x/T with coupling
    J/T_d; its mean-field limit is m_i = tanh(J M / T_d + x_i / T) and its critical line
    1/T_c + J/T_d = 1, i.e. T_c = T_d / (T_d - J) for T_d > J (``mean_field_critical_temperature``).
    At finite N the first transition is exactly T_c = lambda_max(C_data) = N E[M^2]
    (constant-norm data, theory section 3.5), the top eigenvalue of ``covariance()``.

    Every posterior quantity is computed exactly (to rounding error) with the
    Hubbard-Stratonovich integral over one auxiliary field z, evaluated by the trapezoid rule on
    a uniform grid whose size is fixed at construction (see the module docstring). Memory is
    O(n_nodes * N) per state; N = 2000 is cheap.

    **Arguments:**

    - ``n_spins``: N, the number of spins, a Python integer >= 1. It is also the dimension d of
      the data space.
    - ``data_temperature``: T_d, finite and > 0.
    - ``coupling``: J, finite and > 0 (J = 0, independent uniform spins, is excluded; the grid
      is scaled by J/T_d). Default 1.
    - ``n_nodes``: optional number of quadrature nodes (an integer >= 3). By default it is
      computed from the concrete parameter values (spacing sqrt(J / (N T_d)) / 2). When the
      module is built inside ``jax.jit``/``jax.vmap``/``jax.grad`` (parameters are tracers) the
      default is sized for J/T_d <= 10; pass ``n_nodes=CurieWeiss.required_nodes(N, T_d_min, J)``
      for colder data. An under-resolved grid raises at run time (``equinox.error_if``) instead
      of returning inaccurate numbers.

    Parameters ``data_temperature`` and ``coupling`` are JAX array fields, so the module can be
    differentiated and vmapped over them (construct it inside the transformed function, or
    differentiate a module built outside with ``equinox.filter_grad``).

    **Returns:** an ``AbstractEnsemble`` of dimension N.

    **References:** L. Ambrogioni, arXiv:2310.17467 (diffused Ising data and the critical line);
    the Hubbard-Stratonovich transform is the textbook solution of the Curie-Weiss model.
    """

    n_spins: int = eqx.field(static=True)
    data_temperature: Array
    coupling: Array
    n_nodes: int = eqx.field(static=True)
    _grid_verified: bool = eqx.field(static=True)

    def __init__(
        self,
        n_spins: int,
        data_temperature: RealScalarLike,
        coupling: RealScalarLike = 1.0,
        *,
        n_nodes: int | None = None,
    ):
        if isinstance(n_spins, bool) or not isinstance(n_spins, numbers.Integral):
            raise ValueError(
                f"n_spins must be a Python integer >= 1 (the number of spins N, a static "
                f"shape), got {n_spins!r} of type {type(n_spins).__name__}"
            )
        if int(n_spins) < 1:
            raise ValueError(f"n_spins must be an integer >= 1, got {n_spins!r}")
        N = int(n_spins)
        T_d = _check_param("data_temperature", data_temperature, "the data temperature T_d")
        J = _check_param("coupling", coupling, "the coupling J; J = 0 is excluded")
        # One dtype for both; a Python-scalar parameter follows the other one (weak typing), so
        # CurieWeiss(N, jnp.float32(2.0)) is a float32 module.
        common = jnp.result_type(T_d, J)
        T_d = T_d if T_d.dtype == common else T_d.astype(common)
        J = J if J.dtype == common else J.astype(common)
        Tc, Jc = concrete(T_d), concrete(J)
        params_known = Tc is not None and Jc is not None
        n_nodes_given = n_nodes is not None
        if n_nodes is not None:
            integral = isinstance(n_nodes, numbers.Integral) and not isinstance(n_nodes, bool)
            if not integral or n_nodes < 3:
                raise ValueError(f"n_nodes must be an integer >= 3, got {n_nodes!r}")
            n_nodes = int(n_nodes)
            if params_known:
                minimum = _required_nodes(N, float(Jc / Tc), _MAX_SPACING)
                if n_nodes < minimum:
                    raise ValueError(
                        f"n_nodes = {n_nodes} under-resolves the quadrature for N = {N}, "
                        f"J/T_d = {float(Jc / Tc):g}: need n_nodes >= {minimum} "
                        f"(default {_required_nodes(N, float(Jc / Tc))})"
                    )
        elif params_known:
            n_nodes = _required_nodes(N, float(Jc / Tc))
        else:
            n_nodes = _required_nodes(N, _DEFAULT_RATIO)
        if N * n_nodes > MAX_SIZE:
            ratio = float(Jc / Tc) if params_known else _DEFAULT_RATIO
            raise ValueError(
                f"n_spins = {N} is too large: one state's quadrature needs n_nodes x n_spins = "
                f"{n_nodes} x {N} values, above XLA's 2**31 - 1 elements; n_spins must be <= "
                f"{_largest_n_spins(ratio, n_nodes if n_nodes_given else None)} at J/T_d = {ratio:g}"
            )
        self.n_spins = N
        self.data_temperature = T_d
        self.coupling = J
        self.n_nodes = n_nodes
        self._grid_verified = params_known

    @staticmethod
    def required_nodes(n_spins: int, data_temperature: float, coupling: float = 1.0) -> int:
        """Default number of quadrature nodes for concrete (N, T_d, J) (module docstring).

        **Arguments:**

        - ``n_spins``: N >= 1.
        - ``data_temperature``: T_d > 0 (pass the smallest T_d of a sweep).
        - ``coupling``: J > 0.

        **Returns:** ceil(4 sqrt(N J / T_d) + 52) + 1, a Python int.
        """
        return _required_nodes(int(n_spins), float(coupling) / float(data_temperature))

    @property
    def dim(self) -> int:
        """Dimension d = N of the data space."""
        return self.n_spins

    # ------------------------------------------------------------------ internals
    def _dtype(self, *args):
        return jnp.result_type(float, self.data_temperature, self.coupling, *args)

    def _grid(self, dtype):
        """Quadrature nodes z_k (shape (n_nodes,)) and 1/a = N T_d / J."""
        N = self.n_spins
        J = self.coupling.astype(dtype)
        T_d = self.data_temperature.astype(dtype)
        ratio = J / T_d  # = a N, bound on the modes
        sqrt_a = jnp.sqrt(ratio / N)
        half_width = ratio + _MARGIN * sqrt_a
        z = half_width * jnp.linspace(-1.0, 1.0, self.n_nodes, dtype=dtype)
        if not self._grid_verified:
            spacing = 2 * half_width / (self.n_nodes - 1)
            z = eqx.error_if(
                z,
                spacing > _MAX_SPACING * sqrt_a,
                "CurieWeiss quadrature grid too coarse for these parameters (J/T_d too large "
                "for the default n_nodes used under jit/vmap/grad); pass "
                "n_nodes=CurieWeiss.required_nodes(N, T_d_min, J)",
            )
        return z, N * T_d / J

    def _log_weights_free(self, z, inv_a):
        """f_0(z) = -z^2/(2a) + N log(2 cosh z) on the grid (no field)."""
        return -0.5 * inv_a * z * z + self.n_spins * _shifted_log2cosh(z, jnp.zeros_like(z))

    def _posterior(self, x, T):
        """Grid posterior over z: (x, T, h, u = z + h of shape (n, N), log-weights f~_h(z))."""
        dtype = self._dtype(x, T)
        x = jnp.asarray(x, dtype)
        T = jnp.asarray(T, dtype)
        h = x / T
        z, inv_a = self._grid(dtype)
        # f~_h(z) = f_h(z) - sum_i |h_i|: the shift is added back analytically.
        logw = -0.5 * inv_a * z * z + jnp.sum(_shifted_log2cosh(z[:, None], h[None, :]), axis=1)
        return x, T, h, z[:, None] + h[None, :], logw, z, inv_a

    def _log_ratio(self, x, T):
        """(x, T, h, log ∫e^{f~_h} - log ∫e^{f_0}): the grid spacing cancels."""
        x, T, h, _, logw, z, inv_a = self._posterior(x, T)
        return x, T, h, logsumexp(logw) - logsumexp(self._log_weights_free(z, inv_a))

    def _moments(self, x, T):
        x, T, h, u, logw, _, _ = self._posterior(x, T)
        w = jax.nn.softmax(logw)
        t = jnp.tanh(u)
        m = jnp.matmul(w, t, precision=_HI)
        return x, T, w, u, t, m

    # ------------------------------------------------------------------ posterior
    def landau(self, x: Vector, T: RealScalarLike) -> Scalar:
        """Landau free energy Phi_T(x) = |x|^2/2 - T log Z_T(x) (theory sections 2 and 3.5).

        Computed as sum_i (|x_i| - 1)^2 / 2 - T [log ∫ e^{f~_h} - log ∫ e^{f_0}], which stays
        O(|x - y|^2) for any x and T (no O(|x|^2/T) cancellation).

        **Arguments:**

        - ``x``: one noisy state, shape (N,).
        - ``T``: temperature (VE-equivalent noise variance), a scalar > 0.

        **Returns:** a scalar.
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return _compiled("_landau", self, *_as_arrays(x, T))

    def _landau(self, x, T):
        x, T, _, log_ratio = self._log_ratio(x, T)
        # sum_i (|x_i| - 1)^2 / 2, written so that autodiff sees |x_i|'s kink only through
        # _abs0 (whose derivative sign(0) = 0 cancels the kink of _shifted_log2cosh at h = 0).
        return 0.5 * jnp.sum(x * x + 1) - jnp.sum(_abs0(x)) - T * log_ratio

    def log_partition(self, x: Vector, T: RealScalarLike) -> Scalar:
        """log Z_T(x) = log E_phi[exp((x.y - N/2)/T)] (theory sections 2 and 3.5).

        Hubbard-Stratonovich: log ∫ e^{f_h} - log ∫ e^{f_0} - N/(2T).

        **Arguments:**

        - ``x``: one noisy state, shape (N,).
        - ``T``: temperature, a scalar > 0.

        **Returns:** a scalar.
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return _compiled("_log_partition", self, *_as_arrays(x, T))

    def _log_partition(self, x, T):
        x, T, h, log_ratio = self._log_ratio(x, T)
        return log_ratio + jnp.sum(_abs0(h)) - 0.5 * self.n_spins / T

    def denoiser(self, x: Vector, T: RealScalarLike) -> Vector:
        """Magnetization / optimal denoiser m_T(x) = E[y | x] (theory sections 2 and 3.5).

        Closed form m_i = E_z[tanh(z + x_i/T)] under the Hubbard-Stratonovich posterior p(z|x).

        **Arguments:**

        - ``x``: one noisy state, shape (N,).
        - ``T``: temperature, a scalar > 0.

        **Returns:** shape (N,), entries in [-1, 1].
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return _compiled("_denoiser", self, *_as_arrays(x, T))

    def _denoiser(self, x, T):
        return self._moments(x, T)[-1]

    def posterior_cov(self, x: Vector, T: RealScalarLike) -> Matrix:
        """Posterior covariance Cov[y | x] = T dm/dx (theory sections 2 and 3.5).

        Closed form Cov_z[t_i, t_j] + delta_ij E_z[1 - t_i^2], t_i = tanh(z + x_i/T); the
        diagonal equals 1 - m_i^2. Cost O(n_nodes N^2).

        **Arguments:**

        - ``x``: one noisy state, shape (N,).
        - ``T``: temperature, a scalar > 0.

        **Returns:** shape (N, N), symmetric positive semi-definite.
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        self._check_square("posterior_cov")
        x, T = self._check(x, T)
        return _compiled("_posterior_cov", self, *_as_arrays(x, T))

    def _posterior_cov(self, x, T):
        _, _, w, u, t, m = self._moments(x, T)
        dt = t - m[None, :]
        # (t - m)^T diag(w) (t - m); no sqrt(w), whose derivative is infinite where w underflows
        cov = jnp.matmul(dt.T, w[:, None] * dt, precision=_HI)
        cov = 0.5 * (cov + cov.T)  # exactly symmetric for eigh and friends
        diag = jnp.matmul(w, _sech2(u), precision=_HI)
        return cov + jnp.diag(diag)

    def energy_moments(self, x: Vector, T: RealScalarLike) -> tuple[Scalar, Scalar]:
        """Posterior mean and variance of E(y) = |y|^2/2 - x.y = N/2 - x.y (theory section 2).

        <E> = N/2 - x.m and Var[E] = x^T Cov[y | x] x, without forming the N x N matrix.

        **Arguments:**

        - ``x``: one noisy state, shape (N,).
        - ``T``: temperature, a scalar > 0.

        **Returns:** ``(mean, variance)``, two scalars.
        Under jit: an invalid T or a non-finite x gives NaN.
        """
        x, T = self._check(x, T)
        return _compiled("_energy_moments", self, *_as_arrays(x, T))

    def _energy_moments(self, x, T):
        x, _, w, u, t, m = self._moments(x, T)
        proj = jnp.matmul(t - m[None, :], x, precision=_HI)  # (n_nodes,)
        diag = jnp.matmul(w, _sech2(u), precision=_HI)
        var = jnp.sum(w * proj * proj) + jnp.sum(x * x * diag)
        return 0.5 * self.n_spins - jnp.sum(x * m), var

    # ------------------------------------------------------------------ data law
    def _sector_log_probs(self) -> tuple[Array, Array]:
        """Magnetization sectors: S_k = 2k - N and normalised log P(k), k = 0..N."""
        N = self.n_spins
        dtype = self._dtype()
        k = jnp.arange(N + 1, dtype=dtype)
        S = 2 * k - N
        a = self.coupling.astype(dtype) / (N * self.data_temperature.astype(dtype))
        logp = gammaln(N + 1.0) - gammaln(k + 1) - gammaln(N - k + 1) + 0.5 * a * S * S
        return S, logp - logsumexp(logp)

    def magnetization_distribution(self) -> tuple[Array, Array]:
        """Exact law of the magnetization M = S/N under phi (theory sections 3.5 and 7).

        **Returns:** ``(M, P)``, both shape (N + 1,): the values M_k = (2k - N)/N, k = number of
        up spins, and their probabilities P(k) ∝ C(N, k) exp(J (2k - N)^2 / (2 N T_d)).
        """
        return _compiled("_magnetization_distribution", self)

    def _magnetization_distribution(self):
        S, logp = self._sector_log_probs()
        return S / self.n_spins, jnp.exp(logp)

    def magnetization_moments(self) -> tuple[Scalar, Scalar]:
        """Exact E[M^2] and E[M^4] of M = S/N under phi (theory sections 3.5 and 7).

        N E[M^2] = lambda_max(C_data) is the exact finite-N critical temperature; the Binder
        cumulant is 1 - E[M^4] / (3 E[M^2]^2). Identical to the finite-M generative bath of
        theory section 7 with M = N, J = 1 and T_d = T.

        **Returns:** ``(E[M^2], E[M^4])``, two scalars.
        """
        return _compiled("_magnetization_moments", self)

    def _magnetization_moments(self):
        M, p = self._magnetization_distribution()
        M2 = M * M
        return jnp.sum(p * M2), jnp.sum(p * M2 * M2)

    def mean_field_critical_temperature(self) -> Scalar:
        """Mean-field (N -> inf) critical line T_c = T_d / (T_d - J) (theory section 3.5).

        **Returns:** a scalar; +inf for T_d <= J, where the data are ordered and the exact
        finite-N T_c = N E[M^2] grows like N.
        """
        T_d, J = self.data_temperature, self.coupling
        gap = T_d - J
        safe = jnp.where(gap > 0, gap, 1.0)
        return jnp.where(gap > 0, T_d / safe, jnp.inf)

    def sample(self, key: Key, n: int) -> Array:
        """``n`` exact i.i.d. samples y ~ phi (theory section 3.5).

        The number of up spins k is drawn from P(k) ∝ C(N, k) exp(J (2k - N)^2 / (2 N T_d)),
        then the k up spins are placed uniformly at random by sequential selection sampling
        (spin i is up with probability (k - ups so far) / (N - i)), which yields exactly k up
        spins in a uniformly random subset, in O(n N) work.

        **Arguments:**

        - ``key``: a JAX PRNG key.
        - ``n``: number of samples, a static int >= 0.

        **Returns:** shape (n, N), entries +-1 in the module's floating dtype.
        """
        n = self._check_sample(key, n)
        return _compiled("_sample", self, key, n)

    def _sample(self, key, n):
        N = self.n_spins
        dtype = self._dtype()
        _, logp = self._sector_log_probs()
        k_key, u_key = jax.random.split(key)
        k = jax.random.categorical(k_key, logp, shape=(n,))
        u = jax.random.uniform(u_key, (N, n), dtype=dtype)
        left = jnp.arange(N, 0, -1, dtype=dtype)  # spins not yet placed: N - i

        def step(remaining, inputs):
            u_i, left_i = inputs
            up = u_i < remaining / left_i  # u in [0, 1): certain when equal, never when 0
            return remaining - up.astype(remaining.dtype), up

        _, up = jax.lax.scan(step, k.astype(dtype), (u, left))
        return jnp.where(up.T, jnp.ones((), dtype), -jnp.ones((), dtype))

    def mean(self) -> Vector:
        """Exact data mean E_phi[y] = 0 by spin-flip symmetry (theory section 3.5).

        **Returns:** zeros of shape (N,).
        """
        return jnp.zeros((self.n_spins,), self._dtype())

    def covariance(self) -> Matrix:
        """Exact data covariance C_ij = delta_ij + (1 - delta_ij) c (theory section 3.5).

        c = (E[S^2] - N) / (N (N - 1)) from the exact sector law. Its top eigenvalue
        1 + (N - 1) c = N E[M^2] is the exact finite-N critical temperature T_c (N = 2000,
        J = 1: T_d = 2 gives 1.9980, T_d = 4 gives 1.3330).

        **Returns:** shape (N, N).
        """
        self._check_square("covariance")
        return _compiled("_covariance", self)

    def _check_square(self, what: str) -> None:
        """An N x N matrix must fit XLA's int32 element count (N <= 46340)."""
        if self.n_spins**2 > MAX_SIZE:
            raise ValueError(
                f"{what} is an n_spins x n_spins matrix: n_spins = {self.n_spins} exceeds 46340 "
                "(2^31 - 1 elements); use the denoiser, log_partition or magnetization law instead"
            )

    def _covariance(self):
        N = self.n_spins
        dtype = self._dtype()
        eye = jnp.eye(N, dtype=dtype)
        if N == 1:
            return eye
        S, logp = self._sector_log_probs()
        c = jnp.sum(jnp.exp(logp) * (S * S - N)) / (N * (N - 1))
        return eye + c * (jnp.ones((N, N), dtype) - eye)


__all__ = ["CurieWeiss"]
