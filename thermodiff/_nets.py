"""Score networks: raw architectures and the preconditioning that makes them denoisers (theory 10).

A raw network ``F(x_in, c_noise) -> (d,)`` acts on one (scaled) state and one scalar noise
label; ``Preconditioned`` turns it into a denoiser of the VE picture (Karras et al. 2022, EDM):

    D(u, T) = mean + c_skip(T) (u - mean) + c_out(T) F(c_in(T) (u - mean), c_noise(T)),

with u the VE state at temperature T (the VE-equivalent noise variance, theory section 1). Since
every schedule's state x_t is the VE state u = x_t/theta(t) at T(t), one network serves every
schedule: ``Preconditioned.denoise(x, t, schedule)`` converts first, so a trained network plugs
into ``td.sample``, ``cloning_probability`` and every analysis that takes a model.

The output parametrisation picks c_skip and c_out; c_in = 1/sqrt(T + sigma_data^2) (unit-variance
input) and c_noise = log(T/sigma_data^2)/4 for all of them:

| parametrisation | c_skip | c_out | the raw output F is |
|---|---|---|---|
| ``"edm"`` | s^2/(T + s^2) | sqrt(T) s/sqrt(T + s^2) | the EDM target (unit variance at every T) |
| ``"noise"`` | 1 | -sqrt(T) | the noise eps = (u - y)/sqrt(T) |
| ``"x0"`` | 0 | s | the standardised clean data (y - mean)/s |
| ``"score"`` | 1 | T | the score grad_u log p_T(u) |

(s = sigma_data.) One more output form is not a preconditioning: ``"direct"`` (in
``ALL_PARAMETRIZATIONS``, not in ``PARAMETRIZATIONS``, whose members all share c_in and c_noise)
has c_skip = 0, c_out = 1, c_in = 1 and c_noise = T, so the raw network receives the centred
state u - mean and the temperature itself and returns D - mean. It serves the solvable models
(``td.LinearNet``, ``td.MixtureNet``: theory section 10), whose parameters are the denoiser's own.

Architectures: ``ResidualMLP`` (the toy-data workhorse of Bonnaire et al. 2025:
pre-norm residual blocks with a sinusoidal noise embedding) and ``UNet`` (a small convolutional
U-Net for one-channel images, acting on the flattened image). Both record their constructor
arguments (``architecture()``) so that a checkpoint can rebuild them without pickling.
"""

from __future__ import annotations


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Key, RealScalarLike, Vector
from ._models import AbstractModel
from ._schedules import AbstractSchedule
from ._validate import check_finite, check_float32_range, check_key, check_real, check_temperature, concrete

PARAMETRIZATIONS = ("edm", "noise", "x0", "score")  # the preconditionings (shared c_in, c_noise)
ALL_PARAMETRIZATIONS = PARAMETRIZATIONS + ("direct",)  # "direct": F(u - mean, T) = D - mean


_MAX_WIDTH = 2**20  # any one size of a layer (dimension, width, channels, image side)


def _int_arg(name: str, value, lo: int, hi: int = _MAX_WIDTH) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or value > hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _check_weights(**shapes) -> None:
    """Every weight matrix must fit XLA's int32 element count (2^31 - 1)."""
    for name, (a, b) in shapes.items():
        if a * b > 2**31 - 1:
            raise ValueError(f"{name} = {a} x {b} weights exceed 2^31 - 1 elements; reduce the network's size")


def _even_arg(name: str, value) -> int:
    value = _int_arg(name, value, 2)
    if value % 2:
        raise ValueError(f"{name} must be an even integer >= 2 (sin and cos pairs), got {value}")
    return value


