"""Shared machinery of the benchmark suite: registry, timing, roofline, environment, output.

Everything here that touches JAX imports it lazily, so that ``benchmarks.__main__`` can set
``JAX_PLATFORMS`` first.

**Registry.** ``REGISTRY`` maps a benchmark name to a :class:`Benchmark` (the function
``fn(quick: bool) -> dict`` and a one-line description); fill it with the :func:`register`
decorator. A benchmark returns a JSON-able dict. Two keys are understood by the runner:

- ``"summary"``: a flat dict of headline numbers (printed as one row),
- ``"table"``: a list of flat dicts (printed as a table),
- ``"tables"``: a dict title -> list of flat dicts (each printed as a table),
- ``"notes"``: a list of strings (printed as bullets),

anything else is written to the JSON as is. The runner adds ``benchmark``, ``description``,
``quick``, ``status``, ``env``, ``wall_s``, ``started_at`` and the load average before/after.

**Timing.** :func:`time_median` (one function) and :func:`time_interleaved` (several functions
timed in shuffled round-robin order, so the noise of a shared machine hits all of them alike and
their ratios stay meaningful). Both block on JAX results with ``jax.block_until_ready``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
import math
import os
import pkgutil
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "Benchmark",
    "REGISTRY",
    "register",
    "load_all",
    "block",
    "time_samples",
    "time_median",
    "time_interleaved",
    "summarize",
    "matmul_roofline",
    "env_info",
    "numpy_blas_info",
    "openblas",
    "blas_threads",
    "one_blas_thread",
    "jsonable",
    "all_finite",
    "write_result",
    "format_table",
    "loadavg",
]


# ---------------------------------------------------------------------------------- registry
@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str
    fn: Callable[[bool], dict]
    description: str = ""


REGISTRY: dict[str, Benchmark] = {}


def register(name: str | None = None, *, description: str = ""):
    """Decorator: add ``fn(quick: bool) -> dict`` to :data:`REGISTRY` under ``name``."""

    def deco(fn):
        key = name or fn.__name__
        if key in REGISTRY and REGISTRY[key].fn is not fn:
            raise ValueError(f"benchmark name {key!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        REGISTRY[key] = Benchmark(key, fn, description or (doc[0] if doc else ""))
        return fn

    return deco


def load_all() -> dict[str, Benchmark]:
    """Import every ``benchmarks/bench_*.py`` module (each registers its benchmarks)."""
    pkg_dir = os.path.dirname(os.path.abspath(__file__))
    for mod in sorted(pkgutil.iter_modules([pkg_dir]), key=lambda m: m.name):
        if mod.name.startswith("bench_"):
            importlib.import_module(f"{__package__}.{mod.name}")
    return REGISTRY


# ---------------------------------------------------------------------------------- timing
def block(x):
    """Wait for JAX results (no-op for NumPy and Python values)."""
    try:
        import jax
    except ImportError:  # pragma: no cover
        return x
    return jax.block_until_ready(x)


def time_samples(fn: Callable, *args, repeats: int = 7, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls ``fn(*args)`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        block(fn(*args))
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn(*args))
        out.append(time.perf_counter() - t0)
    return out


def time_median(fn: Callable, *args, repeats: int = 7, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn(*args)`` (blocking on JAX results)."""
    return statistics.median(time_samples(fn, *args, repeats=repeats, warmup=warmup))


def summarize(samples: list[float]) -> dict[str, float]:
    """Median, min, max and interquartile range (seconds) of timing samples."""
    s = sorted(samples)
    q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0]] * 3
    return {
        "median_s": statistics.median(s),
        "min_s": s[0],
        "max_s": s[-1],
        "iqr_s": q[2] - q[0],
        "repeats": len(s),
    }


