"""Denoising score matching training (theory section 10): noise-level laws, weightings, the
compiled loop against a step-by-step loop, vmap over seeds and dataset sizes against loops,
checkpoints (bit-identical save/load/resume, clear errors), bad input."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import thermodiff as td
from thermodiff._train import _run_jit

D = 3


def _arrays(tree):
    return jax.tree.leaves(eqx.filter(tree, eqx.is_array))


def _max_diff(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(_arrays(a), _arrays(b)))


@pytest.fixture(scope="module")
def setup():
    Y = jax.random.normal(jax.random.key(1), (48, D)) * jnp.array([[1.0, 2.0, 0.5]]) + 1.0
    make = lambda k: td.Preconditioned.for_data(td.ResidualMLP(D, 16, 2, emb_dim=8, key=k), Y)
    trainer = td.Trainer(T_min=1e-3, T_max=1e2, batch_size=16)
    return Y, make, trainer


# ----------------------------------------------------------------------------- laws
def test_uniform_time_is_uniform_in_the_schedule_time(key):
    sched = td.VP()
    T = td.UniformTime().sample(key, 20000, sched, 1e-3, 1e2, 1.0)
    t0, t1 = sched.time_at_temperature(1e-3), sched.time_at_temperature(1e2)
    u = np.asarray((sched.time_at_temperature(T) - t0) / (t1 - t0))
    assert u.min() >= 0 and u.max() <= 1 + 1e-12
    np.testing.assert_allclose(np.mean(u), 0.5, atol=5 * np.sqrt(1 / 12 / u.size))
    np.testing.assert_allclose(np.mean(u**2), 1 / 3, atol=5 * np.sqrt(4 / 45 / u.size))


def test_low_discrepancy_is_stratified(key):
    sched = td.VE()
    T = td.LowDiscrepancy().sample(key, 64, sched, 1e-2, 10.0, 1.0)
    u = np.sort((np.asarray(T) - 1e-2) / (10.0 - 1e-2))  # VE: T = t, so u is the stratified uniform
    np.testing.assert_allclose(np.diff(u), 1 / 64, atol=1e-10)


def test_lognormal_matches_edm(key):
    T = td.LogNormal(-1.2, 1.2).sample(key, 40000, td.VP(), 1e-30, 1e30, 0.5)
    log_sigma = 0.5 * np.log(np.asarray(T))
    np.testing.assert_allclose(log_sigma.mean(), -1.2, atol=5 * 1.2 / np.sqrt(T.size))
    np.testing.assert_allclose(log_sigma.std(), 1.2, rtol=0.02)
    with pytest.raises(ValueError, match="p_std"):
        td.LogNormal(0.0, -1.0)


def test_weightings_closed_forms():
    T, sd = jnp.geomspace(1e-4, 1e4, 9), 0.8
    np.testing.assert_allclose(td.UnitWeighting()(T, sd), 1.0)
    np.testing.assert_allclose(td.NoiseVarianceWeighting()(T, sd), 1 / T)
    np.testing.assert_allclose(td.EDMWeighting()(T, sd), (T + sd**2) / (T * sd**2))
    np.testing.assert_allclose(td.SNRWeighting(5.0)(T, sd), np.minimum(sd**2 / T, 5.0))
    np.testing.assert_allclose(td.SNRWeighting(None)(T, sd), sd**2 / T)


def test_loss_is_the_weighted_squared_error(setup, key):
    Y, make, trainer = setup
    model = make(key)
    y, z = Y[:5], jax.random.normal(key, (5, D))
    T = jnp.array([0.01, 0.1, 1.0, 3.0, 30.0])
    D_ = jax.vmap(model.denoiser)(y + jnp.sqrt(T)[:, None] * z, T)
    want = jnp.mean(td.EDMWeighting()(T, model.sigma_data) * jnp.sum((D_ - y) ** 2, 1)) / D
    np.testing.assert_allclose(trainer.loss(model, y, T, z), want, rtol=1e-12)


# ----------------------------------------------------------------------------- the loop
def test_compiled_loop_equals_step_by_step_loop(setup, key):
    Y, make, trainer = setup
    state = trainer.init(make(key), jax.random.key(7))
    a, losses = _run_jit(trainer, state, Y, jnp.int32(48), jnp.int32(25), 40, False)
    b, ls = state, []
    for _ in range(25):
        b, loss = td.train_step(trainer, b, Y)
        ls.append(loss)
    assert _max_diff(a, b) == 0.0
    np.testing.assert_array_equal(np.asarray(losses)[:25], np.asarray(ls))
    assert np.all(np.isnan(np.asarray(losses)[25:]))
    assert int(a.step) == 25


def test_training_approaches_the_exact_empirical_denoiser(key):
    # two tight clusters: far from the Gaussian that the initial (zero-output) EDM net denoises exactly
    y = jnp.where(jax.random.bernoulli(key, 0.5, (64, 1)), 2.0, -2.0) * jnp.ones((1, D))
    y = y + 0.1 * jax.random.normal(jax.random.key(3), (64, D))
    model = td.Preconditioned.for_data(td.ResidualMLP(D, 32, 2, emb_dim=16, key=key), y)
    diag = td.Diagnostics(jnp.array([0.3, 1.0, 3.0]), n_states=128, n_samples=0, n_logs=3)
    res = td.train(model, y, key=key, steps=400, batch_size=64, diagnostics=diag, progress=False)
    assert res.losses.shape == (400,)
    assert np.mean(res.losses[-50:]) < 0.8 * np.mean(res.losses[:50])
    exc = res.history["excess"]  # (logs, temperatures): the EMA model against m^n_T
    assert np.all(exc[-1] < 0.3 * exc[0])
    assert res.model is res.state.ema and res.steps_per_s > 0 and res.history["step"].tolist() == [0, 1, 400]


@pytest.mark.slow  # about a minute on 2 cores: four nets trained twice
def test_vmap_over_seeds_and_sizes_equals_a_loop(setup, key):
    Y, make, trainer = setup
    keys = jax.random.split(key, 3)
    sizes = [8, 20, 48]
    diag = td.Diagnostics(jnp.array([0.05, 1.0]), population=td.Gaussian(jnp.ones(D)), n_states=16,
                          n_samples=8, sample_steps=4, n_logs=3)
    run_keys = jax.random.split(jax.random.key(5), 3)
    rv = td.train(td.stack_models([make(k) for k in keys]), Y, key=jax.random.key(5), steps=30, trainer=trainer,
                  vmap=True, n_points=sizes, diagnostics=diag, progress=False)
    assert rv.losses.shape == (3, 30) and rv.history["excess"].shape == (3, 3, 2)
    for m, n in enumerate(sizes):
        r = td.train(make(keys[m]), Y, key=run_keys[m], steps=30, trainer=trainer, n_points=n,
                     diagnostics=diag, progress=False)
        assert _max_diff(r.state, jax.tree.map(lambda x: x[m], rv.state)) < 1e-12
        np.testing.assert_allclose(r.losses, rv.losses[m], rtol=1e-12)
        for k in ("excess", "generalization", "f_mem"):
            np.testing.assert_allclose(r.history[k], rv.history[k][:, m], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(r.history["irreducible"], rv.history["irreducible"][m], rtol=1e-10)


def test_dataset_size_mask_equals_training_on_the_subset(setup, key):
    Y, make, trainer = setup
    a = td.train(make(key), Y, key=key, steps=20, trainer=trainer, n_points=12, progress=False)
    b = td.train(make(key), Y[:12], key=key, steps=20, trainer=trainer, progress=False)
    assert _max_diff(a.state, b.state) == 0.0


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_roundtrip_and_resume_are_bit_identical(setup, key, tmp_path):
    Y, make, trainer = setup
    model = make(key)
    full = td.train(model, Y, key=key, steps=40, trainer=trainer, checkpoint=tmp_path / "full", progress=False)
    ck = td.load_checkpoint(tmp_path / "full", trainer, data=Y)
    assert _max_diff(ck.state, full.state) == 0.0 and ck.step == 40
    # interrupted after 15 steps (in uneven chunks), then resumed to 40
    td.train(model, Y, key=key, steps=15, trainer=trainer, checkpoint=tmp_path / "cut", chunk=4, progress=False)
    resumed = td.train(model, Y, key=key, steps=40, trainer=trainer, checkpoint=tmp_path / "cut", resume=True,
                       chunk=7, progress=False)
    assert _max_diff(resumed.state, full.state) == 0.0
    np.testing.assert_array_equal(resumed.losses, full.losses)
    # inference needs no optimizer; nothing is a pickle
    inf = td.load_checkpoint(tmp_path / "full")
    assert inf.state is None and _max_diff(inf.ema, full.state.ema) == 0.0
    with np.load(tmp_path / "full" / "history.npz", allow_pickle=False) as z:
        assert z["losses"].shape == (40,)
    meta = json.loads((tmp_path / "full" / "meta.json").read_text())
    assert meta["architecture"]["name"] == "ResidualMLP" and meta["step"] == 40
    assert meta["data"]["n_points"] == 48 and meta["trainer"]["schedule"]["name"] == "VP"


def test_checkpoint_errors_are_clear(setup, key, tmp_path):
    Y, make, trainer = setup
    td.train(make(key), Y, key=key, steps=5, trainer=trainer, checkpoint=tmp_path / "c", progress=False)
    with pytest.raises(td.CheckpointError, match="another dataset"):
        td.load_checkpoint(tmp_path / "c", data=Y + 1.0)
    with pytest.raises(td.CheckpointError, match="checkpoint was trained on data of dimension d = 3, but the data given have d = 2"):
        td.load_checkpoint(tmp_path / "c", data=Y[:, :2])
    with pytest.raises(td.CheckpointError, match=r"checkpoint holds architecture \{'name': 'ResidualMLP'.*\}, expected"):
        td.load_checkpoint(tmp_path / "c", architecture=td.ResidualMLP(D, 32, 2, key=key).architecture())
    with pytest.raises(td.CheckpointError, match="optimizer"):
        td.load_checkpoint(tmp_path / "c", td.Trainer(optax.sgd(0.1), T_min=1e-3, T_max=1e2, batch_size=16))
    with pytest.raises(td.CheckpointError, match="batch_size"):
        td.load_checkpoint(tmp_path / "c", td.Trainer(T_min=1e-3, T_max=1e2, batch_size=8))
    raw = bytearray((tmp_path / "c" / "model.eqx").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "c" / "model.eqx").write_bytes(bytes(raw))
    with pytest.raises(td.CheckpointError, match="is corrupt: model.eqx does not match its sha256 in meta.json"):
        td.load_checkpoint(tmp_path / "c")
    with pytest.raises(td.CheckpointError, match="not a thermodiff checkpoint"):
        td.load_checkpoint(tmp_path)


def test_resume_refuses_another_model_count(setup, key, tmp_path):
    Y, make, trainer = setup
    td.train(make(key), Y, key=key, steps=5, trainer=trainer, checkpoint=tmp_path / "c", progress=False)
    stack = td.stack_models([make(k) for k in jax.random.split(key, 2)])
    with pytest.raises(td.CheckpointError, match="architecture|model"):
        td.train(stack, Y, key=key, steps=10, trainer=trainer, vmap=True, checkpoint=tmp_path / "c", resume=True,
                 progress=False)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_names_the_argument(setup, key):
    Y, make, trainer = setup
    model = make(key)
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 1000000000\]"):
        td.train(model, Y, key=key, steps=0, progress=False)
    with pytest.raises(ValueError, match="data have dimension d = 2 but the model acts on d = 3"):
        td.train(model, Y[:, :2], key=key, steps=1, progress=False)
    with pytest.raises(ValueError, match="data must be finite"):
        td.train(model, Y.at[0, 0].set(jnp.nan), key=key, steps=1, progress=False)
    with pytest.raises(ValueError, match="n_points"):
        td.train(model, Y, key=key, steps=1, n_points=100, progress=False)
    with pytest.raises(ValueError, match="stack of models"):
        td.train(model, Y, key=key, steps=1, vmap=True, progress=False)
    with pytest.raises(TypeError, match=r"train\(\) got unexpected arguments \['learning_rate'\]"):
        td.train(model, Y, key=key, steps=1, learning_rate=1e-3, progress=False)
    with pytest.raises(ValueError, match="T_min must be < T_max"):
        td.Trainer(T_min=1.0, T_max=0.5)
    with pytest.raises(ValueError, match="ema_decay"):
        td.Trainer(T_min=1e-3, T_max=1.0, ema_decay=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        td.Trainer(T_min=1e-3, T_max=1.0, batch_size=0)
    with pytest.raises(TypeError, match="optimizer"):
        td.Trainer("adam", T_min=1e-3, T_max=1.0)
    with pytest.raises(TypeError, match="Preconditioned"):
        td.train(model.net, Y, key=key, steps=1, progress=False)


def test_an_interrupted_save_leaves_a_usable_checkpoint(setup, key, tmp_path):
    import os
    import shutil

    Y, make, trainer = setup
    path = tmp_path / "c"
    td.train(make(key), Y, key=key, steps=5, trainer=trainer, checkpoint=path, progress=False)
    # killed between the two renames of the next save: the old checkpoint sits aside, nothing at path
    os.replace(path, tmp_path / ".c.old-12345")
    (tmp_path / ".c.partial-12345").mkdir()
    assert td.load_checkpoint(path).step == 5
    assert not (tmp_path / ".c.old-12345").exists()
    td.train(make(key), Y, key=key, steps=8, trainer=trainer, checkpoint=path, resume=True, progress=False)
    assert td.load_checkpoint(path).step == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    shutil.rmtree(path)
