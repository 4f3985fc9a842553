"""Approximations beside the exact empirical score: k-NN and Gaussian denoisers (theory section 14).

Float64 throughout (tests/conftest.py) except where float32 is named. Reference data: N = 200
standard Gaussian points in d = 8 (seed 0): nearest-neighbour distances^2 from 0.41 (min) to 2.8
(median), top covariance eigenvalue 1.28 (the first split of the empirical law sits near it).
Pilot numbers (512 states) that set the thresholds below, k = 4: relative_loss 4.2e-23 at
T = 0.01, 0.28 at T = 3; Gaussian: excess/(d T) = 0.998 at T = 1e-3, relative_score 0.9987.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td
from thermodiff._approx_scores import ApproximationError, approximation_error, gaussian_approximation
from thermodiff._ensembles._knn import KNearestDataset
from thermodiff._ensembles._linear_manifold import LinearManifold


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).normal(size=(200, 8))


@pytest.fixture(scope="module")
def weighted():
    rng = np.random.default_rng(1)
    return rng.normal(size=(50, 5)), rng.uniform(0.2, 1.0, 50)


def _dense_topk(Y, w, x, T, k):
    """NumPy reference: the top-k softmax mean, the exact mean, and the exact dropped mass."""
    logits = np.log(w / w.sum()) + (Y @ x - 0.5 * np.sum(Y * Y, axis=1)) / T
    order = np.argsort(-logits, kind="stable")
    full = np.exp(logits - logits.max())
    full /= full.sum()
    kept = np.exp(logits[order[:k]] - logits.max())
    return kept @ Y[order[:k]] / kept.sum(), full @ Y, full[order[k:]].sum()


# ----------------------------------------------------------------------------- k-NN: closed forms
@pytest.mark.parametrize("k", [1, 3, 8, 13, 49])
def test_knn_streaming_topk_matches_dense(weighted, k):
    """The running top-k merge over chunks of 8 (k below, at and above the chunk size, weighted
    points) equals a dense NumPy top-k softmax, and its dropped mass the exact one."""
    Y, w = weighted
    knn = KNearestDataset(Y, w, k=k, chunk_size=8)
    rng = np.random.default_rng(k)
    for T in (0.05, 1.0, 10.0):
        x = rng.normal(size=5)
        mk, _, delta = _dense_topk(Y, w, x, T, k)
        np.testing.assert_allclose(knn.denoiser(x, T), mk, rtol=0, atol=1e-12)
        np.testing.assert_allclose(float(knn.dropped_mass(x, T)), delta, rtol=1e-10, atol=1e-300)
        assert float(knn.dropped_mass(x, T)) <= float(knn.dropped_mass_bound(x, T)) * (1 + 1e-12)


@pytest.mark.parametrize("chunk_size", [7, 4096])
def test_knn_with_k_equal_n_is_the_exact_dataset(weighted, chunk_size):
    """k = N: every posterior quantity equals FiniteDataset's to rounding (1e-12)."""
    Y, w = weighted
    exact = td.FiniteDataset(Y, w, chunk_size=chunk_size)
    knn = KNearestDataset(exact, k=50)
    x, T = jnp.asarray(np.random.default_rng(2).normal(size=5)), jnp.asarray(0.7)
    names = ("denoiser", "score", "log_partition", "landau", "posterior_weights", "posterior_cov",
             "posterior_trace", "energy_moments")
    if chunk_size > 50:  # one dense chunk: the path differs only in the top-k pass
        names = ("denoiser", "posterior_weights", "posterior_trace")
    both = jax.jit(lambda x, T: [[getattr(e, n)(x, T) for n in names] for e in (knn, exact)])(x, T)
    for name, a, b in zip(names, *both):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12, err_msg=name)
    assert float(knn.dropped_mass(x, T)) == 0.0 and float(knn.dropped_mass_bound(x, T)) == 0.0
    g = jax.grad(lambda u: knn.landau(u, T))(x)
    np.testing.assert_allclose(g, jax.grad(lambda u: exact.landau(u, T))(x), atol=1e-12)


def test_knn_float32_with_k_equal_n(weighted):
    """float32 points: k = N within float32 rounding of the float64 exact denoiser."""
    Y, w = weighted
    knn = KNearestDataset(Y.astype(np.float32), w.astype(np.float32), k=50, chunk_size=8)
    x = np.random.default_rng(3).normal(size=5).astype(np.float32)
    m = knn.denoiser(x, np.float32(0.5))
    assert m.dtype == jnp.float32
    np.testing.assert_allclose(m, td.FiniteDataset(Y, w).denoiser(x.astype(np.float64), 0.5), atol=2e-5)


