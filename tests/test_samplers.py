"""Reverse samplers (theory section 6): exact marginals, measured orders, invariances, bad input."""

import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td

from conftest import zscore_ok

SOLVERS = [
    td.EulerMaruyama(),
    td.StochasticHeun(),
    td.ProbabilityFlowEuler(),
    td.ProbabilityFlowHeun(),
    td.DDIM(0.0),
    td.DDIM(1.0),
    td.ExponentialEuler(),
    td.ExponentialEuler(ode=True),
    td.LangevinCorrector(td.EulerMaruyama(), n_steps=2),
]


def _prior(schedule, key, n, d, data_var=1.0):
    """x_T from the exact top marginal of centred data (theta^2 var + s^2 per coordinate)."""
    t = schedule.t_max
    sd = jnp.sqrt(schedule.signal_scale(t) ** 2 * data_var + schedule.noise_scale(t) ** 2)
    return sd * jax.random.normal(key, (n, d))


def _run(model, schedule, solver, key, x, **kw):
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(lambda k, xi: td.sample(model, schedule, solver, k, xi, **kw))(keys, x)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: type(s).__name__ + str(getattr(s, "eta", "")))
def test_gaussian_marginal_every_solver(solver, key):
    """Gaussian data N(mu, v): the final state has the exact marginal mean and variance."""
    mu, v = jnp.array([0.7, -0.3]), 0.5
    ens = td.Gaussian(mu, v)
    sched = td.VP()
    T_end = 0.05
    n = 20000
    kx, ks = jax.random.split(key)
    x = _prior(sched, kx, n, 2, v) + sched.signal_scale(sched.t_max) * mu[None, :]
    grid = td.KarrasGrid() if isinstance(solver, (td.StochasticHeun, td.ProbabilityFlowHeun)) else None
    out = np.asarray(_run(ens, sched, solver, ks, x, steps=400, grid=grid, T_end=T_end))
    t_end = sched.time_at_temperature(T_end)
    theta, s = float(sched.signal_scale(t_end)), float(sched.noise_scale(t_end))
    mean_exact = theta * np.asarray(mu)
    var_exact = theta**2 * v + s**2
    assert zscore_ok(out.mean(0), mean_exact, np.sqrt(var_exact / n), floor=0.01)
    var = out.var(0)
    assert zscore_ok(var, var_exact, var_exact * np.sqrt(2 / n), floor=0.02 * var_exact)


def _ode_variance(solver, steps, sched, v, T_end, grid=None):
    """Deterministic solvers on centred Gaussian data: the flow map is linear, so the final
    variance is exactly (dx_0/dx_T)^2 Var[x_T] (no Monte Carlo)."""
    ens = td.Gaussian(jnp.zeros(1), v)
    t0 = sched.t_max
    var_T = float(sched.signal_scale(t0) ** 2 * v + sched.noise_scale(t0) ** 2)
    f = lambda x: td.sample(ens, sched, solver, jax.random.key(0), x, steps=steps, grid=grid, T_end=T_end)[0]
    J = jax.grad(f)(jnp.ones(1))[0]
    return float(J**2 * var_T)


@pytest.mark.parametrize(
    "solver,order", [(td.ProbabilityFlowEuler(), 1.0), (td.ProbabilityFlowHeun(), 2.0), (td.DDIM(0.0), 1.0)]
)
def test_ode_solver_order(solver, order):
    sched, v, T_end = td.VP(), 0.3, 0.1
    t_end = sched.time_at_temperature(T_end)
    exact = float(sched.signal_scale(t_end) ** 2 * v + sched.noise_scale(t_end) ** 2)
    steps = [16, 32, 64, 128]
    errs = [abs(_ode_variance(solver, n, sched, v, T_end) - exact) for n in steps]
    slopes = -np.diff(np.log(errs)) / np.diff(np.log(steps))
    assert abs(slopes[-1] - order) < 0.15, (errs, slopes)


def test_euler_maruyama_weak_order(key):
    """Weak order of EM measured on the variance of Gaussian data (Monte Carlo, 4e5 paths)."""
    sched, v, T_end = td.VP(), 0.3, 0.1
    t_end = sched.time_at_temperature(T_end)
    exact = float(sched.signal_scale(t_end) ** 2 * v + sched.noise_scale(t_end) ** 2)
    ens = td.Gaussian(jnp.zeros(1), v)
    n = 400_000
    kx, ks = jax.random.split(key)
    T_start = 20.0  # start where the prior is exact: x_T ~ N(0, theta^2 v + s^2)
    t0 = sched.time_at_temperature(T_start)
    x = jnp.sqrt(sched.signal_scale(t0) ** 2 * v + sched.noise_scale(t0) ** 2) * jax.random.normal(kx, (n, 1))
    steps = [8, 16, 32]
    errs = []
    for m in steps:
        out = np.asarray(_run(ens, sched, td.EulerMaruyama(), ks, x, steps=m, T_start=T_start, T_end=T_end))[:, 0]
        errs.append(abs(out.var() - exact))
    stderr = exact * np.sqrt(2 / n)
    assert errs[-1] > 5 * stderr  # the bias is resolved, so the slope is meaningful
    slopes = -np.diff(np.log(errs)) / np.diff(np.log(steps))
    assert np.all(np.abs(slopes - 1.0) < 0.3), (errs, slopes)


