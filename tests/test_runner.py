"""Runners: per-env seeding, truncation, crashed and killed workers restarted, finished envs left alone."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

import tests.chain_env  # noqa: F401
from concord.components.episode_buffer import build_scheme
from concord.config import load_config, to_namespace
from concord.errors import EnvWorkerError
from concord.registry import MACS, RUNNERS


def _make(runner: str, n: int, max_failures: int = 5, **env_args):
    cfg = load_config("qmix", "matrix_game", ["plugins=[tests.chain_env]", f"batch_size_run={n}",
                                              f"runner={runner}", f"max_env_failures={max_failures}"])
    cfg["env"] = "test_chain"
    cfg["env_args"] = {"state_last_action": False, **env_args}
    args = to_namespace(cfg)
    r = RUNNERS.get(runner)(args, seed=10)
    mac = MACS.get("basic_mac")(r.env_info, args, torch.device("cpu"))
    return r, mac, build_scheme(r.env_info, compact_obs=False)


class CountingMAC:
    """Wraps a controller and records which envs each forward pass saw."""

    def __init__(self, mac):
        self.mac, self.calls = mac, []

    def __getattr__(self, name):
        return getattr(self.mac, name)

    def select_actions(self, obs, last, env_ids, t_env, test_mode=False):
        self.calls.append(list(env_ids))
        return self.mac.select_actions(obs, last, env_ids, t_env, test_mode)


def test_envs_in_a_batch_are_seeded_differently_and_finished_envs_are_not_forwarded():
    r, mac, scheme = _make("episode", 3, limit=4, terminate_at=2)
    counting = CountingMAC(mac)
    batch, stats = r.run(counting, scheme, t_env=0)
    noises = [info["first_noise"] for info in stats.infos]
    assert len(set(noises)) == 3
    assert counting.calls == [[0, 1, 2], [0, 1, 2]]  # all terminate at t = 2: no third forward
    assert stats.lengths == [2, 2, 2]


@pytest.mark.parametrize("crash_exit", [False, True])
def test_parallel_worker_crash_is_restarted_and_episode_discarded(crash_exit, tmp_path):
    flag = tmp_path / "crash"
    flag.touch()
    r, mac, scheme = _make("parallel", 2, limit=4, crash_at=2, crash_exit=crash_exit, crash_file=str(flag))
    try:
        batch, stats = r.run(mac, scheme, t_env=0)
        assert r.env_failures == 1  # one worker crashed once
        assert stats.lengths == [4, 4] and batch["filled"].sum() == 8
        assert batch["obs"][:, :5, 0, 0].tolist() == [[0, 1, 2, 3, 4]] * 2  # restarted episodes are whole
    finally:
        r.close()


def test_killed_parallel_worker_is_restarted():
    r, mac, scheme = _make("parallel", 2, limit=3)
    try:
        r.run(mac, scheme, t_env=0)
        victim = r.vec_env.worker_pids()[1]
        os.kill(victim, signal.SIGKILL)
        batch, stats = r.run(mac, scheme, t_env=0)
        assert r.env_failures == 1 and r.vec_env.worker_pids()[1] != victim
        assert stats.lengths == [3, 3]
    finally:
        r.close()


def test_repeated_failures_stop_the_run(tmp_path):
    flag = tmp_path / "crash"
    flag.touch()
    r, mac, scheme = _make("parallel", 2, max_failures=0, limit=4, crash_at=2, crash_file=str(flag))
    try:
        with pytest.raises(EnvWorkerError, match="failed 1 times"):
            r.run(mac, scheme, t_env=0)
    finally:
        r.close()


def test_parallel_matches_episode_runner_statistics():
    torch.manual_seed(0)
    r1, mac, scheme = _make("episode", 2, limit=3)
    b1, s1 = r1.run(mac, scheme, t_env=10**6, test_mode=True)
    r2, _, _ = _make("parallel", 2, limit=3)
    try:
        b2, s2 = r2.run(mac, scheme, t_env=10**6, test_mode=True)
    finally:
        r2.close()
    assert s1.infos == s2.infos  # same seeds -> same env randomness in and out of process
    assert np.array_equal(b1["obs"], b2["obs"]) and np.array_equal(b1["actions"], b2["actions"])
