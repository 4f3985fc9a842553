"""Solvable trained models: ground truth for the trainer and the diagnostics (theory 10, 11).

Three models that ``td.train`` trains with the same loop as any network, and whose training
dynamics or outcome are known exactly:

- ``linear_model`` (``LinearNet``): D = mean + W (u - mean). The DSM loss is quadratic in W,
  so the expected SGD trajectory is closed-form (``linear_modes``, ``linear_sgd_weights``):
  the covariance mode of variance c is learned in ~ 1/c steps (Wang & Pehlevan 2025).
- ``random_features_model`` (``RandomFeaturesNet``): fixed random features, trained readout, at
  one temperature; memorises for p > n features, generalises for p < n (George, Veiga &
  Macris 2025); ``train_test_gap`` measures it.
- ``mixture_model`` (``MixtureNet``): the exact posterior mean of a Gaussian mixture with K
  learnable means and a learnable common variance; K = n means on the data memorise, a few
  means on clustered data generalise.

The linear and mixture nets use the ``"direct"`` output form of ``td.Preconditioned`` (the raw
net receives u - mean and T and returns D - mean); the random features use ``"score"`` by
default. All three record ``architecture()`` and are registered here, so checkpoints rebuild them.
"""

from __future__ import annotations

from ._solvable_features import RandomFeaturesNet, TrainTestGap, random_features_model, train_test_gap
from ._solvable_linear import LinearModes, LinearNet, linear_model, linear_modes, linear_sgd_weights, noise_moments
from ._solvable_mixture import MixtureNet, kmeans_plus_plus, mixture_model

#: Raw networks of the solvable models by ``architecture()["name"]`` (``build_network`` adds them).
ARCHITECTURES = {"LinearNet": LinearNet, "RandomFeaturesNet": RandomFeaturesNet, "MixtureNet": MixtureNet}

__all__ = [
    "LinearModes",
    "LinearNet",
    "MixtureNet",
    "RandomFeaturesNet",
    "TrainTestGap",
    "kmeans_plus_plus",
    "linear_model",
    "linear_modes",
    "linear_sgd_weights",
    "mixture_model",
    "noise_moments",
    "random_features_model",
    "train_test_gap",
]
