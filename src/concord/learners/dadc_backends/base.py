"""The interface of DADC's back ends (dadc.md §5: "agents pick any standard single-agent actor-critic RL
algorithm ... and update V and ψ using Z_t and R_t"): a back end is the update rule that turns one batch of
common information into parameter updates of the coordinator's critic and actor; ``DADCLearner`` owns the
network, the AIS loss (eq. 4), the Adam optimiser and its three time-scale schedules, and calls ``train``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import torch

if TYPE_CHECKING:
    from concord.learners.dadc import DADCLearner

Batch = dict[str, torch.Tensor]
Group = tuple[str, list[torch.nn.Parameter], float, float]  # (name, parameters, base learning rate, decay power)


class Backend:
    """One update rule. ``head`` names the coordinator head it needs (``DADCNet``: ``q``, ``v`` or ``naf``)."""

    head: ClassVar[str]

    def __init__(self, learner: DADCLearner) -> None:
        self.learner, self.net, self.args = learner, learner.net, learner.args

    def groups(self) -> list[Group]:
        """Adam's parameter groups: the three time-scales of §5 (AIS faster than critic faster than actor)."""
        a, n = self.args, self.net
        return [("ais", n.ais_parameters(), a.dadc_ais_lr, a.dadc_ais_lr_power),
                ("critic", n.critic_parameters(), a.dadc_critic_lr, a.dadc_critic_lr_power),
                ("actor", n.actor_parameters(), a.dadc_actor_lr, a.dadc_actor_lr_power)]

    def train(self, cb: Batch) -> list[dict[str, float]]:
        """Update on one batch of common information (B, T, ...); returns each gradient step's statistics."""
        raise NotImplementedError

    def ais_steps(self, cb: Batch) -> list[dict[str, float]]:
        """One Adam step on L_AIS alone (eq. 4), for back ends whose critic and actor steps do not carry it."""
        if not self.net.use_ais:
            return []
        _, loss, stats = self.learner.ais(cb)
        return [self.learner.step(loss, stats)]

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None
