"""What a sampler integrates: an exact ensemble, or a user's score / denoiser / noise predictor.

Every model answers one question, ``model.denoise(x, t, schedule)``: the clean-data estimate
E[y | x_t] at a state x_t of the schedule's native coordinates and its diffusion time t. The
score, the noise prediction and the VE-picture quantities follow from it (theory section 1):

    score(x, t) = (theta D - x)/s^2,   eps(x, t) = (x - theta D)/s,   u = x/theta, T = (s/theta)^2.

Working with D rather than the score keeps every solver finite as s -> 0 (the score diverges
there, D does not). A user's callable is wrapped as ``Score(fn)`` (the default for a bare
callable or an equinox module), ``Denoiser(fn)`` or ``NoisePrediction(fn)``; each takes
``fn(x, t)`` with one state x of shape (d,) and the schedule's diffusion time t.
"""

from __future__ import annotations

import abc
from typing import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, RealScalarLike, Vector
from ._ensembles._base import AbstractEnsemble
from ._ensembles._diffused import Diffused
from ._schedules import AbstractSchedule
from ._validate import (
    check_finite,
    check_float32_range,
    check_positive,
    check_real,
    check_scalar,
    concrete,
    is_concrete,
)


def _check_callable(fn, owner: str) -> None:
    if not callable(fn):
        raise TypeError(f"{owner}(fn): fn must be a callable fn(x, t), got {type(fn).__name__}")


def _checked(x, t, schedule, dim: int | None = None):
    """Validate a model call: one state x (shape (d,)), a scalar time t in the schedule's domain.

    Eager calls raise; traced calls turn a non-finite x into NaN and rely on the schedule's own
    NaN for an out-of-domain t (theory section 13).
    """
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"schedule must be an AbstractSchedule (VE, VP, DDPM, OU, Cosine), got {type(schedule).__name__}")
    check_scalar("t", t, what="a scalar diffusion time")
    check_real("x", x, what="one state, a real vector")
    shape = tuple(jnp.shape(x))
    if len(shape) != 1 or (dim is not None and shape != (dim,)):
        want = f"({dim},)" if dim is not None else "(d,)"
        raise ValueError(f"x must have shape {want} (one state; use jax.vmap for batches), got shape {shape}")
    check_finite("x", x)
    tc = concrete(t)
    if tc is not None:
        schedule.temperature(t)  # raises for t outside [0, t_max]
    x = jnp.asarray(x)
    if not (is_concrete(x) and tc is not None):
        ok = jnp.all(jnp.isfinite(x)) & jnp.isfinite(t) & (t >= schedule.t_min) & (t <= schedule.t_max)
        x = jnp.where(ok, x, jnp.nan)  # a user's fn(x, t) may ignore t: poison the state too
    return x


class AbstractModel(eqx.Module):
    """A model of the data law seen through a schedule: it returns E[y | x_t]."""

    @abc.abstractmethod
    def denoise(self, x: Vector, t: RealScalarLike, schedule: AbstractSchedule) -> Vector:
        """The clean-data estimate E[y | x_t] at state x (native coordinates) and time t.

        Under jit: an out-of-domain t or a non-finite x gives NaN.
        """

    @property
    def dim(self) -> int | None:
        """The state dimension if the model knows it (exact ensembles), else None."""
        return None

    def score(self, x: Vector, t: RealScalarLike, schedule: AbstractSchedule) -> Vector:
        """grad_x log p_t(x) = (theta D - x)/s^2.

        Under jit: an out-of-domain t or a non-finite x gives NaN.
        """
        x = _checked(x, t, schedule, self.dim)
        theta, s = schedule.signal_scale(t), schedule.noise_scale(t)
        return (theta * self.denoise(x, t, schedule) - x) / s**2


class Exact(AbstractModel):
    """The exact posterior mean of an ensemble: D = m_T(x/theta) (theory sections 1-2).

    Under jit: an out-of-domain t or a non-finite x gives NaN (theory section 13).
    """

    ensemble: AbstractEnsemble

    @property
    def dim(self) -> int:
        return self.ensemble.dim

    def denoise(self, x, t, schedule):
        x = _checked(x, t, schedule, self.dim)
        theta = schedule.signal_scale(t)
        return self.ensemble.denoiser(x / theta, schedule.temperature(t))


class Score(AbstractModel):
    """A score model ``fn(x, t) -> grad_x log p_t(x)`` (e.g. a trained equinox network).

    Under jit: an out-of-domain t or a non-finite x gives NaN (theory section 13).
    """

    fn: Callable

    def __check_init__(self):
        _check_callable(self.fn, type(self).__name__)

    def denoise(self, x, t, schedule):
        x = _checked(x, t, schedule)
        theta, s = schedule.signal_scale(t), schedule.noise_scale(t)
        return (x + s**2 * self.fn(x, t)) / theta

    def score(self, x, t, schedule):
        x = _checked(x, t, schedule)
        return self.fn(x, t)


