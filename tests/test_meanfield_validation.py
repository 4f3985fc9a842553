"""Correct by default for the mean-field and thermodynamics functions (issue 12): Goldstone modes,
keyword-only arguments, validation at the boundary, NaN under jit, float32 against float64."""

import inspect
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special

import thermodiff as td

pytestmark = pytest.mark.slow  # 203 validation, jit and float32 cases of the mean-field functions: CI's slow step

TWO = td.TwoDeltas(1.0)
X1 = jnp.array([0.3])


# ---------------------------------------------------------------------------- Goldstone modes
def _sphere_longitudinal(d, T, r=1.0):
    """Closed form (theory 3.4): u = A_d(r^2 u/T), k = r^2 u/T, A_d'(k) = 1 - A^2 - (d - 1) A/k,
    M = r^2 A_d'(k)/T the radial slope of m_T at x*, chi_par = M/(1 - M). Returns (r u, chi_par)."""
    A = lambda k: special.ive(d / 2, k) / special.ive(d / 2 - 1, k)  # noqa: E731
    u = optimize.brentq(lambda u: A(r * r * u / T) - u, 1e-9, 1.0, xtol=1e-16, rtol=1e-15)
    k = r * r * u / T
    a = A(k)
    M = r * r * (1 - a * a - (d - 1) * a / k) / T
    return r * u, M / (1 - M)


def test_issue_reproducer_goldstone_is_inf_longitudinal_exact():
    chi = np.asarray(td.susceptibility(td.Hypersphere(1.0, 4), 0.125))
    _, chi_par = _sphere_longitudinal(4, 0.125)
    assert chi_par == pytest.approx(0.394122704, rel=1e-8)
    np.testing.assert_array_equal(np.diag(chi)[:3], [np.inf, np.inf, np.inf])
    assert np.diag(chi)[3] == pytest.approx(chi_par, rel=1e-12)
    assert np.all(chi[~np.eye(4, dtype=bool)] == 0.0)


@pytest.mark.parametrize("d, frac", [(2, 0.5), (3, 0.75), (4, 0.5), (10, 0.2), (3, 1 - 1e-6)])
def test_hypersphere_susceptibility_eager_jit_vmap(d, frac):
    r = 1.3
    sph = td.Hypersphere(r, d)
    T = frac * r * r / d
    radius, chi_par = _sphere_longitudinal(d, T, r)
    eager = np.asarray(td.susceptibility(sph, T))
    jitted = np.asarray(jax.jit(lambda T_: td.susceptibility(sph, T_))(T))
    vmapped = np.asarray(jax.vmap(lambda T_: td.susceptibility(sph, T_))(jnp.asarray([T, T])))
    for chi in (eager, jitted, vmapped[0], vmapped[1]):
        diag = np.diag(chi)
        assert np.sum(np.isposinf(diag)) == d - 1, chi
        assert np.all(np.isfinite(chi[~np.eye(d, dtype=bool)])) and np.all(chi[~np.eye(d, dtype=bool)] == 0)
        (k,) = np.flatnonzero(np.isfinite(diag))
        assert diag[k] == pytest.approx(chi_par, rel=1e-9 if frac < 0.99 else 1e-5)
    np.testing.assert_array_equal(np.isinf(eager), np.isinf(jitted))
    np.testing.assert_allclose(jitted, eager, rtol=1e-12)
    np.testing.assert_allclose(vmapped[0], eager, rtol=1e-12)
    # the flat directions are the ones orthogonal to x*; the order parameter is |x*|
    assert float(td.order_parameter(sph, T)) == pytest.approx(radius, rel=1e-9 if frac < 0.99 else 1e-6)


