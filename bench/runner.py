"""The parent side: one child process per library (and per variant for memory),
each pinned to the same cores with its thread counts set before it imports
anything."""
import dataclasses
import json
import os
import subprocess
import sys
import tempfile

from .cases import ALL_VARIANTS, PEER_LIBS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cores_for(threads):
    """The first `threads` CPUs this process may run on."""
    allowed = sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        raise SystemExit(f"bench: --threads {threads} asks for more cores than the "
                         f"{len(allowed)} this process may use ({allowed})")
    return allowed[:threads]


def child_env(threads, device, memory=False):
    env = dict(os.environ)      # OPENBLAS_CORETYPE and the like pass through untouched
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS"):
        env[var] = str(threads)
    xla = ("--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
           if threads == 1 else f"intra_op_parallelism_threads={threads}")
    env["XLA_FLAGS"] = " ".join(f for f in (os.environ.get("XLA_FLAGS", ""), xla) if f)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    if device == "cpu":
        env["GPUPROP_BACKEND"] = "numpy"
        env["JAX_PLATFORMS"] = "cpu"
    else:
        env["GPUPROP_BACKEND"] = "cupy"
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"   # share the GPU politely
        env.pop("JAX_PLATFORMS", None)
    if memory:
        # large arrays always mmap'd and given back on free: the RSS high-water
        # mark then sees a step's own peak, not the heap that earlier steps left
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_child(lib, variants, cases, *, mode, threads, device, quick, timeout):
    """The child's result dict (records, errors, info), or one saying why there
    is none."""
    spec = {"lib": lib, "variants": variants, "mode": mode, "threads": threads,
            "device": device, "quick": quick,
            "cases": [dataclasses.asdict(c) for c in cases]}
    cores = cores_for(threads) if device == "cpu" else None
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.child", spec_path, out_path],
                cwd=ROOT, env=child_env(threads, device, mode == "memory"),
                preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
                stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout)
            rc, chatter = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as e:
            rc, chatter = f"timeout after {timeout} s", e.stdout or ""
        try:
            with open(out_path) as f:
                result = json.load(f)
        except (OSError, ValueError):
            result = {"lib": lib, "records": [], "errors": []}
    if rc != 0:
        tail = (chatter or "")[-2000:] if isinstance(chatter, str) else ""
        result.setdefault("errors", []).append({
            "case": "*", "variant": ",".join(variants), "kind": "child process",
            "message": f"the {lib} process ended with {rc}; its last output:\n{tail}"})
    return result


def libs_of(variants):
    out = {}
    for v in variants:
        out.setdefault(ALL_VARIANTS[v][0], []).append(v)
    return out


def run_all(variants, cases, *, threads, device, quick, timeout):
    """Every library's child for the timing cases, then one child per variant
    for each memory case.  Returns the list of child results."""
    results = []
    timing = [c for c in cases if c.workload != "memory"]
    memory = [c for c in cases if c.workload == "memory"]
    for lib, vs in libs_of(variants).items():
        if timing:
            print(f"[bench] {lib}: {', '.join(vs)} (threads={threads})", file=sys.stderr, flush=True)
            results.append(run_child(lib, vs, timing, mode="time", threads=threads,
                                     device=device, quick=quick, timeout=timeout))
    for case in memory:
        for lib, vs in libs_of(variants).items():
            for v in vs:
                print(f"[bench] memory {case.key}: {v}", file=sys.stderr, flush=True)
                results.append(run_child(lib, [v], [case], mode="memory", threads=threads,
                                         device=device, quick=quick, timeout=timeout))
    return results


def choose_variants(args, table, baseline):
    out = [v for v in table if args.peers or table[v][0] not in PEER_LIBS]
    if args.variants:
        unknown = [v for v in args.variants if v not in table]
        if unknown:
            raise SystemExit(f"bench: unknown variant(s) {', '.join(unknown)}; "
                             f"choose from {', '.join(table)}")
        out = [v for v in out if v == baseline or v in args.variants]
    return out


def gather(results):
    records = [r for res in results for r in res.get("records", [])]
    errors = [e for res in results for e in res.get("errors", [])]
    return records, errors


def epoch_losses_agree(records, baseline, tol=2e-2):
    """Every library's mean epoch loss near the baseline's: a loud error if not."""
    base = next((r for r in records if r["case"] == "epoch" and r["variant"] == baseline), None)
    out = []
    for r in records:
        if base and r["case"] == "epoch" and "loss" in r and r is not base:
            rel = abs(r["loss"] - base["loss"]) / max(abs(base["loss"]), 1e-12)
            if not rel <= tol:
                out.append({"case": "epoch", "variant": r["variant"], "kind": "loss mismatch",
                            "message": f"mean epoch loss {r['loss']:.5f} vs {baseline}'s "
                                       f"{base['loss']:.5f} (relative {rel:.2g} > {tol:g})"})
    return out


def finish(failures):
    if failures:
        print(f"\nbench: {len(failures)} FAILURE(S): see ERRORS above; "
              f"exit status 1", file=sys.stderr)
        return 1
    return 0
