"""DADC's PPO back end (Schulman et al. 2017; dadc.md App. E): V(X_t), GAE(λ) advantages (normalised over the
batch), the clipped surrogate of the stored log ψ and a squared value error; ``dadc_ppo_epochs`` passes over
``dadc_ppo_minibatches`` minibatches of whole episodes, each one Adam step on L_AIS + L_V + L_clip.
"""
from __future__ import annotations

import torch

from concord.components.advantages import gae
from concord.learners.dadc_backends.base import Backend, Batch
from concord.learners.on_policy import masked_mean


def gae_targets(learner, cb: Batch, lam: float) -> Batch:
    """GAE(λ) advantages, normalised over the batch's steps, and the λ-return targets: (B, T-1) each; and X (B, T, d),
    the AIS of ``cb`` as the learner's network computes it now (no gradient), for a caller that needs it too."""
    with torch.no_grad():
        x = learner.features(cb)  # (B, T, d)
        v = learner.net.value(x)  # (B, T)
        mask = cb["filled"][:, :-1]  # (B, T-1)
        step = (lambda y: y[:, :-1, None])  # (B, T) -> (B, T-1, 1): one value head
        adv, ret = gae(step(cb["reward"]), v[..., None], step(cb["terminated"]), cb["filled"][:, 1:, None],
                       learner.args.gamma, lam)  # a truncated end bootstraps from V
        adv, ret = adv[..., 0], ret[..., 0]  # (B, T-1)
        m = mask.bool()
        norm = (adv - adv[m].mean()) / (adv[m].std() + 1e-8) if m.sum() > 1 else adv
    return {"adv": norm, "ret": ret, "x": x}


class PPO(Backend):
    head = "v"

    def train(self, cb: Batch) -> list[dict[str, float]]:
        prep = gae_targets(self.learner, cb, self.args.dadc_gae_lambda)
        prep.pop("x")  # each minibatch recomputes X with its gradient for L_AIS
        n = cb["filled"].shape[0]
        steps = []
        for _ in range(self.args.dadc_ppo_epochs):
            perm = torch.randperm(n, generator=self.learner.shuffle_gen)
            for idx in torch.chunk(perm, min(self.args.dadc_ppo_minibatches, n)):
                mb = {k: v[idx] for k, v in cb.items()}
                steps.append(self.learner.step(*self.loss(mb, {k: v[idx] for k, v in prep.items()})))
        return steps

    def loss(self, mb: Batch, prep: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        x, loss_ais, stats = self.learner.ais(mb)
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
