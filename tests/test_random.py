"""gpuprop.random: fixed-key values against an independent Threefry-2x32
written here in plain NumPy uint32 (and JAX's numbers when JAX is
importable), bit-identity between eager and jit (and, through conftest,
between the numpy and strict backends: both runs compare with the same
reference), vmap over split keys, statistics with fixed tolerances, errors."""
import math

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
import gpuprop.random as gr
from support import dev, host


# ---- an independent reference: Threefry-2x32 in NumPy uint32 --------------------
def ref_threefry(key, counts):
    """The Random123 Threefry-2x32-20 of the counters (0, counts) under
    key; NumPy uint32 arrays wrap, shifts by constants."""
    u = np.uint32
    k = [u(key[0]), u(key[1])]
    k.append(k[0] ^ k[1] ^ u(0x1BD11BDA))
    x = [np.zeros_like(counts) + k[0], counts + k[1]]
    rotations = [13, 15, 26, 6, 17, 29, 16, 24]
    for block in range(5):
        for j in range(4):
            r = u(rotations[4 * (block % 2) + j])
            x[0] = x[0] + x[1]
            x[1] = ((x[1] << r) | (x[1] >> (u(32) - r))) ^ x[0]
        x[0] = x[0] + k[(block + 1) % 3]
        x[1] = x[1] + k[(block + 2) % 3] + u(block + 1)
    return x


def ref_bits(key, n):
    y0, y1 = ref_threefry(key, np.arange(n, dtype=np.uint32))
    return y0 ^ y1


def ref_uniform(key, n):
    mantissa = (ref_bits(key, n) >> np.uint32(9)) | np.uint32(0x3F800000)
    return mantissa.view(np.float32) - np.float32(1)


def test_threefry_known_answer():
    # Random123's published known-answer vectors for threefry2x32_20
    got = ref_threefry(np.array([0, 0], np.uint32), np.array([0], np.uint32))
    assert [int(got[0][0]), int(got[1][0])] == [0x6B200159, 0x99BA4EFE]
    y0, y1 = gr.threefry2x32(np.uint32(0xFFFFFFFF), np.uint32(0xFFFFFFFF),
                             dev([0xFFFFFFFF], np.uint32), dev([0xFFFFFFFF], np.uint32))
    assert [int(host(y0)[0]), int(host(y1)[0])] == [0x1CB996FC, 0xBB002BE7]


# ---- fixed keys against the reference ----------------------------------------------
def test_key_split_fold_in_bits_match_the_reference():
    k = gr.key(42)
    assert host(k).dtype == np.uint32 and host(k).tolist() == [0, 42]
    assert host(gr.PRNGKey(2 ** 40 + 5)).tolist() == [256, 5]
    assert host(gr.key(-1)).tolist() == [0, 0xFFFFFFFF]        # JAX's default 32-bit mode
    y0, y1 = ref_threefry([0, 42], np.arange(6, dtype=np.uint32))
    np.testing.assert_array_equal(host(gr.split(k, (2, 3))), np.stack([y0, y1], -1).reshape(2, 3, 2))
    y0, y1 = ref_threefry([0, 42], np.array([7], np.uint32))
    np.testing.assert_array_equal(host(gr.fold_in(k, 7)), [y0[0], y1[0]])
    np.testing.assert_array_equal(host(gr.fold_in(k, dev(7, np.int32))), [y0[0], y1[0]])
    np.testing.assert_array_equal(host(gr.bits(k, (4, 5))), ref_bits([0, 42], 20).reshape(4, 5))


def test_uniform_and_bernoulli_match_the_reference():
    k = gr.key(3)
    u = ref_uniform([0, 3], 1000)
    assert_exact(gr.uniform(k, (1000,)), u)
    scaled = np.maximum(np.float32(-2), (u.astype(np.float64) * 5.5 - 2).astype(np.float32))
    assert_exact(gr.uniform(k, (1000,), minval=-2.0, maxval=3.5), scaled)
    assert_exact(gr.bernoulli(k, 0.3, (1000,)), u < np.float32(0.3))
    y0, y1 = ref_threefry([0, 3], np.arange(10, dtype=np.uint32))
    b64 = (y0.astype(np.uint64) << np.uint64(32)) | y1
    u64 = ((b64 >> np.uint64(12)) | np.uint64(0x3FF0000000000000)).view(np.float64) - 1
    assert_exact(gr.uniform(k, (10,), np.float64), u64)


def assert_exact(got, want):
    got, want = np.asarray(host(got)), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want)