def test_projected_and_generic_orientation():
    """Off an axis every entry with a Goldstone component is +-inf (the sign of the projector's
    entry); "projected" keeps the finite longitudinal response chi_par n n^T, exact."""
    d, T = 3, 0.2
    sph = td.Hypersphere(1.0, d)
    n = np.array([0.48, -0.6, 0.64])
    n /= np.linalg.norm(n)
    _, chi_par = _sphere_longitudinal(d, T)
    x0 = jnp.asarray(0.7 * n)
    proj = np.asarray(td.susceptibility(sph, T, x0=x0, goldstone="projected"))
    np.testing.assert_allclose(proj, chi_par * np.outer(n, n), rtol=1e-9, atol=1e-12)
    assert float(n @ proj @ n) == pytest.approx(chi_par, rel=1e-9)
    full = np.asarray(td.susceptibility(sph, T, x0=x0))
    P = np.eye(d) - np.outer(n, n)  # projector on the flat directions
    np.testing.assert_array_equal(full, np.sign(P) * np.inf)
    # on an axis, "projected" zeroes the transverse block
    proj_axis = np.asarray(td.susceptibility(sph, T, goldstone="projected"))
    np.testing.assert_allclose(np.diag(proj_axis), [0.0, 0.0, chi_par], rtol=1e-9, atol=1e-300)


def test_projected_susceptibility_is_differentiable():
    d, T, h = 3, 0.2, 1e-5
    sph = td.Hypersphere(1.0, d)
    f = lambda T_: td.susceptibility(sph, T_, goldstone="projected")[d - 1, d - 1]  # noqa: E731
    g = float(jax.grad(f)(T))
    fd = (_sphere_longitudinal(d, T + h)[1] - _sphere_longitudinal(d, T - h)[1]) / (2 * h)
    assert g == pytest.approx(fd, rel=1e-6)


