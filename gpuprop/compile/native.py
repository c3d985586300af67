"""The CPU executor that compiles a whole program into native code: one C
function per run of compilable steps (a segment), in one extension module
built and cached as compile/cpu.py's kernels.

A segment computes fused elementwise loops (fusion.Kernel's loops, C as well
as C++: the exactly rounded operations), transcendental functions by NumPy's
own ufunc loops (called through their function pointers: bit for bit
NumPy's), matrix products by the cblas ?gemm of the BLAS that NumPy loaded
(found at run time, called as NumPy's matmul calls it), reductions in
NumPy's order (sums pairwise along a contiguous row and row by row over
leading axes; max, min and prod by NumPy's loops in their reduce form), and
reshapes as aliases.  Buffers follow executor.plan_memory: a value that
stays inside its segment lives in malloc'ed memory (reported to tracemalloc)
freed after its last reader; the others are NumPy arrays, and a donated
input is written in place where the plan says so.  Steps with no C form run as NumPy calls between
segments (generated Python, as executor.py's), so every program runs.

When the whole program is one segment, the compiled function itself is the
run function: it takes the list of input arrays and returns the list of
outputs, with no Python in between.
"""
import ctypes
import functools

import numpy as np

from ..core import size_of
from ..ir import Literal, Var
from ..numpy import _base
from ..numpy.products import matmul_p
from . import cpu, executor, fusion

NPY = cpu.NPY_TYPES
CT = fusion.C_TYPES
FLOATS = ("float32", "float64")

_PRELUDE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <numpy/ufuncobject.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

typedef void (*gemm_s_t)(int, int, int, BLASINT, BLASINT, BLASINT, float, const float*, BLASINT,
                         const float*, BLASINT, float, float*, BLASINT);
typedef void (*gemm_d_t)(int, int, int, BLASINT, BLASINT, BLASINT, double, const double*, BLASINT,
                         const double*, BLASINT, double, double*, BLASINT);
static gemm_s_t gemm_s = NULL;
static gemm_d_t gemm_d = NULL;
"""

# the reductions, once per float type T (C has no templates)
_REDUCTIONS = r"""
/* NumPy's pairwise summation of a contiguous row (numpy/_core/src/umath/loops_utils.h) */
static T pairwise_T(const T* a, long long n) {
    if (n < 8) {
        T res = -0.0;
        for (long long i = 0; i < n; ++i) res += a[i];
        return res;
    }
    if (n <= 128) {
        T r[8];
        for (int j = 0; j < 8; ++j) r[j] = a[j];
        long long i = 8;
        for (; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; ++j) r[j] += a[i + j];
        T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; ++i) res += a[i];
        return res;
    }
    long long n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_T(a, n2) + pairwise_T(a + n2, n - n2);
}

/* np.add.reduce over the trailing axes: the identity plus each row's pairwise sum */
static void sum_trailing_T(const T* x, T* out, long long outer, long long inner) {
    for (long long i = 0; i < outer; ++i) out[i] = (T)0 + pairwise_T(x + i * inner, inner);
}

/* np.add.reduce over the leading axes: rows added in order onto the identity */
static void sum_leading_T(const T* x, T* out, long long outer, long long inner) {
    for (long long j = 0; j < inner; ++j) out[j] = (T)0 + x[j];
    for (long long i = 1; i < outer; ++i)
        for (long long j = 0; j < inner; ++j) out[j] += x[i * inner + j];
}

/* ufunc.reduce over the trailing axes: each row's first element, then the
   loop in its reduce form (output as first operand, stride 0) over the rest */
static void reduce_trailing_T(PyUFuncGenericFunction f, void* data, const T* x, T* out,
                              long long kept, long long n) {
    for (long long i = 0; i < kept; ++i) {
        out[i] = x[i * n];
        char* a[] = {(char*)(out + i), (char*)(x + i * n + 1), (char*)(out + i)};
        npy_intp len = n - 1, s[] = {0, sizeof(T), 0};
        f(a, &len, s, data);
    }
}

