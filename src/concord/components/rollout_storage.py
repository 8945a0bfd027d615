"""On-policy rollout storage: the rounds collected since the last update, as one episode batch when full.

Unlike the replay buffer it never samples old data: an on-policy learner trains on exactly the latest
``capacity`` episodes, then empties it. Its content is part of the learner's ``state_dict``, so a checkpoint
taken between two updates resumes exactly.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from concord.components.episode_buffer import EpisodeBatch, Scheme


class RolloutStorage:
    def __init__(self, scheme: Scheme, capacity: int, max_seq_length: int) -> None:
        self.scheme = scheme
        self.capacity = capacity
        self.max_seq_length = max_seq_length
        self._rounds: list[dict[str, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(r["filled"]) for r in self._rounds)

    def full(self) -> bool:
        return len(self) >= self.capacity

    def add(self, batch: EpisodeBatch) -> None:
        self._rounds.append({k: v.copy() for k, v in batch.data.items()})

    def take(self) -> EpisodeBatch:
        """Every stored episode as one batch (possibly more than ``capacity`` if rounds overshoot); empties."""
        data = {k: np.concatenate([r[k] for r in self._rounds]) for k in self._rounds[0]}
        self._rounds = []
        return EpisodeBatch(self.scheme, len(data["filled"]), self.max_seq_length, data)

    def state_dict(self) -> dict[str, Any]:
        return {"rounds": [{k: v.copy() for k, v in r.items()} for r in self._rounds]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._rounds = [{k: v.copy() for k, v in r.items()} for r in state["rounds"]]
