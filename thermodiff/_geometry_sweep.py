"""Spectra over temperatures and states: the geometric phases of a data law or a model (theory 12).

``spectrum_sweep`` takes the score-Jacobian spectra of ``score_jacobian_spectrum`` at states
x = y + sqrt(T) z drawn from p_T over a temperature grid, all in one compiled program, and
derives the effective dimension and the spectral gaps at each T; ``freeze_temperatures`` reads
off where each direction and each block of directions opens, and ``compare_spectra`` puts
several models (a trained net, the exact empirical and population laws) on the same states.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Key
from ._ensembles._base import AbstractEnsemble
from ._geometry import _CLIP, _check_options, _check_threshold, _resolve, _spectral_gaps, _spectrum
from ._models import Exact
from ._schedules import AbstractSchedule
from ._validate import check_finite, check_float32_range, check_int, check_real, check_scalar

# ============================================================================ sweeps
class SpectrumSweep(eqx.Module):
    """Score-Jacobian spectra over a temperature grid and states drawn from p_T (theory 12).

    - ``temperatures``: (K,) the VE temperatures T.
    - ``eigenvalues``: (K, S, k) spectra (ascending) at the S states of each temperature.
    - ``mean_eigenvalues``: (K, k) their mean over states.
    - ``effective_dimension``: (K,) mean over states of #{eigenvalues < threshold};
      ``effective_dimension_stderr``: (K,) its standard error (0 for S = 1).
    - ``threshold``: the threshold used (default 1/2).
    - ``gap_sizes``, ``gap_index``: (K, n_gaps) the largest logit gaps of the mean spectrum and the
      number of eigenvalues below each (``spectral_gaps``).
    - ``asymmetry``: (K,) mean relative antisymmetric part (0 for exact ensembles).
    - ``max_residual``: (K,) largest Lanczos residual (0 for dense spectra).
    - ``method``, ``which``: how the spectra were computed, which end of them.

    Under jit: a host-side result (NumPy arrays), not returned from jitted code.
    """

    temperatures: np.ndarray
    eigenvalues: np.ndarray
    mean_eigenvalues: np.ndarray
    effective_dimension: np.ndarray
    effective_dimension_stderr: np.ndarray
    threshold: float = eqx.field(static=True)
    gap_sizes: np.ndarray
    gap_index: np.ndarray
    asymmetry: np.ndarray
    max_residual: np.ndarray
    method: str = eqx.field(static=True)
    which: str = eqx.field(static=True)


@eqx.filter_jit
def _sweep_impl(kind, model, schedule, Ts, Y, Z, keys, k, which, method, m):
    """All (T, state) spectra in one program: lax.map over T, vmap over the states."""

    def at_T(T):
        X = Y + jnp.sqrt(T) * Z
        arg = T
        if kind in ("native", "native-exact"):
            arg = schedule.time_at_temperature(T)
            X = schedule.signal_scale(arg) * X
        one = lambda x, kk: _spectrum(kind, model, schedule, x, arg, k, which, method, m, False, kk)  # noqa: E731
        return jax.vmap(one)(X, keys)

    return jax.lax.map(at_T, Ts)


def _clean_states(kind, model, data, n_states, key, d):
    """(Y, Z): n_states clean points from ``data`` and their fixed noise directions."""
    k1, k2 = jax.random.split(key)
    if data is None:
        if kind not in ("ensemble", "native-exact"):
            raise ValueError("data is needed for a network or a user model: pass data=(N, d) points or an ensemble")
        data = model
    if isinstance(data, Exact):
        data = data.ensemble
    if isinstance(data, AbstractEnsemble):
        if data.dim != d:
            raise ValueError(f"data must be a {d}-dimensional ensemble to match the model, got dim {data.dim}")
        Y = data.sample(k1, n_states)
    else:
        check_real("data", data, what="clean points (N, d) or an ensemble")
        Y = jnp.asarray(data)
        if Y.ndim != 2 or Y.shape[0] < 1 or Y.shape[1] != d:
            raise ValueError(f"data must have shape (N, {d}) with N >= 1 (or be an ensemble), got shape {Y.shape}")
        check_finite("data", Y)
        if not jnp.issubdtype(Y.dtype, jnp.floating):
            Y = Y.astype(jnp.result_type(float))
        Y = Y[jax.random.choice(k1, Y.shape[0], (n_states,), replace=Y.shape[0] < n_states)]
    return Y, jax.random.normal(k2, Y.shape, Y.dtype)


def spectrum_sweep(model, temperatures, *, data=None, key: Key | None = None, n_states: int = 16,
                   schedule: AbstractSchedule | None = None, k: int | None = None, which: str = "smallest",
                   method: str = "auto", krylov_dim: int | None = None, threshold: float = 0.5,
                   n_gaps: int | None = None) -> SpectrumSweep:
    """Score-Jacobian spectra over temperatures and states x ~ p_T: the geometric phases (theory 12).

    States: n_states clean points y (drawn from ``data``: an ensemble's ``sample``, or rows of an
    (N, d) array without replacement when N >= n_states) and fixed noise directions z; at each T
    the state is x = y + sqrt(T) z (common random numbers: the curves are smooth in T). With
    ``schedule=`` the spectra are taken in its native coordinates, at t = t(T) and x_t = theta x
    (the same numbers to rounding). All spectra come from one compiled program (``lax.map`` over
    T, ``vmap`` over states).

    **Arguments:**
    - ``model``: as for ``score_jacobian_spectrum``.
    - ``temperatures``: 1-D array of VE temperatures > 0.
    - ``data``: clean points (N, d) or an ensemble to draw them from (default: the model itself,
      when it is an ensemble; required for networks).
    - ``key``: PRNG key (default ``jax.random.key(0)``); ``n_states``: states per temperature.
    - ``schedule``, ``k``, ``which``, ``method``, ``krylov_dim``: as for ``score_jacobian_spectrum``.
    - ``threshold``: of the effective dimension, in (0, 1); ``n_gaps``: gaps reported per T, in
      [1, max(1, k - 1)] (default: 2, or 1 when the spectrum has fewer than 3 eigenvalues).

    **Returns:** a ``SpectrumSweep`` (NumPy arrays). ``freeze_temperatures`` reads it.
    Under jit: not jittable (host-side driver); validates eagerly.
    """
    kind, model, schedule = _resolve(model, schedule)
    Ts = np.asarray(temperatures, dtype=np.float64) if not isinstance(temperatures, jax.core.Tracer) else None
    if Ts is None or Ts.ndim != 1 or Ts.size < 1:
        raise ValueError("temperatures must be a concrete non-empty 1-D array of temperatures > 0")
    if not (np.all(np.isfinite(Ts)) and np.all(Ts > 0)):
        raise ValueError("temperatures must be finite and > 0 (the VE-equivalent noise variance)")
    check_float32_range("temperatures", Ts)
    if schedule is not None:
        schedule._time_at(Ts, "temperatures")  # raises for temperatures the schedule does not reach
    n_states = check_int("n_states", n_states, 1, 2**20)
    threshold = _check_threshold(threshold)
    d = getattr(model, "dim", None)
    if not isinstance(d, (int, np.integer)):
        if data is None or isinstance(data, AbstractEnsemble):
            d = getattr(data, "dim", None)
        else:
            d = int(np.shape(data)[-1]) if np.ndim(data) == 2 else None
        if d is None:
            raise ValueError("data must be (N, d) points or an ensemble to fix the dimension d of a user model")
    k, which, method, m, key = _check_options(int(d), k, which, method, krylov_dim, False, key)
    top = max(1, (k or d) - 1)
    n_gaps = min(2, top) if n_gaps is None else check_int("n_gaps", n_gaps, 1, top)
    k_states, k_lanczos = jax.random.split(key)
    Y, Z = _clean_states(kind, model, data, n_states, k_states, int(d))
    keys = jax.random.split(k_lanczos, n_states)
    out = _sweep_impl(kind, model, schedule, jnp.asarray(Ts, Y.dtype), Y, Z, keys, k, which, method, m)
    lam = np.asarray(out.eigenvalues, np.float64)
    dims = np.sum(lam < threshold, axis=-1)
    se = dims.std(axis=1, ddof=1) / np.sqrt(n_states) if n_states > 1 else np.zeros(len(Ts))
    mean = lam.mean(axis=1)
    gaps = _spectral_gaps(mean, n_gaps, "logit") if mean.shape[-1] >= 2 else None
    return SpectrumSweep(
        temperatures=Ts, eigenvalues=lam, mean_eigenvalues=mean, effective_dimension=dims.mean(axis=1),
        effective_dimension_stderr=se, threshold=threshold,
        gap_sizes=np.asarray(gaps.sizes) if gaps is not None else np.zeros((len(Ts), 0)),
        gap_index=np.asarray(gaps.index) if gaps is not None else np.zeros((len(Ts), 0), int),
        asymmetry=np.asarray(out.asymmetry, np.float64).mean(axis=1),
        max_residual=np.asarray(out.residuals, np.float64).max(axis=(1, 2)), method=out.method, which=which,
    )


class Freezing(eqx.Module):
    """Temperatures at which directions open (their eigenvalue crosses the threshold; theory 12).

    - ``temperatures``: (k,) per eigenvalue index i of the sweep, the highest T at which the mean
      i-th eigenvalue crosses the threshold (below it at lower T); NaN if it does not on the grid.
      Gaussian data: T_i = v_i (the i-th largest variance).
    - ``block_temperatures``: (B,) one per block of directions opening together (descending T;
      the geometric mean of the block), ``block_sizes``: (B,) their numbers of directions. The
      first block is the first spectral gap to open as T falls.
    - ``threshold``, ``ratio``: the crossing level and the factor in T that separates blocks.

    Under jit: a host-side result (NumPy arrays), not returned from jitted code.
    """

    temperatures: np.ndarray
    block_temperatures: np.ndarray
    block_sizes: np.ndarray
    threshold: float = eqx.field(static=True)
    ratio: float = eqx.field(static=True)


def _crossing(Ts, lam, thr) -> float:
    """Highest T with lam < thr just below it and lam >= thr at the next grid point, by linear
    interpolation of logit(lam) in log T (exact for Gaussian data: logit lam = log T - log v)."""
    order = np.argsort(Ts)
    Ts, lam = Ts[order], lam[order]
    idx = np.nonzero((lam[:-1] < thr) & (lam[1:] >= thr))[0]
    if idx.size == 0:
        return float("nan")
    j = idx[-1]
    z = np.log(np.clip(lam[j:j + 2], _CLIP, 1 - _CLIP)) - np.log1p(-np.clip(lam[j:j + 2], _CLIP, 1 - _CLIP))
    zt = np.log(thr) - np.log1p(-thr)
    a, b = np.log(Ts[j]), np.log(Ts[j + 1])
    frac = 0.0 if z[1] == z[0] else (zt - z[0]) / (z[1] - z[0])
    return float(np.exp(a + (b - a) * frac))


def freeze_temperatures(sweep: SpectrumSweep, *, ratio: float = 2.0) -> Freezing:
    """The temperatures at which blocks of directions open, from a ``SpectrumSweep`` (theory 12).

    Direction i (the i-th smallest eigenvalue, state-averaged) opens, or freezes into the data
    manifold, where its eigenvalue falls through the sweep's threshold as T decreases: the
    effective dimension steps up there (and down there as T rises); for Gaussian data at T = v_i
    (the interpolation, linear in logit lambda against log T, is exact for Gaussians). Not to be
    confused with the loss of dimensions below a finite dataset's collapse temperature, where
    the eigenvalues climb back to 1 (visible in ``SpectrumSweep.effective_dimension``). Directions whose opening temperatures are within a factor ``ratio``
    of their neighbour's form one block (a plateau of the effective dimension between blocks).

    **Arguments:** ``sweep``: a ``SpectrumSweep``; ``ratio``: > 1 (default 2).

    **Returns:** a ``Freezing`` (``temperatures``, ``block_temperatures``, ``block_sizes``).
    Under jit: not jittable (host-side); validates eagerly.
    """
    if not isinstance(sweep, SpectrumSweep):
        raise TypeError(f"sweep must be a SpectrumSweep (from spectrum_sweep), got {type(sweep).__name__}")
    check_scalar("ratio", ratio, what="a factor > 1")
    if not (np.isfinite(ratio) and ratio > 1):
        raise ValueError(f"ratio must be finite and > 1, got {ratio!r}")
    Ts, lam = sweep.temperatures, sweep.mean_eigenvalues
    per = np.array([_crossing(Ts, lam[:, i], sweep.threshold) for i in range(lam.shape[1])])
    fin = np.sort(per[np.isfinite(per)])[::-1]
    blocks: list[list[float]] = []
    for t in fin:
        if blocks and blocks[-1][-1] / t < ratio:
            blocks[-1].append(t)
        else:
            blocks.append([t])
    bt = np.array([float(np.exp(np.mean(np.log(b)))) for b in blocks])
    return Freezing(per, bt, np.array([len(b) for b in blocks], int), sweep.threshold, float(ratio))


def compare_spectra(models: dict, temperatures, *, data, key: Key | None = None, n_states: int = 16,
                    **options) -> dict:
    """``spectrum_sweep`` of several models at the same states (theory sections 10 and 12).

    E.g. ``{"net": trained, "empirical": td.FiniteDataset(Y), "population": law}``: a trained
    network against the exact empirical and population geometries, with identical clean points
    and noise (same ``key`` and ``data``), so their differences are the models' own.

    **Arguments:** ``models``: a non-empty dict name -> model; ``temperatures``, ``data``
    (required), ``key``, ``n_states`` and ``**options`` as for ``spectrum_sweep``.

    **Returns:** dict name -> ``SpectrumSweep``.
    Under jit: not jittable (host-side driver); validates eagerly.
    """
    if not isinstance(models, dict) or not models:
        raise TypeError(f"models must be a non-empty dict name -> model, got {type(models).__name__}")
    if data is None:
        raise ValueError("data is required: the clean points (N, d) or an ensemble the states are drawn from")
    if key is None:
        key = jax.random.key(0)
    return {name: spectrum_sweep(m, temperatures, data=data, key=key, n_states=n_states, **options)
            for name, m in models.items()}


__all__ = ["Freezing", "SpectrumSweep", "compare_spectra", "freeze_temperatures", "spectrum_sweep"]
