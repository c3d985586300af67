"""Fusion of elementwise groups into one kernel: the `Fuser` a backend
brings (which equations it fuses, how it builds kernels), the grouping of a
program's elementwise equations, the C++ expression of each fusible primitive
(keyed by the primitive), and the kernel body shared by the CUDA kernels (a
CuPy ElementwiseKernel) and the CPU ones (a compiled C++ loop).

A group (group_elementwise) is a set of elementwise equations with one
output shape.  Its kernel reads the group's external inputs (broadcast to
that shape), computes every equation in registers, and writes the values
that are used outside the group.  The generated text is deterministic: the
same group always gives the same source, so compiled kernels are cached.
"""
import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core import size_of
from ..ir import Literal, Var
from ..numpy import _base, elementwise as ew


@dataclass(frozen=True)
class Fuser:
    """How a backend fuses elementwise groups into kernels.

    fusible(eqn) -> bool         whether an equation may join a kernel
    accepts(kernel) -> bool      whether a group becomes a kernel
    build(kernels) -> module     an object with one callable per kernel name
                                 (inputs [, output buffers] -> outputs), or
                                 None when building failed (nothing fuses)
    takes_out                    kernels take planned output buffers after
                                 their inputs (and may write over an input
                                 they read last at the same element)
    fuse_reductions              a sum takes the group that feeds it as its map
    """
    fusible: Callable
    accepts: Callable
    build: Callable
    takes_out: bool = False
    fuse_reductions: bool = False

C_TYPES = {"float32": "float", "float64": "double", "bool": "bool", "uint32": "unsigned int"}


def _cast(t, x):
    return f"(({t}){x})"


def _max(a, b):
    return f"(({a} != {a} || {a} > {b}) ? {a} : {b})"     # NaN propagates, as NumPy


def _min(a, b):
    return f"(({a} != {a} || {a} < {b}) ? {a} : {b})"


def _bitwise(op, logical):
    """On bool operands (NumPy's & | ^ of masks) the logical operator."""
    return lambda T, x, y: f"({x} {logical if T == 'bool' else op} {y})"


def _shift(op):
    """NumPy: a shift by the width or more gives 0 (in C++ it is undefined)."""
    return lambda T, x, y: f"(({y}) < sizeof({T}) * 8 ? ({T})({x} {op} {y}) : ({T})0)"


def _fn(name):
    return lambda T, x: f"{name}({x})"


def _infix(op):
    return lambda T, x, y: f"({x} {op} {y})"


# the C++ function of one argument computing each primitive (rint rounds
# half to even in the default rounding mode, as NumPy)
_C_FUNCTIONS = {
    ew.exp_p: "exp", ew.log_p: "log", ew.log1p_p: "log1p", ew.expm1_p: "expm1",
    ew.sqrt_p: "sqrt", ew.sin_p: "sin", ew.cos_p: "cos", ew.tanh_p: "tanh", ew.abs_p: "fabs",
    ew.tan_p: "tan", ew.arcsin_p: "asin", ew.arccos_p: "acos", ew.arctan_p: "atan",
    ew.sinh_p: "sinh", ew.cosh_p: "cosh", ew.arcsinh_p: "asinh", ew.arccosh_p: "acosh",
    ew.arctanh_p: "atanh", ew.log2_p: "log2", ew.log10_p: "log10", ew.exp2_p: "exp2",
    ew.floor_p: "floor", ew.ceil_p: "ceil", ew.rint_p: "rint"}
