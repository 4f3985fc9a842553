"""Benchmark of the exact-score reverse SDE sampler on a finite dataset (theory sections 3.2, 6).

``sampler``
    Issue: "exact-score reverse SDE on a td.FiniteDataset (N = 1797, d = 64), batch 1024, 200
    Euler-Maruyama steps, float32: thermodiff against diffrax (Euler + UnsafeBrownianPath, and
    Euler + VirtualBrownianTree) and a vectorised NumPy loop; report the fraction of the
    machine's float32 matmul rate reached. Targets: >= 1.0x diffrax-Unsafe, >= 3x diffrax-VBT,
    >= 4x NumPy, 60% of the matmul roofline."

    All implementations integrate the same SDE on the same grid: the geometric VE schedule
    ``td.VE(sigma_min, sigma_max)`` (Song et al.'s VE-SDE, t in [0, 1], uniform steps in t =
    uniform in log sigma), from T = sigma_max^2 to sigma_min^2, with the exact score of the
    dataset (softmax denoiser). thermodiff is ``jax.jit(jax.vmap(td.sample(...)))``; the
    diffrax baselines are ``jax.jit(jax.vmap(diffrax.diffeqsolve(...)))`` with the *same*
    ``FiniteDataset.denoiser`` inside their drift, so the diffrax ratios measure the integrator
    (loop, Brownian path), not the score; the NumPy loop reimplements the whole step (two GEMMs
    per step, a stable softmax, NumPy's own normals).

    Flops: the two GEMMs of each denoiser call, 2 * 2 * B * N * d per step (the softmax, the
    noise and the update are not counted). Every implementation and a (n x n) jnp matmul are
    timed in the same shuffled round-robin rounds (with a short untimed pause after each call, so
    that spinning OpenBLAS/XLA threads do not steal the next case's cores), so every ratio is a
    ratio of medians of one run; paired per-round ratios (wall and process CPU time) are reported
    too. The roofline is the faster of that matmul's rate in the rounds and ``matmul_roofline``
    measured alone just before (a perturbed matmul must not inflate the fraction).

    Agreement: (1) with the *same* noise (thermodiff's own normals, drawn from the same keys and
    fed to NumPy and to diffrax through a path that returns them), the final states agree to
    float32 round-off, except for trajectories that a rounding difference sends to another
    training point near a symmetry breaking (counted); (2) with independent noise, the sliced
    Wasserstein-2 distance of each implementation's samples to exact samples of the target
    (training points plus N(0, sigma_min^2) noise) is compared with that of a second exact
    sample set (the Monte Carlo floor).

Run ``python -m benchmarks --only sampler`` (``--quick``: B = 128, 20 steps, 3 rounds).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ._common import block, matmul_roofline, one_blas_thread, register, summarize
from .bench_denoiser import numpy_denoiser

SIGMA_MIN, SIGMA_MAX = 0.01, 100.0


# ---------------------------------------------------------------------------------- data
def dataset(n: int = 1797, d: int = 64, seed: int = 0) -> tuple[np.ndarray, str]:
    """The 8x8 digits (pixels in [0, 16]) when ``thermodiff._data.load_digits`` exists and gives
    (1797, 64) points, else random points uniform in [0, 16] (the digits' scale)."""
    if (n, d) == (1797, 64):
        try:
            from thermodiff import _data  # added by another change; optional here

            raw = _data.load_digits()
            cands = [raw] if not isinstance(raw, (tuple, list, dict)) else list(raw.values() if isinstance(raw, dict) else raw)
            for c in cands:
                a = np.asarray(getattr(c, "points", c))
                if a.shape == (n, d) and np.issubdtype(a.dtype, np.number) and np.all(np.isfinite(a)):
                    return a.astype(np.float32), "digits (thermodiff._data.load_digits)"
        except Exception:  # noqa: BLE001 - optional dependency, fall back to random data
            pass
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 16.0, size=(n, d)).astype(np.float32), f"uniform [0, 16]^{d}, seed {seed}"