/* ufunc.reduce over the leading axes: the first row, then the loop row by row */
static void reduce_leading_T(PyUFuncGenericFunction f, void* data, const T* x, T* out,
                             long long kept, long long n) {
    for (long long j = 0; j < kept; ++j) out[j] = x[j];
    for (long long i = 1; i < n; ++i) {
        char* a[] = {(char*)out, (char*)(x + i * kept), (char*)out};
        npy_intp len = kept, s[] = {sizeof(T), sizeof(T), sizeof(T)};
        f(a, &len, s, data);
    }
}
"""

_HELPERS = r"""
/* malloc and free, seen by tracemalloc as NumPy's buffers are */
static void* tracked(size_t n) {
    void* p = malloc(n);
    if (!p) PyErr_NoMemory();
    else PyTraceMalloc_Track(0, (uintptr_t)p, n);
    return p;
}

static void untracked(void* p) {
    if (p) { PyTraceMalloc_Untrack(0, (uintptr_t)p); free(p); }
}

static int find_loop(PyObject* numpy, const char* name, int nargs, const char* types,
                     PyUFuncGenericFunction* fn, void** data) {
    PyObject* u = PyObject_GetAttrString(numpy, name);
    if (!u) return -1;
    PyUFuncObject* uf = (PyUFuncObject*)u;
    for (int i = 0; i < uf->ntypes; ++i) {
        int j = 0;
        while (j < nargs && uf->types[i * nargs + j] == types[j]) ++j;
        if (j == nargs) {
            *fn = uf->functions[i];
            *data = uf->data ? uf->data[i] : NULL;
            Py_DECREF(u);
            return 0;
        }
    }
    Py_DECREF(u);
    PyErr_Format(PyExc_RuntimeError, "numpy.%s has no loop of the types asked", name);
    return -1;
}

