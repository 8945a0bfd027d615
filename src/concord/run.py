"""The training loop: collect rounds of episodes, train, test, log, checkpoint; and evaluation of checkpoints."""
from __future__ import annotations

import datetime
import json
import logging
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import torch

from concord.config import to_namespace
from concord.errors import EnvWorkerError
from concord.registry import LEARNERS, MACS, RUNNERS, TRAINERS
from concord.runners.runner import EpisodeStats
from concord.utils.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from concord.utils.logger import Logger

log = logging.getLogger("concord")


@dataclass
class Progress:
    """Loop counters; saved in checkpoints so that a resumed run continues at the same point."""

    t_env: int = 0
    episode: int = 0
    last_test_t: int = -(10**12)
    last_log_t: int = 0
    last_save_t: int = 0


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def select_device(args: SimpleNamespace) -> torch.device:
    if args.use_cuda and not torch.cuda.is_available():
        log.warning("use_cuda=True but CUDA is not available; running on CPU")
    return torch.device("cuda" if args.use_cuda and torch.cuda.is_available() else "cpu")


def run_name(args: SimpleNamespace) -> str:
    env_tag = args.env_args.get("map_name") or args.env_args.get("key") or args.env
    env_tag = str(env_tag).replace(":", "_").replace("/", "_")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    label = f"_{args.label}" if args.label else ""
    return f"{args.name}_{args.env}_{env_tag}{label}_seed{args.seed}_{stamp}"


