"""The shared-parameter agent network: fc -> GRU -> fc (or fc -> fc -> fc with ``use_rnn: false``)."""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F

from concord.registry import register_agent


@register_agent("rnn")
class RNNAgent(nn.Module):
    """Maps an agent's input sequence to per-action outputs (Q-values, advantages or logits).

    Unrolls whole sequences with a fused ``nn.GRU`` (faster on CPU than a GRUCell loop); during rollouts the
    sequence has length 1 and the hidden state is carried by the controller.
    """

    def __init__(self, input_dim: int, n_actions: int, args: SimpleNamespace) -> None:
        super().__init__()
        self.hidden_dim = args.hidden_dim
        self.use_rnn = args.use_rnn
        self.fc1 = nn.Linear(input_dim, self.hidden_dim)
        self.rnn = nn.GRU(self.hidden_dim, self.hidden_dim, batch_first=True) if self.use_rnn else \
            nn.Linear(self.hidden_dim, self.hidden_dim)
        self.fc2 = nn.Linear(self.hidden_dim, n_actions)

    def init_hidden(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(n, self.hidden_dim, device=device)  # (n, hidden)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` (n, T, input_dim), ``hidden`` (n, hidden) -> outputs (n, T, n_actions), hiddens (n, T, hidden)."""
        x = F.relu(self.fc1(inputs))  # (n, T, hidden)
        if self.use_rnn:
            h, _ = self.rnn(x, hidden.unsqueeze(0).contiguous())  # (n, T, hidden)
        else:
            h = F.relu(self.rnn(x))  # (n, T, hidden)
        return self.fc2(h), h

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One rollout step, ``inputs`` (n, input_dim), ``hidden`` (n, hidden) -> outputs (n, n_actions), hidden (n, hidden).

        Same maths as ``forward`` with T = 1, through the GRU cell kernel (cheaper per call than ``nn.GRU``).
        """
        x = F.relu(self.fc1(inputs))  # (n, hidden)
        if self.use_rnn:
            r = self.rnn
            h = torch.gru_cell(x, hidden, r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0, r.bias_hh_l0)  # (n, hidden)
        else:
            h = F.relu(self.rnn(x))  # (n, hidden)
        return self.fc2(h), h
