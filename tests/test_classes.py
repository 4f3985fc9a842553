"""Inferring the classes of unlabelled data: k-means + the gap statistic (thermodiff/_classes.py).

Checks: well-separated isotropic Gaussian mixtures give their number of components (4, 2) and
labels equal to the truth up to a permutation (adjusted Rand index); one Gaussian gives k = 1
with the "no class structure" caveat; tiny and degenerate data (1 point, 2 points, identical
points, few distinct points) give caveats or exact answers; d = 2048, N = 3000 runs; the
subsample path labels every point; determinism for a seed (int or JAX key); the gap statistic
recomputed by hand from its parts (W_k from pairwise distances, the reference sets uniform in
the principal-component bounding box, s_k, the selection rule); bad input.
"""

import json
import math

import jax
import numpy as np
import pytest

from thermodiff._classes import SINGLE_CLASS_CAVEAT, ClassInference, infer_classes


def mixture(k, d, n, *, sep=6.0, seed=0):
    """n points of an isotropic unit-variance Gaussian mixture with k equal components whose
    means are sep times the first k basis vectors (pairwise distance sep sqrt(2))."""
    rng = np.random.default_rng(seed)
    y = rng.integers(k, size=n)
    mus = np.zeros((k, d))
    if k > 1:
        mus[np.arange(k), np.arange(k)] = sep
    return mus[y] + rng.standard_normal((n, d)), y


