"""The Q-learner behind IQL, VDN, QMIX and every registered mixer (QTRAN, QPLEX, VAST, LAN's value network).

One TD loss: chosen agent values are mixed by the configured mixer (or left per agent for IQL), targets are
double-Q TD(λ) returns through the target mixer, padded steps are masked. Variants plug in through the mixer
(its output, its ``auxiliary_losses``, its ``rollout_update``) and through the small hooks below, never through
checks on names.
"""
from __future__ import annotations

import copy
import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Mapping

import torch

from concord.components.running_stats import RunningMeanStd
from concord.components.state import learner_states, state_dim
from concord.components.targets import td_lambda_targets
from concord.modules.mixers.base import MixerContext
from concord.registry import MIXERS, register_learner

if TYPE_CHECKING:
    from concord.components.episode_buffer import EpisodeBatch

log = logging.getLogger(__name__)


def make_optimizer(params: list[torch.nn.Parameter], args: SimpleNamespace) -> torch.optim.Optimizer:
    # foreach: one kernel per step over all parameters instead of a Python loop over them
    if args.optimizer == "adam":
        return torch.optim.Adam(params, lr=args.lr, eps=args.optim_eps, foreach=True)
    return torch.optim.RMSprop(params, lr=args.lr, alpha=args.optim_alpha, eps=args.optim_eps, foreach=True)


