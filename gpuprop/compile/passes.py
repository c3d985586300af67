"""Optimisation passes over a Program: peephole simplification, common
subexpression elimination and dead-code elimination.  Each returns a new
Program; ir.check holds before and after.  The identities used are facts
declared on the primitives (compose, is_identity, unit), so no pass knows
a primitive by name."""
from .. import backend
from ..ir import Eqn, Program, Var


def dce(prog):
    """Drop equations whose results are never used (and unused constants)."""
    live = {v for v in prog.outvars if isinstance(v, Var)}
    kept = []
    for e in reversed(prog.eqns):
        if any(o in live for o in e.outs):
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
            rename.update(zip(e.outs, hit))
            continue
        if k is not None:
            seen[k] = e.outs
        eqns.append(e)
    outvars = [rename.get(v, v) if isinstance(v, Var) else v for v in prog.outvars]
    return Program(prog.invars, prog.consts, eqns, outvars, prog.name)


def simplify(prog):
    """Peephole rewrites that the backward pass of a backward pass makes
    common: two calls of a primitive that compose into one (transpose of a
    transpose, reshape of a reshape), calls that are the identity, and
    products with a constant of ones (the folded cotangent of a sum).  Only
    exact ones: x * 1 == x bit for bit, where x + 0 is not (-0.0 + 0.0 is +0.0)."""
    made = {e.out: e for e in prog.eqns}
    rename, eqns = {}, []
    consts = {v: backend.to_host(val) for v, val in prog.consts.items()}

    def r(v):
        return rename.get(v, v) if isinstance(v, Var) else v

    for e in prog.eqns:
        e = Eqn(e.prim, [r(v) for v in e.inputs], e.params, e.out)
        prim, x = e.prim, e.inputs[0] if e.inputs else None
        inner = made.get(x) if isinstance(x, Var) else None
        if prim.compose is not None and inner is not None and inner.prim is prim:
            x = inner.inputs[0]
            e = Eqn(prim, [x], prim.compose(inner.params, e.params), e.out)
        if (prim.is_identity is not None and isinstance(x, Var) and x.aval == e.out.aval
                and prim.is_identity(x.aval, **e.params)):
            rename[e.out] = x
            continue
        if prim.unit is not None:
            keep = _other_than_unit(e, consts)
            if isinstance(keep, Var) and keep.aval == e.out.aval:
                rename[e.out] = keep
                continue
        made[e.out] = e
        eqns.append(e)
    return Program(prog.invars, prog.consts, eqns, [r(v) for v in prog.outvars], prog.name)


def _other_than_unit(e, consts):
    """For a binary equation one of whose operands is a constant equal to its
    primitive's unit everywhere: the other operand (else None)."""
    a, b = e.inputs
    for me, other in ((a, b), (b, a)):
        val = consts.get(me) if isinstance(me, Var) else None
        if val is not None and val.dtype.kind in "fc" and bool((val == e.prim.unit).all()):
            return other
    return None


PASSES = (simplify, cse, dce)


def optimize(prog):
    """The program after every pass of PASSES, in order."""
    for run in PASSES:
        prog = run(prog)
    return prog