# ---------------------------------------------------------------------------------- NumPy
def numpy_sampler(x0, Y, Yt, half_sq, coef, *, seed=None, noise=None, clamp=False):
    """Vectorised NumPy Euler-Maruyama for the reverse SDE of a VE schedule (theta = 1, f = 0):
    x <- x - g^2 (D(x, T) - x)/T dt + g sqrt(-dt) xi with dt < 0. ``coef`` holds per-step
    float32 arrays T, g^2/T * (-dt) and g sqrt(-dt), precomputed from the same grid.
    ``noise`` (steps, B, d) replaces NumPy's normals (for the same-noise check)."""
    rng = np.random.default_rng(seed)
    x = x0.copy()
    T, a, b = coef["T"], coef["a"], coef["b"]
    for i in range(T.shape[0]):
        xi = noise[i] if noise is not None else rng.standard_normal(x.shape, dtype=np.float32)
        D = numpy_denoiser(x, Yt, Y, T[i], half_sq=half_sq, clamp=clamp)
        D -= x
        D *= a[i]
        x += D
        xi = xi * b[i]
        x += xi
    return x


# ---------------------------------------------------------------------------------- timing
def interleaved_samples(cases: dict, *, rounds: int, warmup: int = 1, seed: int = 0, settle_s: float = 0.0) -> dict:
    """Like ``_common.time_interleaved`` (shuffled round-robin rounds), but keeping every sample,
    wall-clock and process CPU seconds, so that per-round (paired) ratios can be formed.

    ``settle_s``: untimed pause after each call, so that thread pools that spin after a call
    (OpenBLAS, XLA) are idle before the next case starts instead of stealing its cores."""
    import random

    for fn, args in cases.values():
        for _ in range(warmup):
            block(fn(*args))
    rng = random.Random(seed)
    names = list(cases)
    out = {k: {"wall": [], "cpu": []} for k in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for k in names:
            fn, args = cases[k]
            c0, t0 = time.process_time(), time.perf_counter()
            block(fn(*args))
            out[k]["wall"].append(time.perf_counter() - t0)
            out[k]["cpu"].append(time.process_time() - c0)
            if settle_s:
                time.sleep(settle_s)
    return out


def paired_ratio(samples: dict, num: str, den: str, kind: str = "wall") -> dict:
    """Median and quartiles over rounds of samples[num] / samples[den] (same round)."""
    r = np.asarray(samples[num][kind]) / np.asarray(samples[den][kind])
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3)}


