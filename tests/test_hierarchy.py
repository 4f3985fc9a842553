"""Hierarchies of symmetry breaking: the tree of splits of the minima of Phi_T (theory 2, 3.2, 8).

Checks: the first split of symmetric data is the pitchfork of ``critical_temperature``; the
branches hold the clusters; memorization at t_min; the asymmetric first split is a saddle-node
(a zero Hessian eigenvalue where the newborn minimum appears) and the highest temperature with
more than one minimum; the mixture +-mu, s^2 splits at |mu|^2 - s^2 (not at all if |mu|^2 <= s^2);
the implicit derivative of the first split temperature; bad input.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td
from thermodiff._hierarchy import basins, bifurcation_tree, first_split, first_split_temperature
from thermodiff._meanfield import critical_temperature

_CLUSTER = np.array([[2.0, 0.5], [2.3, 0.1], [1.8, -0.3]])


def _symmetric():
    return td.FiniteDataset(jnp.asarray(np.concatenate([_CLUSTER, -_CLUSTER])))


def _three_clusters():
    """Clusters at different distances from the mean: the one at (4, 0.3) is farthest."""
    rng = np.random.default_rng(0)
    centers = np.array([[4.0, 0.3], [-1.2, 1.0], [-0.8, -1.1]])
    return jnp.asarray(np.concatenate([c + 0.15 * rng.normal(size=(3, 2)) for c in centers]))


def _check_tree_invariants(tree):
    for node in tree.nodes():
        if node.children:
            assert node.t_split is not None
            assert sorted(i for c in node.children for i in c.members) == sorted(node.members)
            for c in node.children:
                assert c.t_birth == node.t_split
                if c.t_split is not None:
                    assert c.t_split < node.t_split  # parent splits first
    json.dumps(tree.to_dict())  # JSON-serialisable
    ts = [s["t_split"] for s in tree.splits()]
    assert ts == sorted(ts, reverse=True)


def test_symmetric_clusters_pitchfork_then_memorization():
    ens = _symmetric()
    tc = float(critical_temperature(ens))
    assert tc == pytest.approx(_origin_instability(np.asarray(ens.points)), rel=1e-10)
    tree = bifurcation_tree(ens)
    _check_tree_invariants(tree)
    assert tree.n_unconverged == 0

    first = tree.splits()[0]
    assert first["t_split"] == pytest.approx(tc, rel=1e-5)
    assert first["kind"] == "bifurcation"
    assert first["children"] == [[0, 1, 2], [3, 4, 5]]  # the branches hold the two clusters
    # just below T_c the two minima are mirror images, just above one minimum at the origin
    b = basins(ens, tc * (1 - 1e-4), ens.points)
    assert b.minima.shape[0] == 2 and list(b.labels) == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(b.minima[0], -b.minima[1], atol=1e-9)
    assert basins(ens, tc * (1 + 1e-4), ens.points).minima.shape[0] == 1

    # later splits separate single points, symmetrically on both sides
    assert len(tree.splits()) == 5
    rest = tree.splits()[1:]
    assert all(s["t_split"] < 0.1 * tc for s in rest)
    by_t = sorted(rest, key=lambda s: s["t_split"])
    for a, b_ in zip(by_t[::2], by_t[1::2]):
        assert a["t_split"] == pytest.approx(b_["t_split"], rel=1e-5)

    # memorization at t_min: every point its own basin, its minimum on the point
    assert tree.memorized
    leaves = tree.leaves()
    assert sorted(leaf.members for leaf in leaves) == [(i,) for i in range(6)]
    for leaf in leaves:
        np.testing.assert_allclose(leaf.minimum, np.asarray(ens.points)[leaf.members[0]], atol=1e-6)
    assert tree.partition(tree.t_max) == [tuple(range(6))]
    assert len(tree.partition(tree.t_min)) == 6

    # the first split found on its own, polished: the pitchfork of the symmetric branch
    fs = first_split(ens)
    assert bool(fs.polished)
    assert float(fs.temperature) == pytest.approx(tc, rel=1e-8)
    np.testing.assert_allclose(fs.location, 0.0, atol=1e-4)


def _origin_instability(points):
    """Highest T with lambda_max(Cov[y | x = 0]) = T, for data symmetric under y -> -y (their
    symmetric fixed point is x* = 0 exactly): a dense log scan, then bisection, in NumPy."""
    sq = np.sum(points**2, axis=1)

    def g(T):
        w = np.exp(-(sq - sq.min()) / (2 * T))
        w /= w.sum()
        return np.linalg.eigvalsh((points * w[:, None]).T @ points)[-1] / T - 1.0

    ts = np.geomspace(sq.max() * 1.01, sq.max() * 1e-3, 4000)
    k = next(i for i, t in enumerate(ts) if g(t) > 0)
    lo, hi = ts[k], ts[k - 1]
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if g(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


def _symmetric_random(seed, n=3, d=2):
    pts = np.random.default_rng(seed).normal(size=(n, d))
    return np.concatenate([pts, -pts])


def test_symmetric_random_data_pitchfork_equals_critical_temperature():
    points = _symmetric_random(6)
    ens = td.FiniteDataset(jnp.asarray(points))
    fs = first_split(ens)
    exact = _origin_instability(points)
    assert float(fs.temperature) == pytest.approx(exact, rel=1e-8)
    assert float(fs.temperature) == pytest.approx(float(critical_temperature(ens)), rel=1e-8)
    np.testing.assert_allclose(fs.location, 0.0, atol=1e-4)  # a pitchfork of x* = 0
    tree = bifurcation_tree(ens)
    _check_tree_invariants(tree)
    assert tree.splits()[0]["t_split"] == pytest.approx(exact, rel=2e-6)
    assert tree.memorized


def test_symmetric_data_can_split_first_by_a_pair_of_saddle_nodes():
    """Symmetric data need not split first at x* = 0: here a mirror pair of minima is born by
    two saddle-nodes above the temperature where x* = 0 loses stability (critical_temperature)."""
    points = _symmetric_random(3)
    ens = td.FiniteDataset(jnp.asarray(points))
    fs = first_split(ens)
    T, u = float(fs.temperature), fs.location
    tc = float(critical_temperature(ens))
    assert tc == pytest.approx(_origin_instability(points), rel=1e-10)
    assert T > 2 * tc
    assert float(jnp.linalg.norm(u)) > 1.0  # far from the symmetric point
    assert float(jnp.linalg.eigvalsh(ens.posterior_cov(u, T))[-1]) / T == pytest.approx(1.0, abs=1e-9)
    assert float(jnp.linalg.norm(u - ens.denoiser(u, T))) < 1e-9
    # three minima just below (x* = 0 and the mirror pair), one just above
    above, below = basins(ens, T * (1 + 1e-4), points), basins(ens, T * (1 - 1e-4), points)
    assert above.minima.shape[0] == 1 and below.minima.shape[0] == 3
    assert any(np.allclose(m, 0.0, atol=1e-8) for m in below.minima)
    tree = bifurcation_tree(ens)
    _check_tree_invariants(tree)
    first = tree.splits()[0]
    assert first["t_split"] == pytest.approx(T, rel=2e-6)
    assert len(first["children"]) == 3  # a degenerate (symmetric) split into three at once
    assert tree.memorized


def test_asymmetric_clusters_saddle_node():
    pts = _three_clusters()
    ens = td.FiniteDataset(pts)
    tree = bifurcation_tree(ens)
    _check_tree_invariants(tree)
    splits = tree.splits()
    # the farthest cluster separates first, then the two near ones, then single points
    assert splits[0]["children"] == [[0, 1, 2], [3, 4, 5, 6, 7, 8]]
    assert splits[1]["children"] == [[3, 4, 5], [6, 7, 8]]
    assert splits[0]["t_split"] > splits[1]["t_split"] > 10 * splits[2]["t_split"]
    assert tree.memorized and len(tree.leaves()) == 9

    fs = first_split(ens)
    T = float(fs.temperature)
    assert bool(fs.polished)
    assert T == pytest.approx(splits[0]["t_split"], rel=2e-6)
    assert float(fs.lower) <= T * (1 + 1e-9) and T <= float(fs.upper) * (1 + 1e-9)
    # saddle-node: where the newborn minimum meets its saddle the Hessian I - Cov/T is singular
    u = fs.location
    lam = jnp.linalg.eigvalsh(ens.posterior_cov(u, T))
    assert float(lam[-1]) / T == pytest.approx(1.0, abs=1e-9)
    assert float(jnp.linalg.norm(u - ens.denoiser(u, T))) < 1e-9
    # ... and at the newborn minimum itself, at the bracket's lower end, within the bisection
    # tolerance (a fold: lambda_min ~ sqrt(rtol), not rtol as at a pitchfork)
    lo = float(fs.lower)
    lam_nb = jnp.linalg.eigvalsh(ens.posterior_cov(fs.newborn, lo))
    assert 0 < 1 - float(lam_nb[-1]) / lo < 1e-2
    assert float(jnp.linalg.norm(fs.newborn - u)) < 0.05
    # it is the highest temperature with more than one minimum, also from many random starts
    rng = np.random.default_rng(1)
    starts = np.concatenate([np.asarray(pts), rng.uniform(-2, 5, size=(7, 2))])  # 16: one compiled batch
    assert basins(ens, T * (1 + 1e-4), starts).minima.shape[0] == 1
    assert basins(ens, T * (1 - 1e-4), starts).minima.shape[0] == 2
    # the symmetric-branch criterion does not apply (the data are not symmetric) and says so;
    # critical_temperature's "first_split" criterion is this computation
    with pytest.raises(ValueError, match="first_split"):
        critical_temperature(ens)
    assert float(critical_temperature(ens, criterion="first_split")) == pytest.approx(T, rel=1e-9)


def test_first_split_gradient_matches_finite_difference():
    pts = _three_clusters()

    def f(p):
        return first_split_temperature(td.FiniteDataset(p), starts=pts)

    g = jax.grad(f)(pts)
    direction = jnp.asarray(np.random.default_rng(2).normal(size=pts.shape))
    h = 1e-4
    fd = (f(pts + h * direction) - f(pts - h * direction)) / (2 * h)
    assert float(jnp.sum(g * direction)) == pytest.approx(float(fd), rel=1e-6)


def test_gaussian_mixture_split_at_mu2_minus_s2():
    mu = jnp.array([1.0, 0.5])
    s2 = 0.4
    exact = float(mu @ mu) - s2
    mix = td.GaussianMixture(jnp.stack([mu, -mu]), s2)
    tree = bifurcation_tree(mix)
    splits = tree.splits()
    assert len(splits) == 1
    assert splits[0]["t_split"] == pytest.approx(exact, rel=1e-5)
    assert splits[0]["children"] == [[0], [1]] and splits[0]["kind"] == "bifurcation"
    assert float(first_split_temperature(mix)) == pytest.approx(exact, rel=1e-8)
    assert float(critical_temperature(mix)) == pytest.approx(exact, rel=1e-8)

    flat = td.GaussianMixture(jnp.stack([mu, -mu]), 1.3)  # |mu|^2 = 1.25 <= s^2: unimodal
    tree = bifurcation_tree(flat)
    assert tree.splits() == [] and tree.root.is_leaf
    assert np.isnan(float(first_split_temperature(flat)))


def test_bad_input():
    ens = _symmetric()
    with pytest.raises(ValueError, match="t_min"):
        bifurcation_tree(ens, t_max=1.0, t_min=2.0)
    with pytest.raises(ValueError, match="t_min"):
        first_split(ens, t_max=1.0, t_min=1.0)
    with pytest.raises(ValueError, match="t_max"):
        bifurcation_tree(ens, t_max=0.0)
    with pytest.raises(ValueError, match="t_max"):
        bifurcation_tree(ens, t_max=-1.0, t_min=0.1)
    with pytest.raises(ValueError, match="t_max.*basins"):
        bifurcation_tree(ens, t_max=0.5)  # below the first split: several basins at t_max
    with pytest.raises(TypeError, match="ensemble"):
        bifurcation_tree("data")
    with pytest.raises(TypeError, match="ensemble"):
        first_split_temperature(td.Diffused(ens, td.VE()))
    with pytest.raises(ValueError, match="starts"):
        bifurcation_tree(ens, starts=np.zeros((0, 2)))
    with pytest.raises(ValueError, match="starts"):
        basins(ens, 1.0, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="starts"):
        first_split(ens, starts=np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"T \(temperature = VE-equivalent noise variance\) must be finite and > 0"):
        basins(ens, 0.0, ens.points)
    with pytest.raises(ValueError, match="n_temperatures"):
        bifurcation_tree(ens, n_temperatures=1)
