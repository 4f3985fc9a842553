"""Two-model agreement (Kadkhodaie et al. 2024; theory section 10): nets trained on disjoint halves
agree when they generalise and disagree when they memorise; exact laws give the exact flow map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td
from thermodiff._agreement import agreement_study, cosine_agreement, sample_agreement

D = 16


def _mixture(d=D):
    mu = jnp.zeros(d).at[0].set(2.0)
    return td.GaussianMixture(jnp.stack([mu, -mu]), 1.0)


def test_a_model_agrees_with_itself():
    Y = np.asarray(_mixture().sample(jax.random.key(0), 256))
    net = td.Preconditioned.for_data(td.ResidualMLP(D, 16, 1, key=jax.random.key(1)), Y)  # untrained: any map
    e = sample_agreement(net, net, jax.random.key(2), 64, steps=8)
    assert abs(float(e.value) - 1.0) < 1e-12 and float(e.stderr) < 1e-12
    pop = _mixture()
    e = sample_agreement(pop, pop, jax.random.key(3), 64, steps=8)
    assert abs(float(e.value) - 1.0) < 1e-12


def _exact_shifted_gaussians_cos(delta, c, d, T0, Te, sd, n=400_000, seed=0):
    """E cos for N(+delta, c I) against N(-delta, c I) under the exact probability-flow map.

    Per component the VE flow is x(T) - m = sqrt((c + T)/(c + T0)) (x(T0) - m) and the final
    denoiser m + c/(c + Te) (x - m); from x(T0) = s0 z (s0^2 = T0 + sd^2, common centre 0):
    a = (1 - k) delta + k s0 z with k = c/sqrt((c + Te)(c + T0)), b the same with -delta."""
    z = np.random.default_rng(seed).standard_normal((n, d))
    k = c / np.sqrt((c + Te) * (c + T0))
    s0 = np.sqrt(T0 + sd**2)
    a, b = (1 - k) * delta + k * s0 * z, -(1 - k) * delta + k * s0 * z
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return cos.mean(), cos.std() / np.sqrt(n)


def test_two_exact_laws_against_the_exact_flow_map():
    """N(+delta, I) vs N(-delta, I), d = 8, |delta| = 1: the two flows differ only by the shift, and the
    measured agreement equals the exact one (pilot, keys 4, 10, 11: 0.760, 0.767, 0.769 +- 0.0056 vs exact
    0.7620 +- 0.0002; tolerance 5 sigma + 0.005 for the Heun discretisation). Two isotropic Gaussians of different variances agree exactly
    (their flow maps differ by a scalar)."""
    d, c = 8, 1.0
    delta = np.zeros(d)
    delta[0] = 1.0
    A, B = td.GaussianMixture(jnp.asarray(delta)[None], c), td.GaussianMixture(-jnp.asarray(delta)[None], c)
    sd = float(np.sqrt(c + 1.0 / d))
    T0, Te = 1e3 * sd**2, 1e-4 * sd**2
    e = sample_agreement(A, B, jax.random.key(4), 512, T_start=T0, T_end=Te)
    exact, exact_se = _exact_shifted_gaussians_cos(delta, c, d, T0, Te, sd)
    assert abs(float(e.value) - exact) <= 5 * float(e.stderr) + 0.005, (float(e.value), float(e.stderr), exact)
    assert 0.6 < exact < 0.8  # a non-trivial value
    G1, G2 = td.GaussianMixture(jnp.zeros((1, d)), 0.5), td.GaussianMixture(jnp.zeros((1, d)), 3.0)
    e = sample_agreement(G1, G2, jax.random.key(5), 128)
    assert abs(float(e.value) - 1.0) < 1e-6


def test_two_memorizing_exact_scores_disagree():
    """Exact empirical scores of two disjoint 16-point halves (full memorisation) disagree: measured
    0.269 +- 0.016 (d = 16, 256 pairs); threshold 0.4."""
    Y = _mixture().sample(jax.random.key(6), 32)
    A, B = td.FiniteDataset(Y[:16]), td.FiniteDataset(Y[16:])
    e = sample_agreement(A, B, jax.random.key(7), 256, steps=32, mean=jnp.zeros(D))
    assert float(e.value) < 0.4 and float(e.stderr) < 0.03


def test_cosine_agreement():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 5))
    assert float(cosine_agreement(a, 3.0 * a, np.zeros(5)).value) == pytest.approx(1.0)
    assert float(cosine_agreement(a, -a, np.zeros(5)).value) == pytest.approx(-1.0)
    e = cosine_agreement(a, rng.standard_normal((4000, 5)), np.zeros(5))  # independent: 0 +- 1/sqrt(5 S)
    assert abs(float(e.value)) < 5 * float(e.stderr) and float(e.stderr) == pytest.approx(1 / np.sqrt(5 * 4000), rel=0.1)


def test_trained_pairs_agree_only_when_they_generalize():
    """Mixture N(+-mu, I), d = 16, |mu|^2 = 4; ResidualMLP(64, 2), 1500 steps, both halves of 4096 points.
    Measured with these settings: n = 16: similarity 0.357 +- 0.023, f_mem 0.77 and 0.68; n = 2048:
    0.994 +- 0.001, f_mem 0 (other pilots: 0.32-0.40 at n = 16 for 800-1500 steps). Thresholds 0.5 and 0.9.
    About 46 CPU seconds (60-70 s wall on a loaded 2-core machine)."""
    Y = np.asarray(_mixture().sample(jax.random.key(1), 4096))
    make = lambda k: td.Preconditioned.for_data(td.ResidualMLP(D, 64, 2, key=k), Y)
    st = agreement_study(make, Y, [16, 2048], key=jax.random.key(5), steps=1500, n_samples=128, sample_steps=24,
                         batch_size=256)
    assert st.similarity[0] <= 0.5 and st.similarity[1] >= 0.9, str(st)
    assert np.all(st.stderr < 0.05)
    assert np.all(st.f_mem[0] >= 0.3) and np.all(st.f_mem[1] <= 0.05), str(st)
    assert not set(st.halves[0]) & set(st.halves[1]) and st.halves.shape == (2, 2048)
    assert st.results[0].losses.shape == (2, 1500) and "similarity" in str(st)


@pytest.mark.study
def test_agreement_rises_with_n():
    """Five sizes, wider nets, 4000 steps (a study: ~8 minutes on two cores; -m study, not in CI):
    the similarity rises from memorisation to generalisation. Pilot: n = 16, 64, 256, 1024, 4096:
    similarity 0.189, 0.424, 0.659, 0.938, 0.997 (stderr 0.015 to 0.0005);
    f_mem 1.00, 0.90, 0.12, 0, 0. Thresholds 0.35 and 0.95, and monotone."""
    Y = np.asarray(_mixture().sample(jax.random.key(1), 8192))
    make = lambda k: td.Preconditioned.for_data(td.ResidualMLP(D, 128, 3, key=k), Y)
    st = agreement_study(make, Y, [16, 64, 256, 1024, 4096], key=jax.random.key(5), steps=4000, n_samples=256,
                         sample_steps=32, batch_size=256)
    s, e = st.similarity, st.stderr
    assert s[0] <= 0.35 and s[-1] >= 0.95, str(st)
    assert np.all(np.diff(s) >= -3 * (e[1:] + e[:-1])), str(st)


@pytest.mark.parametrize("call, err, match", [
    (lambda m, k: sample_agreement(m, m, k, 1), ValueError, "n_samples must be an integer in"),
    (lambda m, k: sample_agreement(m, m, "key", 4), TypeError, "key must be a JAX PRNG key"),
    (lambda m, k: sample_agreement(m, td.GaussianMixture(jnp.zeros((1, 3)), 1.0), k, 4), ValueError, "one dimension"),
    (lambda m, k: cosine_agreement(np.ones((4, 2)), np.ones((4, 3)), np.zeros(2)), ValueError, "one shape"),
    (lambda m, k: cosine_agreement(np.ones((4, 2)) * np.nan, np.ones((4, 2)), np.zeros(2)), ValueError, "finite"),
    (lambda m, k: agreement_study(3, np.ones((8, D)), [2], key=k, steps=1), TypeError, "make_model must be callable"),
    (lambda m, k: agreement_study(lambda q: m, np.ones((3, D)), [2], key=k, steps=1), ValueError, "at least 4 points"),
    (lambda m, k: agreement_study(lambda q: m, np.ones((8, D)), [5], key=k, steps=1), ValueError, r"integers in \[2, 4\]"),
    (lambda m, k: agreement_study(lambda q: m, np.ones((8, D)), [2.0], key=k, steps=1), ValueError, "sizes must be"),
    (lambda m, k: agreement_study(lambda q: m, np.ones((8, D)), [2], key=k, steps=0), ValueError, "steps must be"),
    (lambda m, k: agreement_study(lambda q: m, np.ones((8, D)), [2], key=k, steps=1, vmap=False), TypeError, "'vmap'"),
])
def test_bad_input(call, err, match):
    m = td.Preconditioned(td.ResidualMLP(D, 8, 1, key=jax.random.key(0)), "edm", 1.0, np.zeros(D))
    with pytest.raises(err, match=match):
        call(m, jax.random.key(0))
