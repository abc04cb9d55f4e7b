"""Ray 2.60 peer for starling-bench's Tune workloads.

tune_100_trivial_trials_fifo: seconds of `tuner.fit()` (Tune's trial scheduling included) for 100
trials (num_samples=100, search space {"x": tune.uniform(0, 1)}) of a no-op function trainable
that reports 10 iterations, each {"score": random.random()}; FIFO scheduler, metric "score", mode
"max", default resources (1 CPU a trial) on a local Ray of 2 CPUs.
tune_100_trivial_trials_asha: the same under ASHAScheduler(time_attr="training_iteration",
grace_period=1, max_t=10), which stops poor trials early.
Both run in one `ray.init` session (fifo, then asha); `ray.init` is not timed. Tune's default
starts a new actor (worker process) per trial; the same two runs with
`TuneConfig(reuse_actors=True)` are reported as *_reuse_actors (Starling's Tune reuses actors by
default, so that is the closer like-for-like). Each run stores its
results in a temporary directory, removed afterwards. Also reports trials_fifo/trials_asha (trials
that finished) and iterations_asha (sum over trials of their last training_iteration).
Prints one JSON object; Tune's own output goes to stderr.
"""
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time

# The legacy (quieter) output engine; verbose=0 below silences it.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

TRIALS = 100
ITERATIONS = 10


def trivial(config):
    for _ in range(ITERATIONS):
        tune.report({"score": random.random()})


@contextlib.contextmanager
def stdout_to_stderr():
    """Sends anything written to fd 1 (Python or native) to stderr, so stdout holds only the JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def fit(name, scheduler, reuse_actors=False):
    storage = tempfile.mkdtemp(prefix=f"starling-tune-{name}-")
    try:
        tuner = tune.Tuner(
            trivial,
            param_space={"x": tune.uniform(0, 1)},
            tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=TRIALS, scheduler=scheduler,
                                        reuse_actors=reuse_actors),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
        )
        start = time.perf_counter()
        results = tuner.fit()
        seconds = time.perf_counter() - start
        finished = sum(1 for r in results if r.error is None)
        iterations = sum(r.metrics.get("training_iteration", 0) for r in results if r.metrics)
        return seconds, finished, iterations
    finally:
        shutil.rmtree(storage, ignore_errors=True)


def main():
    out = {}
    with stdout_to_stderr():
        ray.init(num_cpus=2, logging_level="ERROR", log_to_driver=False, include_dashboard=False)
        try:
            seconds, finished, _ = fit("fifo", FIFOScheduler())
            out["tune_100_trivial_trials_fifo"] = seconds
            out["trials_fifo"] = finished
            asha = ASHAScheduler(time_attr="training_iteration", grace_period=1, max_t=ITERATIONS)
            seconds, finished, iterations = fit("asha", asha)
            out["tune_100_trivial_trials_asha"] = seconds
            out["trials_asha"] = finished
            out["iterations_asha"] = iterations
            seconds, _, _ = fit("fifo-reuse", FIFOScheduler(), reuse_actors=True)
            out["tune_100_trivial_trials_fifo_reuse_actors"] = seconds
            asha = ASHAScheduler(time_attr="training_iteration", grace_period=1, max_t=ITERATIONS)
            seconds, _, _ = fit("asha-reuse", asha, reuse_actors=True)
            out["tune_100_trivial_trials_asha_reuse_actors"] = seconds
        finally:
            ray.shutdown()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
