"""Checkpoints of training runs: equinox leaves plus a JSON of metadata, never a pickle.

A checkpoint is a directory:

- ``model.eqx``: ``eqx.tree_serialise_leaves`` of {model, ema} (all that inference needs);
- ``optimizer.eqx``: the optimizer state, the step and the run's key (what resuming needs);
- ``history.npz``: per-step losses and the diagnostic records (plain arrays, no pickle);
- ``meta.json``: architecture, parametrisation, schedule, training recipe, data fingerprint,
  step, the optimizer state's structure, and the sha256 of the three files above.

The skeleton to deserialise into is rebuilt from ``meta.json`` (``build_network``), so the
files hold arrays only. Loading checks the hashes (a torn or corrupt checkpoint is refused), the
architecture and data the caller expects, and the optimizer state's structure, each with an
error that says what differs. Saving writes a new directory next to the old one and swaps the
two with renames, so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._io import json_bytes, write_atomic
from ._nets import Preconditioned, build_network
from ._schedules import DDPM, OU, VE, VP, AbstractSchedule, Cosine

FORMAT = "thermodiff-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, or for another model or dataset."""


# ----------------------------------------------------------------------------- fingerprints
def data_fingerprint(data) -> dict:
    """{sha256, n_points, dim} of a dataset (N, d), from its values rounded to float32 (so the same
    data held in float32 or float64 have one fingerprint)."""
    arr = np.ascontiguousarray(np.asarray(data, np.float32))
    if arr.ndim != 2:
        raise ValueError(f"data must be 2-D (N, d), got shape {arr.shape}")
    h = hashlib.sha256(str(arr.shape).encode())
    h.update(arr.tobytes())
    return dict(sha256=h.hexdigest(), n_points=int(arr.shape[0]), dim=int(arr.shape[1]))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- specs
def schedule_spec(schedule: AbstractSchedule) -> dict:
    """A JSON description of a schedule that ``schedule_from_spec`` rebuilds exactly."""
    f = lambda v: None if v is None else float(v)
    if isinstance(schedule, VE):
        return dict(name="VE", sigma_min=f(schedule.sigma_min), sigma_max=f(schedule.sigma_max),
                    t_max=f(schedule.brownian_t_max))
    if isinstance(schedule, VP):
        return dict(name="VP", beta_min=f(schedule.beta_min), beta_max=f(schedule.beta_max))
    if isinstance(schedule, OU):
        return dict(name="OU", t_max=f(schedule.ou_t_max))
    if isinstance(schedule, DDPM):
        return dict(name="DDPM", betas=np.asarray(schedule.betas, np.float64).tolist())
    if isinstance(schedule, Cosine):
        return dict(name="Cosine", offset=f(schedule.offset), t_max=f(schedule.cos_t_max))
    raise TypeError(f"cannot describe schedule {type(schedule).__name__} in a checkpoint")


def schedule_from_spec(spec: dict) -> AbstractSchedule:
    name = spec.get("name")
    if name == "VE":
        return VE(spec["sigma_min"], spec["sigma_max"], t_max=spec["t_max"])
    if name == "VP":
        return VP(spec["beta_min"], spec["beta_max"])
    if name == "OU":
        return OU(spec["t_max"])
    if name == "DDPM":
        return DDPM(np.asarray(spec["betas"]))
    if name == "Cosine":
        return Cosine(spec["offset"], t_max=spec["t_max"])
    raise CheckpointError(f"unknown schedule in checkpoint: {spec!r}")


def module_spec(module) -> dict:
    """{name, field: value} of a small eqx.Module with scalar fields (noise levels, weightings)."""
    out = dict(name=type(module).__name__)
    for fld in dataclasses.fields(module):
        v = getattr(module, fld.name)
        out[fld.name] = None if v is None else float(v)
    return out


def trainer_spec(trainer) -> dict:
    """The training recipe as JSON (the optimizer by its state's structure only)."""
    return dict(
        schedule=schedule_spec(trainer.schedule), noise=module_spec(trainer.noise),
        weighting=module_spec(trainer.weighting), T_min=trainer.T_min, T_max=trainer.T_max,
        batch_size=trainer.batch_size, ema_decay=trainer.ema_decay, grad_clip=trainer.grad_clip,
    )


def _leaf_signature(tree) -> list:
    return [[list(np.shape(x)), str(jnp.asarray(x).dtype)] for x in jax.tree.leaves(tree)]