def test_knn_one_is_the_nearest_point(data):
    """k = 1 returns the nearest point exactly at any T (uniform weights), which is the exact
    denoiser as T -> 0 (T = 1e-3 x the smallest squared gap: error < 1e-12)."""
    knn, exact = KNearestDataset(data, k=1), td.FiniteDataset(data)
    rng = np.random.default_rng(4)
    for T in (1e-4, 0.3, 30.0):
        x = data[rng.integers(200)] + 0.3 * rng.normal(size=8)
        nearest = data[np.argmin(np.sum((data - x) ** 2, axis=1))]
        np.testing.assert_array_equal(np.asarray(knn.denoiser(x, T)), nearest)
    x = data[17] + 0.01 * rng.normal(size=8)
    np.testing.assert_allclose(exact.denoiser(x, 4e-4), knn.denoiser(x, 4e-4), atol=1e-12)


def test_knn_is_exact_when_memorized_and_wrong_above_speciation(data):
    """Deep in the memorised phase (T = 0.01, well below the smallest squared gap 0.41) the k = 4
    posterior drops nothing measurable (relative loss < 1e-15; pilot 4e-23); above the first split
    (T = 3 > lambda_max = 1.28) it drops mass on every state and costs > 10 % of the loss (pilot
    0.28); the excess grows with T and shrinks with k."""
    exact = td.FiniteDataset(data)
    Ts = [0.01, 0.3, 3.0]
    r4 = approximation_error(KNearestDataset(exact, k=4), exact, Ts, key=jax.random.key(0), n_states=256)
    r16 = approximation_error(KNearestDataset(exact, k=16), exact, Ts, key=jax.random.key(0), n_states=256)
    rel = r4.columns["relative_loss"]
    assert rel[0] < 1e-15 and r4.columns["dropped_fraction"][0] == 0.0
    assert rel[2] > 0.1 and r4.columns["dropped_fraction"][2] == 1.0
    assert np.all(np.diff(r4.columns["excess"]) > 0)
    assert np.all(r16.columns["excess"][1:] < r4.columns["excess"][1:])


def test_dropped_mass_bounds_the_knn_error(data):
    """The identity m - m_k = delta (m_rest - m_k), hence |m - m_k| <= delta diam <= 2 R delta
    (R = max |y_n - mean|), and delta <= the top-k certificate b/(1 + b), on states from the
    memorised phase to above speciation."""
    exact = td.FiniteDataset(data, chunk_size=64)
    knn = KNearestDataset(exact, k=5)
    R = np.max(np.linalg.norm(data - data.mean(0), axis=1))
    rng = np.random.default_rng(5)

    @jax.jit
    def measure(x, T):
        one = lambda u: (exact.denoiser(u, T), knn.denoiser(u, T), knn.dropped_mass(u, T),
                         knn.dropped_mass_bound(u, T), exact.posterior_weights(u, T), knn.posterior_weights(u, T))
        return jax.vmap(one)(x)

    for T in (0.02, 0.2, 1.0, 5.0):
        x = data[rng.integers(200, size=6)] + np.sqrt(T) * rng.normal(size=(6, 8))
        m, mk, delta, bound, pw, pk = map(np.asarray, measure(x, T))
        rest = pw * (pk == 0)
        m_rest = rest @ data / rest.sum(1, keepdims=True)
        np.testing.assert_allclose(m - mk, delta[:, None] * (m_rest - mk), atol=1e-12)
        delta_ref = [_dense_topk(data, np.ones(200), xi, T, 5)[2] for xi in x]
        np.testing.assert_allclose(delta, delta_ref, rtol=1e-10)
        assert np.all(np.linalg.norm(m - mk, axis=1) <= 2 * R * delta * (1 + 1e-10) + 1e-13)  # + rounding of m
        assert np.all(delta <= bound * (1 + 1e-12))
        assert np.all(delta > 0)


# ----------------------------------------------------------------------------- Gaussian
def _rank_deficient_law():
    U, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (6, 6)))
    return LinearManifold(jnp.array([2.0, 1.0, 0.5, 0.1, 0.0]), U[:, :5], jnp.arange(6.0) / 3)


