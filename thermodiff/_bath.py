"""The generative bath: M sites sharing one noisy coordinate (theory section 7).

M sites y_1..y_M in R^d, each drawn from the data law phi, share one noisy coordinate x in R^d
with joint weight

    p(x, y_1..y_M) ∝ prod_k phi(y_k) exp(-|x - y_k|^2 / (2T)).

Its two conditionals are exact and cheap (theory section 7):

- given the sites, x ~ N(ybar, (T/M) I) with ybar = (1/M) sum_k y_k;
- given x, the sites are independent draws from the diffusion posterior p_T(y | x) of
  theory section 2 (a heat-bath update of every site).

Integrating out the sites gives the noisy marginal p(x) ∝ exp(-M Phi_T(x) / T) with Phi_T the
Landau free energy of theory section 2: M plays the role of the volume, and mean field (the
stationary points of Phi_T) becomes exact as M -> infinity. Integrating out x instead gives the
site law ∝ prod_k phi(y_k) exp(M |ybar|^2 / (2T) - sum_k |y_k|^2 / (2T)). For two deltas +-mu
(sites y_k = s_k mu, s_k = +-1) this is exactly the Curie-Weiss model of M Ising spins with
coupling J = |mu|^2 at temperature T,

    P(s) ∝ exp(J M m^2 / (2T)),   m = (1/M) sum_k s_k = mu.ybar / |mu|^2,

so finite M is finite-size Curie-Weiss with T_c = J (theory sections 3.1 and 7). Its magnetization
law is a sum over the M + 1 sectors k = number of +mu sites,
P(k) ∝ C(M, k) exp(J M m_k^2 / (2T)), m_k = (2k - M)/M, evaluated here in log space.

The Monte Carlo alternates the two conditionals (a Gibbs sampler of the joint law, so the
sites' stationary law is exactly the one above), or replaces the x draw by an exactly
integrated Langevin step of x in the energy sum_k |x - y_k|^2 / (2T) at fixed sites. One call
simulates one chain with one temperature schedule in a single jitted ``lax.scan``; batch over
temperatures and seeds with ``jax.vmap`` (``run_chains`` does both).

Quench (theory section 7). Near T_c the two-delta chain linearises to m_t = m_{t-1}/T_t + noise of
variance (1 + 1/T_t)/M (J = 1), so its relaxation rate per sweep is ~ |T - 1| (z nu = 1). Cooled
linearly at tau_Q sweeps per unit temperature, with 1 << tau_Q << M, the chain falls out of
equilibrium at |T - T_c| ~ tau_Q^{-1/2} and reaches T_c with M <m^2> -> sqrt(pi tau_Q)
(Kibble-Zurek), far below the equilibrium 1.1708 sqrt(M); for tau_Q >> M it follows the
finite-size equilibrium.
"""

from __future__ import annotations

import functools
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from ._custom_types import Array, Key, RealScalarLike, Vector
from ._ensembles._base import AbstractEnsemble, as_float_array
from ._ensembles._finite import FiniteDataset
from ._ensembles._mixture import GaussianMixture
from ._ensembles._two_deltas import TwoDeltas
from ._random import normal as _normal
from ._validate import (
    check_int,
    check_key,
    check_positive,
    check_temperature,
    check_temperature_scalar,
    concrete,
    guard_temperature,
    is_concrete,
)

_SUPPORTED_MC = (TwoDeltas, FiniteDataset, GaussianMixture)


# ---------------------------------------------------------------------------------- results
class BathMoments(eqx.Module):
    """Exact finite-M statistics of the bath magnetization m (theory section 7).

    m = (1/M) sum_k s_k is the spin average (for two deltas +-mu: mu.ybar/|mu|^2).

    **Fields:**
    - ``m2``, ``m4``, ``abs_m``: <m^2>, <m^4>, <|m|>.
    - ``binder``: the Binder cumulant U = 1 - <m^4> / (3 <m^2>^2); -> 2/3 in the ordered phase,
      -> 0 in the disordered phase, 0.270520... at T_c as M -> infinity.
    - ``susceptibility``: the connected finite-size estimator chi = M (<m^2> - <|m|>^2) / T.
      Below T_c it tends to the self-consistent susceptibility of theory section 2,
      (1 - m*^2) / (T - J (1 - m*^2)) for J = 1 (-> 1/(2(1 - T)) at T_c).
    - ``susceptibility_m2``: M <m^2> / T, which tends to 1/(T - J) above T_c (theory section 2,
      J = 1: 1/(T - 1)); it grows like M below T_c.
    """

    m2: Array
    m4: Array
    abs_m: Array
    binder: Array
    susceptibility: Array
    susceptibility_m2: Array


