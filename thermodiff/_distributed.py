"""Start JAX's multi-process runtime with settings that fail fast (theory section 3.2).

``distributed_init`` wraps ``jax.distributed.initialize``: the coordinator address, the number
of processes and this process's id come from the arguments or from the environment variables
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID (the same script runs on every
host), CPU collectives use gloo, and the timeouts are short enough that a process that never
arrives or dies mid-run ends the others with an error instead of a hang. Call it first, before
any other JAX call; then build a ``ShardedDataset`` (``_ensembles/_sharded.py``).
"""

from __future__ import annotations

import os

import jax

from ._validate import check_int


def _env_or(name: str, value, env: str):
    if value is not None:
        return value
    raw = os.environ.get(env)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}: the environment variable {env} must be an integer, got {raw!r}") from None


def distributed_init(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    initialization_timeout: int = 120,
    heartbeat_timeout: int = 20,
    shutdown_timeout: int = 30,
) -> tuple[int, int]:
    """Join (or start, as process 0) a JAX multi-process run (theory section 3.2: sharded data).

    Every process runs the same script: process 0 hosts the coordinator at
    ``coordinator_address`` and all processes connect to it; afterwards ``jax.devices()``
    lists the devices of all processes and a ``ShardedDataset`` spans them. On CPU the
    cross-process collectives use gloo (TCP).

    **Arguments:**
    - ``coordinator_address``: "host:port" of process 0, reachable from every process;
      default the environment variable JAX_COORDINATOR_ADDRESS.
    - ``num_processes``: number of processes >= 1; default JAX_NUM_PROCESSES.
    - ``process_id``: this process's id in [0, num_processes); default JAX_PROCESS_ID.
    - ``initialization_timeout``: seconds to wait for all processes to connect (default 120).
    - ``heartbeat_timeout``: seconds without a heartbeat after which a process counts as dead
      and the survivors stop with an error (default 20; JAX's own default is 100).
    - ``shutdown_timeout``: seconds a finishing process waits for the others (default 30).

    **Returns:** (process_index, process_count). Under jit: not jittable (host-side set-up);
    validates eagerly and raises RuntimeError if the runtime is already initialised.
    """
    address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if not isinstance(address, str) or address.rpartition(":")[0] == "" or not address.rpartition(":")[2].isdigit():
        raise ValueError(
            "coordinator_address must be 'host:port' (or set JAX_COORDINATOR_ADDRESS), "
            f"got {address!r}")
    n = check_int("num_processes", _env_or("num_processes", num_processes, "JAX_NUM_PROCESSES"), 1, 2**20)
    pid = _env_or("process_id", process_id, "JAX_PROCESS_ID")
    if pid is None:
        raise ValueError("process_id must be given (or set JAX_PROCESS_ID), an integer in [0, num_processes)")
    pid = check_int("process_id", pid, 0, n - 1)
    for name, value in (("initialization_timeout", initialization_timeout),
                        ("heartbeat_timeout", heartbeat_timeout), ("shutdown_timeout", shutdown_timeout)):
        check_int(name, value, 1, 86400)
    if jax.distributed.is_initialized():
        raise RuntimeError("distributed_init: jax.distributed is already initialised in this process")
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=address, num_processes=n, process_id=pid,
        initialization_timeout=int(initialization_timeout),
        heartbeat_timeout_seconds=int(heartbeat_timeout),
        shutdown_timeout_seconds=int(shutdown_timeout),
    )
    return jax.process_index(), jax.process_count()


__all__ = ["distributed_init"]
