"""``thermodiff analyze``: where a dataset speciates and where it collapses (SPEC sections 3, 6, 9).

One pass over a dataset (the embedded UCI digits by default) that answers the practitioner's two
questions before any training: at which noise level does a diffusion model commit to a class
(speciation), and below which does it start to reproduce training points (collapse)? Each
prediction is confirmed by simulation with the exact empirical score (the score a perfectly
trained model would learn):

1. spectrum: eigenvalues of the data covariance;
2. predictions: Biroli et al.'s speciation t_S = log(Lambda)/2 and the exact first split of the
   empirical law; the REM collapse T_C = s^2/(N^{2/d} - 1) and the zero of the excess entropy;
   every temperature also as OU time and as DDPM step (both conventions of SPEC section 1);
3. measured cloning curve phi(T) (two copies branched at T end in the same class);
4. measured collapse and per-class commitment along exact-score trajectories.

Temperatures are VE-equivalent noise variances in the data's own units.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

_STAGES = ("spectrum", "speciation", "collapse prediction", "cloning curve", "trajectories", "figures")


class Progress:
    """A progress bar on stderr (a redrawn bar on a terminal, one line per stage otherwise)."""

    def __init__(self, enabled: bool = True, stream=None, stages=_STAGES):
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.stages = tuple(stages)
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        self._stage = None
        self._t_stage = self.t0
        self._decile = -1
        self.suffix = ""  # extra text after the bar (e.g. the current loss)

    def stage(self, name: str) -> None:
        self._close_stage()
        self._stage, self._t_stage = name, time.perf_counter()
        self._decile = -1
        self.update(0, 1)

    def update(self, done: int, total: int) -> None:
        """Redraw the bar (terminal), or print a line at the start and every tenth (elsewhere)."""
        if not self.enabled or self._stage is None:
            return
        k = self.stages.index(self._stage) + 1 if self._stage in self.stages else 0
        width = 24
        frac = min(max(done / max(total, 1), 0.0), 1.0)
        fill = int(width * frac)
        bar = "#" * fill + "-" * (width - fill)
        line = f"[{k}/{len(self.stages)}] [{bar}] {self._stage} ({time.perf_counter() - self.t0:5.1f} s){self.suffix}"
        if self.tty:
            self.stream.write("\r" + line.ljust(78))
            self.stream.flush()
        elif int(10 * frac) > self._decile:
            self._decile = int(10 * frac)
            self.stream.write(line + "\n")
            self.stream.flush()

    def _close_stage(self) -> None:
        if self._stage is not None:
            self.timings[self._stage] = time.perf_counter() - self._t_stage

    def finish(self) -> dict[str, float]:
        self._close_stage()
        self._stage = None
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
        return self.timings


def _f(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _conventions(T: float | None) -> dict:
    """A VE temperature with its OU time and DDPM step (SPEC section 1)."""
    import jax.numpy as jnp

    from ._schedules import DDPM, OU

    if T is None or not math.isfinite(T) or T <= 0:
        return dict(T=None, ou_t=None, ddpm_step=None, abar=None)
    return dict(
        T=float(T), ou_t=_f(OU().time_at_temperature(jnp.asarray(T))),
        ddpm_step=_f(DDPM().time_at_temperature(jnp.asarray(T))), abar=1.0 / (1.0 + float(T)),
    )


def analyze(X: np.ndarray, labels: np.ndarray | None, *, seed: int = 0, quick: bool = False,
            progress: Progress | None = None, name: str = "data", model=None, model_train=None,
            model_info: dict | None = None) -> tuple[dict, dict]:
    """Run the whole analysis; returns (results for results.json, {filename: png bytes}).

    With ``model`` (a trained network) the cloning curve is also simulated with the model from
    the same states with the same noise, and collapse and commitment are measured along the
    model's own trajectories against its training points (``model_train``: indices into X,
    default all): the "measured in your model" columns of the report (theory section 10).
    """
    import jax
    import jax.numpy as jnp

    import thermodiff as td

    from ._memory import collapse_temperature, collapse_temperature_from_data
    from ._speciation import measure_collapse, speciation_time

    progress = Progress(False) if progress is None else progress
    X = np.asarray(X, np.float64)
    n, d = X.shape
    key = jax.random.key(seed)
    k_ent, k_clone, k_traj = jax.random.split(key, 3)

    # 1. spectrum -------------------------------------------------------------------------
    progress.stage("spectrum")
    mu = X.mean(0)
    C = np.cov(X.T, bias=True).reshape(d, d)
    evals = np.sort(np.linalg.eigvalsh(C))[::-1]
    evals = np.maximum(evals, 0.0)
    s2 = float(evals.sum() / d)
    if not s2 > 0:
        raise ValueError("DATA has zero variance (all points identical): nothing to analyse")
    pr_dim = float(evals.sum() ** 2 / np.sum(evals**2))
    label_source = "given"
    if labels is None:
        v1 = np.linalg.eigh(C)[1][:, -1]
        labels = ((X - mu) @ v1 > 0).astype(np.int64)
        label_source = "sign of the projection on the top principal axis (no labels given)"
    labels = np.asarray(labels, np.int64)
    classes = np.unique(labels)
    remap = {c: i for i, c in enumerate(classes)}
    lab = np.array([remap[c] for c in labels], np.int32)
    ens = td.FiniteDataset(jnp.asarray(X, jnp.float32))

    # 2. speciation ---------------------------------------------------------------------------
    progress.stage("speciation")
    pred = speciation_time(ens, td.OU(), n_levels=min(5, d), exact=True, max_starts=8 if quick else 16,
                           rtol=1e-2 if quick else 1e-3)
    T_bir, T_fs = _f(pred.T_biroli), _f(pred.T_first_split)

    # 3. collapse prediction -------------------------------------------------------------------
    progress.stage("collapse prediction")
    T_rem = float(collapse_temperature(n, d, s2))
    T_ent = _f(collapse_temperature_from_data(ens, k_ent, n_temperatures=13 if quick else 25,
                                              n_samples=128 if quick else 256))

    # 4. cloning curve --------------------------------------------------------------------------
    progress.stage("cloning curve")
    sched = td.VP()
    T_spec = max(t for t in (T_bir, T_fs, s2) if t is not None)
    T_hi = 4.0 * T_spec
    T_lo = min(T_rem, T_spec) / 30.0
    n_T = 6 if quick else 10
    Tc_grid = np.geomspace(T_hi, T_lo, n_T)
    n_pairs = 128 if quick else 384
    phi_sim, phi_err, phi_exact, phi_exact_err, phi_model, phi_model_err = [], [], [], [], [], []
    clone_steps = 40 if quick else 80
    for i, T in enumerate(Tc_grid):
        kc = jax.random.fold_in(k_clone, i)
        x_T = td.Diffused(ens, sched).sample_marginal(jax.random.fold_in(kc, 1), n_pairs,
                                                      sched.time_at_temperature(float(T)))[1]
        e = td.cloning_probability(ens, sched, float(T), key=kc, n_pairs=n_pairs, steps=clone_steps,
                                   grid=td.KarrasGrid(), T_end=T_lo / 10, labels=lab, x_T=x_T)
        x = td.cloning_probability(ens, None, float(T), n_pairs=4 * n_pairs, labels=lab)
        phi_sim.append(float(e.value)), phi_err.append(float(e.stderr))
        phi_exact.append(float(x.value)), phi_exact_err.append(float(x.stderr))
        if model is not None:  # the same states and the same noise as the exact simulation above
            m = _model_cloning(td, model, ens, sched, float(T), kc, x_T, clone_steps, T_lo / 10, lab)
            phi_model.append(float(m.value)), phi_model_err.append(float(m.stderr))
        progress.update(i + 1, n_T)
    chance = float(np.sum((np.bincount(lab) / n) ** 2))
    half = _half_level(lab)
    T_half = _crossing_desc(Tc_grid, np.asarray(phi_sim), half)

    # 5. trajectories ------------------------------------------------------------------------
    progress.stage("trajectories")
    meas = measure_collapse(ens, sched, k_traj, n_trajectories=96 if quick else 256, T_high=T_hi,
                            T_low=min(T_rem, T_spec) / 300.0, n_save=24 if quick else 40,
                            steps=80 if quick else 160, labels=lab)
    model_res = None
    if model is not None:
        idx = np.arange(n) if model_train is None else np.asarray(model_train)
        mm = measure_collapse(np.asarray(X[idx], np.float32), sched, k_traj, n_trajectories=96 if quick else 256,
                              T_high=T_hi, T_low=min(T_rem, T_spec) / 300.0, n_save=24 if quick else 40,
                              steps=80 if quick else 160, labels=lab[idx], model=model)
        mfc = np.asarray(mm.final_class)
        model_res = dict(
            info=model_info or {}, n_train_points=int(idx.size),
            cloning=dict(phi=phi_model, phi_stderr=phi_model_err),
            cloning_half=dict(formula="phi(T) halfway between 1 and chance, simulated with your model", **_conventions(
                _crossing_desc(Tc_grid, np.asarray(phi_model), _half_level(lab)))),
            measured_settle=dict(formula="median T after which a trajectory of your model keeps its nearest training point",
                                 **_conventions(_f(mm.T_collapse))),
            measured_top_weight_half=dict(formula="mean posterior weight of the top training point reaches 1/2 on your model's trajectories",
                                          **_conventions(_f(mm.T_top_half))),
            measured_memorized_half=dict(formula="half of your model's states have d1/d2 < 1/3", **_conventions(_f(mm.T_memorized_half))),
            trajectories=dict(T=np.asarray(mm.T).tolist(), top_weight=np.asarray(mm.top_weight).tolist(),
                              memorized_fraction=np.asarray(mm.memorized_fraction).tolist()),
            final_memorized_fraction=float(np.asarray(mm.memorized_fraction)[-1]),
            generated_fraction_by_class={int(c): float(np.mean(mfc == i)) for i, c in enumerate(classes)},
        )
    fc = np.asarray(meas.final_class)
    commit = np.asarray(meas.commit_T)
    per_class = []
    for i, c in enumerate(classes):
        sel = fc == i
        per_class.append(dict(
            label=int(c), n_points=int(np.sum(lab == i)), generated_fraction=float(np.mean(sel)),
            median_commit_T=_f(np.nanmedian(commit[sel])) if sel.any() and np.isfinite(commit[sel]).any() else None,
        ))

    # 6. figures -------------------------------------------------------------------------------
    progress.stage("figures")
    res = dict(
        dataset=dict(name=name, n_points=n, dim=d, mean_variance=s2, participation_ratio_dimension=pr_dim,
                     classes=[int(c) for c in classes], labels=label_source),
        convention="T = VE-equivalent noise variance in data units (SPEC 1); OU time t = log(1 + T)/2; "
                   "DDPM step of the linear 1e-4..0.02 x 1000 schedule; abar = 1/(1 + T)",
        spectrum=dict(eigenvalues=evals.tolist()),
        speciation=dict(
            biroli=dict(formula="t_S = log(Lambda)/2 (OU), T_S = Lambda - 1", Lambda=float(evals[0]), **_conventions(T_bir)),
            first_split=dict(formula="exact first split of the empirical law (td.first_split_temperature)", **_conventions(T_fs)),
            spectral_levels=[_conventions(_f(t)) for t in np.asarray(pred.T_levels)],
            cloning_half=dict(formula="phi(T) halfway between 1 and chance (measured)", **_conventions(T_half)),
        ),
        collapse=dict(
            rem=dict(formula="T_C = s^2/(N^(2/d) - 1), s^2 = mean variance (SPEC 9)", **_conventions(T_rem)),
            excess_entropy_zero=dict(formula="zero of f(T) = s_sep - s (Monte Carlo, exact empirical density)", **_conventions(T_ent)),
            measured_settle=dict(formula="median T after which a trajectory's nearest training point never changes", **_conventions(_f(meas.T_collapse))),
            measured_top_weight_half=dict(formula="mean posterior weight of the top training point reaches 1/2", **_conventions(_f(meas.T_top_half))),
            measured_memorized_half=dict(formula="half the states have d1/d2 < 1/3", **_conventions(_f(meas.T_memorized_half))),
        ),
        cloning=dict(T=Tc_grid.tolist(), phi_simulated=phi_sim, phi_simulated_stderr=phi_err, phi_exact=phi_exact,
                     phi_exact_stderr=phi_exact_err, chance=chance, n_pairs=n_pairs),
        trajectories=dict(T=np.asarray(meas.T).tolist(), top_weight=np.asarray(meas.top_weight).tolist(),
                          memorized_fraction=np.asarray(meas.memorized_fraction).tolist(),
                          n_trajectories=int(fc.size)),
        classes=per_class,
        seed=seed, quick=quick,
    )
    if model_res is not None:
        res["model"] = model_res
    figs = _figures(res)
    return res, figs


def _half_level(lab) -> float:
    """The phi level halfway between chance (classes drawn independently) and 1 ('cloning_half')."""
    chance = float(np.sum((np.bincount(lab) / lab.size) ** 2))
    return chance + 0.5 * (1 - chance)


def _model_cloning(td, model, ens, sched, T, key, x_T, steps, T_end, lab):
    """phi(T) of a trained model from the states ``x_T`` and the noise of ``key``, classified by
    the exact empirical posterior at T_end (as the exact simulation classifies)."""
    from ._dynamics import _default_classifier

    ts = td.time_grid(sched, steps, td.KarrasGrid(), T_start=T, T_end=T_end)
    classify = _default_classifier(ens, sched, ts[-1], lab)
    return td.cloning_probability(model, sched, T, key=key, n_pairs=x_T.shape[0], steps=steps, grid=td.KarrasGrid(),
                                  T_end=T_end, classify=classify, x_T=x_T)


def _crossing_desc(T, y, level):
    """T where y(T) (T decreasing along the array, y increasing) reaches level; None if never."""
    for i in range(1, len(T)):
        if (y[i - 1] - level) * (y[i] - level) <= 0 and y[i] != y[i - 1]:
            f = (level - y[i - 1]) / (y[i] - y[i - 1])
            return float(math.exp(math.log(T[i - 1]) + f * (math.log(T[i]) - math.log(T[i - 1]))))
    return None


def _figures(res) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._io import figure_bytes

    def marks(ax):
        styles = [("speciation", "biroli", "C0", "--", "Biroli T_S"), ("speciation", "first_split", "C0", ":", "first split"),
                  ("collapse", "rem", "C3", "--", "REM T_C"), ("collapse", "measured_settle", "C3", ":", "measured collapse")]
        for sec, k, c, ls, lab in styles:
            T = res[sec][k]["T"]
            if T is not None:
                ax.axvline(T, color=c, ls=ls, lw=1, label=lab)

    out = {}
    ev = np.asarray(res["spectrum"]["eigenvalues"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.semilogy(np.arange(1, ev.size + 1), np.maximum(ev, 1e-12), "o-", ms=3)
    ax.axhline(1.0, color="k", lw=0.5)
    ax.set_xlabel("rank k")
    ax.set_ylabel(r"eigenvalue $\lambda_k$ of the data covariance")
    ax.set_title("Covariance spectrum (speciation levels: $T_k = \\lambda_k - 1$)")
    out["spectrum.png"] = figure_bytes(fig)
    plt.close(fig)

    cl = res["cloning"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(cl["T"], cl["phi_simulated"], yerr=cl["phi_simulated_stderr"], fmt="o", label="simulated (exact score)")
    if "model" in res:
        mc = res["model"]["cloning"]
        ax.errorbar(cl["T"], mc["phi"], yerr=mc["phi_stderr"], fmt="s", mfc="none", color="C2",
                    label="simulated (your model, same states and noise)")
    ax.plot(cl["T"], cl["phi_exact"], "-", label=r"$E_x\,\sum_c P(c|x)^2$")
    ax.axhline(cl["chance"], color="gray", lw=0.6, label="chance")
    marks(ax)
    ax.set_xscale("log")
    ax.set_xlabel("branching temperature T")
    ax.set_ylabel(r"cloning probability $\phi(T)$")
    ax.legend(fontsize=7)
    out["cloning.png"] = figure_bytes(fig)
    plt.close(fig)

    tr = res["trajectories"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(tr["T"], tr["top_weight"], "-", label="posterior weight of the top training point")
    ax.plot(tr["T"], tr["memorized_fraction"], "-", label="memorised fraction (d1/d2 < 1/3)")
    if "model" in res:
        mt = res["model"]["trajectories"]
        ax.plot(mt["T"], mt["top_weight"], "--", color="C0", label="top weight, your model's trajectories")
        ax.plot(mt["T"], mt["memorized_fraction"], "--", color="C1", label="memorised fraction, your model")
    marks(ax)
    ax.set_xscale("log")
    ax.set_xlabel("temperature T")
    ax.legend(fontsize=7)
    ax.set_title("Collapse along exact-score trajectories")
    out["collapse.png"] = figure_bytes(fig)
    plt.close(fig)

    cls = res["classes"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    vals = [c["median_commit_T"] or np.nan for c in cls]
    ax.bar([str(c["label"]) for c in cls], vals)
    ax.set_yscale("log")
    ax.set_xlabel("class")
    ax.set_ylabel("median commitment temperature")
    ax.set_title("When trajectories commit to their final class")
    out["commitment.png"] = figure_bytes(fig)
    plt.close(fig)
    return out


def _fmt(x, p=4):
    return "n/a" if x is None else f"{x:.{p}g}"


def _model_section(res: dict) -> list[str]:
    """"Measured in your model": the trained network's speciation and collapse beside the exact ones."""
    m, sp, co = res["model"], res["speciation"], res["collapse"]
    info = m["info"]
    rows = [
        ("speciation", "phi(T) halfway (simulated)", sp["cloning_half"], m["cloning_half"]),
        ("collapse", "nearest point settles", co["measured_settle"], m["measured_settle"]),
        ("collapse", "top weight 1/2", co["measured_top_weight_half"], m["measured_top_weight_half"]),
        ("collapse", "half memorised (d1/d2 < 1/3)", co["measured_memorized_half"], m["measured_memorized_half"]),
    ]
    lines = [
        "",
        "## Measured in your model",
        "",
        f"Checkpoint: {info.get('path', 'n/a')} (step {info.get('step', 'n/a')}, {info.get('architecture', 'n/a')}), "
        f"trained on {m['n_train_points']} of the {res['dataset']['n_points']} points. The model runs from the same "
        "noisy states with the same noise as the exact-score simulation; collapse is measured against its own "
        "training points. Temperatures are VE (T), as in the table above.",
        "",
        "| transition | measurement | exact empirical score: T | your model: T | your model: DDPM step |",
        "|---|---|---|---|---|",
    ]
    for kind, label, ex, mo in rows:
        lines.append(f"| {kind} | {label} | {_fmt(ex['T'])} | {_fmt(mo['T'])} | {_fmt(mo['ddpm_step'])} |")
    lines += ["", f"Fraction of your model's final states that sit on a training point (d1/d2 < 1/3): "
              f"{m['final_memorized_fraction']:.3f} (exact empirical score: {res['trajectories']['memorized_fraction'][-1]:.3f})."]
    return lines


