"""Noise-level conventions and data scales (thermodiff/_units.py, theory section 1)."""

import numpy as np
import pytest

from thermodiff._schedules import DDPM, OU, VP
from thermodiff._units import (
    CONVENTIONS,
    data_scale,
    DATA_SCALES,
    DataScale,
    noise_conventions,
    NoiseLevel,
    scale_data,
    temperature_from,
)

ACP = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))  # 0-based alphas_cumprod of Ho et al.
T_GRID = np.geomspace(2e-4, 2e4, 41)  # inside both the VP(0.1, 20) and DDPM ranges


def test_closed_forms():
    T = np.array([1e-3, 0.5, 1.0, 3.0, 100.0])
    nl = noise_conventions(T)
    assert isinstance(nl, NoiseLevel)
    np.testing.assert_allclose(nl.T, T, rtol=0)
    np.testing.assert_allclose(nl.sigma, np.sqrt(T), rtol=1e-15)
    np.testing.assert_allclose(nl.ou_t, np.log1p(T) / 2, rtol=1e-14)
    np.testing.assert_allclose(nl.ou_t, np.log(1 + T) / 2, rtol=1e-12)
    np.testing.assert_allclose(nl.abar, 1 / (1 + T), rtol=1e-14)
    np.testing.assert_allclose(nl.theta, np.sqrt(1 / (1 + T)), rtol=1e-14)
    np.testing.assert_allclose(nl.log_snr, np.log(nl.abar / (1 - nl.abar)), rtol=1e-12)
    np.testing.assert_allclose(nl.log_snr, -np.log(T), rtol=1e-14)
    # abar = 1/2 is T = 1, log-SNR 0
    one = noise_conventions(1.0)
    assert one.abar == 0.5 and one.log_snr == 0.0


def test_matches_schedules():
    T = np.array([1e-3, 0.5, 1.0, 3.0, 100.0, 2e4])
    nl = noise_conventions(T)
    np.testing.assert_allclose(nl.ou_t, np.asarray(OU().time_at_temperature(T)), rtol=1e-12)
    np.testing.assert_allclose(nl.vp_t, np.asarray(VP().time_at_temperature(T)), rtol=1e-12)
    # thermodiff's DDPM time is 1-based: ddpm_step = t - 1
    t_ddpm = np.asarray(DDPM().time_at_temperature(T))
    np.testing.assert_allclose(nl.ddpm_step, t_ddpm - 1, rtol=1e-10)
    # and the schedules send the converted times back to T
    np.testing.assert_allclose(np.asarray(VP().temperature(nl.vp_t)), T, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(DDPM().temperature(nl.ddpm_step + 1)), T, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(OU().temperature(nl.ou_t)), T, rtol=1e-12)


def test_ddpm_step_is_zero_based_at_integers():
    ks = np.array([0, 1, 2, 10, 500, 998, 999])
    T = 1 / ACP[ks] - 1
    np.testing.assert_allclose(noise_conventions(T).ddpm_step, ks, rtol=0, atol=1e-9)
    np.testing.assert_allclose(temperature_from(ks, "ddpm_step"), T, rtol=1e-12)
    # step 0 carries beta_0 = 1e-4: T = 1e-4/(1 - 1e-4), not 0
    assert noise_conventions(1e-4 / (1 - 1e-4)).ddpm_step == pytest.approx(0.0, abs=1e-9)


def test_ddpm_step_interpolates_in_log_abar():
    k = 41
    T = np.expm1(-0.5 * (np.log(ACP[k]) + np.log(ACP[k + 1])))
    assert noise_conventions(T).ddpm_step == pytest.approx(k + 0.5, abs=1e-9)


