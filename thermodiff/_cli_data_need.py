"""``thermodiff data-need``: how much data a diffusion model needs, by every estimate of theory 11.

``thermodiff data-need [DATA] [--target-temperature T] [--probe N1:TAU1,N2:TAU2] [--features P]
[--json OUT]`` loads DATA like ``thermodiff analyze`` (a .npy/.npz array, the embedded UCI digits
by default) and maps it to the same units (``--scale``, default [-1, 1]), then prints the table
of ``data_need``: the REM sizes for a target collapse temperature (isotropic and from the
covariance spectrum), the collapse temperature at the data's own size, the linear n ~ d and
random-features p = n boundaries, and, given the memorisation onsets of two short runs
(``--probe``), the extrapolated tau_mem(n) with its band and the early-stopping window.

Every input is checked before any work (one line on stderr, exit status 2); ``--json`` is checked
first and written atomically (a temporary file and a rename) after everything was computed.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

MAX_PROBES = 64
MAX_STEPS = 1e15


class UsageError(ValueError):
    pass


class Probe:
    """argparse ``type``: comma-separated N:TAU (or N:TAU:STDERR) pairs, N an integer >= 2 and
    TAU (and STDERR) numbers in (0, 1e15]; parsed to ``{N: TAU}`` or ``{N: (TAU, STDERR)}``."""

    def __init__(self):
        from ._cli import MAX_COUNT, _num

        self.max_n = MAX_COUNT
        self.what = (f"a comma-separated list of 1 to {MAX_PROBES} N:TAU_MEM pairs (or N:TAU_MEM:STDERR), "
                     f"N an integer in [2, {MAX_COUNT}] and TAU_MEM, STDERR numbers of steps in (0, {_num(MAX_STEPS)}]")

    def __call__(self, text: str) -> dict:
        from ._cli import Int, Real, _show

        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        if not 1 <= len(parts) <= MAX_PROBES:
            raise argparse.ArgumentTypeError(f"must be {self.what}, got {len(parts)} pairs")
        size, steps, out = Int(2, self.max_n), Real(0.0, MAX_STEPS, lo_open=True), {}
        for p in parts:
            fields = p.split(":")
            try:
                if len(fields) not in (2, 3):
                    raise argparse.ArgumentTypeError("")
                n, vals = size(fields[0]), [steps(f) for f in fields[1:]]
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(f"must be {self.what}, got {_show(p)}") from None
            if n in out:
                raise argparse.ArgumentTypeError(f"must be {self.what} with distinct N, got N = {n} twice")
            out[n] = vals[0] if len(vals) == 1 else tuple(vals)
        if len({isinstance(v, tuple) for v in out.values()}) > 1:
            raise argparse.ArgumentTypeError(f"must be {self.what}, all with or all without STDERR")
        return out


def add_parser(sub) -> None:
    from ._cli import MAX_COUNT, TINY_T, VARIANCE, Int, Real

    q = sub.add_parser(
        "data-need",
        help="how much data a diffusion model needs: every estimate of theory 11 (default: the embedded digits)",
        description=("How many training points a diffusion model needs before it stops memorising: the size whose "
                     "exact empirical score collapses at a target temperature (random energy model, isotropic and "
                     "from the covariance spectrum), the collapse temperature at the data's own size, the linear "
                     "n ~ d and random-features p = n boundaries, and the memorisation onset tau_mem = c n "
                     "extrapolated from two short runs. Prints a table; --json writes it as JSON."),
    )
    q.add_argument("data", nargs="?", default=None,
                   help="a .npy array (N, d) or an .npz with 'data'/'points'/'X' (default: the embedded UCI digits)")
    q.add_argument("--scale", default="minus-one-one", choices=("raw", "unit-variance", "minus-one-one"),
                   help="units of the data, as in `thermodiff analyze` (default minus-one-one: global min/max to "
                        "[-1, 1]); temperatures are in these units")
    T, kl = Real(TINY_T, VARIANCE), Real(1e-12, 1e12)
    p, s = Int(1, MAX_COUNT), Real(0.0, MAX_STEPS, lo_open=True)
    probe = Probe()
    q.add_argument("--target-temperature", type=T, default=None,
                   help=f"target collapse temperature T* (VE noise variance in --scale units), {T.what}")
    q.add_argument("--target-kl", type=kl, default=None, help=f"target KL for the linear n ~ d/KL scaling, {kl.what}")
    q.add_argument("--features", type=p, default=None, help=f"number of random features p, {p.what}")
    q.add_argument("--probe", type=probe, default=None,
                   help=f"measured memorisation onsets of short runs, e.g. 64:1200,128:2500: {probe.what}")
    q.add_argument("--fit-exponent", action="store_true",
                   help="fit tau_mem = c n^a with a free exponent a (needs 3 sizes for an error; default a = 1)")
    q.add_argument("--tau-gen", type=s, default=None,
                   help=f"generation time in steps (needs --probe): the early-stopping window, {s.what}")
    q.add_argument("--train-steps", type=s, default=None,
                   help=f"planned training steps (needs --probe): the n that does not memorise by then, {s.what}")
    q.add_argument("--json", default=None, metavar="OUT", help="also write the table as JSON to this file (atomically)")


def check_json(path: str) -> None:
    """--json must be a file path (not a folder) whose nearest existing folder is writable."""
    p = Path(path)
    if str(path).strip() == "":
        raise UsageError("--json must be a file path, got ''")
    if p.is_dir():
        raise UsageError(f"--json {path!r} is a folder; give a file path")
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--json {path!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"--json {path!r} is not writable")


def check_options(args) -> None:
    """The checks between options, before any work."""
    for name in ("tau_gen", "train_steps"):
        if getattr(args, name) is not None and args.probe is None:
            raise UsageError(f"--{name.replace('_', '-')} needs --probe (the memorisation onsets to extrapolate)")
    if args.fit_exponent and args.probe is not None and len(args.probe) < 2:
        raise UsageError("--fit-exponent needs --probe with at least 2 distinct sizes")
    if args.json is not None:
        check_json(args.json)


def data_need_command(args, t_start, load_dataset) -> int:
    """Run ``thermodiff data-need``: print the table, write --json; returns the exit status."""
    check_options(args)
    if args.data is None:
        from ._data import load_digits

        X, _ = load_digits()
        name = "UCI optical digits (1797 x 64, embedded; CC BY 4.0)"
    else:
        X, _, name = load_dataset(args.data)
    from ._data_need import data_need
    from ._units import data_scale

    try:
        scale = data_scale(X, args.scale)
    except ValueError as err:
        raise UsageError(f"--scale {args.scale}: {err}") from None
    need = data_need(scale.apply(X), target_temperature=args.target_temperature, target_kl=args.target_kl,
                     features=args.features, probe=args.probe, exponent=None if args.fit_exponent else 1.0,
                     tau_gen=args.tau_gen, train_steps=args.train_steps)
    factor = float(scale.a) ** 2
    result = dict(dataset=dict(name=name, n_points=int(X.shape[0]), dim=int(X.shape[1])),
                  scale=dict(name=scale.name, a=float(scale.a), temperature_factor=factor,
                             note="T (scaled units) = temperature_factor x T_data (the data's own units)"),
                  **need.to_dict())
    result["temperatures_in_data_units"] = {
        r.key: r.value / factor for r in need.rows if r.unit == "temperature" and r.value is not None}
    if args.target_temperature is not None:
        result["temperatures_in_data_units"]["target_temperature"] = args.target_temperature / factor
    if args.json is not None:
        from ._io import json_bytes, write_atomic

        write_atomic(Path(args.json), json_bytes(result))
    print(f"data-need: {name}; {args.scale} units (T = {factor:.6g} x T_data)")
    print(need)
    if args.json is not None:
        print(f"wrote {args.json} ({time.perf_counter() - t_start:.1f} s)")
    return 0


__all__ = ["add_parser", "data_need_command"]