def test_gaussian_approximation_is_exact_on_gaussian_data():
    """On a Gaussian law (rank 4 of 6, rotated, with a mean) the approximation is the law itself:
    the four variances, the denoiser to rounding, zero measured error (pilot 1.7e-30)."""
    law = _rank_deficient_law()
    g = gaussian_approximation(law)
    np.testing.assert_allclose(g.variances, [2.0, 1.0, 0.5, 0.1], atol=1e-12)
    assert g.basis.shape == (6, 4)
    x = jnp.linspace(-2.0, 3.0, 6)
    for T in (1e-3, 0.3, 10.0):
        np.testing.assert_allclose(g.denoiser(x, T), law.denoiser(x, T), atol=1e-12)
    r = approximation_error(g, law, [0.01, 1.0], key=jax.random.key(0), n_states=64)
    assert np.all(r.columns["excess"] < 1e-24)


def test_gaussian_approximation_converges_like_one_over_n():
    """Fitted to N samples of the Gaussian law, the error against the population denoiser falls
    like 1/N: N = 500 -> 8000 divides the relative loss by about 16 (pilot 15-16 at T = 0.01, 0.1,
    1; threshold 6, three seeds averaged), and at N = 8000 it is below 1e-3 (pilot <= 2.8e-4)."""
    law = _rank_deficient_law()
    Ts = [0.01, 0.1, 1.0]
    mean_rel = {}
    for N in (500, 8000):
        rel = [approximation_error(gaussian_approximation(law.sample(jax.random.key(10 + s), N)), law, Ts,
                                   key=jax.random.key(0), n_states=256).columns["relative_loss"] for s in range(3)]
        mean_rel[N] = np.mean(rel, axis=0)
    assert np.all(mean_rel[500] / mean_rel[8000] > 6)
    assert np.all(mean_rel[8000] < 1e-3)


def test_gaussian_cannot_memorize(data):
    """At T far below the gaps the exact denoiser returns the nearest point while the Gaussian one
    returns about x: the excess is |x - y|^2 ~ d T (pilot 0.998 +- 0.02 d T at T = 1e-3), the score is
    as wrong as no score (relative_score 0.9987) and the loss is 10^78 times the irreducible one."""
    exact = td.FiniteDataset(data)
    r = approximation_error(gaussian_approximation(exact), exact, [1e-3], key=jax.random.key(0), n_states=512)
    ratio, se = r.columns["excess"][0] / (8 * 1e-3), r.stderr["excess"][0] / (8 * 1e-3)  # se 0.02
    assert 0.9 < ratio < 1.0 + 5 * se
    assert r.columns["relative_score"][0] > 0.99
    assert r.columns["relative_loss"][0] > 1e10
    assert np.isnan(r.columns["dropped_fraction"][0])


def test_gaussian_approximation_of_points_matches_wiener_filter():
    """From an array: m = mu + Sigma (Sigma + T I)^{-1} (x - mu) (NumPy solve) for a rank-2
    covariance of 3 points in d = 5; a single point gives a rank-1 law of variance 0."""
    Y = np.random.default_rng(6).normal(size=(3, 5))
    g = gaussian_approximation(Y)
    assert g.rank == 2
    mu = Y.mean(0)
    S = (Y - mu).T @ (Y - mu) / 3
    x = np.linspace(-1.0, 1.0, 5)
    for T in (1e-3, 1.0):
        np.testing.assert_allclose(g.denoiser(x, T), mu + S @ np.linalg.solve(S + T * np.eye(5), x - mu), atol=1e-12)
    one = gaussian_approximation(Y[:1])
    np.testing.assert_allclose(one.denoiser(x, 0.5), Y[0], atol=1e-14)


# ----------------------------------------------------------------------------- composition
def test_jit_and_vmap_match_eager_calls(data):
    knn = KNearestDataset(data, k=6, chunk_size=64)
    X = data[:5] + 0.5 * np.random.default_rng(7).normal(size=(5, 8))
    loop = np.stack([knn.denoiser(x, 0.4) for x in X])
    np.testing.assert_allclose(jax.jit(jax.vmap(lambda x, T: knn.denoiser(x, T), in_axes=(0, None)))(X, 0.4), loop, atol=1e-13)
    loop = np.array([knn.dropped_mass(x, 0.4) for x in X])
    np.testing.assert_allclose(jax.jit(jax.vmap(lambda x, T: knn.dropped_mass(x, T), in_axes=(0, None)))(X, 0.4), loop, rtol=1e-12)
    assert np.isnan(jax.jit(lambda x, T: knn.denoiser(x, T))(X[0], -1.0)).all()  # an invalid T under jit: NaN