# primitive -> (operand cast rule, expression of the cast operands)
# cast rules: "out" casts operands to the result type; "common" to their
# promoted type (comparisons); "bool" to bool; "none" leaves them; "branches"
# casts all but the first (where's condition).
EXPRESSIONS = {
    ew.add_p: ("out", _infix("+")),
    ew.subtract_p: ("out", _infix("-")),
    ew.multiply_p: ("out", _infix("*")),
    ew.divide_p: ("out", _infix("/")),
    ew.negative_p: ("out", lambda T, x: f"(-{x})"),
    ew.power_p: ("out", lambda T, x, y: f"pow({x}, {y})"),
    **{prim: ("out", _fn(c)) for prim, c in _C_FUNCTIONS.items()},
    ew.arctan2_p: ("out", lambda T, y, x: f"atan2({y}, {x})"),
    ew.hypot_p: ("out", lambda T, x, y: f"hypot({x}, {y})"),
    ew.logistic_p: ("out", lambda T, x: f"(tanh({x} * ({T})0.5) * ({T})0.5 + ({T})0.5)"),
    # NumPy: sign(-0.0) is +0.0, sign(nan) is nan
    ew.sign_p: ("out", lambda T, x: f"(({x} > 0) ? ({T})1 : (({x} < 0) ? ({T})-1 : "
                                    f"(({x} == 0) ? ({T})0 : {x})))"),
    ew.maximum_p: ("out", lambda T, x, y: _max(x, y)),
    ew.minimum_p: ("out", lambda T, x, y: _min(x, y)),
    ew.clip_p: ("out", lambda T, x, lo, hi: _min(_max(x, lo), hi)),
    ew.where_p: ("branches", lambda T, c, x, y: f"({c} ? {x} : {y})"),
    ew.greater_p: ("common", _infix(">")),
    ew.greater_equal_p: ("common", _infix(">=")),
    ew.less_p: ("common", _infix("<")),
    ew.less_equal_p: ("common", _infix("<=")),
    ew.equal_p: ("common", _infix("==")),
    ew.not_equal_p: ("common", _infix("!=")),
    ew.logical_and_p: ("bool", _infix("&&")),
    ew.logical_or_p: ("bool", _infix("||")),
    ew.logical_not_p: ("bool", lambda T, x: f"(!{x})"),
    ew.isfinite_p: ("none", _fn("isfinite")),
    ew.isnan_p: ("none", _fn("isnan")),
    ew.bitwise_and_p: ("out", _bitwise("&", "&&")),
    ew.bitwise_or_p: ("out", _bitwise("|", "||")),
    ew.bitwise_xor_p: ("out", _bitwise("^", "!=")),
    ew.left_shift_p: ("out", _shift("<<")),
    ew.right_shift_p: ("out", _shift(">>")),      # logical: on unsigned types only
    ew.invert_p: ("out", lambda T, x: f"(!{x})" if T == "bool" else f"(({T})~{x})"),
    ew.astype_p: ("none", lambda T, x: _cast(T, x)),
    ew.stop_gradient_p: ("out", lambda T, x: x),
    _base.broadcast_to_p: ("out", lambda T, x: x),
}
# the primitives whose expressions are exact on unsigned integers (C++
# unsigned arithmetic wraps as NumPy's does); the others (pow, libm
# functions, fabs...) compute in floating point and stay NumPy's
UNSIGNED = frozenset([
    ew.add_p, ew.subtract_p, ew.multiply_p, ew.negative_p, ew.maximum_p, ew.minimum_p,
    ew.clip_p, ew.where_p, ew.greater_p, ew.greater_equal_p, ew.less_p, ew.less_equal_p,
    ew.equal_p, ew.not_equal_p, ew.bitwise_and_p, ew.bitwise_or_p, ew.bitwise_xor_p,
    ew.left_shift_p, ew.right_shift_p, ew.invert_p, ew.astype_p, ew.stop_gradient_p,
    _base.broadcast_to_p])
# computed by libm, whose last bit may differ from NumPy's own loops
TRANSCENDENTAL = frozenset([
    ew.power_p, ew.exp_p, ew.log_p, ew.log1p_p, ew.expm1_p, ew.sin_p, ew.cos_p, ew.tanh_p,
    ew.logistic_p, ew.tan_p, ew.arcsin_p, ew.arccos_p, ew.arctan_p, ew.arctan2_p, ew.sinh_p,
    ew.cosh_p, ew.arcsinh_p, ew.arccosh_p, ew.arctanh_p, ew.log2_p, ew.log10_p, ew.exp2_p,
    ew.hypot_p])


def _promoted(e):
    """The promoted dtype of e's operands, Python-scalar literals weakly."""
    return np.result_type(*[v.value if isinstance(v, Literal) else v.aval.dtype
                            for v in e.inputs])


