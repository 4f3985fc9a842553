"""The "geometry" part of ``thermodiff analyze``: effective dimension against T (theory section 12).

The exact empirical score's Jacobian spectrum, -T grad s = I - Cov[y|x]/T, at noisy states
x = y + sqrt(T) z of the training points: its number of eigenvalues below 1/2 is the number of
directions along which the model still spreads probability (tangent dimensions). Beside it the
Gaussian approximation with the data's covariance spectrum lambda_i, whose count is
#{lambda_i > T}. Well above the collapse temperature the leading eigenvalues follow the Gaussian
ones but the count does not (sampling spreads the spectrum, theory 12); below the collapse the
empirical count falls to 0 (the posterior sits on one training point: geometric memorization).
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5
DENSE_MAX_D = 256  # dense spectra up to this d; above it the K_SMALLEST smallest by Lanczos
K_SMALLEST = 48
# the sweep's flop budget: it runs on fewer states when it would exceed it, and is skipped (with a
# note) when even 4 states do not fit
_MAX_FLOP = 2e11


def _gaussian_dimension(spec: dict, d: int, Ts: np.ndarray) -> np.ndarray:
    """#{lambda_i > T} of the data's covariance spectrum (``full_spectrum``)."""
    from ._analyze import full_spectrum

    lam = full_spectrum(spec, d)
    return np.sum(lam[None, :] > Ts[:, None], axis=1).astype(float)


def _zero_crossing(Ts: np.ndarray, dims: np.ndarray, level: float = 0.5) -> float | None:
    """The T below which the mean dimension stays < level (the first crossing coming up from the
    cold end), interpolated in log T; None without a crossing on the grid."""
    order = np.argsort(Ts)
    T, y = Ts[order], dims[order]
    above = np.nonzero(y >= level)[0]
    if above.size == 0:  # below the level on the whole grid: no crossing to report
        return None
    i = above[0]
    if i == 0:
        return None
    f = (level - y[i - 1]) / (y[i] - y[i - 1])
    return float(np.exp(np.log(T[i - 1]) + f * (np.log(T[i]) - np.log(T[i - 1]))))


def _plan(n: int, d: int, n_T: int, n_states: int) -> tuple[int, int | None, float]:
    """(states, k, flops per state): dense spectra (k None) up to d = DENSE_MAX_D, above it the
    K_SMALLEST smallest eigenvalues by JVP-Lanczos; as many states as the flop budget allows."""
    if d <= DENSE_MAX_D:
        k, per_state = None, 2.0 * n * d * d * n_T  # the closed-form covariance (eigh is smaller)
    else:
        k = K_SMALLEST
        per_state = 4.0 * n * d * max(2 * k + 32, 3 * k) * n_T  # a JVP = two GEMVs per Krylov step
    return int(min(n_states, max(0, _MAX_FLOP // per_state))), k, per_state


def effective_dimension_section(data, spec: dict, T_hi: float, T_lo: float, key, quick: bool) -> dict:
    """Effective dimension of the exact empirical score on a log grid from T_hi down to T_lo."""
    from ._geometry_sweep import spectrum_sweep

    n, d = data.X.shape
    n_T = 12 if quick else 24
    n_states, k, per_state = _plan(n, d, n_T, 8 if quick else 32)
    Ts = np.geomspace(T_hi, T_lo, n_T)
    gauss = _gaussian_dimension(spec, d, Ts)
    how = "dense spectra" if k is None else f"the {k} smallest eigenvalues by JVP-Lanczos"
    out = dict(T=Ts.tolist(), threshold=THRESHOLD, gaussian=gauss.tolist(), n_states=n_states, method=how,
               formula=("number of eigenvalues of -T grad s = I - Cov[y|x]/T below 1/2, exact empirical score, "
                        "mean over states x = y + sqrt(T) z of training points y (theory 12); Gaussian "
                        "approximation: #{lambda_i > T} of the data's covariance spectrum"))
    if n_states < 4:
        out.update(empirical=None, empirical_stderr=None, T_zero=None,
                   note=f"not computed: {how} at 4 states would take {per_state * 4:.2g} flops")
        return out
    sweep = spectrum_sweep(data.ens, Ts, data=np.asarray(data.X), key=key, n_states=n_states, threshold=THRESHOLD,
                           k=k, method="dense" if k is None else "lanczos", which="smallest")
    dims = np.asarray(sweep.effective_dimension, np.float64)
    capped = k is not None and bool(np.any(np.asarray(sweep.eigenvalues)[..., -1] < THRESHOLD))
    out.update(empirical=dims.tolist(), empirical_stderr=np.asarray(sweep.effective_dimension_stderr).tolist(),
               T_zero=_zero_crossing(Ts, dims),
               note=(f"a lower bound where all {k} computed eigenvalues lie below 1/2" if capped else None))
    return out


__all__ = ["effective_dimension_section"]
