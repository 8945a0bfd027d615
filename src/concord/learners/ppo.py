"""PPO for cooperative agents: MAPPO (centralised critic V(s)) and IPPO (local critic V(o_i)), one learner.

Yu et al. 2022 ("The surprising effectiveness of PPO in cooperative multi-agent games") and Schulman et al. 2017.
The actor is the controller's agent network (shared parameters by default, its outputs are logits of a softmax
over the available actions). The critic gives one value per agent: from the global state and the agent's id
(MAPPO), the state with the agent's observation (MAPPO's agent-specific state) or the observation alone (IPPO).
Per update: GAE(λ) advantages over the stored episodes (truncated episodes bootstrap from the value of their
last state, padded steps are masked), optionally normalised; then ``ppo_epochs`` passes over
``ppo_minibatches`` minibatches of whole episodes of

    L = −E[min(ρA, clip(ρ, 1 − ε, 1 + ε)A)] + c_v · E[max(ℓ(V − R), ℓ(V_clip − R))] − c_H · E[H(π)]

with ρ = π(a|τ)/π_old(a|τ) against the log-probabilities stored at collection time, V_clip = V_old +
clip(V − V_old, ±ε_v), ℓ squared or Huber error, and value targets R normalised by running statistics
(``value_norm: running``) or by a Pop-Art head (``popart``). Actor and critic have their own learning rates and
gradient clipping. The controller may add actor-loss terms of its own (``Controller.policy_losses``, e.g. BN-DAG's
DAG-density regulariser), logged as ``aux_<name>``.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from concord.components.action_selectors import masked_entropy, masked_log_softmax
from concord.components.advantages import gae
from concord.components.running_stats import RunningMeanStd
from concord.components.value_norm import ValueNorm
from concord.learners.on_policy import Batch, OnPolicyLearner, masked_mean
from concord.modules.critics.value import ValueCritic
from concord.registry import register_learner


def critic_inputs(batch: Mapping[str, torch.Tensor], mode: str, agent_id: bool, n_agents: int) -> torch.Tensor:
    """Each agent's critic input (B, T, n_agents, D): ``state`` [s], ``state_obs`` [s, o_i] or ``obs`` [o_i],
    followed by the agent's one-hot id if ``agent_id``."""
    obs = batch["obs"]  # (B, T, n_agents, obs_dim)
    b, t = obs.shape[:2]
    parts = []
    if mode in ("state", "state_obs"):
        parts.append(batch["state"].unsqueeze(2).expand(b, t, n_agents, -1))  # (B, T, n_agents, S)
    if mode in ("state_obs", "obs"):
        parts.append(obs)
    if agent_id:
        parts.append(torch.eye(n_agents, device=obs.device).expand(b, t, n_agents, n_agents))
    return torch.cat(parts, dim=-1)


def value_error(x: torch.Tensor, huber_delta: float) -> torch.Tensor:
    """ℓ(x): squared error / 2, or the Huber loss with ``huber_delta`` > 0 (MAPPO uses δ = 10)."""
    if huber_delta > 0:
        return F.huber_loss(x, torch.zeros_like(x), reduction="none", delta=huber_delta)
    return 0.5 * x**2


