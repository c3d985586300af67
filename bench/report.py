"""Tables: times and ratios to the hand-written baseline, as aligned text for
stdout and as markdown for bench/results/ and bench/README.md."""
import datetime
import json
import os
import platform
import re
import socket
import subprocess

from .cases import ALL_VARIANTS, GOALS, REFERENCE_ROWS, SPEEDUP_GOALS

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")
START, END = "<!-- latest results: start -->", "<!-- latest results: end -->"
MiB = 1 << 20


# ---- the machine -------------------------------------------------------------
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_slug(device_name=None):
    name = device_name or f"{cpu_model()} {os.cpu_count()}cpu"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]


def git_revision():
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gpuprop"], cwd=HERE,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def meta(args, device, device_name=None):
    now = datetime.datetime.now()
    return {"date": now.strftime("%Y-%m-%d %H:%M"), "stamp": now.strftime("%Y-%m-%dT%H%M"),
            "machine": device_name or f"{cpu_model()}, {os.cpu_count()} CPUs",
            "host": socket.gethostname(), "slug": machine_slug(device_name),
            "python": platform.python_version(), "platform": platform.platform(),
            "device": device, "gpuprop_git": git_revision(),
            "quick": args.quick, "workloads": args.only, "peers": args.peers}


# ---- rows ----------------------------------------------------------------------
def fmt_time(s):
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale or unit == "µs":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"


def fmt_mib(b):
    if b is None:
        return "-"
    return f"{b / MiB:.1f} MiB" if abs(b) >= MiB else f"{b / 1024:.0f} KiB"


def headline(rec, workload):
    """The figure a ratio is taken of: median wall time; CPU time for the
    epoch; tracemalloc's peak (else the RSS peak) for memory."""
    if workload == "memory":
        return rec.get("tracemalloc_peak", rec.get("rss_peak"))
    if workload == "epoch":
        return rec["cpu"]["median"]
    return rec["median"]


def ratio(a, b):
    return a / b if a is not None and b else None


def goal_mark(case_key, variant, r):
    goal = GOALS.get((case_key, variant))
    if goal is None:
        return "", None
    if r is None:
        return f"≤{goal:g} (no figure)", False
    ok = r <= goal
    return f"≤{goal:g} {'met' if ok else 'MISSED'}", ok


def speedup_mark(case, variant, rec, by):
    """The row's goal in SPEEDUP_GOALS: its median over the other variant's
    (in the same run) at least the goal."""
    other, goal = SPEEDUP_GOALS.get((case.key, variant), (None, None))
    if goal is None:
        return "", None
    base = by.get((case.key, other))
    s = ratio(headline(rec, case.workload), headline(base, case.workload) if base else None)
    if s is None:
        return f"≥{goal:g}x {other} (no figure)", False
    ok = s >= goal
    return f"{s:.1f}x {other}: ≥{goal:g} {'met' if ok else 'MISSED'}", ok


def build_rows(cases, records, baseline):
    """One row per (case, variant) that has a record, baseline first."""
    by = {(r["case"], r["variant"]): r for r in records}
    order = [baseline] + [v for v in list(ALL_VARIANTS) + list(REFERENCE_ROWS) if v != baseline]
    rows = []
    for case in cases:
        base = by.get((case.key, baseline))
        for v in order:
            rec = by.get((case.key, v))
            if rec is None:
                continue
            if case.workload == "memory":
                tm, rss = rec.get("tracemalloc_peak"), rec.get("rss_peak")
                b_tm = base.get("tracemalloc_peak") if base else None
                b_rss = base.get("rss_peak") if base else None
                r = ratio(tm, b_tm) if tm is not None else None
                figs = [f"tracemalloc {fmt_mib(tm)}", f"RSS {fmt_mib(rss)}",
                        f"RSS x{ratio(rss, b_rss):.2f}" if ratio(rss, b_rss) else ""]
            else:
                h = headline(rec, case.workload)
                r = ratio(h, headline(base, case.workload) if base else None)
                if case.workload == "epoch":
                    figs = [f"CPU {fmt_time(h)}", f"wall {fmt_time(rec['median'])}",
                            f"loss {rec.get('loss', float('nan')):.4f}"]
                else:
                    figs = [fmt_time(rec["median"]), fmt_time(rec["min"]), fmt_time(rec["max"])]
            goal, ok = goal_mark(case.key, v, r)
            if not goal:
                goal, ok = speedup_mark(case, v, rec, by)
            rows.append({"case": case.key, "label": case.label, "variant": v,
                         "figures": figs, "ratio": r, "goal": goal, "goal_met": ok,
                         "first_call": rec.get("first_call"), "runs": rec.get("runs"),
                         "inner": rec.get("inner")})
    return rows


def _table(rows):
    head = ["case", "variant", "median / figure", "min", "max", "x baseline", "goal", "first call"]
    body, last = [], None
    for r in rows:
        f = (r["figures"] + ["", "", ""])[:3]
        body.append([r["label"] if r["label"] != last else "", r["variant"], *f,
                     "-" if r["ratio"] is None else f"{r['ratio']:.2f}x", r["goal"],
                     fmt_time(r["first_call"]) if r["first_call"] else ""])
        last = r["label"]
    return head, body