def test_sampling_with_the_approximations(data):
    """td.sample: k = N reproduces the exact samples (same keys); k = 1 with a final denoise
    lands every sample exactly on a training point; the Gaussian of a Gaussian law samples like
    the law itself."""
    sched, solver = td.VP(), td.EulerMaruyama()
    exact = td.FiniteDataset(data)
    keys = jax.random.split(jax.random.key(8), 8)
    x0 = jax.random.normal(jax.random.key(9), (8, 8))
    run = lambda model, **kw: jax.vmap(lambda k, x: td.sample(model, sched, solver, k, x, steps=20, **kw))(keys, x0)
    np.testing.assert_allclose(run(KNearestDataset(exact, k=200)), run(exact), atol=1e-10)
    out = np.asarray(run(KNearestDataset(exact, k=1), denoise_final=True))
    assert np.all(np.min(np.sum((out[:, None, :] - data[None]) ** 2, axis=2), axis=1) == 0.0)
    law = _rank_deficient_law()
    x6 = jax.random.normal(jax.random.key(9), (8, 6))
    run6 = lambda model: jax.vmap(lambda k, x: td.sample(model, sched, solver, k, x, steps=20))(keys, x6)
    np.testing.assert_allclose(run6(gaussian_approximation(law)), run6(law), atol=1e-10)


def test_result_table_and_crossings(data):
    exact = td.FiniteDataset(data)
    r = approximation_error(KNearestDataset(exact, k=4), exact, np.array([3.0, 0.01, 0.3]), key=jax.random.key(0),
                            n_states=64)
    assert isinstance(r, ApproximationError)
    np.testing.assert_array_equal(r.temperatures, [0.01, 0.3, 3.0])
    rows = r.table()
    assert len(rows) == 3 and set(rows[0]) >= {"T", "excess", "excess_stderr", "relative_loss", "dropped_fraction"}
    assert r.as_dict()["n_states"] == 64 and "relative_score" in str(r)
    cross = r.crossings(1e-3)
    assert len(cross) == 1 and 0.01 < cross[0] < 3.0
    v = r.columns["relative_loss"]  # the log-log interpolation lands on the level
    i = 0 if cross[0] < 0.3 else 1
    T = r.temperatures
    f = np.log(cross[0] / T[i]) / np.log(T[i + 1] / T[i])
    np.testing.assert_allclose(np.exp((1 - f) * np.log(v[i]) + f * np.log(v[i + 1])), 1e-3, rtol=1e-9)
    assert r.crossings(1e6) == []


# ----------------------------------------------------------------------------- bad input
def test_bad_input_names_the_argument(data):
    exact = td.FiniteDataset(data)
    for k in (0, 201, -1):
        with pytest.raises(ValueError, match=r"k must be an integer in \[1, 200\]"):
            KNearestDataset(data, k=k)
    for k in (2.5, True, "3", None):
        with pytest.raises(TypeError, match="k must be an integer"):
            KNearestDataset(data, k=k)
    with pytest.raises(TypeError):
        KNearestDataset(data)  # k is required
    with pytest.raises(ValueError, match="weights and chunk_size"):
        KNearestDataset(exact, np.ones(200), k=3)
    with pytest.raises(ValueError, match="points must be a 2-D"):
        KNearestDataset(data[0], k=1)
    with pytest.raises(ValueError, match=r"T \(temperature"):
        KNearestDataset(data, k=2).dropped_mass(data[0], 0.0)
    with pytest.raises(TypeError, match="data must be"):
        gaussian_approximation("points")
    with pytest.raises(ValueError, match="data must be a 2-D"):
        gaussian_approximation(np.ones(3))
    with pytest.raises(ValueError, match="data must be finite"):
        gaussian_approximation(np.array([[0.0, np.nan]]))
    knn, key = KNearestDataset(exact, k=2), jax.random.key(0)
    with pytest.raises(TypeError, match="exact must be an ensemble"):
        approximation_error(knn, data, [1.0], key=key)
    with pytest.raises(ValueError, match="temperatures"):
        approximation_error(knn, exact, [1.0, -1.0], key=key)
    with pytest.raises(ValueError, match="n_states"):
        approximation_error(knn, exact, [1.0], key=key, n_states=1)
    with pytest.raises(ValueError, match="tolerance"):
        approximation_error(knn, exact, [1.0], key=key, tolerance=1.0)
    with pytest.raises(TypeError, match="key"):
        approximation_error(knn, exact, [1.0], key=0)
    with pytest.raises(ValueError, match="dimension"):
        approximation_error(KNearestDataset(data[:, :3], k=2), exact, [1.0], key=key)
    r = approximation_error(knn, exact, [1.0], key=key, n_states=4)
    with pytest.raises(ValueError, match="level"):
        r.crossings(0.0)
    with pytest.raises(ValueError, match="column"):
        r.crossings(0.1, column="nope")
