"""Line the served tail's slowest moments up against what ran on the serve cores.

    .venv/bin/python benchmarks/stall_lineup.py [--seconds 60] [--loads 0.5,0.7,0.85]

On a private embedded cluster the digits MLP is served as serve_http.py deploys it.
Its closed-loop capacity is measured first (wrk, median of 3); then the Node.js
open-loop generator (benchmarks/_openloop.mjs, pinned to the train pool's core)
offers each share of it for ``--seconds`` and reports every 100 ms window's max
latency. Meanwhile a sampler reads, every 100 ms, each thread's CPU time and
run-queue wait (``/proc/<pid>/task/<tid>/schedstat``) of every process allowed on
the serve cores and of HAProxy, and the serve cores' busy time. Around each run it
reads HAProxy's stats (retries, redispatches, check-downs, downtime) and the
replica's event-loop lag histogram (Serve's own monitor, run every 100 ms here
instead of every 5 s).

Prints per load: the generator's figures, the threads that ran most on the serve
cores over the whole run, and for the slowest windows the threads that ran or
waited most from 200 ms before the window to its end. GC has no counter of its own
here: Serve freezes the replica's GC after start-up, and a collection shows as the
replica's main thread running.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import io
import os
import re
import statistics
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster import private_cluster
from _schedstat import Thread, all_pids, allowed_cores, read_threads
from isolation import closed_loop_capacity, open_loop, serve_digits

from tandem.cluster.layout import PortPlan

SAMPLE_S = 0.1
WINDOW_MS = 100
SLOWEST = 5
LOOKBACK_MS = 200


class Sampler(threading.Thread):
    """Every ``SAMPLE_S``: schedstat of every thread of the watched processes, and the
    serve cores' busy jiffies. New processes are picked up as they appear."""

    def __init__(self, serve_cores: list[int]) -> None:
        super().__init__(daemon=True)
        self.serve_cores = set(serve_cores)
        self.samples: list[tuple[float, dict[Thread, tuple[int, int]], int]] = []
        self.labels: dict[Thread, str] = {}
        self._watched: dict[int, bool] = {}
        self._halt = threading.Event()

    def watched(self, pid: int) -> bool:
        if pid not in self._watched:
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                self._watched[pid] = comm == "haproxy" or bool(
                    allowed_cores(pid) & self.serve_cores
                )
            except OSError:
                self._watched[pid] = False
        return self._watched[pid]

    def busy_jiffies(self) -> int:
        total = 0
        for line in Path("/proc/stat").read_text().splitlines():
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in self.serve_cores:
                user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[:7])
                total += user + nice + system + irq + softirq
        return total

    def sample(self) -> dict[Thread, tuple[int, int]]:
        pids = [pid for pid in all_pids() if self.watched(pid)]
        return read_threads(pids, self.labels, self.serve_cores)

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.time() * 1000, self.sample(), self.busy_jiffies()))
            self._halt.wait(SAMPLE_S)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def between(
        self, start_ms: float, end_ms: float
    ) -> tuple[dict[Thread, tuple[int, int]], float]:
        """Each thread's (CPU ns, run-queue wait ns) and the serve cores' busy share between
        the samples around ``start_ms``..``end_ms``."""
        times = [sample[0] for sample in self.samples]  # in order: appended as taken
        before = self.samples[max(0, bisect.bisect_right(times, start_ms) - 1)]
        after = self.samples[min(len(times) - 1, bisect.bisect_left(times, end_ms))]
        deltas = {
            key: (run - before[1].get(key, (0, 0))[0], wait - before[1].get(key, (0, 0))[1])
            for key, (run, wait) in after[1].items()
        }
        ticks = os.sysconf("SC_CLK_TCK")
        span_s = (after[0] - before[0]) / 1000
        busy = (after[2] - before[2]) / ticks / (span_s * len(self.serve_cores))
        return deltas, busy


def top(deltas: dict[Thread, tuple[int, int]], labels: dict[Thread, str], field: int) -> str:
    ranked = sorted(deltas.items(), key=lambda item: -item[1][field])[:4]
    return "; ".join(
        f"{labels[key]} {value[field] / 1e6:.1f}" for key, value in ranked if value[field]
    )


def haproxy_counters(stats_port: int) -> dict[str, int]:
    url = f"http://127.0.0.1:{stats_port}/stats;csv"
    with urllib.request.urlopen(url, timeout=5) as response:
        rows = list(csv.DictReader(io.StringIO(response.read().decode().lstrip("# "))))
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        if row["svname"] == "BACKEND" and row["pxname"] != "stats":
            for field in ("wretr", "wredis", "chkdown", "downtime"):
                totals[field] += int(row[field] or 0)
    return dict(totals)