@pytest.mark.parametrize("sched", [td.VE(t_max=30.0), td.VP(), td.OU(6.0)], ids=["VE", "VP", "OU"])
def test_two_deltas_class_balance(sched, key):
    """Two deltas +-mu: class balance 1/2 and samples at +-mu within tolerance."""
    mu = 1.5
    ens = td.TwoDeltas(mu)
    n = 4000
    kx, ks = jax.random.split(key)
    x = _prior(sched, kx, n, 1, mu**2)
    T_end = 1e-3
    out = np.asarray(_run(ens, sched, td.EulerMaruyama(), ks, x, steps=300, grid=td.KarrasGrid(), T_end=T_end))[:, 0]
    theta = float(sched.signal_scale(sched.time_at_temperature(T_end)))
    frac = np.mean(out > 0)
    assert abs(frac - 0.5) < 5 * np.sqrt(0.25 / n)
    assert np.all(np.abs(np.abs(out / theta) - mu) < 0.2)
    assert abs(np.mean(np.abs(out / theta)) - mu) < 0.01


def test_same_key_same_samples_and_vmap_equals_loop(key):
    ens = td.GaussianMixture(jnp.array([[1.0, 0.0], [-1.0, 0.5]]), jnp.array([0.2, 0.3]), jnp.array([0.4, 0.6]))
    sched = td.VP()
    x = jnp.array([0.3, -0.2])
    a = td.sample(ens, sched, td.EulerMaruyama(), key, x, steps=30)
    b = td.sample(ens, sched, td.EulerMaruyama(), key, x, steps=30)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # vmap over temperatures (T_end) and over an ensemble parameter equals a Python loop
    T_ends = jnp.array([0.01, 0.1, 0.5])
    f = lambda Te, w: td.sample(
        td.GaussianMixture(ens.means, ens.variances, jnp.array([w, 1 - w])), sched, td.DDIM(0.5), key, x, steps=25, T_end=Te
    )
    ws = jnp.array([0.2, 0.5, 0.8])
    batched = jax.jit(jax.vmap(f))(T_ends, ws)
    looped = jnp.stack([f(Te, w) for Te, w in zip(T_ends, ws)])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-10, atol=1e-12)


def test_vmap_over_schedule_parameters_and_one_trace(key):
    ens = td.TwoDeltas(1.0)
    x = jnp.array([0.1])

    @eqx.debug.assert_max_traces(max_traces=1)
    def run(bmax, k):
        return td.sample(ens, td.VP(0.1, bmax), td.EulerMaruyama(), k, x, steps=20)

    f = jax.jit(jax.vmap(run))
    bmaxs = jnp.array([10.0, 15.0, 20.0, 25.0])
    keys = jax.random.split(key, 4)
    out1 = f(bmaxs, keys)
    out2 = f(bmaxs * 1.01, keys)  # new values, same configuration: no retrace
    loop = jnp.stack([td.sample(ens, td.VP(0.1, b), td.EulerMaruyama(), k, x, steps=20) for b, k in zip(bmaxs, keys)])
    np.testing.assert_allclose(np.asarray(out1), np.asarray(loop), rtol=1e-10, atol=1e-12)
    assert out2.shape == (4, 1)


def test_save_at_exact_temperatures(key):
    ens = td.TwoDeltas(1.0)
    sched = td.VP()
    save = jnp.array([2.0, 1.0, 0.5])
    tr = td.sample(ens, sched, td.ProbabilityFlowHeun(), key, jnp.array([0.4]), steps=50, save_at=save)
    np.testing.assert_allclose(np.asarray(tr.T), [2.0, 1.0, 0.5], rtol=1e-9)
    assert tr.xs.shape == (3, 1)
    # the saved state at T = 1 equals a run stopped there on the same merged grid
    ts = td.time_grid(sched, 50)
    ts_all = jnp.sort(jnp.concatenate([ts, sched.time_at_temperature(save)]))[::-1]
    k = int(jnp.argmin(jnp.abs(ts_all - sched.time_at_temperature(1.0))))
    x_mid = td.sample(ens, sched, td.ProbabilityFlowHeun(), key, jnp.array([0.4]), ts=ts_all[: k + 1])
    np.testing.assert_allclose(np.asarray(tr.xs[1]), np.asarray(x_mid), rtol=1e-10)
    x_end = td.sample(ens, sched, td.ProbabilityFlowHeun(), key, jnp.array([0.4]), ts=ts_all)
    np.testing.assert_allclose(np.asarray(tr.x), np.asarray(x_end), rtol=1e-10)


