"""Approximations beside the exact empirical score, and their measured error (theory section 14).

Two cheap stand-ins for the exact denoiser m_T(x) = E[y | x] of a dataset:

- the **k-NN** denoiser (``KNearestDataset``, Niedoba et al. 2024): the posterior softmax kept
  on the k largest logits; exact deep in the memorised phase, wrong above speciation, where the
  posterior spreads over many points;
- the **Gaussian** denoiser (``gaussian_approximation``): the Gaussian with the data's mean mu and
  covariance Sigma, m = mu + Sigma (Sigma + T I)^{-1} (x - mu); right at high T (the exact
  denoiser is mu + (Sigma (x - mu) - E[(y - mu)|y - mu|^2]/2)/T + O(1/T^2), so the Gaussian one
  errs by O(1/T), by O(1/T^2) for data with no third central moment), unable to memorise at low
  T (it returns about x where the exact denoiser returns the nearest point).

``approximation_error`` measures either (or any model: a trained net, another ensemble) against
an exact ensemble on the states x = y + sqrt(T) z, y ~ exact data, at each temperature, in the
conventions of theory section 10: the excess loss E(T) = E|m_approx - m|^2, the irreducible loss
I(T) = E tr Cov[y|x], and three dimensionless errors (see ``ApproximationError``).
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._diagnostics import ve_denoiser
from ._ensembles._base import AbstractEnsemble, as_float_array, ensemble_dtype
from ._ensembles._finite import FiniteDataset, _chunk_logits
from ._ensembles._knn import KNearestDataset
from ._ensembles._linear_manifold import LinearManifold
from ._schedules import AbstractSchedule
from ._validate import check_finite, check_key, check_scalar, check_size, check_temperature, concrete, is_concrete

#: Variances below this fraction of the largest are rounding: they become exact zeros (flat).
_RANK_RTOL = 1e-12


def gaussian_approximation(data) -> LinearManifold:
    """The Gaussian with the data's mean and covariance, as an exact ensemble (theory section 14).

    Its denoiser is m_T(x) = mu + Sigma (Sigma + T I)^{-1} (x - mu), the best *linear* denoiser
    of the data at every T (the Wiener filter) and the population limit of a linear network.
    Returned as a ``LinearManifold`` on the covariance eigenbasis: directions of zero variance
    (N <= d, constant pixels; eigenvalues below 1e-12 of the largest) are left off the basis and
    act as flat directions, so a rank-r covariance costs O(r d) per state.

    **Arguments:** ``data``: an (N, d) array of points (the empirical law, uniform weights), or any
    ensemble (e.g. a weighted ``FiniteDataset``): its ``mean()`` and ``covariance()`` are used.

    **Returns:** a ``LinearManifold(variances, basis, mean)`` in the data's dtype.
    Under jit: jittable (a traced dataset is decomposed with ``jnp.linalg.eigh`` and keeps every
    direction); eager calls decompose in NumPy float64 and validate eagerly.
    """
    if isinstance(data, AbstractEnsemble):
        mu, cov = data.mean(), data.covariance()
    else:
        pts = as_float_array("data", data, ndim=2)
        if pts.shape[0] < 1 or pts.shape[1] < 1:
            raise ValueError(f"data must be an (N, d) array with N >= 1 and d >= 1, got shape {pts.shape}")
        check_finite("data", pts)
        mu = jnp.mean(pts, axis=0)
        c = pts - mu[None, :]
        cov = c.T @ c / pts.shape[0]
    dtype = mu.dtype
    if not (is_concrete(mu) and is_concrete(cov)):
        lam, U = jnp.linalg.eigh(0.5 * (cov + cov.T))
        return LinearManifold(jnp.maximum(lam, 0.0), U, mu)
    C = np.asarray(cov, np.float64)
    lam, U = np.linalg.eigh(0.5 * (C + C.T))
    lam, U = lam[::-1], U[:, ::-1]  # descending
    keep = lam > _RANK_RTOL * max(lam[0], 0.0)
    keep[0] = True  # at least one direction (variance 0 for a single point)
    lam = np.where(keep, np.maximum(lam, 0.0), 0.0)[keep]
    return LinearManifold(jnp.asarray(lam, dtype), jnp.asarray(U[:, keep], dtype), mu)


@dataclasses.dataclass(frozen=True, eq=False)
class ApproximationError:
    """What ``approximation_error`` returns: an approximate denoiser's error per temperature.

    - ``temperatures`` (K,), ascending; ``n_states``; ``tolerance`` (of ``dropped_fraction``);
      ``data_variance``: tr Cov of the exact data (the unit of ``rms``).
    - ``columns``: name -> (K,) values, ``stderr``: name -> (K,) standard errors over states:
      * ``excess``: E|m_approx(x) - m(x)|^2, the excess denoising loss of theory section 10;
      * ``irreducible``: E tr Cov[y|x], the exact denoising loss (no denoiser does better);
      * ``relative_loss``: excess/irreducible, the fractional rise of the denoising loss that the
        approximation costs (1e-2: a 1 % worse loss); blows up deep in the memorised phase for an
        approximation that cannot memorise (the irreducible loss vanishes there);
      * ``relative_score``: excess / E|x - m(x)|^2 = E|s_approx - s|^2 / E|s|^2, the relative
        squared error of the score, i.e. of the sampler's drift (1: as wrong as no score at all);
      * ``rms``: sqrt(excess / tr Cov_data), the RMS denoiser error in units of the data's spread;
      * ``dropped_mean``, ``dropped_max``: the exact posterior mass a ``KNearestDataset`` drops
        (mean and largest over states); ``dropped_fraction``: the fraction of states where it
        exceeds ``tolerance``. NaN for other approximations.
    - Ratios have delta-method standard errors from the same states.

    ``table()`` gives one JSON-able dict per temperature, ``crossings(level)`` the temperatures
    where a column crosses a level, ``str()`` a readable table.
    Under jit: not jittable (host-side NumPy result).
    """

    temperatures: np.ndarray
    columns: dict
    stderr: dict
    n_states: int
    tolerance: float
    data_variance: float

    def table(self) -> list[dict]:
        """One dict per temperature: T and every column with its ``_stderr`` (NaN becomes None)."""
        out = lambda v: float(v) if np.isfinite(v) else None
        rows = []
        for i, T in enumerate(self.temperatures):
            row = dict(T=float(T))
            for name, v in self.columns.items():
                row[name], row[name + "_stderr"] = out(v[i]), out(self.stderr[name][i])
            rows.append(row)
        return rows

    def as_dict(self) -> dict:
        """The whole result as JSON-able Python values."""
        return dict(n_states=self.n_states, tolerance=self.tolerance, data_variance=self.data_variance,
                    rows=self.table())

    def crossings(self, level: float, column: str = "relative_loss") -> list[float]:
        """Temperatures where ``column`` crosses ``level`` (log-log interpolation between grid points).

        **Arguments:** ``level`` > 0; ``column``: a column name (default ``relative_loss``).

        **Returns:** the crossing temperatures, ascending (empty if the curve stays on one side).
        Under jit: not jittable (host-side).
        """
        check_scalar("level", level, what="a level > 0")
        if not (math.isfinite(level) and level > 0):
            raise ValueError(f"level must be finite and > 0, got {level!r}")
        if column not in self.columns:
            raise ValueError(f"column must be one of {', '.join(self.columns)}, got {column!r}")
        lv = np.log(np.maximum(np.asarray(self.columns[column], np.float64), 1e-300)) - math.log(level)
        lT = np.log(self.temperatures)
        out = []
        for i in range(lv.size - 1):
            a, b = lv[i], lv[i + 1]
            if np.isfinite(a) and np.isfinite(b) and (a > 0) != (b > 0):
                out.append(float(np.exp(lT[i] + (lT[i + 1] - lT[i]) * a / (a - b))))
        return out

    def __str__(self) -> str:
        cols = ["excess", "relative_loss", "relative_score", "rms", "dropped_fraction"]
        lines = ["T          " + "  ".join(f"{c:>16s}" for c in cols)]
        for i, T in enumerate(self.temperatures):
            lines.append(f"{T:<10.4g} " + "  ".join(f"{self.columns[c][i]:16.4g}" for c in cols))
        return "\n".join(lines)


def _moments(ens, x, T):
    """(m_T(x), tr Cov[y|x]) of the exact ensemble, the trace accurate to rounding at every T.

    For a ``FiniteDataset`` the trace is sum_n w_n |y_n - m|^2 centred at m itself: it stays
    accurate deep in the memorised phase, where it is exponentially small (``posterior_trace``
    centres at the data mean and loses it to rounding there).
    """
    if isinstance(ens, FiniteDataset) and not isinstance(ens, KNearestDataset):
        lse, m, _ = ens._first_moments(x, T, False)

        def second(pts, logw):
            w = jnp.exp(_chunk_logits(pts, logw, x, T)[0] - lse)
            c = pts - m[None, :]
            return w @ jnp.sum(c * c, axis=1)

        return m, ens._map_reduce(second, jnp.zeros((), m.dtype))
    m = ens.denoiser(x, T)
    if isinstance(ens, FiniteDataset):
        return m, ens.posterior_trace(x, T)
    return m, jnp.trace(ens.posterior_cov(x, T))


@eqx.filter_jit
def _per_state(f, exact, knn, T, key, n, batch):
    """Per-state (|m_a - m|^2, tr Cov[y|x], |x - m|^2, dropped mass or NaN), y ~ exact, x = y + sqrt(T) z."""
    ky, kz = jax.random.split(key)
    y = exact.sample(ky, n)
    x = y + jnp.sqrt(T) * jax.random.normal(kz, y.shape, y.dtype)

    def one(xi):
        m, tr = _moments(exact, xi, T)
        if knn is not None:  # the k-NN denoiser and its dropped mass from one pass
            ma, dropped = knn._denoise_and_drop(*knn._check(xi, T))
        else:
            ma, dropped = f(xi, T), jnp.asarray(jnp.nan, m.dtype)
        return jnp.sum((ma - m) ** 2), tr, jnp.sum((xi - m) ** 2), dropped

    return jax.lax.map(one, x, batch_size=min(batch, n))


def _ratio(a, b):
    """mean(a)/mean(b) and its delta-method standard error from paired samples."""
    ma, mb = a.mean(), b.mean()
    if not mb > 0:  # no exact posterior spread (a point mass): only a zero error is relative-zero
        return (0.0, 0.0) if ma == 0 else (np.inf, np.nan)
    r = ma / mb
    cov = np.cov(np.stack([a, b]))
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (a.size * mb * mb)
    return r, math.sqrt(max(var, 0.0))


def approximation_error(approx, exact: AbstractEnsemble, temperatures, *, key, n_states: int = 1024,
                        schedule: AbstractSchedule | None = None, tolerance: float = 1e-6,
                        batch_size: int = 256) -> ApproximationError:
    """The measured error of an approximate denoiser against an exact ensemble (theory section 14).

    At each T, on ``n_states`` states x = y + sqrt(T) z (y drawn from ``exact``, z ~ N(0, I); the
    same ``key`` gives the same states for every ``approx``, so approximations compare with common
    random numbers), the excess loss E|m_approx - m|^2 against the exact denoiser m, the
    irreducible loss E tr Cov[y|x] (theory section 10) and the ratios of ``ApproximationError``.

    **Arguments:**
    - ``approx``: the approximation: a ``KNearestDataset``, ``gaussian_approximation(data)``, any
      ensemble, a ``Preconditioned`` net, or any sampler model (evaluated at the ``schedule`` time
      of T, default VP).
    - ``exact``: the exact ensemble (usually the ``FiniteDataset`` of the same data).
    - ``temperatures``: 1-D (or scalar) temperatures > 0 (VE-equivalent noise variances).
    - ``key``: PRNG key; ``n_states``: states per temperature, in [2, 10^8].
    - ``schedule``: see ``approx``; ``tolerance``: the dropped-mass level counted by
      ``dropped_fraction``, in (0, 1); ``batch_size``: states evaluated at once (memory only).

    **Returns:** an ``ApproximationError`` (temperatures ascending).
    Under jit: not jittable (host-side driver; one compiled program per call); validates eagerly.
    """
    check_key("key", key)
    if not isinstance(exact, AbstractEnsemble):
        raise TypeError(f"exact must be an ensemble (e.g. td.FiniteDataset(points)), got {type(exact).__name__}")
    dim = getattr(approx, "dim", None)
    if isinstance(dim, int) and dim != exact.dim:
        raise ValueError(f"approx has dimension {dim} but exact has dimension {exact.dim}; they must match")
    check_temperature(temperatures, "temperatures")
    if np.ndim(temperatures) > 1:
        raise ValueError(f"temperatures must be a scalar or a 1-D array, got shape {np.shape(temperatures)}")
    Ts = np.sort(np.asarray(concrete(temperatures), np.float64).reshape(-1))
    if Ts.size < 1:
        raise ValueError("temperatures must hold at least one temperature > 0, got an empty array")
    n_states = check_size("n_states", n_states, 2, 10**8)
    batch_size = check_size("batch_size", batch_size)
    check_scalar("tolerance", tolerance, what="a dropped-mass level in (0, 1)")
    if not 0 < float(tolerance) < 1:
        raise ValueError(f"tolerance must lie in (0, 1), got {tolerance!r}")
    if schedule is not None and not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"schedule must be None or an AbstractSchedule (VE, VP, OU, ...), got {type(schedule).__name__}")
    try:
        f = ve_denoiser(approx, schedule)
    except TypeError as err:  # as_model names its argument "model"
        msg = str(err).replace("model must", "approx must", 1)
        raise TypeError(msg if msg.startswith("approx") else f"approx: {msg}") from None
    knn = approx if isinstance(approx, KNearestDataset) else None
    dtype = ensemble_dtype(exact)
    var_data = float(jnp.trace(exact.covariance()))
    names = ("excess", "irreducible", "relative_loss", "relative_score", "rms", "dropped_mean",
             "dropped_max", "dropped_fraction")
    cols = {k: np.full(Ts.size, np.nan) for k in names}
    errs = {k: np.full(Ts.size, np.nan) for k in names}
    for i, T in enumerate(Ts):
        out = _per_state(f, exact, knn, jnp.asarray(T, dtype), jax.random.fold_in(key, i), n_states, batch_size)
        e, tr, s, dropped = (np.asarray(v, np.float64) for v in out)
        for name, v in (("excess", e), ("irreducible", tr)):
            cols[name][i], errs[name][i] = v.mean(), v.std() / math.sqrt(n_states)
        cols["relative_loss"][i], errs["relative_loss"][i] = _ratio(e, tr)
        cols["relative_score"][i], errs["relative_score"][i] = _ratio(e, s)
        if var_data > 0:
            rms = math.sqrt(e.mean() / var_data)
            cols["rms"][i] = rms
            errs["rms"][i] = errs["excess"][i] / (2 * rms * var_data) if rms > 0 else 0.0
        if knn is not None:
            p = float(np.mean(dropped > tolerance))
            cols["dropped_mean"][i], errs["dropped_mean"][i] = dropped.mean(), dropped.std() / math.sqrt(n_states)
            cols["dropped_max"][i] = dropped.max()
            cols["dropped_fraction"][i], errs["dropped_fraction"][i] = p, math.sqrt(p * (1 - p) / n_states)
    return ApproximationError(temperatures=Ts, columns=cols, stderr=errs, n_states=n_states,
                              tolerance=float(tolerance), data_variance=var_data)


__all__ = ["ApproximationError", "approximation_error", "gaussian_approximation"]