def test_custom_schedules():
    T = np.array([0.01, 1.0, 50.0])
    vp = VP(0.5, 10.0)
    ddpm = DDPM(num_steps=200, beta_end=0.05)
    nl = noise_conventions(T, ddpm=ddpm, vp=vp)
    np.testing.assert_allclose(nl.vp_t, np.asarray(vp.time_at_temperature(T)), rtol=1e-10)
    np.testing.assert_allclose(nl.ddpm_step, np.asarray(ddpm.time_at_temperature(T)) - 1, rtol=1e-6)
    np.testing.assert_allclose(temperature_from(nl.vp_t, "vp_t", vp=vp), T, rtol=1e-10)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_round_trip(convention):
    values = getattr(noise_conventions(T_GRID), convention)
    assert np.all(np.isfinite(values))
    np.testing.assert_allclose(temperature_from(values, convention), T_GRID, rtol=1e-10, atol=0)
    # and the other way: value -> T -> value
    back = getattr(noise_conventions(temperature_from(values, convention)), convention)
    np.testing.assert_allclose(back, values, rtol=1e-10, atol=1e-12)


def test_round_trip_range_ends():
    for conv, value in [("vp_t", 1.0), ("ddpm_step", 0.0), ("ddpm_step", 999.0)]:
        T = temperature_from(value, conv)
        assert getattr(noise_conventions(T), conv) == pytest.approx(value, rel=1e-10, abs=1e-10)


def test_vectorised_and_scalar():
    T = np.geomspace(1e-3, 1e3, 12).reshape(3, 4)
    nl = noise_conventions(T)
    for name, field in nl.as_dict().items():
        assert field.shape == (3, 4) and field.dtype == np.float64, name
        for idx in [(0, 0), (2, 3)]:
            one = getattr(noise_conventions(T[idx]), name)
            assert one == pytest.approx(field[idx], rel=1e-14, nan_ok=True)
    s = noise_conventions(0.3)
    assert isinstance(s.ou_t, np.float64) and np.ndim(s.vp_t) == 0
    assert isinstance(temperature_from(0.3, "ou_t"), np.float64)
    assert temperature_from([[0.1, 0.2]], "sigma").shape == (1, 2)


def test_nan_outside_ranges():
    T_vp_max = float(np.expm1(0.5 * (20 - 0.1) + 0.1))
    T_ddpm_lo, T_ddpm_hi = 1 / ACP[0] - 1, 1 / ACP[-1] - 1
    nl = noise_conventions(np.array([1e-6, 5e-5, 1e4, T_vp_max * 1.01, T_ddpm_hi * 1.01, 1e9]))
    assert np.isfinite(nl.vp_t[:3]).all() and np.isnan(nl.vp_t[3:]).all()
    assert np.isnan(nl.ddpm_step[:2]).all() and np.isfinite(nl.ddpm_step[2:4]).all()
    assert np.isnan(nl.ddpm_step[4:]).all()
    assert np.isnan(noise_conventions(T_ddpm_lo * 0.99).ddpm_step)
    assert noise_conventions(T_ddpm_lo * 1.01).ddpm_step > 0
    # the other conventions are defined for every T > 0
    for name in ("sigma", "ou_t", "abar", "theta", "log_snr"):
        assert np.isfinite(getattr(nl, name)).all(), name


@pytest.mark.parametrize(
    "T, match",
    [(0.0, "T"), (-1.0, "T"), (np.inf, "T"), (np.array([1.0, np.nan]), "T")],
)
def test_noise_conventions_rejects_bad_T(T, match):
    with pytest.raises(ValueError, match=match):
        noise_conventions(T)


def test_noise_conventions_rejects_bad_schedules():
    with pytest.raises(TypeError, match="ddpm must be a DDPM schedule or None"):
        noise_conventions(1.0, ddpm=VP())
    with pytest.raises(TypeError, match="vp must be a VP schedule or None"):
        noise_conventions(1.0, vp=OU())