def test_no_flat_direction_no_change():
    """Symmetric phase, and ensembles without a continuous symmetry: the plain (I - J)^{-1} J."""
    sph = td.Hypersphere(1.0, 4)  # T_c = 1/4: above it x* = 0, Cov = I/4, chi = J/(1 - J) I
    for T in (0.3, 1.0):
        J = 0.25 / T
        np.testing.assert_allclose(td.susceptibility(sph, T), J / (1 - J) * np.eye(4), rtol=1e-12)
    for T in (1.5, 1.0 + 1e-6):
        assert float(td.susceptibility(TWO, T)[0, 0]) == pytest.approx(1 / (T - 1), rel=1e-8)
    cases = [(td.GaussianMixture(jnp.array([[1.2, 0.3], [-1.2, -0.3]]), 0.3), (0.6, 3.0)),
             (td.CurieWeiss(6, 1.5), (1.0, 8.0)),
             (td.TwoDeltas(jnp.array([0.6, -0.8, 0.5])), (0.5, 2.0))]
    for ens, Ts in cases:
        for T in Ts:
            chi = np.asarray(td.susceptibility(ens, T))
            x = td.fixed_point(ens, T, x0=td._meanfield._broken_start(ens)[0], stable=True)
            J = np.asarray(ens.posterior_cov(x, T)) / T
            want = np.linalg.solve(np.eye(ens.dim) - J, J)
            np.testing.assert_allclose(chi, want, rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(td.susceptibility(ens, T, goldstone="projected"), chi, rtol=0, atol=0)


# ---------------------------------------------------------------------------- keyword-only
SIGNATURES = {
    "fixed_point": ("ensemble", "T"),
    "susceptibility": ("ensemble", "T"),
    "order_parameter": ("ensemble", "T"),
    "principal_axis": ("ensemble",),
    "landau_coefficients": ("ensemble", "T"),
    "critical_temperature": ("ensemble",),
    "critical_exponents": ("ensemble",),
    "free_energy": ("ensemble", "T", "x"),
    "entropy": ("ensemble", "T", "x"),
    "internal_energy": ("ensemble", "T", "x"),
    "heat_capacity": ("ensemble", "T", "x"),
}


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_optional_arguments_are_keyword_only(name):
    params = inspect.signature(getattr(td, name)).parameters.values()
    positional = tuple(p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
    assert positional == SIGNATURES[name]
    assert all(p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY) for p in params)


def test_x0_can_no_longer_land_in_the_field_slot():
    for fn in (td.susceptibility, td.fixed_point, td.order_parameter):
        with pytest.raises(TypeError, match="positional argument"):
            fn(TWO, 0.5, jnp.ones(1))
    with pytest.raises(TypeError, match="positional argument"):
        td.critical_temperature(TWO, "vp_drift")


# ---------------------------------------------------------------------------- eager validation
T_MSG = r"T \(temperature = VE-equivalent noise variance\) must be finite and > 0"
BAD_T = [(-1.0, ValueError, T_MSG), (0.0, ValueError, T_MSG), (math.nan, ValueError, T_MSG),
         (math.inf, ValueError, T_MSG),
         (np.array([0.5, 1.0]), ValueError, r"T must be a scalar temperature \(shape \(\)\)"),
         ("0.5", TypeError, "T must be a scalar temperature"), (None, TypeError, "T must be a scalar temperature"),
         (True, TypeError, "T must be a scalar temperature")]
T_FUNCS = {
    "fixed_point": lambda T: td.fixed_point(TWO, T),
    "susceptibility": lambda T: td.susceptibility(TWO, T),
    "order_parameter": lambda T: td.order_parameter(TWO, T),
    "landau_coefficients": lambda T: td.landau_coefficients(TWO, T),
    "free_energy": lambda T: td.free_energy(TWO, T, X1),
    "entropy": lambda T: td.entropy(TWO, T),
    "internal_energy": lambda T: td.internal_energy(TWO, T, X1),
    "heat_capacity": lambda T: td.heat_capacity(TWO, T),
}


@pytest.mark.parametrize("name", list(T_FUNCS))
@pytest.mark.parametrize("T, exc, msg", BAD_T, ids=[repr(b[0])[:12] for b in BAD_T])
def test_bad_temperature_is_refused(name, T, exc, msg):
    with pytest.raises(exc, match=msg):
        T_FUNCS[name](T)


def test_float32_overflowing_temperature_is_refused():
    with jax.enable_x64(False):
        e = td.TwoDeltas(1.0)
        with pytest.raises(ValueError, match=r"T = 1e\+39 overflows float32"):
            td.susceptibility(e, 1e39)


VEC = [("zeros(2)", jnp.zeros(2), ValueError, r"must have shape \(1,\) to match the ensemble's dimension, got \(2,\)"),
       ("scalar", 0.5, ValueError, r"must have shape \(1,\)"),
       ("nan", jnp.array([jnp.nan]), ValueError, r"must be finite \(no NaN or inf\)"),
       ("inf", np.array([np.inf]), ValueError, r"must be finite \(no NaN or inf\)"),
       ("str", "a", TypeError, r"must be a real vector of shape \(1,\)"),
       ("bool", np.array([True]), TypeError, r"must be a real vector of shape \(1,\)"),
       ("complex", np.array([1j]), TypeError, r"must be a real vector of shape \(1,\)")]
VEC_FUNCS = [
    ("x0", lambda v: td.fixed_point(TWO, 0.5, x0=v)),
    ("h", lambda v: td.fixed_point(TWO, 0.5, h=v)),
    ("h", lambda v: td.susceptibility(TWO, 0.5, h=v)),
    ("x0", lambda v: td.susceptibility(TWO, 0.5, x0=v)),
    ("x0", lambda v: td.order_parameter(TWO, 0.5, x0=v)),
    ("x", lambda v: td.landau_coefficients(TWO, 0.5, x=v)),
    ("direction", lambda v: td.landau_coefficients(TWO, 0.5, direction=v)),
    ("x", lambda v: td.free_energy(TWO, 0.5, v)),
    ("x", lambda v: td.heat_capacity(TWO, 0.5, v)),
    ("x0", lambda v: td.entropy(TWO, 0.5, x0=v)),
]


@pytest.mark.parametrize("arg, fn", VEC_FUNCS, ids=[f"{a}-{i}" for i, (a, _) in enumerate(VEC_FUNCS)])
@pytest.mark.parametrize("label, value, exc, msg", VEC, ids=[v[0] for v in VEC])
def test_bad_vectors_are_refused(arg, fn, label, value, exc, msg):
    with pytest.raises(exc, match=rf"^{arg} {msg}"):
        fn(value)


GOLD = "goldstone must be one of 'inf', 'projected'"
CRIT = "criterion must be one of 'thermodynamic'"
EPS = "eps must be a sequence of 3 to 64 distinct"


@pytest.mark.parametrize(
    "call, exc, msg",
    [
        (lambda: td.landau_coefficients(TWO, 0.5, order=0), ValueError,
         r"order must be an integer in \[1, 12\], got 0"),
        (lambda: td.landau_coefficients(TWO, 0.5, order=10**6), ValueError, r"order must be an integer in \[1, 12\]"),
        (lambda: td.landau_coefficients(TWO, 0.5, order=2.5), TypeError, "order must be an integer"),
        (lambda: td.landau_coefficients(TWO, 0.5, order="6"), TypeError, "order must be an integer"),
        (lambda: td.fixed_point(TWO, 0.5, max_steps=0), ValueError, r"max_steps must be an integer in \[1, 100000\]"),
        (lambda: td.fixed_point(TWO, 0.5, max_steps=10**9), ValueError,
         r"max_steps must be an integer in \[1, 100000\]"),
        (lambda: td.fixed_point(TWO, 0.5, stable="yes"), TypeError, "stable must be True or False"),
        (lambda: td.susceptibility(TWO, 0.5, goldstone="nan"), ValueError, GOLD),
        (lambda: td.susceptibility(TWO, 0.5, goldstone=None), ValueError, GOLD),
        (lambda: td.critical_temperature(TWO, criterion="nonsense"), ValueError, CRIT),
        (lambda: td.critical_temperature(TWO, criterion=3), TypeError, CRIT),
        (lambda: td.critical_temperature(TWO, criterion="pf_ode"), ValueError,
         "criterion='pf_ode' has no critical point"),
        (lambda: td.critical_exponents(TWO, eps=(0.1, 0.01)), ValueError, EPS),
        (lambda: td.critical_exponents(TWO, eps=(0.1, 0.01, 1.5)), ValueError, r"eps must be .* in \(0, 1\)"),
        (lambda: td.critical_exponents(TWO, eps=(0.1, 0.01, 0.01)), ValueError, EPS),
        (lambda: td.critical_exponents(TWO, eps=(0.1, 0.01, math.nan)), ValueError, "eps must be"),
        (lambda: td.critical_exponents(TWO, eps="abc"), TypeError, "eps must be a sequence"),
        (lambda: td.critical_exponents(TWO, eps=(0.1, None, 0.01)), TypeError, "eps must be a sequence"),
        (lambda: td.critical_exponents(TWO, eps=tuple(np.geomspace(0.1, 1e-6, 65))), ValueError, EPS),
        (lambda: td.free_energy(TWO, 0.5, X1, x0=X1), ValueError, "give either a state x"),
        (lambda: td.fixed_point("two deltas", 0.5), TypeError, "ensemble must be an AbstractEnsemble"),
        (lambda: td.principal_axis(None), TypeError, "ensemble must be an AbstractEnsemble"),
        (lambda: td.heat_capacity(np.zeros(1), 0.5), TypeError, "ensemble must be an AbstractEnsemble"),
    ],
)
def test_bad_options_are_refused(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


# ---------------------------------------------------------------------------- jit policy: NaN
SPH = td.Hypersphere(1.0, 3)
JIT_FUNCS = {
    "fixed_point": lambda T: td.fixed_point(TWO, T),
    "fixed_point_h_stable": lambda T: td.fixed_point(TWO, T, x0=jnp.ones(1), h=jnp.full(1, 0.1), stable=True),
    "susceptibility": lambda T: td.susceptibility(TWO, T),
    "susceptibility_sphere": lambda T: td.susceptibility(SPH, T),
    "order_parameter": lambda T: td.order_parameter(TWO, T),
    "landau_coefficients": lambda T: td.landau_coefficients(TWO, T, order=4),
    "free_energy": lambda T: td.free_energy(TWO, T),
    "free_energy_x": lambda T: td.free_energy(TWO, T, X1),
    "entropy": lambda T: td.entropy(TWO, T),
    "entropy_x": lambda T: td.entropy(TWO, T, X1),
    "internal_energy": lambda T: td.internal_energy(TWO, T),
    "internal_energy_x": lambda T: td.internal_energy(TWO, T, X1),
    "heat_capacity": lambda T: td.heat_capacity(TWO, T),
    "heat_capacity_x": lambda T: td.heat_capacity(TWO, T, X1),
    "grad_order_parameter": jax.grad(lambda T: td.order_parameter(TWO, T)),
}


@pytest.mark.parametrize("name", list(JIT_FUNCS))
def test_invalid_temperature_under_jit_gives_nan(name):
    f = jax.jit(JIT_FUNCS[name])
    assert not np.any(np.isnan(np.asarray(f(0.25))))  # (the sphere's Goldstone entries are inf)
    for T in (-1.0, -0.5, 0.0, math.nan, math.inf):
        out = np.asarray(f(T))
        assert np.all(np.isnan(out)), (name, T, out)


def test_issue_reproducer_jit_susceptibility_negative_temperature():
    assert np.isnan(float(jax.jit(lambda T: td.susceptibility(TWO, T))(-0.5)[0, 0]))


def test_invalid_lanes_under_vmap_and_nonfinite_vectors_under_jit():
    chi = np.asarray(jax.vmap(lambda T: td.susceptibility(TWO, T)[0, 0])(jnp.array([1.5, -1.0, 3.0])))
    assert chi[0] == pytest.approx(2.0, rel=1e-10) and np.isnan(chi[1]) and chi[2] == pytest.approx(0.5, rel=1e-10)
    nan = jnp.array([jnp.nan])
    assert np.isnan(float(jax.jit(lambda v: td.fixed_point(TWO, 0.5, x0=v)[0])(nan)))
    assert np.isnan(float(jax.jit(lambda v: td.fixed_point(TWO, 0.5, h=v)[0])(nan)))
    assert np.all(np.isnan(np.asarray(jax.jit(lambda v: td.susceptibility(TWO, 0.5, h=v))(nan))))
    assert np.isnan(float(jax.jit(lambda v: td.heat_capacity(TWO, 0.5, v))(nan)))
    assert np.isnan(float(jax.jit(lambda v: td.free_energy(TWO, 0.5, x0=v))(nan)))
    assert np.all(np.isnan(np.asarray(jax.jit(lambda v: td.landau_coefficients(TWO, 0.5, direction=v))(nan))))


# ---------------------------------------------------------------------------- landau_coefficients
def test_landau_coefficients_to_order_12_and_without_taylor_rules():
    # log cosh z = z^2/2 - z^4/12 + z^6/45 - 17 z^8/2520 + 31 z^10/14175 - 691 z^12/935550
    T = 0.8
    c = np.asarray(td.landau_coefficients(TWO, T, order=12))
    want = np.zeros(13)
    want[0], want[2] = 0.5, 0.5 - 1 / (2 * T)
    for k, a in ((4, 1 / 12), (6, -1 / 45), (8, 17 / 2520), (10, -31 / 14175), (12, 691 / 935550)):
        want[k] = a / T ** (k - 1)
    np.testing.assert_allclose(c, want, rtol=1e-10, atol=1e-13)
    # a chunked FiniteDataset streams with lax.scan (no Taylor rule): nested forward mode, same numbers
    pts = jnp.asarray(np.random.default_rng(0).normal(size=(12, 2)))
    dense, chunked = td.FiniteDataset(pts), td.FiniteDataset(pts, chunk_size=5)
    np.testing.assert_allclose(td.landau_coefficients(chunked, 0.7, order=3),
                               td.landau_coefficients(dense, 0.7, order=3), rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match=r"order must be an integer in \[1, 6\] for FiniteDataset"):
        td.landau_coefficients(chunked, 0.7, order=7)


# ---------------------------------------------------------------------------- float32 vs float64
def _to64(tree):
    return jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, tree)


def _ensembles32():
    f = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return {
        "two_deltas_3d": td.TwoDeltas(f([0.6, -0.8, 0.5])),
        "mixture": td.GaussianMixture(f([[1.2, 0.3], [-1.2, -0.3]]), f(0.3)),
        "sphere": td.Hypersphere(f(1.3), 3),
        "curie_weiss": td.CurieWeiss(4, f(1.5)),
    }


FLOAT_FUNCS = {
    "fixed_point": lambda e, T: td.fixed_point(e, T, x0=e.mean() + 0.3, stable=True),
    "order_parameter": lambda e, T: td.order_parameter(e, T),
    "susceptibility": lambda e, T: td.susceptibility(e, T, goldstone="projected"),
    "landau_coefficients": lambda e, T: td.landau_coefficients(e, T, order=4),
    "free_energy": lambda e, T: td.free_energy(e, T),
    "entropy": lambda e, T: td.entropy(e, T),
    "internal_energy": lambda e, T: td.internal_energy(e, T),
    "heat_capacity": lambda e, T: td.heat_capacity(e, T),
    "heat_capacity_x": lambda e, T: td.heat_capacity(e, T, jnp.full(e.dim, 0.3, e.mean().dtype)),
    "principal_axis": lambda e, T: td.principal_axis(e),
}


def _close32(out32, ref64):
    """float32 = the float64 result rounded: within 2 float32 ulps of the scale of the result."""
    for a, b in zip(jax.tree.leaves(out32), jax.tree.leaves(ref64), strict=True):
        assert a.dtype == jnp.float32, a.dtype
        b = np.asarray(b)
        scale = max(1.0, float(np.max(np.abs(b[np.isfinite(b)]), initial=0.0)))
        np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=2.5e-7, atol=2.5e-7 * scale)


