"""The uniform hypersphere (theory section 3.4) and its Bessel machinery (thermodiff/_bessel.py)."""

import functools

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from conftest import zscore_ok

from thermodiff._bessel import (
    bessel_ratio,
    bessel_ratio_rho,
    log_hyp0f1_sphere,
    log_hyp0f1_sphere_scaled,
    series_cutoff,
)
from thermodiff._ensembles._base import AbstractEnsemble
from thermodiff._ensembles._hypersphere import Hypersphere

DIMS = (1, 2, 3, 4, 5, 10, 11, 64, 100, 784)
# k from 1e-6 to 1e6 (the reference range) plus the extreme end 1e8, plus exact zero checked separately.
KS = np.concatenate([np.logspace(-6, 6, 37), [3e6, 1e7, 1e8]])
# Measured worst relative errors, float64: A_d 2e-15, log 0F1 3e-15 (rho the same);
# float32 (reference at the float32-rounded k): A_d 9e-7, log 0F1 1.6e-6.
RTOL64 = 2e-14
RTOL32 = 1e-5


@functools.lru_cache(maxsize=None)
def _mp_reference(d, ks):
    """A_d(k) and log 0F1(; d/2; k^2/4) from mpmath at 40 digits."""
    a, l_ = [], []
    with mpmath.workdps(40):
        for k in ks:
            k = mpmath.mpf(k)
            a.append(float(mpmath.besseli(mpmath.mpf(d) / 2, k) / mpmath.besseli(mpmath.mpf(d) / 2 - 1, k)))
            l_.append(float(mpmath.log(mpmath.hyp0f1(mpmath.mpf(d) / 2, k * k / 4))))
    return np.array(a), np.array(l_)


@jax.jit
def _special(k):
    """(A_d, log 0F1, rho_nu, scaled log 0F1) on the k grid for every d in DIMS, in one compile."""
    q = 0.25 * k * k
    return {
        d: (
            bessel_ratio(k, d),
            log_hyp0f1_sphere(q, d),
            bessel_ratio_rho(q, d),
            log_hyp0f1_sphere_scaled(q, d),
        )
        for d in DIMS
    }


def _unit(d, seed):
    v = np.random.default_rng(seed).normal(size=d)
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------ special functions
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_bessel_ratio_and_log_hyp0f1_against_mpmath(dtype):
    k = jnp.asarray(np.concatenate([[0.0], KS]), dtype)
    kk = np.asarray(k, np.float64)
    worst = {}
    special = _special(k)
    for d in DIMS:
        # reference at the k actually represented in this dtype
        a_ref, l_ref = _mp_reference(d, tuple(kk[1:]))
        a, l_, rho, ls = special[d]
        for out in (a, l_, rho, ls):
            assert out.dtype == dtype
        a, l_, rho, ls = (np.asarray(v, np.float64) for v in (a, l_, rho, ls))
        # exact values at k = 0
        assert a[0] == 0.0 and l_[0] == 0.0 and rho[0] == 1.0 and ls[0] == 0.0
        ea = np.abs(a[1:] / a_ref - 1)
        el = np.abs(l_[1:] / l_ref - 1)
        er = np.abs(rho[1:] / (d * a_ref / kk[1:]) - 1)
        # the scaled log log 0F1 - k: error relative to the size of its two terms
        es = np.abs(ls[1:] - (l_ref - kk[1:])) / np.maximum(np.abs(l_ref), kk[1:])
        worst[d] = (ea.max(), el.max(), er.max(), es.max())
    tol = RTOL64 if dtype == jnp.float64 else RTOL32
    for d, errs in worst.items():
        assert max(errs) < tol, (d, errs)


