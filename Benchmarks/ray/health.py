"""Ray 2.60 peer for starling-bench's health workloads.

idle_cpu: a local Ray cluster with its dashboard (`ray.init`: GCS, raylet, dashboard, agents),
settled for 5 s, then the CPU time of Ray's processes (not the driver) over 30 s, as % of one
core. metrics_scrape: 100 actors alive; ms for a GET of the node's Prometheus metrics endpoint
(`_metrics_export_port`), mean of 20 after one untimed.
Prints one JSON object.
"""
import json
import os
import time
import urllib.request

import ray

IDLE_SECONDS = 30
ACTORS = 100
SCRAPES = 20


def ray_pids():
    """Processes of the Ray session: everything whose command line names ray's binaries."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "/ray/" in cmd or "ray::" in cmd or "gcs_server" in cmd or "raylet" in cmd:
            pids.append(int(entry))
    return pids


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tick


def main():
    metrics_port = 8290
    ray.init(num_cpus=2, include_dashboard=True, _metrics_export_port=metrics_port, logging_level="ERROR",
             log_to_driver=False)
    out = {}
    try:
        # Settle, then the CPU of Ray's own processes (GCS, raylet, dashboard, agents; not this
        # driver) over the idle period.
        time.sleep(5)
        pids = ray_pids()
        before = cpu_seconds(pids)
        start = time.perf_counter()
        time.sleep(IDLE_SECONDS)
        out["idle_cpu"] = 100 * (cpu_seconds(pids) - before) / (time.perf_counter() - start)

        @ray.remote(num_cpus=0)
        class Actor:
            def ping(self):
                return 0

        actors = [Actor.remote() for _ in range(ACTORS)]
        ray.get([a.ping.remote() for a in actors])
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        urllib.request.urlopen(url).read()
        start = time.perf_counter()
        for _ in range(SCRAPES):
            urllib.request.urlopen(url).read()
        out["metrics_scrape"] = (time.perf_counter() - start) * 1000 / SCRAPES
    finally:
        ray.shutdown()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
