"""Reverse mode: the tape trace, and grad, value_and_grad, vjp, jacrev
(jacobian), custom_vjp built on it.

A `ReverseTracer` holds its primal value (an array, or a tracer of a lower
level) and the tape `Node` that produced it.  Running a function on such
tracers records one node per differentiable primitive.  The backward pass
walks the nodes in reverse creation order, calling each primitive's VJP rule;
the rules bind primitives too, so an enclosing transform records the backward
pass: that is grad(grad(f)).
"""
import functools
import itertools

import numpy as np

from . import backend, core
from .core import (NaNError, PrimalTracer, Trace, Tracer, bind, eval_primitive, inexact, new_main,
                   shape_of, size_of)
from .numpy import elementwise as ew
from .numpy._base import zeros_like
from .numpy.creation import ones, zeros
from .numpy.shape import reshape, stack
from .tree import tree_flatten, tree_leaves_with_path, tree_unflatten, tree_map


class Node:
    """One recorded primitive: what its VJP rules need, and its parents."""
    __slots__ = ("prim", "primals", "out", "params", "parents")

    def __init__(self, prim, primals, out, params, parents):
        self.prim = prim
        self.primals = primals
        self.out = out
        self.params = params
        self.parents = parents


class _MultiNode(Node):
    """A recorded primitive with several results: each result's tracer holds
    one of `handles` (None for an integer result), under which its
    cotangent accumulates."""
    __slots__ = ("handles",)


class _Output:
    __slots__ = ()


class ReverseTracer(PrimalTracer):
    __slots__ = ("node",)

    def __init__(self, trace, primal, node):
        self._trace = trace
        self.primal = primal
        self.node = node


