"""report.md of ``thermodiff analyze``: the headline answers, their rules and the supporting evidence.

Every sentence with a number is generated from results.json (never typed), and every sentence
that interprets a number is chosen by comparing the numbers it talks about, so the narrative
cannot contradict the table beside it.
"""

from __future__ import annotations

HEADLINE_RULES = dict(
    speciation=(
        "the temperature where the cloning probability phi(T) (two copies of a generation branched at T end in "
        "the same class), simulated with the exact empirical score, is halfway between chance and 1; its error is "
        "the parametric bootstrap of phi's Monte Carlo errors. If phi does not cross that level on the grid: the "
        "exact first split."),
    memorization=(
        "the temperature where the posterior weight of the most probable training point, averaged over "
        "exact-score trajectories, reaches 1/2 (the posterior condenses onto one point); its error is the "
        "bootstrap over trajectories. If it does not cross on the grid: the REM prediction."),
)

WHY = {
    ("speciation", "biroli"): "spectral (Gaussian) approximation: the top principal variance exceeds the noise; blind to the shape of the classes, and not scale-invariant (Lambda - 1 compares Lambda with a unit noise variance, so it moves with --scale)",
    ("speciation", "first_split"): "equilibrium criterion: the free-energy landscape's first bifurcation, not the dynamics' commitment",
    ("speciation", "cloning_half"): "the headline: what the sampler does",
    ("memorization", "rem"): "closed form for Gaussian data of the same N, d and variance; real data are clustered and lower-dimensional",
    ("memorization", "excess_entropy_zero"): "thermodynamic condensation of the exact noisy density, averaged over all states rather than along trajectories",
    ("memorization", "top_weight_half"): "the headline: condensation of the posterior along the sampler's own trajectories",
    ("memorization", "settle"): "trajectory criterion: the nearest point must also stop changing, which needs the state to approach it, so it lies lower",
    ("memorization", "memorized_half"): "geometric criterion on the state itself (closer to one point than a third of the next): only reached once the noise is below the spacing of training points",
}
LABELS = {
    "biroli": "Biroli et al. (spectrum)", "first_split": "exact first split", "cloning_half": "phi(T) halfway (simulated)",
    "rem": "REM threshold", "excess_entropy_zero": "excess entropy zero", "top_weight_half": "top posterior weight 1/2",
    "settle": "nearest point settles (median)", "memorized_half": "half the states on a point (d1/d2 < 1/3)",
}


def fmt(x, p=4) -> str:
    return "n/a" if x is None else f"{x:.{p}g}"


def _units(res) -> str:
    sc = res["scale"]["name"]
    return {"raw": "data units", "unit-variance": "unit-variance units", "minus-one-one": "[-1, 1] units"}[sc]


def _headline(kind: str, e: dict, res: dict, rule_used: str) -> str:
    if e["T"] is None:
        return f"**{kind.capitalize()}**: not found on the simulated grid (see the table below)."
    pm = f" +- {e['stderr']:.2g}" if e.get("stderr") is not None else ""
    line = (f"**{kind.capitalize()} at T = {e['T']:.4g}{pm}** ({_units(res)}; DDPM step {fmt(e['ddpm_step'], 4)}, "
            f"OU time {fmt(e['ou_t'], 3)}, abar {fmt(e['abar'], 3)})")
    if res["scale"]["name"] != "raw":
        pmd = f" +- {e['stderr_data']:.2g}" if e.get("stderr_data") is not None else ""
        line += f"; in the data's own units T = {e['T_data']:.4g}{pmd}"
    return line + f". Rule: {rule_used}."


def headline_text(res: dict) -> dict:
    """The two headline answers (which estimator, its numbers) and the narrative around them."""
    sp, mem = res["speciation"], res["memorization"]
    s_key = "cloning_half" if sp["cloning_half"]["T"] is not None else "first_split"
    m_key = "top_weight_half" if mem["top_weight_half"]["T"] is not None else "rem"
    caveat = res["dataset"]["class_inference"].get("caveat")
    if caveat and res["dataset"]["class_inference"]["n_classes"] < 2:
        s_key = None
    out = dict(speciation_estimator=s_key, memorization_estimator=m_key)
    out["speciation"] = (f"**Speciation**: not defined ({caveat})." if s_key is None else
                         _headline("speciation", sp[s_key], res, LABELS[s_key]))
    out["memorization"] = _headline("memorization", mem[m_key], res, LABELS[m_key])
    out["narrative"] = _narrative(res, None if s_key is None else sp[s_key], mem[m_key], mem)
    return out


