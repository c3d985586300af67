"""The staged program: variables, equations, a printer, and the passes.

A `Program` is straight-line code: typed input variables, one `Eqn` per
primitive (inputs are variables or Python-scalar literals), and outputs.
Constants (arrays captured or folded while tracing) are variables bound to
values.  Passes: dead-code elimination, common-subexpression elimination, and
grouping of elementwise equations for fusion.
"""
import numpy as np

from . import backend


class Var:
    __slots__ = ("aval", "deps")

    def __init__(self, aval, deps=frozenset()):
        self.aval = aval
        self.deps = deps        # names of the arguments this value depends on

    def __repr__(self):
        return f"Var({self.aval})"


class Literal:
    """A Python scalar operand, kept as it is so NumPy's weak promotion applies."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    @property
    def aval(self):
        return self.value

    def __repr__(self):
        return repr(self.value)


class Eqn:
    __slots__ = ("prim", "inputs", "params", "out")

    def __init__(self, prim, inputs, params, out):
        self.prim, self.inputs, self.params, self.out = prim, inputs, params, out


class Program:
    def __init__(self, invars, consts, eqns, outvars, name="f"):
        self.invars = invars          # [Var]
        self.consts = consts          # {Var: array}
        self.eqns = eqns              # [Eqn]
        self.outvars = outvars        # [Var | Literal]
        self.name = name

    def __str__(self):
        return format_program(self)

    __repr__ = __str__


# ---- printing ---------------------------------------------------------------
def _names():
    """a, b, ..., z, ba, bb, ... as in jaxprs."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    n = 0
    while True:
        k, s = n, ""
        while True:
            s = letters[k % 26] + s
            k //= 26
            if k == 0:
                break
        yield s
        n += 1


def _fmt_param(v):
    return v.name if isinstance(v, np.dtype) else repr(v)


def format_program(prog):
    gen = _names()
    names = {}

    def name(v):
        if isinstance(v, Literal):
            return repr(v.value)
        if v not in names:
            names[v] = next(gen)
        return names[v]

    def typed(v):
        return f"{name(v)}:{v.aval}"

    consts = " ".join(typed(v) for v in prog.consts)
    head = "{ lambda " + (consts + " ; " if consts else "") + \
        " ".join(typed(v) for v in prog.invars) + ". let"
    lines = [head]
    for e in prog.eqns:
        params = ", ".join(f"{k}={_fmt_param(v)}" for k, v in e.params.items())
        lines.append(f"    {typed(e.out)} = {e.prim.name}"
                     f"{'[' + params + ']' if params else ''} "
                     f"{' '.join(name(v) for v in e.inputs)}")
    lines.append(f"  in ({', '.join(name(v) for v in prog.outvars)}) }}")
    return "\n".join(lines)


# ---- passes -----------------------------------------------------------------
def dce(prog):
    """Drop equations whose results are never used (and unused constants)."""
    live = {v for v in prog.outvars if isinstance(v, Var)}
    kept = []
    for e in reversed(prog.eqns):
        if e.out in live:
            kept.append(e)
            live.update(v for v in e.inputs if isinstance(v, Var))
    consts = {v: x for v, x in prog.consts.items() if v in live}
    return Program(prog.invars, consts, kept[::-1], prog.outvars, prog.name)


def _key(e, rename):
    ins = tuple(("v", id(rename.get(v, v))) if isinstance(v, Var)
                # repr tells -0.0 from 0.0 (x + 0.0 differs from x + -0.0)
                else ("l", type(v.value), repr(v.value)) for v in e.inputs)
    try:
        return (e.prim, ins, tuple(sorted(e.params.items())))
    except TypeError:     # unhashable parameter: never merged
        return None


def cse(prog):
    """Compute each (primitive, inputs, params) once."""
    seen, rename, eqns = {}, {}, []
    for e in prog.eqns:
        inputs = [rename.get(v, v) if isinstance(v, Var) else v for v in e.inputs]
        e = Eqn(e.prim, inputs, e.params, e.out)
        k = _key(e, rename)
        try:
            hit = seen.get(k) if k is not None else None
        except TypeError:
            hit, k = None, None
        if hit is not None:
            rename[e.out] = hit
            continue
        if k is not None:
            seen[k] = e.out
        eqns.append(e)
    outvars = [rename.get(v, v) if isinstance(v, Var) else v for v in prog.outvars]
    return Program(prog.invars, prog.consts, eqns, outvars, prog.name)


def simplify(prog):
    """Peephole rewrites that the backward pass of a backward pass makes
    common: transpose of a transpose, reshape of a reshape, and products with
    a constant of ones (the folded cotangent of a sum).  Only exact ones:
    x * 1 == x bit for bit, where x + 0 is not (-0.0 + 0.0 is +0.0)."""
    made = {e.out: e for e in prog.eqns}
    rename, eqns = {}, []
    ones = {v for v, val in prog.consts.items() if _all_ones(val)}

    def r(v):
        return rename.get(v, v) if isinstance(v, Var) else v

    for e in prog.eqns:
        e = Eqn(e.prim, [r(v) for v in e.inputs], e.params, e.out)
        name, x = e.prim.name, e.inputs[0] if e.inputs else None
        inner = made.get(x) if isinstance(x, Var) else None
        if name in ("transpose", "reshape") and inner is not None and inner.prim is e.prim:
            y = inner.inputs[0]
            if name == "transpose":
                axes = tuple(inner.params["axes"][a] for a in e.params["axes"])
                identity = axes == tuple(range(len(axes)))
                e = Eqn(e.prim, [y], {"axes": axes}, e.out)
            else:
                identity = y.aval.shape == e.out.aval.shape
                e = Eqn(e.prim, [y], e.params, e.out)
            if identity and y.aval == e.out.aval:
                rename[e.out] = y
                continue
        if name == "multiply":
            a, b = e.inputs
            keep = b if a in ones else a if b in ones else None
            if isinstance(keep, Var) and keep.aval == e.out.aval:
                rename[e.out] = keep
                continue
        made[e.out] = e
        eqns.append(e)
    return Program(prog.invars, prog.consts, eqns, [r(v) for v in prog.outvars], prog.name)


def _all_ones(val):
    host = backend.to_host(val)
    return host.dtype.kind in "fc" and bool((host == 1).all())


def optimize(prog):
    return dce(cse(simplify(prog)))


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
            where[e.out] = len(steps)
            steps.append([e])
    return steps
