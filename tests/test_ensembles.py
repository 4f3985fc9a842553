"""Every ensemble against Monte Carlo, Tweedie, fluctuation-dissipation, symmetry, jit/vmap,
float32 extremes and bad input (theory sections 2-3)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td
from _ensemble_zoo import zoo

ZOO = zoo()
NAMES = list(ZOO)


def _state(ens, seed=3, scale=0.7):
    return jnp.asarray(np.random.default_rng(seed).normal(size=ens.dim) * scale)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("T", [0.3, 1.7])
def test_monte_carlo_denoiser_and_covariance(name, T, key):
    """E[(y - m(x)) g(x)] = 0 and E[((y-m)(y-m)^T - Cov(x)) g(x)] = 0 for test functions g:
    a constant, linear ones, and Gaussian bumps around a few points (local estimates)."""
    ens, _ = ZOO[name]
    n = 100_000
    ky, kz, kc = jax.random.split(key, 3)
    y = ens.sample(ky, n)
    x = y + jnp.sqrt(T) * jax.random.normal(kz, y.shape, y.dtype)
    m, cov = eqx.filter_jit(jax.vmap(lambda x_: (ens.denoiser(x_, T), ens.posterior_cov(x_, T))))(x)
    centers = ens.sample(kc, 3)
    width2 = T + 0.25
    g = [jnp.ones(n)] + [x[:, i] / (1 + jnp.abs(x[:, i])) for i in range(min(ens.dim, 3))]
    g += [jnp.exp(-jnp.sum((x - c[None, :]) ** 2, 1) / (2 * width2)) for c in centers]
    r = y - m
    rr = (r[:, :, None] * r[:, None, :] - cov).reshape(n, -1)
    for gi in g:
        for resid in (r, rr):
            terms = np.asarray(resid * gi[:, None])
            est = terms.mean(0)
            err = terms.std(0) / np.sqrt(n)
            assert np.all(np.abs(est) <= 5 * err + 1e-9), (name, T, est, err)


@pytest.mark.parametrize("name", NAMES)
def test_tweedie_first_and_second_order(name):
    """m = x + T grad log p_T and Cov = T (I + T hess log p_T) (theory section 2)."""
    ens, _ = ZOO[name]

    @jax.jit
    def both(x, T):
        eye = jnp.eye(ens.dim)
        grad = jax.grad(ens.log_density)(x, T)
        hess = jax.hessian(ens.log_density)(x, T)
        return dict(
            m=(ens.denoiser(x, T), x + T * grad),
            score=(ens.score(x, T), grad),
            cov=(ens.posterior_cov(x, T), T * (eye + T * hess)),
            fdt=(ens.posterior_cov(x, T), T * jax.jacfwd(ens.denoiser)(x, T)),
            logz=(ens.log_partition(x, T), (0.5 * x @ x - ens.landau(x, T)) / T),
        )

    for T in (0.2, 1.0, 4.0):
        for key, (a, b) in both(_state(ens), T).items():
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10, err_msg=f"{name} {key} T={T}")


@pytest.mark.parametrize("name", [n for n in NAMES if ZOO[n][1]])
def test_symmetry(name):
    ens, _ = ZOO[name]
    x = _state(ens, 5)
    for T in (0.1, 0.9, 3.0):
        np.testing.assert_allclose(ens.denoiser(-x, T), -ens.denoiser(x, T), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ens.landau(-x, T), ens.landau(x, T), rtol=1e-10)
        np.testing.assert_allclose(ens.denoiser(jnp.zeros(ens.dim), T), 0.0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_posterior_covariance_psd_and_limits(name):
    ens, _ = ZOO[name]
    x = _state(ens, 7)
    for T in (0.05, 1.0, 50.0):
        ev = np.linalg.eigvalsh(np.asarray(ens.posterior_cov(x, T)))
        assert ev.min() > -1e-10
    # T -> infinity: the posterior becomes the prior.
    x0 = jnp.zeros(ens.dim)
    np.testing.assert_allclose(ens.denoiser(x0, 1e8), ens.mean(), atol=1e-6)
    np.testing.assert_allclose(ens.posterior_cov(x0, 1e8), ens.covariance(), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_sample_matches_mean_and_covariance(name, key):
    ens, _ = ZOO[name]
    n = 100_000
    y = np.asarray(ens.sample(key, n))
    assert y.shape == (n, ens.dim)
    np.testing.assert_array_less(np.abs(y.mean(0) - ens.mean()), 5 * y.std(0) / np.sqrt(n) + 1e-12)
    yc = y - np.asarray(ens.mean())
    outer = (yc[:, :, None] * yc[:, None, :]).reshape(n, -1)
    c = outer.mean(0).reshape(ens.dim, ens.dim)
    se = outer.std(0).reshape(c.shape) / np.sqrt(n)
    np.testing.assert_array_less(np.abs(c - ens.covariance()), 5 * se + 1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_vmap_equal_plain_calls(name):
    ens, _ = ZOO[name]
    xs = jnp.asarray(np.random.default_rng(11).normal(size=(4, ens.dim)))
    Ts = jnp.array([0.1, 0.5, 2.0, 9.0])
    methods = ("denoiser", "posterior_cov", "landau", "log_partition", "score", "log_density")

    def all_methods(x, T):
        return [getattr(ens, m)(x, T) for m in methods]

    plain = [np.stack(v) for v in zip(*[all_methods(xs[i], float(Ts[i])) for i in range(4)])]
    plainT = [np.stack(v) for v in zip(*[all_methods(xs[0], float(T)) for T in Ts])]
    batched = jax.jit(jax.vmap(all_methods))(xs, Ts)
    over_T = jax.jit(jax.vmap(all_methods, (None, 0)))(xs[0], Ts)
    single = jax.jit(all_methods)(xs[0], Ts[0])
    eager = jax.vmap(ens.denoiser)(xs, Ts)
    np.testing.assert_allclose(eager, plain[0], rtol=1e-12, atol=1e-13)
    for k, m in enumerate(methods):
        np.testing.assert_allclose(batched[k], plain[k], rtol=1e-12, atol=1e-13, err_msg=m)
        np.testing.assert_allclose(over_T[k], plainT[k], rtol=1e-12, atol=1e-13, err_msg=m)
        np.testing.assert_allclose(single[k], plain[k][0], rtol=1e-12, atol=1e-13, err_msg=m)


@pytest.mark.parametrize("name", NAMES)
def test_float32_extremes_have_no_nan(name):
    ens, _ = zoo(jnp.float32)[name]
    direction = np.random.default_rng(0).normal(size=ens.dim)
    direction /= np.linalg.norm(direction)
    methods = ("denoiser", "posterior_cov", "landau", "log_partition", "score", "log_density", "energy_moments")

    @jax.jit
    def everything(x, T):
        out = {m: getattr(ens, m)(x, T) for m in methods}
        out["grad_landau"] = jax.grad(ens.landau)(x, T)
        return out

    for T in (1e-4, 1.0, 1e4):
        for radius in (0.0, 0.3, 1e3):
            x = jnp.asarray(direction * radius, jnp.float32)
            out = everything(x, jnp.float32(T))
            for m, o in out.items():
                for leaf in jax.tree.leaves(o):
                    assert leaf.dtype == jnp.float32, (name, m)
                    assert np.all(np.isfinite(np.asarray(leaf))), (name, m, T, radius, leaf)
            eager = ens.denoiser(x, T)  # a plain call with a Python float stays float32 too
            assert eager.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(eager)))
    # far away at low temperature the denoiser still returns a data-sized answer
    m = ens.denoiser(jnp.asarray(direction * 1e3, jnp.float32), 1e-4)
    assert np.all(np.abs(np.asarray(m)) < 1e3)


def test_two_deltas_closed_forms():
    e = td.TwoDeltas(1.0)
    for T in (0.5, 1.0, 2.0):
        for x in (-1.3, 0.2, 0.9):
            xa = jnp.array([x])
            assert float(e.landau(xa, T)) == pytest.approx(x * x / 2 - T * np.log(np.cosh(x / T)) + 0.5, rel=1e-12)
            assert float(e.denoiser(xa, T)[0]) == pytest.approx(np.tanh(x / T), rel=1e-12)
            assert float(e.posterior_cov(xa, T)[0, 0]) == pytest.approx(1 - np.tanh(x / T) ** 2, rel=1e-12)
    assert float(td.TwoDeltas(jnp.array([1.0, 2.0])).critical_temperature) == pytest.approx(5.0)
    # gradient in the parameter: dPhi/dmu = mu - x tanh(mu.x/T)
    x, T = jnp.array([0.4, -0.3]), 0.6
    mu = jnp.array([1.0, 0.5])
    g = jax.grad(lambda m: td.TwoDeltas(m).landau(x, T))(mu)
    np.testing.assert_allclose(g, mu - x * np.tanh(mu @ x / T), rtol=1e-12)


def test_gaussian_mixture_closed_forms():
    """Single Gaussian: posterior N((s^2 x + T mu)/(s^2+T), s^2 T/(s^2+T) I), marginal N(mu, (s^2+T) I)."""
    mu, s2 = jnp.array([0.5, -1.0]), 0.7
    g = td.Gaussian(mu, s2)
    x, T = jnp.array([0.3, 2.0]), 1.3
    np.testing.assert_allclose(g.denoiser(x, T), (s2 * x + T * mu) / (s2 + T), rtol=1e-12)
    np.testing.assert_allclose(g.posterior_cov(x, T), s2 * T / (s2 + T) * np.eye(2), rtol=1e-12)
    want = -np.log(2 * np.pi * (s2 + T)) - np.sum((x - mu) ** 2) / (2 * (s2 + T))
    assert float(g.log_density(x, T)) == pytest.approx(float(want), rel=1e-12)
    # zero-variance components are deltas: a mixture of deltas equals the finite dataset
    pts = jnp.array([[1.0, 0.0], [-0.5, 1.0], [0.0, -2.0]])
    w = jnp.array([0.2, 0.3, 0.5])
    gm, fd = td.GaussianMixture(pts, 0.0, w), td.FiniteDataset(pts, w)
    for T in (0.1, 1.0):
        np.testing.assert_allclose(gm.denoiser(x, T), fd.denoiser(x, T), rtol=1e-12)
        np.testing.assert_allclose(gm.landau(x, T), fd.landau(x, T), rtol=1e-12)
        np.testing.assert_allclose(gm.posterior_cov(x, T), fd.posterior_cov(x, T), atol=1e-12)
    # derivative in the variance by autodiff is finite and matches the analytic single-Gaussian one
    dv = jax.grad(lambda v: td.Gaussian(mu, v).landau(x, T))(s2)
    d = 2
    want = -T * (-d / (2 * (T + s2)) + np.sum((x - mu) ** 2) / (2 * (T + s2) ** 2))
    assert float(dv) == pytest.approx(float(want), rel=1e-10)


def test_finite_dataset_chunked_equals_unchunked():
    rng = np.random.default_rng(2)
    pts = jnp.asarray(rng.normal(size=(1001, 6)) * 2)
    w = jnp.asarray(rng.random(1001))
    dense = td.FiniteDataset(pts, w)
    assert dense.chunks.shape[0] == 1
    for chunk in (1, 64, 1000):
        ch = td.FiniteDataset(pts, w, chunk_size=chunk)
        np.testing.assert_allclose(ch.points, pts)
        np.testing.assert_allclose(ch.weights, w / w.sum(), rtol=1e-12)
        for T in (0.01, 1.0, 30.0):
            x = jnp.asarray(rng.normal(size=6) * 3)
            for method in ("denoiser", "posterior_cov", "landau", "log_partition", "energy_moments"):
                np.testing.assert_allclose(
                    np.asarray(getattr(ch, method)(x, T)), np.asarray(getattr(dense, method)(x, T)),
                    rtol=1e-10, atol=1e-11,
                )
        # gradient with respect to the data points, streamed and dense
        x = jnp.asarray(rng.normal(size=6))
        gd = jax.jit(jax.grad(lambda p: td.FiniteDataset(p, w).landau(x, 0.5)))(pts)
        gc = jax.jit(jax.grad(lambda p: td.FiniteDataset(p, w, chunk_size=chunk).landau(x, 0.5)))(pts)
        np.testing.assert_allclose(gc, gd, rtol=1e-10, atol=1e-12)


def test_finite_dataset_explicit_posterior():
    rng = np.random.default_rng(4)
    pts = rng.normal(size=(30, 3))
    w = rng.random(30)
    w /= w.sum()
    ds = td.FiniteDataset(jnp.asarray(pts), jnp.asarray(w), chunk_size=8)
    x, T = rng.normal(size=3), 0.4
    logits = np.log(w) + (pts @ x - 0.5 * (pts**2).sum(1)) / T
    p = np.exp(logits - logits.max())
    p /= p.sum()
    np.testing.assert_allclose(ds.posterior_weights(jnp.asarray(x), T), p, rtol=1e-10)
    m = p @ pts
    np.testing.assert_allclose(ds.denoiser(jnp.asarray(x), T), m, rtol=1e-10)
    np.testing.assert_allclose(ds.posterior_cov(jnp.asarray(x), T), (pts - m).T @ ((pts - m) * p[:, None]), atol=1e-12)
    E = 0.5 * (pts**2).sum(1) - pts @ x
    mE, vE = ds.energy_moments(jnp.asarray(x), T)
    assert float(mE) == pytest.approx(p @ E, rel=1e-10)
    assert float(vE) == pytest.approx(p @ (E - p @ E) ** 2, rel=1e-10)


def test_zero_weight_points_are_ignored():
    pts = jnp.array([[1.0], [-1.0], [5.0]])
    a = td.FiniteDataset(pts, jnp.array([1.0, 1.0, 0.0]), chunk_size=1)
    b = td.TwoDeltas(1.0)
    for T in (0.3, 2.0):
        x = jnp.array([0.7])
        np.testing.assert_allclose(a.denoiser(x, T), b.denoiser(x, T), rtol=1e-12)
        np.testing.assert_allclose(a.landau(x, T), b.landau(x, T), rtol=1e-12)


def test_vmap_over_ensemble_parameters():
    x, T = jnp.array([0.3, -0.2]), 0.8
    mus = jnp.array([[1.0, 0.0], [0.5, 0.5], [2.0, -1.0]])
    got = jax.jit(jax.vmap(lambda mu: td.TwoDeltas(mu).denoiser(x, T)))(mus)
    want = np.stack([td.TwoDeltas(m).denoiser(x, T) for m in mus])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    s2 = jnp.array([0.1, 0.5, 1.0])
    means = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
    got = jax.vmap(lambda v: td.GaussianMixture(means, v).posterior_cov(x, T))(s2)
    want = np.stack([td.GaussianMixture(means, float(v)).posterior_cov(x, T) for v in s2])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    pts = jnp.asarray(np.random.default_rng(0).normal(size=(3, 20, 2)))
    got = jax.vmap(lambda p: td.FiniteDataset(p, chunk_size=6).denoiser(x, T))(pts)
    want = np.stack([td.FiniteDataset(p).denoiser(x, T) for p in pts])
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_bad_state_and_temperature(name):
    ens, _ = ZOO[name]
    x = jnp.zeros(ens.dim)
    for T in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"T \(temperature = VE-equivalent noise variance\) must be finite and > 0"):
            ens.denoiser(x, T)
    with pytest.raises(ValueError, match=r"x must have shape"):
        ens.denoiser(jnp.zeros(ens.dim + 1), 1.0)
    with pytest.raises(ValueError, match=r"x must have shape"):
        ens.landau(jnp.zeros((2, ens.dim)), 1.0)
    with pytest.raises(ValueError, match="x must be finite"):
        ens.posterior_cov(jnp.full(ens.dim, jnp.nan), 1.0)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: td.TwoDeltas(jnp.array([0.0, 0.0])), "mu"),
        (lambda: td.TwoDeltas(jnp.array([1.0, jnp.nan])), "mu"),
        (lambda: td.TwoDeltas(jnp.ones((2, 2))), "mu"),
        (lambda: td.FiniteDataset(jnp.zeros((0, 3))), "points"),
        (lambda: td.FiniteDataset(jnp.zeros(5)), "points"),
        (lambda: td.FiniteDataset(jnp.array([[1.0, jnp.inf]])), "points"),
        (lambda: td.FiniteDataset(jnp.ones((3, 2)), jnp.array([1.0, -1.0, 1.0])), "weights"),
        (lambda: td.FiniteDataset(jnp.ones((3, 2)), jnp.array([1.0, 1.0])), "weights"),
        (lambda: td.FiniteDataset(jnp.ones((3, 2)), jnp.zeros(3)), "weights"),
        (lambda: td.FiniteDataset(jnp.ones((3, 2)), chunk_size=0), "chunk_size"),
        (lambda: td.GaussianMixture(jnp.ones((2, 2)), -1.0), "variances"),
        (lambda: td.GaussianMixture(jnp.ones((2, 2)), jnp.ones(3)), "variances"),
        (lambda: td.GaussianMixture(jnp.ones((2, 2)), 1.0, jnp.array([1.0, -2.0])), "weights"),
        (lambda: td.GaussianMixture(jnp.full((2, 2), jnp.nan)), "means"),
        (lambda: td.GaussianMixture(jnp.zeros((0, 2))), "means"),
    ],
)
def test_bad_ensemble_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_non_numeric_data_is_a_type_error():
    with pytest.raises(TypeError, match="points"):
        td.FiniteDataset(np.array([["a", "b"]]))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("chunk_size", [4096, 3])
def test_finite_dataset_jacobian_with_exact_ties(dtype, chunk_size):
    """Fluctuation-dissipation dm/dx = Cov[y|x]/T, vmapped over states whose top logits tie
    exactly (points symmetric about the state): the max shift of the log-sum-exp must not take
    part in differentiation (a recomputed max with other rounding would divide by zero ties)."""
    rng = np.random.default_rng(0)
    half = rng.normal(size=(5, 4)).astype(dtype)
    pts = np.concatenate([half, -half])  # symmetric about 0: ties at every x on a symmetry axis
    ds = td.FiniteDataset(jnp.asarray(pts), chunk_size=chunk_size)
    x = jnp.asarray(np.concatenate([np.zeros((8, 4)), rng.normal(size=(56, 4))]).astype(dtype))
    T = jnp.asarray(0.05, dtype)
    jac = jax.jit(jax.vmap(jax.jacrev(ds.denoiser), in_axes=(0, None)))(x, T)
    cov = jax.jit(jax.vmap(ds.posterior_cov, in_axes=(0, None)))(x, T)
    assert bool(jnp.all(jnp.isfinite(jac)))
    tol = 2e-4 if dtype == jnp.float32 else 1e-10
    np.testing.assert_allclose(jac * T, cov, atol=tol * float(jnp.max(jnp.abs(cov))) + tol)