# ----------------------------------------------------------------------------- embedding
class SinusoidalEmbedding(eqx.Module):
    """Sinusoidal features of a scalar noise label: [sin(f_k c), cos(f_k c)], k = 1..dim/2.

    Frequencies are geometric in [``f_min``, ``f_max``] (defaults 1/4 and 32: the label
    c_noise = log(T/sigma_data^2)/4 spans about [-4, 3] for T from 1e-7 to 1e5 sigma_data^2, so
    the slowest feature varies once over the whole range and the fastest resolves factors of
    ~1.1 in T).
    """

    dim: int = eqx.field(static=True)
    frequencies: tuple = eqx.field(static=True)  # fixed, not trained: static, not an array leaf

    def __init__(self, dim: int, f_min: float = 0.25, f_max: float = 32.0):
        self.dim = _even_arg("dim", dim)
        self.frequencies = tuple(float(f) for f in np.geomspace(f_min, f_max, dim // 2))

    def __call__(self, c: RealScalarLike) -> Array:
        c = jnp.asarray(c)
        arg = c * jnp.asarray(self.frequencies, jnp.result_type(c.dtype, float))
        return jnp.concatenate([jnp.sin(arg), jnp.cos(arg)])


def _zero_output(layer):
    """The output layer starts at zero, so D starts at mean + c_skip (u - mean) (a sensible denoiser)."""
    return eqx.tree_at(lambda m: (m.weight, m.bias), layer,
                       (jnp.asarray(np.zeros(layer.weight.shape, layer.weight.dtype)),
                        jnp.asarray(np.zeros(layer.bias.shape, layer.bias.dtype))))


_LAYERS = (eqx.nn.Linear, eqx.nn.Conv, eqx.nn.GroupNorm, eqx.nn.LayerNorm)


def _materialise(build, key: Key):
    """``build(key)`` (a pytree of equinox layers) with equinox's default initial law, fast.

    Weights and biases of Linear and Conv layers are U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as in
    equinox, norms start at weight 1 and bias 0; but all draws come from one uniform vector. Built
    eagerly, every distinct layer shape compiles its own random initialiser, and jitted, XLA
    compiles one Threefry hash per layer: either way a two-level U-Net took 15-25 s to construct
    on a 2-core CPU; this takes one shape-only trace and one draw.
    """
    skel = eqx.filter_eval_shape(build, key)
    layers, treedef = jax.tree.flatten(skel, is_leaf=lambda m: isinstance(m, _LAYERS))
    sizes = [l.weight.size + (0 if l.bias is None else l.bias.size) for l in layers
             if isinstance(l, (eqx.nn.Linear, eqx.nn.Conv))]
    dtype = next(l.weight.dtype for l in layers if isinstance(l, _LAYERS))
    u = np.asarray(jax.random.uniform(key, (max(sum(sizes), 1),), dtype, -1.0, 1.0))
    out, off = [], 0
    for l in layers:
        if isinstance(l, (eqx.nn.Linear, eqx.nn.Conv)):
            fan_in = l.in_features if isinstance(l, eqx.nn.Linear) else (l.in_channels // l.groups) * int(np.prod(l.kernel_size))
            lim = 1.0 / np.sqrt(fan_in)
            w = u[off: off + l.weight.size].reshape(l.weight.shape) * lim
            off += l.weight.size
            new = (jnp.asarray(w),)
            if l.bias is not None:
                new += (jnp.asarray(u[off: off + l.bias.size].reshape(l.bias.shape) * lim),)
                off += l.bias.size
                l = eqx.tree_at(lambda m: (m.weight, m.bias), l, new)
            else:
                l = eqx.tree_at(lambda m: m.weight, l, new[0])
        elif isinstance(l, _LAYERS):
            if l.weight is not None:
                l = eqx.tree_at(lambda m: m.weight, l, jnp.asarray(np.ones(l.weight.shape, l.weight.dtype)))
            if l.bias is not None:
                l = eqx.tree_at(lambda m: m.bias, l, jnp.asarray(np.zeros(l.bias.shape, l.bias.dtype)))
        elif isinstance(l, jax.ShapeDtypeStruct):
            raise TypeError("only Linear, Conv, GroupNorm and LayerNorm layers can be materialised")
        out.append(l)
    return jax.tree.unflatten(treedef, out)


# ----------------------------------------------------------------------------- residual MLP
class _ResBlock(eqx.Module):
    norm: eqx.nn.LayerNorm
    lin1: eqx.nn.Linear
    lin2: eqx.nn.Linear

    def __init__(self, width: int, hidden: int, key: Key):
        k1, k2 = jax.random.split(key, 2)
        self.norm = eqx.nn.LayerNorm(width)
        self.lin1 = eqx.nn.Linear(width, hidden, key=k1)
        self.lin2 = eqx.nn.Linear(hidden, width, key=k2)

    def __call__(self, h, e_proj):
        """``e_proj``: this block's projection of the noise embedding, shape (hidden,)."""
        return h + self.lin2(jax.nn.silu(self.lin1(self.norm(h)) + e_proj))


class ResidualMLP(eqx.Module):
    """Residual MLP with a sinusoidal noise embedding: the raw network F(x_in, c_noise) -> (d,).

    x -> Linear(d, width); the label c_noise -> sinusoidal features -> e = silu(Linear(width));
    then ``depth`` pre-norm residual blocks h <- h + W2 silu(W1 LayerNorm(h) + P_k e); the output
    layer (zero at initialisation) maps silu(LayerNorm(h)) back to d. The embedding is a
    two-layer MLP per block (features -> e -> P_k e). The blocks' projections P_k are one
    (width -> depth x hidden) layer: one matrix product instead of ``depth`` small ones (about
    half the time of that part on a CPU, where a (512, 128) x (128, 128) product runs on one
    thread and a (512, 128) x (128, 384) one on two).

    **Arguments:**
    - ``dim``: state dimension d >= 1.
    - ``width``: hidden width (default 128); ``depth``: residual blocks (default 3);
      ``emb_dim``: even number of sinusoidal features (default 64); ``hidden``: width inside a
      block (default ``width``).
    - ``key``: PRNG key of the initialisation.
    """

    dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    emb_dim: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)
    embed: SinusoidalEmbedding
    emb_in: eqx.nn.Linear
    emb_proj: eqx.nn.Linear | None
    inp: eqx.nn.Linear
    blocks: tuple
    out_norm: eqx.nn.LayerNorm
    out: eqx.nn.Linear

    def __init__(self, dim: int, width: int = 128, depth: int = 3, emb_dim: int = 64, hidden: int | None = None, *, key: Key):
        check_key("key", key)
        self.dim = _int_arg("dim", dim, 1)
        self.width = _int_arg("width", width, 1)
        self.depth = _int_arg("depth", depth, 0)
        self.emb_dim = _even_arg("emb_dim", emb_dim)
        self.hidden = self.width if hidden is None else _int_arg("hidden", hidden, 1)
        _check_weights(**{"dim x width": (self.dim, self.width), "width x hidden": (self.width, self.hidden),
                          "emb_dim x width": (self.emb_dim, self.width * max(self.depth, 1))})
        self.embed = SinusoidalEmbedding(self.emb_dim)
        w, dim, depth, emb, hid = self.width, self.dim, self.depth, self.emb_dim, self.hidden

        def build(key):
            ks = jax.random.split(key, 5 + depth)
            return dict(
                emb_in=eqx.nn.Linear(emb, w, key=ks[0]),
                emb_proj=eqx.nn.Linear(w, depth * hid, key=ks[4]) if depth else None,
                inp=eqx.nn.Linear(dim, w, key=ks[2]), blocks=tuple(_ResBlock(w, hid, k) for k in ks[5:]),
                out_norm=eqx.nn.LayerNorm(w), out=eqx.nn.Linear(w, dim, key=ks[3]),
            )

        layers = _materialise(build, key)
        layers["out"] = _zero_output(layers["out"])
        for name, value in layers.items():
            setattr(self, name, value)

    def architecture(self) -> dict:
        return dict(name="ResidualMLP", dim=self.dim, width=self.width, depth=self.depth,
                    emb_dim=self.emb_dim, hidden=self.hidden)

    def __call__(self, x: Vector, c_noise: RealScalarLike) -> Vector:
        e = jax.nn.silu(self.emb_in(self.embed(c_noise)))
        h = self.inp(x)
        if self.blocks:
            e_proj = self.emb_proj(e).reshape(self.depth, self.hidden)
            for k, block in enumerate(self.blocks):
                h = block(h, e_proj[k])
        return self.out(jax.nn.silu(self.out_norm(h)))


# ----------------------------------------------------------------------------- U-Net
def _groups(channels: int) -> int:
    for g in (8, 4, 2, 1):
        if channels % g == 0:
            return g
    return 1  # pragma: no cover


def _conv(conv: eqx.nn.Conv2d, x: Array) -> Array:
    """``conv(x)`` for one image (C, H, W) as shifted slices and one matrix product (im2col).

    Same parameters and result as ``eqx.nn.Conv2d`` (zero padding, no dilation or groups), but
    fast inside a compiled training loop: XLA's CPU convolution runs 25-35x slower inside a
    ``fori_loop``/``scan`` body than at top level (measured: two 3x3 convolutions and their
    gradient on 128 8x8x16 images, 4 ms top-level, 110-140 ms per loop iteration), while the
    product form takes 4 ms in both places.
    """
    (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
    (pt, pb), (pl, pr) = conv.padding
    xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr)))
    ho, wo = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    cols = jnp.stack([xp[:, i: i + sh * (ho - 1) + 1: sh, j: j + sw * (wo - 1) + 1: sw]
                      for i in range(kh) for j in range(kw)], axis=1)  # (C, kh kw, ho, wo)
    w = conv.weight.reshape(conv.out_channels, conv.in_channels, kh * kw)
    out = jnp.einsum("ckhw,ock->ohw", cols, w)
    return out if conv.bias is None else out + conv.bias


