"""The samplers' unrolled Threefry normals equal jax.random.normal bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thermodiff._random import normal, threefry2x32


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("shape", [(), (1,), (7,), (64,), (3, 5), (2, 3, 4), (1000,)])
def test_normal_is_bit_identical_to_jax(shape, dtype):
    for seed in (0, 1, 12345):
        for key in (jax.random.key(seed), jax.random.PRNGKey(seed)):
            a = np.asarray(jax.random.normal(key, shape, dtype))
            b = np.asarray(normal(key, shape, dtype))
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(np.atleast_1d(a).view(np.uint8), np.atleast_1d(b).view(np.uint8))


def test_hash_matches_jax_threefry():
    k = jax.random.key_data(jax.random.key(7))
    x = jnp.arange(10, dtype=jnp.uint32)
    from jax.extend.random import threefry_2x32

    ref = threefry_2x32(k, x)  # JAX's own hash (counts split in halves)
    h1, h2 = threefry2x32(k[0], k[1], x[:5], x[5:])
    np.testing.assert_array_equal(np.concatenate([h1, h2]), ref)


def test_normal_under_vmap_jit_and_scan():
    keys = jax.random.split(jax.random.key(3), 16)

    def run(gen):
        def one(k):
            def body(acc, kk):
                z = gen(kk, (9,), jnp.float32)
                return acc, z

            return jax.lax.scan(body, 0.0, jax.random.split(k, 5))[1]

        return jax.jit(jax.vmap(one))(keys)

    np.testing.assert_array_equal(run(jax.random.normal), run(normal))


def test_no_rolled_loop_in_the_lowering():
    # jax.random.normal lowers Threefry on CPU as a while loop that XLA cannot fuse; ours is
    # straight-line elementwise code.
    text = jax.jit(lambda k: normal(k, (64,), jnp.float32)).lower(jax.random.key(0)).as_text()
    assert "while" not in text and "threefry" not in text


def test_other_implementations_fall_back():
    key = jax.random.key(0, impl="rbg")
    np.testing.assert_array_equal(normal(key, (5,), jnp.float32), jax.random.normal(key, (5,), jnp.float32))
    k = jax.random.key(0)
    np.testing.assert_array_equal(normal(k, (4,), jnp.float16), jax.random.normal(k, (4,), jnp.float16))


def test_moments():
    z = np.asarray(normal(jax.random.key(11), (200_000,), jnp.float64))
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)
