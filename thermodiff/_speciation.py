"""Where a finite dataset speciates and where it collapses (theory sections 3, 6, 9).

- ``speciation_time``: Biroli et al.'s prediction from the covariance spectrum, t_S = log(Lambda)/2
  in OU time (VE-equivalent T_S = Lambda - 1), next to the exact first transition of the
  empirical law (``first_split``: where Phi_T acquires its second minimum).
- ``measure_collapse``: exact-score trajectories of the empirical law, and along them the
  posterior weight of the top training point, the memorised fraction (nearest-neighbour gap ratio
  d1/d2 < 1/3), the temperature after which a trajectory's nearest training point never changes,
  and, with class labels, the temperature at which each trajectory commits to its final class.
  Every statistic streams over the training points in the dataset's chunks (online top-2 and
  log-sum-exp), so memory does not grow with N.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Key
from ._ensembles._base import as_float_array
from ._ensembles._diffused import Diffused
from ._ensembles._finite import FiniteDataset
from ._condensation import collapse_temperature
from ._models import as_model
from ._samplers import AbstractSolver, EulerMaruyama, KarrasGrid, sample
from ._schedules import OU, AbstractSchedule
from ._validate import (
    MAX_SIZE,
    check_finite,
    check_key,
    check_real,
    check_scalar,
    check_size,
    check_temperature,
    check_temperature_scalar,
)

_MEMORIZED_RATIO = 1.0 / 3.0


def _as_dataset(data) -> FiniteDataset:
    if isinstance(data, FiniteDataset):
        return data
    pts = as_float_array("data", data, ndim=2)
    if pts.shape[0] < 2:
        raise ValueError(f"data must hold at least 2 points (N >= 2), got {pts.shape[0]}")
    if pts.shape[1] < 1:
        raise ValueError(f"data must have dimension d >= 1, got shape {pts.shape}")
    check_finite("data", pts)
    return FiniteDataset(pts)


class SpeciationPrediction(eqx.Module):
    """Predicted speciation of a dataset, in both conventions (theory sections 1, 3, 9).

    - ``eigenvalues``: the leading eigenvalues of the data covariance, decreasing.
    - ``T_biroli``, ``t_biroli``: Biroli et al.'s speciation, t_S = log(Lambda)/2 in OU time,
      i.e. VE-equivalent T_S = Lambda - 1, and its time in the given schedule (NaN if Lambda <= 1:
      the formula assumes data whose bulk has unit variance).
    - ``T_levels``, ``t_levels``: lambda_k - 1 for the leading eigenvalues: the spectrum's
      hierarchy of later splits in the same convention.
    - ``T_first_split``, ``t_first_split``: the exact first transition of the empirical law
      (``td.first_split_temperature``), or NaN when not computed.
    """

    eigenvalues: Array
    T_biroli: Array
    t_biroli: Array
    T_levels: Array
    t_levels: Array
    T_first_split: Array
    t_first_split: Array


def speciation_time(
    data,
    schedule: AbstractSchedule | None = None,
    *,
    n_levels: int = 5,
    exact: bool = True,
    max_starts: int = 32,
    rtol: float = 1e-3,
) -> SpeciationPrediction:
    """Speciation of ``data`` from its spectrum and, exactly, from its empirical law (theory sections 3
    and 5: Biroli's t_S = log(Lambda)/2 in OU time, i.e. T_S = Lambda - 1 as a VE-equivalent noise
    variance, next to the exact first split of the empirical law).

    **Arguments:**
    - ``data``: points (N, d) with N >= 2, or a ``FiniteDataset``.
    - ``schedule``: the process whose times are reported (default ``OU()``, Biroli's).
    - ``n_levels``: number of spectral levels, >= 1.
    - ``exact``: also compute the exact first split (a bifurcation search over the empirical
      law; seconds to a minute for N ~ 2000, d = 64).
    - ``max_starts``, ``rtol``: passed to ``first_split`` (starts subsampled from the data).

    **Returns:** a ``SpeciationPrediction``.
    """
    from ._hierarchy import first_split_temperature

    schedule = OU() if schedule is None else schedule
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"schedule must be an AbstractSchedule (VE, VP, DDPM, OU, Cosine), got {type(schedule).__name__}")
    if isinstance(n_levels, bool) or not isinstance(n_levels, (int, np.integer)) or n_levels < 1:
        raise ValueError(f"n_levels must be an integer >= 1, got {n_levels!r}")
    ens = _as_dataset(data)
    pts = np.asarray(ens.points, np.float64)
    w = np.asarray(ens.weights, np.float64)
    mu = w @ pts
    C = (pts - mu).T @ ((pts - mu) * w[:, None])
    ev = np.sort(np.linalg.eigvalsh(C))[::-1][: min(n_levels, pts.shape[1])]
    T_lv = np.where(ev > 1, ev - 1, np.nan)
    t_lv = np.asarray(schedule.time_at_temperature(jnp.asarray(np.nan_to_num(T_lv, nan=1.0))))
    t_lv = np.where(np.isfinite(T_lv), t_lv, np.nan)
    T_fs = t_fs = np.nan
    if exact:
        T_fs = float(first_split_temperature(ens, max_starts=max_starts, rtol=rtol))
        if np.isfinite(T_fs):
            t_fs = float(schedule.time_at_temperature(T_fs))
    f = lambda v: jnp.asarray(v, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    return SpeciationPrediction(
        eigenvalues=f(ev), T_biroli=f(T_lv[0]), t_biroli=f(t_lv[0]), T_levels=f(T_lv), t_levels=f(t_lv),
        T_first_split=f(T_fs), t_first_split=f(t_fs),
    )


# ----------------------------------------------------------------------------- streaming NN
def nearest_points(dataset: FiniteDataset, u, T) -> tuple[Array, Array, Array, Array]:
    """Nearest-neighbour and posterior statistics of one VE state u at temperature T (theory 9).

    T is the VE-equivalent noise variance (theory 1); the posterior over training points is
    w_n(u, T) = softmax_n((u.y_n - |y_n|^2/2)/T + log pi_n), whose top weight measures condensation.

    Streams over the dataset's chunks: an online top-2 of the squared distances and an online
    log-sum-exp of the posterior logits (x.y_n - |y_n|^2/2)/T + log pi_n.

    **Returns:** (d1, d2, index of the nearest point, posterior weight of the top point); d1, d2
    are Euclidean distances.
    """
    inf = jnp.asarray(jnp.inf, u.dtype)

    def chunk_stats(pts, logw):
        valid = logw > -1e29
        half_sq = 0.5 * jnp.sum(pts**2, axis=1)  # not batched under vmap: computed once per chunk
        g = pts @ u - half_sq  # one GEMM for a batch of states
        d2 = jnp.where(valid, jnp.maximum(jnp.dot(u, u) - 2 * g, 0.0), inf)
        logits = jnp.where(valid, g / T + logw, -inf)
        i1 = jnp.argmin(d2).astype(jnp.int32)  # two min passes: cheaper than a top_k sort on CPU
        a = d2[i1]
        b = jnp.min(jnp.where(jnp.arange(d2.shape[0]) == i1, inf, d2))
        mx = jnp.max(logits)
        lse = mx + jnp.log(jnp.sum(jnp.exp(logits - mx)))
        return jnp.stack([a, b]), jnp.stack([i1, i1]), lse, mx

    n_chunks, chunk = dataset.chunks.shape[:2]

    def body(carry, inp):
        b1, b2, i1, lse, mx = carry
        pts, logw, c = inp
        d, idx, l, m = chunk_stats(pts, logw)
        cand = jnp.stack([b1, b2, d[0], d[1]])
        cidx = jnp.stack([i1, i1, c * chunk + idx[0], c * chunk + idx[1]])  # only cidx[order[0]] is used
        order = jnp.argsort(cand)
        return (cand[order[0]], cand[order[1]], cidx[order[0]], jnp.logaddexp(lse, l), jnp.maximum(mx, m)), None

    init = (inf, inf, jnp.asarray(0, jnp.int32), -inf, -inf)
    (b1, b2, i1, lse, mx), _ = jax.lax.scan(
        body, init, (dataset.chunks, dataset.chunk_log_weights, jnp.arange(n_chunks, dtype=jnp.int32))
    )
    return jnp.sqrt(b1), jnp.sqrt(b2), i1, jnp.exp(mx - lse)


class CollapseMeasurement(eqx.Module):
    """Collapse (memorisation) measured along exact-score trajectories (theory section 9).

    - ``T``: saved temperatures, decreasing, shape (S,).
    - ``top_weight``: mean posterior weight of the top training point at each T, (S,).
    - ``memorized_fraction``: fraction of states with d1/d2 < 1/3 at each T, (S,).
    - ``settle_T``: per trajectory, the highest saved T from which its nearest training point
      never changes again, (n,).
    - ``T_collapse``: median of ``settle_T``.
    - ``T_top_half``: where ``top_weight`` crosses 1/2 (NaN if it does not).
    - ``T_memorized_half``: where ``memorized_fraction`` crosses 1/2 (NaN if it does not).
    - ``commit_T``: per trajectory, the highest saved T from which the posterior probability of
      its final class stays >= ``threshold`` (NaN without labels), (n,).
    - ``final_class``: the class of each trajectory's nearest final training point (-1 without
      labels), (n,).
    - ``top_weight_paths``, ``memorized_paths``: the per-trajectory values behind ``top_weight``
      and ``memorized_fraction``, (n, S), for bootstrap errors of the crossings.
    """

    T: Array
    top_weight: Array
    memorized_fraction: Array
    settle_T: Array
    T_collapse: Array
    T_top_half: Array
    T_memorized_half: Array
    commit_T: Array
    final_class: Array
    top_weight_paths: Array
    memorized_paths: Array


def _crossing(T, y, level):
    """The temperature where y(T) (T decreasing, y rising) first reaches ``level``; NaN if never."""
    above = y >= level
    k = jnp.argmax(above)
    ok = jnp.any(above) & (k > 0)
    k = jnp.maximum(k, 1)
    lt0, lt1 = jnp.log(T[k - 1]), jnp.log(T[k])
    f = (level - y[k - 1]) / jnp.where(y[k] != y[k - 1], y[k] - y[k - 1], 1.0)
    return jnp.where(ok, jnp.exp(lt0 + f * (lt1 - lt0)), jnp.where(jnp.all(above), T[0], jnp.nan))


def _settle(T, ok):
    """Highest T_s with ok[s'] for all s' >= s (T decreasing); NaN if not even at the end."""
    suffix = jnp.flip(jnp.cumprod(jnp.flip(ok.astype(jnp.int32)))) > 0
    k = jnp.argmax(suffix)
    return jnp.where(suffix[-1], T[k], jnp.nan)


def measure_collapse(
    data,
    schedule: AbstractSchedule,
    key: Key,
    *,
    n_trajectories: int = 256,
    T_high: float | None = None,
    T_low: float | None = None,
    n_save: int = 48,
    steps: int = 200,
    solver: AbstractSolver | None = None,
    labels=None,
    threshold: float = 0.9,
    model=None,
    temperatures=None,
) -> CollapseMeasurement:
    """Measure collapse (and class commitment) on trajectories, exact-score or of a given model.

    Trajectories start from x ~ p_{T_high} exactly (the training set diffused) and run ``solver``
    on a Karras grid down to ``T_low``, saving at ``n_save`` log-spaced temperatures; every
    statistic is computed at the saved states with the streaming ``nearest_points`` against the
    training set. By default the dynamics is the exact empirical score; ``model`` (e.g. a trained
    ``td.Preconditioned`` network) runs *its* dynamics from the same states instead, so collapse
    is measured along the model's own trajectories (theory section 10).

    **Arguments:**
    - ``data``: points (N, d), N >= 2, or a ``FiniteDataset``.
    - ``schedule``, ``key``: the process and the PRNG key.
    - ``n_trajectories``: >= 1.
    - ``T_high``, ``T_low``: temperature range (defaults: 4 x and 1/50 x the REM collapse
      temperature of a Gaussian with the data's mean variance, theory section 9).
    - ``n_save`` (>= 2), ``steps`` (>= 1), ``solver`` (default EulerMaruyama).
    - ``labels``: integer class labels (N,) for the commitment temperatures.
    - ``threshold``: posterior probability of the final class that counts as committed.
    - ``model``: a sampler model to run instead of the exact empirical score (default None).
    - ``temperatures``: explicit save temperatures (1-D, > 0), overriding T_high/T_low/n_save.

    **Returns:** a ``CollapseMeasurement``.
    """
    check_key("key", key)
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"schedule must be an AbstractSchedule (VE, VP, DDPM, OU, Cosine), got {type(schedule).__name__}")
    ens = _as_dataset(data)
    n_trajectories = check_size("n_trajectories", n_trajectories, 1, max(1, MAX_SIZE // max(ens.dim, 1)))
    n_save = check_size("n_save", n_save, 2, 10**5)
    steps = check_size("steps", steps, 1, 10**7)
    check_scalar("threshold", threshold, what="a probability in (0, 1)")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
    n, d = ens.n_points, ens.dim
    if T_high is None or T_low is None:  # defaults from the REM threshold (theory 9) of the data's mean variance
        s2 = float(np.trace(np.asarray(ens.covariance(), np.float64))) / d
        T_rem = float(collapse_temperature(n, d, s2))
        T_high = 4.0 * T_rem if T_high is None else T_high
        T_low = T_rem / 50.0 if T_low is None else T_low
    check_temperature_scalar(T_high, "T_high")
    check_temperature_scalar(T_low, "T_low")
    if not T_low < T_high:
        raise ValueError(f"T_low must be < T_high, got T_low={T_low}, T_high={T_high}")
    lab = None
    n_classes = 0
    if labels is not None:
        check_real("labels", labels, what="an integer array of class labels")
        lab = np.asarray(labels)
        if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0 or lab.max() >= n:
            raise ValueError(f"labels must be integers in [0, N) = [0, {n}) of shape ({n},) (at most one class "
                             f"per point), got {lab.dtype} {lab.shape}")
        n_classes = int(lab.max()) + 1
        lab = jnp.asarray(lab, jnp.int32)
    solver = EulerMaruyama() if solver is None else solver
    dtype = ens.chunks.dtype
    if temperatures is None:
        Ts = np.geomspace(T_high, T_low, n_save)
    else:
        Ts = np.sort(np.asarray(temperatures, np.float64).reshape(-1))[::-1]
        if Ts.size < 2 or len(np.unique(Ts)) != Ts.size:
            raise ValueError(f"temperatures must hold at least 2 distinct values, got {temperatures!r}")
        check_temperature(Ts, "temperatures")
    Ts = jnp.asarray(Ts, dtype)
    kx, ks = jax.random.split(key)
    t_hi = schedule.time_at_temperature(Ts[0])
    x0 = Diffused(ens, schedule).sample_marginal(kx, n_trajectories, t_hi)[1]
    dynamics = ens if model is None else as_model(model, schedule)
    return _measure(ens, dynamics, schedule, solver, x0, ks, Ts, steps, lab, n_classes, jnp.asarray(threshold, dtype))


@eqx.filter_jit
def _measure(ens, dynamics, schedule, solver, x0, key, Ts, steps, labels, n_classes, threshold):
    n = x0.shape[0]

    def run(k, x):
        return sample(dynamics, schedule, solver, k, x, steps=steps, grid=KarrasGrid(), T_start=Ts[0], T_end=Ts[-1], save_at=Ts)

    traj = jax.vmap(run)(jax.random.split(key, n), x0)
    theta = schedule.signal_scale(schedule.time_at_temperature(Ts))  # (S,)
    u = traj.xs / theta[None, :, None]  # (n, S, d) VE states
    stats = jax.vmap(jax.vmap(lambda ui, T: nearest_points(ens, ui, T), in_axes=(0, 0)), in_axes=(0, None))
    d1, d2, idx, top = stats(u, Ts)
    memorized = d1 / d2 < _MEMORIZED_RATIO
    top_w = jnp.mean(top, axis=0)
    mem_frac = jnp.mean(memorized.astype(Ts.dtype), axis=0)
    settle = jax.vmap(lambda i: _settle(Ts, i == i[-1]))(idx)
    if labels is not None:
        from ._dynamics import class_posterior

        final_class = labels[idx[:, -1]]
        P = jax.vmap(jax.vmap(lambda ui, T: class_posterior(ens, ui, T, labels=labels, n_classes=n_classes), in_axes=(0, 0)), in_axes=(0, None))(u, Ts)
        p_final = jnp.take_along_axis(P, final_class[:, None, None], axis=2)[..., 0]  # (n, S)
        commit = jax.vmap(lambda p: _settle(Ts, p >= threshold))(p_final)
    else:
        final_class = jnp.full((n,), -1, jnp.int32)
        commit = jnp.full((n,), jnp.nan, Ts.dtype)
    return CollapseMeasurement(
        T=Ts, top_weight=top_w, memorized_fraction=mem_frac, settle_T=settle,
        T_collapse=jnp.nanmedian(settle), T_top_half=_crossing(Ts, top_w, 0.5),
        T_memorized_half=_crossing(Ts, mem_frac, 0.5), commit_T=commit, final_class=final_class,
        top_weight_paths=top, memorized_paths=memorized,
    )


__all__ = ["CollapseMeasurement", "SpeciationPrediction", "measure_collapse", "nearest_points", "speciation_time"]