def adjusted_rand(a, b):
    """Adjusted Rand index (Hubert & Arabie 1985): 1 for identical partitions up to relabelling."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    comb = lambda x: x * (x - 1) / 2  # noqa: E731
    index = comb(table).sum()
    ea, eb = comb(table.sum(1)).sum(), comb(table.sum(0)).sum()
    expected = ea * eb / comb(len(a))
    return (index - expected) / (0.5 * (ea + eb) - expected)


def check_record(res, n):
    assert isinstance(res, ClassInference)
    assert res.labels.shape == (n,) and res.labels.dtype == np.int64
    assert set(np.unique(res.labels)) == set(range(res.n_classes))
    assert res.labels[0] == 0  # numbered in order of first appearance
    g = res.gap
    assert g.ks.tolist() == list(range(1, len(g.ks) + 1))
    assert g.gap.shape == g.s.shape == g.log_w.shape == g.ks.shape
    assert g.log_w_ref.shape == (len(g.ks), g.n_refs)
    assert isinstance(res.method, str) and res.method.endswith(".")
    json.dumps(res.summary())


def test_four_clusters():
    X, y = mixture(4, 16, 400)
    res = infer_classes(X)
    check_record(res, 400)
    assert res.n_classes == 4
    assert adjusted_rand(res.labels, y) > 0.95
    assert res.caveat is None
    assert "gap statistic" in res.method and "16 principal components" in res.method
    assert res.n_components == 16 and res.n_fit == 400
    # "first SE max": k = 4 is the smallest k within one s of the largest gap
    g, s = res.gap.gap, res.gap.s
    best = int(np.argmax(g))
    assert len(g) == 10 and g[3] >= g[best] - s[best]
    assert all(g[k - 1] < g[best] - s[best] for k in (1, 2, 3))


def test_simplex_of_four_clusters_is_not_stopped_by_an_early_plateau():
    """Four clusters at the corners of a regular simplex: merging them in pairs barely lowers W,
    so Gap(1) ~ Gap(2) and the 'smallest k with Gap(k) >= Gap(k+1) - s' rule stops at k = 1;
    the 'first SE max' rule finds 4."""
    rng = np.random.default_rng(2)
    y = np.arange(160) % 4
    X = 4.0 * np.eye(6)[:4][y] + 0.5 * rng.standard_normal((160, 6))
    res = infer_classes(X)
    g, s = res.gap.gap, res.gap.s
    assert g[0] >= g[1] - s[1]  # the early-stopping rule would have said 1
    assert res.n_classes == 4 and adjusted_rand(res.labels, y) > 0.95


def test_two_clusters():
    X, y = mixture(2, 16, 400, seed=1)
    res = infer_classes(X)
    check_record(res, 400)
    assert res.n_classes == 2 and adjusted_rand(res.labels, y) > 0.95
    assert res.caveat is None


def test_single_gaussian_is_one_class():
    X, _ = mixture(1, 16, 400, seed=2)
    res = infer_classes(X)
    check_record(res, 400)
    assert res.n_classes == 1
    np.testing.assert_array_equal(res.labels, 0)
    assert res.caveat == SINGLE_CLASS_CAVEAT
    best = int(np.argmax(res.gap.gap))
    assert res.gap.gap[0] >= res.gap.gap[best] - res.gap.s[best]


def test_tiny_and_degenerate_data():
    # two points: too few for any class structure
    res = infer_classes(np.array([[0.0, 0.0], [1.0, 1.0]]))
    check_record(res, 2)
    assert res.n_classes == 1 and "only 2 points" in res.caveat and SINGLE_CLASS_CAVEAT in res.caveat
    # one point
    res = infer_classes(np.ones((1, 5)))
    assert res.n_classes == 1 and res.labels.tolist() == [0] and "single data point" in res.caveat
    assert np.isnan(res.gap.gap).all()
    # identical points
    res = infer_classes(np.full((7, 3), 2.5))
    assert res.n_classes == 1 and "identical" in res.caveat and SINGLE_CLASS_CAVEAT in res.caveat
    # fewer than 2 points per candidate class: candidates stop at N // 2, with a caveat
    res = infer_classes(np.array([[0.0], [1.0], [10.0], [11.0], [20.0], [21.0]]), max_classes=5)
    assert res.gap.ks[-1] <= 3 and "fewer than 2 points per candidate class" in res.caveat
    # three distinct points repeated: W_3 = 0 up to round-off, Gap(3) huge, k = 3 exactly
    centres = np.random.default_rng(3).standard_normal((3, 5)) * 5
    X = np.repeat(centres, 50, axis=0)
    res = infer_classes(X)
    assert res.n_classes == 3 and res.gap.gap[2] > 10 + res.gap.gap[1] and res.caveat is None
    np.testing.assert_array_equal(np.bincount(res.labels), [50, 50, 50])
    # max_classes = 1: nothing to choose
    res = infer_classes(mixture(4, 16, 100)[0], max_classes=1)
    assert res.n_classes == 1 and res.caveat == SINGLE_CLASS_CAVEAT and len(res.gap.ks) == 1


def test_still_rising_at_max_classes():
    X, _ = mixture(6, 16, 300, seed=4)
    res = infer_classes(X, max_classes=3)
    assert res.n_classes == 3 and "raise max_classes" in res.caveat


def test_large_dimension_runs():
    X, y = mixture(4, 2048, 3000, sep=8.0, seed=5)
    res = infer_classes(X.astype(np.float32))
    check_record(res, 3000)
    assert res.n_classes == 4 and adjusted_rand(res.labels, y) > 0.95
    assert res.n_components == 20


def test_subsample_labels_every_point():
    X, y = mixture(3, 32, 2000, seed=6)
    res = infer_classes(X, max_points=500)
    check_record(res, 2000)
    assert res.n_fit == 500 and "subsample of 500 of the 2000 points" in res.method
    assert res.n_classes == 3 and adjusted_rand(res.labels, y) > 0.95


def test_deterministic_for_a_seed():
    X, y = mixture(4, 16, 400, seed=7)
    a, b = infer_classes(X, key_or_seed=11), infer_classes(X, key_or_seed=11)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.gap.log_w_ref, b.gap.log_w_ref)
    assert a.method == b.method
    c = infer_classes(X, key_or_seed=12)
    assert not np.array_equal(a.gap.log_w_ref, c.gap.log_w_ref)  # the reference sets differ
    assert c.n_classes == 4 and adjusted_rand(a.labels, c.labels) == pytest.approx(1.0)
    # a JAX key (typed or raw) works too, deterministically
    k1, k2 = infer_classes(X, key_or_seed=jax.random.key(3)), infer_classes(X, key_or_seed=jax.random.key(3))
    np.testing.assert_array_equal(k1.gap.log_w_ref, k2.gap.log_w_ref)
    raw = infer_classes(X, key_or_seed=jax.random.PRNGKey(3))
    np.testing.assert_array_equal(raw.gap.log_w_ref, k1.gap.log_w_ref)


def test_gap_statistic_by_hand():
    # 1-D data {0, 1, 10, 11}: W_k = sum_r D_r / (2 n_r), D_r the sum of squared distances over
    # ordered pairs in cluster r. k = 1: D = 2 * (1 + 100 + 121 + 81 + 100 + 1) = 808, W = 808/8
    # = 101. k = 2 ({0, 1}, {10, 11}): W = 2/4 + 2/4 = 1.
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    B = 20
    res = infer_classes(X, max_classes=2, n_refs=B)
    g = res.gap
    np.testing.assert_allclose(g.log_w, [math.log(101.0), 0.0], atol=1e-12)
    # Gap(k) = mean_b log W*_kb - log W_k, s_k = sd_k sqrt(1 + 1/B) with sd the divisor-B deviation
    lw = g.log_w_ref
    np.testing.assert_allclose(g.gap, lw.mean(1) - g.log_w, rtol=1e-12)
    sd = np.sqrt(((lw - lw.mean(1, keepdims=True)) ** 2).sum(1) / B)
    np.testing.assert_allclose(g.s, sd * math.sqrt(1 + 1 / B), rtol=1e-12)
    best = int(np.argmax(g.gap))
    assert res.n_classes == (1 if g.gap[0] >= g.gap[best] - g.s[best] else 2)
    assert res.labels.tolist() == [0, 0, 1, 1]

    # The reference sets are uniform in the bounding box of the data in principal-component
    # coordinates: for a rotated 10 x 1 rectangle that box is ~10 x 1 (sum of squared widths
    # ~101), not the ~7.8 x 7.8 box of the raw coordinates (~121). E W*_1 = (n - 1) sum_j w_j^2/12.
    rng = np.random.default_rng(8)
    n = 400
    U = rng.uniform(-0.5, 0.5, (n, 2)) * [10.0, 1.0]
    R = np.array([[1.0, -1.0], [1.0, 1.0]]) / math.sqrt(2.0)
    X = U @ R.T + [3.0, -2.0]
    res = infer_classes(X, max_classes=1, n_refs=50)
    Xc = X - X.mean(0)
    axes = np.linalg.eigh(Xc.T @ Xc)[1]
    P = Xc @ axes
    widths2 = ((P.max(0) - P.min(0)) ** 2).sum()
    expected = (n - 1) * widths2 / 12.0
    mean_w = np.exp(res.gap.log_w_ref[0]).mean()
    assert mean_w == pytest.approx(expected, rel=0.03)
    raw_box = (n - 1) * ((X.max(0) - X.min(0)) ** 2).sum() / 12.0
    assert abs(mean_w / raw_box - 1) > 0.1
    np.testing.assert_allclose(res.gap.log_w[0], math.log((Xc**2).sum()), rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(X=np.zeros(5)), "X"),
        (dict(X=np.zeros((2, 3, 4))), "X"),
        (dict(X=np.zeros((0, 3))), "X"),
        (dict(X=np.zeros((3, 0))), "X"),
        (dict(X=np.array([[0.0, np.nan], [1.0, 2.0]])), "X"),
        (dict(X=np.array([[0.0, np.inf], [1.0, 2.0]])), "X"),
        (dict(X=np.array([["a", "b"]])), "X"),
        (dict(X=np.ones((4, 2)) * 1j), "X"),
        (dict(max_classes=0), "max_classes"),
        (dict(max_classes=-3), "max_classes"),
        (dict(max_classes=2.5), "max_classes"),
        (dict(max_classes=True), "max_classes"),
        (dict(max_classes="4"), "max_classes"),
        (dict(key_or_seed=-1), "key_or_seed"),
        (dict(key_or_seed="seed"), "key_or_seed"),
        (dict(key_or_seed=np.zeros(3, np.uint32)), "key_or_seed"),
        (dict(n_refs=1), "n_refs"),
        (dict(n_init=0), "n_init"),
        (dict(max_components=0), "max_components"),
        (dict(max_points=1), "max_points"),
    ],
)
def test_bad_input(kwargs, name):
    kwargs = dict(kwargs)
    X = kwargs.pop("X", np.random.default_rng(0).standard_normal((20, 3)))
    with pytest.raises(ValueError, match=name):
        infer_classes(X, **kwargs)
