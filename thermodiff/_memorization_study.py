"""Memorisation over training time: tau_gen and tau_mem against the training-set size n.

Bonnaire, Urfin, Biroli and Mezard (2025): a network trained by denoising score matching on n
points first learns the population (generalisation time tau_gen, independent of n), then starts
to reproduce its training points after tau_mem steps, and tau_mem grows linearly in n; the window
[tau_gen, tau_mem] is where early stopping gives a generalising model (theory section 10).

``memorization_study`` trains one architecture on nested training sets data[:n] for every size n
and seed, all lanes in one vmapped ``td.train`` program by default (``vmap=False``: one run after
another, the same lanes, the same keys), records the exact diagnostics of ``td.Diagnostics`` at
log-spaced steps (f_mem, the excess loss against the exact empirical denoiser, the generalisation
error against the population), reads tau_gen and tau_mem off each run, and fits tau_mem = c n^a
(``fit_memorization_law``) with a free exponent and with a = 1. ``MemorizationStudy.collapse``
puts the curves against step/n, where the theory says they fall onto one.
"""

from __future__ import annotations

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._diagnostics import Diagnostics, detect_tau_mem
from ._memorization_law import MemorizationLaw, fit_memorization_law
from ._nets import Preconditioned
from ._train import stack_models, train
from ._validate import check_callable, check_int, check_key


@dataclasses.dataclass(frozen=True, eq=False)
class Collapse:
    """Curves of a ``MemorizationStudy`` against rescaled time step/n (theory section 10).

    - ``sizes`` (S,); ``x`` (S, L): step/n of every logged step; ``steps`` (L,).
    - ``f_mem``, ``excess``, ``generalization`` (S, L): seed means (the losses summed over the
      diagnostic temperatures; ``generalization`` None without a reference).
    - ``levels``: the f_mem levels compared; ``crossings`` (S, len(levels)): the step at which
      each size's mean f_mem curve first reaches each level (NaN if never).
    - ``spread_rescaled``: the largest, over the levels every size reaches, ratio max/min over
      sizes of crossing/n (1 = perfect collapse); ``spread_raw``: the same for the crossing steps
      themselves (about n_max/n_min when tau_mem is linear in n). NaN if no level is shared.

    Under jit: not jittable (host-side NumPy result).
    """

    sizes: np.ndarray
    steps: np.ndarray
    x: np.ndarray
    f_mem: np.ndarray
    excess: np.ndarray
    generalization: np.ndarray | None
    levels: np.ndarray
    crossings: np.ndarray
    spread_rescaled: float
    spread_raw: float