class Denoiser(AbstractModel):
    """A denoiser ``fn(x, t) -> E[y | x_t]`` (the x0-prediction parametrisation).

    Under jit: an out-of-domain t or a non-finite x gives NaN (theory section 13).
    """

    fn: Callable

    def __check_init__(self):
        _check_callable(self.fn, type(self).__name__)

    def denoise(self, x, t, schedule):
        x = _checked(x, t, schedule)
        return self.fn(x, t)


class NoisePrediction(AbstractModel):
    """A noise predictor ``fn(x, t) -> E[z | x_t]`` (the epsilon parametrisation of DDPM).

    Under jit: an out-of-domain t or a non-finite x gives NaN (theory section 13).
    """

    fn: Callable

    def __check_init__(self):
        _check_callable(self.fn, type(self).__name__)

    def denoise(self, x, t, schedule):
        x = _checked(x, t, schedule)
        theta, s = schedule.signal_scale(t), schedule.noise_scale(t)
        return (x - s * self.fn(x, t)) / theta


class Rescaled(AbstractModel):
    """A model of data y seen in affinely mapped units y' = a y + b (a > 0, theory section 1).

    A network trained on raw data and analysed in [-1, 1] units (or the reverse) is the same
    denoiser after the change of units: the VE state maps as u' = a u + b and the temperature as
    T' = a^2 T, so D'(u', T') = a D((u' - b)/a, T'/a^2) + b.

    **Arguments:** ``model`` (any sampler model of the raw data), ``a`` (> 0), ``b`` (scalar or (d,)).

    Under jit: an out-of-domain t or a non-finite x gives NaN (theory section 13).
    """

    model: AbstractModel
    a: float
    b: Array

    def __init__(self, model, a, b=0.0):
        check_scalar("a", a, what="a scale factor a > 0")
        check_positive("a", a)
        check_float32_range("a", a)
        check_real("b", b, what="an offset (a scalar or a (d,) vector)")
        if np.ndim(b) > 1 or np.size(b) == 0:
            raise ValueError(f"b must be a scalar or a (d,) vector, got shape {np.shape(b)}")
        check_finite("b", b)
        check_float32_range("b", b)
        self.model = as_model(model)
        self.a = float(a)
        self.b = jnp.asarray(b, jnp.float32)

    def denoise(self, x, t, schedule):
        x = _checked(x, t, schedule)
        theta, T = schedule.signal_scale(t), schedule.temperature(t)
        u = (x / theta - self.b) / self.a
        return self.a * denoise_ve(self.model, u, T / self.a**2, schedule) + self.b


def as_model(model, schedule: AbstractSchedule | None = None) -> AbstractModel:
    """Wrap ``model`` as an AbstractModel: ensembles exactly, bare callables as scores.

    A ``Diffused(ensemble, schedule')`` is accepted when schedule' is the sampler's schedule (a
    clear error otherwise: its times would mean something else).
    """
    if isinstance(model, AbstractModel):
        return model
    if isinstance(model, AbstractEnsemble):
        return Exact(model)
    if isinstance(model, Diffused):
        if schedule is not None and not _same_schedule(model.schedule, schedule):
            raise ValueError(
                "model is a Diffused ensemble with a different schedule than the one passed to "
                "the sampler; pass the bare ensemble or the same schedule"
            )
        return Exact(model.ensemble)
    if callable(model):
        return Score(model)
    raise TypeError(
        "model must be an ensemble, a Score/Denoiser/NoisePrediction wrapper, or a callable "
        f"fn(x, t) returning the score; got {type(model).__name__}"
    )


def _same_schedule(a, b) -> bool:
    if type(a) is not type(b):
        return False
    try:
        return bool(eqx.tree_equal(a, b))
    except Exception:  # traced leaves: cannot compare now
        return True


def denoise_ve(model: AbstractModel, u: Vector, T: RealScalarLike, schedule: AbstractSchedule) -> Array:
    """D at a VE-picture state u and temperature T, for any schedule (t = time_at_temperature)."""
    if isinstance(model, Exact):  # an exact law needs no schedule time: any T > 0, even past T(t_max)
        return model.ensemble.denoiser(u, T)
    t = schedule.time_at_temperature(T)
    return model.denoise(schedule.signal_scale(t) * u, t, schedule)


__all__ = ["AbstractModel", "Denoiser", "Exact", "NoisePrediction", "Rescaled", "Score", "as_model", "denoise_ve"]
