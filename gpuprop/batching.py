"""vmap: the batching trace.

A `BatchTracer` holds a value with one more axis than the function sees, the
batch axis `dim` (an int; values without one are not traced).  Each
primitive's batching rule computes the whole batch at once, so the function
written for one example runs on all of them with no loop; the rules bind
primitives, so vmap composes with grad, jvp, jit and itself.
"""
import numpy as np

from . import core
from .autodiff import custom_vjp
from .core import ShapedArray, Trace, Tracer, TracerControlFlowError, bind, new_main, shape_of
from .forward import custom_jvp
from .numpy import _base
from .tree import tree_flatten, tree_unflatten


class BatchTracer(Tracer):
    __slots__ = ("val", "dim")

    def __init__(self, trace, val, dim):
        self._trace = trace
        self.val = val
        self.dim = dim

    @property
    def aval(self):
        s = shape_of(self.val)
        return ShapedArray(s[:self.dim] + s[self.dim + 1:], self.val.dtype)

    dtype = property(lambda self: self.val.dtype)


class BatchTrace(Trace):
    name = "vmap"

    def pure(self, val):
        return val      # unbatched values are not traced

    lift = pure

    def _split(self, args):
        vals, dims = [], []
        for a in args:
            if type(a) is BatchTracer and a._trace.main is self.main:
                vals.append(a.val)
                dims.append(a.dim)
            else:
                vals.append(a)
                dims.append(None)
        return vals, dims

    def full_raise(self, val):
        if type(val) is BatchTracer and val._trace.main is self.main:
            return val
        if isinstance(val, Tracer) and not (val._trace.main.alive
                                            and val._trace.main.level < self.main.level):
            raise core.leaked(val)
        return val

    def process_primitive(self, prim, args, params):
        vals, dims = self._split(args)
        if all(d is None for d in dims):
            return bind(prim, vals, params)
        if prim.batch is None:
            raise NotImplementedError(f"vmap: gnp.{prim.name} has no batching rule")
        out, dim = prim.batch(prim, vals, dims, **params)
        if prim.multiple_results:
            return [o if d is None else BatchTracer(self, o, d) for o, d in zip(out, dim)]
        return out if dim is None else BatchTracer(self, out, dim)

    def _batched_all(self, tracers):
        return _base.all_batched(*self._split(tracers))

    def process_custom_vjp(self, fun, fwd, bwd, tracers):
        """fun, fwd and bwd all mapped over the batch; every argument batched,
        so each cotangent has the batch axis where its argument has it."""
        batched = custom_vjp(vmap(fun))
        batched.defvjp(vmap(fwd), vmap(bwd))
        return BatchTracer(self, batched(*self._batched_all(tracers)), 0)

    def process_custom_jvp(self, fun, rule, tracers):
        batched = custom_jvp(vmap(fun))
        batched.defjvp(vmap(rule))
        return BatchTracer(self, batched(*self._batched_all(tracers)), 0)

    @staticmethod
    def concrete(tracer, why):
        raise TracerControlFlowError(
            f"vmap: {why} needs one Python value of a batched array {tracer.aval}, which "
            f"holds a value per example; select per example with gnp.where (or "
            f"gpuprop.lax.cond) instead of Python control flow")


