"""Data-parallel communication: every rank holds the same parameters, takes
its share of each global batch, and averages its gradients with the others.

    comm = gpuprop.distributed.get_communicator()   # "auto": MPI under mpiexec
    params = comm.broadcast(params)                   # rank 0's values everywhere
    grads = comm.allreduce_mean(grads)                # one collective per call
    total = comm.allreduce_sum((loss_sum, correct, n))   # host numbers

Three implementations share one interface:
  SingleProcessCommunicator   one rank; every collective is the identity.
  MpiCommunicator             mpi4py.  Host buffers; CuPy arrays go straight
                              to a CUDA-aware MPI, else through the host.
  NcclCommunicator            cupy.cuda.nccl on the GPU; MPI (or nothing, for
                              one rank) carries the unique id, barriers and
                              host scalars.

A pytree is packed into one flat buffer on its device (gradients: their
common floating dtype, at least float32; broadcast: raw bytes), so a call is
one collective whatever the number of leaves, and the result has the
structure, shapes and dtypes of the input.  The first call with a new
structure also checks that every rank passed the same one (a tiny extra
collective), so a mismatch is a ValueError rather than garbage or a hang.

No rank waits forever: MPI collectives are non-blocking requests polled
until GPUPROP_COLLECTIVE_TIMEOUT seconds (default 300; 0 waits forever), NCCL
ones an event on the stream.  A timeout raises CollectiveTimeoutError, and
aborts the whole job first when asked (abort_on_timeout=True or
GPUPROP_ABORT_ON_TIMEOUT=1).  `with comm.abort_on_error():` aborts the job
when this rank raises, so the others stop at once instead of timing out.

mpi4py and CuPy are imported only when a communicator needs them.
"""
import contextlib
import hashlib
import os
import sys
import time
import traceback

import numpy as np

from . import backend
from .core import Tracer, size_of
from .tree import tree_flatten, tree_unflatten

DEFAULT_TIMEOUT = 300.0
_ALIGN = 16                 # bytes: each leaf's slot in a broadcast buffer
_SPIN = 5e-3                # seconds of busy polling before sleeping between tests
_MAX_NAP = 2e-4             # the longest sleep between two tests of a request

# environment variables an MPI launcher sets: world size, or only a rank
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK",
              "MPI_LOCALRANKID")


class CollectiveTimeoutError(RuntimeError):
    """A collective did not complete within the timeout on this rank."""

    def __init__(self, op, rank, size, timeout):
        self.op, self.rank, self.size, self.timeout = op, rank, size, timeout
        super().__init__(
            f"gpuprop.distributed: {op} on rank {rank} of {size} timed out after "
            f"{timeout:g} s (GPUPROP_COLLECTIVE_TIMEOUT): another rank failed, hung, or "
            f"skipped or reordered its collectives; look for an earlier error in the "
            f"other ranks' output, or raise GPUPROP_COLLECTIVE_TIMEOUT if a rank is "
            f"only slow (loading data, compiling)")


# ---- settings from the environment -------------------------------------------
def collective_timeout(env=None):
    """Seconds from GPUPROP_COLLECTIVE_TIMEOUT (default 300); None (wait
    forever) for 0, a negative number, 'none' or 'inf'."""
    raw = (os.environ if env is None else env).get("GPUPROP_COLLECTIVE_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    if raw.lower() in ("none", "inf", "infinity", "never"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"GPUPROP_COLLECTIVE_TIMEOUT={raw!r} is not a number of seconds; "
                         f"use e.g. 300, or 0 to wait forever") from None
    return None if value <= 0 or value == float("inf") else value


