"""The parent side: one worker process per library, each pinned to the same
cores with its thread counts set before it imports anything, all alive at
once and run in turn (interleaved, one run each per round), so that ratios
are taken between figures measured side by side; memory in a fresh process
per variant."""
import dataclasses
import json
import os
import select
import subprocess
import sys
import time

from .cases import ALL_VARIANTS, PEER_LIBS
from .measure import Settings, summarize

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
    # XLA has no thread-count flag: one thread turns Eigen's pool off, more use
    # the pool, which the core pinning bounds
    xla = "--xla_cpu_multi_thread_eigen=false" if threads == 1 else ""
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


class WorkerError(RuntimeError):
    pass


class Worker:
    """A child process serving one library (bench.child), over two pipes."""

    def __init__(self, lib, *, threads, device, quick, timeout, memory=False):
        self.lib, self.timeout, self.buf = lib, timeout, b""
        cmd_r, cmd_w = os.pipe()
        rep_r, rep_w = os.pipe()
        cores = cores_for(threads) if device == "cpu" else None
        try:
            out = sys.stderr.fileno()       # library chatter: beside our progress lines
        except (AttributeError, OSError, ValueError):
            out = subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.child", str(cmd_r), str(rep_w), lib, device,
             str(threads), "quick" if quick else "full"],
            cwd=ROOT, env=child_env(threads, device, memory), pass_fds=(cmd_r, rep_w),
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
            stdin=subprocess.DEVNULL, stdout=out)
        os.close(cmd_r)
        os.close(rep_w)
        self.cmd = os.fdopen(cmd_w, "w", buffering=1)
        self.rep = rep_r
        self.hello = self._receive(max(timeout, 120))

    def call(self, op, **msg):
        """The worker's reply; WorkerError if it died or ran past the timeout
        (then it is killed)."""
        if self.proc.poll() is not None:
            raise WorkerError(f"the {self.lib} worker has exited ({self.proc.returncode})")
        try:
            self.cmd.write(json.dumps(dict(msg, op=op)) + "\n")
            self.cmd.flush()
        except OSError as e:
            raise WorkerError(f"the {self.lib} worker is gone ({e})") from e
        return self._receive(self.timeout)

    def _receive(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.rep], [], [], max(left, 0))
            if not ready:
                self.kill()
                raise WorkerError(f"the {self.lib} worker gave no answer in {timeout:g} s "
                                  f"(killed; raise --timeout?)")
            chunk = os.read(self.rep, 1 << 16)
            if not chunk:
                code = self.proc.wait()
                raise WorkerError(f"the {self.lib} worker ended with exit status {code} "
                                  f"(a crash: see its messages above)")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        """The worker's last word (its thread pools), then its end."""
        out = {}
        try:
            out = self.call("finish")
            self.proc.wait(timeout=30)
        except (WorkerError, subprocess.TimeoutExpired):
            pass
        self.kill()
        for f in (self.cmd,):
            try:
                f.close()
            except OSError:
                pass
        os.close(self.rep)
        return out


def say(msg):
    print(msg, file=sys.stderr, flush=True)


