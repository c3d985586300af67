"""Staging: the trace that records a function as a Program (jit, make_ir,
linearize, and the sub-programs of gpuprop.lax).

A `StagingTracer` carries only a variable (shape and dtype); each primitive
applied to one appends an equation.  Arrays the function captures become
constants of the program; a tracer of an enclosing transform that it
captures (a sub-program traced under grad, say) becomes an extra input
(`stage_with_captures`), which the caller passes along with the arguments.
"""
import inspect

import numpy as np

from . import backend, core
from .backend import PY_SCALARS
from .compile.passes import optimize
from .core import ShapedArray, Trace, Tracer, TracerControlFlowError, new_main
from .ir import Eqn, Literal, Program, Var
from .tree import tree_flatten, tree_map


class StagingTracer(Tracer):
    __slots__ = ("var",)

    def __init__(self, trace, var):
        self._trace = trace
        self.var = var

    @property
    def aval(self):
        return self.var.aval

    shape = property(lambda self: core.shape_of(self.var.aval))
    dtype = property(lambda self: self.var.aval.dtype if isinstance(self.var.aval, ShapedArray)
                     else np.result_type(self.var.aval))


class _Builder:
    def __init__(self, capture=False):
        self.eqns = []
        self.consts = {}        # id(value) -> (Var, value)
        self.capture = capture  # tracers of enclosing transforms become inputs
        self.captured = {}      # id(tracer) -> (Var, tracer)


class StagingTrace(Trace):
    name = "jit"

    def pure(self, val):
        if type(val) in PY_SCALARS:
            return StagingTracer(self, Literal(val))
        data = self.main.data
        if isinstance(val, Tracer) and data.capture:
            hit = data.captured.get(id(val))
            if hit is None:
                hit = data.captured[id(val)] = (Var(val.aval), val)
            return StagingTracer(self, hit[0])
        be = backend.current()
        if not (type(val) in be.ok_types or isinstance(val, be.array_types)):
            raise backend.mismatch("jit (a constant captured by the function)", val, be)
        consts = self.main.data.consts
        hit = consts.get(id(val))
        if hit is None:
            hit = consts[id(val)] = (Var(ShapedArray(val.shape, val.dtype)), val)
        return StagingTracer(self, hit[0])

    lift = pure

    def process_primitive(self, prim, args, params):
        ins = [self.full_raise(a).var for a in args]
        out_aval = prim.abstract_eval(*[v.aval for v in ins], **params)
        deps = frozenset().union(*[v.deps for v in ins if isinstance(v, Var)])
        if prim.multiple_results:
            outs = tuple(Var(a, deps) for a in out_aval)
            self.main.data.eqns.append(Eqn(prim, ins, params, outs))
            return [StagingTracer(self, o) for o in outs]
        out = Var(out_aval, deps)
        self.main.data.eqns.append(Eqn(prim, ins, params, out))
        return StagingTracer(self, out)

    @staticmethod
    def concrete(tracer, why):
        deps = sorted(getattr(tracer.var, "deps", ()))
        src = (f"depends on argument(s) {', '.join(deps)}" if deps else
               "is computed while tracing")
        raise TracerControlFlowError(
            f"jit: {why} needs the value of a traced array {tracer.aval}, which {src}; "
            f"under jit only shapes and dtypes are known while tracing. Mark the "
            f"argument static (jit(f, static_argnums=...) or static_argnames=...) "
            f"if its value decides the control flow, or use gnp.where to select values")


def arg_names(f, n):
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [names[i] if i < len(names) else f"args[{i}]" for i in range(n)]


def stage(f, args, kwargs, static_argnums=(), name=None):
    """Trace f on abstract values of (args, kwargs) into an optimised Program.
    Array leaves become inputs; Python scalars and static arguments are
    constants of the program.  Returns (program, output tree)."""
    prog, out_tree, _ = _stage(f, args, kwargs, static_argnums, name, _Builder())
    return prog, out_tree


def stage_with_captures(f, avals, name=None):
    """f traced on abstract values `avals` (a list of ShapedArray, one per
    positional argument) into an optimised Program whose inputs are those
    arguments, then one per tracer of an enclosing transform that f
    captures.  Returns (program, output tree, captured tracers)."""
    args = [ShapedArray(a.shape, a.dtype) for a in avals]
    return _stage(f, args, {}, (), name, _Builder(capture=True))


def _stage(f, args, kwargs, static_argnums, name, builder):
    name = name or getattr(f, "__name__", "f")
    names = arg_names(f, len(args))
    with new_main(StagingTrace, builder) as main:
        trace, invars = main.trace, []

        def to_tracer(label):
            def conv(x):
                if type(x) in PY_SCALARS:
                    return x
                v = Var(ShapedArray(x.shape, x.dtype), frozenset([label]))
                invars.append(v)
                return StagingTracer(trace, v)
            return conv

        targs = [a if i in static_argnums else tree_map(to_tracer(names[i]), a)
                 for i, a in enumerate(args)]
        # in sorted order, as tree_flatten orders a dict: the order of the leaves
        # Jitted passes to the compiled program
        tkwargs = {k: tree_map(to_tracer(k), kwargs[k]) for k in sorted(kwargs)}
        out = f(*targs, **tkwargs)
        out_leaves, out_tree = tree_flatten(out)
        outvars = [trace.full_raise(o).var for o in out_leaves]
    consts = {v: val for v, val in builder.consts.values()}
    captured = [t for _, t in builder.captured.values()]
    invars += [v for v, _ in builder.captured.values()]
    return optimize(Program(invars, consts, builder.eqns, outvars, name)), out_tree, captured
