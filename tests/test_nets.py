"""Networks and preconditioning (theory section 10): exactness of each parametrisation,
shapes, vmap/jit invariance, architecture round trips, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td
from thermodiff._nets import PARAMETRIZATIONS, build_network, coefficients


class OracleNet(eqx.Module):
    """A raw 'network' whose output is exactly the regression target of its parametrisation."""

    ensemble: td.AbstractEnsemble
    parametrization: str = eqx.field(static=True)
    sigma_data: float
    mean: jax.Array

    @property
    def dim(self):
        return self.ensemble.dim

    def __call__(self, x_in, c_noise):
        T = self.sigma_data**2 * jnp.exp(4 * c_noise)
        _, _, c_in, _ = coefficients(self.parametrization, T, self.sigma_data)
        u = x_in / c_in + self.mean
        pre = td.Preconditioned(self, self.parametrization, self.sigma_data, self.mean)
        return pre.raw_target(u, T, self.ensemble.denoiser(u, T))


ENSEMBLES = [
    td.TwoDeltas(jnp.array([1.0, -0.5])),
    td.GaussianMixture(jnp.array([[2.0, 0.0, 1.0], [-1.0, 1.0, 0.0]]), jnp.array([0.3, 1.2])),
]


@pytest.mark.parametrize("param", PARAMETRIZATIONS)
@pytest.mark.parametrize("ens", ENSEMBLES, ids=["two_deltas", "mixture"])
def test_each_parametrization_is_exact_when_raw_output_is_target(param, ens, key):
    mean = 0.3 * jnp.ones(ens.dim)
    sd = 1.7
    model = td.Preconditioned(OracleNet(ens, param, sd, mean), param, sd, mean)
    us = jax.random.normal(key, (64, ens.dim)) * 3
    for T in (1e-4, 0.05, 1.0, 7.0, 1e3):
        D = jax.vmap(lambda u: model.denoiser(u, T))(us)
        m = jax.vmap(lambda u: ens.denoiser(u, T))(us)
        np.testing.assert_allclose(D, m, rtol=1e-10, atol=1e-10 * max(1.0, T))


@pytest.mark.parametrize("schedule", [td.VP(), td.VE(0.01, 50.0), td.OU(), td.Cosine()], ids=["VP", "VE", "OU", "cos"])
def test_one_net_serves_every_schedule(schedule, key):
    ens = ENSEMBLES[1]
    model = td.Preconditioned(OracleNet(ens, "edm", 1.0, jnp.zeros(3)), "edm", 1.0)
    exact = td.Diffused(ens, schedule)
    x = jax.random.normal(key, (3,))
    for t in (0.2, 0.5, 0.8):
        t = schedule.t_min + t * (schedule.t_max - schedule.t_min)
        np.testing.assert_allclose(model.denoise(x, t, schedule), exact.denoiser(x, t), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.score(x, t, schedule), exact.score(x, t), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("param", PARAMETRIZATIONS)
def test_coefficients_identities(param):
    T = jnp.geomspace(1e-5, 1e4, 50)
    sd = 0.7
    c_skip, c_out, c_in, c_noise = coefficients(param, T, sd)
    np.testing.assert_allclose(c_in**2 * (T + sd**2), 1.0, rtol=1e-12)
    np.testing.assert_allclose(c_noise, 0.25 * np.log(T / sd**2), rtol=1e-12)
    if param == "edm":
        # the raw target (y - c_skip x)/c_out has unit variance for data of variance sd^2
        np.testing.assert_allclose((1 - c_skip) ** 2 * sd**2 + c_skip**2 * T, c_out**2, rtol=1e-12)
        np.testing.assert_allclose(td.EDMWeighting()(T, sd), 1 / c_out**2, rtol=1e-12)


def test_raw_target_inverts_the_denoiser(key):
    net = td.ResidualMLP(5, 16, 2, key=key)
    for param in PARAMETRIZATIONS:
        model = td.Preconditioned(net, param, 0.8, jnp.arange(5.0))
        u, y = jax.random.normal(key, (2, 5))
        F = model.raw_target(u, 0.3, y)
        c_skip, c_out, c_in, c_noise = model.coefficients(0.3)
        np.testing.assert_allclose(model.data_mean + c_skip * (u - model.data_mean) + c_out * F, y, rtol=1e-12)


def test_residual_mlp_shapes_vmap_jit_and_zero_init(key):
    d = 6
    net = td.ResidualMLP(d, 32, 3, key=key)
    model = td.Preconditioned(net, "edm", 2.0, jnp.ones(d))
    us = jax.random.normal(key, (10, d))
    Ts = jnp.geomspace(0.01, 10, 10)
    loop = jnp.stack([model.denoiser(u, T) for u, T in zip(us, Ts)])
    np.testing.assert_allclose(jax.vmap(model.denoiser)(us, Ts), loop, rtol=1e-12)
    np.testing.assert_allclose(jax.jit(jax.vmap(model.denoiser))(us, Ts), loop, rtol=1e-12)
    # the output layer starts at zero: D = mean + c_skip (u - mean)
    c_skip = 4.0 / (Ts + 4.0)
    np.testing.assert_allclose(loop, 1 + c_skip[:, None] * (us - 1), rtol=1e-12)
    assert net.dim == d and model.dim == d


@pytest.mark.parametrize("shape, channels", [((8, 8), (8, 16)), ((28, 28), (8, 16, 16)), ((5, 7), (4, 8))])
def test_unet_acts_on_flattened_images(shape, channels, key):
    h, w = shape
    net = td.UNet(h, w, channels, emb_dim=16, key=key)
    # a non-zero output layer, so the test sees the whole network
    net = eqx.tree_at(lambda n: n.conv_out.weight, net, jax.random.normal(key, net.conv_out.weight.shape) * 0.1)
    x = jax.random.normal(key, (3, h * w))
    out = eqx.filter_jit(lambda n, x, c: jax.vmap(n)(x, c))(net, x, jnp.array([-1.0, 0.0, 1.0]))
    assert out.shape == (3, h * w) and bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_allclose(out[1], eqx.filter_jit(lambda n, x: n(x, 0.0))(net, x[1]), rtol=1e-10, atol=1e-12)
    assert net.dim == h * w
    assert float(jnp.std(out)) > 0


@pytest.mark.parametrize("shape, kernel, stride, padding", [((3, 8, 8), 3, 1, 1), ((2, 7, 5), 3, 2, 1), ((4, 6, 6), 1, 1, 0)])
def test_product_form_convolution_equals_equinox(shape, kernel, stride, padding, key):
    from thermodiff._nets import _conv

    conv = eqx.nn.Conv2d(shape[0], 5, kernel, stride=stride, padding=padding, key=key)
    x = jax.random.normal(key, shape)
    np.testing.assert_allclose(_conv(conv, x), conv(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [lambda k: td.ResidualMLP(4, 16, 2, emb_dim=8, key=k),
                                  lambda k: td.UNet(8, 8, (4, 8), emb_dim=8, key=k)], ids=["mlp", "unet"])
def test_architecture_rebuilds_the_same_network(make, key):
    net = make(key)
    again = build_network(net.architecture(), key)
    assert eqx.tree_equal(net, again)
    assert jax.tree.structure(net) == jax.tree.structure(build_network(net.architecture()))


def test_network_plugs_into_the_sampler_and_differentiates(key):
    d = 3
    model = td.Preconditioned(td.ResidualMLP(d, 16, 1, key=key), "noise", 1.0)
    x = jax.random.normal(key, (d,))
    out = td.sample(model, td.VP(), td.DDIM(), key, x, steps=5)
    assert out.shape == (d,) and bool(jnp.all(jnp.isfinite(out)))

    def f(m):
        return jnp.sum(td.sample(m, td.VP(), td.DDIM(), key, x, steps=5) ** 2)

    g = eqx.filter_grad(f)(model)
    assert float(jnp.sum(jnp.abs(g.net.out.weight))) > 0  # the zero-initialised output layer gets a gradient


def test_bad_input_names_the_argument(key):
    net = td.ResidualMLP(3, 8, 1, key=key)
    with pytest.raises(ValueError, match="parametrization"):
        td.Preconditioned(net, "velocity")
    with pytest.raises(ValueError, match="sigma_data"):
        td.Preconditioned(net, "edm", 0.0)
    with pytest.raises(ValueError, match="data_mean"):
        td.Preconditioned(net, "edm", 1.0, jnp.zeros(4))
    with pytest.raises(ValueError, match="width"):
        td.ResidualMLP(3, 0, key=key)
    with pytest.raises(ValueError, match="emb_dim"):
        td.ResidualMLP(3, 8, emb_dim=7, key=key)
    with pytest.raises(ValueError, match="channels"):
        td.UNet(8, 8, (), key=key)
    with pytest.raises(ValueError, match="architecture"):
        build_network({"name": "Transformer"})
    with pytest.raises(ValueError, match="temperature"):
        td.Preconditioned(net).denoiser(jnp.zeros(3), -1.0)


def test_instability_observables_run_on_a_network_and_match_the_exact_ones(key):
    """A network whose raw output is the exact target is the exact model: every observable of
    theory section 6 computed through it equals the ensemble's, draw for draw."""
    ens = td.TwoDeltas(jnp.array([1.0, 0.5]))
    net = td.Preconditioned(OracleNet(ens, "noise", 1.0, jnp.zeros(2)), "noise", 1.0)
    sched, T = td.VP(), 0.8
    x = jax.random.normal(key, (2,))
    for a, b in [
        (td.susceptibility_trace(net, sched, T, key, x), td.susceptibility_trace(ens, sched, T, key, x)),
        (td.class_change_probability(net, sched, T, key, y=ens.sample(key, 64), steps=20, classify=lambda v: v[0] > 0),
         td.class_change_probability(ens, sched, T, key, y=ens.sample(key, 64), steps=20, classify=lambda v: v[0] > 0)),
    ]:
        np.testing.assert_allclose(a.value, b.value, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(td.perturbation_response(net, sched, T, key, x, steps=20),
                               td.perturbation_response(ens, sched, T, key, x, steps=20), rtol=1e-7)
    xs = jax.random.normal(key, (64, 2))
    p_net = td.cloning_probability(net, sched, T, key=key, n_pairs=64, steps=20, x_T=xs, classify=lambda v: v[0] > 0)
    p_ens = td.cloning_probability(ens, sched, T, key=key, n_pairs=64, steps=20, x_T=xs, classify=lambda v: v[0] > 0)
    np.testing.assert_allclose(p_net.value, p_ens.value, rtol=1e-12)
    theta = sched.signal_scale(sched.time_at_temperature(T))
    exact_trace = jnp.trace(ens.posterior_cov(x / theta, T))
    st = td.susceptibility_trace(net, sched, T, key, x, n_probes=256)
    assert abs(float(st.value - exact_trace)) <= 5 * float(st.stderr) + 1e-9
