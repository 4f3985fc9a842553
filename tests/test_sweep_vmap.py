"""A plain jax.vmap of the mean-field functions runs in blocks of lanes (issue 15 item 3, theory 14).

``thermodiff._blocked_vmap`` gives ``fixed_point``, ``susceptibility``, ``order_parameter`` and
the thermodynamic functions a custom batching rule: a vmap over temperatures (or starts, fields,
ensemble parameters, nested) runs ``lax.map`` over blocks of lanes, the plain function per lane.
These tests check that it computes the same numbers as a per-temperature loop and as a
hand-written blocked ``lax.map``, that nested and partial batching are right, that derivatives
(jax.grad, jax.jacfwd, under vmap too) are those of the plain function, and that it works under
jit, inside scan and with JAX's default float32. The speed target (vmap within 1.5x of the best
blocked lax.map) is measured in ``benchmarks/_scale_sweep.py``, not here.

Pilot (two deltas, 10^4 temperatures over [0.2, 3] T_c): vmap and lax.map(batch_size=128) agreed
exactly (max |diff| 0.0 for x*, chi, C), and with a per-temperature loop to 1.7e-16; a d = 2
Gaussian mixture: vmap vs map <= 6.7e-16, vmap vs loop <= 2.6e-15 (x*, C, F, S, U) and 4.7e-12
on chi of size 63 (7e-14 relative). Thresholds: 1e-12 (absolute on O(1) values, relative on chi).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermodiff as td
from thermodiff import _blocked_vmap as bv

TWO = td.TwoDeltas(1.0)
MIX = td.GaussianMixture(jnp.array([[1.0, 0.5], [-1.0, -0.5]]), jnp.array([0.36, 0.36]))  # T_c = 0.89
TOL = 1e-12


def _point(ens, T):
    """The issue's sweep: fixed point (broken start), susceptibility and heat capacity."""
    x0 = ens.mean() + 0.3
    return td.fixed_point(ens, T, x0=x0), td.susceptibility(ens, T), td.heat_capacity(ens, T)


def _thermo_point(ens, T):
    return (td.order_parameter(ens, T), td.free_energy(ens, T), td.entropy(ens, T),
            td.internal_energy(ens, T))


