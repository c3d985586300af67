"""Fusion of elementwise groups, tested without a GPU.

- Golden text: the CUDA kernels (cupy.ElementwiseKernel parameters and the
  standalone translation unit) of a few small programs are frozen below; the
  text is deterministic and each kernel's name is a hash of what it computes.
- nvcc: every kernel of programs that use every primitive of
  fusion.EXPRESSIONS (float32 and float64, bool outputs, inf/nan literals)
  compiles with `nvcc -c` when nvcc is on the PATH (no GPU needed).
- CPU reference: each fused group, compiled as C++ (compile/cpu.py), is compared
  with its own equations evaluated one by one with NumPy; jitted programs with
  CPU fusion are compared with the eager run and with fusion turned off;
  special values (inf, nan, -0.0) behave as in NumPy; two of the programs are
  value_and_grad of a loss, so jitted gradients are checked the same way.

CPU fusion applies to the numpy backend only, and the kernel text does not
depend on the backend, so every test here runs once, under "numpy".
To regenerate the goldens after an intended change of the generated code:
`python tests/test_fusion.py`, read the diff, and paste it over GOLDEN.
"""
import hashlib
import re
import shutil
import subprocess

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.compile import cpu, cuda, fusion
from gpuprop.compile.executor import generate
from gpuprop.ir import Program, eval_program
from gpuprop.jit import make_ir
from support import dev, host
from strict_backend import REFERENCE_FUSER

pytestmark = pytest.mark.usefixtures("executor")     # native and NumPy executors

