"""gpuprop.lax: structured control flow, as jax.lax: cond, switch,
while_loop, fori_loop, scan.

Called with no transform active they are plain Python (the branch taken, the
loop run).  Under a transform (grad, jvp, vmap, jit) each is ONE primitive
whose parameters hold its functions traced once into Programs (captured
values of enclosing transforms become extra operands), so a staged loop is one
equation whatever its trip count, and the executor compiles each body once.
The rules build new sub-programs from the old: the JVP of a loop is a loop
over the body's JVP, the VJP of a scan a reverse scan over the saved carries.
"""
import weakref

import numpy as np

from . import backend, core
from .autodiff import vjp
from .batching import vmap
from .compile import compile_program
from .compile.executor import is_view
from .compile.passes import dce
from .core import Primitive, ShapedArray, bind, inexact
from .forward import jvp
from .ir import Var, eval_program
from .numpy import _base, creation, elementwise as ew, reductions as red
from .numpy.shape import reshape, stack, swapaxes
from .staging import stage_with_captures
from .tree import tree_flatten, tree_unflatten


# ---- sub-programs --------------------------------------------------------------------
def _avals(leaves):
    return [ShapedArray(core.shape_of(x), np.dtype(x.dtype)) for x in leaves]


def _trace(name, f, avals):
    """f (of flat arrays, returning a flat list) as a Program: (program,
    captured tracers, which the program takes after its `avals` inputs)."""
    def flat(*xs):
        return [creation.asarray(o) for o in f(*xs)]
    prog, _, captured = stage_with_captures(flat, avals, name)
    return prog, captured


def _out_avals(prog):
    return [v.aval for v in prog.outvars]


_runs = weakref.WeakKeyDictionary()     # Program -> {backend name: compiled run}


def _compiled(prog):
    """The program compiled for the active backend, once per backend: a
    function of a list of concrete arrays."""
    runs = _runs.setdefault(prog, {})
    be = backend.current().name
    run = runs.get(be)
    if run is None:
        run = runs[be] = compile_program(prog)
    return run


def _flatten_args(args):
    leaves, tree = tree_flatten(args)
    return [creation.asarray(x) for x in leaves], tree


def _same_types(what, first, other, where):
    """(tree, avals) pairs of two sides that must agree."""
    def say(side, pair):
        return f"{side} gives {', '.join(map(str, pair[1])) or 'nothing'} (structure {pair[0]})"
    if first != other:
        raise TypeError(f"{what}: {say(where[0], first)} but {say(where[1], other)}; they "
                        f"must agree in pytree structure, shapes and dtypes")


# ---- cond and switch --------------------------------------------------------------------
def _branch_impl(xp, index, *ops, branches):
    i = min(max(int(index), 0), len(branches) - 1)
    return _compiled(branches[i])(list(ops))


def _branch_jvp(tangents, outs, index, *ops, branches):
    pos = [i for i, t in enumerate(tangents[1:]) if t is not None]
    touts = bind(switch_p, (index, *ops, *[tangents[1 + i] for i in pos]),
                 {"branches": tuple(_jvp_program(b, pos) for b in branches)})
    it = iter(touts)
    return [next(it) if inexact(o) else None for o in outs]


def _branch_vjp(gs, outs, index, *ops, branches):
    pos = [i for i, x in enumerate(ops) if inexact(x)]
    gpos = [j for j, g in enumerate(gs) if g is not None]
    cts = bind(switch_p, (index, *ops, *[gs[j] for j in gpos]),
               {"branches": tuple(_vjp_program(b, pos, gpos) for b in branches)})
    out = [None] * (1 + len(ops))
    for i, c in zip(pos, cts):
        out[1 + i] = c
    return out


