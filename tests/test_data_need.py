"""Data needed (theory section 11): the REM inverse, its spectrum form, the linear and random-features
boundaries, and the memorisation-law extrapolation of ``data_need``."""

import json
import math

import jax
import numpy as np
import pytest

import thermodiff as td
from thermodiff._data_need import DataNeed, _rem_collapse_temperature, data_need
from thermodiff._memorization_law import fit_memorization_law


@pytest.mark.parametrize("d, s2, T", [(64, 1.0, 0.5), (8, 2.5, 0.1), (256, 1.0, 12.431187), (3, 0.2, 7.0),
                                      (64, 1.0, 2.7569342)])
def test_round_trip_with_collapse_temperature(d, s2, T):
    """collapse_temperature(data_need(T*).n, d, s^2) == T* (the exact inverse), to 1e-6 relative."""
    need = data_need(dim=d, variance=s2, target_temperature=T)
    assert need.n_ceil == math.ceil(need.n) and need.log10_n == pytest.approx(math.log10(need.n), rel=1e-12)
    if need.n >= 2:
        assert float(td.collapse_temperature(need.n, d, s2)) == pytest.approx(T, rel=1e-6)
        # the ceiling collapses at or below T* (more data: lower T_C)
        assert float(td.collapse_temperature(need.n_ceil, d, s2)) <= T * (1 + 1e-12)
    # theory 9's examples backwards: d = 64, N = 20000 -> T_C = 2.7569342; d = 256 -> 12.431187
    if (d, T) in ((64, 2.7569342), (256, 12.431187)):
        assert need.n == pytest.approx(20000, rel=1e-6)


def test_huge_sizes_stay_finite_in_log_space():
    need = data_need(dim=3072, variance=1.0, target_temperature=1e-3)
    assert need.n == math.inf and need.n_ceil is None
    assert need.log10_n == pytest.approx(1536 * math.log10(1001.0), rel=1e-12)  # 4608.67
    d = need.to_dict()
    json.dumps(d, allow_nan=False)  # JSON-able: inf became None
    assert d["n"] is None and d["log10_n"] == pytest.approx(4608.67, abs=0.01)
    assert "10^4608.67" in str(need)


def test_spectrum_formula_reduces_to_the_isotropic_one():
    for d, s2, T in [(16, 1.0, 0.3), (64, 0.07, 0.05), (5, 3.0, 100.0)]:
        need = data_need(spectrum=np.full(d, s2), target_temperature=T, n_points=1797)
        assert need.log10_n_spectrum == pytest.approx(need.log10_n, rel=1e-12)
        assert need.collapse_temperature_spectrum == pytest.approx(need.collapse_temperature, rel=1e-10)
        assert need.collapse_temperature == pytest.approx(float(td.collapse_temperature(1797, d, s2)), rel=1e-12)


def test_spectrum_round_trip_and_zero_directions():
    lam = np.r_[np.full(8, 4.0), np.full(8, 0.25), np.zeros(4)]
    need = data_need(spectrum=lam, target_temperature=0.7)
    # zero-variance directions count for nothing: the same n as the 16 nonzero ones
    assert need.log10_n_spectrum == pytest.approx(data_need(spectrum=lam[:16], target_temperature=0.7).log10_n_spectrum)
    T = _rem_collapse_temperature(lam, need.n_spectrum)
    assert T == pytest.approx(0.7, rel=1e-10)