class _ConvBlock(eqx.Module):
    """GroupNorm -> silu -> conv3x3 -> (+ noise embedding) -> GroupNorm -> silu -> conv3x3, residual."""

    norm1: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv2d
    emb: eqx.nn.Linear
    norm2: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv2d
    skip: eqx.nn.Conv2d | None

    def __init__(self, c_in: int, c_out: int, emb_width: int, key: Key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.norm1 = eqx.nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = eqx.nn.Conv2d(c_in, c_out, 3, padding=1, key=k1)
        self.emb = eqx.nn.Linear(emb_width, c_out, key=k2)
        self.norm2 = eqx.nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = eqx.nn.Conv2d(c_out, c_out, 3, padding=1, key=k3)
        self.skip = None if c_in == c_out else eqx.nn.Conv2d(c_in, c_out, 1, key=k4)

    def __call__(self, h, e):
        a = _conv(self.conv1, jax.nn.silu(self.norm1(h)))
        a = a + self.emb(e)[:, None, None]
        a = _conv(self.conv2, jax.nn.silu(self.norm2(a)))
        return a + (h if self.skip is None else _conv(self.skip, h))


def _unet_layers(channels: tuple, emb_dim: int, key: Key) -> dict:
    n = len(channels)
    ew = 4 * channels[0]
    c0 = channels[0]
    ks = iter(jax.random.split(key, 6 + 4 * n))
    out = dict(
        emb_in=eqx.nn.Linear(emb_dim, ew, key=next(ks)),
        emb_out=eqx.nn.Linear(ew, ew, key=next(ks)),
        conv_in=eqx.nn.Conv2d(1, c0, 3, padding=1, key=next(ks)),
        down=tuple(_ConvBlock(c, c, ew, next(ks)) for c in channels),
        downsample=tuple(
            eqx.nn.Conv2d(channels[i], channels[i + 1], 3, stride=2, padding=1, key=next(ks)) for i in range(n - 1)
        ),
        mid=_ConvBlock(channels[-1], channels[-1], ew, next(ks)),
        upsample=tuple(eqx.nn.Conv2d(channels[i + 1], channels[i], 3, padding=1, key=next(ks)) for i in range(n - 1)),
        up=tuple(_ConvBlock(2 * c, c, ew, next(ks)) for c in channels),
        out_norm=eqx.nn.GroupNorm(_groups(c0), c0),
    )
    out["conv_out"] = eqx.nn.Conv2d(c0, 1, 3, padding=1, key=next(ks))
    return out


class UNet(eqx.Module):
    """A small convolutional U-Net for one-channel images, acting on the flattened state (d,).

    The state of dimension d = height x width (row-major) is reshaped to (1, height, width). One
    residual conv block per level with the noise embedding added per channel; stride-2 3x3
    convolutions down, nearest-neighbour upsampling and a 3x3 convolution up, skip connections
    by concatenation. 8x8 digits use ``channels=(32, 64)`` (8 -> 4); 28x28 images work with
    ``channels=(32, 64, 128)`` (28 -> 14 -> 7); odd sizes are resized back to the skip's shape.

    **Arguments:**
    - ``height``, ``width``: image size (>= 2 each).
    - ``channels``: channels per level, e.g. (32, 64) (default); every entry >= 1.
    - ``emb_dim``: even number of sinusoidal features of the noise label (default 64).
    - ``key``: PRNG key of the initialisation.
    """

    height: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    channels: tuple = eqx.field(static=True)
    emb_dim: int = eqx.field(static=True)
    embed: SinusoidalEmbedding
    emb_in: eqx.nn.Linear
    emb_out: eqx.nn.Linear
    conv_in: eqx.nn.Conv2d
    down: tuple
    downsample: tuple
    mid: _ConvBlock
    upsample: tuple
    up: tuple
    out_norm: eqx.nn.GroupNorm
    conv_out: eqx.nn.Conv2d

    def __init__(self, height: int, width: int, channels=(32, 64), emb_dim: int = 64, *, key: Key):
        check_key("key", key)
        self.height = _int_arg("height", height, 2, 4096)
        self.width = _int_arg("width", width, 2, 4096)
        if not isinstance(channels, (tuple, list)) or len(channels) < 1:
            raise ValueError(f"channels must be a non-empty tuple of integers, got {channels!r}")
        self.channels = tuple(_int_arg("channels[i]", c, 1, 8192) for c in channels)
        self.emb_dim = _even_arg("emb_dim", emb_dim)
        self.embed = SinusoidalEmbedding(self.emb_dim)
        layers = _materialise(lambda k: _unet_layers(self.channels, self.emb_dim, k), key)
        layers["conv_out"] = _zero_output(layers["conv_out"])
        for name, value in layers.items():
            setattr(self, name, value)

    @property
    def dim(self) -> int:
        return self.height * self.width

    def architecture(self) -> dict:
        return dict(name="UNet", height=self.height, width=self.width, channels=list(self.channels),
                    emb_dim=self.emb_dim)

    def __call__(self, x: Vector, c_noise: RealScalarLike) -> Vector:
        e = jax.nn.silu(self.emb_out(jax.nn.silu(self.emb_in(self.embed(c_noise)))))
        h = _conv(self.conv_in, x.reshape(1, self.height, self.width))
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, e)
            skips.append(h)
            if i < len(self.downsample):
                h = _conv(self.downsample[i], h)
        h = self.mid(h, e)
        for i in reversed(range(len(self.up))):
            if i < len(self.upsample):
                s = skips[i].shape
                h = jax.image.resize(h, (h.shape[0],) + s[1:], method="nearest")
                h = _conv(self.upsample[i], h)
            h = self.up[i](jnp.concatenate([h, skips[i]], axis=0), e)
        return _conv(self.conv_out, jax.nn.silu(self.out_norm(h))).reshape(-1)