class Experiment:
    """Everything one run owns: env runner, controller, learner (with its data), trainer, logger, counters."""

    def __init__(self, config: Mapping[str, Any], sacred_run: Any = None) -> None:
        self.config = dict(config)
        args = self.args = to_namespace(config)
        torch.set_num_threads(args.torch_threads)
        random.seed(args.seed)
        np.random.seed(args.seed % 2**32)
        torch.manual_seed(args.seed)
        self.device = select_device(args)
        self.name = run_name(args)
        res = args.local_results_path
        self.models_dir = os.path.join(res, "models", self.name)
        self.tb_dir = os.path.join(res, "tb", self.name) if args.use_tensorboard else None
        self.sacred_dir = getattr(sacred_run.observers[0], "dir", None) if sacred_run and sacred_run.observers else None
        self.logger = Logger(self.tb_dir, sacred_run)

        self.runner = RUNNERS.get(args.runner)(args, args.seed)
        env_info = self.env_info = self.runner.env_info
        log.info("env %s: n_agents=%d n_actions=%d obs_shape=%s state_shape=%s episode_limit=%d extras=%s",
                 args.env, env_info["n_agents"], env_info["n_actions"], env_info["obs_shape"],
                 env_info["state_shape"], env_info["episode_limit"], env_info.get("extras", {}))
        if sacred_run is not None:
            sacred_run.info["env_info"] = env_info  # sizes and, for StarCraft II, the game version
        self.mac = MACS.get(args.mac)(env_info, args, self.device)
        self.learner = LEARNERS.get(args.learner)(self.mac, env_info, args, self.device)
        for net_name, net in self.learner.networks().items():
            log.info("parameters: %s %s = %d", net_name, type(net).__name__, count_params(net))
        self.scheme = self.learner.scheme  # the env's fields, the controller's per-step outputs, the learner's own
        self.trainer = TRAINERS.get(args.trainer)(self)
        self.progress = Progress()
        self.last_test: dict[str, float] = {}
        # statistics collected since the last log line; checkpointed so that a resumed run logs the same values
        self.pending_stats: dict[str, list[float]] = {}
        self.pending_episodes = EpisodeStats()
        self.clock = Clock(0)
        self._bar: Any = None

    # --- checkpoints --------------------------------------------------------------------------
    def save(self) -> str:
        p = self.progress
        payload = {
            "progress": asdict(p),
            "pending_stats": self.pending_stats,
            "pending_episodes": self.pending_episodes,
            "learner": self.learner.state_dict(),
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    "env": self.runner.vec_env.get_rng_state()},
            "config": self.config,
        }
        path = save_checkpoint(self.models_dir, p.t_env, payload,
                               self.learner.save_files if self.args.checkpoint_buffer else None)
        log.info("checkpoint saved: %s", path)
        return path

    def load(self, path: str, load_step: int) -> None:
        directory = find_checkpoint(path, load_step)
        ck = load_checkpoint(directory, self.device)
        self.learner.load_state_dict(ck["learner"])
        self.progress = Progress(**ck["progress"])
        self.pending_stats = ck["pending_stats"]
        self.pending_episodes = ck["pending_episodes"]
        if ck["files"] is not None:
            self.learner.load_files(directory, ck["files"])
        rng = ck["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.runner.vec_env.set_rng_state(rng["env"])
        log.info("resumed from %s at t_env=%d", directory, self.progress.t_env)

    # --- phases ---------------------------------------------------------------------------------
    def test(self) -> dict[str, float]:
        stats = EpisodeStats()
        n_rounds = max(1, -(-self.args.test_nepisode // self.runner.n_envs))
        for _ in range(n_rounds):
            _, s = self.runner.run(self.mac, self.scheme, self.progress.t_env, test_mode=True)
            stats.extend(s)
        summary = stats.summary("test_")
        self.logger.log_stats(summary, self.progress.t_env)
        self.last_test = {"t_env": self.progress.t_env, **summary}
        return summary

    def collect(self) -> tuple[Any, EpisodeStats]:
        """One round of ``batch_size_run`` training episodes; advances the counters."""
        p = self.progress
        with self.clock.rollout:
            batch, ep_stats = self.runner.run(self.mac, self.scheme, p.t_env)
        p.t_env += int(batch.episode_lengths().sum())
        p.episode += batch.n_episodes
        self.pending_episodes.extend(ep_stats)
        return batch, ep_stats

    def learn(self, batch: Any) -> None:
        """Hand a round to the learner (timed; its statistics are logged at the next log line)."""
        before = self.learner.n_updates
        with self.clock.update:
            _collect(self.pending_stats, self.learner.update(batch, self.progress.t_env, self.progress.episode))
        self.clock.n_updates += self.learner.n_updates - before

    def periodic(self, steps: int) -> None:
        """Test, log and checkpoint when their intervals have passed, and advance the progress bar by ``steps``
        (every trainer calls this after each round it collected)."""
        a, p = self.args, self.progress
        if p.t_env - p.last_test_t >= a.test_interval:
            p.last_test_t = p.t_env
            self.test()
        if p.t_env - p.last_log_t >= a.log_interval:
            self._log_pending(self.clock)
        if a.save_model and p.t_env - p.last_save_t >= a.save_model_interval:
            p.last_save_t = p.t_env
            self.save()
        if self._bar is not None:
            self._bar.update(steps)
            self._bar.set_postfix(_bar_postfix(self.last_test), refresh=False)

    def finish(self) -> dict[str, Any]:
        """Flush pending statistics, test and checkpoint the final state (unless just done)."""
        a, p = self.args, self.progress
        if p.last_log_t != p.t_env:
            self._log_pending(self.clock)
        if self.last_test.get("t_env") != p.t_env:
            self.test()
        if a.save_model and p.last_save_t != p.t_env:
            p.last_save_t = p.t_env
            self.save()
        return self.last_test

    def train(self) -> dict[str, Any]:
        """Run the configured trainer to ``t_max``; an env-worker failure past the limit leaves a checkpoint."""
        self.clock = Clock(self.progress.t_env)
        bar = _progress_bar(self.args, self.progress.t_env)
        self._bar = bar
        try:
            self.trainer.train()
        except EnvWorkerError:
            if self.args.save_model:
                self.save()
            raise
        finally:
            if bar is not None:
                bar.close()
        return self.finish()

    def _log_pending(self, clock: "Clock") -> None:
        """Log the statistics gathered since the last log line and print a console summary."""
        p = self.progress
        p.last_log_t = p.t_env
        if self.pending_episodes.returns:
            self.logger.log_stats(self.pending_episodes.summary(""), p.t_env)
        self.logger.log_stats({k: float(np.mean(v)) for k, v in self.pending_stats.items()}, p.t_env)
        self.logger.log_stats({**self.mac.stats(), "env_failures": self.runner.env_failures,
                               **clock.stats(p.t_env)}, p.t_env)
        self.pending_stats.clear()
        self.pending_episodes.clear()
        self.logger.summarise(p.t_env, p.episode)

    def evaluate(self) -> dict[str, Any]:
        stats = self.test()
        result = {"t_env": self.progress.t_env, "checkpoint": self.args.checkpoint_path, **stats}
        replays = self.runner.vec_env.save_replay() if self.args.save_replay else []
        if replays:
            result["replays"] = replays
            log.info("replays written: %s", ", ".join(replays))
        out_dir = os.path.join(self.args.local_results_path, "runs", self.name)
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "evaluation.json")
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
        log.info("evaluation written to %s", path)
        return result

    def close(self) -> None:
        self.runner.close()
        self.logger.close()


def _collect(into: dict[str, list[float]], stats: Mapping[str, float]) -> None:
    for k, v in stats.items():
        into.setdefault(k, []).append(v)


class _Timer:
    """Accumulated wall-clock time of a ``with`` block."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self.seconds += time.perf_counter() - self._t0


class Clock:
    """Where the time goes: env steps per wall and per CPU second, rollout cost per step, cost per update."""

    def __init__(self, t_env: int) -> None:
        self.rollout, self.update = _Timer(), _Timer()
        self.n_updates = 0
        self.t0, self.wall0, self.cpu0 = t_env, time.perf_counter(), time.process_time()

    def stats(self, t_env: int) -> dict[str, float]:
        steps = max(t_env - self.t0, 1)
        return {
            "steps_per_second": steps / max(time.perf_counter() - self.wall0, 1e-9),
            "steps_per_cpu_second": steps / max(time.process_time() - self.cpu0, 1e-9),
            "rollout_ms_per_step": 1000 * self.rollout.seconds / steps,
            "update_ms": 1000 * self.update.seconds / max(self.n_updates, 1),
        }


def _progress_bar(args: SimpleNamespace, initial: int) -> Any:
    if not args.progress_bar or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=args.t_max, initial=initial, unit="step", unit_scale=True, dynamic_ncols=True)


def _bar_postfix(last_test: Mapping[str, float]) -> dict[str, str]:
    out = {}
    if "test_return_mean" in last_test:
        out["test_return"] = f"{last_test['test_return_mean']:.3g}"
    if "test_battle_won_mean" in last_test:
        out["win"] = f"{last_test['test_battle_won_mean']:.2f}"
    return out


def run(config: Mapping[str, Any], sacred_run: Any = None) -> dict[str, Any]:
    """Train (or evaluate) as configured; return the last test statistics and where the results went."""
    exp = Experiment(config, sacred_run)
    try:
        if exp.args.checkpoint_path:
            exp.load(exp.args.checkpoint_path, exp.args.load_step)
        result = exp.evaluate() if exp.args.evaluate else exp.train()
    finally:
        exp.close()
    out = dict(result)
    out["results_dir"] = exp.sacred_dir
    out["models_dir"] = exp.models_dir if exp.args.save_model else None
    out["tb_dir"] = exp.tb_dir
    return out
