"""Factorised actor-critic (VAST's training regime, vast.md §5.2): local actors π_i trained with local critics Q_i
whose values are mixed by any registered mixer into Q_tot (eqs. 3-5 with Ψ = the mixer).

"We use Q_i as critic for local actor-critic learning to realize π_i" (§5.2, after [30, 38, 45]). Per update,
on the latest ``rollout_episodes`` episodes (on-policy):

- critic: Q_tot = Ψ(Q_1(τ_1, a_1), ..., Q_N(τ_N, a_N); s) regressed on λ-returns G_t (``ac_lambda`` = 1:
  Monte-Carlo returns; a truncated episode bootstraps from Ψ of the expected local values Σ_a π_i Q_i at its
  last state), plus the mixer's auxiliary losses (QTRAN's constraints);
- actor: ascending Â_i ∇ log π_i(a_i|τ_i) (plus ``entropy_coef`` · H(π_i)) with the baseline
  V_i = Σ_a π_i(a|τ_i) Q_i(τ_i, a) and, by ``ac_advantage``, either Â_i = G_t − V_i (``return``: the λ-return of
  the team minus the local expected value, as the authors' code does and as eq. 6 defines the meta-policy's
  advantage [C]) or Â_i = Q_i(τ_i, a_i) − V_i (``q``: the local critic's own advantage [X]);
- the mixer's on-policy part (VAST's metagrad assignment, eq. 6) with this π_i and these Q_i.

The critics have the actors' architecture and inputs (a second copy of the controller's agent network with
its own parameters, n_actions outputs); one Adam trains actors, critics and mixer with one gradient clip.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any, Mapping

import torch

from concord.components.action_selectors import masked_entropy, masked_log_softmax
from concord.components.state import learner_states
from concord.components.targets import td_lambda_targets
from concord.learners.on_policy import Batch, OnPolicyLearner, masked_mean
from concord.modules.mixers.base import LocalPolicy, batch_context, make_mixer
from concord.registry import register_learner


def fresh_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module``'s architecture with newly initialised parameters."""
    out = copy.deepcopy(module)
    for m in out.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return out