def _three(e, T):
    return td.order_parameter(e, T), td.heat_capacity(e, T), td.susceptibility(e, T)


@pytest.mark.parametrize("name", list(_ensembles32()))
def test_float32_is_float64_rounded(name):
    """Default float32 (x64 off): every function equals the float64 computation on the same
    (float32-representable) inputs to float32 rounding, also near T_c (0.99 and 1.01 T_c, where
    a float32 solve was 1e-3 off), eagerly and under jit."""
    with jax.enable_x64(False):
        e32 = _ensembles32()[name]
        Tc32 = td.critical_temperature(e32)
        assert Tc32.dtype == jnp.float32
    e64 = _to64(e32)
    Tc = float(td.critical_temperature(e64))
    assert float(Tc32) == pytest.approx(Tc, rel=2.5e-7)
    for frac in (0.99, 1.01):
        T = float(np.float32(frac * Tc))
        for fname, fn in FLOAT_FUNCS.items():
            ref = fn(e64, T)
            with jax.enable_x64(False):
                out = fn(e32, np.float32(T))
            _close32(out, ref)
    with jax.enable_x64(False):
        T = np.float32(0.99 * Tc)
        jitted = jax.jit(_three)(e32, T)
    _close32(jitted, _three(e64, float(T)))


def test_float32_goldstone_gradients_and_criteria():
    with jax.enable_x64(False):
        sph = td.Hypersphere(1.0, 4)
        chi = np.asarray(td.susceptibility(sph, 0.125))
        chi_jit = np.asarray(jax.jit(lambda T: td.susceptibility(sph, T))(np.float32(0.125)))
        two = td.TwoDeltas(1.0)
        g32 = jax.grad(lambda T: td.order_parameter(two, T))(np.float32(0.75))
        m_vmap = jax.vmap(lambda T: td.order_parameter(two, T))(jnp.asarray([0.5, 0.99], jnp.float32))
        tc_vp = td.critical_temperature(two, criterion="vp_drift")
        dtc = jax.grad(lambda a: td.critical_temperature(td.TwoDeltas(a)))(np.float32(1.5))
    _, chi_par = _sphere_longitudinal(4, 0.125)
    for c in (chi, chi_jit):
        assert c.dtype == np.float32
        np.testing.assert_array_equal(np.diag(c)[:3], np.inf)
        assert float(c[3, 3]) == pytest.approx(chi_par, rel=2.5e-7)
    assert m_vmap.dtype == jnp.float32
    want = [float(td.order_parameter(TWO, float(np.float32(T)))) for T in (0.5, 0.99)]  # the float32 inputs
    np.testing.assert_allclose(m_vmap, want, rtol=2.5e-7)
    assert float(g32) == pytest.approx(float(jax.grad(lambda T: td.order_parameter(TWO, T))(0.75)), rel=1e-5)
    assert float(tc_vp) == pytest.approx(math.sqrt(2), rel=2.5e-7)
    assert float(dtc) == pytest.approx(3.0, rel=1e-5)


def test_float32_ensemble_with_x64_on_returns_float32():
    e32 = td.TwoDeltas(jnp.asarray(1.0, jnp.float32))
    for out in (td.fixed_point(e32, 0.5, stable=True, x0=jnp.ones(1)), td.susceptibility(e32, 0.9),
                td.heat_capacity(e32, 0.9), td.critical_temperature(e32), td.landau_coefficients(e32, 0.5)):
        assert out.dtype == jnp.float32
    assert float(td.order_parameter(e32, 0.99)) == pytest.approx(0.1725110700, rel=2.5e-7)