@pytest.mark.parametrize("lam, lo, hi, iso_factor", [
    # measured (3 seeds, 512 samples, 33 temperatures): mc/spectrum = 1.178-1.188, mc/isotropic = 0.818-0.825;
    # for isotropic data of the same d, N the crossing lies 1.149-1.154 above T_C (the finite-d bias, theory 9)
    (np.r_[np.full(8, 4.0), np.full(8, 0.25)], 1.05, 1.30, 0.90),
    # stronger anisotropy (effective dimension ~ 4): mc/spectrum = 1.26-1.36, mc/isotropic = 0.35-0.38
    (np.r_[np.full(4, 9.0), np.full(12, 0.1)], 1.10, 1.50, 0.50),
])
def test_spectrum_collapse_against_the_measured_crossing(lam, lo, hi, iso_factor):
    """The anisotropic REM collapse vs the zero of the excess entropy of Gaussian data (d = 16, N = 2048):
    within the finite-d bias above it, while the isotropic formula (mean variance) misses by far more."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2048, 16)) * np.sqrt(lam)
    T_mc = td.collapse_temperature_from_data(X, jax.random.key(0), n_samples=512, n_temperatures=33)
    need = data_need(X)
    assert lo < T_mc / need.collapse_temperature_spectrum < hi
    assert T_mc / need.collapse_temperature < iso_factor
    # the data path measures the spectrum: close to the population's
    assert need.collapse_temperature_spectrum == pytest.approx(data_need(n_points=2048, spectrum=lam)
                                                                .collapse_temperature_spectrum, rel=0.03)


def test_data_path_matches_statistics():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 10)) * np.linspace(0.5, 2.0, 10)
    a = data_need(X, target_temperature=0.2)
    lam = np.linalg.eigvalsh(np.cov(X.T, ddof=0))[::-1]
    b = data_need(n_points=300, spectrum=lam, target_temperature=0.2)
    assert a.n_points == 300 and a.dim == 10 and a.variance == pytest.approx(np.var(X, 0).mean(), rel=1e-12)
    assert a.log10_n_spectrum == pytest.approx(b.log10_n_spectrum, rel=1e-10)
    assert a.collapse_temperature_spectrum == pytest.approx(b.collapse_temperature_spectrum, rel=1e-10)
    # d > N: the Gram route gives the same nonzero spectrum as the covariance (rank N - 1)
    Y = rng.standard_normal((20, 50))
    c, f = data_need(Y), data_need(td.FiniteDataset(Y))
    assert np.count_nonzero(c.spectrum) == 19 and np.allclose(c.spectrum, f.spectrum, atol=1e-12)


def test_linear_and_random_features_rows():
    need = data_need(n_points=1000, dim=64, target_kl=0.1, features=4000)
    assert need.row("linear_transition").value == 65
    assert need.row("linear_kl").value == pytest.approx(64 / 1000)
    assert need.row("linear_n_for_kl").value == pytest.approx(640)
    rf = need.row("random_features")
    assert rf.value == 4000 and "memorises" in rf.note
    assert "generalises" in data_need(n_points=1000, dim=64, features=500).row("random_features").note
    small = data_need(n_points=32, dim=64)
    assert "rank-deficient" in small.row("linear_transition").note
    with pytest.raises(KeyError, match="linear_kl"):
        small.row("linear_kl")  # n <= d: no KL scaling


def test_law_extrapolation_with_its_band():
    """tau_mem = c n from two short runs: the prediction, its band, the window and the inverse n."""
    probe = {64: 1200.0, 128: 2500.0}
    need = data_need(n_points=1797, dim=64, probe=probe, tau_gen=300.0, train_steps=20000.0)
    law = fit_memorization_law([64, 128], [1200.0, 2500.0], exponent=1.0)
    assert need.law.c == pytest.approx(law.c) and need.law.c_se == pytest.approx(law.c_se)
    row = need.row("tau_mem")
    tau, lo, hi = (float(v) for v in law.predict(1797))
    assert row.value == pytest.approx(tau) and (row.lo, row.hi) == (pytest.approx(lo), pytest.approx(hi))
    assert lo < tau < hi and row.value == pytest.approx(1797 * law.c, rel=1e-12)  # a = 1: linear in n
    # the geometric mean of 1200/64 and 2500/128 (least squares in log tau), 19.14
    assert law.c == pytest.approx(math.sqrt(1200 / 64 * 2500 / 128), rel=1e-12)
    w = need.row("window")
    assert (w.lo, w.hi) == (300.0, pytest.approx(tau)) and "stop between" in w.note
    n_steps = need.row("n_for_steps")
    assert n_steps.value == pytest.approx(20000 / law.c, rel=1e-12)
    assert n_steps.lo < n_steps.value < n_steps.hi
    # the band inverts: tau_mem on the band's edges at n_lo/n_hi equals the planned steps
    assert float(law.predict(n_steps.lo)[2]) == pytest.approx(20000, rel=1e-9)
    assert float(law.predict(n_steps.hi)[1]) == pytest.approx(20000, rel=1e-9)
    assert need.row("n_for_window").value == pytest.approx(300 / law.c, rel=1e-12)
    # too little data: no window
    tight = data_need(n_points=10, dim=64, probe=probe, tau_gen=300.0)
    assert "no safe window" in tight.row("window").note


def test_law_object_and_free_exponent():
    law = fit_memorization_law([32, 64, 128, 256], [700, 1300, 2600, 5300])
    need = data_need(n_points=1000, dim=8, law=law, train_steps=1e5)
    tau, lo, hi = (float(v) for v in law.predict(1000))
    r = need.row("tau_mem")
    assert (r.value, r.lo, r.hi) == (pytest.approx(tau), pytest.approx(lo), pytest.approx(hi))
    s = need.row("n_for_steps")
    assert float(law.predict(s.value)[0]) == pytest.approx(1e5, rel=1e-9)
    assert float(law.predict(s.lo)[2]) == pytest.approx(1e5, rel=1e-6)
    # probe with standard errors: the weighted fit
    p = data_need(n_points=500, dim=8, probe={64: (1200.0, 100.0), 128: (2500.0, 150.0)})
    assert p.law.tau_mem_se is not None


def test_table_and_json():
    X = td.load_digits("unit")[0]
    need = data_need(X, target_temperature=0.05, target_kl=0.1, features=1000, probe={64: 1200, 128: 2500},
                     tau_gen=300, train_steps=20000)
    assert isinstance(need, DataNeed)
    text = str(need)
    for key in ("rem_isotropic", "rem_spectrum", "collapse_isotropic", "collapse_spectrum", "linear_transition",
                "linear_kl", "linear_n_for_kl", "linear_learning_times", "random_features", "tau_mem", "window",
                "n_for_window", "n_for_steps"):
        r = need.row(key)
        assert r.formula in text and r.validity in text
    assert "n = (1 + s^2/T*)^(d/2)" in text and "d = 64, n = 1797" in text
    d = json.loads(json.dumps(need.to_dict(), allow_nan=False))
    assert d["inputs"]["n_points"] == 1797 and len(d["rows"]) == 13 and d["inputs"]["law"]["c"] > 0
    # digits (unit scale): T_C = 0.2779 (isotropic), 0.1975 (spectrum); n for T* = 0.05: 10^12.55, 10^7.93
    assert need.collapse_temperature == pytest.approx(0.2779, rel=1e-3)
    assert need.collapse_temperature_spectrum == pytest.approx(0.1975, rel=1e-3)
    assert (need.log10_n, need.log10_n_spectrum) == (pytest.approx(12.55, abs=0.01), pytest.approx(7.93, abs=0.01))


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(), ValueError, "give data, or dim"),
    (dict(dim=0), ValueError, "dim must be an integer in"),
    (dict(dim=4.5), TypeError, "dim must be an integer"),
    (dict(dim=4, variance=0.0), ValueError, "variance must be finite and > 0"),
    (dict(dim=4, variance=float("nan")), ValueError, "variance must be finite and > 0"),
    (dict(dim=4, variance="1"), TypeError, "variance must be"),
    (dict(dim=4, variance=1.0, target_temperature=-1.0), ValueError, "target_temperature"),
    (dict(dim=4, variance=1.0, target_temperature=np.array([1.0, 2.0])), ValueError, "target_temperature"),
    (dict(dim=4, n_points=1), ValueError, "n_points must be an integer in"),
    (dict(dim=4, n_points=True), TypeError, "n_points must be an integer"),
    (dict(spectrum=[1.0, -1.0]), ValueError, "spectrum must be"),
    (dict(spectrum=[0.0, 0.0]), ValueError, "spectrum must be"),
    (dict(spectrum=[[1.0]]), ValueError, "spectrum must be"),
    (dict(spectrum=[1.0, 2.0], dim=3), ValueError, "does not match len"),
    (dict(dim=4, target_kl=0), ValueError, "target_kl"),
    (dict(dim=4, features=0), ValueError, "features"),
    (dict(dim=4, tau_gen=-5), ValueError, "tau_gen"),
    (dict(dim=4, train_steps=float("inf")), ValueError, "train_steps"),
    (dict(dim=4, law="c=3"), TypeError, "law must be a MemorizationLaw"),
    (dict(dim=4, probe=[(64, 1000)]), TypeError, "probe must be a non-empty dict"),
    (dict(dim=4, probe={}), TypeError, "probe must be a non-empty dict"),
    (dict(dim=4, probe={64: -3.0}), ValueError, "probe: tau_mem must be finite and > 0"),
    (dict(dim=4, probe={64: 1.0, 128: (2.0, 1.0)}), ValueError, "probe values must all be"),
    (dict(dim=4, probe={64: 1000.0}, exponent=None), ValueError, "at least 2 distinct sizes"),
    (dict(dim=4, probe={64: 1.0}, law=fit_memorization_law([64], [1.0], exponent=1.0)), ValueError, "not both"),
])
def test_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        data_need(**kwargs)


def test_bad_data():
    with pytest.raises(ValueError, match="not both"):
        data_need(np.ones((4, 2)) * [[1], [2], [3], [4]], dim=2)
    with pytest.raises(ValueError, match="zero variance"):
        data_need(np.ones((5, 3)))
    with pytest.raises(ValueError, match="at least 2 points"):
        data_need(np.ones((1, 3)))
    with pytest.raises(ValueError, match="finite"):
        data_need(np.array([[0.0, 1.0], [np.nan, 2.0]]))
