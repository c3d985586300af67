"""The shape functions of gpuprop.numpy against NumPy (values and dtypes) and
against finite differences (check_grads, to second order) in float64:
transpose, reshape, broadcast_to, squeeze, expand_dims, swapaxes, moveaxis,
flip, roll, pad, take, triu/tril, indexing (basic and advanced getitem),
concatenate, stack, split and array_split; their dtypes, empty arrays and
error messages.
"""
import numpy as np
import pytest

import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import assert_same, check, dev, host, uniform


# ---- one array in, one out -------------------------------------------------------
SHAPE_OPS = {
    "transpose": ((2, 3, 4), lambda m, x: m.transpose(x)),
    "transpose(1,0,2)": ((2, 3, 4), lambda m, x: m.transpose(x, (1, 0, 2))),
    "transpose(-1,0,1)": ((2, 3, 4), lambda m, x: m.transpose(x, (-1, 0, 1))),
    "reshape(6,4)": ((2, 3, 4), lambda m, x: m.reshape(x, (6, 4))),
    "reshape(4,-1)": ((2, 3, 4), lambda m, x: m.reshape(x, (4, -1))),
    "reshape(-1)": ((2, 3, 4), lambda m, x: m.reshape(x, -1)),
    "reshape(())": ((1, 1), lambda m, x: m.reshape(x, ())),
    "reshape(0)": ((0, 3), lambda m, x: m.reshape(x, (3, 0))),
    "ravel": ((2, 3), lambda m, x: m.ravel(x)),
    "broadcast_to": ((3, 1), lambda m, x: m.broadcast_to(x, (2, 3, 4))),
    "broadcast_to(scalar)": ((), lambda m, x: m.broadcast_to(x, (2, 3))),
    "broadcast_to(0)": ((3, 1), lambda m, x: m.broadcast_to(x, (3, 0))),
    "squeeze": ((1, 3, 1), lambda m, x: m.squeeze(x)),
    "squeeze(0)": ((1, 3, 1), lambda m, x: m.squeeze(x, 0)),
    "squeeze(-1)": ((1, 3, 1), lambda m, x: m.squeeze(x, -1)),
    "squeeze((0,2))": ((1, 3, 1), lambda m, x: m.squeeze(x, (0, 2))),
    "expand_dims(0)": ((2, 3), lambda m, x: m.expand_dims(x, 0)),
    "expand_dims(-1)": ((2, 3), lambda m, x: m.expand_dims(x, -1)),
    "expand_dims((0,3))": ((2, 3), lambda m, x: m.expand_dims(x, (0, 3))),
    "swapaxes(0,2)": ((2, 3, 4), lambda m, x: m.swapaxes(x, 0, 2)),
    "swapaxes(-1,0)": ((2, 3, 4), lambda m, x: m.swapaxes(x, -1, 0)),
    "moveaxis(0,-1)": ((2, 3, 4), lambda m, x: m.moveaxis(x, 0, -1)),
    "moveaxis(-1,0)": ((2, 3, 4), lambda m, x: m.moveaxis(x, -1, 0)),
    "flip": ((2, 3, 4), lambda m, x: m.flip(x)),
    "flip(0)": ((2, 3, 4), lambda m, x: m.flip(x, 0)),
    "flip((0,-1))": ((2, 3, 4), lambda m, x: m.flip(x, (0, -1))),
    "roll(1)": ((2, 3, 4), lambda m, x: m.roll(x, 1)),
    "roll(-2,1)": ((2, 3, 4), lambda m, x: m.roll(x, -2, axis=1)),
    "roll(7,-1)": ((2, 3, 4), lambda m, x: m.roll(x, 7, axis=-1)),
    "roll((1,2),(0,2))": ((2, 3, 4), lambda m, x: m.roll(x, (1, 2), axis=(0, 2))),
    "roll(3,0)": ((2, 3, 4), lambda m, x: m.roll(x, 2, axis=0)),
    "pad(1)": ((2, 3, 4), lambda m, x: m.pad(x, 1)),
    "pad((1,2))": ((2, 3, 4), lambda m, x: m.pad(x, (1, 2), constant_values=1.5)),
    "pad(per axis)": ((2, 3, 4), lambda m, x: m.pad(x, ((0, 1), (2, 0), (0, 0)), "constant",
                                                    constant_values=-1)),
    "take(None)": ((2, 3, 4), lambda m, x: m.take(x, m.asarray([5, 0, 5, -1]))),
    "take(1)": ((2, 3, 4), lambda m, x: m.take(x, m.asarray([[2, 0], [2, 2]]), axis=1)),
    "take(-1, int)": ((2, 3, 4), lambda m, x: m.take(x, 3, axis=-1)),
    "take(list)": ((2, 3, 4), lambda m, x: m.take(x, [1, 0, 1], axis=0)),
    "tril": ((2, 3, 4), lambda m, x: m.tril(x)),
    "triu(1)": ((2, 3, 4), lambda m, x: m.triu(x, 1)),
    "tril(-1)": ((2, 3, 4), lambda m, x: m.tril(x, -1)),
    "triu(-2)": ((2, 3, 4), lambda m, x: m.triu(x, k=-2)),
}