@dataclasses.dataclass(frozen=True, eq=False)
class MemorizationStudy:
    """What ``memorization_study`` returns (theory sections 10 and 11).

    - ``sizes`` (S,), ``seeds``, ``steps``; per run (S, seeds), NaN where not reached:
      ``tau_mem``, the first step with f_mem >= threshold, and ``tau_gen``, the first step at
      which the generalisation error (summed over the temperatures) reaches a quality level
      shared by all runs (``common_level_times``); ``tau_cross`` (S, seeds, K): per diagnostic
      temperature, the first step at which the excess loss against the exact empirical denoiser
      falls below the generalisation error (``crossing_step``).
    - ``tau_gen_mean``/``_se``, ``tau_mem_mean``/``_se`` (S,): mean over the seeds that reached
      it and its standard error (NaN with fewer than 2).
    - ``law``: tau_mem = c n^a with a free (None if fewer than 2 sizes memorised); ``law_linear``:
      a = 1 fixed (None if no run memorised). Both fitted to every (n, tau_mem) run.
    - ``history``: ``step`` (L,), ``f_mem``/``f_mem_se`` (L, S, seeds), ``excess``/``excess_se``
      and ``generalization``/``generalization_se`` (L, S, seeds, K), ``temperatures`` (K,),
      ``irreducible`` (S, seeds, K); ``reference``: what the generalisation error is against.
    - ``models``: the trained (EMA) models, a stack with leading axis S * seeds (size-major);
      ``losses`` (S, seeds, steps).
    - ``vmapped``, ``train_wall_s`` (training only), ``wall_s`` (the whole study).

    Under jit: not jittable (host-side NumPy result).
    """

    sizes: np.ndarray
    seeds: int
    steps: int
    tau_gen: np.ndarray
    tau_mem: np.ndarray
    tau_cross: np.ndarray
    tau_gen_mean: np.ndarray
    tau_gen_se: np.ndarray
    tau_mem_mean: np.ndarray
    tau_mem_se: np.ndarray
    law: MemorizationLaw | None
    law_linear: MemorizationLaw | None
    history: dict
    reference: str
    models: Preconditioned
    losses: np.ndarray
    vmapped: bool
    train_wall_s: float
    wall_s: float

    def predict(self, n, *, linear: bool = False):
        """The fitted law at sizes n (theory section 11).

        **Arguments:** ``n``: sizes, finite and > 0; ``linear``: use the a = 1 law instead of the
        free exponent.

        **Returns:** ``(tau, lo, hi)`` as ``MemorizationLaw.predict``.

        Under jit: not jittable (host-side NumPy); validates eagerly.
        """
        law = self.law_linear if linear else self.law
        if law is None:
            raise ValueError("no memorisation law to predict with: too few runs reached tau_mem (raise steps)")
        return law.predict(n)

    def collapse(self, *, levels=(0.1, 0.2, 0.3, 0.5)) -> Collapse:
        """The seed-mean curves against step/n and how well they collapse (theory section 10).

        **Arguments:** ``levels``: f_mem levels in (0, 1) at which the crossing steps are compared.

        **Returns:** a ``Collapse``.

        Under jit: not jittable (host-side NumPy); validates eagerly.
        """
        lv = np.atleast_1d(np.asarray(levels, float))
        if lv.ndim != 1 or lv.size < 1 or not np.all((lv > 0) & (lv < 1)):
            raise ValueError(f"levels must be f_mem levels in (0, 1), got {levels!r}")
        h, s = self.history, np.asarray(self.history["step"], float)
        fm = np.mean(h["f_mem"], axis=2).T  # (S, L)
        exc = np.mean(np.sum(h["excess"], -1), axis=2).T
        gen = np.mean(np.sum(h["generalization"], -1), axis=2).T if "generalization" in h else None
        cross = np.array([[_nan(detect_tau_mem(s, f, threshold=v)) for v in lv] for f in fm])
        shared = np.all(np.isfinite(cross), axis=0)
        spread = lambda t: float(np.max(np.max(t, 0) / np.min(t, 0))) if shared.any() else float("nan")
        return Collapse(sizes=self.sizes, steps=s, x=s[None, :] / self.sizes[:, None], f_mem=fm, excess=exc,
                        generalization=gen, levels=lv, crossings=cross,
                        spread_rescaled=spread(cross[:, shared] / self.sizes[:, None]),
                        spread_raw=spread(cross[:, shared]))

    def table(self) -> list[dict]:
        """One row per run: n, seed, tau_gen, tau_mem and tau_cross at the lowest diagnostic
        temperature (None where not reached)."""
        out = lambda v: None if not np.isfinite(v) else float(v)
        low = int(np.argmin(self.history["temperatures"]))
        return [dict(n=int(n), seed=j, tau_gen=out(self.tau_gen[i, j]), tau_mem=out(self.tau_mem[i, j]),
                     tau_cross_low_T=out(self.tau_cross[i, j, low]))
                for i, n in enumerate(self.sizes) for j in range(self.seeds)]

    def __str__(self) -> str:
        rows = [f"n = {int(n):6d}: tau_gen = {g:8.1f} +- {gs:6.1f}  tau_mem = {m:8.1f} +- {ms:6.1f}"
                for n, g, gs, m, ms in zip(self.sizes, self.tau_gen_mean, self.tau_gen_se, self.tau_mem_mean, self.tau_mem_se)]
        laws = [str(law) for law in (self.law, self.law_linear) if law is not None]
        return "\n".join(rows + laws)


