"""The core: primitives, abstract values, tracers, trace levels and `bind`.

It knows no calculus and no NumPy function names.  A transform (grad, jit)
opens a *level* with `new_main`; its tracers carry that level.  `bind` finds
the highest level among a primitive's arguments and lets that level's trace
process it; values from lower levels enter that trace as constants.  With no
tracer among the arguments the primitive simply runs on the active backend.
"""
import contextlib
import functools
import os
import threading

import numpy as np

from . import backend


class ShapedArray:
    """An abstract value: what staging knows of an array (shape and dtype)."""
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: size_of(self.shape))

    def __eq__(self, other):
        return (isinstance(other, ShapedArray) and self.shape == other.shape
                and self.dtype == other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def __repr__(self):
        return f"{short_dtype(self.dtype)}[{','.join(map(str, self.shape))}]"


def size_of(shape):
    """The number of elements of an array of `shape` (1 for ())."""
    return int(np.prod(shape, dtype=np.int64))


def dtype_of(x):
    """The dtype of an array, tracer or Python scalar."""
    return np.dtype(x.dtype if hasattr(x, "dtype") else np.result_type(x))


def inexact(x):
    """Whether x is floating or complex: what derivatives are taken of."""
    return dtype_of(x).kind in "fc"


def short_dtype(dtype):
    d = np.dtype(dtype)
    return {"f": "f", "i": "i", "u": "u", "b": "bool", "c": "c"}[d.kind] + (
        "" if d.kind == "b" else str(8 * d.itemsize))


def shape_of(x):
    """The shape of an array, tracer or Python scalar (without NumPy's
    functions, which device arrays refuse)."""
    return getattr(x, "shape", ())


def aval(x):
    """The abstract value of an argument; Python scalars stay as they are, so
    shape rules can apply NumPy's weak promotion to them."""
    if isinstance(x, Tracer):
        return x.aval
    if type(x) in backend.PY_SCALARS:
        return x
    return ShapedArray(x.shape, x.dtype)


class Primitive:
    """A named operation with every fact about it.

    impl(xp, *args, **params)           runs on the backend namespace `xp`
    abstract_eval(*avals, **params)     ShapedArray of the output; raises the
                                        user-facing error for bad shapes/dtypes
    vjp                                 tuple: for each argument, a rule
                                        (g, out, *args, **params) -> cotangent,
                                        written with gpuprop.numpy; None entries
                                        (or vjp=None) mean not differentiable
    vjp_variadic(i, g, out, *args, **params)   for primitives of any arity
    jvp(tangents, out, *args, **params) -> tangent of the output (or None
                                        for zero); `tangents` has one entry
                                        per argument, None where it is zero
    linear       the output is linear in the first argument (the others are
                 indices): its JVP is the primitive applied to the tangent
    batch(prim, vals, dims, **params) -> (out, out_dim): the primitive on
                 values with a batch axis at dims[i] (None: unbatched)
    multiple_results  impl and abstract_eval give a list; then `vjp` is one
                 rule (gs, outs, *args, **params) -> a cotangent per argument,
                 `jvp` gives a tangent per output, `batch` lists of outs and dims
    vjp_forward(primals, params) -> (outs, residuals): how reverse mode runs a
                 primitive with several results when it records it, keeping
                 what the VJP needs (passed to it as params["residuals"])

    What executors and passes need (keyword-only):
    backend_fn   impl is `xp.<name>(*args, **params)`: called by name, directly
    ufunc        that function is a ufunc: it may write over an input it reads
    takes_out    that function writes into `out=` (a planned buffer)
    method       impl is `x.<name>(params[method])`: emitted as a method call
    view         the result may be a view of the first argument: a bool, or
                 a predicate (*args, **params) -> bool
    reduce_ufunc a NumPy reduction that is this ufunc's `.reduce` (skips the
                 wrapper of np.sum & co)
    compose      f(f(x, p), q) == f(x, compose(p, q)): the two calls merge
    is_identity  (aval of x, **params) -> bool: f(x) == x bit for bit
    unit         an operand equal to this constant leaves the other unchanged
    """

    def __init__(self, name, impl, abstract_eval, vjp=None, vjp_variadic=None, *,
                 jvp=None, linear=False, batch=None, multiple_results=False,
                 vjp_forward=None, backend_fn=False, ufunc=False, takes_out=False, method=None, view=False,
                 reduce_ufunc=None, compose=None, is_identity=None, unit=None):
        self.name = name
        self.impl = impl
        self.impls = {}         # backend -> impl with the namespace bound
        self.abstract_eval = abstract_eval
        self.vjp = vjp
        self.vjp_variadic = vjp_variadic
        self.differentiable = vjp is not None or vjp_variadic is not None
        if linear:
            jvp = _linear_jvp(self)
        self.jvp = jvp
        self.batch = batch
        self.multiple_results = multiple_results
        self.vjp_forward = vjp_forward
        self.backend_fn = backend_fn
        self.ufunc = ufunc
        self.takes_out = takes_out or self.ufunc
        self.method = method
        self.view = view
        self.reduce_ufunc = reduce_ufunc
        self.compose = compose
        self.is_identity = is_identity
        self.unit = unit

    def impl_for(self, xp):
        """impl with `xp` bound; an implementation that is just `xp.<name>`
        (a ufunc) is called directly, saving a Python frame per operation."""
        direct = getattr(xp, self.name, None)
        if direct is not None and self.backend_fn:
            return direct
        return functools.partial(self.impl, xp)

    def __repr__(self):
        return f"{self.name}_p"


def _linear_jvp(prim):
    def jvp(tangents, out, x, *rest, **params):
        return bind(prim, (tangents[0], *rest), params)
    return jvp


class Tracer:
    """A value seen by a transform.  Subclasses say what they carry; Python
    operators and NumPy interop are attached by gpuprop.numpy."""
    __slots__ = ("_trace",)
    __array_priority__ = 1000

    @property
    def aval(self):
        raise NotImplementedError

    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: size_of(self.shape))

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def _concrete(self, why):
        """The value behind this tracer, for Python control flow; staging has none."""
        return self._trace.main.trace_type.concrete(self, why)

    def _number(self, why):
        """The value behind this tracer for a conversion to a Python number
        (float(), complex(), .item()): a transform whose derivative it would
        drop refuses it."""
        return self._trace.main.trace_type.number(self, why)

    def __bool__(self):
        return bool(self._concrete("bool()"))

    def __float__(self):
        return float(self._number("float()"))

    def __complex__(self):
        return complex(self._number("complex()"))

    def __int__(self):
        return int(self._concrete("int()"))

    def __index__(self):
        return int(self._concrete("use as an index"))

    def item(self):
        return self._number(".item()").item()

    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"a gpuprop tracer ({self.aval}) cannot be converted to a NumPy "
            f"array: inside grad/jit, compute with `gpuprop.numpy` (import "
            f"gpuprop.numpy as gnp) instead of numpy, so the operation is seen")

    __hash__ = object.__hash__

    def __repr__(self):
        return f"{type(self).__name__}<{self.aval}, level {self._trace.main.level}>"