_ARCHITECTURES = {"ResidualMLP": ResidualMLP, "UNet": UNet}  # the solvable models' nets join on first use


def _register_solvable() -> None:
    """Add the solvable models' raw networks (``_solvable``, which builds on this module)."""
    from ._solvable import ARCHITECTURES

    _ARCHITECTURES.update(ARCHITECTURES)


def build_network(architecture: dict, key: Key | None = None):
    """Rebuild a raw network from its ``architecture()`` dict (as stored in a checkpoint)."""
    _register_solvable()
    if not isinstance(architecture, dict) or architecture.get("name") not in _ARCHITECTURES:
        raise ValueError(
            f"unknown network architecture {architecture!r}; known: {sorted(_ARCHITECTURES)}"
        )
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in architecture.items() if k != "name"}
    key = jax.random.key(0) if key is None else key
    try:
        return _ARCHITECTURES[architecture["name"]](**kw, key=key)
    except TypeError as err:
        raise ValueError(f"architecture {architecture!r} does not match {architecture['name']}: {err}") from None


def network_dim(net) -> int:
    d = getattr(net, "dim", None)
    if not isinstance(d, (int, np.integer)):
        raise TypeError(f"net must expose its state dimension as .dim (an int), got {type(net).__name__}")
    return int(d)


