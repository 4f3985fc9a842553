"""Benchmarks of ``td.FiniteDataset``'s exact posterior-mean denoiser (theory section 3.2).

``denoiser``
    Issue: "FiniteDataset denoiser over (batch 1024, N = 1797, d = 64) against a NumPy
    implementation and against the machine's own float32 matmul rate measured in the same run;
    report the fraction of that roofline reached". float32 throughout (x64 stays off). One call
    costs two GEMMs, 4 B N d flops (logits X Y^T, then weights @ Y); the softmax in between is
    not counted. Everything is timed in shuffled round-robin rounds together with the
    (2048 x 2048) jnp matmul, so the roofline fraction and the NumPy ratio come from the same
    rounds. Variants labelled ``proto_*`` are prototypes of alternative formulations written in
    this file for comparison; they are not library code.

``denoiser_memory``
    Issue: "Peak memory of the denoiser for N = 10^6, d = 64, batch 256 with streaming, against
    the dense version: it must stay below 1 GiB". (a) XLA's compiled memory analysis of the
    streaming (chunk_size=4096) and dense (chunk_size=N) denoisers, from abstract shapes (nothing
    allocated); (b) the real peak RSS of a fresh subprocess running each one, capped and with a
    timeout, a failure reported as such. The 1 GiB budget counts the points (256 MB in float32).
    A third variant closes over the dataset in ``jax.jit`` instead of passing it as an argument,
    to show what XLA constants of that size cost (compile time and memory).

Run ``python -m benchmarks --only denoiser`` (or ``denoiser_memory``); ``--quick`` shrinks sizes.
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

from ._common import matmul_roofline, one_blas_thread, register, summarize, time_interleaved

GiB = 1024**3
NUMPY_VARIANTS = ("numpy", "numpy_1thread", "numpy_clamped_1thread")

# ---------------------------------------------------------------------------------- data


def digits_like(n: int, d: int, seed: int = 0) -> np.ndarray:
    """(n, d) float32 points uniform in [0, 16]: the pixel range of the 8x8 digits, unstandardised."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 16.0, size=(n, d)).astype(np.float32)