def _narrative(res, s, m, mem) -> str:
    parts = []
    cl = res["cloning"]
    if s is not None and s["T"] is not None:
        parts.append(f"Two copies of a generation branched from the same noisy state end in the same class with "
                     f"probability {cl['phi_simulated'][0]:.2f} when branched at T = {cl['T'][0]:.3g} (chance: "
                     f"{cl['chance']:.2f}), {cl['half_level']:.2f} (halfway to certainty) at T = {s['T']:.3g} and "
                     f"{cl['phi_simulated'][-1]:.2f} at T = {cl['T'][-1]:.3g}: below T = {s['T']:.3g} the state has "
                     "mostly committed to its class.")
    if m["T"] is not None:
        parts.append(f"Below T = {m['T']:.3g} the exact empirical score's posterior gives, on average over "
                     "trajectories, more than half its weight to a single training point, so a model that has "
                     "learned the exact empirical score is pulled onto that point and reproduces it.")
    st, mh = mem["settle"]["T"], mem["memorized_half"]["T"]
    if st is not None:
        parts.append(f"The median trajectory stops changing its nearest training point below T = {st:.3g}.")
    frac = res["trajectories"]["memorized_fraction"][-1]
    T_end = res["trajectories"]["T"][-1]
    if mh is not None:
        parts.append(f"Half of the states themselves lie closer to one training point than a third of the distance "
                     f"to the next only below T = {mh:.3g}; at the end of sampling (T = {T_end:.3g}) "
                     f"{100 * frac:.0f}% do.")
    else:
        parts.append(f"At the end of sampling (T = {T_end:.3g}) {100 * frac:.0f}% of the states lie that close "
                     "to a training point (fewer than half: the geometric criterion is not met on the grid).")
    if s is not None and s["T"] is not None and m["T"] is not None:
        if m["T"] >= s["T"]:
            parts.append("Memorization sets in at a higher temperature than speciation: with this few points a model "
                         "trained to the optimum memorises before it has learned the classes.")
        else:
            parts.append(f"Between T = {m['T']:.3g} and {s['T']:.3g} a model has committed to a class but not yet to a "
                         "training point: the window where a trained model generalises.")
    return " ".join(parts)


def _row(kind, key, e, res) -> str:
    pm = fmt(e.get("stderr"), 2) if e.get("stderr") is not None else ""
    data_col = f" {fmt(e['T_data'])} |" if res["scale"]["name"] != "raw" else ""
    return (f"| {kind} | {LABELS[key]} | {fmt(e['T'])} | {pm} |{data_col} {fmt(e['ou_t'], 3)} | {fmt(e['ddpm_step'], 4)} | "
            f"{fmt(e['abar'], 3)} | {e['formula']}; {WHY[(kind, key)]} |")


def estimator_table(res) -> list[str]:
    data_h = " T (data units) |" if res["scale"]["name"] != "raw" else ""
    data_s = "---|" if data_h else ""
    lines = [f"| question | estimator | T ({_units(res)}) | +- |{data_h} OU time | DDPM step (0-based) | abar | "
             "definition; why it differs |", f"|---|---|---|---|{data_s}---|---|---|---|"]
    for kind, keys in (("speciation", ("cloning_half", "first_split", "biroli")),
                       ("memorization", ("top_weight_half", "excess_entropy_zero", "rem", "settle", "memorized_half"))):
        for key in keys:
            lines.append(_row(kind, key, res[kind][key], res))
    return lines