def fusible(e):
    """Whether equation e can be computed inside a fused kernel."""
    if e.prim not in EXPRESSIONS:
        return False
    dts = [e.out.aval.dtype] + [v.aval.dtype for v in e.inputs if not isinstance(v, Literal)]
    try:        # a bool array against an int literal promotes to an integer
        dts.append(_promoted(e))
    except (TypeError, ValueError, OverflowError):
        return False
    if not all(dt.name in C_TYPES for dt in dts):
        return False
    return e.prim in UNSIGNED or all(dt.kind != "u" for dt in dts)


def _literal(x, T):
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    x = float(x)
    if x != x:
        return f"(({T})(0.0 / 0.0))"
    if x in (np.inf, -np.inf):
        return f"(({T})({'-' if x < 0 else ''}1.0 / 0.0))"
    return f"(({T}){x!r})"


class Kernel:
    """One fused group: its inputs, outputs, and kernel body."""

    def __init__(self, eqns, used_outside):
        self.eqns = eqns
        self.shape = eqns[0].out.aval.shape
        self.inputs = list(dict.fromkeys(_inputs(eqns)))
        self.outputs = [e.out for e in eqns if e.out in used_outside]
        self.body = self._body()
        self.name = "gpuprop_" + hashlib.sha1(self.signature().encode()).hexdigest()[:12]

    def _body(self):
        names = {v: f"in{i}" for i, v in enumerate(self.inputs)}
        lines = []
        for k, e in enumerate(self.eqns):
            T = C_TYPES[e.out.aval.dtype.name]
            rule, expr = EXPRESSIONS[e.prim]
            common = C_TYPES[_promoted(e).name]
            ops = []
            for j, v in enumerate(e.inputs):
                target = {"out": T, "common": common, "bool": "bool", "none": None,
                          "branches": None if j == 0 else T}[rule]
                if isinstance(v, Literal):
                    ops.append(_literal(v.value, target or common))
                elif target is None or C_TYPES[v.aval.dtype.name] == target:
                    ops.append(names[v])
                else:
                    ops.append(_cast(target, names[v]))
            names[e.out] = f"t{k}"
            lines.append(f"{T} t{k} = {expr(T, *ops)};")
        for i, v in enumerate(self.outputs):
            lines.append(f"out{i} = {names[v]};")
        return "\n".join(lines)

    def signature(self):
        """What the generated code depends on: dtypes, shapes (the broadcast
        indexing and loop bounds of cuda_source/cpp_function) and the body; two
        groups with the same body but other shapes must not share a name."""
        ins = ", ".join(f"{v.aval.dtype.name}{list(v.aval.shape)} in{i}"
                        for i, v in enumerate(self.inputs))
        outs = ", ".join(f"{v.aval.dtype.name} out{i}" for i, v in enumerate(self.outputs))
        return f"{list(self.shape)}: ({ins}) -> ({outs})\n{self.body}"

    # ---- CUDA: a CuPy ElementwiseKernel ----------------------------------
    def cuda_params(self):
        """(in_params, out_params, operation, name) for cupy.ElementwiseKernel."""
        ins = ", ".join(f"{v.aval.dtype.name} in{i}" for i, v in enumerate(self.inputs))
        outs = ", ".join(f"{v.aval.dtype.name} out{i}" for i, v in enumerate(self.outputs))
        return ins, outs, self.body, self.name

    def cuda_source(self):
        """A standalone CUDA translation unit of the same kernel, for nvcc checks
        and golden tests (CuPy generates the equivalent wrapper itself)."""
        params = [f"const {C_TYPES[v.aval.dtype.name]}* __restrict__ p_in{i}"
                  for i, v in enumerate(self.inputs)]
        params += [f"{C_TYPES[v.aval.dtype.name]}* __restrict__ p_out{i}"
                   for i, v in enumerate(self.outputs)]
        return (f'extern "C" __global__ void {self.name}({", ".join(params)}, long long n) {{\n'
                f"  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
                f"  if (i >= n) return;\n" + self._loads_and_stores("  ") + "}\n")

    # ---- CPU: a C++ loop ----------------------------------------------------
    def cpp_function(self):
        """A C++ function `void name(char** ins, char** outs)` over the group's
        elements; inputs are C-contiguous with their own (broadcast) shapes."""
        return (f"static void {self.name}(char** ins, char** outs) {{\n"
                f"  const long long n = {size_of(self.shape)}LL;\n"
                + "".join(f"  const {C_TYPES[v.aval.dtype.name]}* p_in{i} = "
                          f"(const {C_TYPES[v.aval.dtype.name]}*)ins[{i}];\n"
                          for i, v in enumerate(self.inputs))
                + "".join(f"  {C_TYPES[v.aval.dtype.name]}* p_out{i} = "
                          f"({C_TYPES[v.aval.dtype.name]}*)outs[{i}];\n"
                          for i, v in enumerate(self.outputs))
                + "  for (long long i = 0; i < n; ++i) {\n"
                + self._loads_and_stores("    ") + "  }\n}\n")

    def _loads_and_stores(self, pad):
        lines = [f"const {C_TYPES[v.aval.dtype.name]} in{i} = p_in{i}[{self._index(v.aval.shape)}];"
                 for i, v in enumerate(self.inputs)]
        lines += [f"{C_TYPES[v.aval.dtype.name]} out{i};" for i, v in enumerate(self.outputs)]
        lines += self.body.split("\n")
        lines += [f"p_out{i}[i] = out{i};" for i in range(len(self.outputs))]
        return "".join(pad + line + "\n" for line in lines)

    def _index(self, shape):
        """The flat index into an input of `shape` broadcast to the group's shape."""
        S = self.shape
        if tuple(shape) == tuple(S):
            return "i"
        if size_of(shape) == 1:
            return "0"
        shape = (1,) * (len(S) - len(shape)) + tuple(shape)
        terms, stride = [], 1
        for d in reversed(range(len(S))):
            if shape[d] != 1:
                inner = size_of(S[d + 1:])
                term = f"(i / {inner}LL)" if inner != 1 else "i"
                if d > 0:
                    term = f"({term} % {S[d]}LL)"
                terms.append(f"{term} * {stride}LL" if stride != 1 else term)
                stride *= shape[d]
        return " + ".join(reversed(terms))


