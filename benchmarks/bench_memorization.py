"""Memorisation over training time (issue 13, item 1; theory sections 10 and 11).

``memorization``
    Issue: "train the same architecture on n in a list of sizes (vmapped in one program), record
    f_mem, excess loss and generalisation error at log-spaced steps, detect tau_gen and tau_mem
    per run with error bars over seeds, fit tau_mem = c n^a and report a with its error".

    1. The study: ``memorization_study`` on the two-Gaussian mixture 1/2 N(+-2 e_1, I) in d = 8,
       ResidualMLP (width 128, depth 2), adam 3e-3 after clipping at 1, batch 256, n = 16, 32, 64
       with 3 seeds each (9 runs as one vmapped ``td.train`` program), 2000 steps,
       ``td.Diagnostics`` against the exact population (4 temperatures, 128 states each, f_mem of
       256 samples of 16 Heun steps, 20 log-spaced logs). Reported: the wall time of the whole
       study (compilation, training and diagnostics) against the 10-minute target, its tau_gen and
       tau_mem per run, the fitted law (free exponent and a = 1), the prediction of tau_mem(64)
       from the runs at n = 16 and 32, and the collapse of the f_mem curves against step/n.
    2. vmapped vs one after another: the same 9 runs (same models, keys, n_points masks, recipe
       and steps) trained by one vmapped ``td.train`` call and by 9 calls in a row, without
       diagnostics, each compiled by an untimed 1-step call first; alternated rounds, medians.
       The ratio is the speedup of the vmapped program on this machine's training alone.
    3. The whole study (training, diagnostics and every compilation) at the speed case's steps,
       ``memorization_study(vmap=True)`` against ``vmap=False``, one call each: what a user waits
       for (``td.train`` compiles its diagnostics once per call, so a looped study compiles them
       once per run).

Run ``python -m benchmarks --only memorization`` (``--quick``: n = 8 and 16, one seed, a width-32
net, 200 steps, 5 logs; speed case 2 runs x 50 steps; no whole-study comparison; about a minute on
the loaded 2-core machine, most of it compiling the diagnostics).
"""

from __future__ import annotations

import time

import numpy as np

from ._common import register

TARGET_STUDY_S = 600.0  # the three-size study on this CPU


def _setup(quick: bool):
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    d = 8
    mu = jnp.zeros(d).at[0].set(2.0)
    pop = td.GaussianMixture(jnp.stack([mu, -mu]), 1.0)
    sizes = (8, 16) if quick else (16, 32, 64)
    Y = np.asarray(pop.sample(jax.random.key(1), max(sizes)), np.float32)
    sd, mean = float(np.sqrt(np.mean(np.var(Y, 0)))), Y.mean(0)
    width, depth = (32, 1) if quick else (128, 2)
    make = lambda k: td.Preconditioned(td.ResidualMLP(d, width, depth, key=k), "edm", sd, mean)
    diag = td.Diagnostics(np.geomspace(0.1, 30, 4), population=pop, n_states=32 if quick else 128,
                          n_samples=64 if quick else 256, sample_steps=8 if quick else 16, n_logs=5 if quick else 20)
    cfg = dict(sizes=sizes, seeds=1 if quick else 3, steps=200 if quick else 2000, width=width, depth=depth,
               batch=256, lr=3e-3, speed_steps=50 if quick else 500, speed_rounds=1 if quick else 2)
    return pop, Y, make, diag, cfg


def _study(Y, make, diag, cfg, trainer):
    import jax

    from thermodiff._memorization_study import memorization_study

    t0 = time.perf_counter()
    st = memorization_study(make, Y, list(cfg["sizes"]), key=jax.random.key(0), steps=cfg["steps"], seeds=cfg["seeds"],
                            diagnostics=diag, trainer=trainer)
    return st, time.perf_counter() - t0


