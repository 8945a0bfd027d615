"""Env workers: a failure while restarting is one more counted failure and is retried; a hung worker is killed
and restarted after ``env_step_timeout``; the failure cap stops the run with a checkpoint."""
from __future__ import annotations

import functools
import os
import signal
import time

import numpy as np
import pytest

from concord.envs.factory import make_single_env
from concord.envs.subproc import SubprocVecEnv
from concord.errors import EnvWorkerError
from concord.utils.checkpoint import checkpoint_steps

PLUGINS = ("tests.chain_env",)


def _vec(n: int, step_timeout: float = 0.0, max_failures: int | None = 5, **env_args) -> SubprocVecEnv:
    make = functools.partial(make_single_env, "test_chain", {"limit": 4, **env_args}, PLUGINS)
    return SubprocVecEnv(make, n, seed=3, step_timeout=step_timeout, max_failures=max_failures)


def test_a_failure_while_restarting_is_counted_and_retried(tmp_path):
    crash, init_fail = tmp_path / "crash", tmp_path / "init_fail"
    vec = _vec(2, crash_at=1, crash_file=str(crash), init_fail_file=str(init_fail))
    try:
        vec.reset([0, 1])
        crash.touch()
        init_fail.touch()  # the first replacement fails while building its env
        res = vec.step([0, 1], np.ones((2, 2), dtype=np.int64))
        assert res.failed.sum() == 1
        assert vec.failures == 2 and sum(vec.restarts) == 2  # the crash and the failed restart
        assert not init_fail.exists()
        assert not vec.step([0, 1], np.ones((2, 2), dtype=np.int64)).failed.any()
    finally:
        vec.close()


def test_failures_while_restarting_stop_at_the_cap(tmp_path):
    crash, init_fail = tmp_path / "crash", tmp_path / "init_fail"
    vec = _vec(1, max_failures=1, crash_at=1, crash_file=str(crash), init_fail_file=str(init_fail))
    try:
        vec.reset([0])
        crash.touch()
        init_fail.touch()
        with pytest.raises(EnvWorkerError, match="failed 2 times"):
            vec.step([0], np.ones((1, 2), dtype=np.int64))
    finally:
        vec.close()


def test_a_stopped_worker_is_killed_and_restarted_after_the_timeout():
    vec = _vec(2, step_timeout=1.0)
    try:
        vec.reset([0, 1])
        victim = vec.worker_pids()[0]
        os.kill(victim, signal.SIGSTOP)
        t0 = time.perf_counter()
        res = vec.step([0, 1], np.ones((2, 2), dtype=np.int64))
        waited = time.perf_counter() - t0
        assert res.failed.tolist() == [True, False]
        assert vec.failures == 1 and vec.worker_pids()[0] != victim
        assert 1.0 <= waited < 8.0  # the timeout, then a kill (not a 10 s polite close of a stopped process)
        assert not vec.step([0, 1], np.ones((2, 2), dtype=np.int64)).failed.any()
    finally:
        vec.close()


def test_the_failure_cap_stops_the_run_with_a_checkpoint(run_main, tmp_path):
    crash = tmp_path / "crash"
    crash.touch()
    code, result, err = run_main("qmix", "chain_test", "runner=parallel", "batch_size_run=2", "max_env_failures=0",
                                 "env_args.limit=4", "env_args.crash_at=2", f"env_args.crash_file={crash}",
                                 "t_max=200", "use_tensorboard=False")
    assert code == 2 and "error: env workers failed 1 times" in err
    models = os.path.join(tmp_path, "models")
    (run,) = os.listdir(models)
    assert checkpoint_steps(os.path.join(models, run)) == [0]