def _close(a, b, tol=TOL):
    """max |a - b| / (1 + |b|) <= tol, elementwise over a pytree (relative for large chi)."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape
        err = np.max(np.abs(x - y) / (1.0 + np.abs(y)))
        assert err <= tol, err


def _loop(fn, *arrays):
    """A Python loop of the jitted per-lane function over the leading axis, results stacked."""
    one = jax.jit(fn)
    rows = [one(*(a[i] for a in arrays)) for i in range(arrays[0].shape[0])]
    return jax.tree.map(lambda *r: np.stack(r), *rows)


def test_vmap_of_10k_temperatures_equals_blocked_map_and_the_loop():
    """10^4 temperatures of two deltas (T_c = 1) in one vmap: the blocked lax.map written by hand
    (B = 128) and a per-T loop over 25 of them (both sides of T_c) give the same values."""
    Ts = jnp.asarray(np.geomspace(0.2, 3.0, 10_000))
    sweep = jax.jit(jax.vmap(lambda T: _point(TWO, T)))(Ts)
    ref = jax.jit(lambda Ts: jax.lax.map(lambda T: _point(TWO, T), Ts, batch_size=128))(Ts)
    _close(sweep, ref)
    idx = np.linspace(0, 9_999, 25).astype(int)
    _close(jax.tree.map(lambda a: a[idx], sweep), _loop(lambda T: _point(TWO, T), Ts[idx]))
    x, chi, C = sweep
    # physics spot checks: chi = 1/(T - 1) above T_c, C = 0 above and C -> 3/2 just below
    above = np.asarray(Ts) > 1.01
    np.testing.assert_allclose(np.asarray(chi)[above, 0, 0], 1 / (np.asarray(Ts)[above] - 1), rtol=1e-8)
    assert np.max(np.abs(np.asarray(C)[above])) < 1e-12
    below = (np.asarray(Ts) > 0.99) & (np.asarray(Ts) < 1.0)
    assert np.all(np.abs(np.asarray(C)[below] - 1.5) < 0.03)


def test_the_vmap_is_a_blocked_map():
    """The batched program is a scan over ceil(n/B) blocks of B lanes (the batching rule ran),
    and with blocking switched off it is the plain vmap (no scan over blocks)."""
    Ts = jnp.linspace(0.5, 2.0, 1000)
    f = jax.vmap(lambda T: td.fixed_point(TWO, T, x0=jnp.array([0.5])))
    text = str(jax.make_jaxpr(f)(Ts))
    assert bv.vmap_block_size() == 128  # the tests run on CPU
    assert "length=8" in text and "scan" in text, text[:2000]  # 1000 lanes: 8 blocks of 125
    blocked = jax.jit(f)(Ts)
    bv.set_vmap_block_size(None)
    try:
        g = jax.vmap(lambda T: td.fixed_point(TWO, T, x0=jnp.array([0.5])))
        assert "length=8" not in str(jax.make_jaxpr(g)(Ts))
        _close(blocked, jax.jit(g)(Ts))
    finally:
        bv.set_vmap_block_size("auto")


def test_mixture_thermodynamics_vmap_equals_loop():
    """order_parameter, F, S, U (equilibrium branch) of a d = 2 mixture over 300 temperatures."""
    Ts = jnp.asarray(np.geomspace(0.2, 3.0, 300) * 0.89)
    sweep = jax.jit(jax.vmap(lambda T: (_point(MIX, T), _thermo_point(MIX, T))))(Ts)
    idx = np.arange(0, 300, 23)
    _close(jax.tree.map(lambda a: a[idx], sweep),
           _loop(lambda T: (_point(MIX, T), _thermo_point(MIX, T)), Ts[idx]))


def test_vmap_over_starts_fields_and_ensemble_parameters():
    """Batching x0, h or the ensemble's parameters (T shared, or T batched too) equals the loop."""
    x0s = jnp.asarray(np.random.default_rng(0).normal(size=(200, 2)))
    hs = 0.1 * x0s
    f = jax.jit(jax.vmap(lambda x0, h: (td.fixed_point(MIX, 0.5, x0=x0, h=h), td.susceptibility(MIX, 0.5, h=h, x0=x0))))
    idx = np.arange(0, 200, 17)
    _close(jax.tree.map(lambda a: a[idx], f(x0s, hs)),
           _loop(lambda x0, h: (td.fixed_point(MIX, 0.5, x0=x0, h=h), td.susceptibility(MIX, 0.5, h=h, x0=x0)),
                 x0s[idx], hs[idx]))
    # mixtures with batched variances s2 (T_c = 1.25 - s2 on the principal axis) and temperatures
    s2 = jnp.linspace(0.1, 0.6, 150)
    Ts = jnp.linspace(0.3, 1.5, 150)

    def g(s2, T):
        ens = td.GaussianMixture(MIX.means, jnp.stack([s2, s2]))
        return td.order_parameter(ens, T), td.heat_capacity(ens, T)

    _close(jax.tree.map(lambda a: a[idx], jax.jit(jax.vmap(g))(s2, Ts)), _loop(g, s2[idx], Ts[idx]))
    m = np.asarray(jax.jit(jax.vmap(g))(s2, Ts)[0])
    Tc = 1.25 - np.asarray(s2)
    far = np.abs(np.asarray(Ts) - Tc) > 0.01
    assert np.array_equal((np.abs(m) > 1e-6)[far], (np.asarray(Ts) < Tc)[far])  # broken below T_c only


def test_nested_vmap_flattens_and_equals_the_loop():
    """vmap over amplitudes a (outer) of a vmap over T (inner), and the reverse nesting: both are
    one blocked map over all (a, T) lanes and equal the closed form m(T; a) = a m(T/a^2; 1)."""
    a = jnp.array([0.8, 1.0, 1.3])
    Ts = jnp.linspace(0.2, 2.5, 400)
    f = lambda a, T: td.order_parameter(td.TwoDeltas(a), T)  # noqa: E731
    outer_a = jax.jit(jax.vmap(jax.vmap(f, in_axes=(None, 0)), in_axes=(0, None)))(a, Ts)
    outer_T = jax.jit(jax.vmap(jax.vmap(f, in_axes=(0, None)), in_axes=(None, 0)))(a, Ts)
    assert outer_a.shape == (3, 400) and outer_T.shape == (400, 3)
    _close(outer_a, outer_T.T)
    m1 = jax.jit(jax.vmap(lambda T: td.order_parameter(TWO, T)))
    for i, ai in enumerate(np.asarray(a)):
        _close(outer_a[i], ai * np.asarray(m1(Ts / ai**2)), 1e-11)
    text = str(jax.make_jaxpr(jax.vmap(jax.vmap(f, in_axes=(None, 0)), in_axes=(0, None)))(a, Ts))
    assert "length=10" in text  # 1200 lanes: 10 blocks of 120 (not 3 x 400 lanes in one block)