def _speed(Y, make, cfg, trainer):
    """Seconds of the vmapped program and of the runs one after another (same lanes, same steps)."""
    import jax

    import thermodiff as td

    keys = jax.random.split(jax.random.key(0), cfg["seeds"])
    models = [make(k) for k in keys] * len(cfg["sizes"])
    lanes = np.repeat(cfg["sizes"], cfg["seeds"]).astype(np.int32)
    lane_keys = jax.random.split(jax.random.key(5), len(lanes))
    stack = td.stack_models(models)

    def vmapped(steps):
        r = td.train(stack, Y, key=jax.random.key(5), steps=steps, vmap=True, n_points=lanes, trainer=trainer, progress=False)
        jax.block_until_ready(r.state.model)
        return r

    def looped(steps):
        out = [td.train(m, Y, key=k, steps=steps, n_points=int(n), trainer=trainer, progress=False)
               for m, k, n in zip(models, lane_keys, lanes)]
        jax.block_until_ready([r.state.model for r in out])
        return out

    vmapped(1), looped(1)  # compile both (the chunk's program does not depend on the number of steps)
    t = {"vmapped": [], "looped": []}
    for r in range(cfg["speed_rounds"]):
        for name, fn in (("vmapped", vmapped), ("looped", looped))[:: 1 if r % 2 == 0 else -1]:
            t0 = time.perf_counter()
            fn(cfg["speed_steps"])
            t[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in t.items()}, t


def _study_pair(Y, make, diag, cfg, trainer):
    """Wall seconds of the whole study (diagnostics, their compilation included) at the speed case's
    steps, vmapped and looped, one after the other."""
    import jax

    from thermodiff._memorization_study import memorization_study

    out = {}
    for vm in (True, False):
        t0 = time.perf_counter()
        memorization_study(make, Y, list(cfg["sizes"]), key=jax.random.key(0), steps=cfg["speed_steps"],
                           seeds=cfg["seeds"], diagnostics=diag, trainer=trainer, vmap=vm)
        out["vmapped" if vm else "looped"] = time.perf_counter() - t0
    return out


def _law_rows(st):
    from thermodiff._memorization_law import fit_memorization_law

    rows, small = [], st.sizes < st.sizes[-1]
    sz, tau = np.repeat(st.sizes[small], st.seeds), st.tau_mem[small].ravel()
    ok = np.isfinite(tau)
    for label, law in (("all sizes, a free", st.law), ("all sizes, a = 1", st.law_linear)):
        if law is not None:
            rows.append({"fit": label, "c": law.c, "c_se": law.c_se, "a": law.a, "a_se": law.a_se})
    if len(st.sizes) >= 3 and np.unique(sz[ok]).size >= 2:
        for label, e in (("small sizes, a free", None), ("small sizes, a = 1", 1.0)):
            law = fit_memorization_law(sz[ok], tau[ok], exponent=e)
            pred, lo, hi = law.predict(float(st.sizes[-1]))
            rows.append({"fit": label, "c": law.c, "c_se": law.c_se, "a": law.a, "a_se": law.a_se,
                         "pred_tau_mem_nmax": float(pred), "pred_lo": float(lo), "pred_hi": float(hi),
                         "measured_tau_mem_nmax": float(st.tau_mem_mean[-1]),
                         "measured_over_pred": float(st.tau_mem_mean[-1] / pred)})
    return rows


