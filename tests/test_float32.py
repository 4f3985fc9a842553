"""Float32 (JAX's default) against float64 for every public function on valid inputs (issue 12).

Each case computes the same quantity twice, once under ``jax.enable_x64(False)`` (what a user
gets by default) and once under ``jax.enable_x64(True)``, building its ensembles, schedules and
inputs inside each mode from float32-representable numbers (so both modes see the same input
values and only the arithmetic differs). The float32 result must lie within the tolerance of
``TOL`` below, normwise per output array:

    max |f32 - f64| <= atol + rtol * max |f64|.

Functions documented to compute in float64 internally (critical exponents, NumPy functions)
must agree to float64 rounding of a float32 result. Critical exponents are also checked
against their exact mean-field values in float32 mode (the README's headline numbers).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _fuzz
import thermodiff as td

pytestmark = pytest.mark.slow  # float32 against float64 for every public function (about 3 min): CI's slow step

# (rtol, atol) normwise per output array; the reason is next to each looser entry. Measured
# worst |f32 - f64| / (atol + rtol max|f64|) on this suite: 0.65 (log_partition, FiniteDataset
# landau at T = 100), 0.14 (closed_form), below 0.05 for the others.
TOL = {
    # closed forms (tanh, log-cosh, softmax, Bessel ratios): a few float32 ulps of the output scale
    "closed_form": (1e-5, 1e-6),
    # log-partition, Landau free energy, log-density: |x|^2/T-size terms are subtracted (the result
    # is O(1) while the terms are up to O(|x|^2/T)), so the absolute error scales with those terms
    "log_partition": (1e-5, 1e-5),
    # posterior covariances at low T are differences of O(1) second moments (generic autodiff:
    # T * d m / d x), so their error is absolute at the scale of |y|^2 times float32 eps
    "covariance": (1e-5, 1e-5),
    # energy moments: Var[E] = T^2 dU/dT by autodiff of T^2 d log Z/dT in the generic form, a
    # difference of O(|x.y|/T) terms at low T (measured worst: 1.6e-6 of the scale, Hypersphere)
    "energy": (2e-5, 1e-5),
    # schedules: the documented domain-wide agreement (1e-5 relative, for the same float32 t)
    "schedule": (1e-5, 0.0),
    # grids: temperatures and times of a sampling grid; the same 1e-5 as the schedules
    "grid": (1e-5, 1e-7),
    # mean-field solves (fixed point, susceptibility, thermodynamics): Newton converged to float32
    # rounding; chi = (I - J)^-1 J amplifies rounding by the distance to T_c (here >= 30% away)
    "mean_field": (1e-4, 1e-5),
    # critical temperatures: a root in log T of a smooth stability function, float32-converged
    "critical_temperature": (1e-5, 0.0),
    # computed internally in float64 (documented): float64 rounding of the float32 cast
    "float64_inside": (1e-6, 0.0),
    # memory / REM closed forms (expm1/log1p forms)
    "memory": (1e-5, 1e-6),
    # deterministic samplers (probability-flow ODE, DDIM eta = 0) from the same x_T: 32 steps of
    # a contracting flow; rounding grows at most like the step count
    "sampler_ode": (1e-4, 1e-4),
    # descents and basins: minima of Phi_T found to the float32 tolerance of the solver (1e-4 of
    # the data scale in float32, documented in hierarchy)
    "descent": (1e-3, 1e-4),
    # score-Jacobian spectra (theory 12): eigenvalues of I - Cov/T, Cov an O(|y|^2) posterior
    # covariance divided by T, so rounding of Cov is amplified by 1/T (as "covariance"; measured
    # worst |f32 - f64| 2.8e-7 on eigenvalues <= 1: 0.015 of the tolerance, FiniteDataset, T = 0.3)
    "spectrum": (1e-5, 1e-5),
    # quadrature of the trainer's weighting evaluated by JAX in the working precision (noise_moments,
    # and the linear denoiser's SGD modes built on those moments; measured worst 0.023 of it)
    "quadrature": (1e-5, 0.0),
    # logit gaps next to an eigenvalue clipped at 1 - 1e-6 (flat directions): float32 holds the clip
    # as 1 - 1.0133e-6, so the logit there differs by log(1.0133) = 0.0132 (measured 0.0132)
    "logit_clip": (1e-5, 0.015),
}

# ----------------------------------------------------------------------------- helpers
X_STATES = ([0.3, -0.2], [2.0, 1.0], [-0.75, 0.5])
TEMPERATURES = (0.05, 0.3, 1.0, 5.0, 100.0)


def r32(v):
    """``v`` rounded to float32 and held as float64 NumPy: the same value in both modes."""
    return np.asarray(v, np.float32).astype(np.float64)


def A(v):
    """``v`` (float32-representable) as a JAX array of the current default float dtype."""
    return jnp.asarray(r32(v))


def _leaves(out):
    with jax.enable_x64(True):  # float64 copies of every floating output
        return [np.asarray(a, np.float64) for a in _fuzz._float_leaves(out)]


def both(compute):
    """(float32 result, float64 result) of ``compute()``, each built inside its mode."""
    with jax.enable_x64(False):
        f32 = _leaves(compute())
    with jax.enable_x64(True):
        f64 = _leaves(compute())
    return f32, f64


def assert_close(compute, tol: str, what: str = ""):
    rtol, atol = TOL[tol]
    f32, f64 = both(compute)
    assert len(f32) == len(f64) and f32, (what, len(f32), len(f64))
    for i, (a, b) in enumerate(zip(f32, f64)):
        assert a.shape == b.shape, (what, i, a.shape, b.shape)
        assert np.array_equal(np.isfinite(a), np.isfinite(b)), (what, i, a, b)
        fin = np.isfinite(b)
        if not fin.any():
            continue
        err = np.max(np.abs(a[fin] - b[fin]))
        scale = np.max(np.abs(b[fin]))
        assert err <= atol + rtol * scale, f"{what} output {i}: |f32 - f64| = {err:.3g} > {atol:g} + {rtol:g} * {scale:.3g}"


def ensembles():
    """name -> () -> a dimension-2 ensemble of each kind (built in the current mode)."""
    pts = np.random.default_rng(0).normal(size=(5, 2))
    pts = r32(np.concatenate([pts, -pts]))
    return {
        "TwoDeltas": lambda: td.TwoDeltas(A([1.0, 0.5])),
        "GaussianMixture": lambda: td.GaussianMixture(A([[1.25, 0.375], [-1.25, -0.375]]), A(0.25)),
        "GaussianMixture_asym": lambda: td.GaussianMixture(A([[1.0, 0.0], [-0.5, 1.0], [0.0, -2.0]]), A([0.25, 0.5, 0.0]), A([0.25, 0.25, 0.5])),
        "Gaussian": lambda: td.Gaussian(A([0.5, -1.0]), A(0.75)),
        "Hypersphere": lambda: td.Hypersphere(A(1.25), 2),
        "CurieWeiss": lambda: td.CurieWeiss(2, A(1.5)),
        "FiniteDataset": lambda: td.FiniteDataset(jnp.asarray(pts)),
        # a permutation basis: orthonormal exactly in both precisions
        "LinearManifold": lambda: td.LinearManifold(A([1.25, 0.0625]), A([[0.0, 1.0], [1.0, 0.0]]), A([0.5, -0.25])),
    }


ENS = ensembles()
METHOD_TOL = {
    "denoiser": "closed_form",
    "score": "closed_form",
    "posterior_cov": "covariance",
    "log_partition": "log_partition",
    "landau": "log_partition",
    "log_density": "log_partition",
    "energy_moments": "energy",
}


# ----------------------------------------------------------------------------- ensembles
@pytest.mark.parametrize("method", sorted(METHOD_TOL))
@pytest.mark.parametrize("name", sorted(ENS))
def test_ensemble_methods(name, method):
    for T in TEMPERATURES:
        for x in X_STATES:
            assert_close(
                lambda: getattr(ENS[name](), method)(A(x), A(T)),
                METHOD_TOL[method],
                f"{name}.{method}(x={x}, T={T})",
            )


@pytest.mark.parametrize("sched", sorted(_fuzz.SCHEDULES))
def test_diffused(sched):
    ctor, t_max, t_ok, _ = _fuzz.SCHEDULES[sched]
    for frac in (0.0625, 0.25, 0.5):
        t = r32(frac * t_max)
        for m in ("denoiser", "score", "noise_prediction", "posterior_cov"):
            assert_close(lambda: getattr(td.Diffused(ENS["TwoDeltas"](), ctor()), m)(A([0.3, -0.2]), jnp.asarray(t)), "closed_form", f"Diffused({sched}).{m}(t={t})")


# ----------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("method", ["temperature", "signal_scale", "noise_scale", "drift_coefficient", "diffusion", "abar"])
@pytest.mark.parametrize("sched", sorted(_fuzz.SCHEDULES))
def test_schedule_methods(sched, method):
    ctor, t_max, _, _ = _fuzz.SCHEDULES[sched]
    ts = r32(np.concatenate([[1e-3, 1e-2], np.linspace(0.05, 0.95, 10)]) * t_max)
    assert_close(lambda: getattr(ctor(), method)(jnp.asarray(ts)), "schedule", f"{sched}.{method}")


@pytest.mark.parametrize("sched", sorted(_fuzz.SCHEDULES))
def test_schedule_time_at_temperature(sched):
    ctor, _, _, _ = _fuzz.SCHEDULES[sched]
    Ts = r32([1e-4, 1e-2, 0.3, 1.0, 7.0, 50.0])
    assert_close(lambda: ctor().time_at_temperature(jnp.asarray(Ts)), "schedule", f"{sched}.time_at_temperature")


GRIDS = ("UniformGrid", "KarrasGrid", "CriticalGrid")
THERMO = ("entropy", "free_energy", "heat_capacity", "internal_energy")
HOPFIELD = ("hopfield_energy", "hopfield_update", "posterior_condensation")


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("sched", ["VE", "VP", "OU"])
def test_time_grid(sched, grid):
    def compute():
        g = td.CriticalGrid(A(1.25)) if grid == "CriticalGrid" else getattr(td, grid)()
        return td.time_grid(_fuzz.SCHEDULES[sched][0](), 16, g, T_start=A(20.0), T_end=A(1e-3))

    assert_close(compute, "grid", f"time_grid({sched}, {grid})")


# ----------------------------------------------------------------------------- mean field
# Hypersphere and Curie-Weiss compile for 15-25 s per precision (Bessel ratios, quadrature grid)
SLOW = pytest.mark.slow
SYMMETRIC = ("TwoDeltas", "GaussianMixture", pytest.param("Hypersphere", marks=SLOW), pytest.param("CurieWeiss", marks=SLOW), "FiniteDataset")


@pytest.mark.parametrize("name", SYMMETRIC)
def test_critical_temperature(name):
    assert_close(lambda: td.critical_temperature(ENS[name]()), "critical_temperature", f"critical_temperature({name})")


def test_critical_exponents_two_deltas_float32():
    """The README's headline: beta = 1/2, gamma = 1, delta = 3 (jump 3/2) in JAX's default precision."""
    with jax.enable_x64(False):
        ex = td.critical_exponents(td.TwoDeltas(1.0))
    assert abs(ex["T_c"] - 1.0) < 1e-6
    for key, exact in (("beta", 0.5), ("gamma", 1.0), ("gamma_prime", 1.0), ("delta", 3.0)):
        assert abs(ex[key].value - exact) < 1e-3, (key, ex[key])
    assert abs(ex["heat_capacity_jump"]["value"] - 1.5) < 1e-3
    assert abs(ex["amplitude_ratio"]["value"] - 2.0) < 1e-3


def test_critical_exponents_float32_equals_float64():
    def compute():
        ex = td.critical_exponents(td.TwoDeltas(A([1.0, 0.5])))
        return [ex["T_c"]] + [ex[k].value for k in ("beta", "gamma", "gamma_prime", "delta")]

    assert_close(compute, "float64_inside", "critical_exponents")


MF_TEMPERATURES = (0.5, 0.85, 1.75, 4.0)  # T_c of the fuzzed ensembles lies in [0.78, 1.56]


MF_FUNCTIONS = ("fixed_point", "order_parameter", "susceptibility", "susceptibility_h")
# every function on two deltas; one or two per other ensemble by default (each pair compiles for
# 10-20 s in the two precisions), the rest in the slow run
MF_FAST = {("GaussianMixture", "fixed_point"), ("GaussianMixture", "susceptibility"), ("FiniteDataset", "susceptibility"), ("Gaussian", "fixed_point")}
MF_CASES = [
    pytest.param(name, fn, marks=() if name == "TwoDeltas" or (name, fn) in MF_FAST else SLOW)
    for name in ("TwoDeltas", "GaussianMixture", "FiniteDataset", "Gaussian")
    for fn in MF_FUNCTIONS
]


@pytest.mark.parametrize("name,fn", MF_CASES)
def test_mean_field(name, fn):
    for T in MF_TEMPERATURES:
        def compute():
            ens = ENS[name]()
            if fn == "fixed_point":
                return td.fixed_point(ens, A(T), x0=A([0.5, 0.25]))
            if fn == "order_parameter":
                return td.order_parameter(ens, A(T))
            if fn == "susceptibility":
                return td.susceptibility(ens, A(T))
            return td.susceptibility(ens, A(T), h=A([0.125, 0.0]))

        assert_close(compute, "mean_field", f"{fn}({name}, T={T})")


def test_landau_coefficients_two_deltas():
    for T in MF_TEMPERATURES:
        assert_close(lambda: td.landau_coefficients(td.TwoDeltas(A(1.0)), A(T), order=6), "mean_field", f"landau_coefficients(T={T})")
    with jax.enable_x64(False):  # exact: c2 = (1 - 1/T)/2, c4 = 1/(12 T^3), c6 = -1/(45 T^5)
        c = np.asarray(td.landau_coefficients(td.TwoDeltas(1.0), 0.5, order=6))
    np.testing.assert_allclose(c[[2, 4, 6]], [(1 - 1 / 0.5) / 2, 1 / (12 * 0.5**3), -1 / (45 * 0.5**5)], rtol=1e-5)


def test_principal_axis():
    for name in ("TwoDeltas", "GaussianMixture", "FiniteDataset"):
        assert_close(lambda: td.principal_axis(ENS[name]())[0], "closed_form", f"principal_axis({name})")


@pytest.mark.parametrize("fn", THERMO)
@pytest.mark.parametrize("name", ["TwoDeltas", pytest.param("GaussianMixture", marks=SLOW), pytest.param("Hypersphere", marks=SLOW)])
def test_thermodynamics(name, fn):
    for T in MF_TEMPERATURES:
        assert_close(lambda: getattr(td, fn)(ENS[name](), A(T)), "mean_field", f"{fn}({name}, T={T})")


# ----------------------------------------------------------------------------- memory (REM)
def test_memory_closed_forms():
    assert_close(lambda: td.collapse_temperature(A([100.0, 2e4]), A(64.0)), "memory", "collapse_temperature")
    assert_close(lambda: td.collapse_temperature(A(2e4), A(256.0), schedule=td.OU()), "memory", "collapse_temperature(OU)")
    assert_close(lambda: td.rem_entropy(A(2e4), A(16.0), A([0.5, 2.0, 8.0])), "memory", "rem_entropy")
    assert_close(lambda: td.hopfield_capacity_prediction(A(8.0), A([0.5, 1.0, 2.0])), "memory", "hopfield_capacity_prediction")


@pytest.mark.parametrize("fn", HOPFIELD)
def test_hopfield(fn):
    pts = r32(np.random.default_rng(1).normal(size=(12, 2)))
    for T in (0.05, 0.5, 3.0):
        for x in X_STATES:
            assert_close(lambda: getattr(td, fn)(jnp.asarray(pts), A(x), A(T)), "log_partition", f"{fn}(x={x}, T={T})")


# ----------------------------------------------------------------------------- dynamics
def test_class_posterior():
    labels = np.arange(10) % 2
    for T in (0.05, 0.5, 3.0):
        for x in X_STATES:
            assert_close(lambda: td.class_posterior(ENS["TwoDeltas"](), A(x), A(T)), "closed_form", f"class_posterior(TwoDeltas, {x}, {T})")
            assert_close(
                lambda: td.class_posterior(ENS["FiniteDataset"](), A(x), A(T), labels=labels, n_classes=2),
                "closed_form",
                f"class_posterior(FiniteDataset, {x}, {T})",
            )


def test_exact_cloning_and_sensitivity():
    for T in (0.3, 1.0, 1.25, 4.0):
        assert_close(lambda: td.cloning_probability(ENS["TwoDeltas"](), None, A(T)).value, "mean_field", f"cloning_probability(T={T})")
        assert_close(lambda: td.decision_sensitivity(ENS["TwoDeltas"](), A(T)), "mean_field", f"decision_sensitivity(T={T})")


def test_bath_exact_moments():
    for T in (0.5, 1.0, 2.0):
        assert_close(lambda: td.GenerativeBath(16, ENS["TwoDeltas"]()).exact_moments(A(T)), "mean_field", f"exact_moments(T={T})")


# ----------------------------------------------------------------------------- hierarchy
def test_descend_and_basins():
    for T in (0.1, 0.5, 2.0):
        assert_close(lambda: td.descend(ENS["FiniteDataset"](), A(T), A([0.3, -0.2]))[0], "descent", f"descend(T={T})")
        assert_close(lambda: np.sort(td.basins(ENS["FiniteDataset"](), A(T), ENS["FiniteDataset"]().points).minima, axis=0), "descent", f"basins(T={T})")


# ----------------------------------------------------------------------------- samplers
ODE_SOLVERS = {
    "ProbabilityFlowHeun": lambda: td.ProbabilityFlowHeun(),
    "ProbabilityFlowEuler": lambda: td.ProbabilityFlowEuler(),
    "DDIM": lambda: td.DDIM(0.0),
    "ExponentialEuler_ode": lambda: td.ExponentialEuler(ode=True),
}


@pytest.mark.parametrize("solver", sorted(ODE_SOLVERS))
def test_deterministic_samplers_same_start(solver):
    """Same x_T and key: a deterministic sampler's float32 output follows float64 to rounding growth."""
    for x_T in ([1.5, -0.5], [-3.0, 2.0]):
        assert_close(
            lambda: td.sample(ENS["GaussianMixture"](), td.VP(), ODE_SOLVERS[solver](), jax.random.key(0), A(x_T), steps=32, T_end=A(1e-3)),
            "sampler_ode",
            f"sample({solver}, x_T={x_T})",
        )


