"""Critical-instability observables (theory section 6): exact values and simulations against them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td


def test_phi_critical_universal_value():
    ens = td.TwoDeltas(1.0)
    e = td.cloning_probability(ens, None, 1.0)
    assert abs(float(e.value) - 0.775200) < 5e-7 and float(e.stderr) == 0.0
    # universal: T_c = a^2 for |mu| = a, any direction and dimension
    e2 = td.cloning_probability(td.TwoDeltas(jnp.array([1.2, -0.9, 0.4])), None, float(1.2**2 + 0.9**2 + 0.4**2))
    np.testing.assert_allclose(float(e2.value), td.PHI_CRITICAL, rtol=1e-12)
    # phi decreases from 1 (cold: committed) to 1/2 (hot: fair coin)
    Ts = jnp.array([0.05, 0.3, 1.0, 3.0, 100.0])
    phis = jnp.stack([td.cloning_probability(ens, None, T).value for T in Ts])
    assert np.all(np.diff(np.asarray(phis)) < 0)
    assert float(phis[0]) > 0.999 and abs(float(phis[-1]) - 0.5) < 0.01
    # the crossing of 0.775200 is T_c
    Tg = np.linspace(0.8, 1.2, 41)
    ph = [float(td.cloning_probability(ens, None, T).value) for T in Tg]
    assert abs(td.speciation_temperature(Tg, ph) - 1.0) < 1e-3


def test_phi_mixture_equals_shifted_two_deltas():
    """Mixture +-mu with variance v: P(+|x) = sigmoid(2 mu.x/(v + T)), so phi(T) is the two-delta
    phi at T + v; with the class posterior exact, only x ~ p_T is Monte Carlo."""
    v = 0.2
    mix = td.GaussianMixture(jnp.array([[1.0, 0.0], [-1.0, 0.0]]), v)
    for T in [0.3, 0.8, 2.0]:
        e = td.cloning_probability(mix, None, T, n_pairs=40000)
        ref = td.cloning_probability(td.TwoDeltas(jnp.array([1.0, 0.0])), None, T + v).value
        assert abs(float(e.value) - float(ref)) < 5 * float(e.stderr) + 1e-9


@pytest.mark.parametrize("sched", [td.VE(t_max=30.0), td.VP(), td.OU(6.0)], ids=["VE", "VP", "OU"])
def test_simulated_cloning_at_Tc(sched, key):
    ens = td.TwoDeltas(1.0)
    e = td.cloning_probability(ens, sched, 1.0, key=key, n_pairs=3000, steps=60, grid=td.KarrasGrid(), T_end=1e-3)
    assert abs(float(e.value) - 0.775200) < 5 * float(e.stderr)


def test_simulated_phi_curve_and_class_change(key):
    ens = td.TwoDeltas(1.0)
    sched = td.VP()
    for i, T in enumerate([0.4, 2.5]):
        k = jax.random.fold_in(key, i)
        exact = float(td.cloning_probability(ens, None, T).value)
        sim = td.cloning_probability(ens, sched, T, key=k, n_pairs=3000, steps=60, grid=td.KarrasGrid(), T_end=1e-3)
        assert abs(float(sim.value) - exact) < 5 * float(sim.stderr)
        ch = td.class_change_probability(ens, sched, T, k, n=3000, steps=60, grid=td.KarrasGrid(), T_end=1e-3)
        assert abs(float(ch.value) - (1 - exact)) < 5 * float(ch.stderr)


def test_cloning_of_a_user_model_with_classifier(key):
    """A plain score callable (no ensemble): states x_T and classify given by the user."""
    ens = td.TwoDeltas(1.0)
    sched = td.OU(6.0)
    dif = td.Diffused(ens, sched)
    n = 2000
    _, x_T = dif.sample_marginal(key, n, sched.time_at_temperature(1.0))
    e = td.cloning_probability(
        dif.score, sched, 1.0, key=key, n_pairs=n, x_T=x_T, classify=lambda x: (x[0] > 0).astype(jnp.int32),
        steps=60, grid=td.KarrasGrid(), T_end=1e-3,
    )
    assert abs(float(e.value) - 0.775200) < 5 * float(e.stderr)
    with pytest.raises(ValueError, match="x_T"):
        td.cloning_probability(dif.score, sched, 1.0, key=key, n_pairs=10)


def test_finite_dataset_labels(key):
    pts = jnp.array([[1.0, 0.0], [1.2, 0.1], [-1.0, 0.0], [-0.9, -0.2]])
    ens = td.FiniteDataset(pts)
    labels = jnp.array([0, 0, 1, 1])
    P = td.class_posterior(ens, jnp.array([0.3, 0.0]), 0.5, labels=labels)
    w = ens.posterior_weights(jnp.array([0.3, 0.0]), 0.5)
    np.testing.assert_allclose(np.asarray(P), [float(w[0] + w[1]), float(w[2] + w[3])], rtol=1e-12)
    cold = td.cloning_probability(ens, None, 1e-3, labels=labels, n_pairs=500)
    assert float(cold.value) > 0.999
    with pytest.raises(ValueError, match="labels"):
        td.cloning_probability(ens, None, 1.0, labels=jnp.array([0, 1]))


def test_susceptibility_trace_hutchinson(key):
    mix = td.GaussianMixture(jnp.array([[1.0, 0.5, 0.0], [-1.0, 0.0, 0.3]]), jnp.array([0.2, 0.4]))
    sched = td.VP()
    T = 0.8
    t = sched.time_at_temperature(T)
    u = jnp.array([0.3, -0.1, 0.2])
    theta = sched.signal_scale(t)
    e = td.susceptibility_trace(mix, sched, T, key, theta * u, n_probes=256)
    exact = float(jnp.trace(mix.posterior_cov(u, T)))
    assert abs(float(e.value) - exact) < 5 * float(e.stderr) + 1e-10
    # the same through a user's denoiser callable
    dif = td.Diffused(mix, sched)
    e2 = td.susceptibility_trace(td.Denoiser(dif.denoiser), sched, T, key, theta * u, n_probes=256)
    np.testing.assert_allclose(float(e2.value), float(e.value), rtol=1e-10)


def test_perturbation_response_is_a_jvp(key):
    ens = td.TwoDeltas(1.0)
    sched = td.VP()
    T, x = 1.0, jnp.array([0.05])
    r = td.perturbation_response(ens, sched, T, key, x, v=jnp.array([1.0]), steps=40)
    ts = td.time_grid(sched, 40, T_start=T)
    _, ks = jax.random.split(key)
    f = lambda x: td.sample(ens, sched, td.EulerMaruyama(), ks, x, ts=ts)[0]
    h = 1e-6
    fd = (f(x + h) - f(x - h)) / (2 * h)
    np.testing.assert_allclose(float(r), abs(float(fd)), rtol=1e-5)


def test_decision_sensitivity_peaks_below_Tc():
    ens = td.TwoDeltas(1.0)
    Ts = np.linspace(0.3, 1.5, 241)
    s = np.asarray(jax.vmap(lambda T: td.decision_sensitivity(ens, T))(jnp.asarray(Ts)))
    T_peak = Ts[np.argmax(s)]
    assert abs(T_peak - 0.663) < 0.01 and T_peak < 0.9


def test_bad_input(key):
    ens = td.TwoDeltas(1.0)
    with pytest.raises(ValueError, match="temperature"):
        td.cloning_probability(ens, None, -1.0)
    with pytest.raises(ValueError, match="n_pairs"):
        td.cloning_probability(ens, None, 1.0, n_pairs=0)
    with pytest.raises(ValueError, match="schedule"):
        td.cloning_probability(ens, None, 1.0, key=key)
    with pytest.raises(TypeError, match="class posteriors"):
        td.cloning_probability(td.Hypersphere(1.0, 3), None, 1.0)
    with pytest.raises(ValueError, match="n_probes"):
        td.susceptibility_trace(ens, td.VP(), 1.0, key, jnp.zeros(1), n_probes=0)
    with pytest.raises(ValueError, match="never crosses"):
        td.speciation_temperature([0.1, 0.2], [0.99, 0.98])


def test_phi_at_mixture_Tc_and_at_biroli_tS():
    """Mixture +-m, unit variance: phi = 0.775200 exactly at the thermodynamic T_c = |m|^2 - 1
    and, in Biroli et al.'s high-dimensional limit, at t_S (T_S = Lambda - 1 = |m|^2)."""
    for a2 in [4.0, 64.0]:
        m = jnp.zeros(4).at[0].set(np.sqrt(a2))
        mix = td.GaussianMixture(jnp.stack([m, -m]), 1.0)
        Tc = float(td.critical_temperature(mix))
        np.testing.assert_allclose(Tc, a2 - 1.0, rtol=1e-7)
        e = td.cloning_probability(mix, None, Tc, n_pairs=40000)
        assert abs(float(e.value) - td.PHI_CRITICAL) < 5 * float(e.stderr)
    # at T_S = |m|^2 the gap to 0.775200 closes like 1/|m|^2 (the two-delta curve at 1 + 1/|m|^2)
    gaps = [abs(float(td.cloning_probability(td.TwoDeltas(1.0), None, 1.0 + 1.0 / a2).value) - td.PHI_CRITICAL) for a2 in [16.0, 64.0, 256.0]]
    assert gaps[2] < 2e-3 and 3.5 < gaps[0] / gaps[1] < 4.5


