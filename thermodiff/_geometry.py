"""Geometric phases: score-Jacobian spectra, spectral gaps and the loss of dimensions (theory 12).

The Jacobian of the score is grad_x s_T(x) = (dm_T/dx - I)/T, m_T the denoiser (posterior mean).
Its scaled negative

    A(x, T) = -T grad_x s_T(x) = I - dm_T/dx = I - Cov[y|x]/T

is symmetric for an exact posterior (fluctuation-dissipation, theory section 2), with
eigenvalues <= 1 (Cov >= 0), in [0, 1] for log-concave data such as Gaussians; a negative
eigenvalue is a direction of negative curvature of the Landau free energy (a state between the
modes of a multimodal law, e.g. between training points). An eigenvalue near 0 is a direction
along which the posterior spreads (the score does not pull back: tangent to the data), near 1 a
direction the posterior has pinned (normal to the data, or memorized). Gaussian data of variances
v_i give T/(v_i + T): a direction "opens" (its eigenvalue falls below 1/2) at T = v_i, so as T
falls the effective dimension #{eigenvalues < 1/2} climbs one variance scale at a time, across
spectral gaps (Achilli et al. 2024; Ventura et al. 2025). A finite training set below its
collapse temperature has Cov[y|x] -> 0: every eigenvalue -> 1 and the effective dimension falls
to 0 (geometric memorization).

Coordinates. Without a schedule, x is the VE state and T the temperature. With ``schedule=``, x
is the schedule's native state x_t = theta(t) (y + sqrt(T) z) and the third argument is the
diffusion time t; the matrix is then -s(t)^2 grad_x s_t(x) with s^2 = theta^2 T the noise
variance, which equals A(x/theta, T(t)) exactly: spectra agree across VE, VP and OU at equal T.

References: B. Achilli, E. Ventura, G. Silvestri, B. Pham, G. Raya, D. Krotov, C. Lucibello,
L. Ambrogioni, "Losing dimensions: geometric memorization in generative diffusion"
(arXiv:2410.08727); E. Ventura, B. Achilli, G. Silvestri, C. Lucibello, L. Ambrogioni,
"Manifolds, random matrices and spectral gaps: the geometric phases of generative diffusion"
(arXiv:2410.05898).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Key, RealScalarLike, Vector
from ._ensembles._base import AbstractEnsemble
from ._ensembles._diffused import Diffused
from ._lanczos import lanczos
from ._models import Exact, _same_schedule, as_model
from ._schedules import AbstractSchedule
from ._validate import (
    check_finite,
    check_int,
    check_key,
    check_real,
    check_scalar,
    check_state,
    check_temperature_scalar,
    concrete,
    guard_temperature,
    is_concrete,
)

METHODS = ("auto", "dense", "lanczos")
WHICH = ("smallest", "largest")
DENSE_MAX_DIM = 1024  # method="auto": dense eigh up to this d (or whenever k is None)


class JacobianSpectrum(eqx.Module):
    """Eigenvalues of A = -T grad_x s_T(x) = I - dm_T/dx at one state (theory section 12).

    - ``eigenvalues``: (k,) ascending (all d with k None); <= 1 for exact ensembles, in [0, 1]
      for log-concave (e.g. Gaussian) data, negative between the modes of a multimodal law.
    - ``vectors``: (d, k) orthonormal eigenvectors (columns) or None.
    - ``residuals``: (k,) Ritz residuals |A v - lambda v| of the Lanczos path (an eigenvalue of A
      lies within each); 0 for the dense path.
    - ``asymmetry``: ||A - A^T||_F / (2 ||A||_F), the relative antisymmetric part (0 for exact
      ensembles, whose A is symmetric; for a network the spectrum is that of (A + A^T)/2, and the
      Lanczos path measures this ratio on its Krylov vectors).
    - ``method``: ``"dense"``, ``"closed-form"`` or ``"lanczos"``: what computed it.

    Under jit: a pytree (jit and vmap return it; ``method`` is static).
    """

    eigenvalues: Array
    vectors: Array | None
    residuals: Array
    asymmetry: Array
    method: str = eqx.field(static=True)


# ============================================================================ the operator
def _resolve(model, schedule):
    """(kind, model, schedule): kind "ensemble" (closed form, VE), "net" (a VE ``denoiser(u, T)``),
    "native-exact" (an ensemble in a schedule's coordinates) or "native" (any sampler model)."""
    if schedule is not None and not isinstance(schedule, AbstractSchedule):
        raise TypeError(
            f"schedule must be None or an AbstractSchedule (VE, VP, OU, ...), got {type(schedule).__name__}"
        )
    if isinstance(model, type):  # a class, not a model (its unbound methods would fail deep inside)
        raise TypeError(f"model must be an ensemble or model instance, got the class {model.__name__}")
    if isinstance(model, Diffused):  # its own schedule: x native, T the diffusion time
        if schedule is not None and not _same_schedule(model.schedule, schedule):
            raise ValueError("model is a Diffused ensemble with a different schedule than schedule=; pass one of them")
        return "native-exact", model.ensemble, model.schedule
    if isinstance(model, Exact):
        model = model.ensemble
    if isinstance(model, AbstractEnsemble):
        return ("native-exact" if schedule is not None else "ensemble"), model, schedule
    if schedule is None:
        if callable(getattr(model, "denoiser", None)):
            return "net", model, None
        raise TypeError(
            "model must be an ensemble (td.AbstractEnsemble or td.Diffused), a VE denoiser model with a "
            "method denoiser(u, T) (td.Preconditioned), or, with schedule=..., any sampler model "
            f"(td.Score, td.Denoiser, td.NoisePrediction); got {type(model).__name__}"
        )
    return "native", as_model(model, schedule), schedule


def _model_dim(kind, model, x) -> int:
    d = getattr(model, "dim", None)
    if isinstance(d, (int, np.integer)):
        return int(d)
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) != 1 or shape[0] < 1:
        raise ValueError(f"x must have shape (d,) (one state; use jax.vmap for batches), got shape {shape}")
    return shape[0]


