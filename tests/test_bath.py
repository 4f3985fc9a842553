"""The generative bath (theory section 7): exact finite-size Curie-Weiss statistics and Monte Carlo."""

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import gamma, logsumexp as np_logsumexp

import thermodiff as td
from thermodiff._bath import BathMoments, GenerativeBath
from thermodiff._ensembles._base import AbstractEnsemble

from conftest import zscore_ok


# --------------------------------------------------------------------------- references
def brute_force_site_law(M, mu, T):
    """Site law of the bath by brute force: enumerate all 2^M sign configurations and integrate x
    out of prod_k exp(-|x - s_k mu|^2/(2T)) numerically (d = 1), independently of the
    Curie-Weiss reduction. Returns the magnetization of each configuration and its probability."""
    s = np.array(list(itertools.product([-1.0, 1.0], repeat=M)))
    xs = np.linspace(-abs(mu) - 12 * math.sqrt(T), abs(mu) + 12 * math.sqrt(T), 4001)
    sq = ((xs[None, None, :] - mu * s[:, :, None]) ** 2).sum(axis=1)  # (2^M, n_grid)
    log_int = np_logsumexp(-sq / (2 * T), axis=1)  # trapezoid ~ sum on a uniform grid (tails ~ 0)
    p = np.exp(log_int - np_logsumexp(log_int))
    return s.mean(axis=1), p


def quartic_moment(n):
    """<u^n> under the M -> infinity critical weight exp(-u^4/12), u = m M^(1/4) (even n)."""
    return 12 ** (n / 4) * gamma((n + 1) / 4) / gamma(0.25)


def mstar(T):
    """Mean-field order parameter m = tanh(m/T) (J = 1)."""
    return brentq(lambda m: m - math.tanh(m / T), 1e-12, 1.0) if T < 1 else 0.0


class _NoSampler(AbstractEnsemble):
    """A valid ensemble (a point mass at 0 in 1-D) without a bath posterior sampler."""

    @property
    def dim(self):
        return 1

    def landau(self, x, T):
        return 0.5 * jnp.sum(x * x)

    def sample(self, key, n):
        return jnp.zeros((n, 1))

    def mean(self):
        return jnp.zeros(1)

    def covariance(self):
        return jnp.zeros((1, 1))


def bath(M, mu=1.0):
    return GenerativeBath(M, td.TwoDeltas(mu))


