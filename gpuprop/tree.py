"""Pytrees: nested containers of arrays, flattened to a list of leaves and a
hashable description of the structure (`TreeDef`) that rebuilds them.

Containers: tuple, list, dict (keys sorted), namedtuple, None (no leaves), and
classes registered with `register_pytree_node`.  Everything else is a leaf.
"""
import threading


class TreeDef:
    """A structure: the container type (None for a leaf), its hashable
    auxiliary data (dict keys, ...), and the children's TreeDefs.  TreeDefs are
    interned, so equal structures are the same object: comparing and hashing
    them (jit's cache key) costs nothing, however deep they are."""
    __slots__ = ("kind", "data", "children", "num_leaves")

    def __repr__(self):
        if self.kind is None:
            return "*"
        name = getattr(self.kind, "__name__", str(self.kind))
        return f"{name}({', '.join(map(repr, self.children))})"

    def __reduce__(self):           # pickling re-interns
        return (_make, (self.kind, self.data, self.children))


_interned = {}
_intern_lock = threading.Lock()


def _make(kind, data, children):
    key = (kind, data, children)    # children hash by identity: they are interned
    td = _interned.get(key)
    if td is None:
        td = TreeDef()
        td.kind, td.data, td.children = kind, data, children
        td.num_leaves = 1 if kind is None else sum(c.num_leaves for c in children)
        with _intern_lock:
            td = _interned.setdefault(key, td)
    return td


LEAF = _make(None, None, ())
_registry = {}      # type -> (flatten: x -> (children, data), unflatten: (data, children) -> x)


_leaf_types = set()     # types seen to be leaves: no rule lookup next time


def register_pytree_node(cls, flatten, unflatten):
    """Treat instances of `cls` as containers: `flatten(x) -> (children, data)`
    with `data` hashable, `unflatten(data, children) -> x`."""
    _registry[cls] = (flatten, unflatten)
    _leaf_types.discard(cls)
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
    return leaves, _flatten(tree, leaves)


def _flatten(x, leaves):
    t = type(x)
    if t is list or t is tuple:     # the common containers, without a rule call
        return _make(t, None, _children(x, leaves))
    if t is dict:
        keys = tuple(sorted(x))
        return _make(dict, keys, _children([x[k] for k in keys], leaves))
    if t in _leaf_types:
        leaves.append(x)
        return LEAF
    rules = _node_rules(x)
    if rules is None:
        if not isinstance(x, tuple):    # a namedtuple type is decided per type too
            _leaf_types.add(t)
        leaves.append(x)
        return LEAF
    children, data = rules[0](x)
    return _make(t, data, tuple([_flatten(c, leaves) for c in children]))


def _children(xs, leaves):
    kids = []
    for c in xs:
        if type(c) in _leaf_types:      # a known leaf: no recursive call
            leaves.append(c)
            kids.append(LEAF)
        else:
            kids.append(_flatten(c, leaves))
    return tuple(kids)


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