def vmap(f, in_axes=0, out_axes=0, axis_size=None):
    """f mapped over an axis of its arguments, as jax.vmap: the result is
    f applied to each example, stacked along `out_axes`, computed by one
    call of each batched primitive (no loop over the examples).

    in_axes: an int (the axis of every array argument), None (not mapped),
    or a tuple with one entry per positional argument, each an int, None or a
    pytree prefix of that argument; negative axes count from the end.
    out_axes likewise for the outputs (an output that does not depend on the
    mapped arguments is broadcast along its axis).  axis_size is needed only
    when no argument is mapped."""
    name = f"vmap({getattr(f, '__name__', 'f')})"

    def batched(*args):
        leaves, in_tree = tree_flatten(args)
        axes = _flat_axes(name, "in_axes", in_axes, args, per_argument=True)
        axes = [_normalize(name, "in_axes", a, len(shape_of(x)), f"argument leaf {k}")
                if a is not None else None for k, (a, x) in enumerate(zip(axes, leaves))]
        sizes = {k: shape_of(x)[a] for k, (a, x) in enumerate(zip(axes, leaves))
                 if a is not None}
        size = _size(name, sizes, axis_size)
        with new_main(BatchTrace, size) as main:
            trace = main.trace
            tracers = [BatchTracer(trace, x, a) if a is not None else x
                       for x, a in zip(leaves, axes)]
            out = f(*tree_unflatten(in_tree, tracers))
            out_leaves, out_tree = tree_flatten(out)
            pairs = [(o.val, o.dim) if type(o) is BatchTracer and o._trace.main is main
                     else (o, None) for o in out_leaves]
        oaxes = _flat_axes(name, "out_axes", out_axes, out, per_argument=False)
        return tree_unflatten(out_tree, [_place(name, v, d, a, size)
                                         for (v, d), a in zip(pairs, oaxes)])

    batched.__name__ = name
    return batched


def _size(name, sizes, axis_size):
    found = set(sizes.values())
    if len(found) > 1:
        listed = ", ".join(f"argument leaf {k}: {n}" for k, n in sizes.items())
        raise ValueError(f"{name}: the mapped axes have different sizes ({listed}); "
                         f"every mapped axis must have the same size")
    if axis_size is not None and found and found != {axis_size}:
        raise ValueError(f"{name}: axis_size={axis_size} but the mapped axes have size "
                         f"{found.pop()}")
    if not found and axis_size is None:
        raise ValueError(f"{name}: no argument is mapped (in_axes is None everywhere); "
                         f"pass axis_size to say how many examples to make")
    return found.pop() if found else int(axis_size)


def _normalize(name, which, axis, ndim, what):
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{name}: {which} entries must be int or None, got {axis!r} "
                        f"for {what}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: {which} {axis} is out of range for {what}, which has "
                         f"{ndim} dimension(s) (shape of the whole batch)")
    return int(axis) % ndim


def _place(name, val, dim, axis, size):
    """An output with its batch axis moved to `axis` (broadcast if unbatched)."""
    if axis is None:
        if dim is not None:
            raise ValueError(f"{name}: out_axes is None for an output that depends on the "
                             f"mapped arguments (it differs between examples)")
        return val
    if dim is None:
        val, dim = _base.with_batch(val, None, size), 0
    n = len(shape_of(val))
    axis = _normalize(name, "out_axes", axis, n, "an output")
    if axis == dim:
        return val
    order = [i for i in range(n) if i != dim]
    order.insert(axis, dim)
    return _base.transpose(val, tuple(order))


def _flat_axes(name, which, axes, tree, per_argument):
    """One axis (int or None) per leaf of `tree`, from `axes`: an int or None
    for all, or a pytree prefix of tree (for in_axes: a tuple with one entry
    per argument; a list is read as a tuple, as in JAX)."""
    if per_argument and isinstance(axes, list):
        axes = tuple(axes)
    return _prefix(name, which, axes, tree, "")


def _prefix(name, which, axes, tree, path):
    if axes is None or isinstance(axes, (int, np.integer)):
        return [axes] * len(tree_flatten(tree)[0])
    if isinstance(axes, (tuple, list)) and isinstance(tree, (tuple, list)) \
            and len(axes) == len(tree):
        return [a for i, (ax, t) in enumerate(zip(axes, tree))
                for a in _prefix(name, which, ax, t, f"{path}[{i}]")]
    if isinstance(axes, dict) and isinstance(tree, dict) and set(axes) == set(tree):
        return [a for k in sorted(tree)
                for a in _prefix(name, which, axes[k], tree[k], f"{path}[{k!r}]")]
    raise ValueError(f"{name}: {which}{path} = {axes!r} does not match the structure "
                     f"{tree_flatten(tree)[1]} of the {'arguments' if which == 'in_axes' else 'outputs'}"
                     f"{path}: give an int, None, or a prefix of that structure")
