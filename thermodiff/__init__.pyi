"""Static view of thermodiff's lazily loaded public names (see __init__.py)."""

from ._bath import BathMoments as BathMoments, BathTrajectory as BathTrajectory, GenerativeBath as GenerativeBath
from ._checkpoint import (
    Checkpoint as Checkpoint,
    CheckpointError as CheckpointError,
    data_fingerprint as data_fingerprint,
    load_checkpoint as load_checkpoint,
    save_checkpoint as save_checkpoint,
)
from ._compare import compare_to_exact as compare_to_exact, ModelComparison as ModelComparison
from ._classes import ClassInference as ClassInference, infer_classes as infer_classes
from ._data import load_digits as load_digits, load_digits_upsampled as load_digits_upsampled
from ._diagnostics import (
    denoising_loss as denoising_loss,
    detect_tau_gen as detect_tau_gen,
    detect_tau_mem as detect_tau_mem,
    Diagnostics as Diagnostics,
    excess_loss as excess_loss,
    generalization_error as generalization_error,
    generate as generate,
    irreducible_loss as irreducible_loss,
    memorization_fraction as memorization_fraction,
)
from ._dynamics import (
    class_change_probability as class_change_probability,
    class_posterior as class_posterior,
    cloning_probability as cloning_probability,
    decision_sensitivity as decision_sensitivity,
    Estimate as Estimate,
    PHI_CRITICAL as PHI_CRITICAL,
    perturbation_response as perturbation_response,
    speciation_temperature as speciation_temperature,
    susceptibility_trace as susceptibility_trace,
)
from ._ensembles._base import AbstractEnsemble as AbstractEnsemble
from ._ensembles._curie_weiss import CurieWeiss as CurieWeiss
from ._ensembles._diffused import Diffused as Diffused
from ._ensembles._finite import FiniteDataset as FiniteDataset
from ._ensembles._hypersphere import Hypersphere as Hypersphere
from ._ensembles._mixture import Gaussian as Gaussian, GaussianMixture as GaussianMixture
from ._ensembles._two_deltas import TwoDeltas as TwoDeltas
from ._hierarchy import (
    Basins as Basins,
    basins as basins,
    bifurcation_tree as bifurcation_tree,
    BifurcationTree as BifurcationTree,
    descend as descend,
    first_split as first_split,
    first_split_temperature as first_split_temperature,
    FirstSplit as FirstSplit,
    SplitNode as SplitNode,
)
from ._condensation import (
    collapse_temperature as collapse_temperature,
    collapse_temperature_from_data as collapse_temperature_from_data,
    Condensation as Condensation,
    excess_entropy as excess_entropy,
    ExcessEntropy as ExcessEntropy,
    posterior_condensation as posterior_condensation,
    rem_entropy as rem_entropy,
)
from ._hopfield import (
    hopfield_capacity as hopfield_capacity,
    hopfield_capacity_prediction as hopfield_capacity_prediction,
    hopfield_energy as hopfield_energy,
    hopfield_fixed_points as hopfield_fixed_points,
    hopfield_update as hopfield_update,
    HopfieldFixedPoints as HopfieldFixedPoints,
)
from ._meanfield import (
    critical_exponents as critical_exponents,
    critical_temperature as critical_temperature,
    Exponent as Exponent,
    fixed_point as fixed_point,
    landau_coefficients as landau_coefficients,
    order_parameter as order_parameter,
    principal_axis as principal_axis,
    susceptibility as susceptibility,
)
from ._models import (
    AbstractModel as AbstractModel,
    Denoiser as Denoiser,
    NoisePrediction as NoisePrediction,
    Rescaled as Rescaled,
    Score as Score,
)
from ._nets import (
    Preconditioned as Preconditioned,
    ResidualMLP as ResidualMLP,
    SinusoidalEmbedding as SinusoidalEmbedding,
    UNet as UNet,
)
from ._samplers import (
    AbstractGrid as AbstractGrid,
    AbstractSolver as AbstractSolver,
    CriticalGrid as CriticalGrid,
    DDIM as DDIM,
    EulerMaruyama as EulerMaruyama,
    ExponentialEuler as ExponentialEuler,
    KarrasGrid as KarrasGrid,
    LangevinCorrector as LangevinCorrector,
    late_start as late_start,
    ProbabilityFlowEuler as ProbabilityFlowEuler,
    ProbabilityFlowHeun as ProbabilityFlowHeun,
    sample as sample,
    StochasticHeun as StochasticHeun,
    time_grid as time_grid,
    Trajectory as Trajectory,
    UniformGrid as UniformGrid,
)
from ._schedules import (
    AbstractSchedule as AbstractSchedule,
    Cosine as Cosine,
    DDPM as DDPM,
    OU as OU,
    VE as VE,
    VP as VP,
)
from ._speciation import (
    CollapseMeasurement as CollapseMeasurement,
    measure_collapse as measure_collapse,
    speciation_time as speciation_time,
    SpeciationPrediction as SpeciationPrediction,
)
from ._train import (
    AbstractNoiseLevels as AbstractNoiseLevels,
    AbstractWeighting as AbstractWeighting,
    EDMWeighting as EDMWeighting,
    LogNormal as LogNormal,
    LowDiscrepancy as LowDiscrepancy,
    NoiseVarianceWeighting as NoiseVarianceWeighting,
    SNRWeighting as SNRWeighting,
    stack_models as stack_models,
    train as train,
    train_step as train_step,
    Trainer as Trainer,
    TrainResult as TrainResult,
    TrainState as TrainState,
    UniformTime as UniformTime,
    UnitWeighting as UnitWeighting,
)
from ._subspace import (
    PrincipalSubspace as PrincipalSubspace,
    principal_subspace as principal_subspace,
    subspace_dimension as subspace_dimension,
)
from ._units import (
    CONVENTIONS as CONVENTIONS,
    DATA_SCALES as DATA_SCALES,
    DataScale as DataScale,
    data_scale as data_scale,
    NoiseLevel as NoiseLevel,
    noise_conventions as noise_conventions,
    scale_data as scale_data,
    temperature_from as temperature_from,
)
from ._thermo import (
    entropy as entropy,
    free_energy as free_energy,
    heat_capacity as heat_capacity,
    internal_energy as internal_energy,
)