def _ve_point(kind, model, schedule, x, T):
    """(u, T_ve, theta): the VE state and temperature behind (x, T) (T is t for native kinds)."""
    if kind in ("ensemble", "net"):
        return x, T, None
    theta, T_ve = schedule.signal_scale(T), schedule.temperature(T)
    return x / theta, T_ve, theta


def _denoiser_map(kind, model, schedule, x, T):
    """(f, x0) with A = I - df/dx at x0: f the denoiser in the coordinates of x (times theta)."""
    if kind == "native":
        theta = schedule.signal_scale(T)
        return (lambda z: theta * model.denoise(z, T, schedule)), x
    u, T_ve, _ = _ve_point(kind, model, schedule, x, T)
    return (lambda z: model.denoiser(z, T_ve)), u


def _dense(kind, model, schedule, x, T):
    """(A symmetrised, asymmetry, method) by the closed form (ensembles) or jacfwd (others)."""
    d = x.shape[0]
    eye = jnp.eye(d, dtype=x.dtype)
    if kind in ("ensemble", "native-exact"):
        u, T_ve, _ = _ve_point(kind, model, schedule, x, T)
        C = model.posterior_cov(u, T_ve)
        A = eye - C / T_ve
        return 0.5 * (A + A.T), jnp.zeros((), A.dtype), "closed-form"
    f, x0 = _denoiser_map(kind, model, schedule, x, T)
    A = eye - jax.jacfwd(f)(x0)
    sym, skew = 0.5 * (A + A.T), 0.5 * (A - A.T)
    asym = jnp.sqrt(jnp.sum(skew * skew) / jnp.sum(A * A))
    return sym, asym, "dense"


def _matvec(kind, model, schedule, x, T):
    """v -> ((A + A^T)/2 v, (|skew v|^2, |A v|^2)) from one linearisation of the denoiser."""
    f, x0 = _denoiser_map(kind, model, schedule, x, T)
    _, jvp = jax.linearize(f, x0)
    if kind in ("ensemble", "native-exact"):  # exact posteriors: J symmetric, JVPs only

        def mv(v):
            w = v - jvp(v)
            z = jnp.zeros((), w.dtype)
            return w, (z, z)

        return mv
    vjp = jax.linear_transpose(jvp, x0)

    def mv(v):
        jv, (jtv,) = jvp(v), vjp(v)
        skew = 0.5 * (jtv - jv)
        full = v - jv
        return v - 0.5 * (jv + jtv), (jnp.sum(skew * skew), jnp.sum(full * full))

    return mv