def _nan(v) -> float:
    return float("nan") if v is None else float(v)


def _mean_se(t: np.ndarray):
    """Mean and standard error over the finite entries of each row (NaN se with fewer than 2)."""
    mean, se = np.full(t.shape[0], np.nan), np.full(t.shape[0], np.nan)
    for i, row in enumerate(t):
        r = row[np.isfinite(row)]
        if r.size:
            mean[i] = r.mean()
        if r.size >= 2:
            se[i] = r.std(ddof=1) / np.sqrt(r.size)
    return mean, se


def crossing_step(steps, excess, generalization) -> float | None:
    """The first logged step at which ``excess`` <= ``generalization`` after being above it,
    interpolated in log step (the log-ratio crosses 0; theory section 10); None if it never does.

    **Arguments:** ``steps`` (L >= 2,); ``excess``, ``generalization`` (L,), finite and > 0: one
    number per logged step (the excess loss against the exact empirical denoiser and the
    generalisation error, at one temperature or summed over several).

    **Returns:** the step, or None.

    Under jit: not jittable (host-side NumPy); validates eagerly.
    """
    s, e, g = (np.asarray(v, float) for v in (steps, excess, generalization))
    if s.ndim != 1 or s.size < 2 or e.shape != s.shape or g.shape != s.shape:
        raise ValueError(f"steps, excess and generalization must be 1-D of equal length >= 2, got {s.shape}, {e.shape}, {g.shape}")
    for name, v in (("excess", e), ("generalization", g)):
        if not (np.all(np.isfinite(v)) and np.all(v > 0)):
            raise ValueError(f"{name} must be finite and > 0 (allowed range: {name} > 0)")
    diff = np.log(e) - np.log(g)  # both > 0: the crossing is where the log-ratio changes sign
    above = np.flatnonzero(diff > 0)
    if above.size == 0:
        return None
    below = np.flatnonzero((diff <= 0) & (np.arange(s.size) > above[0]))
    if below.size == 0:
        return None
    i = int(below[0])
    f = diff[i - 1] / (diff[i - 1] - diff[i])
    s0, s1 = max(s[i - 1], 1.0), max(s[i], 1.0)
    return float(np.exp(np.log(s0) + f * (np.log(s1) - np.log(s0))))


_LOGGED = ("excess", "excess_se", "generalization", "generalization_se", "f_mem", "f_mem_se")
_CONSTANT = ("irreducible", "irreducible_se", "loss_floor", "loss_floor_se")