def noisy_queries(points: np.ndarray, batch: int, T: float, seed: int = 1) -> np.ndarray:
    """x = y + sqrt(T) z for ``batch`` random training points y (T in data units squared)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, points.shape[0], size=batch)
    z = rng.standard_normal((batch, points.shape[1]), dtype=np.float32)
    return (points[idx] + np.float32(math.sqrt(T)) * z).astype(np.float32)


# ---------------------------------------------------------------------------------- NumPy references
# Uniform weights: log pi_n = -log N is a constant shift of every logit and cancels in the
# softmax, so the references leave it out.


def numpy_denoiser(X: np.ndarray, Yt: np.ndarray, Y: np.ndarray, T, *, half_sq=None, clamp: bool = False) -> np.ndarray:
    """Vectorised float32 NumPy: softmax_n((x.y_n - |y_n|^2/2)/T) @ Y, stable, in place.

    ``Yt`` is a C-contiguous copy of ``Y.T`` made once, outside the timing; ``half_sq``
    (|y_n|^2/2) is computed here unless given. ``clamp``: clip the shifted logits at -87 before
    ``exp`` so it never produces float32 subnormals (NumPy's exp takes a slow path on them;
    changes weights by < 2e-38, i.e. nothing).
    """
    if half_sq is None:
        half_sq = np.float32(0.5) * np.einsum("nd,nd->n", Y, Y)
    L = X @ Yt
    L -= half_sq
    L *= np.float32(1.0 / T)
    L -= L.max(axis=1, keepdims=True)
    if clamp:
        np.maximum(L, np.float32(-87.0), out=L)
    np.exp(L, out=L)
    s = L.sum(axis=1, keepdims=True)
    M = L @ Y
    M /= s
    return M


def numpy_denoiser_clamped(X: np.ndarray, Yt: np.ndarray, Y: np.ndarray, T) -> np.ndarray:
    """:func:`numpy_denoiser` with ``clamp=True``."""
    return numpy_denoiser(X, Yt, Y, T, clamp=True)


def numpy_denoiser_f64(X: np.ndarray, Y: np.ndarray, T) -> tuple[np.ndarray, np.ndarray]:
    """float64 ground truth and the effective number of points exp(H[w]) per query."""
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    L = (X @ Y.T - 0.5 * np.sum(Y * Y, axis=1)[None, :]) / T
    L -= L.max(axis=1, keepdims=True)
    W = np.exp(L)
    W /= W.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        H = -np.sum(np.where(W > 0, W * np.log(W), 0.0), axis=1)
    return W @ Y, np.exp(H)


# ---------------------------------------------------------------------------------- prototypes
# Alternative formulations, for comparison only (NOT library code). All take the points Y (N, d),
# their log-weights logw (N,) and T; none closes over data.


def _proto_fold(X, Y, logw, T):
    """PROTOTYPE: fold 1/T into X (B d multiplies instead of B N) and |y|^2/2T, log pi into one
    bias vector, so the GEMM epilogue is a single add; otherwise the same three passes."""
    import jax.numpy as jnp

    inv_t = 1.0 / T
    bias = logw - (0.5 * inv_t) * jnp.sum(Y * Y, axis=1)
    L = (X * inv_t) @ Y.T + bias[None, :]
    E = jnp.exp(L - jnp.max(L, axis=1, keepdims=True))
    return (E @ Y) / jnp.sum(E, axis=1, keepdims=True)


def _proto_ones_column(X, Y, logw, T):
    """PROTOTYPE: as ``_proto_fold`` but the normaliser comes out of the second GEMM (E @ [Y | 1])
    instead of a separate reduction pass over the (B, N) weights. (The ones column is appended on
    every call here; a library version would store it with the points.)"""
    import jax.numpy as jnp

    inv_t = 1.0 / T
    bias = logw - (0.5 * inv_t) * jnp.sum(Y * Y, axis=1)
    L = (X * inv_t) @ Y.T + bias[None, :]
    E = jnp.exp(L - jnp.max(L, axis=1, keepdims=True))
    Ya = jnp.concatenate([Y, jnp.ones((Y.shape[0], 1), Y.dtype)], axis=1)
    M = E @ Ya
    return M[:, :-1] / M[:, -1:]


def _proto_blocked(X, Y, logw, T, block: int = 512):
    """PROTOTYPE: flash-attention-style blocking over N inside one batched function (online
    log-sum-exp over blocks of ``block`` points, the whole batch at once), so each (B, block)
    tile of logits stays in cache between the two GEMMs."""
    import jax
    import jax.numpy as jnp

    n, d = Y.shape
    nb = -(-n // block)
    pad = nb * block - n
    Yp = jnp.concatenate([Y, jnp.zeros((pad, d), Y.dtype)]).reshape(nb, block, d)
    inv_t = 1.0 / T
    bias = logw - (0.5 * inv_t) * jnp.sum(Y * Y, axis=1)
    bp = jnp.concatenate([bias, jnp.full((pad,), -1e30, bias.dtype)]).reshape(nb, block)
    Xs = X * inv_t

    def body(carry, blk):
        m, s, acc = carry
        y, b = blk
        L = Xs @ y.T + b[None, :]
        bm = jnp.maximum(m, jnp.max(L, axis=1))
        E = jnp.exp(L - bm[:, None])
        c = jnp.exp(m - bm)
        return (bm, c * s + jnp.sum(E, axis=1), c[:, None] * acc + E @ y), None

    B = X.shape[0]
    init = (jnp.full((B,), -1e30, X.dtype), jnp.zeros((B,), X.dtype), jnp.zeros((B, d), X.dtype))
    (m, s, acc), _ = jax.lax.scan(body, init, (Yp, bp))
    return acc / s[:, None]


# ---------------------------------------------------------------------------------- profiling helpers


def _breakdown(Y: np.ndarray, X: np.ndarray, T: float, rounds: int, mm) -> dict:
    """Where the time of one batched denoiser call goes: each stage of the computation timed on
    its own (jnp, jitted, interleaved), as a fraction of the full call (dataset as argument)."""
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    Xj, Yj, Tj = jnp.asarray(X), jnp.asarray(Y), jnp.float32(T)
    B, N = X.shape[0], Y.shape[0]
    ds = td.FiniteDataset(Yj)
    full = jax.jit(lambda ds, x, T: jax.vmap(ds.denoiser, in_axes=(0, None))(x, T))
    hs = 0.5 * jnp.sum(Yj * Yj, axis=1)

    def logits(X, Y, hs, T):
        return ((X @ Y.T - hs[None, :]) / T) - math.log(N)

    def logits_exp(X, Y, hs, T):  # = thermodiff's first fused kernel
        L = logits(X, Y, hs, T)
        return jnp.exp(L - jnp.max(L, axis=1, keepdims=True))

    E = jax.jit(logits_exp)(Xj, Yj, hs, Tj)
    stages = {
        "full (thermodiff_arg)": (full, (ds, Xj, Tj)),
        "half_sq |y|^2/2 (N d)": (jax.jit(lambda Y: 0.5 * jnp.sum(Y * Y, axis=1)), (Yj,)),
        "gemm1 X@Y^T": (jax.jit(lambda X, Y: X @ Y.T), (Xj, Yj)),
        "gemm1+epilogue (logits)": (jax.jit(logits), (Xj, Yj, hs, Tj)),
        "gemm1+epilogue+max+exp": (jax.jit(logits_exp), (Xj, Yj, hs, Tj)),
        "elementwise pass (B N)": (jax.jit(lambda E: E * 2.0 + 1.0), (E,)),
        "exp (B N)": (jax.jit(jnp.exp), (E,)),
        "row max (B N)": (jax.jit(lambda E: jnp.max(E, axis=1)), (E,)),
        "row sum (B N)": (jax.jit(lambda E: jnp.sum(E, axis=1)), (E,)),
        "gemm2 E@Y": (jax.jit(lambda E, Y: E @ Y), (E, Yj)),
        "gemm1+gemm2": (jax.jit(lambda X, Y: (X @ Y.T) @ Y), (Xj, Yj)),
        "matmul_roofline": mm,
    }
    timing = time_interleaved(stages, rounds=rounds, warmup=1, seed=7)
    t_full = timing["full (thermodiff_arg)"]["median_s"]
    rows = [
        {"stage": k, "ms": 1e3 * v["median_s"], "fraction of full": v["median_s"] / t_full}
        for k, v in timing.items()
    ]
    return {"B": B, "N": N, "d": Y.shape[1], "T": T, "timing": timing, "rows": rows}


def _dim_scan(dims, B: int, N: int, T: float, rounds: int, mm, mm_n: int) -> list[dict]:
    """Roofline fraction of the denoiser (dataset as argument) and of its two bare GEMMs vs d:
    the softmax costs O(B N) against O(B N d) for the GEMMs, so the fraction grows with d."""
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    f = jax.jit(lambda ds, x, T: jax.vmap(ds.denoiser, in_axes=(0, None))(x, T))
    g = jax.jit(lambda X, Y: (X @ Y.T) @ Y)
    rows = []
    for d in dims:
        Y = digits_like(N, d, seed=0)
        X = noisy_queries(Y, B, T, seed=3)
        Yj, Xj = jnp.asarray(Y), jnp.asarray(X)
        ds = td.FiniteDataset(Yj)
        tm = time_interleaved(
            {"thermodiff_arg": (f, (ds, Xj, jnp.float32(T))), "gemm_only": (g, (Xj, Yj)), "mm": mm},
            rounds=rounds,
            seed=d,
        )
        roof = 2.0 * mm_n**3 / tm["mm"]["median_s"] / 1e9
        flops = 4.0 * B * N * d
        rows.append(
            {
                "d": d,
                "roofline GF/s": roof,
                "thermodiff GF/s": flops / tm["thermodiff_arg"]["median_s"] / 1e9,
                "thermodiff roofline frac": flops / tm["thermodiff_arg"]["median_s"] / 1e9 / roof,
                "gemm_only roofline frac": flops / tm["gemm_only"]["median_s"] / 1e9 / roof,
                "thermodiff / gemm_only": tm["gemm_only"]["median_s"] / tm["thermodiff_arg"]["median_s"],
            }
        )
    return rows


def _small_batch(Y: np.ndarray, batches, T: float, rounds: int) -> list[dict]:
    """Cost of recomputing |y|^2/2 on every call, visible at small batch: thermodiff with the
    dataset as argument (recomputes it) vs closed over (XLA constant-folds it) vs a PROTOTYPE
    taking a precomputed bias vector."""
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    Yj = jnp.asarray(Y)
    N = Y.shape[0]
    ds = td.FiniteDataset(Yj)
    f_arg = jax.jit(lambda ds, x, T: jax.vmap(ds.denoiser, in_axes=(0, None))(x, T))
    f_closure = jax.jit(jax.vmap(ds.denoiser, in_axes=(0, None)))
    half_sq = 0.5 * jnp.sum(Yj * Yj, axis=1)

    def pre(X, Y, half_sq, T):  # PROTOTYPE: |y|^2/2 stored with the data, not recomputed
        L = (X @ Y.T - half_sq[None, :]) / T
        E = jnp.exp(L - jnp.max(L, axis=1, keepdims=True))
        return (E @ Y) / jnp.sum(E, axis=1, keepdims=True)

    f_pre = jax.jit(pre)
    rows = []
    for B in batches:
        X = jnp.asarray(noisy_queries(Y, B, T, seed=5))
        Tj = jnp.float32(T)
        tm = time_interleaved(
            {
                "arg": (f_arg, (ds, X, Tj)),
                "closure": (f_closure, (X, Tj)),
                "proto_precomputed_half_sq": (f_pre, (X, Yj, half_sq, Tj)),
            },
            rounds=rounds,
            seed=B,
        )
        rows.append(
            {
                "B": B,
                "N": N,
                "arg us": 1e6 * tm["arg"]["median_s"],
                "closure us": 1e6 * tm["closure"]["median_s"],
                "proto precomputed us": 1e6 * tm["proto_precomputed_half_sq"]["median_s"],
                "arg / precomputed": tm["arg"]["median_s"] / tm["proto_precomputed_half_sq"]["median_s"],
            }
        )
    return rows


# ---------------------------------------------------------------------------------- benchmark 1


@register("denoiser", description="FiniteDataset denoiser (B x N x d float32) vs NumPy and the matmul roofline")
def bench_denoiser(quick: bool) -> dict:
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    if jax.config.jax_enable_x64:
        raise RuntimeError("the denoiser benchmark is a float32 benchmark: run it with jax_enable_x64 off")

    B, N, d = (128, 1797, 64) if quick else (1024, 1797, 64)
    temperatures = [1.0, 10.0, 100.0, 1000.0]
    rounds = 3 if quick else 15
    mm_n = 512 if quick else 2048
    flops = 4.0 * B * N * d

    Y = digits_like(N, d, seed=0)
    Yt = np.ascontiguousarray(Y.T)
    Yj = jnp.asarray(Y)
    logw = jnp.full((N,), -math.log(N), jnp.float32)
    ds = td.FiniteDataset(Yj)  # N <= chunk_size: one dense pass
    ds512 = td.FiniteDataset(Yj, chunk_size=512)  # the library's own streaming path, 4 chunks

    roof = matmul_roofline(mm_n, repeats=3 if quick else 9)

    # The formulation: the dataset is closed over (its arrays become XLA constants).
    td_closure = jax.jit(jax.vmap(ds.denoiser, in_axes=(0, None)))
    # The dataset passed as a jit argument (how a sampler holding it as a pytree would see it).
    td_arg = jax.jit(lambda ds, x, T: jax.vmap(ds.denoiser, in_axes=(0, None))(x, T))
    gemm_only = jax.jit(lambda X, Y: (X @ Y.T) @ Y)
    rng = np.random.default_rng(2)
    A = jnp.asarray(rng.standard_normal((mm_n, mm_n), dtype=np.float32))
    mm = jax.jit(jnp.matmul)
    protos = {
        "proto_fold": jax.jit(_proto_fold),
        "proto_ones_column": jax.jit(_proto_ones_column),
        "proto_blocked512": jax.jit(_proto_blocked),
    }

    per_T = []
    for T in temperatures:
        X = noisy_queries(Y, B, T, seed=1 + int(T))
        Xj = jnp.asarray(X)
        Tj = jnp.float32(T)
        cases = {
            "matmul_roofline": (mm, (A, A)),
            "gemm_only": (gemm_only, (Xj, Yj)),
            "thermodiff": (td_closure, (Xj, Tj)),
            "thermodiff_arg": (td_arg, (ds, Xj, Tj)),
            "thermodiff_chunk512": (td_arg, (ds512, Xj, Tj)),
            "numpy": (numpy_denoiser, (X, Yt, Y, np.float32(T))),
            "numpy_1thread": (one_blas_thread(numpy_denoiser), (X, Yt, Y, np.float32(T))),
            "numpy_clamped_1thread": (one_blas_thread(numpy_denoiser_clamped), (X, Yt, Y, np.float32(T))),
        }
        for k, f in protos.items():
            cases[k] = (f, (Xj, Yj, logw, Tj))
        timing = time_interleaved(cases, rounds=rounds, warmup=1, seed=int(T))

        # Accuracy: thermodiff vs the float32 NumPy reference, and both vs float64 truth.
        m_td = np.asarray(td_closure(Xj, Tj))
        m_np = numpy_denoiser(X, Yt, Y, np.float32(T))
        m_64, n_eff = numpy_denoiser_f64(X, Y, T)
        scale = float(np.max(np.abs(m_64)))
        acc = {
            "max_abs_diff_vs_numpy": float(np.max(np.abs(m_td - m_np))),
            "max_rel_diff_vs_numpy": float(np.max(np.abs(m_td - m_np)) / scale),
            "thermodiff_max_abs_err_vs_f64": float(np.max(np.abs(m_td - m_64))),
            "numpy_max_abs_err_vs_f64": float(np.max(np.abs(m_np - m_64))),
            "n_eff_median": float(np.median(n_eff)),
            "n_eff_max": float(np.max(n_eff)),
        }
        for k in ("thermodiff_arg", "thermodiff_chunk512", *protos):
            out = cases[k][0](*cases[k][1])
            acc[f"{k}_max_abs_diff_vs_numpy"] = float(np.max(np.abs(np.asarray(out) - m_np)))

        t_roof = timing["matmul_roofline"]["median_s"]
        roof_rate = 2.0 * mm_n**3 / t_roof / 1e9
        impls = {}
        for k, tm in timing.items():
            if k == "matmul_roofline":
                continue
            rate = flops / tm["median_s"] / 1e9
            impls[k] = {
                **tm,
                "gflops": rate,
                "roofline_fraction": rate / roof_rate,
                "speedup_vs_numpy": timing["numpy"]["median_s"] / tm["median_s"],
                **{f"speedup_vs_{v}": timing[v]["median_s"] / tm["median_s"] for v in NUMPY_VARIANTS},
                "fraction_of_gemm_only": timing["gemm_only"]["median_s"] / tm["median_s"],
            }
        per_T.append(
            {
                "T": T,
                "roofline_gflops": roof_rate,
                "roofline_timing": timing["matmul_roofline"],
                "impls": impls,
                "accuracy": acc,
            }
        )

    # Profiling: where the time goes (at the spread-weights temperature), how the roofline
    # fraction moves with d, and the per-call |y|^2 recomputation at small batch.
    T_prof = temperatures[-1]
    X_prof = noisy_queries(Y, B, T_prof, seed=11)
    breakdown = _breakdown(Y, X_prof, T_prof, rounds, (mm, (A, A)))
    dim_scan = _dim_scan([16, 64] if quick else [64, 256, 784], B, N, T_prof, 3 if quick else 7, (mm, (A, A)), mm_n)
    small_batch = _small_batch(Y, [1, 16] if quick else [1, 16, 128], T_prof, 5 if quick else 21)

    impl_names = list(per_T[0]["impls"])
    best_np = min(NUMPY_VARIANTS, key=lambda v: float(np.median([r["impls"][v]["median_s"] for r in per_T])))

    def med(key, impl):
        return float(np.median([r["impls"][impl][key] for r in per_T]))

    speed_rows = []
    for k in impl_names:
        row = {"impl": k}
        for r in per_T:
            row[f"GF/s T={r['T']:g}"] = r["impls"][k]["gflops"]
        row["ms (med T)"] = 1e3 * med("median_s", k)
        row["roofline frac"] = med("roofline_fraction", k)
        row["x numpy"] = med("speedup_vs_numpy", k)
        row["x best numpy"] = med(f"speedup_vs_{best_np}", k)
        row["/gemm_only"] = med("fraction_of_gemm_only", k)
        speed_rows.append(row)
    roof_row = {"impl": "matmul_roofline (jnp %d^2)" % mm_n}
    for r in per_T:
        roof_row[f"GF/s T={r['T']:g}"] = r["roofline_gflops"]
    speed_rows.insert(0, roof_row)
    acc_rows = [
        {
            "T": r["T"],
            "n_eff (median)": r["accuracy"]["n_eff_median"],
            "max|td-np|": r["accuracy"]["max_abs_diff_vs_numpy"],
            "rel": r["accuracy"]["max_rel_diff_vs_numpy"],
            "td err vs f64": r["accuracy"]["thermodiff_max_abs_err_vs_f64"],
            "np err vs f64": r["accuracy"]["numpy_max_abs_err_vs_f64"],
        }
        for r in per_T
    ]
    summary = {
        "B": B,
        "N": N,
        "d": d,
        "roofline_gflops": float(np.median([r["roofline_gflops"] for r in per_T])),
        "numpy_matmul_gflops": roof["numpy_gflops"],
        "numpy_1thread_matmul_gflops": roof["numpy_1thread_gflops"],
        "thermodiff_gflops": med("gflops", "thermodiff"),
        "roofline_fraction": med("roofline_fraction", "thermodiff"),
        "speedup_vs_numpy": med("speedup_vs_numpy", "thermodiff"),
        "best_numpy": best_np,
        "speedup_vs_best_numpy": med(f"speedup_vs_{best_np}", "thermodiff"),
        "thermodiff_arg_roofline_fraction": med("roofline_fraction", "thermodiff_arg"),
        "gemm_only_roofline_fraction": med("roofline_fraction", "gemm_only"),
        "thermodiff_over_gemm_only": med("fraction_of_gemm_only", "thermodiff"),
        "max_rel_diff_vs_numpy": max(r["accuracy"]["max_rel_diff_vs_numpy"] for r in per_T),
    }
    return {
        "config": {
            "batch": B,
            "n_points": N,
            "dim": d,
            "dtype": "float32",
            "data": "uniform in [0, 16] (8x8-digits pixel range, not standardised), seed 0",
            "queries": "x = y + sqrt(T) z, y drawn from the points",
            "temperatures": temperatures,
            "rounds": rounds,
            "flops_per_call": flops,
            "flop_count": "4 B N d (two GEMMs); softmax/exp not counted",
            "roofline": f"jitted jnp float32 ({mm_n}x{mm_n}) @ ({mm_n}x{mm_n}), timed in the same rounds",
            "impls": {
                "gemm_only": "(X @ Y.T) @ Y in jnp: the two GEMMs alone, no softmax (shape-specific ceiling)",
                "thermodiff": "jax.jit(jax.vmap(ds.denoiser, in_axes=(0, None))), dataset closed over",
                "thermodiff_arg": "same, the dataset passed as a jit argument",
                "thermodiff_chunk512": "dataset as argument, FiniteDataset(chunk_size=512): streaming path",
                "numpy": "vectorised float32 NumPy, contiguous Y^T precomputed, OpenBLAS default threads",
                "numpy_1thread": "the same with OpenBLAS set to 1 thread (ctypes, not env)",
                "numpy_clamped_1thread": "numpy_1thread + logits clamped at -87 (no subnormal exp)",
                "proto_*": "PROTOTYPES in bench_denoiser.py, not library code",
            },
        },
        "roofline_standalone": roof,
        "per_temperature": per_T,
        "breakdown": breakdown,
        "dim_scan": dim_scan,
        "small_batch": small_batch,
        "summary": summary,
        "tables": {
            "speed (medians of interleaved rounds)": speed_rows,
            "accuracy": acc_rows,
            f"breakdown at T={T_prof:g} (each stage timed alone)": breakdown["rows"],
            f"roofline fraction vs d (B={B}, N={N}, T={T_prof:g})": dim_scan,
            "small batch: per-call |y|^2/2 recomputation": small_batch,
        },
    }


# ---------------------------------------------------------------------------------- benchmark 2


def _rss_bytes(field: str = "VmRSS", pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak-RSS high-water mark (Linux >= 4.0: VmHWM and ru_maxrss)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_bytes() -> int:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def _denoise_batch(ds, x, T):
    import jax

    return jax.vmap(ds.denoiser, in_axes=(0, None))(x, T)


def _memory_analysis(compiled) -> dict:
    ma = compiled.memory_analysis()
    if ma is None:
        return {"available": False}
    out = {"available": True}
    for k in (
        "temp_size_in_bytes",
        "argument_size_in_bytes",
        "output_size_in_bytes",
        "alias_size_in_bytes",
        "generated_code_size_in_bytes",
    ):
        out[k] = getattr(ma, k, None)
    out["total_bytes"] = sum(
        out[k] or 0 for k in ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes")
    ) - (out["alias_size_in_bytes"] or 0)
    return out


def compiled_memory(n: int, d: int, batch: int, chunk_size: int) -> dict:
    """XLA's memory analysis of the batched denoiser, compiled from abstract shapes only."""
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    pts = jax.ShapeDtypeStruct((n, d), jnp.float32)
    ds = jax.eval_shape(lambda p: td.FiniteDataset(p, chunk_size=chunk_size), pts)
    x = jax.ShapeDtypeStruct((batch, d), jnp.float32)
    T = jax.ShapeDtypeStruct((), jnp.float32)
    compiled = jax.jit(_denoise_batch).lower(ds, x, T).compile()
    return _memory_analysis(compiled)


