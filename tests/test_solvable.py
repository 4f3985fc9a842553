"""Solvable trained models (theory sections 10, 11): trained by the same loop as any network
(td.train), with known dynamics or outcome, they check the trainer and the diagnostics.

- linear denoiser: the expected SGD trajectory is closed-form; each covariance mode is learned in
  a time ~ 1/variance, and the measured learning times match the closed form;
- random features: the train-test gap is ~ 0 for p << n features and large for p = 4n;
- trainable Gaussian mixture: K = n means on the data memorise, K = 4 on 4 clusters generalise;
- the diagnostics (denoising/excess/irreducible losses, compare_to_exact's traces) reproduce the
  models' exact values; checkpoints round-trip; bad input is refused by name.

Pilot numbers (2-core CPU shared with other jobs, x64) are in each test's comments.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import thermodiff as td
from thermodiff._nets import ALL_PARAMETRIZATIONS, PARAMETRIZATIONS, build_network, coefficients
from thermodiff._solvable import (
    LinearNet,
    MixtureNet,
    RandomFeaturesNet,
    kmeans_plus_plus,
    linear_model,
    linear_modes,
    linear_sgd_weights,
    mixture_model,
    noise_moments,
    random_features_model,
    train_test_gap,
)
from thermodiff._train import trainable


def _whitened(key, n, d, variances):
    """n points in d dimensions with mean exactly 0 and second moment exactly diag(variances):
    the training set's own covariance is the population's, so finite-n fluctuations of C do not
    blur the comparisons (the closed forms use the training set's C either way)."""
    Z = np.asarray(jax.random.normal(key, (n, d)))
    Z = Z - Z.mean(0)
    L = np.linalg.cholesky(Z.T @ Z / n)
    return np.linalg.solve(L, Z.T).T * np.sqrt(np.asarray(variances))[None, :]


def _train_segments(model, data, trainer, bounds, key, vmap=False):
    """Train up to each step of ``bounds``; return the raw models there (fresh keys per segment)."""
    out, step = [], 0
    for i, b in enumerate(bounds):
        r = td.train(model, data, key=jax.random.fold_in(key, i), steps=int(b - step), trainer=trainer,
                     vmap=vmap, progress=False)
        model, step = r.state.model, b
        out.append(model)
    return out


# ----------------------------------------------------------------------------- "direct" output form
def test_direct_output_form_passes_the_centred_state_and_T(key):
    T = jnp.geomspace(1e-3, 1e3, 7)
    c_skip, c_out, c_in, c_noise = coefficients("direct", T, 0.7)
    np.testing.assert_array_equal(c_skip, 0.0)
    np.testing.assert_array_equal(c_out, 1.0)
    np.testing.assert_array_equal(c_in, 1.0)
    np.testing.assert_array_equal(c_noise, T)
    assert set(PARAMETRIZATIONS) == {"edm", "noise", "x0", "score"} and "direct" in ALL_PARAMETRIZATIONS
    W = jax.random.normal(key, (3, 3))
    mean = jnp.array([1.0, -2.0, 0.5])
    model = td.Preconditioned(LinearNet(3, weight=W), "direct", 2.0, mean)
    u = jnp.array([0.3, 0.1, -1.0])
    np.testing.assert_allclose(model.denoiser(u, 0.2), mean + W @ (u - mean), rtol=1e-14)
    np.testing.assert_allclose(model.score(u, 0.2), (mean + W @ (u - mean) - u) / 0.2, rtol=1e-13)


# ----------------------------------------------------------------------------- linear: the law of T
@pytest.mark.parametrize("noise, weighting, schedule", [
    (td.UniformTime(), td.EDMWeighting(), td.VP()),
    (td.LowDiscrepancy(), td.NoiseVarianceWeighting(), td.OU()),
    (td.LogNormal(), td.SNRWeighting(5.0), td.VP()),
    (td.UniformTime(), td.UnitWeighting(), td.VE(0.01, 30.0)),
], ids=["uniform-edm-VP", "lowdisc-1/T-OU", "lognormal-snr", "uniform-unit-VE"])
def test_noise_moments_match_the_sampled_law(noise, weighting, schedule, key):
    tr = td.Trainer(schedule=schedule, noise=noise, weighting=weighting, T_min=1e-3, T_max=50.0)
    sd = 0.8
    a, b = noise_moments(tr, sd)
    T = np.asarray(noise.sample(key, 200_000, schedule, 1e-3, 50.0, sd))
    lam = np.asarray(weighting(jnp.asarray(T), sd))
    for exact, v in ((a, lam), (b, lam * T)):
        assert abs(np.mean(v) - exact) <= 5 * np.std(v) / np.sqrt(v.size) + 1e-12 * abs(exact), (np.mean(v), exact)


# ----------------------------------------------------------------------------- linear: exact losses
def test_linear_model_losses_are_the_quadratic_form(key):
    """For D = mean + W(u - mean): L(T) = tr((W - I) C (W - I)^T) + T tr(W W^T) exactly; the
    diagnostics' Monte Carlo must reproduce it, also split into irreducible + excess."""
    d = 4
    Y = _whitened(key, 64, d, [2.0, 1.0, 0.5, 0.25]) + 3.0
    W = 0.4 * np.eye(d) + 0.1 * np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (d, d)))
    model = linear_model(Y, weight=W)
    C = np.diag([2.0, 1.0, 0.5, 0.25])
    I = np.eye(d)
    for T in (0.05, 1.0):
        exact = np.trace((W - I) @ C @ (W - I).T) + T * np.trace(W @ W.T)
        k = jax.random.fold_in(key, int(T * 100))
        L = td.denoising_loss(model, Y, T, k, n_states=20000)
        assert abs(float(L.value) - exact) <= 5 * float(L.stderr), (float(L.value), exact)
        irr = td.irreducible_loss(Y, T, k, n_states=20000)
        exc = td.excess_loss(model, Y, T, k, n_states=20000)
        split = float(irr.value) + float(exc.value)
        assert abs(split - exact) <= 5 * (float(irr.stderr) + float(exc.stderr)), (split, exact)


