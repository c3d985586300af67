"""jit and make_ir.

`jit(f)` traces f once per signature (pytree structure, shapes, dtypes,
static values, backend) with abstract tracers (gpuprop/staging.py) into a `Program`, optimises it
(compile.passes) and compiles it for the active backend (compile: generated
straight-line code with buffer reuse and fused kernels, optionally replayed
as a CUDA graph).  Later calls with the same signature run only the compiled
program.

Inside another transform (grad(jit(f)), jit(jit(f))) a jitted function is
inlined: the enclosing transform sees its primitives, so every composition is
correct; jit(grad(f)) stages the whole backward pass.
"""
import functools
import inspect
import logging
import threading
from typing import NamedTuple

import numpy as np

from . import backend, core
from .backend import PY_SCALARS
from .core import ShapedArray, Tracer, inexact
from .forward import check_tangent, float0, jvp
from .compile import compile_program
from .staging import arg_names, stage
from .tree import tree_builder, tree_flatten, tree_leaves_with_path, tree_unflatten

log = logging.getLogger("gpuprop.jit")


def make_ir(f, static_argnums=()):
    """make_ir(f)(*args) -> the Program that jit would compile; print() it."""
    static = _as_tuple(static_argnums)

    @functools.wraps(f)
    def build(*args, **kwargs):
        n = len(args)
        return stage(f, args, kwargs, {i % n for i in static if -n <= i < n})[0]
    return build


def linearize(f, *primals):
    """(f(*primals), f_jvp), as JAX: f runs once, and f_jvp(*tangents) gives
    the directional derivative J tangents by replaying a compiled program of
    the tangent computation alone, whose inputs are the tangents and whose
    constants are the values of f's run that it needs: nothing of f is
    computed again, however often f_jvp is called."""
    name = f"linearize({getattr(f, '__name__', 'f')})"
    leaves, in_tree = tree_flatten(primals)
    floats = [i for i, x in enumerate(leaves) if inexact(x)]
    saved = {}

    def tangent_map(*float_tangents):
        ts = [np.zeros(core.shape_of(x), float0) for x in leaves]
        for i, t in zip(floats, float_tangents):
            ts[i] = t
        saved["out"], t_out = jvp(f, primals, tree_unflatten(in_tree, ts))
        return t_out

    prog, out_tree = stage(tangent_map, [leaves[i] for i in floats], {}, name=name)
    run = compile_program(prog)

    def f_jvp(*tangents):
        ts, td = tree_flatten(tangents)
        if td != in_tree:
            raise ValueError(f"{name}: the tangents' structure {td} differs from the "
                             f"primals' {in_tree}")
        for k, (x, t) in enumerate(zip(leaves, ts)):
            check_tangent(name, f"primal leaf {k}", x, t)
        return tree_unflatten(out_tree, run([ts[i] for i in floats]))

    return saved["out"], f_jvp


def _as_tuple(x):
    return (x,) if isinstance(x, int) else tuple(x)


class Signature(NamedTuple):
    """What a compiled program depends on: the key of jit's cache."""
    backend: str
    tree: object            # the TreeDef of the dynamic arguments
    leaves: tuple           # per leaf: (shape, dtype), or (type, repr) of a Python scalar
    static: tuple           # values of static positional arguments
    static_kw: tuple        # (name, value) of static keyword arguments
    debug_nans: bool


class Compiled:
    """One signature's compiled program: `program` (the optimised IR),
    `source` (the generated code), `kernels` (fused kernels) and `launches`
    (calls into the backend per run)."""
    __slots__ = ("program", "run", "out_tree", "donate", "fast")

    def __init__(self, program, run, out_tree, donate=()):
        self.program, self.run, self.out_tree = program, run, out_tree
        self.donate = frozenset(donate)
        build = tree_builder(out_tree)
        # what Jitted's fast path calls: a donation is checked on every call
        self.fast = self.__call__ if self.donate else lambda leaves: build(run(leaves))

    source = property(lambda self: self.run.source)
    kernels = property(lambda self: self.run.kernels)
    launches = property(lambda self: self.run.launches)

    def __call__(self, leaves):
        if not self.donate:
            return tree_unflatten(self.out_tree, self.run(leaves))
        self._check_donation(leaves)
        outs = self.run(leaves)
        # a donated array is deleted, as in JAX: its buffer may hold a result
        # now; a result written into it comes back as a new array object (a view)
        donated = {id(leaves[i]) for i in self.donate}
        outs = [o.view() if id(o) in donated else o for o in outs]
        for i in self.donate:
            backend.delete(leaves[i])
        return tree_unflatten(self.out_tree, outs)

    def _check_donation(self, leaves):
        """A donated buffer may be overwritten while the program runs: it must
        not also arrive through another argument."""
        donated = {id(leaves[i]) for i in self.donate}
        for i in self.donate:
            if not getattr(getattr(leaves[i], "flags", None), "writeable", True):
                raise ValueError(
                    f"jit({self.program.name}): donated input {i} (shape {leaves[i].shape}) "
                    f"is read-only (a broadcast view?); donate a writable array, e.g. a copy")
        for i, x in enumerate(leaves):
            if i not in self.donate and id(x) in donated:
                raise ValueError(
                    f"jit({self.program.name}): input {i} (shape {x.shape}) is also passed "
                    f"in a donated argument, whose buffer the program may overwrite "
                    f"while reading it; pass a copy of one of them")

    def __repr__(self):
        return (f"<Compiled {self.program.name}: {len(self.program.eqns)} equations, "
                f"{self.launches} launches, {self.kernels} fused kernels>")