def _branch_batch(prim, vals, dims, branches):
    (index, *ops), (di, *dops) = vals, dims
    if di is None:          # one branch for the whole batch: each branch batched
        progs = tuple(_vmap_program(b, ops, dops) for b in branches)
        out = bind(prim, (index, *ops), {"branches": progs})
        return out, [0] * len(out)
    # a branch per example: every branch on the whole batch, then select
    size = _base.batch_size(vals, dims)
    idx = _base.moveaxis0(index, di)
    idx = ew.clip(idx, 0, len(branches) - 1)
    results = [vmap(lambda *o, b=b: eval_program(b, *o), in_axes=tuple(dops),
                    axis_size=size)(*ops) for b in branches]
    outs = []
    for j, first in enumerate(results[0]):
        out = first
        for k in range(1, len(branches)):
            pick = reshape(ew.equal(idx, k), (size,) + (1,) * (first.ndim - 1))
            out = ew.where(pick, results[k][j], out)
        outs.append(out)
    return outs, [0] * len(outs)


switch_p = Primitive("switch", _branch_impl,
                     lambda index, *ops, branches: _out_avals(branches[0]),
                     vjp=_branch_vjp, jvp=_branch_jvp, batch=_branch_batch,
                     multiple_results=True)


def switch(index, branches, *operands, _names=None):
    """branches[index](*operands), index clamped to the branches (as JAX).
    Every branch must return the same pytree structure, shapes and dtypes."""
    branches = list(branches)
    if not branches:
        raise ValueError("lax.switch: needs at least one branch")
    if not core.tracing():
        i = min(max(int(index), 0), len(branches) - 1)
        return branches[i](*operands)
    leaves, tree = _flatten_args(operands)
    progs, trees, caps = [], [], []
    for k, fn in enumerate(branches):
        out_tree = []

        def flat(*xs, fn=fn, out_tree=out_tree):
            out = fn(*tree_unflatten(tree, list(xs)))
            o_leaves, o_tree = tree_flatten(out)
            out_tree.append(o_tree)
            return o_leaves
        prog, captured = _trace(f"switch_branch{k}", flat, _avals(leaves))
        progs.append(prog)
        trees.append(out_tree[0])
        caps.append(captured)
    names = _names or [f"branch {k}" for k in range(len(progs))]
    for k in range(1, len(progs)):
        _same_types("lax.cond" if _names else "lax.switch", (trees[0], _out_avals(progs[0])),
                    (trees[k], _out_avals(progs[k])), (names[0], names[k]))
    progs, extra = _share_captures(progs, caps, len(leaves))
    index = ew.astype(creation.asarray(index), np.int32)
    out = bind(switch_p, (index, *leaves, *extra), {"branches": tuple(progs)})
    return tree_unflatten(trees[0], out)


def cond(pred, true_fun, false_fun, *operands):
    """true_fun(*operands) if pred else false_fun(*operands), as jax.lax.cond."""
    if not core.tracing():
        return true_fun(*operands) if bool(pred) else false_fun(*operands)
    return switch(ew.astype(creation.asarray(pred), np.int32), [false_fun, true_fun],
                  *operands, _names=("false_fun", "true_fun"))


def _share_captures(progs, caps, n):
    """Programs that each take the union of every program's captured values
    (after their n own inputs), and that union."""
    union, where = [], {}
    for cs in caps:
        for c in cs:
            if id(c) not in where:
                where[id(c)] = len(union)
                union.append(c)
    out = []
    for prog, cs in zip(progs, caps):
        own = {id(c): v for c, v in zip(cs, prog.invars[n:])}
        extra = [own.get(id(c)) or _fresh(c) for c in union]
        out.append(type(prog)(prog.invars[:n] + extra, prog.consts, prog.eqns,
                              prog.outvars, prog.name))
    return out, union


def _fresh(x):
    return Var(ShapedArray(core.shape_of(x), x.dtype))


# ---- derived programs: the rules' sub-programs ------------------------------------------
_derived = weakref.WeakKeyDictionary()


def _cached(prog, key, make):
    per = _derived.setdefault(prog, {})
    if key not in per:
        per[key] = make()
    return per[key]


def _partial(prog, ins, pos, pick=None):
    """prog as a function of its inputs at `pos` only (the others held at
    `ins`), returning its outputs (those at `pick`, if given)."""
    def on(*moving):
        full = list(ins)
        for i, m in zip(pos, moving):
            full[i] = m
        out = eval_program(prog, *full)
        return out if pick is None else [out[j] for j in pick]
    return on


