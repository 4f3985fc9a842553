"""Random-features scores: a fixed random first layer, a trained linear readout (theory 10, 11).

``RandomFeaturesNet`` is F(x, c) = A act(Phi x / sqrt(d)) / sqrt(p) with p fixed Gaussian
features Phi (p, d) and a trainable readout A (d, p) (George, Veiga & Macris 2025). The features
are not parameters: the net stores the key that draws them (raw uint32 key data, not a float
array), so ``td.train`` leaves them alone (it trains the net's float arrays only, and no
optimizer, weight decay included, can touch them), checkpoints store them exactly, and Phi is
redrawn identically inside every call. The readout starts at zero.

With the default ``"score"`` output form the learned score is the random-features model itself,
(D - u)/T = A act(Phi x_in/sqrt(d))/sqrt(p) with x_in = (u - mean)/sqrt(T + sigma_data^2), the
setting of George et al. The net ignores the noise label: train it at one temperature (a narrow
band T_min..T_max). The DSM loss is then quadratic in A and, with fresh noise at every step (the
m -> infinity limit), its minimiser generalises for p < n and memorises for p > n.
``train_test_gap`` measures that: the relative excess of the DSM loss on fresh population points
over the loss on the training points, both with fresh noise.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Key, RealScalarLike, Vector
from ._dynamics import Estimate
from ._ensembles._base import AbstractEnsemble
from ._nets import ALL_PARAMETRIZATIONS, Preconditioned, _int_arg
from ._solvable_linear import _points
from ._validate import check_finite, check_key, check_real, check_size, check_temperature_scalar

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "erf": jax.scipy.special.erf}


def _key_data(key) -> Array:
    check_key("key", key)
    return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jnp.asarray(key)


class RandomFeaturesNet(eqx.Module):
    """The raw random-features network F(x, c) = A act(Phi x/sqrt(d))/sqrt(p) (theory 10, 11).

    The features Phi are drawn from the stored key at every call, never trained (module
    docstring); the noise label c is not used (train at one temperature).

    **Arguments:**
    - ``dim``: state dimension d >= 1.
    - ``n_features``: number of random features p >= 1.
    - ``activation``: ``"tanh"`` (default), ``"relu"`` or ``"erf"``.
    - ``key``: PRNG key of the features Phi (i.i.d. N(0, 1), shape (p, d)).
    - ``readout``: the initial readout A (d, p), finite (default 0).

    Under jit: ``__call__`` is jittable (an invalid T gives NaN through the noise label); the
    constructor validates eagerly.
    """

    dim: int = eqx.field(static=True)
    n_features: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    readout: Array
    feature_key: Array  # uint32 key data: not a float array, so never trained

    def __init__(self, dim: int, n_features: int, activation: str = "tanh", *, key: Key, readout=None):
        self.dim = _int_arg("dim", dim, 1, 2**15)
        self.n_features = _int_arg("n_features", n_features, 1, 2**20)
        if self.dim * self.n_features > 2**31 - 1:
            raise ValueError(f"dim x n_features = {self.dim} x {self.n_features} exceeds 2^31 - 1 elements")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.feature_key = _key_data(key)
        if readout is None:
            self.readout = jnp.zeros((self.dim, self.n_features), jnp.result_type(float))
            return
        check_real("readout", readout, what="a (d, p) matrix")
        A = jnp.asarray(readout, jnp.result_type(float))
        if A.shape != (self.dim, self.n_features):
            raise ValueError(f"readout must have shape ({self.dim}, {self.n_features}), got {A.shape}")
        check_finite("readout", A)
        self.readout = A

    def architecture(self) -> dict:
        return dict(name="RandomFeaturesNet", dim=self.dim, n_features=self.n_features, activation=self.activation)

    def features(self) -> Array:
        """The fixed feature matrix Phi, shape (p, d).

        Under jit: jittable (redrawn from the stored key, identically every time).
        """
        key = jax.random.wrap_key_data(jax.lax.stop_gradient(self.feature_key))
        return jax.random.normal(key, (self.n_features, self.dim), self.readout.dtype)

    def __call__(self, x: Vector, c_noise: RealScalarLike) -> Vector:
        h = ACTIVATIONS[self.activation](self.features() @ x / np.sqrt(self.dim))
        # the label is not used, except that a NaN/inf label (an invalid T under jit) gives NaN
        return self.readout @ h / np.sqrt(self.n_features) + 0 * c_noise


def random_features_model(data, n_features: int, *, key: Key, activation: str = "tanh",
                          parametrization: str = "score") -> Preconditioned:
    """A random-features denoiser for the data, ready for ``td.train`` (theory sections 10, 11).

    **Arguments:**
    - ``data``: the training set (N, d) (sets ``data_mean`` and ``sigma_data``).
    - ``n_features``: p >= 1.
    - ``key``: PRNG key of the fixed features.
    - ``activation``: as ``RandomFeaturesNet``.
    - ``parametrization``: the output form (default ``"score"``: the net is the score model).

    **Returns:** a ``td.Preconditioned`` model.

    Under jit: not jittable (a host-side constructor); validates eagerly.
    """
    pts = _points("data", data)
    if parametrization not in ALL_PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {ALL_PARAMETRIZATIONS}, got {parametrization!r}")
    net = RandomFeaturesNet(pts.shape[1], n_features, activation, key=key)
    return Preconditioned.for_data(net, pts, parametrization)


# ----------------------------------------------------------------------------- the gap
@dataclasses.dataclass
class TrainTestGap:
    """DSM losses at one temperature on training and fresh points (``train_test_gap``).

    - ``train``, ``test``: ``Estimate`` of L = E|D(y + sqrt(T) z, T) - y|^2 with y from the
      training set and from the population, fresh noise z for both.
    - ``gap``: ``Estimate`` of (L_test - L_train)/L_train (stderr of the paired ratio estimate).

    Under jit: a host-side record of ``Estimate``s.
    """

    train: Estimate
    test: Estimate
    gap: Estimate


def train_test_gap(model, train, test, T, key: Key, *, n_states: int = 4096, schedule=None) -> TrainTestGap:
    """The relative train-test gap of the DSM loss at temperature T (theory section 10).

    gap = (L_test - L_train)/L_train with L = E|D(y + sqrt(T) z, T) - y|^2, y drawn uniformly
    from the training set (L_train) or from fresh population points (L_test), fresh noise z for
    both. A model that generalises has gap ~ 0 (O(1/n) for a fixed number of parameters); one
    that memorises fits the training points better than new ones (the exact empirical denoiser
    has L_train = I(T) and maps new points onto training points). The two losses use the same
    noise draws z (common random numbers), which cancels most of the Monte Carlo noise of the gap.

    **Arguments:**
    - ``model``: a ``td.Preconditioned`` model, an ensemble, or any sampler model (then
      ``schedule`` maps T to its time, default VP).
    - ``train``: the training set (N, d).
    - ``test``: fresh points (M, d) from the population, or the population ensemble itself.
    - ``T``: the temperature (> 0, scalar).
    - ``key``: PRNG key; ``n_states``: Monte Carlo states per loss (>= 2, default 4096).

    **Returns:** a ``TrainTestGap``.

    Under jit: not jittable (host-side driver); validates eagerly.
    """
    from ._diagnostics import ve_denoiser

    check_key("key", key)
    check_temperature_scalar(T)
    check_size("n_states", n_states, 2, 10**8)
    pts = _points("train", train)
    k1, k2, k3, kz = jax.random.split(key, 4)
    if isinstance(test, AbstractEnsemble):
        if test.dim != pts.shape[1]:
            raise ValueError(f"test must have dimension d = {pts.shape[1]} like train, got {test.dim}")
        y_te = test.sample(k3, n_states)
    else:
        fresh = _points("test", test)
        if fresh.shape[1] != pts.shape[1]:
            raise ValueError(f"test must have dimension d = {pts.shape[1]} like train, got {fresh.shape[1]}")
        y_te = jnp.asarray(fresh)[jax.random.randint(k2, (n_states,), 0, fresh.shape[0])]
    dtype = jnp.result_type(float)
    y_tr = jnp.asarray(pts, dtype)[jax.random.randint(k1, (n_states,), 0, pts.shape[0])]
    z = jax.random.normal(kz, y_tr.shape, dtype)
    l_tr, l_te = _paired_losses(ve_denoiser(model, schedule), y_tr, y_te.astype(dtype), z, jnp.asarray(T, dtype))
    l_tr, l_te = np.asarray(l_tr, np.float64), np.asarray(l_te, np.float64)
    n = l_tr.size
    a, b = l_tr.mean(), l_te.mean()
    ratio = b / a
    se_gap = np.std(l_te - ratio * l_tr, ddof=1) / (np.sqrt(n) * a)  # delta method, paired samples
    est = lambda v: Estimate(jnp.asarray(v.mean()), jnp.asarray(np.std(v, ddof=1) / np.sqrt(n)))
    return TrainTestGap(train=est(l_tr), test=est(l_te), gap=Estimate(jnp.asarray(ratio - 1), jnp.asarray(se_gap)))


@eqx.filter_jit
def _paired_losses(f, y_tr, y_te, z, T):
    loss = lambda y, zi: jnp.sum((f(y + jnp.sqrt(T) * zi, T) - y) ** 2)
    return jax.vmap(loss)(y_tr, z), jax.vmap(loss)(y_te, z)


__all__ = ["RandomFeaturesNet", "TrainTestGap", "random_features_model", "train_test_gap"]
