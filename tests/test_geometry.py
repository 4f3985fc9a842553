"""Score-Jacobian spectra, effective dimensions, spectral gaps and opening temperatures (theory 12).

Float64 throughout (tests/conftest.py). The reference law is Gaussian data on a linear manifold with
three blocks of variances (Achilli et al. 2024): 5 directions of variance 1, 10 of 0.09, 15 of
1e-4 (d = 30), whose spectrum of A = -T grad s = I - Cov/T is exactly T/(v_i + T).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td
from thermodiff._models import Exact
from thermodiff._ensembles._linear_manifold import LinearManifold, block_variances, manifold_points
from thermodiff._geometry import JacobianSpectrum, effective_dimension, score_jacobian_spectrum, spectral_gaps
from thermodiff._geometry_sweep import compare_spectra, freeze_temperatures, spectrum_sweep

BLOCKS = [(1.0, 5), (0.09, 10), (1e-4, 15)]


@pytest.fixture(scope="module")
def law():
    """The three-block law in a random rotation with a non-zero mean."""
    v = block_variances(BLOCKS)
    U, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (30, 30)))
    return LinearManifold(v, U, mean=jnp.linspace(-1.0, 1.0, 30))


class _DenoiserOnly(eqx.Module):
    """The law seen only through its denoiser: forces the jacfwd path."""

    law: LinearManifold

    @property
    def dim(self):
        return self.law.dim

    def denoiser(self, u, T):
        return self.law.denoiser(u, T)


def _net(d, key=0, scale=0.3, width=32, depth=2):
    """A Preconditioned residual MLP with a random (non-zero) output layer: a generic, non-symmetric J."""
    net = td.ResidualMLP(d, width, depth, emb_dim=16, key=jax.random.key(key))
    w = scale * jax.random.normal(jax.random.key(key + 1), net.out.weight.shape)
    return td.Preconditioned(eqx.tree_at(lambda n: n.out.weight, net, w), "edm", 1.0)


# ============================================================================ exact spectra
@pytest.mark.parametrize("T, dim", [(0.05, 15), (0.5, 5), (1e-5, 30)])
def test_linear_manifold_spectrum_is_T_over_v_plus_T(law, T, dim):
    x = law.sample(jax.random.key(2), 1)[0] + 0.7 * jax.random.normal(jax.random.key(3), (30,))
    exact = np.sort(T / (np.asarray(law.variances) + T))
    closed = score_jacobian_spectrum(law, x, T)
    jac = score_jacobian_spectrum(_DenoiserOnly(law), x, T)
    assert closed.method == "closed-form" and jac.method == "dense"
    # measured: max errors ~1e-15 for both paths
    np.testing.assert_allclose(closed.eigenvalues, exact, rtol=0, atol=1e-10)
    np.testing.assert_allclose(jac.eigenvalues, exact, rtol=0, atol=1e-10)
    np.testing.assert_allclose(law.spectrum(T), exact, rtol=0, atol=1e-12)
    assert int(effective_dimension(closed.eigenvalues)) == dim
    assert int(effective_dimension(jac.eigenvalues)) == dim
    assert float(jac.asymmetry) < 1e-12  # an exact denoiser's Jacobian is symmetric


def test_eigenvectors_span_the_blocks(law):
    T = 0.05
    s = score_jacobian_spectrum(law, law.mean(), T, vectors=True)
    V, U = np.asarray(s.vectors), np.asarray(law.basis)
    top = U[:, :5]  # the variance-1 block opens first: its directions carry the 5 smallest eigenvalues
    # projector onto the 5 smallest eigenvectors equals the projector onto the block: measured 1e-15
    np.testing.assert_allclose(V[:, :5] @ V[:, :5].T, top @ top.T, atol=1e-10)
    A = np.eye(30) - np.asarray(law.posterior_cov(law.mean(), T)) / T
    np.testing.assert_allclose(A @ V, V * np.asarray(s.eigenvalues)[None, :], atol=1e-12)


def test_linear_manifold_closed_forms_agree_with_autodiff_and_the_gaussian_density():
    from scipy.stats import multivariate_normal

    U, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(4), (12, 5)))
    law = LinearManifold(jnp.array([2.0, 1.0, 0.5, 0.0, 0.1]), U, mean=jnp.ones(12))
    x, T = jax.random.normal(jax.random.key(5), (12,)), 0.2
    ref = multivariate_normal(np.ones(12), np.asarray(law.covariance()) + T * np.eye(12)).logpdf(np.asarray(x))
    assert abs(float(law.log_density(x, T)) - ref) < 1e-10  # measured 1e-14
    np.testing.assert_allclose(law.denoiser(x, T), x - jax.grad(law.landau)(x, T), atol=1e-12)
    np.testing.assert_allclose(law.posterior_cov(x, T), T * jax.jacfwd(law.denoiser)(x, T), atol=1e-12)
    # the spectrum: T/(v + T) on the 5 basis directions (one of them flat, v = 0 -> 1), 1 off them
    expect = np.sort(np.concatenate([T / (np.array([2.0, 1.0, 0.5, 0.0, 0.1]) + T), np.ones(7)]))
    np.testing.assert_allclose(law.spectrum(T), expect, atol=1e-14)
    Y = law.sample(jax.random.key(6), 20000)
    np.testing.assert_allclose(np.cov(np.asarray(Y).T), law.covariance(), atol=0.05)


def test_manifold_points_and_block_variances():
    v = block_variances([(4.0, 2), (0.0, 3)])
    np.testing.assert_array_equal(v, [4.0, 4.0, 0.0, 0.0, 0.0])
    P = manifold_points(jax.random.key(0), 500, v)
    assert P.shape == (500, 5) and np.all(np.asarray(P)[:, 2:] == 0)
    S = manifold_points(jax.random.key(0), 500, v, sphere=True, radius=3.0, mean=jnp.ones(5))
    np.testing.assert_allclose(np.linalg.norm(np.asarray(S) - 1.0, axis=1), 3.0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(S)[:, 2:], 1.0)


# ============================================================================ Lanczos
@pytest.mark.parametrize("which", ["smallest", "largest"])
def test_lanczos_matches_dense_on_an_ensemble(which):
    """A finite dataset (generic spectrum) with the default Krylov dimension, and the three-block law
    in d = 200, where the restarts recover repeated eigenvalues (a single Krylov space holds one
    copy of each). Measured max errors: 5e-15 (FiniteDataset, smallest), 4e-14 (largest), 6e-16."""
    d = 64
    Y = manifold_points(jax.random.key(0), 500, block_variances([(1.0, 8), (0.1, 16), (0.01, 40)]))
    ds = td.FiniteDataset(Y)
    x = Y[3] + jnp.sqrt(0.2) * jax.random.normal(jax.random.key(5), (d,))
    dense = score_jacobian_spectrum(ds, x, 0.2).eigenvalues
    lan = score_jacobian_spectrum(ds, x, 0.2, k=10, which=which, method="lanczos")
    ref = dense[:10] if which == "smallest" else dense[-10:]
    assert lan.method == "lanczos"
    np.testing.assert_allclose(lan.eigenvalues, ref, atol=1e-10)

    v = block_variances([(1.0, 5), (0.09, 10), (1e-4, 185)])
    U, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (200, 200)))
    big = LinearManifold(v, U)
    lan = score_jacobian_spectrum(big, big.sample(jax.random.key(2), 1)[0], 0.05, k=20, which=which,
                                  method="lanczos")
    ex = big.spectrum(0.05)
    np.testing.assert_allclose(lan.eigenvalues, ex[:20] if which == "smallest" else ex[-20:], atol=1e-10)


def test_lanczos_matches_dense_on_a_network():
    """A network's symmetrised Jacobian: with krylov_dim = d Lanczos is exact at both ends (measured
    3e-16) and its asymmetry estimate equals the dense one (the Krylov vectors span R^d); with
    krylov_dim < d every Ritz value lies within its residual of an eigenvalue (measured error 4e-4,
    residual 1e-2 at the largest end, krylov_dim 18 of 24)."""
    d, T = 24, 0.3
    net = _net(d)
    x = jax.random.normal(jax.random.key(2), (d,))
    dense = score_jacobian_spectrum(net, x, T)
    assert 0.1 < float(dense.asymmetry) < 1  # an untrained net is far from a gradient field (measured 0.62)
    full = score_jacobian_spectrum(net, x, T, k=d, method="lanczos")  # krylov_dim = d: every eigenvalue
    np.testing.assert_allclose(full.eigenvalues, dense.eigenvalues, atol=1e-10)
    assert abs(float(full.asymmetry) - float(dense.asymmetry)) < 1e-10
    part = score_jacobian_spectrum(net, x, T, k=5, which="largest", method="lanczos", krylov_dim=18)
    dist = np.min(np.abs(np.asarray(part.eigenvalues)[:, None] - np.asarray(dense.eigenvalues)[None, :]), axis=1)
    assert np.all(dist <= np.asarray(part.residuals) + 1e-12)
    assert np.max(np.abs(part.eigenvalues - dense.eigenvalues[-5:])) < 1e-2


def test_lanczos_memory_is_order_d_at_d_4096():
    """XLA's compiled memory of the JVP-only Lanczos path at d = 4096 (k = 8, 48 Krylov vectors):
    arguments + temporaries are O(d k) (measured 2.1 MB + 1.9 MB, the 48 x 4096 basis being 1.6 MB),
    while one d x d float64 matrix is 134 MB and the dense path's temporaries are 268 MB."""
    d = 4096
    Y = manifold_points(jax.random.key(0), 64, block_variances([(1.0, 16), (0.01, d - 16)]))
    ds = td.FiniteDataset(Y)
    x = Y[0] + 0.1 * jax.random.normal(jax.random.key(1), (d,))
    dd = d * d * 8

    def mem(method):
        f = jax.jit(lambda ds, x: score_jacobian_spectrum(ds, x, 0.05, k=8, method=method).eigenvalues)
        ma = f.lower(ds, x).compile().memory_analysis()
        return ma.temp_size_in_bytes, ma.argument_size_in_bytes

    temp, arg = mem("lanczos")
    assert temp + arg < dd / 20
    assert mem("dense")[0] >= dd  # the check can tell: the d x d path does not pass it