def loop_lag(metrics_port: int) -> dict[float, float]:
    """The replica's event-loop lag histogram: cumulative count per bucket bound (ms)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
    buckets: dict[float, float] = defaultdict(float)
    pattern = r"^ray_serve_event_loop_scheduling_latency_ms_bucket\{([^}]*)\} (\S+)"
    for labels, value in re.findall(pattern, text.decode(), re.M):
        if 'component="replica"' in labels and 'loop_type="main"' in labels:
            bound = re.search(r'le="([^"]+)"', labels)
            assert bound
            buckets[float(bound.group(1))] += float(value)
    return dict(buckets)


def lag_summary(before: dict[float, float], after: dict[float, float]) -> str:
    """Samples between two scrapes, and how many lagged past 5, 10 and 50 ms."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
    if not counts:
        return "no samples exported"
    total = counts[max(counts)]
    return f"{total:.0f} samples; " + ", ".join(
        f"over {ms} ms: {total - counts[ms]:.0f}" for ms in (5.0, 10.0, 50.0)
    )


def serve_metrics_port() -> int:
    import ray

    for node in ray.nodes():
        if node["Alive"] and node.get("Labels", {}).get("tandem.io/pool") == "serve":
            return int(node["MetricsExportPort"])
    raise RuntimeError("no serve node")


def lineup(args: argparse.Namespace, url: str, body: str, rate: float, ports: dict) -> None:
    sampler = Sampler(ports["serve_cores"])
    lag_before, proxy_before = loop_lag(ports["metrics"]), haproxy_counters(ports["stats"])
    sampler.start()
    result = open_loop(url, body, rate, args.seconds, ports["client_cores"], True, WINDOW_MS)
    sampler.stop()
    time.sleep(11)  # Ray exports metrics every 10 s
    lag_after, proxy_after = loop_lag(ports["metrics"]), haproxy_counters(ports["stats"])
    share = rate / ports["capacity"]
    print(f"\n== {rate:,.0f} req/s offered ({share:.0%} of capacity), {args.seconds:g} s")
    print(
        f"achieved {result['achieved_rps']:,.0f} req/s; p50 {result['p50_ms']:.2f} / "
        f"p99 {result['p99_ms']:.2f} / p99.9 {result['p999_ms']:.2f} / "
        f"max {result['max_ms']:.1f} ms; >100 ms {result['over_100ms']}, failed {result['errors']}"
    )
    proxy = {k: proxy_after[k] - proxy_before.get(k, 0) for k in proxy_after}
    print(f"HAProxy backends during the run: {proxy}")
    print(f"replica event-loop lag: {lag_summary(lag_before, lag_after)}")
    timeline = result["timeline"]
    whole, busy = sampler.between(timeline[0][0], timeline[-1][0] + WINDOW_MS)
    print(f"serve cores {busy:.0%} busy; CPU ms over the run: {top(whole, sampler.labels, 0)}")
    print(f"run-queue wait ms over the run: {top(whole, sampler.labels, 1)}")
    median_max = statistics.median(window[2] for window in timeline)
    print(f"slowest {WINDOW_MS} ms windows (median window's max {median_max:.1f} ms):")
    for start, requests, worst in sorted(timeline, key=lambda w: -w[2])[:SLOWEST]:
        deltas, busy = sampler.between(start - LOOKBACK_MS, start + WINDOW_MS)
        stamp = time.strftime("%H:%M:%S", time.localtime(start / 1000)) + f".{start % 1000:03.0f}"
        print(f"  {stamp} max {worst:.1f} ms ({requests} requests), serve cores {busy:.0%} busy")
        print(f"    ran (ms): {top(deltas, sampler.labels, 0)}")
        print(f"    waited (ms): {top(deltas, sampler.labels, 1)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--loads", default="0.5,0.7,0.85", help="shares of closed-loop capacity")
    parser.add_argument("--port-base", type=int, default=23000)
    args = parser.parse_args()
    os.environ["RAY_SERVE_EVENT_LOOP_MONITORING_INTERVAL_S"] = str(SAMPLE_S)  # nodes inherit it
    with private_cluster(args.port_base) as settings:
        state, url, body = serve_digits(settings)
        client_cores = state.cores["train"]
        capacity = closed_loop_capacity(url, body, client_cores)
        print(f"closed-loop capacity {capacity:,.0f} req/s (wrk -c16, median of 3)", flush=True)
        ports = {
            "serve_cores": state.cores["serve"],
            "client_cores": client_cores,
            "capacity": capacity,
            "metrics": serve_metrics_port(),
            "stats": PortPlan(args.port_base).serve_ingress_ports()["haproxy_stats"],
        }
        for load in (float(share) for share in args.loads.split(",")):
            lineup(args, url, body, load * capacity, ports)


if __name__ == "__main__":
    main()
