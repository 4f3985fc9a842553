"""Test configuration: float64 on, implicit rank promotion off, a key fixture (DESIGN.md)."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(20231017)


def zscore_ok(estimate, exact, stderr, z=5.0, floor=0.0):
    """Monte Carlo check: |estimate - exact| <= z * stderr (+ floor), elementwise."""
    import numpy as np

    estimate, exact, stderr = map(np.asarray, (estimate, exact, stderr))
    return np.all(np.abs(estimate - exact) <= z * stderr + floor)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Every XLA:CPU executable keeps several memory mappings alive; a full test session compiles
    thousands of programs and, without this, passes the kernel's limit of 65530 mappings per
    process (vm.max_map_count) after about 15 minutes, at which point LLVM segfaults inside the
    next compilation (seen in CI in test_train.py). Modules rarely share programs, so clearing
    costs little compilation.
    """
    yield
    import gc

    jax.clear_caches()
    gc.collect()
