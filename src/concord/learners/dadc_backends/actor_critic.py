"""DADC's actor-critic back end (dadc.md eqs. 5-6): Q(X_t, θ_t) by batch TD and the policy gradient with the
expected-Q baseline, one Adam step per batch on L_AIS + L_TD + L_actor.

L_TD = mean smoothL1(Q_t, R_t + γ Q(X_{t+1}, θ_{t+1})) (eq. 5; at a truncated episode's last step
E_ψ Q(X_{t+1}, ·)); the actor ascends (Q_t − E_ψ Q(X_t, ·)) ∇ log ψ(θ_t | X_t) (eq. 6 with a baseline that leaves
the gradient unbiased; for a continuous set Q(X_t, mean of ψ) is the baseline).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from concord.learners.dadc_backends.base import Backend, Batch
from concord.learners.on_policy import masked_mean


class ActorCritic(Backend):
    head = "q"

    def train(self, cb: Batch) -> list[dict[str, float]]:
        return [self.learner.step(*self.loss(cb))]

    def expected_q(self, x: torch.Tensor) -> torch.Tensor:
        """E_{θ ~ ψ(·|x)} Q(x, θ) for a discrete set, Q(x, mean of ψ) for a continuous one: (...,)."""
        out = self.net.policy(x)
        if not self.net.discrete:
            return self.net.value(x, out)
        eye = torch.eye(out.shape[-1], device=x.device)  # (O, O)
        q = torch.stack([self.net.value(x, eye[o].expand(*x.shape[:-1], -1)) for o in range(len(eye))], -1)
        return (out.exp() * q).sum(-1)

    def loss(self, cb: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        L, net = self.learner, self.net
        x, loss_ais, stats = L.ais(cb)
        xd, theta = x.detach(), cb["theta"]
        mask, nxt = cb["filled"][:, :-1], cb["filled"][:, 1:]  # (B, T-1) step t taken; step t+1 taken
        q = net.value(xd[:, :-1], theta[:, :-1])  # (B, T-1)
        with torch.no_grad():
            q_next = torch.where(nxt.bool(), net.value(xd[:, 1:], theta[:, 1:]), self.expected_q(xd[:, 1:]))
            target = cb["reward"][:, :-1] + self.args.gamma * (1 - cb["terminated"][:, :-1]) * q_next
            adv = q - self.expected_q(xd[:, :-1])  # (B, T-1)
        loss_critic = masked_mean(F.smooth_l1_loss(q, target, reduction="none"), mask)
        logp, ent = net.log_prob(xd[:, :-1], theta[:, :-1])  # (B, T-1)
        loss_actor = -masked_mean(adv.detach() * logp, mask) - self.args.dadc_entropy_coef * masked_mean(ent, mask)
        stats.update(critic_loss=loss_critic.item(), actor_loss=loss_actor.item(),
                     entropy=masked_mean(ent, mask).item(), q_mean=masked_mean(q, mask).item())
        return loss_ais + loss_critic + loss_actor, stats