def _spectrum(kind, model, schedule, x, T, k, which, method, m, vectors, key) -> JacobianSpectrum:
    """The unvalidated core (jittable, vmappable over x, T and key)."""
    d = x.shape[0]
    if kind in ("ensemble", "net"):
        T = guard_temperature(T)
    # traced invalid input: NaN out, also where the spectrum does not depend on x (Gaussian data)
    ok = jnp.all(jnp.isfinite(x)) & jnp.isfinite(T)
    if kind not in ("ensemble", "net"):  # T is a diffusion time: also NaN out where T(t) is invalid
        T_ve = schedule.temperature(T)
        ok = ok & jnp.isfinite(T_ve) & (T_ve > 0)
    x = jnp.where(ok, x, jnp.nan)
    if method == "dense":
        A, asym, used = _dense(kind, model, schedule, x, T)
        lam, V = jnp.linalg.eigh(A)
        sl = slice(0, d) if k is None else (slice(0, k) if which == "smallest" else slice(d - k, d))
        out = JacobianSpectrum(lam[sl], V[:, sl] if vectors else None, jnp.zeros_like(lam[sl]), asym, used)
    else:
        mv = _matvec(kind, model, schedule, x, T)
        res = lanczos(mv, d, x.dtype, k, m, which=which, key=key, vectors=vectors)
        skew2, full2 = res.aux
        asym = jnp.sqrt(skew2 / jnp.where(full2 > 0, full2, 1.0))
        out = JacobianSpectrum(res.eigenvalues, res.vectors, res.residuals, asym, "lanczos")
    return jax.tree.map(lambda a: jnp.where(ok, a, jnp.nan), out)


_spectrum_jit = eqx.filter_jit(_spectrum)


# ============================================================================ validation
def _check_options(d, k, which, method, krylov_dim, vectors, key):
    """Validated (k, which, method, m, key) with method resolved ("dense" or "lanczos")."""
    if k is not None:
        k = check_int("k", k, 1, d)
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(vectors, (bool, np.bool_)):
        raise TypeError(f"vectors must be True or False, got {type(vectors).__name__} {vectors!r}")
    if method == "auto":
        method = "dense" if (k is None or d <= DENSE_MAX_DIM) else "lanczos"
    if method == "lanczos" and k is None:
        raise ValueError("method='lanczos' needs k, the number of eigenvalues (an integer in [1, d])")
    m = None
    if method == "lanczos":
        m = min(d, max(2 * k + 32, 3 * k)) if krylov_dim is None else check_int("krylov_dim", krylov_dim, k, d)
    elif krylov_dim is not None:
        raise ValueError(
            "krylov_dim is only used with the Lanczos path (method='lanczos', or 'auto' with k and d > 1024)"
        )
    if key is None:
        key = jax.random.key(0)
    else:
        check_key("key", key)
    return k, which, method, m, key


def _check_point(kind, model, schedule, x, T, d):
    if kind == "native":
        check_real("x", x, what="one state, a real vector")
        if tuple(np.shape(x)) != (d,):
            raise ValueError(f"x must have shape ({d},) (one state; use jax.vmap for batches), got shape {np.shape(x)}")
        check_finite("x", x)
    else:
        check_state(x, d)
    if kind in ("ensemble", "net"):
        check_temperature_scalar(T)
        return
    check_scalar("T", T, what="a scalar diffusion time t of the schedule (schedule= given)")
    schedule._check_t(T, "T")
    Tc = concrete(schedule.temperature(T)) if is_concrete(T) else None
    if Tc is not None and not Tc > 0:
        raise ValueError(
            "T (the diffusion time t, schedule= given) must give a temperature T(t) > 0, "
            f"got T({float(T)!r}) = {float(Tc)!r}"
        )