def test_model_parametrisations_agree(key):
    """Exact ensemble == Score == Denoiser == NoisePrediction wrappers (same trajectory)."""
    ens = td.GaussianMixture(jnp.array([[1.0], [-1.0]]), jnp.array([0.1, 0.1]))
    sched = td.OU(4.0)
    dif = td.Diffused(ens, sched)
    x = jnp.array([0.2])
    ref = td.sample(ens, sched, td.EulerMaruyama(), key, x, steps=40)
    for model in [dif, td.Score(dif.score), dif.score, td.Denoiser(dif.denoiser), td.NoisePrediction(dif.noise_prediction)]:
        out = td.sample(model, sched, td.EulerMaruyama(), key, x, steps=40)
        np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-8, atol=1e-10)


def test_equinox_network_as_score(key):
    class Net(eqx.Module):
        mlp: eqx.nn.MLP

        def __call__(self, x, t):
            return self.mlp(jnp.concatenate([x, jnp.atleast_1d(t)]))

    net = Net(eqx.nn.MLP(2, 1, 8, 2, key=key))
    out = td.sample(net, td.VP(), td.ProbabilityFlowHeun(), key, jnp.array([0.3]), steps=10)
    assert out.shape == (1,) and np.isfinite(np.asarray(out)).all()
    # gradients with respect to the network's weights flow through the whole sampler
    g = eqx.filter_grad(lambda n: td.sample(n, td.VP(), td.DDIM(), key, jnp.array([0.3]), steps=5)[0])(net)
    leaves = jax.tree.leaves(eqx.filter(g, eqx.is_array))
    assert leaves and all(np.isfinite(np.asarray(l)).all() for l in leaves)
    assert any(np.abs(np.asarray(l)).max() > 0 for l in leaves)


def test_grids():
    sched = td.VP()
    for grid in [td.UniformGrid(), td.KarrasGrid(7.0), td.CriticalGrid(1.0)]:
        ts = np.asarray(td.time_grid(sched, 20, grid, T_end=1e-3))
        assert ts.shape == (21,) and np.all(np.diff(ts) < 0)
        np.testing.assert_allclose(float(sched.temperature(ts[-1])), 1e-3, rtol=1e-9)
    # the critical grid puts more nodes near T_c than the uniform-in-log-T grid would
    T = np.asarray(sched.temperature(td.time_grid(sched, 40, td.CriticalGrid(1.0, width=0.3, fraction=0.6), T_end=1e-3)))
    near = np.sum(np.abs(np.log(T)) < 0.3)
    uniform_share = 40 * 0.6 / np.log(float(sched.temperature(sched.t_max)) / 1e-3)
    assert near > 2 * uniform_share
    # Karras: sigma^(1/rho) is uniform
    T = np.asarray(td.KarrasGrid(7.0).temperatures(jnp.array(80.0**2), jnp.array(0.002**2), 10))
    np.testing.assert_allclose(np.diff(np.sqrt(T) ** (1 / 7)), np.diff(np.sqrt(T) ** (1 / 7))[0], rtol=1e-9)


def test_late_start_covariance(key):
    ens = td.GaussianMixture(jnp.array([[2.0, 0.0], [-1.0, 1.0]]), jnp.array([0.3, 0.1]), jnp.array([0.3, 0.7]))
    sched = td.VP()
    t = sched.time_at_temperature(0.5)
    xs = jax.vmap(lambda k: td.late_start(k, ens, sched, t))(jax.random.split(key, 200_000))
    theta, T = float(sched.signal_scale(t)), 0.5
    C = np.asarray(ens.covariance())
    np.testing.assert_allclose(np.cov(np.asarray(xs).T), theta**2 * (C + T * np.eye(2)), atol=0.02)
    # VP form: abar C + (1 - abar) I
    abar = float(sched.abar(t))
    np.testing.assert_allclose(theta**2 * (C + T * np.eye(2)), abar * C + (1 - abar) * np.eye(2), rtol=1e-12)
    # from data points
    pts = ens.sample(key, 5000)
    x = td.late_start(key, pts, sched, t)
    assert x.shape == (2,)


