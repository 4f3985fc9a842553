"""Figures of ``thermodiff analyze``: spectrum, cloning curve, memorization, class commitment.

Rules kept here: every axis says what it shows and in which units; every estimated number has
its error bar and sample size; every marked temperature has its own colour and line style and
a legend entry with its value; no bar chart on a log scale (commitment temperatures are points
with interquartile bars).
"""

from __future__ import annotations

import numpy as np

_MARKS = [  # (section, key, colour, style, label)
    ("speciation", "cloning_half", "C0", "-", "speciation (headline)"),
    ("speciation", "first_split", "C9", "--", "exact first split"),
    ("speciation", "biroli", "C4", ":", "Biroli T_S"),
    ("memorization", "top_weight_half", "C3", "-", "memorization (headline)"),
    ("memorization", "excess_entropy_zero", "C1", "--", "excess entropy zero"),
    ("memorization", "rem", "C5", ":", "REM threshold"),
    ("memorization", "settle", "C8", "-.", "nearest point settles"),
    ("memorization", "memorized_half", "C7", (0, (1, 3)), "half on a point"),
]


def _units(res) -> str:
    return {"raw": "data units", "unit-variance": "unit-variance units", "minus-one-one": "[-1, 1] units"}[res["scale"]["name"]]


def _marks(ax, res, which=None):
    """Vertical lines at the estimators (a band for the headlines' +- one standard error)."""
    lo, hi = ax.get_xlim()
    for sec, key, c, ls, label in _MARKS:
        if which is not None and sec not in which:
            continue
        e = res[sec][key]
        if e["T"] is None:
            continue
        band = "headline" in label and e.get("stderr")
        pm = f" +- {e['stderr']:.2g} (band)" if band else ""
        ax.axvline(e["T"], color=c, ls=ls, lw=1.3, label=f"{label}: T = {e['T']:.3g}{pm}")
        if band:
            ax.axvspan(max(e["T"] - e["stderr"], 1e-300), e["T"] + e["stderr"], color=c, alpha=0.25, lw=0)
    ax.set_xlim(min(lo, ax.get_xlim()[0]), max(hi, ax.get_xlim()[1]))


def _spectrum(plt, res):
    sp = res["spectrum"]
    ev = np.asarray(sp["eigenvalues"])
    fig, ax = plt.subplots(figsize=(6, 4))
    keep = ev > 1e-9 * ev.max()  # numerically zero directions (constant pixels) cannot go on a log axis
    ax.semilogy(np.arange(1, ev.size + 1)[keep], ev[keep], "o-", ms=3,
                label="eigenvalue" + (f" ({int((~keep).sum())} zero eigenvalues not shown)" if (~keep).any() else ""))
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="unit noise variance (Biroli: levels need lambda > 1)")
    ax.set_xlabel("rank k")
    ax.set_ylabel(f"covariance eigenvalue lambda_k ({_units(res)} squared)")
    ax.set_title(f"Leading {ev.size} eigenvalues ({100 * sp['explained_fraction']:.0f}% of the variance)")
    ax.legend(fontsize=7)
    return fig