def test_derivatives_are_those_of_the_plain_function():
    """grad/jacfwd of the public functions, plain and under vmap, against closed forms of two
    deltas: dm/dT = -(m/T^2) s/(1 - s/T) with s = sech^2(m/T); d chi/dT = -1/(T - 1)^2 above T_c;
    -T d^2F/dT^2 = C (a derivative of a derivative); d/da of m(T; a) against a central
    difference (cross-check only)."""
    Ts = jnp.asarray(np.concatenate([np.geomspace(0.3, 0.999, 50), np.geomspace(1.01, 3.0, 50)]))
    dm = jax.jit(jax.vmap(jax.grad(lambda T: td.order_parameter(TWO, T))))(Ts)
    m = np.asarray(jax.vmap(lambda T: td.order_parameter(TWO, T))(Ts))
    T = np.asarray(Ts)
    s = 1 - np.tanh(m / T) ** 2
    np.testing.assert_allclose(dm, -(m / T**2) * s / (1 - s / T), rtol=1e-8, atol=1e-12)
    above = T > 1
    dchi = jax.jit(jax.vmap(jax.jacfwd(lambda T: td.susceptibility(TWO, T)[0, 0])))(Ts[above])
    np.testing.assert_allclose(dchi, -1 / (T[above] - 1) ** 2, rtol=1e-7)
    d2F = jax.jit(jax.vmap(jax.grad(jax.grad(lambda T: td.free_energy(TWO, T)))))(Ts)
    C = jax.vmap(lambda T: td.heat_capacity(TWO, T))(Ts)
    np.testing.assert_allclose(-T * np.asarray(d2F), C, rtol=1e-6, atol=1e-9)
    ga = jax.vmap(jax.grad(lambda a, T: td.order_parameter(td.TwoDeltas(a), T)), in_axes=(0, None))(
        jnp.array([1.2, 1.5]), 0.6)
    for g, a0 in zip(np.asarray(ga), (1.2, 1.5)):
        fd = (float(td.order_parameter(td.TwoDeltas(a0 + 1e-6), 0.6))
              - float(td.order_parameter(td.TwoDeltas(a0 - 1e-6), 0.6))) / 2e-6
        assert g == pytest.approx(fd, rel=1e-6)


def test_jit_scan_and_default_float32():
    """Inside lax.scan (a vmap over starts per step), and with x64 off (float32 ensemble, the
    batching rule traced outside thermodiff's own float64 scope by a vmap of jit)."""

    def step(carry, T):
        xs = jax.vmap(lambda x0: td.fixed_point(TWO, T, x0=x0))(jnp.array([[-1.0], [1.0]]))
        return carry + td.heat_capacity(TWO, T), xs[:, 0]

    Ts = jnp.array([0.5, 0.9, 1.5])
    total, xs = jax.jit(lambda Ts: jax.lax.scan(step, 0.0, Ts))(Ts)
    m = np.array([0.9575040241, 0.5254295127, 0.0])  # m = tanh(m/T) (test_meanfield)
    np.testing.assert_allclose(xs, np.stack([-m, m], axis=1), atol=1e-9)
    C = _loop(lambda T: td.heat_capacity(TWO, T), Ts)
    assert float(total) == pytest.approx(float(np.sum(C)), abs=1e-12)
    with jax.enable_x64(False):
        ens = td.GaussianMixture(jnp.asarray(MIX.means, jnp.float32), jnp.asarray([0.36, 0.36], jnp.float32))
        T32 = jnp.linspace(0.3, 2.0, 300, dtype=jnp.float32)
        point = lambda T: (td.susceptibility(ens, T), td.heat_capacity(ens, T))  # noqa: E731
        sweep = jax.vmap(jax.jit(point))(T32)
        assert all(a.dtype == jnp.float32 for a in sweep)
        idx = np.array([0, 150, 299])
        # float64 inside, rounded once: the same float32 as the per-temperature function
        for a, b in zip(sweep, _loop(point, T32[idx])):
            np.testing.assert_array_equal(np.asarray(a)[idx], b)


def test_block_size_setting():
    with pytest.raises(ValueError, match="block_size must be"):
        bv.set_vmap_block_size(0)
    with pytest.raises(ValueError, match="block_size must be"):
        bv.set_vmap_block_size(True)
    bv.set_vmap_block_size(7)
    try:
        assert bv.vmap_block_size() == 7
        Ts = jnp.linspace(0.5, 2.0, 50)
        f = jax.vmap(lambda T: td.order_parameter(TWO, T))
        assert "length=8" in str(jax.make_jaxpr(f)(Ts))  # 50 lanes: 8 blocks of 7 (6 padded)
        _close(jax.jit(f)(Ts), _loop(lambda T: td.order_parameter(TWO, T), Ts))
    finally:
        bv.set_vmap_block_size()
    assert bv.vmap_block_size() == (128 if jax.default_backend() == "cpu" else None)
    assert math.ceil(10_000 / 128) == 79  # (the 10^4 sweep: 79 blocks of 127 lanes)
