"""The ``thermodiff`` command line.

``thermodiff landscape``: the Landau free-energy landscape Phi_T(x) (theory section 2) of an
ensemble along its principal axis, at temperatures around its critical scale, with the
thermodynamics at the data mean; writes ``landscape.png`` and ``landscape.json``.

``thermodiff analyze [DATA.npy|DATA.npz]``: speciation and memorization of a dataset (the embedded UCI
digits by default), predicted and measured with the exact empirical score; writes report.md,
results.json and PNG figures (theory sections 3, 6, 9).

``thermodiff phase-diagram``: order parameter, susceptibility and heat capacity of an ensemble
versus T on its equilibrium branch, with both critical temperatures (thermodynamic and VP drift,
theory section 5) marked; writes ``phase_diagram.png`` and ``phase_diagram.json``.

Bad input gives one line on stderr and exit status 2; outputs are written atomically, and only
after every number has been computed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ENSEMBLES = ("two-deltas", "mixture", "gaussian", "hypersphere", "curie-weiss", "finite")


class UsageError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with DESIGN.md's bad-input contract: one line on stderr, exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        message = " ".join(str(message).split())
        self.exit(2, f"thermodiff: error: {message} (see: {self.prog} --help)\n")


def _floats(text: str, name: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{name} must be a comma-separated list of numbers, got {text!r}") from None
    if not vals:
        raise UsageError(f"{name} must not be empty")
    return vals


def load_array(path: str) -> np.ndarray:
    """A 2-D numeric array (N, d) from .npy or .npz (key 'data', 'points', 'X' or the only array)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--data: cannot read {path!r}: no such file")
    try:
        obj = np.load(p, allow_pickle=False)
        if isinstance(obj, np.lib.npyio.NpzFile):
            keys = list(obj.keys())
            key = next((k for k in ("data", "points", "X") if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise UsageError(f"--data: {path!r} holds arrays {keys}; name one 'data', 'points' or 'X'")
            obj = obj[key]
        arr = np.asarray(obj)
    except UsageError:
        raise
    except Exception as err:  # unreadable, not numpy, pickled objects, empty archive
        raise UsageError(f"--data: cannot read {path!r} as .npy/.npz ({type(err).__name__})") from None
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise UsageError(f"--data: the array must be real numeric, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise UsageError("--data: expected an array of shape (N, d), got a scalar")
    if arr.shape[0] < 2:
        raise UsageError(f"--data: need at least 2 points, got {arr.shape[0]}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[1] < 1:
        raise UsageError(f"--data: points must have dimension d >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise UsageError("--data: the array contains NaN or inf")
    return arr.astype(np.float64)


def load_dataset(path: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(points (N, d), labels or None, name) from .npy or .npz for ``thermodiff analyze``.

    An .npz may hold the points under 'data', 'points', 'X' or 'x' (or as its only array) and
    integer class labels under 'labels' or 'y'.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"DATA: cannot read {path!r}: no such file")
    labels = None
    try:
        obj = np.load(p, allow_pickle=False)
        if isinstance(obj, np.lib.npyio.NpzFile):
            keys = list(obj.keys())
            lab_key = next((k for k in ("labels", "y") if k in keys), None)
            rest = [k for k in keys if k != lab_key]
            key = next((k for k in ("data", "points", "X", "x") if k in rest), rest[0] if len(rest) == 1 else None)
            if key is None:
                raise UsageError(f"DATA: {path!r} holds arrays {keys}; name the points 'data', 'points' or 'X'")
            arr = np.asarray(obj[key])
            if lab_key is not None:
                labels = np.asarray(obj[lab_key])
        else:
            arr = np.asarray(obj)
    except UsageError:
        raise
    except Exception as err:  # unreadable, not numpy, pickled objects, empty archive
        raise UsageError(f"DATA: cannot read {path!r} as .npy/.npz ({type(err).__name__})") from None
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)) or arr.dtype == np.bool_:
        raise UsageError(f"DATA: the array must be real numeric (integer or float), got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise UsageError(f"DATA: expected a 2-D array of shape (N points, d features), got shape {arr.shape} "
                         "(flatten images to (N, h*w))")
    if arr.shape[0] < 2:
        raise UsageError(f"DATA: need at least 2 points, got {arr.shape[0]}")
    if arr.shape[1] < 1:
        raise UsageError(f"DATA: points must have dimension d >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise UsageError("DATA: the array contains NaN or inf")
    if labels is not None:
        if labels.shape != (arr.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise UsageError(f"DATA: labels must be integers of shape ({arr.shape[0]},), got {labels.dtype} {labels.shape}")
    if float(np.max(np.var(arr.astype(np.float64), axis=0))) <= 0:
        raise UsageError("DATA: all points are identical (zero variance): nothing to analyse")
    return arr.astype(np.float64), labels, p.name


def analyze_command(args) -> tuple[dict, dict, str]:
    from ._analyze import STAGES, analyze
    from ._analyze_text import report_markdown
    from ._progress import Progress

    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.max_points is not None and args.max_points < 2:
        raise UsageError(f"--max-points must be an integer >= 2, got {args.max_points}")
    if args.data is None:
        from ._data import load_digits

        X, labels = load_digits()
        name = "UCI optical digits (1797 x 64, embedded; CC BY 4.0)"
    else:
        X, labels, name = load_dataset(args.data)
    if args.max_points is not None and args.max_points < X.shape[0]:
        if args.model is not None:
            raise UsageError("--max-points cannot be combined with --model (the model's training split refers to all of DATA)")
        keep = np.sort(np.random.default_rng(args.seed).choice(X.shape[0], args.max_points, replace=False))
        X, labels = X[keep], (None if labels is None else labels[keep])
        name = f"{name}, random subset of {args.max_points} points (seed {args.seed})"
    model, model_train, model_info = _load_model(args.model, X) if args.model is not None else (None, None, None)
    progress = Progress(enabled=not args.no_progress, stages=STAGES)
    res, figs = analyze(X, labels, seed=args.seed, quick=args.quick, scale=args.scale, progress=progress, name=name,
                        model=model, model_train=model_train, model_info=model_info)
    timings = progress.finish()
    res["wall_time_by_stage_s"] = timings
    return res, figs, report_markdown(res, timings)


def _one_line(res: dict) -> str:
    """The two headline temperatures with their errors and DDPM steps, for stdout."""
    h = res["headline"]
    parts = []
    for kind, key in (("speciation", h["speciation_estimator"]), ("memorization", h["memorization_estimator"])):
        e = res[kind][key] if key is not None else None
        if e is None or e["T"] is None:
            parts.append(f"{kind} n/a")
            continue
        pm = f" +- {e['stderr']:.2g}" if e.get("stderr") is not None else ""
        step = f", DDPM step {e['ddpm_step']:.0f}" if e["ddpm_step"] is not None else ""
        parts.append(f"{kind} T = {e['T']:.4g}{pm}{step}")
    return "; ".join(parts) + f" ({res['scale']['name']} units)"


def _load_model(path: str, X: np.ndarray):
    """(model, training indices into X, info) from a checkpoint trained on X (or on its train split)."""
    from ._checkpoint import CheckpointError, check_data, data_fingerprint, load_checkpoint, read_meta

    try:
        meta = read_meta(path)
    except CheckpointError as err:
        raise UsageError(f"--model: {err}") from None
    extra = meta.get("extra") or {}
    idx = None
    try:
        if extra.get("source") is not None:  # written by `thermodiff train`: a split of its DATA
            if data_fingerprint(X)["sha256"] != extra["source"]["sha256"]:
                src = extra["source"]
                raise CheckpointError(f"the model was trained on another dataset (N = {src['n_points']}, d = {src['dim']}) "
                                      f"than DATA (N = {X.shape[0]}, d = {X.shape[1]})")
            from ._cli_train import _split

            idx = _split(X.shape[0], extra["held_out_fraction"], extra["train_indices_seed"])[0]
            check_data(meta, X[idx])
        else:
            check_data(meta, X)
        ck = load_checkpoint(path)
    except CheckpointError as err:
        raise UsageError(f"--model: {err}") from None
    if ck.meta.get("n_models"):
        raise UsageError("--model: the checkpoint holds a stack of models; analyse one at a time")
    info = dict(path=str(path), step=ck.step, architecture=ck.meta["architecture"].get("name"),
                parametrization=ck.meta["parametrization"])
    return ck.ema, idx, info


def build_ensemble(args):
    import jax.numpy as jnp

    import thermodiff as td

    name = args.ensemble
    if name == "two-deltas":
        return td.TwoDeltas(jnp.asarray(_floats(args.mu, "--mu")))
    if name == "mixture":
        mu = jnp.asarray(_floats(args.mu, "--mu"))
        return td.GaussianMixture(jnp.stack([mu, -mu]), args.variance)
    if name == "gaussian":
        return td.Gaussian(jnp.asarray(_floats(args.mu, "--mu")), args.variance)
    if name == "hypersphere":
        return td.Hypersphere(args.radius, args.dim)
    if name == "curie-weiss":
        return td.CurieWeiss(args.n_spins, args.data_temperature, args.coupling)
    if name == "finite":
        if args.data is None:
            raise UsageError("--ensemble finite needs --data FILE.npy|FILE.npz")
        return td.FiniteDataset(jnp.asarray(load_array(args.data)))
    raise UsageError(f"--ensemble must be one of {', '.join(ENSEMBLES)}, got {name!r}")


def _add_ensemble_arguments(q) -> None:
    q.add_argument("--ensemble", default="two-deltas", help=f"one of {', '.join(ENSEMBLES)}")
    q.add_argument("--mu", default="1.0", help="two-deltas/mixture/gaussian: mean vector, comma-separated")
    q.add_argument("--variance", type=float, default=0.25, help="mixture/gaussian component variance")
    q.add_argument("--radius", type=float, default=1.0, help="hypersphere radius")
    q.add_argument("--dim", type=int, default=3, help="hypersphere ambient dimension")
    q.add_argument("--n-spins", type=int, default=20, help="curie-weiss number of spins")
    q.add_argument("--data-temperature", type=float, default=2.0, help="curie-weiss data temperature")
    q.add_argument("--coupling", type=float, default=1.0, help="curie-weiss coupling J")
    q.add_argument("--data", default=None, help="finite: a .npy/.npz array of shape (N, d)")


def ensemble_parameters(args, ens) -> dict:
    """The parameters that define the chosen ensemble, for the JSON report."""
    name = args.ensemble
    if name == "two-deltas":
        return dict(mu=_floats(args.mu, "--mu"))
    if name in ("mixture", "gaussian"):
        return dict(mu=_floats(args.mu, "--mu"), variance=args.variance)
    if name == "hypersphere":
        return dict(radius=args.radius, dim=args.dim)
    if name == "curie-weiss":
        return dict(n_spins=args.n_spins, data_temperature=args.data_temperature, coupling=args.coupling)
    if name == "finite":
        return dict(data=str(Path(args.data).resolve()), n_points=int(ens.n_points) if hasattr(ens, "n_points") else None,
                    dim=int(ens.dim))
    return {}


def _positive_temperatures(text: str) -> list[float]:
    temps = _floats(text, "--temperatures")
    if not all(math.isfinite(t) and t > 0 for t in temps):
        raise UsageError("--temperatures must be finite and > 0 (VE-equivalent noise variances)")
    return temps


def phase_diagram(args, t_start: float) -> tuple[dict, bytes]:
    import jax

    from . import _phase_diagram

    if not 3 <= args.n_temperatures <= 100_000:
        raise UsageError(f"--n-temperatures must be an integer in [3, 100000], got {args.n_temperatures}")
    temps = None
    if args.temperatures is not None:
        temps = _positive_temperatures(args.temperatures)
        if len(set(temps)) < 3:
            raise UsageError(f"--temperatures needs at least 3 distinct values, got {len(set(temps))}")
    from ._progress import Progress

    jax.config.update("jax_enable_x64", True)
    ens = build_ensemble(args)
    progress = Progress(enabled=True, stages=())  # after every input check: errors stay one line
    result = _phase_diagram.compute(
        ens, name=args.ensemble, parameters=ensemble_parameters(args, ens),
        n_temperatures=args.n_temperatures, temperatures=temps, exponents=args.exponents, t_start=t_start,
        progress=progress,
    )
    png = _phase_diagram.plot(result)
    progress.finish()
    result["wall_time_s"] = time.perf_counter() - t_start
    return result, png


def make_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="thermodiff", description="Thermodynamics of generative diffusion.")
    p.add_argument("--version", action="version", version=f"thermodiff {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("landscape", help="free-energy landscapes Phi_T(x) of an ensemble across T")
    _add_ensemble_arguments(q)
    q.add_argument("--temperatures", default=None, help="comma-separated temperatures (default: around the top covariance eigenvalue)")
    q.add_argument("--points", type=int, default=401, help="grid points along the axis")
    q.add_argument("--out", default="thermodiff-out", help="output folder")
    a = sub.add_parser(
        "analyze",
        help="where a dataset speciates and memorises (default: the embedded digits)",
        description=("Speciation (where a diffusion model commits to a class) and memorization (where it "
                     "starts to reproduce training points) of a dataset: one headline answer each, with an "
                     "uncertainty and the rule that chose it, and every other estimator as evidence; predicted "
                     "from the spectrum and random-energy thermodynamics and measured with the exact empirical "
                     "score. Writes report.md, results.json and PNG figures in --out, only after everything was "
                     "computed."),
    )
    a.add_argument("data", nargs="?", default=None,
                   help="a .npy array (N, d) or an .npz with 'data'/'points'/'X' and optional integer 'labels'/'y' "
                        "(default: the embedded UCI digits)")
    a.add_argument("--out", default="thermodiff-out", help="output folder")
    a.add_argument("--seed", type=int, default=0, help="PRNG seed of the simulations")
    a.add_argument("--quick", action="store_true", help="fewer trajectories and temperatures (a smoke run)")
    a.add_argument("--scale", default="minus-one-one", choices=("raw", "unit-variance", "minus-one-one"),
                   help="units of the analysis: 'minus-one-one' (default) maps the data to [-1, 1] by their global "
                        "min and max, as image diffusion models are trained; 'unit-variance' centres them and divides "
                        "by one global standard deviation; 'raw' keeps them. Temperatures are reported in these units "
                        "and in the data's own")
    a.add_argument("--max-points", type=int, default=None,
                   help="analyse a random subset of this many points (for data too large to simulate in minutes)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    a.add_argument("--model", default=None,
                   help="a checkpoint of `thermodiff train` (its folder or its checkpoint/ folder) trained on DATA: "
                        "adds 'measured in your model' columns beside the exact predictions")
    r = sub.add_parser(
        "phase-diagram",
        help="order parameter, susceptibility and heat capacity versus T, with T_c marked",
        description=("Order parameter, self-consistent susceptibility and heat capacity of an ensemble "
                     "versus T (= VE-equivalent noise variance) on its equilibrium branch, with the "
                     "thermodynamic and the VP-drift critical temperatures (for data without a "
                     "symmetric point: the first split); writes phase_diagram.png and "
                     "phase_diagram.json in --out, only after everything was computed."),
    )
    _add_ensemble_arguments(r)
    r.add_argument("--n-temperatures", type=int, default=200,
                   help="grid size (default 200, log-spaced from T_c/5 to 5 T_c; around lambda_max when there is no transition)")
    r.add_argument("--temperatures", default=None, help="an explicit comma-separated list of temperatures instead of the grid")
    r.add_argument("--exponents", action="store_true", help="also compute the critical exponents (theory section 4)")
    r.add_argument("--out", default="thermodiff-out", help="output folder")
    from ._cli_train import add_parser as add_train

    add_train(sub)
    return p


def check_out(out: str) -> None:
    """--out must be a folder, or creatable under its nearest existing ancestor: checked before any
    computation, so an unwritable destination is one line on stderr, not a lost run."""
    p = Path(out)
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"--out {out!r} exists and is not a folder")
        if not os.access(p, os.W_OK):
            raise UsageError(f"--out {out!r} is not writable")
        return
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--out {out!r}: {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--out {out!r}: cannot create it in {str(parent)!r} (not writable)")


def _write_all(files: list[tuple[Path, bytes]]) -> None:
    """Write a report all or nothing: every file is first written in full to a temporary file
    beside its destination (the step that can fail: no space, no permission), and only then are
    they renamed into place. A failure while staging removes the temporary files and leaves the
    previous report untouched."""
    import tempfile

    umask = os.umask(0)
    os.umask(umask)
    staged = []
    try:
        for path, data in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            staged.append(tmp)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private (0600)
    except BaseException:
        for tmp in staged:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise
    for tmp, (path, _) in zip(staged, files):
        os.replace(tmp, path)


def _interrupted(out: Path) -> int:
    """Ctrl-C during training: one line naming the last checkpoint, exit status 130."""
    import json

    try:
        step = json.loads((out / "checkpoint" / "meta.json").read_text())["step"]
        where = f"the last checkpoint (step {step}) is in {out / 'checkpoint'}; continue with --resume"
    except (OSError, ValueError, KeyError):
        where = "no checkpoint was written yet"
    print(f"thermodiff: interrupted; {where}", file=sys.stderr)
    return 130


def _fail(err: BaseException) -> int:
    text = " ".join(str(err).split())
    msg = text if text else type(err).__name__
    print(f"thermodiff: error: {msg}", file=sys.stderr)
    return 2


def _enable_compilation_cache() -> None:
    """Keep XLA's compiled programs on disk between runs, if THERMODIFF_CACHE_DIR names a folder.

    Compilation dominates a short run on a CPU (a training loop, its diagnostics and the exact
    floor take 10-30 s to compile and seconds to run); with JAX's persistent cache a repeated or
    resumed run starts in about a second. It is opt-in: with jaxlib 0.10.2 we saw one process
    abort inside JAX while reading a cached CPU executable during a long test session (most likely
    the same exhaustion of memory mappings that tests/conftest.py now prevents).
    """
    where = os.environ.get("THERMODIFF_CACHE_DIR", "").strip()
    if not where or where.lower() in ("off", "0", "none"):
        return
    try:
        os.makedirs(where, exist_ok=True)
    except OSError:
        return  # an unwritable cache is no reason to fail: compile as usual
    import jax

    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = make_parser().parse_args(argv)
    previous = _install_sigint(args)
    try:
        if args.command != "train":  # train checks its folder itself (resume rules)
            check_out(args.out)
        _enable_compilation_cache()
        return _COMMANDS[args.command](args, t_start)
    except KeyboardInterrupt:
        return _say_interrupted(args)
    except (ValueError, TypeError, OSError, MemoryError) as err:
        return _fail(err)
    except Exception as err:  # a bug: one line, the traceback kept in a file
        return _internal_error(err)
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGINT, previous[0])
            sys.unraisablehook = previous[1]


def _say_interrupted(args) -> int:
    if args.command == "train":
        return _interrupted(Path(args.out))
    print(f"thermodiff: interrupted; nothing was written to {args.out}", file=sys.stderr)
    return 130


def _install_sigint(args):
    """Ctrl-C raises KeyboardInterrupt as usual, but Python drops an interrupt that lands inside a
    destructor or a garbage-collector callback (JAX runs one on every collection): the run went on
    and printed a traceback. Such a dropped interrupt now ends the process at once with the one
    line and status 130, and a timer does the same if the process is still alive 3 s after the
    signal. Returns what to restore (None off the main thread)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def leave():
        _say_interrupted(args)
        sys.stderr.flush()
        os._exit(130)

    def handler(signum, frame):
        timer = threading.Timer(3.0, leave)
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    previous_hook = sys.unraisablehook

    def hook(unraisable):
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            leave()
        previous_hook(unraisable)

    sys.unraisablehook = hook
    return signal.signal(signal.SIGINT, handler), previous_hook


def run() -> None:
    """The console entry point: ``main()``, then exit. After Ctrl-C the process leaves at once
    (``os._exit``): an interrupt can land while XLA compiles or runs on its own threads, and a
    normal interpreter shutdown then crashes in their teardown (a segfault after the one-line
    message, seen in tests)."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


def _internal_error(err: BaseException) -> int:
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="thermodiff-traceback-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(traceback.format_exception(err)))
    msg = " ".join(str(err).split()) or "(no message)"
    print(f"thermodiff: internal error: {type(err).__name__}: {msg} (full traceback in {path}; please report it)",
          file=sys.stderr)
    return 2


def _cmd_train(args, t_start) -> int:
    from ._cli_train import UsageError as TrainUsageError, train_command, write_outputs

    try:
        result, figs, out = train_command(args, load_dataset)
        write_outputs(result, figs, out)
    except TrainUsageError as err:
        return _fail(err)
    fm = result["final"]["f_mem"]
    print(f"train: {result['final']['step']} steps, loss {result['final']['loss']:.4g} "
          f"(floor {result['loss_floor'] or float('nan'):.4g}), f_mem {float('nan') if fm is None else fm:.3g}, "
          f"tau_gen {result['tau_gen'] or float('nan'):.4g}, tau_mem {result['tau_mem'] or float('nan'):.4g}; "
          f"wrote {out / 'training.json'} and {out / 'checkpoint'} ({time.perf_counter() - t_start:.1f} s)")
    return 0


def _cmd_analyze(args, t_start) -> int:
    from ._io import json_bytes

    res, figs, md = analyze_command(args)
    out = Path(args.out)
    files = [(out / name, data) for name, data in figs.items()]
    _write_all(files + [(out / "results.json", json_bytes(res)), (out / "report.md", md.encode())])
    print(f"analyze: {_one_line(res)}; wrote {out / 'report.md'} ({time.perf_counter() - t_start:.1f} s)")
    return 0


def _cmd_phase_diagram(args, t_start) -> int:
    from ._io import json_bytes
    from ._phase_diagram import summary

    result, png = phase_diagram(args, t_start)
    out = Path(args.out)
    _write_all([(out / "phase_diagram.png", png), (out / "phase_diagram.json", json_bytes(result))])
    print(f"phase-diagram {args.ensemble}: {summary(result)}; wrote {out / 'phase_diagram.png'} "
          f"and {out / 'phase_diagram.json'} ({time.perf_counter() - t_start:.1f} s)")
    return 0


def _cmd_landscape(args, t_start) -> int:
    from ._io import json_bytes
    from ._landscape import landscape, plot_landscape
    from ._progress import Progress

    if args.points < 3:
        raise UsageError("--points must be an integer >= 3")
    progress = Progress(enabled=True, stages=())
    result = landscape(args, build_ensemble, _floats, progress)
    progress.finish()
    png = plot_landscape(result)
    out = Path(args.out)
    _write_all([(out / "landscape.json", json_bytes(result)), (out / "landscape.png", png)])
    print(f"wrote {out / 'landscape.png'} and {out / 'landscape.json'}")
    return 0


_COMMANDS = {"train": _cmd_train, "analyze": _cmd_analyze, "phase-diagram": _cmd_phase_diagram,
             "landscape": _cmd_landscape}


if __name__ == "__main__":  # pragma: no cover
    run()