# ----------------------------------------------------------------------------- linear: SGD dynamics
def test_linear_sgd_learns_each_mode_in_a_time_inverse_to_its_variance(key):
    """d = 32, variances 1/k (k = 1..32), plain SGD (eta = 0.256, batch 1024, no clipping, no EMA),
    unit weighting, T in the narrow band [1e-4, 2e-4] << 1/32. Learning time of mode k: the step
    at which its error |w_k - w*_k| falls to 1/e, interpolated in log error between 14 log-spaced
    measurements. Pilot (eta = 0.32, 3 seeds): measured/closed-form - 1 within 0.5%, measured vs
    gradient flow 1/r_k within 1.4% (the discrete-step correction is r/2 = 1%), fitted exponent
    -1.0010/-0.9997/-1.0007. This test (eta = 0.256, r_1 = 0.016): 0.89%, 0.80%, -0.9995.
    Thresholds: 2%, 2% and -1.00 +- 0.10. About 7 s of training (2000 steps, 14 calls)."""
    d, eta = 32, 0.256
    var = 1.0 / np.arange(1, d + 1)
    Y = _whitened(key, 4096, d, var)
    model = linear_model(Y)
    tr = td.Trainer(optax.sgd(eta), T_min=1e-4, T_max=2e-4, weighting=td.UnitWeighting(), batch_size=1024,
                    ema_decay=0.0, grad_clip=None)
    modes = linear_modes(model, Y, learning_rate=eta, trainer=tr)
    np.testing.assert_allclose(modes.variances, var, rtol=1e-10)
    bounds = np.unique(np.round(np.geomspace(30, 1.15 * modes.learning_times.max(), 14)).astype(int))
    models = _train_segments(model, Y, tr, bounds, jax.random.fold_in(key, 7))
    W = np.stack([np.asarray(m.net.weight) for m in models])
    w_star = modes.gains(modes.fixed_point)
    err = np.log(np.abs(1 - modes.gains(W) / w_star))  # (steps, d); error starts at 1 (W(0) = 0)
    i = np.argmax(err < -1, axis=0)
    assert np.all(i > 0), "every mode must cross 1/e inside the run, after the first measurement"
    e0, e1 = err[i - 1, np.arange(d)], err[i, np.arange(d)]
    tau = bounds[i - 1] + (e0 + 1) / (e0 - e1) * (bounds[i] - bounds[i - 1])
    np.testing.assert_allclose(tau, modes.learning_times, rtol=0.02)
    np.testing.assert_allclose(tau, modes.flow_times, rtol=0.02)
    slope = np.polyfit(np.log(var), np.log(tau), 1)[0]
    assert abs(slope + 1) <= 0.10, slope
    # the whole matrix follows E[W(s)] (off-diagonal entries stay at 0 up to SGD noise)
    expected = linear_sgd_weights(model, Y, bounds, learning_rate=eta, trainer=tr)
    assert np.max(np.abs(W - expected)) < 0.02, np.max(np.abs(W - expected))