# ----------------------------------------------------------------------------- save
def _serialise(tree) -> bytes:
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    return buf.getvalue()


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def save_checkpoint(path, state, trainer, *, data, n_models: int | None = None, history: dict | None = None,
                    extra: dict | None = None) -> Path:
    """Write a checkpoint directory at ``path`` (replacing an older one only once complete).

    **Arguments:**
    - ``path``: the checkpoint directory.
    - ``state``: the ``TrainState`` (a stack of M states when ``n_models`` = M).
    - ``trainer``: the ``Trainer`` of the run.
    - ``data``: the training data (N, d) (only its fingerprint is stored).
    - ``history``: arrays to keep beside (per-step losses, diagnostic records).
    - ``extra``: JSON-able metadata of the caller (e.g. the command line's optimizer settings).

    **Returns:** the path.
    """
    path = Path(path)
    model_bytes = _serialise(dict(model=state.model, ema=state.ema))
    opt_bytes = _serialise(dict(opt_state=state.opt_state, step=state.step, key=state.key))
    hist_bytes = _npz_bytes(history or {})
    net = state.model.net
    meta = dict(
        format=FORMAT, version=VERSION,
        architecture=_architecture(net),
        parametrization=state.model.parametrization,
        n_models=n_models,
        dim=int(state.model.dim),
        step=int(np.max(np.asarray(state.step))),
        data=data_fingerprint(data),
        trainer=trainer_spec(trainer),
        optimizer_state=dict(structure=str(jax.tree.structure(state.opt_state)), leaves=_leaf_signature(state.opt_state)),
        files={"model.eqx": _sha(model_bytes), "optimizer.eqx": _sha(opt_bytes), "history.npz": _sha(hist_bytes)},
        extra=extra or {},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    _recover(path)
    for stale in path.parent.glob(f".{path.name}.partial-*"):  # left by an interrupted save
        shutil.rmtree(stale, ignore_errors=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.mkdir()
    for name, b in (("model.eqx", model_bytes), ("optimizer.eqx", opt_bytes), ("history.npz", hist_bytes),
                    ("meta.json", json_bytes(meta))):
        write_atomic(tmp / name, b)
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    return path


def _architecture(net):
    arch = getattr(net, "architecture", None)
    if arch is None:
        raise TypeError(f"the network {type(net).__name__} has no architecture(): only td.ResidualMLP and td.UNet "
                        "(or modules with architecture()) can be checkpointed")
    return arch()  # static fields: one description also for a stack of M networks


# ----------------------------------------------------------------------------- load
@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint: ``model`` and ``ema`` (``Preconditioned``), ``state`` (a
    ``TrainState`` when an optimizer was given, else None), ``meta`` (the JSON) and ``history``."""

    model: Preconditioned
    ema: Preconditioned
    state: object
    meta: dict
    history: dict

    @property
    def step(self) -> int:
        return int(self.meta["step"])


def _recover(path: Path) -> None:
    """A save interrupted between its two renames leaves the complete previous checkpoint as
    ``.NAME.old-PID`` and nothing at ``NAME``: put it back."""
    if path.exists():
        for old in path.parent.glob(f".{path.name}.old-*"):
            shutil.rmtree(old, ignore_errors=True)
        return
    olds = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda q: q.stat().st_mtime)
    if olds and (olds[-1] / "meta.json").is_file():
        os.replace(olds[-1], path)


def checkpoint_exists(path) -> bool:
    """Whether ``path`` (or its ``checkpoint/`` folder) holds a checkpoint, after recovering an
    interrupted save."""
    p = Path(path)
    for q in (p, p / "checkpoint"):
        if q.parent.is_dir():
            _recover(q)
    return (p / "meta.json").is_file() or (p / "checkpoint" / "meta.json").is_file()


def _find(path) -> Path:
    p = Path(path)
    checkpoint_exists(p)
    if (p / "checkpoint" / "meta.json").is_file():  # the --out folder of `thermodiff train`
        p = p / "checkpoint"
    if not (p / "meta.json").is_file():
        raise CheckpointError(f"{str(path)!r} is not a thermodiff checkpoint (no meta.json)")
    return p


def read_meta(path) -> dict:
    """The metadata of a checkpoint (checked for format, not yet for its files)."""
    p = _find(path)
    try:
        meta = json.loads((p / "meta.json").read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{str(p / 'meta.json')!r} is unreadable or corrupt ({type(err).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(p)!r} is not a thermodiff checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint version {meta.get('version')!r} is not supported (this thermodiff reads {VERSION})")
    return meta


def _read_checked(p: Path, name: str, meta: dict) -> bytes:
    try:
        b = (p / name).read_bytes()
    except OSError:
        raise CheckpointError(f"checkpoint {str(p)!r} is incomplete: {name} is missing") from None
    if _sha(b) != meta.get("files", {}).get(name):
        raise CheckpointError(f"checkpoint {str(p)!r} is corrupt: {name} does not match its sha256 in meta.json")
    return b


def check_data(meta: dict, data) -> None:
    """Raise unless ``data`` is the dataset the checkpoint was trained on."""
    fp = data_fingerprint(data)
    saved = meta["data"]
    if fp["dim"] != saved["dim"]:
        raise CheckpointError(f"checkpoint was trained on data of dimension d = {saved['dim']}, "
                              f"but the data given have d = {fp['dim']}")
    if fp["sha256"] != saved["sha256"]:
        raise CheckpointError(
            f"checkpoint was trained on another dataset (N = {saved['n_points']}, d = {saved['dim']}, "
            f"sha256 {saved['sha256'][:12]}...) than the one given (N = {fp['n_points']}, sha256 {fp['sha256'][:12]}...)"
        )


def _skeleton(meta: dict) -> Preconditioned:
    arch = meta["architecture"]
    M = meta.get("n_models")
    make = lambda k: Preconditioned(build_network(arch, k), meta["parametrization"], 1.0)
    if M is None:
        return make(jax.random.key(0))
    return eqx.filter_vmap(make)(jax.random.split(jax.random.key(0), M))


def load_checkpoint(path, trainer=None, *, data=None, architecture: dict | None = None) -> Checkpoint:
    """Load a checkpoint directory (or the ``--out`` folder of ``thermodiff train``).

    **Arguments:**
    - ``path``: the directory.
    - ``trainer``: the ``Trainer`` to resume with; its optimizer rebuilds the optimizer state's
      skeleton, which must have the saved structure (else a ``CheckpointError`` says so). None
      loads the model and EMA only.
    - ``data``: if given, the checkpoint must have been trained on exactly these data.
    - ``architecture``: if given (a network's ``architecture()``), the checkpoint must match it.

    **Returns:** a ``Checkpoint``.
    """
    from ._train import TrainState, trainable

    p = _find(path)
    meta = read_meta(p)
    if architecture is not None and dict(architecture) != meta["architecture"]:
        raise CheckpointError(f"checkpoint holds architecture {meta['architecture']}, expected {architecture}")
    if data is not None:
        check_data(meta, data)
    skel = _skeleton(meta)
    raw = _read_checked(p, "model.eqx", meta)
    try:
        both = eqx.tree_deserialise_leaves(io.BytesIO(raw), dict(model=skel, ema=skel))
    except Exception as err:
        raise CheckpointError(f"checkpoint {str(p)!r}: model.eqx does not match its architecture ({type(err).__name__}: {err})") from None
    history = {}
    hb = _read_checked(p, "history.npz", meta)
    with np.load(io.BytesIO(hb), allow_pickle=False) as z:
        history = {k: z[k] for k in z.files}
    state = None
    if trainer is not None:
        saved = trainer_spec(trainer)
        if saved != meta["trainer"]:
            diff = sorted(k for k in saved if saved[k] != meta["trainer"].get(k))
            raise CheckpointError(f"the training recipe differs from the checkpoint's in {diff}: "
                                  f"saved {[meta['trainer'].get(k) for k in diff]}, given {[saved[k] for k in diff]}")
        model = both["model"]
        params = eqx.filter(model, trainable(model))
        if meta.get("n_models") is None:
            opt_skel = trainer.transform.init(params)
        else:
            opt_skel = eqx.filter_vmap(trainer.transform.init)(params)
        want = meta["optimizer_state"]
        if str(jax.tree.structure(opt_skel)) != want["structure"] or _leaf_signature(opt_skel) != want["leaves"]:
            raise CheckpointError("the optimizer given does not match the checkpoint's optimizer state "
                                  f"(saved structure {want['structure'][:120]}...)")
        M = meta.get("n_models")
        step0 = jnp.zeros((), jnp.int32) if M is None else jnp.zeros((M,), jnp.int32)
        key0 = jnp.zeros((2,), jnp.uint32) if M is None else jnp.zeros((M, 2), jnp.uint32)
        ob = _read_checked(p, "optimizer.eqx", meta)
        try:
            rest = eqx.tree_deserialise_leaves(io.BytesIO(ob), dict(opt_state=opt_skel, step=step0, key=key0))
        except Exception as err:
            raise CheckpointError(f"checkpoint {str(p)!r}: optimizer.eqx is unreadable ({type(err).__name__}: {err})") from None
        state = TrainState(model=model, ema=both["ema"], opt_state=rest["opt_state"], step=rest["step"], key=rest["key"])
    return Checkpoint(model=both["model"], ema=both["ema"], state=state, meta=meta, history=history)


__all__ = [
    "Checkpoint",
    "CheckpointError",
    "check_data",
    "data_fingerprint",
    "load_checkpoint",
    "read_meta",
    "save_checkpoint",
    "schedule_from_spec",
    "schedule_spec",
]
