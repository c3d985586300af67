"""The executor of every backend: a Program becomes generated straight-line
Python over the backend's namespace (no tracers, no dispatch), with the
groups that the backend's Fuser accepts fused into single kernel calls.

Memory is planned at compile time, as a sequence of named buffers: an
operation that can write into an existing array (ufuncs, matmul, reductions,
clip) takes `out=` a buffer of its shape and dtype whose last reader has
passed, and a buffer that will not be reused is deleted at its last use, so
the peak memory of a jitted step is no higher than eager's.  Views (reshape,
transpose, broadcast_to, basic indexing) keep their base buffer alive.
Inputs and constants are never written, except inputs the caller donated.
"""
import functools
import math

import numpy as np

from .. import core
from ..ir import Literal, Var
from . import fusion


def is_view(e):
    """Whether equation e's result may share memory with its first input."""
    view = e.prim.view
    return view(*e.inputs, **e.params) if callable(view) else view


class Namer:
    """Python names for a program's values; constants live in a namespace."""

    def __init__(self, prog):
        self.names = {}
        self.namespace = {}
        for i, v in enumerate(prog.invars):
            self.names[v] = f"a{i}"
        for i, (v, val) in enumerate(prog.consts.items()):
            self.names[v] = f"c{i}"
            self.namespace[f"c{i}"] = val
        for k, e in enumerate(prog.eqns):
            for j, o in enumerate(e.outs):
                self.names[o] = f"v{k}_{j}" if e.prim.multiple_results else f"v{k}"

    def __call__(self, v):
        if isinstance(v, Literal):
            return self.literal(v.value)
        return self.names[v]

    def literal(self, x):
        if isinstance(x, float) and not math.isfinite(x) or isinstance(x, complex):
            name = f"k{len(self.namespace)}"
            self.namespace[name] = x
            return name
        return repr(x)


class Step:
    """One call of the generated code: a single equation, or a fused kernel."""
    __slots__ = ("eqn", "kernel", "inputs", "outs")

    def __init__(self, eqn=None, kernel=None):
        self.eqn, self.kernel = eqn, kernel
        self.inputs = kernel.inputs if kernel else eqn.inputs
        self.outs = kernel.outputs if kernel else list(eqn.outs)

    def prim(self):
        return self.eqn.prim if self.eqn else None


def plan_memory(prog, steps, donate=(), fused_out=False):
    """For each step: the buffers (dead Vars) its results are written into,
    [None] where it allocates, and the names to delete after it.  With
    `fused_out`, fused kernels take buffers too, and may write over an input
    they read last at the same element (a full-shape base no other input
    views).  Returns (outs, dels)."""
    n = len(steps)
    last = {}                       # Var -> index of the last step reading it
    for k, st in enumerate(steps):
        for v in st.inputs:
            if isinstance(v, Var):
                last[v] = k
    for v in prog.outvars:
        if isinstance(v, Var):
            last[v] = n             # outputs never die
    base = {v: v for v in prog.invars}
    base.update((v, v) for v in prog.consts)
    alive = {v: int(v in last) for v in base}     # base -> live Vars viewing it
    poolable = {v for i, v in enumerate(prog.invars) if i in donate}
    pool, released_at = {}, {}      # (shape, dtype) -> [base]; base -> index
    outs, dels = [[None] * len(st.outs) for st in steps], [[] for _ in range(n)]

    def key(v):
        return (v.aval.shape, v.aval.dtype)

    def release(v, k):
        b = base[v]
        if b is not v:
            dels[k].append(v)
        alive[b] -= 1
        if alive[b]:
            return
        if b in poolable and b.aval.shape != ():    # 0-d results may be scalars
            pool.setdefault(key(b), []).append(b)
            released_at[b] = k
        elif b not in prog.consts:
            dels[k].append(b)

    for k, st in enumerate(steps):
        prim = st.prim()
        dying = [v for v in dict.fromkeys(st.inputs) if isinstance(v, Var) and last[v] == k]
        if prim is not None:
            early = dying if prim.ufunc else []     # a ufunc may overwrite its inputs
            writes = prim.takes_out
        else:
            writes = fused_out
            bases = [base[v] for v in st.inputs if isinstance(v, Var)]
            shapes = {o.aval for o in st.outs}
            early = [v for v in dying if fused_out and base[v] is v
                     and v.aval in shapes and bases.count(v) == 1] if writes else []
        for v in early:
            release(v, k)
        for j, o in enumerate(st.outs if writes else ()):
            if pool.get(key(o)):
                b = pool[key(o)].pop()
                del released_at[b]
                outs[k][j] = b
                dels[k].append(b)   # the buffer lives on under the new name
        for o in st.outs:
            if st.eqn is not None and is_view(st.eqn):
                base[o] = base[st.eqn.inputs[0]]
                alive[base[o]] += 1
            else:
                base[o] = o
                alive[o] = 1
                poolable.add(o)
        for v in dying:
            if v not in early:
                release(v, k)
    for b, k in released_at.items():    # never reused: free at the last use
        dels[k].append(b)
    return outs, dels


