"""`with s:` (uncontended) from Python: shmsem against posix_ipc and multiprocessing.

Each contender is one semaphore of capacity 1 held and released by this process alone, timed as
`with s: pass` in a loop. The measuring thread is pinned to one CPU; each comparison is timed in
paired batches (one batch of each contender, the order alternating from pair to pair), and
summarised as the median of the per-pair ratios shmsem/peer with a bootstrap 95% interval and the
ratio of the fastest batches. An A/A control (posix_ipc against posix_ipc) is measured the same way: when its median
leaves 0.9-1.1 the machine was too noisy to judge, and the report says so. Ratios below 1 mean
shmsem is faster.

    python python/bench/bench_with.py [--quick] [--json FILE]

A contender that cannot run (posix_ipc not installed, say) gets a row saying why, never none.
"""

import argparse
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import time

# shmsem reads SHMSEM_DIR when the process opens its first semaphore: a fresh one per run.
if "SHMSEM_DIR" not in os.environ:
    os.environ["SHMSEM_DIR"] = tempfile.mkdtemp(prefix="shmsem-bench-py-")

BOOTSTRAP_ROUNDS = 2000
CONTROL_BAND = (0.9, 1.1)


def pin():
    """Pin this process to the last CPU it may run on; the CPU, or None where it cannot."""
    try:
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return cpu
    except (AttributeError, OSError):
        return None


def open_shmsem():
    import shmsem

    return shmsem.Semaphore(f"bench-with-{os.getpid()}", scope="local", capacity=1), None


def open_posix():
    import posix_ipc

    sem = posix_ipc.Semaphore(None, posix_ipc.O_CREX, initial_value=1)

    def close():
        sem.unlink()
        sem.close()

    return sem, close


def open_multiprocessing():
    return multiprocessing.get_context("fork").Semaphore(1), None


def batch(sem, ops):
    """Nanoseconds for `ops` rounds of `with sem: pass`."""
    started = time.perf_counter_ns()
    for _ in range(ops):
        with sem:
            pass
    return time.perf_counter_ns() - started


def size_batch(sem, target_ns):
    """The number of operations that take about `target_ns`."""
    ops = 64
    while True:
        took = batch(sem, ops)
        if took >= target_ns or ops >= 1 << 24:
            return max(1, int(ops * target_ns / max(took, 1)))
        ops *= 2


def bootstrap_ci(ratios, rounds=BOOTSTRAP_ROUNDS, seed=1):
    """The 95% interval of the median of `ratios`, by resampling."""
    rng = random.Random(seed)
    n = len(ratios)
    medians = sorted(statistics.median(rng.choices(ratios, k=n)) for _ in range(rounds))
    return [medians[int(0.025 * rounds)], medians[int(0.975 * rounds) - 1]]


def compare(a, b, pairs, ops):
    """Paired, alternating batches of `a` and `b`: the summary of the ratios a/b."""
    ratios, a_ns, b_ns = [], [], []
    for i in range(pairs):
        if i % 2 == 0:
            ta = batch(a, ops)
            tb = batch(b, ops)
        else:
            tb = batch(b, ops)
            ta = batch(a, ops)
        ratios.append(ta / tb)
        a_ns.append(ta / ops)
        b_ns.append(tb / ops)
    return {
        "ratio_median": statistics.median(ratios),
        "ratio_ci95": bootstrap_ci(ratios),
        # The ratio of the fastest batches: with one-sided noise each contender's fastest batch
        # is its least disturbed one (not the smallest per-pair ratio, which only finds the
        # pair whose peer was disturbed most).
        "ratio_min": min(a_ns) / min(b_ns),
        "samples": pairs,
        "ops_per_batch": ops,
        "ns_per_op": [statistics.median(a_ns), statistics.median(b_ns)],
    }


def measure(pairs, batch_ns):
    """The rows (shmsem against each peer) and the control."""
    opened, closers, unavailable = {}, [], {}
    for name, opener in (
        ("shmsem", open_shmsem),
        ("posix_ipc", open_posix),
        ("posix_ipc (control)", open_posix),
        ("multiprocessing", open_multiprocessing),
    ):
        try:
            sem, close = opener()
        except ImportError as err:
            unavailable[name] = f"{err.name} is not installed (pip install {err.name})"
            continue
        except Exception as err:  # noqa: BLE001 - any failure to open is reported in the row
            unavailable[name] = f"{type(err).__name__}: {err}"
            continue
        opened[name] = sem
        if close is not None:
            closers.append(close)
    try:
        for sem in opened.values():  # warm up
            batch(sem, 1000)
        base = opened.get("posix_ipc") or opened.get("shmsem") or next(iter(opened.values()), None)
        ops = size_batch(base, batch_ns) if base is not None else 0
        rows = []
        for peer in ("posix_ipc", "multiprocessing"):
            row = {"scenario": "Python `with s:` uncontended", "contender": "shmsem", "peer": peer}
            missing = [n for n in ("shmsem", peer) if n not in opened]
            if missing:
                row["unavailable"] = "; ".join(f"{n}: {unavailable[n]}" for n in missing)
            else:
                row.update(compare(opened["shmsem"], opened[peer], pairs, ops))
            rows.append(row)
        control = {"contender": "posix_ipc", "peer": "posix_ipc"}
        missing = [n for n in ("posix_ipc", "posix_ipc (control)") if n not in opened]
        if missing:
            control["unavailable"] = unavailable[missing[0]]
        else:
            control.update(compare(opened["posix_ipc"], opened["posix_ipc (control)"], pairs, ops))
            lo, hi = CONTROL_BAND
            control["noisy"] = not lo <= control["ratio_median"] <= hi
        return rows, control
    finally:
        for close in closers:
            close()


def machine(cpu, control):
    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "pinned_cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "control": control,
    }


def fmt_row(name, row):
    if "unavailable" in row:
        return f"{name:<34} unavailable: {row['unavailable']}"
    lo, hi = row["ratio_ci95"]
    a, b = row["ns_per_op"]
    return (
        f"{name:<34} {a:>9.1f} {b:>9.1f}   {row['ratio_median']:>5.2f}x "
        f"[{lo:.2f}, {hi:.2f}]  min {row['ratio_min']:.2f}x  ({row['samples']} pairs)"
    )


def table(report):
    m = report["machine"]
    lines = [
        f"Python {m['python']} ({m['implementation']}), kernel {m['kernel']}, {m['cpus']} CPUs, "
        f"pinned to CPU {m['pinned_cpu']}",
        f"{'':<34} {'ns/op':>9} {'peer':>9}   ratio (median [95% CI], min)",
    ]
    for row in report["rows"]:
        lines.append(fmt_row(f"with s: vs {row['peer']}", row))
    lines.append(fmt_row("control: posix_ipc vs posix_ipc", m["control"]))
    if m["control"].get("noisy"):
        lines.append(
            "the control left 0.9-1.1: the machine was too noisy to judge these ratios"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter pairs (a few seconds)")
    parser.add_argument("--json", metavar="FILE", help="write the JSON report here ('-': stdout only)")
    args = parser.parse_args(argv)
    pairs, batch_ns = (101, 200_000) if args.quick else (401, 1_000_000)
    cpu = pin()
    rows, control = measure(pairs, batch_ns)
    report = {"rows": rows, "machine": machine(cpu, control)}
    text = json.dumps(report, indent=2)
    if args.json == "-":
        print(text)
        return 0
    print(table(report))
    if args.json:
        with open(args.json, "w") as out:
            out.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