def _jvp_program(prog, pos):
    """(*inputs, *tangents of the inputs at pos) -> tangents of the
    floating outputs."""
    def make():
        n = len(prog.invars)
        avals = [v.aval for v in prog.invars] + [prog.invars[i].aval for i in pos]

        def f(*a):
            ins, ts = list(a[:n]), a[n:]
            outs, touts = jvp(_partial(prog, ins, pos), tuple(ins[i] for i in pos), tuple(ts))
            return [t for o, t in zip(outs, touts) if inexact(o)]
        return _trace(f"{prog.name}_jvp", f, avals)[0]
    return _cached(prog, ("jvp", tuple(pos)), make)


def _vjp_program(prog, pos, gpos):
    """(*inputs, *cotangents of the outputs at gpos) -> cotangents of the
    inputs at pos."""
    def make():
        n = len(prog.invars)
        outs = _out_avals(prog)
        avals = [v.aval for v in prog.invars] + [outs[j] for j in gpos]

        def f(*a):
            ins, gs = list(a[:n]), list(a[n:])
            return list(vjp(_partial(prog, ins, pos, gpos), *[ins[i] for i in pos])[1](gs))
        return _trace(f"{prog.name}_vjp", f, avals)[0]
    return _cached(prog, ("vjp", tuple(pos), tuple(gpos)), make)


def _vmap_program(prog, vals, dims, out_axes=0):
    """The program mapped over a batch axis: inputs as `vals` (batch axis at
    dims, None: unbatched), every output batched at out_axes."""
    def make():
        avals = _avals(vals)
        return _trace(f"{prog.name}_vmap",
                      vmap(lambda *a: eval_program(prog, *a), in_axes=tuple(dims),
                           out_axes=out_axes), avals)[0]
    return _cached(prog, ("vmap", tuple(dims), tuple(map(str, _avals(vals)))), make)


# ---- scan ---------------------------------------------------------------------------------
def _split3(args, num_consts, num_carry):
    return (list(args[:num_consts]), list(args[num_consts:num_consts + num_carry]),
            list(args[num_consts + num_carry:]))


def _scan_impl(xp, *args, body, length, reverse, num_consts, num_carry):
    consts, carry, xs = _split3(args, num_consts, num_carry)
    avals = _out_avals(body)[num_carry:]
    ys = [xp.empty((length,) + a.shape, a.dtype) for a in avals]
    run = _compiled(body)
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        out = run(consts + carry + [x[t] for x in xs])
        carry = out[:num_carry]
        for buf, y in zip(ys, out[num_carry:]):
            buf[t] = y
    return carry + ys


def _scan_aval(*args, body, length, reverse, num_consts, num_carry):
    outs = _out_avals(body)
    return outs[:num_carry] + [ShapedArray((length,) + a.shape, a.dtype)
                               for a in outs[num_carry:]]


def _scan_jvp(tangents, outs, *args, body, length, reverse, num_consts, num_carry):
    """A scan over the body's JVP: the tangents of the floating consts,
    carries and xs ride along as consts, carries and xs."""
    consts, carry, xs = _split3(args, num_consts, num_carry)
    cts, kts, xts = _split3(tangents, num_consts, num_carry)
    cp = [i for i, c in enumerate(consts) if inexact(c)]
    kp = [i for i, k in enumerate(carry) if inexact(k)]
    xp_ = [i for i, x in enumerate(xs) if inexact(x)]
    fill = lambda ts, vs, ps: [ts[i] if ts[i] is not None else _base.zeros_like(vs[i])  # noqa: E731
                               for i in ps]
    jbody = _cached(body, ("scan_jvp", tuple(cp), tuple(kp), tuple(xp_), num_consts,
                           num_carry), lambda: _scan_jvp_body(body, cp, kp, xp_, num_consts,
                                                              num_carry))
    res = bind(scan_p, (*consts, *fill(cts, consts, cp), *carry, *fill(kts, carry, kp),
                        *xs, *fill(xts, xs, xp_)),
               {"body": jbody, "length": length, "reverse": reverse,
                "num_consts": num_consts + len(cp), "num_carry": num_carry + len(kp)})
    new_carry_t = res[num_carry:num_carry + len(kp)]
    ys = res[num_carry + len(kp):]
    ny = len(outs) - num_carry
    ys_t = ys[ny:]
    touts = [None] * len(outs)
    for i, t in zip(kp, new_carry_t):
        touts[i] = t
    fy = [j for j in range(ny) if inexact(outs[num_carry + j])]
    for j, t in zip(fy, ys_t):
        touts[num_carry + j] = t
    return touts