class ReverseTrace(Trace):
    name = "grad"

    def __init__(self, main):
        super().__init__(main)
        self.tape = main.data               # the nodes, in creation order

    def pure(self, val):
        return ReverseTracer(self, val, None)

    lift = pure

    def process_primitive(self, prim, args, params):
        # unwrap our tracers by hand: constants need no tracer of their own
        primals, parents = [], []
        for a in args:
            if type(a) is ReverseTracer and a._trace is self:
                primals.append(a.primal)
                parents.append(a.node)
            else:
                primals.append(a)
                parents.append(None)
        if prim.multiple_results:
            return self._record_multiple(prim, primals, params, parents)
        # at the first level the primals are concrete: skip bind's search
        out = (eval_primitive(prim, primals, params) if self.first_level
               else bind(prim, primals, params))
        if (not prim.differentiable or out.dtype.kind not in "fc"
                or parents.count(None) == len(parents)):
            return ReverseTracer(self, out, None)
        node = Node(prim, primals, out, params, parents)
        self.tape.append(node)          # creation order is a topological order
        return ReverseTracer(self, out, node)

    def _record_multiple(self, prim, primals, params, parents):
        if not prim.differentiable or parents.count(None) == len(parents):
            return [ReverseTracer(self, o, None) for o in bind(prim, primals, params)]
        if prim.vjp_forward is not None:    # the outputs, and what the VJP will need
            outs, residuals = prim.vjp_forward(primals, params)
            params = {**params, "residuals": residuals}
        else:
            outs = bind(prim, primals, params)
        node = _MultiNode(prim, primals, outs, params, parents)
        node.handles = [_Output() if inexact(o) else None for o in outs]
        self.tape.append(node)
        return [ReverseTracer(self, o, h) for o, h in zip(outs, node.handles)]

    def process_custom_vjp(self, fun, fwd, bwd, tracers):
        primals = [t.primal for t in tracers]
        parents = [t.node for t in tracers]
        if not any(parents):
            return ReverseTracer(self, fun(*primals), None)
        out, residuals = fwd(*primals)
        node = Node(_CustomRule(fun, bwd, residuals), primals, out, {}, parents)
        self.tape.append(node)
        return ReverseTracer(self, out, node)

    def process_custom_jvp(self, fun, rule, tracers):
        """A custom_jvp function under reverse mode: its rule's tangent is
        linear in the tangents, so the VJP is that map transposed (a reverse
        pass over the rule at zero tangents)."""
        def fwd(*xs):
            return fun(*xs), xs

        def bwd(xs, g):
            pos = [i for i, x in enumerate(xs) if inexact(x)]

            def tangent_out(*ts):
                full = [zeros_like(x) for x in xs]
                for i, t in zip(pos, ts):
                    full[i] = t
                return rule(tuple(xs), tuple(full))[1]
            cts = vjp(tangent_out, *[zeros_like(xs[i]) for i in pos])[1](g)
            out = [None] * len(xs)
            for i, c in zip(pos, cts):
                out[i] = c
            return tuple(out)
        return self.process_custom_vjp(fun, fwd, bwd, tracers)

    def process_checkpoint(self, fun, tracers):
        """fun's value without recording its operations; the backward pass runs
        fun again (from its inputs, behind a barrier that keeps a staged
        program from merging the two runs) and differentiates that."""
        token = next(_remat_tokens)

        def fwd(*xs):
            return fun(*xs), xs

        def bwd(xs, g):
            pos = [i for i, x in enumerate(xs) if inexact(x)]

            def again(*ys):
                full = list(xs)
                for i, y in zip(pos, ys):
                    full[i] = ew.remat_barrier(y, token)
                return fun(*full)
            cts = vjp(again, *[xs[i] for i in pos])[1](g)
            out = [None] * len(xs)
            for i, c in zip(pos, cts):
                out[i] = c
            return tuple(out)
        return self.process_custom_vjp(fun, fwd, bwd, tracers)

    concrete = staticmethod(core.concrete_primal)

    @staticmethod
    def number(tracer, why):
        """float(t), complex(t), t.item(), math.exp(t) make a Python number,
        a constant to differentiation: refused where t carries a derivative."""
        if tracer.node is not None:
            raise TypeError(
                f"grad/vjp: {why} of a traced value ({tracer.aval}) that depends on the "
                f"differentiated input would silently drop its derivative (a Python "
                f"number is a constant). Keep it an array: compute with gpuprop.numpy "
                f"(gnp.exp(t), not math.exp(t); t[0], not float(t[0])); for a value "
                f"meant as a constant, convert gpuprop.stop_gradient(t)")
        p = tracer.primal
        return p._number(why) if isinstance(p, Tracer) else p


_remat_tokens = itertools.count()


class _CustomRule:
    """Stands in for a primitive on the tape of a custom_vjp function."""
    vjp = None

    def __init__(self, fun, bwd, residuals):
        self.name = getattr(fun, "__name__", "custom_vjp")
        self.bwd, self.residuals = bwd, residuals
        self.last = (None, None)    # (g, cotangents): bwd runs once per g

    def vjp_variadic(self, i, g, out, *primals):
        if self.last[0] is g:
            return self.last[1][i]
        cts = self.bwd(self.residuals, g)
        if not isinstance(cts, tuple) or len(cts) != len(primals):
            raise TypeError(f"custom_vjp {self.name}: the backward function must return "
                            f"a tuple of {len(primals)} cotangents, one per argument, "
                            f"got {type(cts).__name__}"
                            f"{f' of length {len(cts)}' if isinstance(cts, tuple) else ''}")
        for k, (c, p) in enumerate(zip(cts, primals)):
            if c is not None and shape_of(c) != shape_of(p):
                raise ValueError(f"custom_vjp {self.name}: the backward function returned "
                                 f"a cotangent of shape {shape_of(c)} for argument {k}, "
                                 f"of shape {shape_of(p)}; each cotangent must have its "
                                 f"argument's shape (sum over broadcast axes)")
        self.last = (g, cts)
        return cts[i]


class _Leaf:
    """The node of an input being differentiated (not on the tape)."""
    __slots__ = ()


