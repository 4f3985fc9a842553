"""Associative memory and random-energy condensation (theory sections 8 and 9).

Checks: the closed forms of the collapse temperature (theory examples) and of the REM entropy; the
Hopfield update equals the denoiser to rounding error (float64 and float32, several T, streamed
and dense); the Hopfield energy is Phi_T - T log N and its autodiff gradient is x - update; the
streamed posterior entropy / participation ratio / max weight against dense formulas (also
leave-one-out); Monte Carlo of the posterior entropy against the annealed REM above T_C and
condensation below; the excess-entropy zero crossing against T_C; stored vs spurious memories;
the measured capacity transition against N_c = (1 + s^2/T)^{d/2}; jit/vmap invariance; bad input.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from conftest import zscore_ok
from thermodiff._ensembles._finite import FiniteDataset
from thermodiff._condensation import (
    collapse_temperature,
    collapse_temperature_from_data,
    excess_entropy,
    posterior_condensation,
    rem_entropy,
)
from thermodiff._hopfield import (
    hopfield_capacity,
    hopfield_capacity_prediction,
    hopfield_energy,
    hopfield_fixed_points,
    hopfield_update,
)
from thermodiff._schedules import OU, VE, VP


def _dense_weights(Y, x, T, logw=None):
    Y, x = np.asarray(Y, np.float64), np.asarray(x, np.float64)
    lg = (Y @ x - 0.5 * np.sum(Y * Y, axis=1)) / T
    if logw is not None:
        lg = lg + logw
    lg = lg - lg.max()
    w = np.exp(lg)
    return w / w.sum()


# ============================================================================ closed forms
def test_collapse_temperature_spec_examples():
    # theory section 9: d = 64, N = 20000, s = 1 gives T_C = 2.7569; d = 256: OU t_C = 1.2988.
    # Reference values from mpmath (30 digits): s^2/expm1(2 log N/d), log(1 + T_C)/2.
    assert float(collapse_temperature(20000, 64)) == pytest.approx(2.7569342125588504, rel=1e-13)
    assert float(collapse_temperature(20000, 256)) == pytest.approx(12.431186767207891, rel=1e-13)
    assert float(collapse_temperature(20000, 256, schedule=OU())) == pytest.approx(1.2987896867558651, rel=1e-13)
    assert round(float(collapse_temperature(20000, 64)), 4) == 2.7569
    assert round(float(collapse_temperature(20000, 256, schedule=OU())), 4) == 1.2988
    # the variance scales T_C; a Brownian VE schedule has t = T; VP inverts its own T(t)
    assert float(collapse_temperature(20000, 64, variance=2.5)) == pytest.approx(2.5 * 2.7569342125588504, rel=1e-13)
    assert float(collapse_temperature(1000, 16, schedule=VE())) == pytest.approx(float(collapse_temperature(1000, 16)))
    vp = VP()
    t = collapse_temperature(1000, 16, schedule=vp)
    assert float(vp.temperature(t)) == pytest.approx(float(collapse_temperature(1000, 16)), rel=1e-10)
    # vmappable over N, and N_c(T) inverts T_C(N)
    Ns = jnp.asarray([100.0, 1000.0, 20000.0])
    tc = jax.vmap(lambda n: collapse_temperature(n, 32))(Ns)
    np.testing.assert_allclose(tc, [float(collapse_temperature(float(n), 32)) for n in Ns], rtol=1e-14)
    np.testing.assert_allclose(hopfield_capacity_prediction(32, tc), Ns, rtol=1e-10)
    assert float(hopfield_capacity_prediction(8, 1.0)) == pytest.approx(16.0, rel=1e-14)  # 2^(8/2)


def test_rem_entropy_closed_form():
    N, d = 4096, 16
    tc = float(collapse_temperature(N, d))
    assert float(rem_entropy(N, d, tc)) == pytest.approx(0.0, abs=1e-11)  # vanishes at T_C
    for T in (2 * tc, 5.0):
        assert float(rem_entropy(N, d, T)) == pytest.approx(math.log(N) - 0.5 * d * math.log1p(1 / T), rel=1e-13)
    assert float(rem_entropy(N, d, 0.5 * tc)) == 0.0  # frozen below T_C (leading order)
    assert float(rem_entropy(N, d, 1e8)) == pytest.approx(math.log(N), abs=1e-6)  # T -> inf: uniform


# ============================================================================ Hopfield = denoiser
_batched_update = jax.jit(jax.vmap(hopfield_update, in_axes=(None, 0, None)))
_batched_denoiser = jax.jit(jax.vmap(lambda ds, x, T: ds.denoiser(x, T), in_axes=(None, 0, None)))


@pytest.mark.parametrize("dtype, chunk_size", [(np.float64, 37), (np.float32, 37), (np.float64, 4096)])
def test_hopfield_update_is_the_denoiser(dtype, chunk_size):
    rng = np.random.default_rng(1)
    Y = rng.normal(size=(200, 6)).astype(dtype)
    ds = FiniteDataset(jnp.asarray(Y), chunk_size=chunk_size)
    xs = jnp.asarray(np.concatenate([Y[:3] + 0.05 * rng.normal(size=(3, 6)), rng.normal(size=(3, 6))]).astype(dtype))
    eps = float(np.finfo(dtype).eps)
    for T in (10.0, 1.0, 0.1, 1e-2, 1e-3):
        T = jnp.asarray(T, dtype)
        u = _batched_update(ds, xs, T)
        m = _batched_denoiser(ds, xs, T)
        assert u.dtype == dtype
        # same softmax, different code: agreement to rounding (scale |y| ~ 3)
        np.testing.assert_allclose(u, m, rtol=0, atol=64 * eps * 3)
        ref = np.stack([_dense_weights(Y, x, float(T)) @ Y.astype(np.float64) for x in np.asarray(xs)])
        tol = 1e-12 if dtype == np.float64 else 1e-4 * (1 + 1 / float(T)) * 3
        np.testing.assert_allclose(u, ref, rtol=0, atol=tol)
    # an array of patterns is the uniform FiniteDataset
    np.testing.assert_array_equal(
        hopfield_update(jnp.asarray(Y), xs[0], 0.5), hopfield_update(FiniteDataset(Y), xs[0], 0.5)
    )


def test_hopfield_update_weighted_and_jit_vmap_invariance():
    rng = np.random.default_rng(2)
    Y = rng.normal(size=(50, 3))
    w = rng.uniform(0.1, 2.0, size=50)
    ds = FiniteDataset(Y, weights=w, chunk_size=16)
    x = jnp.asarray(rng.normal(size=3))
    T = 0.7
    ref = _dense_weights(Y, x, T, np.log(w / w.sum())) @ Y
    np.testing.assert_allclose(hopfield_update(ds, x, T), ref, atol=1e-13)
    np.testing.assert_allclose(hopfield_update(ds, x, T), ds.denoiser(x, T), atol=1e-14)
    # vmap over x and T, jit: identical to the loop
    Ts = jnp.asarray([0.2, 0.7, 3.0])
    X = jnp.asarray(rng.normal(size=(3, 3)))
    batched = jax.jit(jax.vmap(lambda x, T: hopfield_update(ds, x, T)))(X, Ts)
    for i in range(3):
        np.testing.assert_allclose(batched[i], hopfield_update(ds, X[i], float(Ts[i])), atol=1e-14)


def test_hopfield_energy_is_landau_and_gradient_is_update():
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(120, 4))
    ds = FiniteDataset(Y)
    for T in (3.0, 0.5, 0.05):
        for x in (jnp.asarray(rng.normal(size=4)), jnp.asarray(Y[7] + 0.01)):
            E = hopfield_energy(ds, x, T)
            assert float(E) == pytest.approx(float(ds.landau(x, T)) - T * math.log(120), abs=1e-11)
            # E = |x|^2/2 - T logsumexp_n((x.y_n - |y_n|^2/2)/T): the plain Hopfield form
            lg = (Y @ np.asarray(x) - 0.5 * np.sum(Y * Y, 1)) / T
            plain = 0.5 * float(x @ x) - T * (lg.max() + np.log(np.sum(np.exp(lg - lg.max()))))
            assert float(E) == pytest.approx(plain, abs=1e-11)
            g = jax.grad(hopfield_energy, argnums=1)(ds, x, T)
            np.testing.assert_allclose(g, x - hopfield_update(ds, x, T), atol=1e-12)
    # float32, small T, x near a pattern: the cancellation-free form keeps E = O(|x - y|^2)
    # accurate (the naive |x|^2/2 - T lse loses ~|x|^2 eps ~ 1e-6 absolute, i.e. everything)
    x64 = Y[3] + 1e-3
    ref = float(hopfield_energy(Y, jnp.asarray(x64), 1e-4))
    assert abs(ref) < 1e-4
    got = float(hopfield_energy(jnp.asarray(Y, jnp.float32), jnp.asarray(x64, jnp.float32), jnp.float32(1e-4)))
    assert got == pytest.approx(ref, rel=1e-3)


# ============================================================================ REM observables
def test_posterior_condensation_matches_dense():
    rng = np.random.default_rng(4)
    Y = rng.normal(size=(300, 5))
    ds1, ds2 = FiniteDataset(Y), FiniteDataset(Y, chunk_size=64)
    x = jnp.asarray(rng.normal(size=5))
    for T in (5.0, 1.0, 0.1):
        w = _dense_weights(Y, x, T)
        for ds in (ds1, ds2):
            c = posterior_condensation(ds, x, T)
            logw = np.log(w, where=w > 0, out=np.zeros_like(w))
            assert float(c.entropy) == pytest.approx(-np.sum(w * logw), abs=1e-12)
            assert float(c.participation_ratio) == pytest.approx(1 / np.sum(w * w), rel=1e-12)
            assert float(c.max_weight) == pytest.approx(w.max(), rel=1e-12)
            assert int(c.nearest) == int(np.argmax(w))
            assert float(c.log_partition) == pytest.approx(float(ds1.log_partition(x, T)), abs=1e-12)
        # leave-one-out equals the dataset without that point
        c = posterior_condensation(ds2, x, T, exclude=int(np.argmax(w)))
        keep = np.arange(300) != np.argmax(w)
        wl = _dense_weights(Y[keep], x, T)
        assert float(c.entropy) == pytest.approx(-np.sum(wl * np.log(wl)), abs=1e-11)
        assert float(c.participation_ratio) == pytest.approx(1 / np.sum(wl * wl), rel=1e-11)
    # vmap over x, T and exclude; jit
    X = jnp.asarray(rng.normal(size=(4, 5)))
    Ts = jnp.asarray([0.3, 1.0, 2.0, 4.0])
    ex = jnp.asarray([0, 5, 77, 299])
    out = jax.jit(jax.vmap(lambda x, T, e: posterior_condensation(ds2, x, T, exclude=e)))(X, Ts, ex)
    for i in range(4):
        ci = posterior_condensation(ds2, X[i], float(Ts[i]), exclude=int(ex[i]))
        assert float(out.entropy[i]) == pytest.approx(float(ci.entropy), abs=1e-13)
        assert float(out.participation_ratio[i]) == pytest.approx(float(ci.participation_ratio), rel=1e-13)


_batched_condensation = jax.jit(jax.vmap(posterior_condensation, in_axes=(None, 0, None)))


def _rem_samples(key, N, d, T, M, law):
    k1, k2, k3 = jax.random.split(key, 3)
    Y = jax.random.normal(k1, (N, d))
    if law == "separated":
        X = jnp.sqrt(1.0 + T) * jax.random.normal(k2, (M, d))  # fresh x ~ N(0, (s^2 + T) I)
    else:
        n0 = jax.random.randint(k3, (M,), 0, N)
        X = Y[n0] + jnp.sqrt(T) * jax.random.normal(k2, (M, d))  # x ~ p_T^e
    return _batched_condensation(FiniteDataset(Y), X, jnp.asarray(T))


def test_rem_entropy_monte_carlo_above_collapse(key):
    """E[posterior entropy] vs the annealed REM log N - (d/2) log(1 + 1/T) at 4 and 8 T_C.

    Tolerance: 4 standard errors plus the finite-N correction estimated from the second moment
    of Z (see rem_entropy). Given x, Var Z(k)/E[Z(k)]^2 = (e^{h(k)} - 1)/N with h(k) =
    d[log(1 + kq) - log(1 + 2kq)/2] + d rho q k^2/((1 + 2kq)(1 + kq)), rho = 1 + q; the delta
    method E log Z = log E Z - V/2 in S = log Z(1) - d log Z/dk gives E S - S_ann ~
    e^{h(1)} (h'(1) - 1)/(2N) (0.06 nats at 4 T_C, 0.005 at 8 T_C for d = 16, N = 4096). The
    fluctuation of |x|^2 enlarges it (measured ~2x): floor = 4x that estimate.
    """
    N, d, M = 4096, 16, 256
    tc = float(collapse_temperature(N, d))
    for j, T in enumerate((4 * tc, 8 * tc)):
        q = 1 / T
        h = d * (math.log1p(q) - 0.5 * math.log1p(2 * q) + q / (1 + 2 * q))
        dh = d * q**2 / ((1 + q) * (1 + 2 * q)) + d * q * (2 + 3 * q) / ((1 + 2 * q) ** 2 * (1 + q))
        floor = 4 * math.exp(h) * (dh - 1) / (2 * N)
        theory = float(rem_entropy(N, d, T))
        for law in ("separated", "empirical"):
            out = _rem_samples(jax.random.fold_in(key, j), N, d, T, M, law)
            S = np.asarray(out.entropy)
            se = S.std(ddof=1) / math.sqrt(M)
            assert zscore_ok(S.mean(), theory, se, z=4.0, floor=floor), (law, T, S.mean(), theory)
            assert np.mean(out.participation_ratio) > 50  # spread over ~N/N_c points
            assert np.mean(out.max_weight) < 0.25  # (measured ~0.1 at 4 T_C) vs > 0.95 condensed


def test_condensation_below_collapse(key):
    N, d, M = 4096, 16, 256
    T = float(collapse_temperature(N, d)) / 4
    emp = _rem_samples(key, N, d, T, M, "empirical")
    # x near a training point: the posterior sits on it
    assert np.mean(emp.participation_ratio) < 1.1
    assert np.mean(emp.max_weight) > 0.95
    assert np.mean(emp.entropy) < 0.1
    # fresh x: the REM is frozen, O(1) points carry the weight (vs N/N_c ~ 10^3 above T_C)
    sep = _rem_samples(key, N, d, T, M, "separated")
    assert np.mean(sep.participation_ratio) < 3.0
    assert np.mean(sep.max_weight) > 0.5


# ============================================================================ excess entropy
@pytest.fixture(scope="module")
def gauss_data():
    """N = 2048 points of N(0, I_32), their REM T_C and a temperature grid around it."""
    N, d = 2048, 32
    Y = jax.random.normal(jax.random.key(7), (N, d))
    tc = float(collapse_temperature(N, d))
    return Y, tc, tc * np.geomspace(0.25, 6.0, 25)


def test_excess_entropy_crosses_zero_near_rem_collapse(gauss_data, key):
    """Biroli's f = s_sep - s for N(0, I) data, d = 32, N = 2048.

    The zero crossing is within 25% of T_C = 1/(N^{2/d} - 1) (measured ~1.07-1.10 T_C: the
    quenched log-sum lies below the annealed one at finite d, pushing the crossing up by
    O(1)/d in log(1 + 1/T), i.e. dT/T ~ 2 (1 + q)/(d q) x O(1) ~ 0.17 x O(1) here); far above
    T_C, f matches the REM f = log(N)/d - log(1 + 1/T)/2 within 5 sigma plus 0.01 (the
    second-moment correction, ~0.05 nats / d).
    """
    Y, tc, Ts = gauss_data
    N, d = Y.shape
    ee = excess_entropy(Y, Ts, key, n_samples=512)
    assert abs(ee.collapse_temperature / tc - 1) < 0.25, ee.collapse_temperature / tc
    assert ee.f[0] < 0 < ee.f[-1]
    s_sep = (math.log(N - 1) + 0.5 * d * np.log(2 * math.pi * math.e * Ts)) / d
    np.testing.assert_allclose(ee.s_sep, s_sep, rtol=1e-12)
    np.testing.assert_allclose(ee.s + ee.f, ee.s_sep, rtol=1e-12)
    hi = Ts >= 4 * tc
    theory = np.asarray(rem_entropy(N - 1, d, Ts[hi])) / d
    assert zscore_ok(ee.f[hi], theory, ee.stderr[hi], z=5.0, floor=0.01)
    # the convenience wrapper on its default grid agrees
    tc_data = collapse_temperature_from_data(Y, key, n_samples=512, n_temperatures=25)
    assert abs(tc_data / tc - 1) < 0.25
    # explicit uniform weights take the weighted leave-one-out path to the same numbers
    w = excess_entropy(FiniteDataset(Y, weights=np.full(N, 3.0)), Ts, key, n_samples=512)
    np.testing.assert_allclose(w.f, ee.f, rtol=0, atol=1e-10)
    np.testing.assert_allclose(w.s_sep, ee.s_sep, rtol=1e-12)
    # the control variate does not bias the estimator, and it reduces the error
    raw = excess_entropy(Y, Ts, jax.random.fold_in(key, 1), n_samples=512, control_variate=False)
    assert zscore_ok(ee.f, raw.f, np.hypot(ee.stderr, raw.stderr), z=5.0)
    assert np.all(ee.stderr < raw.stderr)


def test_excess_entropy_empirical_law_identity(gauss_data, key):
    """law="empirical" (the Rao-Blackwellised mean posterior entropy E[H(n|x)]/d) equals the
    direct Monte Carlo of s_sep + (1/d) E log p_T^e(x) with FiniteDataset.log_density, x ~ p_T^e;
    it is >= 0 and decays below the collapse instead of crossing zero."""
    Y, tc, Ts = gauss_data
    N, d = Y.shape
    M = 512
    ds = FiniteDataset(Y)
    emp = excess_entropy(ds, Ts, key, n_samples=M, law="empirical")
    assert np.isnan(emp.collapse_temperature) and np.all(emp.f >= 0)
    assert emp.f[0] < 0.01 < emp.f[-1]
    k1, k2 = jax.random.split(jax.random.fold_in(key, 2))
    n0 = jax.random.randint(k1, (M,), 0, N)
    z = jax.random.normal(k2, (M, d))
    log_density = jax.jit(jax.vmap(ds.log_density, in_axes=(0, None)))
    for i in (0, 12, 24):
        T = Ts[i]
        logp = np.asarray(log_density(Y[n0] + math.sqrt(T) * z, jnp.asarray(T)))
        s_sep = (math.log(N) + 0.5 * d * math.log(2 * math.pi * math.e * T)) / d
        direct = s_sep + logp / d
        se = math.hypot(direct.std(ddof=1) / math.sqrt(M), emp.stderr[i])
        assert zscore_ok(emp.f[i], direct.mean(), se, z=5.0), (T, emp.f[i], direct.mean(), se)


# ============================================================================ memories
def test_hopfield_fixed_points_stored_and_spurious(key):
    # three close patterns (an equilateral triangle of side 0.3, circumradius r = 0.3/sqrt(3):
    # its centroid is stable above r^2/2 = 0.015) and a far one: at T = 0.1 the triangle is one
    # mixture state (weights 1/3, spurious) and the far pattern a stored memory
    r = 0.3 / math.sqrt(3)
    ang = np.deg2rad([90.0, 210.0, 330.0])
    Y = np.concatenate([r * np.stack([np.cos(ang), np.sin(ang)], 1), [[3.0, 0.5]]])
    fp = hopfield_fixed_points(Y, 0.1, key=key, n_starts=60)  # 64 starts: one compiled batch
    assert fp.memories.shape == (2, 2) and np.all(fp.converged)
    assert fp.n_stored == 1 and fp.n_spurious == 1
    np.testing.assert_array_equal(fp.retrieved, [False, False, False, True])
    assert fp.pattern_labels[0] == fp.pattern_labels[1] == fp.pattern_labels[2] != fp.pattern_labels[3]
    mix = fp.pattern_labels[0]
    assert fp.max_weight[mix] == pytest.approx(1 / 3, abs=1e-6)  # the symmetric mixture state
    assert fp.participation_ratio[mix] == pytest.approx(3.0, abs=1e-5)
    np.testing.assert_allclose(fp.memories[mix], [0.0, 0.0], atol=1e-6)
    assert fp.pattern[fp.pattern_labels[3]] == 3
    assert np.all(fp.lambda_min > 0) and np.all(fp.stable)
    assert fp.basin_fraction.sum() == pytest.approx(1.0)
    assert np.all(fp.basin_fraction > 0)
    # every fixed point is a fixed point of the update
    for m in fp.memories:
        np.testing.assert_allclose(hopfield_update(Y, jnp.asarray(m), 0.1), m, atol=1e-9)
    # low T: memorization, every pattern a stored memory, participation ratio ~1
    fp = hopfield_fixed_points(Y, 0.005, key=key, n_starts=60)
    assert fp.n_stored == 4 and fp.n_spurious == 0 and np.all(fp.retrieved)
    np.testing.assert_allclose(fp.participation_ratio, 1.0, atol=1e-3)  # neighbours: 2 e^-9
    # high T (Phi_T convex): a single spurious memory at the mean, holding every start
    fp = hopfield_fixed_points(Y, 20.0, key=key, n_starts=60)
    assert fp.memories.shape[0] == 1 and fp.n_spurious == 1
    assert fp.basin_fraction[0] == 1.0 and not fp.retrieved.any()


def test_hopfield_capacity_brackets_prediction(key):
    """Retained fraction vs N at d = 8, s = 1 against N_c = (1 + 1/T)^{d/2} (7.7 at T = 1.5,
    5.06 at T = 2).

    N = 2 is exact (two deltas). Noisy cues: to leading order the median cue is retrieved
    exactly at N_c, with a transition width ~ sqrt(d/(1 + T)) ~ 2 in log N. We require the
    fraction to be > 1/2 at N_c/4 and < 1/2 at 4 N_c, and the interpolated 1/2-crossing within a
    factor 2 (0.7 in log N, a third of the width; measured 0.6-1.1 N_c over seeds; the test
    passed for 8 of 8 seeds). Stored patterns themselves (cue="pattern") are at
    least as robust at every N up to Monte Carlo noise, with the crossing also within a factor
    2 of N_c at this d.
    """
    Ns = np.array([1, 2, 4, 8, 16, 32])
    Ts = np.array([1.5, 2.0])
    noisy = np.asarray(hopfield_capacity(key, Ns, 8, Ts, n_trials=8, cue="noisy"))
    clean = np.asarray(hopfield_capacity(key, Ns, 8, Ts, n_trials=8, cue="pattern"))
    assert noisy.shape == (6, 2)
    np.testing.assert_array_equal(noisy[0], 1.0)  # one pattern is always retrieved
    pred = np.asarray(hopfield_capacity_prediction(8, Ts))

    def crossing(f):
        i = np.nonzero((f[:-1] >= 0.5) & (f[1:] < 0.5))[0][0]
        a, b = np.log(Ns[i]), np.log(Ns[i + 1])
        return math.exp(a + (b - a) * (f[i] - 0.5) / (f[i] - f[i + 1]))

    for j, nc in enumerate(pred):
        f = np.interp(np.log([nc / 4, 4 * nc]), np.log(Ns), noisy[:, j])
        assert f[0] > 0.5 > f[1]
        for frac in (noisy[:, j], clean[:, j]):
            assert 0.5 < crossing(frac) / nc < 2.0, (crossing(frac), nc)
        assert np.all(clean[:, j] >= noisy[:, j] - 0.15)
    # N = 2 exactly: a pair at distance D is two deltas +-D/2 with T_c = D^2/4 (theory 3.1), so a
    # stored pattern survives iff D^2 > 4T, D^2 ~ 2 chi^2_d: P = P(chi^2_8 > 2T). Six N = 2
    # entries x 8 trials = 48 independent pairs per T (same shapes: no new compilation).
    pair_T = np.array([2.0, 4.0])
    pair_key = jax.random.fold_in(key, 1)
    pair = np.asarray(hopfield_capacity(pair_key, np.full(6, 2), 8, pair_T, n_trials=8, cue="pattern", n_max=32))
    exact = scipy.stats.chi2.sf(2 * pair_T, 8)  # 0.857, 0.433
    assert zscore_ok(pair.mean(axis=0), exact, np.sqrt(exact * (1 - exact) / 48), z=4.0)  # pairs share their fate
    # each temperature of the vmap is independent of the others (same patterns at every T)
    swapped = np.asarray(hopfield_capacity(key, Ns, 8, Ts[::-1], n_trials=8, cue="noisy"))
    np.testing.assert_array_equal(swapped, noisy[:, ::-1])


# ============================================================================ bad input
def test_bad_input_names_the_argument(key):
    Y = np.random.default_rng(0).normal(size=(10, 3))
    x = jnp.zeros(3)
    cases = [
        (lambda: collapse_temperature(1, 16), "n_points"),
        (lambda: collapse_temperature(1000, 0), "dim"),
        (lambda: collapse_temperature(1000, 16, variance=0.0), "variance"),
        (lambda: collapse_temperature(float("nan"), 16), "n_points"),
        (lambda: rem_entropy(1000, 16, 0.0), "T"),
        (lambda: rem_entropy(1000, 16, 1.0, variance=-1.0), "variance"),
        (lambda: hopfield_capacity_prediction(8, -1.0), "T"),
        (lambda: hopfield_update(Y, x, 0.0), "T"),
        (lambda: hopfield_update(Y, x, float("nan")), "T"),
        (lambda: hopfield_update(Y, x, jnp.ones(2)), "T"),
        (lambda: hopfield_update(Y, jnp.zeros(4), 1.0), "x"),
        (lambda: hopfield_update(Y[0], x, 1.0), "patterns"),
        (lambda: hopfield_update(np.where(Y > 1, np.nan, Y), x, 1.0), "patterns"),
        (lambda: hopfield_energy(Y, jnp.full(3, jnp.nan), 1.0), "x"),
        (lambda: posterior_condensation(Y, x, -1.0), "T"),
        (lambda: posterior_condensation(Y, x, 1.0, exclude=10), "exclude"),
        (lambda: hopfield_fixed_points(Y, 0.0, key=key), "T"),
        (lambda: hopfield_fixed_points(Y, 1.0), "key"),
        (lambda: hopfield_fixed_points(Y, 1.0, key=key, threshold=0.3), "threshold"),
        (lambda: hopfield_fixed_points(Y, 1.0, starts=np.zeros((4, 2))), "starts"),
        (lambda: hopfield_capacity(key, 0, 8, 1.0), "n_patterns"),
        (lambda: hopfield_capacity(key, 8, 0, 1.0), "dim"),
        (lambda: hopfield_capacity(key, 8, 8, 0.0), "T"),
        (lambda: hopfield_capacity(key, 8, 8, 1.0, variance=0.0), "variance"),
        (lambda: hopfield_capacity(key, 8, 8, 1.0, cue="clean"), "cue"),
        (lambda: hopfield_capacity(key, 8, 8, 1.0, n_trials=0), "n_trials"),
        (lambda: hopfield_capacity(key, [4, 8], 8, 1.0, n_max=4), "n_max"),
        (lambda: excess_entropy(Y[:1], [1.0], key), "data"),
        (lambda: excess_entropy(Y, [1.0, 0.0], key), "Ts"),
        (lambda: excess_entropy(Y, [], key), "Ts"),
        (lambda: excess_entropy(Y, [1.0], key, law="population"), "law"),
        (lambda: excess_entropy(Y, [1.0], key, n_samples=1), "n_samples"),
        (lambda: collapse_temperature_from_data(np.ones((5, 3)), key), "data"),
    ]
    for fn, name in cases:
        with pytest.raises(ValueError, match=name):
            fn()
    with pytest.raises(TypeError, match="schedule"):
        collapse_temperature(1000, 16, schedule="OU")
