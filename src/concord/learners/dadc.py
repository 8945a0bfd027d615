"""DADC's learner (dadc.md §5): each agent's copy trains the state approximator, the critic and the coordinator's
actor on common information only — Z_t, θ_t and the team reward R_t — so copies with the same seed and data stay
identical (§5, "same random number generator and the same seed").

Data path: each round goes to rollout storage; once it holds ``rollout_episodes`` episodes (a batch of steps:
3 x 100 = 300 for MABC, 2 x 100 = 200 for demand response, App. E) the learner trains on exactly those, from
``train_common`` on the common part of the batch, then empties the storage. Per update:

- AIS (eq. 4): L_AIS = λ·mean smoothL1(R̂_t − R_t) + (1 − λ)·mean NLL_{N(μ_{t+1}, I)}(X_{t+1}) (the paper sums
  the NLL; we average it, and the target X_{t+1} is detached [X]). Skipped when ``dadc_ais`` is false.
- back end ``ac`` (eqs. 5-6): Q(X_t, θ_t) by batch TD, smoothL1(Q_t, R_t + γ Q(X_{t+1}, θ_{t+1})) (at a truncated
  episode's last step, E_ψ Q(X_{t+1}, ·)); the actor ascends (Q_t − E_ψ Q(X_t, ·)) ∇ log ψ(θ_t | X_t) (eq. 6 with
  the expected-Q baseline, which leaves the gradient unbiased; for a continuous set Q(X_t, mean) is the baseline).
- back end ``ppo``: V(X_t), GAE(λ) advantages (normalised), the clipped surrogate of the stored log ψ, squared
  value error; ``dadc_ppo_epochs`` passes over ``dadc_ppo_minibatches`` minibatches of episodes.

The critic and actor see X_t detached (only L_AIS trains the AIS). Three time-scales (§5, after eq. 6): one Adam
with a parameter group per component, learning rate lr_g / (1 + k / τ)^{p_g} after k updates, with the exponents
p_ais < p_critic < p_actor in (1/2, 1] so that b_k / a_k -> 0 and c_k / b_k -> 0.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from concord.components.advantages import gae
from concord.components.rollout_storage import RolloutStorage
from concord.controllers.dadc import DADCController
from concord.errors import ConfigError
from concord.learners.base import Learner, mean_stats
from concord.learners.on_policy import masked_mean
from concord.registry import register_learner

Batch = dict[str, torch.Tensor]


@register_learner("dadc")
class DADCLearner(Learner):
    def __init__(self, mac: Any, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> None:
        if not isinstance(mac, DADCController):
            raise ConfigError(f"learner 'dadc' needs mac=dadc, got mac={args.mac}")
        super().__init__(mac, env_info, args, device)
        self.net, self.pset = mac.agent, mac.pset
        self.storage = RolloutStorage(self.scheme, args.rollout_episodes, self.max_seq_length)
        a = args
        groups = [("ais", self.net.ais_parameters(), a.dadc_ais_lr, a.dadc_ais_lr_power),
                  ("critic", self.net.critic_parameters(), a.dadc_critic_lr, a.dadc_critic_lr_power),
                  ("actor", self.net.actor_parameters(), a.dadc_actor_lr, a.dadc_actor_lr_power)]
        self.groups = [g for g in groups if g[1]]
        self.optimiser = torch.optim.Adam([{"params": p, "lr": lr} for _, p, lr, _ in self.groups],
                                          eps=a.dadc_optim_eps)
        self.n_rollouts = 0  # updates on a full storage (k of the learning-rate schedules)
        self.shuffle_gen = torch.Generator().manual_seed(int(args.seed) + 2)  # PPO minibatches, the same in every copy

    # --- the schedule ---------------------------------------------------------------------------
    def update(self, batch: Any, t_env: int, episode: int) -> dict[str, float]:
        self.storage.add(batch)
        if not self.storage.full():
            return {}
        data = self.storage.take().to_torch(self.device)
        return self.train_common(self.common_batch(data))

    def common_batch(self, data: Batch) -> Batch:
        """The common information of stored episodes: Z (B, T, dz), θ (B, T, dθ), log ψ, R, filled, terminated (B, T)."""
        return {"z": self.pset.common(data["obs"]), "theta": data["dadc_theta"],
                "log_prob": data["dadc_log_prob"][..., 0], "reward": data["reward"], "filled": data["filled"],
                "terminated": data["terminated"]}

    def learning_rates(self) -> dict[str, float]:
        k, tau = self.n_rollouts, self.args.dadc_lr_decay_updates
        return {name: lr / (1.0 + k / tau) ** power for name, _, lr, power in self.groups}

    def train_common(self, cb: Batch) -> dict[str, float]:
        """One update on a batch of common information (what each decentralised copy runs); returns statistics."""
        lrs = self.learning_rates()
        for (name, *_), group in zip(self.groups, self.optimiser.param_groups):
            group["lr"] = lrs[name]
        if self.args.dadc_backend == "ac":
            steps = [self._step(*self._ac_loss(cb))]
        else:
            with torch.no_grad():
                prep = self._ppo_prepare(cb)
            n = cb["filled"].shape[0]
            steps = []
            for _ in range(self.args.dadc_ppo_epochs):
                for idx in torch.chunk(torch.randperm(n, generator=self.shuffle_gen), min(self.args.dadc_ppo_minibatches, n)):
                    mb = {k: v[idx] for k, v in cb.items()}
                    steps.append(self._step(*self._ppo_loss(mb, {k: v[idx] for k, v in prep.items()})))
        self.n_rollouts += 1
        return {**mean_stats(steps), **{f"lr_{k}": v for k, v in lrs.items()}}

    def _step(self, loss: torch.Tensor, stats: dict[str, float]) -> dict[str, float]:
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        for (name, *_), group in zip(self.groups, self.optimiser.param_groups):
            stats[f"grad_norm_{name}"] = float(torch.nn.utils.clip_grad_norm_(group["params"],
                                                                              self.args.dadc_grad_norm_clip))
        self.optimiser.step()
        self.n_updates += 1
        return stats

    # --- state approximator (eq. 4) -----------------------------------------------------------------
    def ais(self, cb: Batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """X_t (B, T, d) for every stored step (incl. the one after the last), and L_AIS with its parts."""
        theta = cb["theta"]  # (B, T, dθ)
        theta_prev = torch.cat([torch.zeros_like(theta[:, :1]), theta[:, :-1]], dim=1)  # θ_{t-1}, 0 at t = 0
        x = self.net.ais_unroll(cb["z"], theta_prev)  # (B, T, d)
        mask = cb["filled"][:, :-1]  # (B, T-1) steps taken; X_{t+1} exists for each
        if not self.net.use_ais:
            return x, torch.zeros((), device=x.device), {}
        r_hat, mu = self.net.predict(x[:, :-1], theta[:, :-1])  # (B, T-1), (B, T-1, d)
        loss_r = masked_mean(F.smooth_l1_loss(r_hat, cb["reward"][:, :-1], reduction="none"), mask)
        nll = 0.5 * ((x[:, 1:].detach() - mu) ** 2).sum(-1) + 0.5 * mu.shape[-1] * math.log(2 * math.pi)  # (B, T-1)
        loss_nu = masked_mean(nll, mask)
        lam = self.args.dadc_ais_lambda
        loss = lam * loss_r + (1 - lam) * loss_nu
        return x, loss, {"ais_loss": loss.item(), "ais_reward_loss": loss_r.item(), "ais_nll": loss_nu.item()}

    def expected_q(self, x: torch.Tensor) -> torch.Tensor:
        """E_{θ ~ ψ(·|x)} Q(x, θ) for a discrete set, Q(x, mean of ψ) for a continuous one: (...,)."""
        out = self.net.policy(x)
        if not self.pset.discrete:
            return self.net.value(x, out)
        eye = torch.eye(self.pset.n_options, device=x.device)  # (O, O)
        q = torch.stack([self.net.value(x, eye[o].expand(*x.shape[:-1], -1)) for o in range(len(eye))], -1)
        return (out.exp() * q).sum(-1)

    # --- back end: actor-critic (eqs. 5-6) -------------------------------------------------------------
    def _ac_loss(self, cb: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        x, loss_ais, stats = self.ais(cb)
        xd, theta = x.detach(), cb["theta"]
        mask, nxt = cb["filled"][:, :-1], cb["filled"][:, 1:]  # (B, T-1) step t taken; step t+1 taken
        q = self.net.value(xd[:, :-1], theta[:, :-1])  # (B, T-1)
        with torch.no_grad():
            q_next = torch.where(nxt.bool(), self.net.value(xd[:, 1:], theta[:, 1:]), self.expected_q(xd[:, 1:]))
            target = cb["reward"][:, :-1] + self.args.gamma * (1 - cb["terminated"][:, :-1]) * q_next
            adv = q - self.expected_q(xd[:, :-1])  # (B, T-1)
        loss_critic = masked_mean(F.smooth_l1_loss(q, target, reduction="none"), mask)
        logp, ent = self.net.log_prob(xd[:, :-1], theta[:, :-1])  # (B, T-1)
        loss_actor = -masked_mean(adv.detach() * logp, mask) - self.args.dadc_entropy_coef * masked_mean(ent, mask)
        stats.update(critic_loss=loss_critic.item(), actor_loss=loss_actor.item(),
                     entropy=masked_mean(ent, mask).item(), q_mean=masked_mean(q, mask).item())
        return loss_ais + loss_critic + loss_actor, stats

    # --- back end: PPO ---------------------------------------------------------------------------------
    def _ppo_prepare(self, cb: Batch) -> Batch:
        x, _, _ = self.ais(cb)
        v = self.net.value(x)  # (B, T)
        mask = cb["filled"][:, :-1]  # (B, T-1)
        step = (lambda x: x[:, :-1, None])  # (B, T) -> (B, T-1, 1): one value head
        adv, ret = gae(step(cb["reward"]), v[..., None], step(cb["terminated"]), cb["filled"][:, 1:, None],
                       self.args.gamma, self.args.dadc_gae_lambda)  # a truncated end bootstraps from V
        adv, ret = adv[..., 0], ret[..., 0]  # (B, T-1)
        m = mask.bool()
        norm = (adv - adv[m].mean()) / (adv[m].std() + 1e-8) if m.sum() > 1 else adv
        return {"adv": norm, "ret": ret}

    def _ppo_loss(self, mb: Batch, prep: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        x, loss_ais, stats = self.ais(mb)
        xd, mask = x.detach()[:, :-1], mb["filled"][:, :-1]
        logp, ent = self.net.log_prob(xd, mb["theta"][:, :-1])  # (B, T-1)
        ratio = torch.exp(logp - mb["log_prob"][:, :-1])
        clip = self.args.dadc_ppo_clip
        surr = torch.min(ratio * prep["adv"], ratio.clamp(1 - clip, 1 + clip) * prep["adv"])
        loss_actor = -masked_mean(surr, mask) - self.args.dadc_entropy_coef * masked_mean(ent, mask)
        loss_critic = masked_mean(0.5 * (self.net.value(xd) - prep["ret"]) ** 2, mask)
        stats.update(critic_loss=loss_critic.item(), actor_loss=loss_actor.item(),
                     entropy=masked_mean(ent, mask).item(),
                     approx_kl=masked_mean(mb["log_prob"][:, :-1] - logp, mask).item())
        return loss_ais + loss_critic + loss_actor, stats

    # --- checkpoints --------------------------------------------------------------------------------
    def networks(self) -> dict[str, torch.nn.Module]:
        return {"dadc": self.net}

    def state_dict(self) -> dict[str, Any]:
        return {"mac": self.mac.state_dict(), "optimiser": self.optimiser.state_dict(),
                "storage": self.storage.state_dict(), "n_updates": self.n_updates, "n_rollouts": self.n_rollouts,
                "shuffle_gen": self.shuffle_gen.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.mac.load_state_dict(state["mac"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.storage.load_state_dict(state["storage"])
        self.n_updates, self.n_rollouts = state["n_updates"], state["n_rollouts"]
        self.shuffle_gen.set_state(state["shuffle_gen"])