def report_markdown(res: dict, timings: dict) -> str:
    ds = res["dataset"]
    sp, co = res["speciation"], res["collapse"]
    rows = [
        ("speciation", "Biroli et al. (spectrum)", sp["biroli"]),
        ("speciation", "exact first split", sp["first_split"]),
        ("speciation", "measured: phi(T) halfway", sp["cloning_half"]),
        ("collapse", "REM threshold", co["rem"]),
        ("collapse", "excess entropy zero", co["excess_entropy_zero"]),
        ("collapse", "measured: nearest point settles", co["measured_settle"]),
        ("collapse", "measured: top weight 1/2", co["measured_top_weight_half"]),
        ("collapse", "measured: half memorised (d1/d2 < 1/3)", co["measured_memorized_half"]),
    ]
    lines = [
        f"# thermodiff analyze: {ds['name']}",
        "",
        f"N = {ds['n_points']} points in d = {ds['dim']} dimensions; mean per-coordinate variance "
        f"s^2 = {ds['mean_variance']:.4g}; participation-ratio dimension {ds['participation_ratio_dimension']:.3g}; "
        f"top eigenvalue Lambda = {sp['biroli']['Lambda']:.4g}. Classes: {ds['labels']}.",
        "",
        f"Conventions: {res['convention']}.",
        "",
        "## Where generation commits (speciation) and where it memorises (collapse)",
        "",
        "| transition | estimate | T (VE) | OU time t | DDPM step | abar |",
        "|---|---|---|---|---|---|",
    ]
    for kind, label, r in rows:
        lines.append(f"| {kind} | {label} | {_fmt(r['T'])} | {_fmt(r['ou_t'])} | {_fmt(r['ddpm_step'])} | {_fmt(r['abar'])} |")
    if "model" in res:
        lines += _model_section(res)
    lines += [
        "",
        "Above the speciation temperature the noisy state does not yet know its class; between "
        "speciation and collapse a model generalises; below the collapse temperature the exact "
        "empirical score pulls every trajectory onto a training point (memorisation). A trained "
        "model that follows the exact score below T_C reproduces the training set.",
        "",
        "## Cloning curve",
        "",
        "| T | phi simulated | +- | phi exact | +- |",
        "|---|---|---|---|---|",
    ]
    cl = res["cloning"]
    mphi = res["model"]["cloning"] if "model" in res else None
    if mphi is not None:
        lines[-2] = "| T | phi simulated | +- | phi exact | +- | phi your model | +- |"
        lines[-1] = "|---|---|---|---|---|---|---|"
    for i, (T, a, ae, b, be) in enumerate(zip(cl["T"], cl["phi_simulated"], cl["phi_simulated_stderr"], cl["phi_exact"],
                                               cl["phi_exact_stderr"])):
        extra = f" {mphi['phi'][i]:.3f} | {mphi['phi_stderr'][i]:.3f} |" if mphi is not None else ""
        lines.append(f"| {T:.4g} | {a:.3f} | {ae:.3f} | {b:.3f} | {be:.3f} |{extra}")
    lines += ["", f"Chance level (classes drawn independently): {cl['chance']:.3f}.", "",
              "## Class commitment", "", "| class | points | generated fraction | median commitment T |", "|---|---|---|---|"]
    for c in res["classes"]:
        lines.append(f"| {c['label']} | {c['n_points']} | {c['generated_fraction']:.3f} | {_fmt(c['median_commit_T'])} |")
    lines += ["", "## Figures", "", "![spectrum](spectrum.png) ![cloning](cloning.png) ![collapse](collapse.png) "
              "![commitment](commitment.png)", "", "## Wall time by stage", "", "| stage | seconds |", "|---|---|"]
    for k, v in timings.items():
        lines.append(f"| {k} | {v:.1f} |")
    lines.append("")
    return "\n".join(lines)


__all__ = ["Progress", "analyze", "report_markdown"]
