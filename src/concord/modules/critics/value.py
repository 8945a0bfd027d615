"""A state-value critic V per agent row: fc -> GRU (or fc) -> head, the head optionally a Pop-Art layer.

The learner builds each agent's critic input (MAPPO: the global state and the agent's id, optionally with its
observation — the "agent-specific" state; IPPO: the agent's observation and id), so one network serves both.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from concord.components.value_norm import PopArt


class ValueCritic(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int, use_rnn: bool, popart: bool = False) -> None:
        super().__init__()
        self.use_rnn = use_rnn
        self.hidden_dim = hidden_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRU(hidden_dim, hidden_dim, batch_first=True) if use_rnn else nn.Linear(hidden_dim, hidden_dim)
        self.head: nn.Module = PopArt(hidden_dim, 1) if popart else nn.Linear(hidden_dim, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` (n, T, input_dim), whole episodes from t = 0 -> values (n, T) (normalised with Pop-Art)."""
        x = F.relu(self.fc1(inputs))  # (n, T, hidden)
        if self.use_rnn:
            h, _ = self.rnn(x)  # (n, T, hidden)
        else:
            h = F.relu(self.rnn(x))  # (n, T, hidden)
        return self.head(h).squeeze(-1)  # (n, T)