# ============================================================================ coordinates, jit
def test_spectra_agree_in_VE_VP_OU_coordinates(law):
    """-s^2 grad_x s_t in native coordinates equals A at the same T (measured differences <= 7e-16)."""
    T = 0.3
    u = law.sample(jax.random.key(7), 1)[0] + jnp.sqrt(T) * jax.random.normal(jax.random.key(8), (30,))
    net = _net(30, width=16, depth=1)
    ref_net = score_jacobian_spectrum(net, u, T).eigenvalues
    ref_law = law.spectrum(T)
    for sch in (td.VE(), td.VP(), td.OU()):
        t = sch.time_at_temperature(T)
        x = sch.signal_scale(t) * u
        assert abs(float(sch.temperature(t)) - T) < 1e-12
        got = score_jacobian_spectrum(net, x, t, schedule=sch)
        np.testing.assert_allclose(got.eigenvalues, ref_net, atol=1e-12)
        np.testing.assert_allclose(score_jacobian_spectrum(law, x, t, schedule=sch).eigenvalues, ref_law, atol=1e-12)
        diffused = score_jacobian_spectrum(td.Diffused(law, sch), x, t)  # native coordinates of its schedule
        np.testing.assert_allclose(diffused.eigenvalues, ref_law, atol=1e-12)
        # a bare score model fn(x, t) = grad log p_t: the matrix -s^2 grad s itself
        score = td.Score(lambda z, tt, sch=sch: Exact(law).score(z, tt, sch))
        got = score_jacobian_spectrum(score, x, t, schedule=sch)
        np.testing.assert_allclose(got.eigenvalues, ref_law, atol=1e-10)


