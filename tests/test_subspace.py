"""Principal subspaces, the subspace dimension rule, the analysis cost model, upsampled digits."""

import numpy as np
import pytest

from thermodiff._data import load_digits, load_digits_upsampled
from thermodiff._subspace import (
    EXACT_MAX_DIM,
    AnalysisCost,
    PrincipalSubspace,
    analysis_cost,
    measure_matmul_rate,
    principal_subspace,
    subspace_dimension,
)


def _low_rank_plus_noise(n=1200, d=1024, r=16, noise=0.3, seed=1):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((d, r)))[0]
    s = np.geomspace(30.0, 3.0, r)
    return 5.0 + (rng.standard_normal((n, r)) * s) @ U.T + noise * rng.standard_normal((n, d))


@pytest.fixture(scope="module")
def lowrank():
    X = _low_rank_plus_noise()
    C = np.cov(X.T, bias=True)
    return X, C, np.sort(np.linalg.eigvalsh(C))[::-1]


# ============================================================================ principal_subspace
def test_randomized_matches_dense_eigenvalues(lowrank):
    X, C, ev = lowrank
    assert X.shape[1] > EXACT_MAX_DIM
    k = 12
    ps = principal_subspace(X, k)
    assert isinstance(ps, PrincipalSubspace)
    assert ps.method == "randomized" and ps.k == k and ps.dim == X.shape[1]
    np.testing.assert_allclose(ps.eigenvalues, ev[:k], rtol=1e-6)
    assert np.all(np.diff(ps.eigenvalues) <= 0)
    # basis orthonormal, and spanning the top eigenvectors: C V = V diag(lambda)
    np.testing.assert_allclose(ps.basis.T @ ps.basis, np.eye(k), atol=1e-10)
    np.testing.assert_allclose(C @ ps.basis, ps.basis * ps.eigenvalues[None, :], atol=1e-6 * ev[0])
    # total variance exact (sum of squares), explained fraction consistent
    np.testing.assert_allclose(ps.total_variance, np.trace(C), rtol=1e-12)
    np.testing.assert_allclose(ps.mean, X.mean(0), rtol=1e-12)
    assert ps.explained_fraction == pytest.approx(ev[:k].sum() / ev.sum(), rel=1e-6)
    assert ps.explained_cumulative[-1] == pytest.approx(ps.explained_fraction)
    # deterministic for a seed
    ps2 = principal_subspace(X, k)
    np.testing.assert_array_equal(ps.basis, ps2.basis)


def test_randomized_float32_and_exact_agree(lowrank):
    X, C, ev = lowrank
    k = 8
    ex = principal_subspace(X, k, method="exact")
    assert ex.method == "exact"
    np.testing.assert_allclose(ex.eigenvalues, ev[:k], rtol=1e-10)
    f32 = principal_subspace(X.astype(np.float32), k, dtype=np.float32, seed=3)
    np.testing.assert_allclose(f32.eigenvalues, ev[:k], rtol=1e-4)
    # the same subspace (up to sign): |V_exact^T V_f32| = I
    np.testing.assert_allclose(np.abs(ex.basis.T @ f32.basis), np.eye(k), atol=1e-3)


def test_exact_path_small_d():
    X, _ = load_digits()
    ps = principal_subspace(X, 10)
    assert ps.method == "exact"
    ev = np.sort(np.linalg.eigvalsh(np.cov(X.T, bias=True)))[::-1]
    np.testing.assert_allclose(ps.eigenvalues, ev[:10], rtol=1e-10)
    np.testing.assert_allclose(ps.total_variance, ev.sum(), rtol=1e-10)
    # integer input is accepted (read chunk by chunk)
    ps_int = principal_subspace(X.astype(np.int64), 10)
    np.testing.assert_allclose(ps_int.eigenvalues, ps.eigenvalues, rtol=1e-12)


