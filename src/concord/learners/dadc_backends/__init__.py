"""DADC's back ends (dadc.md §5, App. E), chosen by ``dadc_backend`` through ``BACKENDS``: ``ac`` (eqs. 5-6),
``ppo``, ``trpo`` and ``naf`` (NAF-DQN). Each is a ``Backend``: Adam's parameter groups and ``train`` on a batch
of common information."""
from __future__ import annotations

from concord.learners.dadc_backends.actor_critic import ActorCritic
from concord.learners.dadc_backends.base import Backend
from concord.learners.dadc_backends.naf import NAF
from concord.learners.dadc_backends.ppo import PPO
from concord.learners.dadc_backends.trpo import TRPO

BACKENDS: dict[str, type[Backend]] = {"ac": ActorCritic, "ppo": PPO, "trpo": TRPO, "naf": NAF}