def _flag(name, env=None):
    """True/False for 1/0 (yes/no, true/false, on/off); None when unset."""
    raw = (os.environ if env is None else env).get(name, "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "yes", "true", "on"):
        return True
    if raw in ("0", "no", "false", "off"):
        return False
    raise ValueError(f"{name}={raw!r}: use 1 or 0")


def launched_size(env=None):
    """The world size an MPI launcher announced in the environment: an int,
    0 when no launcher is in sight, None when one is but gave no size."""
    env = os.environ if env is None else env
    for name in _SIZE_VARS:
        if env.get(name, "").strip().isdigit():
            return int(env[name])
    return None if any(name in env for name in _RANK_VARS) else 0


# ---- packing a pytree into one buffer ------------------------------------------
def _leaves_of(op, tree, be, floating=False):
    """The leaves of `tree`, each an array of the active backend `be`."""
    leaves, td = tree_flatten(tree)
    for i, x in enumerate(leaves):
        if isinstance(x, Tracer):
            raise TypeError(f"{op}: leaf {i} is a traced value (inside grad or jit); "
                            f"collectives run on concrete arrays: call {op} on what the "
                            f"gradient or jitted function returns, outside it")
        if not (be.owns(x) or (be.xp is np and isinstance(x, np.generic))):
            if hasattr(x, "shape") and hasattr(x, "dtype"):
                raise backend.mismatch(f"{op} (leaf {i})", x, be)
            raise TypeError(f"{op}: leaf {i} is a {type(x).__name__}, not an array; "
                            f"wrap numbers with gpuprop.asarray")
        if floating and np.dtype(x.dtype).kind not in "fc":
            raise TypeError(f"{op}: leaf {i} has dtype {np.dtype(x.dtype)}; only floating "
                            f"point leaves (gradients) can be averaged: leave counters "
                            f"out of the tree, or sum them with allreduce_sum")
    return leaves, td


def _signature(op, td, leaves, extra=()):
    """A stable 62-bit hash of the structure, shapes and dtypes (and `extra`)."""
    text = repr((op, str(td), [(tuple(x.shape), np.dtype(x.dtype).str) for x in leaves],
                 extra))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(),
                          "little") >> 2


def _restore(x, like):
    """`x` shaped and typed as leaf `like` (a NumPy scalar stays a scalar)."""
    x = x.reshape(like.shape).astype(like.dtype, copy=False)
    return x[()] if isinstance(like, np.generic) else x


def pack(xp, leaves, dtype, extra=0):
    """One flat `dtype` buffer of `xp` holding every leaf, then `extra` slots."""
    sizes = [size_of(x.shape) for x in leaves]
    buf = xp.empty(sum(sizes) + extra, dtype=dtype)
    start = 0
    for x, n in zip(leaves, sizes):
        buf[start:start + n] = x.reshape(-1)
        start += n
    return buf


def unpack(xp, buf, leaves):
    """The inverse of `pack`: views of `buf` shaped and typed like `leaves`
    (real leaves of a complex buffer: its real part)."""
    out, start = [], 0
    for x in leaves:
        n = size_of(x.shape)
        part = buf[start:start + n]
        if buf.dtype.kind == "c" and np.dtype(x.dtype).kind != "c":
            part = xp.real(part)
        out.append(_restore(part, x))
        start += n
    return out


