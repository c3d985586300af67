"""The staged program: variables, equations, a printer, its meaning and its
invariants.

A `Program` is straight-line code: typed input variables, one `Eqn` per
primitive (inputs are variables or Python-scalar literals), and outputs.
Constants (arrays captured or folded while tracing) are variables bound to
values.  `eval_program` is the reference meaning of a program (every
executor must agree with it); `check` verifies what every pass must keep.
The passes themselves are in gpuprop/compile/passes.py.
"""
import numpy as np

from .core import ShapedArray, bind


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
    """One primitive applied: `out` is its Var, or a tuple of Vars for a
    primitive with multiple results (`outs` is always the tuple)."""
    __slots__ = ("prim", "inputs", "params", "out")

    def __init__(self, prim, inputs, params, out):
        self.prim, self.inputs, self.params, self.out = prim, inputs, params, out

    @property
    def outs(self):
        return self.out if self.prim.multiple_results else (self.out,)


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
        lines.append(f"    {' '.join(typed(o) for o in e.outs)} = {e.prim.name}"
                     f"{'[' + params + ']' if params else ''} "
                     f"{' '.join(name(v) for v in e.inputs)}")
    lines.append(f"  in ({', '.join(name(v) for v in prog.outvars)}) }}")
    return "\n".join(lines)


# ---- meaning and invariants ---------------------------------------------------
def eval_program(prog, *args):
    """The program's outputs for `args` (one per input variable), each
    equation bound in order: the reference that generated executors and
    fused kernels must match.  Under a transform it is traced like any
    function of gpuprop.numpy."""
    if len(args) != len(prog.invars):
        raise TypeError(f"eval_program({prog.name}): {len(prog.invars)} input(s) expected, "
                        f"got {len(args)}")
    env = dict(zip(prog.invars, args))
    env.update(prog.consts)

    def read(v):
        return v.value if isinstance(v, Literal) else env[v]
    for e in prog.eqns:
        out = bind(e.prim, tuple(map(read, e.inputs)), e.params)
        env.update(zip(e.outs, out) if e.prim.multiple_results else [(e.out, out)])
    return [read(v) for v in prog.outvars]


class ProgramError(ValueError):
    """A program that breaks an invariant of the IR (a bug in a pass or a rule)."""


def check(prog):
    """Raise ProgramError unless: every variable is assigned once, defined
    before it is used, and each equation's output has the shape and dtype
    that its primitive's shape rule gives; constants match their values."""
    defined = set()

    def define(v, what):
        if v in defined:
            raise ProgramError(f"{prog.name}: {what} {v} is assigned twice")
        defined.add(v)

    for v in prog.invars:
        define(v, "input")
    for v, val in prog.consts.items():
        define(v, "constant")
        if v.aval != ShapedArray(val.shape, val.dtype):
            raise ProgramError(f"{prog.name}: constant {v} holds a value of "
                               f"{ShapedArray(val.shape, val.dtype)}")
    for k, e in enumerate(prog.eqns):
        for v in e.inputs:
            if isinstance(v, Var) and v not in defined:
                raise ProgramError(f"{prog.name}: equation {k} ({e.prim.name}) reads {v} "
                                   f"before it is defined")
        want = e.prim.abstract_eval(*[v.aval for v in e.inputs], **e.params)
        got = [o.aval for o in e.outs]
        if (list(want) if e.prim.multiple_results else [want]) != got:
            raise ProgramError(f"{prog.name}: equation {k} ({e.prim.name}) has output "
                               f"{', '.join(map(str, got))}, its shape rule gives "
                               f"{', '.join(map(str, want)) if e.prim.multiple_results else want}")
        for o in e.outs:
            define(o, f"the output of equation {k} ({e.prim.name})")
    for v in prog.outvars:
        if isinstance(v, Var) and v not in defined:
            raise ProgramError(f"{prog.name}: output {v} is never defined")
    return prog