# ============================================================================ public
def score_jacobian_spectrum(model, x: Vector, T: RealScalarLike, *, schedule: AbstractSchedule | None = None,
                            k: int | None = None, which: str = "smallest", method: str = "auto",
                            vectors: bool = False, krylov_dim: int | None = None,
                            key: Key | None = None) -> JacobianSpectrum:
    """The spectrum of A = -T grad_x s_T(x) = I - Cov[y|x]/T at one state (theory section 12).

    Exact ensembles use their closed-form ``posterior_cov``; a VE denoiser model (a
    ``td.Preconditioned`` net, or any object with ``denoiser(u, T)``) its Jacobian by
    ``jax.jacfwd``, symmetrised as (A + A^T)/2 (``asymmetry`` reports the rest). With
    ``schedule=``, ``model`` is any sampler model (``td.Score``, ``td.Denoiser``, a net, an
    ensemble), ``x`` the native state x_t and ``T`` the diffusion time t: the matrix is
    -s(t)^2 grad_x s_t(x) = I - theta dD/dx, whose spectrum equals that of A(x/theta, T(t)). A
    ``td.Diffused(ensemble, schedule)`` is read the same way in its own schedule.

    Large d: ``method="lanczos"`` (the default for k given and d > 1024) finds the k extreme
    eigenvalues by Lanczos with full reorthogonalisation (``thermodiff._lanczos``) from
    ``krylov_dim`` products A v, each one JVP of the denoiser (exact ensembles) or one JVP and one
    VJP (networks, for the symmetric part): memory O(d krylov_dim), never d x d. The default
    krylov_dim = min(d, max(2k + 32, 3k)); ``residuals`` bound the error of each eigenvalue.

    **Arguments:**
    - ``model``: an ensemble, a VE denoiser model, or (with ``schedule``) any sampler model.
    - ``x``: one state (d,): the VE state, or the native x_t with ``schedule``.
    - ``T``: temperature > 0 (VE); with ``schedule``, the diffusion time t (T(t) > 0).
    - ``schedule``: optional ``td.AbstractSchedule`` (native coordinates, see above).
    - ``k``: number of eigenvalues (1..d); None: all d (dense).
    - ``which``: ``"smallest"`` (the open, tangent directions; default) or ``"largest"``.
    - ``method``: ``"auto"``, ``"dense"`` or ``"lanczos"``; ``krylov_dim``: Lanczos steps (k..d).
    - ``vectors``: also return eigenvectors; ``key``: PRNG key of the Lanczos start vector
      (default ``jax.random.key(0)``).

    **Returns:** a ``JacobianSpectrum`` (eigenvalues ascending).
    Under jit: an invalid T (or t) or a non-finite x gives NaN; options must be static.
    """
    kind, model, schedule = _resolve(model, schedule)
    d = _model_dim(kind, model, x)
    _check_point(kind, model, schedule, x, T, d)
    k, which, method, m, key = _check_options(d, k, which, method, krylov_dim, vectors, key)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    # one compiled program per (model structure, shapes, options): T is an array, not a constant
    return _spectrum_jit(kind, model, schedule, x, jnp.asarray(T), k, which, method, m, bool(vectors), key)


def effective_dimension(eigenvalues, *, threshold: float = 0.5) -> Array:
    """Number of eigenvalues of A = -T grad s below ``threshold`` (theory section 12).

    An eigenvalue below 1/2 is a direction along which the posterior variance Cov[y|x] exceeds T/2:
    the data still spread there at this noise level (a tangent direction). Gaussian data at
    threshold 1/2: #{v_i > T}. For a partial (k smallest) spectrum the count is a lower bound when
    it equals k.

    **Arguments:** ``eigenvalues``: (..., n) array, n >= 1, finite; ``threshold``: in (0, 1)
    (default 1/2).

    **Returns:** float array of shape (...) holding the counts.
    Under jit: traced eigenvalues are fine (a NaN spectrum gives NaN; eager calls refuse NaN and
    inf); threshold must be concrete.
    """
    threshold = _check_threshold(threshold)
    check_real("eigenvalues", eigenvalues, what="an array of eigenvalues")
    lam = jnp.asarray(eigenvalues)
    if lam.ndim < 1 or lam.shape[-1] < 1:
        raise ValueError(f"eigenvalues must have shape (..., n) with n >= 1, got shape {lam.shape}")
    check_finite("eigenvalues", lam)  # concrete values only: a traced NaN spectrum gives NaN below
    count = jnp.sum(lam < threshold, axis=-1).astype(jnp.result_type(float))
    return jnp.where(jnp.any(jnp.isnan(lam), axis=-1), jnp.nan, count)