def test_project_lift_consistency(lowrank):
    X, _, _ = lowrank
    ps = principal_subspace(X, 10)
    Z = ps.project(X)
    assert Z.shape == (X.shape[0], 10)
    # coordinates are centred with variances = eigenvalues and no cross-covariance
    np.testing.assert_allclose(Z.mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(Z.T @ Z / X.shape[0], np.diag(ps.eigenvalues), atol=1e-6 * ps.eigenvalues[0])
    # lift is a right inverse of project; lift o project is an orthogonal projection
    np.testing.assert_allclose(ps.project(ps.lift(Z)), Z, atol=1e-9)
    Y = ps.lift(Z)
    np.testing.assert_allclose(ps.lift(ps.project(Y)), Y, atol=1e-9)
    resid = X - Y
    np.testing.assert_allclose(resid @ ps.basis, 0.0, atol=1e-8)
    # residual variance = total variance - captured variance
    np.testing.assert_allclose(np.mean(np.sum((resid - resid.mean(0)) ** 2, 1)),
                               ps.total_variance - ps.eigenvalues.sum(), rtol=1e-8)
    # single vectors
    np.testing.assert_allclose(ps.project(X[3]), Z[3], atol=1e-12)
    np.testing.assert_allclose(ps.lift(Z[3]), Y[3], atol=1e-12)
    assert ps.to_dict()["k"] == 10


# ============================================================================ subspace_dimension
def test_subspace_dimension_rule():
    ev = np.array([5.0, 3.0, 1.0, 0.5, 0.3, 0.2])  # total 10: cumulative 0.5, 0.8, 0.9, 0.95, 0.98, 1
    assert subspace_dimension(ev, fraction=0.8) == 2
    assert subspace_dimension(ev, fraction=0.9) == 3
    assert subspace_dimension(ev, fraction=0.95) == 4
    assert subspace_dimension(ev[::-1], fraction=0.95) == 4  # any order
    assert subspace_dimension(ev, fraction=0.3) == 2  # clipped to k_min = 2
    assert subspace_dimension(ev, fraction=0.3, k_min=1) == 1
    assert subspace_dimension(ev, fraction=1.0, k_max=3) == 3  # clipped to k_max
    assert subspace_dimension(ev, fraction=1.0) == 6  # clipped to the spectrum
    # truncated spectrum: the total variance decides, and unreached fractions give k_max
    assert subspace_dimension(ev[:3], fraction=0.9, total_variance=10.0) == 3
    assert subspace_dimension(ev[:3], fraction=0.95, total_variance=10.0) == 3
    assert subspace_dimension(np.zeros(5)) == 2  # zero variance: k_min
    # default cap of 64 for a flat spectrum
    assert subspace_dimension(np.ones(1000)) == 64


def test_subspace_dimension_from_record(lowrank):
    X, _, ev = lowrank
    ps = principal_subspace(X, 16)
    f = float(ps.explained_cumulative[5])
    assert subspace_dimension(ps, fraction=f) == 6
    assert subspace_dimension(ps, fraction=0.9999) == 16  # not reached within the 16 computed
    full = subspace_dimension(ev, fraction=f)
    assert full == 6


# ============================================================================ analysis_cost
def test_analysis_cost_scaling():
    n = 1000
    a, b = analysis_cost(n, 2048, k=32), analysis_cost(n, 4096, k=32)
    assert isinstance(a, AnalysisCost)
    fa, fb = a.stages["first_split"], b.stages["first_split"]
    # first split: flops ~ d^3 (N d^3 in the Jacobian, d^3 in the eighs; N d^2 lower order)
    assert 7.0 < fb.flops / fa.flops < 8.5
    # memory ~ d^2 when N >> d (2d+1 tangents of the N x d weighted points), ~ d^3 when d >> N
    m1, m2 = (analysis_cost(70000, d).stages["first_split"].bytes for d in (256, 512))
    assert 3.8 < m2 / m1 < 4.3
    assert fb.bytes / fa.bytes > 4.0
    # subspace version: independent of d except for the projection (2 N d k flops)
    sa, sb = a.stages["first_split_subspace"], b.stages["first_split_subspace"]
    assert sa.bytes == sb.bytes
    assert sb.flops - sa.flops == pytest.approx(2.0 * n * 2048 * 32)
    assert sb.flops < 1.01 * sa.flops
    # simulation: linear in N and d
    assert b.stages["simulation"].flops == pytest.approx(2 * a.stages["simulation"].flops)
    # quick is cheaper
    assert analysis_cost(n, 256, quick=True).stages["first_split"].flops < fa.flops
    # times and budgets
    assert a.seconds("first_split") == pytest.approx(fa.flops / a.flops_per_second)
    c = analysis_cost(1797, 784, flops_per_second=1e11)
    assert c.k == 64
    assert c.stages["first_split"].bytes > 5e9  # the reported 11.6 GB order
    assert not c.full_first_split_fits(memory_budget=2e9, time_budget=None)
    assert c.fits("first_split_subspace", memory_budget=2e9)
    assert analysis_cost(1797, 64, quick=True).full_first_split_fits(memory_budget=2e9, time_budget=None)
    assert not analysis_cost(1797, 64, quick=True, flops_per_second=1e3).full_first_split_fits(time_budget=60.0)
    d = c.to_dict()
    assert set(d["stages"]) == set(c.stages) and d["stages"]["first_split"]["seconds"] > 0


def test_measure_matmul_rate():
    rate = measure_matmul_rate(size=128, repeats=3)
    assert np.isfinite(rate) and rate > 1e6


# ============================================================================ upsampled digits
def test_upsampled_digits():
    X8, y8 = load_digits()
    X, y = load_digits_upsampled()
    assert X.shape == (1797, 784) and X.dtype == np.float64
    np.testing.assert_array_equal(y, y8)
    assert X.min() >= 0.0 and X.max() <= 16.0 and X.max() > 15.0
    # area-average pooling 28x28 -> 8x8 recovers the originals closely
    P = np.zeros((8, 28))
    for i in range(8):
        lo, hi = i * 3.5, (i + 1) * 3.5
        for j in range(28):
            P[i, j] = max(0.0, min(hi, j + 1) - max(lo, j)) / 3.5
    pooled = np.einsum("ia,nab,jb->nij", P, X.reshape(-1, 28, 28), P).reshape(-1, 64)
    corr = np.corrcoef(pooled.ravel(), X8.ravel())[0, 1]
    assert corr > 0.95
    per_image = [np.corrcoef(p, o)[0, 1] for p, o in zip(pooled[:50], X8[:50])]
    assert min(per_image) > 0.9
    # deterministic, size 8 is the identity, other sizes and normalizations
    np.testing.assert_array_equal(load_digits_upsampled()[0], X)
    np.testing.assert_allclose(load_digits_upsampled(8)[0], X8, atol=1e-12)
    Xu, _ = load_digits_upsampled(16, "unit", dtype=np.float32)
    assert Xu.shape == (1797, 256) and Xu.dtype == np.float32 and 0 <= Xu.min() and Xu.max() <= 1
    Xs, _ = load_digits_upsampled(12, "standardize")
    std = Xs.std(0)
    assert np.all((np.abs(std - 1) < 1e-10) | (std == 0))
    # the resampling is linear of rank <= 64, so the covariance has rank <= 64
    ps = principal_subspace(X, 64, method="exact")
    assert ps.explained_fraction == pytest.approx(1.0, abs=1e-10)


# ============================================================================ validation
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(k=0), r"k must be an integer in \[1, min\(N, d\)\]"),
        (dict(k=65), r"k must be an integer in \[1, min\(N, d\)\] = \[1, 64\]"),
        (dict(k=2.0), r"k must be an integer"),
        (dict(k=True), r"k must be an integer"),
        (dict(k=2, n_iter=0), r"n_iter must be an integer in \[1, 100\]"),
        (dict(k=2, seed=-1), r"seed must be an integer >= 0"),
        (dict(k=2, oversample=-1), r"oversample must be an integer >= 0"),
        (dict(k=2, tol=1.0), r"tol must be a finite number in \[0.0, 1.0\)"),
        (dict(k=2, method="svd"), r"method must be one of"),
        (dict(k=2, dtype=np.float16), r"dtype must be None, float32 or float64"),
    ],
)
def test_principal_subspace_validation(kwargs, match):
    X, _ = load_digits()
    with pytest.raises(ValueError, match=match):
        principal_subspace(X[:100], **kwargs)


