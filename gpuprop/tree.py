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
    if not isinstance(leaves, (list, tuple)):
        leaves = list(leaves)
    build = tree_builder(treedef)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"tree_unflatten: {'more' if len(leaves) > treedef.num_leaves else 'fewer'}"
                         f" leaves ({len(leaves)}) than the {treedef.num_leaves} the "
                         f"structure {treedef} holds")
    return build(leaves)


_builders = {}      # TreeDef -> function(leaves) -> tree


def tree_builder(treedef):
    """The function (list of exactly its leaves) -> tree of `treedef`, unchecked."""
    build = _builders.get(treedef)
    if build is None:
        build = _builders[treedef] = _builder(treedef)
    return build


def _builder(treedef):
    """A function that rebuilds `treedef` from its leaves.  For structures of
    tuples, lists, dicts and None it is generated code, one expression with no
    recursion: jit rebuilds its outputs on every call."""
    counter = iter(range(treedef.num_leaves))
    keys = {}       # name -> the keys of one dict node (any hashable objects)

    def expr(td):
        if td.kind is None:
            return f"L[{next(counter)}]"
        kids = [expr(c) for c in td.children]
        if td.kind is tuple:
            return "(" + "".join(k + ", " for k in kids) + ")"
        if td.kind is list:
            return "[" + ", ".join(kids) + "]"
        if td.kind is dict:
            name = f"K{len(keys)}"
            keys[name] = td.data
            return "{" + ", ".join(f"{name}[{i}]: {v}" for i, v in enumerate(kids)) + "}"
        if td.kind is type(None):
            return "None"
        raise _Generic

    try:
        return eval(f"lambda L: {expr(treedef)}", keys)
    except (_Generic, RecursionError):      # registered classes, namedtuples
        return lambda leaves: _unflatten_generic(treedef, leaves)


class _Generic(Exception):
    """A node the generated builder cannot write as an expression."""


def _unflatten_generic(treedef, leaves):
    it = iter(leaves)       # the count was checked by tree_unflatten

    def rec(td):
        if td.kind is None:
            return next(it)
        children = [rec(c) for c in td.children]
        if td.kind in _registry:
            return _registry[td.kind][1](td.data, children)
        return td.kind(*children)   # namedtuple

    return rec(treedef)


def tree_leaves(tree):
    return tree_flatten(tree)[0]


def tree_structure(tree):
    return tree_flatten(tree)[1]


def tree_leaves_with_path(tree):
    """[(path, leaf)] in tree_flatten's order; a path is written as an index
    into the tree: "['w'][0]", ".field" for a namedtuple's, "" for the root."""
    leaves, td = tree_flatten(tree)
    paths = []

    def walk(td, path):
        if td.kind is None:
            paths.append(path)
            return
        fields = getattr(td.kind, "_fields", None)
        for k, child in enumerate(td.children):
            key = (f"[{td.data[k]!r}]" if td.kind is dict else
                   f".{fields[k]}" if fields else f"[{k}]")
            walk(child, path + key)
    walk(td, "")
    return list(zip(paths, leaves))


def tree_difference(a, b):
    """Where two TreeDefs first differ, in words (for error messages)."""
    def walk(a, b, path):
        where = f"at {path}" if path else "at the root"
        if a.kind is not b.kind:
            name = lambda td: "a leaf" if td.kind is None else getattr(td.kind, "__name__", td.kind)
            return f"{where}: {name(a)} and {name(b)}"
        if a.kind is dict and a.data != b.data:
            only_a = [k for k in a.data if k not in b.data]
            only_b = [k for k in b.data if k not in a.data]
            return f"{where}: keys {only_a} only in the first, {only_b} only in the second"
        if len(a.children) != len(b.children) or a.data != b.data:
            return f"{where}: {a} and {b}"
        fields = getattr(a.kind, "_fields", None)
        for k, (ca, cb) in enumerate(zip(a.children, b.children)):
            if ca is not cb:
                key = (f"[{a.data[k]!r}]" if a.kind is dict else
                       f".{fields[k]}" if fields else f"[{k}]")
                return walk(ca, cb, path + key)
        return f"{where}: {a} and {b}"
    return walk(a, b, "")


def tree_map(f, tree, *rest):
    """Apply `f` leafwise; `rest` are trees of the same structure."""
    leaves, td = tree_flatten(tree)
    others = []
    for k, r in enumerate(rest, start=1):
        rl, rtd = tree_flatten(r)
        if rtd != td:
            raise ValueError(f"tree_map: structures differ: tree {k} differs from the "
                             f"first {tree_difference(td, rtd)} ({td} and {rtd})")
        others.append(rl)
    return tree_unflatten(td, [f(*xs) for xs in zip(leaves, *others)])