def backward_pass(tape, roots, release):
    """Cotangents of the nodes of `tape` (a level's nodes in creation order)
    and of the inputs, from the output cotangents `roots` [(node, ct)].

    The tape is walked backwards: creation order is a topological order, so
    no graph search and no recursion, and chains of any length work.  Nodes
    the outputs do not depend on get no cotangent and are skipped.  With
    `release`, each node drops what it saved as soon as its rule has run."""
    cts = {}
    for node, ct in roots:
        prev = cts.get(node)
        cts[node] = ct if prev is None else ew.add(prev, ct)
    for node in reversed(tape):
        g = cts.pop(node, None)
        if g is None and type(node) is _MultiNode:
            _multiple_vjp(node, cts)
        elif g is not None:
            prim, args, params, out = node.prim, node.primals, node.params, node.out
            rules = prim.vjp
            for i, parent in enumerate(node.parents):
                if parent is None or (rules is not None and rules[i] is None):
                    continue
                try:
                    if rules is None:
                        c = prim.vjp_variadic(i, g, out, *args, **params)
                    else:
                        c = rules[i](g, out, *args, **params) if params else rules[i](g, out, *args)
                except NaNError as e:
                    raise NaNError(f"in the backward pass, in the VJP of {prim.name} with "
                                   f"respect to argument {i}: {e}") from None
                if c is None:
                    continue
                dt = args[i].dtype
                if c.dtype is not dt and c.dtype != dt:
                    c = ew.to_dtype(c, dt)      # a complex one into a real argument: its real part
                prev = cts.get(parent)
                cts[parent] = c if prev is None else ew.add(prev, c)
        if release:     # the rule too: a custom_vjp rule holds its residuals
            node.primals = node.out = node.params = node.prim = None
    return cts


def _multiple_vjp(node, cts):
    """The backward step of a primitive with several results: one rule call
    with a cotangent per result (zeros for the results nothing used)."""
    gs = [cts.pop(h, None) if h is not None else None for h in node.handles]
    if all(g is None for g in gs):
        return
    gs = [zeros_like(o) if g is None and h is not None else g
          for g, h, o in zip(gs, node.handles, node.out)]
    args = node.primals
    for i, (parent, c) in enumerate(zip(node.parents,
                                        node.prim.vjp(gs, node.out, *args, **node.params))):
        if parent is None or c is None:
            continue
        if c.dtype != args[i].dtype:
            c = ew.to_dtype(c, args[i].dtype)
        prev = cts.get(parent)
        cts[parent] = c if prev is None else ew.add(prev, c)


def _check_differentiable(name, argnum, tree, holomorphic=False):
    for path, leaf in tree_leaves_with_path(tree):
        leaf_at = f" (leaf {path})" if path else ""
        dt = getattr(leaf, "dtype", None)
        if dt is None and type(leaf) not in backend.PY_SCALARS:
            raise TypeError(
                f"{name}: argument {argnum}{leaf_at} is a {type(leaf).__name__}, not an "
                f"array: the leaves of a differentiated argument must be arrays or "
                f"numbers. If "
                f"{type(leaf).__name__} is a container of arrays, register it as a pytree "
                f"node (gpuprop.register_pytree_node or register_pytree_node_class); "
                f"other data: close over it, or pass it in an argument outside argnums")
        dt = np.dtype(dt if dt is not None else np.result_type(leaf))
        if dt.kind not in "fc":
            raise TypeError(
                f"{name}: argument {argnum} has dtype {dt}{leaf_at}; only "
                f"floating point and complex inputs can be differentiated. Pass floats (e.g. "
                f"2.0, or x.astype(gnp.float32)), or move the argument out of argnums")
        if holomorphic and dt.kind != "c":
            raise TypeError(
                f"{name} with holomorphic=True: argument {argnum} has dtype {dt}{leaf_at}; "
                f"a holomorphic derivative needs complex inputs, as in JAX. Pass complex "
                f"values (x.astype(gnp.complex64), or x + 0j), or drop holomorphic=True")