TOL = {np.float32: dict(rtol=1e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.fixture(autouse=True)
def _numpy_backend_only(backend_name):
    if backend_name != "numpy":
        pytest.skip("CPU fusion runs under the numpy backend; kernel text is backend-independent")


# ---- the programs -----------------------------------------------------------
def tanh_bcast(x, y):
    return gnp.tanh(x * 0.5 + y)


def select_mix(x, y):
    m = gnp.maximum(x, y)
    return (gnp.where(x > 0, gnp.clip(m, -1.0, None), gnp.minimum(y, 0.5)),
            gnp.isnan(x) | (y <= 0))


def f64_prog(a, b):
    return gnp.exp(-a) * gnp.sqrt(b) + gnp.log1p(a * a) / 3.0


def mlp_loss(params, x, t):
    w, b = params
    h = gnp.tanh(gnp.matmul(x, w) + b)
    return gnp.mean((h - t) ** 2)


def piecewise_loss(x, y, a):
    z = gnp.where(x > a, gnp.maximum(x, y), gnp.minimum(x * 2.0, y))
    z = gnp.clip(z, -1.5, None) * gnp.logistic(y) + gnp.abs(x - a) * gnp.sign(y)
    return gnp.sum(z * z + gnp.exp(-y * y))


def arith(x, a, b, c, s):
    u = x * a + b - c / (s + 3.0)
    v = gnp.power(gnp.abs(u) + 0.5, b) + gnp.power(x, 2) - (-a)
    w = (gnp.exp(u * -0.25) + gnp.log(gnp.abs(x) + 1.0) + gnp.log1p(gnp.abs(c))
         + gnp.expm1(a * 0.1) + gnp.sqrt(gnp.abs(u)) + gnp.sin(u) * gnp.cos(x))
    return v, w * gnp.tanh(u) + gnp.logistic(u - b)


def special(x, y, a, c):
    """Piecewise primitives on inf, nan and signed zeros ('+ 0.0', '* 1.0'
    keep each result inside the group)."""
    return (gnp.maximum(x, y), gnp.minimum(x, c), gnp.maximum(a, x) - gnp.minimum(y, 0.0),
            gnp.sign(x) * 1.0, gnp.abs(x) * 1.0,
            gnp.clip(x, -1.0, None) * 1.0, gnp.clip(x, None, 2.0) * 1.0,
            gnp.clip(x, a, c) * 1.0, gnp.where(gnp.isnan(x), -np.inf, x) * 1.0,
            gnp.maximum(x, np.nan) * 1.0, gnp.where(x > y, x, c) * 1.0)


def logic(x, y, a, m):
    gt, ge, lt, le = x > y, x >= a, x < 0.5, x <= y
    eq, ne = gnp.equal(x, a), gnp.not_equal(y, 1.0)
    mask = gnp.logical_and(gt, gnp.logical_or(ge, m)) | gnp.logical_not(lt & le)
    bad = gnp.logical_or(gnp.isnan(x), gnp.logical_not(gnp.isfinite(y)))
    z = gnp.where(mask, gnp.astype(eq, x.dtype), gnp.stop_gradient(x) * 2.0)
    other = np.float64 if x.dtype == np.float32 else np.float32
    return (mask, bad, ne & ge, z + gnp.broadcast_to(a, x.shape),
            gnp.astype(x * 2.0, other) + 1.0, gnp.equal(gt, 1) & gnp.logical_or(lt, 1.5))


def more_math(x, y):
    """The libm functions (arguments kept in their domains) and the rounding
    ones, on exact values only (a last-bit difference could flip a floor)."""
    t, p = gnp.tanh(x), gnp.abs(y) + 1.0
    a = (gnp.tan(x * 0.5) + gnp.arcsin(t) + gnp.arccos(t) + gnp.arctan(y)
         + gnp.arctan2(x, y) + gnp.hypot(x, y))
    b = gnp.sinh(x) * gnp.cosh(y) + gnp.arcsinh(y) + gnp.arccosh(p) + gnp.arctanh(t * 0.5)
    c = gnp.log2(p) + gnp.log10(p) + gnp.exp2(x)
    r = gnp.floor(x * 4.0) + gnp.ceil(y * 4.0) - gnp.rint(x * 3.0)
    return a * b + c, r * 0.25


def bits(x, y):
    """uint32 arithmetic (wrapping), bitwise operators and shifts (by the
    width or more: 0), on bool masks too, as Threefry uses them."""
    u = gnp.astype(gnp.abs(x) * 1e9, np.uint32)
    v = gnp.astype(gnp.abs(y) * 7e8, np.uint32)
    w = ((u ^ v) << 13 | (u >> 19)) + v * 2654435769 - (~u & 0xFFFF)
    big = (w << 40) | (w >> 32)
    return w, big + 1, ~(u > v) | ((x > 0) ^ (y > 0)), gnp.astype(w, x.dtype) * 0.5


def repeated(x, w):
    """Two equal groups (same body and shapes) around a matmul: one kernel."""
    return gnp.abs(gnp.matmul(gnp.abs(x) * 2.0, w)) * 2.0


def same_body_other_shapes(x, y, z, w):
    return gnp.abs(x + y) * 2.0, gnp.abs(z + w) * 2.0


# ---- their arguments --------------------------------------------------------
NAN, INF = np.nan, np.inf
SPECIAL_X = [[NAN, INF, -INF, -0.0], [0.0, 1.0, -1.0, 2.5], [-2.5, 0.3, NAN, -0.0]]
SPECIAL_Y = [[1.0, NAN, INF, 0.0], [-0.0, 1.0, 3.0, -3.0], [NAN, 0.3, 0.5, -0.0]]


def rand(shape, dtype, seed, lo=-2.0, hi=2.0):
    return dev(np.random.default_rng(seed).uniform(lo, hi, shape), dtype)


def args_of(name, dt):
    """Arguments (backend arrays) of the program `name` in floating dtype dt."""
    if name == "tanh_bcast":
        return rand((3, 4), dt, 0), rand((4,), dt, 1)
    if name == "select_mix":
        return dev([[-1.0, 0.5, NAN, 3.0]] * 3, dt), rand((3, 1), dt, 2)
    if name == "f64_prog":
        return rand((2, 3), dt, 3), rand((), dt, 4, 0.1, 3.0)
    if name == "mlp_grad":
        return (rand((3, 2), dt, 5), rand((2,), dt, 6)), rand((4, 3), dt, 7), rand((4, 2), dt, 8)
    if name == "piecewise_grad":
        return rand((3, 4), dt, 20), rand((4,), dt, 21), rand((3, 1), dt, 22)
    if name == "arith":
        return (rand((3, 4), dt, 9), rand((3, 1), dt, 10), rand((1, 4), dt, 11),
                rand((4,), dt, 12), rand((), dt, 13))
    if name == "special":
        return (dev(SPECIAL_X, dt), dev(SPECIAL_Y, dt), dev([[-1.0], [0.5], [-INF]], dt),
                dev([2.0, 0.0, INF, -0.0], dt))
    if name == "logic":
        x = dev(SPECIAL_X, dt)
        return x, dev(SPECIAL_Y, dt), dev([[0.0], [1.0], [-0.5]], dt), dev([[True, False] * 2])
    if name == "bits":
        return rand((3, 4), dt, 26), rand((4,), dt, 27)
    if name == "repeated":
        return rand((3, 4), dt, 14), rand((4, 4), dt, 15)
    if name == "more_math":
        return rand((3, 4), dt, 24), rand((4,), dt, 25)
    assert name == "same_body_other_shapes"
    return rand((3, 4), dt, 16), rand((4,), dt, 17), rand((5,), dt, 18), rand((5,), dt, 19)


FUNCTIONS = dict(tanh_bcast=tanh_bcast, select_mix=select_mix, f64_prog=f64_prog,
                 mlp_grad=gp.value_and_grad(mlp_loss),
                 piecewise_grad=gp.value_and_grad(piecewise_loss, argnums=(0, 1, 2)),
                 arith=arith, special=special, more_math=more_math,
                 logic=logic, bits=bits, repeated=repeated, same_body_other_shapes=same_body_other_shapes)
GOLDEN_DTYPES = dict(tanh_bcast=np.float32, select_mix=np.float32, f64_prog=np.float64,
                     mlp_grad=np.float32)
CASES = [(name, dt) for name in FUNCTIONS for dt in (np.float32, np.float64)]
CASE_IDS = [f"{name}-{np.dtype(dt).name}" for name, dt in CASES]


def program(name, dt):
    return make_ir(FUNCTIONS[name])(*args_of(name, dt))


def fused(prog):
    """The kernels the executors run (groups of two or more equations with an
    output used outside), once per name."""
    return list({k.name: k for _, k in fusion.kernels(prog) if k is not None and k.outputs}
                .values())


def text_of(name):
    """[(in_params, out_params, kernel name, CUDA source)] of a golden program."""
    return [(*k.cuda_params()[:2], k.name, k.cuda_source())
            for k in fused(program(name, GOLDEN_DTYPES[name]))]


def body_of(source):
    """The kernel body inside a CUDA source: the register lines t_k and out_i."""
    return "\n".join(line[2:] for line in source.splitlines()
                     if re.match(r"  (\w+ t\d+|out\d+) = ", line))


def per_element(source, start):
    """The statements run for element i: those after `start`, to the next '}'."""
    lines = [line.strip() for line in source.split(start)[1].splitlines()]
    return lines[:lines.index("}")]


# ---- golden text ------------------------------------------------------------
# Read for correctness before freezing: literals cast to the op's type, broadcast
# indexing, NaN-propagating maximum/minimum, where as ?:, bool outputs.
GOLDEN = {
    'f64_prog': [
        ('float64 in0', 'float64 out0', 'gpuprop_598187ee5582', """\
extern "C" __global__ void gpuprop_598187ee5582(const double* __restrict__ p_in0, double* __restrict__ p_out0, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const double in0 = p_in0[i];
  double out0;
  double t0 = (-in0);
  double t1 = exp(t0);
  out0 = t1;
  p_out0[i] = out0;
}
"""),
        ('float64 in0, float64 in1, float64 in2', 'float64 out0', 'gpuprop_e94429b4335f', """\
extern "C" __global__ void gpuprop_e94429b4335f(const double* __restrict__ p_in0, const double* __restrict__ p_in1, const double* __restrict__ p_in2, double* __restrict__ p_out0, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const double in0 = p_in0[i];
  const double in1 = p_in1[0];
  const double in2 = p_in2[i];
  double out0;
  double t0 = (in0 * in1);
  double t1 = (in2 * in2);
  double t2 = log1p(t1);
  double t3 = (t2 / ((double)3.0));
  double t4 = (t0 + t3);
  out0 = t4;
  p_out0[i] = out0;
}
"""),
    ],
    'mlp_grad': [
        ('float32 in0, float32 in1, float32 in2, float32 in3', 'float32 out0, float32 out1', 'gpuprop_9a721a4fbdb1', """\
extern "C" __global__ void gpuprop_9a721a4fbdb1(const float* __restrict__ p_in0, const float* __restrict__ p_in1, const float* __restrict__ p_in2, const float* __restrict__ p_in3, float* __restrict__ p_out0, float* __restrict__ p_out1, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float in0 = p_in0[i];
  const float in1 = p_in1[(i % 2LL)];
  const float in2 = p_in2[i];
  const float in3 = p_in3[i];
  float out0;
  float out1;
  float t0 = (in0 + in1);
  float t1 = tanh(t0);
  float t2 = (t1 - in2);
  float t3 = pow(t2, ((float)2.0));
  float t4 = pow(t2, ((float)1.0));
  float t5 = (((float)2.0) * t4);
  float t6 = (in3 * t5);
  float t7 = (t1 * t1);
  float t8 = (((float)1.0) - t7);
  float t9 = (t6 * t8);
  out0 = t3;
  out1 = t9;
  p_out0[i] = out0;
  p_out1[i] = out1;
}
"""),
    ],
    'select_mix': [
        ('float32 in0, float32 in1', 'bool out0, float32 out1', 'gpuprop_8464bdad3567', """\
extern "C" __global__ void gpuprop_8464bdad3567(const float* __restrict__ p_in0, const float* __restrict__ p_in1, bool* __restrict__ p_out0, float* __restrict__ p_out1, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float in0 = p_in0[i];
  const float in1 = p_in1[(i / 4LL)];
  bool out0;
  float out1;
  float t0 = ((in0 != in0 || in0 > in1) ? in0 : in1);
  bool t1 = (in0 > ((float)0.0));
  float t2 = ((((t0 != t0 || t0 > ((float)-1.0)) ? t0 : ((float)-1.0)) != ((t0 != t0 || t0 > ((float)-1.0)) ? t0 : ((float)-1.0)) || ((t0 != t0 || t0 > ((float)-1.0)) ? t0 : ((float)-1.0)) < ((float)(1.0 / 0.0))) ? ((t0 != t0 || t0 > ((float)-1.0)) ? t0 : ((float)-1.0)) : ((float)(1.0 / 0.0)));
  out0 = t1;
  out1 = t2;
  p_out0[i] = out0;
  p_out1[i] = out1;
}
"""),
        ('float32 in0', 'float32 out0, bool out1', 'gpuprop_9f117f9f2cad', """\
extern "C" __global__ void gpuprop_9f117f9f2cad(const float* __restrict__ p_in0, float* __restrict__ p_out0, bool* __restrict__ p_out1, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float in0 = p_in0[i];
  float out0;
  bool out1;
  float t0 = ((in0 != in0 || in0 < ((float)0.5)) ? in0 : ((float)0.5));
  bool t1 = (in0 <= ((float)0.0));
  out0 = t0;
  out1 = t1;
  p_out0[i] = out0;
  p_out1[i] = out1;
}
"""),
        ('bool in0, float32 in1, float32 in2, float32 in3, bool in4', 'float32 out0, bool out1', 'gpuprop_3e038e12d1e1', """\
extern "C" __global__ void gpuprop_3e038e12d1e1(const bool* __restrict__ p_in0, const float* __restrict__ p_in1, const float* __restrict__ p_in2, const float* __restrict__ p_in3, const bool* __restrict__ p_in4, float* __restrict__ p_out0, bool* __restrict__ p_out1, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const bool in0 = p_in0[i];
  const float in1 = p_in1[i];
  const float in2 = p_in2[(i / 4LL)];
  const float in3 = p_in3[i];
  const bool in4 = p_in4[(i / 4LL)];
  float out0;
  bool out1;
  float t0 = (in0 ? in1 : in2);
  bool t1 = isnan(in3);
  bool t2 = (t1 || in4);
  out0 = t0;
  out1 = t2;
  p_out0[i] = out0;
  p_out1[i] = out1;
}
"""),
    ],
    'tanh_bcast': [
        ('float32 in0, float32 in1', 'float32 out0', 'gpuprop_40375ac6fa22', """\
extern "C" __global__ void gpuprop_40375ac6fa22(const float* __restrict__ p_in0, const float* __restrict__ p_in1, float* __restrict__ p_out0, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float in0 = p_in0[i];
  const float in1 = p_in1[(i % 4LL)];
  float out0;
  float t0 = (in0 * ((float)0.5));
  float t1 = (t0 + in1);
  float t2 = tanh(t1);
  out0 = t2;
  p_out0[i] = out0;
}
"""),
    ],
}


@pytest.mark.parametrize("name", sorted(GOLDEN_DTYPES))
def test_kernel_text_matches_golden(name):
    assert text_of(name) == GOLDEN[name]
    for k, (ins, outs, kname, src) in zip(fused(program(name, GOLDEN_DTYPES[name])),
                                          GOLDEN[name]):
        assert k.cuda_params() == (ins, outs, body_of(src), kname)


@pytest.mark.parametrize("name", sorted(GOLDEN_DTYPES))
def test_kernel_text_is_deterministic_and_named_by_its_hash(name):
    first, second = fused(program(name, GOLDEN_DTYPES[name])), \
        fused(program(name, GOLDEN_DTYPES[name]))
    assert [k.cuda_source() for k in first] == [k.cuda_source() for k in second]
    assert [k.cpp_function() for k in first] == [k.cpp_function() for k in second]
    assert [k.cuda_params() for k in first] == [k.cuda_params() for k in second]
    for k in first:
        assert k.name == "gpuprop_" + hashlib.sha1(k.signature().encode()).hexdigest()[:12]
        assert k.body in k.signature()
        # the CPU loop and the CUDA thread run the same loads, body and stores
        assert per_element(k.cpp_function(), "for (long long i = 0; i < n; ++i) {") == \
            per_element(k.cuda_source(), "if (i >= n) return;")


def test_kernel_names_differ_by_shape_and_equal_groups_share_one():
    dt = np.float32
    a, b = fused(program("same_body_other_shapes", dt))
    assert a.body == b.body and a.shape == (3, 4) and b.shape == (5,)
    assert a.name != b.name     # the broadcast indexing and loop bounds differ
    equal = [k for _, k in fusion.kernels(program("repeated", dt)) if k is not None]
    assert len(equal) == 2 and equal[0].name == equal[1].name
    assert len(cuda.kernel_sources(program("repeated", dt))) == 1


def test_broadcast_index_expressions():
    x = np.zeros((2, 3, 4), np.float32)
    prog = make_ir(lambda x, a, b, c, s: x + a + b + c + s)(
        x, x[:, :1, :], x[:1, :, :1], x[0, 0], x[0, 0, 0])
    (k,) = fused(prog)
    index = {f"in{i}": k._index(v.aval.shape) for i, v in enumerate(k.inputs)}
    assert index == {"in0": "i", "in1": "(i / 12LL) * 4LL + (i % 4LL)",
                     "in2": "((i / 4LL) % 3LL)", "in3": "(i % 4LL)", "in4": "0"}


# ---- nvcc -------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on the PATH")
def test_every_kernel_compiles_with_nvcc(tmp_path):
    sources = [src for name, dt in CASES for src in cuda.kernel_sources(program(name, dt))]
    sources = list(dict.fromkeys(sources))
    assert len(sources) > 20
    cu = tmp_path / "kernels.cu"
    cu.write_text("\n".join(sources))
    res = subprocess.run(["nvcc", "-c", str(cu), "-o", str(tmp_path / "kernels.o")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-4000:]


# ---- reductions with an elementwise map (CuPy's ReductionKernel) -----------
def sum_of_squares(x, y):
    return gnp.sum((x * 0.5 + y) ** 2, axis=1), gnp.sum(gnp.abs(x), keepdims=True)


def reduce_kernels(prog):
    return [k for _, k in fusion.kernels(prog, reductions=True)
            if isinstance(k, fusion.ReduceKernel)]


def test_a_sum_takes_the_group_before_it_as_its_map():
    x, y = rand((3, 4), np.float32, 30), rand((4,), np.float32, 31)
    prog = make_ir(sum_of_squares)(x, y)
    (k,) = reduce_kernels(prog)     # the abs alone is one equation: not a group
    assert [e.prim.name for e in k.eqns] == ["multiply", "add", "power"]
    assert k.outputs == [prog.outvars[0]] and k.reduction.params["axis"] == (1,)
    params = k.cuda_params()
    assert params["map_expr"] == f"{k.name}_map(in0, in1)"
    assert (params["reduce_expr"], params["identity"], params["reduce_type"]) == \
        ("a + b", "0", "float")
    assert params["preamble"] == (
        f"__device__ float {k.name}_map(float in0, float in1) {{\n  float out0;\n"
        "  float t0 = (in0 * ((float)0.5));\n  float t1 = (t0 + in1);\n"
        "  float t2 = pow(t1, ((float)2.0));\n  out0 = t2;\n  return out0;\n}\n")
    steps = fusion.kernels(prog, reductions=True)
    assert not any(k is None and eqns[0].prim.name == "sum" and eqns[0].out is prog.outvars[0]
                   for eqns, k in steps)          # the sum's own step is gone
    assert reduce_kernels(prog)[0].name == k.name   # deterministic


def test_a_group_value_used_elsewhere_is_not_merged():
    x = rand((3, 4), np.float32, 32)
    used_twice = make_ir(lambda x: (gnp.sum(x * 2.0 + 1.0), gnp.max(x * 2.0 + 1.0)))(x)
    returned = make_ir(lambda x: (gnp.sum(x * 2.0 + 1.0), x * 2.0 + 1.0))(x)
    assert reduce_kernels(used_twice) == [] and reduce_kernels(returned) == []


def test_the_map_on_the_cpu_then_summed_matches_the_unfused_program():
    needs_compiler()
    for dt in (np.float32, np.float64):
        x, y = rand((3, 4), dt, 33), rand((4,), dt, 34)
        prog = make_ir(sum_of_squares)(x, y)
        (k,) = reduce_kernels(prog)
        env = evaluate(prog, [x, y])
        group = fusion.Kernel(k.eqns, {k.reduction.inputs[0]})   # the map alone
        module = cpu.build([group])
        (mapped,) = getattr(module, group.name)(*[env[v] for v in group.inputs])
        summed = np.sum(mapped, axis=k.reduction.params["axis"],
                        keepdims=k.reduction.params["keepdims"])
        assert_same(summed, env[k.reduction.out], dt)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on the PATH")
def test_reduction_maps_compile_with_nvcc(tmp_path):
    sources = []
    for dt in (np.float32, np.float64):
        sources += cuda.kernel_sources(
            make_ir(sum_of_squares)(rand((3, 4), dt, 35), rand((4,), dt, 36)), reductions=True)
        sources += cuda.kernel_sources(program("mlp_grad", dt), reductions=True)
    assert any("_map(" in src for src in sources)
    cu = tmp_path / "reductions.cu"
    cu.write_text("\n".join(dict.fromkeys(sources)))
    res = subprocess.run(["nvcc", "-c", str(cu), "-o", str(tmp_path / "reductions.o")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-4000:]


@pytest.mark.parametrize("name,dt", CASES + [("sum_of_squares", np.float32)],
                         ids=CASE_IDS + ["sum_of_squares-float32"])
def test_the_cuda_plan_evaluated_by_numpy_matches_eager(name, dt):
    f = FUNCTIONS.get(name, sum_of_squares)
    args = args_of(name, dt) if name in FUNCTIONS else (rand((3, 4), dt, 37), rand((4,), dt, 38))
    prog = make_ir(f)(*args)
    run = generate(prog, np, fuser=REFERENCE_FUSER)
    assert "gpuprop_" in run.source
    with np.errstate(all="ignore"):
        got, want = run(gp.tree_leaves(args)), gp.tree_leaves(f(*args))
    for g, w in zip(got, want):
        assert_same(g, w, dt)


# ---- CPU reference ----------------------------------------------------------
def test_the_programs_use_every_fusible_primitive():
    seen = {e.prim for name, dt in CASES for k in fused(program(name, dt)) for e in k.eqns}
    assert seen == set(fusion.EXPRESSIONS)
    kinds = {v.aval.dtype.name for name, dt in CASES for k in fused(program(name, dt))
             for v in k.outputs}
    assert kinds == {"float32", "float64", "bool", "uint32"}


def needs_compiler():
    if cpu.compiler() is None:
        pytest.skip("no C++ compiler or Python headers: CPU fusion is unavailable")


def evaluate(prog, leaves):
    """Every value of a program, by the reference interpreter (ir.eval_program)."""
    every = Program(prog.invars, prog.consts, prog.eqns, [e.out for e in prog.eqns], prog.name)
    with np.errstate(all="ignore"):
        values = eval_program(every, *leaves)
    return {**dict(zip(prog.invars, leaves)), **prog.consts, **dict(zip(every.outvars, values))}


def assert_same(got, want, dt):
    got, want = host(got), np.asarray(host(want))
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype == bool:
        np.testing.assert_array_equal(got, want)
        return
    np.testing.assert_allclose(got, want, **TOL[dt])
    zero = want == 0        # signed zeros as NumPy gives them
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(want[zero]))


@pytest.mark.parametrize("name,dt", CASES, ids=CASE_IDS)
def test_each_fused_group_matches_its_equations_evaluated_by_numpy(name, dt):
    needs_compiler()
    prog = program(name, dt)
    env = evaluate(prog, gp.tree_leaves(args_of(name, dt)))
    kernels = [k for k in fused(prog) if cpu.accepts(k)]
    module = cpu.build(kernels)
    assert kernels and module is not None
    for k in kernels:
        outs = getattr(module, k.name)(*[env[v] for v in k.inputs])
        assert len(outs) == len(k.outputs)
        for got, v in zip(outs, k.outputs):
            assert_same(got, env[v], dt)


def jitted_run(f, args):
    """(result, generated source) of a fresh jit of f."""
    jf = gp.jit(f)
    out = jf(*args)
    return out, jf.lower(*args).source


def assert_trees_same(got, want, dt):
    assert gp.tree_structure(got) == gp.tree_structure(want)
    for g, w in zip(gp.tree_leaves(got), gp.tree_leaves(want)):
        assert_same(g, w, dt)


@pytest.mark.parametrize("name,dt", CASES, ids=CASE_IDS)
def test_jit_with_cpu_fusion_matches_eager_and_unfused(name, dt, monkeypatch):
    needs_compiler()
    f, args = FUNCTIONS[name], args_of(name, dt)
    with np.errstate(all="ignore"):
        eager = f(*args)
        out, source = jitted_run(f, args)
        monkeypatch.setenv("GPUPROP_FUSION", "0")
        plain, plain_source = jitted_run(f, args)
    # fusion did happen: a kernel called by the NumPy executor or in native code
    assert re.search(r"= gpuprop_\w+\(|gpuprop_\w+\(i_, o_\)", source), source
    assert "gpuprop_" not in plain_source
    assert_trees_same(out, eager, dt)
    assert_trees_same(plain, eager, dt)


def test_large_groups_are_left_to_numpy(monkeypatch):
    needs_compiler()
    monkeypatch.setenv("GPUPROP_NATIVE", "0")   # the NumPy executor's choice
    x = rand((100, 100), np.float32, 23)
    out, source = jitted_run(tanh_bcast, (x, x[0]))
    assert cpu.MAX_ELEMENTS < x.size and "gpuprop_" not in source
    assert_same(out, tanh_bcast(x, x[0]), np.float32)


# ---- regenerating the goldens -----------------------------------------------
def golden_source():
    lines = ["GOLDEN = {"]
    for name in sorted(GOLDEN_DTYPES):
        lines.append(f"    {name!r}: [")
        for ins, outs, kname, src in text_of(name):
            lines.append(f"        ({ins!r}, {outs!r}, {kname!r}, \"\"\"\\\n{src}\"\"\"),")
        lines.append("    ],")
    return "\n".join(lines + ["}"])


if __name__ == "__main__":
    print(golden_source())


def test_a_failing_compiler_or_cache_leaves_the_program_unfused(monkeypatch, tmp_path, caplog):
    needs_compiler()
    monkeypatch.setenv("CXX", "/bin/false")
    monkeypatch.setenv("GPUPROP_CACHE_DIR", str(tmp_path / "kernels"))
    x = rand((3, 4), np.float32, 40)
    out, source = jitted_run(lambda x: x * 2.25 + 1.75, (x,))     # a kernel of its own
    assert "gpuprop_" not in source and "CPU fusion disabled" in caplog.text
    np.testing.assert_array_equal(host(out), host(x) * np.float32(2.25) + np.float32(1.75))
    monkeypatch.delenv("CXX")
    monkeypatch.setenv("GPUPROP_CACHE_DIR", "/proc/no-such-dir/kernels")   # unwritable
    out, source = jitted_run(lambda x: x * 3.25 - 1.75, (x,))
    assert "gpuprop_" in source
    np.testing.assert_array_equal(host(out), host(x) * np.float32(3.25) - np.float32(1.75))


def test_a_fused_kernel_writes_into_a_donated_buffer_it_reads_last(executor):
    needs_compiler()
    f = gp.jit(lambda w, g: w - 0.5 * g, donate_argnums=0)
    g = np.random.default_rng(41).standard_normal((50, 50)).astype(np.float32)
    for w in (np.ones((50, 50), np.float32), np.asfortranarray(np.ones((50, 50), np.float32))):
        want = w - np.float32(0.5) * g
        source = f.lower(w, g).source      # first: the call deletes the donated w
        out = f(w, g)
        # the NumPy executor passes the donated a0 once more, after the inputs, as
        # the output buffer; native code takes it (input 0) as the output
        assert re.search(r"= gpuprop_\w+\((a\d, )+a0\)" if executor != "native" else
                         r"as_output\(\(PyObject\*\)in\[0\]", source), source
        np.testing.assert_array_equal(out, want)
        # written in place when the buffer allows it (C-contiguous), else into a new array
        assert np.shares_memory(out, w) == w.flags.c_contiguous