def time_interleaved(
    cases: dict[str, tuple[Callable, tuple]], *, rounds: int = 11, warmup: int = 1, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Time several ``name -> (fn, args)`` cases in shuffled round-robin order.

    Each round calls every case once, in a fresh random order. On a shared, noisy machine this
    makes the ratios of the per-case medians far more stable than timing each case in its own
    block. Returns ``name -> summarize(samples)``.
    """
    for fn, args in cases.values():
        for _ in range(warmup):
            block(fn(*args))
    rng = random.Random(seed)
    names = list(cases)
    samples: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for k in names:
            fn, args = cases[k]
            t0 = time.perf_counter()
            block(fn(*args))
            samples[k].append(time.perf_counter() - t0)
    return {k: summarize(v) for k, v in samples.items()}


# ---------------------------------------------------------------------------------- roofline
def matmul_roofline(n: int = 2048, *, repeats: int = 7, warmup: int = 1, seed: int = 0) -> dict:
    """This machine's float32 matmul rate, measured now: (n x n) @ (n x n), 2 n^3 flops.

    Returns the jitted ``jnp`` rate (the roofline the benchmarks compare against) and the NumPy
    (BLAS) rate, with its default threads and with one thread, in GFLOP/s, from the median of
    ``repeats`` calls each.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    aj, bj = jnp.asarray(a), jnp.asarray(b)
    mm = jax.jit(jnp.matmul)
    flops = 2.0 * n**3
    t_jnp = time_samples(mm, aj, bj, repeats=repeats, warmup=warmup)
    t_np = time_samples(np.matmul, a, b, repeats=repeats, warmup=warmup)
    with blas_threads(1) as bt:
        t_np1 = time_samples(np.matmul, a, b, repeats=repeats, warmup=warmup)
    sj, sn, sn1 = summarize(t_jnp), summarize(t_np), summarize(t_np1)
    return {
        "n": n,
        "dtype": "float32",
        "flops": flops,
        "jnp_gflops": flops / sj["median_s"] / 1e9,
        "jnp_gflops_best": flops / sj["min_s"] / 1e9,
        "numpy_gflops": flops / sn["median_s"] / 1e9,
        "numpy_gflops_best": flops / sn["min_s"] / 1e9,
        "numpy_1thread_gflops": flops / sn1["median_s"] / 1e9 if bt.ok else None,
        "jnp_timing": sj,
        "numpy_timing": sn,
        "numpy_1thread_timing": sn1 if bt.ok else None,
    }


# ---------------------------------------------------------------------------------- BLAS control
class _OpenBLAS:
    """ctypes handle on the OpenBLAS NumPy has loaded (what threadpoolctl does, without it)."""

    def __init__(self, path: str, lib, prefix: str, suffix: str):
        self.path, self._lib, self._prefix, self._suffix = path, lib, prefix, suffix

    def _fn(self, name):
        return getattr(self._lib, f"{self._prefix}{name}{self._suffix}")

    def get_num_threads(self) -> int:
        return int(self._fn("get_num_threads")())

    def set_num_threads(self, n: int) -> None:
        import ctypes

        self._fn("set_num_threads")(ctypes.c_int(n))

    def corename(self) -> str | None:
        import ctypes

        try:
            f = self._fn("get_corename")
            f.restype = ctypes.c_char_p
            return f().decode()
        except AttributeError:
            return None

    def config(self) -> str | None:
        import ctypes

        try:
            f = self._fn("get_config")
            f.restype = ctypes.c_char_p
            return f().decode()
        except AttributeError:
            return None


_OPENBLAS_CACHE: list = []


def openblas() -> _OpenBLAS | None:
    """The OpenBLAS shared library loaded by NumPy in this process, or None (Linux only)."""
    if _OPENBLAS_CACHE:
        return _OPENBLAS_CACHE[0]
    import ctypes

    import numpy as np

    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # make sure BLAS is loaded
    found = None
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
    except OSError:
        paths = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", ""), ("scipy_openblas_", "")):
            if hasattr(lib, f"{prefix}set_num_threads{suffix}") and hasattr(lib, f"{prefix}get_num_threads{suffix}"):
                found = _OpenBLAS(path, lib, prefix, suffix)
                break
        if found:
            break
    _OPENBLAS_CACHE.append(found)
    return found


class blas_threads:
    """Context manager: run NumPy's OpenBLAS with ``n`` threads, restoring the old count after.

    Does not touch the environment. A no-op (``.ok`` False) where OpenBLAS cannot be found.
    """

    def __init__(self, n: int):
        self.n = n
        self.lib = openblas()
        self.ok = self.lib is not None
        self._old = None

    def __enter__(self):
        if self.ok:
            self._old = self.lib.get_num_threads()
            self.lib.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.ok and self._old is not None:
            self.lib.set_num_threads(self._old)
        return False


def one_blas_thread(fn):
    """``fn`` run with NumPy's OpenBLAS limited to one thread. On a shared, oversubscribed
    machine multi-threaded OpenBLAS stalls in its barriers (its median GEMM time was 10-20x its
    best here); one thread is slower at best but stable."""

    def wrapped(*args, **kw):
        with blas_threads(1):
            return fn(*args, **kw)

    wrapped.__name__ = f"{getattr(fn, '__name__', 'fn')}_1thread"
    return wrapped


# ---------------------------------------------------------------------------------- environment
def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):  # pragma: no cover
        return None


