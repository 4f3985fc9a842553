"""Small instances of every ensemble, shared by the generic tests."""

import jax.numpy as jnp
import numpy as np

import thermodiff as td


def _finite_points(d, n, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, d))
    return jnp.asarray(np.concatenate([pts, -pts]))  # symmetric law: m(-x) = -m(x)


def zoo(dtype=jnp.float64):
    """name -> (ensemble, symmetric?) at the requested dtype."""
    f = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    out = {
        "two_deltas_1d": (td.TwoDeltas(f(1.0)), True),
        "two_deltas_3d": (td.TwoDeltas(f([0.6, -0.8, 0.5])), True),
        "finite_dense": (td.FiniteDataset(f(_finite_points(2, 40))), True),
        "finite_chunked": (td.FiniteDataset(f(_finite_points(2, 40)), chunk_size=7), True),
        "finite_weighted": (
            td.FiniteDataset(f(_finite_points(3, 25, 1)), f(np.linspace(0.1, 2.0, 50)), chunk_size=16),
            False,
        ),
        "mixture_sym": (td.GaussianMixture(f([[1.2, 0.3], [-1.2, -0.3]]), f(0.3)), True),
        "mixture_asym": (
            td.GaussianMixture(f([[1.0, 0.0], [-0.5, 1.0], [0.0, -2.0]]), f([0.2, 0.5, 0.0]), f([0.2, 0.3, 0.5])),
            False,
        ),
        "gaussian": (td.Gaussian(f([0.5, -1.0]), f(0.7)), False),
    }
    try:  # landed separately; covered here once present
        from thermodiff._ensembles._hypersphere import Hypersphere

        out["hypersphere_3d"] = (Hypersphere(f(1.3), 3), True)
    except ImportError:
        pass
    try:
        from thermodiff._ensembles._curie_weiss import CurieWeiss

        out["curie_weiss_4"] = (CurieWeiss(4, f(1.5)), True)
    except ImportError:
        pass
    return out
