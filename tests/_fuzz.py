"""A fuzz of the public API: every argument of every computing function, one bad value at a time.

Issue 12 ("Correct by default"): an eager call with an invalid argument must raise a
ValueError/TypeError that names the argument (as spelled in the signature) from thermodiff's own
code; under ``jax.jit``/``jax.vmap`` an invalid temperature, time or state must come back as NaN
(the whole output, and only the bad lane of a vmap) or as an ``eqx.error_if`` error, never as a
plausible number, and the docstring must say so ("Under jit: ...").

The table ``TARGETS`` lists each public callable with one valid call (small sizes) and its
argument slots with their kind; ``bad_values`` generates the invalid values of each kind (NaN,
inf, T <= 0, 1e39 = float32 overflow, wrong ranks and lengths, empty arrays, None, strings,
bools, bad keys, absurd sizes, bad labels, non-callables). ``CASES`` is the deterministic cross
product: for each target its valid call, then every one-argument mutation of it.

Everything runs in JAX's default float32 mode (x64 off), where T = 1e39 is not representable.

The calls run in a child process (``python tests/_fuzz.py --child ...``) that appends one JSON
line per finished case; ``run_all`` (the parent) restarts the child after the case that killed it
(a process abort becomes outcome CRASH, a call that does not return within the time limit HANG)
and aggregates the lines into one report (``tally``). ``python tests/_fuzz.py --only a,b`` runs
only the targets whose names start with a or b (a partial run, e.g. after adding targets).

Outcomes of an eager mutated call:

- CLEAN: ValueError/TypeError, raised in thermodiff's code, whose message names the argument;
- UNCLEAN: any other exception (type, raise site inside jax/numpy, or a message not naming it);
- SILENT_NAN: returned a value containing NaN or inf; SILENT_FINITE: returned a finite value;
- CRASH: the process died; HANG: no return within ``CALL_TIMEOUT_S``;
- SKIP: the target's valid call itself fails (reported as BASELINE_ERROR on the valid case).

Jit outcomes (per traceable slot and bad value): JIT_NAN (every floating output entirely NaN),
JIT_ERROR (an eqx.error_if error), JIT_PARTIAL (some NaN), JIT_FINITE (a plausible number),
JIT_OTHER (another exception); the vmap variant checks a batch [valid, bad, valid]: VMAP_OK (bad
lane entirely NaN and the valid lanes equal the unbatched valid result), VMAP_ERROR,
VMAP_FINITE, VMAP_PARTIAL, VMAP_CONTAMINATED (a valid lane changed), VMAP_OTHER.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

CALL_TIMEOUT_S = 60  # per call (with its valid call's first compilation), in the child (signal.alarm)
SLOW_TIMEOUT_S = 180  # the same for the slow targets (tens of seconds of compilation on a loaded host)
STALL_TIMEOUT_S = 240  # the parent kills a child whose results file has not grown for this long
D = 2  # dimension of every fuzzed ensemble and state
N = 6  # number of points of the fuzzed datasets
C = 2  # number of classes of the fuzzed labels
HUGE = 10**13  # an absurd size (past XLA's int32 dimensions)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PKG = os.path.join(ROOT, "thermodiff")

_JAX = None


def _jax():
    """jax, jax.numpy, numpy and thermodiff, imported on first use (the parent needs none)."""
    global _JAX
    if _JAX is None:
        import jax
        import jax.numpy as jnp
        import numpy as np

        import thermodiff as td

        _JAX = (jax, jnp, np, td)
    return _JAX


# ============================================================================ value builders
def _f(v):
    """A float32 JAX array of v."""
    _, jnp, _, _ = _jax()
    return jnp.asarray(v, jnp.float32)


def _np64(v):
    """A float64 NumPy array (how users hand over data; JAX casts it to float32 on entry)."""
    return _jax()[2].asarray(v, _jax()[2].float64)


def _key(seed=0):
    jax = _jax()[0]
    return jax.random.key(seed)


def _pts(n=N, d=D, seed=0):
    np = _jax()[2]
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n // 2, d))
    return _f(np.concatenate([p, -p]))


def _x(d=D):
    np = _jax()[2]
    return _f(np.linspace(0.3, -0.2, d))


# ============================================================================ slots and kinds
class Slot:
    """One argument of a target: its name in the signature, where it goes, and its kind.

    ``at``: positional index in the valid call's args, or None (passed as keyword ``name``).
    ``opt``: None is a valid value (the default), so None is not fuzzed.
    ``names``: the spellings that count as naming the argument (default: ``name`` only).
    ``p``: parameters of the kind (``d`` of a state, ``lo``/``hi`` of a number, ...).
    """

    def __init__(self, name, kind, at=None, *, opt=False, names=None, **p):
        self.name, self.kind, self.at, self.opt = name, kind, at, opt
        self.names = tuple(names) if names else (name,)
        self.p = p


def _nan_vec(d, v):
    return lambda: _f([v] + [0.1] * (d - 1))


def _common(slot, *extra):
    out = list(extra)
    if not slot.opt:
        out.append(("None", lambda: None))
    out += [("str", lambda: "1"), ("bool", lambda: True)]
    return out


def _number(slot):
    """Bad values of a real number with an allowed range [lo, hi] (open ends with lo_open/hi_open)."""
    p = slot.p
    lo, hi = p.get("lo"), p.get("hi")
    vals = [("nan", lambda: float("nan")), ("inf", lambda: float("inf")), ("-inf", lambda: float("-inf"))]
    if lo is not None:
        below = [lo] if p.get("lo_open") else []
        below.append(lo - 1.0)
        if lo - 1.0 != -1.0 and lo > -1.0:
            below.append(-1.0)
        for b in dict.fromkeys(below):
            vals.append((repr(float(b)), lambda b=b: float(b)))
    if hi is not None:
        above = [hi] if p.get("hi_open") else []
        above.append(hi + 1.0)
        for a in dict.fromkeys(above):
            vals.append((repr(float(a)), lambda a=a: float(a)))
    if hi is None and not p.get("f64"):
        vals.append(("1e39", lambda: 1e39))
    if p.get("scalar", True):
        shape = p.get("bad_shape", (2,))
        vals.append((f"shape{shape}".replace(" ", ""), lambda: _f(_jax()[2].full(shape, 0.5))))
    return _common(slot, *vals)


def _int(slot, lo=1, huge=HUGE):
    p = slot.p
    lo = p.get("lo", lo)
    hi = p.get("hi")
    vals = [(repr(lo - 1), lambda: lo - 1)]
    if lo - 1 != -1:
        vals.append(("-1", lambda: -1))
    vals += [("2.5", lambda: 2.5), ("nan", lambda: float("nan"))]
    big = p.get("huge", huge)
    if hi is not None and (p.get("no_huge") or hi + 1 < big):
        vals.append((repr(hi + 1), lambda: hi + 1))
    if not p.get("no_huge"):  # a cap (max_steps, max_starts): a huge one is a valid "no cap"
        vals.append((repr(big), lambda: big))
    return _common(slot, *vals)


def bad_values(slot):
    """[(label, thunk)]: the invalid values of ``slot``; thunks build them in the child."""
    k, p = slot.kind, slot.p
    d = p.get("d", D)
    if k == "T":  # a scalar temperature, finite and > 0
        return _common(
            slot,
            ("nan", lambda: float("nan")),
            ("inf", lambda: float("inf")),
            ("-inf", lambda: float("-inf")),
            ("0", lambda: 0.0),
            ("-1", lambda: -1.0),
            ("1e39", lambda: 1e39),
            ("shape(2,)", lambda: _f([0.3, 0.5])),
            ("shape(1,)", lambda: _f([0.3])),
            ("empty", lambda: _f([])),
        )
    if k == "T_elem":  # temperatures, elementwise (scalar or array), finite and > 0 (< T_max if given)
        vals = [
            ("nan", lambda: float("nan")),
            ("inf", lambda: float("inf")),
            ("-1", lambda: -1.0),
        ]
        if not p.get("f64"):  # a NumPy float64 function: 1e39 is a valid number there
            vals.append(("1e39", lambda: 1e39))
        if not p.get("zero_ok"):
            vals.append(("0", lambda: 0.0))
        if p.get("T_max") is not None:
            big = 10.0 * p["T_max"] + 1.0
            vals.append((f"{big:g}", lambda: big))
        return _common(slot, *vals)
    if k in ("t", "t_elem"):  # a diffusion time in [t_min, t_max]
        beyond = 10.0 * p["t_max"] + 1.0
        vals = [
            ("nan", lambda: float("nan")),
            ("inf", lambda: float("inf")),
            ("-1", lambda: -1.0),
            (f"{beyond:g}", lambda: beyond),
            ("1e39", lambda: 1e39),
        ]
        if k == "t":
            vals.append(("shape(2,)", lambda: _f([0.3, 0.5])))
        return _common(slot, *vals)
    if k == "x":  # one state of shape (d,)
        return _common(
            slot,
            ("nan", _nan_vec(d, float("nan"))),
            ("inf", _nan_vec(d, float("inf"))),
            ("1e39", lambda: _np64([1e39] + [0.1] * (d - 1))),
            (f"shape({d},1)", lambda: _f([[0.1]] * d)),
            (f"shape({d + 1},)", lambda: _f([0.1] * (d + 1))),
            ("shape()", lambda: _f(0.1)),
            ("empty", lambda: _f([])),
        )
    if k == "x_any":  # one state of any length (a model of unknown dimension)
        return _common(
            slot,
            ("nan", _nan_vec(d, float("nan"))),
            ("inf", _nan_vec(d, float("inf"))),
            ("1e39", lambda: _np64([1e39] + [0.1] * (d - 1))),
            ("shape()", lambda: _f(0.1)),
            ("empty", lambda: _f([])),
        )
    if k == "vec":  # a parameter vector of shape (d,) (or a scalar where scalar_ok)
        vals = [
            ("nan", _nan_vec(d, float("nan"))),
            ("inf", _nan_vec(d, float("inf"))),
            ("1e39", lambda: _np64([1e39] + [0.1] * (d - 1))),
            (f"shape({d},2,1)", lambda: _f([[[0.1]] * 2] * d)),
            ("empty", lambda: _f([])),
        ]
        if p.get("f64"):  # a NumPy float64 function: 1e39 is a valid number there
            vals = [v for v in vals if v[0] != "1e39"]
        if p.get("fixed_d"):
            vals.append((f"shape({d + 1},)", lambda: _f([0.1] * (d + 1))))
        return _common(slot, *vals)
    if k == "points":  # data points (n, d)
        n = p.get("n", N)
        vals = [
            ("nan", lambda: _pts(n, d).at[0, 0].set(float("nan"))),
            ("inf", lambda: _pts(n, d).at[0, 0].set(float("inf"))),
            ("1e39", lambda: _np64([[1e39] * d] + [[0.1] * d] * (n - 1))),
            (f"shape({n},)", lambda: _pts(n, d)[:, 0]),
            (f"shape({n},{d},1)", lambda: _pts(n, d)[:, :, None]),
            (f"shape(0,{d})", lambda: _f([[0.0] * d])[:0]),
        ]
        if p.get("f64"):  # a NumPy float64 function: 1e39 is a valid number there
            vals = [v for v in vals if v[0] != "1e39"]
        if p.get("fixed_d"):
            vals.append((f"shape({n},{d + 1})", lambda: _pts(n, d + 1)))
        return _common(slot, *vals)
    if k == "Ts":  # a 1-D array of temperatures > 0
        return _common(
            slot,
            ("has_nan", lambda: _f([0.5, float("nan")])),
            ("has_0", lambda: _f([0.5, 0.0])),
            ("has_-1", lambda: _f([0.5, -1.0])),
            ("has_1e39", lambda: _np64([0.5, 1e39])),
            ("shape(2,1)", lambda: _f([[0.5], [1.0]])),
            ("empty", lambda: _f([])),
        )
    if k == "key":
        def keys2():
            jax = _jax()[0]
            return jax.random.split(_key(), 2)

        vals = [] if p.get("seed_ok") else [("int", lambda: 0)]
        return _common(
            slot,
            *vals,
            ("float", lambda: 1.5),
            ("float_array(2,)", lambda: _f([0.0, 1.0])),
            ("uint32(3,)", lambda: _jax()[1].zeros(3, _jax()[1].uint32)),
            ("keys(2,)", keys2),
        )
    if k in ("size", "int"):
        return _int(slot, lo=p.get("lo", 1))
    if k == "number":
        return _number(slot)
    if k == "labels":  # integer labels (n,) in [0, c)
        n, c = p.get("n", N), p.get("c", C)
        np = _jax()[2]
        ok = [i % c for i in range(n)]
        return _common(
            slot,
            ("out_of_range", lambda: np.array([c + 3] + ok[1:])),
            ("negative", lambda: np.array([-1] + ok[1:])),
            (f"length{n + 1}", lambda: np.array(ok + [0])),
            ("float", lambda: np.array([0.5] * n)),
            (f"shape({n},1)", lambda: np.array(ok)[:, None]),
        )
    if k == "callable":
        return _common(slot, ("int", lambda: 3))
    if k == "schedule":
        return _common(
            slot,
            ("class", lambda: _jax()[3].VE),
            ("ensemble", lambda: _jax()[3].TwoDeltas(1.0)),
            ("float", lambda: 1.0),
        )
    if k == "ensemble":
        return _common(
            slot,
            ("schedule", lambda: _jax()[3].VE()),
            ("class", lambda: _jax()[3].TwoDeltas),
            ("float", lambda: 1.0),
            ("array", lambda: _f([1.0, 0.5])),
        )
    if k == "model":  # a sampler model: ensemble, wrapper or callable
        return _common(slot, ("schedule", lambda: _jax()[3].VE()), ("int", lambda: 3))
    if k == "solver":
        return _common(
            slot,
            ("class", lambda: _jax()[3].EulerMaruyama),
            ("schedule", lambda: _jax()[3].VE()),
            ("float", lambda: 1.0),
        )
    if k == "grid":
        return _common(slot, ("class", lambda: _jax()[3].KarrasGrid), ("float", lambda: 1.0))
    if k == "choice":
        return _common(slot, ("unknown", lambda: "nonsense"), ("empty", lambda: ""), ("int", lambda: 3))
    if k == "spectrum":  # eigenvalues (..., n), n >= lo (a batch of spectra is valid)
        n_min = p.get("lo", 1)
        vals = [
            ("nan", lambda: _f([float("nan"), 0.5])),
            ("inf", lambda: _f([float("inf"), 0.5])),
            ("1e39", lambda: _np64([1e39, 0.5])),
            ("shape()", lambda: _f(0.5)),
            ("empty", lambda: _f([])),
        ]
        if n_min >= 2:
            vals.append(("shape(1,)", lambda: _f([0.5])))
        return _common(slot, *vals)
    if k == "flag":  # True or False (a bool is the valid value: not fuzzed)
        return [("None", lambda: None), ("str", lambda: "yes"), ("int", lambda: 1), ("float", lambda: 0.5)]
    if k == "object":  # an instance of one class (a result, a trainer, a fitted law): anything else
        return _common(slot, ("float", lambda: 1.0), ("array", lambda: _f([1.0, 0.5])), ("dict", lambda: {}), ("schedule", lambda: _jax()[3].VE()))
    if k == "blocks":  # a non-empty sequence of (variance >= 0, count >= 1) pairs
        return _common(
            slot,
            ("empty", lambda: []),
            ("nan_variance", lambda: [(float("nan"), 1)]),
            ("inf_variance", lambda: [(float("inf"), 1)]),
            ("negative_variance", lambda: [(-1.0, 1)]),
            ("str_variance", lambda: [("1", 1)]),
            ("zero_count", lambda: [(1.0, 0)]),
            ("float_count", lambda: [(1.0, 2.5)]),
            ("bool_count", lambda: [(1.0, True)]),
            ("not_a_pair", lambda: [(1.0,)]),
            ("number", lambda: 3.0),
        )
    raise KeyError(k)


# The values kept for a ``short`` target (a sibling of a fully fuzzed one that shares its checks):
# one per failure class. For ``number``/``int``/``size`` slots the first out-of-range value is
# kept as well.
SHORT = {
    "T": ("nan", "0", "1e39", "shape(2,)", "str"),
    "T_elem": ("nan", "-1", "str"),
    "t": ("nan", "-1", "shape(2,)"),
    "t_elem": ("nan", "-1", "str"),
    "x": ("nan", "1e39", "shape(3,)", "str"),
    "x_any": ("nan", "str"),
    "vec": ("nan", "empty", "str"),
    "points": ("nan", "shape(6,)", "None"),
    "Ts": ("has_nan", "has_0", "empty"),
    "key": ("int", "keys(2,)"),
    "size": ("2.5", str(HUGE), "None"),
    "int": ("2.5", "None"),
    "number": ("nan", "str"),
    "labels": ("out_of_range", "negative"),
    "callable": ("int",),
    "schedule": ("class", "float"),
    "ensemble": ("schedule", "float"),
    "model": ("int",),
    "solver": ("class",),
    "grid": ("class",),
    "choice": ("unknown",),
    "spectrum": ("nan", "shape()", "str"),
    "flag": ("int",),
    "object": ("float", "None"),
    "blocks": ("empty", "nan_variance", "zero_count"),
}


def short_values(slot):
    keep = SHORT[slot.kind]
    out, numeric = [], slot.kind not in ("number", "int", "size")
    for label, thunk in bad_values(slot):
        if label in keep:
            out.append((label, thunk))
        elif not numeric and re.fullmatch(r"-?[0-9.e+]+", label) and label != str(HUGE):
            out.append((label, thunk))
            numeric = True
    return out


# Targets fuzzed with every value of every kind; the others (siblings sharing the same checks, or
# less central functions) get the SHORT values, keeping the fuzz near 2,800 eager calls.
FULL = {
    "TwoDeltas", "GaussianMixture", "Gaussian", "Hypersphere", "CurieWeiss", "FiniteDataset", "Diffused",
    "TwoDeltas.denoiser", "TwoDeltas.landau", "TwoDeltas.sample",
    "GaussianMixture.denoiser", "Gaussian.denoiser", "Hypersphere.denoiser", "CurieWeiss.denoiser",
    "FiniteDataset.denoiser", "Diffused.denoiser",
    "VE.temperature", "VE.time_at_temperature", "VP.temperature", "VP.time_at_temperature",
    "VE", "VP", "DDPM", "OU", "Cosine", "time_grid", "sample", "Score", "Rescaled",
    "fixed_point", "susceptibility", "landau_coefficients", "critical_temperature", "critical_exponents",
    "entropy", "class_posterior", "cloning_probability", "collapse_temperature", "rem_entropy", "descend",
    "noise_conventions", "temperature_from",
    "LinearManifold", "LinearManifold.denoiser", "score_jacobian_spectrum", "data_need", "data_need[data]",
    "effective_dimension", "spectral_gaps", "spectrum_sweep", "freeze_temperatures", "block_variances", "manifold_points",
    "fit_memorization_law", "MemorizationLaw.predict", "noise_moments", "LinearNet", "linear_model", "linear_modes",
    "MixtureNet", "mixture_model", "RandomFeaturesNet", "random_features_model", "train_test_gap", "cosine_agreement",
    "sample_agreement",
    "CertifiedDataset", "CertifiedDataset.denoiser", "KNearestDataset", "KNearestDataset.denoiser",
    "gaussian_approximation", "approximation_error",
}


def values(target, slot):
    return bad_values(slot) if target.name in FULL else short_values(slot)


# ============================================================================ targets
class Target:
    """A public callable: ``make() -> (fn, args, kwargs)`` is one valid call (small sizes).

    ``jit``: the slots that are traced under jax.jit (temperatures, times, states): their bad
    floating values are also run inside jax.jit and jax.vmap.
    ``doc``: ``doc() -> object`` whose docstring must state the jit behaviour (default: fn).
    """

    def __init__(self, name, make, slots=(), *, jit=(), doc=None, slow=False, short=False):
        self.name, self.make, self.slots, self.jit, self.doc = name, make, list(slots), tuple(jit), doc
        self.slow = slow  # seconds of compilation for its valid call: only in the slow variant
        self.short = short  # a sibling of a fully fuzzed target (same checks): fewer values per slot

    def slot(self, name):
        return next(s for s in self.slots if s.name == name)


def _td():
    return _jax()[3]


T_OK = 0.7  # a valid temperature (below every fuzzed ensemble's T_c: a non-trivial state)


def _ensembles():
    """name -> () -> a small ensemble of dimension D (float32)."""
    td = _td()
    return {
        "TwoDeltas": lambda: td.TwoDeltas(_f([1.0, 0.5])),
        "GaussianMixture": lambda: td.GaussianMixture(_f([[1.2, 0.3], [-1.2, -0.3]]), 0.3),
        "Gaussian": lambda: td.Gaussian(_f([0.5, -1.0]), 0.7),
        "Hypersphere": lambda: td.Hypersphere(1.3, D),
        "CurieWeiss": lambda: td.CurieWeiss(D, 1.5),
        "FiniteDataset": lambda: td.FiniteDataset(_pts()),
        "LinearManifold": lambda: td.LinearManifold(_f([1.0, 0.25]), _basis(), _f([0.1, -0.2])),
    }


ENSEMBLES = ("TwoDeltas", "GaussianMixture", "Gaussian", "Hypersphere", "CurieWeiss", "FiniteDataset", "LinearManifold")


def _basis():
    """A (D, D) rotation: orthonormal columns (LinearManifold's basis)."""
    return _f([[0.6, -0.8], [0.8, 0.6]])


def _ens(name):
    return _ensembles()[name]()


def _method(obj_thunk, meth, *args, **kwargs):
    def make():
        obj = obj_thunk()
        return getattr(obj, meth), tuple(a() if callable(a) else a for a in args), {
            k: (v() if callable(v) else v) for k, v in kwargs.items()
        }

    return make


def _const(v):
    return lambda: v


# schedules: name -> (constructor thunk, t_max, valid time, T at t_max)
SCHEDULES = {
    "VE": (lambda: _td().VE(), 100.0, 0.5, 100.0),
    "VP": (lambda: _td().VP(), 1.0, 0.5, None),
    "DDPM": (lambda: _td().DDPM(), 1000.0, 500.0, None),
    "OU": (lambda: _td().OU(), 10.0, 0.5, None),
    "Cosine": (lambda: _td().Cosine(), 0.999, 0.5, None),
}


def _ensemble_targets():
    out = []
    x_slot = Slot("x", "x", 0)
    T_slot = Slot("T", "T", 1)
    all_methods = ("landau", "log_partition", "log_density", "denoiser", "score", "posterior_cov", "energy_moments")
    for name in ENSEMBLES:
        methods = all_methods if name == "TwoDeltas" else ("denoiser", "log_partition", "posterior_cov", "energy_moments")
        for m in methods:
            short = name != "TwoDeltas" and m != "denoiser"
            out.append(Target(f"{name}.{m}", _method(lambda n=name: _ens(n), m, _x, _const(T_OK)), [x_slot, T_slot], jit=("x", "T"), short=short))
        out.append(
            Target(
                f"{name}.sample",
                _method(lambda n=name: _ens(n), "sample", _key, _const(3)),
                [Slot("key", "key", 0), Slot("n", "size", 1, lo=0)],  # n = 0: an empty (0, d) sample
                short=name != "TwoDeltas",
            )
        )
    out.append(
        Target("FiniteDataset.posterior_weights", _method(lambda: _ens("FiniteDataset"), "posterior_weights", _x, _const(T_OK)), [x_slot, T_slot], jit=("x", "T"), short=True)
    )
    out.append(
        Target("GaussianMixture.responsibilities", _method(lambda: _ens("GaussianMixture"), "responsibilities", _x, _const(T_OK)), [x_slot, T_slot], jit=("x", "T"), short=True)
    )
    # constructors
    td = lambda: _td()  # noqa: E731
    out += [
        Target("TwoDeltas", lambda: (td().TwoDeltas, (_f([1.0, 0.5]),), {}), [Slot("mu", "vec", 0)]),
        Target(
            "GaussianMixture",
            lambda: (td().GaussianMixture, (_f([[1.2, 0.3], [-1.2, -0.3]]),), {"variances": 0.3, "weights": _f([0.4, 0.6])}),
            [
                Slot("means", "points", 0, n=2),
                Slot("variances", "number", lo=0.0, bad_shape=(3,)),  # (K,) = (2,) is valid
                Slot("weights", "vec", opt=True, fixed_d=True),
            ],
        ),
        Target("Gaussian", lambda: (td().Gaussian, (_f([0.5, -1.0]),), {"variance": 0.7}), [Slot("mean", "vec", 0), Slot("variance", "number", lo=0.0)]),
        Target("Hypersphere", lambda: (td().Hypersphere, (1.3, D), {}), [Slot("radius", "number", 0, lo=0.0, lo_open=True), Slot("dim", "size", 1)]),
        Target(
            "CurieWeiss",
            lambda: (td().CurieWeiss, (D, 1.5), {"coupling": 1.0}),
            [Slot("n_spins", "size", 0, huge=10**9), Slot("data_temperature", "T", 1), Slot("coupling", "number", lo=0.0, lo_open=True)],
        ),
        Target(
            "FiniteDataset",
            lambda: (td().FiniteDataset, (_pts(),), {"weights": _f([1.0] * N), "chunk_size": 4}),
            [Slot("points", "points", 0), Slot("weights", "vec", opt=True, d=N, fixed_d=True), Slot("chunk_size", "size")],
        ),
        Target("Diffused", lambda: (td().Diffused, (_ens("TwoDeltas"), td().VP()), {}), [Slot("ensemble", "ensemble", 0), Slot("schedule", "schedule", 1)]),
    ]
    # Diffused methods: t is a diffusion time of VP (t_max = 1)
    dif = lambda: td().Diffused(_ens("TwoDeltas"), td().VP())  # noqa: E731
    t_slot = Slot("t", "t", 1, t_max=1.0)
    for m in ("denoiser", "score", "posterior_cov", "noise_prediction", "log_density", "to_ve"):
        out.append(Target(f"Diffused.{m}", _method(dif, m, _x, _const(0.5)), [x_slot, t_slot], jit=("x", "t"), short=m != "denoiser"))
    out.append(Target("Diffused.temperature", _method(dif, "temperature", _const(0.5)), [Slot("t", "t", 0, t_max=1.0)], jit=("t",)))
    out.append(
        Target(
            "Diffused.sample_marginal",
            _method(dif, "sample_marginal", _key, _const(3), _const(0.5)),
            [Slot("key", "key", 0), Slot("n", "size", 1, lo=0), Slot("t", "t", 2, t_max=1.0)],
        )
    )
    return out


def _schedule_targets():
    out = []
    td = lambda: _td()  # noqa: E731
    for name, (ctor, t_max, t_ok, T_max) in SCHEDULES.items():
        for m in ("signal_scale", "noise_scale", "drift_coefficient", "diffusion", "temperature", "abar"):
            short = m != "temperature"
            out.append(Target(f"{name}.{m}", _method(ctor, m, _const(t_ok)), [Slot("t", "t_elem", 0, t_max=t_max)], jit=("t",), short=short))
        T_max = T_max if T_max is not None else 1e30
        out.append(
            Target(f"{name}.time_at_temperature", _method(ctor, "time_at_temperature", _const(1.0)), [Slot("T", "T_elem", 0, T_max=T_max, zero_ok=True)], jit=("T",))
        )
    out.append(Target("VP.drift", _method(SCHEDULES["VP"][0], "drift", _x, _const(0.5)), [Slot("x", "x_any", 0), Slot("t", "t_elem", 1, t_max=1.0)], jit=("x", "t")))
    out += [
        Target(
            "VE",
            lambda: (td().VE, (0.01, 10.0), {"t_max": 100.0}),
            [Slot("sigma_min", "number", 0, lo=0.0, lo_open=True), Slot("sigma_max", "number", 1, lo=0.0, lo_open=True), Slot("t_max", "number", lo=0.0, lo_open=True)],
        ),
        Target("VP", lambda: (td().VP, (0.1, 20.0), {}), [Slot("beta_min", "number", 0, lo=0.0), Slot("beta_max", "number", 1, lo=0.0, lo_open=True)]),
        Target(
            "DDPM",
            lambda: (td().DDPM, (), {"beta_start": 1e-4, "beta_end": 0.02, "num_steps": 100}),
            [
                Slot("beta_start", "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True),
                Slot("beta_end", "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True),
                Slot("num_steps", "size", hi=10**6, huge=10**9),
            ],
        ),
        Target("OU", lambda: (td().OU, (10.0,), {}), [Slot("t_max", "number", 0, lo=0.0, lo_open=True)]),
        Target(
            "Cosine",
            lambda: (td().Cosine, (0.008,), {"t_max": 0.999}),
            [Slot("offset", "number", 0, lo=0.0, hi=1.0), Slot("t_max", "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True)],
        ),
    ]
    return out


def _sampler_targets():
    td = lambda: _td()  # noqa: E731
    ens = lambda: _ens("TwoDeltas")  # noqa: E731
    sample_kw = {"steps": 4}

    def make_sample():
        return td().sample, (ens(), td().VP(), td().EulerMaruyama(), _key(), _x()), dict(sample_kw)

    return [
        Target(
            "time_grid",
            lambda: (td().time_grid, (td().VP(), 4), {"grid": td().KarrasGrid(), "T_start": 10.0, "T_end": 0.01}),
            [
                Slot("schedule", "schedule", 0),
                Slot("steps", "size", 1),
                Slot("grid", "grid", opt=True),
                Slot("T_start", "T", opt=True),
                Slot("T_end", "T", opt=True),
            ],
        ),
        Target(
            "sample",
            make_sample,
            [
                Slot("model", "model", 0),
                Slot("schedule", "schedule", 1),
                Slot("solver", "solver", 2),
                Slot("key", "key", 3),
                Slot("x_T", "x", 4),
                Slot("steps", "size", huge=10**9),
                Slot("T_start", "T", opt=True),
                Slot("T_end", "T", opt=True),
                Slot("grid", "grid", opt=True),
                Slot("save_at", "Ts", opt=True),
            ],
        ),
        Target(
            "late_start",
            lambda: (td().late_start, (_key(), _pts(), td().VP(), 0.5), {}),
            [Slot("key", "key", 0), Slot("data", "points", 1), Slot("schedule", "schedule", 2), Slot("t", "t", 3, t_max=1.0)],
        ),
        Target(
            "EulerMaruyama.step",
            lambda: (td().EulerMaruyama().step, (td().Score(lambda x, t: -x), td().VP(), 0.5, 0.4, _x(), _key()), {}),
            [
                Slot("model", "model", 0),
                Slot("schedule", "schedule", 1),
                Slot("t0", "t", 2, t_max=1.0),
                Slot("t1", "t", 3, t_max=1.0),
                Slot("x", "x_any", 4),
                Slot("key", "key", 5),
            ],
            jit=("t0", "x"),
        ),
        Target(
            "KarrasGrid.temperatures",
            lambda: (td().KarrasGrid().temperatures, (10.0, 0.01, 4), {}),
            [Slot("T_start", "T", 0), Slot("T_end", "T", 1), Slot("steps", "size", 2)],
        ),
        Target(
            "UniformGrid.times",
            lambda: (td().UniformGrid().times, (td().VP(), 10.0, 0.01, 4), {}),
            [Slot("schedule", "schedule", 0), Slot("T_start", "T", 1), Slot("T_end", "T", 2), Slot("steps", "size", 3)],
        ),
        Target("KarrasGrid", lambda: (td().KarrasGrid, (7.0,), {}), [Slot("rho", "number", 0, lo=0.0, lo_open=True)]),
        Target(
            "CriticalGrid",
            lambda: (td().CriticalGrid, (1.0,), {"width": 2.2, "fraction": 0.75, "skew": 0.45}),
            [
                Slot("T_c", "T", 0),
                Slot("width", "number", lo=0.0, lo_open=True),
                Slot("fraction", "number", lo=0.0, hi=1.0, hi_open=True),
                Slot("skew", "number"),
            ],
        ),
        Target("DDIM", lambda: (td().DDIM, (0.0,), {}), [Slot("eta", "number", 0, lo=0.0, hi=1.0)]),
        Target(
            "LangevinCorrector",
            lambda: (td().LangevinCorrector, (td().EulerMaruyama(),), {"snr": 0.16, "n_steps": 1}),
            [Slot("predictor", "solver", 0), Slot("snr", "number", lo=0.0, lo_open=True), Slot("n_steps", "size", huge=10**9)],
        ),
    ]


def _model_targets():
    td = lambda: _td()  # noqa: E731
    f = lambda x, t: -x  # noqa: E731
    out = []
    for w in ("Score", "Denoiser", "NoisePrediction"):
        out.append(Target(w, lambda w=w: (getattr(td(), w), (f,), {}), [Slot("fn", "callable", 0)]))
    out.append(
        Target(
            "Denoiser.denoise",
            lambda: (td().Denoiser(f).denoise, (_x(), 0.5, td().VP()), {}),
            [Slot("x", "x_any", 0), Slot("t", "t", 1, t_max=1.0), Slot("schedule", "schedule", 2)],
            jit=("x", "t"),
        )
    )
    out.append(
        Target(
            "Score.score",
            lambda: (td().Score(f).score, (_x(), 0.5, td().VP()), {}),
            [Slot("x", "x_any", 0), Slot("t", "t", 1, t_max=1.0), Slot("schedule", "schedule", 2)],
            jit=("x", "t"),
        )
    )
    out.append(
        Target(
            "Rescaled",
            lambda: (td().Rescaled, (td().Denoiser(f), 2.0), {"b": 0.5}),
            [Slot("model", "model", 0), Slot("a", "number", 1, lo=0.0, lo_open=True), Slot("b", "vec", opt=True)],
        )
    )
    return out


def _meanfield_targets():
    td = lambda: _td()  # noqa: E731
    ens = lambda: _ens("TwoDeltas")  # noqa: E731
    E = Slot("ensemble", "ensemble", 0)
    T = Slot("T", "T", 1)
    out = [
        Target(
            "fixed_point",
            lambda: (td().fixed_point, (ens(), T_OK), {"x0": _x(), "h": _f([0.01, 0.0])}),
            [E, T, Slot("x0", "x", opt=True), Slot("h", "x", opt=True), Slot("max_steps", "size", no_huge=True)],
            jit=("T", "x0"),
        ),
        Target(
            "susceptibility",
            lambda: (td().susceptibility, (ens(), T_OK), {"h": _f([0.01, 0.0]), "x0": _x()}),
            [E, T, Slot("h", "x", opt=True), Slot("x0", "x", opt=True)],
            jit=("T", "h"),
        ),
        Target("order_parameter", lambda: (td().order_parameter, (ens(), T_OK), {"x0": _x()}), [E, T, Slot("x0", "x", opt=True)], jit=("T", "x0")),
        Target(
            "landau_coefficients",
            lambda: (td().landau_coefficients, (ens(), T_OK), {"order": 4, "x": _x(), "direction": _f([1.0, 0.0])}),
            [E, T, Slot("order", "int", lo=0, huge=10**6), Slot("x", "x", opt=True), Slot("direction", "x", opt=True)],
            jit=("T", "x"),
        ),
        Target(
            "critical_temperature",
            lambda: (td().critical_temperature, (ens(),), {"criterion": "thermodynamic"}),
            [E, Slot("criterion", "choice")],
        ),
        Target(
            "critical_exponents",
            lambda: (td().critical_exponents, (ens(),), {"eps": (1e-2, 3e-3, 1e-3)}),
            [E, Slot("eps", "Ts")],
            slow=True,
        ),
        Target("principal_axis", lambda: (td().principal_axis, (ens(),), {}), [E]),
    ]
    for fn in ("entropy", "free_energy", "heat_capacity", "internal_energy"):
        out.append(
            Target(
                fn,
                lambda fn=fn: (getattr(td(), fn), (ens(), T_OK), {"x0": _x()}),
                [E, T, Slot("x", "x", opt=True), Slot("x0", "x", opt=True)],
                jit=("T", "x0"),
                short=fn != "entropy",
            )
        )
    return out


def _dynamics_targets():
    td = lambda: _td()  # noqa: E731
    ens = lambda: _ens("TwoDeltas")  # noqa: E731
    fin = lambda: _ens("FiniteDataset")  # noqa: E731
    E = Slot("ensemble", "ensemble", 0)
    labels = lambda: _jax()[2].array([i % C for i in range(N)])  # noqa: E731
    return [
        Target(
            "class_posterior",
            lambda: (td().class_posterior, (fin(), _x(), T_OK), {"labels": labels(), "n_classes": C}),
            [E, Slot("x", "x", 1), Slot("T", "T", 2), Slot("labels", "labels", opt=True), Slot("n_classes", "size", opt=True, hi=10**6, huge=10**9)],
            jit=("x", "T"),
        ),
        Target(
            "cloning_probability",
            lambda: (td().cloning_probability, (ens(), None, T_OK), {"n_pairs": 16}),
            [Slot("model", "model", 0), Slot("T", "T", 2), Slot("n_pairs", "size")],
        ),
        Target(
            "cloning_probability[simulated]",
            lambda: (td().cloning_probability, (ens(), td().VP(), T_OK), {"key": _key(), "n_pairs": 8, "steps": 4, "T_end": 1e-3}),
            [
                Slot("schedule", "schedule", 1, opt=True),
                Slot("T", "T", 2),
                Slot("key", "key"),
                Slot("n_pairs", "size"),
                Slot("steps", "size", huge=10**9),
                Slot("T_end", "T", opt=True),
                Slot("solver", "solver", opt=True),
                Slot("grid", "grid", opt=True),
            ],
            doc=lambda: td().cloning_probability,
            slow=True,
        ),
        Target(
            "class_change_probability",
            lambda: (td().class_change_probability, (ens(), td().VP(), T_OK, _key()), {"n": 8, "steps": 4, "T_end": 1e-3}),
            [Slot("model", "model", 0), Slot("schedule", "schedule", 1), Slot("T", "T", 2), Slot("key", "key", 3), Slot("n", "size"), Slot("steps", "size", huge=10**9)],
        ),
        Target(
            "perturbation_response",
            lambda: (td().perturbation_response, (ens(), td().VP(), T_OK, _key(), _x()), {"v": _f([1.0, 0.0]), "steps": 4, "T_end": 1e-3}),
            [
                Slot("model", "model", 0),
                Slot("schedule", "schedule", 1),
                Slot("T", "T", 2),
                Slot("key", "key", 3),
                Slot("x_T", "x", 4),
                Slot("v", "x", opt=True),
                Slot("steps", "size", huge=10**9),
            ],
        ),
        Target(
            "susceptibility_trace",
            lambda: (td().susceptibility_trace, (ens(), td().VP(), 0.5, _key(), _x()), {"n_probes": 4}),
            [Slot("model", "model", 0), Slot("schedule", "schedule", 1), Slot("T", "T", 2), Slot("key", "key", 3), Slot("x", "x", 4), Slot("n_probes", "size")],
        ),
        Target("decision_sensitivity", lambda: (td().decision_sensitivity, (ens(), T_OK), {}), [E, Slot("T", "T", 1)], jit=("T",)),
        Target(
            "speciation_temperature",
            lambda: (td().speciation_temperature, (_f([0.5, 1.0, 2.0]), _f([0.9, 0.7, 0.55])), {"level": 0.775}),
            [Slot("temperatures", "Ts", 0), Slot("phi", "vec", 1, d=3, fixed_d=True), Slot("level", "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True)],
        ),
    ]


def _memory_targets():
    td = lambda: _td()  # noqa: E731
    data = Slot("data", "points", 0)
    pat = Slot("patterns", "points", 0)
    return [
        Target(
            "collapse_temperature",
            lambda: (td().collapse_temperature, (1000, 8), {"variance": 1.0}),
            # documented: scalars or arrays, broadcast
            [
                Slot("n_points", "number", 0, lo=2.0, scalar=False),
                Slot("dim", "number", 1, lo=1.0, scalar=False),
                Slot("variance", "number", lo=0.0, lo_open=True, scalar=False),
            ],
        ),
        Target(
            "collapse_temperature[schedule]",
            lambda: (td().collapse_temperature, (1000, 8), {"schedule": td().OU()}),
            [Slot("schedule", "schedule", opt=True)],
            doc=lambda: td().collapse_temperature,
        ),
        Target(
            "rem_entropy",
            lambda: (td().rem_entropy, (1000, 8, 2.0), {"variance": 1.0}),
            [  # documented: scalars or arrays, broadcast
                Slot("n_points", "number", 0, lo=2.0, scalar=False),
                Slot("dim", "number", 1, lo=1.0, scalar=False),
                Slot("T", "T_elem", 2),
                Slot("variance", "number", lo=0.0, lo_open=True, scalar=False),
            ],
            jit=("T",),
        ),
        Target(
            "hopfield_capacity_prediction",
            lambda: (td().hopfield_capacity_prediction, (8, 1.0), {"variance": 1.0}),
            [  # documented: scalars or arrays, broadcast
                Slot("dim", "number", 0, lo=1.0, scalar=False),
                Slot("T", "T_elem", 1),
                Slot("variance", "number", lo=0.0, lo_open=True, scalar=False),
            ],
            jit=("T",),
        ),
        Target("hopfield_energy", lambda: (td().hopfield_energy, (_pts(), _x(), T_OK), {}), [pat, Slot("x", "x", 1), Slot("T", "T", 2)], jit=("x", "T")),
        Target("hopfield_update", lambda: (td().hopfield_update, (_pts(), _x(), T_OK), {}), [pat, Slot("x", "x", 1), Slot("T", "T", 2)], jit=("x", "T")),
        Target(
            "posterior_condensation",
            lambda: (td().posterior_condensation, (_pts(), _x(), T_OK), {"exclude": 1}),
            [data, Slot("x", "x", 1), Slot("T", "T", 2), Slot("exclude", "int", lo=0, hi=N - 1, opt=True)],
            jit=("x", "T"),
        ),
        Target(
            "hopfield_fixed_points",
            lambda: (td().hopfield_fixed_points, (_pts(), T_OK), {"key": _key(), "n_starts": 4}),
            [pat, Slot("T", "T", 1), Slot("key", "key", opt=True), Slot("n_starts", "int", lo=0), Slot("threshold", "number", lo=0.5, hi=1.0, hi_open=True)],
            slow=True,
        ),
        Target(
            "hopfield_capacity",
            lambda: (td().hopfield_capacity, (_key(), _jax()[2].array([2, 4]), 2, 1.0), {"n_trials": 1}),
            # documented: T a scalar or a 1-D array
            [Slot("key", "key", 0), Slot("dim", "size", 2, huge=10**9), Slot("T", "T_elem", 3), Slot("n_trials", "size", huge=10**9), Slot("cue", "choice")],
            slow=True,
        ),
        Target(
            "excess_entropy",
            lambda: (td().excess_entropy, (_pts(), _f([0.5, 2.0]), _key()), {"n_samples": 16}),
            [data, Slot("Ts", "Ts", 1), Slot("key", "key", 2), Slot("n_samples", "size", huge=10**9), Slot("law", "choice")],
            slow=True,
        ),
        Target(
            "collapse_temperature_from_data",
            lambda: (td().collapse_temperature_from_data, (_pts(), _key()), {"n_temperatures": 5, "n_samples": 16}),
            [data, Slot("key", "key", 1), Slot("n_temperatures", "size", lo=2, huge=10**9), Slot("n_samples", "size", huge=10**9)],
            slow=True,
        ),
    ]


def _hierarchy_targets():
    td = lambda: _td()  # noqa: E731
    fin = lambda: _ens("FiniteDataset")  # noqa: E731
    E = Slot("ensemble", "ensemble", 0)
    return [
        Target("descend", lambda: (td().descend, (fin(), T_OK, _x()), {}), [E, Slot("T", "T", 1), Slot("x0", "x", 2)], jit=("T", "x0")),
        Target(
            "basins",
            lambda: (td().basins, (fin(), T_OK, _pts()), {"tol": 1e-3}),
            [E, Slot("T", "T", 1), Slot("starts", "points", 2, fixed_d=True), Slot("tol", "number", lo=0.0, lo_open=True, opt=True)],
        ),
        Target(
            "first_split",
            lambda: (td().first_split, (fin(),), {"n_temperatures": 8, "max_starts": 6}),
            [E, Slot("starts", "points", opt=True, fixed_d=True), Slot("n_temperatures", "size", lo=2, huge=10**9), Slot("max_starts", "size", opt=True, no_huge=True)],
            slow=True,
        ),
        Target(
            "bifurcation_tree",
            lambda: (td().bifurcation_tree, (fin(),), {"n_temperatures": 8, "max_starts": 6}),
            [E, Slot("n_temperatures", "size", lo=2, huge=10**9), Slot("rtol", "number", lo=0.0, lo_open=True)],
            slow=True,
        ),
    ]


def _other_targets():
    td = lambda: _td()  # noqa: E731
    np = lambda: _jax()[2]  # noqa: E731
    X = Slot("X", "points", 0)
    conv = lambda: (td().temperature_from, (1.0, "sigma"), {})  # noqa: E731

    def train_make():
        net = td().ResidualMLP(D, width=8, depth=1, emb_dim=8, key=_key())
        return td().train, (td().Preconditioned(net), _pts()), {"key": _key(1), "steps": 2, "progress": False, "batch_size": 4}

    def trainer_state():
        net = td().ResidualMLP(D, width=8, depth=1, emb_dim=8, key=_key())
        tr = td().Trainer(T_min=1e-3, T_max=10.0, batch_size=4)
        return tr, tr.init(td().Preconditioned(net), _key(1))

    def train_step_make():
        tr, st = trainer_state()
        return td().train_step, (tr, st, _pts()), {}

    return [
        # NumPy float64 functions (documented): 1e39 is a valid number there
        Target("noise_conventions", lambda: (td().noise_conventions, (1.0,), {}), [Slot("T", "T_elem", 0, f64=True)]),
        Target("temperature_from", conv, [Slot("value", "number", 0, lo=0.0, lo_open=True, scalar=False, f64=True), Slot("convention", "choice", 1)]),
        Target("data_scale", lambda: (td().data_scale, (np().asarray(_pts()), "unit-variance"), {}), [X, Slot("scale", "choice", 1)]),
        Target("scale_data", lambda: (td().scale_data, (np().asarray(_pts()), "minus-one-one"), {}), [X, Slot("scale", "choice", 1)]),
        Target(
            "principal_subspace",
            lambda: (td().principal_subspace, (np().asarray(_pts()), 1), {"n_iter": 2, "method": "exact"}),
            [X, Slot("k", "size", 1, hi=D), Slot("n_iter", "size", hi=100, huge=10**9), Slot("method", "choice")],
        ),
        Target(
            "subspace_dimension",
            lambda: (td().subspace_dimension, (np().array([3.0, 1.0, 0.5]),), {"fraction": 0.9}),
            [Slot("evals_or_subspace", "vec", 0, d=3), Slot("fraction", "number", lo=0.0, hi=1.0, lo_open=True)],  # (0, 1]
        ),
        Target(
            "infer_classes",
            lambda: (td().infer_classes, (np().asarray(_pts(20, D)),), {"max_classes": 2, "n_refs": 2, "n_init": 1, "max_components": 3}),
            [Slot("X", "points", 0, n=20), Slot("max_classes", "size", huge=10**9), Slot("key_or_seed", "key", opt=True, seed_ok=True), Slot("n_refs", "size", huge=10**9)],
        ),
        Target(
            "measure_collapse",
            lambda: (td().measure_collapse, (_pts(), td().VP(), _key()), {"n_trajectories": 4, "n_save": 3, "steps": 5}),
            [
                Slot("data", "points", 0),
                Slot("schedule", "schedule", 1),
                Slot("key", "key", 2),
                Slot("n_trajectories", "size", huge=10**9),
                Slot("n_save", "size", lo=2, huge=10**9),
                Slot("steps", "size", huge=10**9),
                Slot("T_high", "T", opt=True),
                Slot("T_low", "T", opt=True),
                Slot("labels", "labels", opt=True, c=N),  # no n_classes: any label in [0, N) is a class
                Slot("threshold", "number", lo=0.0, hi=1.0),
            ],
            slow=True,
        ),
        Target(
            "speciation_time",
            lambda: (td().speciation_time, (_pts(), td().OU()), {"n_levels": 2, "exact": False}),
            [Slot("data", "points", 0), Slot("schedule", "schedule", 1, opt=True), Slot("n_levels", "size", huge=10**9)],
        ),
        Target(
            "Trainer",
            lambda: (td().Trainer, (), {"T_min": 1e-3, "T_max": 10.0, "batch_size": 4, "ema_decay": 0.999}),
            [
                Slot("T_min", "T"),
                Slot("T_max", "T"),
                Slot("batch_size", "size", huge=10**9),
                Slot("ema_decay", "number", lo=0.0, hi=1.0, hi_open=True),
            ],
        ),
        Target(
            "train",
            train_make,
            [Slot("model", "model", 0), Slot("data", "points", 1, fixed_d=True), Slot("key", "key"), Slot("steps", "size", huge=10**9)],
            slow=True,
        ),
        Target("train_step", train_step_make, [Slot("data", "points", 2, fixed_d=True)], slow=True),
        Target(
            "ResidualMLP",
            lambda: (td().ResidualMLP, (D,), {"width": 8, "depth": 1, "emb_dim": 8, "key": _key()}),
            [Slot("dim", "size", 0, huge=10**9), Slot("width", "size", huge=10**9), Slot("key", "key")],
        ),
        Target(
            "Preconditioned",
            lambda: (td().Preconditioned, (td().ResidualMLP(D, width=8, depth=1, emb_dim=8, key=_key()),), {"parametrization": "edm", "sigma_data": 1.0}),
            [Slot("net", "callable", 0), Slot("parametrization", "choice"), Slot("sigma_data", "number", lo=0.0, lo_open=True)],
        ),
        Target(
            "generate",
            lambda: (td().generate, (_ens("TwoDeltas"), _key(), 3), {"steps": 4}),
            [Slot("model", "model", 0), Slot("key", "key", 1), Slot("n", "size", 2), Slot("steps", "size", huge=10**9)],
        ),
        Target(
            "denoising_loss",
            lambda: (td().denoising_loss, (_ens("FiniteDataset"), _pts(), 0.5, _key()), {"n_states": 8}),
            [Slot("model", "model", 0), Slot("train", "points", 1, fixed_d=True), Slot("T", "T", 2), Slot("key", "key", 3), Slot("n_states", "size", huge=10**9)],
        ),
        Target(
            "irreducible_loss",
            lambda: (td().irreducible_loss, (_pts(), 0.5, _key()), {"n_states": 8}),
            [Slot("train", "points", 0), Slot("T", "T", 1), Slot("key", "key", 2), Slot("n_states", "size", huge=10**9)],
        ),
        Target(
            "memorization_fraction",
            lambda: (td().memorization_fraction, (_pts(), _pts(N, D, 1)), {"key": _key(), "n_boot": 4}),
            [Slot("samples", "points", 0, fixed_d=True), Slot("train", "points", 1, fixed_d=True), Slot("n_boot", "size", lo=2, huge=10**9), Slot("ratio", "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True)],
        ),
        Target(
            "GenerativeBath",
            lambda: (td().GenerativeBath, (8, _ens("TwoDeltas")), {}),
            [Slot("n_sites", "size", 0, huge=10**9), Slot("ensemble", "ensemble", 1)],
        ),
        Target(
            "GenerativeBath.exact_moments",
            lambda: (td().GenerativeBath(8, _ens("TwoDeltas")).exact_moments, (T_OK,), {}),
            [Slot("T", "T", 0)],
            jit=("T",),
        ),
        Target(
            "GenerativeBath.simulate",
            lambda: (td().GenerativeBath(8, _ens("TwoDeltas")).simulate, (_key(), T_OK, 4), {}),
            [Slot("key", "key", 0), Slot("temperature", "T", 1), Slot("n_sweeps", "size", 2, huge=10**9)],
        ),
        Target("load_digits", lambda: (td().load_digits, ("none",), {}), [Slot("normalize", "choice", 0)]),
    ]


def _geometry_targets():
    """Theory section 12: score-Jacobian spectra, effective dimensions, gaps, sweeps, LinearManifold."""
    td = lambda: _td()  # noqa: E731
    lm = lambda: _ens("LinearManifold")  # noqa: E731
    fin = lambda: _ens("FiniteDataset")  # noqa: E731
    x, T = Slot("x", "x", 1), Slot("T", "T", 2)

    def sweep():
        return td().spectrum_sweep(lm(), _f([0.1, 0.5, 2.0]), key=_key(), n_states=2, n_gaps=1)

    return [
        Target(
            "score_jacobian_spectrum",
            lambda: (td().score_jacobian_spectrum, (lm(), _x(), T_OK), {"k": 2, "which": "smallest", "method": "dense", "vectors": False, "key": _key()}),
            [
                Slot("model", "ensemble", 0),
                x,
                T,
                Slot("k", "size", opt=True, hi=D),
                Slot("which", "choice"),
                Slot("method", "choice"),
                Slot("vectors", "flag"),
                Slot("key", "key", opt=True),
            ],
            jit=("x", "T"),
        ),
        Target(
            "score_jacobian_spectrum[lanczos]",
            lambda: (td().score_jacobian_spectrum, (fin(), _x(), T_OK), {"k": 1, "method": "lanczos", "krylov_dim": 2}),
            [x, T, Slot("k", "size", hi=D), Slot("krylov_dim", "size", opt=True, hi=D)],
            jit=("x", "T"),
            doc=lambda: td().score_jacobian_spectrum,
            short=True,
        ),
        Target(
            "score_jacobian_spectrum[schedule]",
            lambda: (td().score_jacobian_spectrum, (lm(), _x(), 0.5), {"schedule": td().VP()}),
            [Slot("x", "x", 1), Slot("T", "t", 2, t_max=1.0), Slot("schedule", "schedule", opt=True)],
            jit=("x", "T"),
            doc=lambda: td().score_jacobian_spectrum,
            short=True,
        ),
        Target(
            "LinearManifold.spectrum",
            _method(lm, "spectrum", _const(T_OK)),
            [Slot("T", "T", 0)],
            jit=("T",),
            short=True,
        ),
        Target(
            "effective_dimension",
            lambda: (td().effective_dimension, (_f([0.1, 0.6]),), {"threshold": 0.5}),
            [Slot("eigenvalues", "spectrum", 0), Slot("threshold", "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True)],
        ),
        Target(
            "spectral_gaps",
            lambda: (td().spectral_gaps, (_f([0.01, 0.3, 0.9]),), {"n_gaps": 1, "scale": "logit"}),
            [Slot("eigenvalues", "spectrum", 0, lo=2), Slot("n_gaps", "size", hi=2), Slot("scale", "choice")],
        ),
        Target(
            "spectrum_sweep",
            lambda: (td().spectrum_sweep, (lm(), _f([0.1, 0.5, 2.0])), {"key": _key(), "n_states": 2, "n_gaps": 1, "threshold": 0.5}),
            [
                Slot("model", "ensemble", 0),
                Slot("temperatures", "Ts", 1),
                Slot("data", "points", opt=True, fixed_d=True),
                Slot("key", "key", opt=True),
                Slot("n_states", "size", hi=2**20),
                Slot("threshold", "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True),
                Slot("n_gaps", "size", hi=D - 1, opt=True),
                Slot("method", "choice"),
            ],
        ),
        Target(
            "freeze_temperatures",
            lambda: (td().freeze_temperatures, (sweep(),), {"ratio": 2.0}),
            [Slot("sweep", "object", 0), Slot("ratio", "number", lo=1.0, lo_open=True, f64=True)],
        ),
        Target(
            "LinearManifold",
            lambda: (td().LinearManifold, (_f([1.0, 0.25]),), {"basis": _basis(), "mean": _f([0.1, -0.2])}),
            [
                Slot("variances", "vec", 0),
                Slot("basis", "points", opt=True, n=D, fixed_d=True),
                Slot("mean", "vec", opt=True, fixed_d=True),
            ],
        ),
        Target(
            "block_variances",
            lambda: (td().block_variances, ([(1.0, 1), (0.25, 1)],), {}),
            [Slot("blocks", "blocks", 0)],
        ),
        Target(
            "manifold_points",
            lambda: (td().manifold_points, (_key(), 4, _f([1.0, 0.25])), {"basis": _basis(), "mean": _f([0.1, -0.2]), "sphere": True, "radius": 1.5}),
            [
                Slot("key", "key", 0),
                Slot("n", "size", 1, lo=0),
                Slot("variances", "vec", 2),
                Slot("basis", "points", opt=True, n=D, fixed_d=True),
                Slot("mean", "vec", opt=True, fixed_d=True),
                Slot("sphere", "flag"),
                Slot("radius", "number", opt=True, lo=0.0, lo_open=True),
            ],
            short=True,
        ),
    ]


def _planning_targets():
    """Theory sections 10 and 11: data needed, the memorisation law, solvable models, agreement."""
    td = lambda: _td()  # noqa: E731
    np = lambda: _jax()[2]  # noqa: E731
    sizes = lambda: _np64([100.0, 200.0, 400.0])  # noqa: E731
    taus = lambda: _np64([150.0, 310.0, 590.0])  # noqa: E731

    def law():
        return td().fit_memorization_law(sizes(), taus(), tau_mem_se=_np64([10.0, 20.0, 30.0]))

    def trainer():
        return td().Trainer(T_min=1e-3, T_max=10.0, batch_size=4, grad_clip=None)

    data = Slot("data", "points", 0)
    return [
        Target(
            "data_need",
            lambda: (
                td().data_need,
                (),
                {
                    "n_points": 1000, "dim": 2, "variance": 1.0, "spectrum": _np64([1.5, 0.5]), "target_temperature": 0.1,
                    "target_kl": 0.05, "features": 500, "probe": {100: 150.0, 200: 310.0}, "exponent": 1.0, "tau_gen": 50.0,
                    "train_steps": 2000.0,
                },
            ),
            [
                Slot("n_points", "size", opt=True, lo=2, no_huge=True),
                Slot("dim", "size", opt=True),
                Slot("variance", "number", opt=True, lo=0.0, lo_open=True, f64=True),
                Slot("spectrum", "vec", opt=True, f64=True, fixed_d=True),
                Slot("target_temperature", "T", opt=True),
                Slot("target_kl", "number", opt=True, lo=0.0, lo_open=True, f64=True),
                Slot("features", "size", opt=True, no_huge=True),
                Slot("law", "object", opt=True),
                Slot("probe", "object", opt=True),
                Slot("exponent", "number", opt=True, f64=True),
                Slot("tau_gen", "number", opt=True, lo=0.0, lo_open=True, f64=True),
                Slot("train_steps", "number", opt=True, lo=0.0, lo_open=True, f64=True),
            ],
        ),
        Target(
            "data_need[data]",
            lambda: (td().data_need, (_pts(),), {"target_temperature": 0.1}),
            [Slot("data", "points", 0), Slot("n_points", "size", opt=True, lo=2, no_huge=True)],
            doc=lambda: td().data_need,
            short=True,
        ),
        Target(
            "fit_memorization_law",
            lambda: (td().fit_memorization_law, (sizes(), taus()), {"tau_mem_se": _np64([10.0, 20.0, 30.0]), "exponent": None}),
            [
                Slot("sizes", "vec", 0, d=3, fixed_d=True, f64=True),
                Slot("tau_mem", "vec", 1, d=3, fixed_d=True, f64=True),
                Slot("tau_mem_se", "vec", opt=True, d=3, fixed_d=True, f64=True),
                Slot("exponent", "number", opt=True, f64=True),
            ],
        ),
        Target(
            "MemorizationLaw.predict",
            lambda: (law().predict, (_np64([50.0, 1000.0]),), {}),
            [Slot("n", "number", 0, lo=0.0, lo_open=True, scalar=False, f64=True)],
        ),
        Target(
            "noise_moments",
            lambda: (td().noise_moments, (trainer(), 1.0), {}),
            [Slot("trainer", "object", 0), Slot("sigma_data", "number", 1, lo=0.0, lo_open=True, f64=True)],
        ),
        Target(
            "LinearNet",
            lambda: (td().LinearNet, (D,), {"weight": _f([[0.5, 0.0], [0.0, 0.5]]), "key": _key()}),
            [Slot("dim", "size", 0, hi=2**15), Slot("weight", "points", opt=True, n=D, fixed_d=True)],
        ),
        Target(
            "linear_model",
            lambda: (td().linear_model, (_pts(),), {"weight": _f([[0.5, 0.0], [0.0, 0.5]])}),
            [Slot("data", "points", 0), Slot("weight", "points", opt=True, n=D, fixed_d=True)],
        ),
        Target(
            "linear_modes",
            lambda: (td().linear_modes, (td().linear_model(_pts()), _pts()), {"learning_rate": 0.01, "trainer": trainer()}),
            [
                Slot("model", "model", 0),
                Slot("data", "points", 1, fixed_d=True, f64=True),
                Slot("learning_rate", "number", lo=0.0, lo_open=True),
                Slot("trainer", "object"),
            ],
        ),
        Target(
            "linear_sgd_weights",
            lambda: (td().linear_sgd_weights, (td().linear_model(_pts()), _pts(), np().array([0, 5])), {"learning_rate": 0.01, "trainer": trainer()}),
            [Slot("steps", "size", 2, lo=0, no_huge=True)],
            short=True,
        ),
        Target(
            "MixtureNet",
            lambda: (td().MixtureNet, (D, 2), {"means": _f([[1.0, 0.0], [-1.0, 0.0]]), "log_variance": -1.0}),
            [
                Slot("dim", "size", 0, hi=2**15),
                Slot("n_components", "size", 1, hi=2**24),
                Slot("means", "points", opt=True, n=2, fixed_d=True),
                Slot("log_variance", "number", opt=True),
            ],
        ),
        Target(
            "mixture_model",
            lambda: (td().mixture_model, (_pts(), 2), {"key": _key(), "variance": 0.5}),
            [
                Slot("data", "points", 0),
                Slot("n_components", "size", 1, hi=N),
                Slot("key", "key"),
                Slot("variance", "number", opt=True, lo=0.0, lo_open=True, f64=True),
            ],
        ),
        Target(
            "mixture_model[means]",
            lambda: (td().mixture_model, (_pts(),), {"means": _f([[1.0, 0.0], [-1.0, 0.0]])}),
            [Slot("means", "points", opt=True, n=2, fixed_d=True, f64=True)],
            doc=lambda: td().mixture_model,
            short=True,
        ),
        Target(
            "RandomFeaturesNet",
            lambda: (td().RandomFeaturesNet, (D, 8, "tanh"), {"key": _key(), "readout": _f(np().full((D, 8), 0.1))}),
            [
                Slot("dim", "size", 0, hi=2**15),
                Slot("n_features", "size", 1, hi=2**20),
                Slot("activation", "choice", 2),
                Slot("key", "key"),
                Slot("readout", "points", opt=True, n=D, d=8, fixed_d=True),
            ],
        ),
        Target(
            "random_features_model",
            lambda: (td().random_features_model, (_pts(), 8), {"key": _key(), "activation": "tanh", "parametrization": "score"}),
            [
                Slot("data", "points", 0),
                Slot("n_features", "size", 1, hi=2**20),
                Slot("key", "key"),
                Slot("activation", "choice"),
                Slot("parametrization", "choice"),
            ],
        ),
        Target(
            "train_test_gap",
            lambda: (td().train_test_gap, (td().linear_model(_pts()), _pts(), _pts(N, D, 1), T_OK, _key()), {"n_states": 8}),
            [
                Slot("model", "model", 0),
                Slot("train", "points", 1, fixed_d=True),
                Slot("test", "points", 2, fixed_d=True),
                Slot("T", "T", 3),
                Slot("key", "key", 4),
                Slot("n_states", "size", lo=2, hi=10**8),
            ],
        ),
        Target(
            "cosine_agreement",
            lambda: (td().cosine_agreement, (_pts(), _pts(N, D, 1), _f([0.0, 0.0])), {}),
            [
                Slot("a", "points", 0, fixed_d=True, f64=True),
                Slot("b", "points", 1, fixed_d=True, f64=True),
                Slot("center", "vec", 2, fixed_d=True, f64=True),
            ],
        ),
        Target(
            "sample_agreement",
            lambda: (td().sample_agreement, (_ens("TwoDeltas"), _ens("Gaussian"), _key(), 3), {"steps": 4, "mean": _f([0.0, 0.0]), "sigma_data": 1.0}),
            [
                Slot("model_a", "model", 0),
                Slot("model_b", "model", 1),
                Slot("key", "key", 2),
                Slot("n_samples", "size", 3, lo=2, hi=10**8),
                Slot("dim", "size", opt=True, hi=2**15),
                Slot("mean", "vec", opt=True, fixed_d=True),
                Slot("sigma_data", "number", opt=True, lo=0.0, lo_open=True),
                Slot("steps", "size", huge=10**9),
                Slot("T_start", "T", opt=True),
                Slot("T_end", "T", opt=True),
            ],
        ),
    ]


def _scale_targets():
    """Theory section 14 (exact scores at scale): the certified, sharded and k-NN datasets, the
    Gaussian approximation and the measured error of an approximation. ``distributed_init`` is not
    called (a valid call initialises the process-global runtime; tests/test_distributed.py)."""
    td = lambda: _td()  # noqa: E731
    fin = lambda: _ens("FiniteDataset")  # noqa: E731
    w = lambda: _f([1.0] * N)  # noqa: E731
    x, T = Slot("x", "x", 0), Slot("T", "T", 1)
    # groups of 2 points, 2 of the 3 groups summed exactly: the pruning path runs on the fuzzed data
    cert_kw = {"tol": 1e-6, "group_size": 2, "n_clusters": 2, "max_exact_groups": 2, "max_fallback": 2, "chunk_size": 4}
    cert = lambda: td().CertifiedDataset(_pts(), **cert_kw)  # noqa: E731
    knn = lambda: td().KNearestDataset(_pts(), k=3, chunk_size=4)  # noqa: E731
    shard = lambda: td().ShardedDataset(_pts(), chunk_size=4)  # noqa: E731

    def result():
        return td().approximation_error(knn(), fin(), _f([0.1, 1.0]), key=_key(), n_states=4)

    out = [
        Target(
            "CertifiedDataset",
            lambda: (td().CertifiedDataset, (_pts(), w()), dict(cert_kw, key=_key(), expansion=2)),
            [
                Slot("points", "points", 0),
                Slot("weights", "vec", 1, opt=True, d=N, fixed_d=True),
                Slot("tol", "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True),
                Slot("group_size", "size", opt=True, hi=2**16),
                Slot("n_clusters", "size", opt=True, hi=N),
                Slot("max_exact_groups", "size", opt=True, hi=2**31 - 1, no_huge=True),
                Slot("max_fallback", "size", hi=2**20),
                Slot("expansion", "int", opt=True, lo=0, hi=6),  # "auto" (default), None or an order
                Slot("key", "key", opt=True),
                Slot("chunk_size", "size"),
            ],
        ),
        Target(
            "CertifiedDataset.from_dataset",
            lambda: (td().CertifiedDataset.from_dataset, (fin(),), {"tol": 1e-6, "group_size": 2}),
            [Slot("ds", "ensemble", 0), Slot("tol", "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True)],
        ),
        Target(
            "KNearestDataset",
            lambda: (td().KNearestDataset, (_pts(), w()), {"k": 3, "chunk_size": 4}),
            [
                Slot("points", "points", 0),
                Slot("weights", "vec", 1, opt=True, d=N, fixed_d=True),
                Slot("k", "size", hi=N),
                Slot("chunk_size", "size", opt=True),
            ],
        ),
        Target(
            "KNearestDataset[dataset]",
            lambda: (td().KNearestDataset, (fin(),), {"k": 3}),
            [Slot("points", "ensemble", 0), Slot("k", "size", hi=N)],
            doc=lambda: td().KNearestDataset,
        ),
        Target(
            "ShardedDataset",
            lambda: (td().ShardedDataset, (_pts(), w()), {"chunk_size": 4, "mesh": None}),
            [
                Slot("points", "points", 0),
                Slot("weights", "vec", 1, opt=True, d=N, fixed_d=True),
                Slot("n_points", "size", opt=True, hi=2**62),
                Slot("chunk_size", "size"),
                Slot("mesh", "object", opt=True),
            ],
        ),
        Target(
            "ShardedDataset.process_rows",
            lambda: (td().ShardedDataset.process_rows, (1000,), {"chunk_size": 64, "mesh": None}),
            [Slot("n_points", "size", 0, hi=2**62, huge=2**63), Slot("chunk_size", "size"), Slot("mesh", "object", opt=True)],
        ),
        Target("gaussian_approximation", lambda: (td().gaussian_approximation, (_pts(),), {}), [Slot("data", "points", 0)]),
        Target(
            "approximation_error",
            lambda: (
                td().approximation_error,
                (knn(), fin(), _f([0.1, 1.0])),
                {"key": _key(), "n_states": 4, "schedule": td().VP(), "tolerance": 1e-3, "batch_size": 2},
            ),
            [
                Slot("approx", "model", 0),
                Slot("exact", "ensemble", 1),
                Slot("temperatures", "Ts", 2),
                Slot("key", "key"),
                Slot("n_states", "size", lo=2, hi=10**8),
                Slot("schedule", "schedule", opt=True),
                Slot("tolerance", "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True),
                Slot("batch_size", "size"),
            ],
        ),
        Target(
            "ApproximationError.crossings",
            lambda: (result().crossings, (0.5,), {"column": "rms"}),
            [Slot("level", "number", 0, lo=0.0, lo_open=True, f64=True), Slot("column", "choice")],
        ),
    ]
    for name, make in (("CertifiedDataset", cert), ("KNearestDataset", knn), ("ShardedDataset", shard)):
        out.append(Target(f"{name}.denoiser", _method(make, "denoiser", _x, _const(T_OK)), [x, T], jit=("x", "T")))
    out.append(Target("CertifiedDataset.certified_denoiser", _method(cert, "certified_denoiser", _x, _const(T_OK)), [x, T], jit=("x", "T")))
    for m in ("log_partition", "posterior_weights", "posterior_cov", "dropped_mass", "dropped_mass_bound"):
        out.append(Target(f"KNearestDataset.{m}", _method(knn, m, _x, _const(T_OK)), [x, T], jit=("x", "T")))
    out.append(Target("ShardedDataset.log_partition", _method(shard, "log_partition", _x, _const(T_OK)), [x, T], jit=("x", "T")))
    return out


def build_targets():
    return (
        _ensemble_targets()
        + _schedule_targets()
        + _sampler_targets()
        + _model_targets()
        + _meanfield_targets()
        + _dynamics_targets()
        + _memory_targets()
        + _hierarchy_targets()
        + _other_targets()
        + _geometry_targets()
        + _planning_targets()
        + _scale_targets()
    )


TARGETS = build_targets()
_BY_NAME = {t.name: t for t in TARGETS}

# Jit probes: bad values of traced slots (floating, same shape as the valid value).
JIT_BAD = {
    "T": ("nan", "inf", "-inf", "0", "-1"),
    "T_elem": ("nan", "inf", "-1"),
    "x": ("nan", "inf"),
    "x_any": ("nan", "inf"),
    "t": ("nan", "inf", "-1", "beyond"),
    "t_elem": ("nan", "inf", "-1", "beyond"),
}


VARIANTS = ("fast", "slow", "all")


def _in_variant(t, variant):
    return variant == "all" or (variant == "slow") == t.slow


JIT_SHORT = {"T": ("nan", "-1"), "T_elem": ("-1",), "x": ("nan",), "x_any": ("nan",), "t": ("nan", "beyond"), "t_elem": ("nan", "beyond")}


ONLY_ENV = "THERMODIFF_FUZZ_ONLY"  # comma-separated target-name prefixes (``--only``): a partial run


def _selected(t) -> bool:
    only = [p for p in os.environ.get(ONLY_ENV, "").split(",") if p]
    return not only or any(t.name.startswith(p) for p in only)


def _cases(variant):
    """The deterministic list of cases: (id, target, slot name or None, value label, mode)."""
    out = []
    targets = [t for t in TARGETS if _in_variant(t, variant) and _selected(t)]
    for t in targets:
        out.append((f"{t.name}|valid", t.name, None, "valid", "eager"))
        for s in t.slots:
            for label, _ in values(t, s):
                out.append((f"{t.name}|{s.name}|{label}", t.name, s.name, label, "eager"))
    for t in targets:
        for sname in t.jit:
            s = t.slot(sname)
            if t.name not in FULL and s.kind not in ("T", "T_elem", "t", "t_elem"):
                continue  # a short target's states are traced in its full siblings (one compile less)
            for label in JIT_BAD[s.kind] if t.name in FULL else JIT_SHORT[s.kind]:
                out.append((f"{t.name}|{sname}|{label}|jit", t.name, sname, label, "jit"))
                if t.name in FULL:  # vmap compiles once more: only for the fully fuzzed targets
                    out.append((f"{t.name}|{sname}|{label}|vmap", t.name, sname, label, "vmap"))
    return out


CASES = {v: _cases(v) for v in VARIANTS}


# ============================================================================ classification
def _names_argument(message: str, names) -> bool:
    for n in names:
        if re.search(r"(?<![A-Za-z0-9_])" + re.escape(n) + r"(?![A-Za-z0-9_])", message):
            return True
    return False


def _raise_site(tb) -> str:
    """file:line of the innermost frame (where the exception was raised)."""
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return "?"
    return f"{last.tb_frame.f_code.co_filename}:{last.tb_lineno}"


def _in_package(site: str) -> bool:
    return os.path.abspath(site.rsplit(":", 1)[0]).startswith(PKG + os.sep)


def _float_leaves(out):
    """All floating arrays in a result (arrays, pytrees, NamedTuples, dataclasses, dicts)."""
    jax, jnp, np, _ = _jax()
    import dataclasses

    leaves, seen = [], set()

    def walk(o):
        if id(o) in seen:
            return
        seen.add(id(o))
        if isinstance(o, (float, np.floating)):
            leaves.append(np.asarray(o, np.float64))
        elif isinstance(o, (jax.Array, np.ndarray)):
            if jnp.issubdtype(o.dtype, jnp.floating) or jnp.issubdtype(o.dtype, jnp.complexfloating):
                leaves.append(np.asarray(o))
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)
        elif dataclasses.is_dataclass(o) and not isinstance(o, type):
            for f in dataclasses.fields(o):
                walk(getattr(o, f.name, None))
        elif hasattr(o, "__dict__") and not isinstance(o, type) and not callable(o):
            for v in vars(o).values():
                walk(v)
        else:
            try:
                ls = jax.tree.leaves(o)
            except Exception:
                return
            if ls and not (len(ls) == 1 and ls[0] is o):
                for v in ls:
                    walk(v)

    walk(out)
    return leaves


def _silent_kind(out) -> tuple[str, str]:
    np = _jax()[2]
    leaves = _float_leaves(out)
    bad = any(not np.all(np.isfinite(a)) for a in leaves)
    desc = type(out).__name__
    if leaves:
        a = leaves[0]
        desc += f" {a.dtype}{list(a.shape)} " + np.array2string(a.ravel()[:4], precision=4)
    return ("SILENT_NAN" if bad else "SILENT_FINITE"), desc


def _is_error_if(err) -> bool:
    """An ``eqx.error_if`` failure: under jax.jit it surfaces as a JaxRuntimeError (or, depending
    on the call path, a ValueError) whose message carries equinox's ``EquinoxRuntimeError``."""
    return "EquinoxRuntimeError" in type(err).__name__ or "EquinoxRuntimeError" in str(err)


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _short(msg: str, n: int = 300) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= n else msg[: n - 3] + "..."


# ============================================================================ running a case
_BASELINE: dict = {}  # target name -> (ok, message) in this process
_MADE: dict = {}  # target name -> (fn, args, kwargs): one valid call, built once per process
_JITTED: dict = {}  # (target, slot) -> (g, jit(g), jit(vmap(g)), reference output or error)


def _made(t):
    if t.name not in _MADE:
        _MADE[t.name] = t.make()
    return _MADE[t.name]


def _value(slot, label):
    return dict(bad_values(slot))[label]()  # a short target's labels are a subset


def _apply(args, kwargs, slot, value):
    args, kwargs = list(args), dict(kwargs)
    if slot.at is not None:
        args[slot.at] = value
    else:
        kwargs[slot.name] = value
    return tuple(args), kwargs


def _baseline(t):
    if t.name not in _BASELINE:
        try:
            fn, args, kwargs = _made(t)
            fn(*args, **kwargs)
            _BASELINE[t.name] = (True, "")
        except _Timeout:
            raise
        except Exception as err:  # noqa: BLE001
            _BASELINE[t.name] = (False, f"{type(err).__name__}: {_short(err)}")
    return _BASELINE[t.name]


def run_eager(t, sname, label) -> dict:
    if sname is None:
        ok, msg = _baseline(t)
        return {"outcome": "VALID_OK" if ok else "BASELINE_ERROR", "message": msg}
    ok, msg = _baseline(t)
    if not ok:
        return {"outcome": "SKIP", "message": f"valid call fails: {msg}"}
    slot = t.slot(sname)
    fn, args, kwargs = _made(t)
    value = _value(slot, label)
    args, kwargs = _apply(args, kwargs, slot, value)
    try:
        out = fn(*args, **kwargs)
    except _Timeout:
        raise
    except Exception as err:  # noqa: BLE001
        site = _raise_site(err.__traceback__)
        msg = str(err)
        rec = {"error": type(err).__name__, "message": _short(msg), "where": os.path.relpath(site.rsplit(":", 1)[0], ROOT) + ":" + site.rsplit(":", 1)[1]}
        if not isinstance(err, (ValueError, TypeError)):
            rec["outcome"], rec["why"] = "UNCLEAN", "not a ValueError/TypeError"
        elif not _in_package(site):
            rec["outcome"], rec["why"] = "UNCLEAN", "raised outside thermodiff"
        elif not _names_argument(msg, slot.names):
            rec["outcome"], rec["why"] = "UNCLEAN", f"message does not name {slot.name!r}"
        else:
            rec["outcome"] = "CLEAN"
        return rec
    kind, desc = _silent_kind(out)
    return {"outcome": kind, "message": _short(desc)}


def _jit_value(slot, label, valid):
    """The traced bad value: a float32 array of the valid value's shape."""
    _, jnp, np, _ = _jax()
    v = jnp.asarray(valid, jnp.float32)
    if label == "beyond":
        bad = 10.0 * slot.p["t_max"] + 1.0
    else:
        bad = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "0": 0.0, "-1": -1.0}[label]
    if v.ndim == 0:
        return jnp.asarray(bad, jnp.float32)
    return v.at[0].set(bad)


def _all_nan(leaves) -> bool:
    np = _jax()[2]
    return bool(leaves) and all(np.all(np.isnan(a)) for a in leaves)


def _jit_classify(leaves):
    """NAN: every floating output entirely NaN; PARTIAL: some NaN/inf; FINITE: all finite."""
    np = _jax()[2]
    if _all_nan(leaves):
        return "NAN"
    if any(not np.all(np.isfinite(a)) for a in leaves):
        return "PARTIAL"
    return "FINITE"


def _documented(t) -> bool:
    import inspect

    fn, _, _ = _made(t)
    obj = t.doc() if t.doc is not None else fn
    docs = [inspect.getdoc(obj) or ""]
    owner = getattr(obj, "__self__", None)
    if owner is not None:
        docs.append(inspect.getdoc(type(owner)) or "")
    return any(re.search(r"under\s+(jax\.)?jit", d, re.IGNORECASE) for d in docs)


def run_traced(t, sname, label, mode) -> dict:
    jax, jnp, np, _ = _jax()
    ok, msg = _baseline(t)
    if not ok:
        return {"outcome": "SKIP", "message": f"valid call fails: {msg}"}
    slot = t.slot(sname)
    key = (t.name, sname)
    if key not in _JITTED:
        fn, args, kwargs = _made(t)
        valid = args[slot.at] if slot.at is not None else kwargs[slot.name]

        def g(v):
            a, k = _apply(args, kwargs, slot, v)
            return fn(*a, **k)

        v_ok = jnp.asarray(valid, jnp.float32)
        jg, vg = jax.jit(g), jax.jit(jax.vmap(g))
        try:
            ref = jg(v_ok)
        except _Timeout:
            raise
        except Exception as err:  # noqa: BLE001
            ref = f"valid call under jit: {type(err).__name__}: {_short(err)}"
        _JITTED[key] = (valid, v_ok, jg, vg, ref)
    valid, v_ok, jg, vg, ref = _JITTED[key]
    if isinstance(ref, str):
        return {"outcome": "NOT_TRACEABLE", "message": ref}
    bad = _jit_value(slot, label, valid)
    prefix = "JIT" if mode == "jit" else "VMAP"
    doc = _documented(t)
    try:
        if mode == "jit":
            out = jg(bad)
            cls = _jit_classify(_float_leaves(out))
            res = {"outcome": f"JIT_{cls}"}
            res["message"] = _silent_kind(out)[1]
        else:
            batch = jnp.stack([v_ok, bad, v_ok])
            out = vg(batch)
            leaves = _float_leaves(out)
            lane = [a[1] for a in leaves]
            good = [a[[0, 2]] for a in leaves]
            refs = _float_leaves(ref)
            same = len(refs) == len(good) and all(
                np.allclose(gl, np.broadcast_to(r, gl.shape[1:]), rtol=1e-4, atol=1e-5, equal_nan=True) for gl, r in zip(good, refs)
            )
            cls = _jit_classify(lane)
            if cls == "NAN" and not same:
                cls = "CONTAMINATED"
            res = {"outcome": "VMAP_OK" if cls == "NAN" else f"VMAP_{cls}", "message": _short("bad lane " + np.array2string(lane[0].ravel()[:4], precision=4)) if lane else ""}
    except _Timeout:
        raise
    except Exception as err:  # noqa: BLE001
        res = {"outcome": f"{prefix}_ERROR" if _is_error_if(err) else f"{prefix}_OTHER", "error": type(err).__name__, "message": _short(err)}
    res["documented"] = doc
    return res


def run_case(variant: str, i: int) -> dict:
    cid, tname, sname, label, mode = CASES[variant][i]
    t = _BY_NAME[tname]
    t0 = time.perf_counter()
    limit = SLOW_TIMEOUT_S if t.slow else CALL_TIMEOUT_S
    signal.alarm(limit)
    try:
        if mode == "eager":
            rec = run_eager(t, sname, label)
        else:
            rec = run_traced(t, sname, label, mode)
    except _Timeout:
        rec = {"outcome": "HANG", "message": f"no return within {limit} s"}
    finally:
        signal.alarm(0)
    rec.update({"i": i, "id": cid, "target": tname, "slot": sname, "value": label, "mode": mode, "seconds": round(time.perf_counter() - t0, 3)})
    return rec


MEMORY_LIMIT = 8 * 2**30  # the child's address space: a huge allocation fails instead of swamping the host


def child_main(variant: str, start: int, results: str) -> None:
    import resource
    import warnings

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > MEMORY_LIMIT:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, hard))

    warnings.filterwarnings("ignore")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    jax = _jax()[0]
    jax.config.update("jax_enable_x64", False)  # JAX's default precision
    signal.signal(signal.SIGALRM, _alarm)
    with open(results, "a") as fh:
        for i in range(start, len(CASES[variant])):
            fh.write(json.dumps({"i": i, "started": True}) + "\n")
            fh.flush()
            rec = run_case(variant, i)
            fh.write(json.dumps(rec) + "\n")
            fh.flush()


# ============================================================================ parent: run and tally
def _read(results: str) -> tuple[dict, int | None]:
    """(i -> record, index of a case started but not finished)."""
    done, started = {}, None
    if not os.path.exists(results):
        return done, None
    with open(results) as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("started"):
                started = rec["i"]
            else:
                done[rec["i"]] = rec
    if started is not None and started in done:
        started = None
    return done, started


def run_all(results: str, variant: str = "fast", *, log=None, stall_s: float = STALL_TIMEOUT_S) -> list[dict]:
    """Run every case in child processes; a crash or stall is recorded and the run resumes."""
    CASES_ = CASES[variant]
    if os.path.exists(results):
        os.remove(results)
    start = 0
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    env.pop("JAX_ENABLE_X64", None)
    while start < len(CASES_):
        err_path = results + ".stderr"
        with open(err_path, "w") as err_fh:
            proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--child", variant, str(start), results],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err_fh, start_new_session=True,
            )
            last_size, last_change = -1, time.monotonic()
            while proc.poll() is None:
                time.sleep(0.2)
                size = os.path.getsize(results) if os.path.exists(results) else 0
                if size != last_size:
                    last_size, last_change = size, time.monotonic()
                elif time.monotonic() - last_change > stall_s:
                    os.killpg(proc.pid, signal.SIGKILL)  # the child we started, and its group
                    proc.wait()
                    break
        done, started = _read(results)
        if proc.returncode == 0 and started is None and len(done) >= len(CASES_):
            break
        # the case in progress killed or hung the child: record it and resume after it
        i = started if started is not None else (max(done) + 1 if done else start)
        if i >= len(CASES_):
            break
        with open(err_path) as fh:
            tail = _short(fh.read()[-600:], 400)
        hung = proc.returncode == -signal.SIGKILL
        cid, tname, sname, label, mode = CASES_[i]
        rec = {
            "i": i, "id": cid, "target": tname, "slot": sname, "value": label, "mode": mode,
            "outcome": "HANG" if hung else "CRASH",
            "message": (f"no progress for {stall_s:.0f} s; killed" if hung else f"process died (exit {proc.returncode}): {tail}"),
        }
        with open(results, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        if log:
            log(f"{rec['outcome']} at case {i} ({cid}); resuming")
        start = i + 1
    done, _ = _read(results)
    return [done[i] for i in sorted(done)]


def tally(records: list[dict]) -> dict:
    from collections import Counter, defaultdict

    eager = [r for r in records if r["mode"] == "eager" and r["slot"] is not None]
    valid = [r for r in records if r["slot"] is None]
    traced = [r for r in records if r["mode"] != "eager"]
    per_fn = defaultdict(Counter)
    for r in eager + traced:
        per_fn[r["target"]][r["outcome"]] += 1
    scored = [r for r in eager if r["outcome"] != "SKIP"]
    clean = sum(r["outcome"] == "CLEAN" for r in scored)
    undocumented = sorted({r["target"] for r in traced if r.get("documented") is False})
    return {
        "eager_calls": len(eager),
        "eager_scored": len(scored),
        "eager": dict(Counter(r["outcome"] for r in eager)),
        "clean_fraction": round(clean / max(len(scored), 1), 4),
        "silent": sum(r["outcome"].startswith("SILENT") for r in eager),
        "valid_calls": len(valid),
        "baseline_errors": [r["target"] for r in valid if r["outcome"] != "VALID_OK"],
        "traced_calls": len(traced),
        "jit": dict(Counter(r["outcome"] for r in traced if r["mode"] == "jit")),
        "vmap": dict(Counter(r["outcome"] for r in traced if r["mode"] == "vmap")),
        "jit_plausible": sum(r["outcome"] in ("JIT_FINITE", "JIT_PARTIAL", "VMAP_FINITE", "VMAP_PARTIAL", "VMAP_CONTAMINATED") for r in traced),
        "jit_undocumented": undocumented,
        "not_traceable": sorted({r["target"] for r in traced if r["outcome"] == "NOT_TRACEABLE"}),
        "targets": len({r["target"] for r in records}),
        "per_function": {k: dict(v) for k, v in sorted(per_fn.items())},
    }


OK_EAGER = ("CLEAN", "VALID_OK", "SKIP")
OK_TRACED = ("JIT_NAN", "JIT_ERROR", "VMAP_OK", "VMAP_ERROR", "SKIP")


def failures(records: list[dict]) -> list[dict]:
    """Every record that breaks the contract (SKIPs are reported through their BASELINE_ERROR)."""
    return [r for r in records if r["outcome"] not in (OK_EAGER if r["mode"] == "eager" else OK_TRACED)]


def format_failure(r: dict) -> str:
    arg = r["slot"] if r["slot"] is not None else "(valid call)"
    where = f" [{r['where']}]" if r.get("where") else ""
    why = f" ({r['why']})" if r.get("why") else ""
    err = f"{r['error']}: " if r.get("error") else ""
    return f"{r['target']}  {arg}={r['value']}  [{r['mode']}]  -> {r['outcome']}{why}: {err}{r.get('message', '')}{where}"


def report_text(records: list[dict]) -> str:
    from collections import defaultdict

    t = tally(records)
    lines = [
        f"eager: {t['eager_calls']} bad calls ({t['eager_scored']} scored), clean {t['clean_fraction']:.1%}: {t['eager']}",
        f"valid calls: {t['valid_calls']}, baseline errors: {t['baseline_errors']}",
        f"jit: {t['jit']}",
        f"vmap: {t['vmap']}",
        f"jit docstring without 'Under jit': {t['jit_undocumented']}",
        f"not traceable: {t['not_traceable']}",
        "",
    ]
    groups = defaultdict(list)
    for r in failures(records):
        groups[r["target"]].append(r)
    for name in sorted(groups):
        lines.append(f"== {name} ({len(groups[name])})")
        lines += ["  " + format_failure(r) for r in groups[name]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        sys.path.insert(0, ROOT)
        child_main(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        import argparse

        ap = argparse.ArgumentParser(description="Fuzz the public API; write a JSON report.")
        ap.add_argument("--out", default="/tmp/thermodiff_fuzz.json")
        ap.add_argument("--failures", default=None, help="also write the grouped failure list here")
        ap.add_argument("--variant", default="all", choices=VARIANTS)
        ap.add_argument("--only", default="", help="comma-separated target-name prefixes: fuzz only these (a partial run)")
        a = ap.parse_args()
        if a.only:
            os.environ[ONLY_ENV] = a.only  # the children inherit it and build the same case list
            CASES.update({v: _cases(v) for v in VARIANTS})
        t0 = time.time()
        recs = run_all(a.out + ".jsonl", a.variant, log=lambda m: print(m, file=sys.stderr, flush=True))
        with open(a.out, "w") as fh:
            json.dump({"tally": tally(recs), "records": recs}, fh, indent=1)
        text = report_text(recs)
        if a.failures:
            with open(a.failures, "w") as fh:
                fh.write(text)
        print(text[:4000])
        print(f"{len(recs)} cases in {time.time() - t0:.0f} s")