class BathTrajectory(eqx.Module):
    """One Monte Carlo chain of the generative bath (theory section 7).

    **Fields:**
    - ``temperature``: (n_sweeps,) the temperature used in each sweep.
    - ``x``: (n_sweeps, d) the noisy coordinate after the x update of each sweep.
    - ``site_mean``: (n_sweeps, d) ybar = (1/M) sum_k y_k after the site update of each sweep.
    - ``magnetization``: (n_sweeps,) the order parameter of ``site_mean``: for two deltas +-mu the
      spin average mu.ybar/|mu|^2 (exactly the Curie-Weiss m); for other ensembles the
      standardised projection v.(ybar - E[y]) / sqrt(lambda) on the top eigenpair (lambda, v)
      of the data covariance (sign fixed so that the largest-|.| component of v is positive),
      which reduces to the former for two deltas.
    - ``final_x``: (d,) and ``final_sites``: (M, d), the last state (to continue the chain).
    """

    temperature: Array
    x: Array
    site_mean: Array
    magnetization: Array
    final_x: Array
    final_sites: Array


# ---------------------------------------------------------------------------------- heat bath
def _sample_posterior(ensemble: AbstractEnsemble, key: Key, x: Vector, T, n: int) -> Array:
    """``n`` independent draws y ~ p_T(y | x) (theory section 2), shape (n, d): a heat-bath update.

    Two deltas: y = s mu with P(s = +1) = (1 + tanh(mu.x/T))/2. Finite dataset: a categorical
    draw over the posterior weights w_n(x, T). Gaussian mixture: a component by its
    responsibility, then the Gaussian posterior within it, mean (s_k^2 x + T mu_k)/(s_k^2 + T)
    and variance s_k^2 T/(s_k^2 + T).
    """
    if isinstance(ensemble, TwoDeltas):
        mu = ensemble.mu
        p_up = jax.nn.sigmoid(2 * jnp.dot(mu, x) / T)  # = (1 + tanh(mu.x/T)) / 2
        # One 32-bit word per site (half the random bits of a float64 uniform), keeping the b
        # high bits that the float type represents exactly (b = 32 in float64, 24 in float32):
        # P(u < p 2^b) = ceil(p 2^b) / 2^b, within 2^-b of p.
        b = min(32, jnp.finfo(p_up.dtype).nmant + 1)
        u = (jax.random.bits(key, (n,), jnp.uint32) >> (32 - b)).astype(p_up.dtype)
        s = jnp.where(u < p_up * float(2**b), 1.0, -1.0).astype(mu.dtype)
        return s[:, None] * mu[None, :]
    if isinstance(ensemble, FiniteDataset):
        w = ensemble.posterior_weights(x, T)
        idx = jax.random.categorical(key, jnp.log(w), shape=(n,))
        return ensemble.points[idx]
    if isinstance(ensemble, GaussianMixture):
        kc, kz = jax.random.split(key)
        r = ensemble.responsibilities(x, T)
        idx = jax.random.categorical(kc, jnp.log(r), shape=(n,))
        s2 = ensemble.variances[idx]
        mean = (s2[:, None] * x[None, :] + T * ensemble.means[idx]) / (s2 + T)[:, None]
        z = jax.random.normal(kz, (n, ensemble.dim), mean.dtype)
        return mean + jnp.sqrt(s2 * T / (s2 + T))[:, None] * z
    raise TypeError(_unsupported_message(ensemble))


def _unsupported_message(ensemble) -> str:
    names = ", ".join(c.__name__ for c in _SUPPORTED_MC)
    return (
        f"the bath Monte Carlo needs a posterior sampler for the ensemble; supported ensembles "
        f"are {names}, got {type(ensemble).__name__}"
    )


def _order_parameter_axis(ensemble: AbstractEnsemble) -> tuple[Array, Array]:
    """(center, axis) with m = axis.(ybar - center) (see ``BathTrajectory.magnetization``)."""
    if isinstance(ensemble, TwoDeltas):
        mu = ensemble.mu
        return jnp.zeros_like(mu), mu / jnp.sum(mu * mu)
    lam, vecs = jnp.linalg.eigh(ensemble.covariance())
    v = vecs[:, -1]
    v = v * jnp.where(v[jnp.argmax(jnp.abs(v))] < 0, -1.0, 1.0)
    lam = lam[-1]
    scale = jnp.where(lam > 0, 1.0 / jnp.sqrt(jnp.where(lam > 0, lam, 1.0)), 1.0)
    return ensemble.mean(), v * scale