def test_stochastic_sampler_statistics():
    """Stochastic samplers draw float64 normals from other bits than float32 ones (JAX), so per-key
    paths differ by design; their sample variance agrees within Monte Carlo error instead."""
    n = 512

    def variances():
        ens = td.Gaussian(A([0.5, -1.0]), A(0.75))
        keys = jax.random.split(jax.random.key(3), n)
        x_T = jax.vmap(lambda k: jax.random.normal(k, (2,)) * jnp.sqrt(td.VP().temperature(1.0) + 0.75))(keys)
        f = jax.jit(jax.vmap(lambda k, x: td.sample(ens, td.VP(), td.EulerMaruyama(), k, x, steps=64, T_end=1e-3)))
        out = f(keys, x_T * td.VP().signal_scale(1.0))
        return np.asarray(jnp.var(out, axis=0))

    with jax.enable_x64(False):
        v32 = variances()
    with jax.enable_x64(True):
        v64 = variances()
    se = 0.75 * math.sqrt(2.0 / n)
    assert np.all(np.abs(v32 - v64) < 6 * math.sqrt(2) * se), (v32, v64)


# ----------------------------------------------------------------------------- units, subspace
def test_noise_conventions_float64_inside():
    assert_close(lambda: td.noise_conventions(r32([1e-3, 0.5, 20.0])), "float64_inside", "noise_conventions")
    assert_close(lambda: td.temperature_from(r32([0.25, 0.5]), "vp_t"), "float64_inside", "temperature_from")


