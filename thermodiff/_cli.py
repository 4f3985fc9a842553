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

The contract (DESIGN.md "Bad input"; ``tests/test_cli_contract.py``):

- every numeric option has an explicit allowed range, checked while parsing (``Int``, ``Real``,
  ``Reals``): a value outside it, NaN, inf or a non-number is one line on stderr naming the
  option and its range, exit status 2;
- ``--out`` is checked before any computation: not a file, not under a file, writable, and with
  room on its disk for the report;
- the report is staged in a temporary folder and swapped in only after every number has been
  computed (``_io.write_report``): a failed or interrupted run leaves the previous report intact;
- every error ends in one line and exit status 2; an internal error (a bug) in one line naming
  the file that keeps its traceback;
- Ctrl-C ends the program within a moment with exit status 130 and one line, removing any
  unfinished staging folder (``_install_interrupt``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path

ENSEMBLES = ("two-deltas", "mixture", "gaussian", "hypersphere", "curie-weiss", "finite")


class UsageError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with DESIGN.md's bad-input contract: one line on stderr, exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        message = " ".join(str(message).split())
        # a range error of our option types: 'argument --seed: must be ...' -> '--seed must be ...'
        message = re.sub(r"^argument (\S+): must ", r"\1 must ", message)
        if message.endswith("expected one argument"):
            message += " (write a value that starts with '-' as --option=-value)"
        self.exit(2, f"thermodiff: error: {message} (see: {self.prog} --help)\n")


# ----------------------------------------------------------------------------- numeric options
# Every numeric option has an explicit allowed range, checked while parsing. The limits:
MAX_SEED = 2**31 - 1  # jax.random.key takes an int32 seed when float64 is off
MAX_COUNT = 2**31 - 1  # XLA's array dimensions are int32
MAX_PROBE_SIZE = 4096  # a probe is short runs at small n
MAX_DIM = 4096  # --dim, --n-spins, entries of --mu: the phase diagram holds several d x d float64
#                 matrices per temperature (16 x 8 d^2 bytes = 2 GiB at d = 4096; 80 GB for one
#                 matrix at d = 100000, the run that used to end in an out-of-memory abort)
MAX_CW_RATIO = 100.0  # --coupling / --data-temperature: the Curie-Weiss quadrature has
#                       4 sqrt(N J / T_d) + 53 nodes per state (2613 x 4096 values at the limits)
# Lengths (|--mu|, --radius) up to 1e30 and variances (--variance, --temperatures) in
# [1e-60, 1e60]: squares and ratios such as x.y/T (<= 1e120) stay far inside float64.
LENGTH = 1e30
VARIANCE = 1e60
TINY_T = 1e-60
MAX_TEMPERATURES = 100_000  # --n-temperatures and the entries of phase-diagram --temperatures
MAX_POINTS = 10_000  # landscape --points (the JSON holds points x temperatures numbers)
MAX_LANDSCAPE_T = 100  # entries of landscape --temperatures


def _show(text) -> str:
    text = str(text)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _num(x) -> str:
    if isinstance(x, int):
        return str(x)
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", f"{x:g}")  # 1e+50 -> 1e50, 1e-06 -> 1e-6


class Int:
    """argparse ``type``: an integer in [lo, hi]; anything else is a one-line usage error
    naming the option and the range."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi
        self.what = f"an integer in [{_num(lo)}, {_num(hi)}]"

    def __call__(self, text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:  # not an integer (also '1e3', 'nan', and over 4300 digits)
            value = None
        if value is None or not self.lo <= value <= self.hi:
            raise argparse.ArgumentTypeError(f"must be {self.what}, got {_show(text)}")
        return value


class Real:
    """argparse ``type``: a finite number in [lo, hi] (or open ends); NaN, inf and anything
    else are a one-line usage error naming the option and the range."""

    def __init__(self, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False, or_zero: bool = False):
        self.lo, self.hi, self.lo_open, self.hi_open, self.or_zero = lo, hi, lo_open, hi_open, or_zero
        self.interval = f"{'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
        self.what = f"{'0 or ' if or_zero else ''}a number in {self.interval}"

    def ok(self, v: float) -> bool:
        if self.or_zero and v == 0:
            return True
        return (math.isfinite(v) and (v > self.lo if self.lo_open else v >= self.lo)
                and (v < self.hi if self.hi_open else v <= self.hi))

    def __call__(self, text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            value = math.nan
        if not self.ok(value):
            raise argparse.ArgumentTypeError(f"must be {self.what}, got {_show(text)}")
        return value


class Reals:
    """argparse ``type``: a comma-separated list of ``lo_n`` to ``hi_n`` numbers, each in the
    range of ``each`` (a ``Real``); parsed to a list of floats."""

    def __init__(self, each: Real, lo_n: int, hi_n: int):
        self.each, self.lo_n, self.hi_n = each, lo_n, hi_n
        self.what = f"a comma-separated list of {lo_n} to {hi_n} numbers in {each.interval}"

    def __call__(self, text: str) -> list[float]:
        parts = [p for p in str(text).split(",") if p.strip()]
        if not self.lo_n <= len(parts) <= self.hi_n:
            raise argparse.ArgumentTypeError(f"must be {self.what}, got {len(parts)} values")
        values = []
        for p in parts:
            try:
                v = float(p.strip())
            except ValueError:
                v = math.nan
            if not self.each.ok(v):
                raise argparse.ArgumentTypeError(f"must be {self.what}, got {_show(p.strip())}")
            values.append(v)
        return values


class Ints(Reals):
    """argparse ``type``: a comma-separated list of integers in [lo, hi]."""

    def __init__(self, lo: int, hi: int, lo_n: int, hi_n: int):
        self.item, self.lo_n, self.hi_n = Int(lo, hi), lo_n, hi_n
        self.what = f"a comma-separated list of {lo_n} to {hi_n} integers in [{lo}, {hi}]"

    def __call__(self, text: str) -> list[int]:
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        if not self.lo_n <= len(parts) <= self.hi_n:
            raise argparse.ArgumentTypeError(f"must be {self.what}, got {len(parts)} values")
        try:
            return [self.item(p) for p in parts]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be {self.what}, got {_show(text)}") from None


def _floats(text, name: str) -> list[float]:
    if isinstance(text, (list, tuple)):  # already parsed and range-checked (``Reals``)
        return [float(v) for v in text]
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{name} must be a comma-separated list of numbers, got {text!r}") from None
    if not vals:
        raise UsageError(f"{name} must not be empty")
    return vals


def load_array(path: str):
    """A 2-D numeric array (N, d) from .npy or .npz (key 'data', 'points', 'X' or the only array)."""
    import numpy as np

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


def load_dataset(path: str):
    """(points (N, d), labels or None, name) from .npy or .npz for ``thermodiff analyze``.

    An .npz may hold the points under 'data', 'points', 'X' or 'x' (or as its only array) and
    integer class labels under 'labels' or 'y'.
    """
    import numpy as np

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
    import numpy as np

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
    probe = None
    if args.train_probe is not None:
        from ._analyze_probe import TrainProbe, probe_settings

        sizes = sorted(set(args.train_probe))
        n_avail = X.shape[0] if model_train is None else len(model_train)
        if len(sizes) < 2 or sizes[-1] > n_avail:
            raise UsageError(f"--train-probe needs 2 to 4 distinct sizes in [2, {min(n_avail, MAX_PROBE_SIZE)}] "
                             f"(the training points), got {','.join(map(str, args.train_probe))}")
        probe = TrainProbe(tuple(sizes), args.probe_steps, settings=probe_settings(model_info))
    stages = tuple(s for s in STAGES if s != "train probe" or probe is not None)
    progress = Progress(enabled=not args.no_progress, stages=stages)
    res, figs = analyze(X, labels, seed=args.seed, quick=args.quick, scale=args.scale, progress=progress, name=name,
                        model=model, model_train=model_train, model_info=model_info,
                        target_temperature=args.target_temperature, train_probe=probe, certified=args.certified)
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


def _load_model(path: str, X):
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
                parametrization=ck.meta["parametrization"], cli=extra.get("cli"), **_logged_onsets(ck.history))
    return ck.ema, idx, info


def _logged_onsets(history: dict) -> dict:
    """tau_mem and tau_gen read off a checkpoint's logged diagnostics (theory 10), when it has them."""
    import numpy as np

    from ._diagnostics import detect_tau_gen, detect_tau_mem

    steps, fm = history.get("step"), history.get("f_mem")
    if steps is None or fm is None or np.ndim(fm) != 1 or len(steps) < 2:
        return dict(logged_f_mem=False)
    gen = history.get("generalization")
    tg = detect_tau_gen(steps, np.sum(gen, axis=-1)) if gen is not None and np.ndim(gen) == 2 else None
    return dict(logged_f_mem=True, tau_mem=detect_tau_mem(steps, fm), tau_gen=tg)


def check_ensemble_options(args) -> None:
    """The checks between options of an ensemble (each option's own range is checked while
    parsing): before any work, one line naming the options."""
    name = args.ensemble
    if name not in ENSEMBLES:
        raise UsageError(f"--ensemble must be one of {', '.join(ENSEMBLES)}, got {name!r}")
    if name == "two-deltas" and not any(_floats(args.mu, "--mu")):
        raise UsageError("--mu must not be all zeros for --ensemble two-deltas (two deltas at one point are one delta)")
    if name == "curie-weiss" and args.coupling / args.data_temperature > MAX_CW_RATIO * (1 + 1e-12):
        raise UsageError(f"--coupling / --data-temperature must be <= {MAX_CW_RATIO:g} (the quadrature needs "
                         f"4 sqrt(N J/T_d) + 53 nodes per state), got {args.coupling:g} / {args.data_temperature:g}")
    if name == "finite" and args.data is None:
        raise UsageError("--ensemble finite needs --data FILE.npy|FILE.npz")


def build_ensemble(args):
    """The ensemble of ``args``; an error of its constructor names --ensemble."""
    check_ensemble_options(args)
    try:
        return _build_ensemble(args)
    except UsageError:
        raise
    except (ValueError, TypeError) as err:
        raise UsageError(f"--ensemble {args.ensemble}: {' '.join(str(err).split())}") from None


def _build_ensemble(args):
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
        X = load_array(args.data)
        if X.shape[1] > MAX_DIM:
            raise UsageError(f"--data: points of dimension d = {X.shape[1]}; at most {MAX_DIM} here (the "
                             "posterior covariances are d x d float64 matrices)")
        return td.FiniteDataset(jnp.asarray(X))
    raise UsageError(f"--ensemble must be one of {', '.join(ENSEMBLES)}, got {name!r}")


def _add_ensemble_arguments(q) -> None:
    mu, var = Reals(Real(-LENGTH, LENGTH), 1, MAX_DIM), Real(TINY_T, VARIANCE, or_zero=True)
    radius, n = Real(1 / LENGTH, LENGTH), Int(1, MAX_DIM)
    td_, j = Real(1e-6, 1e6), Real(1e-6, 1e6)
    q.add_argument("--ensemble", default="two-deltas", help=f"one of {', '.join(ENSEMBLES)}")
    q.add_argument("--mu", type=mu, default="1.0",
                   help=f"two-deltas/mixture/gaussian: mean vector, {mu.what} (not all 0 for two-deltas)")
    q.add_argument("--variance", type=var, default=0.25, help=f"mixture/gaussian component variance, {var.what}")
    q.add_argument("--radius", type=radius, default=1.0, help=f"hypersphere radius, {radius.what}")
    q.add_argument("--dim", type=n, default=3, help=f"hypersphere ambient dimension, {n.what}")
    q.add_argument("--n-spins", type=n, default=20, help=f"curie-weiss number of spins, {n.what}")
    q.add_argument("--data-temperature", type=td_, default=2.0,
                   help=f"curie-weiss data temperature T_d, {td_.what}, with J/T_d <= {MAX_CW_RATIO:g}")
    q.add_argument("--coupling", type=j, default=1.0, help=f"curie-weiss coupling J, {j.what}")
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
    temps, points = Reals(Real(TINY_T, VARIANCE), 1, MAX_LANDSCAPE_T), Int(3, MAX_POINTS)
    q.add_argument("--temperatures", type=temps, default=None,
                   help=f"{temps.what} (default: around the top covariance eigenvalue)")
    q.add_argument("--points", type=points, default=401, help=f"grid points along the axis, {points.what}")
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
    a.add_argument("--seed", type=Int(0, MAX_SEED), default=0,
                   help=f"PRNG seed of the simulations, an integer in [0, {MAX_SEED}]")
    a.add_argument("--quick", action="store_true", help="fewer trajectories and temperatures (a smoke run)")
    a.add_argument("--scale", default="minus-one-one", choices=("raw", "unit-variance", "minus-one-one"),
                   help="units of the analysis: 'minus-one-one' (default) maps the data to [-1, 1] by their global "
                        "min and max, as image diffusion models are trained; 'unit-variance' centres them and divides "
                        "by one global standard deviation; 'raw' keeps them. Temperatures are reported in these units "
                        "and in the data's own")
    a.add_argument("--max-points", type=Int(2, MAX_COUNT), default=None,
                   help=f"analyse a random subset of this many points, an integer in [2, {MAX_COUNT}] "
                        "(for data too large to simulate in minutes)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    a.add_argument("--model", default=None,
                   help="a checkpoint of `thermodiff train` (its folder or its checkpoint/ folder) trained on DATA: "
                        "adds 'measured in your model' columns beside the exact predictions")
    a.add_argument("--target-temperature", type=Real(TINY_T, VARIANCE, lo_open=True), default=None,
                   help="T* of the 'data and stopping' section (in the analysis units): the n for which the exact "
                        "score's collapse temperature stays below it; default 0.1 x the speciation headline")
    a.add_argument("--train-probe", type=Ints(2, MAX_PROBE_SIZE, 2, 4), nargs="?", const=[16, 32], default=None,
                   metavar="N1,N2",
                   help="train the model's architecture (or `thermodiff train`'s default) on 2 to 4 small random "
                        f"subsets (default 16,32; integers in [2, {MAX_PROBE_SIZE}]), two seeds each, and predict the "
                        "memorization onset tau_mem = c n for the whole training set (theory 10-11)")
    a.add_argument("--probe-steps", type=Int(100, 10**6), default=3000,
                   help="training steps of each probe run, an integer in [100, 1000000] (default 3000)")
    a.add_argument("--certified", action="store_true",
                   help="simulate with the certified sublinear exact denoiser (theory 14: error <= 1e-6 of the data "
                        "radius, dense fallback where the certificate fails): the same results, faster for large N "
                        "once the posterior has condensed, after a one-off index build")
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
    n_t, temps = Int(3, MAX_TEMPERATURES), Reals(Real(TINY_T, VARIANCE), 1, MAX_TEMPERATURES)
    r.add_argument("--n-temperatures", type=n_t, default=200,
                   help=f"grid size, {n_t.what} (default 200, log-spaced from T_c/5 to 5 T_c; around lambda_max "
                        "when there is no transition)")
    r.add_argument("--temperatures", type=temps, default=None,
                   help=f"explicit temperatures instead of the grid: {temps.what}, at least 3 distinct")
    r.add_argument("--exponents", action="store_true", help="also compute the critical exponents (theory section 4)")
    r.add_argument("--out", default="thermodiff-out", help="output folder")
    from ._cli_train import add_parser as add_train

    add_train(sub)
    from ._cli_data_need import add_parser as add_data_need

    add_data_need(sub)
    return p


def check_out(out: str, need_bytes: int = 0) -> None:
    """--out must be a folder, or creatable under its nearest existing ancestor, writable, with
    about ``need_bytes`` free on its disk: checked before any computation, so a bad destination
    is one line on stderr, not a lost run."""
    import shutil

    p = Path(out)
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"--out {out!r} exists and is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise UsageError(f"--out {out!r} is not writable")
        where = p
    else:
        parent = p.parent
        while not parent.exists():  # also False for a path under a file
            parent = parent.parent
        if not parent.is_dir():
            raise UsageError(f"--out {out!r}: {str(parent)!r} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"--out {out!r}: cannot create it in {str(parent)!r} (not writable)")
        where = parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return  # no usage figures (some network file systems): the write will tell
    if free < need_bytes:
        raise UsageError(f"--out {out!r}: {free / 1e6:.1f} MB free on its disk, the report needs about "
                         f"{need_bytes / 1e6:.1f} MB")


def report_bytes(args) -> int:
    """A generous estimate of the size of the report of ``args`` (for the free-space check)."""
    mb = 1_000_000
    if args.command == "landscape":
        n_t = len(args.temperatures) if args.temperatures else 6
        return 2 * mb + 30 * n_t * args.points
    if args.command == "phase-diagram":
        n_t = len(args.temperatures) if args.temperatures else args.n_temperatures
        return 2 * mb + 200 * n_t
    if args.command == "analyze":
        return 20 * mb
    if args.command == "train":  # the checkpoint (two copies while it is replaced) and the figures
        from ._cli_train import DEFAULTS

        width = args.width or DEFAULTS["width"]
        depth = DEFAULTS["depth"] if args.depth is None else args.depth
        steps = args.steps or DEFAULTS["steps"]
        params = 2 * 1024 * width + 3 * (depth + 1) * width * width  # float32: model, EMA, two Adam moments
        return 10 * mb + 2 * (16 * params + 16 * steps)
    return mb


def _check_options(args) -> None:
    """Checks between options, and --out, before any work."""
    if args.command in ("landscape", "phase-diagram"):
        check_ensemble_options(args)
    if args.command == "phase-diagram" and args.temperatures is not None and len(set(args.temperatures)) < 3:
        raise UsageError(f"--temperatures needs at least 3 distinct values, got {len(set(args.temperatures))}")
    if args.command not in ("train", "data-need"):  # train checks its folder itself; data-need has --json
        check_out(args.out, report_bytes(args))


def _write_all(files: list[tuple[Path, bytes]]) -> None:
    """Write a report all or nothing (``_io.write_report``): every file is first written in full
    into a staging folder, and only then swapped in. A failure while staging (no space, no
    permission) removes the staging folder and leaves the previous report untouched."""
    from ._io import write_report

    folders = {Path(path).parent for path, _ in files}
    if len(folders) != 1:
        raise ValueError(f"a report is one folder, got files in {sorted(map(str, folders))}")
    write_report(folders.pop(), {Path(path).name: data for path, data in files})


def _interrupted(out: Path) -> int:
    """Ctrl-C during training: one line naming the last checkpoint, exit status 130."""
    import json

    step = None
    metas = [out / "checkpoint" / "meta.json"] + sorted(out.glob(".checkpoint.old-*/meta.json"))
    for meta in metas:  # the second: a save cut between its two renames (restored on --resume)
        try:
            step = json.loads(meta.read_text())["step"]
            break
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if step is not None:
        where = f"the last checkpoint (step {step}) is in {out / 'checkpoint'}; continue with --resume"
    else:
        where = "no checkpoint was written yet"
    print(f"thermodiff: interrupted; {where}", file=sys.stderr)
    return 130


def _text(err: BaseException) -> str:
    """The message of ``err`` on one line (also for an exception whose ``str`` fails)."""
    try:
        return " ".join(str(err).split())
    except Exception:
        return f"(a {type(err).__name__} whose message cannot be shown)"


def _fail(err: BaseException) -> int:
    text = _text(err)
    msg = text if text else type(err).__name__
    if isinstance(err, MemoryError) or _out_of_memory(err):
        msg = f"out of memory ({msg}); choose a smaller problem (fewer points, temperatures or dimensions)"
    print(f"thermodiff: error: {msg}", file=sys.stderr)
    return 2


def _out_of_memory(err: BaseException) -> bool:
    """An allocation that failed inside XLA (a JaxRuntimeError, not a MemoryError)."""
    text = _text(err)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text


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


_CONTEXT: dict = {"args": None}  # the parsed options of the running command (for the Ctrl-C line)


def main(argv=None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return its exit status:
    0, 2 for every error (one line on stderr), 130 after Ctrl-C. Never raises SystemExit."""
    from . import _io

    t_start = time.perf_counter()
    _io.forget_report()
    try:
        args = make_parser().parse_args(argv)
    except SystemExit as stop:  # a usage error (2), --help or --version (0)
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    except KeyboardInterrupt:
        print("thermodiff: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug in the parser
        return _internal_error(err)
    _CONTEXT["args"] = args
    try:
        _check_options(args)
        _enable_compilation_cache()
        return _COMMANDS[args.command](args, t_start)
    except KeyboardInterrupt:
        return _say_interrupted(args)
    except (ValueError, TypeError, OSError, MemoryError) as err:
        return _fail(err)
    except BaseException as err:  # a bug (also SystemExit from a library): one line, the traceback in a file
        if isinstance(err, Exception) and _out_of_memory(err):
            return _fail(err)
        return _internal_error(err)


def _say_interrupted(args) -> int:
    from . import _io

    if args is None:
        print("thermodiff: interrupted", file=sys.stderr)
        return 130
    if args.command == "train":
        return _interrupted(Path(args.out))
    if args.command == "data-need":  # its --json is written by one rename: whole or not at all
        print("thermodiff: interrupted", file=sys.stderr)
        return 130
    written = _io.last_report()
    if written is not None and Path(written) == Path(args.out):
        print(f"thermodiff: interrupted after the report was written completely to {args.out}", file=sys.stderr)
    else:
        print(f"thermodiff: interrupted; nothing was written to {args.out}", file=sys.stderr)
    return 130


def _leave(*_) -> None:
    """Ctrl-C: wait for a report being swapped in, remove an unfinished staging folder, print
    one line and end the process at once with status 130 (no traceback, no interpreter teardown
    while XLA's threads run)."""
    from . import _io

    _io.COMMIT_LOCK.acquire(timeout=10)
    try:
        _io.abandon_staging()
        _say_interrupted(_CONTEXT["args"])
        sys.stderr.flush()
    finally:
        os._exit(130)


def _install_interrupt() -> None:
    """Make Ctrl-C end the program promptly with one line and status 130 (``_leave``).

    A KeyboardInterrupt raised into a running program is unreliable: Python drops one that lands
    in a destructor or a garbage-collector callback (JAX runs one on every collection), one that
    lands while a C extension is being imported can crash the process, and the handler itself
    runs only when the main thread returns from XLA. So the handler raises nothing: it leaves
    at once, and a watcher thread, woken by ``signal.set_wakeup_fd`` when the signal arrives on
    any thread, leaves even while the main thread is inside a long XLA call. Only for the
    program (``run``); ``main`` called in-process keeps Python's KeyboardInterrupt.
    """
    import signal
    import threading

    from . import _io

    if threading.current_thread() is not threading.main_thread():
        return
    r, w = os.pipe()
    os.set_blocking(w, False)

    def watch():
        while True:
            try:
                data = os.read(r, 64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGINT in data:
                _leave()

    def handler(signum, frame):
        if _io.writing_report():  # the main thread holds the report's lock: the watcher leaves after it
            return
        _leave()

    signal.signal(signal.SIGINT, handler)  # first: from here on Ctrl-C is one line
    signal.set_wakeup_fd(w)
    threading.Thread(target=watch, name="thermodiff-interrupt", daemon=True).start()


def run() -> None:
    """The console entry point: Ctrl-C handling, ``main()``, then exit (after status 130 at once,
    ``os._exit``: a normal interpreter shutdown can crash in the teardown of XLA's threads)."""
    _install_interrupt()
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if code == 130:
        os._exit(130)
    sys.exit(code)


def _internal_error(err: BaseException) -> int:
    import tempfile
    import traceback

    msg = _text(err) or "(no message)"
    try:
        fd, path = tempfile.mkstemp(prefix="thermodiff-traceback-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            fh.write("".join(traceback.format_exception(err)))
        where = f"full traceback in {path}"
    except Exception as save_err:  # an unwritable temporary folder: still one line
        where = f"the traceback could not be saved: {type(save_err).__name__}"
    print(f"thermodiff: internal error: {type(err).__name__}: {msg} ({where}; please report it)", file=sys.stderr)
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


def _cmd_data_need(args, t_start) -> int:
    from ._cli_data_need import data_need_command

    return data_need_command(args, t_start, load_dataset)


_COMMANDS = {"train": _cmd_train, "analyze": _cmd_analyze, "phase-diagram": _cmd_phase_diagram,
             "landscape": _cmd_landscape, "data-need": _cmd_data_need}


if __name__ == "__main__":  # pragma: no cover
    run()