def _check_int(name: str, value, lo: int = 1, hi: int = 10**7) -> int:
    """An integer in [lo, hi]: sites, sweeps and chains are held in memory at once (10^7 caps
    any of them well below XLA's int32 sizes; their product is checked where it is formed)."""
    return check_int(name, value, lo, hi)


# ---------------------------------------------------------------------------------- the bath
class GenerativeBath(eqx.Module):
    """M sites drawn from ``ensemble`` sharing one noisy coordinate x (theory section 7).

    Joint law ∝ prod_k phi(y_k) exp(-|x - y_k|^2/(2T)). For ``TwoDeltas(mu)`` the sites form a
    Curie-Weiss magnet of M spins with J = |mu|^2 and T_c = J, exactly at every finite M.

    **Arguments:**
    - ``n_sites``: the number of sites M, an integer >= 1 (static).
    - ``ensemble``: the data law phi, an ``AbstractEnsemble``. The exact statistics
      (``exact_moments``, ``magnetization_distribution``) need ``TwoDeltas``; the Monte Carlo
      (``simulate``, ``quench``, ``run_chains``) needs a posterior sampler, available for
      ``TwoDeltas``, ``FiniteDataset`` and ``GaussianMixture``.
    """

    n_sites: int = eqx.field(static=True)
    ensemble: AbstractEnsemble

    def __init__(self, n_sites: int, ensemble: AbstractEnsemble):
        self.n_sites = _check_int("n_sites", n_sites)
        if not isinstance(ensemble, AbstractEnsemble):
            raise TypeError(
                f"ensemble must be a thermodiff ensemble (an AbstractEnsemble such as "
                f"TwoDeltas), got {type(ensemble).__name__}"
            )
        self.ensemble = ensemble

    @property
    def dim(self) -> int:
        """Dimension d of each site and of x."""
        return self.ensemble.dim

    # ------------------------------------------------------------------ exact statistics
    def _two_deltas(self, what: str) -> TwoDeltas:
        if not isinstance(self.ensemble, TwoDeltas):
            raise TypeError(
                f"{what} is exact only for a TwoDeltas bath (finite-size Curie-Weiss, SPEC "
                f"section 7), got {type(self.ensemble).__name__}; use the Monte Carlo "
                f"(simulate / run_chains) for other ensembles"
            )
        return self.ensemble

    def _checked_T(self, T, what: str) -> Array:
        self._two_deltas(what)
        check_temperature_scalar(T)
        T = as_float_array("T", T)
        return T if is_concrete(T) else guard_temperature(T)  # traced: an invalid T gives NaN

    def magnetization_distribution(self, T: RealScalarLike) -> tuple[Array, Array]:
        """The exact law of the bath magnetization for two deltas (theory section 7).

        P(k) ∝ C(M, k) exp(J M m_k^2 / (2T)), m_k = (2k - M)/M, J = |mu|^2, k = 0..M, computed
        in log space (log-binomials in float64 on the host, then logsumexp). Differentiable in
        T and vmappable over T.

        **Arguments:**
        - ``T``: temperature, a scalar > 0.

        **Returns:** ``(m, p)``, both of shape (M + 1,): the magnetization values and their
        probabilities.
        Under jit: an invalid T gives NaN.
        """
        return _sector_law(self, self._checked_T(T, "the magnetization law"))

    def exact_moments(self, T: RealScalarLike) -> BathMoments:
        """Exact finite-M magnetization statistics of a two-delta bath (theory section 7).

        Sums over the M + 1 sectors of the finite-size Curie-Weiss law (see
        ``magnetization_distribution``). Differentiable in T and vmappable over T. With
        mu = 1 at T_c = 1: <m^2> sqrt(M) = 1.1448 (M = 100), 1.1681 (M = 10^4), and the Binder
        cumulant 0.3056, 0.2739; as M -> infinity the weight becomes exp(-M m^4/12), so
        <m^2> sqrt(M) -> sqrt(12) Gamma(3/4)/Gamma(1/4) = 1.17082 and
        U -> 1 - Gamma(1/4)^4 / (24 pi^2) = 0.270520, with O(M^{-1/2}) corrections.

        **Arguments:**
        - ``T``: temperature, a scalar > 0.

        **Returns:** a ``BathMoments`` (m2, m4, abs_m, binder, susceptibility (connected,
        M(<m^2> - <|m|>^2)/T) and susceptibility_m2 (M <m^2>/T)).
        Under jit: an invalid T gives NaN.
        """
        return _exact_moments(self, self._checked_T(T, "exact_moments"))

    # ------------------------------------------------------------------ Monte Carlo
    def simulate(
        self,
        key: Key,
        temperature,
        n_sweeps: int | None = None,
        *,
        dt: RealScalarLike | None = None,
        sites0: Array | None = None,
        x0: Vector | None = None,
    ) -> BathTrajectory:
        """One Monte Carlo chain of the bath (theory section 7), a single jitted ``lax.scan``.

        Each sweep (i) updates x given the sites, then (ii) redraws every site independently
        from the posterior p_T(y | x) (heat bath, vectorised over the M sites). With
        ``dt=None`` step (i) is the exact Gibbs draw x ~ N(ybar, (T/M) I), so the chain is a
        Gibbs sampler of the joint law and the sites' stationary law is exact (finite-size
        Curie-Weiss for two deltas). With ``dt`` step (i) is Langevin dynamics
        dx = -grad_x E dt + sqrt(2) dW in the bath energy E = sum_k |x - y_k|^2/(2T) at fixed
        sites, integrated exactly (an Ornstein-Uhlenbeck step of rate M/T), so the stationary
        law is still exact and ``dt`` only slows the coupling of x to the sites.

        One chain per call: batch over temperatures and seeds with ``jax.vmap`` (see
        ``run_chains``). A finite-rate quench is a decreasing schedule (see ``quench``).

        **Arguments:**
        - ``key``: a PRNG key.
        - ``temperature``: a scalar > 0 (held for ``n_sweeps`` sweeps) or a schedule of shape
          (n_sweeps,), one temperature per sweep.
        - ``n_sweeps``: the number of sweeps (required for a scalar temperature; must match a
          schedule's length).
        - ``dt``: ``None`` (exact Gibbs update of x) or the Langevin time step of x per sweep, > 0.
        - ``sites0``: initial sites, shape (M, d); default M independent draws from phi (the
          equilibrium state at T = infinity).
        - ``x0``: initial x, shape (d,); only used when ``dt`` is given; default the site mean.

        **Returns:** a ``BathTrajectory`` of n_sweeps records. One sweep is M site updates.
        """
        check_key("key", key)
        ens = self.ensemble
        if not isinstance(ens, _SUPPORTED_MC):
            raise TypeError(_unsupported_message(ens))
        M, d = self.n_sites, self.dim
        temperature = as_float_array("temperature", temperature)
        if temperature.ndim == 0:
            if n_sweeps is None:
                raise ValueError("n_sweeps must be given for a constant temperature (an integer >= 1)")
            n_sweeps = _check_int("n_sweeps", n_sweeps)
            schedule = jnp.broadcast_to(temperature, (n_sweeps,))
        elif temperature.ndim == 1:
            if n_sweeps is not None and _check_int("n_sweeps", n_sweeps) != temperature.shape[0]:
                raise ValueError(
                    f"n_sweeps = {n_sweeps} does not match the temperature schedule's length "
                    f"{temperature.shape[0]}"
                )
            if temperature.shape[0] < 1:
                raise ValueError("the temperature schedule must have at least one sweep (n_sweeps >= 1)")
            schedule = temperature
        else:
            raise ValueError(
                f"temperature must be a scalar or a 1-D schedule of shape (n_sweeps,) "
                f"(use jax.vmap for several chains), got shape {temperature.shape}"
            )
        check_temperature(schedule, "temperature")
        if dt is not None:
            dt = as_float_array("dt", dt)
            if dt.ndim != 0:
                raise ValueError(f"dt must be a scalar, got shape {dt.shape}")
            check_positive("dt", dt)
        k_init, k_run = jax.random.split(key)
        if sites0 is None:
            sites0 = ens.sample(k_init, M)
        else:
            sites0 = as_float_array("sites0", sites0)
            if sites0.shape != (M, d):
                raise ValueError(f"sites0 must have shape (n_sites, d) = ({M}, {d}), got {sites0.shape}")
            c = concrete(sites0)
            if c is not None and not np.all(np.isfinite(c)):
                raise ValueError("sites0 must be finite (no NaN or inf)")
        dtype = jnp.result_type(schedule.dtype, sites0.dtype)
        sites0 = sites0.astype(dtype)
        if x0 is None:
            x0 = jnp.mean(sites0, axis=0)
        else:
            x0 = as_float_array("x0", x0)
            if x0.shape != (d,):
                raise ValueError(f"x0 must have shape ({d},), got {x0.shape}")
            c = concrete(x0)
            if c is not None and not np.all(np.isfinite(c)):
                raise ValueError("x0 must be finite (no NaN or inf)")
        return _simulate(self, k_run, schedule.astype(dtype), dt, sites0, x0.astype(dtype))

    def quench(
        self,
        key: Key,
        T_hi: RealScalarLike,
        T_lo: RealScalarLike,
        n_sweeps: int,
        *,
        dt: RealScalarLike | None = None,
        sites0: Array | None = None,
        x0: Vector | None = None,
    ) -> BathTrajectory:
        """A finite-rate quench: T lowered linearly from ``T_hi`` to ``T_lo`` (theory section 7).

        T(tau) = T_hi + (T_lo - T_hi) tau / (n_sweeps - 1), tau = 0..n_sweeps - 1, so the
        cooling rate is (T_hi - T_lo)/(n_sweeps - 1) per sweep; the magnetization m(tau) of the
        returned trajectory measures the freeze-out after T_c. Other schedules: pass an array
        to ``simulate``.

        **Arguments:**
        - ``key``: a PRNG key.
        - ``T_hi``, ``T_lo``: start and end temperatures, 0 < T_lo <= T_hi.
        - ``n_sweeps``: the number of sweeps, an integer >= 2.
        - ``dt``, ``sites0``, ``x0``: as in ``simulate`` (default start: sites from phi).

        **Returns:** a ``BathTrajectory``.
        """
        check_key("key", key)
        n_sweeps = _check_int("n_sweeps", n_sweeps, lo=2)
        T_hi = as_float_array("T_hi", T_hi)
        T_lo = as_float_array("T_lo", T_lo)
        if T_hi.ndim or T_lo.ndim:
            raise ValueError("T_hi and T_lo must be scalars (use jax.vmap over quenches)")
        check_temperature(T_hi, "T_hi")
        check_temperature(T_lo, "T_lo")
        hi, lo = concrete(T_hi), concrete(T_lo)
        if hi is not None and lo is not None and lo > hi:
            raise ValueError(f"a quench cools: need T_lo <= T_hi, got T_hi = {hi}, T_lo = {lo}")
        frac = jnp.linspace(0.0, 1.0, n_sweeps, dtype=jnp.result_type(T_hi.dtype, T_lo.dtype))
        return self.simulate(key, T_hi + (T_lo - T_hi) * frac, dt=dt, sites0=sites0, x0=x0)

    def run_chains(
        self,
        key: Key,
        temperatures,
        n_chains: int,
        n_sweeps: int,
        *,
        dt: RealScalarLike | None = None,
    ) -> BathTrajectory:
        """Many independent chains at many temperatures in one jit (theory section 7).

        ``jax.vmap`` of ``simulate`` over ``n_chains`` seeds and over the temperatures, all in
        one compiled program: the unit the benchmark times, with
        n_T * n_chains * n_sweeps * M site updates per call.

        **Arguments:**
        - ``key``: a PRNG key; chain c at temperature i uses ``split(split(key, n_T)[i], n_chains)[c]``.
        - ``temperatures``: shape (n_T,), each > 0 (constant in time), or (n_T, n_sweeps) schedules.
        - ``n_chains``: independent chains per temperature, an integer >= 1.
        - ``n_sweeps``: sweeps per chain, an integer >= 1.
        - ``dt``: as in ``simulate``.

        **Returns:** a ``BathTrajectory`` whose leaves carry leading axes (n_T, n_chains).
        """
        check_key("key", key)
        n_chains = _check_int("n_chains", n_chains)
        n_sweeps = _check_int("n_sweeps", n_sweeps)
        temperatures = as_float_array("temperatures", temperatures)
        if temperatures.ndim == 1:
            temperatures = jnp.broadcast_to(temperatures[:, None], (temperatures.shape[0], n_sweeps))
        if temperatures.ndim != 2 or temperatures.shape[1] != n_sweeps or temperatures.shape[0] < 1:
            raise ValueError(
                f"temperatures must have shape (n_T,) or (n_T, n_sweeps) = (n_T, {n_sweeps}) with "
                f"n_T >= 1, got {temperatures.shape}"
            )
        check_temperature(temperatures, "temperatures")
        if not isinstance(self.ensemble, _SUPPORTED_MC):
            raise TypeError(_unsupported_message(self.ensemble))
        if dt is not None:
            check_positive("dt", dt)
        return _run_chains(self, key, temperatures, n_chains, dt)