def test_linear_expected_weight_is_exact_under_sgd_with_a_wide_band(key):
    """E[W] under minibatch SGD follows the deterministic recursion for any law of T: a wide
    band [1e-2, 10] with EDM weighting (a = 8.16, b = 5.46 by quadrature; rates 0.09, 0.05,
    0.04 at eta = 0.01), 30 steps, 16 seeds vmapped, batch 256. Pilot: max |seed mean - E[W]| =
    1.1 standard errors of the seed mean (0.0032); the same run against a closed form with a
    5% larger a is 5.0 of them away, with a 10% larger b 10.3, with b = 0 187. Threshold: 4.5."""
    d = 3
    Y = _whitened(key, 256, d, [1.0, 0.3, 0.1]) + 0.5
    model = linear_model(Y, weight=0.2 * np.eye(d))
    eta, steps = 0.01, 30
    tr = td.Trainer(optax.sgd(eta), T_min=1e-2, T_max=10.0, batch_size=256, ema_decay=0.0, grad_clip=None)
    stack = td.stack_models([model] * 16)
    r = td.train(stack, Y, key=jax.random.fold_in(key, 3), steps=steps, trainer=tr, vmap=True, progress=False)
    W = np.asarray(r.state.model.net.weight)  # (16, d, d)
    expected = linear_sgd_weights(model, Y, steps, learning_rate=eta, trainer=tr)
    se = W.std(0, ddof=1) / np.sqrt(W.shape[0])
    assert np.all(np.abs(W.mean(0) - expected) <= 4.5 * se), ((W.mean(0) - expected) / se)
    moved = np.abs(expected - 0.2 * np.eye(d)).max()
    assert moved > 10 * se.max(), "the run must move W well beyond the seed noise"


# ----------------------------------------------------------------------------- random features
def test_random_features_memorize_for_p_above_n_and_generalize_below(key):
    """d = 8, n = 256 whitened N(0, I) points, T in [0.1, 0.1001], Adam(0.1), batch 512, 1000
    steps, score output form, tanh features; the gap with common noise draws, 32768 states.
    Pilot (least-squares optimum with m = 80 noise draws per point): gap(p = 8) = 0.000 +- 0.004,
    gap(p = 1024 = 4n) = 2.78. Trained, 6 data seeds: gap(p = 8) in [-0.0010, 0.0030] (stderr
    0.0014), L_train = 0.742-0.746 (identity 0.80, population optimum 0.7273); 3 seeds:
    gap(p = 4n) = 0.153, 0.168, 0.190 (stderr 0.003). This test: gap(8) = 0.0003 +- 0.0015,
    L_train = 0.7428; gap(1024) = 0.195 +- 0.003. Thresholds: |gap| < 1% and L_train below the
    identity by half the possible gain for p = 8; gap > 10% for p = 4n."""
    d, n, T = 8, 256, 0.1
    pop = td.Gaussian(jnp.zeros(d), 1.0)
    Y = _whitened(key, n, d, np.ones(d))
    tr = td.Trainer(optax.adam(0.1), T_min=T, T_max=T * 1.001, weighting=td.UnitWeighting(), batch_size=512,
                    ema_decay=0.0, grad_clip=None)
    gaps = {}
    for p in (8, 4 * n):
        model = random_features_model(Y, p, key=jax.random.fold_in(key, p))
        r = td.train(model, Y, key=jax.random.fold_in(key, 10 + p), steps=1000, trainer=tr, progress=False)
        gaps[p] = train_test_gap(r.state.model, Y, pop, T, jax.random.fold_in(key, 99), n_states=32768)
    g = gaps[8]
    assert abs(float(g.gap.value)) < 0.01, float(g.gap.value)
    L_id, L_pop = d * T, d * T / (1 + T)
    assert float(g.train.value) < L_id - 0.5 * (L_id - L_pop), float(g.train.value)
    assert float(gaps[4 * n].gap.value) > 0.10, float(gaps[4 * n].gap.value)


