"""Episode batch and replay buffer: indexing, padding masks, compact storage, sampling, memory checks."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import tests.chain_env  # noqa: F401  (registers test_chain)
from concord.components.episode_buffer import EpisodeBatch, ReplayBuffer, build_scheme
from concord.config import load_config, to_namespace
from concord.errors import ConfigError
from concord.registry import MACS
from concord.runners.runner import EpisodeRunner


def _setup(**env_args):
    cfg = load_config("qmix", "matrix_game", ["plugins=[tests.chain_env]"])
    cfg["env"] = "test_chain"
    cfg["env_args"] = {"state_last_action": False, **env_args}
    args = to_namespace(cfg)
    runner = EpisodeRunner(args, seed=3)
    mac = MACS.get("basic_mac")(runner.env_info, args, torch.device("cpu"))
    scheme = build_scheme(runner.env_info, compact_obs=True)
    return args, runner, mac, scheme


def test_scheme_uses_compact_dtypes():
    _, runner, _, scheme = _setup()
    assert scheme["actions"].dtype == np.uint8 and scheme["avail_actions"].dtype == np.bool_
    assert scheme["filled"].dtype == np.bool_ and scheme["obs"].compact


def test_truncated_episode_layout_and_masks():
    _, runner, mac, scheme = _setup(limit=4)
    batch, stats = runner.run(mac, scheme, t_env=0)
    assert batch.max_seq_length == 5
    assert batch["filled"][0].tolist() == [True, True, True, True, False]
    assert not batch["terminated"][0].any()  # a time limit is not terminal
    assert batch["obs"][0, :, 0, 0].tolist() == [0, 1, 2, 3, 4]  # obs after the last step stored at t = L
    assert stats.lengths == [4] and stats.returns[0] == batch["reward"][0].sum()
    assert (batch["actions"][0, :4, 1] != 2).all()  # unavailable action never taken


def test_terminated_episode_is_padded():
    _, runner, mac, scheme = _setup(limit=6, terminate_at=2)
    batch, stats = runner.run(mac, scheme, t_env=0)
    assert batch["filled"][0].tolist() == [True, True, False, False, False, False, False]
    assert batch["terminated"][0].tolist() == [False, True, False, False, False, False, False]
    t = batch.to_torch("cpu")
    assert t["obs"].shape[1] == 3 and t["actions"].dtype == torch.int64 and t["filled"].dtype == torch.float32


def test_buffer_circular_insert_and_uniform_sampling():
    _, runner, mac, scheme = _setup(limit=3)
    buf = ReplayBuffer(scheme, capacity=4, max_seq_length=4, seed=0)
    noises = []
    for _ in range(6):
        batch, stats = runner.run(mac, scheme, t_env=0)
        noises.append(stats.infos[0]["first_noise"])
        buf.insert(batch)
    assert len(buf) == 4 and buf.index == 2
    stored = sorted(float(x) for x in buf.data["obs"][:, 0, 0, 2].astype(np.float32))
    assert np.allclose(stored, sorted(np.float32(noises[2:])), atol=0)  # the two oldest were overwritten
    sample = buf.sample(4)
    assert sorted(sample["obs"][:, 0, 0, 2].tolist()) == stored  # without replacement
    assert buf.latest(2)["obs"][:, 0, 0, 2].tolist() == pytest.approx([noises[4], noises[5]])
    with pytest.raises(ValueError):
        buf.sample(5)


def test_compact_obs_falls_back_to_float32_when_inexact():
    _, runner, mac, scheme = _setup(limit=3)
    buf = ReplayBuffer(scheme, capacity=2, max_seq_length=4, seed=0)
    batch, _ = runner.run(mac, scheme, t_env=0)
    assert buf.data["obs"].dtype == np.float16
    batch.data["obs"][:, :, :, 2] = 0.5  # exact in float16
    buf.insert(batch)
    assert buf.data["obs"].dtype == np.float16
    batch.data["obs"][0, 0, 0, 2] = 0.1234567  # not exact
    buf.insert(batch)
    assert buf.data["obs"].dtype == np.float32 and buf.data["obs"][1, 0, 0, 2] == np.float32(0.1234567)
    assert buf.data["obs"][0, 0, 0, 2] == 0.5  # earlier episodes kept


def test_state_not_stored_when_it_is_concatenated_obs():
    info = {"n_agents": 2, "n_actions": 3, "obs_shape": 4, "state_shape": 8, "episode_limit": 2,
            "state_is_obs_concat": True}
    scheme = build_scheme(info, compact_obs=False)
    assert "state" not in scheme
    batch = EpisodeBatch(scheme, 1, 3)
    batch.data["obs"][:] = np.arange(2 * 4, dtype=np.float32).reshape(2, 4)
    batch.data["filled"][0, :2] = True
    t = batch.to_torch("cpu")
    assert torch.equal(t["state"][0, 0], torch.arange(8, dtype=torch.float32))


def test_buffer_refuses_when_memory_is_short():
    info = {"n_agents": 27, "n_actions": 36, "obs_shape": 300, "state_shape": 1000, "episode_limit": 1000}
    with pytest.raises(ConfigError, match="the replay buffer needs up to .* GiB"):
        ReplayBuffer(build_scheme(info, compact_obs=False), capacity=10**6, max_seq_length=1001, seed=0)


def test_buffer_save_load_round_trip(tmp_path):
    _, runner, mac, scheme = _setup(limit=3)
    buf = ReplayBuffer(scheme, capacity=5, max_seq_length=4, seed=1)
    for _ in range(3):
        buf.insert(runner.run(mac, scheme, t_env=0)[0])
    state = buf.save(str(tmp_path))
    assert np.load(tmp_path / "buffer_obs.npy").shape[0] == 3  # only the stored episodes
    other = ReplayBuffer(scheme, capacity=5, max_seq_length=4, seed=99)
    other.load(str(tmp_path), state)
    assert other.size == 3 and other.index == 3
    assert np.array_equal(buf.sample(2)["obs"], other.sample(2)["obs"])  # same RNG position
