"""``thermodiff analyze --train-probe``: predict the memorization onset from two short runs.

tau_mem grows linearly with the training-set size n (Bonnaire, Urfin, Biroli & Mezard 2025;
theory section 10), so two short trainings on small random subsets (default n = 16 and 32, two
seeds each, all in one vmapped program) fix the prefactor c of tau_mem = c n, and the onset for
the full training set follows with a 1-sigma band (theory section 11). The probe trains the
architecture and recipe of the analysed checkpoint (``thermodiff train``'s settings stored in
it), or ``thermodiff train``'s defaults without a model; the points not in the probe sets serve
as the held-out proxy of the generalisation error (for tau_gen).
"""

from __future__ import annotations

import dataclasses

import numpy as np

DEFAULT_SIZES = (16, 32)
DEFAULT_STEPS = 3000
_HELD_OUT = 256  # held-out points for the generalisation-error proxy (at most)


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What the probe measured: the sizes, per-run onsets and the law with a = 1."""

    sizes: tuple
    steps: int
    table: list
    law_a1: object  # MemorizationLaw or None
    tau_gen_estimate: float | None
    settings: dict
    wall_s: float

    def summary(self) -> dict:
        law = self.law_a1
        text = (f"{len(self.table)} runs at n = {', '.join(str(n) for n in self.sizes)}, {self.steps} steps, "
                f"{self.settings['arch']} width {self.settings.get('width')}")
        if law is not None:
            text += f"; tau_mem = ({law.c:.3g} +- {law.c_se:.2g}) n"
        return dict(text=text, sizes=list(self.sizes), steps=self.steps, runs=self.table,
                    c=None if law is None else law.c, c_se=None if law is None else law.c_se,
                    tau_gen=self.tau_gen_estimate, settings=self.settings, wall_s=self.wall_s)


@dataclasses.dataclass(frozen=True)
class TrainProbe:
    """The probe's plan: sizes, steps, seeds and the training settings (``thermodiff train``'s
    configuration keys: arch, width, depth, channels, batch_size, lr, ema, parametrization)."""

    sizes: tuple = DEFAULT_SIZES
    steps: int = DEFAULT_STEPS
    seeds: int = 2
    settings: dict = dataclasses.field(default_factory=dict)

    def _make_model(self, X):
        import jax  # noqa: F401

        import thermodiff as td

        cfg, d = self.settings, X.shape[1]
        side = int(round(np.sqrt(d)))

        def make(k):
            if cfg["arch"] == "unet":
                net = td.UNet(side, side, tuple(int(c) for c in str(cfg["channels"]).split(",")), key=k)
            else:
                net = td.ResidualMLP(d, cfg["width"], cfg["depth"], key=k)
            return td.Preconditioned.for_data(net, X, cfg["parametrization"])

        return make

    def run(self, data, key, progress=None) -> ProbeResult:
        """Train the probe on random subsets of ``data.X`` (scaled units) and fit tau_mem = c n."""
        import time

        import jax

        from ._cli_train import _adam
        from ._memorization_law import fit_memorization_law
        from ._memorization_study import memorization_study

        t0 = time.perf_counter()
        X = np.asarray(data.X, np.float32)
        n_max = max(self.sizes)
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 1), X.shape[0]))
        rest = perm[n_max:]
        held = X[rest[:_HELD_OUT]] if rest.size >= 2 else None
        pts = X[perm[:n_max]]
        make = self._make_model(pts)
        sd2 = float(np.mean(np.var(pts, axis=0)))
        import thermodiff as td

        trainer = td.Trainer(_adam(self.settings["lr"]), T_min=1e-4 * sd2,
                             T_max=min(1e3 * sd2, td.VP().max_temperature()),
                             batch_size=self.settings["batch_size"], ema_decay=self.settings["ema"])
        st = memorization_study(make, pts, list(self.sizes), key=key, steps=self.steps, seeds=self.seeds,
                                held_out=held, trainer=trainer)
        taus = np.asarray(st.tau_mem, float)
        ok = np.isfinite(taus)
        law = None
        if ok.any():
            sizes = np.repeat(np.asarray(st.sizes, float)[:, None], taus.shape[1], 1)
            law = fit_memorization_law(sizes[ok], taus[ok], exponent=1.0)
        tg = np.asarray(st.tau_gen, float)
        tau_gen = float(np.median(tg[np.isfinite(tg)])) if np.isfinite(tg).any() else None
        return ProbeResult(sizes=tuple(int(n) for n in st.sizes), steps=self.steps, table=st.table(), law_a1=law,
                           tau_gen_estimate=tau_gen, settings=dict(self.settings), wall_s=time.perf_counter() - t0)


def probe_settings(model_info: dict | None) -> dict:
    """The training settings of the probe: the checkpoint's ``thermodiff train`` configuration
    (when the analysed model came from it), else ``thermodiff train``'s defaults."""
    from ._cli_train import DEFAULTS

    cfg = dict(DEFAULTS)
    saved = (model_info or {}).get("cli")
    if isinstance(saved, dict):
        cfg.update({k: v for k, v in saved.items() if k in cfg})
    return {k: cfg[k] for k in ("arch", "width", "depth", "channels", "batch_size", "lr", "ema", "parametrization")}


__all__ = ["DEFAULT_SIZES", "DEFAULT_STEPS", "ProbeResult", "TrainProbe", "probe_settings"]