def _scan_jvp_body(body, cp, kp, xp_, num_consts, num_carry):
    avals = [v.aval for v in body.invars]
    c_av, k_av, x_av = _split3(avals, num_consts, num_carry)
    full = (c_av + [c_av[i] for i in cp] + k_av + [k_av[i] for i in kp]
            + x_av + [x_av[i] for i in xp_])

    def f(*a):
        nc, nk = num_consts + len(cp), num_carry + len(kp)
        cs, ks, xs = _split3(list(a), nc, nk)
        c, ct = cs[:num_consts], cs[num_consts:]
        k, kt = ks[:num_carry], ks[num_carry:]
        x, xt = xs[:len(x_av)], xs[len(x_av):]
        ins = c + k + x
        pos = list(cp) + [num_consts + i for i in kp] + [num_consts + num_carry + i for i in xp_]
        outs, touts = jvp(_partial(body, ins, pos), tuple(ins[i] for i in pos),
                          tuple(ct + kt + xt))
        carry, ys = outs[:num_carry], outs[num_carry:]
        carry_t = [touts[i] for i in kp]
        ys_t = [t for y, t in zip(ys, touts[num_carry:]) if inexact(y)]
        return list(carry) + carry_t + list(ys) + ys_t
    return _trace(f"{body.name}_jvp", f, full)[0]


def _positions(consts, carry, xs, ys):
    """Where the floating consts, carries, xs and ys are (what differentiates)."""
    return tuple(tuple(i for i, v in enumerate(vs) if inexact(v))
                 for vs in (consts, carry, xs, ys))


def _scan_parts(body, pos, num_consts, num_carry):
    return _cached(body, ("scan_parts", pos, num_consts, num_carry),
                   lambda: _scan_split(body, *pos, num_consts, num_carry))


def _scan_vjp_forward(primals, params):
    """The scan as reverse mode records it: its body also returns, stacked,
    every value the backward body reads (the residuals), so the backward
    pass recomputes nothing."""
    body, num_consts, num_carry = params["body"], params["num_consts"], params["num_carry"]
    consts, carry, xs = _split3(primals, num_consts, num_carry)
    ys = _out_avals(body)[num_carry:]
    forward = _scan_parts(body, _positions(consts, carry, xs, ys), num_consts, num_carry)[0]
    res = bind(scan_p, primals, {**params, "body": forward})
    n = num_carry + len(ys)
    return res[:n], res[n:]


def _scan_vjp(gs, outs, *args, body, length, reverse, num_consts, num_carry, residuals):
    """A scan in the other direction over the residuals, each step the
    backward half of the body's VJP."""
    consts, carry, xs = _split3(args, num_consts, num_carry)
    pos = _positions(consts, carry, xs, outs[num_carry:])
    cp, kp, xp_, fy = pos
    _, backward, xs_read = _scan_parts(body, pos, num_consts, num_carry)
    g_carry = [gs[i] if gs[i] is not None else _base.zeros_like(carry[i]) for i in kp]
    g_ys = [gs[num_carry + j] if gs[num_carry + j] is not None
            else _base.zeros_like(outs[num_carry + j]) for j in fy]
    res = bind(scan_p, (*consts, *g_carry, *[_base.zeros_like(consts[i]) for i in cp],
                        *residuals, *[xs[i] for i in xs_read], *g_ys),
               {"body": backward, "length": length, "reverse": not reverse,
                "num_consts": num_consts, "num_carry": len(kp) + len(cp)})
    ct_init, ct_consts, ct_xs = (res[:len(kp)], res[len(kp):len(kp) + len(cp)],
                                 res[len(kp) + len(cp):])
    out = [None] * len(args)
    for i, c in zip(cp, ct_consts):
        out[i] = c
    for i, c in zip(kp, ct_init):
        out[num_consts + i] = c
    for i, c in zip(xp_, ct_xs):
        out[num_consts + num_carry + i] = c
    return out


