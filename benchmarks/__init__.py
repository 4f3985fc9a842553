"""thermodiff benchmark suite.

Run ``python -m benchmarks [--quick] [--only NAME] [--out DIR] [--platform cpu|gpu|tpu]``.
Each benchmark writes one JSON file (default ``benchmarks/results/NAME.json``) and the runner
prints a table. Following DESIGN.md ("Performance habits"), benchmarks report ratios measured
in the same run (against NumPy, diffrax, and this machine's own float32 matmul rate as the
roofline), never absolute times alone.

Adding a benchmark: create ``benchmarks/bench_<topic>.py`` and decorate a function
``fn(quick: bool) -> dict`` with ``@register("name", description=...)`` from
``benchmarks._common``; every ``bench_*.py`` module is imported by the runner.

This package deliberately imports nothing heavy at import time: ``--platform`` must set
``JAX_PLATFORMS`` before JAX is imported.
"""
