"""A finite dataset sharded over devices and processes (theory sections 3.2 and 9).

The points of a ``FiniteDataset`` become one global ``jax.Array`` split along its chunk axis
over a 1-D device mesh that may span every device of every process (``jax.distributed``). Each
device holds a contiguous block of rows; no process ever holds (or gathers) the whole dataset.
Every log-sum-exp reduction runs per shard (``jax.shard_map``; inside a shard the usual online
log-sum-exp over chunks) and the shards are merged exactly:

    log Z = M + log sum_k e^{L_k - M},  M = max_k L_k  (pmax, then psum),
    m = sum_k a_k m_k,  a_k = e^{L_k - log Z}  (the shard's share of the posterior),

where L_k and m_k are shard k's own log-partition and posterior mean. The outputs are
replicated: every process holds the same denoiser, samples and collapse statistics.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._custom_types import Array, Matrix, Vector
from .._validate import check_size
from ._finite import _NEG, FiniteDataset


# ============================================================================ layout
class _Layout(NamedTuple):
    """Where the rows live: shard k holds global rows [k S, (k + 1) S), S = chunks x chunk."""

    n_shards: int
    chunk: int  # rows per chunk
    chunks_per_shard: int
    first_shard: int  # this process's shards: [first_shard, last_shard)
    last_shard: int

    @property
    def shard_rows(self) -> int:
        return self.chunk * self.chunks_per_shard

    def rows(self, n_points: int) -> tuple[int, int]:
        """This process's rows [start, stop) of the N data points (possibly empty)."""
        s = self.shard_rows
        return min(self.first_shard * s, n_points), min(self.last_shard * s, n_points)


def _default_mesh() -> Mesh:
    """All devices of all processes on one axis ``"data"``, grouped by process."""
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    return Mesh(np.array(devices), ("data",))


def _check_mesh(mesh) -> Mesh:
    if mesh is None:
        return _default_mesh()
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh (or None: all devices), got {type(mesh).__name__}")
    if len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be 1-D (one axis to shard the points over), got axes {mesh.axis_names}")
    return mesh