def exact(e):
    """Fusible and computed exactly as NumPy does (IEEE arithmetic, no libm
    function whose last bit could differ from NumPy's own loops)."""
    return fusible(e) and e.prim not in TRANSCENDENTAL


class ReduceKernel(Kernel):
    """A group whose one result feeds only a sum: the group's body becomes the
    map of a cupy.ReductionKernel, so the elementwise values never reach memory."""

    def __init__(self, eqns, reduction):
        self.reduction = reduction      # the sum equation
        super().__init__(eqns, {reduction.inputs[0]})
        self.outputs = [reduction.out]      # the map's value stays in registers
        self.name = "gpuprop_" + hashlib.sha1(self.signature().encode()).hexdigest()[:12]

    def signature(self):
        return f"{super().signature()}\nsum{self.reduction.params}"

    def device_function(self):
        """The group as a __device__ function of its inputs (the map)."""
        T = C_TYPES[self.reduction.out.aval.dtype.name]
        params = ", ".join(f"{C_TYPES[v.aval.dtype.name]} in{i}"
                           for i, v in enumerate(self.inputs))
        body = "".join(f"  {line}\n" for line in self.body.split("\n"))
        return (f"__device__ {T} {self.name}_map({params}) {{\n  {T} out0;\n"
                f"{body}  return out0;\n}}\n")

    def cuda_params(self):
        """Keyword arguments of cupy.ReductionKernel."""
        T = self.reduction.out.aval.dtype.name
        ins = ", ".join(f"{v.aval.dtype.name} in{i}" for i, v in enumerate(self.inputs))
        args = ", ".join(f"in{i}" for i in range(len(self.inputs)))
        return dict(in_params=ins, out_params=f"{T} out0",
                    map_expr=f"{self.name}_map({args})", reduce_expr="a + b",
                    post_map_expr="out0 = a", identity="0", name=self.name,
                    reduce_type=C_TYPES[T], preamble=self.device_function())

    def cuda_source(self):
        return self.device_function()


