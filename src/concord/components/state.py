"""The global state the learner sees: the env's state, optionally with the agents' previous actions."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F


def state_dim(env_info: Mapping[str, Any], state_last_action: bool) -> int:
    extra = env_info["n_agents"] * env_info["n_actions"] if state_last_action else 0
    return int(env_info["state_shape"]) + extra


def learner_states(batch: Mapping[str, torch.Tensor], n_actions: int, state_last_action: bool) -> torch.Tensor:
    """(B, T, state_dim): with ``state_last_action`` the one-hot actions of step t−1 (zeros at t = 0) are appended
    after the env's state, which is exactly SMAC's layout, so envs need not implement it."""
    states = batch["state"]  # (B, T, S)
    if not state_last_action:
        return states
    prev = F.one_hot(batch["actions"], n_actions).float()  # (B, T, n_agents, n_actions)
    prev = torch.cat([torch.zeros_like(prev[:, :1]), prev[:, :-1]], dim=1).flatten(2)  # (B, T, n_agents*n_actions)
    return torch.cat([states, prev], dim=-1)
