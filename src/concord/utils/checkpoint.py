"""Atomic checkpoints under ``results/models/<run>/<t_env>/`` and finding them again."""
from __future__ import annotations

import os
import shutil
from typing import Any, Callable

import torch

from concord.errors import ConfigError

CHECKPOINT_FILE = "checkpoint.pt"


def save_checkpoint(models_dir: str, t_env: int, payload: dict[str, Any],
                    write_files: Callable[[str], dict[str, Any]] | None = None) -> str:
    """Write into a temporary directory, fsync, then rename: a crash never leaves a half-written checkpoint.

    ``write_files(tmp_dir)`` may write large parts (the replay buffer) as files of their own; what it returns is
    stored in the payload under ``"files"``.
    """
    final = os.path.join(models_dir, str(t_env))
    tmp = os.path.join(models_dir, f".tmp-{t_env}-{os.getpid()}")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    payload = dict(payload, files=write_files(tmp) if write_files is not None else None)
    path = os.path.join(tmp, CHECKPOINT_FILE)
    with open(path, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def find_checkpoint(path: str, load_step: int) -> str:
    """The checkpoint directory in ``path`` closest to ``load_step`` (0: the latest), or ``path`` itself."""
    if os.path.isfile(os.path.join(path, CHECKPOINT_FILE)):
        return path
    if not os.path.isdir(path):
        raise ConfigError(f"checkpoint_path '{path}' does not exist")
    steps = sorted(int(d) for d in os.listdir(path)
                   if d.isdigit() and os.path.isfile(os.path.join(path, d, CHECKPOINT_FILE)))
    if not steps:
        raise ConfigError(f"no checkpoints in '{path}' (expected <t_env>/{CHECKPOINT_FILE} directories)")
    step = steps[-1] if load_step == 0 else min(steps, key=lambda s: (abs(s - load_step), s))
    return os.path.join(path, str(step))


def load_checkpoint(directory: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    # Concord's own files: they hold numpy arrays and RNG states, so a full unpickle is needed.
    return torch.load(os.path.join(directory, CHECKPOINT_FILE), map_location=device, weights_only=False)
