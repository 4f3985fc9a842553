"""``thermodiff phase-diagram``: the mean-field phase diagram of an ensemble (theory sections 2-5).

For one ensemble: its critical temperatures (the thermodynamic one, theory 5.1, and the VP-drift
one of Raya & Ambrogioni, theory 5.2, reported side by side and never merged), then on a grid of
temperatures, in one jitted ``vmap``: the order parameter on the equilibrium branch, the
self-consistent susceptibility chi = dx*/dh along the principal axis (v.chi.v) and its trace,
and the equilibrium heat capacity C = -T d^2F/dT^2. Optionally the critical exponents. The
result is a JSON-ready dict and a three-panel figure (T on a log axis, T_c marked).

All three curves use the same branch: the fixed point the safeguarded Newton iteration reaches
from mean + sqrt(lambda_max) v (the default start of ``order_parameter``, ``susceptibility`` and
the equilibrium ``heat_capacity``): the broken-symmetry branch below T_c, the symmetric one above.
"""

from __future__ import annotations

import math
import time

import numpy as np

DEFAULT_SPAN = 5.0  # the default grid runs from T_c / SPAN to SPAN * T_c (log-spaced)

CONVENTION = "T = VE-equivalent noise variance (x = y + sqrt(T) z, theory section 1)"

_TC_NOTES = {
    "thermodynamic": (
        "theory 5.1: the symmetric fixed point loses stability, lambda_max(Cov[y|x*])/T = 1; "
        "p_T becomes bimodal (two deltas +-1: T_c = 1)"
    ),
    "vp_drift": (
        "theory 5.2 (Raya & Ambrogioni): x* stops being attractive for the VP reverse-SDE drift "
        "beta(t)[x/2 + score]; reported as a VE-equivalent temperature, abar_c = 1/(1 + T) "
        "(two deltas +-1: T = sqrt(2)). A different point from the thermodynamic T_c"
    ),
    "first_split": (
        "theory 3, first transition of general data: the highest T at which Phi_T acquires a second "
        "minimum (a saddle-node for asymmetric data; the pitchfork for symmetric data whose first "
        "split is at the symmetric point); computed for finite datasets without a symmetric point"
    ),
}