def text_table(head, body):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def md_table(head, body):
    esc = lambda c: str(c).replace("|", "\\|")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(out + ["| " + " | ".join(esc(c) for c in b) + " |" for b in body])


def summary(rows, baseline):
    """Ratios only: one row per case, one column per variant."""
    variants = [v for v in list(ALL_VARIANTS) + list(REFERENCE_ROWS)
                if v != baseline and any(r["variant"] == v for r in rows)]
    head = ["case"] + variants + ["goals (gpuprop)"]
    body = []
    for label in dict.fromkeys(r["label"] for r in rows):
        mine = {r["variant"]: r for r in rows if r["label"] == label}
        cells = [label]
        for v in variants:
            r = mine.get(v)
            cells.append("" if r is None or r["ratio"] is None else f"{r['ratio']:.2f}x")
        goals = [f"{v.split('-', 1)[1]} {r['goal']}" for v, r in mine.items() if r["goal"]]
        body.append(cells + ["; ".join(goals)])
    return head, body


def describe_env(results):
    """Versions, pinning and thread pools, one line per library."""
    lines = []
    for res in results:
        lib = res.get("lib")
        if res.get("skipped"):
            lines.append(f"{lib}: skipped ({res['skipped']})")
            continue
        info = res.get("info")
        if not info:
            continue
        versions = ", ".join(f"{k} {v}" for k, v in info.items()
                             if isinstance(v, str) and k not in ("jax_backend",))
        pools = "; ".join(
            f"{p.get('internal_api')} {p.get('version') or ''}".strip()
            + f" ({p.get('num_threads')} thr)"
            for p in res.get("threadpools", []) if "internal_api" in p)
        extra = f", torch threads {info['torch_threads']}" if "torch_threads" in info else ""
        lines.append(f"{lib}: {versions}{extra}; cores {res.get('affinity')}; "
                     f"pools: {pools or 'none reported'}")
    return lines


def render(meta_, threads, rows, results, baseline, errors, markdown):
    """The report of one run: the ratios and goals, the full table, the
    errors, the libraries.  On stdout the ratios come last (the last thing on
    the screen); in markdown they come first."""
    head, body = _table(rows)
    shead, sbody = summary(rows, baseline)
    tab = md_table if markdown else text_table
    bullet = "- " if markdown else "  "
    thread_env = next((r.get("env") for r in results if r.get("env")), {})
    title = (f"### {meta_['date']}, {meta_['machine']}, threads={threads}" if markdown
             else f"== gpuprop bench, {meta_['date']}, {meta_['machine']}, threads={threads}")
    about = [f"Python {meta_['python']}, {meta_['platform']}; gpuprop git {meta_['gpuprop_git']}; "
             f"baseline: hand-written {baseline}; thread env: "
             + ", ".join(f"{k}={v}" for k, v in thread_env.items()), ""]
    about += [bullet + e for e in describe_env(results)] + [""]
    ratios = ["Ratio to hand-written " + baseline + " (lower is better) and gpuprop's goals:",
              "", tab(shead, sbody), ""]
    details = ["Times per call (median of runs, min, max), ratio of medians to the baseline "
               "(epoch: CPU time; memory: tracemalloc peak):", "", tab(head, body), ""]
    if errors:
        details += ["ERRORS (these variants were not timed):"]
        details += [bullet + f"{e['variant']} {e['case']}: {e['kind']}: "
                    + str(e.get("message", "")).splitlines()[0] for e in errors] + [""]
    parts = [ratios, about, details] if markdown else [about, details, ratios]
    return "\n".join([title, ""] + [line for part in parts for line in part])


def save(out_dir, meta_, payload, markdown, suffix=""):
    os.makedirs(out_dir, exist_ok=True)
    name = f"{meta_['stamp']}_{meta_['slug']}{suffix}"
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(payload, f, indent=1, default=str)
    with open(os.path.join(out_dir, name + ".md"), "w") as f:
        f.write(markdown)
    return os.path.join(out_dir, name)


def update_readme(markdown, path=README):
    """Replace the block between the markers in bench/README.md."""
    with open(path) as f:
        text = f.read()
    if START not in text or END not in text:
        text = text.rstrip() + f"\n\n{START}\n{END}\n"
    pre, rest = text.split(START, 1)
    post = rest.split(END, 1)[1]
    with open(path, "w") as f:
        f.write(f"{pre}{START}\n{markdown.strip()}\n{END}{post}")


def main(argv=None):
    """python -m bench.report RESULTS.json [--readme]: the tables of a saved
    run again, on stdout and into the .md beside it (with --readme, into
    bench/README.md too)."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    p.add_argument("results")
    p.add_argument("--readme", action="store_true")
    args = p.parse_args(argv)
    with open(args.results) as f:
        saved = json.load(f)
    meta_ = saved["meta"]
    baseline = "cupy" if meta_.get("device") == "cuda" else "numpy"
    runs = saved.get("runs") or [dict(saved, threads="n/a (GPU)")]
    for markdown in (False, True):
        out = "\n".join(render(meta_, r["threads"], r["rows"], r["libraries"], baseline,
                               r["errors"], markdown) for r in runs)
        if not markdown:
            print(out)
            continue
        with open(os.path.splitext(args.results)[0] + ".md", "w") as f:
            f.write(out)
        if args.readme:
            update_readme(out)


if __name__ == "__main__":
    main()