def test_principal_subspace_float64_inside():
    X = r32(np.random.default_rng(2).normal(size=(50, 4)) * [3.0, 2.0, 1.0, 0.5])
    assert_close(lambda: td.principal_subspace(X, 2, method="exact").eigenvalues, "float64_inside", "principal_subspace")


# ----------------------------------------------------------------------------- geometry (theory 12)
# H4/2: a basis with exactly orthonormal columns (entries +-1/2) in both precisions
H4 = 0.5 * np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], np.float64)[:, :3]
SPEC_TEMPERATURES = (0.02, 0.3, 1.0, 5.0)


def _manifold():
    return td.LinearManifold(A([2.0, 0.25, 0.0625]), A(H4), A([0.5, -0.25, 0.0, 1.0]))


def test_score_jacobian_spectrum_linear_manifold():
    """Closed form T/(v_i + T) and 1 (d = 4, r = 3) by eigh of I - Cov/T, and its exact ``spectrum``."""
    for T in SPEC_TEMPERATURES:
        assert_close(lambda: td.score_jacobian_spectrum(_manifold(), A([0.3, -0.2, 1.0, 0.5]), A(T)).eigenvalues, "spectrum", f"LinearManifold spectrum(T={T})")
        assert_close(lambda: _manifold().spectrum(A(T)), "closed_form", f"LinearManifold.spectrum(T={T})")
        assert_close(lambda: td.effective_dimension(_manifold().spectrum(A(T))), "closed_form", f"effective_dimension(T={T})")