# ----------------------------------------------------------------------------- preconditioning
def coefficients(parametrization: str, T, sigma_data) -> tuple[Array, Array, Array, Array]:
    """(c_skip, c_out, c_in, c_noise) of a parametrisation at temperature T (module table;
    ``"direct"``: (0, 1, 1, T))."""
    T = jnp.asarray(T)
    s2 = sigma_data**2
    c_in = 1 / jnp.sqrt(T + s2)
    c_noise = 0.25 * jnp.log(T / s2)
    one = jnp.ones_like(T)
    if parametrization == "edm":
        return s2 / (T + s2), jnp.sqrt(T) * sigma_data * c_in, c_in, c_noise
    if parametrization == "noise":
        return one, -jnp.sqrt(T), c_in, c_noise
    if parametrization == "x0":
        return jnp.zeros_like(T), sigma_data * one, c_in, c_noise
    if parametrization == "score":
        return one, T, c_in, c_noise
    if parametrization == "direct":  # c_out is NaN at an invalid T (the traced-call policy, theory 13)
        return jnp.zeros_like(T), jnp.where(jnp.isfinite(T) & (T > 0), one, jnp.nan), one, T
    raise ValueError(f"parametrization must be one of {ALL_PARAMETRIZATIONS}, got {parametrization!r}")