class Jitted:
    """A function compiled per signature; call it like the original."""

    def __init__(self, f, static_argnums, static_argnames, donate_argnums, cuda_graph):
        functools.update_wrapper(self, f)
        self.fun = f
        self.static_argnums = _as_tuple(static_argnums)
        self.static_argnames = tuple((static_argnames,) if isinstance(static_argnames, str)
                                     else static_argnames)
        # a static argument may be passed by position or by name, as in JAX
        try:
            sig = [p.name for p in inspect.signature(f).parameters.values()
                   if p.kind is p.POSITIONAL_OR_KEYWORD]
        except (TypeError, ValueError):
            sig = []
        self._named_pos = tuple(sig.index(k) for k in self.static_argnames if k in sig)
        self._num_names = {i: sig[i] for i in self.static_argnums if -len(sig) <= i < len(sig)}
        self.static_argnames += tuple(k for k in self._num_names.values()
                                      if k not in self.static_argnames)
        self.donate_argnums = _as_tuple(donate_argnums)
        self.cuda_graph = bool(cuda_graph)
        self._cache = {}
        # (backend, debug_nans, (type, shape, dtype) per argument) -> Compiled
        self._fast = {}
        self._static_pos = bool(self.static_argnums or self._named_pos)
        self._lock = threading.Lock()
        self._last = None
        self.traces = 0             # how many times f was traced

    def __call__(self, *args, **kwargs):
        if core.tracing():          # inside another transform: inline
            return self.fun(*args, **kwargs)
        # the fast path: positional arrays seen before (while no donated array
        # is alive, whose use the signature check refuses)
        if not kwargs and not backend.deleted:
            try:
                fast = (backend.current(), core.debug.nans) + tuple(
                    [(type(a), a.shape, a.dtype) for a in args])
                return self._fast[fast].fast(list(args))
            except (AttributeError, KeyError, TypeError):
                pass
        key, leaves = self._signature(args, kwargs)
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = self._compile(key, args, kwargs)
        if not kwargs and len(leaves) == len(args) and not self._static_pos:
            be = backend.current()
            if all(type(a) in be.array_types for a in args):
                self._fast[(be, key.debug_nans) + tuple(
                    [(type(a), a.shape, a.dtype) for a in args])] = compiled
        return compiled(leaves)

    def lower(self, *args, **kwargs):
        """The Compiled program these arguments run (compiling it if needed):
        its .program, .source, .kernels and .launches show what jit made."""
        key, _ = self._signature(args, kwargs)
        return self._cache.get(key) or self._compile(key, args, kwargs)

    def _split(self, args, kwargs):
        """(positions of static arguments, static keyword arguments, dynamic
        keyword arguments)."""
        n = len(args)
        pos = ({i % n for i in self.static_argnums if -n <= i < n} |
               {i for i in self._named_pos if i < n})
        skw = {k: v for k, v in kwargs.items() if k in self.static_argnames}
        dkw = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        return pos, skw, dkw

    def _signature(self, args, kwargs):
        be = backend.current()
        n = len(args)
        for i in self.static_argnums:
            if not -n <= i < n and self._num_names.get(i) not in kwargs:
                raise ValueError(f"jit({self.__name__}): static_argnums {i} is out of "
                                 f"range for {n} positional argument(s)")
        if self.static_argnums or self._named_pos or kwargs:
            pos, skw, dkw = self._split(args, kwargs)
            static = tuple(_hashable(self.__name__, f"argument {i}", args[i]) for i in sorted(pos))
            static_kw = tuple((k, _hashable(self.__name__, f"argument {k!r}", skw[k]))
                              for k in sorted(skw))
            dyn = (tuple(a for i, a in enumerate(args) if i not in pos), dkw)
        else:                       # the common call: positional arrays only
            static, static_kw, dyn = (), (), args
        leaves, tree = tree_flatten(dyn)
        sig, arrays = [], []
        for x in leaves:
            t = type(x)
            if t in PY_SCALARS:
                # Python scalars are static by value; by repr, which tells -0.0
                # from 0.0 and finds nan equal to nan
                sig.append((t, repr(x)))
            elif t in be.ok_types or isinstance(x, be.array_types):
                if backend.deleted:
                    backend.check_live(x, f"jit({self.__name__})")
                sig.append((x.shape, x.dtype))
                arrays.append(x)
            elif isinstance(x, Tracer):
                raise core.leaked(x)
            elif hasattr(x, "shape") and hasattr(x, "dtype"):   # another backend's array
                raise backend.mismatch(f"jit({self.__name__})", x, be)
            else:
                raise self._not_an_array(args, kwargs, x)
        key = Signature(be.name, tree, tuple(sig), static, static_kw, core.debug.nans)
        return key, arrays

    def _not_an_array(self, args, kwargs, x):
        """A leaf that is neither an array nor a number: where it is, and
        that its argument should be static."""
        pos, _, dkw = self._split(args, kwargs)
        names = arg_names(self.fun, len(args))
        places = [(names[i], a) for i, a in enumerate(args) if i not in pos] + list(dkw.items())
        where = next(f"{name!r}{path}" for name, a in places
                     for path, leaf in tree_leaves_with_path(a) if leaf is x)
        return TypeError(
            f"jit({self.__name__}): argument {where} is a {type(x).__name__} ({x!r:.60}), "
            f"not an array: jit traces arrays and numbers only. Mark the argument static "
            f"(jit(f, static_argnums=...) or static_argnames=...: each value compiles "
            f"its own program), or close over it; a container class of arrays: register it "
            f"as a pytree node (gpuprop.register_pytree_node)")

    def _compile(self, key, args, kwargs):
        with self._lock:
            compiled = self._cache.get(key)
            if compiled is not None:
                return compiled
            if self._last is not None:
                log.debug("jit(%s): retracing: %s", self.__name__,
                          _describe_change(self._last, key))
            static, skw, dkw = self._split(args, kwargs)
            fun = functools.partial(self.fun, **skw) if skw else self.fun
            prog, out_tree = stage(fun, args, dkw, static, self.__name__)
            self.traces += 1
            donate = self._donated_inputs(args, static)
            run = compile_program(prog, donate=donate, cuda_graph=self.cuda_graph)
            compiled = Compiled(prog, run, out_tree, donate)
            self._cache[key] = compiled
            self._last = key
            return compiled

    def _donated_inputs(self, args, static):
        """Indices (among the program's inputs) of donated array leaves."""
        donate, k = set(), 0
        for i, a in enumerate(args):
            if i in static:
                continue
            n = sum(1 for x in tree_flatten(a)[0] if type(x) not in PY_SCALARS)
            if i in self.donate_argnums or (i - len(args)) in self.donate_argnums:
                donate.update(range(k, k + n))
            k += n
        return donate

    def __get__(self, obj, objtype=None):      # as a method
        return self if obj is None else functools.partial(self, obj)