def test_derivatives_at_zero_are_finite_and_exact():
    # (second derivatives at x = 0 are covered by the Hessian of the Landau free energy below)
    dims = (1, 2, 3, 64)

    @jax.jit
    def derivs(q):
        return {
            d: (
                jax.grad(log_hyp0f1_sphere)(q, d),
                jax.grad(bessel_ratio_rho)(q, d),
                jax.grad(bessel_ratio)(q, d),
            )
            for d in dims
        }

    out = derivs(jnp.asarray(0.0))
    for d in dims:
        b = d / 2
        dl, drho, da = out[d]
        # log 0F1(;b;q) = q/b + O(q^2), rho = 1 - q/(b(b+1)) + O(q^2), A = k/d + O(k^3)
        np.testing.assert_allclose(dl, 1 / b, rtol=1e-12)
        np.testing.assert_allclose(drho, -1 / (b * (b + 1)), rtol=1e-12)
        np.testing.assert_allclose(da, 1 / d, rtol=1e-12)


def test_bessel_rejects_bad_dim():
    for bad in (0, -2, 2.5, "3"):
        with pytest.raises(ValueError, match="dim"):
            bessel_ratio(1.0, bad)


# ------------------------------------------------------------------ reference values (theory section 3.4)
@functools.partial(jax.jit, static_argnums=0)
def _fixed_point_radius(d, T, r=1.0):
    """u = A_d(r^2 u / T) by Newton's method on f(u) = u - A_d(r^2 u/T), from u = 1."""
    f = lambda u: u - bessel_ratio(r * r * u / T, d)  # noqa: E731
    newton = lambda _, u: u - f(u) / jax.grad(f)(u)  # noqa: E731
    return jax.lax.fori_loop(0, 30, newton, jnp.asarray(1.0))


@pytest.mark.parametrize("d, T, u_ref", [(10, 0.05, 0.730982), (3, 1 / 6, 0.788887)])
def test_spec_fixed_point_radius(d, T, u_ref):
    u = float(_fixed_point_radius(d, T))
    assert abs(u - u_ref) < 5e-7, u
    # and it is a fixed point of the ensemble's denoiser (any direction)
    h = Hypersphere(1.0, d)
    x = jnp.asarray(u * _unit(d, 3))
    np.testing.assert_allclose(h.denoiser(x, T), x, rtol=1e-12)


def test_critical_temperature_is_r2_over_d():
    for d, r in ((3, 1.0), (10, 1.7)):
        h = Hypersphere(r, d)
        x0 = jnp.zeros(d)
        np.testing.assert_allclose(h.posterior_cov(x0, 0.3), (r * r / d) * np.eye(d), rtol=1e-14)
        np.testing.assert_allclose(h.covariance(), (r * r / d) * np.eye(d), rtol=1e-14)
        # the spectral criterion lambda_max(Cov[y | 0]) = T_c
        assert np.isclose(np.linalg.eigvalsh(np.asarray(h.posterior_cov(x0, 1.0))).max(), r * r / d)


