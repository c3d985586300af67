"""python -m bench: gpuprop against hand-written NumPy and its peers, side by side
in one run.  See bench/README.md.

    python -m bench                      # everything, 1 thread, peers if installed
    python -m bench --quick --no-peers   # a smoke test: small sizes, few repeats
    python -m bench --only chain,hvp --threads 1,2
    python -m bench --gpu                # on a CUDA machine (bench/gpu_check.sh)
"""
import argparse
import os
import sys

from . import report, runner
from .cases import BASELINE, VARIANTS, WORKLOADS, cases
from .runner import choose_variants, epoch_losses_agree, finish

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="workloads:\n" + "\n".join(
                                    f"  {k:7s} {v}" for k, v in WORKLOADS.items()))
    p.add_argument("--quick", action="store_true",
                   help="few repeats, small sizes only (a smoke test)")
    p.add_argument("--only", default="all", metavar="WORKLOAD[,...]",
                   help="run only these workloads (default: all)")
    p.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                   help="also run PyTorch, JAX and HIPS autograd where installed (default: on)")
    p.add_argument("--variants", default=None, metavar="NAME[,...]",
                   help=f"only these variants (the baseline always runs): {', '.join(VARIANTS)}")
    p.add_argument("--threads", default="1", metavar="N[,N...]",
                   help="threads per library, e.g. 1 or 1,2: each count is a run of its own "
                        "on that many pinned cores (default: 1)")
    p.add_argument("--gpu", action="store_true",
                   help="the CUDA benchmarks (CuPy baseline, CUDA events); see gpu_check.sh")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="where the JSON and markdown results go (default: bench/results)")
    p.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None,
                   help="put the table into bench/README.md (default: only for a full "
                        "CPU run: not --quick, not --only, not --variants)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds one library may take for one step of the protocol (a "
                        "check and warm-up, or one run); past it, it is killed and "
                        "reported (default 300; --quick 60)")
    args = p.parse_args(argv)
    args.only = list(WORKLOADS) if args.only == "all" else [w.strip() for w in args.only.split(",")]
    bad = [w for w in args.only if w not in WORKLOADS]
    if bad:
        p.error(f"unknown workload(s) {', '.join(bad)}; choose from {', '.join(WORKLOADS)}")
    try:
        args.threads = [int(t) for t in str(args.threads).split(",")]
    except ValueError:
        p.error("--threads takes whole numbers, e.g. 1 or 1,2")
    if args.variants:
        args.variants = [v.strip() for v in args.variants.split(",")]
    args.timeout = args.timeout or (60 if args.quick else 300)
    return args


def run_cpu(args):
    chosen = cases(args.only, args.quick)
    variants = choose_variants(args, VARIANTS, BASELINE["cpu"])
    meta = report.meta(args, "cpu")
    texts, mds, runs, failures = [], [], [], []
    for threads in args.threads:
        run = runner.run_all(variants, chosen, threads=threads, device="cpu",
                             quick=args.quick, timeout=args.timeout)
        records, errors, results = run.records, run.errors, list(run.libs.values())
        errors += epoch_losses_agree(records, BASELINE["cpu"])
        rows = report.build_rows(chosen, records, BASELINE["cpu"])
        texts.append(report.render(meta, threads, rows, results, BASELINE["cpu"], errors, False))
        mds.append(report.render(meta, threads, rows, results, BASELINE["cpu"], errors, True))
        runs.append({"threads": threads, "libraries": results, "records": records,
                     "rows": rows, "errors": errors})
        failures += errors
    md = "\n".join(mds)
    path = report.save(args.out, meta, {"meta": meta, "runs": runs}, md,
                       "_quick" if args.quick else "")
    full = not args.quick and set(args.only) == set(WORKLOADS) and not args.variants
    if args.readme or (args.readme is None and full and args.out == DEFAULT_OUT):
        report.update_readme(md)
    print("\n".join(texts))
    print(f"results: {path}.json, {path}.md")
    return finish(failures)


def main(argv=None):
    args = parse(argv)
    if args.gpu:
        from . import gpu
        return gpu.run(args)
    return run_cpu(args)


if __name__ == "__main__":
    sys.exit(main())
