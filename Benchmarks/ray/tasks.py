"""Ray 2.60 peer for starling-bench's task workloads: the same definitions, printed as JSON.

Run by starling-bench (--peer ray) with the venv's python; prints one JSON object.
"""
import json
import os
import time

import ray

CLIENTS = 4
TASKS_PER_CLIENT = 2500


@ray.remote
def noop():
    return 0


@ray.remote
def nap(millis):
    time.sleep(millis / 1000)
    return millis


@ray.remote(num_cpus=0)
class Client:
    """A client of multi_client_tasks_async: submits no-ops, then gets them."""

    def run(self, n):
        return len(ray.get([noop.remote() for _ in range(n)]))


def idle_rss_mb():
    """Resident memory of this driver and every process it started (GCS, raylet, workers...),
    read from /proc the same way starling-bench reads its own."""
    parent = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        parent[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    root = os.getpid()

    def descends(pid):
        current = parent.get(pid)
        while current and current > 1:
            if current == root:
                return True
            current = parent.get(current)
        return False

    total = 0
    for pid in [root] + [p for p in parent if descends(p)]:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total / 1e6


def main():
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray.get(noop.remote())
    out = {"cluster_start": time.perf_counter() - t0}

    # Idle cluster with two workers started: two tasks at once, then 2 s idle.
    ray.get([nap.remote(500) for _ in range(2)])
    time.sleep(2)
    out["idle_rss"] = idle_rss_mb()

    for _ in range(200):  # warm up workers and leases
        ray.get(noop.remote())
    n = 2000
    latencies = []
    start = time.perf_counter()
    for _ in range(n):
        a = time.perf_counter()
        ray.get(noop.remote())
        latencies.append(time.perf_counter() - a)
    out["single_client_tasks_sync"] = n / (time.perf_counter() - start)
    latencies.sort()
    out["task_rtt_p50"] = latencies[n // 2] * 1e6
    out["task_rtt_p99"] = latencies[int(n * 0.99)] * 1e6

    n = 10000
    start = time.perf_counter()
    ray.get([noop.remote() for _ in range(n)])
    out["single_client_tasks_async"] = n / (time.perf_counter() - start)

    clients = [Client.remote() for _ in range(CLIENTS)]
    ray.get([c.run.remote(10) for c in clients])  # actors started before timing
    start = time.perf_counter()
    done = sum(ray.get([c.run.remote(TASKS_PER_CLIENT) for c in clients]))
    out["multi_client_tasks_async"] = done / (time.perf_counter() - start)
    print(json.dumps(out), flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
