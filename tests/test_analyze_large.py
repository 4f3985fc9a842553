"""``thermodiff analyze`` on image-sized data: MNIST-shaped digits (d = 784) and d = 4096.

The exact first split costs O(d^3); above d = 64 the analysis computes it in the leading
principal subspace and reports the restriction's error (the change between k/2 and k
dimensions). These tests check that the subspace answer agrees with the full-dimensional one
where both can be computed, and that image-sized data finish within stated bounds.
"""

import dataclasses
import time

import numpy as np
import pytest

import thermodiff as td
from thermodiff._analyze import _classes, _speciation, _spectrum, analyze
from thermodiff._analyze_plan import plan_analysis
from thermodiff._progress import Progress
from thermodiff._units import data_scale


def _synthetic_images(n, d=4096, n_classes=10, latent=32, seed=0):
    """10 classes whose centres live in a random 32-dimensional subspace, plus isotropic noise."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, latent)))[0]
    centres = 2.0 * rng.standard_normal((n_classes, latent))
    lab = np.arange(n) % n_classes
    X = (centres[lab] + 0.3 * rng.standard_normal((n, latent))) @ basis.T + 0.5 * rng.standard_normal((n, d))
    return X.astype(np.float32), lab


@pytest.mark.slow
def test_subspace_first_split_agrees_with_the_full_one_on_digits():
    """Digits (d = 64): the first split in the leading subspace (k from the 95% variance rule)
    against the full 64-dimensional computation, within the reported error plus 5%."""
    X, lab = td.load_digits()
    ds = data_scale(X, "minus-one-one")
    data, spec = _spectrum(X, ds, *X.shape)
    data = _classes(data, lab, 0)
    plan = plan_analysis(*X.shape, rate=2e10)
    full, _ = _speciation(data, spec, plan, Progress(False))
    sub, plan_sub = _speciation(data, spec, dataclasses.replace(plan, split_dim=0), Progress(False))
    T_full, e = full["first_split"]["T"], sub["first_split"]
    assert plan_sub.split_dim < 64 and e["dims"][-1] == plan_sub.split_dim
    assert abs(e["T"] - T_full) <= e["stderr"] + 0.05 * T_full, (e["T"], e["stderr"], T_full)
    assert abs(full["first_split"]["T_data"] / 178.9 - 1) < 0.05  # raw-unit value of the digits


@pytest.mark.slow
def test_mnist_shaped_digits_finish_within_bounds():
    """The embedded digits upsampled to 28 x 28 (d = 784), the full analysis: under 6 minutes on
    2 cores, first split in a subspace with its error, both headlines found."""
    X, lab = td.load_digits_upsampled()
    assert X.shape == (1797, 784)
    t0 = time.perf_counter()
    res, figs = analyze(X, lab)
    wall = time.perf_counter() - t0
    assert wall < 360, wall
    fs = res["speciation"]["first_split"]
    assert res["plan"]["split_dim"] < 784 and fs["T"] is not None and fs["stderr"] is not None
    h = res["headline"]
    assert res["speciation"][h["speciation_estimator"]]["T"] > res["memorization"][h["memorization_estimator"]]["T"]
    assert len(figs) == 5 and "effective_dimension.png" in figs


@pytest.mark.slow
def test_d4096_unlabelled_finishes_and_finds_the_classes():
    """d = 4096, N = 4000, no labels: spectrum by randomized subspace iteration, ten classes found
    by the gap statistic, the whole quick analysis under 8 minutes on 2 cores."""
    X, lab = _synthetic_images(4000)
    t0 = time.perf_counter()
    res, _ = analyze(X, None, quick=True)
    wall = time.perf_counter() - t0
    assert wall < 480, wall
    assert res["dataset"]["class_inference"]["n_classes"] == 10
    assert res["plan"]["split_dim"] <= 64
    # in d = 4096 the posterior condenses onto single points far above the class split: the
    # simulated grids span both transitions, so both headlines are measured, not fallbacks
    h = res["headline"]
    assert h["speciation_estimator"] == "cloning_half" and h["memorization_estimator"] == "top_weight_half"
    ev = res["spectrum"]["eigenvalues"]
    assert len(ev) == 64 and ev[0] > 10 * ev[40]  # the 32 signal directions stand out of the noise floor