def _scan_split(body, cp, kp, xp_, fy, num_consts, num_carry):
    """(forward body, backward body, which xs the backward body reads): the
    body's VJP traced whole, its equations split by what they depend on.
    Those that read the step's carry or x (the recomputed forward values) move
    into a forward body, which returns the primal results then the values the
    rest reads (the residuals, stacked by the scan); views of them and values
    of the consts alone stay in the backward body, recomputed (they cost
    nothing, or the same every step); an x it reads is read from xs itself."""
    whole = _scan_vjp_body(body, cp, kp, xp_, fy, num_consts, num_carry)
    ins = whole.invars
    nx = len(body.invars) - num_consts - num_carry
    ng = len(kp) + len(cp)
    c_v = ins[:num_consts]
    g_v = ins[num_consts:num_consts + ng]
    k_v = ins[num_consts + ng:num_consts + ng + num_carry]
    x_v = ins[num_consts + ng + num_carry:num_consts + ng + num_carry + nx]
    gy_v = ins[num_consts + ng + num_carry + nx:]
    fixed = set(c_v) | set(whole.consts)        # the same every step
    step = set(k_v) | set(x_v)                  # this step's forward values
    fwd, bwd = [], []
    for e in whole.eqns:
        reads = [v for v in e.inputs if isinstance(v, Var)]
        if all(v in fixed for v in reads):
            fixed.update(e.outs)
            fwd.append(e)
            bwd.append(e)
        elif all(v in fixed or v in step for v in reads):
            step.update(e.outs)
            fwd.append(e)
            if is_view(e):
                bwd.append(e)
        else:
            bwd.append(e)
    made = {o for e in bwd for o in e.outs} | fixed | set(g_v) | set(gy_v)
    read = [v for e in bwd for v in e.inputs] + list(whole.outvars)
    kept = list(dict.fromkeys(v for v in read if isinstance(v, Var) and v not in made))
    saved = [v for v in kept if v not in x_v]
    xs_read = [x_v.index(v) for v in kept if v in x_v]
    program = type(whole)
    values = program(c_v + k_v + x_v, whole.consts, fwd, saved, f"{body.name}_residuals")
    forward = _trace(f"{body.name}_forward",
                     lambda *a: list(eval_program(body, *a)) + list(eval_program(values, *a)),
                     [v.aval for v in body.invars])[0]
    backward = dce(program(c_v + g_v + saved + [x_v[i] for i in xs_read] + gy_v, whole.consts,
                           bwd, whole.outvars, f"{body.name}_backward"))
    return forward, backward, tuple(xs_read)


def _scan_vjp_body(body, cp, kp, xp_, fy, num_consts, num_carry):
    avals = [v.aval for v in body.invars]
    c_av, k_av, x_av = _split3(avals, num_consts, num_carry)
    y_av = _out_avals(body)[num_carry:]
    full = (c_av + [k_av[i] for i in kp] + [c_av[i] for i in cp]
            + k_av + x_av + [y_av[j] for j in fy])

    def f(*a):
        consts = list(a[:num_consts])
        rest = list(a[num_consts:])
        g_k, rest = rest[:len(kp)], rest[len(kp):]
        acc, rest = rest[:len(cp)], rest[len(cp):]
        k, rest = rest[:num_carry], rest[num_carry:]
        x, g_y = rest[:len(x_av)], rest[len(x_av):]
        ins = consts + k + x
        pos = list(cp) + [num_consts + i for i in kp] + [num_consts + num_carry + i for i in xp_]
        pick = list(kp) + [num_carry + j for j in fy]
        cts = vjp(_partial(body, ins, pos, pick), *[ins[i] for i in pos])[1](g_k + g_y)
        dc, dk, dx = cts[:len(cp)], cts[len(cp):len(cp) + len(kp)], cts[len(cp) + len(kp):]
        return list(dk) + [ew.add(a_, d) for a_, d in zip(acc, dc)] + list(dx)
    return _trace(f"{body.name}_vjp", f, full)[0]