class PrimalTracer(Tracer):
    """A tracer of a transform that computes the value itself (grad, jvp):
    it holds that value, `primal` (an array, or a tracer of a lower level),
    beside what its transform adds, and answers shape questions from it."""
    __slots__ = ("primal",)

    @property
    def aval(self):
        p = self.primal
        return p.aval if isinstance(p, Tracer) else ShapedArray(p.shape, p.dtype)

    # the primal answers directly: cheaper than building an abstract value
    shape = property(lambda self: self.primal.shape)
    dtype = property(lambda self: self.primal.dtype)


def concrete_primal(tracer, why):
    """The value behind a PrimalTracer, for Python control flow."""
    p = tracer.primal
    return p._concrete(why) if isinstance(p, Tracer) else p


class TracerControlFlowError(TypeError):
    """Python control flow or a conversion needed one value of a traced array
    that has none (staged by jit) or many (batched by vmap)."""


class UnexpectedTracerError(RuntimeError):
    """A tracer is used after the transform that made it has finished."""


def leaked(t):
    return UnexpectedTracerError(
        f"a tracer ({t.aval}) of a {t._trace.main.trace_type.name} transform that has "
        f"already finished was used: it leaked out of the function being "
        f"transformed (stored in a global, a closure or an object, or returned "
        f"through aux). Return it as an output of the function instead")


class Trace:
    """How one level processes primitives.  `pure` wraps a constant."""
    name = "?"

    def __init__(self, main):
        self.main = main
        # at the first level every value is concrete: a trace that computes
        # values (grad, jvp) evaluates primitives directly, without bind's search
        self.first_level = main.level == 1

    def pure(self, val):
        raise NotImplementedError

    lift = pure

    def full_raise(self, val):
        if not isinstance(val, Tracer):
            return self.pure(val)
        m = val._trace.main
        if m is self.main:
            return val
        if m.alive and m.level < self.main.level:
            return self.lift(val)
        raise leaked(val)

    def process_primitive(self, prim, args, params):
        """Apply prim to `args`: this trace's tracers, or values from lower
        levels, which are constants here (lift them with full_raise)."""
        raise NotImplementedError

    def process_custom_vjp(self, fun, fwd, bwd, tracers):
        return fun(*tracers)

    def process_custom_jvp(self, fun, jvp, tracers):
        return fun(*tracers)

    def process_checkpoint(self, fun, tracers):
        return fun(*tracers)

    @staticmethod
    def concrete(tracer, why):
        raise NotImplementedError

    @classmethod
    def number(cls, tracer, why):
        """The value for a conversion to a Python number; as `concrete` unless
        the transform differentiates through the tracer."""
        return cls.concrete(tracer, why)


