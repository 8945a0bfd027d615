"""A feed-forward agent: ``mlp_layers`` hidden layers of ``hidden_dim`` units with ``mlp_activation``, then a head.

VAST's local actors and critics are MLPs of 2 × 64 ELU units (vast.md App. A.1). Its "hidden state" is the
last hidden layer's features (mixers such as QTRAN's hidden mode read them); nothing is carried between steps.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn

from concord.registry import register_agent

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh}


@register_agent("mlp")
class MLPAgent(nn.Module):
    def __init__(self, input_dim: int, n_actions: int, args: SimpleNamespace) -> None:
        super().__init__()
        self.hidden_dim = args.hidden_dim
        layers: list[nn.Module] = []
        width = input_dim
        for _ in range(args.mlp_layers):
            layers += [nn.Linear(width, self.hidden_dim), ACTIVATIONS[args.mlp_activation]()]
            width = self.hidden_dim
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_actions)

    def init_hidden(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(n, self.hidden_dim, device=device)  # (n, hidden): unused between steps

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` (n, T, input_dim) -> outputs (n, T, n_actions), features (n, T, hidden)."""
        h = self.body(inputs)  # (n, T, hidden)
        return self.head(h), h

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One rollout step: (n, input_dim) -> (n, n_actions), (n, hidden)."""
        h = self.body(inputs)  # (n, hidden)
        return self.head(h), h