def _slots(leaves):
    """Byte offsets of each leaf in a broadcast buffer (16-byte aligned) and its total."""
    offsets, total = [], 0
    for x in leaves:
        offsets.append(total)
        nbytes = size_of(x.shape) * np.dtype(x.dtype).itemsize
        total += -(-nbytes // _ALIGN) * _ALIGN
    return offsets, total


def pack_bytes(xp, leaves):
    """Every leaf's bytes in one uint8 buffer, each at an aligned offset."""
    offsets, total = _slots(leaves)
    buf = xp.empty(total, dtype=np.uint8)
    for x, start in zip(leaves, offsets):
        raw = xp.ascontiguousarray(x).reshape(-1).view(np.uint8)
        buf[start:start + raw.shape[0]] = raw
    return buf


def unpack_bytes(buf, leaves):
    """The inverse of `pack_bytes`."""
    offsets, _ = _slots(leaves)
    out = []
    for x, start in zip(leaves, offsets):
        dt = np.dtype(x.dtype)
        nbytes = size_of(x.shape) * dt.itemsize
        out.append(_restore(buf[start:start + nbytes].view(dt), x))
    return out


def _reduce_dtype(leaves):
    """The dtype gradients are summed in: their common one, at least float32."""
    return np.result_type(np.float32, *[np.dtype(x.dtype) for x in leaves])


def _check_weight(op, weight):
    if weight is None:
        return None
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: weight must be a number (this rank's sample count), "
                        f"got {type(weight).__name__}")
    weight = float(weight)
    if not (weight >= 0 and np.isfinite(weight)):
        raise ValueError(f"{op}: weight must be finite and >= 0, got {weight}")
    return weight


def _host_values(op, tree):
    """(leaves as float64 host arrays, treedef, leaf descriptions) for allreduce_sum."""
    leaves, td = tree_flatten(tree)
    hosts, kinds = [], []
    for i, x in enumerate(leaves):
        if isinstance(x, Tracer):
            raise TypeError(f"{op}: leaf {i} is a traced value; reduce concrete metrics, "
                            f"outside grad and jit")
        h = np.asarray(backend.to_host(x))
        if h.dtype.kind not in "biuf":
            raise TypeError(f"{op}: leaf {i} has dtype {h.dtype}; sum numbers or numeric "
                            f"arrays")
        hosts.append(h.astype(np.float64).reshape(-1))
        kinds.append((h.shape, h.dtype.kind in "biu"))
    return hosts, td, kinds


def _host_results(flat, td, kinds):
    out, start = [], 0
    for shape, integral in kinds:
        n = size_of(shape)
        part = flat[start:start + n]
        start += n
        if integral:
            part = np.rint(part).astype(np.int64)
        out.append(part.reshape(shape) if shape else (int(part[0]) if integral
                                                      else float(part[0])))
    return tree_unflatten(td, out)


# ---- the interface ---------------------------------------------------------------
class Communicator:
    """What every implementation offers; subclasses supply the flat collectives
    `_allreduce_flat(buf, op)`, `_bcast_flat(buf, root, op)` (arrays of the
    active backend), `_sum_host(array, op)` (float64 host) and `_verify`."""

    kind = "?"
    rank = 0
    size = 1
    local_rank = 0      # rank among the processes of this node (picks the GPU)
    local_size = 1
    timeout = None      # seconds a collective may take; None: forever
    abort_on_timeout = False
    _broken = None      # why this communicator cannot be used any more

    @property
    def is_root(self):
        return self.rank == 0

    def __repr__(self):
        return f"<gpuprop {self.kind} communicator: rank {self.rank} of {self.size}>"

    def shard(self, n):
        """The slice of a global batch of `n` rows that this rank takes:
        contiguous shares, the first n % size ranks one row more."""
        base, extra = divmod(n, self.size)
        lo = self.rank * base + min(self.rank, extra)
        return slice(lo, lo + base + (self.rank < extra))

    def broadcast(self, tree, root=0):
        """Rank `root`'s `tree` on every rank.  Every rank passes a tree of the
        same structure, shapes and dtypes (its values are overwritten); the
        root gets its own tree back."""
        op = "broadcast"
        if not isinstance(root, (int, np.integer)) or not 0 <= root < self.size:
            raise ValueError(f"{op}: root must be a rank in 0..{self.size - 1}, got {root!r}")
        be = backend.current()
        leaves, td = _leaves_of(op, tree, be)
        if self.size == 1 or not leaves:
            return tree
        self._verify(op, _signature(op, td, leaves, root))
        buf = self._bcast_flat(pack_bytes(be.xp, leaves), int(root), op)
        return tree if self.rank == root else tree_unflatten(td, unpack_bytes(buf, leaves))

    def allreduce_mean(self, tree, weight=None):
        """The mean over ranks of a pytree of floating arrays (gradients), in
        one collective.  With `weight` (this rank's number of samples) the
        mean is weighted, sum(w_r * tree_r) / sum(w_r), which is the gradient
        of the global batch when the ranks' shares differ in size; a rank with
        weight 0 contributes nothing (its tree may hold NaNs)."""
        op = "allreduce_mean"
        be = backend.current()
        leaves, td = _leaves_of(op, tree, be, floating=True)
        weight = _check_weight(op, weight)
        if self.size == 1:
            if weight == 0:
                raise ValueError(f"{op}: the total weight over all ranks is 0; there is "
                                 f"nothing to average")
            return tree
        if not leaves:
            return tree
        self._verify(op, _signature(op, td, leaves, weight is None))
        dtype = _reduce_dtype(leaves)
        if weight is None:
            buf = self._allreduce_flat(pack(be.xp, leaves, dtype), op)
            buf /= self.size
            return tree_unflatten(td, unpack(be.xp, buf, leaves))
        if weight == 0:
            buf = be.xp.zeros(sum(size_of(x.shape) for x in leaves) + 1, dtype=dtype)
        else:
            buf = pack(be.xp, leaves, dtype, extra=1)
            n = buf.shape[0] - 1
            buf[:n] *= weight
            buf[n:] = weight
        buf = self._allreduce_flat(buf, op)
        n = buf.shape[0] - 1
        values = buf[:n]
        values /= buf[n:]
        return tree_unflatten(td, unpack(be.xp, values, leaves))

    def allreduce_sum(self, value):
        """The sum over ranks of a number, an array of any backend, or a pytree
        of them (one collective), as host values: Python int/float for
        scalars (int when the input was integral), NumPy arrays otherwise.
        For evaluation metrics: allreduce_sum((loss_sum, correct, count))."""
        op = "allreduce_sum"
        hosts, td, kinds = _host_values(op, value)
        flat = np.concatenate(hosts) if hosts else np.zeros(0)
        if self.size > 1 and hosts:
            self._verify(op, _signature(op, td, [], [k[0] for k in kinds]))
            flat = self._sum_host(flat, op)
        return _host_results(flat, td, kinds)

    def barrier(self):
        """Return when every rank has called barrier (or time out)."""

    def abort(self, code=1):
        """End every rank of the job now, with exit status `code`."""
        raise SystemExit(code)

    @contextlib.contextmanager
    def abort_on_error(self):
        """Run a block; if it raises (an Exception, not Ctrl-C), print the error
        with this rank's number and abort the whole job, so the other ranks
        stop now instead of waiting in their next collective until the
        timeout.  A no-op with one rank."""
        try:
            yield self
        except Exception:
            if self.size == 1:
                raise
            sys.stdout.flush()
            print(f"gpuprop.distributed: rank {self.rank} of {self.size} failed; "
                  f"aborting all ranks:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            self.abort(1)
            raise

    # plumbing for the subclasses
    def _set_timeout(self, timeout, abort_on_timeout):
        self.timeout = collective_timeout() if timeout == "env" else timeout
        self.abort_on_timeout = (bool(_flag("GPUPROP_ABORT_ON_TIMEOUT"))
                                 if abort_on_timeout is None else abort_on_timeout)

    def _poll(self, done, op, give_up):
        """Call `done()` until it is true; when the timeout passes first, call
        `give_up()` (release or keep what the stuck collective holds), abort
        the job if abort_on_timeout, else raise CollectiveTimeoutError."""
        if self._broken:
            raise RuntimeError(self._broken)
        start = time.monotonic()
        nap = 0.0
        while not done():
            now = time.monotonic()
            if self.timeout is not None and now - start > self.timeout:
                give_up()
                self._broken = (f"gpuprop.distributed: a {op} on rank {self.rank} timed out "
                                f"earlier; the ranks' collectives are out of step and this "
                                f"communicator cannot be used again")
                err = CollectiveTimeoutError(op, self.rank, self.size, self.timeout)
                if self.abort_on_timeout:
                    print(f"{err}\ngpuprop.distributed: aborting all ranks "
                          f"(GPUPROP_ABORT_ON_TIMEOUT)", file=sys.stderr, flush=True)
                    self.abort(1)
                raise err
            if now - start > _SPIN:         # then yield the core, briefly
                time.sleep(nap)
                nap = min(max(nap * 2, 2e-5), _MAX_NAP)

    # the default flat collectives: one rank
    def _verify(self, op, signature):
        pass

    def _allreduce_flat(self, buf, op):
        return buf

    def _bcast_flat(self, buf, root, op):
        return buf

    def _sum_host(self, flat, op):
        return flat


class SingleProcessCommunicator(Communicator):
    """One rank: broadcast and allreduce_mean return their argument (after
    checking it as the others would), allreduce_sum gives host values."""

    kind = "single"


# ---- MPI ------------------------------------------------------------------------
def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(
            "gpuprop.distributed: the MPI communicator needs mpi4py and an MPI library: "
            "`pip install gpuprop[mpi]` (mpi4py and the MPICH wheel, whose mpiexec "
            "lands beside python), or mpi4py built against your cluster's MPI") from e
    return MPI


class MpiCommunicator(Communicator):
    """Collectives over mpi4py, on a duplicate of `comm` (default
    COMM_WORLD) so they never match a user's own MPI calls.

    cuda_aware: pass CuPy arrays to MPI directly (True), or copy them to the
    host and back around each collective (False).  Default: GPUPROP_CUDA_AWARE_MPI
    (1/0) if set, else what the MPI library reports: mpi4py's
    Query_cuda_support where it has one, else MPI 4.1's mpi_memory_alloc_kinds
    listing cuda.
    """

    kind = "mpi"

    def __init__(self, comm=None, timeout="env", abort_on_timeout=None, cuda_aware=None):
        MPI = self._MPI = _import_mpi()
        self._comm = (comm or MPI.COMM_WORLD).Dup()
        self.rank, self.size = self._comm.Get_rank(), self._comm.Get_size()
        node = self._comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._set_timeout(timeout, abort_on_timeout)
        env_aware = _flag("GPUPROP_CUDA_AWARE_MPI")
        self.cuda_aware = (cuda_aware if cuda_aware is not None else
                           env_aware if env_aware is not None else self._query_cuda_aware())
        self._verified = set()
        self._stuck = []        # requests that timed out: their buffers must outlive them

    def _query_cuda_aware(self):
        MPI = self._MPI
        query = getattr(MPI, "Query_cuda_support", None)
        if query is not None:
            try:
                return bool(query())
            except Exception:
                pass
        try:
            kinds = self._comm.Get_info().Get("mpi_memory_alloc_kinds") or ""
        except Exception:
            kinds = ""
        return "cuda" in kinds.lower()

    def _wait(self, request, op, keep):
        """Wait for `request` with the timeout; `keep`: its buffer."""
        self._poll(request.Test, op, lambda: self._stuck.append((request, keep)))

    def _start(self, what, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except self._MPI.Exception as e:
            raise RuntimeError(f"gpuprop.distributed: {what} on rank {self.rank} of "
                               f"{self.size}: MPI error: {e}") from e

    def _sum_host(self, flat, op):
        request = self._start(op, self._comm.Iallreduce, self._MPI.IN_PLACE, flat,
                              op=self._MPI.SUM)
        self._wait(request, op, flat)
        return flat

    def _verify(self, op, signature):
        """On the first use of a structure: do all ranks pass the same one?"""
        if signature in self._verified:
            return
        pair = np.array([signature, -signature], dtype=np.int64)
        request = self._start(op, self._comm.Iallreduce, self._MPI.IN_PLACE, pair,
                              op=self._MPI.MAX)
        self._wait(request, f"{op} (structure check)", pair)
        if pair[0] != signature or pair[1] != -signature:
            raise ValueError(f"{op}: rank {self.rank} passed a tree whose structure, shapes "
                             f"or dtypes differ from another rank's; every rank must pass "
                             f"the same (e.g. the same model, and gradients of it)")
        self._verified.add(signature)

    def _device_direct(self, buf):
        """Hand `buf` to MPI as it is: a host array, or CuPy with CUDA-aware MPI."""
        if isinstance(buf, np.ndarray):
            return True
        if self.cuda_aware and hasattr(buf, "__cuda_array_interface__"):
            import cupy
            cupy.cuda.get_current_stream().synchronize()    # the packing kernels
            return True
        return False

    def _collective(self, what, buf, call, **kwargs):
        """Run `call(buffer, **kwargs)` in place on `buf`, through the host if needed."""
        be = backend.current()
        direct = self._device_direct(buf)
        target = buf if direct else be.to_host(buf)
        request = self._start(what, call, target, **kwargs)
        self._wait(request, what, target)
        return buf if direct else be.from_host(target)

    def _allreduce_flat(self, buf, op):
        MPI = self._MPI
        return self._collective(op, buf, lambda b, **k: self._comm.Iallreduce(MPI.IN_PLACE, b, **k),
                                op=MPI.SUM)

    def _bcast_flat(self, buf, root, op):
        return self._collective(op, buf, self._comm.Ibcast, root=root)

    def barrier(self):
        self._wait(self._start("barrier", self._comm.Ibarrier), "barrier", None)

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        self._comm.Abort(code)


# ---- NCCL -----------------------------------------------------------------------
def _nccl_types(nccl):
    return {np.dtype(np.float16): nccl.NCCL_FLOAT16, np.dtype(np.float32): nccl.NCCL_FLOAT32,
            np.dtype(np.float64): nccl.NCCL_FLOAT64, np.dtype(np.uint8): nccl.NCCL_UINT8}


class NcclCommunicator(Communicator):
    """Gradients and broadcasts over NCCL on the GPU (CuPy backend).  Each
    process takes GPU local_rank % (visible GPUs); create the communicator
    before any CuPy array, so that everything lives on that GPU.  `host` is
    the MpiCommunicator that carries the NCCL id, barriers and allreduce_sum
    (default: MPI when launched with more than one rank, else none)."""

    kind = "nccl"

    def __init__(self, host=None, timeout="env", abort_on_timeout=None):
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError as e:
            raise RuntimeError("gpuprop.distributed: the NCCL communicator needs CuPy with "
                               "NCCL: `pip install gpuprop[cuda12]` (or cuda13)") from e
        if not getattr(nccl, "available", True):
            raise RuntimeError("gpuprop.distributed: this CuPy was built without NCCL; "
                               "install a cupy-cudaXXx wheel, which includes it")
        if host is None:
            host = MpiCommunicator() if launched_size() != 0 else SingleProcessCommunicator()
        self._host, self._cupy, self._nccl_mod = host, cupy, nccl
        self.rank, self.size, self.local_rank = host.rank, host.size, host.local_rank
        self.local_size = host.local_size
        self._set_timeout(timeout, abort_on_timeout)
        self.device = self.local_rank % cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(self.device).use()
        if backend.get_backend() != "cupy":
            raise RuntimeError(f"gpuprop.distributed: the NCCL communicator moves CuPy "
                               f"arrays but the active backend is {backend.get_backend()!r}: "
                               f"set GPUPROP_BACKEND=cupy, or use kind='mpi'")
        uid = np.array(nccl.get_unique_id() if self.rank == 0 else [0] * 128, dtype=np.int8)
        if self.size > 1:
            uid = host._bcast_flat(uid, 0, "NCCL set-up (unique id)")
        self._comm = nccl.NcclCommunicator(self.size, tuple(int(v) for v in uid), self.rank)
        self._types = _nccl_types(nccl)

    def _wait_stream(self, op):
        """Wait for the collective just queued on the current stream, with the
        timeout; on timeout ncclCommAbort lets the stuck kernel end."""
        event = self._cupy.cuda.Event(block=False, disable_timing=True)
        event.record()
        self._poll(lambda: event.done, op, self._comm.abort)

    def _typed(self, buf):
        """(buffer viewed as a type NCCL reduces, NCCL type, count)."""
        if buf.dtype.kind == "c":           # complex: sum the real and imaginary parts
            buf = buf.view(np.dtype(f"f{buf.dtype.itemsize // 2}"))
        return buf, self._types[np.dtype(buf.dtype)], buf.size

    def _allreduce_flat(self, buf, op):
        view, dtype, count = self._typed(buf)
        stream = self._cupy.cuda.get_current_stream().ptr
        self._comm.allReduce(view.data.ptr, view.data.ptr, count, dtype,
                             self._nccl_mod.NCCL_SUM, stream)
        self._wait_stream(op)
        return buf

    def _bcast_flat(self, buf, root, op):
        view, dtype, count = self._typed(buf)
        stream = self._cupy.cuda.get_current_stream().ptr
        self._comm.broadcast(view.data.ptr, view.data.ptr, count, dtype, root, stream)
        self._wait_stream(op)
        return buf

    def _verify(self, op, signature):
        self._host._verify(op, signature)

    def _sum_host(self, flat, op):
        return self._host._sum_host(flat, op)

    def barrier(self):
        self._cupy.cuda.get_current_stream().synchronize()
        self._host.barrier()

    def abort(self, code=1):
        self._host.abort(code)


# ---- choosing one ---------------------------------------------------------------
_instances = {}


def get_communicator(kind=None):
    """The communicator of this process (created once per kind).

    kind: "auto" (default; or GPUPROP_COMMUNICATOR): "mpi" when launched by
    mpiexec/srun with more than one rank, "nccl" if the backend is also cupy,
    else "single".  "single", "mpi", "nccl" force one.
    """
    kind = (kind or os.environ.get("GPUPROP_COMMUNICATOR", "").strip() or "auto").lower()
    if kind not in ("auto", "single", "mpi", "nccl"):
        raise ValueError(f"get_communicator: unknown kind {kind!r}; use 'auto', 'single', "
                         f"'mpi' or 'nccl'")
    if kind == "auto":
        kind = _auto_kind()
    if kind not in _instances:
        _instances[kind] = {"single": SingleProcessCommunicator, "mpi": MpiCommunicator,
                            "nccl": _nccl_over_mpi}[kind]()
    return _instances[kind]


def _nccl_over_mpi():
    host = get_communicator("mpi") if launched_size() != 0 else get_communicator("single")
    return NcclCommunicator(host)


def _auto_kind():
    size = launched_size()
    if size == 0 or size == 1:
        return "single"
    if size is None:        # a launcher without a size variable: ask MPI
        try:
            size = _import_mpi().COMM_WORLD.Get_size()
        except RuntimeError:
            return "single"
        if size == 1:
            return "single"
    else:
        _import_mpi()       # launched with several ranks: MPI must be there
    return "nccl" if backend.get_backend() == "cupy" else "mpi"
