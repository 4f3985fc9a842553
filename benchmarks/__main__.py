"""Command line: ``python -m benchmarks [--quick] [--only NAME] [--out DIR] [--platform P]``.

Writes one JSON per benchmark into ``--out`` (default ``benchmarks/results/``) and prints a
table per benchmark. Exit status 0 when every selected benchmark ran, 1 when one raised (its
JSON then has ``status: "error"`` and the traceback), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

_PLATFORMS = ("cpu", "gpu", "tpu", "cuda", "rocm")  # passed to JAX_PLATFORMS as given; JAX expands "gpu"


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke test)")
    p.add_argument(
        "--only", action="append", metavar="NAME", help="run only this benchmark (repeatable, or comma-separated)"
    )
    p.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
        help="directory for the JSON results (default: benchmarks/results/)",
    )
    p.add_argument(
        "--platform",
        choices=_PLATFORMS,
        help="set JAX_PLATFORMS before JAX is imported",
    )
    p.add_argument("--list", action="store_true", help="list the registered benchmarks and exit")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    if args.platform:
        if "jax" in sys.modules:  # pragma: no cover - only when embedded after a JAX import
            print("warning: JAX already imported; --platform may have no effect", file=sys.stderr)
        os.environ["JAX_PLATFORMS"] = args.platform

    from . import _common

    registry = _common.load_all()
    if args.list:
        for name, b in registry.items():
            print(f"{name:20s} {b.description}")
        return 0
    names = list(registry)
    if args.only:
        wanted = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in registry]
        if unknown:
            print(f"error: unknown benchmark(s) {unknown}; known: {names}", file=sys.stderr)
            return 2
        names = wanted

    env = _common.env_info()
    print(
        f"thermodiff benchmarks ({'quick' if args.quick else 'full'}): jax {env['jax_version']}, "
        f"backend {env['backend']} ({env['device_kind']}), {env['cpu_count']} CPUs, "
        f"load {env['loadavg']}, results -> {args.out}"
    )
    failed = []
    for name in names:
        bench = registry[name]
        print(f"\n=== {name}: {bench.description}", flush=True)
        record = {
            "benchmark": name,
            "description": bench.description,
            "quick": args.quick,
            "started_at": _common.now_iso(),
            "loadavg_before": _common.loadavg(),
        }
        t0 = time.perf_counter()
        try:
            result = bench.fn(args.quick)
            record["status"] = "ok"
        except Exception:
            result = {}
            record["status"] = "error"
            record["error"] = traceback.format_exc()
            failed.append(name)
            print(record["error"], file=sys.stderr)
        record["wall_s"] = time.perf_counter() - t0
        record["loadavg_after"] = _common.loadavg()
        record["env"] = env
        record.update(result)
        path = _common.write_result(record, args.out)
        for title, rows in (result.get("tables") or {}).items():
            print(f"{title}:")
            print(_common.format_table(rows))
        if result.get("table"):
            print(_common.format_table(result["table"]))
        if result.get("summary"):
            print("summary:")
            print(_common.format_table([result["summary"]]))
        for note in result.get("notes", []):
            print(f"  - {note}")
        print(f"[{record['status']}] {name} in {record['wall_s']:.1f} s -> {path}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