# ----------------------------------------------------------------------------- mixture
def test_mixture_with_a_component_per_point_memorizes(key):
    """K = n = 64 means on the training points (d = 8, N(0, I)), initial variance 0.3 (f_mem of
    its samples 0.016: it starts as a generaliser). DSM drives the variance to 0 (the exact
    empirical denoiser is the global minimiser). Pilot: Adam(0.03), 400 steps, EMA model: variance
    0.30 -> 0.0041, f_mem = 1.00 (raw model 0.97); this test (128 samples, 30 Heun steps):
    variance 0.0040, f_mem = 1.00. Thresholds: f_mem >= 0.9, variance < 0.03."""
    d, n = 8, 64
    Y = np.asarray(td.Gaussian(jnp.zeros(d), 1.0).sample(key, n))
    model = mixture_model(Y, means=Y, variance=0.3)
    r = td.train(model, Y, key=jax.random.fold_in(key, 1), steps=400, optimizer=optax.adam(0.03), batch_size=256,
                 progress=False)
    assert float(r.model.net.variance) < 0.03, float(r.model.net.variance)
    S = td.generate(r.model, jax.random.fold_in(key, 2), 128, steps=30)
    f = td.memorization_fraction(S, Y)
    assert float(f.value) >= 0.9, float(f.value)


def test_mixture_with_four_components_generalizes_on_four_clusters(key):
    """4 clusters N(6 e_k, I), k = 1..4, in d = 8, n = 256; K = 4 means by k-means++ on the data.
    Pilot (seeds 0, 1): initial variance 2.0-3.3 (the distortion of data-point means), after
    400 Adam(0.03) steps 1.01-1.04, means 0.33-0.46 from the centres (the sampling error of a
    64-point cluster mean is sqrt(8/64) = 0.35), f_mem = 0.0 (population samples: 0.0). This
    test: initial variance 1.99 -> 1.000, means 0.23-0.52 from the centres, f_mem = 0.0, G = 0.036.
    Thresholds: f_mem <= 0.1, |variance - 1| < 0.15, every mean within 0.8 of a centre, and the
    generalisation error against the exact population at T = 1 below 0.1 (per state)."""
    d, n = 8, 256
    centres = 6.0 * np.eye(d)[:4]
    pop = td.GaussianMixture(jnp.asarray(centres), 1.0)
    Y = np.asarray(pop.sample(key, n))
    model = mixture_model(Y, 4, key=jax.random.fold_in(key, 1))
    r = td.train(model, Y, key=jax.random.fold_in(key, 2), steps=400, optimizer=optax.adam(0.03), batch_size=256,
                 progress=False)
    m = r.model
    mu = np.asarray(m.net.means + m.data_mean[None, :])
    dist = np.linalg.norm(mu[:, None, :] - centres[None], axis=-1)
    assert sorted(np.argmin(dist, axis=1).tolist()) == [0, 1, 2, 3] and dist.min(1).max() < 0.8, dist.min(1)
    assert abs(float(m.net.variance) - 1) < 0.15, float(m.net.variance)
    S = td.generate(m, jax.random.fold_in(key, 3), 256, steps=30)
    f = td.memorization_fraction(S, Y)
    assert float(f.value) <= 0.1, float(f.value)
    G = td.generalization_error(m, pop, 1.0, jax.random.fold_in(key, 4), n_states=2048)
    assert float(G.value) < 0.1, float(G.value)


