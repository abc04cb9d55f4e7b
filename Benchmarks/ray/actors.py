"""Ray 2.60 peer for starling-bench's actor workloads, as Ray's microbenchmark defines them.

Run by starling-bench (--peer ray) with the venv's python; prints one JSON object.
"""
import json
import time

import numpy as np
import ray
from ray.util.placement_group import placement_group, remove_placement_group

SYNC_CALLS = 2000
ASYNC_CALLS = 5000
ACTORS = 4
CALLS_PER_ACTOR = 1000
LAUNCHED = 20
GROUPS = 200


@ray.remote(num_cpus=0)
class Actor:
    def small_value(self):
        return 0


@ray.remote(num_cpus=0)
class AsyncActor:
    async def small_value(self):
        return 0


@ray.remote(num_cpus=0)
class Client:
    """A client of n_n_actor_calls_async: its own actor, called n times at once."""

    def __init__(self):
        self.actor = Actor.remote()

    def run(self, n):
        return len(ray.get([self.actor.small_value.remote() for _ in range(n)]))


@ray.remote(num_cpus=0)
class ParameterServer:
    def __init__(self, count):
        self.weights = np.full(count, 0.5, dtype=np.float32)

    def pull(self):
        return self.weights

    def push(self, gradient):
        self.weights -= 0.01 * gradient


@ray.remote(num_cpus=0)
class PSWorker:
    def step(self, server):
        weights = ray.get(server.pull.remote())
        ray.get(server.push.remote(weights))
        return len(weights)


def rate(count, start):
    return count / (time.perf_counter() - start)


def main():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    out = {}
    a = Actor.remote()
    for _ in range(200):
        ray.get(a.small_value.remote())
    start = time.perf_counter()
    for _ in range(SYNC_CALLS):
        ray.get(a.small_value.remote())
    out["1_1_actor_calls_sync"] = rate(SYNC_CALLS, start)

    start = time.perf_counter()
    ray.get([a.small_value.remote() for _ in range(ASYNC_CALLS)])
    out["1_1_actor_calls_async"] = rate(ASYNC_CALLS, start)

    c = AsyncActor.options(max_concurrency=16).remote()
    ray.get([c.small_value.remote() for _ in range(200)])
    start = time.perf_counter()
    ray.get([c.small_value.remote() for _ in range(ASYNC_CALLS)])
    out["1_1_actor_calls_concurrent"] = rate(ASYNC_CALLS, start)

    many = [Actor.remote() for _ in range(ACTORS)]
    ray.get([m.small_value.remote() for m in many])
    start = time.perf_counter()
    ray.get([m.small_value.remote() for m in many for _ in range(CALLS_PER_ACTOR)])
    out["1_n_actor_calls_async"] = rate(ACTORS * CALLS_PER_ACTOR, start)

    clients = [Client.remote() for _ in range(ACTORS)]
    ray.get([cl.run.remote(10) for cl in clients])
    start = time.perf_counter()
    done = sum(ray.get([cl.run.remote(CALLS_PER_ACTOR) for cl in clients]))
    out["n_n_actor_calls_async"] = rate(done, start)

    start = time.perf_counter()
    launched = [Actor.remote() for _ in range(LAUNCHED)]
    ray.get([l.small_value.remote() for l in launched])
    out["actor_launch"] = rate(LAUNCHED, start)

    for _ in range(5):
        pg = placement_group([{"CPU": 1}])
        ray.get(pg.ready())
        remove_placement_group(pg)
    start = time.perf_counter()
    for _ in range(GROUPS):
        pg = placement_group([{"CPU": 1}])
        ray.get(pg.ready())
        remove_placement_group(pg)
    out["placement_group_create_removal"] = rate(GROUPS, start)
    server = ParameterServer.remote(1_000_000)
    ps_workers = [PSWorker.remote() for _ in range(2)]
    for _ in range(2):
        ray.get([w.step.remote(server) for w in ps_workers])
    start = time.perf_counter()
    for _ in range(50):
        ray.get([w.step.remote(server) for w in ps_workers])
    out["ps_iteration"] = (time.perf_counter() - start) * 1000 / 50
    print(json.dumps(out), flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