def _emit(obj):
    print("@@" + json.dumps(obj), flush=True)


def memory_worker(cfg: dict) -> None:
    """Run in a fresh subprocess: build the dataset, run the denoiser once, report peak RSS."""
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    jax.devices()
    n, d, batch, chunk = cfg["n"], cfg["d"], cfg["batch"], cfg["chunk_size"]
    rss_import = _rss_bytes()
    _emit({"stage": "start", "rss_import": rss_import, "pid": os.getpid()})

    rng = np.random.default_rng(0)
    pts = rng.standard_normal((n, d), dtype=np.float32)  # standardised data, no float64 transient
    ds = td.FiniteDataset(pts, chunk_size=chunk)
    x = jnp.asarray(pts[rng.integers(0, n, batch)] + np.float32(math.sqrt(cfg["T"])) * rng.standard_normal((batch, d), dtype=np.float32))
    del pts
    gc.collect()
    T = jnp.float32(cfg["T"])
    jax.block_until_ready((ds, x))

    rss_data = _rss_bytes()
    # High-water mark so far: building the dataset (NumPy points, device copy, padded chunks).
    _emit({"stage": "built", "rss_data": rss_data, "peak_construction": _rss_bytes("VmHWM")})

    _reset_peak_rss()
    t0 = time.perf_counter()
    if cfg.get("closure"):
        # The dataset closed over: its arrays become constants of the XLA program.
        compiled = jax.jit(lambda x, T: _denoise_batch(ds, x, T)).lower(x, T).compile()
        call = lambda: compiled(x, T)  # noqa: E731
    else:
        compiled = jax.jit(_denoise_batch).lower(ds, x, T).compile()
        call = lambda: compiled(ds, x, T)  # noqa: E731
    compile_s = time.perf_counter() - t0
    gc.collect()
    _emit(
        {
            "stage": "compiled",
            "rss_compiled": _rss_bytes(),
            "peak_compile": _rss_bytes("VmHWM"),
            "compile_s": compile_s,
            "xla": _memory_analysis(compiled),
        }
    )

    reset_ok = _reset_peak_rss()
    t0 = time.perf_counter()
    out = jax.block_until_ready(call())
    first_s = time.perf_counter() - t0
    peak_hwm = _rss_bytes("VmHWM")
    peak_ru = _ru_maxrss_bytes()
    finite = bool(np.all(np.isfinite(np.asarray(out))))
    _emit(
        {
            "stage": "ran",
            "reset_ok": reset_ok,
            "peak_hwm": peak_hwm,
            "peak_ru_maxrss": peak_ru,
            "first_call_s": first_s,
            "output_finite": finite,
        }
    )
    times = []
    for _ in range(cfg["repeats"]):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    _emit(
        {
            "stage": "done",
            "timing": summarize(times),
            "peak_hwm_after_timing": _rss_bytes("VmHWM"),
            "checksum": float(np.asarray(out, np.float64).sum()),
        }
    )


