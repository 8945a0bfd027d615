"""Scheme-driven episode batches and the replay buffer of whole episodes.

Storage is numpy on the CPU with compact dtypes (actions as uint8/int16, masks as bool, observations as
float16 while that is exact); ``EpisodeBatch.to_torch`` converts a sampled batch to training dtypes on the
learner's device. Time index convention for an episode of length L (actions taken at t = 0..L-1):

- ``obs/state/avail_actions/extras[t]`` for t = 0..L (t = L holds the observation after the last step);
- ``actions/reward/terminated[t]`` for t = 0..L-1;
- ``filled[t]`` is True exactly for t = 0..L-1 (an action was taken), so padded steps are masked out;
- ``terminated[t]`` is True only for a true terminal state; a time-limit end is not terminal.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import psutil
import torch

from concord.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Field:
    """One entry of a scheme: per-step shape and storage dtype; ``compact`` floats go to float16 while exact."""

    shape: tuple[int, ...]
    dtype: Any
    compact: bool = False


Scheme = dict[str, Field]


def action_dtype(n_actions: int) -> Any:
    return np.uint8 if n_actions <= 255 else np.int16 if n_actions <= 32767 else np.int32


def build_scheme(env_info: Mapping[str, Any], compact_obs: bool, extra: Scheme | None = None) -> Scheme:
    """The standard scheme for an env, plus fields an algorithm adds (``extra``)."""
    n, a = env_info["n_agents"], env_info["n_actions"]
    scheme: Scheme = {
        "obs": Field((n, env_info["obs_shape"]), np.float32, compact_obs),
        "avail_actions": Field((n, a), np.bool_),
        "actions": Field((n,), action_dtype(a)),
        "reward": Field((), np.float32),
        "terminated": Field((), np.bool_),
        "filled": Field((), np.bool_),
    }
    # An env whose state is its agents' concatenated observations need not store it twice.
    if not env_info.get("state_is_obs_concat", False):
        scheme["state"] = Field((env_info["state_shape"],), np.float32, compact_obs)
    for name, shape in env_info.get("extras", {}).items():
        scheme[f"extra_{name}"] = Field(tuple(shape), np.float32)
    scheme.update(extra or {})
    return scheme


def _alloc(scheme: Scheme, n_episodes: int, max_seq_length: int) -> dict[str, np.ndarray]:
    # np.zeros maps pages lazily, so memory is only committed as episodes are written.
    return {
        k: np.zeros((n_episodes, max_seq_length, *f.shape), dtype=np.float16 if f.compact else f.dtype)
        for k, f in scheme.items()
    }


class EpisodeBatch:
    """``n_episodes`` episodes padded to ``max_seq_length`` (= episode_limit + 1) steps, as numpy arrays."""

    def __init__(self, scheme: Scheme, n_episodes: int, max_seq_length: int,
                 data: dict[str, np.ndarray] | None = None) -> None:
        self.scheme = scheme
        self.n_episodes = n_episodes
        self.max_seq_length = max_seq_length
        if data is None:
            data = {k: np.zeros((n_episodes, max_seq_length, *f.shape), dtype=f.dtype) for k, f in scheme.items()}
        self.data = data

    def __getitem__(self, key: str) -> np.ndarray:
        return self.data[key]

    def episode_lengths(self) -> np.ndarray:
        return self.data["filled"].sum(axis=1)  # (n_episodes,)

    def to_torch(self, device: torch.device | str, trim: bool = True) -> dict[str, torch.Tensor]:
        """Training tensors: floats as float32, actions as int64, masks as float32, trimmed to the longest episode.

        Adds ``state`` from the observations when the scheme does not store it (state_is_obs_concat).
        """
        t_len = int(self.episode_lengths().max()) + 1 if trim else self.max_seq_length
        out: dict[str, torch.Tensor] = {}
        for k, arr in self.data.items():
            x = torch.from_numpy(np.ascontiguousarray(arr[:, :t_len]))
            if k in ("filled", "terminated"):
                x = x.float()
            elif k == "actions":
                x = x.long()
            elif x.dtype == torch.float16:
                x = x.float()
            out[k] = x.to(device)
        if "state" not in out:
            b, t = out["obs"].shape[:2]
            out["state"] = out["obs"].reshape(b, t, -1)  # (B, T, n_agents * obs_dim)
        return out


class ReplayBuffer:
    """A circular store of whole episodes with uniform sampling (without replacement within a batch)."""

    def __init__(self, scheme: Scheme, capacity: int, max_seq_length: int, seed: int) -> None:
        self.scheme = scheme
        self.capacity = capacity
        self.max_seq_length = max_seq_length
        worst, now = self.memory_estimate(scheme, capacity, max_seq_length)
        avail = psutil.virtual_memory().available
        log.info("replay buffer: %d episodes x %d steps, %.1f MiB (%.1f MiB if observations need float32); "
                 "%.1f GiB RAM available", capacity, max_seq_length, now / 2**20, worst / 2**20, avail / 2**30)
        if worst > avail:
            raise ConfigError(
                f"the replay buffer needs up to {worst / 2**30:.2f} GiB but only {avail / 2**30:.2f} GiB of RAM is "
                f"available; lower buffer_size (now {capacity}) or the episode limit")
        self.data = _alloc(scheme, capacity, max_seq_length)
        self.index = 0  # next slot to write
        self.size = 0
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def memory_estimate(scheme: Scheme, capacity: int, max_seq_length: int) -> tuple[int, int]:
        """(bytes with every field at its full dtype, bytes with compact fields at float16)."""
        full = compact = 0
        for f in scheme.values():
            n = capacity * max_seq_length * int(np.prod(f.shape, dtype=np.int64))
            full += n * np.dtype(f.dtype).itemsize
            compact += n * (2 if f.compact else np.dtype(f.dtype).itemsize)
        return full, compact

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.data.values())

    def bytes_per_episode(self) -> float:
        return self.nbytes() / self.capacity

    def __len__(self) -> int:
        return self.size

    def can_sample(self, batch_size: int) -> bool:
        return self.size >= batch_size

    def insert(self, batch: EpisodeBatch) -> None:
        """Copy the episodes of ``batch`` into the buffer, overwriting the oldest ones when full."""
        n = batch.n_episodes
        idx = (self.index + np.arange(n)) % self.capacity
        for k, arr in batch.data.items():
            store = self.data[k]
            if store.dtype == np.float16 and not _exact_in_float16(arr):
                log.info("replay buffer: '%s' is not exact in float16; storing it as float32 from now on", k)
                store = self.data[k] = store.astype(np.float32)
            store[idx] = arr
        self.index = int((self.index + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> EpisodeBatch:
        idx = np.sort(self.rng.choice(self.size, batch_size, replace=False))
        return EpisodeBatch(self.scheme, batch_size, self.max_seq_length, {k: v[idx] for k, v in self.data.items()})

    def latest(self, n: int) -> EpisodeBatch:
        """The ``n`` most recently inserted episodes (for on-policy consumers)."""
        idx = (self.index - 1 - np.arange(n)[::-1]) % self.capacity
        return EpisodeBatch(self.scheme, n, self.max_seq_length, {k: v[idx] for k, v in self.data.items()})

    def save(self, directory: str) -> dict[str, Any]:
        """Write the stored episodes as one ``.npy`` file per field into ``directory`` (streamed from the arrays,
        so a checkpoint does not hold a second copy of the buffer in memory); return the small rest of the state."""
        for k, v in self.data.items():
            np.save(os.path.join(directory, f"buffer_{k}.npy"), v[: self.size])
        return {"index": self.index, "size": self.size, "rng": self.rng.bit_generator.state}

    def load(self, directory: str, state: Mapping[str, Any]) -> None:
        """Restore what ``save`` wrote."""
        for k in self.data:
            v = np.load(os.path.join(directory, f"buffer_{k}.npy"), mmap_mode="r")
            if self.data[k].dtype != v.dtype:
                self.data[k] = self.data[k].astype(v.dtype)
            self.data[k][: len(v)] = v
        self.index, self.size = int(state["index"]), int(state["size"])
        self.rng.bit_generator.state = state["rng"]


def _exact_in_float16(arr: np.ndarray) -> bool:
    if arr.dtype == np.float16:
        return True
    return bool(np.array_equal(arr.astype(np.float16).astype(arr.dtype), arr))