@eqx.filter_jit
def _sector_law(bath: GenerativeBath, T) -> tuple[Array, Array]:
    mu = bath.ensemble.mu
    M = bath.n_sites
    dtype = jnp.result_type(mu.dtype, T.dtype)
    m = jnp.asarray((2 * np.arange(M + 1) - M) / M, dtype)
    J = jnp.sum(mu**2)
    logw = jnp.asarray(_log_binomials(M), dtype) + J * M * m**2 / (2 * T)
    return m, jnp.exp(logw - logsumexp(logw))


@functools.lru_cache(maxsize=16)
def _log_binomials(M: int) -> np.ndarray:
    """log C(M, k) - log C(M, floor(M/2)), k = 0..M, in float64 on the host (M is static).

    Subtracting the maximum before casting keeps float32 accurate: log C(M, k) itself reaches
    ~0.69 M, whose float32 rounding (~1e-2 at M = 10^4) would shift the sector weights.
    """
    k = np.arange(1, M + 1, dtype=np.float64)
    # log C(M, k) = sum_{j <= k} log((M - j + 1)/j): rounding errors add up to ~1e-12 at M = 10^6
    lb = np.concatenate([[0.0], np.cumsum(np.log(M - k + 1) - np.log(k))])
    return lb - lb.max()