# ---------------------------------------------------------------------------------- statistics
def sliced_w2(a: np.ndarray, b: np.ndarray, n_proj: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-2 between two equal-size samples: sqrt of the mean over random unit
    directions of the 1-D W2^2 (sorted projections)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((a.shape[1], n_proj))
    v /= np.linalg.norm(v, axis=0, keepdims=True)
    pa, pb = np.sort(a.astype(np.float64) @ v, axis=0), np.sort(b.astype(np.float64) @ v, axis=0)
    return float(np.sqrt(np.mean((pa - pb) ** 2)))


def nearest_index(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    x64, Y64 = x.astype(np.float64), Y.astype(np.float64)
    d2 = np.sum(x64**2, 1)[:, None] - 2 * x64 @ Y64.T + np.sum(Y64**2, 1)[None, :]
    return np.argmin(d2, axis=1)


def same_noise_agreement(ref: np.ndarray, other: np.ndarray, Y: np.ndarray) -> dict:
    """Final states driven by the same noise: per-trajectory max |diff|, and the trajectories
    that reached another training point (a rounding difference at a symmetry breaking)."""
    ia, ib = nearest_index(ref, Y), nearest_index(other, Y)
    same = ia == ib
    diff = np.max(np.abs(ref.astype(np.float64) - other), axis=1)
    return {
        "same_training_point_fraction": float(np.mean(same)),
        "max_abs_diff_same_point": float(np.max(diff[same])) if np.any(same) else None,
        "median_abs_diff": float(np.median(diff)),
        "max_abs_diff": float(np.max(diff)),
    }


# ---------------------------------------------------------------------------------- benchmark
@register("sampler", description="exact-score reverse SDE, FiniteDataset (B=1024, N=1797, d=64, 200 EM steps) vs diffrax and NumPy")
def bench_sampler(quick: bool) -> dict:
    import diffrax
    import jax
    import jax.numpy as jnp
    import lineax as lx

    import thermodiff as td

    if jax.config.jax_enable_x64:
        raise RuntimeError("the sampler benchmark is a float32 benchmark: run it with jax_enable_x64 off")

    B, N, d, steps = (128, 1797, 64, 20) if quick else (1024, 1797, 64, 200)
    rounds = 3 if quick else 7
    mm_n = 512 if quick else 2048
    flops = 4.0 * B * N * d * steps

    Y, data_desc = dataset(N, d)
    Yt = np.ascontiguousarray(Y.T)
    half_sq = (0.5 * np.einsum("nd,nd->n", Y, Y)).astype(np.float32)
    ds = td.FiniteDataset(jnp.asarray(Y))  # N <= chunk_size: one dense pass
    sched = td.VE(SIGMA_MIN, SIGMA_MAX)
    solver = td.EulerMaruyama()
    ts = td.time_grid(sched, steps).astype(jnp.float32)  # uniform in t, t = 1 -> 0
    ts_np = np.asarray(ts)

    rng = np.random.default_rng(1)
    x0_np = (SIGMA_MAX * rng.standard_normal((B, d))).astype(np.float32)
    x0 = jnp.asarray(x0_np)
    keys = jax.random.split(jax.random.key(0), B)
    keys_indep = jax.random.split(jax.random.key(1), B)

    # --- thermodiff
    @jax.jit
    def td_sample(keys, x0):
        return jax.vmap(lambda k, x: td.sample(ds, sched, solver, k, x, steps=steps))(keys, x0)

    # --- diffrax: the same SDE in generative time s = t_start - t (increasing), Euler on the
    # MultiTerm(ODETerm(drift), ControlTerm(diagonal g, Brownian path)).
    t_hi, t_lo = float(ts_np[0]), float(ts_np[-1])
    span = t_hi - t_lo
    dt = span / steps
    vbt_tol = dt / 4

    def drift(s, x, args):
        t = t_hi - s
        f, g = sched.drift_coefficient(t), sched.diffusion(t)
        theta, sig = sched.signal_scale(t), sched.noise_scale(t)
        D = ds.denoiser(x / theta, sched.temperature(t))
        score = (theta * D - x) / sig**2
        return -(f * x - g**2 * score)

    def diffusion(s, x, args):
        return lx.DiagonalLinearOperator(jnp.broadcast_to(sched.diffusion(t_hi - s), x.shape))

    def diffrax_one(path, x, stepsize, t1=span):
        terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, path))
        sol = diffrax.diffeqsolve(
            terms,
            diffrax.Euler(),
            0.0,
            t1,
            None if isinstance(stepsize, diffrax.StepTo) else dt,
            x,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=stepsize,
            max_steps=steps + 8,
            adjoint=diffrax.ForwardMode(),  # forward-only solve: no checkpointing (fastest)
        )
        return sol.ys[0]

    shape = jax.ShapeDtypeStruct((d,), jnp.float32)

    @jax.jit
    def diffrax_unsafe(keys, x0):
        return jax.vmap(
            lambda k, x: diffrax_one(diffrax.UnsafeBrownianPath(shape, k), x, diffrax.ConstantStepSize())
        )(keys, x0)

    @jax.jit
    def diffrax_vbt(keys, x0):
        return jax.vmap(
            lambda k, x: diffrax_one(
                diffrax.VirtualBrownianTree(0.0, span, vbt_tol, shape, k), x, diffrax.ConstantStepSize()
            )
        )(keys, x0)

    # --- NumPy: per-step coefficients of the same grid (float64 -> float32)
    Tk = np.asarray(sched.temperature(ts[:-1]), np.float64)
    gk = np.asarray(sched.diffusion(ts[:-1]), np.float64)
    mdt = -np.diff(ts_np.astype(np.float64))
    coef = {
        "T": Tk.astype(np.float32),
        "a": (gk**2 / Tk * mdt).astype(np.float32),
        "b": (gk * np.sqrt(mdt)).astype(np.float32),
    }
    np_plain = lambda x0: numpy_sampler(x0, Y, Yt, half_sq, coef, seed=2)  # noqa: E731
    np_tuned = one_blas_thread(lambda x0: numpy_sampler(x0, Y, Yt, half_sq, coef, seed=2, clamp=True))

    # --- floors, in jitted scans of the same length: the two GEMMs of a step and nothing else
    # (XLA keeps two dots: it does not reassociate (x Y^T) Y here), and the irreducible work of
    # an exact dense step, GEMM -> one exp per weight -> GEMM (min(., 0) stands in for the max
    # shift as the overflow guard; no max pass, no normaliser, no noise)
    Yj, Ytj = jnp.asarray(Y), jnp.asarray(Yt)
    inv_T = jnp.asarray(1.0 / coef["T"])

    @jax.jit
    def two_gemms(x0):
        def body(x, c):
            return x + 1e-6 * (x @ Ytj) @ Yj, None

        return jax.lax.scan(body, x0, inv_T)[0]

    @jax.jit
    def gemm_exp_gemm(x0):
        def body(x, c):
            return x + 1e-6 * jnp.exp(jnp.minimum((x @ Ytj) * c, 0.0)) @ Yj, None

        return jax.lax.scan(body, x0, inv_T)[0]

    mm = jax.jit(jnp.matmul)
    A = jnp.asarray(rng.standard_normal((mm_n, mm_n), dtype=np.float32))
    roof_alone = matmul_roofline(mm_n, repeats=3 if quick else 7)

    cases = {
        "thermodiff": (td_sample, (keys, x0)),
        "diffrax_unsafe": (diffrax_unsafe, (keys, x0)),
        "diffrax_vbt": (diffrax_vbt, (keys, x0)),
        "numpy": (np_plain, (x0_np,)),
        "numpy_tuned": (np_tuned, (x0_np,)),
        "two_gemms_only": (two_gemms, (x0,)),
        "gemm_exp_gemm": (gemm_exp_gemm, (x0,)),
        "matmul_roofline": (mm, (A, A)),
    }
    impls = [k for k in cases if k not in ("matmul_roofline", "two_gemms_only", "gemm_exp_gemm")]
    compile_s = {}
    for k in ("thermodiff", "diffrax_unsafe", "diffrax_vbt", "two_gemms_only", "gemm_exp_gemm"):
        f, args = cases[k]
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        compile_s[k] = time.perf_counter() - t0
    samples = interleaved_samples(cases, rounds=rounds, warmup=1, seed=3, settle_s=0.0 if quick else 0.3)
    timing = {k: summarize(v["wall"]) for k, v in samples.items()}
    cpu_timing = {k: summarize(v["cpu"]) for k, v in samples.items()}
    med = {k: v["median_s"] for k, v in timing.items()}
    paired = {
        f"{k}/thermodiff": {kind: paired_ratio(samples, k, "thermodiff", kind) for kind in ("wall", "cpu")}
        for k in impls
        if k != "thermodiff"
    }
    roof_rounds = 2.0 * mm_n**3 / med["matmul_roofline"] / 1e9
    # the faster of the two measurements of this machine's rate (in the rounds, and alone just
    # before them): a perturbed matmul must not inflate the fraction
    roof = max(roof_rounds, roof_alone["jnp_gflops"])

    # --- agreement with the same noise: thermodiff's own normals, from the same keys
    def td_noise(key):
        return jax.vmap(lambda k: jax.random.normal(k, (d,), jnp.float32))(jax.random.split(key, steps))

    noise = np.asarray(jax.jit(jax.vmap(td_noise))(keys))  # (B, steps, d)
    out_td = np.asarray(td_sample(keys, x0))
    out_np_same = numpy_sampler(x0_np, Y, Yt, half_sq, coef, noise=np.ascontiguousarray(noise.transpose(1, 0, 2)))

    class _GivenIncrements(diffrax.AbstractPath):
        """dW over grid step i = sqrt(ds_i) xi_i with thermodiff's normals (the same-noise check)."""

        incs: jax.Array  # (steps, d)
        s_nodes: jax.Array  # (steps + 1,)

        @property
        def t0(self):
            return self.s_nodes[0]

        @property
        def t1(self):
            return self.s_nodes[-1]

        def evaluate(self, t0, t1=None, left=True):
            i = jnp.clip(jnp.searchsorted(self.s_nodes, t0, side="right") - 1, 0, self.incs.shape[0] - 1)
            return self.incs[i]

    s_nodes = jnp.asarray(t_hi - ts_np, jnp.float32)  # increasing, exactly the thermodiff grid
    sq = jnp.sqrt(jnp.asarray(mdt, jnp.float32))[:, None]

    @jax.jit
    def diffrax_same(noise, x0):
        def one(nz, x):
            path = _GivenIncrements(nz * sq, s_nodes)
            return diffrax_one(path, x, diffrax.StepTo(ts=s_nodes), t1=s_nodes[-1])

        return jax.vmap(one)(noise, x0)

    out_dfx_same = np.asarray(diffrax_same(jnp.asarray(noise), x0))
    same_noise = {
        "numpy_vs_thermodiff": same_noise_agreement(out_td, out_np_same, Y),
        "diffrax_vs_thermodiff": same_noise_agreement(out_td, out_dfx_same, Y),
    }
    del noise

    # --- agreement in law, independent noise: sliced W2 to exact samples of p_{T_end}
    def exact(seed):
        r = np.random.default_rng(seed)
        return Y[r.integers(0, N, B)] + SIGMA_MIN * r.standard_normal((B, d))

    finals = {
        "thermodiff": out_td,
        "diffrax_unsafe": np.asarray(diffrax_unsafe(keys_indep, x0)),
        "diffrax_vbt": np.asarray(diffrax_vbt(keys_indep, x0)),
        "numpy": numpy_sampler(x0_np, Y, Yt, half_sq, coef, seed=5),
    }
    ref = exact(10)
    swd = {k: sliced_w2(v, ref) for k, v in finals.items()}
    swd["exact (MC floor)"] = sliced_w2(exact(11), ref)
    data_scale = float(np.sqrt(np.sum(np.var(Y, axis=0))))
    nonfinite = {k: int(np.sum(~np.isfinite(v))) for k, v in finals.items()}

    impl_rows = []
    for k in impls:
        gf = flops / med[k] / 1e9
        impl_rows.append(
            {
                "impl": k,
                "median s": med[k],
                "IQR s": timing[k]["iqr_s"],
                "ms/step": 1e3 * med[k] / steps,
                "GF/s (2 GEMMs)": gf,
                "roofline frac": gf / roof,
                "thermodiff speedup": med[k] / med["thermodiff"],
                "paired (wall)": paired[f"{k}/thermodiff"]["wall"]["median"] if k != "thermodiff" else 1.0,
                "paired (CPU s)": paired[f"{k}/thermodiff"]["cpu"]["median"] if k != "thermodiff" else 1.0,
                "compile s": compile_s.get(k),
                "sliced W2 to exact": swd.get(k),
            }
        )
    td_frac = flops / med["thermodiff"] / 1e9 / roof
    summary = {
        "B": B,
        "N": N,
        "d": d,
        "steps": steps,
        "thermodiff_s": med["thermodiff"],
        "speedup_vs_diffrax_unsafe": med["diffrax_unsafe"] / med["thermodiff"],
        "speedup_vs_diffrax_vbt": med["diffrax_vbt"] / med["thermodiff"],
        "speedup_vs_numpy": med["numpy"] / med["thermodiff"],
        "speedup_vs_numpy_tuned": med["numpy_tuned"] / med["thermodiff"],
        "paired_speedup_vs_diffrax_unsafe": paired["diffrax_unsafe/thermodiff"]["wall"]["median"],
        "paired_speedup_vs_diffrax_unsafe_cpu": paired["diffrax_unsafe/thermodiff"]["cpu"]["median"],
        "paired_speedup_vs_diffrax_vbt": paired["diffrax_vbt/thermodiff"]["wall"]["median"],
        "paired_speedup_vs_numpy": paired["numpy/thermodiff"]["wall"]["median"],
        "roofline_gflops": roof,
        "roofline_gflops_in_rounds": roof_rounds,
        "roofline_gflops_alone": roof_alone["jnp_gflops"],
        "thermodiff_gflops": flops / med["thermodiff"] / 1e9,
        "roofline_fraction": td_frac,
        # the same flops against NumPy's BLAS rate alone (this machine's fastest float32 matmul)
        "roofline_fraction_vs_numpy_blas": flops / med["thermodiff"] / 1e9 / roof_alone["numpy_gflops"],
        "two_gemms_only_s": med["two_gemms_only"],
        "gemm_exp_gemm_s": med["gemm_exp_gemm"],
        "numpy_s_over_4": med["numpy"] / 4.0,
        "thermodiff_over_two_gemms": med["thermodiff"] / med["two_gemms_only"],
        "thermodiff_over_gemm_exp_gemm": med["thermodiff"] / med["gemm_exp_gemm"],
        "same_noise_numpy_same_point": same_noise["numpy_vs_thermodiff"]["same_training_point_fraction"],
        "same_noise_diffrax_same_point": same_noise["diffrax_vs_thermodiff"]["same_training_point_fraction"],
        "swd_thermodiff": swd["thermodiff"],
        "swd_mc_floor": swd["exact (MC floor)"],
    }
    targets = {
        "speedup_vs_diffrax_unsafe >= 1.0": summary["speedup_vs_diffrax_unsafe"] >= 1.0,
        "speedup_vs_diffrax_vbt >= 3": summary["speedup_vs_diffrax_vbt"] >= 3.0,
        "speedup_vs_numpy >= 4": summary["speedup_vs_numpy"] >= 4.0,
        "roofline_fraction >= 0.6": td_frac >= 0.6,
    }
    summary["targets_met"] = sum(targets.values())
    agree_rows = [{"pair": k, **v} for k, v in same_noise.items()]
    return {
        "config": {
            "batch": B,
            "n_points": N,
            "dim": d,
            "steps": steps,
            "dtype": "float32",
            "data": data_desc,
            "schedule": f"td.VE({SIGMA_MIN}, {SIGMA_MAX}) (geometric), T from {SIGMA_MAX**2:g} to {SIGMA_MIN**2:g}",
            "grid": "uniform in t (= uniform in log sigma)",
            "solver": "Euler-Maruyama",
            "x_T": "N(0, sigma_max^2 I)",
            "flops_per_step": 4.0 * B * N * d,
            "flops": flops,
            "rounds": rounds,
            "matmul_n": mm_n,
            "vbt_tol": vbt_tol,
            "vbt_levels": math.ceil(math.log2(span / vbt_tol)),
            "numpy": "default BLAS threads, plain exp",
            "numpy_tuned": "1 BLAS thread, logits clamped at -87 before exp (no subnormal slow path)",
        },
        "timing": timing,
        "cpu_timing": cpu_timing,
        "paired_ratios": paired,
        "compile_s": compile_s,
        "roofline_standalone": roof_alone,
        "same_noise": same_noise,
        "sliced_w2": swd,
        "data_scale_rms": data_scale,
        "nonfinite": nonfinite,
        "targets": targets,
        "summary": summary,
        "tables": {
            "speed (medians of interleaved rounds; flops = 2 GEMMs per step)": impl_rows,
            "same noise (thermodiff's normals fed to NumPy and diffrax)": agree_rows,
        },
        "notes": [
            f"roofline: jnp ({mm_n} x {mm_n}) float32 matmul, the faster of in the same rounds "
            f"({roof_rounds:.1f} GF/s) and alone just before ({roof_alone['jnp_gflops']:.1f} GF/s; NumPy "
            f"{roof_alone['numpy_gflops']:.1f} GF/s): {roof:.1f} GF/s",
            f"sliced W2 to exact samples (data rms scale {data_scale:.1f}): "
            + ", ".join(f"{k} {v:.3g}" for k, v in swd.items()),
            f"floors in the same rounds: the two GEMMs alone {med['two_gemms_only']:.3f} s; GEMM -> exp -> GEMM "
            f"(the irreducible work of an exact dense step) {med['gemm_exp_gemm']:.3f} s; NumPy / 4 = "
            f"{med['numpy'] / 4:.3f} s; thermodiff = {med['thermodiff'] / med['gemm_exp_gemm']:.2f}x GEMM-exp-GEMM",
            "targets: " + ", ".join(f"{k}: {'MET' if v else 'MISSED'}" for k, v in targets.items()),
            "diffrax runs the same FiniteDataset.denoiser as thermodiff (the ratio is the integrator's "
            f"overhead); VirtualBrownianTree tol = dt/4 = {vbt_tol:.3g}",
            "speedups are ratios of wall-clock medians; 'paired' = median over rounds of the per-round ratio "
            "(wall, and process CPU seconds, which a shared machine's load disturbs less); quartiles in paired_ratios",
        ],
    }