@pytest.mark.parametrize(
    "value, convention, match",
    [
        (1.0, "snr", r"convention must be one of \('T', 'sigma'"),
        (1.0, None, "convention must be one of"),
        (0.0, "sigma", r"convention 'sigma'.*> 0"),
        (-0.1, "ou_t", r"convention 'ou_t'.*> 0"),
        (1.5, "vp_t", r"convention 'vp_t'.*\(0.0, 1.0\]"),
        (0.0, "vp_t", r"convention 'vp_t'.*\(0.0, 1.0\]"),
        (-0.5, "ddpm_step", r"convention 'ddpm_step'.*\[0.0, 999.0\]"),
        (1000.0, "ddpm_step", r"convention 'ddpm_step'.*\[0.0, 999.0\]"),
        (1.0, "abar", r"convention 'abar'.*\(0.0, 1.0\)"),
        (0.0, "theta", r"convention 'theta'.*\(0.0, 1.0\)"),
        (np.nan, "log_snr", r"convention 'log_snr'.*finite"),
        (np.array([1.0, np.inf]), "T", r"convention 'T'.*finite"),
    ],
)
def test_temperature_from_errors(value, convention, match):
    with pytest.raises(ValueError, match=match):
        temperature_from(value, convention)


# ---------------------------------------------------------------- data scales


def _data(seed=0, n=200, d=5):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 16, (n, d)) * np.array([1.0, 0.5, 2.0, 1.0, 0.1])[:d] + 3.0


def test_raw_is_identity():
    X = _data()
    Xs, ds = scale_data(X, "raw")
    assert isinstance(ds, DataScale) and ds.name == "raw" and ds.a == 1.0
    np.testing.assert_array_equal(Xs, X)
    assert ds.temperature_to_data_units(2.5) == 2.5


def test_minus_one_one_uses_global_min_max():
    X = _data()
    Xs, ds = scale_data(X, "minus-one-one")
    assert Xs.min() == pytest.approx(-1.0, abs=1e-14) and Xs.max() == pytest.approx(1.0, abs=1e-14)
    lo, hi = X.min(), X.max()
    np.testing.assert_allclose(Xs, 2 * (X - lo) / (hi - lo) - 1, rtol=1e-13, atol=1e-14)
    assert np.ndim(ds.b) == 0 and ds.a == pytest.approx(2 / (hi - lo))
    # one global map: a coordinate with a small range stays small
    assert np.ptp(Xs[:, 4]) < 0.2