def memorization_study(make_model, data, sizes, *, key, steps: int, seeds: int = 2, population=None, held_out=None,
                       temperatures=None, diagnostics: Diagnostics | None = None, vmap: bool = True,
                       max_lanes: int | None = None, threshold: float = 0.1, gen_fraction: float = 0.9,
                       progress: bool = False,
                       **train_kw) -> MemorizationStudy:
    """Train one architecture on n points for every n in ``sizes`` and every seed; measure
    tau_gen and tau_mem per run and fit tau_mem = c n^a (theory sections 10 and 11).

    Size n trains on data[:n] (nested training sets); seed j starts every size from the same
    initial network make_model(key_j), so the sizes are compared at equal initialisation, and
    every run draws its own batches. All S * seeds runs train as one vmapped ``td.train`` program
    (``vmap=True``; ``max_lanes`` caps the runs per program when memory is short); ``vmap=False``
    trains them one after another with the same keys (the same numbers as one vmapped program,
    up to floating-point reassociation). Every run takes the same ``steps``: choose it so that
    the largest n memorises (tau_mem scales like n).

    **Arguments:**
    - ``make_model``: key -> a ``td.Preconditioned`` network (the architecture under study).
    - ``data``: points (N, d), finite, N >= max(sizes); the training sets are its prefixes.
    - ``sizes``: distinct training-set sizes, integers in [2, N].
    - ``key``: PRNG key of the study; ``steps``: training steps of every run, >= 2.
    - ``seeds``: runs per size, in [1, 1000] (default 2; error bars need >= 2).
    - ``population``: the exact population ensemble (generalisation error against it), or
      ``held_out`` points for the named held-out proxy; at most one.
    - ``temperatures``: the diagnostic grid (default sigma^2 x geomspace(0.05, 20, 4), sigma^2
      the data's mean variance per coordinate).
    - ``diagnostics``: a ``td.Diagnostics`` (with ``n_samples`` > 0) instead of the three above.
      The default measures 128 states per temperature and f_mem of 128 samples (16 Heun steps)
      at 16 log-spaced steps.
    - ``vmap``, ``max_lanes``: as above (``max_lanes`` None: all runs in one program).
    - ``threshold``: the f_mem level that defines tau_mem, in (0, 1) (default 0.1, as
      ``td.detect_tau_mem``).
    - ``gen_fraction``: tau_gen is the first step at which the generalisation error (summed over
      the temperatures) has fallen by ``gen_fraction`` x the smallest drop of all the runs: one
      quality level for every size (``common_level_times``), in (0, 1] (default 0.9).
    - ``progress``: progress bars of the training runs.
    - ``train_kw``: the recipe of ``td.train`` (``trainer``, or ``optimizer``, ``batch_size``, ...).

    **Returns:** a ``MemorizationStudy``.

    Under jit: not jittable (host-side driver); validates eagerly.
    """
    t_start = time.perf_counter()
    check_key("key", key)
    check_callable("make_model", make_model)
    pts = _check_data(data)
    n = _check_sizes(sizes, pts.shape[0])
    steps = check_int("steps", steps, 2, 10**9)
    seeds = check_int("seeds", seeds, 1, 1000)
    if max_lanes is not None:
        max_lanes = check_int("max_lanes", max_lanes, 1, 10**6)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) or not 0 < threshold < 1:
        raise ValueError(f"threshold must be an f_mem level in (0, 1), got {threshold!r}")
    if isinstance(gen_fraction, bool) or not isinstance(gen_fraction, (int, float, np.floating)) or not 0 < gen_fraction <= 1:
        raise ValueError(f"gen_fraction must lie in (0, 1], got {gen_fraction!r}")
    for bad in ("n_points", "vmap", "diagnostics", "checkpoint", "resume"):
        if bad in train_kw:
            raise TypeError(f"memorization_study sets {bad!r} of td.train itself; do not pass it")
    diag = _diagnostics(diagnostics, pts, population, held_out, temperatures)
    k_init, k_train = jax.random.split(key)
    models = _models(make_model, jax.random.split(k_init, seeds), len(n), pts.shape[1])
    lanes = np.repeat(n, seeds).astype(np.int32)
    runs = _train_lanes(models, pts, lanes, k_train, steps, diag, vmap, max_lanes, progress, train_kw)
    return _assemble(runs, n, seeds, steps, diag, vmap, threshold, gen_fraction, time.perf_counter() - t_start)


def _check_data(data) -> np.ndarray:
    from ._ensembles._base import as_float_array
    from ._validate import check_finite

    pts = as_float_array("data", data, ndim=2)
    check_finite("data", pts)
    return np.asarray(pts)


def _check_sizes(sizes, N: int) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(sizes))
    if arr.ndim != 1 or arr.size < 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"sizes must be a non-empty 1-D list of integers, got {sizes!r}")
    if np.any(arr < 2) or np.any(arr > N):
        raise ValueError(f"sizes must lie in [2, {N}] (N = the number of data points; f_mem needs 2), got {arr.tolist()!r}")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"sizes must be distinct (use seeds for repeats), got {arr.tolist()!r}")
    return np.sort(arr).astype(int)