def test_randint_and_permutation_match_the_reference():
    k = gr.key(11)
    k1, k2 = ref_threefry([0, 11], np.arange(2, dtype=np.uint32))
    hi, lo = ref_bits([k1[0], k2[0]], 500), ref_bits([k1[1], k2[1]], 500)
    span = 23            # [-5, 18): (hi * 2**32 + lo) % span
    want = ((hi.astype(np.uint64) * 2 ** 32 + lo) % span).astype(np.int32) - 5
    assert_exact(gr.randint(k, (500,), -5, 18), want)
    s0, s1 = ref_threefry([0, 11], np.arange(2, dtype=np.uint32))
    order = np.argsort(ref_bits([s0[1], s1[1]], 50), kind="stable")
    assert_exact(gr.permutation(k, 50), np.arange(50, dtype=np.int32)[order])


def test_equal_to_jax_when_installed():
    jax = pytest.importorskip("jax")
    jr, jk, k = jax.random, jax.random.PRNGKey(5), gr.key(5)
    for got, want in [(gr.split(k, 3), jr.split(jk, 3)), (gr.fold_in(k, 9), jr.fold_in(jk, 9)),
                      (gr.uniform(k, (300,), minval=-1.0, maxval=2.0),
                       jr.uniform(jk, (300,), minval=-1.0, maxval=2.0)),
                      (gr.bernoulli(k, 0.7, (300,)), jr.bernoulli(jk, 0.7, (300,))),
                      (gr.randint(k, (300,), 0, 10), jr.randint(jk, (300,), 0, 10)),
                      (gr.permutation(k, 100), jr.permutation(jk, 100))]:
        assert_exact(got, np.asarray(want))
    # normal: Giles' erfinv in its more accurate form (JAX's errs up to 2e-5)
    np.testing.assert_allclose(host(gr.normal(k, (10000,))), np.asarray(jr.normal(jk, (10000,))),
                               rtol=0, atol=3e-5)


# ---- eager == jit, vmap ---------------------------------------------------------------
def draws(k):
    k1, k2, k3, k4, k5, k6, k7 = gr.split(k, 7)
    return (gr.uniform(k1, (7, 3)), gr.normal(k2, (300,)), gr.bernoulli(k3, 0.3, (50,)),
            gr.randint(k4, (40,), -3, 9), gr.permutation(k5, 20),
            gr.truncated_normal(k6, -1.0, 0.5, (30,)), gr.fold_in(k, 3), gr.bits(k, (4,)),
            gr.uniform(k7, (5,), np.float64, -1.0, 1.0), gr.normal(k7))


def test_jit_gives_the_same_bits_as_eager():
    k = gr.key(3)
    eager, jitted = draws(k), gp.jit(draws)(k)
    for e, j in zip(eager, jitted):
        assert_exact(j, host(e))


def test_a_jitted_draw_is_staged_from_the_key():
    """The key is an input of the program (a new key needs no retrace)."""
    f = gp.jit(lambda k: gr.normal(k, (64,)))
    prog = gp.make_ir(lambda k: gr.normal(k, (64,)))(gr.key(0))
    assert len(prog.invars) == 1 and "bitwise_xor" in {e.prim.name for e in prog.eqns}
    assert not np.array_equal(host(f(gr.key(0))), host(f(gr.key(1))))


def test_vmap_over_split_keys_gives_independent_rows_equal_to_a_loop():
    keys = gr.split(gr.key(0), 6)
    rows = gp.vmap(lambda k: gr.normal(k, (1000,)))(keys)
    loop = np.stack([host(gr.normal(keys[i], (1000,))) for i in range(6)])
    assert_exact(rows, loop)
    corr = np.corrcoef(loop)
    assert np.max(np.abs(corr - np.eye(6))) < 0.12           # 1000 draws: sd 0.03
    folded = gp.vmap(lambda i: gr.fold_in(gr.key(1), i))(dev(np.arange(4), np.int32))
    assert_exact(folded, np.stack([host(gr.fold_in(gr.key(1), i)) for i in range(4)]))


# ---- statistics (fixed tolerances: several standard errors) -----------------------------
N = 100_000


def test_normal_and_uniform_moments():
    x = host(gr.normal(gr.key(1), (N,))).astype(np.float64)
    assert abs(x.mean()) < 0.015 and abs(x.var() - 1) < 0.02       # se 0.003, 0.0045
    assert abs(np.mean(x ** 3)) < 0.05 and abs(np.mean(x ** 4) - 3) < 0.1
    assert abs(np.mean(x < -1.0) - 0.158655) < 0.005
    u = host(gr.uniform(gr.key(2), (N,), minval=-1.0, maxval=3.0)).astype(np.float64)
    assert u.min() >= -1.0 and u.max() < 3.0
    assert abs(u.mean() - 1) < 0.02 and abs(u.var() - 16 / 12) < 0.03
    counts = np.histogram(u, bins=20, range=(-1, 3))[0]
    assert np.all(np.abs(counts - N / 20) < 5 * np.sqrt(N / 20))


