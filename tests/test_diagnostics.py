"""Exact diagnostics (theory section 10): the loss decomposition, closed forms, f_mem with its
bootstrap error, onset detection, generation, and the trained-vs-exact comparison."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td
from thermodiff._dynamics import _two_delta_field

from conftest import zscore_ok


@pytest.mark.parametrize("chunk", [4096, 7])
def test_posterior_trace_is_the_trace_of_the_covariance(chunk, key):
    Y = jax.random.normal(key, (40, 5)) + 3.0
    ds = td.FiniteDataset(Y, chunk_size=chunk)
    for T in (0.01, 0.3, 4.0):
        x = Y[3] + jnp.sqrt(T) * jax.random.normal(jax.random.key(2), (5,))
        np.testing.assert_allclose(ds.posterior_trace(x, T), jnp.trace(ds.posterior_cov(x, T)), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("T", [0.05, 0.02])
def test_posterior_trace_keeps_relative_precision_deep_in_the_memorised_phase(T):
    """Two points at +-1, x = 0.9 (float64): tr Cov = 4 w+ w- = sech^2(0.9/T), 1e-15 at T = 0.05 and
    1e-38 at T = 0.02. Centring at the data mean (sum w |y|^2 - m^2 = 1 - tanh^2) gave rounding
    noise of order 1e-16 or a clamped 0 there; centred at m the relative error is 1e-15."""
    ds = td.FiniteDataset(jnp.array([[1.0], [-1.0]]))
    exact = 1.0 / np.cosh(0.9 / T) ** 2
    np.testing.assert_allclose(float(ds.posterior_trace(jnp.array([0.9]), T)), exact, rtol=1e-9)


def test_irreducible_loss_of_two_points_is_the_two_delta_closed_form(key):
    a = 1.3
    ds = td.FiniteDataset(jnp.array([[a], [-a]]))
    for T in (0.2, 1.0, 5.0):
        est = td.irreducible_loss(ds, T, key, n_states=20000)
        _, u, w = _two_delta_field(td.TwoDeltas(a), jnp.asarray(T))
        exact = a**2 * jnp.sum(w / jnp.cosh(u) ** 2)  # tr Cov = a^2 sech^2(a x/T)
        assert zscore_ok(est.value, exact, est.stderr)


def test_exact_denoiser_has_zero_excess_and_loss_equal_to_irreducible(key):
    Y = jax.random.normal(key, (30, 3))
    ds = td.FiniteDataset(Y)
    for T in (0.05, 1.0):
        assert float(td.excess_loss(ds, ds, T, key, n_states=256).value) < 1e-25
        L = td.denoising_loss(ds, ds, T, key, n_states=4096)
        I = td.irreducible_loss(ds, T, key, n_states=4096)
        assert abs(float(L.value - I.value)) <= 5 * float(L.stderr + I.stderr)


def test_loss_decomposes_into_irreducible_plus_excess_for_a_network(key):
    Y = jax.random.normal(key, (50, 4)) * 2.0
    net = td.ResidualMLP(4, 16, 2, key=key)
    net = jax.tree.map(lambda x: x, net)
    import equinox as eqx

    net = eqx.tree_at(lambda n: n.out.weight, net, 0.3 * jax.random.normal(key, net.out.weight.shape))
    model = td.Preconditioned.for_data(net, Y)
    for T in (0.1, 1.0, 10.0):
        # the same key draws the same states for the three estimators
        L = td.denoising_loss(model, Y, T, key, n_states=4096)
        I = td.irreducible_loss(Y, T, key, n_states=4096)
        E = td.excess_loss(model, Y, T, key, n_states=4096)
        assert float(E.value) > 0.05 * float(I.value)  # a real excess, not a trivial check
        assert abs(float(L.value - I.value - E.value)) <= 5 * float(L.stderr + I.stderr + E.stderr)


def test_generalization_error_is_zero_for_the_population_denoiser(key):
    pop = td.GaussianMixture(jnp.array([[1.0, 0.0], [-1.0, 0.5]]), 0.3)
    assert float(td.generalization_error(pop, pop, 0.4, key, n_states=128).value) == 0.0
    Y = pop.sample(key, 20)
    g = td.generalization_error(td.FiniteDataset(Y), pop, 0.05, key, n_states=512)
    assert float(g.value) > 10 * float(g.stderr)  # the empirical denoiser of 20 points does not generalise


def test_memorization_fraction_and_its_bootstrap_error(key):
    Y = jax.random.normal(key, (100, 4))
    copies = Y[:60] + 1e-4 * jax.random.normal(jax.random.key(1), (60, 4))
    est = td.memorization_fraction(copies, Y)
    assert float(est.value) == 1.0 and float(est.stderr) < 1e-12
    mids = 0.5 * (Y[:50:2] + Y[1:50:2])
    far = jax.random.normal(jax.random.key(3), (140, 4)) * 0.01 + 50.0
    mix = jnp.concatenate([copies, far])
    est = td.memorization_fraction(mix, Y, key=jax.random.key(4), n_boot=4000)
    p = 60 / 200
    assert abs(float(est.value) - p) < 1e-12
    np.testing.assert_allclose(float(est.stderr), np.sqrt(p * (1 - p) / 200), rtol=0.1)
    assert float(td.memorization_fraction(mids, Y).value) < 0.5
    with pytest.raises(ValueError, match="samples"):
        td.memorization_fraction(Y[:, :2], Y)
    with pytest.raises(ValueError, match="ratio"):
        td.memorization_fraction(Y, Y, ratio=1.5)


def test_onset_detection_interpolates_in_log_step():
    steps = np.array([0, 10, 100, 1000, 10000])
    assert td.detect_tau_mem(steps, [0.0, 0.0, 0.0, 0.5, 1.0], threshold=0.25) == pytest.approx(np.sqrt(100 * 1000))
    assert td.detect_tau_mem(steps, [0.0] * 5) is None
    g = np.array([10.0, 9.0, 5.0, 1.0, 1.5])  # drop 9; 90% reached between 100 (5) and 1000 (1.0)
    f = (5.0 - 1.9) / (5.0 - 1.0)
    assert td.detect_tau_gen(steps, g) == pytest.approx(np.exp(np.log(100) + f * np.log(10)))
    assert td.detect_tau_gen(steps, [1.0, 1.0, 1.0, 1.0, 1.0]) is None
    with pytest.raises(ValueError, match="threshold"):
        td.detect_tau_mem(steps, [0.0] * 5, threshold=0.0)


def test_generate_samples_the_law_of_an_exact_model(key):
    pop = td.Gaussian(jnp.array([1.0, -2.0]), 2.0)
    x = td.generate(pop, key, 8000, sigma_data=1.4, mean=jnp.array([1.0, -2.0]))
    assert x.shape == (8000, 2)
    np.testing.assert_allclose(np.mean(x, 0), [1.0, -2.0], atol=5 * np.sqrt(2 / 8000))
    np.testing.assert_allclose(np.var(x, 0), 2.0, rtol=5 * np.sqrt(2 / 8000))


def test_measure_collapse_with_the_exact_model_equals_the_default(key):
    Y = jax.random.normal(key, (16, 2))
    a = td.measure_collapse(Y, td.VP(), key, n_trajectories=16, n_save=4, steps=20)
    b = td.measure_collapse(Y, td.VP(), key, n_trajectories=16, n_save=4, steps=20, model=td.FiniteDataset(Y))
    np.testing.assert_array_equal(np.asarray(a.memorized_fraction), np.asarray(b.memorized_fraction))
    np.testing.assert_array_equal(np.asarray(a.settle_T), np.asarray(b.settle_T))


def test_comparison_of_a_perfect_generalizer_with_the_exact_laws(key):
    mu = jnp.array([2.0, 0.0])
    pop = td.GaussianMixture(jnp.stack([mu, -mu]), 0.5)
    Y = pop.sample(jax.random.key(8), 8)
    Ts = np.array([4.0, 1.0, 1e-4])
    c = td.compare_to_exact(pop, Y, pop, temperatures=Ts, key=key, n_states=256, n_pairs=400, steps=30,
                            n_trajectories=64)
    col = c.columns
    np.testing.assert_array_equal(col["generalization"], 0.0)
    np.testing.assert_allclose(col["trace_model"], col["trace_population"], rtol=1e-9)
    assert np.all(np.abs(col["phi_model"] - col["phi_population"]) < 5 * c.stderr["phi_model"] + 0.03)
    # 8 training points: the exact empirical law memorises at T = 1e-4, the population law never does
    assert col["memorized_empirical"][-1] > 0.9 and col["memorized_model"][-1] < 0.2
    assert col["excess"][-1] > col["irreducible"][-1]
    # commitment (labels from the population's classes): all committed at the end, fewer when hot
    assert col["committed_model"][-1] > 0.9 and col["committed_model"][0] < col["committed_model"][-1]
    assert c.reference == "population (exact)"
    assert "phi_model" in c.markdown() and len(c.rows()) == 3
    assert set(c.summary) >= {"T_speciation_model", "T_speciation_population", "T_half_memorized_empirical"}


def test_diagnostics_bad_input(key):
    with pytest.raises(ValueError, match="temperatures"):
        td.Diagnostics(jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="not both"):
        td.Diagnostics(jnp.array([1.0]), population=td.TwoDeltas(1.0), held_out=jnp.ones((4, 1)))
    with pytest.raises(ValueError, match="n_samples"):
        td.Diagnostics(jnp.array([1.0]), n_samples=1)
    with pytest.raises(ValueError, match="evaluate"):
        td.Diagnostics(jnp.array([1.0]), evaluate="best")
    with pytest.raises(ValueError, match="temperatures"):
        td.compare_to_exact(td.TwoDeltas(1.0), jnp.ones((3, 1)), temperatures=[1.0], key=key)
    with pytest.raises(ValueError, match="temperature"):
        td.excess_loss(td.TwoDeltas(1.0), jnp.ones((3, 1)), 0.0, key)