def test_jit_and_vmap_invariance(law):
    T = 0.05
    X = law.sample(jax.random.key(9), 3) + jnp.sqrt(T) * jax.random.normal(jax.random.key(10), (3, 30))
    eager = np.stack([score_jacobian_spectrum(law, x, T).eigenvalues for x in X])
    f = jax.jit(jax.vmap(lambda x, T: score_jacobian_spectrum(law, x, T).eigenvalues, in_axes=(0, None)))
    np.testing.assert_allclose(f(X, T), eager, atol=1e-14)
    g = jax.jit(jax.vmap(lambda x: score_jacobian_spectrum(law, x, T, k=6, method="lanczos").eigenvalues))
    np.testing.assert_allclose(g(X), eager[:, :6], atol=1e-12)
    net = _net(30, width=16, depth=1)
    h = jax.jit(lambda x, T: score_jacobian_spectrum(net, x, T))
    out = h(X[0], T)
    assert isinstance(out, JacobianSpectrum) and out.method == "dense"
    np.testing.assert_allclose(out.eigenvalues, score_jacobian_spectrum(net, X[0], T).eigenvalues, atol=1e-12)
    # traced invalid inputs give NaN, never a plausible number
    assert np.all(np.isnan(h(X[0], -1.0).eigenvalues))
    assert np.all(np.isnan(f(X, -1.0)))
    assert np.all(np.isnan(jax.jit(lambda x: score_jacobian_spectrum(law, x, T).eigenvalues)(X[0] * jnp.nan)))
    sch = td.VP()
    assert np.all(np.isnan(jax.jit(lambda t: score_jacobian_spectrum(net, X[0], t, schedule=sch).eigenvalues)(5.0)))
    assert np.all(np.isnan(jax.jit(lambda T: law.spectrum(T))(-1.0)))
    assert np.all(np.isnan(g(X * jnp.nan)))  # the Lanczos path too
    assert np.isnan(jax.jit(lambda l: effective_dimension(l))(jnp.array([jnp.nan, 0.1])))