def test_unit_variance_is_one_global_factor():
    X = _data()
    Xs, ds = scale_data(X, "unit-variance")
    np.testing.assert_allclose(Xs.mean(axis=0), 0.0, atol=1e-12)
    assert Xs.var(axis=0).mean() == pytest.approx(1.0, rel=1e-12)
    assert ds.b.shape == (5,)
    # distances are all rescaled by the same factor a (geometry preserved)
    dist = lambda Z: np.linalg.norm(Z[:20, None] - Z[None, :20], axis=-1)  # noqa: E731
    np.testing.assert_allclose(dist(Xs), ds.a * dist(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", DATA_SCALES)
def test_apply_invert_and_temperature_units(scale):
    X = _data(1)
    Xs, ds = scale_data(X, scale)
    np.testing.assert_allclose(ds.apply(X), Xs, rtol=0)
    np.testing.assert_allclose(ds.invert(Xs), X, rtol=1e-13)
    np.testing.assert_allclose(ds.apply(X[3]), Xs[3], rtol=1e-15)
    T = np.array([0.0, 0.1, 2.0, 40.0])
    np.testing.assert_allclose(ds.temperature_to_scaled_units(T), ds.a**2 * T, rtol=1e-15)
    back = ds.temperature_to_data_units(ds.temperature_to_scaled_units(T))
    np.testing.assert_allclose(back, T, rtol=1e-14)


def test_temperature_is_variance_in_data_units():
    """Noise of variance T_raw on the raw data is noise of variance a^2 T_raw on the scaled data."""
    X = _data(2)
    rng = np.random.default_rng(3)
    z = rng.standard_normal(X.shape)
    T_raw = 0.7
    for scale in DATA_SCALES:
        ds = data_scale(X, scale)
        noisy_scaled = ds.apply(X + np.sqrt(T_raw) * z)
        T_scaled = ds.temperature_to_scaled_units(T_raw)
        expected = ds.apply(X) + np.sqrt(T_scaled) * z
        np.testing.assert_allclose(noisy_scaled, expected, rtol=1e-12, atol=1e-12)


def test_same_data_three_scales_same_data_temperature():
    """A level chosen relative to the data (e.g. T = 0.1 x the scaled total variance per
    coordinate) maps back to the same raw-unit temperature whatever scale was trained on."""
    X = _data(4)
    T_raw = 0.1 * X.var(axis=0).mean()
    back = []
    for scale in DATA_SCALES:
        Xs, ds = scale_data(X, scale)
        T_scaled = 0.1 * Xs.var(axis=0).mean()  # the same physical level, in scaled units
        assert T_scaled == pytest.approx(ds.a**2 * T_raw, rel=1e-12)
        back.append(ds.temperature_to_data_units(T_scaled))
    np.testing.assert_allclose(back, T_raw, rtol=1e-12)
    # and the scales agree pairwise: T_b = (a_b/a_a)^2 T_a
    a = {s: data_scale(X, s).a for s in DATA_SCALES}
    ratio = (a["minus-one-one"] / a["unit-variance"]) ** 2
    T_uv = data_scale(X, "unit-variance").temperature_to_scaled_units(T_raw)
    T_mo = data_scale(X, "minus-one-one").temperature_to_scaled_units(T_raw)
    assert T_mo == pytest.approx(ratio * T_uv)


@pytest.mark.parametrize(
    "X, scale, match",
    [
        (
            np.ones((3, 2)),
            "standardize",
            r"scale must be one of \('raw', 'unit-variance', 'minus-one-one'\), got 'standardize'",
        ),
        (np.ones((3, 2)), None, "scale must be one of"),
        (np.ones((4, 2)), "unit-variance", "zero variance"),
        (np.ones((4, 2)), "minus-one-one", "max == min"),
        (np.ones((1, 3)) * np.arange(3), "unit-variance", "zero variance"),
        (np.ones(5), "raw", r"X must be .*2-D.*\(N, d\).*shape \(5,\)"),
        (np.ones((2, 2, 2)), "raw", "X must be"),
        (np.zeros((0, 3)), "raw", "X must be"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "minus-one-one", "X must be finite"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), "unit-variance", "X must be finite"),
    ],
)
def test_scale_data_errors(X, scale, match):
    with pytest.raises(ValueError, match=match):
        scale_data(X, scale)


def test_raw_accepts_constant_data():
    Xs, ds = scale_data(np.ones((3, 2)), "raw")
    np.testing.assert_array_equal(Xs, 1.0)


def test_temperature_conversion_errors():
    ds = data_scale(_data(), "minus-one-one")
    with pytest.raises(ValueError, match=r"T_scaled must be >= 0"):
        ds.temperature_to_data_units(-1.0)
    with pytest.raises(ValueError, match=r"T_raw must be finite"):
        ds.temperature_to_scaled_units(np.nan)


def test_rescaled_model_is_the_exact_denoiser_of_the_rescaled_data():
    """A model of raw data, seen in affinely mapped units (x' = a x + b), is the exact denoiser of
    the mapped data at T' = a^2 T, in any schedule's native coordinates."""
    import jax.numpy as jnp

    import thermodiff as td
    from thermodiff._models import as_model

    rng = np.random.default_rng(0)
    X = 5.0 + 3.0 * rng.standard_normal((40, 3))
    X_s, ds = td.scale_data(X, "minus-one-one")
    raw, scaled = td.FiniteDataset(jnp.asarray(X)), as_model(td.FiniteDataset(jnp.asarray(X_s)))
    model = td.Rescaled(raw, ds.a, ds.b)
    for sched in (td.VP(), td.OU(), td.VE()):
        for T in (0.01, 0.3, 4.0):
            t = sched.time_at_temperature(T)
            x = sched.signal_scale(t) * jnp.asarray(X_s[3] + 0.2)
            np.testing.assert_allclose(model.denoise(x, t, sched), scaled.denoise(x, t, sched), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="a must be > 0"):
        td.Rescaled(raw, 0.0)
