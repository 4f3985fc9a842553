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
