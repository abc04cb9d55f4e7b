"""Ray 2.60 peer for starling-bench's cross_node_get_gigabytes: two nodes of one machine (Ray's
cluster_utils, each its own raylet and object store on loopback); the driver puts a 100 MB
float32 array on the head node, a task on the other node gets it (Ray pulls it between the
stores), timed inside the task. Prints one JSON object.
"""
import json
import time

import numpy as np
import ray
from ray.cluster_utils import Cluster

FLOATS = 25_000_000
ROUNDS = 5


def main():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1, resources={"remote": 1})
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    cluster.wait_for_nodes()

    @ray.remote(resources={"remote": 1}, num_cpus=0)
    def pull(refs):
        start = time.perf_counter()
        value = ray.get(refs[0])
        elapsed = time.perf_counter() - start
        return elapsed, float(value[-1])

    # One untimed round (workers start, connections form).
    ray.get(pull.remote([ray.put(np.full(FLOATS, 1.5, dtype=np.float32))]))
    total = 0.0
    for round in range(ROUNDS):
        ref = ray.put(np.full(FLOATS, float(round), dtype=np.float32))
        elapsed, last = ray.get(pull.remote([ref]))
        assert last == float(round)
        total += elapsed
    print(json.dumps({"cross_node_get_gigabytes": FLOATS * 4 * ROUNDS / 1e9 / total}), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main()
