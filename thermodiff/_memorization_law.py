"""The memorisation law tau_mem = c n^a: a least-squares fit in log-log and its extrapolation.

Bonnaire, Urfin, Biroli and Mezard (2025) find that a network trained by denoising score
matching on n points starts to memorise after a number of steps tau_mem that grows linearly in
n, while the generation time tau_gen does not depend on n (theory sections 10 and 11). Given
measured onsets at a few sizes (several seeds per size allowed), ``fit_memorization_law`` fits

    log tau_mem = log c + a log n

by (weighted) least squares, with the exponent free or fixed (a = 1 is the theory's linear law),
and ``MemorizationLaw.predict`` extrapolates to other n with a 1-sigma band propagated from the
covariance of (log c, a). Pure NumPy, host side.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._validate import check_real


def _positive_1d(name: str, value, what: str) -> np.ndarray:
    check_real(name, value, what=what)
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(f"{name} must be {what} (a non-empty 1-D array), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0 (allowed range: {name} > 0), got {arr.tolist()!r}")
    return arr


@dataclasses.dataclass(frozen=True, eq=False)
class MemorizationLaw:
    """tau_mem = c n^a fitted to measured memorisation onsets (theory sections 10 and 11).

    **Fields:**
    - ``c``, ``c_se``: the prefactor (steps at n = 1) and its standard error (delta method,
      c_se = c se(log c)).
    - ``a``, ``a_se``: the exponent and its standard error (``a_se`` = 0 when the exponent was
      fixed).
    - ``sizes``, ``tau_mem``, ``tau_mem_se``: the data fitted (``tau_mem_se`` None when not given).
    - ``cov``: the 2 x 2 covariance of (log c, a) (zero in the a row and column when fixed).
    - ``fixed``: whether the exponent was fixed; ``dof`` residual degrees of freedom;
      ``chi2``: the sum of squared (weighted) residuals in log tau.

    Standard errors are NaN when the data cannot give them (as many points as parameters and no
    ``tau_mem_se``). Under jit: not jittable (host-side NumPy result).
    """

    c: float
    c_se: float
    a: float
    a_se: float
    sizes: np.ndarray
    tau_mem: np.ndarray
    tau_mem_se: np.ndarray | None
    cov: np.ndarray
    fixed: bool
    dof: int
    chi2: float

    def predict(self, n):
        """The law and its 1-sigma band at sizes n (theory section 11).

        **Arguments:** ``n``: one size or an array of sizes, finite and > 0.

        **Returns:** ``(tau, lo, hi)``, arrays of n's shape: tau = c n^a and the band
        exp(log tau -+ s), s^2 = Var log c + 2 log n Cov(log c, a) + (log n)^2 Var a (NaN where
        the fit has no error estimate).

        Under jit: not jittable (host-side NumPy); validates eagerly.
        """
        check_real("n", n, what="a size or an array of sizes")
        arr = np.asarray(n, dtype=float)
        if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"n must be finite and > 0 (allowed range: n > 0), got {arr.tolist()!r}")
        ln = np.log(arr)
        log_tau = np.log(self.c) + self.a * ln
        var = self.cov[0, 0] + 2 * ln * self.cov[0, 1] + ln**2 * self.cov[1, 1]
        s = np.sqrt(np.maximum(var, 0.0))
        return np.exp(log_tau), np.exp(log_tau - s), np.exp(log_tau + s)

    def __str__(self) -> str:
        tail = f"a = {self.a:.3g} fixed" if self.fixed else f"a = {self.a:.2f} +- {self.a_se:.2f}"
        return f"tau_mem = {self.c:.3g} n^{self.a:.2f} ({tail}; c = {self.c:.3g} +- {self.c_se:.2g})"


def fit_memorization_law(sizes, tau_mem, *, tau_mem_se=None, exponent=None) -> MemorizationLaw:
    """Fit tau_mem = c n^a by least squares in log tau (theory sections 10 and 11).

    Minimises sum_i w_i (log tau_i - log c - a log n_i)^2 with w_i = (tau_i/se_i)^2 when
    ``tau_mem_se`` is given (the variance of log tau is (se/tau)^2) and w_i = 1 otherwise.
    Repeated sizes (several seeds per size) are separate points. Errors: with ``tau_mem_se``, the
    covariance (X^T W X)^-1 scaled up by the reduced chi^2 when it exceeds 1 (the scatter is then
    larger than the quoted errors); without, the residual variance times (X^T X)^-1.

    **Arguments:**
    - ``sizes``: training-set sizes n, 1-D, finite and > 0 (repeats allowed).
    - ``tau_mem``: the memorisation onsets (steps), same shape, finite and > 0.
    - ``tau_mem_se``: their standard errors (same shape, finite and > 0), or None.
    - ``exponent``: None (fit a; needs >= 2 distinct sizes) or a fixed exponent (e.g. 1.0, the
      linear law; then only c is fitted, from >= 1 size).

    **Returns:** a ``MemorizationLaw``.

    Under jit: not jittable (host-side NumPy); validates eagerly.
    """
    n = _positive_1d("sizes", sizes, "training-set sizes")
    tau = _positive_1d("tau_mem", tau_mem, "memorisation onsets in steps")
    if tau.shape != n.shape:
        raise ValueError(f"tau_mem must have the shape of sizes {n.shape}, got {tau.shape}")
    se = None
    if tau_mem_se is not None:
        se = _positive_1d("tau_mem_se", tau_mem_se, "standard errors of tau_mem")
        if se.shape != n.shape:
            raise ValueError(f"tau_mem_se must have the shape of sizes {n.shape}, got {se.shape}")
    if exponent is not None:
        check_real("exponent", exponent, what="a fixed exponent (a real number) or None")
        if np.ndim(exponent) != 0 or not np.isfinite(float(exponent)):
            raise ValueError(f"exponent must be a finite real number or None, got {exponent!r}")
    elif np.unique(n).size < 2:
        raise ValueError(f"sizes must hold at least 2 distinct sizes to fit the exponent, got {np.unique(n).tolist()!r}; "
                         "fix it with exponent=1.0")
    w = np.ones_like(n) if se is None else (tau / se) ** 2
    ln, lt = np.log(n), np.log(tau)
    if exponent is None:
        X = np.stack([np.ones_like(ln), ln], axis=1)
        y = lt
    else:
        X = np.ones_like(ln)[:, None]
        y = lt - float(exponent) * ln
    beta, cov_p, chi2, dof = _wls(X, y, w, weighted=se is not None)
    cov = np.zeros((2, 2))
    cov[: cov_p.shape[0], : cov_p.shape[1]] = cov_p
    log_c = beta[0]
    a = float(beta[1]) if exponent is None else float(exponent)
    c = float(np.exp(log_c))
    return MemorizationLaw(c=c, c_se=c * float(np.sqrt(cov[0, 0])), a=a, a_se=float(np.sqrt(cov[1, 1])),
                           sizes=n, tau_mem=tau, tau_mem_se=se, cov=cov, fixed=exponent is not None,
                           dof=dof, chi2=chi2)


def _wls(X, y, w, *, weighted: bool):
    """Weighted least squares: (beta, covariance of beta, chi^2, residual dof)."""
    A = X.T @ (w[:, None] * X)
    beta = np.linalg.solve(A, X.T @ (w * y))
    r = y - X @ beta
    chi2 = float(np.sum(w * r**2))
    dof = X.shape[0] - X.shape[1]
    inv = np.linalg.inv(A)
    if weighted:
        scale = max(1.0, chi2 / dof) if dof > 0 else 1.0
    else:
        scale = chi2 / dof if dof > 0 else np.nan
    return beta, inv * scale, chi2, dof


__all__ = ["MemorizationLaw", "fit_memorization_law"]