def _diagnostics(diagnostics, pts, population, held_out, temperatures) -> Diagnostics:
    if diagnostics is not None:
        if not isinstance(diagnostics, Diagnostics):
            raise TypeError(f"diagnostics must be a td.Diagnostics, got {type(diagnostics).__name__}")
        if population is not None or held_out is not None or temperatures is not None:
            raise ValueError("give diagnostics, or population/held_out/temperatures to build them, not both")
        if diagnostics.n_samples == 0:
            raise ValueError("diagnostics must generate samples (n_samples >= 2): tau_mem is read off f_mem")
        return diagnostics
    if temperatures is None:
        temperatures = float(np.mean(np.var(pts, axis=0))) * np.geomspace(0.05, 20.0, 4)
    return Diagnostics(temperatures, population, held_out=held_out, n_states=128, n_samples=128, sample_steps=16,
                       n_logs=16)


def _models(make_model, keys, n_sizes, d) -> list:
    """make_model(key_j) for each seed j, repeated for every size (size-major lanes)."""
    per_seed = []
    for k in keys:
        m = make_model(k)
        if not isinstance(m, Preconditioned):
            raise TypeError(f"make_model must return a td.Preconditioned network, got {type(m).__name__}")
        if m.dim != d:
            raise ValueError(f"make_model's network acts on d = {m.dim}, the data have d = {d}")
        per_seed.append(m)
    return per_seed * n_sizes


def _train_lanes(models, pts, lanes, key, steps, diag, vmap, max_lanes, progress, train_kw) -> list:
    """[(TrainResult, lanes it holds)]: one vmapped program per group of lanes, or one run each."""
    M = len(lanes)
    common = dict(steps=steps, diagnostics=diag, progress=progress, **train_kw)
    if not vmap:
        keys = jax.random.split(key, M)  # what a single vmapped td.train gives each lane
        return [(train(models[m], pts, key=keys[m], n_points=int(lanes[m]), **common), 1) for m in range(M)]
    g = M if max_lanes is None else max_lanes
    out = []
    for i, start in enumerate(range(0, M, g)):
        k = key if g >= M else jax.random.fold_in(key, i)
        sl = slice(start, start + g)
        res = train(stack_models(models[sl]), pts, key=k, vmap=True, n_points=lanes[sl], **common)
        out.append((res, len(lanes[sl])))
    return out


def _lane_history(res, m: int) -> dict:
    """A run's history with a leading lane axis on every per-run quantity."""
    h = res.history
    out = {}
    for k in _LOGGED:
        if k in h:
            v = np.asarray(h[k])
            out[k] = np.moveaxis(v, 1, 0) if m else v[None]  # (lanes, L, ...)
    for k in _CONSTANT:
        if k in h:
            out[k] = np.asarray(h[k]) if m else np.asarray(h[k])[None]
    return out


def _merge(runs, vmapped: bool) -> tuple[dict, np.ndarray, Preconditioned, float]:
    parts = [_lane_history(res, m if vmapped else 0) for res, m in runs]
    first = runs[0][0].history
    hist = {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}
    hist["step"], hist["temperatures"] = np.asarray(first["step"]), np.asarray(first["temperatures"])
    losses = np.concatenate([np.asarray(res.losses).reshape(m if vmapped else 1, -1) for res, m in runs], axis=0)
    parts_m = [eqx.partition(res.model, eqx.is_array) for res, _ in runs]
    arrays = [a if vmapped else jax.tree.map(lambda x: x[None], a) for a, _ in parts_m]
    stack = eqx.combine(jax.tree.map(lambda *xs: jnp.concatenate(xs), *arrays), parts_m[0][1])
    return hist, losses, stack, float(sum(res.wall_s for res, _ in runs))