def _scan_batch(prim, vals, dims, body, length, reverse, num_consts, num_carry):
    """consts keep their batch axis (moved first); every carry is batched;
    xs get the batch axis second (the scanned axis stays first); the ys come
    out batched along axis 1."""
    size = _base.batch_size(vals, dims)
    consts, carry, xs = _split3(vals, num_consts, num_carry)
    dc, dk, dx = _split3(dims, num_consts, num_carry)
    consts = [_base.moveaxis0(c, d) if d is not None else c for c, d in zip(consts, dc)]
    carry = [_base.with_batch(k, d, size) for k, d in zip(carry, dk)]
    xs = [swapaxes(_base.moveaxis0(x, d), 0, 1) if d is not None else x
          for x, d in zip(xs, dx)]
    in_dims = ([None if d is None else 0 for d in dc] + [0] * num_carry
               + [None if d is None else 0 for d in dx])
    slices = consts + carry + [ShapedArray(core.shape_of(x)[1:], x.dtype) for x in xs]
    batched = _vmap_program(body, slices, in_dims)
    out = bind(prim, (*consts, *carry, *xs),
               {"body": batched, "length": length, "reverse": reverse,
                "num_consts": num_consts, "num_carry": num_carry})
    return out, [0] * num_carry + [1] * (len(out) - num_carry)


scan_p = Primitive("scan", _scan_impl, _scan_aval, vjp=_scan_vjp, jvp=_scan_jvp,
                   batch=_scan_batch, multiple_results=True, vjp_forward=_scan_vjp_forward)


def scan(f, init, xs=None, length=None, reverse=False):
    """jax.lax.scan: carry, y = f(carry, x) over the leading axis of xs;
    returns (final carry, the ys stacked).  xs may be None (then `length`
    says how many steps); `reverse` runs from the end (ys keep their places)."""
    x_leaves, x_tree = tree_flatten(xs)
    x_leaves = [creation.asarray(x) for x in x_leaves]
    lengths = {core.shape_of(x)[0] for x in x_leaves if core.shape_of(x)}
    if any(not core.shape_of(x) for x in x_leaves):
        raise ValueError("lax.scan: every leaf of xs needs a leading axis to scan over")
    if length is not None:
        lengths.add(int(length))
    if len(lengths) != 1:
        raise ValueError(f"lax.scan: the leading axes of xs (and length) must agree, "
                         f"got {sorted(lengths) or 'none: pass length'}")
    n = lengths.pop()
    if not core.tracing():
        return _scan_eager(f, init, xs, x_leaves, x_tree, n, reverse)
    c_leaves, c_tree = _flatten_args(init)
    y_tree = []

    def flat(*a):
        carry = tree_unflatten(c_tree, list(a[:len(c_leaves)]))
        x = tree_unflatten(x_tree, list(a[len(c_leaves):]))
        new, y = f(carry, x)
        k_leaves, k_tree = tree_flatten(new)
        yl, yt = tree_flatten(y)
        y_tree.append((k_tree, yt))
        return list(k_leaves) + list(yl)
    slices = _avals(c_leaves) + [ShapedArray(core.shape_of(x)[1:], x.dtype) for x in x_leaves]
    prog, captured = _trace("scan_body", flat, slices)
    k_tree, yt = y_tree[0]
    k_avals = _out_avals(prog)[:len(c_leaves)]
    _same_types("lax.scan", (c_tree, _avals(c_leaves)), (k_tree, k_avals),
                ("the initial carry", "the carry f returns"))
    # the captured values are consts: first in the body's inputs
    m = len(prog.invars) - len(captured)
    body = type(prog)(prog.invars[m:] + prog.invars[:m], prog.consts, prog.eqns,
                      prog.outvars, prog.name)
    out = bind(scan_p, (*captured, *c_leaves, *x_leaves),
               {"body": body, "length": n, "reverse": bool(reverse),
                "num_consts": len(captured), "num_carry": len(c_leaves)})
    return (tree_unflatten(c_tree, out[:len(c_leaves)]),
            tree_unflatten(yt, out[len(c_leaves):]))


def _scan_eager(f, init, xs, x_leaves, x_tree, n, reverse):
    carry, ys = init, [None] * n
    for t in (range(n - 1, -1, -1) if reverse else range(n)):
        carry, ys[t] = f(carry, tree_unflatten(x_tree, [x[t] for x in x_leaves]))
    if n == 0:
        return carry, None
    y_leaves = [tree_flatten(y)[0] for y in ys]
    stacked = [stack(col) for col in zip(*y_leaves)]
    return carry, tree_unflatten(tree_flatten(ys[0])[1], stacked)


