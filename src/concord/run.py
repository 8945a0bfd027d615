"""The training loop: collect rounds of episodes, train, test, log, checkpoint; and evaluation of checkpoints."""
from __future__ import annotations

import datetime
import json
import logging
import os
import copy
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import torch

from concord.config import to_namespace
from concord.errors import ConfigError, EnvWorkerError
from concord.registry import LEARNERS, MACS, RUNNERS, TRAINERS
from concord.runners.runner import EpisodeStats
from concord.utils.checkpoint import find_checkpoint, has_data_files, load_checkpoint, save_checkpoint
from concord.utils.divergence import DivergenceError, describe, nonfinite_parameters, nonfinite_stats
from concord.utils.interrupts import Interrupted, StopRequests
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
        self.sacred_dir: str | None = None
        self.sacred_run: Any = None
        self.logger = Logger(self.tb_dir)

        self.runner = RUNNERS.get(args.runner)(args, args.seed)
        env_info = self.env_info = self.runner.env_info
        log.info("env %s: n_agents=%d n_actions=%d obs_shape=%s state_shape=%s episode_limit=%d extras=%s",
                 args.env, env_info["n_agents"], env_info["n_actions"], env_info["obs_shape"],
                 env_info["state_shape"], env_info["episode_limit"], env_info.get("extras", {}))
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
        self.stop = StopRequests()  # SIGINT/SIGTERM requests, active while training
        self.last_checkpoint: tuple[int, str] | None = None  # (t_env, directory) written or resumed from
        self.resumed_from: dict[str, Any] | None = None

        if sacred_run is not None:
            self.attach(sacred_run)

    def attach(self, sacred_run: Any) -> None:
        """Record into ``sacred_run`` from now on. The command line builds the experiment first, so that bad env
        arguments or a replay buffer that cannot fit stop before sacred creates a run, and attaches it after."""
        self.sacred_run = sacred_run
        self.sacred_dir = getattr(sacred_run.observers[0], "dir", None) if sacred_run.observers else None
        self.logger.sacred_run = sacred_run
        sacred_run.info["env_info"] = self.env_info  # sizes and, for StarCraft II, the game version

    # --- checkpoints --------------------------------------------------------------------------
    def rng_state(self, env: bool = True) -> dict[str, Any]:
        """Every random stream of the run (python, numpy, torch, CUDA, and the envs' unless ``env=False``)."""
        return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "env": self.runner.vec_env.get_rng_state() if env else None}

    def set_rng_state(self, rng: Mapping[str, Any]) -> None:
        """Restore :meth:`rng_state` (the envs' streams only if it holds them)."""
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        if rng["env"] is not None:
            self.runner.vec_env.set_rng_state(rng["env"])

    def save(self) -> str:
        """Checkpoint the run as it is now (the progress counters are not changed: the save schedule of a
        resumed run is that of the uninterrupted one)."""
        p, a = self.progress, self.args
        try:
            rng = self.rng_state()
        except Exception as e:  # a dead env worker (the failure cap was reached): keep the rest
            log.warning("env RNG state not saved (%s): a run resumed from this checkpoint re-seeds its envs",
                        str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__)
            rng = self.rng_state(env=False)
        payload = {
            "progress": asdict(p),
            "pending_stats": self.pending_stats,
            "pending_episodes": self.pending_episodes,
            "learner": self.learner.state_dict(),
            "rng": rng,
            "config": self.config,
            "sacred_dir": self.sacred_dir,
        }
        t0 = time.perf_counter()
        path = save_checkpoint(self.models_dir, p.t_env, payload,
                               self.learner.save_files if a.checkpoint_buffer else None,
                               keep=a.keep_checkpoints, keep_data=a.buffer_checkpoints)
        log.info("checkpoint saved: %s (%.2f s)", path, time.perf_counter() - t0)
        self.last_checkpoint = (p.t_env, path)
        return path

    def load(self, path: str, load_step: int) -> None:
        """Restore a checkpoint (the newest intact one in ``path`` closest to ``load_step``)."""
        a = self.args
        directory = find_checkpoint(path, load_step)
        ck = load_checkpoint(directory, self.device)
        self.learner.load_state_dict(ck["learner"])
        self.progress = Progress(**ck["progress"])
        self.pending_stats = ck["pending_stats"]
        self.pending_episodes = ck["pending_episodes"]
        if ck["files"] is not None and not a.evaluate:
            if has_data_files(directory):
                self.learner.load_files(directory, ck["files"])
            else:
                log.warning("checkpoint %s keeps no replay buffer (buffer_checkpoints keeps it only with the "
                            "newest ones): resuming with an empty buffer, not an exact continuation", directory)
        rng = dict(ck["rng"])
        saved = ck.get("config", {})
        env_rng, rng["env"] = rng["env"], None
        self.set_rng_state(rng)
        self._restore_env_rng(env_rng, saved)
        self.last_checkpoint = (self.progress.t_env, directory)
        if ck.get("sacred_dir"):
            self.resumed_from = {"sacred_dir": ck["sacred_dir"], "t_env": self.progress.t_env, "checkpoint": directory}
            if self.sacred_run is not None:
                self.sacred_run.info["resumed_from"] = self.resumed_from
        log.info("resumed from %s at t_env=%d", directory, self.progress.t_env)

    def _restore_env_rng(self, state: Any, saved: Mapping[str, Any]) -> None:
        """The envs' streams from a checkpoint; with another number of envs (or none saved) the envs keep their
        seeds from ``seed`` (deterministic, but not the trained run's continuation), with a warning."""
        a = self.args
        was = f"runner={saved.get('runner')} batch_size_run={saved.get('batch_size_run')}"
        now = f"runner={a.runner} batch_size_run={a.batch_size_run}"
        if state is not None and saved.get("batch_size_run", a.batch_size_run) == a.batch_size_run:
            try:
                self.runner.vec_env.set_rng_state(state)
                return
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
                reason = f"it does not fit these envs ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        else:
            reason = "the checkpoint has none" if state is None else f"the checkpoint was trained with {was}"
        log.warning("env RNG state not restored: %s; this run (%s) keeps the env seeds drawn from seed=%d",
                    reason, now, a.seed)

    # --- phases ---------------------------------------------------------------------------------
    def test(self) -> dict[str, float]:
        """Greedy test episodes; they draw no training randomness (every stream is restored afterwards), so the
        training of a run does not depend on when or how much it tests."""
        stats = EpisodeStats()
        n_rounds = max(1, -(-self.args.test_nepisode // self.runner.n_envs))
        rng = self.rng_state()
        try:
            for _ in range(n_rounds):
                _, s = self.runner.run(self.mac, self.scheme, self.progress.t_env, test_mode=True)
                stats.extend(s)
        finally:
            failures = self.runner.vec_env.failures
            self.set_rng_state(rng)
            self.runner.vec_env.failures = max(failures, self.runner.vec_env.failures)  # failures stay counted
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
        """Hand a round to the learner (timed; its statistics are logged at the next log line). A non-finite
        loss, gradient norm or parameter stops the run (``on_nonfinite: stop``) or undoes the update (``skip``)."""
        before = self.learner.n_updates
        undo = copy.deepcopy(self.learner.state_dict()) if self.args.on_nonfinite == "skip" else None
        with self.clock.update:
            stats = self.learner.update(batch, self.progress.t_env, self.progress.episode)
        self.clock.n_updates += self.learner.n_updates - before
        bad_stats = nonfinite_stats(stats)
        bad_params = nonfinite_parameters(self.learner.networks()) if bad_stats or stats else []
        if not bad_stats and not bad_params:
            _collect(self.pending_stats, stats)
            return
        what = describe(bad_stats, bad_params)
        if undo is not None:
            self.learner.load_state_dict(undo)
            self.pending_stats.setdefault("nonfinite_skipped", []).append(1.0)
            log.warning("non-finite update at t_env=%d (%s): undone (on_nonfinite=skip)", self.progress.t_env, what)
            return
        last = (f"the last good checkpoint is {self.last_checkpoint[1]}" if self.last_checkpoint
                else "no checkpoint was written")
        raise DivergenceError(f"training diverged at t_env={self.progress.t_env}: {what}; stopped without "
                              f"checkpointing these weights (on_nonfinite=stop); {last}")

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
        if self.stop.signum is not None:
            self._stop_on_signal(self.stop.signum)

    def _stop_on_signal(self, signum: int) -> None:
        """Checkpoint at this round boundary (unless just done) and raise ``Interrupted``."""
        p = self.progress
        path = None
        if self.args.save_model:
            path = self.last_checkpoint[1] if self.last_checkpoint and self.last_checkpoint[0] == p.t_env else self.save()
        where = (f"checkpoint {path}; resume with checkpoint_path={self.models_dir}" if path
                 else "no checkpoint (save_model=False)")
        raise Interrupted(signum, f"{signal.Signals(signum).name}: stopped at t_env={p.t_env} after finishing the "
                                  f"round; {where}")

    def finish(self) -> dict[str, Any]:
        """Checkpoint the final state (unless just done), then flush pending statistics and test: the checkpoint
        holds the state an uninterrupted longer run has here, so extending a finished run is exact."""
        a, p = self.args, self.progress
        if a.save_model and p.last_save_t != p.t_env:
            self.save()
        if p.last_log_t != p.t_env:
            self._log_pending(self.clock)
        if self.last_test.get("t_env") != p.t_env:
            self.test()
        return self.last_test

    def train(self) -> dict[str, Any]:
        """Run the configured trainer to ``t_max``, stopping cleanly on SIGINT/SIGTERM (see
        ``utils.interrupts``); an env-worker failure past the limit leaves a checkpoint."""
        self.clock = Clock(self.progress.t_env)
        bar = _progress_bar(self.args, self.progress.t_env)
        self._bar = bar
        with self.stop:
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
        # under the trained run: results/runs/<trained run>/evaluation_<t_env>.json
        trained = os.path.basename(os.path.dirname(os.path.abspath(self.last_checkpoint[1])))
        out_dir = os.path.join(self.args.local_results_path, "runs", trained)
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"evaluation_{self.progress.t_env}.json")
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


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its live child processes (env workers), so that
    ``steps_per_cpu_second`` is comparable between in-process and subprocess runners."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:  # exited meanwhile
            pass
    return total


class Clock:
    """Where the time goes: env steps per wall second, per CPU second of the main process and of the whole process
    tree (main + env workers), rollout cost per step, cost per update."""

    def __init__(self, t_env: int) -> None:
        self.rollout, self.update = _Timer(), _Timer()
        self.n_updates = 0
        self.t0, self.wall0, self.cpu0, self.tree0 = t_env, time.perf_counter(), time.process_time(), tree_cpu_seconds()

    def stats(self, t_env: int) -> dict[str, float]:
        steps = max(t_env - self.t0, 1)
        return {
            "steps_per_second": steps / max(time.perf_counter() - self.wall0, 1e-9),
            "steps_per_cpu_second": steps / max(time.process_time() - self.cpu0, 1e-9),
            "steps_per_tree_cpu_second": steps / max(tree_cpu_seconds() - self.tree0, 1e-9),
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


def run(config: Mapping[str, Any], sacred_run: Any = None, exp: Experiment | None = None) -> dict[str, Any]:
    """Train (or evaluate) as configured, with ``exp`` if it was built already; return the last test statistics
    and where the results went."""
    if config["evaluate"] and not config["checkpoint_path"]:
        raise ConfigError("evaluate=True needs checkpoint_path (there is nothing to evaluate)")
    if exp is None:
        exp = Experiment(config, sacred_run)
    elif sacred_run is not None:
        exp.attach(sacred_run)
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
