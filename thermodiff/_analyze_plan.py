"""How much simulation ``thermodiff analyze`` can afford on a dataset, decided before it starts.

Every simulated quantity of the analysis (cloning curve, trajectories, excess entropy) is a
number of exact-score evaluations, and one evaluation of one state costs about 4 N d floating-
point operations (the two products of the posterior softmax with the N x d data, theory section
3). The plan counts the evaluations of the full-size analysis, compares them with a time budget
at the machine's measured matmul rate, and shrinks sample sizes (never below stated floors) until
the estimate fits; it refuses, with a message naming the way out, when even the floors do not.
"""

from __future__ import annotations

import dataclasses
import math

# Full, quick and minimal sizes of the simulation stages.
_FULL = dict(n_T=10, n_pairs=384, clone_steps=80, n_traj=256, traj_steps=160, n_save=40, ent_T=25, ent_samples=256)
_QUICK = dict(n_T=6, n_pairs=96, clone_steps=32, n_traj=64, traj_steps=64, n_save=20, ent_T=11, ent_samples=96)
_FLOOR = dict(n_T=6, n_pairs=32, clone_steps=24, n_traj=32, traj_steps=40, n_save=16, ent_T=9, ent_samples=32)
_COUNTS = ("n_pairs", "n_traj", "ent_samples")  # Monte Carlo sample sizes (error ~ 1/sqrt)
_STEPS = ("clone_steps", "traj_steps", "n_save")  # discretisation (bias ~ 1/steps)
BUDGET_S = {False: 150.0, True: 40.0}  # simulation budget of a full and a quick run, seconds
REFUSE_S = 1800.0  # refuse when even the floor sizes would need longer than this
FULL_SPLIT_MAX_DIM = 64  # the exact first split runs in the full space up to this dimension
# Exact-score evaluations (two products with an exponential between them, streamed in chunks, plus
# the sampler's work) reach about this fraction of a plain float32 matmul's rate: measured 0.32 at
# N = 70000, d = 4096 and 0.39 at N = 4000 (compilation included).
EFFICIENCY = 0.35


@dataclasses.dataclass(frozen=True)
class AnalysisPlan:
    """Sample sizes of one analysis and the cost estimate behind them.

    - ``n_T``, ``n_pairs``, ``clone_steps``: cloning temperatures, pairs per temperature, steps.
    - ``n_traj``, ``traj_steps``, ``n_save``: trajectories, their steps and saved temperatures.
    - ``ent_T``, ``ent_samples``: excess-entropy temperatures and Monte Carlo samples.
    - ``flops_per_eval``: 4 N d, one exact-score evaluation of one state.
    - ``evaluations``: exact-score evaluations of the whole simulation.
    - ``rate``: the evaluation rate used (``EFFICIENCY`` x the matmul rate, flop/s).
    - ``estimated_s``: evaluations x flops_per_eval / rate; ``budget_s``: the budget it met.
    - ``reduced``: True when the sizes were cut below the full (or quick) ones to fit.
    - ``split_dim``: dimension of the space of the exact first split (d, or a leading subspace).
    - ``quick``: a smoke run (the compile-heavy exact first split and excess entropy are skipped).
    """

    n_T: int
    n_pairs: int
    clone_steps: int
    n_traj: int
    traj_steps: int
    n_save: int
    ent_T: int
    ent_samples: int
    flops_per_eval: float
    evaluations: float
    rate: float
    estimated_s: float
    budget_s: float
    reduced: bool
    split_dim: int
    quick: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _evaluations(s: dict) -> float:
    clone = s["n_T"] * (2 * s["n_pairs"] * s["clone_steps"] + 6 * s["n_pairs"])  # two copies + exact phi
    traj = s["n_traj"] * (s["traj_steps"] + 3 * s["n_save"])  # dynamics + statistics at the saves
    return float(clone + traj + 2 * s["ent_T"] * s["ent_samples"])


def _shrink(sizes: dict, r: float) -> dict:
    """Cut the sizes by the factor r < 1: samples by r^(2/3), steps by r^(1/3), not below the floors."""
    out = dict(sizes)
    for k in _COUNTS:
        out[k] = max(_FLOOR[k], int(sizes[k] * r ** (2 / 3)))
    for k in _STEPS:
        out[k] = max(_FLOOR[k], int(sizes[k] * r ** (1 / 3)))
    return out


def plan_analysis(n: int, d: int, *, quick: bool = False, rate: float = 2e10, split_dim: int | None = None,
                  budget_s: float | None = None) -> AnalysisPlan:
    """The sample sizes of ``thermodiff analyze`` for N points in d dimensions.

    **Arguments:**
    - ``n``, ``d``: the dataset's size and dimension (>= 1).
    - ``quick``: start from the quick sizes (a smoke run) instead of the full ones.
    - ``rate``: floating-point operations per second of a float32 matmul on this machine
      (``measure_matmul_rate``); exact-score evaluations are counted at ``EFFICIENCY`` times it.
    - ``split_dim``: dimension of the first-split computation (default: d up to
      ``FULL_SPLIT_MAX_DIM``, else chosen by the analysis and filled in later).
    - ``budget_s``: the simulation time budget in seconds (default 150 full, 40 quick).

    **Returns:** an ``AnalysisPlan``. Raises ``ValueError`` if even the smallest sizes would take
    longer than 30 minutes (the message says how to subsample).
    """
    if min(n, d) < 1:
        raise ValueError(f"n and d must be >= 1, got n = {n}, d = {d}")
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive finite number of flop/s, got {rate!r}")
    budget = BUDGET_S[bool(quick)] if budget_s is None else float(budget_s)
    sizes = dict(_QUICK if quick else _FULL)
    fpe = 4.0 * n * d
    rate = EFFICIENCY * rate
    est = _evaluations(sizes) * fpe / rate
    reduced = est > budget
    if reduced:
        sizes = _shrink(sizes, budget / est)
        est = _evaluations(sizes) * fpe / rate
    if est > REFUSE_S:
        m = max(2, int(n * REFUSE_S / est / 2))
        raise ValueError(
            f"DATA: N x d = {n} x {d} is too large to simulate here (about {est / 60:.0f} min even at the smallest "
            f"sample sizes, at {rate / 1e9:.0f} Gflop/s); pass --max-points {m} to analyse a random subset "
            "(collapse temperatures then refer to that many points)")
    if split_dim is None:
        split_dim = d if d <= FULL_SPLIT_MAX_DIM else 0
    return AnalysisPlan(**sizes, flops_per_eval=fpe, evaluations=_evaluations(sizes), rate=float(rate),
                        estimated_s=est, budget_s=budget, reduced=reduced, split_dim=int(split_dim),
                        quick=bool(quick))


__all__ = ["AnalysisPlan", "plan_analysis"]