def test_score_jacobian_spectrum_finite_dataset():
    """The empirical law (10 points, d = 2): A = I - Cov/T from the closed-form posterior covariance,
    dense and Lanczos (k = 1); in native VP coordinates the same spectrum."""
    for T in SPEC_TEMPERATURES[1:]:
        for x in X_STATES:
            assert_close(lambda: td.score_jacobian_spectrum(ENS["FiniteDataset"](), A(x), A(T)).eigenvalues, "spectrum", f"FiniteDataset spectrum(x={x}, T={T})")
            assert_close(
                lambda: td.score_jacobian_spectrum(ENS["FiniteDataset"](), A(x), A(T), k=1, method="lanczos", krylov_dim=2).eigenvalues,
                "spectrum",
                f"FiniteDataset Lanczos spectrum(x={x}, T={T})",
            )
    assert_close(lambda: td.score_jacobian_spectrum(ENS["FiniteDataset"](), A([0.3, -0.2]), A(0.5), schedule=td.VP()).eigenvalues, "spectrum", "FiniteDataset spectrum (VP, t = 0.5)")


def test_spectral_gaps_and_sweep():
    lam = r32([[0.02, 0.2, 0.5, 0.9], [0.1, 0.15, 0.7, 0.75]])
    for scale in ("logit", "log", "linear"):
        assert_close(lambda: td.spectral_gaps(jnp.asarray(lam), n_gaps=2, scale=scale), "closed_form", f"spectral_gaps({scale})")
    # Gaussian data: the spectrum is the same at every state, so the sweep is deterministic
    Ts = r32([0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0])

    def sweep():
        return td.spectrum_sweep(_manifold(), jnp.asarray(Ts), key=jax.random.key(0), n_states=2)

    fields = ("mean_eigenvalues", "eigenvalues", "effective_dimension", "effective_dimension_stderr", "asymmetry", "max_residual")
    assert_close(lambda: [getattr(sweep(), f) for f in fields], "spectrum", "spectrum_sweep(LinearManifold)")
    # the flat directions (eigenvalue 1) are clipped to 1 - 1e-6, which float32 rounds to 1 - 1.013e-6
    assert_close(lambda: sweep().gap_sizes, "logit_clip", "spectrum_sweep(LinearManifold).gap_sizes")
    assert_close(lambda: td.freeze_temperatures(sweep()).temperatures, "spectrum", "freeze_temperatures")
    assert_close(lambda: td.compare_spectra({"law": _manifold()}, jnp.asarray(Ts), data=_manifold(), n_states=2)["law"].mean_eigenvalues, "spectrum", "compare_spectra")
    assert_close(lambda: td.block_variances([(2.0, 2), (0.0625, 3)]), "closed_form", "block_variances")