class Run:
    """One run of the benchmarks: workers, records, errors, and each
    library's versions and thread pools."""

    def __init__(self, *, threads, device, quick, timeout):
        self.opts = dict(threads=threads, device=device, quick=quick, timeout=timeout)
        self.records, self.errors, self.libs = [], [], {}
        # with several threads, an idle worker's BLAS / OpenMP threads spin for
        # a while after its run (OpenBLAS: ~0.1 s) on the cores the next one needs
        self.settle_s = 0.15 if threads > 1 and device == "cpu" else 0.0

    def start(self, lib, memory=False):
        try:
            w = Worker(lib, memory=memory, **self.opts)
        except WorkerError as e:
            self.errors.append({"case": "*", "variant": lib, "kind": "worker", "message": str(e)})
            say(f"[bench] {lib}: {e}")
            return None
        if w.hello.get("skipped"):
            say(f"[bench] {lib} skipped: {w.hello['skipped']}")
            self.libs.setdefault(lib, w.hello)
            w.close()
            return None
        self.libs.setdefault(lib, w.hello)
        return w

    def ask(self, worker, op, where, **msg):
        """The worker's reply to op, or None after recording why there is none
        (a failed check, a crash, a timeout)."""
        try:
            rep = worker.call(op, **msg)
        except WorkerError as e:
            rep = {"ok": False, "kind": "worker", "message": str(e)}
        if rep.pop("ok", False):
            return rep
        case_key, variant = where
        self.errors.append({"case": case_key, "variant": variant, **rep})
        say(f"  {variant} {case_key}: FAILED ({op}): {rep.get('kind')}: {rep.get('message')}")
        return None

    def time_case(self, case, entries):
        """Prepare every (variant, worker), then interleave their runs, the
        order rotated each round, until enough runs and the budget is spent."""
        settings = Settings.for_mode(self.opts["quick"], case.workload, self.opts["device"])
        ready = []
        for v, w in entries:
            prep = self.ask(w, "prepare", (case.key, v), case=dataclasses.asdict(case), variant=v)
            if prep is not None:
                ready.append((v, w, prep))
        samples = {v: [] for v, _, _ in ready}
        spent, rounds, last = 0.0, 0, None
        while ready:
            k = rounds % len(ready)
            for v, w, prep in ready[k:] + ready[:k]:
                if w is not last and self.settle_s:
                    time.sleep(self.settle_s)   # the last worker's pool threads stop spinning
                last = w
                rep = self.ask(w, "run", (case.key, v), key=case.key, variant=v, n=prep["n"])
                if rep is None:
                    ready = [r for r in ready if r[0] != v]
                    continue
                samples[v].append((rep["wall"] / prep["n"], rep["cpu"] / prep["n"]))
                spent += rep["wall"]
            rounds += 1
            if rounds >= settings.repeats and (rounds >= settings.max_repeats or
                                               spent >= settings.budget_s * max(len(ready), 1)):
                break
        line = []
        for v, w, prep in ready:
            rec = summarize([s[0] for s in samples[v]])
            rec.update(cpu=summarize([s[1] for s in samples[v]]), inner=prep["n"],
                       first_call=prep["first_call"], check_error=prep["check_error"],
                       timer=prep["timer"], case=case.key, variant=v)
            rec.update(self.ask(w, "post", (case.key, v), key=case.key, variant=v) or {})
            self.records.append(rec)
            line.append(f"{v} {rec['median'] * 1e3:.4g} ms")
        for w in {id(w): w for _, w in entries}.values():
            try:
                w.call("release", key=case.key)
            except WorkerError:
                pass
        say(f"  {case.key}: " + ", ".join(line))

    def memory_case(self, case, variant):
        w = self.start(ALL_VARIANTS[variant][0], memory=True)
        if w is None:
            return
        rep = self.ask(w, "memory", (case.key, variant), case=dataclasses.asdict(case),
                       variant=variant)
        if rep is not None:
            rep.update(case=case.key, variant=variant)
            self.records.append(rep)
            say(f"  {case.key} {variant}: " + ", ".join(
                f"{k} {v / 2**20:.2f} MiB" for k, v in rep.items()
                if k.endswith("_peak") and v is not None))
        w.close()

    def finish(self, workers):
        for lib, w in workers.items():
            self.libs[lib].update(w.close())


def run_all(variants, cases, *, threads, device, quick, timeout):
    """All cases: timing cases interleaved across one live worker per library,
    memory cases in a fresh worker per variant.  Returns the Run."""
    run = Run(threads=threads, device=device, quick=quick, timeout=timeout)
    timing = [c for c in cases if c.workload != "memory"]
    workers = {}
    if timing:
        for lib in libs_of(variants):
            say(f"[bench] starting {lib} (threads={threads})")
            w = run.start(lib)
            if w is not None:
                workers[lib] = w
    try:
        for case in timing:
            entries = [(v, workers[ALL_VARIANTS[v][0]]) for v in variants
                       if ALL_VARIANTS[v][0] in workers and case.runs(v)]
            if case.workload == "train" and "numpy" in workers:
                entries.append(("matmuls-only", workers["numpy"]))
            say(f"[bench] {case.key}: {', '.join(v for v, _ in entries)}")
            run.time_case(case, entries)
    finally:
        run.finish(workers)
    for case in cases:
        if case.workload == "memory":
            say(f"[bench] {case.key}: one process per variant")
            for v in variants:
                if case.runs(v):
                    run.memory_case(case, v)
    return run


def libs_of(variants):
    out = {}
    for v in variants:
        out.setdefault(ALL_VARIANTS[v][0], []).append(v)
    return out


def choose_variants(args, table, baseline):
    out = [v for v in table if args.peers or table[v][0] not in PEER_LIBS]
    if args.variants:
        unknown = [v for v in args.variants if v not in table]
        if unknown:
            raise SystemExit(f"bench: unknown variant(s) {', '.join(unknown)}; "
                             f"choose from {', '.join(table)}")
        out = [v for v in out if v == baseline or v in args.variants]
    return out


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