def _as_input(name, leaf):
    """A leaf to differentiate: Python floats become float64 0-d arrays."""
    if isinstance(leaf, Tracer):
        return leaf
    be = backend.current()
    if isinstance(leaf, (float, complex)) or isinstance(leaf, np.generic):
        return be.from_host(np.asarray(leaf))
    if not be.owns(leaf):
        raise backend.mismatch(name, leaf, be)
    return leaf


def _as_output(leaf):
    """A constant output leaf (f ignores its inputs): Python numbers become 0-d
    arrays of the active backend (float -> float64), so they have a dtype."""
    if type(leaf) in backend.PY_SCALARS:
        return backend.current().from_host(np.asarray(leaf))
    return leaf


def _vjp(name, f, primals, argnums, has_aux, release, holomorphic=False):
    """Run f on tracers for the arguments in argnums; return its outputs (the
    primal values), aux, and a function from output cotangents to gradients."""
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for i in nums:
        if not -len(primals) <= i < len(primals):
            raise ValueError(f"{name}: argnums {argnums} out of range for "
                             f"{len(primals)} positional argument(s)")
    primals = list(primals)
    with new_main(ReverseTrace, []) as main:     # main.data: the tape
        trace, in_trees = main.trace, []
        for i in nums:
            _check_differentiable(name, i, primals[i], holomorphic)
            leaves, td = tree_flatten(primals[i])
            leaves = [_as_input(name, x) for x in leaves]
            nodes = [_Leaf() for _ in leaves]
            primals[i] = tree_unflatten(td, [ReverseTracer(trace, x, n)
                                             for x, n in zip(leaves, nodes)])
            in_trees.append((td, leaves, nodes))
        result = f(*primals)
        if has_aux:
            if not (isinstance(result, tuple) and len(result) == 2):
                raise TypeError(f"{name} with has_aux=True: the function must return "
                                f"a pair (output, aux), got {type(result).__name__}")
            result, aux = result
        out_leaves, out_tree = tree_flatten(result)
        outs = [trace.full_raise(o) if isinstance(o, Tracer) else trace.pure(_as_output(o))
                for o in out_leaves]
    out_primals = [o.primal for o in outs]
    out_nodes = [o.node for o in outs]
    tape = main.data
    aux = _lower_all(aux, main) if has_aux else None

    def backward(out_cts):
        cts = backward_pass(tape, [(n, c) for n, c in zip(out_nodes, out_cts) if n is not None],
                            release)
        grads = []
        for td, leaves, nodes in in_trees:
            grads.append(tree_unflatten(td, [
                cts[n] if n in cts else zeros(shape_of(x), x.dtype)
                for x, n in zip(leaves, nodes)]))
        return grads[0] if single else tuple(grads)

    return out_primals, out_tree, aux, backward


def _lower_all(tree, main):
    """aux leaves computed from our tracers come out as their primal values."""
    def lower(x):
        while isinstance(x, ReverseTracer) and x._trace.main is main:
            x = x.primal
        return x
    return tree_map(lower, tree)


def _check_output_dtype(name, out, holomorphic):
    """As JAX: a complex output needs holomorphic=True, which needs one."""
    kind = np.dtype(out.dtype).kind
    if holomorphic and kind != "c":
        raise TypeError(f"{name} with holomorphic=True: the function returns {out.dtype}; "
                        f"a holomorphic derivative needs complex outputs, as in JAX. Drop "
                        f"holomorphic=True for a real-valued function")
    if kind == "c" and not holomorphic:
        raise TypeError(f"{name}: the function returns a complex value ({out.dtype}); "
                        f"as in JAX, this needs real outputs. For a holomorphic function "
                        f"pass holomorphic=True; otherwise differentiate a real value made "
                        f"from it (gnp.abs, gnp.real), or use gpuprop.vjp with a cotangent "
                        f"of your choice")


