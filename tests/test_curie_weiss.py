"""Diffused Ising / Curie-Weiss data (theory section 3.5): exact finite-N posterior statistics."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln
from scipy.special import logsumexp as np_logsumexp

from thermodiff._ensembles._curie_weiss import CurieWeiss

from conftest import zscore_ok


# --------------------------------------------------------------------------- references
def brute_force(N, T_d, J, x, T):
    """Direct sums over all 2^N configurations: log Z, Phi, m, Cov, <E>, Var[E]."""
    ys = np.array(list(itertools.product([-1.0, 1.0], repeat=N)))
    S = ys.sum(axis=1)
    logphi = J * S**2 / (2 * N * T_d)
    logphi = logphi - np_logsumexp(logphi)
    logw = logphi + (ys @ x - N / 2) / T
    logZ = np_logsumexp(logw)
    p = np.exp(logw - logZ)
    m = p @ ys
    C = (ys * p[:, None]).T @ ys - np.outer(m, m)
    E = N / 2 - ys @ x
    U = p @ E
    return dict(
        log_partition=logZ,
        landau=x @ x / 2 - T * logZ,
        denoiser=m,
        posterior_cov=C,
        energy_mean=U,
        energy_var=p @ (E - U) ** 2,
        data_cov=(ys * np.exp(logphi)[:, None]).T @ ys,
    )


def sector_sums(N, T_d, J, fields, counts, T):
    """Exact log Z and per-group magnetizations for a field taking values fields[g] on counts[g]
    sites, by summing over the up-spin numbers of each group (independent of the HS grid)."""
    a = J / (N * T_d)
    grids = np.meshgrid(*[np.arange(c + 1) for c in counts], indexing="ij")
    logw_field = np.zeros(grids[0].shape)
    S = np.zeros(grids[0].shape)
    for k, c, h in zip(grids, counts, fields):
        s = 2 * k - c
        S = S + s
        logw_field += gammaln(c + 1) - gammaln(k + 1) - gammaln(c - k + 1) + h * s
    logw = logw_field + a * S**2 / 2
    log0 = np_logsumexp(
        gammaln(N + 1) - gammaln(np.arange(N + 1) + 1) - gammaln(N - np.arange(N + 1) + 1)
        + a * (2 * np.arange(N + 1) - N) ** 2 / 2
    )
    logZ = np_logsumexp(logw) - log0 - N / (2 * T)
    p = np.exp(logw - np_logsumexp(logw))
    mags = [np.sum(p * (2 * k - c)) / c for k, c in zip(grids, counts)]
    return logZ, mags


@eqx.filter_jit
def all_outputs(cw, xs, Ts, cov=True):
    """Every posterior statistic for a batch of (x, T), in one compiled call."""

    def one(x, T):
        U, V = cw.energy_moments(x, T)
        out = dict(
            log_partition=cw.log_partition(x, T),
            landau=cw.landau(x, T),
            denoiser=cw.denoiser(x, T),
            energy_mean=U,
            energy_var=V,
        )
        if cov:
            out["posterior_cov"] = cw.posterior_cov(x, T)
        return out

    return jax.vmap(one)(xs, Ts)


# --------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("N", [1, 2, 3, 6, 10])
def test_brute_force_enumeration(N):
    rng = np.random.default_rng(N)
    Ts = np.array([0.1, 0.4, 1.0, 3.0])
    for T_d, J in [(0.3, 1.0), (1.0, 1.0), (2.5, 1.0), (0.8, 2.0), (5.0, 0.5)]:
        n_nodes = CurieWeiss.required_nodes(N, 0.15)  # same static grid size: one compile per N
        cw = CurieWeiss(N, T_d, J, n_nodes=n_nodes)
        xs = rng.normal(size=(len(Ts), N)) * rng.choice([0.1, 1.0, 2.5], size=(len(Ts), 1))
        got = all_outputs(cw, jnp.asarray(xs), jnp.asarray(Ts))
        for i, T in enumerate(Ts):
            ref = brute_force(N, T_d, J, xs[i], T)
            for name, g in got.items():
                np.testing.assert_allclose(
                    g[i], ref[name], rtol=1e-10, atol=1e-10, err_msg=f"{name} T_d={T_d} J={J} T={T}"
                )
        np.testing.assert_allclose(cw.covariance(), ref["data_cov"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(cw.mean(), np.zeros(N), atol=0)


def test_default_grid_matches_brute_force():
    rng = np.random.default_rng(1)
    for N, T_d in [(4, 0.5), (9, 3.0)]:
        cw = CurieWeiss(N, T_d)
        assert cw.n_nodes == CurieWeiss.required_nodes(N, T_d)
        xs, Ts = rng.normal(size=(2, N)), np.array([0.3, 1.7])
        got = all_outputs(cw, xs, Ts)
        for i in range(2):
            ref = brute_force(N, T_d, 1.0, xs[i], Ts[i])
            for name, g in got.items():
                np.testing.assert_allclose(g[i], ref[name], rtol=1e-10, atol=1e-10, err_msg=name)


def test_single_spin_is_two_deltas():
    cw = CurieWeiss(1, 0.7, 1.3)
    xv = np.array([0.3, -2.0, 0.0, 40.0])
    Ts = np.array([0.5, 1.7, 1.0, 0.01])
    got = all_outputs(cw, xv[:, None], Ts)
    u = xv / Ts
    np.testing.assert_allclose(got["denoiser"][:, 0], np.tanh(u), rtol=1e-12, atol=1e-14)
    log_cosh = np.abs(u) + np.log1p(np.exp(-2 * np.abs(u))) - np.log(2)
    np.testing.assert_allclose(
        got["landau"], xv**2 / 2 - Ts * log_cosh + 0.5, rtol=1e-12, atol=1e-13
    )
    np.testing.assert_allclose(
        got["posterior_cov"][:, 0, 0], 1 - np.tanh(u) ** 2, rtol=1e-10, atol=1e-14
    )
    np.testing.assert_allclose(cw.covariance(), [[1.0]])
    np.testing.assert_allclose(cw.magnetization_moments(), (1.0, 1.0), rtol=1e-14)


# --------------------------------------------------------------------------- large N
@eqx.filter_jit
def sector_check_outputs(cw, xs, T):
    return jax.vmap(lambda x: (cw.log_partition(x, T), cw.denoiser(x, T)))(xs)


@pytest.mark.parametrize("T_d", [2.0, 1.0, 0.5])
def test_large_n_exact_and_converged(T_d):
    """N = 2000: uniform and two-valued fields against exact sector sums, and a twice finer grid
    changes nothing (T_d = J is the critical quartic case, T_d = J/2 ordered and bimodal)."""
    N, T = 2000, 0.8
    cw = CurieWeiss(N, T_d)
    fine = CurieWeiss(N, T_d, n_nodes=2 * (cw.n_nodes - 1) + 1)
    # Two-valued field: exact double sector sum, independent of the Hubbard-Stratonovich grid.
    hs = [(0.0, 0.0), (0.01, -0.03), (0.2, 0.05), (-1.0, 3.0)]
    xs = np.stack([np.repeat([h1 * T, h2 * T], N // 2) for h1, h2 in hs])
    logZs, ms = sector_check_outputs(cw, xs, T)
    for i, (h1, h2) in enumerate(hs):
        logZ, (m1, m2) = sector_sums(N, T_d, 1.0, [h1, h2], [N // 2, N // 2], T)
        np.testing.assert_allclose(logZs[i], logZ, rtol=1e-11, atol=1e-10)
        np.testing.assert_allclose(ms[i, 0], m1, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ms[i, -1], m2, rtol=1e-10, atol=1e-12)
    # Random fields (zero, weak, strong): doubling the grid changes nothing.
    rng = np.random.default_rng(2)
    xs = np.array([0.0, 0.05, 1.0])[:, None] * rng.normal(size=(3, N))
    Ts = np.full(3, T)
    coarse_out, fine_out = all_outputs(cw, xs, Ts, cov=False), all_outputs(fine, xs, Ts, cov=False)
    for name in coarse_out:
        np.testing.assert_allclose(
            coarse_out[name], fine_out[name], rtol=1e-10, atol=1e-12, err_msg=name
        )
    if T_d != 1.0:
        return
    x = xs[1]
    C, Cf = cw.posterior_cov(x, T), fine.posterior_cov(x, T)
    np.testing.assert_allclose(C, Cf, rtol=1e-10, atol=1e-13)
    # the diagonal is 1 - m^2 exactly (y_i^2 = 1)
    m = coarse_out["denoiser"][1]
    np.testing.assert_allclose(jnp.diag(C), 1 - m**2, rtol=1e-12, atol=1e-13)


def test_spec_critical_temperatures():
    """lambda_max(C_data) = N E[M^2] = 1 + (N - 1) c (theory 3.5) and its mean-field limit."""
    for T_d, spec in [(2.0, 1.9980), (4.0, 1.3330)]:
        cw = CurieWeiss(2000, T_d)
        m2, _ = cw.magnetization_moments()
        assert round(float(2000 * m2), 4) == spec
        C = cw.covariance()
        lam_max = 1 + 1999 * C[0, 1]
        np.testing.assert_allclose(lam_max, 2000 * m2, rtol=1e-12)
        Tc_mf = float(cw.mean_field_critical_temperature())
        assert abs(lam_max / Tc_mf - 1) < 1e-3
        # finite-size error shrinks like 1/N
        errs = [
            abs(N * CurieWeiss(N, T_d).magnetization_moments()[0] - Tc_mf) for N in [20, 200, 2000]
        ]
        assert errs[0] > errs[1] > errs[2]
        np.testing.assert_allclose(errs[1] / errs[2], 10.0, rtol=0.05)
    # top eigenvalue of the exact matrix (small N)
    cw = CurieWeiss(30, 1.5)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(np.asarray(cw.covariance()))[-1],
        30 * cw.magnetization_moments()[0],
        rtol=1e-12,
    )
    assert CurieWeiss(10, 0.9).mean_field_critical_temperature() == np.inf
    # ordered data: T_c grows like N
    assert 2000 * CurieWeiss(2000, 0.5).magnetization_moments()[0] > 1500


def test_finite_size_bath_values():
    """theory section 7: finite-M Curie-Weiss at T = J = 1 (the generative bath)."""
    for M, m2_spec, U_spec in [(100, 1.1448, 0.3056), (10_000, 1.1681, 0.2739)]:
        m2, m4 = CurieWeiss(M, 1.0).magnetization_moments()
        assert round(float(m2 * np.sqrt(M)), 4) == m2_spec
        assert round(float(1 - m4 / (3 * m2**2)), 4) == U_spec


def test_sample_moments(key):
    for N, T_d, n in [(10, 1.2, 20_000), (2000, 0.8, 1_000)]:
        cw = CurieWeiss(N, T_d)
        ys = np.asarray(cw.sample(jax.random.fold_in(key, N), n))
        assert ys.shape == (n, N)
        assert set(np.unique(ys)) <= {-1.0, 1.0}
        M2 = ys.mean(axis=1) ** 2
        m2, _ = cw.magnetization_moments()
        assert zscore_ok(M2.mean(), m2, M2.std() / np.sqrt(n))
        if N == 10:
            prods = ys[:, :, None] * ys[:, None, :]
            assert zscore_ok(
                prods.mean(0), cw.covariance(), prods.std(0) / np.sqrt(n), floor=1e-12
            )
            assert zscore_ok(ys.mean(0), cw.mean(), ys.std(0) / np.sqrt(n))


# --------------------------------------------------------------------------- identities
@eqx.filter_jit
def fdt_outputs(cw, x, T):
    U, V = cw.energy_moments(x, T)
    Ug, Vg = super(CurieWeiss, cw).energy_moments(x, T)  # generic autodiff formula
    return dict(
        m=cw.denoiser(x, T),
        m_autodiff=x - jax.grad(cw.landau)(x, T),
        cov=cw.posterior_cov(x, T),
        cov_jac=T * jax.jacfwd(cw.denoiser)(x, T),
        cov_hess=T * (jnp.eye(x.shape[0]) - jax.hessian(cw.landau)(x, T)),
        score=cw.score(x, T),
        score_autodiff=jax.grad(cw.log_density)(x, T),
        energy=jnp.stack([U, V]),
        energy_autodiff=jnp.stack([Ug, Vg]),
    )


def test_fluctuation_dissipation():
    N, T = 20, 0.9
    rng = np.random.default_rng(3)
    n_nodes = CurieWeiss.required_nodes(N, 0.6, 1.1)
    for T_d in [0.7, 1.0, 1.6]:
        cw = CurieWeiss(N, T_d, 1.1, n_nodes=n_nodes)
        x = 0.5 * rng.normal(size=N)
        x[::4] = 0.0  # exact zeros: the |x_i| shift inside landau has a kink there
        o = fdt_outputs(cw, x, T)
        np.testing.assert_allclose(o["m"], o["m_autodiff"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(o["cov"], o["cov_jac"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(o["cov"], o["cov_hess"], rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(o["score"], o["score_autodiff"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(o["energy"], o["energy_autodiff"], rtol=1e-9)
        np.testing.assert_allclose(o["energy"][1], x @ o["cov"] @ x, rtol=1e-10)  # x^T C x


def test_symmetries():
    N, T = 12, 0.6
    cw = CurieWeiss(N, 0.9)
    rng = np.random.default_rng(4)
    x = rng.normal(size=N)
    perm = rng.permutation(N)
    xs = np.stack([x, -x, x[perm], np.zeros(N)])
    o = all_outputs(cw, xs, np.full(4, T))
    m, C, phi = o["denoiser"], o["posterior_cov"], o["landau"]
    np.testing.assert_allclose(m[1], -m[0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(phi[1], phi[0], rtol=1e-13)
    np.testing.assert_allclose(C[1], C[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(m[2], m[0][perm], rtol=1e-13)
    np.testing.assert_allclose(C[2], C[0][perm][:, perm], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(phi[2], phi[0], rtol=1e-13)
    np.testing.assert_allclose(m[3], np.zeros(N), atol=1e-15)


@eqx.filter_jit
def float32_outputs(cw, xs, Ts):
    def one(x, T):
        U, V = cw.energy_moments(x, T)
        return [
            cw.landau(x, T),
            cw.log_partition(x, T),
            cw.denoiser(x, T),
            cw.posterior_cov(x, T),
            U,
            V,
            cw.score(x, T),
            jax.grad(cw.landau)(x, T),
        ]

    return jax.vmap(one)(xs, Ts)


def test_float32_extremes():
    N = 50
    cw = CurieWeiss(N, np.float32(0.8))  # the default (Python-scalar) coupling follows T_d
    assert cw.coupling.dtype == jnp.float32
    rng = np.random.default_rng(5)
    base = [
        1e3 * np.sign(rng.normal(size=N)),
        1e3 * rng.normal(size=N),
        np.concatenate([np.zeros(N // 2), 1e3 * np.ones(N - N // 2)]),
        rng.normal(size=N),
    ]
    Tgrid = [1e-4, 1.0, 1e4]
    xs = np.array([b for b in base for _ in Tgrid], dtype=np.float32)
    Ts = np.array([t for _ in base for t in Tgrid], dtype=np.float32)
    outs = float32_outputs(cw, xs, Ts)
    for o in outs:
        assert o.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(o)))
    # the denoiser saturates at sign(x) for tiny T
    m = np.asarray(outs[2])
    for i in range(0, 9, 3):
        nz = xs[i] != 0
        np.testing.assert_allclose(m[i][nz], np.sign(xs[i][nz]), atol=1e-6)
    # float32 agrees with float64 at moderate values
    cw64 = CurieWeiss(N, 0.8)
    x64 = base[-1]
    np.testing.assert_allclose(m[-2], cw64.denoiser(x64, 1.0), atol=2e-5)
    np.testing.assert_allclose(outs[0][-2], cw64.landau(x64, 1.0), rtol=2e-5)
    assert cw.sample(jax.random.key(0), 3).dtype == jnp.float32
    assert cw.covariance().dtype == jnp.float32


# --------------------------------------------------------------------------- transformations
def test_jit_vmap_over_T_and_data_temperature():
    N, T = 16, 0.7
    rng = np.random.default_rng(6)
    x = jnp.asarray(rng.normal(size=N))
    Tds = [0.4, 1.0, 2.5]
    n_nodes = CurieWeiss.required_nodes(N, min(Tds))
    plain_modules = [CurieWeiss(N, T_d, n_nodes=n_nodes) for T_d in Tds]

    # vmap over T: batched == plain calls
    cw = plain_modules[0]
    Ts = jnp.array([0.2, 0.7, 1.5])
    batched = jax.jit(jax.vmap(cw.denoiser, in_axes=(None, 0)))(x, Ts)
    for i, t in enumerate(Ts):
        np.testing.assert_allclose(batched[i], cw.denoiser(x, t), rtol=1e-12, atol=1e-15)

    # vmap over T_d with the module built inside the vmapped function
    @jax.jit
    @jax.vmap
    def over_Td(T_d):
        cw = CurieWeiss(N, T_d, n_nodes=n_nodes)
        return cw.landau(x, T), cw.denoiser(x, T), cw.magnetization_moments()[0]

    phis, ms, m2s = over_Td(jnp.asarray(Tds))
    for i, plain in enumerate(plain_modules):
        np.testing.assert_allclose(phis[i], plain.landau(x, T), rtol=1e-12)
        np.testing.assert_allclose(ms[i], plain.denoiser(x, T), rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(m2s[i], plain.magnetization_moments()[0], rtol=1e-12)

    # the default grid under tracing covers J/T_d <= 10 and refuses colder data at run time
    f = jax.jit(lambda T_d: CurieWeiss(N, T_d).denoiser(x, T))
    np.testing.assert_allclose(f(0.4), plain_modules[0].denoiser(x, T), rtol=1e-11, atol=1e-14)
    with pytest.raises(Exception, match="quadrature grid too coarse"):
        jax.block_until_ready(f(0.01))


def test_parameter_gradients():
    N, T = 8, 0.8
    rng = np.random.default_rng(7)
    x = rng.normal(size=N)
    n_nodes = CurieWeiss.required_nodes(N, 0.5, 1.5)

    def phi(T_d, J):
        return CurieWeiss(N, T_d, J, n_nodes=n_nodes).landau(x, T)

    def m2(T_d, J):
        return CurieWeiss(N, T_d, J, n_nodes=n_nodes).magnetization_moments()[0]

    eps = 1e-5
    for f in (phi, m2):
        grad = jax.jit(jax.grad(f, argnums=(0, 1)))
        fj = jax.jit(f)
        for T_d, J in [(0.9, 1.0), (2.0, 1.5), (1.0, 1.0)]:
            g = grad(T_d, J)
            assert np.all(np.isfinite(g))
            fd_Td = (fj(T_d + eps, J) - fj(T_d - eps, J)) / (2 * eps)
            fd_J = (fj(T_d, J + eps) - fj(T_d, J - eps)) / (2 * eps)
            np.testing.assert_allclose(g, (fd_Td, fd_J), rtol=1e-6, atol=1e-9)
    # gradient through a module built outside the transformation (eqx.filter_grad)
    cw = CurieWeiss(N, 1.3, n_nodes=n_nodes)
    g = eqx.filter_jit(eqx.filter_grad(lambda m: m.log_partition(x, T)))(cw)
    lp = jax.jit(lambda T_d: CurieWeiss(N, T_d, n_nodes=n_nodes).log_partition(x, T))
    fd = (lp(1.3 + eps) - lp(1.3 - eps)) / (2 * eps)
    np.testing.assert_allclose(g.data_temperature, fd, rtol=1e-6)


def test_posterior_cov_is_differentiable():
    """Derivatives of Cov[y | x] (susceptibilities, exponents) are finite and correct, also for
    a strongly ordered posterior where most quadrature weights underflow to zero."""
    N, T = 200, 0.5
    rng = np.random.default_rng(8)
    x = 1.0 + 0.3 * rng.normal(size=N)  # strong field: at T_d = 0.3 many weights are exactly 0
    n_nodes = CurieWeiss.required_nodes(N, 0.3)

    def top(T_d, x):
        C = CurieWeiss(N, T_d, n_nodes=n_nodes).posterior_cov(x, T)
        return jnp.sum(C * C)

    grad = jax.jit(jax.grad(top, argnums=(0, 1)))
    fj = jax.jit(top)
    eps = 1e-5
    for T_d in [0.3, 1.5]:
        g_Td, g_x = grad(T_d, x)
        assert np.isfinite(g_Td) and np.all(np.isfinite(g_x))
        fd = (fj(T_d + eps, x) - fj(T_d - eps, x)) / (2 * eps)
        np.testing.assert_allclose(g_Td, fd, rtol=1e-6)
        e = np.zeros(N)
        e[3] = eps
        np.testing.assert_allclose(g_x[3], (fj(T_d, x + e) - fj(T_d, x - e)) / (2 * eps), rtol=1e-6)


# --------------------------------------------------------------------------- bad input
def test_bad_input():
    for bad in [0, -3, 2.0, 2.5, "4", True, None]:
        with pytest.raises(ValueError, match="n_spins"):
            CurieWeiss(bad, 1.0)
    for bad in [0.0, -1.0, np.inf, np.nan]:
        with pytest.raises(ValueError, match="data_temperature"):
            CurieWeiss(4, bad)
        with pytest.raises(ValueError, match="coupling"):
            CurieWeiss(4, 1.0, bad)
    with pytest.raises(ValueError, match="data_temperature"):
        CurieWeiss(4, [1.0, 2.0])
    with pytest.raises(ValueError, match="n_nodes"):
        CurieWeiss(4, 1.0, n_nodes=2)
    with pytest.raises(ValueError, match="n_nodes"):
        CurieWeiss(4, 0.01, n_nodes=11)
    cw = CurieWeiss(4, 1.0)
    with pytest.raises(ValueError, match=r"x must have shape \(4,\)"):
        cw.denoiser(jnp.zeros(3), 1.0)
    with pytest.raises(ValueError, match=r"T \(temperature = VE-equivalent noise variance\) must be finite and > 0"):
        cw.denoiser(jnp.zeros(4), 0.0)
    with pytest.raises(ValueError, match="T must be a scalar temperature"):
        cw.landau(jnp.zeros(4), jnp.ones(2))
    with pytest.raises(ValueError, match=r"x must be finite \(no NaN or inf\)"):
        cw.landau(jnp.array([0.0, np.nan, 0.0, 0.0]), 1.0)
