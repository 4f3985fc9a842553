"""Schedules and time grids check their domain (issue 12, items 1-3; theory section 1).

Eager calls refuse bad t, T, parameters and grid arguments with a message naming the argument and
its range; under jax.jit/vmap an out-of-domain t or T gives NaN; float32 agrees with float64 to a
stated tolerance; time_at_temperature inverts temperature to float64 rounding.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td

pytestmark = pytest.mark.slow  # 558 parametrised domain, jit and float32 cases (about 2.5 min): CI's slow step

SCHEDULES = {
    "ve_brownian": lambda: td.VE(),
    "ve_geometric": lambda: td.VE(0.01, 50.0),
    "vp": lambda: td.VP(0.1, 20.0),
    "vp_bmin0": lambda: td.VP(0.0, 20.0),
    "ou": lambda: td.OU(),
    "ddpm": lambda: td.DDPM(),
    "cosine": lambda: td.Cosine(),
}
CLASS = {"ve_brownian": "VE", "ve_geometric": "VE", "vp": "VP", "vp_bmin0": "VP", "ou": "OU", "ddpm": "DDPM", "cosine": "Cosine"}
COMMON = ["signal_scale", "noise_scale", "drift_coefficient", "diffusion", "temperature", "abar", "drift"]
VP_FAMILY = ["log_signal"]
VP_ONLY = ["beta", "integrated_beta"]


def _methods(name):
    out = list(COMMON)
    if name not in ("ve_brownian", "ve_geometric"):
        out += VP_FAMILY
    if name.startswith("vp"):
        out += VP_ONLY
    return out


def _call(s, method, t):
    if method == "drift":  # x of t's shape: the drift is elementwise
        return s.drift(jnp.ones(np.shape(t) if isinstance(t, np.ndarray) else ()), t)
    return getattr(s, method)(t)


CASES = [(name, m) for name in SCHEDULES for m in _methods(name)]


def _t_max(s):
    return float(s.t_max)


def _T_max(s):
    return float(s.temperature(s.t_max))


# ----------------------------------------------------------------------------- the issue's reproducers
def test_issue_reproducers_are_refused():
    with pytest.raises(ValueError, match=re.escape("t must be finite and lie in [0, t_max] for this VE schedule (t_max = 100), got t = -1.0")):
        td.VE().temperature(-1.0)
    with pytest.raises(ValueError, match=re.escape(
            "T (temperature) must be finite and lie in (0, T_max] for this VP schedule, T_max = T(t_max) = 23154.8 "
            "being the largest temperature it reaches, got T = 1e+30")):
        td.VP().time_at_temperature(1e30)
    with pytest.raises(ValueError, match=re.escape("T_start (temperature) must be finite and lie in (0, T_max] for this VP schedule")):
        td.time_grid(td.VP(), 4, T_start=1e6)


# ----------------------------------------------------------------------------- eager: t
@pytest.mark.parametrize("name, method", CASES)
@pytest.mark.parametrize("bad", [None, "0.5", True, 0.5 + 0j, np.array([True])])
def test_wrong_type_of_t_is_a_type_error(name, method, bad):
    with pytest.raises(TypeError, match=r"^t must be a real diffusion time \(scalar or array\)"):
        _call(SCHEDULES[name](), method, bad)


@pytest.mark.parametrize("name, method", CASES)
def test_t_outside_the_domain_is_refused(name, method):
    s = SCHEDULES[name]()
    head = re.escape(f"t must be finite and lie in [0, t_max] for this {CLASS[name]} schedule (t_max = {_t_max(s):g}), got t = ")
    for bad in [-1.0, -1e-300, 1.01 * _t_max(s), 1e300, np.nan, np.inf, -np.inf]:
        with pytest.raises(ValueError, match=head):
            _call(s, method, bad)
    # arrays: every element is checked, and the message says how many are bad
    with pytest.raises(ValueError, match=head + re.escape("-0.5 (and 1 more of shape (4,))")):
        _call(s, method, np.array([0.0, -0.5, 0.5 * _t_max(s), np.nan]))
    # the edges belong to the domain
    for ok in [0.0, _t_max(s), np.array([0.0, 0.5 * _t_max(s), _t_max(s)])]:
        assert np.all(np.isfinite(np.asarray(_call(s, method, ok))))


# ----------------------------------------------------------------------------- eager: T
@pytest.mark.parametrize("name", SCHEDULES)
def test_T_outside_the_range_is_refused(name):
    s = SCHEDULES[name]()
    with pytest.raises(TypeError, match=r"^T must be a real temperature"):
        s.time_at_temperature(None)
    with pytest.raises(TypeError, match=r"^T must be a real temperature"):
        s.time_at_temperature("1.0")
    with pytest.raises(TypeError, match=r"^T must be a real temperature"):
        s.time_at_temperature(False)
    if name == "ve_geometric":
        head = re.escape("T (temperature) must be finite and lie in [sigma_min^2, sigma_max^2] = [0.0001, 2500] "
                         "for this geometric VE schedule")
        bad = [0.5e-4, 2500.0 * 1.01]
    else:
        head = re.escape(f"T (temperature) must be finite and lie in (0, T_max] for this {CLASS[name]} schedule, "
                         f"T_max = T(t_max) = {_T_max(s):.6g} being the largest temperature it reaches")
        bad = [1.01 * _T_max(s)]
    for T in bad + [0.0, -1.0, 1e30, 1e300, np.nan, np.inf]:
        with pytest.raises(ValueError, match=head):
            s.time_at_temperature(T)
    with pytest.raises(ValueError, match=head):
        s.time_at_temperature(np.array([1.0, 1e30]))
    # T_max itself is reached, at t_max exactly
    assert float(s.time_at_temperature(_T_max(s))) == pytest.approx(_t_max(s), rel=1e-14)
    assert float(s.time_at_temperature(_T_max(s))) <= _t_max(s)


def test_time_at_temperature_is_clipped_into_the_domain():
    """Rounding at the ends (T(t_max) recomputed) returns t in [0, t_max], never past it."""
    s = td.VP()
    T_top = float(s.temperature(1.0)) * (1 + 1e-12)
    assert float(s.time_at_temperature(T_top)) == 1.0
    with jax.enable_x64(False):
        c = td.Cosine()
        T32 = c.temperature(c.t_max)
        assert T32.dtype == jnp.float32
        assert float(c.time_at_temperature(T32)) == float(c.t_max)


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: td.VP(None, 20.0), TypeError, "beta_min must be a real scalar"),
        (lambda: td.VP(0.1, "20"), TypeError, "beta_max must be a real scalar"),
        (lambda: td.VP(jnp.array([0.1, 0.2]), 20.0), ValueError, "beta_min must be a real scalar (shape ())"),
        (lambda: td.VP(-0.1, 20.0), ValueError, "beta_min must lie in [0.0, inf]"),
        (lambda: td.VP(0.1, 0.0), ValueError, "beta_max must lie in (0.0, inf]"),
        (lambda: td.VP(0.1, np.inf), ValueError, "beta_max must be finite"),
        (lambda: td.VP(5.0, 1.0), ValueError, "VP: beta_min must be <= beta_max, got beta_min = "),
        (lambda: td.VP(0.1, 2000.0), ValueError, "VP: beta_min and beta_max give a largest temperature T(t_max) that overflows float64"),
        (lambda: td.VE(0.1), ValueError, "VE: sigma_max is missing"),
        (lambda: td.VE(None, 1.0), ValueError, "VE: sigma_min is missing"),
        (lambda: td.VE(1.0, 0.5), ValueError, "VE: sigma_min must be < sigma_max"),
        (lambda: td.VE(1.0, 1.0), ValueError, "VE: sigma_min must be < sigma_max"),
        (lambda: td.VE(0.0, 1.0), ValueError, "sigma_min must lie in (0.0, inf]"),
        (lambda: td.VE(1e-200, 1.0), ValueError, "sigma_min = 1e-200 is too small: T(0) = sigma_min^2 underflows float64"),
        (lambda: td.VE(0.01, 1e200), ValueError, "VE: sigma_max (or the Brownian t_max) give a largest temperature T(t_max) that overflows"),
        (lambda: td.VE(t_max=0.0), ValueError, "t_max must lie in (0.0, inf]"),
        (lambda: td.VE(t_max=np.nan), ValueError, "t_max must be finite"),
        (lambda: td.VE(t_max=[1.0]), ValueError, "t_max must be a real scalar (shape ())"),
        (lambda: td.OU(t_max=-1.0), ValueError, "t_max must lie in (0.0, inf]"),
        (lambda: td.OU(t_max=400.0), ValueError, "OU: t_max give a largest temperature T(t_max) that overflows float64"),
        (lambda: td.OU(t_max=None), TypeError, "t_max must be a real scalar"),
        (lambda: td.DDPM(num_steps=0), ValueError, "num_steps must be an integer in [1, 1000000]"),
        (lambda: td.DDPM(num_steps=10**7), ValueError, "num_steps must be an integer in [1, 1000000]"),
        (lambda: td.DDPM(num_steps=2.5), TypeError, "num_steps must be an integer"),
        (lambda: td.DDPM(num_steps=True), TypeError, "num_steps must be an integer"),
        (lambda: td.DDPM(beta_start=0.0), ValueError, "beta_start must lie in (0.0, 1.0)"),
        (lambda: td.DDPM(beta_end=1.0), ValueError, "beta_end must lie in (0.0, 1.0)"),
        (lambda: td.DDPM(jnp.array([0.1, 1.5])), ValueError, "betas must lie in (0.0, 1.0)"),
        (lambda: td.DDPM(jnp.array([0.1, np.nan])), ValueError, "betas must be finite"),
        (lambda: td.DDPM(jnp.array([])), ValueError, "betas must be a 1-D array of 1 to 1000000 values in (0, 1), got shape (0,)"),
        (lambda: td.DDPM(jnp.full((2, 2), 0.1)), ValueError, "betas must be a 1-D array"),
        (lambda: td.DDPM("0.1"), TypeError, "betas must be a 1-D array of noise increments in (0, 1)"),
        (lambda: td.DDPM(jnp.full((400,), 0.9)), ValueError, "DDPM: betas give a largest temperature T(t_max) that overflows float64"),
        (lambda: td.Cosine(offset=-0.1), ValueError, "offset must lie in [0.0, 1.0]"),
        (lambda: td.Cosine(offset=2.0), ValueError, "offset must lie in [0.0, 1.0]"),
        (lambda: td.Cosine(t_max=1.0), ValueError, "t_max must lie in (0.0, 1.0)"),
        (lambda: td.Cosine(t_max=0.0), ValueError, "t_max must lie in (0.0, 1.0)"),
    ],
)
def test_bad_parameters(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()


def test_parameters_refused_in_float32():
    """Parameters whose top temperature overflows float32 are refused there, with the remedy."""
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match=re.escape("OU: t_max give a largest temperature T(t_max) that overflows float32")
                           + ".*jax_enable_x64"):
            td.OU(t_max=50.0)
        with pytest.raises(ValueError, match="t_max must lie in \\(0, 1\\) \\(Cosine's T diverges at t = 1\\), got 0.99999999, which rounds to 1"):
            td.Cosine(t_max=0.99999999)
        with pytest.raises(ValueError, match="t_max = 1e\\+39 overflows float32"):
            td.VE(t_max=1e39)
    assert float(td.OU(t_max=50.0).temperature(50.0)) == pytest.approx(np.expm1(100.0))  # fine in float64


# ----------------------------------------------------------------------------- under jit / vmap
@pytest.mark.parametrize("name, method", CASES)
def test_jit_out_of_domain_t_gives_nan(name, method):
    s = SCHEDULES[name]()
    f = jax.jit(lambda t: _call(s, method, t))
    for bad in [-1.0, 1.5 * _t_max(s), np.nan, np.inf]:
        assert np.all(np.isnan(np.asarray(f(bad)))), (bad, f(bad))
    t = 0.37 * _t_max(s)
    np.testing.assert_allclose(np.asarray(f(t)), np.asarray(_call(s, method, t)), rtol=1e-12)
    # vmap: only the bad entries are NaN
    if method != "drift":
        out = np.asarray(jax.vmap(lambda t: _call(s, method, t))(jnp.array([t, -1.0, 2 * _t_max(s)])))
        assert np.isfinite(out[0]) and np.isnan(out[1:]).all()


@pytest.mark.parametrize("name", SCHEDULES)
def test_jit_out_of_range_T_gives_nan(name):
    s = SCHEDULES[name]()
    f = jax.jit(lambda T: s.time_at_temperature(T))
    low = 0.5e-4 if name == "ve_geometric" else 0.0
    for bad in [low, -1.0, 1.5 * _T_max(s), 1e30, np.nan, np.inf]:
        assert np.isnan(float(f(bad))), (bad, f(bad))
    for T in [0.3, 1.0, _T_max(s)]:
        assert float(f(T)) == pytest.approx(float(s.time_at_temperature(T)), rel=1e-12)


def test_traced_parameters_and_values_gives_nan():
    """Parameters traced (vmapped schedules) leave the check to the NaN guard."""
    out = jax.vmap(lambda m: td.VE(t_max=m).temperature(2.0))(jnp.array([1.0, 3.0]))
    assert np.isnan(float(out[0])) and float(out[1]) == 2.0
    out = jax.vmap(lambda m: td.OU(m).time_at_temperature(100.0))(jnp.array([1.0, 3.0]))
    assert np.isnan(float(out[0])) and float(out[1]) == pytest.approx(0.5 * np.log(101.0), rel=1e-14)


def test_gradients_at_the_edges_are_finite_and_unchanged():
    s = td.VP()
    g = jax.grad(lambda t: s.temperature(t))
    assert float(g(1.0)) == pytest.approx(float(s.beta(1.0)) * (1 + float(s.temperature(1.0))), rel=1e-12)
    gi = jax.grad(lambda T: s.time_at_temperature(T))
    T = float(s.temperature(0.5))
    assert float(gi(T)) == pytest.approx(1 / float(g(0.5)), rel=1e-10)


# ----------------------------------------------------------------------------- accuracy
def _interior(s, n=400):
    tm = _t_max(s)
    return np.unique(np.concatenate([tm * np.geomspace(1e-12, 1.0, n), np.linspace(0.0, tm, n + 1)[1:]]))


@pytest.mark.parametrize("name", SCHEDULES)
def test_round_trip_to_float64_rounding(name):
    s = SCHEDULES[name]()
    t = np.concatenate([[0.0], _interior(s)]) if name == "ve_geometric" else _interior(s)
    back = np.asarray(s.time_at_temperature(s.temperature(t)))
    np.testing.assert_allclose(back, t, rtol=1e-13, atol=4e-16 * _t_max(s))
    assert back.max() <= _t_max(s)


@pytest.mark.parametrize("name", SCHEDULES)
def test_float32_matches_float64(name):
    """Stated tolerance: T(t) to 1e-5 relative; t(T) to 1e-5 relative + 1e-6 t_max (VE geometric
    starts at T = sigma_min^2 > 0, where t is fixed only absolutely); the other coefficients to
    1e-5 relative. Measured worst: 1.7e-6 (T), 2e-7 relative / 1.2e-7 t_max absolute (t)."""
    s64 = SCHEDULES[name]()
    with jax.enable_x64(False):
        s32 = SCHEDULES[name]()
        t32 = _interior(s32, 300).astype(np.float32)
        t32 = t32[(t32 > 0) & (t32.astype(np.float64) <= _t_max(s64))]
        T32 = np.asarray(s32.temperature(jnp.asarray(t32)))
        coef32 = {m: np.asarray(_call(s32, m, jnp.asarray(t32))) for m in COMMON if m != "drift"}
    assert T32.dtype == np.float32
    t64 = t32.astype(np.float64)
    T64 = np.asarray(s64.temperature(t64))
    np.testing.assert_allclose(T32, T64, rtol=1e-5, atol=0)
    for m, v in coef32.items():
        np.testing.assert_allclose(v, np.asarray(_call(s64, m, t64)), rtol=1e-5, atol=1e-30, err_msg=m)
    # the inverse, on float32 temperatures inside the float64 range
    Tin = T64.astype(np.float32)
    Tin = Tin[(Tin.astype(np.float64) <= _T_max(s64)) & (Tin.astype(np.float64) >= float(s64.temperature(0.0)))]
    with jax.enable_x64(False):
        back32 = np.asarray(s32.time_at_temperature(jnp.asarray(Tin)))
    back64 = np.asarray(s64.time_at_temperature(Tin.astype(np.float64)))
    np.testing.assert_allclose(back32, back64, rtol=1e-5, atol=1e-6 * _t_max(s64))


def test_cosine_float32_small_t_regression():
    """The former cos/arccos forms were 8% (T) and 30% (t) off at t = 1e-5 in float32."""
    with jax.enable_x64(False):
        c = td.Cosine()
        T = float(c.temperature(jnp.float32(1e-5)))
        t = float(c.time_at_temperature(jnp.float32(T)))
    T64 = float(td.Cosine().temperature(float(np.float32(1e-5))))
    assert T == pytest.approx(T64, rel=1e-6)
    assert t == pytest.approx(float(np.float32(1e-5)), rel=1e-5)


# ----------------------------------------------------------------------------- time grids
GRIDS = {"uniform": lambda: td.UniformGrid(), "karras": lambda: td.KarrasGrid(7.0), "critical": lambda: td.CriticalGrid(1.0)}


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(steps=0), ValueError, "steps must be an integer in [1, 10000000], got 0"),
        (dict(steps=10**8), ValueError, "steps must be an integer in [1, 10000000], got 100000000"),
        (dict(steps=2.5), TypeError, "steps must be an integer, got float 2.5"),
        (dict(steps=True), TypeError, "steps must be an integer, got bool True"),
        (dict(steps=None), TypeError, "steps must be an integer, got NoneType None"),
        (dict(grid="karras"), TypeError, "grid must be UniformGrid(), KarrasGrid() or CriticalGrid(...), got str"),
        (dict(schedule="vp"), TypeError, "schedule must be an AbstractSchedule (VE, VP, DDPM, OU, Cosine), got str"),
        (dict(T_start="1"), TypeError, "T_start must be a scalar temperature"),
        (dict(T_end=None, T_start=True), TypeError, "T_start must be a scalar temperature"),
        (dict(T_start=jnp.array([10.0, 20.0])), ValueError, "T_start must be a scalar temperature (shape ())"),
        (dict(T_start=np.nan), ValueError, "T_start (temperature = VE-equivalent noise variance) must be finite and > 0"),
        (dict(T_end=-1.0), ValueError, "T_end (temperature = VE-equivalent noise variance) must be finite and > 0"),
        (dict(T_start=0.1, T_end=1.0), ValueError, "T_start must be > T_end (sampling cools), got T_start=0.1, T_end=1.0"),
        (dict(T_start=1e-5), ValueError, "T_start must be > T_end (sampling cools), got T_start=1e-05, T_end=0.0001 (defaults:"),
        (dict(T_start=1e6), ValueError, "T_start (temperature) must be finite and lie in (0, T_max] for this VP schedule, "
                                        "T_max = T(t_max) = 23154.8 being the largest temperature it reaches, got T_start = 1000000.0"),
        (dict(schedule=td.VE(0.01, 50.0), T_end=1e-6), ValueError,
         "T_end (temperature) must be finite and lie in [sigma_min^2, sigma_max^2] = [0.0001, 2500] for this geometric VE schedule"),
        (dict(schedule=td.VE(), T_start=200.0), ValueError, "T_start (temperature) must be finite and lie in (0, T_max] for this VE schedule, T_max = T(t_max) = 100"),
    ],
)
def test_time_grid_refuses_bad_arguments(kwargs, error, message):
    args = dict(schedule=td.VP(), steps=4, grid=None) | kwargs
    with pytest.raises(error, match=re.escape(message)):
        td.time_grid(args.pop("schedule"), args.pop("steps"), args.pop("grid"), **args)


def test_time_grid_keyword_only():
    with pytest.raises(TypeError):
        td.time_grid(td.VP(), 4, None, 10.0)  # T_start is keyword-only


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: td.CriticalGrid(0.0), ValueError, "T_c (temperature = VE-equivalent noise variance) must be finite and > 0"),
        (lambda: td.CriticalGrid(np.nan), ValueError, "T_c (temperature = VE-equivalent noise variance) must be finite and > 0"),
        (lambda: td.CriticalGrid("1"), TypeError, "T_c must be a scalar temperature"),
        (lambda: td.CriticalGrid(jnp.ones(2)), ValueError, "T_c must be a scalar temperature (shape ())"),
        (lambda: td.CriticalGrid(1.0, width=0.0), ValueError, "width must be finite and > 0 (the bump's standard deviation in log T), got 0.0"),
        (lambda: td.CriticalGrid(1.0, width=np.inf), ValueError, "width must be finite and > 0"),
        (lambda: td.CriticalGrid(1.0, fraction=1.0), ValueError, "fraction must be in [0, 1) (the share of steps in the bump), got 1.0"),
        (lambda: td.CriticalGrid(1.0, fraction=-0.1), ValueError, "fraction must be in [0, 1)"),
        (lambda: td.CriticalGrid(1.0, skew=np.nan), ValueError, "skew must be finite"),
        (lambda: td.CriticalGrid(1.0, skew=None), TypeError, "skew must be a real scalar"),
        (lambda: td.KarrasGrid(0.0), ValueError, "rho must be finite and > 0 (KarrasGrid's exponent), got 0.0"),
        (lambda: td.KarrasGrid(None), TypeError, "rho must be a real scalar"),
        (lambda: td.KarrasGrid().temperatures(1.0, 2.0, 4), ValueError, "T_start must be > T_end (sampling cools)"),
        (lambda: td.KarrasGrid().temperatures(2.0, 1.0, 0), ValueError, "steps must be an integer in [1, 10000000]"),
        (lambda: td.UniformGrid().times("vp", 2.0, 1.0, 4), TypeError, "schedule must be an AbstractSchedule"),
        (lambda: td.UniformGrid().times(td.VP(), 1e9, 1.0, 4), ValueError, "T_start (temperature) must be finite and lie in (0, T_max]"),
        (lambda: td.CriticalGrid(1.0).times(td.VP(), 1e9, 1.0, 4), ValueError, "T_start (temperature) must be finite and lie in (0, T_max]"),
    ],
)
def test_grids_refuse_bad_parameters(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("name", SCHEDULES)
def test_grid_defaults_stay_in_the_domain(grid, name):
    for x64 in (True, False):
        with jax.enable_x64(x64):
            s = SCHEDULES[name]()
            ts = np.asarray(td.time_grid(s, 16, GRIDS[grid](), T_end=1e-3))
            assert ts.shape == (17,) and np.all(np.diff(ts) < 0)
            assert ts[0] <= np.asarray(s.t_max, ts.dtype) and ts[-1] >= 0
            np.testing.assert_allclose(ts[0], float(s.t_max), rtol=1e-6)


@pytest.mark.parametrize("grid", GRIDS)
def test_grids_under_jit_give_nan_for_bad_temperatures(grid):
    s = td.VP()
    f = jax.jit(lambda Ts, Te: td.time_grid(s, 8, GRIDS[grid](), T_start=Ts, T_end=Te))
    for Ts, Te in [(1e6, 1e-3), (1.0, 2.0), (np.nan, 1e-3), (10.0, -1.0), (10.0, 0.0)]:
        assert np.isnan(np.asarray(f(Ts, Te))).all(), (Ts, Te)
    np.testing.assert_allclose(np.asarray(f(10.0, 1e-3)), np.asarray(td.time_grid(s, 8, GRIDS[grid](), T_start=10.0, T_end=1e-3)), rtol=1e-12)


def test_grid_parameters_under_jit_give_nan():
    s = td.VP()
    crit = jax.jit(lambda Tc, w, f: td.time_grid(s, 8, td.CriticalGrid(Tc, width=w, fraction=f), T_end=1e-3))
    for bad in [(-1.0, 2.2, 0.75), (1.0, 0.0, 0.75), (1.0, 2.2, 1.0), (np.nan, 2.2, 0.75)]:
        assert np.isnan(np.asarray(crit(*bad))).all(), bad
    np.testing.assert_allclose(np.asarray(crit(1.0, 2.2, 0.75)), np.asarray(td.time_grid(s, 8, td.CriticalGrid(1.0), T_end=1e-3)), rtol=1e-12)
    karras = jax.jit(lambda rho: td.KarrasGrid(rho).temperatures(10.0, 1e-3, 8))
    assert np.isnan(np.asarray(karras(-7.0))).all()


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("name", SCHEDULES)
def test_grids_float32_match_float64(grid, name):
    """Stated tolerance: the float32 times equal the float64 ones to 1e-5 relative (measured <= 6e-6)."""
    t64 = np.asarray(td.time_grid(SCHEDULES[name](), 50, GRIDS[grid](), T_end=1e-3))
    with jax.enable_x64(False):
        t32 = np.asarray(td.time_grid(SCHEDULES[name](), 50, GRIDS[grid](), T_end=1e-3))
    assert t32.dtype == np.float32
    np.testing.assert_allclose(t32, t64, rtol=1e-5)