def test_bernoulli_randint_permutation_truncated_normal():
    b = host(gr.bernoulli(gr.key(3), 0.3, (N,)))
    assert b.dtype == bool and abs(b.mean() - 0.3) < 0.007           # se 0.0015
    r = host(gr.randint(gr.key(4), (N,), -3, 7))
    assert r.dtype == np.int32 and r.min() == -3 and r.max() == 6
    assert np.all(np.abs(np.bincount(r + 3) - N / 10) < 5 * np.sqrt(N / 10))
    assert host(gr.randint(gr.key(4), (8,), 0, 256, np.uint8)).dtype == np.uint8
    assert np.all(host(gr.randint(gr.key(4), (10,), 5, 5)) == 5)       # empty range: minval
    p = host(gr.permutation(gr.key(5), 3000))
    assert sorted(p.tolist()) == list(range(3000)) and not np.array_equal(p, np.arange(3000))
    x = np.arange(12.0).reshape(4, 3)
    px = host(gr.permutation(gr.key(5), dev(x)))
    assert sorted(map(tuple, px)) == sorted(map(tuple, x))
    t = host(gr.truncated_normal(gr.key(6), -0.5, 1.5, (N,))).astype(np.float64)
    assert -0.5 < t.min() and t.max() < 1.5
    z = math.erf(1.5 / math.sqrt(2)) - math.erf(-0.5 / math.sqrt(2))
    mean = (math.exp(-0.125) - math.exp(-1.125)) * math.sqrt(2 / math.pi) / z
    assert abs(t.mean() - mean) < 0.01
    tail = host(gr.truncated_normal(gr.key(6), 2.0, np.inf, (1000,)))
    assert tail.min() > 2.0 and np.isfinite(tail).all()


def test_split_streams_are_uncorrelated_and_keys_differ():
    k1, k2 = gr.split(gr.key(7))
    a, b = host(gr.uniform(k1, (N,))), host(gr.uniform(k2, (N,)))
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.015
    c = host(gr.uniform(gr.fold_in(gr.key(7), 1), (N,)))
    assert abs(np.corrcoef(a, c)[0, 1]) < 0.015
    # neighbouring counters of one draw are independent too
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.015
    assert not np.array_equal(host(k1), host(k2))


# ---- errors ----------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda k: gr.normal(k, (3,)), lambda k: gr.uniform(k), lambda k: gr.split(k),
    lambda k: gr.fold_in(k, 1), lambda k: gr.bernoulli(k), lambda k: gr.randint(k, (2,), 0, 3),
    lambda k: gr.permutation(k, 4), lambda k: gr.truncated_normal(k, 0.0, 1.0)])
def test_drawing_with_a_non_key_is_a_type_error_naming_the_function(fn):
    for bad, says in [(0, "gpuprop.random.key(0)"), (dev([1.0, 2.0], np.float32), "f32[2]"),
                      (gr.split(gr.key(0), 3), "batch of (3,) keys"), ([0, 1], "list")]:
        with pytest.raises(TypeError, match="key must be a key array") as e:
            fn(bad)
        assert says in str(e.value)


def test_argument_errors():
    k = gr.key(0)
    with pytest.raises(TypeError, match="seed must be an integer"):
        gr.key(1.5)
    with pytest.raises(TypeError, match="dtype must be one of float32"):
        gr.normal(k, (2,), np.float64)
    with pytest.raises(TypeError, match="at most 32 bits"):
        gr.randint(k, (2,), 0, 5, np.int64)
    with pytest.raises(TypeError, match="maxval must be an integer"):
        gr.randint(k, (2,), 0, 5.5)
    with pytest.raises(ValueError, match=r"do not broadcast to the shape \(3,\)"):
        gr.uniform(k, (3,), minval=dev(np.zeros(4, np.float32)))
    with pytest.raises(TypeError, match="p must be a float"):
        gr.bernoulli(k, 1)
    with pytest.raises(TypeError, match="data must be one integer"):
        gr.fold_in(k, dev([1, 2], np.int32))
    with pytest.raises(ValueError, match="negative dimension"):
        gr.normal(k, (-1,))


def test_gnp_bit_operations_match_numpy():
    a = np.array([0, 1, 0x80000000, 0xFFFFFFFF, 12345], np.uint32)
    f = lambda m, x: (m.bitwise_xor(x, 0x9E3779B9), m.left_shift(x, 31), m.right_shift(x, 31),  # noqa: E731
                      m.bitwise_and(x, 0xFF) | m.invert(x), m.add(x, 0xFFFFFFFF),
                      m.multiply(x, 2654435761), m.remainder(x, 7))
    for got, want in zip(gp.jit(lambda x: f(gnp, x))(dev(a)), f(np, a)):
        assert_exact(got, want)
    assert_exact(gnp.bitcast(dev(np.array([0x3F800000], np.uint32)), np.float32), np.ones(1, np.float32))
    with pytest.raises(TypeError, match="items have 4 and 8 bytes"):
        gnp.bitcast(dev(a), np.float64)
