"""The contract every trainer honours: it owns the schedule of a run, not its parts.

A trainer is constructed as ``cls(experiment)`` and its ``train()`` runs until ``args.t_max`` env steps. It
composes the experiment's shared phases — ``collect()`` (a round of episodes, counted), ``learn(batch)`` (the
learner's update, timed), ``periodic(steps)`` (test, log and checkpoint on their intervals) — and may add its
own (DIALS trains local learners on influence-augmented simulators between global rounds). Checkpointing,
resuming, testing and logging stay in ``Experiment``, shared by every trainer; ``Experiment.train`` flushes the
final statistics, test and checkpoint after ``train()`` returns.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concord.run import Experiment


class Trainer(ABC):
    def __init__(self, experiment: "Experiment") -> None:
        self.exp = experiment

    @abstractmethod
    def train(self) -> None:
        """Train until ``exp.progress.t_env >= exp.args.t_max``."""
