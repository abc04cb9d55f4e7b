"""Ray 2.60 peer for starling-bench's task workloads: the same definitions, printed as JSON.

Run by starling-bench (--peer ray) with the venv's python; prints one JSON object.
"""
import json
import time

import ray


@ray.remote
def noop():
    return 0


def main():
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray.get(noop.remote())
    out = {"cluster_start": time.perf_counter() - t0}

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
    print(json.dumps(out), flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