# ----------------------------------------------------------------------------- data needed (theory 10, 11)
def test_data_need_float64_inside():
    """A NumPy float64 planner: the same numbers in both modes (data enter through float32 JAX only
    for validation; the spectrum is taken from the float64 array)."""
    X = r32(np.random.default_rng(3).normal(size=(40, 3)) * [2.0, 1.0, 0.5])

    def numbers():
        need = td.data_need(X, target_temperature=0.1, features=20, probe={10: 40.0, 20: 90.0, 40: 170.0}, tau_gen=30.0)
        rows = [r.value for r in need.rows if r.value is not None]
        return [need.log10_n, need.log10_n_spectrum, need.collapse_temperature, need.collapse_temperature_spectrum] + rows

    assert_close(numbers, "float64_inside", "data_need")


def test_memorization_law_float64_inside():
    def law():
        fit = td.fit_memorization_law(r32([100, 200, 400, 800]), r32([130.0, 270.0, 520.0, 1100.0]), tau_mem_se=r32([10.0, 20.0, 30.0, 60.0]))
        assert isinstance(fit, td.MemorizationLaw)
        return [fit.c, fit.a, fit.c_se, fit.a_se, *fit.predict(r32([50.0, 5000.0]))]

    assert_close(law, "float64_inside", "fit_memorization_law")
    assert_close(lambda: td.cosine_agreement(r32([[1.0, 0.5], [0.25, -1.0]]), r32([[0.75, 0.5], [0.5, -1.0]]), r32([0.125, 0.0])).value, "float64_inside", "cosine_agreement")


