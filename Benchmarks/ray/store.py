"""Ray 2.60 peer for starling-bench's object-store workloads: 100 MB float32 arrays put and got.

Run by starling-bench (--peer ray) with the venv's python; prints one JSON object.
"""
import json
import time

import numpy as np
import ray

FLOATS = 25_000_000
ROUNDS = 5
# Puts whose ref is dropped at once, as Ray's own microbenchmark (ray_perf.py) puts.
DROPPED_ROUNDS = 20
SMALL_CALLS = 10000


def main():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    array = np.full(FLOATS, 1.5, dtype=np.float32)
    ray.get(ray.put(array))
    out = {}
    for _ in range(3):
        ray.put(array)
    start = time.perf_counter()
    for _ in range(DROPPED_ROUNDS):
        ray.put(array)
    out["single_client_put_gigabytes"] = FLOATS * 4 * DROPPED_ROUNDS / 1e9 / (time.perf_counter() - start)
    start = time.perf_counter()
    refs = [ray.put(array) for _ in range(ROUNDS)]
    out["single_client_put_gigabytes_held"] = FLOATS * 4 * ROUNDS / 1e9 / (time.perf_counter() - start)
    start = time.perf_counter()
    for ref in refs:
        value = ray.get(ref)
        # Touch the data as Starling's get does (Ray's get maps the object without reading it).
        value.sum()
    out["single_client_get_gigabytes"] = FLOATS * 4 * ROUNDS / 1e9 / (time.perf_counter() - start)
    start = time.perf_counter()
    small = [ray.put(i) for i in range(SMALL_CALLS)]
    out["single_client_put_calls"] = SMALL_CALLS / (time.perf_counter() - start)
    start = time.perf_counter()
    for ref in small:
        ray.get(ref)
    out["single_client_get_calls"] = SMALL_CALLS / (time.perf_counter() - start)
    print(json.dumps(out), flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