# ============================================================================ sweeps, gaps
def test_sweep_plateaus_gaps_and_opening_temperatures(law):
    Ts = np.geomspace(1e-5, 10, 24)  # no grid point at a variance (lambda = 1/2 exactly)
    sw = spectrum_sweep(law, Ts, key=jax.random.key(1), n_states=4)
    expect = np.array([np.sum(np.asarray(law.variances) > T) for T in Ts])
    np.testing.assert_array_equal(sw.effective_dimension, expect)
    np.testing.assert_array_equal(sw.effective_dimension_stderr, 0.0)
    # logit gaps: log(v_i/v_j) at every T: log(0.09/1e-4) = 6.80 above dimension 15, log(1/0.09) = 2.41 above 5
    np.testing.assert_array_equal(sw.gap_index, np.broadcast_to([15, 5], (24, 2)))
    np.testing.assert_allclose(sw.gap_sizes, np.broadcast_to([np.log(900.0), np.log(1 / 0.09)], (24, 2)), atol=1e-8)
    fr = freeze_temperatures(sw)
    # logit interpolation is exact for Gaussian data: direction i opens at T = v_i
    np.testing.assert_allclose(fr.temperatures, np.asarray(law.variances), rtol=1e-8)
    np.testing.assert_allclose(fr.block_temperatures, [1.0, 0.09, 1e-4], rtol=1e-8)
    np.testing.assert_array_equal(fr.block_sizes, [5, 10, 15])
    # the same through VP coordinates and the Lanczos path (k = 16 smallest)
    sv = spectrum_sweep(law, Ts, key=jax.random.key(1), n_states=2, schedule=td.VP(), k=16, method="lanczos")
    np.testing.assert_array_equal(sv.effective_dimension, np.minimum(expect, 16))
    np.testing.assert_allclose(sv.mean_eigenvalues, sw.mean_eigenvalues[:, :16], atol=1e-10)


def test_spectral_gaps_scales():
    lam = jnp.array([[0.5, 0.01, 0.02, 0.9], [0.1, 0.2, 0.3, 0.4]])
    g = spectral_gaps(lam, n_gaps=2, scale="linear")
    np.testing.assert_allclose(g.sizes, [[0.48, 0.4], [0.1, 0.1]], atol=1e-12)
    np.testing.assert_array_equal(g.index[0], [2, 3])
    np.testing.assert_allclose(g.lower[0], [0.02, 0.5])
    np.testing.assert_allclose(g.upper[0], [0.5, 0.9])
    gl = spectral_gaps(lam, scale="log")
    np.testing.assert_allclose(gl.sizes[0], [np.log(25.0)])
    assert jnp.asarray(jax.jit(lambda l: spectral_gaps(l).sizes)(lam)).shape == (2, 1)