def _trainer():
    return td.Trainer(T_min=A(1e-3), T_max=A(10.0), batch_size=4, grad_clip=None)


def test_noise_moments_and_linear_modes():
    """Quadrature of the trainer's weighting (evaluated by JAX in the working precision) and the
    exact SGD modes of the linear denoiser (NumPy float64 on those moments)."""
    X = r32(np.random.default_rng(4).normal(size=(30, 2)) * [1.5, 0.5])
    assert_close(lambda: td.noise_moments(_trainer(), A(0.75)), "quadrature", "noise_moments(UniformTime)")
    assert_close(
        lambda: td.noise_moments(td.Trainer(T_min=A(1e-3), T_max=A(10.0), batch_size=4, noise=td.LogNormal()), A(0.75)),
        "quadrature",
        "noise_moments(LogNormal)",
    )

    def modes():
        m = td.linear_modes(td.linear_model(X), X, learning_rate=0.02, trainer=_trainer())
        return [m.variances, m.fixed_point, m.rates, m.learning_times, td.linear_sgd_weights(td.linear_model(X), X, np.array([0, 10, 100]), learning_rate=0.02, trainer=_trainer())]

    assert_close(modes, "quadrature", "linear_modes")


def test_solvable_model_denoisers():
    """The linear and Gaussian-mixture models (deterministic weights and means) as VE denoisers."""
    X = r32(np.random.default_rng(5).normal(size=(8, 2)))
    W = r32([[0.75, 0.125], [0.125, 0.5]])
    means = r32([[1.0, 0.5], [-1.0, -0.5], [0.25, -1.0]])
    for T in (0.05, 0.5, 3.0):
        for x in X_STATES:
            assert_close(lambda: td.linear_model(X, weight=W).denoiser(A(x), A(T)), "closed_form", f"linear_model.denoiser(x={x}, T={T})")
            assert_close(lambda: td.mixture_model(X, means=means, variance=0.25).denoiser(A(x), A(T)), "closed_form", f"mixture_model.denoiser(x={x}, T={T})")