@register_learner("q_learner")
class QLearner:
    """Off-policy value-factorisation learner over whole-episode batches sampled from replay."""

    uses_replay = True  # the run loop feeds it batches sampled from the replay buffer

    def __init__(self, mac: Any, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> None:
        self.args = args
        self.mac = mac
        self.device = device
        self.n_agents, self.n_actions = env_info["n_agents"], env_info["n_actions"]
        self.state_last_action = args.env_args["state_last_action"]
        mixer_info = dict(env_info, state_shape=state_dim(env_info, self.state_last_action))
        self.mixer = MIXERS.get(args.mixer)(mixer_info, args).to(device) if args.mixer else None
        self.params = list(mac.parameters()) + (self.mixer.td_parameters() if self.mixer else [])
        self.optimiser = make_optimizer(self.params, args)
        self.target_agent = copy.deepcopy(mac.agent)
        self.target_mixer = copy.deepcopy(self.mixer)
        for tp, _ in self._target_pairs():
            tp.requires_grad_(False)
        self.reward_stats = RunningMeanStd()
        self.n_updates = 0
        self.last_target_update_episode = 0
        self.last_target_update_step = 0

    # --- networks ---------------------------------------------------------------------------
    def networks(self) -> dict[str, torch.nn.Module]:
        """Named trainable networks, for parameter-count logging."""
        nets = {"agent": self.mac.agent}
        if self.mixer is not None:
            nets["mixer"] = self.mixer
        return nets

    def _target_pairs(self) -> list[tuple[torch.nn.Parameter, torch.nn.Parameter]]:
        """(target, online) parameter pairs of the agent and the mixer."""
        pairs = list(zip(self.target_agent.parameters(), self.mac.agent.parameters()))
        if self.mixer is not None:
            pairs += list(zip(self.target_mixer.parameters(), self.mixer.parameters()))
        return pairs

    def _update_targets(self, episode: int) -> None:
        a = self.args
        if a.target_update_mode == "soft":
            with torch.no_grad():
                for tp, p in self._target_pairs():
                    tp.mul_(1.0 - a.target_tau).add_(p, alpha=a.target_tau)
            return
        if a.target_update_unit == "episodes":
            due = episode - self.last_target_update_episode >= a.target_update_interval
        else:
            due = self.n_updates - self.last_target_update_step >= a.target_update_interval
        if due:
            self.target_agent.load_state_dict(self.mac.agent.state_dict())
            if self.mixer is not None:
                self.target_mixer.load_state_dict(self.mixer.state_dict())
            self.last_target_update_episode, self.last_target_update_step = episode, self.n_updates

    # --- hooks --------------------------------------------------------------------------------
    def mix(self, mixer: torch.nn.Module | None, agent_qs: torch.Tensor, states: torch.Tensor,
            ctx: MixerContext) -> torch.Tensor:
        """(B, T, n_agents) -> (B, T, K): K = 1 for a joint value, n_agents for independent learners."""
        return agent_qs if mixer is None else mixer(agent_qs, states, ctx)

    def rewards(self, batch: Mapping[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """(B, T) team rewards, standardised by running statistics if configured."""
        r = batch["reward"][:, :-1]
        if self.args.standardise_rewards:
            self.reward_stats.update(r[mask > 0])
            r = (r - self.reward_stats.mean) / (self.reward_stats.var ** 0.5 + 1e-8)
        return r

    # --- training -----------------------------------------------------------------------------
    def train(self, batch: Mapping[str, torch.Tensor], t_env: int, episode: int) -> dict[str, float]:
        """One gradient update on a batch from ``EpisodeBatch.to_torch``; returns scalar statistics."""
        a = self.args
        actions = batch["actions"][:, :-1]  # (B, T-1, n_agents)
        avail = batch["avail_actions"]  # (B, T, n_agents, n_actions)
        mask = batch["filled"][:, :-1]  # (B, T-1)
        terminated = batch["terminated"][:, :-1]  # (B, T-1)
        valid_next = batch["filled"][:, 1:]  # (B, T-1)
        rewards = self.rewards(batch, mask)  # (B, T-1)
        states = learner_states(batch, self.n_actions, self.state_last_action)  # (B, T, S)
        last_actions = self.mac.shifted_actions(batch["actions"])  # (B, T, n_agents)

        qs, hidden = self.mac.forward_seq(batch)  # (B, T, n_agents, n_actions), (B, T, n_agents, H)
        chosen = qs[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B, T-1, n_agents)
        greedy_qs = qs[:, :-1].masked_fill(~avail[:, :-1], -float("inf")).max(dim=-1).values  # (B, T-1, n_agents)
        ctx = MixerContext(all_qs=qs[:, :-1], actions=actions, avail_actions=avail[:, :-1], greedy_qs=greedy_qs,
                           hidden=hidden[:, :-1],
                           obs=batch["obs"][:, :-1], last_actions=last_actions[:, :-1], mask=mask,
                           extras={k[6:]: v[:, :-1] for k, v in batch.items() if k.startswith("extra_")})
        q_taken = self.mix(self.mixer, chosen, states[:, :-1], ctx)  # (B, T-1, K)

        with torch.no_grad():
            target_qs, target_hidden = self.mac.forward_seq(batch, agent=self.target_agent)
            target_qs = target_qs[:, 1:]  # (B, T-1, n_agents, n_actions)
            chooser = qs.detach()[:, 1:] if a.double_q else target_qs
            greedy = chooser.masked_fill(~avail[:, 1:], -float("inf")).argmax(dim=-1)  # (B, T-1, n_agents)
            target_max = target_qs.gather(-1, greedy.unsqueeze(-1)).squeeze(-1)  # (B, T-1, n_agents)
            tctx = MixerContext(all_qs=target_qs, actions=greedy, avail_actions=avail[:, 1:], greedy_qs=target_max,
                                hidden=target_hidden[:, 1:], obs=batch["obs"][:, 1:], last_actions=actions,
                                mask=valid_next, extras={k[6:]: v[:, 1:] for k, v in batch.items()
                                                         if k.startswith("extra_")}, is_target=True)
            next_values = self.mix(self.target_mixer, target_max, states[:, 1:], tctx)  # (B, T-1, K)
            k = next_values.shape[-1]
            targets = td_lambda_targets(rewards.unsqueeze(-1).expand(-1, -1, k), terminated.unsqueeze(-1).expand(-1, -1, k),
                                        valid_next.unsqueeze(-1).expand(-1, -1, k), next_values, a.gamma, a.td_lambda)

        m = mask.unsqueeze(-1).expand_as(q_taken)  # (B, T-1, K)
        td_error = (q_taken - targets) * m
        n_valid = m.sum().clamp(min=1.0)
        td_loss = (td_error**2).sum() / n_valid
        aux = self.mixer.auxiliary_losses(ctx, states=states[:, :-1], targets=targets, q_taken=q_taken,
                                          agent_qs=chosen) \
            if self.mixer is not None else {}
        loss = td_loss + sum(aux.values()) if aux else td_loss

        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, a.grad_norm_clip)
        self.optimiser.step()
        self.n_updates += 1
        self._update_targets(episode)

        stats = {
            "loss": loss.item(),
            "td_loss": td_loss.item(),
            "td_error_abs": (td_error.abs().sum() / n_valid).item(),
            "q_taken_mean": ((q_taken * m).sum() / n_valid).item(),
            "target_mean": ((targets * m).sum() / n_valid).item(),
            "grad_norm": float(grad_norm),
        }
        stats.update({f"aux_{name}": v.item() for name, v in aux.items()})
        return stats

    def rollout_update(self, batch: "EpisodeBatch", t_env: int) -> dict[str, float]:
        """On-policy updates on the latest episodes (e.g. VAST's assignment policy); none by default."""
        return self.mixer.rollout_update(batch, t_env, self.mac) if self.mixer is not None else {}

    # --- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "agent": self.mac.state_dict(),
            "target_agent": self.target_agent.state_dict(),
            "mixer": self.mixer.state_dict() if self.mixer else None,
            "target_mixer": self.target_mixer.state_dict() if self.mixer else None,
            "optimiser": self.optimiser.state_dict(),
            "reward_stats": self.reward_stats.state_dict(),
            "counters": (self.n_updates, self.last_target_update_episode, self.last_target_update_step),
        }

    def load_state_dict(self, s: Mapping[str, Any]) -> None:
        self.mac.load_state_dict(s["agent"])
        self.target_agent.load_state_dict(s["target_agent"])
        if self.mixer is not None:
            self.mixer.load_state_dict(s["mixer"])
            self.target_mixer.load_state_dict(s["target_mixer"])
        self.optimiser.load_state_dict(s["optimiser"])
        self.reward_stats.load_state_dict(s["reward_stats"])
        self.n_updates, self.last_target_update_episode, self.last_target_update_step = s["counters"]