def _scalar_output(name, out_primals, out_tree, holomorphic):
    if len(out_primals) != 1 or out_tree.kind is not None:
        raise TypeError(f"{name}: the function must return a single scalar, got a "
                        f"{out_tree} pytree; use gpuprop.vjp or gpuprop.jacobian for "
                        f"non-scalar outputs (or has_aux=True to return extra data)")
    out = out_primals[0]
    shape = shape_of(out)
    _check_output_dtype(name, out, holomorphic)
    if shape != () or not inexact(out):
        raise TypeError(f"{name}: the function must return a scalar (shape ()) of a "
                        f"floating dtype, got shape {shape} and dtype {out.dtype}; "
                        f"reduce it (e.g. gnp.sum or gnp.mean), or use gpuprop.vjp / "
                        f"gpuprop.jacobian for non-scalar outputs")
    return out


def _with_kwargs(f, kwargs):
    """f with keyword arguments bound: they pass through, not differentiated."""
    return functools.partial(f, **kwargs) if kwargs else f


def value_and_grad(f, argnums=0, has_aux=False, holomorphic=False):
    """f -> (x -> (f(x), df/dx)) for a scalar-valued f.  With has_aux, f
    returns (value, aux) and the result is ((value, aux), grad).  Keyword
    arguments go to f and are not differentiated, as in JAX.

    Complex numbers follow JAX: for a real f of complex z = x + iy the
    gradient is df/dx - i df/dy (the conjugate of the steepest ascent: step
    along its conjugate); with holomorphic=True, for a complex f of complex
    inputs, it is the complex derivative f'(z)."""
    name = f"value_and_grad({getattr(f, '__name__', 'f')})"

    def vg(*args, **kwargs):
        outs, out_tree, aux, backward = _vjp(name, _with_kwargs(f, kwargs), args, argnums,
                                             has_aux, True, holomorphic)
        out = _scalar_output(name, outs, out_tree, holomorphic)
        g = backward([ones((), out.dtype)])
        return ((out, aux) if has_aux else out), g

    return vg


def grad(f, argnums=0, has_aux=False, holomorphic=False):
    """f -> df/dx for a scalar-valued f; argnums picks the argument(s) (an int
    or a tuple); the gradient mirrors the argument's pytree and dtype.
    holomorphic=True: f'(z) of a complex f of complex inputs (see value_and_grad)."""
    vg = value_and_grad(f, argnums, has_aux, holomorphic)

    def g(*args, **kwargs):
        (value, g_) = vg(*args, **kwargs)
        return (g_, value[1]) if has_aux else g_

    g.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    return g


