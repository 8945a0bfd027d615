"""The contract every learner honours: it receives each collected round and owns its data path.

The trainer hands every round of episodes to ``update``; what happens then is the learner's business: the
Q-learner inserts them into its replay buffer and samples its updates from it, an on-policy learner keeps them in
rollout storage and trains once it holds enough. The learner declares the batch fields it needs (``scheme``:
the env's standard fields, the controller's per-step outputs and its own), and ``state_dict`` carries its
storage too, so a checkpoint is complete and a resumed run is exact for every learner. Storage too large to
pickle (the replay buffer) is streamed into files by ``save_files``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Mapping

import torch

from concord.components.episode_buffer import Scheme, build_scheme

if TYPE_CHECKING:
    from concord.components.episode_buffer import EpisodeBatch
    from concord.controllers.base import Controller


def mean_stats(stats: list[dict[str, float]]) -> dict[str, float]:
    """Per-key means of several gradient steps' statistics (what ``update`` returns for them)."""
    keys = {k for s in stats for k in s}
    return {k: sum(s[k] for s in stats if k in s) / sum(1 for s in stats if k in s) for k in keys}


class Learner(ABC):
    """Base class of registered learners, constructed as ``cls(mac, env_info, args, device)``."""

    def __init__(self, mac: "Controller", env_info: Mapping[str, Any], args: SimpleNamespace,
                 device: torch.device) -> None:
        self.mac = mac
        self.env_info = env_info
        self.args = args
        self.device = device
        self.n_agents, self.n_actions = env_info["n_agents"], env_info["n_actions"]
        self.max_seq_length = int(env_info["episode_limit"]) + 1
        self.n_updates = 0  # gradient updates so far (the trainer times them)
        self.scheme: Scheme = build_scheme(env_info, args.buffer_compact_obs,
                                           {**mac.batch_fields(), **self.batch_fields()})

    def batch_fields(self) -> Scheme:
        """Fields this learner adds to every episode batch (beyond the env's and the controller's); none by default."""
        return {}

    @abstractmethod
    def update(self, batch: "EpisodeBatch", t_env: int, episode: int) -> dict[str, float]:
        """Take a freshly collected round (numpy ``EpisodeBatch``); train as the learner's schedule says; return
        scalar statistics of what it did (empty when it only stored the round)."""

    @abstractmethod
    def networks(self) -> dict[str, torch.nn.Module]:
        """Named trainable networks, for parameter-count logging."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: networks, optimisers, counters and (small) data storage."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def save_files(self, directory: str) -> dict[str, Any] | None:
        """Stream large storage into ``directory`` (called only with ``checkpoint_buffer``); return its small state."""
        return None

    def load_files(self, directory: str, state: Mapping[str, Any]) -> None:
        """Restore what ``save_files`` wrote."""