def _critical_point(ensemble, criterion: str) -> dict:
    """One critical temperature with its label; ``defined`` False (T None) when the criterion
    does not apply to this law (the symmetric criteria need a symmetric point)."""
    import thermodiff as td

    try:
        T = float(td.critical_temperature(ensemble, criterion=criterion))
    except ValueError as err:
        if "symmetric" not in str(err):
            raise
        return dict(T=float("nan"), abar=float("nan"), defined=False,
                    note=_TC_NOTES[criterion] + "; not defined here: " + " ".join(str(err).split()))
    finite = math.isfinite(T)
    return dict(T=T, abar=1.0 / (1.0 + T) if finite else float("nan"), defined=True,
                note=_TC_NOTES[criterion] + ("" if finite else "; NaN: no transition"))


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _clean(obj):
    """JSON-safe copy: NaN/inf -> None, NumPy scalars/arrays -> Python floats/lists."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _finite_or_none(obj)
    return obj


def temperature_grid(T_c: float, lam: float, n: int, explicit: list[float] | None,
                     what: str = "T_c (thermodynamic)") -> tuple[np.ndarray, float, str]:
    """The sweep: the explicit list (sorted, deduplicated), or n log-spaced temperatures from
    centre/SPAN to SPAN*centre, centre = T_c, or lambda_max of the data covariance when there is
    no transition (T_c NaN). Returns (temperatures, centre, description)."""
    if explicit is not None:
        temps = np.unique(np.asarray(explicit, dtype=float))
        return temps, float("nan"), "explicit (--temperatures)"
    if math.isfinite(T_c) and T_c > 0:
        centre = T_c
    elif math.isfinite(lam) and lam > 0:
        centre, what = lam, "lambda_max of the data covariance (no transition)"
    else:
        centre, what = 1.0, "1 (no transition and a degenerate data covariance)"
    temps = np.geomspace(centre / DEFAULT_SPAN, centre * DEFAULT_SPAN, n)
    return temps, centre, (f"{n} log-spaced temperatures from c/{DEFAULT_SPAN:g} to {DEFAULT_SPAN:g} c, "
                           f"c = {what} = {centre:.10g}")


MEMORY_BUDGET = 2**30  # bytes for one batch of states in the sweep and the landscape


def state_bytes(ensemble, matrices: bool = True) -> int:
    """A generous estimate of the float64 bytes one state (one x, one T) needs: ``matrices``
    adds the d x d matrices of the sweep (posterior covariance, the susceptibility's solve, the
    heat capacity's second derivative); the rest is the atoms x d table of the posterior (data
    points of a finite set, quadrature nodes of Curie-Weiss, two for the other laws)."""
    d = int(ensemble.dim)
    atoms = int(getattr(ensemble, "n_points", 0) or getattr(ensemble, "n_nodes", 0) or 2)
    return 8 * 16 * ((d * d if matrices else 0) + atoms * d + d)


def map_batch(n: int, per_item: int, budget: int = MEMORY_BUDGET) -> int:
    """How many of ``n`` states to vmap at once so that a batch stays within ``budget`` bytes
    (``n``: one vmap, as before; fewer: ``jax.lax.map`` over batches)."""
    return int(max(1, min(n, budget // max(per_item, 1))))


def batched_vmap(f, xs, batch: int):
    """``jax.vmap(f)(xs)`` computed ``batch`` states at a time (bounded memory)."""
    import jax

    if batch >= xs.shape[0]:
        return jax.vmap(f)(xs)
    return jax.lax.map(f, xs, batch_size=batch)


def _sweep_impl(ens, Ts, batch):
    import jax
    import jax.numpy as jnp

    import thermodiff as td
    from thermodiff._meanfield import _broken_start

    _, v = td.principal_axis(ens)
    start = _broken_start(ens)[0]  # the default start of order_parameter/susceptibility/heat_capacity
    mean = ens.mean()

    def one(T):
        x = td.fixed_point(ens, T, x0=start)
        chi = td.susceptibility(ens, T, x0=start)  # Goldstone directions: inf
        chi_long = td.susceptibility(ens, T, x0=start, goldstone="projected")  # finite part, exact
        return dict(
            order_parameter=(x - mean) @ v,  # = td.order_parameter(ens, T), without a second solve
            susceptibility=v @ chi_long @ v,
            susceptibility_trace=jnp.trace(chi),
            heat_capacity=td.heat_capacity(ens, T, x0=start),
            stability=1.0 - jnp.linalg.eigvalsh(ens.posterior_cov(x, T))[-1] / T,
        )

    return batched_vmap(one, Ts, batch)


_sweep_jit = None


def _sweep(ensemble, temps):
    """Order parameter, v.chi.v, tr chi, C and the stability of x* at every temperature: one
    jitted vmap (compiled once per ensemble structure and grid size, then reused), in batches of
    at most ``MEMORY_BUDGET`` bytes for large ensembles."""
    global _sweep_jit
    import equinox as eqx
    import jax.numpy as jnp

    if _sweep_jit is None:
        _sweep_jit = eqx.filter_jit(_sweep_impl)
    batch = map_batch(len(temps), state_bytes(ensemble))
    out = _sweep_jit(ensemble, jnp.asarray(temps), batch)
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def _exponents(ensemble) -> dict:
    import thermodiff as td

    raw = td.critical_exponents(ensemble)
    out = {}
    for k, val in raw.items():
        out[k] = val.as_dict() if hasattr(val, "as_dict") else val
    return out


def compute(ensemble, *, name: str, parameters: dict, n_temperatures: int, temperatures: list[float] | None,
            exponents: bool, t_start: float | None = None, progress=None) -> dict:
    """Everything the JSON holds (not yet cleaned of NaN); ``progress`` (a ``Progress``) is told
    each stage as it starts."""
    import jax

    import thermodiff as td

    from ._progress import Progress

    progress = Progress(False) if progress is None else progress
    t_start = time.perf_counter() if t_start is None else t_start
    progress.stage("critical temperatures")
    lam, v = td.principal_axis(ensemble)
    lam, v = float(lam), np.asarray(v, dtype=float)
    tcs = dict(thermodynamic=_critical_point(ensemble, "thermodynamic"),
               vp_drift=_critical_point(ensemble, "vp_drift"))
    if not tcs["thermodynamic"]["defined"] and isinstance(ensemble, td.FiniteDataset):
        # general (asymmetric) data: its first speciation (theory 3). Not computed for symmetric
        # data, where it is the pitchfork above unless a mirror pair of saddle-nodes splits first,
        # because it is the costliest step on large datasets.
        tcs["first_split"] = _critical_point(ensemble, "first_split")
    T_c = tcs["thermodynamic"]["T"]
    reference, T_ref = "thermodynamic", T_c
    if not math.isfinite(T_c) and "first_split" in tcs and math.isfinite(tcs["first_split"]["T"]):
        reference, T_ref = "first_split", tcs["first_split"]["T"]
    transition = math.isfinite(T_ref)
    temps, centre, grid_note = temperature_grid(T_ref, lam, n_temperatures, temperatures,
                                                what=f"T_c ({reference.replace('_', ' ')})")
    progress.stage(f"equilibrium sweep over {len(temps)} temperatures")
    curves = _sweep(ensemble, temps)
    unstable = temps[curves["stability"] < -1e-6]

    result = dict(
        command="phase-diagram",
        ensemble=name,
        parameters=parameters,
        dim=int(ensemble.dim),
        convention=CONVENTION,
        transition=transition,
        critical_temperature=tcs,
        reference_critical_temperature=dict(criterion=reference, T=T_ref),
        top_covariance_eigenvalue=lam,
        principal_axis=v.tolist(),
        branch=("equilibrium branch: the fixed point x* = m_T(x*) reached by Newton from mean + "
                "sqrt(lambda_max) v (the default start of order_parameter, susceptibility and "
                "heat_capacity; broken symmetry below T_c, symmetric above)"),
        grid=grid_note,
        temperatures=temps.tolist(),
        order_parameter=curves["order_parameter"].tolist(),
        susceptibility=curves["susceptibility"].tolist(),
        susceptibility_trace=curves["susceptibility_trace"].tolist(),
        heat_capacity=curves["heat_capacity"].tolist(),
        stability=curves["stability"].tolist(),
        unstable_points=unstable.tolist(),
        definitions=dict(
            order_parameter="(x* - mean).v, v the top principal axis of the data covariance",
            susceptibility="v.chi.v, chi = dx*/dh = (I - J)^{-1} J, J = Cov[y|x*]/T, by implicit differentiation",
            susceptibility_trace=("tr chi; it includes the transverse directions, which for a continuous "
                                  "symmetry (hypersphere) are Goldstone modes, infinite below T_c: "
                                  "reported as inf (null in JSON)"),
            heat_capacity="C = -T d^2F/dT^2 of F(T) = Phi_T(x*(T)) on the equilibrium branch, by autodiff",
            stability=("1 - lambda_max(Cov[y|x*])/T: the smallest eigenvalue of the Hessian of Phi_T at x* "
                       "(the slowest relaxation rate of the linearised generative drift). > 0: stable; ~0: "
                       "marginal (a critical point, or Goldstone directions); < 0: the solver reached an "
                       "unstable fixed point, not the equilibrium branch"),
            unstable_points="temperatures where stability < -1e-6 (the curves there are not on a stable branch)",
        ),
    )
    if exponents:
        if math.isfinite(T_c):
            progress.stage("critical exponents")
            result["exponents"] = _exponents(ensemble)
        elif not tcs["thermodynamic"]["defined"]:
            result["exponents"] = dict(skipped="no symmetric point: the exponents are those of the "
                                       "thermodynamic critical point, which this law does not have")
        else:
            result["exponents"] = dict(skipped="no transition: critical_temperature is NaN")
    progress.stage("figure")
    non_finite = {k: int(np.sum(~np.isfinite(curves[k]))) for k in curves}
    result["non_finite_values"] = {k: n for k, n in non_finite.items() if n}
    result["thermodiff_version"] = td.__version__
    result["jax_version"] = jax.__version__
    result["backend"] = jax.default_backend()
    result["wall_time_s"] = time.perf_counter() - t_start
    return _clean(result)


# ---------------------------------------------------------------------------- figure
_EXPONENT_ROWS = (
    ("beta", r"$\beta$", "1/2"),
    ("gamma", r"$\gamma$", "1"),
    ("gamma_prime", r"$\gamma'$", "1"),
    ("delta", r"$\delta$", "3"),
    ("z_nu_above", r"$z\nu$ ($T > T_c$)", "1"),
    ("z_nu_below", r"$z\nu$ ($T < T_c$)", "1"),
    ("amplitude_ratio", r"$\chi(T_c + dT)/\chi(T_c - dT)$", "2"),
    ("heat_capacity_jump", r"$\Delta C = C(T_c^-) - C(T_c^+)$", "3/2 (two deltas)"),
    ("isotherm_amplitude", r"$x^*/h^{1/3}$ at $T_c$", r"$3^{1/3}$ (two deltas)"),
)


_TC_STYLE = {
    "thermodynamic": ("thermodynamic", dict(color="k", ls="-")),
    "first_split": ("first split", dict(color="C4", ls="-.")),
    "vp_drift": ("VP drift, VE-equiv.", dict(color="0.5", ls="--")),
}


def summary(result: dict, tex: bool = False) -> str:
    """'T_c = ... (thermodynamic), ... (VP drift, VE-equivalent)': each criterion named."""
    tc = result["critical_temperature"]
    name = "$T_c$" if tex else "T_c"
    parts = []
    for key, label in (("thermodynamic", "thermodynamic"), ("first_split", "first split"),
                       ("vp_drift", "VP drift, VE-equivalent")):
        if key not in tc:
            continue
        rec = tc[key]
        if not rec.get("defined", True):
            parts.append(f"{label}: undefined (no symmetric point)")
        elif rec["T"] is None:
            parts.append(f"{label}: no transition ({name} = NaN)")
        else:
            parts.append(f"{name} = {rec['T']:.10g} ({label})")
    return ", ".join(parts)


def _fmt(x, digits=6):
    return "n/a" if x is None else f"{x:.{digits}g}"


def _divergent(y, ref):
    """(y with divergent points masked, mask): a zero mode of I - J makes chi infinite, which the
    solve returns as a huge number of either sign (rounding); mark those instead of plotting them."""
    finite = np.isfinite(ref)
    scale = max(float(np.nanmax(np.abs(ref[finite]))) if finite.any() else 1.0, 1.0)
    div = ~np.isfinite(y) | (y < 0) | (np.abs(y) > 1e6 * scale)
    if ref is y:  # the principal-axis chi itself: only non-finite or negative values are divergent
        div = ~np.isfinite(y) | (y < 0)
    return np.where(div, np.nan, y), div


def plot(result: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    from ._io import figure_bytes

    table = isinstance(result.get("exponents"), dict) and "beta" in result["exponents"]
    fig = plt.figure(figsize=(15, 7.5 if table else 4.6))
    gs = fig.add_gridspec(2 if table else 1, 3, height_ratios=(1.0, 0.8) if table else None)
    axes = [fig.add_subplot(gs[0, i]) for i in range(3)]
    T = np.asarray(result["temperatures"], dtype=float)

    def arr(key):
        return np.asarray([np.nan if v is None else v for v in result[key]], dtype=float)

    tc = result["critical_temperature"]
    lo, hi = T.min(), T.max()

    m, chi, tr, C = arr("order_parameter"), arr("susceptibility"), arr("susceptibility_trace"), arr("heat_capacity")
    axes[0].plot(T, m, ".-", ms=3, color="C0")
    axes[0].set_ylabel(r"order parameter $(x^* - \bar y)\cdot v$")
    axes[0].set_title("order parameter (equilibrium branch)")
    chi_p, chi_div = _divergent(chi, chi)
    tr_p, tr_div = _divergent(tr, chi)
    axes[1].plot(T, chi_p, ".-", ms=3, color="C1", label=r"$v^\top \chi\, v$ (principal axis)")
    if np.any(np.abs(tr - chi) > 1e-9 * (1 + np.abs(chi))):
        axes[1].plot(T, tr_p, ":", color="C2", label=r"tr $\chi$")
    pos = np.concatenate([chi_p[np.isfinite(chi_p)], tr_p[np.isfinite(tr_p)]])
    if pos.size and np.all(pos > 0):
        axes[1].set_yscale("log")
    import matplotlib.transforms as mtransforms

    top = mtransforms.blended_transform_factory(axes[1].transData, axes[1].transAxes)
    for div, c, what in ((tr_div, "C2", r"tr $\chi$"), (chi_div, "C1", r"$v^\top\chi v$")):
        if div.any():
            axes[1].plot(T[div], np.full(div.sum(), 0.97), "^", ms=4, color=c, transform=top,
                         label=f"{what} divergent" + (" (Goldstone modes)" if c == "C2" else ""))
    axes[1].set_ylabel(r"$\chi = dx^*/dh$")
    axes[1].set_title("self-consistent susceptibility")
    axes[2].plot(T, C, ".-", ms=3, color="C3")
    axes[2].set_ylabel(r"$C = -T\, d^2F/dT^2$")
    axes[2].set_title("heat capacity (equilibrium branch)")

    for ax in axes:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.tick_params(axis="x", which="minor", labelsize=8)
        ax.set_xlabel("T = VE-equivalent noise variance")
        ax.grid(alpha=0.3, which="both", lw=0.5)
        for key, (label, style) in _TC_STYLE.items():
            Tk = tc.get(key, {}).get("T")
            if Tk is not None and lo <= Tk <= hi:
                ax.axvline(Tk, lw=1.0, **style, label=f"$T_c$ ({label}) = {_fmt(Tk)}")
    bad = np.asarray(result.get("unstable_points") or [], dtype=float)
    if bad.size:
        idx = np.isin(T, bad)
        for ax, y in zip(axes, (m, chi, C)):
            ax.plot(T[idx], y[idx], "x", color="r", ms=6, label="unstable fixed point (not equilibrium)")
    for ax, loc in zip(axes[:2], ("lower left", "upper right")):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc=loc)
    if tc.get("vp_drift", {}).get("T") is not None:
        fig.text(0.5, 0.005, "Dashed grey: the VP-drift critical temperature, where the sampler's linearised drift turns "
                 "unstable (theory section 5); it is a point of the dynamics, so the equilibrium curves show nothing there.",
                 ha="center", va="bottom", fontsize=8, color="0.35")
    if not result["transition"]:
        for ax in axes:
            ax.text(0.5, 0.95, "no transition", transform=ax.transAxes, ha="center", va="top",
                    fontsize=11, color="C3", bbox=dict(fc="w", ec="C3", alpha=0.8))

    fig.suptitle(f"phase diagram: {result['ensemble']} (d = {result['dim']});  " + summary(result, tex=True),
                 fontsize=11)

    if table:
        ex = result["exponents"]
        rows = []
        for key, label, mf in _EXPONENT_ROWS:
            e = ex.get(key)
            if not isinstance(e, dict):
                continue
            val = f"{_fmt(e.get('value'), 7)} ± {_fmt(e.get('error'), 2)}"
            fit = _fmt(e.get("loglog_fit"), 5) if "loglog_fit" in e else ""
            rows.append([label, val, fit, mf])
        tax = fig.add_subplot(gs[1, :])
        tax.axis("off")
        tbl = tax.table(cellText=rows, colLabels=["exponent", "autodiff (extrapolated) ± error", "log-log fit", "mean field"],
                        loc="center", cellLoc="center")
        tbl.auto_set_font_size(False)
        tbl.set_fontsize(9)
        tbl.scale(1.0, 1.3)
        tax.set_title("critical exponents (theory section 4)", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    data = figure_bytes(fig)
    plt.close(fig)
    return data