def _layout(mesh: Mesh, n_points: int, chunk_size: int) -> _Layout:
    devices = list(mesh.devices.flat)
    n_shards = len(devices)
    mine = [k for k, dev in enumerate(devices) if dev.process_index == jax.process_index()]
    if not mine:
        raise ValueError(f"mesh has no device of this process (process {jax.process_index()})")
    if mine != list(range(mine[0], mine[-1] + 1)):
        raise ValueError(
            f"mesh must list each process's devices contiguously (this process holds shards {mine}); "
            "build it from devices sorted by (process_index, id), or pass mesh=None")
    per_shard = -(-n_points // n_shards)
    chunk = min(chunk_size, per_shard)
    return _Layout(n_shards, chunk, -(-per_shard // chunk), mine[0], mine[-1] + 1)


# ============================================================================ host-side input
def _host_float(name: str, value, ndim: int) -> np.ndarray:
    """``value`` as a host NumPy float array of rank ``ndim`` (no device copy)."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a real array, got {type(value).__name__} {value!r}")
    if isinstance(value, jax.core.Tracer):
        raise TypeError(f"{name} must be concrete (build a ShardedDataset outside jit/vmap)")
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be a real array (not bool or complex), got dtype {arr.dtype}")
    dtype = jax.dtypes.canonicalize_dtype(arr.dtype if np.issubdtype(arr.dtype, np.floating) else float)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    return arr.astype(dtype, copy=False)


def _local_log_weights(weights, n_rows: int, dtype) -> np.ndarray:
    """Unnormalised log weights of this process's rows (0 for uniform; -1e30 for w = 0)."""
    if weights is None:
        return np.zeros(n_rows, dtype)
    w = _host_float("weights", weights, 1)
    if w.shape != (n_rows,):
        raise ValueError(f"weights must have shape ({n_rows},), one per row of points, got {w.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.maximum(np.log(w.astype(dtype)), _NEG).astype(dtype)


def _global_summary(mesh: Mesh, lay: _Layout, bad: np.ndarray, lse: np.ndarray) -> tuple[np.ndarray, float]:
    """Sum of per-shard counts and log-sum-exp of per-shard log weights over all processes.

    Every process gets the same answer, so a bad row on one host is an error on all of them
    (instead of one process raising while the others wait in the next collective)."""
    table = np.concatenate([bad.astype(np.float64), lse[:, None].astype(np.float64)], axis=1)
    glob = jax.make_array_from_process_local_data(
        NamedSharding(mesh, P(mesh.axis_names[0])), table.astype(jnp.result_type(float)),
        (lay.n_shards,) + table.shape[1:])

    @jax.jit
    def reduce(t):
        return jnp.sum(t[:, :-1], axis=0), jax.nn.logsumexp(t[:, -1])

    counts, total = reduce(glob)
    return np.asarray(counts), float(total)


# ============================================================================ the dataset
def _view(chunks: Array, logw: Array) -> FiniteDataset:
    """A plain FiniteDataset over one shard's chunks (no copy: the same arrays)."""
    view = object.__new__(FiniteDataset)
    object.__setattr__(view, "chunks", chunks)
    object.__setattr__(view, "chunk_log_weights", logw)
    object.__setattr__(view, "n_points", chunks.shape[0] * chunks.shape[1])
    return view


class ShardedDataset(FiniteDataset):
    """A ``FiniteDataset`` whose points are sharded over devices and processes (theory sections 3.2, 9).

    The chunks (``chunks``, shape (n_chunks, chunk, d)) are one global ``jax.Array`` split along
    the chunk axis over a 1-D mesh; each device holds ``chunks_per_shard`` chunks, i.e. the
    contiguous rows [k S, (k + 1) S) for shard k (S = ``shard_rows``; padding rows at the end
    carry zero weight). The log-partition, denoiser, energy moments, posterior covariance and
    the streaming statistics of the collapse tools are computed per shard with ``jax.shard_map``
    and merged across shards exactly (pmax of the shards' log-partitions, then psum of their
    statistics rescaled by e^{L_k - log Z}); results are replicated on every device and process.
    It is a ``FiniteDataset``: ``td.sample``, ``posterior_condensation``, ``excess_entropy``
    accept it unchanged, under jit and vmap.

    **Arguments:**
    - ``points``: (N, d) array, finite: the whole dataset (every process passes the same
      array; each keeps only its own rows), or, with ``n_points``, only this process's rows.
    - ``weights``: optional non-negative weights of those rows (normalised over all processes);
      default uniform.
    - ``n_points``: the global N when ``points`` holds only this process's rows, which must be
      rows ``ShardedDataset.process_rows(N, mesh=..., chunk_size=...)`` of the dataset
      (contiguous, in order): a dataset larger than one host's memory is never gathered.
    - ``chunk_size``: rows per streaming chunk inside a shard (default 4096).
    - ``mesh``: a 1-D ``jax.sharding.Mesh`` whose devices list each process's devices
      contiguously; default all devices of all processes (``jax.devices()``), grouped by process.

    Build it outside jit (the constructor validates and places data on the host side). Under
    jit: its methods follow ``FiniteDataset`` (an invalid T or a non-finite x gives NaN).
    """

    mesh: Mesh = eqx.field(static=True)

    def __init__(self, points, weights=None, *, n_points: int | None = None, chunk_size: int = 4096, mesh=None):
        mesh = _check_mesh(mesh)
        chunk_size = check_size("chunk_size", chunk_size)
        pts = _host_float("points", points, 2)
        d = pts.shape[1]
        if d < 1:
            raise ValueError(f"points must have dimension d >= 1, got shape {pts.shape}")
        n = pts.shape[0] if n_points is None else check_size("n_points", n_points, 1, 2**62)
        if n < 1:
            raise ValueError("points must contain at least one point (N >= 1), got an empty array")
        lay = _layout(mesh, n, chunk_size)
        start, stop = lay.rows(n)
        if n_points is None:
            local = pts[start:stop]
            w_local = None if weights is None else _host_float("weights", weights, 1)
            if w_local is not None:
                if w_local.shape != (n,):
                    raise ValueError(f"weights must have shape (N,) = ({n},) to match points, got {w_local.shape}")
                w_local = w_local[start:stop]
        else:
            if pts.shape[0] != stop - start:
                raise ValueError(
                    f"points must hold this process's rows [{start}, {stop}) of the n_points = {n} points "
                    f"(ShardedDataset.process_rows), i.e. {stop - start} rows, got {pts.shape[0]}")
            local, w_local = pts, weights
        self._place(mesh, lay, local, _local_log_weights(w_local, stop - start, pts.dtype), n, d, w_local is None)

    def _place(self, mesh, lay: _Layout, local: np.ndarray, logw: np.ndarray, n: int, d: int, uniform: bool):
        """Pad this process's rows to its shards, check them globally, put them on the devices."""
        n_local = lay.last_shard - lay.first_shard
        rows = n_local * lay.shard_rows
        pts = np.zeros((rows, d), local.dtype)
        pts[: local.shape[0]] = local
        lw = np.full((rows,), _NEG, local.dtype)
        lw[: local.shape[0]] = logw
        per_shard = pts.reshape(n_local, lay.shard_rows, d)
        bad = np.stack([(~np.isfinite(per_shard)).any(axis=2).sum(axis=1),
                        (~np.isfinite(lw.reshape(n_local, -1))).sum(axis=1)], axis=1)
        lw_sh = lw.reshape(n_local, -1).astype(np.float64)
        top = lw_sh.max(axis=1)
        lse = top + np.log(np.sum(np.exp(lw_sh - top[:, None]), axis=1))
        counts, total = _global_summary(mesh, lay, bad, lse)
        if counts[0] > 0:
            raise ValueError(f"points must be finite (no NaN or inf): {int(counts[0])} rows are not")
        if counts[1] > 0 or not total > 0.5 * _NEG:
            raise ValueError("weights must be >= 0 with a positive sum (allowed: weights >= 0, sum > 0)")
        r = local.shape[0]  # real rows; the padding keeps log weight _NEG
        lw[:r] = -math.log(n) if uniform else np.maximum(logw - total, _NEG)
        shape = (lay.n_shards * lay.chunks_per_shard, lay.chunk)
        sharding = NamedSharding(mesh, P(mesh.axis_names[0]))
        self.chunks = jax.make_array_from_process_local_data(
            sharding, pts.reshape(-1, lay.chunk, d), shape + (d,))
        self.chunk_log_weights = jax.make_array_from_process_local_data(
            sharding, lw.reshape(-1, lay.chunk), shape)
        self.n_points = n
        self.mesh = mesh

    # ------------------------------------------------------------------ layout
    @staticmethod
    def process_rows(n_points: int, *, chunk_size: int = 4096, mesh=None) -> tuple[int, int]:
        """The rows [start, stop) of an N-point dataset that this process must load.

        **Arguments:** ``n_points`` (N >= 1), ``chunk_size`` and ``mesh`` as for the constructor.

        **Returns:** (start, stop), Python ints (stop = start when this process holds only
        padding). Under jit: not jittable (host-side layout); validates eagerly.
        """
        n = check_size("n_points", n_points, 1, 2**62)
        return _layout(_check_mesh(mesh), n, check_size("chunk_size", chunk_size)).rows(n)

    @property
    def axis(self) -> str:
        return self.mesh.axis_names[0]

    @property
    def n_shards(self) -> int:
        return self.mesh.devices.size

    @property
    def shard_rows(self) -> int:
        """Rows per shard S (shard k holds global rows [k S, (k + 1) S))."""
        return self.chunks.shape[0] // self.n_shards * self.chunks.shape[1]

    def _shard_map(self, body, out_specs=P()):
        """``body(chunks, log_weights, *args)`` on every shard; extra args replicated."""
        spec = P(self.axis)

        def run(*args):
            specs = (spec, spec) + (P(),) * len(args)
            # check_vma=False: FiniteDataset's scans start from replicated zeros and carry
            # per-shard values; every output below is a pmax/psum/pmin, hence replicated.
            return jax.shard_map(body, mesh=self.mesh, in_specs=specs, out_specs=out_specs,
                                 check_vma=False)(
                self.chunks, self.chunk_log_weights, *args)

        return run

    # ------------------------------------------------------------------ sharded reductions
    @eqx.filter_jit
    def _first_moments(self, x: Vector, T, with_energy: bool):
        """(log Z, E[y|x], E[E|x] or None): each shard's online pass, merged exactly."""
        axis = self.axis

        def body(chunks, logw, x, T):
            lse, m, e = _view(chunks, logw)._first_moments(x, T, with_energy)
            top = jax.lax.pmax(jax.lax.stop_gradient(lse), axis)  # cancels exactly (see _finite)
            a = jnp.exp(lse - top)  # shard share x e^{log Z - top}; 0 for a shard of padding
            s, am, ae = jax.lax.psum((a, a * m, a * (e if with_energy else 0.0)), axis)
            return top + jnp.log(s), am / s, ae / s

        lse, m, e = self._shard_map(body)(x, T)
        return lse, m, (e if with_energy else None)

    def _map_reduce(self, fn, init):
        """sum over all chunks of all shards of fn(pts, logw): local streams, then one psum."""
        axis = self.axis

        def body(chunks, logw):
            return jax.lax.psum(_view(chunks, logw)._map_reduce(fn, init), axis)

        return self._shard_map(body)()

    def _sharded_stream(self, x: Vector, T, exclude):
        """``_posterior_stream._stream`` over the shards: each shard's pass, merged exactly.

        With a_k = e^{L_k - log Z} the shard shares: entropy = sum_k a_k (H_k - log a_k),
        sum w^2 = sum_k a_k^2 (sum w^2)_k, max weight = max_k a_k w*_k (ties: lowest index)."""
        from .._posterior_stream import _Stats, _stream

        axis, rows = self.axis, self.shard_rows

        def body(chunks, logw, x, T, exclude):
            off = jax.lax.axis_index(axis) * rows
            st = _stream(_view(chunks, logw), x, T, jnp.where(exclude >= 0, exclude - off, -1))
            top = jax.lax.pmax(jax.lax.stop_gradient(st.lse), axis)
            la = st.lse - top  # log of the shard's (unnormalised) share; finite, a = 0 for padding
            a = jnp.exp(la)
            lwm = la + st.log_w_max
            best = jax.lax.pmax(lwm, axis)
            idx = st.argmax + off
            win = jax.lax.pmin(jnp.where(lwm == best, idx, jnp.iinfo(idx.dtype).max), axis)
            s, am, aH, a2, anchor = jax.lax.psum(
                (a, a * st.mean, a * (st.entropy - la), a * a * st.sum_w2,
                 jnp.where(idx == win, st.anchor, 0.0)), axis)
            log_s = jnp.log(s)
            return _Stats(lse=top + log_s, mean=am / s, entropy=aH / s + log_s, sum_w2=a2 / (s * s),
                          log_w_max=best - log_s, argmax=win, anchor=anchor)

        return self._shard_map(body)(x, T, jnp.asarray(exclude))

    # ------------------------------------------------------------------ data law
    @eqx.filter_jit
    def mean(self) -> Vector:
        """Exact data mean sum_n pi_n y_n (per-shard sums, one psum)."""
        return self._map_reduce(lambda pts, logw: jnp.exp(logw) @ pts, jnp.zeros((self.dim,), self.chunks.dtype))

    @eqx.filter_jit
    def covariance(self) -> Matrix:
        """Exact data covariance sum_n pi_n (y_n - mu)(y_n - mu)^T (two sharded passes)."""
        mu = self.mean()

        def second(pts, logw):
            c = pts - mu[None, :]
            return (c * jnp.exp(logw)[:, None]).T @ c

        return self._map_reduce(second, jnp.zeros((self.dim, self.dim), self.chunks.dtype))


__all__ = ["ShardedDataset"]