@eqx.filter_jit
def _exact_moments(bath: GenerativeBath, T) -> BathMoments:
    m, p = _sector_law(bath, T)
    T = T.astype(m.dtype)
    m2 = p @ m**2
    m4 = p @ m**4
    abs_m = p @ jnp.abs(m)
    M = bath.n_sites
    return BathMoments(
        m2=m2,
        m4=m4,
        abs_m=abs_m,
        binder=1 - m4 / (3 * m2**2),
        susceptibility=M * (m2 - abs_m**2) / T,
        susceptibility_m2=M * m2 / T,
    )


@eqx.filter_jit
def _run_chains(bath: GenerativeBath, key, temperatures, n_chains: int, dt):
    keys = jax.random.split(key, temperatures.shape[0])

    def one_temperature(k, schedule):
        ks = jax.random.split(k, n_chains)
        return jax.vmap(lambda kk: bath.simulate(kk, schedule, dt=dt))(ks)

    return jax.vmap(one_temperature)(keys, temperatures)


@eqx.filter_jit
def _simulate(bath: GenerativeBath, key, schedule, dt, sites0, x0) -> BathTrajectory:
    ens = bath.ensemble
    M = bath.n_sites
    center, axis = _order_parameter_axis(ens)
    dtype = schedule.dtype

    def step(carry, inputs):
        x, sites = carry
        k, T = inputs
        kx, ky = jax.random.split(k)
        ybar = jnp.mean(sites, axis=0)
        z = _normal(kx, x.shape, dtype)
        if dt is None:  # exact Gibbs draw x ~ N(ybar, T/M)
            x = ybar + jnp.sqrt(T / M) * z
        else:  # exact OU step of dx = -(M/T)(x - ybar) dt + sqrt(2) dW
            decay = jnp.exp(-M * dt / T)
            x = ybar + decay * (x - ybar) + jnp.sqrt(T / M * -jnp.expm1(-2 * M * dt / T)) * z
        sites = _sample_posterior(ens, ky, x, T, M).astype(dtype)
        ybar = jnp.mean(sites, axis=0)
        m = jnp.dot(axis, ybar - center)
        return (x, sites), (x, ybar, m)

    keys = jax.random.split(key, schedule.shape[0])
    (x, sites), (xs, ybars, ms) = jax.lax.scan(step, (x0, sites0), (keys, schedule))
    return BathTrajectory(
        temperature=schedule, x=xs, site_mean=ybars, magnetization=ms, final_x=x, final_sites=sites
    )


__all__ = ["BathMoments", "BathTrajectory", "GenerativeBath"]
