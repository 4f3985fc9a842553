"""``thermodiff analyze`` end to end: wall time by stage, --quick vs full, and peak memory at image sizes.

Every row runs ``thermodiff._analyze.analyze`` once in a FRESH subprocess
(``python -m benchmarks.bench_analyze --worker '<json>'``), so each row pays its own JIT
compilation (as a user's first run does) and its peak RSS (``VmHWM``) is its own, not the
parent's.

1. ``digits_quick`` / ``digits_full``: the embedded 8x8 UCI digits (N = 1797, d = 64) with
   ``quick=True`` and ``quick=False``; their wall-time ratio full/quick against the target
   "--quick at least 2x faster than the full run" (reported as met or missed; the analysis is
   not tuned here).
2. ``mnist_shaped``: the digits bilinearly upsampled to 28x28 (``load_digits_upsampled``,
   N = 1797, d = 784, rank <= 64), ``quick=False``.
3. ``synthetic_4096``: synthetic image-sized data, d = 4096, N = 70000 (N = 4000 with --quick),
   float32, generated deterministically in the worker: 10 classes whose centres ~ N(0, 4 I_32)
   in a random 32-dimensional subspace (a random orthonormal 4096 x 32 map), plus isotropic
   N(0, 0.25) noise in all 4096 dimensions. Run with ``quick=True``: it is the size / memory
   smoke test, and the analysis's plan shrinks its sample sizes to its time budget anyway, so
   quick=False would only change the budget, not what is being tested (that it fits and runs).

With ``--quick`` (the suite's smoke run) only ``digits_quick`` runs, on a 1/4 subsample (every
4th point, N = 450), so that the benchmark takes about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from ._common import register

MiB = 2**20
SIM_STAGES = ("memorization prediction", "cloning curve", "trajectories")  # the planned simulation


def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        return None
    return None


def synthetic_images(n: int, d: int = 4096, *, n_classes: int = 10, k: int = 32, seed: int = 0,
                     chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic float32 class-structured data: centres ~ N(0, 4 I_k) embedded in R^d by a
    random orthonormal d x k map, plus N(0, 0.25) noise in every dimension. Filled in row chunks so
    that the peak memory is one copy of the data plus a chunk."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    Q = Q.astype(np.float32)  # (d, k), orthonormal columns
    centres = (2.0 * rng.standard_normal((n_classes, k))).astype(np.float32)  # std 2: variance 4
    labels = rng.integers(0, n_classes, n).astype(np.int64)
    X = np.empty((n, d), np.float32)
    for i in range(0, n, chunk):
        j = min(n, i + chunk)
        X[i:j] = centres[labels[i:j]] @ Q.T
        X[i:j] += np.float32(0.5) * rng.standard_normal((j - i, d), dtype=np.float32)  # std 0.5: variance 0.25
    return X, labels


def _load(cfg):
    if cfg["data"] == "digits":
        from thermodiff import load_digits

        X, y = load_digits()
    elif cfg["data"] == "upsampled":
        from thermodiff import load_digits_upsampled

        X, y = load_digits_upsampled(28)
    elif cfg["data"] == "synthetic":
        X, y = synthetic_images(cfg["n"], cfg["d"])
    else:  # pragma: no cover
        raise ValueError(cfg["data"])
    step = cfg.get("subsample", 1)
    if step > 1:
        X, y = X[::step], y[::step]
    return X, y


def _worker(cfg):
    """Fresh process: build the data, run ``analyze`` once, print one ``@@``-prefixed JSON line."""
    t_start = time.perf_counter()
    X, y = _load(cfg)
    t_data = time.perf_counter() - t_start
    rss_data = _status_bytes("VmRSS")
    from thermodiff._analyze import analyze
    from thermodiff._progress import Progress

    p = Progress(enabled=False, stages=())
    t0 = time.perf_counter()
    res, figs = analyze(X, y, seed=0, quick=cfg["quick"], progress=p, name=cfg["name"])
    wall = time.perf_counter() - t0
    stages = p.finish()
    # VmHWM, not ru_maxrss: ru_maxrss survives exec and would report the forking parent's peak
    peak = _status_bytes("VmHWM")
    hd, sp, mem = res["headline"], res["speciation"], res["memorization"]
    s_key, m_key = hd["speciation_estimator"], hd["memorization_estimator"]
    sim_s = sum(stages.get(s, 0.0) for s in SIM_STAGES)
    out = dict(
        n=int(X.shape[0]), d=int(X.shape[1]), dtype=str(X.dtype), quick=bool(cfg["quick"]),
        wall_s=wall, data_s=t_data, stages=stages, simulation_s=sim_s,
        plan=res["plan"],
        plan_estimated_over_actual=(res["plan"]["estimated_s"] / sim_s) if sim_s > 0 else None,
        peak_rss_mb=None if peak is None else peak / MiB,
        rss_after_data_mb=None if rss_data is None else rss_data / MiB,
        data_mb=X.nbytes / MiB,
        speciation_estimator=s_key,
        T_speciation=None if s_key is None else sp[s_key]["T"],
        T_speciation_stderr=None if s_key is None else sp[s_key].get("stderr"),
        memorization_estimator=m_key,
        T_memorization=mem[m_key]["T"],
        T_memorization_stderr=mem[m_key].get("stderr"),
        T_first_split=sp["first_split"]["T"],
        T_rem=mem["rem"]["T"],
        n_figures=len(figs),
    )
    print("@@" + json.dumps(out, default=lambda o: o.item() if hasattr(o, "item") else repr(o)), flush=True)


def _run_case(cfg, timeout):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    try:
        res = subprocess.run([sys.executable, "-m", "benchmarks.bench_analyze", "--worker", json.dumps(cfg)],
                             capture_output=True, text=True, cwd=root, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout} s", "process_wall_s": time.perf_counter() - t0}
    proc_wall = time.perf_counter() - t0
    for line in res.stdout.splitlines():
        if line.startswith("@@"):
            out = json.loads(line[2:])
            out.update(ok=True, process_wall_s=proc_wall)
            return out
    return {"ok": False, "returncode": res.returncode, "error": res.stderr[-1500:], "process_wall_s": proc_wall}


def _row(name, r):
    if not r.get("ok"):
        return {"case": name, "ok": False, "error": (r.get("error") or "")[-200:]}
    row = {"case": name, "N": r["n"], "d": r["d"], "quick": r["quick"], "wall_s": r["wall_s"],
           "process_wall_s": r["process_wall_s"], "peak_rss_mb": r["peak_rss_mb"],
           "sim_s": r["simulation_s"], "plan_est_s": r["plan"]["estimated_s"],
           "reduced": r["plan"]["reduced"], "T_spec": r["T_speciation"], "T_mem": r["T_memorization"]}
    return row


@register("analyze", description="thermodiff analyze end to end: digits quick vs full, d = 784 and d = 4096 by stage, peak RSS")
def bench_analyze(quick: bool) -> dict:
    from thermodiff._subspace import measure_matmul_rate

    gflops = measure_matmul_rate() / 1e9
    sub = 4 if quick else 1
    n_big = 4000 if quick else 70000
    cases = {
        "digits_quick": dict(data="digits", quick=True, subsample=sub, name="digits"),
        "digits_full": dict(data="digits", quick=False, subsample=sub, name="digits"),
        "mnist_shaped": dict(data="upsampled", quick=quick, name="digits-28x28"),
        "synthetic_4096": dict(data="synthetic", n=n_big, d=4096, quick=True, name="synthetic-4096"),
    }
    if quick:  # the suite's smoke run: one small case (compile-dominated, about a minute)
        cases = {"digits_quick": cases["digits_quick"]}
    timeout = 900 if quick else 3600
    runs = {k: _run_case(cfg, timeout) for k, cfg in cases.items()}

    def get(case, key):
        r = runs.get(case, {})
        return r.get(key) if r.get("ok") else None

    wq, wf = get("digits_quick", "wall_s"), get("digits_full", "wall_s")
    ratio = wf / wq if wq and wf else None
    big = runs.get("synthetic_4096", {})
    summary = {
        "digits_quick_wall_s": wq,
        "digits_full_wall_s": wf,
        "digits_full_over_quick": ratio,
        "quick_2x_target_met": None if ratio is None else bool(ratio >= 2.0),
        "mnist_shaped_wall_s": get("mnist_shaped", "wall_s"),
        "mnist_shaped_peak_rss_mb": get("mnist_shaped", "peak_rss_mb"),
        "synthetic_4096_N": n_big,
        "synthetic_4096_wall_s": get("synthetic_4096", "wall_s"),
        "synthetic_4096_peak_rss_mb": get("synthetic_4096", "peak_rss_mb"),
        "synthetic_4096_data_mb": get("synthetic_4096", "data_mb"),
        "synthetic_4096_sim_s": get("synthetic_4096", "simulation_s"),
        "synthetic_4096_plan_estimated_s": big["plan"]["estimated_s"] if big.get("ok") else None,
        "synthetic_4096_plan_est_over_actual": get("synthetic_4096", "plan_estimated_over_actual"),
        "matmul_gflops": gflops,
        "all_cases_ok": all(r.get("ok") for r in runs.values()),
    }
    stage_rows = []
    for k, r in runs.items():
        if r.get("ok"):
            stage_rows.append({"case": k, **{s: v for s, v in r["stages"].items()}})
    notes = [
        "each row is one analyze() call in a fresh subprocess: wall_s includes its JIT compilation; "
        "process_wall_s adds interpreter start, imports and data construction; peak_rss_mb is the worker's VmHWM",
        f"digits_quick / digits_full: the embedded 8x8 digits (d = 64){' subsampled to every 4th point (N = 450) in --quick mode' if quick else ''}, "
        "analyze(quick=True) vs analyze(quick=False); target: --quick >= 2x faster than the full run "
        f"(ratio {ratio if ratio is None else round(ratio, 2)}: "
        f"{'not measured in --quick mode' if ratio is None else ('met' if ratio >= 2.0 else 'MISSED')})",
        "mnist_shaped: load_digits_upsampled(28), N = 1797, d = 784 (MNIST-shaped, rank <= 64 covariance), "
        + ("analyze(quick=True) in --quick mode" if quick else "analyze(quick=False)"),
        f"synthetic_4096: N = {n_big}, d = 4096 float32, 10 classes, centres ~ N(0, 4 I_32) in a random 32-dim subspace "
        "plus N(0, 0.25) isotropic noise; analyze(quick=True) because this row is the size/memory smoke test and the "
        "plan shrinks the sample sizes to its time budget anyway",
        "plan_est_s is the plan's estimate of the simulation stages (memorization prediction, cloning curve, "
        "trajectories) at the measured matmul rate; sim_s is their measured time, compilation included",
        "timings are from a shared, noisy machine (2 cores shared with other work): read them as orders of magnitude",
    ]
    return {"summary": summary, "table": [_row(k, r) for k, r in runs.items()],
            "tables": {"stage seconds": stage_rows}, "cases": runs, "config": cases, "notes": notes}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(json.loads(sys.argv[2]))
