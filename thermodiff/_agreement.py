"""Two-model agreement: do two networks trained on disjoint data generate the same samples? (theory 10)

Kadkhodaie, Guth, Simoncelli and Mallat (2024, "Generalization in diffusion models arises from
geometry-adaptive harmonic representations") train two denoisers on two non-overlapping halves
of a dataset and sample both from the same initial noise: nets that memorise reproduce their own
(different) training points and disagree; nets that generalise learn the same score, hence the
same deterministic probability-flow map, and agree. The transition in the training-set size n
is a model-free test of generalisation that needs neither the population law nor a held-out set.

Similarity: the cosine similarity of the two samples after subtracting one common centre mu
(the pooled data mean), cos_i = <a_i - mu, b_i - mu>/(|a_i - mu| |b_i - mu|), averaged over
samples with its standard error. It is 1 for identical samples, about 0 for independent ones
(and 1 exactly for two laws whose probability-flow maps differ only by a scalar factor, e.g. two
isotropic Gaussians with different variances); it ignores an overall scale, which the memorised
fraction (``memorization_fraction``) does not.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ._custom_types import Key
from ._dynamics import Estimate
from ._ensembles._base import AbstractEnsemble
from ._validate import MAX_SIZE, check_float32_range, check_int, check_key, check_real, check_scalar, check_state


def cosine_agreement(a, b, center) -> Estimate:
    """Mean cosine similarity of paired samples about a common centre, with its standard error.

    **Arguments:** ``a``, ``b``: samples (S, d), row i of each from the same noise; ``center``:
    (d,) the common centre mu.

    **Returns:** ``Estimate(mean_i cos_i, std_i cos_i/sqrt(S))`` (NumPy floats; a pair with a
    sample exactly at mu counts as cos = 0).

    Under jit: not jittable (host-side NumPy); validates eagerly.
    """
    for name, v in (("a", a), ("b", b), ("center", center)):
        check_real(name, v, what="a real array")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu = np.asarray(center, np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 2 or mu.shape != a.shape[1:]:
        raise ValueError(f"a and b must have one shape (S >= 2, d) and center (d,), got {a.shape}, {b.shape}, {mu.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(np.isfinite(mu))):
        raise ValueError("a, b and center must be finite (no NaN or inf)")
    ca, cb = a - mu, b - mu
    norm = np.linalg.norm(ca, axis=1) * np.linalg.norm(cb, axis=1)
    cos = np.where(norm > 0, np.sum(ca * cb, axis=1) / np.where(norm > 0, norm, 1.0), 0.0)
    return Estimate(np.float64(np.mean(cos)), np.float64(np.std(cos, ddof=1) / np.sqrt(cos.shape[0])))


def _centre_scale(model):
    """(mean, sigma_data) a model knows about its data, or (None, None)."""
    if isinstance(model, AbstractEnsemble):
        return np.asarray(model.mean(), np.float64), float(np.sqrt(np.trace(np.asarray(model.covariance())) / model.dim))
    mean, sd = getattr(model, "data_mean", None), getattr(model, "sigma_data", None)
    if mean is None or sd is None or np.ndim(sd) != 0:
        return None, None
    return np.asarray(mean, np.float64), float(sd)


def _pooled(model_a, model_b, mean, sigma_data, dim):
    (ma, sa), (mb, sb) = _centre_scale(model_a), _centre_scale(model_b)
    if mean is None:
        mean = 0.5 * (ma + mb) if ma is not None and mb is not None else (ma if ma is not None else mb)
        mean = np.zeros((dim,)) if mean is None else mean
    if sigma_data is None:
        known = [s for s in (sa, sb) if s is not None]
        sigma_data = float(np.sqrt(np.mean(np.square(known)))) if known else 1.0
    return np.asarray(mean, np.float64), float(sigma_data)


def sample_agreement(model_a, model_b, key: Key, n_samples: int, *, dim: int | None = None, mean=None,
                     sigma_data=None, steps: int = 50, schedule=None, solver=None, T_start=None,
                     T_end=None) -> Estimate:
    """Cosine similarity of two models' samples drawn from the same noise (theory section 10).

    Both models run ``generate`` with the same ``key`` (the same initial noise and the same
    sampler noise), the same grid and the same start N(mu, (T_start + sigma_data^2) I), so that a
    difference between the samples is a difference between the learned scores. The similarity is
    ``cosine_agreement`` about mu: about 1 when both generalise (the same probability-flow map),
    well below 1 when they memorise different training sets (Kadkhodaie et al. 2024).

    **Arguments:**
    - ``model_a``, ``model_b``: ``Preconditioned`` nets, ensembles or sampler models of one dimension.
    - ``key``: PRNG key, shared by both; ``n_samples``: S >= 2 sample pairs.
    - ``dim``: the dimension, for models that do not know it.
    - ``mean``, ``sigma_data``: the common centre and data scale (default: the average of the two
      models' own data means, and the root mean square of their sigma_data; 0 and 1 if unknown).
    - ``steps``, ``schedule``, ``solver``, ``T_start``, ``T_end``: as in ``generate``.

    **Returns:** ``Estimate(mean cosine similarity, its standard error)``.

    Under jit: not jittable (host-side driver around ``generate``); validates eagerly.
    """
    from ._diagnostics import generate

    check_key("key", key)
    check_int("n_samples", n_samples, 2, 10**8)
    if dim is not None:
        dim = check_int("dim", dim, 1, MAX_SIZE)
        known = [m.dim for m in (model_a, model_b) if isinstance(getattr(m, "dim", None), (int, np.integer))]
        if any(k != dim for k in known):
            raise ValueError(f"dim = {dim} does not match the models' own dimension {known}")
    d_a, d_b = (dim if dim is not None else getattr(m, "dim", None) for m in (model_a, model_b))
    if not isinstance(d_a, (int, np.integer)) or d_a != d_b:
        raise ValueError(f"model_a and model_b must act on one dimension (give dim= if they do not know it), "
                         f"got {d_a} and {d_b}")
    if mean is not None:
        check_state(mean, int(d_a), "mean")
    if sigma_data is not None:
        check_scalar("sigma_data", sigma_data, what="a data scale > 0")
        check_float32_range("sigma_data", sigma_data)
        if not (np.isfinite(float(sigma_data)) and float(sigma_data) > 0):
            raise ValueError(f"sigma_data must be finite and > 0 (allowed range: (0, inf)), got {sigma_data!r}")
    mu, sd = _pooled(model_a, model_b, mean, sigma_data, int(d_a))
    kw = dict(dim=int(d_a), schedule=schedule, solver=solver, steps=steps, T_start=T_start, T_end=T_end,
              mean=mu, sigma_data=sd)
    a = generate(model_a, key, n_samples, **kw)
    b = generate(model_b, key, n_samples, **kw)
    return cosine_agreement(a, b, mu)


@dataclasses.dataclass(eq=False)
class AgreementStudy:
    """What ``agreement_study`` returns (theory section 10).

    - ``sizes``: (K,) training-set sizes n (per model; the two halves are disjoint).
    - ``similarity``, ``stderr``: (K,) mean cosine similarity of the pair at each n and its stderr.
    - ``f_mem``, ``f_mem_se``: (K, 2) memorised fraction of each model's samples against its own
      training set, with bootstrap stderrs.
    - ``results``: the two ``TrainResult`` (half A, half B), each a stack of K models.
    - ``halves``: (2, N//2) indices into the data of the two halves (model k of half h trained on
      ``data[halves[h, :sizes[k]]]``).

    ``str()`` prints one row per size. Under jit: not jittable (host-side result).
    """

    sizes: np.ndarray
    similarity: np.ndarray
    stderr: np.ndarray
    f_mem: np.ndarray
    f_mem_se: np.ndarray
    results: tuple
    halves: np.ndarray

    def __str__(self) -> str:
        lines = ["      n   similarity (cosine, centred)   f_mem A   f_mem B"]
        for k, n in enumerate(self.sizes):
            lines.append(f"{int(n):7d}   {self.similarity[k]:.3f} +- {self.stderr[k]:.3f}"
                         f"{'':17s}{self.f_mem[k, 0]:.2f}      {self.f_mem[k, 1]:.2f}")
        return "\n".join(lines)


def agreement_study(make_model, data, sizes, *, key: Key, steps: int, n_samples: int = 256, sample_steps: int = 50,
                    **train_kwargs) -> AgreementStudy:
    """Train pairs of networks on disjoint halves of ``data`` at several sizes and measure their
    agreement (Kadkhodaie et al. 2024; theory section 10).

    The data are split at random (from ``key``) into two disjoint halves A and B; for each size
    n_k a model is trained on the first n_k points of A and another, from a different
    initialisation, on the first n_k points of B. The K models of one half are trained together
    in one vmapped ``td.train`` call (the dataset sizes are masks), so two calls in all (one
    ``td.train`` call shares one dataset between its models, and the halves must differ); the
    second reuses the first's compiled loop. Then ``sample_agreement`` of each pair (one sampling
    key for every pair, centre = the data mean, sigma_data = the models') and the memorised
    fraction of each model's samples.

    **Arguments:**
    - ``make_model``: ``key -> td.Preconditioned``; all models must share one architecture (give
      them the same ``sigma_data`` and ``data_mean``, e.g. ``Preconditioned.for_data(net, data)``).
    - ``data``: (N, d) finite points, N >= 4.
    - ``sizes``: 1-D integers in [2, N//2], the per-model training-set sizes.
    - ``key``: PRNG key of the split, the initialisations, the training and the sampling.
    - ``steps``: training steps of every model (>= 1).
    - ``n_samples``: sample pairs per size (>= 2); ``sample_steps``: Heun steps of the sampler.
    - ``train_kwargs``: passed to ``td.train`` (e.g. ``batch_size``, ``optimizer``, ``trainer``).

    **Returns:** an ``AgreementStudy``.

    Under jit: not jittable (host-side driver); validates eagerly.
    """
    from ._diagnostics import _as_train, generate, memorization_fraction
    from ._train import _RECIPE, stack_models, train

    check_key("key", key)
    if not callable(make_model):
        raise TypeError(f"make_model must be callable (key -> td.Preconditioned), got {type(make_model).__name__}")
    X = np.asarray(_as_train(data).points, np.float64)
    N = X.shape[0]
    if N < 4:
        raise ValueError(f"data must hold at least 4 points (two halves of >= 2), got N = {N}")
    sz = np.asarray(sizes)
    if sz.ndim != 1 or sz.size < 1 or not np.issubdtype(sz.dtype, np.integer) or np.any(sz < 2) or np.any(sz > N // 2):
        raise ValueError(f"sizes must be a non-empty 1-D array of integers in [2, {N // 2}] (N//2), got {sizes!r}")
    steps = check_int("steps", steps, 1, 10**9)
    n_samples = check_int("n_samples", n_samples, 2, 10**8)
    check_int("sample_steps", sample_steps, 1, 10**6)
    for bad in ("vmap", "n_points", "key", "steps", "progress"):
        if bad in train_kwargs:
            raise TypeError(f"agreement_study sets td.train's {bad!r} itself; do not pass it")
    k_split, k_a, k_b, k_sample = jax.random.split(key, 4)
    perm = np.asarray(jax.random.permutation(k_split, N))
    halves = np.stack([perm[: N // 2], perm[N // 2: 2 * (N // 2)]])
    results = []
    for h, k in enumerate((k_a, k_b)):
        k_init, k_train = jax.random.split(k)
        models = stack_models([make_model(kk) for kk in jax.random.split(k_init, sz.size)])
        res = train(models, X[halves[h]].astype(np.asarray(models.data_mean).dtype), key=k_train, steps=steps,
                    vmap=True, n_points=sz.astype(np.int32), progress=False, **train_kwargs)
        if "trainer" not in train_kwargs:  # the second half reuses the recipe (and its compiled loop)
            train_kwargs = {k_: v for k_, v in train_kwargs.items() if k_ not in _RECIPE}
            train_kwargs["trainer"] = res.trainer
        results.append(res)
    mu = X.mean(axis=0)
    sim, se = np.zeros(sz.size), np.zeros(sz.size)
    fm, fm_se = np.zeros((sz.size, 2)), np.zeros((sz.size, 2))
    for k, n in enumerate(sz):
        pair = [jax.tree.map(lambda x: x[k], r.model) for r in results]
        sd = float(np.sqrt(np.mean([float(m.sigma_data) ** 2 for m in pair])))
        samples = [np.asarray(generate(m, k_sample, n_samples, mean=mu, sigma_data=sd, steps=sample_steps))
                   for m in pair]
        e = cosine_agreement(samples[0], samples[1], mu)
        sim[k], se[k] = e.value, e.stderr
        for h in range(2):
            f = memorization_fraction(samples[h], X[halves[h, :n]], key=jax.random.fold_in(k_sample, 2 * k + h))
            fm[k, h], fm_se[k, h] = float(f.value), float(f.stderr)
    return AgreementStudy(sizes=sz.astype(int), similarity=sim, stderr=se, f_mem=fm, f_mem_se=fm_se,
                          results=tuple(results), halves=halves)


__all__ = ["AgreementStudy", "agreement_study", "cosine_agreement", "sample_agreement"]