__version__: str
from ._agreement import (
    agreement_study as agreement_study,
    AgreementStudy as AgreementStudy,
    cosine_agreement as cosine_agreement,
    sample_agreement as sample_agreement,
)
from ._data_need import (
    data_need as data_need,
    DataNeed as DataNeed,
    NeedRow as NeedRow,
)
from ._ensembles._linear_manifold import (
    block_variances as block_variances,
    LinearManifold as LinearManifold,
    manifold_points as manifold_points,
)
from ._ensembles._certified import CertifiedDataset as CertifiedDataset
from ._ensembles._sharded import ShardedDataset as ShardedDataset
from ._ensembles._knn import KNearestDataset as KNearestDataset
from ._distributed import distributed_init as distributed_init
from ._blocked_vmap import set_vmap_block_size as set_vmap_block_size, vmap_block_size as vmap_block_size
from ._approx_scores import (
    approximation_error as approximation_error,
    ApproximationError as ApproximationError,
    gaussian_approximation as gaussian_approximation,
)
from ._geometry import (
    effective_dimension as effective_dimension,
    JacobianSpectrum as JacobianSpectrum,
    score_jacobian_spectrum as score_jacobian_spectrum,
    spectral_gaps as spectral_gaps,
    SpectralGaps as SpectralGaps,
)
from ._geometry_sweep import (
    compare_spectra as compare_spectra,
    freeze_temperatures as freeze_temperatures,
    Freezing as Freezing,
    spectrum_sweep as spectrum_sweep,
    SpectrumSweep as SpectrumSweep,
)
from ._memorization_law import (
    fit_memorization_law as fit_memorization_law,
    MemorizationLaw as MemorizationLaw,
)
from ._memorization_study import (
    memorization_study as memorization_study,
    MemorizationStudy as MemorizationStudy,
)
from ._solvable import (
    linear_model as linear_model,
    linear_modes as linear_modes,
    linear_sgd_weights as linear_sgd_weights,
    LinearModes as LinearModes,
    LinearNet as LinearNet,
    mixture_model as mixture_model,
    MixtureNet as MixtureNet,
    noise_moments as noise_moments,
    random_features_model as random_features_model,
    RandomFeaturesNet as RandomFeaturesNet,
    train_test_gap as train_test_gap,
    TrainTestGap as TrainTestGap,
)
