"""Pytrees: flatten/unflatten/map, and pytrees as the arguments, outputs, aux
and gradients of the transforms (dict, list, tuple, namedtuple, None and
user-registered classes)."""
import collections
import dataclasses

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from support import assert_same_trees, dev, host

Point = collections.namedtuple("Point", "x y")


@dataclasses.dataclass
class Pair:
    """Registered with register_pytree_node."""
    a: object
    b: object


gp.register_pytree_node(Pair, lambda p: ((p.a, p.b), None), lambda _, c: Pair(*c))


@gp.register_pytree_node_class
@dataclasses.dataclass
class Scaled:
    """Registered as a class; `scale` is static data of the structure, not a leaf."""
    value: object
    scale: float

    def tree_flatten(self):
        return (self.value,), self.scale

    @classmethod
    def tree_unflatten(cls, scale, children):
        return cls(children[0], scale)


def sample_tree(a, b, c, d, e, f):
    return {"z": [a, (b, None)], "p": Point(c, d), "q": Pair(e, Scaled(f, 2.0))}


# ---- flatten, unflatten, map ------------------------------------------------
def test_flatten_order_and_roundtrip():
    tree = sample_tree(1, 2, 3, 4, 5, 6)
    leaves, td = gp.tree_flatten(tree)
    assert leaves == [3, 4, 5, 6, 1, 2]          # dict keys sorted: p, q, z
    assert td.num_leaves == 6
    assert gp.tree_unflatten(td, leaves) == tree
    assert gp.tree_leaves(tree) == leaves
    assert gp.tree_structure(tree) == td
    rebuilt = gp.tree_unflatten(td, list("abcdef"))
    assert type(rebuilt["p"]) is Point and type(rebuilt["q"].b) is Scaled
    assert rebuilt["q"].b.scale == 2.0 and rebuilt["z"][1][1] is None
    assert isinstance(rebuilt["z"], list) and isinstance(rebuilt["z"][1], tuple)


def test_structure_compares_containers_and_static_data():
    assert gp.tree_structure(sample_tree(*range(6))) == gp.tree_structure(sample_tree(*"abcdef"))
    assert gp.tree_structure([1, 2]) != gp.tree_structure((1, 2))
    assert gp.tree_structure({"a": 1}) != gp.tree_structure({"b": 1})
    assert gp.tree_structure(Scaled(1, 2.0)) != gp.tree_structure(Scaled(1, 3.0))
    assert gp.tree_structure(Point(1, 2)) != gp.tree_structure((1, 2))
    assert gp.tree_leaves(None) == [] and gp.tree_leaves({"a": None, "b": ()}) == []


def test_tree_map_one_and_several_trees():
    t1, t2 = sample_tree(*range(6)), sample_tree(*range(10, 16))
    assert gp.tree_map(lambda x: x * 10, t1) == sample_tree(0, 10, 20, 30, 40, 50)
    assert gp.tree_map(lambda x, y: y - x, t1, t2) == sample_tree(*[10] * 6)
    assert gp.tree_map(lambda x: x, None) is None
    with pytest.raises(ValueError, match="structures differ"):
        gp.tree_map(lambda x, y: x, [1, 2], (1, 2))


def test_unflatten_wrong_number_of_leaves():
    td = gp.tree_structure([1, (2, 3)])
    with pytest.raises(ValueError, match="more leaves"):
        gp.tree_unflatten(td, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="fewer leaves"):
        gp.tree_unflatten(td, [1, 2])


def test_arrays_are_leaves():
    x = dev([1.0, 2.0])
    leaves, td = gp.tree_flatten({"w": x, "n": None})
    assert len(leaves) == 1 and leaves[0] is x and td.num_leaves == 1


# ---- pytrees through the transforms -----------------------------------------
def _loss(p):
    z0, (z1, _) = p["z"]
    pair = p["q"]
    return (gnp.sum(z0 ** 2) + z1 * 3.0 + gnp.sum(gnp.sin(p["p"].x)) * p["p"].y
            + gnp.sum(pair.a * pair.b.value) * pair.b.scale)


