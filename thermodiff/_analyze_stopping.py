"""The "data and stopping" part of ``thermodiff analyze`` (theory sections 9-11).

From the data alone: the collapse temperature of the exact empirical score at this n (isotropic
random-energy formula and its Gaussian form with the data's covariance spectrum), and the n
needed to push it below a target temperature T* (``--target-temperature``; default one decade
below the speciation headline). With a trained model: its step against its measured onsets
(from the checkpoint's logged diagnostics) and, with ``--train-probe``, the memorization onset
tau_mem = c n predicted for this n from two short runs at small n, and whether the model is
past it.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_TARGET_FACTOR = 0.1  # default T* = this x the speciation headline temperature


def _target(res: dict, target_temperature) -> tuple[float | None, str]:
    if target_temperature is not None:
        return float(target_temperature), "given (--target-temperature)"
    key = res["headline"].get("speciation_estimator")
    T_s = res["speciation"][key]["T"] if key is not None else None
    if T_s is None:
        return None, "no speciation headline to set a default from; give --target-temperature"
    return DEFAULT_TARGET_FACTOR * T_s, f"default: {DEFAULT_TARGET_FACTOR:g} x the speciation headline T = {T_s:.4g}"


def _row(need, key):
    try:
        return need.row(key).to_dict()
    except KeyError:
        return None


def stopping_section(res: dict, spec: dict, scale, *, target_temperature=None, model_info=None,
                     probe=None) -> dict:
    """The section's numbers (JSON-able): collapse temperatures, n for T*, the probe's law and
    the model's onsets."""
    from ._analyze import _estimate, full_spectrum
    from ._data_need import data_need

    n, d = res["dataset"]["n_points"], res["dataset"]["dim"]
    lam = full_spectrum(spec, d)
    T_star, why = _target(res, target_temperature)
    n_train = (model_info or {}).get("n_train_points", n)
    law = probe.law_a1 if probe is not None else None
    need = data_need(n_points=n_train, dim=d, variance=spec["mean_variance"], spectrum=lam, target_temperature=T_star,
                     law=law, tau_gen=(probe.tau_gen_estimate if law is not None else None))
    out = dict(
        n_points=n_train, target=dict(T=T_star, why=why),
        collapse_isotropic=_estimate("T_C = s^2/(n^(2/d) - 1), s^2 = mean variance (theory 9)",
                                     need.collapse_temperature, scale),
        collapse_spectrum=_estimate("solves (1/2) sum_i log(1 + lambda_i/T_C) = log n, lambda_i = the data's "
                                    "covariance spectrum (Gaussian approximation, theory 11)",
                                    need.collapse_temperature_spectrum, scale),
        n_isotropic=_row(need, "rem_isotropic"), n_spectrum=_row(need, "rem_spectrum"),
        table=need.to_dict()["rows"],
    )
    if probe is not None:
        out["probe"] = _probe_part(probe, need, n_train)
    if model_info is not None:
        out["model"] = _model_verdict(model_info, out.get("probe"))
    return out


def _probe_part(probe, need, n) -> dict:
    """The probe's runs, its law and tau_mem predicted at n (or a lower bound when no run memorised)."""
    out = dict(probe.summary(), n=n, tau_mem=_row(need, "tau_mem"), window=_row(need, "window"))
    if probe.law_a1 is None:
        out["lower_bound"] = probe.steps * n / max(probe.sizes)
    return out


def _model_verdict(info: dict, probe: dict | None) -> dict:
    """The model's step against its logged onsets and, with a probe, the predicted tau_mem."""
    step = info.get("step")
    out = dict(step=step, tau_mem_measured=info.get("tau_mem"), tau_gen_measured=info.get("tau_gen"),
               logged=bool(info.get("logged_f_mem")))
    if probe is None:
        return out
    tau = probe["tau_mem"]
    if tau is None:
        bound = probe["lower_bound"]
        out["verdict"] = ("before the memorization onset (no probe run memorised: tau_mem > "
                          f"{bound:.4g} steps)" if step is not None and step < bound else
                          f"undetermined (no probe run memorised; tau_mem > {bound:.4g} steps)")
    elif step is None:
        out["verdict"] = "n/a (the checkpoint has no step count)"
    elif tau["hi"] is not None and step > tau["hi"]:
        out["verdict"] = "past the predicted memorization onset (beyond its 1-sigma band)"
    elif tau["lo"] is not None and step < tau["lo"]:
        out["verdict"] = "before the predicted memorization onset"
    else:
        out["verdict"] = "within the band of the predicted memorization onset"
    return out