# ------------------------------------------------------------------ d = 1 is two deltas
def test_d1_equals_two_deltas():
    r = 1.3
    h = Hypersphere(r, 1)
    for T in (1e-3, 0.05, 0.7, 1.0, 3.0):
        for x in (-5.0, -1.2, -0.3, 0.0, 1e-9, 0.2, 1.3, 4.0, 40.0):
            xa = jnp.asarray([x])
            t = np.tanh(r * x / T)
            np.testing.assert_allclose(h.denoiser(xa, T), [r * t], rtol=1e-12, atol=1e-300)
            # 1 - t^2 itself cancels for large |x|/T: compare absolutely there
            cov = h.posterior_cov(xa, T)
            np.testing.assert_allclose(cov, [[r * r * (1 - t * t)]], rtol=1e-12, atol=1e-15)
            # log cosh(z) = |z| + log1p(exp(-2|z|)) - log 2, stable for large |z|
            z = abs(r * x / T)
            lam = 0.5 * x * x + 0.5 * r * r - T * (z + np.log1p(np.exp(-2 * z)) - np.log(2))
            np.testing.assert_allclose(h.landau(xa, T), lam, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ Tweedie / autodiff
SLOW = pytest.mark.slow


@pytest.mark.parametrize("d", [1, 2, 3, 10, pytest.param(64, marks=SLOW), pytest.param(784, marks=SLOW)])
def test_closed_forms_match_autodiff_of_landau(d):
    r = 1.3
    h = Hypersphere(r, d)
    u = _unit(d, d)
    eye = jnp.eye(d)
    xs, Ts = [], []
    for T in (0.02, 0.3, 2.0):
        # x = 0, tiny, both sides of the switch of Landau formulas, moderate, far
        k_cut = 2 * np.sqrt(series_cutoff(d))
        for s_ in (0.0, 1e-8, k_cut * T / r * (1 - 1e-9), k_cut * T / r * (1 + 1e-9), 0.4, 1.1, 7.0):
            xs.append(s_ * u)
            Ts.append(T)
    xs, Ts = jnp.asarray(np.array(xs)), jnp.asarray(Ts)

    def quantities(x, T):
        return (
            h.denoiser(x, T),
            h.posterior_cov(x, T),
            jax.grad(h.landau)(x, T),
            jax.hessian(h.landau)(x, T),
            jax.jacfwd(h.denoiser)(x, T),
        )

    m, cov, g, H, J = jax.jit(jax.vmap(quantities))(xs, Ts)
    for v in (m, cov, g, H, J):
        assert np.all(np.isfinite(np.asarray(v)))
    T3 = Ts[:, None, None]
    np.testing.assert_allclose(m, xs - g, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov, T3 * J, rtol=1e-10, atol=1e-12 * r * r)
    np.testing.assert_allclose(cov, T3 * (eye[None] - H), rtol=1e-8, atol=1e-10 * r * r)
    # Landau is continuous across the switch of formulas (pairs 2 and 3 above)
    lam = jax.vmap(h.landau)(xs, Ts)
    np.testing.assert_allclose(lam[2::7], lam[3::7], rtol=1e-8)


def test_landau_log_partition_and_energy_moments_are_consistent():
    for d in (2, 3):
        h = Hypersphere(0.8, d)
        x = jnp.asarray(0.9 * _unit(d, 1))

        @jax.jit
        def quantities(T):
            return (
                h.log_partition(x, T),
                (0.5 * jnp.sum(x * x) - h.landau(x, T)) / T,  # log Z from Phi = |x|^2/2 - T log Z
                h.energy_moments(x, T),
                AbstractEnsemble.energy_moments(h, x, T),  # generic: autodiff of log Z in T
                x @ h.posterior_cov(x, T) @ x,
            )

        for T in (0.01, 0.2, 1.5):
            lz, lz_ref, (u, v), (u_ref, v_ref), v_cov = quantities(T)
            np.testing.assert_allclose(lz, lz_ref, rtol=1e-10)
            np.testing.assert_allclose(u, u_ref, rtol=1e-9)
            np.testing.assert_allclose(v, v_ref, rtol=1e-7)
            np.testing.assert_allclose(v, v_cov, rtol=1e-12)


def test_landau_is_accurate_at_small_temperature():
    # near the sphere at small T, Phi ~ T log(k) while its pieces are O(r^2): against mpmath.
    for d in (3, 10):
        for T in (1e-3, 1e-5):
            # measured: 3e-15 (float64), 1.4e-6 (float32); |x|^2/2 + r^2/2 - T log 0F1 as written
            # would give 8e-14 and 7.5e-5
            for dtype, tol in ((jnp.float64, 1e-13), (jnp.float32, 5e-6)):
                h = Hypersphere(jnp.asarray(1.0, dtype), d)
                x = jnp.asarray(1.05 * _unit(d, 2), dtype)
                with mpmath.workdps(50):
                    xs = [mpmath.mpf(float(v)) for v in np.asarray(x, np.float64)]
                    nx = mpmath.sqrt(sum(v * v for v in xs))
                    q = (nx / (2 * mpmath.mpf(T))) ** 2
                    ref = nx**2 / 2 + mpmath.mpf(1) / 2 - T * mpmath.log(mpmath.hyp0f1(mpmath.mpf(d) / 2, q))
                out = h.landau(x, T)
                assert out.dtype == dtype
                assert abs(float(out) / float(ref) - 1) < tol, (d, T, dtype, float(out), float(ref))


# ------------------------------------------------------------------ Monte Carlo
@pytest.mark.parametrize("d, T, s", [(3, 0.5, 0.7), (10, 0.15, 0.8)])
def test_monte_carlo_posterior_mean_and_covariance(d, T, s, key):
    r = 1.2
    h = Hypersphere(r, d)
    x = jnp.asarray(s * _unit(d, 5))
    n = 200_000
    y = np.asarray(h.sample(key, n))
    logw = y @ np.asarray(x) / T
    w = np.exp(logw - logw.max())
    sw = w.sum()
    # self-normalised importance estimate of E[y | x] with delta-method standard errors
    m_hat = (w[:, None] * y).sum(0) / sw
    se_m = np.sqrt((w[:, None] ** 2 * (y - m_hat) ** 2).sum(0)) / sw
    m = np.asarray(h.denoiser(x, T))
    assert zscore_ok(m_hat, m, se_m), (m_hat, m, se_m)
    # covariance diagonal: E[(y_i - m_i)^2 | x] around the exact mean
    g = (y - m) ** 2
    c_hat = (w[:, None] * g).sum(0) / sw
    se_c = np.sqrt((w[:, None] ** 2 * (g - c_hat) ** 2).sum(0)) / sw
    c = np.diag(np.asarray(h.posterior_cov(x, T)))
    assert zscore_ok(c_hat, c, se_c), (c_hat, c, se_c)


def test_sample_is_uniform_on_the_sphere(key):
    h = Hypersphere(2.5, 4)
    y = h.sample(key, 50_000)
    assert y.shape == (50_000, 4)
    np.testing.assert_allclose(jnp.linalg.norm(y, axis=1), 2.5, rtol=1e-13)
    se = 2.5 / np.sqrt(4 * 50_000)
    assert zscore_ok(y.mean(0), h.mean(), se)
    np.testing.assert_allclose(np.cov(np.asarray(y).T), h.covariance(), atol=0.05)
    assert h.sample(key, 3).dtype == jnp.float64
    assert Hypersphere(jnp.float32(1.0), 3).sample(key, 3).dtype == jnp.float32


# ------------------------------------------------------------------ symmetry
@pytest.mark.parametrize("d", [2, 3, 10])
def test_odd_symmetry_and_rotation_equivariance(d):
    h = Hypersphere(1.1, d)
    x = jnp.asarray(0.6 * _unit(d, 7))
    Q, _ = np.linalg.qr(np.random.default_rng(d).normal(size=(d, d)))
    Q = jnp.asarray(Q)
    for T in (0.05, 0.4):
        m = h.denoiser(x, T)
        np.testing.assert_allclose(h.denoiser(-x, T), -m, rtol=1e-13)
        np.testing.assert_allclose(h.denoiser(Q @ x, T), Q @ m, rtol=1e-11, atol=1e-14)
        C = h.posterior_cov(x, T)
        np.testing.assert_allclose(h.posterior_cov(Q @ x, T), Q @ C @ Q.T, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(h.landau(Q @ x, T), h.landau(x, T), rtol=1e-13)


# ------------------------------------------------------------------ float32
METHODS = ("denoiser", "posterior_cov", "landau", "log_partition", "score", "energy_moments")


@pytest.mark.parametrize("d", [1, 2, 3, 10, 64])
def test_float32_extremes(d):
    u = _unit(d, 11)
    grid = ((1e-4, 0.0), (1e-4, 1e-3), (1e-4, 1.0), (1e-4, 1e3), (1.0, 1e3), (1.0, 0.5))
    xs = np.array([s_ * u for _, s_ in grid])
    Ts = np.array([T for T, _ in grid])

    def everything(radius, x, T):
        h = Hypersphere(radius, d)
        outs = tuple(getattr(h, m)(x, T) for m in METHODS)
        return outs + (jax.grad(h.landau)(x, T),)

    run = jax.jit(jax.vmap(everything, in_axes=(None, 0, 0)))
    out32 = run(jnp.float32(1.0), jnp.asarray(xs, jnp.float32), jnp.asarray(Ts, jnp.float32))
    for o in jax.tree.leaves(out32):
        assert o.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(o)))
    # the float32 denoiser tracks float64 (accuracy itself is tested against mpmath above)
    h64 = Hypersphere(1.0, d)
    for i in (2, 3, 4):
        x64 = jnp.asarray(np.asarray(xs[i], np.float32), jnp.float64)
        np.testing.assert_allclose(out32[0][i], h64.denoiser(x64, Ts[i]), rtol=1e-5, atol=1e-6)
    if d != 10:
        return
    # eager float32 calls (validation path) stay float32 too
    h = Hypersphere(jnp.float32(1.0), d)
    x = jnp.asarray(xs[3], jnp.float32)
    for m in METHODS:
        for o in jax.tree.leaves(getattr(h, m)(x, 1e-4)):
            assert o.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(o)))


