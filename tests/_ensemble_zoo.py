"""Small instances of every ensemble, shared by the generic tests (test_ensembles, test_thermo).

The zoo fails loudly: an ensemble that stops importing or constructing raises at collection time
(``ZOO = zoo()`` runs when the test module is imported) with an error naming it, never drops out
of the parametrization silently. ``test_ensemble_zoo.py``
checks that every concrete ``AbstractEnsemble`` subclass exported by ``thermodiff`` is in it.
"""

import jax.numpy as jnp
import numpy as np

import thermodiff as td


class ZooError(RuntimeError):
    """An ensemble of the zoo failed to import or construct."""


def _finite_points(d, n, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, d))
    return jnp.asarray(np.concatenate([pts, -pts]))  # symmetric law: m(-x) = -m(x)


def _knn_weights(n, n_zero=5, seed=4):
    """Positive weights with ``n_zero`` zeros (the same for y and -y: a symmetric law)."""
    w = np.random.default_rng(seed).uniform(0.5, 2.0, size=n)
    w[:: n // n_zero][:n_zero] = 0.0
    return w


def _rotation(d, seed=3):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def _recipes(f):
    """name -> (constructor of the ensemble, symmetric?); ``f`` casts to the zoo's dtype."""
    return {
        "two_deltas_1d": (lambda: td.TwoDeltas(f(1.0)), True),
        "two_deltas_3d": (lambda: td.TwoDeltas(f([0.6, -0.8, 0.5])), True),
        "finite_dense": (lambda: td.FiniteDataset(f(_finite_points(2, 40))), True),
        "finite_chunked": (lambda: td.FiniteDataset(f(_finite_points(2, 40)), chunk_size=7), True),
        "finite_weighted": (
            lambda: td.FiniteDataset(f(_finite_points(3, 25, 1)), f(np.linspace(0.1, 2.0, 50)), chunk_size=16),
            False,
        ),
        "mixture_sym": (lambda: td.GaussianMixture(f([[1.2, 0.3], [-1.2, -0.3]]), f(0.3)), True),
        "mixture_asym": (
            lambda: td.GaussianMixture(
                f([[1.0, 0.0], [-0.5, 1.0], [0.0, -2.0]]), f([0.2, 0.5, 0.0]), f([0.2, 0.3, 0.5])
            ),
            False,
        ),
        "gaussian": (lambda: td.Gaussian(f([0.5, -1.0]), f(0.7)), False),
        "hypersphere_3d": (lambda: td.Hypersphere(f(1.3), 3), True),
        "curie_weiss_4": (lambda: td.CurieWeiss(4, f(1.5)), True),
        # exact scores at scale (theory section 14): FiniteDatasets whose denoiser takes another path.
        # Certified: 17 groups of <= 4 points, at most 8 summed exactly, the rest bounded. tol = 1e-14 R
        # keeps the pruning error below the generic tests' tolerances (symmetry atol 1e-12; a vmapped
        # batch, which may sum more groups than a single state, equal to single calls to rtol 1e-12).
        # Pilot (float64, 64 states of scale 0.7): certified at T = 1e-4 (100 %, the float32-extremes
        # test), dense fallback at T >= 0.05 (0 % certified; |m - dense| <= 9e-16): the generic tests
        # check the fallback, its custom vmap and jvp rules; test_certified.py checks the pruning.
        "finite_certified": (
            lambda: td.CertifiedDataset(f(_finite_points(2, 20)), tol=1e-14, group_size=4, max_exact_groups=8, chunk_size=16),
            True,
        ),
        # sharded over the devices of this process (one CPU device in the default test run)
        "finite_sharded": (lambda: td.ShardedDataset(f(_finite_points(2, 20)), chunk_size=7), True),
        # k-NN posterior (a softmax restricted to the k largest logits). With k < N points of positive
        # weight it is not the data's posterior (Monte Carlo, T -> infinity limits fail by design), so
        # the zoo's instance keeps exactly the k points of positive weight (10 of 40 carry weight 0):
        # the streaming top-k selection runs over 3 chunks and drops points, and every identity
        # (Monte Carlo, Tweedie, FDT, thermodynamics) holds exactly. The truncation error itself is
        # tested in test_approx_scores.py.
        "finite_knn": (
            lambda: td.KNearestDataset(f(_finite_points(2, 20)), f(np.tile(_knn_weights(20), 2)), k=30, chunk_size=16),
            True,
        ),
        # a rotated linear manifold with a flat direction (variance 0): Gaussian, mean 0, symmetric
        "linear_manifold_3d": (lambda: td.LinearManifold(f([1.0, 0.3, 0.0]), f(_rotation(3))), True),
    }


def zoo(dtype=jnp.float64):
    """name -> (ensemble, symmetric?) at the requested dtype.

    Raises ``ZooError`` naming the ensemble if one fails to import or construct.
    """
    f = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    out = {}
    for name, (make, symmetric) in _recipes(f).items():
        try:
            out[name] = (make(), symmetric)
        except Exception as e:
            raise ZooError(f"ensemble zoo: {name!r} failed to import or construct: {type(e).__name__}: {e}") from e
    return out