def _hashable(name, what, v):
    try:
        hash(v)
    except TypeError:
        raise TypeError(f"jit({name}): static {what} must be hashable (it keys the "
                        f"compilation cache), got {type(v).__name__}") from None
    return v


def _describe_change(old, new):
    """Which part of the signature differs, for the retrace log."""
    parts = []
    if old.backend != new.backend:
        parts.append(f"backend {old.backend} -> {new.backend}")
    if old.tree != new.tree:
        parts.append(f"argument structure {old.tree} -> {new.tree}")
    elif old.leaves != new.leaves:
        parts += [f"leaf {i}: {_fmt_sig(a)} -> {_fmt_sig(b)}"
                  for i, (a, b) in enumerate(zip(old.leaves, new.leaves)) if a != b]
    if (old.static, old.static_kw) != (new.static, new.static_kw):
        parts.append(f"static arguments {old.static + old.static_kw} -> "
                     f"{new.static + new.static_kw}")
    if old.debug_nans != new.debug_nans:
        parts.append(f"debug_nans {old.debug_nans} -> {new.debug_nans}")
    return "; ".join(parts)


def _fmt_sig(s):
    return f"{ShapedArray(*s)}" if isinstance(s[0], tuple) else f"Python {s[0].__name__} {s[1]}"


def jit(f=None, *, static_argnums=(), static_argnames=(), donate_argnums=(),
        cuda_graph=False):
    """Compile f: trace once per signature, then replay the optimised program.

    static_argnums/static_argnames: arguments whose values (hashable) decide
    control flow; each value compiles its own program.  Python scalars among
    the other arguments are treated as static too.  donate_argnums: arguments
    whose buffers the program may overwrite (the caller won't use them again),
    e.g. the parameters of a training step.  cuda_graph: on a CUDA backend,
    capture the compiled program once as a CUDA graph and replay it (one
    launch per call; inputs and outputs are copied through fixed buffers);
    on a CPU backend it changes nothing.  `jitted.lower(*args)` shows what
    was compiled for those arguments.
    """
    if f is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames,
                                 donate_argnums=donate_argnums, cuda_graph=cuda_graph)
    return Jitted(f, static_argnums, static_argnames, donate_argnums, cuda_graph)
