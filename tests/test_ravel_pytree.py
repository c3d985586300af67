"""gp.ravel_pytree: a pytree of arrays to one vector and back, differentiable
both ways and under jit."""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import dev, host


def tree_of(make):
    return {"w": make(np.arange(6.0).reshape(2, 3)), "layers": [make(np.array([7.0, 8.0])),
                                                               (make(np.array(9.0)),)]}


def test_round_trip_and_order():
    tree = tree_of(dev)
    flat, unravel = gp.ravel_pytree(tree)
    # tree_flatten's order: dict keys sorted ("layers" before "w")
    np.testing.assert_array_equal(host(flat), [7, 8, 9, 0, 1, 2, 3, 4, 5])
    back = unravel(flat)
    assert gp.tree_structure(back) == gp.tree_structure(tree)
    for a, b in zip(gp.tree_leaves(back), gp.tree_leaves(tree)):
        assert host(a).shape == host(b).shape
        np.testing.assert_array_equal(host(a), host(b))


def test_dtypes_promote_and_come_back():
    tree = [dev(np.ones(2, np.float32)), dev(np.array([3], np.int32)), dev(np.zeros((1, 2)))]
    flat, unravel = gp.ravel_pytree(tree)
    assert host(flat).dtype == np.float64
    assert [host(x).dtype for x in unravel(flat)] == [np.float32, np.int32, np.float64]
    flat32, _ = gp.ravel_pytree(tree[:1])
    assert host(flat32).dtype == np.float32


def test_empty_tree():
    flat, unravel = gp.ravel_pytree({"a": [], "b": None})
    assert host(flat).shape == (0,)
    assert unravel(flat) == {"a": [], "b": None}


def test_differentiable_both_ways():
    tree = tree_of(np.asarray)
    check_grads(lambda t: gp.ravel_pytree(t)[0] ** 2, (tree,), order=2)
    _, unravel = gp.ravel_pytree(tree_of(dev))
    check_grads(lambda v: unravel(v), (np.linspace(-1, 1, 9),), order=2)
    # a gradient taken on the flat vector, mapped back onto the parameters
    loss = lambda t: gnp.sum(t["w"] ** 2) + gnp.sum(t["layers"][0])
    flat, unravel = gp.ravel_pytree(tree_of(dev))
    g = unravel(gp.grad(lambda v: loss(unravel(v)))(flat))
    np.testing.assert_allclose(host(g["w"]), 2 * np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(host(g["layers"][0]), [1, 1])


def test_under_jit():
    @gp.jit
    def roundtrip(t):
        flat, unravel = gp.ravel_pytree(t)
        return flat * 2, unravel(flat * 3)
    flat, back = roundtrip(tree_of(dev))
    np.testing.assert_array_equal(host(flat), 2 * np.array([7, 8, 9, 0, 1, 2, 3, 4, 5.0]))
    np.testing.assert_array_equal(host(back["w"]), 3 * np.arange(6.0).reshape(2, 3))


def test_unravel_checks_the_vector():
    _, unravel = gp.ravel_pytree(tree_of(dev))
    with pytest.raises(ValueError, match=r"unravel: expected a vector of shape \(9,\).*got shape \(8,\)"):
        unravel(dev(np.zeros(8)))