def _cloning(plt, res):
    cl = res["cloning"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.errorbar(cl["T"], cl["phi_simulated"], yerr=cl["phi_simulated_stderr"], fmt="o", color="k", ms=4,
                label=f"simulated, exact score ({cl['n_pairs']} pairs per T)")
    if "model" in res:
        mc = res["model"]["cloning"]
        ax.errorbar(cl["T"], mc["phi"], yerr=mc["phi_stderr"], fmt="s", mfc="none", color="C2", ms=5,
                    label="simulated, your model (same states and noise)")
    if cl["phi_exact"]:  # not computed with --quick
        ax.errorbar(cl["T"], cl["phi_exact"], yerr=cl["phi_exact_stderr"], fmt="-", color="0.5", lw=1,
                    label="posterior at T: E sum_c P(c|x)^2")
    ax.axhline(cl["chance"], color="0.6", lw=0.8, ls=":", label=f"chance {cl['chance']:.2f}")
    ax.axhline(cl["half_level"], color="C0", lw=0.6, ls=(0, (4, 4)), label=f"halfway level {cl['half_level']:.2f}")
    ax.set_xscale("log")
    _marks(ax, res, ("speciation",))
    ax.set_xlabel(f"branching temperature T (VE noise variance, {_units(res)})")
    ax.set_ylabel("cloning probability phi(T) (same class)")
    ax.set_ylim(-0.02, 1.05)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    ax.set_title("Speciation: when two copies of a generation agree on the class")
    return fig


def _collapse(plt, res):
    tr = res["trajectories"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(tr["T"], tr["top_weight"], "-", color="C3", lw=2, label="posterior weight of the top training point")
    ax.plot(tr["T"], tr["memorized_fraction"], "-", color="C7", lw=2, label="fraction of states on a point (d1/d2 < 1/3)")
    if "model" in res:
        mt = res["model"]["trajectories"]
        ax.plot(mt["T"], mt["top_weight"], "--", color="C3", label="top weight, your model")
        ax.plot(mt["T"], mt["memorized_fraction"], "--", color="C7", label="on a point, your model")
    ax.axhline(0.5, color="k", lw=0.5)
    ax.set_xscale("log")
    _marks(ax, res, ("memorization",))
    ax.set_xlabel(f"temperature T (VE noise variance, {_units(res)})")
    ax.set_ylabel("mean over trajectories (0 to 1)")
    ax.set_ylim(-0.02, 1.05)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    ax.set_title(f"Memorization along {tr['n_trajectories']} exact-score trajectories")
    return fig


def _commitment(plt, res):
    cls = [c for c in res["classes"] if c["median_commit_T"] is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    if cls:
        x = np.arange(len(cls))
        med = np.array([c["median_commit_T"] for c in cls])
        q = np.array([[c["commit_T_quartiles"][0] or m, c["commit_T_quartiles"][1] or m] for c, m in zip(cls, med)])
        ax.errorbar(x, med, yerr=[med - q[:, 0], q[:, 1] - med], fmt="o", color="k", capsize=3,
                    label="median, bars: quartiles")
        for xi, c in zip(x, cls):
            ax.annotate(f"n={c['n_trajectories']}", (xi, med[xi]), textcoords="offset points", xytext=(6, 0), fontsize=7)
        ax.set_xticks(x, [str(c["label"]) for c in cls])
        ax.set_yscale("log")
        sp = res["speciation"]["cloning_half"]
        if sp["T"] is not None:
            ax.axhline(sp["T"], color="C0", lw=1, label=f"speciation (headline): T = {sp['T']:.3g}")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no trajectory committed to a class", ha="center", transform=ax.transAxes)
    ax.set_xlabel("class")
    ax.set_ylabel(f"commitment temperature T ({_units(res)})")
    ax.set_title("When trajectories commit to their final class (posterior >= 0.9)")
    return fig


def _effective_dimension(plt, res):
    g = res["geometry"]
    T = np.asarray(g["T"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step(T, g["gaussian"], where="mid", color="0.4", lw=1.2,
            label="Gaussian approximation #{lambda_i > T} (data spectrum)")
    if g["empirical"] is not None:
        ax.errorbar(T, g["empirical"], yerr=g["empirical_stderr"], fmt="o-", ms=3, color="C0", capsize=2,
                    label=f"exact empirical score (mean +- s.e., {g['n_states']} states)")
    ax.set_xscale("log")
    _marks(ax, res, which=("memorization",))
    ax.set_xlabel(f"temperature T ({_units(res)})")
    ax.set_ylabel(f"effective dimension (eigenvalues of I - Cov/T below {g['threshold']})")
    ax.set_title("Tangent dimensions of the score as the noise falls")
    ax.legend(fontsize=6, loc="upper right")  # the staircase is low at high T
    return fig


def figures(res) -> dict:
    """{filename: PNG bytes} of the figures (the effective dimension when it was measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._io import figure_bytes

    out = {}
    todo = [("spectrum.png", _spectrum), ("cloning.png", _cloning), ("collapse.png", _collapse),
            ("commitment.png", _commitment)]
    if "geometry" in res:
        todo.append(("effective_dimension.png", _effective_dimension))
    for name, fn in todo:
        fig = fn(plt, res)
        out[name] = figure_bytes(fig)
        plt.close(fig)
    return out


__all__ = ["figures"]
