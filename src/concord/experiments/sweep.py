"""Executing a sweep: every run of a grid as its own ``main.py`` process, locally N at a time or as Ray tasks.

Each run lives in ``<root>/<sweep>/<run_id>/`` (its ``local_results_path``: sacred runs, checkpoints, tensorboard)
with a ``status.json`` that the sweep keeps: ``done`` runs are skipped by the next invocation; a run that was
interrupted (status ``running`` with no process left, or ``failed``) restarts from its newest checkpoint when it
has one (``checkpoint_path=``), else from scratch; a failed run is retried up to ``max_retries`` times and
reported with its one-line error. A run is a subprocess, so a crash, an out-of-memory kill or a ``ConfigError``
in one run never takes the sweep down.

Stopping a local sweep: Ctrl-C reaches every run (one process group); SIGTERM to the sweep alone (a scheduler,
``kill``) is passed on to every live run. Either way each run saves its checkpoint and exits (its status becomes
``interrupted``, which costs no retry), and the next invocation resumes them.

With Ray (``--ray``: a local instance; ``--ray-address``: a cluster), each attempt is a Ray task requesting the
grid's ``resources`` (default one CPU); the run directories must then be on a filesystem every node sees.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from concord.errors import ConfigError
from concord.experiments.grid import Grid, RunSpec

log = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MAIN = os.path.join(ROOT, "main.py")
STATUS = "status.json"

_live: set[subprocess.Popen] = set()  # the runs now executing locally
_live_lock = threading.Lock()
_stopping = threading.Event()  # set once the sweep was asked to stop: ending runs are "interrupted"


@dataclass
class Outcome:
    """What one attempt of a run ended with."""

    code: int
    result: dict[str, Any] | None  # the final JSON line
    error: str  # the last ``error:`` line (or the last line of stderr) when code != 0
    seconds: float


def run_dir(root: str, spec: RunSpec) -> str:
    return os.path.join(root, spec.sweep, spec.run_id)


def read_status(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, STATUS)
    if not os.path.isfile(path):
        return {"status": "pending", "attempts": 0}
    with open(path) as f:
        return json.load(f)


def write_status(directory: str, status: dict[str, Any]) -> None:
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{STATUS}.tmp")
    with open(tmp, "w") as f:
        json.dump(status, f, indent=2, sort_keys=True)
    os.replace(tmp, os.path.join(directory, STATUS))


def latest_checkpoint(directory: str) -> str | None:
    """The models directory of this run holding the newest checkpoint, if any."""
    models = os.path.join(directory, "models")
    best: tuple[int, str] | None = None
    if os.path.isdir(models):
        for name in os.listdir(models):
            run_models = os.path.join(models, name)
            for step in os.listdir(run_models):
                if step.isdigit() and os.path.isfile(os.path.join(run_models, step, "checkpoint.pt")):
                    if best is None or int(step) > best[0]:
                        best = (int(step), run_models)
    return best[1] if best else None


def command(spec: RunSpec, directory: str, python: str = sys.executable) -> list[str]:
    """The ``main.py`` command of one attempt (resuming from the newest checkpoint when there is one)."""
    cmd = [python, MAIN, f"--config={spec.alg}", f"--env-config={spec.env}", "with", *spec.updates(),
           f"local_results_path={os.path.abspath(directory)}", "progress_bar=False"]
    ck = latest_checkpoint(directory)
    if ck is not None:
        cmd.append(f"checkpoint_path={ck}")
    return cmd


def execute_attempt(cmd: list[str], log_path: str) -> Outcome:
    """Run one attempt to completion; stdout/stderr go to ``log_path`` (the JSON line is read back)."""
    t0 = time.time()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p))
    with open(log_path, "a") as logf:
        logf.write(f"$ {' '.join(cmd)}\n")
        logf.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=logf, text=True, env=env)
        with _live_lock:
            _live.add(proc)
        try:
            stdout, _ = proc.communicate()
        finally:
            with _live_lock:
                _live.discard(proc)
    with open(log_path, "a") as logf:
        logf.write(stdout)
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines and proc.returncode == 0 else None
    error = ""
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = f.read().splitlines()
        errors = [ln for ln in tail if ln.startswith("error:")]
        error = (errors[-1] if errors else (tail[-1] if tail else f"exit code {proc.returncode}"))[:300]
    return Outcome(proc.returncode, result, error, time.time() - t0)


def stop_runs(signum: int, frame: Any = None) -> None:
    """Signal handler of a local sweep: start no new run, pass SIGTERM on to every live run (a Ctrl-C has
    already reached them through the process group, and a second one would skip their checkpoints), wait for
    them to save their checkpoints and exit, then exit with 128 + ``signum``."""
    _stopping.set()
    with _live_lock:
        procs = list(_live)
    log.warning("stopping: %d running run(s) save their checkpoints", len(procs))
    for proc in procs:
        if signum == signal.SIGTERM:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait()
    raise SystemExit(128 + signum)


class Sweep:
    """The runs of a grid under ``root`` and their states."""

    def __init__(self, grid: Grid, root: str = os.path.join("results", "sweeps")) -> None:
        self.grid = grid
        self.root = os.path.abspath(root)

    def pending(self) -> list[RunSpec]:
        """Runs that are not done and have retries left."""
        out = []
        for spec in self.grid.runs:
            st = read_status(run_dir(self.root, spec))
            if st["status"] == "done":
                continue
            if st["status"] == "failed" and st.get("failures", 0) > self.grid.max_retries:
                continue
            out.append(spec)
        return out

    def _start(self, spec: RunSpec) -> tuple[list[str], str]:
        directory = run_dir(self.root, spec)
        st = read_status(directory)
        cmd = command(spec, directory)
        resumed = any(c.startswith("checkpoint_path=") for c in cmd)
        if st["status"] in ("running", "failed", "interrupted"):
            log.info("%s: %s before, %s", spec.run_id, st["status"],
                     "resuming from its newest checkpoint" if resumed else "restarting from scratch")
        st.update(status="running", attempts=st.get("attempts", 0) + 1, started=time.time(),
                  command=cmd, alg=spec.alg, env=spec.env, seed=spec.seed, label=spec.label,
                  settings=[list(kv) for kv in spec.settings])
        write_status(directory, st)
        return cmd, os.path.join(directory, "log.txt")

    def _finish(self, spec: RunSpec, out: Outcome) -> None:
        directory = run_dir(self.root, spec)
        st = read_status(directory)
        st["seconds"] = st.get("seconds", 0.0) + out.seconds
        if out.code == 0:
            st.update(status="done", result=out.result, error="")
            log.info("%s: done in %.0f s", spec.run_id, out.seconds)
        elif _stopping.is_set():
            st.update(status="interrupted", error="")
            log.info("%s: interrupted after %.0f s", spec.run_id, out.seconds)
        else:
            st.update(status="failed", error=out.error, failures=st.get("failures", 0) + 1)
            log.warning("%s: failed (%s)", spec.run_id, out.error)
        write_status(directory, st)

    def run(self, parallel: int | None = None, ray_address: str | None = None, use_ray: bool = False) -> dict[str, Any]:
        """Execute every pending run (retrying failures); return a summary {done, failed: {run_id: error}}."""
        n = parallel or self.grid.parallel
        if n < 1:
            raise ConfigError(f"parallel must be at least 1, got {n}")
        while not _stopping.is_set():
            todo = self.pending()
            if not todo:
                break
            if use_ray or ray_address:
                self._run_ray(todo, ray_address)
            else:
                self._run_local(todo, n)
        return self.summary()

    def _run_local(self, todo: list[RunSpec], n: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        def one(spec: RunSpec) -> None:
            if _stopping.is_set():
                return
            cmd, log_path = self._start(spec)
            self._finish(spec, execute_attempt(cmd, log_path))

        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(one, todo))

    def _run_ray(self, todo: list[RunSpec], address: str | None) -> None:
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        remote = ray.remote(**self.grid.resources)(execute_attempt)
        futures = {}
        for spec in todo:
            cmd, log_path = self._start(spec)
            futures[remote.remote(cmd, log_path)] = spec
        for ref, spec in futures.items():
            self._finish(spec, ray.get(ref))

    def summary(self) -> dict[str, Any]:
        done, failed = [], {}
        for spec in self.grid.runs:
            st = read_status(run_dir(self.root, spec))
            if st["status"] == "done":
                done.append(spec.run_id)
            else:
                failed[spec.run_id] = st.get("error", st["status"])
        return {"sweep": self.grid.name, "runs": len(self.grid.runs), "done": len(done), "failed": failed,
                "root": os.path.join(self.root, self.grid.name)}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ConfigError("--ray needs the optional dependency ray: pip install 'ray[default]'") from e
    return ray


def main(argv: list[str]) -> dict[str, Any]:
    """``sweep FILE [--parallel N] [--ray | --ray-address ADDRESS] [--root DIR]``."""
    import argparse

    from concord.experiments.grid import load_grid

    p = argparse.ArgumentParser(prog="main.py sweep", description="Run every run of an experiment grid.")
    p.add_argument("grid")
    p.add_argument("--parallel", type=int, default=None, help="runs at a time locally (default: the grid's)")
    p.add_argument("--ray", action="store_true", help="run each attempt as a task on a local Ray instance")
    p.add_argument("--ray-address", default=None, help="run on the Ray cluster at this address")
    p.add_argument("--root", default=os.path.join("results", "sweeps"))
    a = p.parse_args(argv)
    sweep = Sweep(load_grid(a.grid), a.root)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop_runs)
    return sweep.run(a.parallel, a.ray_address, a.ray)