/* An input as a C-contiguous aligned array of its dtype and size (new reference). */
static PyArrayObject* as_input(PyObject* x, int type, npy_intp size) {
    PyArrayObject* a = (PyArrayObject*)PyArray_FROMANY(x, type, 0, 0,
                                                       NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (a && PyArray_SIZE(a) != size) {
        PyErr_Format(PyExc_ValueError, "native program: an input has %zd elements, %zd expected",
                     (Py_ssize_t)PyArray_SIZE(a), (Py_ssize_t)size);
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* `buf` (new reference) when it can take a result in place, else a new array. */
static PyObject* as_output(PyObject* buf, int type, int nd, const npy_intp* dims, npy_intp size) {
    if (buf && PyArray_Check(buf) && PyArray_IS_C_CONTIGUOUS((PyArrayObject*)buf)
            && PyArray_ISWRITEABLE((PyArrayObject*)buf) && PyArray_TYPE((PyArrayObject*)buf) == type
            && PyArray_SIZE((PyArrayObject*)buf) == size) {
        Py_INCREF(buf);
        return buf;
    }
    return PyArray_SimpleNew(nd, (npy_intp*)dims, type);
}

/* An array of shape dims over the data of array `a` (a reshape), new reference. */
static PyObject* shaped(PyObject* a, int nd, const npy_intp* dims) {
    if (PyArray_NDIM((PyArrayObject*)a) == nd) {
        int same = 1;
        for (int d = 0; d < nd; ++d) same &= PyArray_DIMS((PyArrayObject*)a)[d] == dims[d];
        if (same) { Py_INCREF(a); return a; }
    }
    PyArray_Dims shape = {(npy_intp*)dims, nd};
    return PyArray_Newshape((PyArrayObject*)a, &shape, NPY_CORDER);
}

static PyObject* set_blas(PyObject* self, PyObject* args) {
    unsigned long long s, d;
    if (!PyArg_ParseTuple(args, "KK", &s, &d)) return NULL;
    gemm_s = (gemm_s_t)s;
    gemm_d = (gemm_d_t)d;
    Py_RETURN_NONE;
}
"""


# ---- the BLAS NumPy loaded ------------------------------------------------------
_GEMM_NAMES = [("scipy_cblas_{}gemm64_", "long long"), ("cblas_{}gemm64_", "long long"),
               ("scipy_cblas_{}gemm", "int"), ("cblas_{}gemm", "int")]


@functools.lru_cache(maxsize=None)
def blas():
    """(address of sgemm, of dgemm, C type of their integers) in the BLAS
    library this process loaded for NumPy, or None when none is found."""
    try:
        with open("/proc/self/maps") as fh:
            paths = list(dict.fromkeys(line.split()[-1] for line in fh
                                       if "blas" in line.rsplit("/", 1)[-1].lower()))
    except OSError:
        return None
    # NumPy's own first (numpy.libs, numpy/.libs): SciPy may have loaded another
    paths.sort(key=lambda path: "numpy" not in path)
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for pattern, int_type in _GEMM_NAMES:
            try:
                s, d = (getattr(lib, pattern.format(t)) for t in "sd")
            except AttributeError:
                continue
            address = [ctypes.cast(f, ctypes.c_void_p).value for f in (s, d)]
            return address[0], address[1], int_type
    return None


# ---- which steps compile -----------------------------------------------------------
def _origin(v, made):
    """The value v is a transpose or reshape (chain) of: equal origins share memory."""
    while isinstance(v, Var) and v in made and made[v].prim in (_base.transpose_p, _base.reshape_p):
        v = made[v].inputs[0]
    return v


def _swapped(v, made):
    """The source of v when v is the transpose of a matrix, else None."""
    e = made.get(v)
    if e is not None and e.prim is _base.transpose_p and e.params["axes"] == (1, 0):
        return e.inputs[0]
    return None


def _gemm(e, made):
    """Whether NumPy's matmul runs equation e as one ?gemm: matrices of one
    float dtype, every dimension above one, not x @ x.T (NumPy's syrk)."""
    a, b = e.inputs
    if blas() is None or not all(isinstance(v, Var) for v in e.inputs):
        return False
    if {a.aval.dtype.name, b.aval.dtype.name} - {e.out.aval.dtype.name} or \
            e.out.aval.dtype.name not in FLOATS:
        return False
    if len(a.aval.shape) != 2 or len(b.aval.shape) != 2 or min(a.aval.shape + b.aval.shape) < 2:
        return False
    return _origin(a, made) is not _origin(b, made)


def _reduce_layout(e):
    """'trailing' or 'leading' for a float reduction over trailing or leading
    axes of a non-empty array, else None (NumPy runs it)."""
    x = e.inputs[0]
    if not e.prim.reduce_ufunc or not isinstance(x, Var) or x.aval.dtype != e.out.aval.dtype or \
            x.aval.dtype.name not in FLOATS or size_of(x.aval.shape) == 0:
        return None
    nd, axes = len(x.aval.shape), e.params["axis"]
    axes = tuple(range(nd)) if axes is None else tuple(sorted(axes))
    if not axes:
        return None
    if axes == tuple(range(nd - len(axes), nd)):
        return "trailing"
    return "leading" if axes == tuple(range(len(axes))) else None


def _ufunc_types(e):
    """NumPy's type characters of e's loop when e is a transcendental ufunc on
    one float dtype whose operands are full-size or single elements, else None."""
    if e.prim not in fusion.TRANSCENDENTAL or not e.prim.ufunc:
        return None
    dt = e.out.aval.dtype
    ins = [v for v in e.inputs if isinstance(v, Var)]
    if dt.name not in FLOATS or any(v.aval.dtype != dt or size_of(v.aval.shape) not in
                                    (1, size_of(e.out.aval.shape)) for v in ins):
        return None
    return _loop_types(e.prim.name, dt, len(e.inputs))


def _loop_types(name, dt, nin):
    """The type characters of NumPy's loop of ufunc `name` on dtype dt, if it has one."""
    types = dt.char * (nin + 1)
    return types if f"{types[:-1]}->{types[-1]}" in getattr(np, name).types else None


class Plan:
    """The steps of a program, each with its native kind (None: a NumPy call)."""

    def __init__(self, prog):
        made = {e.out: e for e in prog.eqns}
        readers = {}
        for e in prog.eqns:
            for v in e.inputs:
                readers.setdefault(v, []).append(e)
        outs = set(v for v in prog.outvars if isinstance(v, Var))
        gemms = {e for e in prog.eqns if e.prim is matmul_p and _gemm(e, made)}
        folded = {v for v in made if _swapped(v, made) is not None and v not in outs
                  and all(r in gemms for r in readers.get(v, ()))}
        self.steps, self.kinds = [], []
        for eqns, kernel in fusion.kernels(prog, fusion.exact):
            e = eqns[0]
            if kernel is not None and _native_loop(kernel):
                self._add(executor.Step(kernel=kernel), "loop")
            elif kernel is not None:
                for e in eqns:
                    single = fusion.Kernel([e], {e.out})
                    if _native_loop(single):
                        self._add(executor.Step(kernel=single), "loop")
                    else:
                        self._add(executor.Step(eqn=e), None)
            elif e.prim.multiple_results:
                self._add(executor.Step(eqn=e), None)
            elif e.out in folded:
                continue
            elif fusion.exact(e) and _native_loop(fusion.Kernel([e], {e.out})):
                self._add(executor.Step(kernel=fusion.Kernel([e], {e.out})), "loop")
            elif e in gemms:
                st = executor.Step(eqn=e)
                st.inputs = [_swapped(v, made) if v in folded else v for v in e.inputs]
                self._add(st, "gemm")
            elif e.prim is _base.sum_p and _reduce_layout(e):
                self._add(executor.Step(eqn=e), "sum")
            elif _reduce_layout(e) and _loop_types(e.prim.reduce_ufunc, e.out.aval.dtype, 2):
                self._add(executor.Step(eqn=e), "reduce")
            elif e.prim is _base.reshape_p and e.out.aval.dtype.name in NPY:
                self._add(executor.Step(eqn=e), "alias")
            elif _ufunc_types(e):
                self._add(executor.Step(eqn=e), "ufunc")
            else:
                self._add(executor.Step(eqn=e), None)
        # a segment of aliases alone computes nothing: NumPy's reshape is as cheap
        for seg in self.segments():
            if all(self.kinds[k] == "alias" for k in seg):
                for k in seg:
                    self.kinds[k] = None

    def _add(self, step, kind):
        self.steps.append(step)
        self.kinds.append(kind)

    def segments(self):
        """Lists of consecutive native step indices."""
        out, run = [], []
        for k, kind in enumerate(self.kinds):
            if kind is None:
                if run:
                    out.append(run)
                run = []
            else:
                run.append(k)
        return out + ([run] if run else [])


# ---- code generation -------------------------------------------------------------
def _dims(shape):
    return "{" + ", ".join(str(d) for d in shape) + "}" if shape else "{0}"


class Storage:
    """Where each value lives: a physical buffer id per Var (views and
    planned reuse share one), and which buffers are NumPy arrays."""

    def __init__(self, prog, plan, outs):
        self.phys = {}
        seg_of = {}
        for s, seg in enumerate(plan.segments()):
            seg_of.update((k, s) for k in seg)
        where = {}              # phys -> set of places (segment or ('py', step)) touching it
        for v in list(prog.invars) + list(prog.consts):
            self.phys[v] = v
            where[v] = {"outside"}
        for k, st in enumerate(plan.steps):
            place = seg_of.get(k, ("py", k))
            for v in st.inputs:
                if isinstance(v, Var):
                    where[self.phys[v]].add(place)
            for j, o in enumerate(st.outs):
                buf = outs[k][j]
                if st.eqn is not None and executor.is_view(st.eqn):
                    self.phys[o] = self.phys[st.eqn.inputs[0]]
                else:
                    self.phys[o] = self.phys[buf] if buf is not None else o
                where.setdefault(self.phys[o], set()).add(place)
        for v in prog.outvars:
            if isinstance(v, Var):
                where[self.phys[v]].add("outside")
        self.local = {p for p, places in where.items() if len(places) == 1
                      and isinstance(next(iter(places)), int)}


class Segment:
    """The C function of one segment: its inputs (values from outside and
    the buffers the plan gives it) and its results (values read later).
    With `invars` (the whole program as one segment) it takes (constants,
    list of the program's inputs) and returns the list of its outputs."""

    def __init__(self, name, plan, idx, storage, outs, results, invars=(), consts=()):
        self.name, self.plan, self.idx, self.st, self.outs = name, plan, idx, storage, outs
        inside = {o for k in idx for o in plan.steps[k].outs}
        ins = []
        for k in idx:
            ins += [v for v in plan.steps[k].inputs if isinstance(v, Var) and v not in inside]
            ins += [b for b in outs[k] if b is not None and b not in inside]
        self.invars = list(invars)
        self.used = set(ins)
        self.inputs = self.invars + [v for v in dict.fromkeys(ins) if v in consts] \
            if invars else list(dict.fromkeys(ins))
        self.results = results

    def source(self, loops):
        st, body, heap, owned = self.st, [], {}, []
        ptr, obj = {}, {}           # Var -> its data pointer, its PyObject*
        pobj = {}                   # phys made here -> its PyObject*
        for i, v in enumerate(self.inputs):
            if v not in self.used:      # an input of the program this code never reads
                continue
            body.append(f"  if (!(in[{i}] = as_input(arg[{i}], {NPY[v.aval.dtype.name]}, "
                        f"{size_of(v.aval.shape)}))) goto done;")
            ptr[v] = f"(char*)PyArray_DATA(in[{i}])"
            obj[v] = f"(PyObject*)in[{i}]"
        last = {}                   # local phys -> the last step touching it
        for k in self.idx:
            for v in self.plan.steps[k].inputs + self.plan.steps[k].outs:
                if isinstance(v, Var) and st.phys[v] in st.local:
                    last[st.phys[v]] = k
        for k in self.idx:
            step, kind = self.plan.steps[k], self.plan.kinds[k]
            for o, given in zip(step.outs, self.outs[k]):
                p = st.phys[o]
                if kind == "alias":
                    ptr[o] = ptr[step.eqn.inputs[0]]
                    obj[o] = obj.get(step.eqn.inputs[0])
                elif p in st.local:
                    if p not in heap:
                        heap[p] = f"h{len(heap)}"
                        body.append(f"  if (!({heap[p]} = tracked({max(_nbytes(o), 1)}))) "
                                    f"goto done;")
                    ptr[o] = f"(char*){heap[p]}"
                elif given is not None and given not in self.inputs:
                    ptr[o] = f"(char*)PyArray_DATA((PyArrayObject*){pobj[p]})"
                    obj[o] = pobj[p]
                else:       # a new array, or the given buffer when it can take the result
                    buf = ("NULL" if given is None else
                           f"(PyObject*)in[{self.inputs.index(given)}]")
                    name = f"o{len(owned)}"
                    owned.append(name)
                    body.append(f"  {{ static const npy_intp d[] = {_dims(o.aval.shape)}; "
                                f"if (!({name} = as_output({buf}, {NPY[o.aval.dtype.name]}, "
                                f"{len(o.aval.shape)}, d, {size_of(o.aval.shape)}))) goto done; }}")
                    pobj[p] = obj[o] = name
                    ptr[o] = f"(char*)PyArray_DATA((PyArrayObject*){name})"
            body.append(self._step(step, kind, ptr, loops))
            for p, h in heap.items():       # the plan's frees: after the last reader
                if last[p] == k:
                    body.append(f"  untracked({h}); {h} = NULL;")
        n_in, res = len(self.inputs), []
        for j, v in enumerate(self.results):
            if v in self.invars:
                i = self.invars.index(v)
                res.append(f"(Py_INCREF(arg[{i}]), arg[{i}])")
            else:
                body.append(f"  static const npy_intp d{j}[] = {_dims(v.aval.shape)};")
                res.append(f"shaped({obj[v]}, {len(v.aval.shape)}, d{j})")
        make, put = ("PyList_New", "PyList_SET_ITEM") if self.invars else ("PyTuple_New",
                                                                            "PyTuple_SET_ITEM")
        body.append(f"  if (!(result = {make}({len(res)}))) goto done;")
        body += [f"  {{ PyObject* r = {r}; if (!r) {{ Py_CLEAR(result); goto done; }} "
                 f"{put}(result, {j}, r); }}" for j, r in enumerate(res)]
        head = [f"static PyObject* {self.name}(PyObject* self, PyObject* const* a, "
                f"Py_ssize_t n) {{"]
        if self.invars:
            m = len(self.invars)
            head += [f"  if (n != 2 || !PyTuple_Check(a[0]) || !PyList_Check(a[1]) || "
                     f"PyList_GET_SIZE(a[1]) != {m}) {{",
                     '    PyErr_SetString(PyExc_TypeError, "native program: (constants, list '
                     f'of {m} inputs) expected"); return NULL; }}',
                     f"  PyObject* arg[{max(n_in, 1)}];",
                     f"  for (int i = 0; i < {m}; ++i) arg[i] = PyList_GET_ITEM(a[1], i);",
                     f"  for (int i = {m}; i < {n_in}; ++i) "
                     f"arg[i] = PyTuple_GET_ITEM(a[0], i - {m});"]
        else:
            head += [f"  if (n != {n_in}) {{ PyErr_SetString(PyExc_TypeError, "
                     f'"native segment: {n_in} arguments expected"); return NULL; }}',
                     "  PyObject* const* arg = a;"]
        head.append(f"  PyArrayObject* in[{max(n_in, 1)}] = {{NULL}};")
        head += [f"  PyObject* {o} = NULL;" for o in owned]
        head += [f"  void* {h} = NULL;" for h in heap.values()]
        head.append("  PyObject* result = NULL;")
        tail = ["done:"] + [f"  Py_XDECREF(in[{i}]);" for i in range(n_in)]
        tail += [f"  Py_XDECREF({o});" for o in owned]
        tail += [f"  untracked({h});" for h in heap.values()]
        return "\n".join(head + body + tail + ["  return result;", "}", ""])

    def _step(self, step, kind, ptr, loops):
        if kind == "alias":
            return f"  /* {step.eqn.prim.name}: an alias */"
        if kind == "loop":
            ins = ", ".join(ptr[v] for v in step.inputs) or "NULL"
            outs = ", ".join(ptr[o] for o in step.outs)
            return (f"  {{ char* i_[] = {{{ins}}}; char* o_[] = {{{outs}}}; "
                    f"{step.kernel.name}(i_, o_); }}")
        e = step.eqn
        T = CT[e.out.aval.dtype.name]
        if kind == "gemm":      # as NumPy's matmul: row-major, a transpose as a flag
            (a, b), o = step.inputs, e.out
            m, kk = e.inputs[0].aval.shape
            n = e.inputs[1].aval.shape[1]
            ta, tb = a is not e.inputs[0], b is not e.inputs[1]
            fn = "gemm_s" if T == "float" else "gemm_d"
            return (f"  {fn}(101, {112 if ta else 111}, {112 if tb else 111}, {m}, {n}, {kk}, 1, "
                    f"(const {T}*){ptr[a]}, {m if ta else kk}, (const {T}*){ptr[b]}, "
                    f"{kk if tb else n}, 0, ({T}*){ptr[o]}, {n});")
        if kind == "sum":
            x, layout = e.inputs[0], _reduce_layout(e)
            kept = size_of(e.out.aval.shape)
            summed = size_of(x.aval.shape) // kept
            outer, inner = (kept, summed) if layout == "trailing" else (summed, kept)
            return (f"  sum_{layout}_{T}((const {T}*){ptr[x]}, ({T}*){ptr[e.out]}, "
                    f"{outer}, {inner});")
        if kind == "reduce":    # as NumPy's reduce: from the first row, its loop over the rest
            x, layout = e.inputs[0], _reduce_layout(e)
            lp = loops.setdefault((e.prim.reduce_ufunc, _loop_types(e.prim.reduce_ufunc,
                                                                   e.out.aval.dtype, 2)),
                                  f"loop{len(loops)}")
            kept = size_of(e.out.aval.shape)
            summed = size_of(x.aval.shape) // kept
            return (f"  reduce_{layout}_{T}({lp}, {lp}_data, (const {T}*){ptr[x]}, "
                    f"({T}*){ptr[e.out]}, {kept}, {summed});")
        # NumPy's ufunc loop over the elements; a single-element operand has stride 0
        lp = loops.setdefault((e.prim.name, _ufunc_types(e)), f"loop{len(loops)}")
        size, args, steps, lits = size_of(e.out.aval.shape), [], [], []
        for j, v in enumerate(e.inputs):
            if isinstance(v, Literal):
                lits.append(f"static const {T} lit{j} = {fusion._literal(v.value, T)};")
                args.append(f"(char*)&lit{j}")
                steps.append("0")
            else:
                args.append(ptr[v])
                steps.append("0" if size_of(v.aval.shape) == 1 and size != 1 else f"sizeof({T})")
        args.append(ptr[e.out])
        steps.append(f"sizeof({T})")
        return (f"  {{ {' '.join(lits)} char* a_[] = {{{', '.join(args)}}}; npy_intp n_ = {size}; "
                f"npy_intp s_[] = {{{', '.join(steps)}}}; {lp}(a_, &n_, s_, {lp}_data); }}")


def _bias_split(k):
    """When every input of kernel k has k's shape, one element, or k's
    trailing axes from some axis on only (a bias): that axis (None: some
    input broadcasts otherwise)."""
    S = tuple(k.shape)
    padded = [(1,) * (len(S) - len(v.aval.shape)) + tuple(v.aval.shape) for v in k.inputs]
    partial = [p for p in padded if p != S and size_of(p) != 1]
    if not partial:
        return len(S)
    split = max(next(d for d, n in enumerate(p) if n != 1) for p in partial)
    if any(p[split:] != S[split:] or size_of(p[:split]) != 1 for p in partial):
        return None
    return split


def _native_loop(k):
    """Whether kernel k runs well as a native loop: small, or vectorising
    (no input broadcast but as a bias); a large group that indexes a
    broadcast input by division is left to NumPy's broadcasting loops."""
    return cpu.accepts(k) or _bias_split(k) is not None


def _loop_function(k):
    """The C function of kernel k.  When every input either has k's shape,
    one element, or k's trailing axes only (a bias), two nested loops whose
    inner one runs along memory and vectorises; else Kernel's own loop, which
    indexes a broadcast input by division."""
    S = tuple(k.shape)
    padded = [(1,) * (len(S) - len(v.aval.shape)) + tuple(v.aval.shape) for v in k.inputs]
    split = _bias_split(k)
    if split is None or split == len(S):
        return k.cpp_function()
    outer, inner = size_of(S[:split]), size_of(S[split:])
    pointers = "".join(f"  const {CT[v.aval.dtype.name]}* p_in{i} = "
                       f"(const {CT[v.aval.dtype.name]}*)ins[{i}];\n"
                       for i, v in enumerate(k.inputs)) + "".join(
        f"  {CT[v.aval.dtype.name]}* p_out{i} = ({CT[v.aval.dtype.name]}*)outs[{i}];\n"
        for i, v in enumerate(k.outputs))
    body = [f"const {CT[v.aval.dtype.name]} in{i} = p_in{i}["
            f"{'i' if p == S else ('0' if size_of(p) == 1 else 'j')}];"
            for i, (v, p) in enumerate(zip(k.inputs, padded))]
    body += [f"{CT[v.aval.dtype.name]} out{i};" for i, v in enumerate(k.outputs)]
    body += k.body.split("\n") + [f"p_out{i}[i] = out{i};" for i in range(len(k.outputs))]
    return (f"static void {k.name}(char** ins, char** outs) {{\n{pointers}"
            f"  for (long long r = 0; r < {outer}LL; ++r)\n"
            f"    for (long long j = 0; j < {inner}LL; ++j) {{\n"
            f"      const long long i = r * {inner}LL + j;\n"
            + "".join(f"      {line}\n" for line in body) + "    }\n}\n")


def _nbytes(v):
    return size_of(v.aval.shape) * v.aval.dtype.itemsize


def module_source(plan, segments):
    """The C source of the module holding the segments' functions."""
    loops, kernels, funcs = {}, {}, []
    for seg in segments:
        funcs.append(seg.source(loops))
        for k in seg.idx:
            if plan.kinds[k] == "loop":
                kernels.setdefault(plan.steps[k].kernel.name, _loop_function(plan.steps[k].kernel))
    int_type = blas()[2] if blas() else "long long"
    parts = [_PRELUDE.replace("BLASINT", int_type), _REDUCTIONS.replace("T", "float"),
             _REDUCTIONS.replace("T", "double"), _HELPERS] + list(kernels.values())
    init = []
    for (name, types), lp in loops.items():
        parts.append(f"static PyUFuncGenericFunction {lp}; static void* {lp}_data;")
        codes = ", ".join(NPY[np.dtype(c).name] for c in types)
        init.append(f'  {{ static const char t[] = {{{codes}}}; if (find_loop(numpy, "{name}", '
                    f'{len(types)}, t, &{lp}, &{lp}_data) < 0) '
                    f'{{ Py_DECREF(numpy); return NULL; }} }}')
    parts += funcs
    methods = [f'  {{"{s.name}", (PyCFunction)(void(*)(void)){s.name}, METH_FASTCALL, NULL}},'
               for s in segments]
    parts.append("static PyMethodDef methods[] = {\n" + "\n".join(methods)
                 + '\n  {"set_blas", set_blas, METH_VARARGS, NULL},\n  {NULL, NULL, 0, NULL}\n};')
    parts.append(f'static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "{cpu.MODULE}", '
                 f"NULL, -1, methods}};\n"
                 f"PyMODINIT_FUNC PyInit_{cpu.MODULE}(void) {{\n"
                 f"  import_array();\n  import_umath();\n"
                 f'  PyObject* numpy = PyImport_ImportModule("numpy");\n'
                 f"  if (!numpy) return NULL;\n" + "\n".join(init) +
                 "\n  Py_DECREF(numpy);\n  return PyModule_Create(&module);\n}\n")
    return "\n".join(parts)


def generate(prog, donate=()):
    """A run function for `prog` on NumPy arrays, as executor.generate's
    (list of inputs -> list of outputs, with `source`, `launches`, `kernels`),
    or None when nothing of it compiles (the caller uses the NumPy executor)."""
    plan = Plan(prog)
    segs = plan.segments()
    if not segs:
        return None
    outs, _ = executor.plan_memory(prog, plan.steps, donate, fused_out=True)
    storage = Storage(prog, plan, outs)
    name = executor.Namer(prog)
    direct = (len(segs) == 1 and len(segs[0]) == len(plan.steps)
              and all(isinstance(v, Var) and v not in prog.consts for v in prog.outvars))
    if direct:
        segments = [Segment("run", plan, segs[0], storage, outs, list(prog.outvars),
                            prog.invars, prog.consts)]
    else:
        seg_of = {k: s for s, idx in enumerate(segs) for k in idx}
        segments = []
        for s, idx in enumerate(segs):
            later = {v for v in prog.outvars if isinstance(v, Var)}
            for k, st in enumerate(plan.steps):
                if seg_of.get(k) != s:
                    later.update(st.inputs)
                    later.update(b for b in outs[k] if b is not None)
            made = dict.fromkeys(o for k in idx for o in plan.steps[k].outs)
            segments.append(Segment(f"seg{s}", plan, idx, storage, outs,
                                    [o for o in made if o in later]))
    source = module_source(plan, segments)
    # C and -O2: the headers compile faster than C++'s and the long function
    # of a program in about half the time of -O3; the dynamic cost model lets
    # loops vectorise behind a run-time check that their buffers do not overlap
    module = cpu.load(source, lang="c", opt=("-O2", "-fvect-cost-model=dynamic"))
    if module is None:
        return None
    if blas() is not None:
        module.set_blas(*blas()[:2])
    if direct:
        consts = tuple(prog.consts[v] for v in segments[0].inputs[len(prog.invars):])
        run = functools.partial(module.run, consts)
        run.source, run.launches = source, 1
    else:
        run = _glue(prog, plan, segments, outs, name, module)
        run.source += "\n\n" + source
    run.kernels = len(segments)
    return run


def _glue(prog, plan, segments, outs, name, module):
    """The generated Python calling the segments and, between them, NumPy."""
    ns = name.namespace
    ns["xp"] = np
    first = {seg.idx[0]: seg for seg in segments}
    lines, stmts = ["def run(leaves):"], []
    if prog.invars:
        lines.append(f"    {', '.join(name(v) for v in prog.invars)}, = leaves")
    for k, st in enumerate(plan.steps):
        if k in first:
            seg = first[k]
            ns[seg.name] = getattr(module, seg.name)
            lhs = "".join(f"{name(v)}, " for v in seg.results)
            call = f"{seg.name}({', '.join(name(v) for v in seg.inputs)})"
            stmts.append((f"{lhs}= {call}" if lhs else call, seg.inputs, seg.results))
        elif plan.kinds[k] is None:
            buf = outs[k][0]
            stmts.append((f"{executor.targets(st.eqn, name)} = "
                          f"{executor.call_source(st.eqn, k, name, buf, ns)}",
                          list(st.inputs) + ([buf] if buf is not None else []),
                          list(st.eqn.outs)))
    keep = set(prog.outvars) | set(prog.consts)
    last = {}
    for s, (_, reads, _) in enumerate(stmts):
        last.update((v, s) for v in reads if isinstance(v, Var))
    for s, (text, _, made) in enumerate(stmts):
        lines.append(f"    {text}")
        gone = [name(v) for v, at in last.items() if at == s and v not in keep]
        gone += [name(v) for v in made if v not in last and v not in keep]
        if gone:
            lines.append(f"    del {', '.join(dict.fromkeys(gone))}")
    rets = [name(v) + (".copy()" if v in prog.consts else "") for v in prog.outvars]
    lines.append(f"    return [{', '.join(rets)}]")
    source = "\n".join(lines)
    exec(compile(source, f"<gpuprop native {prog.name}>", "exec"), ns)
    run = ns["run"]
    run.source, run.launches = source, len(stmts)
    return run
