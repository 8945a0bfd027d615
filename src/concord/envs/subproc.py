"""One worker process per env; crashed, dead or hung workers are restarted and reported as ``failed``.

A worker that does not answer a step, reset or call within ``step_timeout`` seconds is hung: it is killed (no
polite close) and restarted like a crashed one. A worker that fails while being restarted is one more failure
and is restarted again, until more than ``max_failures`` failures in all, which raises ``EnvWorkerError`` (the
run checkpoints and stops). Workers ignore SIGINT and SIGTERM: a Ctrl-C or a scheduler's SIGTERM to the process
group is handled by the main process, which finishes its round (``utils.interrupts``) and then closes them.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import random
import signal
import traceback
from typing import Any, Callable, Sequence

import numpy as np

from concord.envs.base import EnvObs, MultiAgentEnv, StepResult, VecEnv, stack_obs, step_single
from concord.envs.seeding import env_seeds, restart_seed
from concord.errors import EnvWorkerError

log = logging.getLogger(__name__)

EnvFactory = Callable[[int], MultiAgentEnv]  # seed -> env; must be picklable (a top-level function or partial)


def _obs_of(env: MultiAgentEnv) -> EnvObs:
    return stack_obs([env])


def _worker(remote: Any, make_env: EnvFactory, seed: int) -> None:
    env = None
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    random.seed(seed)  # libraries inside envs (smacv2) draw from the global generators
    np.random.seed(seed % 2**32)
    try:
        env = make_env(seed)
        remote.send(("ok", env.get_env_info()))
        while True:
            cmd, data = remote.recv()
            try:
                if cmd == "step":
                    r, te, tr, info = step_single(env, data)
                    remote.send(("ok", (_obs_of(env), r, te, tr, info)))
                elif cmd == "reset":
                    env.reset()
                    remote.send(("ok", _obs_of(env)))
                elif cmd == "call":
                    name, args = data
                    remote.send(("ok", getattr(env, name)(*args)))
                elif cmd == "close":
                    break
            except Exception:  # reported to the parent, which restarts this worker
                remote.send(("error", traceback.format_exc()))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    except Exception:
        try:
            remote.send(("error", traceback.format_exc()))
        except (BrokenPipeError, OSError):
            pass
    finally:
        if env is not None:
            try:
                env.close()
            except Exception:
                pass
        remote.close()


class WorkerFailure(RuntimeError):
    pass


class SubprocVecEnv(VecEnv):
    """``num_envs`` single envs, each in its own spawned process.

    ``seed`` is the run seed: worker ``i`` builds its env, and seeds its process's ``random`` and ``np.random``,
    with ``seeding.env_seeds(seed, num_envs)[i]``, and with ``seeding.restart_seed(seed, i, r)`` after its
    ``r``-th restart.
    """

    def __init__(self, make_env: EnvFactory, num_envs: int, seed: int, step_timeout: float = 0.0,
                 max_failures: int | None = None) -> None:
        self.make_env = make_env
        self.step_timeout = float(step_timeout)  # 0: wait forever
        self.max_failures = max_failures  # None: a worker that cannot be restarted 3 times in a row is fatal
        self._hung: set[int] = set()
        self.num_envs = num_envs
        self.seed = int(seed)
        self.seeds = env_seeds(self.seed, num_envs)
        self.restarts = [0] * num_envs
        self.ctx = mp.get_context("spawn")
        self.procs: list[Any] = [None] * num_envs
        self.remotes: list[Any] = [None] * num_envs
        self.env_info: dict[str, Any] = {}
        for i in range(num_envs):
            self.env_info = self._start(i, self.seeds[i])

    def _start(self, i: int, seed: int) -> dict[str, Any]:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(child, self.make_env, seed), daemon=True)
        proc.start()
        child.close()
        self.procs[i], self.remotes[i] = proc, parent
        status, payload = self._recv(i)
        if status != "ok":
            raise WorkerFailure(f"env worker {i} failed to start:\n{payload}")
        return payload

    def _recv(self, i: int, timeout: float = 0.0) -> tuple[str, Any]:
        try:
            if timeout > 0 and not self.remotes[i].poll(timeout):
                self._hung.add(i)
                return "error", f"no answer within env_step_timeout={timeout:g} s (worker pid {self.procs[i].pid} hung)"
            return self.remotes[i].recv()
        except (EOFError, ConnectionResetError, BrokenPipeError, OSError) as e:
            return "error", f"worker process died ({type(e).__name__}, exit code {self.procs[i].exitcode})"

    def _send(self, i: int, msg: tuple[str, Any]) -> bool:
        try:
            self.remotes[i].send(msg)
            return True
        except (BrokenPipeError, ConnectionResetError, OSError):
            return False

    def restart(self, i: int, reason: str) -> None:
        """Replace worker ``i`` by a fresh process (a new seed, so it does not replay the failing episode); a
        replacement that fails to start is one more failure, and is replaced in turn."""
        in_a_row = 0
        while True:
            self.restarts[i] += 1
            self.failures += 1
            in_a_row += 1
            log.warning("env worker %d failed and is restarted (restart %d, failure %d): %s", i, self.restarts[i],
                        self.failures, reason.strip().splitlines()[-1] if reason.strip() else reason)
            self._stop_worker(i)
            if self.max_failures is not None and self.failures > self.max_failures:
                raise EnvWorkerError(f"env workers failed {self.failures} times (max_env_failures="
                                     f"{self.max_failures}); stopping")
            try:
                self._start(i, restart_seed(self.seed, i, self.restarts[i]))
                return
            except WorkerFailure as e:
                if self.max_failures is None and in_a_row >= 3:
                    raise
                reason = f"while restarting: {e}"

    def _stop_worker(self, i: int) -> None:
        """End worker ``i``: a worker that raised is still alive and closes its env (e.g. a StarCraft II
        process) first; a hung one is killed at once."""
        proc = self.procs[i]
        if i not in self._hung and proc.is_alive() and self._send(i, ("close", None)):
            proc.join(timeout=10)
        self._hung.discard(i)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)

    def get_env_info(self) -> dict[str, Any]:
        return self.env_info

    def _gather(self, env_ids: Sequence[int], msgs: Sequence[tuple[str, Any]]) -> tuple[list[Any], list[str | None]]:
        sent = [self._send(i, m) for i, m in zip(env_ids, msgs)]
        results: list[Any] = []
        errors: list[str | None] = []
        for i, ok in zip(env_ids, sent):
            status, payload = self._recv(i, self.step_timeout) if ok else ("error", "worker process is gone")
            results.append(payload if status == "ok" else None)
            errors.append(None if status == "ok" else payload)
        return results, errors

    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        results, errors = self._gather(env_ids, [("reset", None)] * len(env_ids))
        for j, (i, err) in enumerate(zip(env_ids, errors)):
            for _ in range(3):  # a worker that cannot even reset is restarted a few times, then it is fatal
                if err is None:
                    break
                self.restart(i, err)
                (res,), (err,) = self._gather([i], [("reset", None)])
                results[j] = res
            if err is not None:
                raise WorkerFailure(f"env worker {i} cannot reset: {err.strip().splitlines()[-1]}")
        return _concat([r for r in results])

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        results, errors = self._gather(env_ids, [("step", a) for a in actions])
        failed = np.array([e is not None for e in errors])
        for i, err in zip(env_ids, errors):
            if err is not None:
                self.restart(i, err)
        # A failed env's slot is filled with its fresh first observation; the runner discards that episode.
        results = [(self.reset([i]), 0.0, False, False, {}) if e is not None else r
                   for i, r, e in zip(env_ids, results, errors)]
        return StepResult(
            obs=_concat([r[0] for r in results]),
            reward=np.array([r[1] for r in results], dtype=np.float32),
            terminated=np.array([r[2] for r in results], dtype=bool),
            truncated=np.array([r[3] for r in results], dtype=bool),
            infos=[r[4] for r in results],
            failed=failed,
        )

    def _call_all(self, name: str, *args: Any) -> list[Any]:
        results, errors = self._gather(range(self.num_envs), [("call", (name, args))] * self.num_envs)
        for i, e in enumerate(errors):
            if e is not None:
                raise WorkerFailure(f"env worker {i} failed in {name}: {e.strip().splitlines()[-1]}")
        return results

    def get_rng_state(self) -> Any:
        return {"envs": self._call_all("get_rng_state"), "restarts": list(self.restarts), "failures": self.failures}

    def set_rng_state(self, state: Any) -> None:
        for i, s in enumerate(state["envs"]):
            results, errors = self._gather([i], [("call", ("set_rng_state", (s,)))])
            if errors[0] is not None:
                raise WorkerFailure(f"env worker {i} failed in set_rng_state: {errors[0]}")
        self.restarts = list(state["restarts"])
        self.failures = state["failures"]

    def get_stats(self) -> dict[str, float]:
        return self._call_all("get_stats")[0]

    def save_replay(self) -> list[str]:
        return [p for p in self._call_all("save_replay") if p]

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def close(self) -> None:
        for i in range(self.num_envs):
            self._send(i, ("close", None))
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()


def _concat(parts: list[EnvObs]) -> EnvObs:
    return EnvObs(
        obs=np.concatenate([p.obs for p in parts]),
        state=np.concatenate([p.state for p in parts]),
        avail_actions=np.concatenate([p.avail_actions for p in parts]),
        extras={k: np.concatenate([p.extras[k] for p in parts]) for k in parts[0].extras},
    )