class Preconditioned(AbstractModel):
    """A raw network turned into a denoiser D(u, T) of the VE picture (module docstring; theory 10).

    ``denoiser(u, T)`` is the VE-picture denoiser (same signature as an ensemble's), ``score(u, T)``
    = (D - u)/T, and ``denoise(x, t, schedule)`` the model interface of ``td.sample``.

    **Arguments:**
    - ``net``: a raw network ``net(x_in, c_noise) -> (d,)`` exposing ``.dim`` (``ResidualMLP``,
      ``UNet``, or any equinox module with that signature).
    - ``parametrization``: ``"edm"`` (default), ``"noise"``, ``"x0"``, ``"score"``, or
      ``"direct"`` (no preconditioning: ``net(u - mean, T)`` = D - mean; module docstring).
    - ``sigma_data``: the data's standard deviation per coordinate (> 0; default 1). Set it from
      the training set (``Preconditioned.for_data`` does).
    - ``data_mean``: the data mean, shape (d,) (default 0).
    """

    net: eqx.Module
    parametrization: str = eqx.field(static=True)
    sigma_data: Array
    data_mean: Array

    def __init__(self, net, parametrization: str = "edm", sigma_data=1.0, data_mean=None):
        d = network_dim(net)
        if parametrization not in ALL_PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {ALL_PARAMETRIZATIONS}, got {parametrization!r}")
        check_real("sigma_data", sigma_data, what="a scalar data scale > 0")
        check_float32_range("sigma_data", sigma_data)
        sd = jnp.asarray(sigma_data, jnp.result_type(float))
        if sd.ndim != 0:
            raise ValueError(f"sigma_data must be a scalar, got shape {sd.shape}")
        c = concrete(sd)
        if c is not None and not (np.isfinite(c) and c > 0):
            raise ValueError(f"sigma_data must be finite and > 0 (allowed range: (0, inf)), got {c!r}")
        mean = jnp.zeros((d,), sd.dtype) if data_mean is None else jnp.asarray(data_mean, sd.dtype)
        if mean.shape != (d,):
            raise ValueError(f"data_mean must have shape ({d},) to match the network, got {mean.shape}")
        check_finite("data_mean", mean)
        self.net, self.parametrization, self.sigma_data, self.data_mean = net, parametrization, sd, mean

    @classmethod
    def for_data(cls, net, data, parametrization: str = "edm") -> "Preconditioned":
        """Preconditioning with sigma_data and the mean measured on ``data`` (N, d)."""
        pts = np.asarray(data, np.float64)
        if pts.ndim != 2 or pts.shape[0] < 1:
            raise ValueError(f"data must be a 2-D array (N, d) with N >= 1, got shape {pts.shape}")
        sd = float(np.sqrt(np.mean(np.var(pts, axis=0))))
        if not sd > 0:
            raise ValueError("data has zero variance: sigma_data would be 0")
        return cls(net, parametrization, sd, pts.mean(0))

    @property
    def dim(self) -> int:
        return network_dim(self.net)

    def coefficients(self, T) -> tuple[Array, Array, Array, Array]:
        """(c_skip, c_out, c_in, c_noise) at temperature T."""
        return coefficients(self.parametrization, T, self.sigma_data)

    def denoiser(self, u: Vector, T: RealScalarLike) -> Vector:
        """D(u, T): the clean-data estimate at a VE state u and temperature T (theory 10)."""
        check_temperature(T)
        c_skip, c_out, c_in, c_noise = self.coefficients(T)
        v = u - self.data_mean
        return self.data_mean + c_skip * v + c_out * self.net(c_in * v, c_noise)

    def raw_target(self, u: Vector, T: RealScalarLike, target: Vector) -> Vector:
        """The raw output F for which D(u, T) equals ``target`` (the regression target of F)."""
        c_skip, c_out, _, _ = self.coefficients(T)
        return (target - self.data_mean - c_skip * (u - self.data_mean)) / c_out

    def score(self, u, T, schedule: AbstractSchedule | None = None):
        """VE score (D - u)/T at (u, T); with a schedule, the model score at native (x, t)."""
        if schedule is not None:
            return AbstractModel.score(self, u, T, schedule)
        return (self.denoiser(u, T) - u) / T

    def denoise(self, x, t, schedule):
        theta = schedule.signal_scale(t)
        return self.denoiser(x / theta, schedule.temperature(t))


__all__ = [
    "ALL_PARAMETRIZATIONS",
    "PARAMETRIZATIONS",
    "Preconditioned",
    "ResidualMLP",
    "SinusoidalEmbedding",
    "UNet",
    "build_network",
    "coefficients",
]