@pytest.mark.slow
def test_train_diagnostics_watch_the_mixture_memorize(key):
    """td.train's own diagnostics on the K = n mixture of the test above (64 samples, 6 logged
    steps, population N(0, I)). Pilot: f_mem = 0.02, 0.03, 0.02, 0.08, 0.62, 1.00 at steps 0, 1,
    4, 20, 89, 400; excess at T = 0.1: 0.465 -> 0.002; tau_mem = 21. Thresholds: f_mem starts
    <= 0.15 and ends >= 0.9, excess falls by 20x at both temperatures, tau_mem in (1, 400)."""
    d, n = 8, 64
    Y = np.asarray(td.Gaussian(jnp.zeros(d), 1.0).sample(key, n))
    diag = td.Diagnostics(jnp.array([0.1, 1.0]), td.Gaussian(jnp.zeros(d), 1.0), n_samples=64, n_logs=6,
                          n_states=128)
    r = td.train(mixture_model(Y, means=Y, variance=0.3), Y, key=jax.random.fold_in(key, 1), steps=400,
                 optimizer=optax.adam(0.03), batch_size=256, diagnostics=diag, progress=False)
    f, exc = r.history["f_mem"], r.history["excess"]
    assert f[0] <= 0.15 and f[-1] >= 0.9, f
    assert np.all(exc[-1] < exc[0] / 20), exc
    assert r.tau_mem is not None and 1 < r.tau_mem < 400, r.tau_mem


def _empirical_mixture(key):
    """Means on the n points and s^2 = 1e-12: the FiniteDataset denoiser up to O(s^2/T)."""
    Y = np.asarray(jax.random.normal(key, (20, 3))) * 2
    return Y, mixture_model(Y, means=Y, variance=1e-12)


def test_mixture_on_the_data_at_zero_variance_is_the_exact_empirical_denoiser(key):
    """The model must equal the exact empirical denoiser, and the diagnostics see zero excess."""
    Y, model = _empirical_mixture(key)
    ens = td.FiniteDataset(jnp.asarray(Y))
    us = jax.random.normal(jax.random.fold_in(key, 1), (16, 3)) * 2
    for T in (0.05, 1.0, 20.0):
        np.testing.assert_allclose(jax.vmap(lambda u: model.denoiser(u, T))(us),
                                   jax.vmap(lambda u: ens.denoiser(u, T))(us), rtol=1e-9, atol=1e-9)
        assert float(td.excess_loss(model, Y, T, key, n_states=512).value) < 1e-15


@pytest.mark.slow
def test_compare_to_exact_sees_the_empirical_mixture_as_the_empirical_law(key):
    """compare_to_exact on the zero-variance mixture: zero excess, and the model's posterior
    trace T tr(dD/du) equals the empirical one (about 20 s of compilation on a loaded CPU)."""
    Y, model = _empirical_mixture(key)
    cmp = td.compare_to_exact(model, Y, temperatures=[0.1, 1.0, 10.0], key=key, n_states=512, cloning=False,
                              collapse=False)
    assert np.all(cmp.columns["excess"] < 1e-15), cmp.columns["excess"]
    np.testing.assert_allclose(cmp.columns["trace_model"], cmp.columns["trace_empirical"], rtol=1e-6, atol=1e-12)


def test_kmeans_plus_plus_picks_one_point_per_separated_cluster(key):
    centres = 50.0 * np.eye(5)
    Y = np.repeat(centres, 20, axis=0) + np.asarray(jax.random.normal(key, (100, 5)))
    for s in range(5):
        mu = kmeans_plus_plus(Y, 5, jax.random.fold_in(key, s))
        assert sorted(np.argmin(np.linalg.norm(mu[:, None] - centres[None], axis=-1), axis=1).tolist()) == [0, 1, 2, 3, 4]
    allpts = kmeans_plus_plus(Y, 100, key)
    assert sorted(map(tuple, allpts.tolist())) == sorted(map(tuple, Y.tolist()))


# ----------------------------------------------------------------------------- checkpoints
def _make(kind, Y, key):
    if kind == "linear":
        return linear_model(Y, weight=0.1 * np.eye(Y.shape[1]))
    if kind == "features":
        return random_features_model(Y, 12, key=key, activation="erf")
    return mixture_model(Y, 3, key=key)