# ------------------------------------------------------------------ jit / vmap / grad in radius
def test_jit_and_vmap_equal_plain_calls():
    d = 5
    x = jnp.asarray(0.7 * _unit(d, 13))
    Ts = jnp.asarray([0.03, 0.2, 1.0, 4.0])
    rs = jnp.asarray([0.5, 1.0, 1.5, 3.0])

    def f(radius, x_, T_):
        h = Hypersphere(radius, d)
        return tuple(getattr(h, m)(x_, T_) for m in METHODS) + (h.log_density(x_, T_),)

    def close(a, b):
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-15)

    stack = lambda outs: jax.tree.map(lambda *v: jnp.stack(v), *outs)  # noqa: E731
    plain_T = stack([f(1.2, x, float(T)) for T in Ts])
    plain_r = stack([f(float(r), x, 0.3) for r in rs])
    close(jax.jit(jax.vmap(f, in_axes=(None, None, 0)))(1.2, x, Ts), plain_T)
    # over the radius: the module is built inside the vmapped function
    close(jax.jit(jax.vmap(f, in_axes=(0, None, None)))(rs, x, 0.3), plain_r)
    # the module itself is a pytree argument (radius a leaf, dim static)
    h = Hypersphere(1.2, d)
    g = jax.jit(lambda ens, x_, T_: ens.posterior_cov(x_, T_))
    np.testing.assert_allclose(g(h, x, 0.2), plain_T[1][1], rtol=1e-13)


