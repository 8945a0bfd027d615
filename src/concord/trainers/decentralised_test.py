"""The standard schedule with a second test of every test phase under decentralised execution.

A controller whose joint policy correlates agents at execution (BN-DAG's parents' actions, bn_dag_policies.md
§7.4.4) offers ``decentralised()``, a context in which it runs the same local policies without communication
(the empty DAG). After each test phase this trainer runs ``test_nepisode`` more test episodes inside it and logs
``test_decentralised_return_mean`` (and the other test statistics under that prefix) beside ``test_return_mean``,
and the gap ``test_decentralisation_gap`` = DAG return − decentralised return. The second test draws no
training randomness (every stream is restored afterwards); it starts from the random state the first one started
from (the experiment's test phase restores it too), so the two returns are paired under common random numbers
and the gap is exactly 0 when both executions act alike. Tests happen before the phase's checkpoint, as in the
standard schedule, so a resumed run repeats them exactly.
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np
import torch

from concord.errors import ConfigError
from concord.registry import register_trainer
from concord.runners.runner import EpisodeStats
from concord.trainers.base import Trainer

if TYPE_CHECKING:
    from concord.run import Experiment


@register_trainer("decentralised_test")
class DecentralisedTestTrainer(Trainer):
    def __init__(self, experiment: Experiment) -> None:
        super().__init__(experiment)
        if not callable(getattr(experiment.mac, "decentralised", None)):
            raise ConfigError(f"trainer 'decentralised_test' needs a controller with decentralised execution "
                              f"(e.g. mac=bn_dag), got mac={experiment.args.mac}")

    def test_both(self) -> None:
        """The experiment's test phase, then the same number of episodes under ``mac.decentralised()``."""
        exp = self.exp
        summary = exp.test()
        stats = EpisodeStats()
        n_rounds = max(1, -(-exp.args.test_nepisode // exp.runner.n_envs))
        env = exp.runner.vec_env
        rng = (random.getstate(), np.random.get_state(), torch.get_rng_state(), env.get_rng_state())
        try:
            with exp.mac.decentralised():
                for _ in range(n_rounds):
                    _, s = exp.runner.run(exp.mac, exp.scheme, exp.progress.t_env, test_mode=True)
                    stats.extend(s)
        finally:  # like the test phase, draw no training randomness
            random.setstate(rng[0])
            np.random.set_state(rng[1])
            torch.set_rng_state(rng[2])
            env.set_rng_state(rng[3])
        dec = stats.summary("test_decentralised_")
        dec["test_decentralisation_gap"] = summary["test_return_mean"] - dec["test_decentralised_return_mean"]
        exp.logger.log_stats(dec, exp.progress.t_env)
        exp.last_test.update(dec)

    def train(self) -> None:
        exp, p = self.exp, self.exp.progress
        while p.t_env < exp.args.t_max:
            t0 = p.t_env
            batch, _ = exp.collect()
            exp.learn(batch)
            if p.t_env - p.last_test_t >= exp.args.test_interval:
                p.last_test_t = p.t_env  # exp.periodic then skips its own test
                self.test_both()
            exp.periodic(p.t_env - t0)
        if exp.last_test.get("t_env") != p.t_env:  # the final test, which Experiment.finish then skips
            self.test_both()