def _expected_grad(a, b, c, d, e, f):
    return sample_tree(2 * a, np.float64(3.0), np.cos(c) * d, np.sum(np.sin(c)),
                       f * 2.0, e * 2.0)


def _host_args():
    return (np.array([1.0, -2.0]), 0.5, np.array([0.3, 0.9, -1.0]), 1.5,
            np.array([[1.0, 2.0]]), np.array([[3.0, -4.0]]))


def test_gradient_mirrors_the_argument_structure():
    args = _host_args()
    params = sample_tree(*[dev(a) for a in args])
    g = gp.grad(_loss)(params)
    assert_same_trees(g, _expected_grad(*args), rtol=1e-12)
    assert type(g["q"]) is Pair and type(g["q"].b) is Scaled and type(g["p"]) is Point
    assert g["z"][1][1] is None and g["q"].b.scale == 2.0


def test_pytree_arguments_with_argnums_tuple():
    x = np.array([0.5, 2.0])

    def f(pair, pts, c):
        return gnp.sum(pair.a * pts[0].x + pts[1].y) * c

    pair, pts = Pair(dev(x), None), [Point(dev(3 * x), None), Point(None, dev(x))]
    gpair, gpts = gp.grad(f, argnums=(0, 1))(pair, pts, 2.0)
    assert_same_trees(gpair, Pair(6 * x, None), rtol=1e-12)
    assert_same_trees(gpts, [Point(2 * x, None), Point(None, np.full(2, 2.0))], rtol=1e-12)


def test_pytree_outputs_of_vjp():
    x = np.array([0.2, -0.7])

    def f(x):
        return Pair(x * 2.0, {"s": gnp.sin(x), "n": [Scaled(x ** 2, 1.0)]})

    out, vjp_fn = gp.vjp(f, dev(x))
    assert_same_trees(out, Pair(2 * x, {"s": np.sin(x), "n": [Scaled(x ** 2, 1.0)]}), rtol=1e-12)
    u, v, w = np.array([1.0, 2.0]), np.array([-1.0, 0.5]), np.array([3.0, 1.0])
    (c,) = vjp_fn(Pair(dev(u), {"s": dev(v), "n": [Scaled(dev(w), 1.0)]}))
    np.testing.assert_allclose(host(c), 2 * u + np.cos(x) * v + 2 * x * w)
    with pytest.raises(ValueError, match="structure"):
        vjp_fn(Pair(dev(u), {"s": dev(v), "n": [Scaled(dev(w), 9.0)]}))


def test_pytree_aux_holds_values_not_tracers():
    x = np.array([1.0, 2.0])

    def f(x):
        y = gnp.exp(x)
        return gnp.sum(y), Scaled(Point(y, [x * 3.0, None]), 0.5)

    g, aux = gp.grad(f, has_aux=True)(dev(x))
    np.testing.assert_allclose(host(g), np.exp(x))
    assert_same_trees(aux, Scaled(Point(np.exp(x), [3 * x, None]), 0.5), rtol=1e-12)
    assert not any(isinstance(leaf, gp.core.Tracer) for leaf in gp.tree_leaves(aux))


def test_jacobian_of_pytree_input_and_output():
    a, b = np.array([0.1, 0.2, 0.3]), np.array([1.0, -1.0])

    def f(p):
        return {"u": p["a"][:2] * p["b"], "s": gnp.sum(p["a"])}

    jac = host(gp.jacobian(f)({"a": dev(a), "b": dev(b)}))
    expected = {"s": {"a": np.ones(3), "b": np.zeros(2)},
                "u": {"a": np.diag(b) @ np.eye(3)[:2], "b": np.diag(a[:2])}}
    assert_same_trees(jac, expected, rtol=1e-12)