@register_learner("ppo")
class PPOLearner(OnPolicyLearner):
    def __init__(self, mac: Any, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> None:
        super().__init__(mac, env_info, args, device, epochs=args.ppo_epochs, minibatches=args.ppo_minibatches)
        state_dim, obs_dim, n = env_info["state_shape"], env_info["obs_shape"], self.n_agents
        in_dim = {"state": state_dim, "state_obs": state_dim + obs_dim, "obs": obs_dim}[args.critic_inputs]
        in_dim += n * args.critic_agent_id
        self.critic = ValueCritic(in_dim, args.critic_hidden_dim, args.critic_use_rnn,
                                  popart=args.value_norm == "popart").to(device)
        self.value_norm = ValueNorm(1) if args.value_norm == "running" else None
        self.reward_stats = RunningMeanStd()
        self.make_optimiser([("actor", list(mac.parameters()), args.lr),
                             ("critic", list(self.critic.parameters()), args.critic_lr)])

    # --- values ---------------------------------------------------------------------------------------
    def values(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Critic outputs (B, T, n_agents) for every stored step (normalised if values are normalised)."""
        x = critic_inputs(batch, self.args.critic_inputs, self.args.critic_agent_id, self.n_agents)
        b, t, n, d = x.shape
        v = self.critic(x.permute(0, 2, 1, 3).reshape(b * n, t, d))  # (B*n, T)
        return v.view(b, n, t).permute(0, 2, 1)  # (B, T, n_agents)

    def denormalise(self, v: torch.Tensor) -> torch.Tensor:
        if self.args.value_norm == "popart":
            return self.critic.head.denormalize(v.unsqueeze(-1)).squeeze(-1)
        return self.value_norm.denormalize(v.unsqueeze(-1)).squeeze(-1) if self.value_norm is not None else v

    def normalise(self, v: torch.Tensor) -> torch.Tensor:
        if self.args.value_norm == "popart":
            return self.critic.head.normalize(v.unsqueeze(-1)).squeeze(-1)
        return self.value_norm.normalize(v.unsqueeze(-1)).squeeze(-1) if self.value_norm is not None else v

    # --- hooks ------------------------------------------------------------------------------------------
    def prepare(self, data: Batch, t_env: int) -> Batch:
        a = self.args
        mask = data["filled"][:, :-1].unsqueeze(-1)  # (B, T-1, 1)
        n = self.n_agents
        rewards = data["reward"][:, :-1]  # (B, T-1)
        if a.standardise_rewards:
            rewards = self.reward_stats.standardise(rewards, mask[..., 0])
        rewards = rewards.unsqueeze(-1).expand(-1, -1, n)  # (B, T-1, n): the team reward
        terminated = data["terminated"][:, :-1].unsqueeze(-1).expand(-1, -1, n)  # (B, T-1, n)
        valid_next = data["filled"][:, 1:].unsqueeze(-1).expand(-1, -1, n)  # (B, T-1, n)
        old_out = self.values(data)  # (B, T, n): critic outputs before this update
        advantages, returns = gae(rewards, self.denormalise(old_out), terminated, valid_next, a.gamma, a.gae_lambda)
        valid = mask.expand_as(returns) > 0
        if self.args.value_norm == "popart":
            self.critic.head.update(returns[valid].unsqueeze(-1))
            old_out = self.values(data)  # Pop-Art preserved the values; its normalised outputs moved
        elif self.value_norm is not None:
            self.value_norm.update(returns[valid].unsqueeze(-1))
        if a.advantage_norm:
            m = advantages[valid]
            advantages = (advantages - m.mean()) / (m.std(unbiased=False) + 1e-8)
        return {"advantages": advantages, "returns": self.normalise(returns), "old_values": old_out[:, :-1]}

    def loss(self, mb: Batch, prep: Batch, t_env: int) -> tuple[torch.Tensor, dict[str, float]]:
        a = self.args
        mask = mb["filled"][:, :-1].unsqueeze(-1)  # (B, T-1, 1)
        logits, _ = self.mac.forward_seq(mb)  # (B, T, n, n_actions)
        log_pi = masked_log_softmax(logits[:, :-1], mb["avail_actions"][:, :-1])  # (B, T-1, n, n_actions)
        log_p = log_pi.gather(-1, mb["actions"][:, :-1].unsqueeze(-1)).squeeze(-1)  # (B, T-1, n)
        ratio = torch.exp(log_p - mb["log_prob"][:, :-1])  # (B, T-1, n)
        adv = prep["advantages"]  # (B, T-1, n)
        surrogate = torch.min(ratio * adv, ratio.clamp(1.0 - a.ppo_clip, 1.0 + a.ppo_clip) * adv)
        policy_loss = -masked_mean(surrogate, mask)
        entropy = masked_mean(masked_entropy(log_pi), mask)

        values = self.values(mb)[:, :-1]  # (B, T-1, n)
        target, old = prep["returns"], prep["old_values"]
        v_loss = value_error(values - target, a.huber_delta)
        if a.value_clip > 0:
            clipped = old + (values - old).clamp(-a.value_clip, a.value_clip)
            v_loss = torch.max(v_loss, value_error(clipped - target, a.huber_delta))
        value_loss = masked_mean(v_loss, mask)
        aux = self.mac.policy_losses(mb, t_env)  # the controller's own actor-loss terms (e.g. BN-DAG's density)
        loss = policy_loss + a.value_loss_coef * value_loss - a.entropy_coef * entropy + sum(aux.values())
        with torch.no_grad():
            log_ratio = log_p - mb["log_prob"][:, :-1]
            stats = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy.item(),
                     "approx_kl": masked_mean((ratio - 1) - log_ratio, mask).item(),
                     "clip_fraction": masked_mean(((ratio - 1).abs() > a.ppo_clip).float(), mask).item(),
                     "ratio_mean": masked_mean(ratio, mask).item(),
                     "value_mean": masked_mean(self.denormalise(values), mask).item(),
                     **{f"aux_{k}": v.item() for k, v in aux.items()}}
        return loss, stats

    # --- checkpoints ----------------------------------------------------------------------------------
    def networks(self) -> dict[str, torch.nn.Module]:
        return {"agent": self.mac.agent, "critic": self.critic}

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"critic": self.critic}

    def state_dict(self) -> dict[str, Any]:
        s = super().state_dict()
        s["value_norm"] = self.value_norm.state_dict() if self.value_norm is not None else None
        s["reward_stats"] = self.reward_stats.state_dict()
        return s

    def load_state_dict(self, s: Mapping[str, Any]) -> None:
        super().load_state_dict(s)
        if self.value_norm is not None:
            self.value_norm.load_state_dict(s["value_norm"])
        self.reward_stats.load_state_dict(s["reward_stats"])
