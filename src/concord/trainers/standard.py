"""The standard schedule: collect a round of ``batch_size_run`` episodes, hand it to the learner, then test, log
and checkpoint on their intervals — for every learner family (replay or on-policy)."""
from __future__ import annotations

from concord.registry import register_trainer
from concord.trainers.base import Trainer


@register_trainer("standard")
class StandardTrainer(Trainer):
    def train(self) -> None:
        exp = self.exp
        while exp.progress.t_env < exp.args.t_max:
            t0 = exp.progress.t_env
            batch, _ = exp.collect()
            exp.learn(batch)
            exp.periodic(exp.progress.t_env - t0)
