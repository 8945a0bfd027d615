"""The DIALS schedule (Suau et al. 2022, App. C-D): every ``dials_aip_period`` (F) agent steps, collect a GS
dataset under the current joint policy and retrain every AIP (Algorithm 2); in between, every agent collects
rounds in its own IALS (Algorithm 3) and updates its own learner, in the workers of the ``dials`` runner; test,
log and checkpoint with the experiment's shared ``periodic`` (tests run on the GS).

``dials_mode``: ``dials``; ``untrained_dials`` (the AIPs keep their random initial weights, App. D.1); ``gs`` (the
baseline: every agent trains on GS rounds collected with the experiment's shared ``collect``/``learn``).
``t_env`` counts each agent's training steps (every agent takes the same number: fixed horizons); GS steps spent on
AIP datasets are not counted, as in the paper's 4M-step budget.

Design: the trainer installs ``DialsAgents`` as the experiment's learner, so ``Experiment``'s checkpoints hold
every agent's learner, every AIP and the schedule position (``concord.dials.agents``). It is a real learner of the
joint controller (its ``update`` is the ``gs`` baseline's, through the experiment's ``learn`` with its divergence
checks), not a stand-in: a trainer-owned checkpoint hook instead would leave the experiment an unused joint PPO
learner, checkpointed beside the agents' real state, and ``gs`` would have to bypass ``learn``. Logged per phase:
cumulative wall-clock seconds of GS data collection, AIP training, agent training and evaluation
(``dials_seconds_*``), the AIPs' cross-entropy on fresh GS data before each retraining and on the held-out split
after it (``aip_ce_fresh``, ``aip_ce_test``), peak memory per worker and in total (``dials_peak_rss_mb_*``), and
the GS test return (``test_return_mean``, the mean over agents of their episodic returns).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from concord.dials.agents import DialsAgents
from concord.dials.group import peak_rss_mb
from concord.registry import register_trainer
from concord.trainers.base import Trainer

if TYPE_CHECKING:
    from concord.run import Experiment


@register_trainer("dials")
class DialsTrainer(Trainer):
    def __init__(self, experiment: "Experiment") -> None:
        super().__init__(experiment)
        # runner=dials, agent_shared=False and obs_agent_id=False are required by config/trainers/dials.yaml
        self.agents = DialsAgents(experiment)
        experiment.learner = self.agents
        experiment.runner.before_rollout = self.agents.sync_actors

    def _record(self, stats: dict[str, float], latest: bool = False) -> None:
        """Into the statistics of the next log line: appended (averaged), or ``latest`` (cumulative values)."""
        for k, v in stats.items():
            if latest:
                self.exp.pending_stats[k] = [v]
            else:
                self.exp.pending_stats.setdefault(k, []).append(v)

    def train(self) -> None:
        exp, a, p, ag = self.exp, self.exp.args, self.exp.progress, self.agents
        while p.t_env < a.t_max:
            if a.dials_mode == "dials" and (ag.last_aip_t is None or p.t_env - ag.last_aip_t >= a.dials_aip_period):
                self._record(ag.retrain_aips(p.t_env))
            t0 = p.t_env
            if a.dials_mode == "gs":
                batch, _ = exp.collect()
                exp.learn(batch)
                rss = [peak_rss_mb()]
            else:
                steps, episodes, stats, rss = ag.train_local(a.dials_rounds_per_sync, p.t_env)
                p.t_env += steps
                p.episode += len(episodes.returns)
                exp.pending_episodes.extend(episodes)
                self._record(stats)
            main_rss = peak_rss_mb()
            self._record({"dials_seconds_collect": ag.seconds["collect"], "dials_seconds_aip": ag.seconds["aip"],
                          "dials_seconds_agents": ag.seconds["agents"],
                          "dials_seconds_eval": exp.runner.eval_seconds,
                          "dials_peak_rss_mb_worker_max": max(rss),
                          "dials_peak_rss_mb_total": main_rss + (sum(rss) if a.dials_mode != "gs" else 0.0)},
                         latest=True)
            exp.periodic(p.t_env - t0)