# ----------------------------------------------------------------------------- exact scores at scale (theory 14)
def _scale_points():
    pts = np.random.default_rng(6).normal(size=(24, 2))
    return jnp.asarray(r32(np.concatenate([pts, -pts])))


SCALE_DATASETS = {
    # groups of 4, at most 4 summed exactly, tol 1e-6 R (the default): certified at low T, dense above
    "CertifiedDataset": lambda: td.CertifiedDataset(_scale_points(), group_size=4, max_exact_groups=4, chunk_size=16),
    "KNearestDataset": lambda: td.KNearestDataset(_scale_points(), k=5, chunk_size=16),
    "ShardedDataset": lambda: td.ShardedDataset(_scale_points(), chunk_size=16),  # this process's devices
    "gaussian_approximation": lambda: td.gaussian_approximation(_scale_points()),
}


@pytest.mark.parametrize("name", sorted(SCALE_DATASETS))
def test_scale_denoisers(name):
    """The certified, k-NN and sharded datasets and the Gaussian approximation (theory section 14).
    The certified denoiser is certified to tol R = 1e-6 R in either precision: f32 and f64 may differ
    by 2 tol R (R = 2.56 here) beyond rounding, inside the closed-form tolerance (1e-5 relative); in
    float32 it certifies at T = 0.05, x = (2, 1) and falls back to the dense path elsewhere. Measured
    worst |f32 - f64| / tolerance: 0.092 (KNearestDataset.denoiser), 0.021 (ShardedDataset), 0.017
    (CertifiedDataset), 0.016 (gaussian_approximation log_partition), below 0.01 for the others."""
    methods = ("denoiser", "log_partition") + (("posterior_cov",) if name != "CertifiedDataset" else ())
    for T in TEMPERATURES:
        for x in X_STATES:
            for m in methods:
                assert_close(lambda: getattr(SCALE_DATASETS[name](), m)(A(x), A(T)), METHOD_TOL[m], f"{name}.{m}(x={x}, T={T})")
    if name == "CertifiedDataset":
        for T in TEMPERATURES:
            assert_close(lambda: SCALE_DATASETS[name]().certified_denoiser(A(X_STATES[0]), A(T))[0], "closed_form", f"certified_denoiser(T={T})")
    if name == "KNearestDataset":
        for T in TEMPERATURES:
            assert_close(lambda: SCALE_DATASETS[name]().dropped_mass_bound(A(X_STATES[1]), A(T)), "closed_form", f"dropped_mass_bound(T={T})")