# --------------------------------------------------------------------------- exact statistics
@pytest.mark.parametrize("M", [1, 2, 5, 10])
@pytest.mark.parametrize("mu", [1.0, 1.3])
def test_exact_law_matches_brute_force(M, mu):
    for T in [0.4, 1.0, 1.69, 3.0]:
        m_bf, p_bf = brute_force_site_law(M, mu, T)
        m, p = bath(M, mu).magnetization_distribution(T)
        m, p = np.asarray(m), np.asarray(p)
        # the sector law, regrouped from the 2^M configurations
        p_sec = np.array([p_bf[np.isclose(m_bf, mk)].sum() for mk in m])
        np.testing.assert_allclose(p, p_sec, rtol=1e-9, atol=1e-14)
        mo = bath(M, mu).exact_moments(T)
        m2, m4, am = p_bf @ m_bf**2, p_bf @ m_bf**4, p_bf @ np.abs(m_bf)
        np.testing.assert_allclose(float(mo.m2), m2, rtol=1e-9)
        np.testing.assert_allclose(float(mo.m4), m4, rtol=1e-9)
        np.testing.assert_allclose(float(mo.abs_m), am, rtol=1e-9)
        np.testing.assert_allclose(float(mo.binder), 1 - m4 / (3 * m2**2), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(float(mo.susceptibility), M * (m2 - am**2) / T, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(float(mo.susceptibility_m2), M * m2 / T, rtol=1e-9)


def test_vector_mu_is_curie_weiss_with_J_mu_squared():
    """d = 2, J = |mu|^2 = 2: the law depends on T/J only (T_c = J)."""
    a = bath(30, jnp.array([1.0, 1.0])).exact_moments(2.4)
    b = bath(30, 1.0).exact_moments(1.2)
    for f in ("m2", "m4", "abs_m", "binder"):
        np.testing.assert_allclose(float(getattr(a, f)), float(getattr(b, f)), rtol=1e-12)


def test_spec_values_at_Tc():
    """theory section 7 at T_c = 1, mu = 1 (4 significant digits)."""
    for M, m2s, U in [(100, 1.1448, 0.3056), (10_000, 1.1681, 0.2739)]:
        mo = bath(M).exact_moments(1.0)
        assert round(float(mo.m2) * math.sqrt(M), 4) == m2s
        assert round(float(mo.binder), 4) == U


def test_float32_sector_weights():
    """The log-binomials are formed in float64 on the host: float32 keeps 4 digits at M = 10^4."""
    mo = bath(10_000, jnp.array(1.0, jnp.float32)).exact_moments(jnp.array(1.0, jnp.float32))
    assert mo.m2.dtype == jnp.float32
    assert round(float(mo.m2) * 100, 4) == 1.1681 and round(float(mo.binder), 4) == 0.2739


def test_infinite_M_limits():
    """M -> infinity at T_c: the sector weight C(M, k) e^{M m^2/2} -> exp(-M m^4/12), so with
    u = m M^{1/4}: <m^2> sqrt(M) -> <u^2> = sqrt(12) Gamma(3/4)/Gamma(1/4), M <m^4> -> <u^4> = 3,
    U -> 1 - 1/<u^2>^2 = 1 - Gamma(1/4)^4/(24 pi^2). The first correction, O(M^{-1/2}), comes
    from the next terms of the weight, -M m^6/30 (entropy) + m^2/2 (the Stirling prefactor
    1/sqrt(1 - m^2)), i.e. u^2/2 - u^6/30 in units of M^{-1/2}."""
    mom = {n: quartic_moment(n) for n in (0, 2, 4, 6, 8, 10)}
    # quadrature cross-check of the Gamma-function moments
    u = np.linspace(-8, 8, 20001)
    w = np.exp(-(u**4) / 12)
    for n in (2, 4, 6):
        np.testing.assert_allclose(np.sum(u**n * w) / np.sum(w), mom[n], rtol=1e-10)
    m2_lim, m4_lim = mom[2], mom[4]
    U_lim = 1 - m4_lim / (3 * m2_lim**2)
    np.testing.assert_allclose(m4_lim, 3.0, rtol=1e-12)
    np.testing.assert_allclose(m2_lim, math.sqrt(12) * gamma(0.75) / gamma(0.25), rtol=1e-12)
    np.testing.assert_allclose(U_lim, 1 - gamma(0.25) ** 4 / (24 * math.pi**2), rtol=1e-12)
    assert round(m2_lim, 4) == 1.1708 and round(U_lim, 6) == 0.270520

    # first-order corrections: delta<f> = <f g> - <f><g>, g = u^2/2 - u^6/30
    def cov(a, b):
        return mom[a + b] - mom[a] * mom[b]

    c2 = cov(2, 2) / 2 - cov(2, 6) / 30
    c4 = cov(4, 2) / 2 - cov(4, 6) / 30
    cU = -c4 / (3 * m2_lim**2) + 2 * m4_lim * c2 / (3 * m2_lim**3)
    vals = {}
    for M in (10**4, 10**5, 10**6):
        mo = bath(M).exact_moments(1.0)
        vals[M] = (float(mo.m2) * math.sqrt(M), float(mo.m4) * M, float(mo.binder))
        # leading correction reproduced to O(1/M)
        np.testing.assert_allclose((vals[M][0] - m2_lim) * math.sqrt(M), c2, atol=5 / math.sqrt(M))
        np.testing.assert_allclose((vals[M][1] - m4_lim) * math.sqrt(M), c4, atol=50 / math.sqrt(M))
        np.testing.assert_allclose((vals[M][2] - U_lim) * math.sqrt(M), cU, atol=5 / math.sqrt(M))
    # Richardson extrapolation in M^{-1/2} from 10^5 and 10^6 lands on the limits
    r = math.sqrt(10)
    for i, lim in ((0, m2_lim), (1, m4_lim), (2, U_lim)):
        ext = (r * vals[10**6][i] - vals[10**5][i]) / (r - 1)
        np.testing.assert_allclose(ext, lim, atol=3e-6 * max(1.0, lim))


def test_binder_crossings_approach_Tc():
    Ms = [50, 200, 1000, 5000]
    U = {M: jax.jit(lambda T, b=bath(M): b.exact_moments(T).binder) for M in Ms}
    crossings = []
    for a, b in zip(Ms[:-1], Ms[1:]):
        f = lambda T: float(U[a](T) - U[b](T))  # noqa: E731
        assert f(0.9) < 0 < f(1.1)  # ordered side: larger M is closer to 2/3; disordered: to 0
        crossings.append(brentq(f, 0.9, 1.1, xtol=1e-10))
    dist = np.abs(np.array(crossings) - 1.0)
    assert np.all(dist < 0.03)
    assert np.all(np.diff(dist) < 0)  # moving toward T_c = 1 as M grows
    assert dist[-1] < 2e-3
    for M in Ms:
        assert float(U[M](0.5)) > 0.66  # -> 2/3 (two sharp peaks at +-m*)
        assert float(U[M](3.0)) < 0.05  # -> 0 (Gaussian m)
    np.testing.assert_allclose(float(U[5000](0.5)), 2 / 3, atol=1e-3)
    np.testing.assert_allclose(float(U[5000](2.0)), 0.0, atol=1e-3)


def test_susceptibility_tends_to_spec_section_2():
    """Large M: connected chi -> (1 - m*^2)/(T - 1 + m*^2) below T_c, M<m^2>/T -> 1/(T - 1) above,
    and <|m|> -> m* (the mean-field order parameter of theory section 3.1)."""
    b = bath(10_000)
    for T in (0.75, 0.9):
        ms = mstar(T)
        mo = b.exact_moments(T)
        np.testing.assert_allclose(float(mo.susceptibility), (1 - ms**2) / (T - 1 + ms**2), rtol=0.02)
        np.testing.assert_allclose(float(mo.abs_m), ms, rtol=5e-3)
    for T in (1.2, 1.5):
        np.testing.assert_allclose(float(b.exact_moments(T).susceptibility_m2), 1 / (T - 1), rtol=0.01)


def test_exact_moments_grad_and_vmap():
    """d<m^2>/dT = -(J M / (2 T^2)) Var[m^2]; vmap over T equals a loop."""
    M = 300
    b = bath(M)
    for T in (0.9, 1.0, 1.2):
        g = jax.grad(lambda t: b.exact_moments(t).m2)(T)
        mo = b.exact_moments(T)
        np.testing.assert_allclose(float(g), -M / (2 * T**2) * float(mo.m4 - mo.m2**2), rtol=1e-9)
    Ts = jnp.array([0.7, 1.0, 1.4])
    batched = jax.vmap(b.exact_moments)(Ts)
    assert isinstance(batched, BathMoments) and batched.binder.shape == (3,)
    for i, T in enumerate(Ts):
        one = b.exact_moments(T)
        for f in ("m2", "m4", "abs_m", "binder", "susceptibility"):
            np.testing.assert_allclose(getattr(batched, f)[i], getattr(one, f), rtol=1e-12)


# --------------------------------------------------------------------------- Monte Carlo
def chain_stats(values, burn):
    """Mean over independent chains of the per-chain time averages, and its standard error
    (the chains are independent, so the spread of chain means already includes the
    autocorrelation of each chain: batch means with one batch per chain)."""
    per_chain = np.asarray(values)[..., burn:].mean(axis=-1)
    n = per_chain.shape[-1]
    return per_chain.mean(axis=-1), per_chain.std(axis=-1, ddof=1) / math.sqrt(n)


def test_monte_carlo_matches_exact(key):
    M, Ts = 64, jnp.array([0.8, 1.0, 1.3])
    b = bath(M)
    tr = b.run_chains(key, Ts, n_chains=48, n_sweeps=1500)
    assert tr.magnetization.shape == (3, 48, 1500)
    m = np.asarray(tr.magnetization)
    # m is a spin average: a multiple of 2/M
    np.testing.assert_allclose(np.round(m * M / 2) * 2 / M, m, atol=1e-12)
    for stat, power in (("m2", 2), ("m4", 4)):
        est, se = chain_stats(m**power, burn=150)
        exact = np.array([float(getattr(b.exact_moments(T), stat)) for T in Ts])
        assert zscore_ok(est, exact, se), (stat, est, exact, se)
        assert np.all(se < 0.05 * exact)  # the test has teeth


def test_langevin_x_update_keeps_the_exact_law(key):
    """dt: an exactly integrated OU step of x at fixed sites leaves the joint law invariant; it
    only slows the dynamics (x relaxes toward the site mean at rate M/T)."""
    M, T = 64, 1.0
    b = bath(M)
    tr = b.run_chains(key, jnp.array([T]), n_chains=48, n_sweeps=1500, dt=0.2 * T / M)
    est, se = chain_stats(np.asarray(tr.magnetization[0]) ** 2, burn=300)
    assert zscore_ok(est, float(b.exact_moments(T).m2), se)
    g = b.run_chains(key, jnp.array([T]), n_chains=48, n_sweeps=1500)

    def autocorr(tr, lag=10):
        m = np.asarray(tr.magnetization[0, :, 300:])
        m = m - m.mean()
        return np.mean(m[:, lag:] * m[:, :-lag]) / np.mean(m * m)

    assert autocorr(tr) > autocorr(g) + 0.2  # measured: ~0.77 against ~0.38


def test_other_ensembles_are_the_same_magnet(key):
    """A two-point dataset {+mu, -mu} and a zero-variance mixture at +-mu are two deltas: their
    bath Monte Carlo reproduces the exact Curie-Weiss <m^2>."""
    M, T, mu = 32, 1.0, jnp.array([0.6, 0.8])
    exact = float(GenerativeBath(M, td.TwoDeltas(mu)).exact_moments(T).m2)
    for ens in (td.FiniteDataset(jnp.stack([mu, -mu])), td.GaussianMixture(jnp.stack([mu, -mu]), 0.0)):
        tr = GenerativeBath(M, ens).run_chains(key, jnp.array([T]), n_chains=32, n_sweeps=1000)
        est, se = chain_stats(np.asarray(tr.magnetization[0]) ** 2, burn=100)
        assert zscore_ok(est, exact, se), (type(ens).__name__, est, exact, se)


def test_finite_dataset_bath_matches_enumeration(key):
    """Asymmetric weighted dataset, M = 3: the exact site law
    P(n_1..n_M) ∝ prod pi exp(M |ybar|^2/(2T) - sum |y|^2/(2T)) by enumeration of N^M states."""
    pts = np.array([[1.0, 0.0], [-0.5, 0.8], [0.2, -1.1]])
    w = np.array([0.5, 0.3, 0.2])
    M, T = 3, 0.7
    idx = np.array(list(itertools.product(range(3), repeat=M)))
    ybar = pts[idx].mean(axis=1)
    logp = np.log(w[idx]).sum(1) + M * (ybar**2).sum(1) / (2 * T) - (pts[idx] ** 2).sum((1, 2)) / (2 * T)
    p = np.exp(logp - np_logsumexp(logp))
    exact_mean, exact_sq = p @ ybar, p @ (ybar**2).sum(1)
    b = GenerativeBath(M, td.FiniteDataset(pts, w))
    tr = b.run_chains(key, jnp.array([T]), n_chains=32, n_sweeps=800)
    yb = np.asarray(tr.site_mean[0])  # (chains, sweeps, 2)
    for vals, exact in ((yb[..., 0], exact_mean[0]), (yb[..., 1], exact_mean[1]), ((yb**2).sum(-1), exact_sq)):
        est, se = chain_stats(vals, burn=50)
        assert zscore_ok(est, exact, se), (est, exact, se)


def test_gaussian_bath_x_variance(key):
    """phi = N(0, s^2 I): the x marginal is N(0, (T + s^2)/M I) (Gaussian posterior sampler)."""
    M, T, s2 = 8, 0.6, 0.5
    b = GenerativeBath(M, td.Gaussian(jnp.zeros(2), s2))
    tr = b.run_chains(key, jnp.array([T]), n_chains=32, n_sweeps=600)
    x2 = (np.asarray(tr.x[0]) ** 2).mean(-1) * M / (T + s2)
    est, se = chain_stats(x2, burn=50)
    assert zscore_ok(est, 1.0, se), (est, se)
    # and the site mean: Var[ybar] = Var[x] - T/M per coordinate
    yb2 = (np.asarray(tr.site_mean[0]) ** 2).mean(-1)
    est, se = chain_stats(yb2, burn=50)
    assert zscore_ok(est, (T + s2) / M - T / M, se)


def test_vmap_over_temperatures_equals_loop_and_traces_once(key):
    b = bath(16)
    keys = jax.random.split(key, 3)
    Ts = jnp.array([0.7, 1.0, 1.6])

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def many(keys, Ts):
        return jax.vmap(lambda k, T: b.simulate(k, T, 50))(keys, Ts)

    out = many(keys, Ts)
    out2 = many(keys, Ts * 1.1)  # same shapes: no retrace
    assert out.magnetization.shape == (3, 50) and out.x.shape == (3, 50, 1)
    assert out.final_sites.shape == (3, 16, 1)
    assert not np.allclose(out.magnetization, out2.magnetization)
    for i in range(3):
        one = b.simulate(keys[i], Ts[i], 50)
        np.testing.assert_allclose(out.magnetization[i], one.magnetization, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(out.x[i], one.x, rtol=1e-12, atol=1e-14)
    # run_chains: vmap over temperatures and seeds with the documented key layout
    rc = b.run_chains(key, Ts, n_chains=2, n_sweeps=50)
    k1 = jax.random.split(jax.random.split(key, 3)[2], 2)[1]
    np.testing.assert_allclose(rc.magnetization[2, 1], b.simulate(k1, Ts[2], 50).magnetization, atol=1e-14)
    # continuing a chain from its final state
    cont = b.simulate(key, 1.0, 50, sites0=out.final_sites[0])
    assert cont.magnetization.shape == (50,)


def test_slow_quench_recovers_equilibrium(key):
    """A slow quench 1.5 -> 0.6 ends in the ordered equilibrium: the final m across chains has the
    exact <m^2>, <|m|> of the finite-size law at T_lo, and |m| concentrates near m*."""
    M, n_chains = 64, 128
    b = bath(M)
    keys = jax.random.split(key, n_chains)
    tr = jax.jit(jax.vmap(lambda k: b.quench(k, 1.5, 0.6, 600)))(keys)
    np.testing.assert_allclose(tr.temperature[0, [0, -1]], [1.5, 0.6], rtol=1e-12)
    # average each chain over its last 20 sweeps (T within 0.03 of T_lo) to cut the noise
    tail = np.asarray(tr.magnetization[:, -20:])
    exact = b.exact_moments(0.6)
    for vals, ref in ((tail**2, float(exact.m2)), (np.abs(tail), float(exact.abs_m))):
        per_chain = vals.mean(-1)
        se = per_chain.std(ddof=1) / math.sqrt(n_chains)
        assert zscore_ok(per_chain.mean(), ref, se, floor=0.01), (per_chain.mean(), ref, se)
    fin = np.abs(tail[:, -1])
    assert abs(np.median(fin) - mstar(0.6)) < 0.1 and fin.std() < 0.1
    # started disordered: early m is O(M^{-1/2})
    assert np.mean(np.asarray(tr.magnetization[:, :10]) ** 2) < 0.1


def test_quench_kibble_zurek_freeze_out(key):
    """Linear quench through T_c at tau_Q sweeps per unit temperature, M >> tau_Q. Near T_c the
    magnetization obeys the linearised chain m_t = m_{t-1}/T_t + noise (variance (1 + 1/T_t)/M),
    whose variance at T = T_c is M<m^2> = sum_j (1 + 1/T_j) prod_{i>j} T_i^{-2} ->
    sqrt(pi tau_Q) (Kibble-Zurek with z nu = 1: freeze-out at |T - T_c| ~ tau_Q^{-1/2}). The
    Monte Carlo reproduces this, and stays far below the equilibrium value at T_c."""
    M, n_chains = 4096, 128
    b = bath(M)
    eq = float(b.exact_moments(1.0).m2) * M

    def linear_theory(T):
        v = 1.0  # M <m^2> of sites drawn from phi
        for Tt in T:
            v = v / Tt**2 + 1 / Tt + 1
        return v

    # the linear theory itself tends to the continuum KZ law sqrt(pi tau_Q)
    tq = 40_000
    ratio = linear_theory(1.5 - np.arange(tq // 2 + 1) / tq) / math.sqrt(math.pi * tq)
    np.testing.assert_allclose(ratio, 1, atol=0.02)

    results = {}
    for tq in (16, 256):
        keys = jax.random.split(jax.random.fold_in(key, tq), n_chains)
        tr = jax.jit(jax.vmap(lambda k: b.quench(k, 1.5, 0.5, tq + 1)))(keys)
        T = np.asarray(tr.temperature[0])
        k0 = tq // 2
        assert abs(T[k0] - 1.0) < 1e-12
        m2 = M * np.asarray(tr.magnetization[:, k0]) ** 2
        est, se = m2.mean(), m2.std(ddof=1) / math.sqrt(n_chains)
        theory = linear_theory(T[: k0 + 1])
        assert zscore_ok(est, theory, se, floor=0.05 * theory), (tq, est, theory, se)
        assert est < 0.5 * eq  # frozen out of equilibrium at T_c
        results[tq] = est
    # growth with tau_Q: between the linear theory's ratio (3.4) and the continuum sqrt(16) = 4
    ratio = results[256] / results[16]
    assert 2.5 < ratio < 4.8, ratio


# --------------------------------------------------------------------------- bad input
def test_bad_input():
    ens = td.TwoDeltas(1.0)
    for bad in (0, -3, 10**13):
        with pytest.raises(ValueError, match=r"n_sites must be an integer in \[1, 10000000\]"):
            GenerativeBath(bad, ens)
    for bad in (2.5, True, "4", None):
        with pytest.raises(TypeError, match="n_sites must be an integer"):
            GenerativeBath(bad, ens)
    with pytest.raises(TypeError, match="ensemble"):
        GenerativeBath(4, "two deltas")
    with pytest.raises(TypeError, match="TwoDeltas"):
        GenerativeBath(4, td.Gaussian(jnp.zeros(1))).exact_moments(1.0)
    b = GenerativeBath(4, ens)
    for T in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            b.exact_moments(T)
        with pytest.raises(ValueError, match="temperature"):
            b.simulate(jax.random.key(0), T, 3)
    with pytest.raises(ValueError, match=r"T must be a scalar temperature \(shape \(\)\)"):
        b.exact_moments(jnp.ones(2))
    with pytest.raises(TypeError, match="TwoDeltas, FiniteDataset, GaussianMixture"):
        GenerativeBath(4, _NoSampler()).simulate(jax.random.key(0), 1.0, 3)
    k = jax.random.key(0)
    with pytest.raises(ValueError, match="n_sweeps"):
        b.simulate(k, 1.0)
    with pytest.raises(ValueError, match="n_sweeps"):
        b.simulate(k, 1.0, 0)
    with pytest.raises(ValueError, match="does not match"):
        b.simulate(k, jnp.ones(5), 4)
    with pytest.raises(ValueError, match="schedule"):
        b.simulate(k, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="temperature"):
        b.simulate(k, jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="dt"):
        b.simulate(k, 1.0, 3, dt=0.0)
    with pytest.raises(ValueError, match="sites0"):
        b.simulate(k, 1.0, 3, sites0=jnp.ones((3, 1)))
    with pytest.raises(ValueError, match="x0"):
        b.simulate(k, 1.0, 3, dt=0.1, x0=jnp.ones(2))
    with pytest.raises(ValueError, match="T_lo <= T_hi"):
        b.quench(k, 0.5, 1.5, 10)
    with pytest.raises(ValueError, match="n_sweeps"):
        b.quench(k, 1.5, 0.5, 1)
    with pytest.raises(ValueError, match="n_chains"):
        b.run_chains(k, jnp.ones(2), 0, 3)
    with pytest.raises(ValueError, match="temperatures"):
        b.run_chains(k, jnp.ones((2, 4)), 2, 3)
