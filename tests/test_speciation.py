"""Speciation predictions and measured collapse of finite datasets (theory sections 3, 6, 9)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td
from thermodiff._speciation import nearest_points


def test_speciation_from_spectrum_two_clusters():
    """Two tight clusters at +-m (plus unit-variance bulk directions): Lambda = |m|^2 + noise,
    t_S = log(Lambda)/2 in OU time; the exact first split is the mixture's T_c ~ |m|^2 - s^2."""
    rng = np.random.default_rng(0)
    n, d, a, s = 400, 6, 3.0, 0.3
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    X = s * rng.standard_normal((n, d))
    X[:, 0] += a * signs
    pred = td.speciation_time(X, n_levels=3)
    C = np.cov(X.T, bias=True)
    lam = np.linalg.eigvalsh(C)[::-1]
    np.testing.assert_allclose(np.asarray(pred.eigenvalues), lam[:3], rtol=1e-10)
    np.testing.assert_allclose(float(pred.T_biroli), lam[0] - 1, rtol=1e-10)
    np.testing.assert_allclose(float(pred.t_biroli), np.log(lam[0]) / 2, rtol=1e-10)  # OU default
    # VP times of the same temperature
    vp = td.speciation_time(X, td.VP(), n_levels=1, exact=False)
    np.testing.assert_allclose(float(td.VP().temperature(vp.t_biroli)), lam[0] - 1, rtol=1e-8)
    assert np.isnan(float(vp.T_first_split))
    # exact first split: the finite-sample analogue of |m|^2 - s^2 (within sampling error)
    assert abs(float(pred.T_first_split) - (a**2 - s**2)) < 0.15 * a**2
    # levels below 1 have no prediction in this convention
    assert np.isnan(np.asarray(pred.T_levels)[-1])


def test_nearest_points_streaming_equals_dense(key):
    pts = jax.random.normal(key, (1000, 5))
    u = jnp.array([0.3, -0.2, 0.1, 0.0, 0.5])
    T = 0.2
    dense = np.sort(np.linalg.norm(np.asarray(pts) - np.asarray(u), axis=1))
    w = np.asarray(td.FiniteDataset(pts).posterior_weights(u, T))
    for chunk in [64, 333, 4096]:
        d1, d2, i1, top = nearest_points(td.FiniteDataset(pts, chunk_size=chunk), u, T)
        np.testing.assert_allclose([float(d1), float(d2)], dense[:2], rtol=1e-12)
        assert int(i1) == int(np.argmin(np.linalg.norm(np.asarray(pts) - np.asarray(u), axis=1)))
        np.testing.assert_allclose(float(top), w.max(), rtol=1e-10)


def test_measured_collapse_matches_rem_threshold(key):
    """Gaussian data N(0, I), d = 12, N = 1000: the temperature after which trajectories keep
    their nearest training point lies within 25% of T_C = s^2/(N^(2/d) - 1) (theory section 9)."""
    d, n = 12, 1000
    X = np.random.default_rng(1).standard_normal((n, d))
    T_rem = 1.0 / (n ** (2 / d) - 1)
    m = td.measure_collapse(X, td.VE(t_max=50.0), key, n_trajectories=128, steps=100, n_save=32)
    assert abs(float(m.T_collapse) / T_rem - 1) < 0.25, (float(m.T_collapse), T_rem)
    # posterior condensation: the top weight rises from ~1/N to ~1 through the threshold
    tw = np.asarray(m.top_weight)
    assert tw[0] < 0.2 and tw[-1] > 0.95
    assert np.all(np.diff(np.asarray(m.T)) < 0)
    assert 0.5 * T_rem < float(m.T_top_half) < 2.5 * T_rem
    assert float(m.memorized_fraction[-1]) > 0.9


def test_commitment_with_labels(key):
    """Two well-separated labelled clusters: every trajectory commits to its final class well
    above the collapse temperature, and final classes are balanced."""
    rng = np.random.default_rng(2)
    n, d = 200, 4
    lab = np.arange(n) % 2
    X = 0.2 * rng.standard_normal((n, d))
    X[:, 0] += np.where(lab == 0, 2.0, -2.0)
    m = td.measure_collapse(X, td.VP(), key, n_trajectories=128, steps=80, n_save=24, labels=lab, T_high=20.0, T_low=1e-3)
    fc = np.asarray(m.final_class)
    assert set(np.unique(fc)) == {0, 1} and abs(fc.mean() - 0.5) < 5 * 0.5 / np.sqrt(len(fc))
    assert np.nanmedian(np.asarray(m.commit_T)) > 5 * float(m.T_collapse)


def test_bad_input(key):
    with pytest.raises(ValueError, match="at least 2"):
        td.speciation_time(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="data must be a 2-D array"):
        td.speciation_time(np.zeros(3))
    with pytest.raises(ValueError, match=r"data must be finite"):
        td.speciation_time(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="n_levels"):
        td.speciation_time(np.eye(3), n_levels=0)
    X = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(ValueError, match="n_trajectories"):
        td.measure_collapse(X, td.VP(), key, n_trajectories=0)
    with pytest.raises(ValueError, match="T_low must be < T_high"):
        td.measure_collapse(X, td.VP(), key, T_high=0.1, T_low=1.0)
    with pytest.raises(ValueError, match="labels"):
        td.measure_collapse(X, td.VP(), key, labels=np.zeros(3, int))