def _check_threshold(threshold) -> float:
    check_scalar("threshold", threshold, what="a threshold in (0, 1)")
    t = concrete(threshold)
    if t is None:
        raise TypeError("threshold must be a concrete number in (0, 1), not a traced value")
    if not (np.isfinite(t) and 0 < t < 1):
        raise ValueError(f"threshold must lie in (0, 1), got {float(t)!r}")
    return float(t)


# ============================================================================ gaps
GAP_SCALES = ("logit", "log", "linear")
_CLIP = 1e-6  # eigenvalues are clipped to [1e-6, 1 - 1e-6] before logit/log: a variance ratio of 1e6


class SpectralGaps(eqx.Module):
    """The largest gaps of sorted spectra (see ``spectral_gaps``; theory section 12).

    - ``sizes``: (..., n_gaps) gap sizes on the chosen scale, largest first.
    - ``index``: (..., n_gaps) number of eigenvalues below each gap (the dimension it separates).
    - ``lower``, ``upper``: (..., n_gaps) the eigenvalues on either side of each gap.

    Under jit: a pytree of arrays.
    """

    sizes: Array
    index: Array
    lower: Array
    upper: Array


def _gap_transform(lam, scale):
    if scale == "linear":
        return lam
    c = jnp.clip(lam, _CLIP, 1.0 - _CLIP)
    return jnp.log(c) if scale == "log" else jnp.log(c) - jnp.log1p(-c)


def spectral_gaps(eigenvalues, *, n_gaps: int = 1, scale: str = "logit") -> SpectralGaps:
    """The ``n_gaps`` largest gaps between consecutive eigenvalues of A = -T grad s (theory 12).

    Default scale ``"logit"``: gaps in log(lambda/(1 - lambda)). For Gaussian data lambda_i =
    T/(v_i + T), so logit lambda_i = log T - log v_i: a gap of size g between two neighbours
    means a variance ratio e^g between the directions on either side, the same at every T, and the
    near-1 (pinned) and near-0 (open) ends are resolved alike. Eigenvalues are clipped to
    [1e-6, 1 - 1e-6] first (variance ratios beyond 1e6 are not resolved). ``"log"`` uses
    log lambda (same clip), ``"linear"`` lambda itself.

    **Arguments:**
    - ``eigenvalues``: (..., n) spectra, n >= 2, finite (sorted here).
    - ``n_gaps``: how many gaps (1..n-1; default 1).
    - ``scale``: ``"logit"`` (default), ``"log"`` or ``"linear"``.

    **Returns:** a ``SpectralGaps`` (``sizes``, ``index``, ``lower``, ``upper``), largest gap first.
    Under jit: jittable over the eigenvalues (eager calls refuse NaN and inf); n_gaps and scale
    must be static.
    """
    check_real("eigenvalues", eigenvalues, what="an array of eigenvalues")
    lam = jnp.asarray(eigenvalues)
    if lam.ndim < 1 or lam.shape[-1] < 2:
        raise ValueError(f"eigenvalues must have shape (..., n) with n >= 2, got shape {lam.shape}")
    check_finite("eigenvalues", lam)  # concrete values only
    n_gaps = check_int("n_gaps", n_gaps, 1, lam.shape[-1] - 1)
    if scale not in GAP_SCALES:
        raise ValueError(f"scale must be one of {GAP_SCALES}, got {scale!r}")
    return _spectral_gaps(lam, n_gaps, scale)


def _spectral_gaps(lam, n_gaps: int, scale: str) -> SpectralGaps:
    """The unvalidated core of ``spectral_gaps`` (``spectrum_sweep`` passes NaN spectra through)."""
    lam = jnp.asarray(lam)
    if not jnp.issubdtype(lam.dtype, jnp.floating):
        lam = lam.astype(jnp.result_type(float))
    lam = jnp.sort(lam, axis=-1)
    sizes, idx = jax.lax.top_k(jnp.diff(_gap_transform(lam, scale), axis=-1), n_gaps)
    return SpectralGaps(sizes, idx + 1, jnp.take_along_axis(lam, idx, -1), jnp.take_along_axis(lam, idx + 1, -1))


__all__ = [
    "JacobianSpectrum",
    "SpectralGaps",
    "effective_dimension",
    "score_jacobian_spectrum",
    "spectral_gaps",
]
