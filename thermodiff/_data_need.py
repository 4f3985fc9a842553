"""How much data a diffusion model needs: every estimate of theory section 11 in one table.

``data_need`` takes a dataset (or its size, dimension and variance or covariance spectrum) and
answers, each with its formula and the range where it holds:

- exact empirical score (theory 9): the posterior condenses below T_C(n) = s^2/(n^{2/d} - 1); to
  keep T_C below a target T* takes n = (1 + s^2/T*)^{d/2} points (exponential in d), or, in the
  Gaussian approximation with the data's own covariance spectrum lambda_i,
  log n = (1/2) sum_i log(1 + lambda_i/T*); and the collapse temperature at the data's own n;
- linear (Gaussian) denoisers: the transition at n ~ d, the KL ~ d/n scaling above it, and the
  learning time ~ 1/lambda of each covariance mode;
- random-features scores with p features: memorise when p > n;
- trained networks: tau_mem = c n^a fitted to short runs at small n (``fit_memorization_law``),
  extrapolated to the data's n with its band, and the early-stopping window [tau_gen, tau_mem(n)].

Everything is host-side NumPy in float64; sizes too large for a float are carried as log10 n.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._memorization_law import MemorizationLaw, fit_memorization_law
from ._validate import check_finite, check_int, check_real, check_temperature_scalar

_LN10 = math.log(10.0)


@dataclasses.dataclass(frozen=True)
class NeedRow:
    """One estimate of ``DataNeed`` (theory section 11).

    - ``key``: a stable name (``"rem_isotropic"``, ``"collapse_spectrum"``, ...).
    - ``regime``: the model class it is about (exact score, linear, random features, trained).
    - ``quantity``: what the number is, in words.
    - ``value``: the number (float; inf when it overflows, then see ``log10``), or None.
    - ``lo``, ``hi``: a 1-sigma band, or None; ``log10``: log10 of ``value`` for sizes, or None.
    - ``unit``: ``"points"``, ``"temperature"``, ``"steps"``, ``"nats"``, ``"ratio"``, ``"features"``.
    - ``formula``: how it is computed; ``validity``: where it holds; ``note``: a verdict or caveat.

    Under jit: not jittable (host-side record).
    """

    key: str
    regime: str
    quantity: str
    value: float | None
    formula: str
    validity: str
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    log10: float | None = None
    note: str = ""

    def to_dict(self) -> dict:
        """The row as JSON-able Python values (non-finite numbers become None)."""
        return {f.name: _json_value(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, eq=False)
class DataNeed:
    """The answer of ``data_need`` (theory section 11): the inputs and a table of estimates.

    - ``n_points``, ``dim``, ``variance`` (mean per-coordinate variance s^2), ``spectrum``
      (covariance eigenvalues, descending, or None), ``target_temperature`` (T*), ``target_kl``,
      ``features`` (p), ``tau_gen``, ``train_steps``, ``law`` (a ``MemorizationLaw``): the inputs.
    - ``n``, ``n_ceil``, ``log10_n``: the isotropic REM size for T_C <= T* (real, integer ceiling,
      log10; ``n`` is inf and ``n_ceil`` None where it overflows a float).
    - ``n_spectrum``, ``n_spectrum_ceil``, ``log10_n_spectrum``: the same from the spectrum.
    - ``collapse_temperature``, ``collapse_temperature_spectrum``: T_C at ``n_points``.
    - ``rows``: every applicable estimate, a tuple of ``NeedRow``; ``row(key)`` finds one.

    ``str(need)`` is a readable table; ``need.to_dict()`` a JSON-able dict.
    Under jit: not jittable (host-side result).
    """

    n_points: int | None
    dim: int
    variance: float | None
    spectrum: np.ndarray | None
    target_temperature: float | None
    target_kl: float | None
    features: int | None
    tau_gen: float | None
    train_steps: float | None
    law: MemorizationLaw | None
    n: float | None
    n_ceil: int | None
    log10_n: float | None
    n_spectrum: float | None
    n_spectrum_ceil: int | None
    log10_n_spectrum: float | None
    collapse_temperature: float | None
    collapse_temperature_spectrum: float | None
    rows: tuple

    def row(self, key: str) -> NeedRow:
        """The row named ``key``; KeyError (listing the keys present) if it is not applicable."""
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(f"no row {key!r} (present: {', '.join(r.key for r in self.rows)})")

    def to_dict(self) -> dict:
        """Inputs, headline numbers and rows as JSON-able Python values (no NaN or inf)."""
        law = None
        if self.law is not None:
            law = dict(c=self.law.c, c_se=self.law.c_se, a=self.law.a, a_se=self.law.a_se, fixed=self.law.fixed,
                       sizes=self.law.sizes.tolist(), tau_mem=self.law.tau_mem.tolist())
        out = dict(
            convention="T = VE-equivalent noise variance in the units of the data given (theory section 1)",
            inputs=dict(n_points=self.n_points, dim=self.dim, variance=self.variance,
                        spectrum=None if self.spectrum is None else self.spectrum.tolist(),
                        target_temperature=self.target_temperature, target_kl=self.target_kl,
                        features=self.features, tau_gen=self.tau_gen, train_steps=self.train_steps, law=law),
            n=self.n, n_ceil=self.n_ceil, log10_n=self.log10_n, n_spectrum=self.n_spectrum,
            n_spectrum_ceil=self.n_spectrum_ceil, log10_n_spectrum=self.log10_n_spectrum,
            collapse_temperature=self.collapse_temperature,
            collapse_temperature_spectrum=self.collapse_temperature_spectrum,
            rows=[r.to_dict() for r in self.rows],
        )
        return _json_value(out)

    def __str__(self) -> str:
        return _table(self)


# ============================================================================ formulas
def _log_expm1(x: float) -> float:
    """log(e^x - 1) for x > 0, without overflow."""
    return x + math.log1p(-math.exp(-x)) if x > 1.0 else math.log(math.expm1(x))


def _rem_log_n(spectrum, T) -> float:
    """log n = (1/2) sum_i log(1 + lambda_i/T): the size whose REM collapse sits at T (theory 9, 11)."""
    lam = np.asarray(spectrum, np.float64)
    with np.errstate(divide="ignore"):  # log 0 = -inf: a flat direction adds log(1 + 0) = 0
        return 0.5 * float(np.sum(np.logaddexp(0.0, np.log(lam) - math.log(T))))


def _rem_collapse_temperature(spectrum, n) -> float:
    """The T solving (1/2) sum_i log(1 + lambda_i/T) = log n (bisection in log T, to float64 precision)."""
    lam = np.asarray(spectrum, np.float64)
    lam = lam[lam > 0]
    target = math.log(n)  # n may be a Python int beyond float range
    log_lam = np.log(lam)
    f = lambda logT: 0.5 * float(np.sum(np.logaddexp(0.0, log_lam - logT))) - target  # decreasing in T
    lo = hi = math.log(float(np.mean(lam))) - _log_expm1(2.0 * target / lam.size)  # the isotropic guess
    while f(lo) < 0:
        lo -= 2.0
    while f(hi) > 0:
        hi += 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return math.exp(0.5 * (lo + hi))


def _size(log_n: float) -> tuple[float, int | None, float]:
    """(n, ceil(n) or None, log10 n) from log n, without overflow."""
    log10 = log_n / _LN10
    if log_n > 709.0:  # exp overflows float64
        return math.inf, None, log10
    n = math.exp(log_n)
    return n, (int(math.ceil(n)) if n < 2.0**63 else None), log10


def _n_for_tau(law: MemorizationLaw, tau: float) -> tuple[float, float, float]:
    """(n, n_lo, n_hi) with tau_mem(n) = tau on the law and on its band (hi curve -> n_lo); NaN
    when tau_mem does not grow with n (a <= 0)."""
    if not law.a > 0:
        return math.nan, math.nan, math.nan
    log_n = (math.log(tau) - math.log(law.c)) / law.a
    n = math.exp(min(log_n, 709.0)) if log_n < 709.0 else math.inf

    def solve(sign):
        def g(ln):
            var = law.cov[0, 0] + 2 * ln * law.cov[0, 1] + ln**2 * law.cov[1, 1]
            return math.log(law.c) + law.a * ln + sign * math.sqrt(max(float(var), 0.0)) - math.log(tau)

        lo, hi = log_n - 50.0, log_n + 50.0
        if not np.isfinite(g(lo)) or g(lo) * g(hi) > 0:
            return math.nan
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if g(mid) < 0 else (lo, mid)
        return math.exp(min(0.5 * (lo + hi), 709.0))

    if not np.all(np.isfinite(law.cov)):
        return n, math.nan, math.nan
    return n, solve(+1.0), solve(-1.0)


# ============================================================================ the planner
def data_need(data=None, *, n_points=None, dim=None, variance=None, spectrum=None, target_temperature=None,
              target_kl=None, features=None, law=None, probe=None, exponent=1.0, tau_gen=None,
              train_steps=None) -> DataNeed:
    """How many training points a diffusion model needs, by every estimate of theory section 11.

    Give a dataset ``data`` (its size, dimension, mean per-coordinate variance s^2 = tr(C)/d and
    covariance spectrum are measured, population covariance), or its statistics (``n_points``,
    ``dim``, ``variance`` and/or ``spectrum``). Rows (each only when its inputs are given):

    - ``rem_isotropic``: n = (1 + s^2/T*)^{d/2}, the size whose exact empirical score condenses at
      T* (the exact inverse of ``collapse_temperature(n, d, s^2)``; theory 9). Real-valued, with
      its ceiling and log10 n (it overflows a float for large d).
    - ``rem_spectrum``: log n = (1/2) sum_i log(1 + lambda_i/T*). This is the REM of theory 9
      with anisotropic Gaussian energies (the Gaussian approximation: data ~ N(mu, C) with C's
      eigenvalues lambda_i): for y ~ N(0, diag lambda) and x ~ N(0, diag(lambda + T)) the annealed
      entropy is log N - (1/2) sum_i log(1 + lambda_i/T) (the derivation of ``rem_entropy``, one
      eigen-direction at a time). It reduces to ``rem_isotropic`` for lambda_i = s^2; directions
      with lambda_i = 0 (all but N - 1 of them when d >= N) count for nothing.
    - ``collapse_isotropic``, ``collapse_spectrum``: T_C at the data's own n from either formula
      (the first equals ``collapse_temperature(n, d, s^2)``; the second solves the spectrum
      equation for T, and is what ``collapse_temperature_from_data`` measures, to its O(10%)
      finite-d bias).
    - ``linear_transition``: n > d (a full-rank covariance estimate needs n >= d + 1);
      ``linear_kl``: KL ~ d/n at the data's n (n > d); ``linear_n_for_kl``: n ~ d/KL for
      ``target_kl`` (Merger & Goldt 2025; scalings, no prefactor); ``linear_learning_times``:
      gradient flow learns a mode of variance lambda in time ~ 1/lambda (Wang & Pehlevan 2025),
      so the slowest/fastest ratio is lambda_max/lambda_min (eigenvalues above 1e-10 lambda_max).
    - ``random_features``: with p features the score memorises when p > n (George, Veiga & Macris
      2025): generalising needs n > p; the verdict at the data's n.
    - ``tau_mem``: tau_mem(n) = c n^a of the ``law`` (or of ``probe``) at the data's n, with its
      1-sigma band; ``window``: the early-stopping window [tau_gen, tau_mem(n)] (theory 10);
      ``n_for_window``: the n with tau_mem(n) = tau_gen (smaller n: no generalising window);
      ``n_for_steps``: the n with tau_mem(n) = ``train_steps`` (train that long without memorising).

    **Arguments:**
    - ``data``: an (N, d) array or ``FiniteDataset`` (N >= 2, not all equal), or None.
    - ``n_points``: the data's size n, an integer >= 2 (only without ``data``).
    - ``dim``: d >= 1 (only without ``data``; defaults to ``len(spectrum)``).
    - ``variance``: s^2 > 0 (without ``data``; defaults to ``mean(spectrum)``).
    - ``spectrum``: covariance eigenvalues, 1-D of length d, finite, >= 0, not all 0.
    - ``target_temperature``: T* > 0 (VE-equivalent, in the data's units), or None.
    - ``target_kl``: a target KL > 0 for the linear scaling, or None.
    - ``features``: p >= 1 random features, or None.
    - ``law``: a ``MemorizationLaw`` (``fit_memorization_law``), or None.
    - ``probe``: instead of ``law``, measured onsets ``{n1: tau1, n2: tau2, ...}`` (values a
      number of steps or a pair (tau, stderr)) to fit with ``fit_memorization_law``.
    - ``exponent``: the exponent a fixed in that fit (default 1.0, the linear law; None fits it,
      which needs 3 sizes for an error estimate).
    - ``tau_gen``: the generation time in steps (> 0), or None.
    - ``train_steps``: a planned number of training steps (> 0), or None.

    **Returns:** a ``DataNeed``.

    Under jit: not jittable (host-side planner in NumPy float64); validates eagerly.
    """
    n_points, dim, variance, spectrum = _inputs(data, n_points, dim, variance, spectrum)
    T = _opt_positive("target_temperature", target_temperature, temperature=True)
    kl = _opt_positive("target_kl", target_kl)
    p = None if features is None else check_int("features", features, 1, None)
    tg = _opt_positive("tau_gen", tau_gen)
    steps = _opt_positive("train_steps", train_steps)
    law = _law(law, probe, exponent)
    rows = []
    iso = _rem_rows(rows, n_points, dim, variance, spectrum, T)
    _linear_rows(rows, n_points, dim, spectrum, kl)
    _features_row(rows, n_points, p)
    _law_rows(rows, n_points, law, tg, steps)
    return DataNeed(n_points=n_points, dim=dim, variance=variance, spectrum=spectrum, target_temperature=T,
                    target_kl=kl, features=p, tau_gen=tg, train_steps=steps, law=law, rows=tuple(rows), **iso)


def _inputs(data, n_points, dim, variance, spectrum):
    """(n_points, dim, variance, spectrum) from a dataset or from the statistics given."""
    if data is not None:
        given = [k for k, v in dict(n_points=n_points, dim=dim, variance=variance, spectrum=spectrum).items()
                 if v is not None]
        if given:
            raise ValueError(f"give data or its statistics, not both (got data and {', '.join(given)})")
        n_points, lam = _spectrum_of(data)
        dim = lam.size
        lam = np.where(lam > lam[0] * max(n_points, dim) * np.finfo(np.float64).eps, lam, 0.0)  # numerical rank
        if not lam[0] > 0:
            raise ValueError("data must not be all identical (zero variance): no spectrum")
        return n_points, dim, float(np.mean(lam)), lam
    if n_points is not None:
        n_points = check_int("n_points", n_points, 2, None)
    if spectrum is not None:
        check_real("spectrum", spectrum, what="a 1-D array of covariance eigenvalues")
        lam = np.asarray(spectrum, np.float64)
        if lam.ndim != 1 or lam.size < 1 or not np.all(np.isfinite(lam)) or np.any(lam < 0) or not lam.max() > 0:
            raise ValueError("spectrum must be a non-empty 1-D array of finite eigenvalues >= 0, not all 0 "
                             f"(allowed range: lambda_i >= 0), got {np.asarray(spectrum).tolist()!r}"[:300])
        spectrum = np.sort(lam)[::-1]
        if dim is not None and check_int("dim", dim, 1, None) != lam.size:
            raise ValueError(f"dim = {dim} does not match len(spectrum) = {lam.size}")
        dim = lam.size
    if dim is None:
        raise ValueError("give data, or dim (an integer >= 1) or spectrum")
    dim = check_int("dim", dim, 1, None)
    if variance is not None:
        variance = _opt_positive("variance", variance)
    elif spectrum is not None:
        variance = float(np.mean(spectrum))
    return n_points, dim, variance, spectrum


def _spectrum_of(data) -> tuple[int, np.ndarray]:
    """(N, covariance eigenvalues in descending order) of a dataset (population covariance, float64;
    through the N x N Gram matrix when d > N)."""
    from ._ensembles._base import as_float_array
    from ._ensembles._finite import FiniteDataset

    ds = data if isinstance(data, FiniteDataset) else None
    if ds is None:
        pts = as_float_array("data", data, ndim=2)  # validates: real, 2-D, finite
        check_finite("data", pts)
        if pts.shape[0] < 2:
            raise ValueError(f"data must hold at least 2 points (N >= 2), got N = {pts.shape[0]}")
        ds = FiniteDataset(pts)
        X = np.asarray(data, np.float64)
    if ds.n_points < 2:
        raise ValueError(f"data must hold at least 2 points (N >= 2), got N = {ds.n_points}")
    if isinstance(data, FiniteDataset):
        lam = np.linalg.eigvalsh(np.asarray(ds.covariance(), np.float64))
    else:
        Xc = X - X.mean(axis=0)
        n, d = Xc.shape
        lam = np.linalg.eigvalsh(Xc.T @ Xc / n) if d <= n else np.concatenate(
            [np.linalg.eigvalsh(Xc @ Xc.T / n), np.zeros(d - n)])
    return int(ds.n_points), np.maximum(np.sort(lam)[::-1], 0.0)


def _opt_positive(name, value, *, temperature=False):
    if value is None:
        return None
    if temperature:
        check_temperature_scalar(value, name)
    else:
        check_real(name, value, what="a real number > 0")
        if np.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar (shape ()), got shape {np.shape(value)}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be finite and > 0 (allowed range: {name} > 0), got {value!r}")
    return v


def _law(law, probe, exponent):
    if law is not None and probe is not None:
        raise ValueError("give law (a MemorizationLaw) or probe ({n: tau_mem}), not both")
    if law is not None:
        if not isinstance(law, MemorizationLaw):
            raise TypeError(f"law must be a MemorizationLaw (fit_memorization_law), got {type(law).__name__}")
        return law
    if probe is None:
        return None
    if not isinstance(probe, dict) or not probe:
        raise TypeError(f"probe must be a non-empty dict {{n: tau_mem}} or {{n: (tau_mem, stderr)}}, got {probe!r}")
    sizes, taus, ses = [], [], []
    for n, v in probe.items():
        tau, se = (v if isinstance(v, (tuple, list)) and len(v) == 2 else (v, None))
        sizes.append(n)
        taus.append(tau)
        ses.append(se)
    if any(s is None for s in ses) and not all(s is None for s in ses):
        raise ValueError("probe values must all be tau_mem, or all (tau_mem, stderr) pairs")
    se = None if ses[0] is None else ses
    try:
        return fit_memorization_law(sizes, taus, tau_mem_se=se, exponent=exponent)
    except (TypeError, ValueError) as err:
        raise type(err)(f"probe: {err}") from None


# ============================================================================ the rows
_EXACT = "exact score (theory 9)"
_REM_VALID = ("annealed REM, leading order in d (the measured collapse lies 27%, 15%, 9% higher at d = 8, 16, 64; "
              "theory 9)")


def _rem_rows(rows, n, d, s2, lam, T):
    iso = dict(n=None, n_ceil=None, log10_n=None, n_spectrum=None, n_spectrum_ceil=None, log10_n_spectrum=None,
               collapse_temperature=None, collapse_temperature_spectrum=None)
    if T is not None and s2 is not None:
        iso["n"], iso["n_ceil"], iso["log10_n"] = _size(0.5 * d * float(np.logaddexp(0.0, math.log(s2) - math.log(T))))
        rows.append(NeedRow("rem_isotropic", _EXACT, "n so that T_C(n) <= T* (isotropic)", iso["n"],
                            "n = (1 + s^2/T*)^(d/2)",
                            "data ~ N(mu, s^2 I), s^2 = mean variance; " + _REM_VALID, "points", log10=iso["log10_n"]))
    if T is not None and lam is not None:
        iso["n_spectrum"], iso["n_spectrum_ceil"], iso["log10_n_spectrum"] = _size(_rem_log_n(lam, T))
        rows.append(NeedRow("rem_spectrum", _EXACT, "n so that T_C(n) <= T* (covariance spectrum)", iso["n_spectrum"],
                            "log n = (1/2) sum_i log(1 + lambda_i/T*)",
                            "Gaussian approximation: data ~ N(mu, C), lambda_i = eigenvalues of C; " + _REM_VALID,
                            "points", log10=iso["log10_n_spectrum"]))
    if n is not None and s2 is not None:
        iso["collapse_temperature"] = math.exp(math.log(s2) - _log_expm1(2.0 * math.log(n) / d))
        rows.append(NeedRow("collapse_isotropic", _EXACT, f"collapse temperature T_C at n = {n} (isotropic)",
                            iso["collapse_temperature"], "T_C = s^2/(n^(2/d) - 1)", "as rem_isotropic", "temperature",
                            note=_verdict_T(iso["collapse_temperature"], T)))
    if n is not None and lam is not None:
        iso["collapse_temperature_spectrum"] = _rem_collapse_temperature(lam, n)
        rows.append(NeedRow("collapse_spectrum", _EXACT, f"collapse temperature T_C at n = {n} (spectrum)",
                            iso["collapse_temperature_spectrum"], "solves (1/2) sum_i log(1 + lambda_i/T_C) = log n",
                            "as rem_spectrum", "temperature", note=_verdict_T(iso["collapse_temperature_spectrum"], T)))
    return iso


def _verdict_T(T_C, T):
    if T is None:
        return "the exact empirical score memorises below T_C"
    return "T_C <= T*: enough data" if T_C <= T else "T_C > T*: the exact score memorises at T*"


_LIN = "linear denoiser"
_ZERO_EIGENVALUE = 1e-10  # relative to lambda_max: below it an eigenvalue is rounding (a flat direction)


def _linear_rows(rows, n, d, lam, kl):
    note = "" if n is None else (f"n = {n} > d: the covariance estimate is full rank" if n > d else
                                 f"n = {n} <= d: rank-deficient covariance (memorising regime)")
    rows.append(NeedRow("linear_transition", _LIN, "n for a full-rank covariance estimate", float(d + 1),
                        "n >= d + 1 (n > d)", "transition at n ~ d (Merger & Goldt 2025)",
                        "points", note=note))
    if n is not None and n > d:
        rows.append(NeedRow("linear_kl", _LIN, f"KL(generated || data) at n = {n}", d / n,
                            "KL ~ d/n (a scaling: no prefactor)", "n > d, large d (Merger & Goldt 2025)", "nats"))
    if kl is not None:
        rows.append(NeedRow("linear_n_for_kl", _LIN, f"n for KL ~ {kl:g}", d / kl, "n ~ d/KL (a scaling: no prefactor)",
                            "n > d (Merger & Goldt 2025)", "points"))
    floor = None if lam is None else _ZERO_EIGENVALUE * float(np.max(lam))
    if lam is not None and np.count_nonzero(lam > floor) >= 1:
        pos = lam[lam > floor]  # numerically zero directions (constant pixels: 1e-17 lambda_max) excluded
        rows.append(NeedRow("linear_learning_times", _LIN, "slowest/fastest mode learning time", float(pos[0] / pos[-1]),
                            "t ~ 1/lambda: lambda_max/lambda_min (lambda > 1e-10 lambda_max)",
                            "gradient flow on a linear denoiser (Wang & Pehlevan 2025)", "ratio"))


def _features_row(rows, n, p):
    if p is None:
        return
    note = ""
    if n is not None:
        note = ("p > n: memorises" if p > n else "p < n: generalises" if p < n else "p = n: at the boundary")
    rows.append(NeedRow("random_features", "random features", f"n to generalise with p = {p}",
                        float(p), "n > p (memorises if p > n)", "George, Veiga & Macris 2025", "points", note=note))


_NET = "trained net (theory 10)"


def _law_rows(rows, n, law, tg, steps):
    if law is None:
        return
    formula = f"tau_mem = c n^a, c = {law.c:.4g} +- {law.c_se:.2g}, a = {law.a:.3g}" + (
        "" if law.fixed else f" +- {law.a_se:.2g}")
    valid = (f"fitted at n = {_sizes_text(law.sizes)}" + (", a fixed" if law.fixed else "")
             + " (Bonnaire et al. 2025); band: 1 sigma of the fit"
             + ("" if np.isfinite(law.c_se) else "; no error estimate (too few points)"))
    if n is not None:
        tau, lo, hi = (float(v) for v in law.predict(n))
        rows.append(NeedRow("tau_mem", _NET, f"memorisation onset at n = {n}", tau, formula, valid, "steps",
                            lo=lo, hi=hi))
        if tg is not None:
            note = (f"stop between {tg:.4g} and {tau:.4g} steps" if tg < lo or (not np.isfinite(lo) and tg < tau)
                    else "no safe window: tau_gen >= tau_mem(n) (within its band); more data needed")
            rows.append(NeedRow("window", _NET, "early-stopping window [tau_gen, tau_mem(n)]", tau - tg,
                                "width tau_mem(n) - tau_gen", valid, "steps", lo=tg, hi=tau, note=note))
    if tg is not None:
        m, m_lo, m_hi = _n_for_tau(law, tg)
        rows.append(NeedRow("n_for_window", _NET, "smallest n with a window (tau_mem = tau_gen)", m,
                            "n = (tau_gen/c)^(1/a)", valid, "points", lo=m_lo, hi=m_hi))
    if steps is not None:
        m, m_lo, m_hi = _n_for_tau(law, steps)
        rows.append(NeedRow("n_for_steps", _NET, f"n for {steps:.4g} steps without memorising", m,
                            "n = (steps/c)^(1/a)", valid, "points", lo=m_lo, hi=m_hi))


def _sizes_text(sizes) -> str:
    return ", ".join(f"{s:g}" for s in np.unique(sizes))


# ============================================================================ output
def _json_value(v):
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


def _fmt(v, unit="") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    if unit == "points" and v >= 1e6:
        return f"{v:.3e}"
    return f"{v:.4g}"


def _value_text(r: NeedRow) -> str:
    if r.log10 is not None and (r.value is None or not math.isfinite(r.value) or r.value >= 1e6):
        text = f"10^{r.log10:.2f}"
    else:
        text = _fmt(r.value, r.unit)
    if r.lo is not None and r.hi is not None and r.key != "window":
        text += f" [{_fmt(r.lo)}, {_fmt(r.hi)}]"
    if r.key == "window":
        text = f"[{_fmt(r.lo)}, {_fmt(r.hi)}]"
    return text


def _table(need: DataNeed) -> str:
    head = [f"Data needed (theory section 11): d = {need.dim}"]
    if need.n_points is not None:
        head.append(f"n = {need.n_points}")
    if need.variance is not None:
        head.append(f"s^2 = {need.variance:.4g} (mean variance)")
    if need.target_temperature is not None:
        head.append(f"T* = {need.target_temperature:.4g}")
    rows = [(r.regime, r.quantity, _value_text(r), r.formula) for r in need.rows]
    w = [max(len(h), *(len(x[i]) for x in rows)) if rows else len(h)
         for i, h in enumerate(("model", "quantity", "value", "formula"))]
    line = lambda cells: "  ".join(c.ljust(w[i]) for i, c in enumerate(cells)).rstrip()
    out = [", ".join(head), "", line(("model", "quantity", "value", "formula")), line(["-" * k for k in w])]
    for r, cells in zip(need.rows, rows):
        out.append(line(cells))
        out.append(" " * 4 + "valid: " + r.validity + (f"; {r.note}" if r.note else ""))
    out.append("T is the VE-equivalent noise variance in the data's units; [lo, hi]: 1-sigma band; "
               "~ marks scalings without a prefactor.")
    return "\n".join(out)


__all__ = ["DataNeed", "NeedRow", "data_need"]
