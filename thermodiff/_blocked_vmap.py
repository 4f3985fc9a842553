"""Blocked batching: a plain ``jax.vmap`` of an iterative per-lane function runs in blocks (theory 14).

The mean-field functions solve one temperature by a ``while_loop`` (safeguarded Newton, line
search). ``jax.vmap`` turns such a loop into one loop over all lanes that runs until the slowest
lane has converged, and on XLA:CPU every iteration then streams the intermediates of all lanes
through memory: over 10^4 temperatures the sweep was 3-9x slower than the same work written as
``jax.lax.map(f, Ts, batch_size=B)``, whose blocks of B neighbouring lanes stay in cache and stop
together. ``blocked_vmap(f)`` makes the plain ``jax.vmap`` take that form by itself:

- unbatched, ``blocked_vmap(f)(*args)`` is ``f(*args)`` (eager calls do not even wrap);
- under ``jax.vmap`` (over any subset of the arguments' leaves, any ``in_axes``) a custom batching
  rule (``jax.custom_batching.custom_vmap``) runs ``f`` lane by lane as ``lax.map`` over blocks of
  ``vmap_block_size()`` lanes, each block one ``jax.vmap`` of the plain ``f``; unbatched
  arguments are shared by every lane, never broadcast;
- nested vmaps flatten: an outer vmap of the blocked map reshapes (outer, inner) lanes into one
  axis (an argument batched only by the outer vmap is gathered per lane by an index), so a
  vmap of a vmap is one blocked map over all lanes, whatever the nesting depth;
- derivatives are those of ``f`` (``jax.custom_jvp`` whose rule is ``jax.jvp`` of the plain
  ``f``; custom batching alone has no reverse mode), so ``jax.grad``, ``jax.jacfwd`` and
  implicit derivatives (``lax.custom_root``) inside ``f`` work as before; a vmap of a derivative
  batches the plain derivative (its while loops are the solves, see ``_fixed_point``).

The block size is device-aware, read when a batched call is traced: ``_CPU_BLOCK`` lanes on
XLA:CPU (the best of 32-512 was 64-512 depending on the ensemble and the run, and 128 stayed
within 1.25x of it on all three benchmark ensembles, see ``benchmarks/_scale_sweep.py``), no
blocking on an accelerator (a GPU runs all lanes at once; not measured here).
``set_vmap_block_size`` overrides it; it affects functions traced afterwards
(``jax.clear_caches()`` to retrace compiled ones).
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

_CPU_BLOCK = 128  # lanes per block on XLA:CPU (within 1.25x of the best of 32..512 on d = 1 and d = 8 sweeps)
_AUTO = "auto"
_block_setting: int | str | None = _AUTO


def set_vmap_block_size(block_size: int | str | None = _AUTO) -> None:
    """Set how many lanes (temperatures, starts, ...) a ``jax.vmap`` of the mean-field functions
    runs per block (theory section 14).

    **Arguments:** ``block_size``: ``"auto"`` (the default: 128 lanes on CPU, every lane in one
    block on an accelerator), an integer >= 1, or None (no blocking: the plain vmap over all
    lanes, as before the blocked rule).

    **Returns:** None. Read when a batched call is traced: functions already compiled keep their
    blocks (``jax.clear_caches()`` retraces them). Under jit: not traced itself (a Python
    setting); it changes what later traces build. Raises a ValueError for any other value.
    """
    global _block_setting
    if block_size is not None and block_size != _AUTO:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be 'auto', None or an integer >= 1, got {block_size!r}")
    _block_setting = block_size


def vmap_block_size() -> int | None:
    """The lanes per block a ``jax.vmap`` of the mean-field functions uses now (theory section 14).

    **Arguments:** none. **Returns:** an integer, or None for one vmap over all lanes: the value
    of ``set_vmap_block_size``, whose ``"auto"`` is 128 when ``jax.default_backend()`` is
    ``"cpu"`` and None otherwise. Under jit: a Python value, read at trace time.
    """
    if _block_setting == _AUTO:
        return _CPU_BLOCK if jax.default_backend() == "cpu" else None
    return _block_setting


def blocked_vmap(fun):
    """``fun`` (arrays and static Python values in, a pytree of arrays out) with a blocked vmap
    rule and ``fun``'s own derivatives (module docstring). Array leaves of the arguments are
    the batchable ones; every other leaf (ints, strings, None, bools) is static."""

    @functools.wraps(fun)
    def wrapped(*args):
        dyn, static = eqx.partition(args, eqx.is_array)
        if not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(dyn)):
            return fun(*args)  # eager: nothing can batch it
        x64 = bool(jax.config.jax_enable_x64)

        def plain(dyn):
            return fun(*eqx.combine(dyn, static))

        @jax.custom_jvp
        def call(dyn):
            return _per_lane(plain, x64)(dyn)

        call.defjvp(lambda primals, tangents: jax.jvp(plain, primals, tangents))
        return call(dyn)

    return wrapped


def _per_lane(plain, x64):
    """``plain`` with the custom batching rule: batched leaves become the lanes of a blocked map,
    unbatched ones its shared constants."""
    f = custom_vmap(plain)

    @f.def_vmap
    def rule(axis_size, in_batched, dyn):
        leaves, tree = jax.tree.flatten(dyn)
        flags = jax.tree.leaves(in_batched)
        lanes = [x for x, b in zip(leaves, flags) if b]
        shared = [x for x, b in zip(leaves, flags) if not b]

        def one(lane, shared):
            it_l, it_s = iter(lane), iter(shared)
            return plain(jax.tree.unflatten(tree, [next(it_l) if b else next(it_s) for b in flags]))

        with jax.enable_x64(x64):
            out = _blocked_map(one, lanes, shared, x64)
        return out, jax.tree.map(lambda _: True, out)

    return f


def _blocked_map(one, lanes, shared, x64):
    """[one(lane_k, shared) for each k] stacked: ``lanes`` a list of arrays with a common leading
    axis, ``shared`` a list of arrays used by every lane. Itself batchable (nested vmaps)."""
    m = custom_vmap(lambda lanes, shared: _map_blocks(one, lanes, shared))

    @m.def_vmap
    def rule(outer, in_batched, lanes_b, shared_b):
        lane_flags, shared_flags = in_batched
        n = lanes_b[0].shape[1] if lane_flags[0] else lanes_b[0].shape[0]
        with jax.enable_x64(x64):
            flat = [_flatten_lanes(x, b, outer) for x, b in zip(lanes_b, lane_flags)]
            one2 = one
            if any(shared_flags):  # batched only by the outer vmap: each lane gathers its own
                flat.append(jnp.repeat(jnp.arange(outer), n))

                def one2(lane, shared):
                    i = lane[-1]
                    return one(lane[:-1], [s[i] if b else s for s, b in zip(shared, shared_flags)])

            out = _blocked_map(one2, flat, shared_b, x64)
            out = jax.tree.map(lambda y: y.reshape((outer, n) + y.shape[1:]), out)
        return out, jax.tree.map(lambda _: True, out)

    return m(lanes, shared)


def _flatten_lanes(x, batched, outer):
    if not batched:
        x = jnp.broadcast_to(x[None], (outer,) + x.shape)
    return x.reshape((outer * x.shape[1],) + x.shape[2:])


def _map_blocks(one, lanes, shared):
    """The blocked map itself: ceil(n/B) equal blocks (the last lanes padded with copies of the
    last one, so one compiled block serves all), a vmap per block, a sequential map over blocks."""
    n = lanes[0].shape[0]
    B = vmap_block_size()
    lane_fn = jax.vmap(lambda lane: one(lane, shared))
    if B is None or n <= B:
        return lane_fn(lanes)
    n_blocks = math.ceil(n / B)
    size = math.ceil(n / n_blocks)
    pad = n_blocks * size - n

    def blocks(x):
        if pad:
            x = jnp.concatenate([x, jnp.broadcast_to(x[-1:], (pad,) + x.shape[1:])])
        return x.reshape((n_blocks, size) + x.shape[1:])

    out = jax.lax.map(lane_fn, [blocks(x) for x in lanes])
    return jax.tree.map(lambda y: y.reshape((n_blocks * size,) + y.shape[2:])[:n], out)
