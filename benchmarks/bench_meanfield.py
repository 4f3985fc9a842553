"""Benchmark of the mean-field temperature sweep (theory sections 2 and 4).

``meanfield_sweep``
    Issue: "The 10^4-temperature sweep (fixed point + chi + heat capacity) against a SciPy
    root-finding loop over the same temperatures, as a ratio in one run". For each ensemble
    (two deltas +-1 in d = 1; a FiniteDataset of N = 200 points in d = 8, two mirror-symmetric
    clusters, so that the symmetric criterion of ``critical_temperature`` applies; the matching
    two-component GaussianMixture) and 10^4 temperatures log-spaced over
    [0.2, 3] T_c (T_c from ``td.critical_temperature``), on the equilibrium branch (the
    broken-symmetry start of ``order_parameter``), compute

    - the fixed point x*(T) and the order parameter (x* - mean).v,
    - the self-consistent susceptibility matrix chi = dx*/dh,
    - the heat capacity C = -T d^2F/dT^2 of F(T) = Phi_T(x*(T)),

    with thermodiff's public API in float64, against a SciPy reference a researcher would write
    without autodiff: a Python loop over the same temperatures calling
    ``scipy.optimize.root(method="hybr")`` with the analytic Jacobian I - Cov[y|x]/T from NumPy,
    chi from the closed form (I - J)^{-1} J, and C from a central second difference of F(T)
    (three root solves per temperature, the two outer ones warm-started at x*(T)).

    thermodiff variants, each one ``jax.jit`` over the whole sweep, the ensemble passed as an
    argument (a pytree, not closed over):

    - ``thermodiff_vmap``: the issue's formulation with the public API, ``fixed_point`` +
      ``susceptibility`` + ``heat_capacity`` per temperature (three solves: chi and C each
      solve again from the start, then use closed-form implicit derivatives), in a plain
      ``jax.vmap``: the library's batching rule (``thermodiff._blocked_vmap``) runs it in blocks
      of ``vmap_block_size()`` lanes by itself, so it should match ``thermodiff_map``
      (``{case}_map_speedup_vs_vmap`` = vmap time / map time, target >= 1/1.5; before the rule
      the plain vmap was 3-9x slower than the best map, see ``benchmarks/_scale_sweep.py``);
    - ``thermodiff_map``: the same per-temperature function under ``jax.lax.map(...,
      batch_size=B)`` over the sorted temperatures (see ``thermodiff_fused_map`` for why);
    - ``thermodiff_fused``: the library's private fused kernel ``thermodiff._meanfield.
      _equilibrium``: one solve per temperature, chi and C from closed forms at x* sharing one
      linear solve with I - J (C = -T [d_TT Phi - d_T m . (I - J)^{-1} d_T m]);
    - ``thermodiff_fused_map``: the same kernel under ``jax.lax.map(..., batch_size=B)`` over
      the sorted temperatures (a vmap per block of B). Not a deadlock workaround any more: on
      XLA:CPU a vmap of the iterative solve over 10^4 lanes is memory-bound (every while-loop
      iteration streams 10^4-lane intermediates, and every lane runs until the slowest lane of
      the batch converges), while blocks of B = 200 neighbouring temperatures stay in cache and
      stop together. (The private kernel has the same batching rule as the public API, so
      ``thermodiff_fused`` is blocked too.)

    Everything of one ensemble runs in a fresh subprocess (x64 on; the rest of the suite stays
    float32) and is timed in shuffled interleaved rounds with the SciPy loop, so the ratios come
    from the same rounds. Compile time (trace + lower, XLA compile) is reported separately from
    the first call and from the steady-state calls.

    Agreement with SciPy: max |diff| of x* and chi (relative), and of C where the finite
    difference is meaningful; non-finite values of each variant are counted (``nonfinite_*``),
    not hidden in the maxima. With ``--quick`` the vmapped public sweep is also compared with a
    per-temperature loop of the same function (``loop_check``: lane-dependent results, such as
    the former NaN heat capacities at a few lanes of a vmap, show up there).

    **No batched LAPACK.** jaxlib 0.10.x ran the batched LAPACK kernels of ``jnp.linalg.solve``
    under vmap (LU and triangular solves) through a parallel batch map on XLA:CPU's intra-op
    pool and could deadlock on a 2-core machine (batches of >= ~1000 temperatures in d = 8).
    The solver hot paths now use a pure-jnp elimination (``thermodiff._meanfield._small_solve``);
    each variant's lowered sweep is checked for LAPACK custom calls with batch dimensions
    (``batched_lapack_calls`` in ``compile``, expected 0), and a hang would hit the worker's
    hard timeout and be reported as a failure.

    Optional extras: ``td.critical_exponents(td.TwoDeltas(1.0))`` end to end (first and second
    call, wall time including compilation) and ``td.critical_temperature`` of each ensemble.

Run ``python -m benchmarks --only meanfield_sweep``; ``--quick`` uses 200 temperatures.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np

from ._common import register, summarize

CASES = ("two_deltas", "finite_dataset", "gaussian_mixture")
JAX_VARIANTS = ("thermodiff_vmap", "thermodiff_map", "thermodiff_fused", "thermodiff_fused_map")
REFERENCE = "scipy"
T_RANGE = (0.2, 3.0)  # in units of T_c
NEAR_TC = 1e-2  # |T/T_c - 1| below this counts as "near T_c" in the agreement split

# ---------------------------------------------------------------------------------- data


def two_clusters(n: int = 200, d: int = 8, sep: float = 2.0, sigma: float = 0.5, seed: int = 0):
    """(n, d) float64 points, mirror-symmetric: n/2 points around +sep u (u a random unit vector,
    isotropic Gaussian spread ``sigma``) and their mirror images -y. The law is symmetric about
    its mean 0, so the symmetric branch and ``critical_temperature``'s pitchfork exist; T_c is
    close to sep^2 - sigma^2, and the clusters' own splitting lies well below 0.2 T_c.
    Returns (points, u)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    half = sep * u[None, :] + sigma * rng.standard_normal((n // 2, d))
    return np.concatenate([half, -half]), u


# ---------------------------------------------------------------------------------- NumPy references
# Each returns (m, Cov) = (E[y|x], Cov[y|x]) and Phi_T(x) in the library's conventions (the
# constant terms of Phi in T matter for C).


class NpTwoDeltas:
    def __init__(self, mu):
        self.mu = np.atleast_1d(np.asarray(mu, float))
        self.a2 = float(self.mu @ self.mu)
        self.d = self.mu.shape[0]

    def m_cov(self, x, T):
        f = self.mu @ x / T
        e = math.exp(-2.0 * abs(f))
        sech2 = 4.0 * e / (1.0 + e) ** 2
        return self.mu * math.tanh(f), np.outer(self.mu, self.mu) * sech2

    def phi(self, x, T):
        f = abs(self.mu @ x / T)
        return 0.5 * (x @ x) + 0.5 * self.a2 - T * (f + math.log1p(math.exp(-2.0 * f)) - math.log(2.0))


class NpFinite:
    def __init__(self, points):
        self.Y = np.ascontiguousarray(points, float)
        n, self.d = self.Y.shape
        self.logw = -math.log(n)
        self.hs = 0.5 * np.einsum("nd,nd->n", self.Y, self.Y)

    def _weights(self, x, T):
        L = (self.Y @ x - self.hs) / T
        mx = L.max()
        e = np.exp(L - mx)
        s = e.sum()
        return e / s, self.logw + mx + math.log(s)

    def m_cov(self, x, T):
        w, _ = self._weights(x, T)
        m = w @ self.Y
        c = self.Y - m
        return m, (c * w[:, None]).T @ c

    def phi(self, x, T):
        return 0.5 * (x @ x) - T * self._weights(x, T)[1]


class NpMixture:
    def __init__(self, means, variances):
        self.mu = np.asarray(means, float)
        self.s2 = np.asarray(variances, float)
        self.k, self.d = self.mu.shape
        self.logw = -math.log(self.k)

    def _logits(self, x, T):
        tot = T + self.s2
        sq = np.sum((x[None, :] - self.mu) ** 2, axis=1)
        return self.logw + 0.5 * self.d * np.log(T / tot) - 0.5 * sq / tot

    def m_cov(self, x, T):
        L = self._logits(x, T)
        r = np.exp(L - L.max())
        r /= r.sum()
        cm = (self.s2[:, None] * x[None, :] + T * self.mu) / (self.s2 + T)[:, None]
        cv = self.s2 * T / (self.s2 + T)
        m = r @ cm
        c = cm - m
        return m, (c * r[:, None]).T @ c + (r @ cv) * np.eye(self.d)

    def phi(self, x, T):
        L = self._logits(x, T)
        mx = L.max()
        return -T * (mx + math.log(np.exp(L - mx).sum()))


def scipy_sweep(ref, Ts, x0, *, rel_step: float, xtol: float):
    """The researcher's loop: per temperature one ``scipy.optimize.root`` (hybr, analytic
    Jacobian) from the broken start x0, chi = (I - J)^{-1} J with J = Cov/T, and
    C = -T [F(T+h) - 2F(T) + F(T-h)]/h^2 with F = Phi_T(x*(T)), h = rel_step T, the two outer
    solves warm-started at x*(T). Returns (x*, chi, C, stats)."""
    from scipy.optimize import root

    d = ref.d
    eye = np.eye(d)

    def fun(u, T):
        m, cov = ref.m_cov(u, T)
        return u - m, eye - cov / T

    def solve(T, start):
        return root(fun, start, args=(T,), jac=True, method="hybr", options={"xtol": xtol})

    n = len(Ts)
    X = np.empty((n, d))
    CHI = np.empty((n, d, d))
    C = np.empty(n)
    nfev = njev = failed = 0
    statuses: dict = {}
    for i, T in enumerate(Ts):
        T = float(T)
        s0 = solve(T, x0)
        x = s0.x
        _, cov = ref.m_cov(x, T)
        J = cov / T
        CHI[i] = np.linalg.solve(eye - J, J)
        h = rel_step * T
        sp = solve(T + h, x)
        sm = solve(T - h, x)
        C[i] = -T * (ref.phi(sp.x, T + h) - 2.0 * ref.phi(x, T) + ref.phi(sm.x, T - h)) / (h * h)
        X[i] = x
        for s in (s0, sp, sm):
            nfev += s.nfev
            njev += getattr(s, "njev", 0)
            if not s.success:
                failed += 1
                statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    # hybr status 3: "xtol is too small, no further improvement possible" (converged to rounding)
    # 4/5: "not making good progress" (near T_c, where I - J is nearly singular)
    return X, CHI, C, {"root_calls": 3 * n, "nfev_per_T": nfev / n, "njev_per_T": njev / n,
                       "root_failures": failed, "root_failure_status": statuses}


# ---------------------------------------------------------------------------------- thermodiff side


def make_case(case: str, quick: bool):
    """(thermodiff ensemble, NumPy reference, description dict)."""
    import jax.numpy as jnp

    import thermodiff as td

    if case == "two_deltas":
        return td.TwoDeltas(1.0), NpTwoDeltas(1.0), {"ensemble": "TwoDeltas(1.0)", "d": 1}
    pts, u = two_clusters()
    sep, sigma = 2.0, 0.5
    if case == "finite_dataset":
        desc = {"ensemble": "FiniteDataset", "N": pts.shape[0], "d": pts.shape[1],
                "data": f"two mirror clusters at +-{sep} u, spread {sigma}, seed 0 (y and -y)"}
        return td.FiniteDataset(jnp.asarray(pts)), NpFinite(pts), desc
    if case == "gaussian_mixture":
        means = np.stack([sep * u, -sep * u])
        var = np.full(2, sigma**2)
        desc = {"ensemble": "GaussianMixture", "K": 2, "d": means.shape[1], "means": f"+-{sep} u", "variance": sigma**2}
        return td.GaussianMixture(jnp.asarray(means), jnp.asarray(var)), NpMixture(means, var), desc
    raise ValueError(f"unknown case {case!r}")


def broken_start(ens):
    """mean + sqrt(lambda_max) v: the default start of ``order_parameter``/``heat_capacity``."""
    import jax.numpy as jnp

    import thermodiff as td

    lam, v = td.principal_axis(ens)
    mean = ens.mean()
    return mean + jnp.sqrt(jnp.maximum(lam, 0.0)) * v, mean, v


def td_point(ens, T):
    """Public API, one temperature: x*, order parameter, chi (d, d), C."""
    import thermodiff as td

    x0, mean, v = broken_start(ens)
    x = td.fixed_point(ens, T, x0=x0)
    chi = td.susceptibility(ens, T, x0=x0)
    C = td.heat_capacity(ens, T, x0=x0)
    return x, (x - mean) @ v, chi, C


def fused_point(ens, T):
    """The library's fused kernel (private ``_equilibrium``): one fixed-point solve from the
    broken start, then chi and C from closed forms at x* sharing one linear solve."""
    from thermodiff._meanfield import _equilibrium

    x0, mean, v = broken_start(ens)
    x, chi, C = _equilibrium(ens, T, x0)
    return x, (x - mean) @ v, chi, C


def sweep_fn(variant: str, traces: list, block: int = 200):
    """The jittable sweep ``f(ens, Ts) -> (X, m, CHI, C)`` of one variant."""
    import jax

    point = fused_point if variant.startswith("thermodiff_fused") else td_point

    def f(ens, Ts):
        traces.append(variant)
        if variant.endswith("_map"):
            return jax.lax.map(lambda T: point(ens, T), Ts, batch_size=block)
        return jax.vmap(lambda T: point(ens, T))(Ts)

    return f


def batched_lapack_calls(hlo_text: str) -> int:
    """Number of LAPACK custom calls with batch dimensions in a lowered module (the kernels
    that deadlocked jaxlib 0.10 under vmap); unbatched ones (one eigh of the data covariance
    for the start) are fine."""
    import re

    return sum(1 for line in hlo_text.splitlines() if "custom_call @lapack" in line
               and not re.search(r'num_batch_dims = "0"', line))


# ---------------------------------------------------------------------------------- worker


def _emit(obj):
    print("@@" + json.dumps(obj), flush=True)


def _np_out(out):
    return tuple(np.asarray(o) for o in out)


def _agreement(ref, out, Ts, Tc, rel_step):
    """max |diff| of x*, chi (abs and relative), C between a thermodiff variant and SciPy,
    overall and away from T_c; C only to the accuracy of the finite difference."""
    X, _, CHI, C = out
    Xr, CHIr, Cr = ref
    away = np.abs(Ts / Tc - 1.0) > NEAR_TC
    dx = np.max(np.abs(X - Xr), axis=1)
    dchi = np.max(np.abs(CHI - CHIr), axis=(1, 2))
    chi_scale = np.maximum(np.max(np.abs(CHIr), axis=(1, 2)), 1e-300)
    dC = np.abs(C - Cr)
    # FD cannot resolve C's jump at T_c: exclude stencils that straddle it (|T - T_c| < 2h).
    # Non-finite values are counted (``nonfinite_*``), not folded into the maxima.
    fd_ok = (np.abs(Ts - Tc) > 2 * rel_step * Ts) & np.isfinite(C)
    dx = np.where(np.isfinite(dx), dx, 0.0)
    dchi = np.where(np.isfinite(dchi), dchi, 0.0)
    branch = dx > 1e-6 * (1.0 + np.max(np.abs(Xr), axis=1))

    def mx(a, mask=None):
        a = a if mask is None else a[mask]
        return float(np.max(a)) if a.size else None

    return {
        "x_max_abs_diff": mx(dx),
        "x_max_abs_diff_away": mx(dx, away),
        "chi_max_abs_diff": mx(dchi),
        "chi_max_rel_diff": mx(dchi / chi_scale),
        "chi_max_rel_diff_away": mx(dchi / chi_scale, away),
        "C_max_abs_diff": mx(dC, fd_ok),
        "C_max_abs_diff_away": mx(dC, away & fd_ok),
        "C_max_abs": mx(np.abs(Cr)),
        "branch_mismatches": int(np.sum(branch)),
        "nonfinite_x": int(np.sum(~np.isfinite(X).all(axis=1))),
        "nonfinite_chi": int(np.sum(~np.isfinite(CHI).all(axis=(1, 2)))),
        "nonfinite_C": int(np.sum(~np.isfinite(C))),
        "nonfinite_C_T_over_Tc": [float(t) for t in (Ts[~np.isfinite(C)] / Tc)[:20]],
        "argmax_x_T_over_Tc": float(Ts[np.argmax(dx)] / Tc),
        "argmax_C_T_over_Tc": float(Ts[fd_ok][np.argmax(dC[fd_ok])] / Tc) if fd_ok.any() else None,
    }


def worker(cfg: dict) -> None:
    """One ensemble, in a fresh float64 interpreter: T_c, compile, agreement, interleaved rounds."""
    os.environ.setdefault("JAX_ENABLE_X64", "1")
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jaxlib

    import thermodiff as td

    case, quick, n = cfg["case"], cfg["quick"], cfg["n_temperatures"]
    variants = [v for v in cfg["variants"] if v in JAX_VARIANTS]
    ens, ref, desc = make_case(case, quick)
    _emit({"stage": "start", "pid": os.getpid(), "desc": desc, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
           "x64": bool(jax.config.jax_enable_x64), "backend": jax.default_backend()})

    # ---- T_c (first call compiles; second call is the steady state)
    t0 = time.perf_counter()
    Tc = float(td.critical_temperature(ens))
    tc_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    float(td.critical_temperature(ens))
    tc_second = time.perf_counter() - t0
    _emit({"stage": "tc", "T_c": Tc, "critical_temperature_first_s": tc_first, "critical_temperature_second_s": tc_second})

    Ts_np = Tc * np.logspace(math.log10(T_RANGE[0]), math.log10(T_RANGE[1]), n)
    Ts = jnp.asarray(Ts_np)
    x0 = np.asarray(broken_start(ens)[0])

    # ---- compile and first/second call of each JAX variant
    calls, outs, compile_rec = {}, {}, {}
    for v in variants:
        traces: list = []
        f = jax.jit(sweep_fn(v, traces, cfg["block"]))
        _emit({"stage": "begin", "begin": f"lower:{v}"})
        t0 = time.perf_counter()
        lowered = f.lower(ens, Ts)
        t_lower = time.perf_counter() - t0
        n_lapack = batched_lapack_calls(lowered.as_text())
        t0 = time.perf_counter()
        compiled = lowered.compile()
        t_compile = time.perf_counter() - t0
        rec_v = {"trace_lower_s": t_lower, "xla_compile_s": t_compile, "traces": len(traces),
                 "batched_lapack_calls": n_lapack}
        _emit({"stage": f"xla_compiled:{v}", "compile": {v: rec_v}})
        _emit({"stage": "begin", "begin": f"call1:{v}"})
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(ens, Ts))
        t_first = time.perf_counter() - t0
        _emit({"stage": f"call1:{v}", "compile": {v: {**rec_v, "first_call_s": t_first}}})
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(ens, Ts))
        t_second = time.perf_counter() - t0
        calls[v] = (compiled, (ens, Ts))
        outs[v] = _np_out(out)
        compile_rec[v] = {**rec_v, "first_call_s": t_first, "second_call_s": t_second}
        _emit({"stage": f"compiled:{v}", "compile": {v: compile_rec[v]}})

    # ---- the vmapped sweep against a per-temperature loop of the same public-API point
    # (quick mode: every temperature; catches lane-dependent results such as NaN at a few lanes)
    if cfg.get("loop_check") and "thermodiff_vmap" in outs:
        one = jax.jit(td_point)
        loop = [_np_out(one(ens, T)) for T in Ts]
        L = [np.stack([r[i] for r in loop]) for i in range(4)]
        V = outs["thermodiff_vmap"]
        _emit({"stage": "loop_check", "loop_check": {
            "n": len(loop),
            "x_max_abs_diff": float(np.max(np.abs(V[0] - L[0]))),
            "chi_max_rel_diff": float(np.max(np.abs(V[2] - L[2])) / max(np.max(np.abs(L[2])), 1e-300)),
            "C_max_abs_diff": float(np.max(np.abs(V[3] - L[3]))),
            "nonfinite_vmap": int(sum(np.sum(~np.isfinite(a)) for a in V)),
            "nonfinite_loop": int(sum(np.sum(~np.isfinite(a)) for a in L)),
        }})

    # ---- SciPy reference once (its outputs), then agreement
    def scipy_call():
        return scipy_sweep(ref, Ts_np, x0, rel_step=cfg["rel_step"], xtol=cfg["xtol"])

    t0 = time.perf_counter()
    Xr, CHIr, Cr, sp_stats = scipy_call()
    sp_first = time.perf_counter() - t0
    agreement = {v: _agreement((Xr, CHIr, Cr), outs[v], Ts_np, Tc, cfg["rel_step"]) for v in outs}
    between = {}
    base = "thermodiff_vmap" if "thermodiff_vmap" in outs else None
    if base:
        for v in outs:
            if v != base:
                between[f"{v}_vs_{base}"] = {
                    "x_max_abs_diff": float(np.max(np.abs(outs[v][0] - outs[base][0]))),
                    "chi_max_abs_diff": float(np.max(np.abs(outs[v][2] - outs[base][2]))),
                    "C_max_abs_diff": float(np.nanmax(np.abs(outs[v][3] - outs[base][3]))),
                    "C_nonfinite_in_either": int(np.sum(~np.isfinite(outs[v][3] - outs[base][3]))),
                }
    profile = {}
    if base:
        X, m, CHI, C = outs[base]
        k = np.argmin(np.abs(Ts_np - Tc))
        profile = {"m_at_0.2Tc": float(m[0]), "C_below_Tc": float(C[np.searchsorted(Ts_np, 0.99 * Tc)]),
                   "C_above_Tc": float(C[np.searchsorted(Ts_np, 1.01 * Tc)]),
                   "closest_T_over_Tc": float(Ts_np[k] / Tc)}
    _emit({"stage": "agreement", "agreement": agreement, "between_variants": between, "scipy_stats": sp_stats,
           "scipy_first_call_s": sp_first, "values": profile})

    # ---- interleaved rounds (shuffled order per round; same rounds for every ratio)
    cases = {v: calls[v] for v in variants}
    cases[REFERENCE] = (lambda: scipy_call(), ())
    rng = random.Random(cfg.get("seed", 0))
    names = list(cases)
    samples = {k: [] for k in names}
    for r in range(cfg["rounds"]):
        rng.shuffle(names)
        for k in names:
            fn, args = cases[k]
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            samples[k].append(time.perf_counter() - t0)
        _emit({"stage": f"round{r}", "round_samples": {k: v[-1] for k, v in samples.items()},
               "loadavg": list(os.getloadavg())})
    timing = {k: summarize(v) for k, v in samples.items()}
    _emit({"stage": "timed", "timing": timing, "samples": samples})

    # ---- where the time goes: the sweep block by block (vmap of one block, same compiled fn)
    if cfg.get("block_profile") and "thermodiff_fused" in variants and n >= 2 * cfg["block"]:
        B = cfg["block"]
        traces = []
        g = jax.jit(sweep_fn("thermodiff_fused", traces))
        gc_ = g.lower(ens, Ts[:B]).compile()
        rows = []
        for s in range(0, n - B + 1, B):
            blk = Ts[s : s + B]
            jax.block_until_ready(gc_(ens, blk))  # warm
            t0 = time.perf_counter()
            jax.block_until_ready(gc_(ens, blk))
            rows.append({"T_lo/Tc": float(Ts_np[s] / Tc), "T_hi/Tc": float(Ts_np[s + B - 1] / Tc),
                         "ms": 1e3 * (time.perf_counter() - t0)})
        ms = np.array([r["ms"] for r in rows])
        _emit({"stage": "block_profile", "block_profile": {"block": B, "variant": "thermodiff_fused", "rows": rows,
               "slowest_over_median": float(ms.max() / np.median(ms)),
               "slowest_block_T_over_Tc": [rows[int(ms.argmax())]["T_lo/Tc"], rows[int(ms.argmax())]["T_hi/Tc"]],
               "sum_of_blocks_s": float(ms.sum() / 1e3)}})

    # ---- extras: critical exponents of two deltas end to end (first call compiles)
    if cfg.get("exponents"):
        rec = {}
        for i in range(2):
            t0 = time.perf_counter()
            out = td.critical_exponents(td.TwoDeltas(1.0))
            rec[f"call{i + 1}_s"] = time.perf_counter() - t0
        rec["beta"] = out["beta"].value
        rec["gamma"] = out["gamma"].value
        rec["delta"] = out["delta"].value
        rec["heat_capacity_jump"] = out["heat_capacity_jump"]["value"]
        _emit({"stage": "exponents", "critical_exponents": rec})
    _emit({"stage": "done"})


