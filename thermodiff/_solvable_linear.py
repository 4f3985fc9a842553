"""The linear (Gaussian) denoiser: a trained model whose SGD dynamics are known exactly (theory 10, 11).

``LinearNet`` is one learnable d x d matrix W; with the ``"direct"`` output form of
``td.Preconditioned`` the denoiser is D(u, T) = mean + W (u - mean) at every temperature. With
v = y - mean and u = y + sqrt(T) z, the DSM objective of ``td.Trainer`` is quadratic in W:

    L(W) = [a tr((W - I) C (W - I)^T) + b tr(W W^T)] / d,   a = E[lambda(T)], b = E[lambda(T) T],

with C = E_n[v v^T] the training set's second moment about the model's mean (its covariance when
the mean is the training mean) and the expectations over the trainer's law of T. Its gradient,
2 (W M - a C)/d with M = a C + b I, is linear in W, and the minibatch gradient is unbiased; so
under plain SGD with learning rate eta the *expected* weight follows the deterministic recursion
W <- W - (2 eta/d)(W M - a C) exactly, for any batch size:

    E[W(s)] = W* + (W(0) - W*) V diag((1 - r_k)^s) V^T,   W* = a C (a C + b I)^(-1),
    r_k = (2 eta/d)(a c_k + b),

with C = V diag(c_k) V^T. Mode k (variance c_k) is learned at rate r_k ~ c_k once T << c_k:
its learning time, the step at which its error |w_k - w*_k| has fallen by 1/e, is
-1/log|1 - r_k| (gradient flow: 1/r_k), proportional to 1/variance (Wang & Pehlevan 2025).
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Key, RealScalarLike, Vector
from ._nets import Preconditioned, _int_arg
from ._validate import check_finite, check_float32_range, check_real, check_scalar

_NODES = np.polynomial.legendre.leggauss(16)  # 16-point Gauss-Legendre on [-1, 1], per panel


class LinearNet(eqx.Module):
    """The raw linear network F(v, T) = W v of the ``"direct"`` output form (module docstring).

    Wrapped as ``td.Preconditioned(net, "direct", ...)`` (``linear_model`` does it) the denoiser
    is D(u, T) = mean + W (u - mean), one matrix for every temperature (theory section 11).

    **Arguments:**
    - ``dim``: state dimension d >= 1.
    - ``weight``: the initial W, shape (d, d), finite (default 0: D starts at the mean).
    - ``key``: ignored (the initialisation is deterministic); accepted so that a checkpoint can
      rebuild the net like any other.

    Under jit: ``__call__`` is jittable; the constructor validates eagerly.
    """

    dim: int = eqx.field(static=True)
    weight: Array

    def __init__(self, dim: int, *, weight=None, key: Key | None = None):
        self.dim = _int_arg("dim", dim, 1, 2**15)
        if weight is None:
            self.weight = jnp.zeros((self.dim, self.dim), jnp.result_type(float))
            return
        check_real("weight", weight, what="a (d, d) matrix")
        w = jnp.asarray(weight, jnp.result_type(float))
        if w.shape != (self.dim, self.dim):
            raise ValueError(f"weight must have shape ({self.dim}, {self.dim}), got {w.shape}")
        check_finite("weight", w)
        self.weight = w

    def architecture(self) -> dict:
        return dict(name="LinearNet", dim=self.dim)

    def __call__(self, v: Vector, T: RealScalarLike) -> Vector:
        return self.weight @ v


def linear_model(data, *, weight=None) -> Preconditioned:
    """A linear denoiser D(u, T) = mean + W (u - mean) for the data (theory sections 10, 11).

    **Arguments:**
    - ``data``: the training set (N, d); its mean and scale set the model's ``data_mean`` and
      ``sigma_data`` (``td.Preconditioned.for_data``).
    - ``weight``: the initial W (d, d), finite (default 0).

    **Returns:** a ``td.Preconditioned`` model (``"direct"`` output form) that ``td.train`` trains.

    Under jit: not jittable (a host-side constructor); validates eagerly.
    """
    pts = _points("data", data)
    return Preconditioned.for_data(LinearNet(pts.shape[1], weight=weight), pts, "direct")


def _points(name, data) -> np.ndarray:
    check_real(name, data, what="an (N, d) array of points")
    pts = np.asarray(data, np.float64)
    if pts.ndim != 2 or pts.shape[0] < 1 or pts.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array (N >= 1, d >= 1), got shape {pts.shape}")
    check_finite(name, pts)
    check_float32_range(name, pts)  # the models compute in JAX's default precision
    return pts


# ----------------------------------------------------------------------------- the law of T
def _gauss_legendre(f, lo: float, hi: float, panels: int = 64) -> float:
    """int_lo^hi f by composite 16-point Gauss-Legendre (f acts on a NumPy vector)."""
    x, w = _NODES
    edges = np.linspace(lo, hi, panels + 1)
    half = 0.5 * np.diff(edges)[:, None]
    nodes = (0.5 * (edges[:-1] + edges[1:]))[:, None] + half * x[None, :]
    return float(np.sum(half * w[None, :] * f(nodes.ravel()).reshape(nodes.shape)))


def noise_moments(trainer, sigma_data) -> tuple[float, float]:
    """(E[lambda(T)], E[lambda(T) T]) over a trainer's law of training temperatures (theory 10).

    These two numbers are all the linear denoiser's dynamics need (module docstring). Exact up to
    quadrature (composite Gauss-Legendre, 1024 nodes) for ``UniformTime`` and ``LowDiscrepancy``
    (t uniform between the schedule times of T_min and T_max) and for ``LogNormal`` (its clipped
    tails as point masses at T_min and T_max).

    **Arguments:**
    - ``trainer``: a ``td.Trainer`` (its noise law, weighting, schedule, T_min, T_max).
    - ``sigma_data``: the model's data scale (> 0), which the weighting and ``LogNormal`` use.

    **Returns:** (a, b) as Python floats.

    Under jit: not jittable (host-side quadrature); validates eagerly.
    """
    from ._train import LogNormal, LowDiscrepancy, Trainer, UniformTime

    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainer must be a td.Trainer, got {type(trainer).__name__}")
    check_scalar("sigma_data", sigma_data, what="a scalar data scale > 0")
    sd = float(np.asarray(sigma_data))
    if not (np.isfinite(sd) and sd > 0):
        raise ValueError(f"sigma_data must be finite and > 0 (allowed range: (0, inf)), got {sd!r}")
    lo, hi, lam = trainer.T_min, trainer.T_max, trainer.weighting
    g = lambda T: np.stack([np.asarray(lam(jnp.asarray(T), sd)), np.asarray(lam(jnp.asarray(T), sd)) * T])
    if isinstance(trainer.noise, (UniformTime, LowDiscrepancy)):
        sch = trainer.schedule
        t0, t1 = float(sch.time_at_temperature(lo)), float(sch.time_at_temperature(hi))
        T_of = lambda t: np.clip(np.asarray(sch.temperature(jnp.asarray(t))), lo, hi)
        return tuple(_gauss_legendre(lambda t: g(T_of(t))[i], t0, t1) / (t1 - t0)
                     for i in (0, 1))
    if isinstance(trainer.noise, LogNormal):
        mu, s = math.log(sd / 0.5) + float(trainer.noise.p_mean), float(trainer.noise.p_std)
        xi_lo, xi_hi = (0.5 * math.log(lo) - mu) / s, (0.5 * math.log(hi) - mu) / s
        cdf = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))
        pdf = lambda x: np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
        a_lo, a_hi = max(xi_lo, -40.0), min(xi_hi, 40.0)
        out = []
        for i in (0, 1):
            f = lambda x: pdf(x) * g(np.exp(2 * (mu + s * x)))[i]
            inner = _gauss_legendre(f, a_lo, a_hi) if a_hi > a_lo else 0.0
            tails = cdf(xi_lo) * g(np.array([lo]))[i, 0] + (1 - cdf(xi_hi)) * g(np.array([hi]))[i, 0]
            out.append(tails + inner)
        return tuple(out)
    raise TypeError("trainer.noise must be UniformTime, LowDiscrepancy or LogNormal for noise_moments, "
                    f"got {type(trainer.noise).__name__}")


# ----------------------------------------------------------------------------- exact SGD
@dataclasses.dataclass
class LinearModes:
    """The exact expected SGD dynamics of a ``LinearNet`` model (module docstring; theory 11).

    - ``variances``: c_k, the eigenvalues of C (descending), shape (d,).
    - ``vectors``: the eigenvectors, columns of V (d, d).
    - ``fixed_point``: W* = a C (a C + b I)^(-1) (d, d), the minimiser of the DSM loss.
    - ``initial``: W(0) (d, d).
    - ``rates``: r_k = (2 eta/d)(a c_k + b), the per-step contraction of mode k's error.
    - ``learning_times``: -1/log|1 - r_k|, the step at which E[w_k] - w*_k has fallen by 1/e.
    - ``flow_times``: 1/r_k, the same in the gradient-flow limit (eta -> 0 at fixed eta s).
    - ``moments``: (a, b) = (E[lambda], E[lambda T]) of the trainer's law of T.

    Under jit: a host-side record of NumPy arrays (not a pytree); its methods are NumPy.
    """

    variances: np.ndarray
    vectors: np.ndarray
    fixed_point: np.ndarray
    initial: np.ndarray
    rates: np.ndarray
    learning_times: np.ndarray
    flow_times: np.ndarray
    moments: tuple

    def weight_at(self, steps) -> np.ndarray:
        """E[W(s)] for each step s (integers >= 0): shape steps.shape + (d, d).

        Under jit: not jittable (NumPy); validates eagerly.
        """
        s = np.asarray(steps)
        if not np.issubdtype(s.dtype, np.integer) or np.any(s < 0):
            raise ValueError(f"steps must be integers >= 0, got {steps!r}")
        decay = (1 - self.rates) ** s[..., None].astype(np.float64)  # (..., d)
        V = self.vectors
        delta = (self.initial - self.fixed_point) @ V  # columns in the eigenbasis
        return self.fixed_point + np.einsum("ij,...j,kj->...ik", delta, decay, V)

    def gains(self, weight) -> np.ndarray:
        """w_k = v_k^T W v_k: the gain of W along each mode, shape (d,) (or (..., d)).

        Under jit: not jittable (NumPy).
        """
        W = np.asarray(weight, np.float64)
        return np.einsum("ik,...ij,jk->...k", self.vectors, W, self.vectors)


def linear_modes(model, data, *, learning_rate, trainer) -> LinearModes:
    """The exact expected dynamics of a linear model under plain SGD (module docstring; theory 11).

    Exact for ``optax.sgd(learning_rate)`` without momentum and without gradient clipping (the
    ``trainer`` must have ``grad_clip=None``), for the raw model (``TrainResult.state.model``;
    it is ``TrainResult.model`` when ``ema_decay=0``), at any batch size: the expected weight
    E[W(s)] over the batches, temperatures and noise follows the recursion exactly.

    **Arguments:**
    - ``model``: a ``td.Preconditioned`` model with a ``LinearNet`` (``linear_model``), the
      initial point W(0).
    - ``data``: the training set (N, d) it is trained on.
    - ``learning_rate``: the SGD learning rate eta (> 0, below the stability bound
      d/(a c_max + b), else a ValueError says so).
    - ``trainer``: the ``td.Trainer`` of the run (law of T, weighting, T range).

    **Returns:** a ``LinearModes``.

    Under jit: not jittable (host-side linear algebra); validates eagerly.
    """
    if not isinstance(model, Preconditioned) or not isinstance(model.net, LinearNet):
        raise TypeError("model must be a td.Preconditioned model with a LinearNet (linear_model), "
                        f"got {type(model).__name__}")
    if model.parametrization != "direct" or np.shape(model.data_mean) != (model.dim,):
        raise ValueError("model must be one unbatched linear model with the 'direct' output form (linear_model)")
    if getattr(trainer, "grad_clip", None) is not None:
        raise ValueError(f"trainer.grad_clip must be None: clipping makes SGD nonlinear, got {trainer.grad_clip!r}")
    pts = _points("data", data)
    d = model.dim
    if pts.shape[1] != d:
        raise ValueError(f"data have dimension d = {pts.shape[1]} but the model acts on d = {d}")
    check_scalar("learning_rate", learning_rate, what="a learning rate > 0")
    eta = float(np.asarray(learning_rate))
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate!r}")
    a, b = noise_moments(trainer, model.sigma_data)
    v = pts - np.asarray(model.data_mean, np.float64)[None, :]
    c, V = np.linalg.eigh(v.T @ v / pts.shape[0])
    c, V = np.maximum(c[::-1], 0.0), V[:, ::-1]
    rates = 2 * eta / d * (a * c + b)
    if np.any(rates >= 2):
        raise ValueError(f"learning_rate = {eta!r} makes SGD diverge (rate {rates.max():.3g} >= 2); "
                         f"it must be below d/(a c_max + b) = {d / (a * c[0] + b):.6g}")
    W_star = (V * (a * c / (a * c + b))[None, :]) @ V.T
    with np.errstate(divide="ignore"):
        times = -1.0 / np.log(np.abs(1 - rates))
    return LinearModes(variances=c, vectors=V, fixed_point=W_star, initial=np.asarray(model.net.weight, np.float64),
                       rates=rates, learning_times=times, flow_times=1 / rates, moments=(a, b))


def linear_sgd_weights(model, data, steps, *, learning_rate, trainer) -> np.ndarray:
    """E[W(s)] of a linear model under plain SGD at each of ``steps`` (theory section 11).

    ``linear_modes(model, data, learning_rate=..., trainer=...).weight_at(steps)``; the arguments
    are those of ``linear_modes``, and ``steps`` integers >= 0.

    **Returns:** an array of shape steps.shape + (d, d).

    Under jit: not jittable (host-side linear algebra); validates eagerly.
    """
    return linear_modes(model, data, learning_rate=learning_rate, trainer=trainer).weight_at(steps)


__all__ = ["LinearModes", "LinearNet", "linear_model", "linear_modes", "linear_sgd_weights", "noise_moments"]
