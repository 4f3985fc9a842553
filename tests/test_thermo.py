"""Thermodynamics by autodiff (theory section 2) and VE <-> VP <-> OU equivalence (theory section 1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td
from _ensemble_zoo import zoo

ZOO = zoo()


@pytest.mark.parametrize("name", list(ZOO))
def test_entropy_and_heat_capacity_fluctuation_identities(name):
    """S = -dF/dT = log Z + <E>/T and C = -T d^2F/dT^2 = Var[E]/T^2, with <E>, Var[E] from the
    ensemble's explicit posterior (closed forms) and F, S, C from jax.grad of the free energy."""
    ens, _ = ZOO[name]
    x = jnp.asarray(np.random.default_rng(1).normal(size=ens.dim) * 0.8)

    @jax.jit
    def quantities(T):
        mE, vE = ens.energy_moments(x, T)
        return dict(
            F=td.free_energy(ens, T, x), S=td.entropy(ens, T, x), U=td.internal_energy(ens, T, x),
            C=td.heat_capacity(ens, T, x), logZ=ens.log_partition(x, T), mE=mE, vE=vE,
            cov=ens.posterior_cov(x, T), m=ens.denoiser(x, T),
        )

    for T in (0.15, 0.8, 3.0):
        q = quantities(T)
        assert float(q["S"]) == pytest.approx(float(q["logZ"] + q["mE"] / T), rel=1e-8, abs=1e-10)
        assert float(q["C"]) == pytest.approx(float(q["vE"] / T**2), rel=1e-7, abs=1e-10)
        assert float(q["U"]) == pytest.approx(float(q["F"] + T * q["S"]), rel=1e-10, abs=1e-12)
        # U = E[|x - y|^2/2 | x] = (|x - m|^2 + tr Cov)/2
        want_u = 0.5 * (jnp.sum((x - q["m"]) ** 2) + jnp.trace(q["cov"]))
        assert float(q["U"]) == pytest.approx(float(want_u), rel=1e-8, abs=1e-10)
        assert float(q["S"]) <= 1e-10  # S = -KL(posterior || prior)
        assert float(q["C"]) >= -1e-12


def test_two_deltas_thermodynamics_closed_form():
    """F = x^2/2 + 1/2 - T log cosh(x/T); C = (x/T)^2 sech^2(x/T) at fixed x."""
    e = td.TwoDeltas(1.0)
    for x in (0.1, 0.7):
        for T in (0.3, 1.0, 2.5):
            xa = jnp.array([x])
            u = x / T
            assert float(td.free_energy(e, T, xa)) == pytest.approx(x * x / 2 + 0.5 - T * np.log(np.cosh(u)), rel=1e-12)
            assert float(td.entropy(e, T, xa)) == pytest.approx(np.log(np.cosh(u)) - u * np.tanh(u), rel=1e-10)
            assert float(td.heat_capacity(e, T, xa)) == pytest.approx(u**2 / np.cosh(u) ** 2, rel=1e-10)
    # At x = 0 the posterior is the prior: S = 0.
    assert float(td.entropy(e, 0.7, jnp.zeros(1))) == pytest.approx(0.0, abs=1e-14)


def test_low_temperature_entropy_is_log_weight_of_nearest_point():
    pts = jnp.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    w = jnp.array([0.5, 0.3, 0.2])
    ds = td.FiniteDataset(pts, w)
    x = jnp.array([1.8, 0.1])  # nearest point: index 1
    assert float(td.entropy(ds, 1e-3, x)) == pytest.approx(np.log(0.3), rel=1e-6)


def test_thermo_bad_input():
    e = td.TwoDeltas(1.0)
    with pytest.raises(ValueError, match=r"T \(temperature = VE-equivalent noise variance\) must be finite and > 0"):
        td.entropy(e, 0.0, jnp.zeros(1))
    with pytest.raises(ValueError, match="x must have shape"):
        td.heat_capacity(e, 1.0, jnp.zeros(2))
    with pytest.raises(TypeError, match="ensemble"):
        td.free_energy("two deltas", 1.0, jnp.zeros(1))


SCHEDULES = {"vp": td.VP(), "ddpm": td.DDPM(), "ou": td.OU(), "cosine": td.Cosine(),
             "ve_geo": td.VE(0.01, 50.0)}