def numpy_blas_info() -> dict:
    """NumPy's BLAS build configuration (and threadpoolctl's runtime view when installed)."""
    import warnings

    import numpy as np

    info: dict[str, Any] = {"numpy_version": np.__version__}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = np.show_config(mode="dicts")
        deps = cfg.get("Build Dependencies", {})
        info["blas"] = {k: deps.get("blas", {}).get(k) for k in ("name", "version", "openblas configuration")}
        simd = cfg.get("SIMD Extensions", {})
        if simd:
            info["simd_found"] = simd.get("found")
    except Exception as e:  # pragma: no cover - older numpy
        info["blas"] = f"unavailable: {e!r}"
    lib = openblas()
    if lib is not None:
        info["openblas_runtime"] = {
            "library": lib.path,
            "num_threads": lib.get_num_threads(),
            "corename": lib.corename(),
            "config": lib.config(),
        }
    try:
        import threadpoolctl

        info["threadpoolctl"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer", "architecture")}
            for p in threadpoolctl.threadpool_info()
        ]
    except ImportError:
        info["threadpoolctl"] = "not installed"
    return info


_ENV_VARS = (
    "JAX_PLATFORMS",
    "JAX_ENABLE_X64",
    "XLA_FLAGS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def env_info() -> dict:
    """JAX/NumPy versions, backend, device kind, CPU count and relevant environment variables."""
    import jax
    import jaxlib

    devs = jax.devices()
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = None
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover
        pass
    mem_total = None
    try:
        mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        pass
    try:
        import thermodiff

        td_version = thermodiff.__version__
    except Exception:  # pragma: no cover
        td_version = None
    return {
        "thermodiff_version": td_version,
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "backend": jax.default_backend(),
        "device_kind": devs[0].device_kind,
        "device_count": len(devs),
        "x64_enabled": bool(jax.config.jax_enable_x64),
        "cpu_count": os.cpu_count(),
        "cpu_affinity_count": affinity,
        "cpu_model": cpu_model,
        "memory_total_bytes": mem_total,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "env": {k: os.environ.get(k) for k in _ENV_VARS},
        "numpy": numpy_blas_info(),
        "loadavg": loadavg(),
    }


# ---------------------------------------------------------------------------------- output
def jsonable(obj):
    """Convert NumPy/JAX scalars and arrays to plain Python; non-finite floats become None."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if np is not None:
        if isinstance(obj, np.generic):
            return jsonable(obj.item())
        if hasattr(obj, "__array__"):
            return jsonable(np.asarray(obj).tolist())
    return repr(obj)


def all_finite(obj, path: str = "") -> list[str]:
    """Paths of numbers in a JSON-like object that are None/NaN/inf (empty list = all finite)."""
    bad = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            bad += all_finite(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            bad += all_finite(v, f"{path}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        bad.append(path)
    return bad


def write_result(result: dict, out_dir: str) -> str:
    """Write ``result`` to ``out_dir/<benchmark>.json`` atomically; return the path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{result['benchmark']}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(jsonable(result), f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        a = abs(v)
        if a != 0 and (a >= 1e6 or a < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A plain-text table of flat dicts (columns: union of keys in first-seen order)."""
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = []
        for r in rows:
            for k in r:
                if k not in columns:
                    columns.append(k)
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.rjust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
