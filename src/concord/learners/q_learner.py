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

from concord.components.episode_buffer import ReplayBuffer
from concord.components.running_stats import RunningMeanStd
from concord.components.state import learner_states
from concord.components.targets import td_lambda_targets
from concord.learners.base import Learner, mean_stats
from concord.modules.mixers.base import LocalPolicy, Mixer, MixerContext, batch_context, make_mixer
from concord.registry import register_learner

if TYPE_CHECKING:
    from concord.components.episode_buffer import EpisodeBatch

log = logging.getLogger(__name__)


def make_optimizer(params: list[torch.nn.Parameter], args: SimpleNamespace) -> torch.optim.Optimizer:
    # foreach: one kernel per step over all parameters instead of a Python loop over them
    if args.optimizer == "adam":
        return torch.optim.Adam(params, lr=args.lr, eps=args.optim_eps, foreach=True)
    return torch.optim.RMSprop(params, lr=args.lr, alpha=args.optim_alpha, eps=args.optim_eps, foreach=True)


@register_learner("q_learner")
class QLearner(Learner):
    """Off-policy value-factorisation learner: keeps a replay buffer of whole episodes, and after each round
    takes ``updates_per_round`` gradient steps on batches sampled from it."""

    def __init__(self, mac: Any, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> None:
        super().__init__(mac, env_info, args, device)
        self.buffer = ReplayBuffer(self.scheme, args.buffer_size, self.max_seq_length, args.seed)
        self.state_last_action = args.env_args["state_last_action"]
        self.mixer = make_mixer(env_info, args, device)
        # only a mixer with an on-policy part (VAST's assignment policy) needs each round as tensors
        self.mixer_on_policy = self.mixer is not None and type(self.mixer).rollout_update is not Mixer.rollout_update
        self.params = list(mac.parameters()) + (self.mixer.td_parameters() if self.mixer else [])
        self.optimiser = make_optimizer(self.params, args)
        self.target_agent = copy.deepcopy(mac.agent)
        self.target_mixer = copy.deepcopy(self.mixer)
        for tp, _ in self._target_pairs():
            tp.requires_grad_(False)
        self.reward_stats = RunningMeanStd()
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
        return self.reward_stats.standardise(r, mask) if self.args.standardise_rewards else r

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
        ctx = batch_context(batch, slice(0, -1), qs[:, :-1], actions, hidden, last_actions[:, :-1], mask)
        q_taken = self.mix(self.mixer, chosen, states[:, :-1], ctx)  # (B, T-1, K)

        with torch.no_grad():
            target_qs, target_hidden = self.mac.forward_seq(batch, agent=self.target_agent)
            target_qs = target_qs[:, 1:]  # (B, T-1, n_agents, n_actions)
            chooser = qs.detach()[:, 1:] if a.double_q else target_qs
            greedy = chooser.masked_fill(~avail[:, 1:], -float("inf")).argmax(dim=-1)  # (B, T-1, n_agents)
            target_max = target_qs.gather(-1, greedy.unsqueeze(-1)).squeeze(-1)  # (B, T-1, n_agents)
            tctx = batch_context(batch, slice(1, None), target_qs, greedy, target_hidden, actions, valid_next,
                                 greedy_qs=target_max, is_target=True)
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

    def update(self, batch: "EpisodeBatch", t_env: int, episode: int) -> dict[str, float]:
        """The mixer's on-policy update on the new round (VAST's assignment policy), then the round goes into
        replay and ``updates_per_round`` sampled batches train the agents and the mixer."""
        stats = self.rollout_update(batch, t_env)
        self.buffer.insert(batch)
        if not self.buffer.can_sample(self.args.batch_size):
            return stats
        steps = [self.train(self.buffer.sample(self.args.batch_size).to_torch(self.device), t_env, episode)
                 for _ in range(self.args.updates_per_round)]
        return {**stats, **mean_stats(steps)}

    def rollout_update(self, batch: "EpisodeBatch", t_env: int) -> dict[str, float]:
        """The mixer's on-policy update on the latest episodes, with the agents' values and the behaviour
        (ε-greedy) policy as its local values; none for most mixers."""
        if not self.mixer_on_policy:
            return {}
        data = batch.to_torch(self.device)

        def local() -> LocalPolicy:
            with torch.no_grad():
                qs, _ = self.mac.forward_seq(data)  # (B, T, n_agents, n_actions)
                return LocalPolicy(qs=qs, pi=self.mac.selector.probs(qs, data["avail_actions"], t_env))

        return self.mixer.rollout_update(data, t_env, local)

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
            "buffer_rng": self.buffer.rng.bit_generator.state,
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
        self.buffer.rng.bit_generator.state = s["buffer_rng"]

    def save_files(self, directory: str) -> dict[str, Any]:
        """The replay buffer, streamed into one ``.npy`` file per field."""
        return self.buffer.save(directory)

    def load_files(self, directory: str, state: Mapping[str, Any]) -> None:
        self.buffer.load(directory, state)
