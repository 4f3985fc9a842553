"""The "measured in your model" part of ``thermodiff analyze --model`` (theory section 10).

A trained network runs from the same noisy states with the same noise as the exact-score
simulation, in the same (scaled) units; its speciation and memorization are measured with the
same estimators and the same rules as the exact ones, against its own training points.
"""

from __future__ import annotations

import numpy as np


def _model_cloning(model, data, sched, T, key, x_T, steps, T_end):
    """phi(T) of a trained model from the states ``x_T`` and the noise of ``key``, classified by
    the exact empirical posterior at T_end (as the exact simulation classifies)."""
    import thermodiff as td

    from ._dynamics import _default_classifier

    ts = td.time_grid(sched, steps, td.KarrasGrid(), T_start=T, T_end=T_end)
    classify = _default_classifier(data.ens, sched, ts[-1], data.labels)
    return td.cloning_probability(model, sched, T, key=key, n_pairs=x_T.shape[0], steps=steps, grid=td.KarrasGrid(),
                                  T_end=T_end, classify=classify, x_T=x_T)


def model_measurements(res, data, model, model_train, info, plan, T_hi, T_lo, key, cloning) -> dict:
    """Cloning curve, memorization estimators and class balance of a trained model."""
    import jax

    import thermodiff as td

    from ._analyze import _estimate, median_with_error, paths_crossing, phi_crossing

    sc = data.scale
    net = td.Rescaled(model, sc.a, sc.b)  # the model acts on raw data; the analysis runs in scaled units
    sched = td.VP()
    phi, err = [], []
    for T, (kc, x_T) in zip(cloning["T"], cloning["states"]):
        m = _model_cloning(net, data, sched, float(T), kc, x_T, plan.clone_steps, cloning["T_end"])
        phi.append(float(m.value)), err.append(float(m.stderr))
    idx = np.arange(data.X.shape[0]) if model_train is None else np.asarray(model_train)
    mm = td.measure_collapse(np.asarray(data.X[idx], np.float32), sched, jax.random.fold_in(key, 0),
                             n_trajectories=plan.n_traj, T_high=T_hi, T_low=T_lo, n_save=plan.n_save,
                             steps=plan.traj_steps, labels=data.labels[idx], model=net)
    Ts = np.asarray(mm.T, np.float64)
    seed = res["seed"]
    T_half, e_half = phi_crossing(cloning["T"], phi, err, cloning["half_level"], seed)
    T_top, e_top = paths_crossing(Ts, np.asarray(mm.top_weight_paths), 0.5, seed)
    T_set, e_set = median_with_error(np.asarray(mm.settle_T), seed)
    T_mh, e_mh = paths_crossing(Ts, np.asarray(mm.memorized_paths), 0.5, seed)
    fc = np.asarray(mm.final_class)
    return dict(
        info=info or {}, n_train_points=int(idx.size),
        cloning=dict(phi=phi, phi_stderr=err),
        cloning_half=_estimate("phi(T) halfway between chance and 1, simulated with your model", T_half, sc, stderr=e_half),
        top_weight_half=_estimate("posterior weight of the top training point reaches 1/2 on your model's trajectories",
                                  T_top, sc, stderr=e_top),
        settle=_estimate("median T after which a trajectory of your model keeps its nearest training point", T_set, sc,
                         stderr=e_set),
        memorized_half=_estimate("half of your model's states have d1/d2 < 1/3", T_mh, sc, stderr=e_mh),
        trajectories=dict(T=Ts.tolist(), top_weight=np.asarray(mm.top_weight).tolist(),
                          memorized_fraction=np.asarray(mm.memorized_fraction).tolist()),
        final_memorized_fraction=float(np.asarray(mm.memorized_fraction)[-1]),
        generated_fraction_by_class={int(c): float(np.mean(fc == i)) for i, c in enumerate(data.classes)},
    )


__all__ = ["model_measurements"]