@register("memorization", description="tau_mem vs n study (two-Gaussian mixture, d = 8): wall time vs 10 min; vmapped vs looped training")
def bench_memorization(quick: bool) -> dict:
    import jax
    import optax

    import thermodiff as td

    if jax.config.jax_enable_x64:
        raise RuntimeError("the memorization benchmark is a float32 benchmark: run it with jax_enable_x64 off")
    pop, Y, make, diag, cfg = _setup(quick)
    trainer = td.Trainer(optax.adam(cfg["lr"]), T_min=1e-4 * float(np.var(Y, 0).mean()),
                         T_max=min(1e3 * float(np.var(Y, 0).mean()), td.VP().max_temperature()), batch_size=cfg["batch"])
    st, study_s = _study(Y, make, diag, cfg, trainer)
    speed, samples = _speed(Y, make, cfg, trainer)
    whole = None if quick else _study_pair(Y, make, diag, cfg, trainer)  # 3 more compilations of the diagnostics
    lanes = len(cfg["sizes"]) * cfg["seeds"]
    col = st.collapse()
    summary = {
        "study_wall_s": study_s, "study_train_wall_s": st.train_wall_s, "target_s": TARGET_STUDY_S,
        "study_within_target": bool(study_s <= TARGET_STUDY_S),
        "a": None if st.law is None else st.law.a, "a_se": None if st.law is None else st.law.a_se,
        "c_linear": None if st.law_linear is None else st.law_linear.c,
        "c_linear_se": None if st.law_linear is None else st.law_linear.c_se,
        "collapse_spread_rescaled": col.spread_rescaled, "collapse_spread_raw": col.spread_raw,
        "vmapped_s": speed["vmapped"], "looped_s": speed["looped"], "speedup_vmapped_over_looped": speed["looped"] / speed["vmapped"],
    }
    if whole is not None:
        summary.update(study_vmapped_s=whole["vmapped"], study_looped_s=whole["looped"],
                       study_speedup_vmapped_over_looped=whole["looped"] / whole["vmapped"])
    per_size = [{"n": int(n), "tau_gen_mean": float(g), "tau_gen_se": float(gs), "tau_mem_mean": float(m), "tau_mem_se": float(ms)}
                for n, g, gs, m, ms in zip(st.sizes, st.tau_gen_mean, st.tau_gen_se, st.tau_mem_mean, st.tau_mem_se)]
    timing = [{"case": k, "runs": lanes, "steps": cfg["speed_steps"], "wall_s": v,
               "run_steps_per_s": lanes * cfg["speed_steps"] / v} for k, v in speed.items()]
    timing += [{"case": f"whole study, {k}", "runs": lanes, "steps": cfg["speed_steps"], "wall_s": v,
                "run_steps_per_s": lanes * cfg["speed_steps"] / v} for k, v in (whole or {}).items()]
    notes = [
        f"study: {len(cfg['sizes'])} sizes x {cfg['seeds']} seeds = {lanes} runs, {cfg['steps']} steps, one vmapped program; "
        f"wall {study_s:.1f} s (training {st.train_wall_s:.1f} s) against the {TARGET_STUDY_S:.0f} s target: "
        + ("met" if study_s <= TARGET_STUDY_S else "NOT met"),
        f"law: {st.law}" if st.law is not None else "law: fewer than 2 sizes memorised",
        f"collapse of the mean f_mem curves: crossings of f_mem levels {col.levels.tolist()} agree within a factor "
        f"{col.spread_rescaled:.2f} against step/n, {col.spread_raw:.2f} against step",
        f"vmapped vs looped training (no diagnostics, {cfg['speed_steps']} steps, medians of {cfg['speed_rounds']} "
        f"alternated rounds): {speed['vmapped']:.2f} s vs {speed['looped']:.2f} s, ratio {speed['looped'] / speed['vmapped']:.2f}",
        "tau_gen: first step at which the generalisation error (summed over T) reaches a quality level shared by all runs; "
        "tau_cross_low_T: first step at which the excess loss falls below the generalisation error at the lowest T",
    ]
    if whole is not None:
        notes.append(f"the whole study (diagnostics and their compilation included, {cfg['speed_steps']} steps, one call each): "
                     f"{whole['vmapped']:.1f} s vmapped vs {whole['looped']:.1f} s looped, ratio "
                     f"{whole['looped'] / whole['vmapped']:.2f} (td.train compiles its diagnostics once per call: once for "
                     "the vmapped program, once per run when looped)")
    if quick:
        notes.append("quick mode: two small sizes, one seed, a small net and short runs (timings and law not representative); "
                     "the whole-study comparison (3 more compilations of the diagnostics, ~25 s each) is skipped")
    return {
        "summary": summary,
        "tables": {"runs (tau in steps)": st.table(), "per size (mean +- stderr over seeds)": per_size,
                   "law fits": _law_rows(st), "vmapped vs looped training": timing},
        "notes": notes,
        "samples_s": samples,
        "history": {"step": st.history["step"].tolist(), "f_mem": st.history["f_mem"].tolist(),
                    "excess_sum": np.sum(st.history["excess"], -1).tolist(),
                    "generalization_sum": np.sum(st.history["generalization"], -1).tolist(),
                    "temperatures": st.history["temperatures"].tolist()},
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
    }
