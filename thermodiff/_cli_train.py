"""``thermodiff train``: train a score network on a dataset and measure it against the exact score.

``thermodiff train [DATA] --out DIR`` trains a preconditioned network (default: a residual MLP on
the embedded UCI digits, a few CPU minutes) by denoising score matching, with the exact
diagnostics of theory section 10 at log-spaced steps: excess loss against the exact empirical
denoiser of the training split, generalisation error against the empirical denoiser of a
held-out split (a *proxy* for the population), and the memorised fraction f_mem of generated
samples. It writes

- ``DIR/checkpoint/``: the resumable checkpoint (equinox leaves + ``meta.json``, no pickle),
  saved at every logged step;
- ``DIR/training.json``: the configuration, the loss curve, the diagnostics, tau_gen and tau_mem;
- ``DIR/loss.png``, ``DIR/diagnostics.png`` and, for square images, ``DIR/samples.png``.

Every input is checked before any computation (one line on stderr, exit status 2, nothing
written). An interrupted run (Ctrl-C) keeps its last checkpoint; ``--resume`` continues it with
the same result as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time
from pathlib import Path

ARCHS = ("mlp", "unet")
# Defaults of the command line (None in argparse, so that --resume can tell what was given).
DEFAULTS = dict(arch="mlp", width=256, depth=3, channels="16,32", steps=4000, batch_size=256, lr=1e-3,
                ema=0.999, seed=0, held_out=0.1, parametrization="edm", n_samples=256)
_CONFIG_KEYS = tuple(DEFAULTS)


class UsageError(ValueError):
    pass


def add_parser(sub) -> None:
    t = sub.add_parser(
        "train",
        help="train a score network and measure it against the exact score (default: the embedded digits)",
        description=("Train a preconditioned score network by denoising score matching and measure it at "
                     "log-spaced steps against the exact empirical denoiser of its training split (excess "
                     "loss), the empirical denoiser of a held-out split (generalisation-error proxy) and "
                     "the memorised fraction of its samples; writes a resumable checkpoint, training.json "
                     "and PNG figures in --out."),
    )
    t.add_argument("data", nargs="?", default=None,
                   help="a .npy array (N, d) or an .npz with 'data'/'points'/'X' (default: the embedded UCI digits)")
    t.add_argument("--out", default="thermodiff-train", help="output folder (default thermodiff-train)")
    from ._cli import MAX_SEED, Int, Ints, Real

    width, depth, steps, batch = Int(1, 8192), Int(0, 64), Int(1, 10**8), Int(1, 65536)
    seed, n_samples, channels = Int(0, MAX_SEED), Int(0, 100_000), Ints(1, 1024, 1, 8)
    lr, ema, held = Real(0.0, 1.0, lo_open=True), Real(0.0, 1.0, hi_open=True), Real(0.0, 0.5)
    t.add_argument("--arch", default=None, help=f"network: {' or '.join(ARCHS)} (default mlp)")
    t.add_argument("--width", type=width, default=None, help=f"MLP width, {width.what} (default 256)")
    t.add_argument("--depth", type=depth, default=None, help=f"MLP residual blocks, {depth.what} (default 3)")
    def channel_list(text: str) -> str:  # kept as text, like the checkpoint's saved settings
        return ",".join(str(c) for c in channels(text))

    t.add_argument("--channels", type=channel_list, default=None,
                   help=f"U-Net channels per level, {channels.what} (default 16,32)")
    t.add_argument("--steps", type=steps, default=None, help=f"total training steps, {steps.what} (default 4000)")
    t.add_argument("--batch-size", type=batch, default=None, help=f"examples per step, {batch.what} (default 256)")
    t.add_argument("--lr", type=lr, default=None, help=f"Adam learning rate, {lr.what} (default 1e-3)")
    t.add_argument("--ema", type=ema, default=None, help=f"EMA decay, {ema.what} (default 0.999)")
    t.add_argument("--seed", type=seed, default=None, help=f"PRNG seed, {seed.what} (default 0)")
    t.add_argument("--held-out", type=held, default=None,
                   help=f"fraction of the data held out for the generalisation proxy, {held.what} (default 0.1)")
    t.add_argument("--parametrization", default=None, help="edm, noise, x0 or score (default edm)")
    t.add_argument("--n-samples", type=n_samples, default=None,
                   help=f"generated samples per f_mem estimate, {n_samples.what}, not 1 (default 256; 0: none)")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint in --out (its settings are kept)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


# ----------------------------------------------------------------------------- configuration
def _int_in(name, v, lo, hi):
    if not (isinstance(v, int) and lo <= v <= hi):
        raise UsageError(f"--{name} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _config(args, saved: dict | None) -> dict:
    """The run's configuration: explicit options, else the saved ones (--resume), else defaults."""
    cfg = {}
    for k in _CONFIG_KEYS:
        given = getattr(args, k)
        if saved is not None and k in saved and k != "steps":
            if given is not None and given != saved[k]:
                raise UsageError(f"--{k.replace('_', '-')} {given!r} differs from the checkpoint's {saved[k]!r}: "
                                 "a resumed run keeps its settings (only --steps may change)")
            cfg[k] = saved[k]
        else:
            cfg[k] = DEFAULTS[k] if given is None else given
    if saved is not None and args.steps is None:
        cfg["steps"] = saved["steps"]
    if cfg["arch"] not in ARCHS:
        raise UsageError(f"--arch must be one of {', '.join(ARCHS)}, got {cfg['arch']!r}")
    if cfg["parametrization"] not in ("edm", "noise", "x0", "score"):
        raise UsageError(f"--parametrization must be edm, noise, x0 or score, got {cfg['parametrization']!r}")
    _int_in("width", cfg["width"], 1, 8192)
    _int_in("depth", cfg["depth"], 0, 64)
    _int_in("steps", cfg["steps"], 1, 10**8)
    _int_in("batch-size", cfg["batch_size"], 1, 65536)
    _int_in("seed", cfg["seed"], 0, 2**31 - 1)
    _int_in("n-samples", cfg["n_samples"], 0, 100_000)
    if cfg["n_samples"] == 1:
        raise UsageError("--n-samples must be 0 (no f_mem) or >= 2, got 1")
    if not (math.isfinite(cfg["lr"]) and 0 < cfg["lr"] <= 1):
        raise UsageError(f"--lr must lie in (0, 1], got {cfg['lr']!r}")
    if not (math.isfinite(cfg["ema"]) and 0 <= cfg["ema"] < 1):
        raise UsageError(f"--ema must lie in [0, 1), got {cfg['ema']!r}")
    if not (math.isfinite(cfg["held_out"]) and 0 <= cfg["held_out"] <= 0.5):
        raise UsageError(f"--held-out must lie in [0, 0.5], got {cfg['held_out']!r}")
    try:
        ch = [int(c) for c in str(cfg["channels"]).split(",") if c.strip()]
    except ValueError:
        raise UsageError(f"--channels must be comma-separated integers, got {cfg['channels']!r}") from None
    if not ch or any(c < 1 or c > 1024 for c in ch):
        raise UsageError(f"--channels must be 1 to 8 integers in [1, 1024], got {cfg['channels']!r}")
    return cfg