# ---- while_loop and fori_loop ----------------------------------------------------------
def _while_impl(xp, *args, cond, body, num_cond, num_body):
    cc, bc, carry = _split3(args, num_cond, num_body)
    test, step = _compiled(cond), _compiled(body)
    while bool(test(cc + carry)[0]):
        carry = step(bc + carry)
    return carry


def _while_jvp(tangents, outs, *args, cond, body, num_cond, num_body):
    cc, bc, carry = _split3(args, num_cond, num_body)
    _, bts, kts = _split3(tangents, num_cond, num_body)
    bp = [i for i, c in enumerate(bc) if inexact(c)]
    kp = [i for i, k in enumerate(carry) if inexact(k)]
    nb, nk = len(bc), len(carry)
    jbody = _cached(body, ("while_jvp", tuple(bp), tuple(kp), nb), lambda: _while_jvp_body(
        body, bp, kp, nb, nk))
    jcond = _cached(cond, ("while_cond", tuple(kp)), lambda: _trace(
        f"{cond.name}_with_tangents", lambda *a: eval_program(cond, *a[:len(cond.invars)]),
        [v.aval for v in cond.invars] + [cond.invars[num_cond + i].aval for i in kp])[0])
    fill = lambda ts, vs, ps: [ts[i] if ts[i] is not None else _base.zeros_like(vs[i])  # noqa: E731
                               for i in ps]
    res = bind(while_p, (*cc, *bc, *fill(bts, bc, bp), *carry, *fill(kts, carry, kp)),
               {"cond": jcond, "body": jbody, "num_cond": num_cond,
                "num_body": nb + len(bp)})
    touts = [None] * nk
    for i, t in zip(kp, res[nk:]):
        touts[i] = t
    return touts


def _while_jvp_body(body, bp, kp, nb, nk):
    avals = [v.aval for v in body.invars]
    b_av, k_av = avals[:nb], avals[nb:]
    full = b_av + [b_av[i] for i in bp] + k_av + [k_av[i] for i in kp]

    def f(*a):
        b, bt = list(a[:nb]), list(a[nb:nb + len(bp)])
        k, kt = list(a[nb + len(bp):nb + len(bp) + nk]), list(a[nb + len(bp) + nk:])
        ins = b + k
        pos = bp + [nb + i for i in kp]
        outs, touts = jvp(_partial(body, ins, pos), tuple(ins[i] for i in pos), tuple(bt + kt))
        return list(outs) + [touts[i] for i in kp]
    return _trace(f"{body.name}_jvp", f, full)[0]


def _while_vjp(gs, outs, *args, **params):
    raise TypeError("lax.while_loop is not reverse-mode differentiable (its trip count is "
                    "only known by running it), as in JAX; use lax.fori_loop with bounds "
                    "known when tracing (Python ints) or lax.scan, or forward mode (jvp)")


def _while_batch(prim, vals, dims, cond, body, num_cond, num_body):
    """Every carry batched; the loop runs while any example's predicate
    holds, and an example whose predicate is false keeps its carry."""
    size = _base.batch_size(vals, dims)
    cc, bc, carry = _split3(vals, num_cond, num_body)
    dcc, dbc, _ = _split3(dims, num_cond, num_body)
    cc = [_base.moveaxis0(c, d) if d is not None else c for c, d in zip(cc, dcc)]
    bc = [_base.moveaxis0(c, d) if d is not None else c for c, d in zip(bc, dbc)]
    carry = [_base.with_batch(k, d, size) for k, d in zip(carry, _split3(dims, num_cond,
                                                                          num_body)[2])]
    ccd = [None if d is None else 0 for d in dcc]
    bcd = [None if d is None else 0 for d in dbc]
    nk = len(carry)
    key = ("while_batch", tuple(ccd), tuple(bcd), tuple(map(str, _avals(cc + bc + carry))))

    def make_cond():
        return _trace(f"{cond.name}_any", lambda *a: [red.max(ew.astype(vmap(
            lambda *o: eval_program(cond, *o)[0], in_axes=tuple(ccd + [0] * nk))(
            *a[:num_cond], *a[num_cond + num_body:]), np.int32)) > 0],
            _avals(cc + bc + carry))[0]

    def make_body():
        def f(*a):
            c, b, k = a[:num_cond], a[num_cond:num_cond + num_body], list(a[num_cond + num_body:])
            live = vmap(lambda *o: eval_program(cond, *o)[0],
                        in_axes=tuple(ccd + [0] * nk))(*c, *k)
            new = vmap(lambda *o: eval_program(body, *o),
                       in_axes=tuple(bcd + [0] * nk))(*b, *k)
            return [ew.where(reshape(live, (size,) + (1,) * (n.ndim - 1)), n, o)
                    for n, o in zip(new, k)]
        return _trace(f"{body.name}_masked", f, _avals(cc + bc + carry))[0]
    jcond = _cached(cond, key, make_cond)
    jbody = _cached(body, key, make_body)
    out = bind(prim, (*cc, *bc, *cc, *bc, *carry),
               {"cond": jcond, "body": jbody, "num_cond": num_cond + num_body,
                "num_body": num_cond + num_body})
    return out, [0] * len(out)