def test_sampler_float32_finite(key):
    ens = td.FiniteDataset(jax.random.normal(key, (50, 4)).astype(jnp.float32))
    x = jnp.zeros(4, jnp.float32)
    for solver in [td.EulerMaruyama(), td.DDIM(1.0), td.ProbabilityFlowHeun()]:
        out = td.sample(ens, td.VE(t_max=50.0), solver, key, x, steps=50, grid=td.KarrasGrid(), T_end=1e-4)
        assert out.dtype == jnp.float32 and np.isfinite(np.asarray(out)).all()


def test_bad_input(key):
    ens = td.TwoDeltas(1.0)
    sched = td.VP()
    x = jnp.zeros(1)
    em = td.EulerMaruyama()
    with pytest.raises(ValueError, match="steps"):
        td.sample(ens, sched, em, key, x, steps=0)
    with pytest.raises(ValueError, match="either steps"):
        td.sample(ens, sched, em, key, x)
    with pytest.raises(ValueError, match="decreasing"):
        td.sample(ens, sched, em, key, x, ts=jnp.array([0.1, 0.5, 0.05]))
    with pytest.raises(ValueError, match="at least 2"):
        td.sample(ens, sched, em, key, x, ts=jnp.array([]))
    with pytest.raises(ValueError, match=r"ts must lie in the schedule's range \[0.0, 1.0\]"):
        td.sample(ens, sched, em, key, x, ts=jnp.array([2.0, 0.5]))
    with pytest.raises(ValueError, match="T <= 0|temperature"):
        td.sample(ens, sched, em, key, x, ts=jnp.array([0.5, 0.0]))
    with pytest.raises(ValueError, match="x_T"):
        td.sample(ens, sched, em, key, jnp.zeros(2), steps=5)
    with pytest.raises(ValueError, match="x_T"):
        td.sample(ens, sched, em, key, jnp.zeros((4, 1)), steps=5)
    with pytest.raises(ValueError, match=r"model output must have the state's shape \(1,\)"):
        td.sample(lambda x, t: jnp.zeros(3), sched, em, key, x, steps=5)
    with pytest.raises(ValueError, match="different schedule"):
        td.sample(td.Diffused(ens, td.OU()), sched, em, key, x, steps=5)
    with pytest.raises(TypeError, match="solver"):
        td.sample(ens, sched, "euler", key, x, steps=5)
    with pytest.raises(TypeError, match="schedule"):
        td.sample(ens, "vp", em, key, x, steps=5)
    with pytest.raises(ValueError, match="eta"):
        td.DDIM(1.5)
    with pytest.raises(TypeError, match="predictor"):
        td.LangevinCorrector(td.LangevinCorrector(em))
    with pytest.raises(ValueError, match="T_start must be > T_end"):
        td.sample(ens, sched, em, key, x, steps=5, T_start=0.1, T_end=1.0)
    with pytest.raises(ValueError, match="save_at"):
        td.sample(ens, sched, em, key, x, steps=5, T_end=0.1, save_at=0.01)
    with pytest.raises(ValueError, match="T_c"):
        td.CriticalGrid(-1.0)
    with pytest.raises(ValueError, match=r"x_T must be finite"):
        td.sample(ens, sched, em, key, jnp.array([jnp.nan]), steps=5)


def test_sharded_equals_unsharded():
    """A batch sharded over 4 forced host devices gives the unsharded result."""
    code = textwrap.dedent(
        """
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
        import jax, jax.numpy as jnp, numpy as np
        jax.config.update("jax_enable_x64", True)
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import thermodiff as td
        assert len(jax.devices()) == 4
        ens = td.GaussianMixture(jnp.array([[1.0, 0.0], [-1.0, 0.5]]), jnp.array([0.2, 0.3]))
        sched = td.VP()
        keys = jax.random.split(jax.random.key(0), 64)
        x = jax.random.normal(jax.random.key(1), (64, 2))
        f = jax.jit(jax.vmap(lambda k, xi: td.sample(ens, sched, td.EulerMaruyama(), k, xi, steps=20)))
        ref = np.asarray(f(keys, x))
        mesh = Mesh(np.array(jax.devices()), ("batch",))
        sh = NamedSharding(mesh, P("batch"))
        out = f(jax.device_put(keys, sh), jax.device_put(x, sh))
        assert len(out.sharding.device_set) == 4, out.sharding
        np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-12, atol=1e-12)
        print("OK")
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-2000:]


@pytest.mark.parametrize("wrapper", ["Score", "Denoiser", "NoisePrediction"])
def test_model_wrappers_refuse_non_callables(wrapper):
    import thermodiff as td

    with pytest.raises(TypeError, match=rf"{wrapper}\(fn\): fn must be a callable"):
        getattr(td, wrapper)(None)