def _run_memory_worker(cfg: dict, *, cap_bytes: int, timeout_s: float) -> dict:
    """Run :func:`memory_worker` in a fresh interpreter, killing it above ``cap_bytes`` RSS or
    after ``timeout_s``. Returns the merged stage records plus how it ended."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "benchmarks.bench_denoiser", "--memory-worker", json.dumps(cfg)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    max_seen = 0
    while proc.poll() is None:
        rss = _rss_bytes("VmRSS", proc.pid) or 0
        max_seen = max(max_seen, rss)
        if rss > cap_bytes:
            proc.kill()
            killed = f"RSS {rss / GiB:.2f} GiB exceeded the cap of {cap_bytes / GiB:.2f} GiB"
            break
        if time.perf_counter() - t0 > timeout_s:
            proc.kill()
            killed = f"timeout after {timeout_s:.0f} s"
            break
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    rec: dict = {"returncode": proc.returncode, "wall_s": time.perf_counter() - t0, "parent_observed_max_rss": max_seen}
    stages = []
    for line in stdout.splitlines():
        if line.startswith("@@"):
            obj = json.loads(line[2:])
            stages.append(obj.pop("stage"))
            rec.update(obj)
    rec["stages"] = stages
    rec["ok"] = killed is None and proc.returncode == 0 and "done" in stages
    if not rec["ok"]:
        rec["failure"] = killed or f"exit status {proc.returncode} after stages {stages}"
        rec["stderr_tail"] = stderr[-2000:]
    if "peak_hwm" in rec and "rss_import" in rec:
        rec["peak_above_import"] = rec["peak_hwm"] - rec["rss_import"]  # counts the points
    if "peak_hwm" in rec and "rss_compiled" in rec:
        # working memory of the call alone: above the RSS just before it (data + executable)
        rec["peak_above_precall"] = rec["peak_hwm"] - rec["rss_compiled"]
    if "peak_construction" in rec and "rss_import" in rec:
        rec["construction_peak_above_import"] = rec["peak_construction"] - rec["rss_import"]
    if "peak_compile" in rec and "rss_import" in rec:
        rec["compile_peak_above_import"] = rec["peak_compile"] - rec["rss_import"]
    if "peak_ru_maxrss" in rec and "rss_compiled" in rec:
        rec["ru_maxrss_above_precall"] = rec["peak_ru_maxrss"] - rec["rss_compiled"]
    return rec


@register("denoiser_memory", description="peak memory of the streaming vs dense denoiser (N=10^6, d=64, B=256)")
def bench_denoiser_memory(quick: bool) -> dict:
    if quick:
        n, d, batch, chunk, repeats, timeout = 20_000, 64, 64, 4096, 2, 120
    else:
        n, d, batch, chunk, repeats, timeout = 1_000_000, 64, 256, 4096, 3, 480
    T = 1.0
    budget = 1 * GiB
    try:
        with open("/proc/meminfo") as f:
            meminfo = {l.split(":")[0]: int(l.split()[1]) * 1024 for l in f}
        mem_avail = meminfo.get("MemAvailable")
    except OSError:
        mem_avail = None
    cap = min(8 * GiB, int(0.6 * mem_avail)) if mem_avail else 8 * GiB
    points_bytes = n * d * 4
    flops = 4.0 * batch * n * d

    # name -> (chunk_size, dataset closed over instead of passed as a jit argument)
    variants = {"streaming": (chunk, False), "dense": (n, False), "streaming_closure": (chunk, True)}
    results = {}
    for name, (cs, closure) in variants.items():
        rec = {"chunk_size": cs, "closure": closure}
        if closure:  # constants need the values: use the worker's own analysis
            rec["xla_compiled"] = None
        else:
            try:
                rec["xla_compiled"] = compiled_memory(n, d, batch, cs)
            except Exception as e:  # pragma: no cover - reported, not fatal
                rec["xla_compiled"] = {"available": False, "error": repr(e)}
        cfg = {"n": n, "d": d, "batch": batch, "chunk_size": cs, "T": T, "repeats": repeats, "closure": closure}
        rec["subprocess"] = _run_memory_worker(cfg, cap_bytes=cap, timeout_s=timeout)
        sp = rec["subprocess"]
        if rec["xla_compiled"] is None:
            rec["xla_compiled"] = sp.get("xla") or {"available": False}
        if sp.get("timing"):
            t = sp["timing"]["median_s"]
            rec["median_s"] = t
            rec["query_points_per_s"] = batch * n / t
            rec["gflops"] = flops / t / 1e9
        results[name] = rec

    s, dn = results["streaming"], results["dense"]
    s_peak = s["subprocess"].get("peak_above_import")
    d_peak = dn["subprocess"].get("peak_above_import")
    s_xla = s["xla_compiled"].get("total_bytes")
    d_xla = dn["xla_compiled"].get("total_bytes")
    passed = bool(s["subprocess"]["ok"] and s_peak is not None and s_peak < budget)
    rows = []
    for name, rec in results.items():
        sp = rec["subprocess"]
        xla = rec["xla_compiled"]
        rows.append(
            {
                "variant": name,
                "chunk": rec["chunk_size"],
                "xla temp MB": (xla.get("temp_size_in_bytes") or 0) / 1e6 if xla.get("available") else None,
                "xla arg MB": (xla.get("argument_size_in_bytes") or 0) / 1e6 if xla.get("available") else None,
                "xla total MB": (xla.get("total_bytes") or 0) / 1e6 if xla.get("available") else None,
                "peak RSS MB (incl. points)": sp["peak_above_import"] / 1e6 if "peak_above_import" in sp else None,
                "peak RSS MB (call only)": sp["peak_above_precall"] / 1e6 if "peak_above_precall" in sp else None,
                "build peak MB": sp["construction_peak_above_import"] / 1e6 if "construction_peak_above_import" in sp else None,
                "compile peak MB": sp["compile_peak_above_import"] / 1e6 if "compile_peak_above_import" in sp else None,
                "compile s": sp.get("compile_s"),
                "ran": "ok" if sp["ok"] else f"FAILED: {sp.get('failure')}",
                "ms": 1e3 * rec["median_s"] if "median_s" in rec else None,
                "Mqueries*points/s": rec["query_points_per_s"] / 1e6 if "query_points_per_s" in rec else None,
                "GF/s": rec.get("gflops"),
            }
        )
    summary = {
        "N": n,
        "d": d,
        "batch": batch,
        "points_MB": points_bytes / 1e6,
        "streaming_peak_MB": s_peak / 1e6 if s_peak is not None else None,
        "dense_peak_MB": d_peak / 1e6 if d_peak is not None else None,
        "dense_over_streaming_peak": (d_peak / s_peak) if (s_peak and d_peak) else None,
        "streaming_xla_MB": s_xla / 1e6 if s_xla is not None else None,
        "dense_xla_MB": d_xla / 1e6 if d_xla is not None else None,
        "streaming_build_peak_MB": s["subprocess"].get("construction_peak_above_import", 0) / 1e6 or None,
        "budget_MB": budget / 1e6,
        "streaming_pass": passed,
        "streaming_speed_vs_dense": (dn["median_s"] / s["median_s"]) if ("median_s" in s and "median_s" in dn) else None,
        "streaming_compile_s": s["subprocess"].get("compile_s"),
        "closure_compile_s": results["streaming_closure"]["subprocess"].get("compile_s"),
        "closure_compile_peak_MB": results["streaming_closure"]["subprocess"].get("compile_peak_above_import", 0) / 1e6 or None,
    }
    import jax

    notes_backend = []
    if jax.default_backend() != "cpu":
        notes_backend.append(
            f"backend is {jax.default_backend()}: RSS measures host memory only; the XLA compiled "
            "analysis (device buffers) is the relevant number there"
        )
    return {
        "config": {
            "n_points": n,
            "dim": d,
            "batch": batch,
            "T": T,
            "dtype": "float32",
            "data": "standard normal (standardised), seed 0",
            "budget_bytes": budget,
            "budget_counts_points": True,
            "peak_definition": (
                "peak RSS (VmHWM, reset via /proc/self/clear_refs just before the first call of the "
                "compiled denoiser) minus the RSS after importing jax/thermodiff and before creating "
                "the points: counts the points, the padded chunks, XLA temporaries and output"
            ),
            "subprocess_cap_bytes": cap,
            "timeout_s": timeout,
            "repeats": repeats,
        },
        "variants": results,
        "summary": summary,
        "table": rows,
        "notes": [
            "peak RSS MB (incl. points) = peak during the call minus RSS before the points existed; "
            "(call only) = minus RSS just before the call (dataset built, executable compiled); build peak = high-water mark while "
            "building FiniteDataset (before the call, not part of the budget); compile peak = "
            "high-water mark while compiling, above the same baseline",
            "streaming_closure: the same streaming denoiser with the dataset closed over in jax.jit "
            "(as jax.jit(jax.vmap(ds.denoiser)) does): the points become XLA constants",
            f"streaming peak {'<' if passed else '>='} 1 GiB budget (points counted): {'PASS' if passed else 'FAIL'}",
            *notes_backend,
        ],
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-worker":
        memory_worker(json.loads(sys.argv[2]))
    else:
        print("usage: python -m benchmarks --only denoiser  (this module is not a CLI)", file=sys.stderr)
        sys.exit(2)