def test_differentiable_in_radius():
    d, x, T = 4, jnp.asarray([0.3, -0.2, 0.5, 0.1]), 0.25
    f = lambda r: Hypersphere(r, d).log_partition(x, T)  # noqa: E731
    r, eps = 1.1, 1e-6
    fd = (f(r + eps) - f(r - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.grad(f)(r), fd, rtol=1e-7)
    # y = r u: log Z = -r^2/(2T) + log E_u exp(r x.u/T), so d log Z/dr = -r/T + x.m/(r T)
    m = Hypersphere(r, d).denoiser(x, T)
    np.testing.assert_allclose(jax.grad(f)(r), -r / T + jnp.dot(x, m) / (r * T), rtol=1e-10)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("radius", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_radius(radius):
    with pytest.raises(ValueError, match="radius"):
        Hypersphere(radius, 3)


@pytest.mark.parametrize("dim", [0, -1, 2.5, "3", None, True])
def test_bad_dim(dim):
    with pytest.raises(ValueError, match="dim"):
        Hypersphere(1.0, dim)


def test_bad_state_temperature_and_sample_size(key):
    h = Hypersphere(1.0, 3)
    with pytest.raises(ValueError, match="radius"):
        Hypersphere([1.0, 2.0], 3)
    with pytest.raises(ValueError, match=r"x must have shape \(3,\)"):
        h.denoiser(jnp.zeros(4), 1.0)
    with pytest.raises(ValueError, match=r"x must be finite"):
        h.landau(jnp.asarray([0.0, jnp.nan, 1.0]), 1.0)
    for T in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"T \(temperature = VE-equivalent noise variance\) must be finite and > 0"):
            h.posterior_cov(jnp.zeros(3), T)
    with pytest.raises(ValueError, match=r"n must be an integer in \[0, "):
        h.sample(key, -1)
    assert h.sample(key, 0).shape == (0, 3)