def _fmt(x, p=4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{p}g}"


def _size_text(row) -> str:
    if row is None:
        return "n/a"
    if row["value"] is not None and row["value"] < 1e15:
        return f"{math.ceil(row['value']):d}"
    return f"10^{row['log10']:.1f}" if row.get("log10") is not None else "n/a"


def stopping_markdown(res: dict) -> list[str]:
    """The report's "Data and stopping" section."""
    s = res["stopping"]
    t = s["target"]
    ci, cs = s["collapse_isotropic"], s["collapse_spectrum"]
    lines = ["", "## Data and stopping", "",
             f"The exact empirical score of these n = {s['n_points']} points condenses onto single training points "
             f"below T_C = {_fmt(ci['T'])} (isotropic random-energy formula) or {_fmt(cs['T'])} (with the data's "
             "covariance spectrum, the Gaussian approximation); in data units "
             f"{_fmt(ci['T_data'])} and {_fmt(cs['T_data'])}.", ""]
    if t["T"] is None:
        lines.append(f"Target temperature: n/a ({t['why']}).")
    else:
        lines.append(f"To keep T_C below the target T* = {_fmt(t['T'])} ({t['why']}) the exact score needs "
                     f"n = {_size_text(s['n_isotropic'])} points (isotropic) or {_size_text(s['n_spectrum'])} "
                     "(spectrum): exponential in the dimension, which is why exact empirical scores memorize and "
                     "trained networks must stop early.")
    if "probe" in s:
        lines += _probe_lines(s["probe"])
    if "model" in s:
        lines += _model_lines(s["model"])
    lines += ["", "| estimate | value | formula | holds when | note |", "|---|---|---|---|---|"]
    for r in s["table"]:
        v = _fmt(r["value"]) if r.get("log10") is None or (r["value"] or 0) < 1e15 else f"10^{r['log10']:.1f}"
        band = f" ({_fmt(r['lo'], 3)} to {_fmt(r['hi'], 3)})" if r.get("lo") is not None else ""
        lines.append(f"| {r['quantity']} | {v}{band} | {r['formula']} | {r['validity']} | {r['note']} |")
    return lines


def _probe_lines(p: dict) -> list[str]:
    lines = ["", f"Train probe ({p['text']}, {p['wall_s']:.0f} s):"]
    if p["tau_mem"] is None:
        lines[-1] += (f" no run reached f_mem >= 0.1 within {p['steps']} steps, so for these n = {p['n']} points "
                      f"tau_mem > {p['lower_bound']:.4g} steps (a lower bound, with tau_mem proportional to n; a longer "
                      "probe, --probe-steps, gives a prediction).")
        return lines
    t = p["tau_mem"]
    lines[-1] += (f" the memorization onset for these n = {p['n']} points is predicted at tau_mem = "
                  f"{_fmt(t['value'])} steps (1 sigma {_fmt(t['lo'], 3)} to {_fmt(t['hi'], 3)}).")
    if p.get("window") is not None:
        lines.append(f"Early stopping: {p['window']['note']} (tau_gen = {_fmt(p['tau_gen'])} from the probe's "
                     "held-out proxy).")
    return lines


def _model_lines(m: dict) -> list[str]:
    lines = ["", f"Your model: step {_fmt(m['step'])}."]
    if m.get("logged"):
        lines[-1] += (f" Its logged diagnostics place the memorization onset (f_mem >= 0.1) at step "
                      f"{_fmt(m['tau_mem_measured'])} and the generalization time at {_fmt(m['tau_gen_measured'])}.")
    if "verdict" in m:
        lines[-1] += f" Against the probe's prediction it is {m['verdict']}."
    return lines


__all__ = ["stopping_markdown", "stopping_section"]
