"""Run every payq benchmark side by side with its peers and print medians, ratios and versions.

Started by ``bench/run``, which installs the peers into bench/.scratch first. One redis-server of
the bench's own serves every system; each benchmark runs ``--rounds`` times and the table shows the
median of the rounds. Every drain, load and wait has a deadline, so the run ends by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib import metadata

import drain
import intake
import latency
import wakeups
from common import (
    BENCH,
    PAYQ,
    PEER_PYTHON,
    ROOT,
    SCRATCH,
    Children,
    machine,
    median,
    rss_kib,
    say,
    start_redis,
    wait_until,
)

BARE = "bare FastAPI endpoint (log info)"


def versions() -> dict[str, str]:
    def run(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return "?"

    peer = run(str(PEER_PYTHON), "-c", "import importlib.metadata as m; print(m.version('rq'), m.version('arq'))")
    rq, _, arq = peer.partition(" ")
    node_resque = json.loads((SCRATCH / "node" / "node_modules" / "node-resque" / "package.json").read_text())
    commit = run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    dirty = run("git", "-C", str(ROOT), "status", "--porcelain", "--", "workers", "service")
    return {
        "payq": f"{metadata.version('payq')} ({commit}{', uncommitted changes' if dirty else ''})",
        "node-resque": node_resque["version"],
        "rq": rq,
        "arq": arq,
        "redis-server": run("redis-server", "--version").split()[2].removeprefix("v="),
        "python": sys.version.split()[0],
        "node": run("node", "--version"),
        "fastapi": metadata.version("fastapi"),
        "uvicorn": metadata.version("uvicorn"),
        "uvloop": metadata.version("uvloop"),
        "httptools": metadata.version("httptools"),
        "redis-py": metadata.version("redis"),
        "wrk": run("wrk", "--version").split()[1] if run("which", "wrk") else "?",
    }


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([f"\n{title}\n", line, rule, *body])


def bench_drain(args: argparse.Namespace, children: Children, client, port: int, results: dict) -> None:
    say(f"\n[1/4] worker throughput: draining {args.jobs:,} trivial jobs, {args.rounds} rounds")
    systems = drain.systems(args.concurrency)
    runs: dict[str, list[drain.Drain]] = {s.name: [] for s in systems}
    ceilings: dict[str, list[float]] = {"redis-benchmark LPOP, 50 clients": [], "redis-benchmark LPOP, 1 client": []}
    for round_no in range(args.rounds):
        say(f" round {round_no + 1}")
        for system in systems:
            runs[system.name].append(drain.drain(system, children, client, port, args.jobs, args.deadline))
        client.flushall()
        ceilings["redis-benchmark LPOP, 50 clients"].append(drain.lpop_ceiling(port, 50, 200_000))
        ceilings["redis-benchmark LPOP, 1 client"].append(drain.lpop_ceiling(port, 1, 50_000))
    results["drain"] = {
        "jobs": args.jobs,
        "rows": {
            name: {
                "rate": median([r.rate for r in rs]),
                "complete": all(r.complete for r in rs),
                "rss_kib": median([r.rss_kib for r in rs]),
                "rates": [r.rate for r in rs],
            }
            for name, rs in runs.items()
        },
        "ceilings": {name: median(v) for name, v in ceilings.items()},
    }


def bench_intake(args: argparse.Namespace, children: Children, client, port: int, results: dict) -> None:
    say(f"\n[2/4] intake throughput: signed distinct payments, wrk {args.duration:g} s x {args.rounds} rounds")
    requests_file = SCRATCH / "requests.txt"
    servers = [
        ("payq api (log info)", intake.start_payq_api, "info"),
        ("payq api (log warning)", intake.start_payq_api, "warning"),
        (BARE, intake.start_bare, "info"),
        ("node http + node-resque enqueue", intake.start_node_receiver, "info"),
    ]
    runs: dict[str, list[intake.Load]] = {name: [] for name, _, _ in servers}
    for round_no in range(args.rounds):
        say(f" round {round_no + 1}")
        intake.write_requests(requests_file, args.requests)  # fresh timestamps for each round
        # Every other round runs the servers in reverse order, so that a machine growing busier or idler
        # during a round favours no server; each round's ratios compare servers that ran side by side.
        for name, start, level in servers if round_no % 2 == 0 else servers[::-1]:
            runs[name].append(
                intake.load(start, name, children, client, port, requests_file, args.duration, log_level=level)
            )
    results["intake"] = {
        name: {
            "rate": median([r.rate for r in rs]),
            "p50_ms": median([r.p50_ms for r in rs]),
            "p99_ms": median([r.p99_ms for r in rs]),
            "errors": sum(r.not_accepted + r.socket_errors for r in rs),
            "wrapped": any(r.wrapped for r in rs),
            "enqueued": median([r.enqueued for r in rs]),
            "rss_idle_kib": median([r.rss_idle_kib for r in rs]),
            "rss_loaded_kib": median([r.rss_loaded_kib for r in rs]),
            "rates": [r.rate for r in rs],
            "ratios": [r.rate / b.rate for r, b in zip(rs, runs[BARE], strict=True)],
        }
        for name, rs in runs.items()
    }


def bench_latency(args: argparse.Namespace, children: Children, client, port: int, results: dict) -> None:
    maximum = results.get("intake", {}).get("payq api (log info)", {}).get("rate") or args.latency_rate * 2
    rate = max(10.0, maximum / 2)
    say(f"\n[3/4] end-to-end latency at {rate:,.0f} payments/s (half of {maximum:,.0f}), {args.rounds} rounds")
    runs = [latency.measure(children, client, port, rate, args.latency_duration) for _ in range(args.rounds)]
    say(f" CPU per payment at {rate:,.0f}/s, beside the bare endpoint and the wake-ups alone, {args.rounds} rounds")
    costs = [wakeups.measure(children, client, port, rate, args.wakeups_duration) for _ in range(args.rounds)]
    results["cpu_per_payment"] = {
        name: median([c.cpu_us for round_costs in costs for c in round_costs if c.name == name])
        for name in [c.name for c in costs[0]]
    }
    results["latency"] = {
        "rate": rate,
        "p50_ms": median([r.p50_ms for r in runs]),
        "p99_ms": median([r.p99_ms for r in runs]),
        "max_ms": max(r.max_ms for r in runs),
        "http_p99_ms": median([r.http_p99_ms for r in runs]),
        "jobs": [f"{r.started}/{r.sent}" for r in runs],
    }


def bench_memory(args: argparse.Namespace, children: Children, client, port: int, results: dict) -> None:
    say("\n[4/4] memory: idle payq worker (the loaded figures come from benchmarks 1 and 2)")
    client.flushall()
    env = {"PAYQ_REDIS_URL": f"redis://127.0.0.1:{port}/0", "PAYQ_JOBS": "bench_jobs", "PYTHONPATH": str(BENCH)}
    worker = children.start("idle-worker", [str(PAYQ), "worker", "--queues", "bench"], env)
    try:
        wait_until(lambda: bool(client.smembers("resque:workers")), 30)
        time.sleep(2.0)
        results["memory"] = {"worker_idle_kib": rss_kib(worker.pid)}
    finally:
        children.stop(worker)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def report_drain(results: dict, args: argparse.Namespace) -> str:
    rows = results["drain"]["rows"]
    multi, single = rows["node-resque MultiWorker"]["rate"], rows["node-resque Worker"]["rate"]
    lines = []
    for name, row in rows.items():
        note = "" if row["complete"] else " (deadline hit; rate over what was done)"
        rss = f"{row['rss_kib'] / 1024:.0f}"
        lines.append([name + note, f"{row['rate']:,.0f}", ratio(row["rate"], multi), ratio(row["rate"], single), rss])
    for name, value in results["drain"]["ceilings"].items():
        lines.append([name + " (ceiling)", f"{value:,.0f}", ratio(value, multi), ratio(value, single), "-"])
    title = f"1. Worker throughput: jobs/s draining {results['drain']['jobs']:,} trivial jobs (median of {args.rounds})"
    return table(title, ["system", "jobs/s", "vs MultiWorker", "vs Worker", "RSS after, MiB"], lines)


def report_intake(results: dict, args: argparse.Namespace) -> str:
    rows = results["intake"]
    lines = []
    for name, row in rows.items():
        notes = [f"{row['errors']} errors"] if row["errors"] else []
        notes += ["requests repeated"] if row["wrapped"] else []
        label = name + (f" ({', '.join(notes)})" if notes else "")
        lines.append(
            [
                label,
                f"{row['rate']:,.0f}",
                f"{median(row['ratios']):.2f}x",
                " ".join(f"{r:.2f}" for r in row["ratios"]),
                f"{row['p50_ms']:.1f}",
                f"{row['p99_ms']:.1f}",
                f"{row['enqueued']:,.0f}",
            ]
        )
    title = (
        f"2. Intake throughput: signed distinct payments, wrk 1 thread 64 connections {args.duration:g} s "
        f"(median of {args.rounds}; vs bare FastAPI: the median of the rounds' ratios)"
    )
    headers = ["server", "req/s", "vs bare FastAPI", "each round", "p50 ms", "p99 ms", "jobs in Redis"]
    return table(title, headers, lines)


def report_latency(results: dict, args: argparse.Namespace) -> str:
    lat = results["latency"]
    title = (
        f"3. End-to-end latency, webhook sent -> job started, at {lat['rate']:,.0f} payments/s "
        f"(median of {args.rounds})"
    )
    row = [
        f"{lat['p50_ms']:.2f}",
        f"{lat['p99_ms']:.2f}",
        f"{lat['max_ms']:.2f}",
        f"{lat['http_p99_ms']:.2f}",
        ", ".join(lat["jobs"]),
    ]
    latency_table = table(
        title, ["p50 ms", "p99 ms", "max ms", "HTTP answer p99 ms", "jobs started/sent per round"], [row]
    )
    costs = results.get("cpu_per_payment")
    if not costs:
        return latency_table
    cost_title = (
        f"3b. CPU per payment at {lat['rate']:,.0f}/s, from /proc (median of {args.rounds}): each process alone, "
        "beside one doing the same wake-ups with no work"
    )
    cost_rows = [[name, f"{us:,.0f}"] for name, us in costs.items()]
    return latency_table + "\n" + table(cost_title, ["process", "CPU us per payment"], cost_rows)


def report_memory(results: dict) -> str:
    mem = []
    if "intake" in results:
        api = results["intake"]["payq api (log info)"]
        mem.append(["payq api", f"{api['rss_idle_kib'] / 1024:.0f}", f"{api['rss_loaded_kib'] / 1024:.0f}"])
    if "memory" in results:
        loaded = results.get("drain", {}).get("rows", {}).get(drain.PAYQ_LOADED, {}).get("rss_kib", 0)
        idle = f"{results['memory']['worker_idle_kib'] / 1024:.0f}"
        mem.append(["payq worker, 1 slot", idle, f"{loaded / 1024:.0f}" if loaded else "-"])
    return table("4. Memory: resident set size, MiB", ["process", "idle", "loaded"], mem) if mem else ""


def report(results: dict, args: argparse.Namespace) -> str:
    out = [f"payq benchmarks, {time.strftime('%Y-%m-%d %H:%M %Z')}", f"machine: {results['machine']}"]
    out.append("versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    if "drain" in results:
        out.append(report_drain(results, args))
    if "intake" in results:
        out.append(report_intake(results, args))
    if "latency" in results:
        out.append(report_latency(results, args))
    out.append(report_memory(results))
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=50_000, help="jobs per drain (default 50,000)")
    parser.add_argument("--deadline", type=float, default=45.0, help="seconds a drain may take (default 45)")
    parser.add_argument("--concurrency", type=int, default=10, help="payq worker slots in the concurrent rows")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of wrk load per server (default 8)")
    parser.add_argument("--requests", type=int, default=300_000, help="distinct signed requests per round")
    parser.add_argument("--latency-duration", type=float, default=10.0)
    parser.add_argument("--latency-rate", type=float, default=400.0, help="rate when the intake was not measured")
    parser.add_argument("--wakeups-duration", type=float, default=5.0, help="seconds per process in 3b")
    parser.add_argument("--only", default="drain,intake,latency,memory", help="comma-separated benchmarks")
    args = parser.parse_args()
    only = set(args.only.split(","))

    results: dict = {"machine": machine(), "versions": versions()}
    children = Children()
    server, client = start_redis(children)
    started = time.monotonic()
    try:
        for name, bench in [
            ("drain", bench_drain),
            ("intake", bench_intake),
            ("latency", bench_latency),
            ("memory", bench_memory),
        ]:
            if name in only:
                bench(args, children, client, server.port, results)
    finally:
        children.stop_all()
        server.stop()
    results["seconds"] = time.monotonic() - started
    text = report(results, args)
    print(text)
    (SCRATCH / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (SCRATCH / "results.txt").write_text(text)
    say(f"took {results['seconds']:.0f} s; results in {SCRATCH / 'results.txt'} and results.json")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