def _image_side(d: int) -> int | None:
    s = int(round(math.sqrt(d)))
    return s if s * s == d and s >= 2 else None


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices): a seeded permutation, held-out = the first round(f n)."""
    import numpy as np

    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(fraction * n))
    return np.sort(perm[k:]), np.sort(perm[:k])


def _check_out(out: Path, resume: bool):
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a folder")
    from ._checkpoint import checkpoint_exists

    has = out.is_dir() and checkpoint_exists(out / "checkpoint")
    if not resume and has:
        raise UsageError(f"--out {str(out)!r} already holds a training checkpoint: pass --resume to continue it, "
                         "or choose another --out")
    if resume and not has:
        raise UsageError(f"--resume: {str(out)!r} holds no checkpoint to continue")
    probe_dir = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not probe_dir.is_dir():
        raise UsageError(f"--out {str(out)!r}: {str(probe_dir)!r} is a file, not a folder")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UsageError(f"--out {str(out)!r} is not writable")


# ----------------------------------------------------------------------------- the command
def train_command(args, load_dataset) -> tuple[dict, dict, Path]:
    """Run ``thermodiff train``; returns (training.json content, {png name: bytes}, out folder)."""
    import numpy as np

    out = Path(args.out)
    _check_out(out, args.resume)
    saved = None
    if args.resume:
        from ._checkpoint import CheckpointError, read_meta

        try:
            saved = read_meta(out / "checkpoint")["extra"].get("cli")
        except CheckpointError as err:
            raise UsageError(f"--resume: {err}") from None
        if not isinstance(saved, dict):
            raise UsageError("--resume: the checkpoint was not written by `thermodiff train` (no saved settings)")
    cfg = _config(args, saved)
    from ._cli import check_out, report_bytes

    try:  # room on the disk for the checkpoint and the figures
        check_out(str(out), report_bytes(args))
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.data is None:
        from ._data import load_digits

        X, _ = load_digits()
        name = "UCI optical digits (1797 x 64, embedded; CC BY 4.0)"
    else:
        X, _, name = load_dataset(args.data)
    n, d = X.shape
    train_idx, held_idx = _split(n, cfg["held_out"], cfg["seed"])
    if train_idx.size < 2:
        raise UsageError(f"--held-out {cfg['held_out']} leaves {train_idx.size} training point(s); need at least 2")
    if held_idx.size == 1:
        raise UsageError("--held-out leaves a single held-out point; use 0 or a larger fraction")
    side = _image_side(d)
    if cfg["arch"] == "unet" and side is None:
        raise UsageError(f"--arch unet needs square one-channel images (d = side^2), got d = {d}")
    if cfg["steps"] * cfg["batch_size"] > 10**11:
        raise UsageError("--steps x --batch-size exceeds 1e11 examples: choose a smaller run")

    import jax
    import jax.numpy as jnp

    import thermodiff as td

    from ._checkpoint import CheckpointError, check_data, data_fingerprint, read_meta

    if saved is not None:
        try:
            check_data(read_meta(out / "checkpoint"), X[train_idx])
        except CheckpointError as err:
            raise UsageError(f"--resume: {err}") from None
    Xtr = jnp.asarray(X[train_idx], jnp.float32)
    key = jax.random.key(cfg["seed"])
    k_net, k_run = jax.random.split(key)
    if cfg["arch"] == "mlp":
        net = td.ResidualMLP(d, cfg["width"], cfg["depth"], key=k_net)
    else:
        net = td.UNet(side, side, tuple(int(c) for c in str(cfg["channels"]).split(",")), key=k_net)
    model = td.Preconditioned.for_data(net, np.asarray(Xtr, np.float64), cfg["parametrization"])
    sd2 = float(model.sigma_data) ** 2
    trainer = td.Trainer(_adam(cfg["lr"]), T_min=1e-4 * sd2, T_max=min(1e3 * sd2, td.VP().max_temperature()), batch_size=cfg["batch_size"],
                         ema_decay=cfg["ema"])
    temps = np.geomspace(0.01 * sd2, 30 * sd2, 8)
    diag = td.Diagnostics(temps, held_out=X[held_idx] if held_idx.size >= 2 else None,
                          n_samples=cfg["n_samples"], n_states=256)
    meta = dict(cli=cfg, source=data_fingerprint(X), dataset=name, train_indices_seed=cfg["seed"],
                held_out_fraction=cfg["held_out"], n_train=int(train_idx.size), n_held_out=int(held_idx.size))
    t0 = time.perf_counter()
    res = td.train(model, Xtr, key=k_run, steps=cfg["steps"], trainer=trainer, diagnostics=diag,
                   checkpoint=out / "checkpoint", resume=args.resume, progress=not args.no_progress, metadata=meta)
    wall = time.perf_counter() - t0
    result = _summary(res, cfg, name, n, d, train_idx, held_idx, diag, wall)
    figs = _figures(result)
    if side is not None and cfg["n_samples"]:
        figs["samples.png"] = _samples_figure(res.model, X[train_idx], side, jax.random.fold_in(key, 7))
    return result, figs, out


@functools.lru_cache(maxsize=None)
def _adam(lr: float):
    """One optimizer object per learning rate: runs in one process then share their compilation
    (an optax transformation is static in a jit and hashes by identity)."""
    import optax

    return optax.adam(lr)


def _f(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _summary(res, cfg, name, n, d, train_idx, held_idx, diag, wall) -> dict:
    import numpy as np

    h = {k: np.asarray(v) for k, v in res.history.items()}
    losses = np.asarray(res.losses, np.float64)
    # the loss curve as means over 200 log-spaced windows (the per-step losses stay in the checkpoint)
    edges = np.unique(np.round(np.geomspace(1, losses.size, 201)).astype(int))
    curve = [dict(step=int(b), loss=_f(np.mean(losses[a:b]))) for a, b in zip(np.r_[0, edges[:-1]], edges)]
    step_rows = []
    for i, s in enumerate(h.get("step", [])):
        row = dict(step=int(s), excess=[_f(v) for v in h["excess"][i]], excess_stderr=[_f(v) for v in h["excess_se"][i]])
        if "generalization" in h:
            row.update(generalization=[_f(v) for v in h["generalization"][i]],
                       generalization_stderr=[_f(v) for v in h["generalization_se"][i]])
        if "f_mem" in h:
            row.update(f_mem=_f(h["f_mem"][i]), f_mem_stderr=_f(h["f_mem_se"][i]))
        step_rows.append(row)
    return dict(
        dataset=dict(name=name, n_points=n, dim=d, n_train=int(train_idx.size), n_held_out=int(held_idx.size)),
        config=cfg,
        convention="T = VE-equivalent noise variance in data units (docs/theory.md section 1)",
        definitions=dict(
            loss="mean over the batch of lambda(T) |D(y + sqrt(T) z, T) - y|^2 / d, EDM weighting lambda = (T + s^2)/(T s^2)",
            loss_floor="E_T[lambda(T) I(T)]/d: the lowest value of the training objective (theory section 10)",
            irreducible="I(T) = E tr Cov_n[y|x] over the training split",
            excess="E(T) = E|D(x, T) - m^n_T(x)|^2 against the exact empirical denoiser of the training split",
            generalization=f"G(T) against the {diag.reference} of the held-out split",
            f_mem="fraction of generated samples with d1/d2 < 1/3 (nearest / second-nearest training point), bootstrap stderr",
            tau_gen="first step reaching 90% of the drop of sum_T G(T), interpolated in log step",
            tau_mem="first step with f_mem >= 0.1, interpolated in log step",
        ),
        temperatures=[float(t) for t in h.get("temperatures", [])],
        irreducible=[_f(v) for v in h.get("irreducible", [])],
        loss_floor=_f(h["loss_floor"]) if "loss_floor" in h else None,
        loss_floor_stderr=_f(h["loss_floor_se"]) if "loss_floor_se" in h else None,
        loss_curve=curve,
        diagnostics=step_rows,
        tau_gen=_f(res.tau_gen), tau_mem=_f(res.tau_mem),
        final=dict(step=int(np.asarray(res.state.step)), loss=_f(np.mean(losses[-min(100, losses.size):])),
                   f_mem=step_rows[-1].get("f_mem") if step_rows else None),
        steps_per_s=_f(res.steps_per_s), wall_time_s=wall,
    )


# ----------------------------------------------------------------------------- figures
def _figures(r) -> dict:
    import numpy as np

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._io import figure_bytes

    out = {}
    fig, ax = plt.subplots(figsize=(6, 4))
    c = r["loss_curve"]
    ax.plot([p["step"] for p in c], [p["loss"] for p in c], "-", label="training loss (window means)")
    if r["loss_floor"] is not None:
        f, e = r["loss_floor"], r["loss_floor_stderr"] or 0.0
        ax.axhline(f, color="k", ls="--", lw=1, label="floor E_T[lambda I(T)]/d (exact integrand, Monte Carlo over T)")
        ax.axhspan(f - e, f + e, color="k", alpha=0.12, lw=0, label="floor +- 1 stderr")
    ax.set_xscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("weighted DSM loss per coordinate")
    ax.set_title("Denoising loss and its exact lower bound")
    ax.legend(fontsize=8)
    out["loss.png"] = figure_bytes(fig)
    plt.close(fig)

    rows = r["diagnostics"]
    if rows:
        steps = np.maximum([row["step"] for row in rows], 0.5)
        Ts = r["temperatures"]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        cmap = plt.get_cmap("viridis")
        for j, T in enumerate(Ts):
            col = cmap(j / max(1, len(Ts) - 1))
            axes[0].plot(steps, [row["excess"][j] for row in rows], "o-", ms=3, color=col, label=f"T = {T:.3g}")
            if "generalization" in rows[0]:
                axes[1].plot(steps, [row["generalization"][j] for row in rows], "o-", ms=3, color=col, label=f"T = {T:.3g}")
        for ax, title in ((axes[0], "excess loss vs exact empirical denoiser"),
                          (axes[1], "generalisation error vs held-out denoiser (proxy)")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("training step (step 0 drawn at 0.5)")
            ax.set_ylabel("squared error per state (data units)")
            ax.set_title(title, fontsize=10)
            if ax.get_legend_handles_labels()[0]:  # no generalisation curves without a held-out split
                ax.legend(fontsize=7, ncol=2)
        if "f_mem" in rows[0]:
            axes[2].errorbar(steps, [row["f_mem"] for row in rows], yerr=[row["f_mem_stderr"] for row in rows],
                             fmt="o-", ms=3, capsize=2, label="f_mem (bootstrap stderr)")
        for name, style in (("tau_gen", ":"), ("tau_mem", "--")):
            if r[name] is not None:
                for ax in axes:
                    ax.axvline(r[name], color="C3", ls=style, lw=1, label=name if ax is axes[2] else None)
        axes[2].set_xscale("log")
        axes[2].set_ylim(-0.02, 1.02)
        axes[2].set_xlabel("training step (step 0 drawn at 0.5)")
        axes[2].set_ylabel("memorised fraction of samples")
        axes[2].set_title("f_mem = P(d1/d2 < 1/3)", fontsize=10)
        if axes[2].get_legend_handles_labels()[0]:  # nothing to label without f_mem (--n-samples 0)
            axes[2].legend(fontsize=8)
        fig.tight_layout()
        out["diagnostics.png"] = figure_bytes(fig)
        plt.close(fig)
    return out


def _samples_figure(model, train, side, key) -> bytes:
    import numpy as np

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import thermodiff as td

    from ._io import figure_bytes

    x = np.asarray(td.generate(model, key, 16))
    tr = np.asarray(train)
    near = tr[np.argmin(((x[:, None, :] - tr[None, :, :]) ** 2).sum(-1), axis=1)]
    fig, axes = plt.subplots(2, 16, figsize=(16, 2.4))
    lo, hi = float(tr.min()), float(tr.max())
    for i in range(16):
        for row, img in ((0, x[i]), (1, near[i])):
            axes[row, i].imshow(img.reshape(side, side), cmap="gray_r", vmin=lo, vmax=hi)
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
    axes[0, 0].set_ylabel("sample", fontsize=8)
    axes[1, 0].set_ylabel("nearest\ntraining", fontsize=8)
    fig.suptitle("Generated samples (top) and their nearest training images (bottom)", fontsize=10)
    data = figure_bytes(fig)
    plt.close(fig)
    return data


def write_outputs(result: dict, figs: dict, out: Path) -> None:
    from ._cli import _write_all
    from ._io import json_bytes

    files = [(out / name, data) for name, data in figs.items()] + [(out / "training.json", json_bytes(result))]
    _write_all(files)


__all__ = ["add_parser", "train_command", "write_outputs"]