def test_finite_dataset_loses_its_dimensions_below_collapse(law):
    """250 points of the three-block law (measured with 32 states; T_C from the excess entropy 0.33,
    the isotropic REM formula with the mean variance gives 0.44).

    Above the collapse the block traces follow the population (the mean of the 5 smallest eigenvalues,
    a sum rule: measured 0.638 vs 0.640 at T = 1.78, 0.502 vs 0.500 at T = 1) and the effective
    dimension is within 1 of the population's (measured 0.69 vs 0 at T = 1.78, 0 vs 0 at 3.16 and
    5.62). The spectrum is spread by the sampling, so between T_C and 1 the count is smaller than the
    population's 5 (measured 2.25 at T = 0.56): dimensions are lost from T_C upward. Well below T_C
    the posterior sits on one training point: Cov -> 0, every eigenvalue -> 1, dimension 0 while the
    population has 15 (measured max |1 - lambda| 1e-9 at T = 0.01)."""
    Y = law.sample(jax.random.key(7), 250)
    ds = td.FiniteDataset(Y)
    T_C = td.collapse_temperature_from_data(ds, jax.random.key(3), n_samples=256)
    assert 0.15 < T_C < 0.7  # measured 0.33 (n_samples 1024), 0.44 by the isotropic REM formula
    Ts = np.array([0.01, 0.02, 0.56, 1.0, 1.78, 3.16, 5.62])
    sw = compare_spectra({"emp": ds, "pop": law}, Ts, data=ds, key=jax.random.key(1), n_states=32)
    emp, pop = sw["emp"], sw["pop"]
    above = Ts >= 4 * T_C
    assert np.all(np.abs(emp.effective_dimension - pop.effective_dimension)[above] <= 1.0)
    block = lambda s: s.mean_eigenvalues[:, :5].mean(axis=1)  # noqa: E731
    assert np.all(np.abs(block(emp) - block(pop))[Ts >= 1.0] < 0.03)
    below = Ts <= T_C / 10
    np.testing.assert_array_equal(emp.effective_dimension[below], 0.0)
    assert np.all(pop.effective_dimension[below] == 15)
    assert np.all(emp.eigenvalues[below] > 1 - 1e-6)
    assert emp.effective_dimension[2] < pop.effective_dimension[2] - 1  # partial loss between T_C and 1