def _run_worker(cfg: dict, timeout_s: float) -> dict:
    """Run :func:`worker` in a fresh interpreter (x64 on); merge its stage records."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["JAX_ENABLE_X64"] = "1"
    cmd = [sys.executable, "-m", "benchmarks.bench_meanfield", "--worker", json.dumps(cfg)]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=out, stderr=err, text=True)
        killed = None
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = f"timeout after {timeout_s:.0f} s"
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    rec: dict = {"returncode": proc.returncode, "worker_wall_s": time.perf_counter() - t0}
    stages = []
    for line in stdout.splitlines():
        if line.startswith("@@"):
            obj = json.loads(line[2:])
            stages.append(obj.pop("stage"))
            for k, v in obj.items():
                if k == "compile" and "compile" in rec:
                    rec["compile"].update(v)
                elif k == "round_samples":
                    rec.setdefault("rounds_completed", []).append(v)
                else:
                    rec[k] = v
    rec["stages"] = stages
    rec["ok"] = killed is None and proc.returncode == 0 and "done" in stages
    if not rec["ok"]:
        rec["failure"] = killed or f"exit status {proc.returncode} after stages {stages[-3:]}"
        rec["stderr_tail"] = stderr[-2000:]
    return rec


def run_case(cfg: dict, timeout_s: float) -> dict:
    """Run one ensemble in a fresh worker with a hard timeout (a hang is a failure, reported
    with the stage it had begun)."""
    rec = _run_worker(cfg, timeout_s)
    if not rec["ok"] and rec.get("begin"):
        rec["failure"] = f"{rec['failure']} (stage {rec['begin']})"
    rec["variants_timed"] = sorted((rec.get("timing") or {}).keys())
    return rec


# ---------------------------------------------------------------------------------- benchmark


@register("meanfield_sweep", description="10^4-temperature sweep (x*, chi, C) vs a SciPy root loop")
def bench_meanfield_sweep(quick: bool) -> dict:
    n = 200 if quick else 10_000
    cfg0 = {
        "quick": quick,
        "n_temperatures": n,
        "rounds": 2 if quick else 5,
        "block": 200,
        "rel_step": 1e-4,
        "xtol": 1e-12,
        "variants": list(JAX_VARIANTS) + [REFERENCE],
        "block_profile": not quick,
        "loop_check": quick,
    }
    timeout = 300 if quick else 1800
    results = {}
    for case in CASES:
        cfg = {**cfg0, "case": case, "exponents": case == "two_deltas"}
        results[case] = run_case(cfg, timeout)

    rows, summary, notes = [], {"n_temperatures": n}, []
    for case, rec in results.items():
        timing = rec.get("timing") or {}
        ref_t = timing.get(REFERENCE, {}).get("median_s")
        for v in list(JAX_VARIANTS) + [REFERENCE]:
            t = timing.get(v)
            comp = (rec.get("compile") or {}).get(v, {})
            ag = (rec.get("agreement") or {}).get(v, {})
            if t is None and not comp:
                continue
            rows.append({
                "case": case,
                "variant": v,
                "us/T": 1e6 * t["median_s"] / n if t else None,
                "min us/T": 1e6 * t["min_s"] / n if t else None,
                "speedup vs scipy": (ref_t / t["median_s"]) if (t and ref_t) else None,
                "compile s": (comp["trace_lower_s"] + comp["xla_compile_s"]) if comp else None,
                "1st call s": comp.get("first_call_s"),
                "2nd call s": comp.get("second_call_s"),
                "max|dx|": ag.get("x_max_abs_diff"),
                "max rel dchi": ag.get("chi_max_rel_diff"),
                "max|dC|": ag.get("C_max_abs_diff"),
                "NaN C": ag.get("nonfinite_C"),
                "batched LAPACK": comp.get("batched_lapack_calls"),
                "status": "ok" if t else "not run",
            })
        short = {"two_deltas": "td1", "finite_dataset": "fd8", "gaussian_mixture": "gm8"}[case]
        main = "thermodiff_vmap" if "thermodiff_vmap" in timing else None
        if main and ref_t:
            summary[f"{short}_thermodiff_us_per_T"] = 1e6 * timing[main]["median_s"] / n
            summary[f"{short}_scipy_us_per_T"] = 1e6 * ref_t / n
            summary[f"{short}_speedup_vs_scipy"] = ref_t / timing[main]["median_s"]
            comp = rec["compile"][main]
            summary[f"{short}_compile_s"] = comp["trace_lower_s"] + comp["xla_compile_s"]
            ag = rec["agreement"][main]
            summary[f"{short}_x_max_abs_diff"] = ag["x_max_abs_diff"]
            summary[f"{short}_chi_max_rel_diff"] = ag["chi_max_rel_diff"]
            summary[f"{short}_C_max_abs_diff"] = ag["C_max_abs_diff"]
            summary[f"{short}_nonfinite_C"] = ag["nonfinite_C"]
            summary[f"{short}_scipy_root_failures"] = rec["scipy_stats"]["root_failures"]
        for v, key in (("thermodiff_map", "map"), ("thermodiff_fused", "fused"), ("thermodiff_fused_map", "fused_map")):
            if v in timing and ref_t:
                summary[f"{short}_{key}_us_per_T"] = 1e6 * timing[v]["median_s"] / n
                summary[f"{short}_{key}_speedup_vs_scipy"] = ref_t / timing[v]["median_s"]
                if main:
                    summary[f"{short}_{key}_speedup_vs_vmap"] = timing[main]["median_s"] / timing[v]["median_s"]
                summary[f"{short}_{key}_nonfinite_C"] = rec["agreement"][v]["nonfinite_C"]
        summary[f"{short}_batched_lapack_calls"] = sum(
            c.get("batched_lapack_calls", 0) for c in (rec.get("compile") or {}).values())
        if not rec["ok"]:
            notes.append(f"{case}: FAILED: {rec.get('failure')}")
    ex = results["two_deltas"].get("critical_exponents")
    if ex:
        summary["critical_exponents_first_s"] = ex["call1_s"]
        summary["critical_exponents_second_s"] = ex["call2_s"]
    fd = results["finite_dataset"]
    if "critical_temperature_first_s" in fd:
        summary["fd8_critical_temperature_first_s"] = fd["critical_temperature_first_s"]
        summary["fd8_critical_temperature_second_s"] = fd["critical_temperature_second_s"]
    notes += [
        "us/T = median sweep time / number of temperatures, from shuffled interleaved rounds (thermodiff "
        "variants and the SciPy loop in the same rounds); compile s = trace+lower + XLA compile; "
        "1st/2nd call s = the first and second call of the compiled sweep",
        f"agreement vs SciPy (xtol {cfg0['xtol']}): x* and chi over all temperatures; C = -T F'' against a "
        f"central difference with h = {cfg0['rel_step']} T, stencils straddling T_c excluded",
        "thermodiff_vmap = public API (fixed_point + susceptibility + heat_capacity) in one plain vmap "
        "(blocked by the library's batching rule; map_speedup_vs_vmap = vmap time / map time), "
        f"thermodiff_map = the same under jax.lax.map(batch_size={cfg0['block']}); "
        "thermodiff_fused = the library's fused private kernel _equilibrium (one solve per T, chi and C "
        f"by closed forms) in one vmap; thermodiff_fused_map = the same under jax.lax.map(batch_size={cfg0['block']})",
    ]
    return {
        "config": {**{k: v for k, v in cfg0.items() if k != "variants"}, "cases": list(CASES),
                   "T_range_over_Tc": list(T_RANGE), "spacing": "log", "dtype": "float64",
                   "branch": "equilibrium: broken-symmetry start mean + sqrt(lambda_max) v",
                   "scipy": "scipy.optimize.root(method='hybr', jac=I - Cov/T), 3 solves per T"},
        "cases": results,
        "summary": summary,
        "table": rows,
        "notes": notes,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]))
    else:
        print("usage: python -m benchmarks --only meanfield_sweep  (this module is not a CLI)", file=sys.stderr)
        sys.exit(2)