# ----------------------------------------------------------------------------- coverage
# Public names not compared here, with the reason. Every other computing name of
# thermodiff.__all__ must be called in this file (checked below, so a new function cannot be
# forgotten).
NOT_COMPARED = {
    # Monte Carlo: JAX draws float64 normals/uniforms from other bits than float32 ones, so the
    # same key gives other samples in each precision; their estimators are checked against exact
    # values in their own test files (and the stochastic sampler statistically above)
    "class_change_probability": "random draws", "perturbation_response": "random draws",
    "susceptibility_trace": "random draws", "denoising_loss": "random draws",
    "irreducible_loss": "random draws", "excess_loss": "random draws",
    "generalization_error": "random draws", "memorization_fraction": "bootstrap draws",
    "generate": "random starts", "late_start": "random draw", "hopfield_capacity": "random patterns",
    "hopfield_fixed_points": "random starts", "excess_entropy": "random draws",
    "collapse_temperature_from_data": "random draws", "measure_collapse": "random trajectories",
    "GenerativeBath": "Monte Carlo chains (exact_moments is compared)", "infer_classes": "random restarts",
    "compare_to_exact": "random draws", "Diagnostics": "random draws",
    "first_split": "compared through critical_temperature(criterion='first_split') in test_hierarchy",
    "first_split_temperature": "as first_split", "bifurcation_tree": "host-side tree of first_split",
    "speciation_time": "spectrum in float64 NumPy; exact part is first_split",
    # training: float32 is the intended precision of networks (random initialisation)
    "train": "random init", "train_step": "random init", "Trainer": "random init", "stack_models": "no arithmetic",
    "ResidualMLP": "random init", "UNet": "random init", "SinusoidalEmbedding": "no state",
    "Preconditioned": "wraps a randomly initialised net",
    # NumPy float64 host functions (precision independent by construction)
    "data_scale": "NumPy float64", "scale_data": "NumPy float64", "subspace_dimension": "integer result",
    "speciation_temperature": "NumPy float64", "detect_tau_gen": "NumPy float64", "detect_tau_mem": "NumPy float64",
    "load_digits": "data file", "load_digits_upsampled": "data file", "data_fingerprint": "hash",
    "load_checkpoint": "file input", "save_checkpoint": "file output",
    # models wrap user callables (their arithmetic is the user's): compared through sample()
    "Score": "user callable", "Denoiser": "user callable", "NoisePrediction": "user callable", "Rescaled": "user callable",
    # solvers and grids without a direct call here are exercised through sample() and time_grid()
    "EulerMaruyama": "through the statistics test", "StochasticHeun": "random draws",
    "LangevinCorrector": "random draws", "LowDiscrepancy": "random draws", "LogNormal": "random draws",
    "UniformTime": "random draws",
    # weighting strategies: used inside the training loss only
    "EDMWeighting": "training only", "NoiseVarianceWeighting": "training only", "SNRWeighting": "training only",
    "UnitWeighting": "training only",
    # geometry, data needed, solvable models (theory 10-12)
    "manifold_points": "random draws (LinearManifold.sample)", "train_test_gap": "random draws",
    "sample_agreement": "random starts (generate)", "agreement_study": "trains networks (random init)",
    "memorization_study": "trains networks (random init)",
    "random_features_model": "random features: JAX draws float64 normals from other bits than float32 ones",
    "RandomFeaturesNet": "random features (as random_features_model)",
    "LinearNet": "compared as the raw net of linear_model", "MixtureNet": "compared as the raw net of mixture_model",
    # exact scores at scale (theory 14)
    "approximation_error": "random draws (its denoisers are compared in test_scale_denoisers)",
    "distributed_init": "initialises the process-global distributed runtime (no arithmetic)",
    "set_vmap_block_size": "a module setting (no arithmetic)", "vmap_block_size": "a module setting (no arithmetic)",
}


def test_float32_table_covers_public_api():
    import inspect
    import re

    src = open(__file__).read()
    called = set(re.findall(r"td\.([A-Za-z_]\w*)", src)) | set(ENS) | set(_fuzz.SCHEDULES) | set(GRIDS + THERMO + HOPFIELD)
    containers = {n for n in td.__all__ if n in _NOT_FUZZED_CONTAINERS}
    missing = sorted(set(td.__all__) - called - set(NOT_COMPARED) - containers)
    assert not missing, f"public names neither compared in float32 nor listed in NOT_COMPARED: {missing}"
    assert inspect.isfunction(test_critical_exponents_two_deltas_float32)


# result containers, abstract bases and constants (nothing to compute)
_NOT_FUZZED_CONTAINERS = {
    "AbstractEnsemble", "AbstractGrid", "AbstractModel", "AbstractNoiseLevels", "AbstractSchedule",
    "AbstractSolver", "AbstractWeighting", "Basins", "BathMoments", "BathTrajectory", "BifurcationTree",
    "Checkpoint", "CheckpointError", "ClassInference", "CollapseMeasurement", "Condensation", "Estimate",
    "ExcessEntropy", "Exponent", "FirstSplit", "HopfieldFixedPoints", "ModelComparison", "NoiseLevel",
    "PrincipalSubspace", "SpeciationPrediction", "SplitNode", "Trajectory", "TrainResult", "TrainState",
    "DataScale", "CONVENTIONS", "DATA_SCALES", "PHI_CRITICAL",
    "JacobianSpectrum", "SpectralGaps", "SpectrumSweep", "Freezing", "DataNeed", "NeedRow", "MemorizationStudy",
    "AgreementStudy", "LinearModes", "TrainTestGap", "ApproximationError",
}