@register_learner("factorised_ac")
class FactorisedACLearner(OnPolicyLearner):
    def __init__(self, mac: Any, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> None:
        super().__init__(mac, env_info, args, device, epochs=1, minibatches=1)
        self.critic = fresh_copy(mac.agent).to(device)
        self.mixer = make_mixer(env_info, args, device)
        self.state_last_action = args.env_args["state_last_action"]
        critic_params = list(self.critic.parameters()) + (self.mixer.td_parameters() if self.mixer else [])
        self.make_optimiser([("actor", list(mac.parameters()), args.lr), ("critic", critic_params, args.lr)])

    def mix(self, agent_qs: torch.Tensor, states: torch.Tensor, ctx: Any) -> torch.Tensor:
        """(B, T, n_agents) -> (B, T, K); without a mixer each Q_i is its own team-value estimate (K = n_agents)."""
        return agent_qs if self.mixer is None else self.mixer(agent_qs, states, ctx)

    def local(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Critic values Q_i (B, T, n, A), critic hiddens, actor log-probabilities log π_i (B, T, n, A) and the
        expected local values V_i = Σ_a π_i Q_i (B, T, n) at every stored step."""
        qs, hidden = self.mac.forward_seq(batch, agent=self.critic)  # (B, T, n, A), (B, T, n, H)
        logits, _ = self.mac.forward_seq(batch)  # (B, T, n, A)
        log_pi = masked_log_softmax(logits, batch["avail_actions"])  # (B, T, n, A)
        expected = (log_pi.exp() * qs.masked_fill(~batch["avail_actions"], 0.0)).sum(-1)  # (B, T, n)
        return qs, hidden, log_pi, expected

    def prepare(self, data: Batch, t_env: int) -> Batch:
        """λ-return targets of Q_tot, from the rewards and (at truncations) the mixed expected local values."""
        qs, hidden, log_pi, expected = self.local(data)
        states = learner_states(data, self.n_actions, self.state_last_action)  # (B, T, S)
        actions = data["actions"]
        greedy = qs.masked_fill(~data["avail_actions"], -float("inf")).argmax(-1)  # (B, T, n)
        ctx = batch_context(data, slice(1, None), qs[:, 1:], greedy[:, 1:], hidden, actions[:, :-1],
                            data["filled"][:, 1:], greedy_qs=expected[:, 1:], is_target=True)
        next_tot = self.mix(expected[:, 1:], states[:, 1:], ctx)  # (B, T-1, K)
        k = next_tot.shape[-1]
        expand = (lambda x: x.unsqueeze(-1).expand(-1, -1, k))
        targets = td_lambda_targets(expand(data["reward"][:, :-1]), expand(data["terminated"][:, :-1]),
                                    expand(data["filled"][:, 1:]), next_tot, self.args.gamma, self.args.ac_lambda)
        return {"targets": targets}

    def loss(self, mb: Batch, prep: Batch, t_env: int) -> tuple[torch.Tensor, dict[str, float]]:
        a = self.args
        mask = mb["filled"][:, :-1]  # (B, T-1)
        actions = mb["actions"][:, :-1]  # (B, T-1, n)
        qs, hidden, log_pi, expected = self.local(mb)
        qs, log_pi, expected = qs[:, :-1], log_pi[:, :-1], expected[:, :-1]
        chosen = qs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B, T-1, n)
        states = learner_states(mb, self.n_actions, self.state_last_action)[:, :-1]  # (B, T-1, S)
        last = self.mac.shifted_actions(mb["actions"])[:, :-1]  # (B, T-1, n)
        ctx = batch_context(mb, slice(0, -1), qs, actions, hidden, last, mask)
        q_tot = self.mix(chosen, states, ctx)  # (B, T-1, K)
        targets = prep["targets"]  # (B, T-1, K)
        critic_loss = masked_mean((q_tot - targets) ** 2, mask.unsqueeze(-1))
        aux = self.mixer.auxiliary_losses(ctx, states=states, targets=targets, q_taken=q_tot, agent_qs=chosen) \
            if self.mixer is not None else {}

        if a.ac_advantage == "return":  # (B, T-1, n): G_t − Σ_a π_i Q_i, the team's λ-return as Q̂
            advantage = (targets.mean(-1, keepdim=True) - expected).detach()
        else:  # (B, T-1, n): Q_i(τ_i, a_i) − Σ_a π_i Q_i
            advantage = (chosen - expected).detach()
        log_p = log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B, T-1, n)
        m = mask.unsqueeze(-1)  # (B, T-1, 1)
        actor_loss = -masked_mean(advantage * log_p, m)
        entropy = masked_mean(masked_entropy(log_pi), m)
        loss = critic_loss + sum(aux.values()) + actor_loss - a.entropy_coef * entropy
        stats = {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(), "entropy": entropy.item(),
                 "advantage_abs": masked_mean(advantage.abs(), m).item(),
                 "q_taken_mean": masked_mean(q_tot.detach(), mask.unsqueeze(-1)).item(),
                 "target_mean": masked_mean(targets, mask.unsqueeze(-1)).item()}
        stats.update({f"aux_{name}": v.item() for name, v in aux.items()})
        return loss, stats

    def after_train(self, data: Batch, prep: Batch, t_env: int) -> dict[str, float]:
        """The mixer's on-policy part (VAST's metagrad, eq. 6) with this learner's π_i and Q_i, after the update."""
        if self.mixer is None:
            return {}

        def local() -> LocalPolicy:
            qs, _, log_pi, _ = self.local(data)
            return LocalPolicy(qs=qs, pi=log_pi.exp())

        return self.mixer.rollout_update(data, t_env, local)

    # --- checkpoints ----------------------------------------------------------------------------------
    def networks(self) -> dict[str, torch.nn.Module]:
        nets = {"agent": self.mac.agent, "critic": self.critic}
        if self.mixer is not None:
            nets["mixer"] = self.mixer
        return nets

    def modules(self) -> dict[str, torch.nn.Module]:
        return {k: v for k, v in self.networks().items() if k != "agent"}
