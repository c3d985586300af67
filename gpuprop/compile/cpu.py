"""C++ kernels for the CPU: the fused groups of a program compiled into one
small C++ extension module with the system's C++ compiler (`FUSER`).

Calling NumPy once per operation costs about a microsecond each, whatever the
array size; a fused group costs one call.  Used for small groups (where call
overhead dominates) when a compiler and Python's headers are present;
GPUPROP_FUSION=0 turns all fusion off.  Modules are cached on disk by the hash of
their source, so each program compiles once per machine.
"""
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading

import numpy as np

from ..core import size_of
from .fusion import Fuser, exact

log = logging.getLogger("gpuprop.jit")

MAX_ELEMENTS = 8192     # above this, NumPy's loops beat a C++ loop that indexes broadcasts
NPY_TYPES = {"float32": "NPY_FLOAT32", "float64": "NPY_FLOAT64", "bool": "NPY_BOOL",
             "uint32": "NPY_UINT32"}

_PRELUDE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <cmath>
using namespace std;

/* Convert the inputs (C-contiguous, right dtype); write each output into the
   buffer given for it after the inputs (when it is a C-contiguous writable
   array of the right type and size: possibly an input read at the same
   element), else into a new array; run. */
static PyObject* run_kernel(PyObject* const* args, Py_ssize_t nargs, int nin,
                            const int* in_types, const npy_intp* in_sizes, int nout,
                            const int* out_types, int nd, const npy_intp* dims,
                            void (*fn)(char**, char**)) {
    if (nargs != nin && nargs != nin + nout) {
        PyErr_Format(PyExc_TypeError, "fused kernel: %d inputs (and optionally %d "
                     "output buffers) expected", nin, nout);
        return NULL;
    }
    npy_intp size = 1;
    for (int d = 0; d < nd; ++d) size *= dims[d];
    PyArrayObject* ins[64]; char* in_data[64]; char* out_data[64];
    PyObject* outs = PyTuple_New(nout);
    if (!outs) return NULL;
    int k = 0;
    for (; k < nin; ++k) {
        ins[k] = (PyArrayObject*)PyArray_FROMANY(args[k], in_types[k], 0, 0,
                                                 NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
        if (!ins[k]) goto fail;
        if (PyArray_SIZE(ins[k]) != in_sizes[k]) {
            PyErr_Format(PyExc_ValueError, "fused kernel: input %d has %zd elements, "
                         "%zd expected", k, (Py_ssize_t)PyArray_SIZE(ins[k]),
                         (Py_ssize_t)in_sizes[k]);
            ++k; goto fail;
        }
        in_data[k] = (char*)PyArray_DATA(ins[k]);
    }
    for (int j = 0; j < nout; ++j) {
        PyObject* o = nargs > nin ? args[nin + j] : Py_None;
        if (o != Py_None && PyArray_Check(o)
                && PyArray_IS_C_CONTIGUOUS((PyArrayObject*)o)
                && PyArray_ISWRITEABLE((PyArrayObject*)o)
                && PyArray_TYPE((PyArrayObject*)o) == out_types[j]
                && PyArray_SIZE((PyArrayObject*)o) == size) {
            Py_INCREF(o);
        } else {
            o = PyArray_SimpleNew(nd, (npy_intp*)dims, out_types[j]);
            if (!o) goto fail;
        }
        PyTuple_SET_ITEM(outs, j, o);
        out_data[j] = (char*)PyArray_DATA((PyArrayObject*)o);
    }
    Py_BEGIN_ALLOW_THREADS
    fn(in_data, out_data);
    Py_END_ALLOW_THREADS
    for (int j = 0; j < nin; ++j) Py_DECREF(ins[j]);
    return outs;
fail:
    for (int j = 0; j < k; ++j) Py_XDECREF(ins[j]);
    Py_DECREF(outs);
    return NULL;
}
"""


def _list(xs):
    return "{" + ", ".join(xs) + "}" if xs else "{0}"


def module_source(modname, kernels):
    parts = [_PRELUDE]
    methods = []
    for k in kernels:
        parts.append(k.cpp_function())
        in_types = [NPY_TYPES[v.aval.dtype.name] for v in k.inputs]
        sizes = [f"{size_of(v.aval.shape)}" for v in k.inputs]
        out_types = [NPY_TYPES[v.aval.dtype.name] for v in k.outputs]
        dims = [str(d) for d in k.shape]
        parts.append(
            f"static PyObject* py_{k.name}(PyObject* self, PyObject* const* args, Py_ssize_t n) {{\n"
            f"  static const int it[] = {_list(in_types)};\n"
            f"  static const npy_intp is[] = {_list(sizes)};\n"
            f"  static const int ot[] = {_list(out_types)};\n"
            f"  static const npy_intp dims[] = {_list(dims)};\n"
            f"  return run_kernel(args, n, {len(k.inputs)}, it, is, {len(k.outputs)}, ot, "
            f"{len(k.shape)}, dims, {k.name});\n}}\n")
        methods.append(f'  {{"{k.name}", (PyCFunction)(void(*)(void))py_{k.name}, '
                       f'METH_FASTCALL, NULL}},')
    parts.append("static PyMethodDef methods[] = {\n" + "\n".join(methods)
                 + "\n  {NULL, NULL, 0, NULL}\n};\n")
    parts.append(f'static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "{modname}", '
                 f'NULL, -1, methods}};\n'
                 f"PyMODINIT_FUNC PyInit_{modname}(void) {{\n"
                 f"  import_array();\n  return PyModule_Create(&module);\n}}\n")
    return "\n".join(parts)


def compiler():
    """The C++ compiler to use, or None when CPU fusion is unavailable."""
    inc = sysconfig.get_paths().get("include", "")
    if not os.path.exists(os.path.join(inc, "Python.h")):
        return None
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


def cache_dir():
    """$GPUPROP_CACHE_DIR, else ~/.cache/gpuprop/kernels, else (a read-only
    home) a folder of this user's under the temporary directory."""
    d = os.environ.get("GPUPROP_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "gpuprop", "kernels")
    try:
        os.makedirs(d, exist_ok=True)
    except OSError:
        d = os.path.join(tempfile.gettempdir(), f"gpuprop-kernels-{os.getuid()}")
        os.makedirs(d, exist_ok=True)
    return d


_loaded = {}
_lock = threading.Lock()


def accepts(kernel):
    """Small groups; above MAX_ELEMENTS only groups whose inputs all have the
    group's shape (or one element): the compiler vectorises those loops, not
    ones that index a broadcast input."""
    if len(kernel.inputs) > 64 or len(kernel.outputs) > 64:
        return False
    return (size_of(kernel.shape) <= MAX_ELEMENTS
            or all(kernel._index(v.aval.shape) in ("i", "0") for v in kernel.inputs))


def _cpu_id():
    """What compiled code may depend on (-march=native): the CPU's model and flags."""
    try:
        with open("/proc/cpuinfo") as fh:
            info = [line for line in fh if line.startswith(("model name", "flags"))][:2]
    except OSError:
        info = []
    return hashlib.sha1("".join(info).encode()).hexdigest()[:8]


def build(kernels):
    """The compiled module holding `kernels`, or None if compiling failed."""
    return load(module_source(MODULE, kernels))


MODULE = "@MODULE@"     # in a source given to `load`: the module's name, from its hash


def load(source, lang="c++", opt=("-O3",)):
    """The extension module compiled from `source` in language `lang` ("c++"
    or "c", whose headers compile in a third of the time) with the
    optimisation flags `opt` (its name is written MODULE in it), or None
    when there is no compiler or compiling failed.
    Cached on disk by the hash of the source, the Python and NumPy versions
    and the CPU; with no writable cache folder it is loaded from a temporary one."""
    cxx = compiler()
    if cxx is None:
        return None
    tag = f"{sys.implementation.cache_tag}-{np.__version__}-{_cpu_id()}"
    key = tag + lang + " ".join(opt) + source
    modname = "gpuprop_" + hashlib.sha1(key.encode()).hexdigest()[:16]
    with _lock:
        if modname in _loaded:
            return _loaded[modname]
        try:
            path = os.path.join(cache_dir(), modname + sysconfig.get_config_var("EXT_SUFFIX"))
        except OSError:
            path = None
        with tempfile.TemporaryDirectory() as tmp:
            if path is None or not os.path.exists(path):
                built = _compile(cxx, lang, opt, source.replace(MODULE, modname), modname, tmp)
                if built is None:   # not remembered: another compiler may succeed
                    return None
                try:
                    os.replace(built, path)     # atomic: concurrent builders agree
                except (OSError, TypeError):    # a read-only cache: load it from here
                    path = built
            loader = importlib.machinery.ExtensionFileLoader(modname, path)
            spec = importlib.util.spec_from_file_location(modname, path, loader=loader)
            mod = importlib.util.module_from_spec(spec)
            loader.exec_module(mod)
        _loaded[modname] = mod
        return mod


def _compile(cxx, lang, opt, source, modname, tmp):
    """The path of the shared object compiled from `source` in folder `tmp`, or None."""
    cpp = os.path.join(tmp, modname + (".cpp" if lang == "c++" else ".c"))
    with open(cpp, "w") as fh:
        fh.write(source)
    out = os.path.join(tmp, modname + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = [cxx, "-x", lang, *opt, "-march=native", "-shared", "-fPIC", "-ffp-contract=off",
           "-fno-math-errno", "-w", "-I", sysconfig.get_paths()["include"],
           "-I", np.get_include(), cpp, "-o", out]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        failed, why = res.returncode != 0, res.stderr[-2000:]
    except (OSError, subprocess.TimeoutExpired) as e:
        failed, why = True, str(e)
    if failed:
        log.warning("CPU fusion disabled for this program: %s failed:\n%s", cxx, why)
        return None
    return out


# Only equations NumPy computes bit for bit the same way (`exact`): results do
# not depend on whether a group was fused (transcendental functions stay
# NumPy's).  Kernels take output buffers after their inputs.
FUSER = Fuser(fusible=exact, accepts=accepts, build=build, takes_out=True)
