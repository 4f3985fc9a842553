"""Schedules (theory section 1): closed forms, SDE consistency, inverses, VE<->VP<->OU equivalence."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td

SCHEDULES = {
    "ve_brownian": lambda: td.VE(),
    "ve_geometric": lambda: td.VE(0.01, 50.0),
    "vp": lambda: td.VP(0.1, 20.0),
    "ddpm": lambda: td.DDPM(),
    "ou": lambda: td.OU(),
    "cosine": lambda: td.Cosine(),
}


def _interior_times(s, n=9):
    return jnp.linspace(float(s.t_min), float(s.t_max), n + 2)[1:-1]


@pytest.mark.parametrize("name", SCHEDULES)
def test_sde_coefficients_match_marginals(name):
    """f = d log theta/dt and g^2 = d(s^2)/dt - 2 f s^2, checked by autodiff of theta and s."""
    s = SCHEDULES[name]()
    ts = _interior_times(s)
    if name == "ddpm":  # piecewise linear: differentiate inside a step
        ts = jnp.floor(ts) + 0.5
    dlogtheta = jax.vmap(jax.grad(lambda t: jnp.log(s.signal_scale(t))))(ts)
    ds2 = jax.vmap(jax.grad(lambda t: s.noise_scale(t) ** 2))(ts)
    f = s.drift_coefficient(ts)
    g = s.diffusion(ts)
    np.testing.assert_allclose(f, dlogtheta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g**2, ds2 - 2 * f * s.noise_scale(ts) ** 2, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", SCHEDULES)
def test_temperature_roundtrip_and_monotone(name):
    s = SCHEDULES[name]()
    ts = _interior_times(s, 25)
    T = s.temperature(ts)
    assert np.all(np.diff(np.asarray(T)) > 0)
    np.testing.assert_allclose(s.time_at_temperature(T), ts, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(T, (s.noise_scale(ts) / s.signal_scale(ts)) ** 2, rtol=1e-9)
    np.testing.assert_allclose(s.abar(ts), 1 / (1 + T) if name not in ("ve_brownian", "ve_geometric") else 1.0,
                               rtol=1e-9)


def test_vp_closed_forms():
    bmin, bmax = 0.1, 20.0
    s = td.VP(bmin, bmax)
    for t in [0.01, 0.3, 0.5, 0.9, 1.0]:
        theta = math.exp(-t * t * (bmax - bmin) / 4 - t * bmin / 2)
        assert float(s.signal_scale(t)) == pytest.approx(theta, rel=1e-12)
        assert float(s.noise_scale(t)) == pytest.approx(math.sqrt(1 - theta**2), rel=1e-12)
        assert float(s.temperature(t)) == pytest.approx((1 - theta**2) / theta**2, rel=1e-12)
        assert float(s.beta(t)) == pytest.approx(bmin + t * (bmax - bmin), rel=1e-14)
    # Two deltas +-1: thermodynamic T_c = 1 sits at abar = 1/2 (theory 3.1).
    tc = s.time_at_temperature(1.0)
    assert float(s.abar(tc)) == pytest.approx(0.5, rel=1e-12)
    # beta_min == beta_max is a constant-rate VP (OU with rate beta/2): inverse stays exact.
    c = td.VP(2.0, 2.0)
    assert float(c.time_at_temperature(c.temperature(0.37))) == pytest.approx(0.37, rel=1e-12)
    np.testing.assert_allclose(c.temperature(0.37), td.OU().temperature(0.37), rtol=1e-12)


def test_ddpm_numbers():
    s = td.DDPM()
    betas = np.linspace(1e-4, 0.02, 1000)
    abar = np.cumprod(1 - betas)
    assert s.num_steps == 1000
    np.testing.assert_allclose(s.betas, betas, rtol=1e-10)
    ks = np.arange(1, 1001)
    np.testing.assert_allclose(s.abar(ks), abar, rtol=1e-10)
    np.testing.assert_allclose(s.temperature(ks), (1 - abar) / abar, rtol=1e-9)
    assert float(s.abar(1000)) == pytest.approx(4.0358e-5, rel=1e-4)  # well-known DDPM value
    assert float(s.abar(0)) == 1.0
    # Integer temperatures invert to integer steps.
    np.testing.assert_allclose(s.time_at_temperature(s.temperature(ks)), ks, rtol=1e-9)
    # Custom betas.
    c = td.DDPM(jnp.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(c.abar(3.0), 0.9 * 0.8 * 0.7, rtol=1e-12)


def test_ou_and_ve_closed_forms():
    ou = td.OU()
    # Two deltas a = 1: t_c = log(1 + a^2)/2 = 0.3465736 (theory 3.1).
    assert float(ou.time_at_temperature(1.0)) == pytest.approx(0.3465736, abs=1e-7)
    for t in [0.1, 1.0, 3.0]:
        assert float(ou.temperature(t)) == pytest.approx(math.exp(2 * t) - 1, rel=1e-12)
        assert float(ou.noise_scale(t)) == pytest.approx(math.sqrt(1 - math.exp(-2 * t)), rel=1e-12)
    assert float(ou.diffusion(0.4)) == pytest.approx(math.sqrt(2), rel=1e-14)
    ve = td.VE()
    assert float(ve.temperature(2.5)) == 2.5 and float(ve.diffusion(2.5)) == 1.0
    geo = td.VE(0.01, 50.0)
    assert float(geo.noise_scale(0.0)) == pytest.approx(0.01) and float(geo.noise_scale(1.0)) == pytest.approx(50.0)
    cos = td.Cosine()
    u0 = 0.008 / 1.008 * math.pi / 2
    t = 0.5
    u = (t + 0.008) / 1.008 * math.pi / 2
    assert float(cos.abar(t)) == pytest.approx((math.cos(u) / math.cos(u0)) ** 2, rel=1e-12)


def test_vmap_over_parameters():
    bmaxes = jnp.array([5.0, 10.0, 20.0])
    got = jax.vmap(lambda b: td.VP(0.1, b).temperature(0.5))(bmaxes)
    want = jnp.stack([td.VP(0.1, float(b)).temperature(0.5) for b in bmaxes])
    np.testing.assert_allclose(got, want, rtol=1e-13)
    smax = jnp.array([10.0, 50.0])
    got = jax.jit(jax.vmap(lambda m: td.VE(0.01, m).time_at_temperature(4.0)))(smax)
    want = jnp.stack([td.VE(0.01, float(m)).time_at_temperature(4.0) for m in smax])
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: td.VE(1.0, 0.5), "sigma_min"),
        (lambda: td.VE(0.0, 1.0), "sigma_min"),
        (lambda: td.VE(0.1), "sigma_max"),
        (lambda: td.VP(-0.1, 20.0), "beta_min"),
        (lambda: td.VP(0.1, 0.0), "beta_max"),
        (lambda: td.VP(5.0, 1.0), "beta_min"),
        (lambda: td.DDPM(jnp.array([0.1, 1.5])), "betas"),
        (lambda: td.DDPM(jnp.array([])), "betas"),
        (lambda: td.DDPM(num_steps=0), "num_steps"),
        (lambda: td.OU(t_max=-1.0), "t_max"),
        (lambda: td.Cosine(t_max=1.0), "t_max"),
        (lambda: td.VP(float("nan"), 1.0), "beta_min"),
    ],
)
def test_bad_schedule_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()