def make_steps(prog, fuser):
    """One step per equation, with the elementwise groups that `fuser` (a
    fusion.Fuser, or None) accepts fused into single kernels.  Returns
    (steps, module holding the kernels or None)."""
    plain = [Step(eqn=e) for e in prog.eqns]
    if fuser is None:
        return plain, None
    steps, kernels = [], {}
    for eqns, kernel in fusion.kernels(prog, fuser.fusible, fuser.fuse_reductions):
        if kernel is not None and kernel.outputs and fuser.accepts(kernel):
            steps.append(Step(kernel=kernel))
            kernels[kernel.name] = kernel
        else:
            steps.extend(Step(eqn=e) for e in eqns)
    module = fuser.build(list(kernels.values())) if kernels else None
    return (steps, module) if module is not None else (plain, None)


def generate(prog, xp, donate=(), fuser=None, keep=False):
    """A function (list of input arrays) -> list of output arrays, with
    attributes `source` (the generated code), `launches` (calls into the
    backend per run) and `kernels` (fused kernels among them).

    donate: indices of inputs whose buffers may be overwritten.
    fuser: a fusion.Fuser for elementwise groups, or None.
    keep: delete nothing and also return every intermediate (CUDA graph
    capture must keep the memory it recorded)."""
    name = Namer(prog)
    ns = name.namespace
    ns["xp"] = xp
    check_nans = core.debug.nans      # each equation checked: no fusion then
    steps, module = make_steps(prog, None if check_nans else fuser)
    fused_out = module is not None and fuser.takes_out
    if check_nans:
        ns["_nan"] = _nan_checker(prog)
    outs, dels = plan_memory(prog, steps, donate, fused_out)
    if check_nans:                  # the check reads inputs after the step
        outs = [[None] * len(st.outs) for st in steps]
    lines = ["def run(leaves):"]
    if prog.invars:
        lines.append(f"    {', '.join(name(v) for v in prog.invars)}, = leaves")
    for k, st in enumerate(steps):
        if st.kernel is not None:
            ns[st.kernel.name] = getattr(module, st.kernel.name)
            given = [name(b) if b is not None else "None" for b in outs[k]]
            args = [name(v) for v in st.inputs] + (given if any(outs[k]) else [])
            lines.append(f"    {', '.join(name(v) for v in st.outs)}, = "
                         f"{st.kernel.name}({', '.join(args)})")
        else:
            lines.append(f"    {targets(st.eqn, name)} = "
                         f"{call_source(st.eqn, k, name, outs[k][0], ns)}")
        if check_nans:
            ins = "".join(f"{name(v)}, " for v in st.inputs)     # literals too: a nan
            lines.append(f"    _nan({k}, ({ins}), {name(st.outs[0])})")
        gone = [name(v) for v in dict.fromkeys(dels[k])]
        if gone and not keep:
            lines.append(f"    del {', '.join(gone)}")
    # a constant is shared by every call: return a copy, so that outputs of
    # different calls never alias each other
    rets = [name(v) + (".copy()" if v in prog.consts else "") for v in prog.outvars]
    result = f"[{', '.join(rets)}]"
    if keep:
        made = [name(v) for st in steps for v in st.outs]
        result += f", [{', '.join(made)}]"
    lines.append(f"    return {result}")
    source = "\n".join(lines)
    exec(compile(source, f"<gpuprop jit {prog.name}>", "exec"), ns)
    run = ns["run"]
    run.source = source
    run.launches = len(steps)
    run.kernels = sum(st.kernel is not None for st in steps)
    return run


def _nan_checker(prog):
    text = str(prog).split("\n")[1:-1]     # one line per equation

    def check(k, ins, out):
        if core.has_nan(out) and not any(core.has_nan(x) for x in ins):
            e = prog.eqns[k]
            call = f"gnp.{e.prim.name}({', '.join(str(v.aval) for v in e.inputs)})"
            raise core.NaNError(f"jit({prog.name}): equation {k}, {call}, produced a NaN "
                                f"from inputs without one:\n{text[k]}")
    return check


def targets(e, name):
    """The left side of equation e's assignment in generated code."""
    return "".join(f"{name(o)}, " for o in e.outs) if e.prim.multiple_results else name(e.out)


def call_source(e, k, name, out_buf, ns):
    """The source of one equation's call, from its primitive's facts."""
    prim, args = e.prim, [name(v) for v in e.inputs]
    out = f", out={name(out_buf)}" if out_buf is not None else ""
    if prim.backend_fn:
        fn = f"xp.{prim.name}"
        if prim.reduce_ufunc and ns["xp"] is np and e.out.aval.dtype.kind == "f":
            fn = f"xp.{prim.reduce_ufunc}.reduce"       # skips NumPy's Python wrapper
        kws = "".join(f", {key}={val!r}" for key, val in e.params.items())
        return f"{fn}({', '.join(args)}{kws}{out})"
    if prim.method:         # the array's own method: no wrapper
        param = tuple(int(d) for d in e.params[prim.method])
        return f"{args[0]}.{prim.name}({param!r})"
    fn = f"f{k}"
    ns[fn] = functools.partial(prim.impl, **e.params) if e.params else prim.impl
    return f"{fn}(xp, {', '.join(args)})"