def test_exact_cloning_with_labels_under_jit():
    pts = jnp.array([[1.0, 0.0], [1.2, 0.1], [-1.0, 0.0], [-0.9, -0.2]])
    ens = td.FiniteDataset(pts)
    labels = np.array([0, 0, 1, 1])
    f = jax.jit(lambda T: td.cloning_probability(ens, None, T, labels=labels, n_pairs=256).value)
    np.testing.assert_allclose(float(f(0.5)), float(td.cloning_probability(ens, None, 0.5, labels=labels, n_pairs=256).value), rtol=1e-12)


def test_class_posterior_refuses_labels_that_would_drop_weight():
    """A negative label (or one >= n_classes) used to vanish from segment_sum: probabilities
    summed to less than 1. Concrete labels are now checked."""
    import numpy as np
    import pytest

    import thermodiff as td

    ds = td.FiniteDataset(np.arange(8.0).reshape(4, 2))
    x, T = np.array([1.0, 2.0]), 1.0
    p = td.class_posterior(ds, x, T, labels=np.array([0, 1, 1, 0]))
    assert abs(float(p.sum()) - 1) < 1e-6
    with pytest.raises(ValueError, match="labels must be integers in"):
        td.class_posterior(ds, x, T, labels=np.array([0, -1, 1, 0]))
    with pytest.raises(ValueError, match="labels must be integers in"):
        td.class_posterior(ds, x, T, labels=np.array([0, 2, 1, 0]), n_classes=2)
