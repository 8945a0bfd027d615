"""One agent network per agent (``agent_shared: false``): rows of a flattened (batch, agent) input are routed to
their agent's own network. Rows are ordered batch-major, agent-minor (row = b * n_agents + i), as the controllers
flatten them."""
from __future__ import annotations

import torch
import torch.nn as nn


class NonSharedAgents(nn.Module):
    """Wraps ``n_agents`` agent networks of one kind behind the agent interface (forward, step, init_hidden)."""

    def __init__(self, agents: list[nn.Module]) -> None:
        super().__init__()
        self.agents = nn.ModuleList(agents)
        self.n_agents = len(agents)
        self.hidden_dim = agents[0].hidden_dim

    def init_hidden(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return self.agents[0].init_hidden(n, device)  # (n, hidden)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` (B*n_agents, T, input_dim), ``hidden`` (B*n_agents, H) -> (B*n_agents, T, out), (B*n_agents, T, H)."""
        x = inputs.view(-1, self.n_agents, *inputs.shape[1:])  # (B, n_agents, T, input_dim)
        h = hidden.view(-1, self.n_agents, hidden.shape[-1])  # (B, n_agents, H)
        outs = [agent(x[:, i], h[:, i]) for i, agent in enumerate(self.agents)]
        out = torch.stack([o for o, _ in outs], dim=1)  # (B, n_agents, T, out)
        hs = torch.stack([hh for _, hh in outs], dim=1)  # (B, n_agents, T, H)
        return out.flatten(0, 1), hs.flatten(0, 1)

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One rollout step: (k*n_agents, input_dim), (k*n_agents, H) -> (k*n_agents, out), (k*n_agents, H)."""
        x = inputs.view(-1, self.n_agents, inputs.shape[-1])  # (k, n_agents, input_dim)
        h = hidden.view(-1, self.n_agents, hidden.shape[-1])  # (k, n_agents, H)
        outs = [agent.step(x[:, i], h[:, i]) for i, agent in enumerate(self.agents)]
        out = torch.stack([o for o, _ in outs], dim=1)  # (k, n_agents, out)
        hs = torch.stack([hh for _, hh in outs], dim=1)  # (k, n_agents, H)
        return out.flatten(0, 1), hs.flatten(0, 1)