def _assemble(runs, n, seeds, steps, diag, vmapped, threshold, gen_fraction, wall) -> MemorizationStudy:
    hist, losses, models, train_wall = _merge(runs, vmapped)
    S, M, s = len(n), len(n) * seeds, np.asarray(hist["step"], float)
    lane = lambda v: v.reshape((S, seeds) + v.shape[1:])
    tau_mem = np.array([_nan(detect_tau_mem(s, f, threshold=threshold)) for f in hist["f_mem"]])
    tau_gen, tau_cross = np.full(M, np.nan), np.full((M, len(hist["temperatures"])), np.nan)
    if "generalization" in hist:
        tau_gen = common_level_times(s, np.sum(hist["generalization"], -1), fraction=gen_fraction)
        tau_cross = np.array([[_cross(s, e, g) for e, g in zip(E.T, G.T)]
                              for E, G in zip(hist["excess"], hist["generalization"])])
    history = {"step": hist["step"].astype(int), "temperatures": hist["temperatures"]}
    for k, v in hist.items():
        if k in _LOGGED:
            history[k] = np.moveaxis(lane(v), 2, 0)  # (L, S, seeds, ...)
        elif k in _CONSTANT:
            history[k] = lane(v)
    tau_gen, tau_mem = lane(tau_gen), lane(tau_mem)
    g_mean, g_se = _mean_se(tau_gen)
    m_mean, m_se = _mean_se(tau_mem)
    law, law_lin = _fit_laws(n, tau_mem)
    return MemorizationStudy(
        sizes=n, seeds=seeds, steps=steps, tau_gen=tau_gen, tau_mem=tau_mem, tau_cross=lane(tau_cross),
        tau_gen_mean=g_mean, tau_gen_se=g_se, tau_mem_mean=m_mean, tau_mem_se=m_se, law=law, law_linear=law_lin,
        history=history, reference=diag.reference, models=models, losses=lane(losses), vmapped=vmapped,
        train_wall_s=train_wall, wall_s=wall)


def _cross(s, e, g) -> float:
    ok = np.all(np.isfinite(e) & np.isfinite(g) & (e > 0) & (g > 0))  # a diverged run has no crossing
    return _nan(crossing_step(s, e, g)) if ok else float("nan")


def common_level_times(steps, gen_error, *, fraction: float = 0.9) -> np.ndarray:
    """Generation times at one quality level shared by all runs (theory section 10).

    Run r's level is G_r(0) - ``fraction`` x (the smallest drop G(0) - min G of all runs); its
    time is the first logged step at which G_r reaches it, interpolated in log step. Every run
    reaches it by construction. (``td.detect_tau_gen`` uses each run's own drop instead: a run on
    more points keeps improving for longer before memorisation sets in, so that time grows
    with n even when the early learning does not depend on n.)

    **Arguments:** ``steps`` (L,); ``gen_error`` (R, L): one generalisation-error curve per run;
    ``fraction`` in (0, 1].

    **Returns:** (R,) steps (NaN for a run whose error never drops).

    Under jit: not jittable (host-side NumPy); validates eagerly.
    """
    s, G = np.asarray(steps, float), np.atleast_2d(np.asarray(gen_error, float))
    if s.ndim != 1 or s.size < 2 or G.ndim != 2 or G.shape[1] != s.size:
        raise ValueError(f"steps must be (L >= 2,) and gen_error (R, L), got {s.shape}, {G.shape}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    drops = G[:, 0] - np.min(G, axis=1)
    out = np.full(G.shape[0], np.nan)
    if not np.all(drops > 0):
        return out
    for r, g in enumerate(G):
        level = g[0] - fraction * np.min(drops)
        i = int(np.argmax(g <= level))
        f = (g[i - 1] - level) / (g[i - 1] - g[i]) if i else 0.0
        s0, s1 = max(s[i - 1], 1.0), max(s[i], 1.0)
        out[r] = np.exp(np.log(s0) + f * (np.log(s1) - np.log(s0))) if i else s[0]
    return out


def _fit_laws(n, tau_mem):
    ok = np.isfinite(tau_mem)
    sz = np.broadcast_to(np.asarray(n, float)[:, None], tau_mem.shape)[ok]
    t = tau_mem[ok]
    law = fit_memorization_law(sz, t) if np.unique(sz).size >= 2 else None
    law_lin = fit_memorization_law(sz, t, exponent=1.0) if t.size else None
    return law, law_lin


__all__ = ["Collapse", "MemorizationStudy", "common_level_times", "crossing_step", "memorization_study"]
