"""A residual MLP trained on a two-Gaussian mixture against the exact laws (theory sections 6, 9, 10).

Mixture N(+-mu, I) in d = 8 with |mu|^2 = 4: T_c = |mu|^2 - s^2 = 3. The full test (slow) trains
n = 16 and n = 4096 in one vmapped call: the large set generalises (small generalisation error,
the exact cloning curve and speciation temperature, f_mem ~ 0), the small one memorises (excess
loss against its exact empirical denoiser far below its generalisation error at low T, f_mem
near 1). A lighter variant runs in the default suite.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td

D, T_C = 8, 3.0


def _population():
    mu = jnp.zeros(D).at[0].set(2.0)
    return td.GaussianMixture(jnp.stack([mu, -mu]), 1.0)


def test_light_training_learns_the_population_and_its_transition():
    pop = _population()
    Y = pop.sample(jax.random.key(1), 2048)
    model = td.Preconditioned.for_data(td.ResidualMLP(D, 64, 2, emb_dim=32, key=jax.random.key(2)), Y)
    res = td.train(model, Y, key=jax.random.key(3), steps=1200, batch_size=256, progress=False)
    Ts = np.array([12.0, 3.0, 0.75])
    c = td.compare_to_exact(res.model, Y, pop, temperatures=Ts, key=jax.random.key(4), n_states=512,
                            n_pairs=600, steps=40, collapse=False)
    col = c.columns
    assert np.all(col["generalization"] < 0.1 * col["trace_population"])
    assert np.all(np.abs(col["phi_model"] - col["phi_population"]) < 0.08)
    assert col["phi_model"][0] < col["phi_model"][1] < col["phi_model"][2]  # commitment grows as T falls


@pytest.fixture(scope="module")
def trained():
    pop = _population()
    Y = pop.sample(jax.random.key(1), 4096)
    sd = float(np.sqrt(np.mean(np.var(np.asarray(Y), 0))))
    mean = np.asarray(Y).mean(0)
    make = lambda k: td.Preconditioned(td.ResidualMLP(D, 128, 3, key=k), "edm", sd, mean)
    models = td.stack_models([make(k) for k in jax.random.split(jax.random.key(2), 2)])
    diag = td.Diagnostics(np.geomspace(0.1, 30, 6), population=pop, n_states=256, n_samples=256, n_logs=10)
    res = td.train(models, Y, key=jax.random.key(3), steps=4000, vmap=True, n_points=[16, 4096],
                   diagnostics=diag, progress=False)
    return pop, Y, res


def _lane(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


@pytest.mark.slow
def test_large_training_set_generalizes_with_the_exact_transition(trained):
    pop, Y, res = trained
    net = _lane(res.model, 1)
    Ts = np.geomspace(0.3, 30, 9)
    c = td.compare_to_exact(net, Y, pop, temperatures=Ts, key=jax.random.key(4), n_states=1024, n_pairs=2000,
                            n_trajectories=128)
    col = c.columns
    assert np.all(col["generalization"] < 0.05 * col["trace_population"])
    assert np.max(np.abs(col["phi_model"] - col["phi_population"])) < 0.05
    T_s = c.summary["T_speciation_model"]
    assert T_s is not None and abs(T_s - T_C) < 0.15 * T_C
    assert res.history["f_mem"][-1, 1] <= 0.05
    # DSM loss = irreducible + excess for the trained net, within Monte Carlo error
    for T in (0.3, 3.0, 30.0):
        k = jax.random.key(int(T * 10))
        L = td.denoising_loss(net, Y, T, k, n_states=4096)
        I = td.irreducible_loss(Y, T, k, n_states=4096)
        E = td.excess_loss(net, Y, T, k, n_states=4096)
        assert abs(float(L.value - I.value - E.value)) <= 5 * float(L.stderr + I.stderr + E.stderr)


@pytest.mark.slow
def test_small_training_set_memorizes(trained):
    pop, Y, res = trained
    h = res.history
    Ts = h["temperatures"]
    low = Ts <= 0.3
    exc, gen = h["excess"][-1, 0], h["generalization"][-1, 0]
    assert np.all(exc[low] < 0.2 * gen[low])
    assert h["f_mem"][-1, 0] >= 0.5
    assert res.tau_mem[0] is not None and res.tau_mem[1] is None
    # the same architecture on 4096 points generalises: its generalisation error is far smaller
    assert np.all(h["generalization"][-1, 1][low] < 0.2 * gen[low])