def _notes(res) -> list[str]:
    notes = []
    b = res["speciation"]["biroli"]
    if b.get("why_na"):
        notes.append(f"Biroli n/a: {b['why_na']}.")
    notes.append(f"First split: {res['speciation']['first_split']['note']}.")
    for k, e in list(res["speciation"].items()) + list(res["memorization"].items()):
        if isinstance(e, dict) and e.get("note") and e["T"] is None and k != "first_split":
            notes.append(f"{LABELS[k]} n/a: {e['note']}.")
        elif isinstance(e, dict) and "formula" in e and e["T"] is None and k not in ("biroli", "first_split"):
            notes.append(f"{LABELS[k]} n/a: the curve does not cross its level on the simulated temperature grid "
                         f"({fmt(res['cloning']['T'][-1])} to {fmt(res['cloning']['T'][0])}).")
        elif isinstance(e, dict) and e.get("ddpm_step") is None and e.get("T") is not None:
            notes.append(f"{LABELS[k]}: DDPM step n/a because T = {e['T']:.3g} is outside the 1000-step linear "
                         "schedule's range (1e-4 to 2.5e4).")
    return notes


def report_markdown(res: dict, timings: dict) -> str:
    ds, h, p = res["dataset"], res["headline"], res["plan"]
    ci = ds["class_inference"]
    lines = [
        f"# thermodiff analyze: {ds['name']}", "",
        h["speciation"], "", h["memorization"], "", h["narrative"], "",
        f"N = {ds['n_points']} points in d = {ds['dim']} dimensions. Scale: {res['scale']['name']} "
        f"(temperatures of the scaled data are {res['scale']['temperature_factor']:.4g} x those in the data's units). "
        f"Classes: {len(ds['classes'])}, {ci['method']}." + (f" Caveat: {ci['caveat']}." if ci.get("caveat") else ""), "",
        f"Conventions: {res['convention']}.", "",
        "## How the headlines are chosen", "",
        f"- Speciation: {HEADLINE_RULES['speciation']}",
        f"- Memorization: {HEADLINE_RULES['memorization']}", "",
        "## Every estimator", "",
    ]
    lines += estimator_table(res)
    lines += [""] + [f"- {n}" for n in _notes(res)]
    lines += ["", f"Sample sizes: {p['n_pairs']} pairs at {p['n_T']} temperatures ({p['clone_steps']} steps), "
              f"{p['n_traj']} trajectories ({p['traj_steps']} steps), excess entropy {p['ent_samples']} samples at "
              f"{p['ent_T']} temperatures" + ("; reduced to fit the time budget" if p["reduced"] else "") + "."]
    lines += body_sections(res, timings)
    return "\n".join(lines)


def _model_section(res: dict) -> list[str]:
    """"Measured in your model": the trained network's estimators beside the exact ones."""
    m, info = res["model"], res["model"]["info"]
    lines = [
        "", "## Measured in your model", "",
        f"Checkpoint: {info.get('path', 'n/a')} (step {info.get('step', 'n/a')}, {info.get('architecture', 'n/a')}), "
        f"trained on {m['n_train_points']} of the {res['dataset']['n_points']} points. The model runs from the same "
        "noisy states with the same noise as the exact-score simulation, in the same units; memorization is measured "
        "against its own training points.", "",
        f"| question | estimator | exact empirical score: T | +- | your model: T | +- | your model: DDPM step |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, key in (("speciation", "cloning_half"), ("memorization", "top_weight_half"), ("memorization", "settle"),
                      ("memorization", "memorized_half")):
        ex, mo = res[kind][key], m[key]
        lines.append(f"| {kind} | {LABELS[key]} | {fmt(ex['T'])} | {fmt(ex.get('stderr'), 2)} | {fmt(mo['T'])} | "
                     f"{fmt(mo.get('stderr'), 2)} | {fmt(mo['ddpm_step'])} |")
    lines += ["", f"Fraction of your model's final states on a training point (d1/d2 < 1/3): "
              f"{m['final_memorized_fraction']:.3f} (exact empirical score: {res['trajectories']['memorized_fraction'][-1]:.3f})."]
    return lines