def group_elementwise(prog, fusible):
    """Partition the equations into steps: a single equation, or a group of
    elementwise equations (`fusible(eqn)`) with one output shape, run together
    at the place of the group's first equation.  An equation joins the latest
    group of its shape whose start already has all of its inputs available."""
    steps = []              # each: list of Eqn
    shape_groups = {}       # shape -> [step index of groups with that shape]
    where = {}              # Var -> step index that produces it
    for e in prog.eqns:
        if fusible(e):
            produced = [where.get(v, -1) for v in e.inputs if isinstance(v, Var)]
            for gi in reversed(shape_groups.get(e.out.aval.shape, [])):
                if all(p <= gi for p in produced):
                    steps[gi].append(e)
                    where[e.out] = gi
                    break
            else:
                shape_groups.setdefault(e.out.aval.shape, []).append(len(steps))
                where[e.out] = len(steps)
                steps.append([e])
        else:
            where.update((o, len(steps)) for o in e.outs)
            steps.append([e])
    return steps


def kernels(prog, predicate=fusible, reductions=False):
    """The groups of equations satisfying `predicate` (two or more), as
    Kernels, with the step list they belong to: [(eqns, Kernel | None)].
    With `reductions`, a group whose only result feeds only a sum is merged
    with it into a ReduceKernel (the sum's step disappears)."""
    steps = group_elementwise(prog, predicate)
    owner = {e.out: i for i, step in enumerate(steps) for e in step}
    outside = {v for i, step in enumerate(steps) for e in step for v in e.inputs
               if not isinstance(v, Literal) and owner.get(v, -1) != i}
    outside |= {v for v in prog.outvars if not isinstance(v, Literal)}
    out = [(step, Kernel(step, outside) if len(step) > 1 else None) for step in steps]
    return _merge_reductions(prog, out) if reductions else out


def _merge_reductions(prog, steps):
    """Give each group result that only a sum reads to that sum, as its map.
    The group's other results keep a kernel of their own (equations both
    need are computed in both: cheaper than a round trip through memory)."""
    readers = {}
    for e in prog.eqns:
        for v in e.inputs:
            if not isinstance(v, Literal):
                readers.setdefault(v, []).append(e)
    outputs = {v for v in prog.outvars if not isinstance(v, Literal)}
    merged, dropped = [], set()
    for eqns, k in steps:
        target = None if k is None else next(
            (v for v in k.outputs if v not in outputs and len(readers.get(v, ())) == 1
             and readers[v][0].prim is _base.sum_p
             and readers[v][0].out.aval.dtype == v.aval.dtype
             and _broadcast_shape(_inputs(_slice(eqns, [v]))) == k.shape), None)
        if target is None:
            merged.append((eqns, k))
            continue
        rest = _slice(eqns, [v for v in k.outputs if v is not target])
        if rest:
            merged.append((rest, Kernel(rest, set(k.outputs) - {target}) if len(rest) > 1
                           else None))
        reduction = readers[target][0]
        merged.append((_slice(eqns, [target]) + [reduction],
                       ReduceKernel(_slice(eqns, [target]), reduction)))
        dropped.add(reduction.out)
    return [(eqns, k) for eqns, k in merged
            if not (k is None and len(eqns) == 1 and eqns[0].out in dropped)]


def _slice(eqns, targets):
    """The equations of a group that the values `targets` depend on, in order."""
    need, made = set(targets), {e.out: e for e in eqns}
    for e in reversed(eqns):
        if e.out in need:
            need.update(v for v in e.inputs if v in made)
    return [e for e in eqns if e.out in need]


def _inputs(eqns):
    inside = {e.out for e in eqns}
    return [v for e in eqns for v in e.inputs if not isinstance(v, Literal) and v not in inside]


def _broadcast_shape(vs):
    """The shape the inputs broadcast to (a ReductionKernel's iteration space)."""
    return tuple(np.broadcast_shapes(*[v.aval.shape for v in vs])) if vs else None
