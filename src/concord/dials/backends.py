"""Where the DIALS workers (``AgentGroup``) run: ``processes`` (default; one stdlib ``multiprocessing`` process per
group, spawned), ``ray`` (one Ray actor per group, on the cluster at ``ray_address`` or a local Ray instance; Ray is
an optional extra, imported only here and only when selected) or ``inline`` (in this process, for debugging).

Every backend has the same interface: ``call(method, args_per_group)`` runs ``AgentGroup.method`` on every group at
once and returns their results in group order. Results are always copies (pickled through a pipe, fetched from Ray,
or deep-copied inline), so the three backends give identical results for the same seeds.

Interrupts: a terminal's Ctrl-C sends SIGINT to the whole foreground process group, the ``processes`` workers
included. The workers ignore it, so that the main process (``concord.utils.interrupts``) can finish its round,
fetch every agent's state from the still-running workers and checkpoint; they stop when the main process closes
the backend (or its pipe end, if it dies).
"""
from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
import traceback
from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence

from concord.dials.group import AgentGroup
from concord.errors import ConfigError


class Backend(ABC):
    @abstractmethod
    def call(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``AgentGroup.method(*args[g])`` on every group ``g`` in parallel; the results in group order."""

    def close(self) -> None:
        pass


class InlineBackend(Backend):
    def __init__(self, config: Mapping[str, Any], groups: Sequence[list[int]]) -> None:
        self.groups = [AgentGroup(config, g) for g in groups]

    def call(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        return [_through_pipe(getattr(g, method)(*_through_pipe(a))) for g, a in zip(self.groups, args)]


def _through_pipe(x: Any) -> Any:
    """What a pipe delivers: a pickled copy (contiguous arrays, no shared tensors)."""
    return pickle.loads(pickle.dumps(x))


def _serve(conn: Any, config: Mapping[str, Any], agent_ids: list[int]) -> None:
    """A worker process: build the group, then answer ``(method, args)`` requests until ``None`` (or the main
    process's end of the pipe closes). SIGINT is the main process's to handle (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since the spawn: see ProcessBackend
    try:
        group = AgentGroup(config, agent_ids)
        conn.send(("ok", None))
    except Exception:  # noqa: BLE001 - reported to the main process
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        try:
            msg = conn.recv()
        except EOFError:  # the main process is gone
            return
        if msg is None:
            return
        method, args = msg
        try:
            conn.send(("ok", getattr(group, method)(*args)))
        except Exception:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))


class ProcessBackend(Backend):
    def __init__(self, config: Mapping[str, Any], groups: Sequence[list[int]]) -> None:
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for g in groups:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_serve, args=(child, dict(config), list(g)), daemon=True)
            # a spawned child inherits the signal mask: SIGINT stays blocked in it until _serve ignores it (a
            # Ctrl-C while it imports torch would kill it), and is held here until the child has started
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                p.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self.conns.append(parent)
            self.procs.append(p)
        self._gather()

    def _gather(self) -> list[Any]:
        out = []
        for g, (c, p) in enumerate(zip(self.conns, self.procs)):
            try:
                status, value = c.recv()
            except EOFError:
                p.join(timeout=5)
                raise RuntimeError(f"DIALS worker {g} (pid {p.pid}) died (exit code {p.exitcode}) without "
                                   f"answering") from None
            if status != "ok":
                raise RuntimeError(f"DIALS worker failed:\n{value}")
            out.append(value)
        return out

    def call(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        for c, a in zip(self.conns, args):
            c.send((method, a))
        return self._gather()

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(None)
            except (BrokenPipeError, OSError):
                pass
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()


class RayBackend(Backend):
    def __init__(self, config: Mapping[str, Any], groups: Sequence[list[int]], address: str) -> None:
        try:
            import ray
        except ImportError as e:
            raise ConfigError("dials_backend=ray needs Ray: pip install 'ray'") from e
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        actor = ray.remote(num_cpus=1)(AgentGroup)
        self.actors = [actor.remote(dict(config), list(g)) for g in groups]
        ray.get([a.ping.remote() for a in self.actors])

    def call(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        return self.ray.get([getattr(a, method).remote(*x) for a, x in zip(self.actors, args)])

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)


def make_backend(name: str, config: Mapping[str, Any], groups: Sequence[list[int]], ray_address: str = "") -> Backend:
    if name == "processes":
        return ProcessBackend(config, groups)
    if name == "ray":
        return RayBackend(config, groups, ray_address)
    if name == "inline":
        return InlineBackend(config, groups)
    raise ConfigError(f"unknown dials_backend '{name}'; known: processes, ray, inline")