@pytest.mark.parametrize("sched", list(SCHEDULES))
@pytest.mark.parametrize("name", ["two_deltas_3d", "mixture_asym", "finite_chunked", "hypersphere_3d"])
def test_ve_vp_ou_posterior_equivalence(sched, name):
    """A state x_t of any schedule has the posterior of the VE state x_t/theta at T(t)."""
    if name not in ZOO:
        pytest.skip("ensemble not present")
    ens, _ = ZOO[name]
    s = SCHEDULES[sched]
    dif = td.Diffused(ens, s)
    xv = jnp.asarray(np.random.default_rng(2).normal(size=ens.dim))
    for T in (0.3, 1.0, 4.0):
        t = s.time_at_temperature(T)
        theta = s.signal_scale(t)
        xt = theta * xv
        np.testing.assert_allclose(dif.temperature(t), T, rtol=1e-9)
        np.testing.assert_allclose(dif.denoiser(xt, t), ens.denoiser(xv, T), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(dif.posterior_cov(xt, t), ens.posterior_cov(xv, T), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(dif.score(xt, t), ens.score(xv, T) / theta, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(dif.score(xt, t), jax.grad(dif.log_density)(xt, t), rtol=1e-8, atol=1e-10)
        eps = dif.noise_prediction(xt, t)
        np.testing.assert_allclose(dif.score(xt, t), -eps / s.noise_scale(t), rtol=1e-8, atol=1e-12)


def test_vp_gaussian_marginal_is_exact():
    """y ~ N(mu, v I) under VP: x_t ~ N(theta mu, (theta^2 v + s^2) I); check the score directly."""
    mu, v = jnp.array([1.0, -0.5]), 0.3
    s = td.VP()
    dif = td.Diffused(td.Gaussian(mu, v), s)
    x = jnp.array([0.2, 0.9])
    for t in (0.05, 0.4, 0.9):
        th, sd = s.signal_scale(t), s.noise_scale(t)
        var = th**2 * v + sd**2
        np.testing.assert_allclose(dif.score(x, t), -(x - th * mu) / var, rtol=1e-10)
        want = -np.log(2 * np.pi * var) - np.sum((x - th * mu) ** 2) / (2 * var)
        np.testing.assert_allclose(dif.log_density(x, t), want, rtol=1e-10)


def test_diffused_monte_carlo_under_ou(key):
    """Sample (y, x_t) from the OU forward process and check E[(y - E[y|x_t]) g(x_t)] = 0."""
    ens = td.GaussianMixture(jnp.array([[1.5, 0.0], [-1.0, 1.0]]), jnp.array([0.1, 0.4]), jnp.array([0.3, 0.7]))
    dif = td.Diffused(ens, td.OU())
    t = 0.4
    y, xt = dif.sample_marginal(key, 100_000, t)
    m = jax.jit(jax.vmap(lambda x: dif.denoiser(x, t)))(xt)
    r = np.asarray(y - m)
    for g in (np.ones(len(r)), np.tanh(np.asarray(xt[:, 0])), np.exp(-np.sum(np.asarray(xt) ** 2, 1))):
        terms = r * g[:, None]
        assert np.all(np.abs(terms.mean(0)) < 5 * terms.std(0) / np.sqrt(len(r)))


def test_diffused_bad_time():
    dif = td.Diffused(td.TwoDeltas(1.0), td.VP())
    with pytest.raises(ValueError, match=r"t must be finite and lie in \[0, t_max\] for this VP schedule \(t_max = 1\)"):
        dif.denoiser(jnp.zeros(1), 1.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0.0, 1.0\] with T\(t\) > 0 for this VP schedule"):
        dif.score(jnp.zeros(1), 0.0)
    with pytest.raises(TypeError, match="schedule"):
        td.Diffused(td.TwoDeltas(1.0), "vp")


def test_equilibrium_heat_capacity_vmap_matches_loop():
    """Regression: heat_capacity (x omitted) vmapped over >= ~100 temperatures of a FiniteDataset
    gave NaN at a few lanes (single calls finite). Root cause: the rounding-level shift mu =
    eps (1 + max|A|) of the implicit tangent solve was differentiated; the JVP of jnp.max
    divides by the count of entries equal to the max, which XLA made 0 by recomputing the
    operand in another fusion (0/0 = NaN). Both the closed form and the second derivative
    through the implicit fixed point (-T d^2 free_energy/dT^2) must be finite and equal to a
    per-temperature loop."""
    rng = np.random.default_rng(0)
    u = rng.standard_normal(8)
    u /= np.linalg.norm(u)
    half = 2.0 * u[None, :] + 0.5 * rng.standard_normal((100, 8))
    ds = td.FiniteDataset(jnp.asarray(np.concatenate([half, -half])))  # T_c = 3.4477
    Ts = jnp.asarray(3.4477 * np.geomspace(0.2, 3.0, 200))

    def c_implicit(T):
        return -T * jax.jvp(jax.grad(lambda T_: td.free_energy(ds, T_)), (T,), (jnp.ones_like(T),))[1]

    C_vmap = np.asarray(jax.jit(jax.vmap(lambda T: td.heat_capacity(ds, T)))(Ts))
    C_impl = np.asarray(jax.jit(jax.vmap(c_implicit))(Ts))
    one = jax.jit(lambda T: td.heat_capacity(ds, T))
    C_loop = np.array([float(one(T)) for T in Ts])
    assert np.all(np.isfinite(C_vmap)) and np.all(np.isfinite(C_impl))
    np.testing.assert_allclose(C_vmap, C_loop, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(C_impl, C_loop, rtol=1e-6, atol=1e-8)
