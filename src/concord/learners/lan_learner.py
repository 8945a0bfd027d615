"""LAN (Local Advantage Networks, Avalos et al.; lan.md §4, App. B, App. E): the Q-learner with a centralised value.

The shared GRU agent outputs local advantages A_a(τ_a, ·); actions are ε-greedy in A_a alone (eq. 2), so execution
needs no state. The value network (``mixer: lan_value``) turns the taken advantages into per-agent proxies
Q̃_a = V(s, τ) + A_a (eq. 1) and the Q-learner's double-Q target into eq. 3; one loss, the mean squared TD error over
agents and valid steps, trains V and the agents together. Dead agents keep their TD terms (they still see V).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

import torch

from concord.errors import ConfigError
from concord.learners.q_learner import QLearner
from concord.registry import register_learner


@register_learner("lan")
class LANLearner(QLearner):
    """QLearner whose mixer is LAN's value network, logged as ``value``."""

    def __init__(self, mac: Any, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> None:
        if args.mixer is None:
            raise ConfigError("learner 'lan' needs its value network: set mixer=lan_value (config/algs/lan.yaml)")
        super().__init__(mac, env_info, args, device)

    def networks(self) -> dict[str, torch.nn.Module]:
        """The advantage agent and the centralised value V, for parameter-count logging."""
        return {"agent": self.mac.agent, "value": self.mixer}