def vjp(f, *primals, has_aux=False, **kwargs):
    """(f(*primals), vjp_fn): vjp_fn(cotangent of the output) gives a tuple of
    cotangents, one per primal.  vjp_fn may be called any number of times.
    Keyword arguments go to f and are not differentiated."""
    name = f"vjp({getattr(f, '__name__', 'f')})"
    outs, out_tree, aux, backward = _vjp(name, _with_kwargs(f, kwargs), primals,
                                         tuple(range(len(primals))), has_aux, False)

    def vjp_fn(ct):
        cts, ct_tree = tree_flatten(ct)
        if ct_tree != out_tree:
            raise ValueError(f"{name}: the cotangent's structure {ct_tree} differs from "
                             f"the output's {out_tree}")
        for c, o in zip(cts, outs):
            if shape_of(c) != shape_of(o):
                raise ValueError(f"{name}: cotangent of shape {shape_of(c)} for an "
                                 f"output of shape {shape_of(o)}")
        # a Python number as cotangent: an array of its output's dtype
        return backward([backend.current().from_host(np.asarray(c, o.dtype))
                         if type(c) in backend.PY_SCALARS else c for c, o in zip(cts, outs)])

    out = tree_unflatten(out_tree, outs)
    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def jacrev(f, argnums=0, has_aux=False, holomorphic=False):
    """Reverse-mode Jacobian: for each output leaf of shape S and input leaf of
    shape T, an array of shape S + T (one backward pass per output element).
    With has_aux, f returns (output, aux) and jacrev returns (jacobian, aux).
    Complex outputs need holomorphic=True (complex inputs and outputs: the
    Jacobian of complex derivatives), as in JAX."""
    name = f"jacrev({getattr(f, '__name__', 'f')})"

    def jac(*args):
        outs, out_tree, aux, backward = _vjp(name, f, args, argnums, has_aux, False,
                                             holomorphic)
        rows_per_out = []
        for k, o in enumerate(outs):
            _check_output_dtype(name, o, holomorphic)
            size = size_of(shape_of(o))
            rows = []
            for j in range(size):
                cts = [zeros(shape_of(p), p.dtype) for p in outs]
                basis = np.zeros(size, np.dtype(o.dtype))
                basis[j] = 1
                cts[k] = backend.current().from_host(basis.reshape(shape_of(o)))
                rows.append(backward(cts))
            rows_per_out.append((o, rows))

        def assemble(o, rows):
            def leafwise(*gs):
                shape = shape_of(o) + shape_of(gs[0]) if gs else shape_of(o)
                return reshape(stack(gs), shape) if gs else zeros(shape, o.dtype)
            return tree_map(leafwise, *rows) if rows else _empty_like_grad(o, args, argnums)

        result = tree_unflatten(out_tree, [assemble(o, rows) for o, rows in rows_per_out])
        return (result, aux) if has_aux else result

    return jac


jacobian = jacrev


def _empty_like_grad(o, args, argnums):
    nums = (argnums,) if isinstance(argnums, int) else argnums
    grads = tuple(tree_map(lambda x: zeros(shape_of(o) + shape_of(x), x.dtype), args[i])
                  for i in nums)
    return grads[0] if isinstance(argnums, int) else grads



class custom_vjp:
    """A function with a derivative rule of its own, as in JAX:

        @custom_vjp
        def f(x): ...
        def f_fwd(x): return f(x), residuals
        def f_bwd(residuals, g): return (cotangent_of_x,)
        f.defvjp(f_fwd, f_bwd)

    f returns one array; f_bwd returns a tuple with a cotangent per argument."""

    def __init__(self, fun):
        self.fun, self.fwd, self.bwd = fun, None, None
        self.__name__ = getattr(fun, "__name__", "custom_vjp")
        self.__doc__ = fun.__doc__

    def defvjp(self, fwd, bwd):
        self.fwd, self.bwd = fwd, bwd
        return self

    def __call__(self, *args):
        if self.fwd is None:
            raise TypeError(f"custom_vjp {self.__name__}: call defvjp(fwd, bwd) first")
        return core.call_at_top(args, self.fun, "process_custom_vjp", self.fwd, self.bwd)


def checkpoint(f, *, static_argnums=()):
    """f with the same values and derivatives, whose reverse-mode derivative
    keeps only f's inputs and recomputes f's intermediates in the backward
    pass (jax.checkpoint, alias remat): memory for compute, e.g. around each
    layer of a deep network.  f returns one array; static_argnums name
    arguments passed through untraced (Python values)."""
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    name = getattr(f, "__name__", "f")

    def wrapped(*args):
        n = len(args)
        fixed = {i % n: args[i % n] for i in static}
        dyn = tuple(a for i, a in enumerate(args) if i not in fixed)
        leaves, tree = tree_flatten(dyn)

        def flat(*xs):
            it = iter(tree_unflatten(tree, list(xs)))
            out = f(*[fixed[i] if i in fixed else next(it) for i in range(n)])
            if not hasattr(out, "shape"):
                raise TypeError(f"checkpoint({name}): the function must return one array, "
                                f"got {type(out).__name__}; checkpoint the computation of "
                                f"each output separately")
            return out
        return core.call_at_top(leaves, flat, "process_checkpoint")

    wrapped.__name__ = f"checkpoint({name})"
    return wrapped


remat = checkpoint
