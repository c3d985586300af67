"""Pytrees: nested containers of arrays, flattened to a list of leaves and a
hashable description of the structure (`TreeDef`) that rebuilds them.

Containers: tuple, list, dict (keys sorted), namedtuple, None (no leaves), and
classes registered with `register_pytree_node`.  Everything else is a leaf.
"""
from typing import NamedTuple, Any


class TreeDef(NamedTuple):
    kind: Any           # the container type, or None for a leaf
    data: Any           # hashable auxiliary data (dict keys, namedtuple type, ...)
    children: tuple     # TreeDefs of the children

    @property
    def num_leaves(self):
        return 1 if self.kind is None else sum(c.num_leaves for c in self.children)

    def __repr__(self):
        if self.kind is None:
            return "*"
        name = getattr(self.kind, "__name__", str(self.kind))
        return f"{name}({', '.join(map(repr, self.children))})"


LEAF = TreeDef(None, None, ())
_registry = {}      # type -> (flatten: x -> (children, data), unflatten: (data, children) -> x)


def register_pytree_node(cls, flatten, unflatten):
    """Treat instances of `cls` as containers: `flatten(x) -> (children, data)`
    with `data` hashable, `unflatten(data, children) -> x`."""
    _registry[cls] = (flatten, unflatten)
    return cls


def register_pytree_node_class(cls):
    """Class decorator: `cls` defines `tree_flatten(self)` and classmethod
    `tree_unflatten(data, children)`."""
    return register_pytree_node(cls, lambda x: x.tree_flatten(), cls.tree_unflatten)


register_pytree_node(tuple, lambda t: (t, None), lambda _, c: tuple(c))
register_pytree_node(list, lambda l: (l, None), lambda _, c: list(c))
register_pytree_node(dict, lambda d: ([d[k] for k in sorted(d)], tuple(sorted(d))),
                     lambda keys, c: dict(zip(keys, c)))
register_pytree_node(type(None), lambda _: ((), None), lambda _, c: None)


def _node_rules(x):
    t = type(x)
    rules = _registry.get(t)
    if rules is None and isinstance(x, tuple) and hasattr(x, "_fields"):
        rules = (lambda nt: (tuple(nt), None), lambda _, c, t=t: t(*c))
    return rules


def tree_flatten(tree):
    """(list of leaves, TreeDef)."""
    leaves = []

    def rec(x):
        rules = _node_rules(x)
        if rules is None:
            leaves.append(x)
            return LEAF
        children, data = rules[0](x)
        return TreeDef(type(x), data, tuple(rec(c) for c in children))

    return leaves, rec(tree)


def tree_unflatten(treedef, leaves):
    it = iter(leaves)

    def rec(td):
        if td.kind is None:
            leaf = next(it, it)
            if leaf is it:
                raise ValueError(f"tree_unflatten: fewer leaves than the {treedef.num_leaves} "
                                 f"the structure {treedef} holds")
            return leaf
        children = [rec(c) for c in td.children]
        if td.kind in _registry:
            return _registry[td.kind][1](td.data, children)
        return td.kind(*children)   # namedtuple

    out = rec(treedef)
    if next(it, it) is not it:
        raise ValueError(f"tree_unflatten: more leaves than the structure {treedef} holds")
    return out


def tree_leaves(tree):
    return tree_flatten(tree)[0]


def tree_structure(tree):
    return tree_flatten(tree)[1]


def tree_map(f, tree, *rest):
    """Apply `f` leafwise; `rest` are trees of the same structure."""
    leaves, td = tree_flatten(tree)
    others = []
    for r in rest:
        rl, rtd = tree_flatten(r)
        if rtd != td:
            raise ValueError(f"tree_map: structures differ: {td} and {rtd}")
        others.append(rl)
    return tree_unflatten(td, [f(*xs) for xs in zip(leaves, *others)])