while_p = Primitive("while", _while_impl,
                    lambda *args, cond, body, num_cond, num_body: _out_avals(body),
                    vjp=_while_vjp, jvp=_while_jvp, batch=_while_batch,
                    multiple_results=True)


def while_loop(cond_fun, body_fun, init_val):
    """jax.lax.while_loop: while cond_fun(val): val = body_fun(val).  The
    body must return init_val's pytree structure, shapes and dtypes.
    Differentiable in forward mode only (as JAX)."""
    if not core.tracing():
        val = init_val
        while bool(cond_fun(val)):
            val = body_fun(val)
        return val
    leaves, tree = _flatten_args(init_val)
    avals = _avals(leaves)
    body_tree = []

    def body_flat(*a):
        new_leaves, t = tree_flatten(body_fun(tree_unflatten(tree, list(a))))
        body_tree.append(t)
        return new_leaves
    cprog, ccap = _trace("while_cond", lambda *a: [cond_fun(tree_unflatten(tree, list(a)))],
                         avals)
    bprog, bcap = _trace("while_body", body_flat, avals)
    _same_types("lax.while_loop", (tree, avals), (body_tree[0], _out_avals(bprog)),
                ("init_val", "body_fun"))
    pred = _out_avals(cprog)[0]
    if pred.shape != () or pred.dtype != np.bool_:
        raise TypeError(f"lax.while_loop: cond_fun must return a boolean scalar, got {pred}")
    m = len(leaves)
    cprog = type(cprog)(cprog.invars[m:] + cprog.invars[:m], cprog.consts, cprog.eqns,
                        cprog.outvars, cprog.name)
    bprog = type(bprog)(bprog.invars[m:] + bprog.invars[:m], bprog.consts, bprog.eqns,
                        bprog.outvars, bprog.name)
    out = bind(while_p, (*ccap, *bcap, *leaves),
               {"cond": cprog, "body": bprog, "num_cond": len(ccap), "num_body": len(bcap)})
    return tree_unflatten(tree, out)


def fori_loop(lower, upper, body_fun, init_val):
    """jax.lax.fori_loop: val = body_fun(i, val) for i in range(lower, upper).
    With bounds known when tracing (Python ints) it is a scan, so reverse
    mode differentiates it; with traced bounds, a while_loop."""
    if not core.tracing():
        val = init_val
        for i in range(int(lower), int(upper)):
            val = body_fun(i, val)
        return val
    if isinstance(lower, (int, np.integer)) and isinstance(upper, (int, np.integer)):
        steps = creation.arange(int(lower), int(upper), dtype=np.int32)
        return scan(lambda val, i: (body_fun(i, val), None), init_val, steps,
                    length=max(int(upper) - int(lower), 0))[0]
    i0 = ew.astype(creation.asarray(lower), np.int32)
    hi = ew.astype(creation.asarray(upper), np.int32)
    return while_loop(lambda s: s[0] < hi, lambda s: (s[0] + 1, body_fun(s[0], s[1])),
                      (i0, init_val))[1]