def _geometry_section(res: dict) -> list[str]:
    """Effective dimension of the exact empirical score against T (theory 12)."""
    g = res["geometry"]
    lines = ["", "## Geometry: effective dimension", "",
             f"Effective dimension = {g['formula']}. Threshold {g['threshold']}; {g['n_states']} states per temperature; "
             f"{g.get('method', 'dense spectra')}" + (f" ({g['note']})" if g["empirical"] is not None and g.get("note")
                                                      else "") + ".", ""]
    if g["empirical"] is None:
        return lines + [f"Exact empirical spectra {g['note']}."]
    z = g["T_zero"]
    lines += [f"The effective dimension falls below 1/2 (every direction frozen onto a training point) at "
              f"T = {fmt(z['T'])}" + (f" ({fmt(z['T_data'])} in data units)" if z["T"] is not None else
                                     " (not on the grid)") + ".", "",
              "| T | exact empirical | +- | Gaussian approximation |", "|---|---|---|---|"]
    for T, e, se, gd in zip(g["T"], g["empirical"], g["empirical_stderr"], g["gaussian"]):
        lines.append(f"| {T:.4g} | {e:.2f} | {se:.2f} | {gd:.0f} |")
    return lines


def _stopping_section(res: dict) -> list[str]:
    from ._analyze_stopping import stopping_markdown

    return stopping_markdown(res)


def _index_lines(res: dict) -> list[str]:
    """How the simulations evaluated the exact score (theory 14): dense, or certified with its index."""
    ix = res.get("exact_index") or {}
    if not ix.get("used"):
        return []
    fb = ix["fallback"]
    frac = ", ".join(f"{f:.0%} at T = {T:.3g}" for T, f in zip(fb["T"], fb["fraction"]))
    return [f"Simulated with the certified exact denoiser (theory 14): error <= {ix['tol']:.0e} of the data radius, "
            f"{ix['n_groups']} groups of {ix['group_size']} points (index built in {ix['build_s']:.1f} s); states that "
            f"fell back to the dense sum: {frac}.", ""]


def body_sections(res: dict, timings: dict) -> list[str]:
    """Model comparison, cloning table, class commitment, figures and wall times."""
    lines = _model_section(res) if "model" in res else []
    cl, mphi = res["cloning"], (res["model"]["cloning"] if "model" in res else None)
    head = "| T | phi simulated | +- | phi exact (posterior) | +- |" + (" phi your model | +- |" if mphi else "")
    lines += ["", "## Cloning curve", "", f"{cl['n_pairs']} pairs per temperature, {cl['steps']} steps each.", "",
              *_index_lines(res),
              head, "|" + "---|" * (head.count("|") - 1)]
    for i, T in enumerate(cl["T"]):
        extra = f" {mphi['phi'][i]:.3f} | {mphi['phi_stderr'][i]:.3f} |" if mphi else ""
        ex = f"{cl['phi_exact'][i]:.3f} | {cl['phi_exact_stderr'][i]:.3f}" if cl["phi_exact"] else "n/a | n/a"
        lines.append(f"| {T:.4g} | {cl['phi_simulated'][i]:.3f} | {cl['phi_simulated_stderr'][i]:.3f} | {ex} |{extra}")
    lines += ["", f"phi exact (posterior) is E_x sum_c P(c given x)^2 at the branching temperature"
              f"{' (not computed with --quick)' if not cl['phi_exact'] else ''}. "
              f"Chance level (classes drawn independently): {cl['chance']:.3f}; halfway level {cl['half_level']:.3f}.",
              "", "## Class commitment", "",
              f"{res['trajectories']['n_trajectories']} exact-score trajectories; a trajectory commits at the highest T "
              "from which the posterior probability of its final class stays >= 0.9.", "",
              "| class | points | trajectories ending there | generated fraction | median commitment T | quartiles |",
              "|---|---|---|---|---|---|"]
    for c in res["classes"]:
        q = c["commit_T_quartiles"]
        qs = f"{fmt(q[0], 3)} to {fmt(q[1], 3)}" if q else "n/a"
        lines.append(f"| {c['label']} | {c['n_points']} | {c['n_trajectories']} | {c['generated_fraction']:.3f} | "
                     f"{fmt(c['median_commit_T'])} | {qs} |")
    lines += _geometry_section(res) if "geometry" in res else []
    lines += _stopping_section(res) if "stopping" in res else []
    lines += ["", "## Figures", "", "![spectrum](spectrum.png) ![cloning](cloning.png) ![collapse](collapse.png) "
              "![commitment](commitment.png)" + (" ![effective dimension](effective_dimension.png)" if "geometry" in res
                                                 else ""), "", "## Wall time by stage", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()] + [""]
    return lines


__all__ = ["HEADLINE_RULES", "estimator_table", "headline_text", "report_markdown"]