class MainTrace:
    __slots__ = ("level", "trace_type", "trace", "alive", "data")

    def __init__(self, level, trace_type, data=None):
        self.level = level
        self.trace_type = trace_type
        self.alive = True
        self.data = data
        self.trace = trace_type(self)   # last: a trace may read the fields above


class _Stack(threading.local):
    def __init__(self):
        self.mains = []


_stack = _Stack()


@contextlib.contextmanager
def new_main(trace_type, data=None):
    """Open a new level for a transform; its tracers die when it closes."""
    mains = _stack.mains
    main = MainTrace(len(mains) + 1, trace_type, data)
    mains.append(main)
    try:
        yield main
    finally:
        mains.pop()
        main.alive = False
        # a trace refers to its main: dropping the way back breaks the cycle,
        # so what the level holds (a tape, saved values) is freed as soon as
        # nothing uses it, not at the next garbage collection
        main.trace = None


def tracing():
    """Whether a transform is active in this thread."""
    return bool(_stack.mains)


def top_main(args):
    """The highest level among the tracers in `args` (None: no tracer); a
    tracer of a finished transform is an error."""
    top = None
    for a in args:
        if isinstance(a, Tracer):
            m = a._trace.main
            if top is None or m.level > top.level:
                top = m
    if top is not None and not top.alive:
        raise leaked(next(a for a in args if isinstance(a, Tracer) and a._trace.main is top))
    return top


def call_at_top(args, fun, process, *rules):
    """fun(*args) when no transform traces args; else the highest level's
    trace handles the call: its method named `process` (process_custom_vjp,
    ...) gets fun, the rules, and the args raised to that level."""
    top = top_main(args)
    if top is None:
        return fun(*args)
    trace = top.trace
    return getattr(trace, process)(fun, *rules, [trace.full_raise(a) for a in args])


def bind(prim, args, params):
    top = top_main(args)
    if top is None:
        return eval_primitive(prim, args, params)
    return top.trace.process_primitive(prim, args, params)


def eval_primitive(prim, args, params):
    """Run a primitive on concrete arrays of the active backend."""
    be = backend.current()
    if backend.deleted:
        for a in args:
            backend.check_live(a, f"gnp.{prim.name}")
    ok = be.ok_types
    for a in args:
        if type(a) not in ok:
            args = _coerce_args(prim, args, be)
            break
    fn = prim.impls.get(be)
    if fn is None:
        fn = prim.impls[be] = prim.impl_for(be.xp)
    try:
        out = fn(*args, **params) if params else fn(*args)
    except (ValueError, TypeError, IndexError) as e:
        raise explain(prim, args, params, e) from e
    if debug.nans and has_nan(out) and not any(has_nan(a) for a in args):
        raise NaNError(f"gnp.{prim.name}({', '.join(str(aval(a)) for a in args)}"
                       f"{_fmt_params(params)}) produced a NaN from inputs without one "
                       f"(GPUPROP_DEBUG_NANS / gpuprop.debug_nans)")
    return out


class NaNError(FloatingPointError):
    """With NaN debugging on: the first primitive that produced a NaN."""


class _Debug(threading.local):
    """Per thread, as the trace state: debug_nans() in one thread leaves the
    others alone.  Every thread starts from GPUPROP_DEBUG_NANS."""
    nans = bool(int(os.environ.get("GPUPROP_DEBUG_NANS", "0") or 0))


debug = _Debug()


def has_nan(x):
    dt = getattr(x, "dtype", None)
    if dt is None or dt.kind not in "fc":
        return isinstance(x, float) and x != x
    return bool(backend.current().xp.isnan(x).any())


@contextlib.contextmanager
def debug_nans(enabled=True):
    """Raise NaNError at the first primitive (eager, in a backward pass, or in
    a jitted program) that turns NaN-free inputs into a NaN.  Slow: checks
    every result.  For the calling thread; GPUPROP_DEBUG_NANS=1 turns it on
    for every thread of the process."""
    saved, debug.nans = debug.nans, enabled
    try:
        yield
    finally:
        debug.nans = saved


def _coerce_args(prim, args, be):
    out = []
    for a in args:
        if type(a) in be.ok_types or isinstance(a, be.array_types):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.append(be.from_host(np.asarray(a)))
        elif isinstance(a, Tracer):     # only a dead tracer can get here
            raise leaked(a)
        else:
            raise backend.mismatch(f"gnp.{prim.name}", a, be)
    return tuple(out)


def explain(prim, args, params, err):
    """A failing implementation: let the shape rule name the problem, else
    add the operation and its arguments to the backend's message."""
    try:
        prim.abstract_eval(*map(aval, args), **params)
    except (ValueError, TypeError, IndexError) as rule_err:
        return rule_err
    described = ", ".join(str(aval(a)) for a in args)
    return type(err)(f"gnp.{prim.name}({described}{_fmt_params(params)}): {err}")


def _fmt_params(params):
    return "".join(f", {k}={v}" for k, v in params.items())

