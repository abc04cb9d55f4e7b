"""Ray 2.60 peer for starling-bench's CLI workloads.

cli_start_head: seconds from running `ray start --head` until `ray status` answers.
up_local_3: seconds until a local cluster of 3 nodes (ray.cluster_utils: head + 2 nodes, each its
own raylet) has all 3 nodes alive. Prints one JSON object.
"""
import json
import os
import subprocess
import sys
import time

import ray
from ray.cluster_utils import Cluster


def main():
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    # Ray 2.60's `ray start` and `ray status` must agree on token authentication (the token is
    # ~/.ray/auth_token): run both with it, as a secured Ray cluster does.
    os.environ["RAY_AUTH_MODE"] = "token"
    subprocess.run([ray_bin, "stop", "--force"], capture_output=True)
    out = {}
    start = time.perf_counter()
    subprocess.run([ray_bin, "start", "--head", "--port=6391", "--num-cpus=1", "--disable-usage-stats"], check=True, capture_output=True)
    deadline = time.perf_counter() + 120
    while subprocess.run([ray_bin, "status", "--address=127.0.0.1:6391"], capture_output=True).returncode != 0:
        if time.perf_counter() > deadline:
            raise SystemExit("ray status did not answer within 120 s")
        time.sleep(0.05)
    out["cli_start_head"] = time.perf_counter() - start
    subprocess.run([ray_bin, "stop", "--force"], capture_output=True)
    del os.environ["RAY_AUTH_MODE"]

    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    out["up_local_3"] = time.perf_counter() - start
    cluster.shutdown()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
