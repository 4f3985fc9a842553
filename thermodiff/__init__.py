"""thermodiff: the statistical thermodynamics of generative diffusion models, in JAX.

Conventions (docs/theory.md section 1): temperature T is the VE-equivalent noise variance,
x = y + sqrt(T) z. Every function acts on one state; batch with jax.vmap.

Submodules load on first use of one of their names (PEP 562), so ``import thermodiff`` and the
command line's ``--help`` do not pay for importing JAX; ``__init__.pyi`` gives type checkers the
same names statically.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> the private module that defines it.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "._bath": (
        "BathMoments", "BathTrajectory", "GenerativeBath",
    ),
    "._checkpoint": (
        "Checkpoint", "CheckpointError", "data_fingerprint", "load_checkpoint", "save_checkpoint",
    ),
    "._compare": (
        "compare_to_exact", "ModelComparison",
    ),
    "._classes": (
        "ClassInference", "infer_classes",
    ),
    "._data": (
        "load_digits", "load_digits_upsampled",
    ),
    "._diagnostics": (
        "denoising_loss", "detect_tau_gen", "detect_tau_mem", "Diagnostics", "excess_loss",
        "generalization_error", "generate", "irreducible_loss", "memorization_fraction",
    ),
    "._dynamics": (
        "class_change_probability", "class_posterior", "cloning_probability",
        "decision_sensitivity", "Estimate", "PHI_CRITICAL", "perturbation_response",
        "speciation_temperature", "susceptibility_trace",
    ),
    "._ensembles._base": (
        "AbstractEnsemble",
    ),
    "._ensembles._curie_weiss": (
        "CurieWeiss",
    ),
    "._ensembles._diffused": (
        "Diffused",
    ),
    "._ensembles._finite": (
        "FiniteDataset",
    ),
    "._ensembles._hypersphere": (
        "Hypersphere",
    ),
    "._ensembles._mixture": (
        "Gaussian", "GaussianMixture",
    ),
    "._ensembles._two_deltas": (
        "TwoDeltas",
    ),
    "._hierarchy": (
        "Basins", "basins", "bifurcation_tree", "BifurcationTree", "descend", "first_split",
        "first_split_temperature", "FirstSplit", "SplitNode",
    ),
    "._condensation": (
        "collapse_temperature", "collapse_temperature_from_data", "Condensation", "excess_entropy",
        "ExcessEntropy", "posterior_condensation", "rem_entropy",
    ),
    "._hopfield": (
        "hopfield_capacity", "hopfield_capacity_prediction", "hopfield_energy",
        "hopfield_fixed_points", "hopfield_update", "HopfieldFixedPoints",
    ),
    "._meanfield": (
        "critical_exponents", "critical_temperature", "Exponent", "fixed_point",
        "landau_coefficients", "order_parameter", "principal_axis", "susceptibility",
    ),
    "._models": (
        "AbstractModel", "Denoiser", "NoisePrediction", "Rescaled", "Score",
    ),
    "._nets": (
        "Preconditioned", "ResidualMLP", "SinusoidalEmbedding", "UNet",
    ),
    "._samplers": (
        "AbstractGrid", "AbstractSolver", "CriticalGrid", "DDIM", "EulerMaruyama",
        "ExponentialEuler", "KarrasGrid", "LangevinCorrector", "late_start",
        "ProbabilityFlowEuler", "ProbabilityFlowHeun", "sample", "StochasticHeun", "time_grid",
        "Trajectory", "UniformGrid",
    ),
    "._schedules": (
        "AbstractSchedule", "Cosine", "DDPM", "OU", "VE", "VP",
    ),
    "._speciation": (
        "CollapseMeasurement", "measure_collapse", "speciation_time", "SpeciationPrediction",
    ),
    "._train": (
        "AbstractNoiseLevels", "AbstractWeighting", "EDMWeighting", "LogNormal", "LowDiscrepancy",
        "NoiseVarianceWeighting", "SNRWeighting", "stack_models", "train", "train_step", "Trainer",
        "TrainResult", "TrainState", "UniformTime", "UnitWeighting",
    ),
    "._subspace": (
        "PrincipalSubspace", "principal_subspace", "subspace_dimension",
    ),
    "._units": (
        "CONVENTIONS", "DATA_SCALES", "DataScale", "data_scale", "NoiseLevel", "noise_conventions", "scale_data",
        "temperature_from",
    ),
    "._thermo": (
        "entropy", "free_energy", "heat_capacity", "internal_energy",
    ),
    "._agreement": (
        "agreement_study", "AgreementStudy", "cosine_agreement", "sample_agreement",
    ),
    "._data_need": (
        "data_need", "DataNeed", "NeedRow",
    ),
    "._ensembles._linear_manifold": (
        "block_variances", "LinearManifold", "manifold_points",
    ),
    "._ensembles._certified": (
        "CertifiedDataset",
    ),
    "._ensembles._sharded": (
        "ShardedDataset",
    ),
    "._ensembles._knn": (
        "KNearestDataset",
    ),
    "._distributed": (
        "distributed_init",
    ),
    "._blocked_vmap": (
        "set_vmap_block_size", "vmap_block_size",
    ),
    "._approx_scores": (
        "approximation_error", "ApproximationError", "gaussian_approximation",
    ),
    "._geometry": (
        "effective_dimension", "JacobianSpectrum", "score_jacobian_spectrum", "spectral_gaps", "SpectralGaps",
    ),
    "._geometry_sweep": (
        "compare_spectra", "freeze_temperatures", "Freezing", "spectrum_sweep", "SpectrumSweep",
    ),
    "._memorization_law": (
        "fit_memorization_law", "MemorizationLaw",
    ),
    "._memorization_study": (
        "memorization_study", "MemorizationStudy",
    ),
    "._solvable": (
        "linear_model", "linear_modes", "linear_sgd_weights", "LinearModes", "LinearNet", "mixture_model",
        "MixtureNet", "noise_moments", "random_features_model", "RandomFeaturesNet", "train_test_gap",
        "TrainTestGap",
    ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'thermodiff' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