def test_data_validation():
    X, _ = load_digits()
    with pytest.raises(ValueError, match=r"X must be a 2-D array"):
        principal_subspace(X[0], 2)
    bad = X[:50].copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"X must be finite"):
        principal_subspace(bad, 2)
    with pytest.raises(TypeError, match=r"X must be a real numeric array"):
        principal_subspace(np.array([["a", "b"]]), 1)
    ps = principal_subspace(X, 3)
    with pytest.raises(ValueError, match=r"X must have shape \(N, 64\)"):
        ps.project(np.zeros((2, 63)))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 3\)"):
        ps.lift(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"fraction must be a finite number in \(0.0, 1.0\]"):
        subspace_dimension(ps, fraction=0.0)
    with pytest.raises(ValueError, match=r"k_max must be an integer >= 3"):
        subspace_dimension(ps, k_min=3, k_max=2)
    with pytest.raises(ValueError, match=r"evals_or_subspace must be a non-empty 1-D array"):
        subspace_dimension(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"d must be an integer >= 1"):
        analysis_cost(10, 0)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, d\] = \[1, 8\]"):
        analysis_cost(10, 8, k=9)
    with pytest.raises(ValueError, match=r"flops_per_second must be a finite number in \(0.0, inf\)"):
        analysis_cost(10, 8, flops_per_second=0)
    with pytest.raises(ValueError, match=r"itemsize must be 4"):
        analysis_cost(10, 8, itemsize=2)
    with pytest.raises(ValueError, match=r"stage must be one of"):
        analysis_cost(10, 8).seconds("nope")
    with pytest.raises(ValueError, match=r"size must be an integer in \[8, 128\]"):
        load_digits_upsampled(7)
    with pytest.raises(ValueError, match=r"normalize must be one of"):
        load_digits_upsampled(28, "zscore")
    with pytest.raises(ValueError, match=r"size must be an integer in \[16, 8192\]"):
        measure_matmul_rate(size=8)