@pytest.mark.parametrize("kind", [pytest.param("linear", marks=pytest.mark.slow), "features", "mixture"])
def test_checkpoint_round_trip(kind, key, tmp_path):
    """Train (AdamW with a strong weight decay), save, load: bit-identical state; resume: the same
    run. The random features are a uint32 key, not a float leaf: no optimizer touches them, not
    even weight decay, while the readout trains."""
    Y = np.asarray(jax.random.normal(key, (40, 3))) + 1.0
    model = _make(kind, Y, jax.random.fold_in(key, 1))
    tr = td.Trainer(optax.adamw(1e-2, weight_decay=0.5), T_min=1e-2, T_max=10.0, batch_size=16)
    full = td.train(model, Y, key=key, steps=12, trainer=tr, checkpoint=tmp_path / "full", progress=False)
    ck = td.load_checkpoint(tmp_path / "full", tr, data=Y)
    assert ck.meta["architecture"] == model.net.architecture() and ck.meta["parametrization"] == model.parametrization
    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(ck.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    u = jnp.array([0.3, -1.0, 2.0])
    np.testing.assert_array_equal(ck.ema.denoiser(u, 0.5), full.model.denoiser(u, 0.5))
    td.train(model, Y, key=key, steps=5, trainer=tr, checkpoint=tmp_path / "cut", progress=False)
    resumed = td.train(model, Y, key=key, steps=12, trainer=tr, checkpoint=tmp_path / "cut", resume=True, progress=False)
    for a, b in zip(jax.tree.leaves(eqx.filter(full.state.model, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(resumed.state.model, eqx.is_array))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)
    if kind == "features":
        spec = trainable(model)
        assert spec.net.readout is True and spec.net.feature_key is False
        np.testing.assert_array_equal(ck.model.net.feature_key, model.net.feature_key)
        np.testing.assert_array_equal(ck.model.net.features(), model.net.features())
        assert float(jnp.max(jnp.abs(ck.model.net.readout))) > 0


def test_build_network_rebuilds_each_solvable_net(key):
    for net in (LinearNet(4), RandomFeaturesNet(4, 7, "relu", key=key), MixtureNet(4, 5)):
        again = build_network(net.architecture(), key)
        assert type(again) is type(net) and again.architecture() == net.architecture()
        assert jax.tree.structure(again) == jax.tree.structure(net)


def test_an_invalid_temperature_under_jit_gives_nan(key):
    Y = np.asarray(jax.random.normal(key, (12, 3)))
    f = eqx.filter_jit(lambda m, u, T: m.denoiser(u, T))
    u = jnp.ones(3)
    for model in (linear_model(Y), random_features_model(Y, 5, key=key), mixture_model(Y, 3, key=key),
                  random_features_model(Y, 5, key=key, parametrization="direct")):
        assert np.all(np.isfinite(f(model, u, jnp.asarray(0.5))))
        for T in (-1.0, 0.0, np.nan, np.inf):
            assert np.all(np.isnan(f(model, u, jnp.asarray(T)))), (type(model.net).__name__, T)
        with pytest.raises(ValueError, match=r"T \(temperature.*must be finite and > 0"):
            model.denoiser(u, -1.0)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_names_the_argument(key):
    Y = np.asarray(jax.random.normal(key, (10, 3)))
    bad = [
        (lambda: random_features_model(Y, 0, key=key), ValueError, "n_features"),
        (lambda: random_features_model(Y, 2.5, key=key), ValueError, "n_features"),
        (lambda: random_features_model(Y, 4, key=key, activation="sigmoid"), ValueError, "activation"),
        (lambda: random_features_model(Y, 4, key=None), TypeError, "key"),
        (lambda: random_features_model(Y, 4, key=key, parametrization="bogus"), ValueError, "parametrization"),
        (lambda: RandomFeaturesNet(3, 4, key=key, readout=np.zeros((4, 3))), ValueError, "readout"),
        (lambda: RandomFeaturesNet(3, 4, key=key, readout=np.full((3, 4), np.nan)), ValueError, "readout"),
        (lambda: MixtureNet(3, 2, means=np.full((2, 3), np.inf)), ValueError, "means"),
        (lambda: mixture_model(Y, 0, key=key), ValueError, "n_components"),
        (lambda: mixture_model(Y, 11, key=key), ValueError, "n_components"),
        (lambda: mixture_model(Y, 2), ValueError, "key"),
        (lambda: mixture_model(Y, means=np.zeros((2, 4))), ValueError, "means"),
        (lambda: mixture_model(Y, means=np.full((2, 3), np.nan)), ValueError, "means"),
        (lambda: mixture_model(Y, 3, means=np.zeros((2, 3))), ValueError, "n_components"),
        (lambda: mixture_model(Y, 2, key=key, variance=0.0), ValueError, "variance"),
        (lambda: mixture_model(Y, 2, key=key, variance=np.inf), ValueError, "variance"),
        (lambda: MixtureNet(3, 0), ValueError, "n_components"),
        (lambda: MixtureNet(3, 2, log_variance=np.nan), ValueError, "log_variance"),
        (lambda: MixtureNet(3, 2, means=np.zeros((3, 2))), ValueError, "means"),
        (lambda: linear_model(Y, weight=np.zeros((3, 2))), ValueError, "weight"),
        (lambda: linear_model(Y, weight=np.full((3, 3), np.inf)), ValueError, "weight"),
        (lambda: linear_model(Y[0]), ValueError, "data"),
        (lambda: linear_model(np.full((4, 3), np.nan)), ValueError, "data"),
        (lambda: LinearNet(0), ValueError, "dim"),
        (lambda: kmeans_plus_plus(Y, 0, key), ValueError, "k"),
        (lambda: train_test_gap(linear_model(Y), Y, Y, -1.0, key), ValueError, "T"),
        (lambda: train_test_gap(linear_model(Y), Y, np.zeros((5, 2)), 1.0, key), ValueError, "test"),
        (lambda: train_test_gap(linear_model(Y), Y, Y, 1.0, key, n_states=1), ValueError, "n_states"),
    ]
    for call, err, name in bad:
        with pytest.raises(err, match=name):
            call()
    tr = td.Trainer(optax.sgd(0.1), T_min=1e-2, T_max=1.0, grad_clip=None)
    model = linear_model(Y)
    with pytest.raises(ValueError, match="learning_rate"):
        linear_modes(model, Y, learning_rate=-0.1, trainer=tr)
    with pytest.raises(ValueError, match="learning_rate"):
        linear_modes(model, Y, learning_rate=1e6, trainer=tr)  # unstable: rate >= 2
    with pytest.raises(ValueError, match="grad_clip"):
        linear_modes(model, Y, learning_rate=0.1, trainer=td.Trainer(optax.sgd(0.1), T_min=1e-2, T_max=1.0))
    with pytest.raises(ValueError, match="data"):
        linear_modes(model, Y[:, :2], learning_rate=0.1, trainer=tr)
    with pytest.raises(TypeError, match="model"):
        linear_modes(mixture_model(Y, 2, key=key), Y, learning_rate=0.1, trainer=tr)
    with pytest.raises(ValueError, match="steps"):
        linear_sgd_weights(model, Y, -1, learning_rate=0.1, trainer=tr)
    with pytest.raises(ValueError, match="sigma_data"):
        noise_moments(tr, 0.0)
    with pytest.raises(TypeError, match="trainer"):
        noise_moments("adam", 1.0)


# ----------------------------------------------------------------------------- slow: the crossover
@pytest.mark.slow
def test_random_features_gap_grows_through_p_equal_n(key):
    """The train-test gap of trained random features rises monotonically with p across p = n
    (d = 8, n = 128, T = 0.1, 3000 Adam(0.1) steps, batch 512). Pilot (one data seed):
    p = 8, 32, 128, 256, 512 -> gap = -0.0001, 0.039, 0.264, 0.407, 0.661 (stderr <= 0.006);
    about 55 s of training on a loaded 2-core CPU. Thresholds: increasing, gap(n/16) < 0.01,
    gap(n) > 3 gap(n/4), gap(4n) > 0.4."""
    d, n, T = 8, 128, 0.1
    pop = td.Gaussian(jnp.zeros(d), 1.0)
    Y = _whitened(key, n, d, np.ones(d))
    tr = td.Trainer(optax.adam(0.1), T_min=T, T_max=T * 1.001, weighting=td.UnitWeighting(), batch_size=512,
                    ema_decay=0.0, grad_clip=None)
    ps = (n // 16, n // 4, n, 2 * n, 4 * n)
    gaps = []
    for p in ps:
        model = random_features_model(Y, p, key=jax.random.fold_in(key, p))
        r = td.train(model, Y, key=jax.random.fold_in(key, 10 + p), steps=3000, trainer=tr, progress=False)
        gaps.append(float(train_test_gap(r.state.model, Y, pop, T, jax.random.fold_in(key, 99), n_states=32768).gap.value))
    assert np.all(np.diff(gaps) > 0), gaps
    assert gaps[0] < 0.01 and gaps[2] > 3 * gaps[1] and gaps[4] > 0.4, gaps
