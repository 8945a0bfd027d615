"""The basic multi-agent controller: one shared agent network, decentralised action selection."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from concord.components.episode_buffer import Scheme
from concord.controllers.base import Controller
from concord.envs.base import EnvObs
from concord.modules.agents.non_shared import NonSharedAgents
from concord.registry import ACTION_SELECTORS, AGENTS, register_mac


@register_mac("basic_mac")
class BasicMAC(Controller):
    """Builds each agent's input (obs, last action one-hot, agent id one-hot), runs the agent network (shared by
    all agents, or one per agent with ``agent_shared: false``), selects actions with the configured selector.

    Rollouts call ``select_actions`` on the envs still running (a per-env hidden state is kept); learners call
    ``forward_seq`` to unroll whole stored episodes. Controllers that sample agents one after another (BN-DAG)
    override ``select_actions`` and keep this interface.
    """

    def __init__(self, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> None:
        super().__init__(env_info, args, device)
        self.input_dim = self.agent_input_dim(env_info)
        make_agent = AGENTS.get(args.agent)
        if args.agent_shared:
            self.agent = make_agent(self.input_dim, self.n_actions, args).to(device)
        else:
            self.agent = NonSharedAgents([make_agent(self.input_dim, self.n_actions, args)
                                          for _ in range(self.n_agents)]).to(device)
        self.selector = ACTION_SELECTORS.get(args.action_selector)(args)
        self._agent_ids = torch.eye(self.n_agents, device=device)
        # rollout inputs are built in numpy: row -1 of the padded identity is the "no last action" zero vector
        self._np_action_onehot = np.concatenate([np.eye(self.n_actions, dtype=np.float32),
                                                 np.zeros((1, self.n_actions), dtype=np.float32)])
        self._np_agent_ids = np.eye(self.n_agents, dtype=np.float32)
        self.hidden = self.agent.init_hidden(0, device)

    # --- inputs -------------------------------------------------------------------------------
    def agent_input_dim(self, env_info: Mapping[str, Any]) -> int:
        """Width of an agent's input (controllers that add inputs, such as BN-DAG's parents' actions, extend it)."""
        a = self.args
        return env_info["obs_shape"] + self.n_actions * a.obs_last_action + self.n_agents * a.obs_agent_id

    def build_inputs(self, obs: torch.Tensor, last_actions: torch.Tensor) -> torch.Tensor:
        """``obs`` (..., n_agents, obs_dim), ``last_actions`` (..., n_agents) int64 (-1: none) -> (..., n_agents, input_dim)."""
        parts = [obs]
        if self.args.obs_last_action:
            onehot = F.one_hot(last_actions.clamp(min=0), self.n_actions).float()  # (..., n_agents, n_actions)
            parts.append(onehot * (last_actions >= 0).unsqueeze(-1).float())
        if self.args.obs_agent_id:
            parts.append(self._agent_ids.expand(*obs.shape[:-2], -1, -1))  # (..., n_agents, n_agents)
        return torch.cat(parts, dim=-1)

    @staticmethod
    def shifted_actions(actions: torch.Tensor) -> torch.Tensor:
        """(B, T, n_agents) -> the previous step's actions, -1 at t = 0."""
        first = torch.full_like(actions[:, :1], -1)
        return torch.cat([first, actions[:, :-1]], dim=1)

    # --- rollouts -----------------------------------------------------------------------------
    def init_hidden(self, n_envs: int) -> None:
        self.hidden = self.agent.init_hidden(n_envs * self.n_agents, self.device).view(n_envs, self.n_agents, -1)

    def reset_hidden(self, env_ids: np.ndarray) -> None:
        self.hidden[env_ids] = 0.0

    def rollout_inputs(self, obs: np.ndarray, last_actions: np.ndarray) -> np.ndarray:
        """Numpy twin of ``build_inputs`` for rollouts: (k, n_agents, obs_dim), (k, n_agents) -> (k, n_agents, input_dim)."""
        parts = [obs]
        if self.args.obs_last_action:
            parts.append(self._np_action_onehot[last_actions])  # (k, n_agents, n_actions)
        if self.args.obs_agent_id:
            parts.append(np.broadcast_to(self._np_agent_ids, obs.shape[:-2] + self._np_agent_ids.shape))
        return np.concatenate(parts, axis=-1, dtype=np.float32)

    @torch.no_grad()
    def agent_outputs(self, obs: np.ndarray, last_actions: np.ndarray, env_ids: np.ndarray) -> np.ndarray:
        """One agent step for the running envs: outputs (k, n_agents, n_actions); advances their hidden states."""
        k = len(env_ids)
        x = torch.from_numpy(self.rollout_inputs(obs, last_actions)).to(self.device).view(k * self.n_agents, -1)
        out, h = self.agent.step(x, self.hidden[env_ids].view(k * self.n_agents, -1))
        self.hidden[env_ids] = h.view(k, self.n_agents, -1)
        return out.view(k, self.n_agents, -1).cpu().numpy()

    def select_actions(self, obs: EnvObs, last_actions: np.ndarray, env_ids: np.ndarray, t_env: int,
                       test_mode: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Actions (k, n_agents) for the running envs ``env_ids`` and the selector's per-step outputs."""
        out = self.agent_outputs(obs.obs, last_actions, env_ids)  # (k, n_agents, n_actions)
        return self.selector.select(out, obs.avail_actions, t_env, test_mode)

    def batch_fields(self) -> Scheme:
        return self.selector.batch_fields(self.n_agents)

    def stats(self) -> dict[str, float]:
        return self.selector.stats()

    # --- training -----------------------------------------------------------------------------
    def forward_seq(self, batch: Mapping[str, torch.Tensor], agent: torch.nn.Module | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unroll stored episodes from t = 0 -> outputs (B, T, n_agents, n_actions), hiddens (B, T, n_agents, hidden)."""
        agent = agent or self.agent
        obs = batch["obs"]  # (B, T, n_agents, obs_dim)
        b, t = obs.shape[:2]
        inputs = self.build_inputs(obs, self.shifted_actions(batch["actions"]))  # (B, T, n_agents, input_dim)
        inputs = inputs.permute(0, 2, 1, 3).reshape(b * self.n_agents, t, -1)  # (B*n_agents, T, input_dim)
        out, h = agent(inputs, agent.init_hidden(b * self.n_agents, self.device))
        out = out.reshape(b, self.n_agents, t, -1).permute(0, 2, 1, 3)  # (B, T, n_agents, n_actions)
        h = h.reshape(b, self.n_agents, t, -1).permute(0, 2, 1, 3)  # (B, T, n_agents, hidden)
        return out, h