@pytest.mark.parametrize("name", SHAPE_OPS)
def test_shape_op(name):
    shape, fn = SHAPE_OPS[name]
    check(fn, uniform(shape))


@pytest.mark.parametrize("name", ["triu", "tril"])
def test_triangles_of_1d_and_special_values(name):
    check(lambda m, x: getattr(m, name)(x, 1), uniform((3,)))
    x = np.array([[1.0, np.inf], [np.nan, 2.0]])
    assert_same(getattr(gnp, name)(dev(x)), getattr(np, name)(x))
    for dt in (np.float32, np.int32, np.bool_):
        assert_same(getattr(gnp, name)(dev(x > 0, dt)), getattr(np, name)((x > 0).astype(dt)))


def test_pad_keeps_dtype():
    x = uniform((2, 3)).astype(np.float32)
    assert_same(gnp.pad(dev(x), 1, constant_values=2.5), np.pad(x, 1, constant_values=2.5))
    assert gnp.pad(dev(x), 0) is not None


# ---- indexing --------------------------------------------------------------------
A = np.array
INDICES = [
    1, -1, slice(1, None), slice(None, None, -1), (slice(None), slice(None, None, -2)),
    (Ellipsis, 1), (None, 1), (slice(None), None, slice(1, 3)), (1, Ellipsis, None),
    (slice(2, 0, -1), -2, slice(None, None, 2)), (Ellipsis,), (), (0, 1, 2),
    A([0, 2, 2, 1]), A([-1, 0, -1]), (slice(None), A([3, 3, 0])), A([[0, 1], [1, 1]]),
    (A([0, 0, 2]), slice(None), A([4, 4, 1])), (Ellipsis, A([1, 1])), [0, 0, 1],
    (1, [2, 2]), (None, A([0, 0]), Ellipsis, -1), (A([[2], [0]]), A([1, 1, 3])),
]


def _index(m, index):
    """The index with its arrays on the namespace's device."""
    if isinstance(index, tuple):
        return tuple(_index(m, i) for i in index)
    return m.asarray(index) if isinstance(index, np.ndarray) else index


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_getitem(index):
    check(lambda m, x: m.getitem(x, _index(m, index)), uniform((3, 4, 5)))
    check_grads(lambda x: x[_index(gnp, index)] * 2.0, (uniform((3, 4, 5)),))


# ---- joining and splitting -------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(axis):
    shapes = [[2, 3, 4] for _ in range(3)]
    for k, s in enumerate(shapes):
        s[axis] = k + 1
    check(lambda m, *xs: m.concatenate(xs, axis=axis), *(uniform(s, seed=k) for k, s in enumerate(shapes)))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_stack(axis):
    check(lambda m, *xs: m.stack(xs, axis=axis), *(uniform((2, 3), seed=k) for k in range(3)))


def test_concatenate_dtypes_and_empty():
    a, b = uniform((2, 3)).astype(np.float32), uniform((0, 3))
    assert_same(gnp.concatenate([dev(a), dev(b)]), np.concatenate([a, b]), rtol=1e-6)
    check(lambda m, a, b: m.concatenate([a, b]), a.astype(np.float64), b)


@pytest.mark.parametrize("parts,axis", [(3, 0), ([1, 3], 0), ([2, -1, 9], 1), (2, -1),
                                        ([], 0)], ids=str)
@pytest.mark.parametrize("name", ["split", "array_split"])
def test_split(name, parts, axis):
    x = uniform((6, 4))
    got = getattr(gnp, name)(dev(x), parts, axis=axis)
    want = getattr(np, name)(x, parts, axis=axis)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_same(g, w)
    check_grads(lambda x: [p * (k + 1.0) for k, p in enumerate(getattr(gnp, name)(x, parts, axis))],
                (x,))


def test_array_split_uneven():
    x = uniform((7, 2))
    for n in (3, 4, 7, 9):
        got, want = gnp.array_split(dev(x), n), np.array_split(x, n)
        assert [host(g).shape for g in got] == [w.shape for w in want]
    check_grads(lambda x: gnp.array_split(x, 3)[0] * 2.0 + 1.0, (x,))


def test_shape_errors_name_the_function():
    x = dev(uniform((6, 4)))
    with pytest.raises(ValueError, match="gnp.split.*array_split"):
        gnp.split(x, 4)
    with pytest.raises(NotImplementedError, match="gnp.pad.*edge"):
        gnp.pad(x, 1, mode="edge")
    with pytest.raises(ValueError, match="gnp.pad"):
        gnp.pad(x, -1)