# ============================================================================ errors
def test_bad_inputs_name_the_argument(law):
    x = law.mean()
    net = _net(30)
    cases = [
        (lambda: score_jacobian_spectrum(law, jnp.ones(3), 0.1), ValueError, "x"),
        (lambda: score_jacobian_spectrum(law, x, -0.1), ValueError, "T"),
        (lambda: score_jacobian_spectrum(law, x, jnp.ones(2)), ValueError, "T"),
        (lambda: score_jacobian_spectrum(law, x, 0.1, k=0), ValueError, "k"),
        (lambda: score_jacobian_spectrum(law, x, 0.1, k=31), ValueError, "k"),
        (lambda: score_jacobian_spectrum(law, x, 0.1, which="middle"), ValueError, "which"),
        (lambda: score_jacobian_spectrum(law, x, 0.1, method="svd"), ValueError, "method"),
        (lambda: score_jacobian_spectrum(law, x, 0.1, method="lanczos"), ValueError, "k"),
        (lambda: score_jacobian_spectrum(law, x, 0.1, krylov_dim=10), ValueError, "krylov_dim"),
        (lambda: score_jacobian_spectrum(law, x, 0.1, k=5, method="lanczos", krylov_dim=4), ValueError, "krylov_dim"),
        (lambda: score_jacobian_spectrum(law, x, 0.1, key=3), TypeError, "key"),
        (lambda: score_jacobian_spectrum(law, x, 0.1, vectors="yes"), TypeError, "vectors"),
        (lambda: score_jacobian_spectrum("law", x, 0.1), TypeError, "model"),
        (lambda: score_jacobian_spectrum(law, x, 0.1, schedule="VE"), TypeError, "schedule"),
        (lambda: score_jacobian_spectrum(net, x, 0.0, schedule=td.VP()), ValueError, "T"),
        (lambda: score_jacobian_spectrum(net, x, 2.0, schedule=td.VP()), ValueError, "T"),
        (lambda: effective_dimension(jnp.ones(3), threshold=1.5), ValueError, "threshold"),
        (lambda: spectral_gaps(jnp.ones(3), n_gaps=3), ValueError, "n_gaps"),
        (lambda: spectral_gaps(jnp.ones(3), scale="ln"), ValueError, "scale"),
        (lambda: spectrum_sweep(law, [-1.0, 1.0]), ValueError, "temperatures"),
        (lambda: spectrum_sweep(law, [0.1], n_states=0), ValueError, "n_states"),
        (lambda: spectrum_sweep(net, [0.1]), ValueError, "data"),
        (lambda: spectrum_sweep(net, [0.1], data=jnp.ones((4, 3))), ValueError, "data"),
        (lambda: spectrum_sweep(law, [1e9], schedule=td.VP()), ValueError, "temperatures"),
        (lambda: freeze_temperatures("sweep"), TypeError, "sweep"),
        (lambda: compare_spectra({}, [0.1], data=law), TypeError, "models"),
        (lambda: LinearManifold([-1.0, 1.0]), ValueError, "variances"),
        (lambda: LinearManifold([1.0, 1.0], basis=jnp.ones((3, 2))), ValueError, "basis"),
        (lambda: LinearManifold([1.0, 1.0], basis=jnp.eye(3)), ValueError, "basis"),
        (lambda: LinearManifold([1.0, 1.0], mean=jnp.ones(3)), ValueError, "mean"),
        (lambda: block_variances([(1.0, 0)]), ValueError, r"blocks\[0\] count"),
        (lambda: block_variances([]), ValueError, "blocks"),
        (lambda: manifold_points(jax.random.key(0), 4, [1.0], sphere=True, radius=-1.0), ValueError, "radius"),
        (lambda: manifold_points(jax.random.key(0), 4, [0.0], sphere=True), ValueError, "variances"),
        (lambda: manifold_points(0, 4, [1.0]), TypeError, "key"),
    ]
    for fn, err, name in cases:
        with pytest.raises(err, match=name):
            fn()


# ============================================================================ trained network
@pytest.mark.slow
def test_trained_network_opens_its_blocks_at_the_exact_temperatures():
    """A residual MLP trained on 4096 points of a two-block law in d = 10 (3 directions of variance 1,
    7 of 0.01; 3000 steps) opens its blocks where the exact law does: measured 0.97 (exact 1.0) and
    0.011 (exact 0.01), block sizes 3 and 7, asymmetry <= 0.03; threshold a factor 2 in T.
    Measured 106 s of training + 7 s of sweeps on the shared 2-core CPU."""
    pop = LinearManifold(block_variances([(1.0, 3), (0.01, 7)]))
    Y = pop.sample(jax.random.key(1), 4096)
    model = td.Preconditioned.for_data(td.ResidualMLP(10, 128, 3, key=jax.random.key(2)), Y)
    res = td.train(model, Y, key=jax.random.key(3), steps=3000, batch_size=256, progress=False)
    sw = compare_spectra({"net": res.model, "population": pop}, np.geomspace(1e-3, 10, 21), data=pop,
                         key=jax.random.key(4), n_states=32)
    net, exact = freeze_temperatures(sw["net"]), freeze_temperatures(sw["population"])
    np.testing.assert_allclose(exact.block_temperatures, [1.0, 0.01], rtol=1e-8)
    assert 0.5 < net.block_temperatures[0] / exact.block_temperatures[0] < 2.0
    assert 0.5 < net.block_temperatures[1] / exact.block_temperatures[1] < 2.0
    np.testing.assert_array_equal(net.block_sizes, [3, 7])
    assert np.all(sw["net"].asymmetry < 0.2)
