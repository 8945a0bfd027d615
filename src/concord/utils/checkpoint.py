"""Atomic, verified checkpoints under ``results/models/<run>/<t_env>/`` and finding an intact one again.

A checkpoint directory holds ``checkpoint.pt`` (the payload), ``config.json`` (the run's config, readable without
unpickling anything), the learner's data files (the replay buffer's ``buffer_*.npy``) and, written last,
``manifest.json`` with every file's size and SHA-256. It is written into ``.tmp-<t_env>-<pid>/`` and renamed
into place, so a crash never leaves a half-written checkpoint under a step's name; stale temporary directories
of earlier crashes are removed by the next save. Loading verifies the manifest and falls back, with a warning,
to the newest intact checkpoint. Retention: ``keep`` (``keep_checkpoints``) bounds how many checkpoints are
kept, ``keep_data`` (``buffer_checkpoints``) how many of the newest keep their data files (older ones keep
networks, optimisers and counters: they still evaluate, and resume with an empty replay buffer).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from typing import Any, Callable

import torch

from concord.errors import ConfigError

log = logging.getLogger("concord")

CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
TMP_PREFIX = ".tmp-"
_verified: set[tuple[Any, ...]] = set()  # directories (with their files' sizes and mtimes) checked by this process


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: str, data: Any) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def checkpoint_steps(models_dir: str) -> list[int]:
    """The ``t_env`` of every checkpoint directory in ``models_dir``, ascending (intact or not)."""
    if not os.path.isdir(models_dir):
        return []
    return sorted(int(d) for d in os.listdir(models_dir)
                  if d.isdigit() and os.path.isfile(os.path.join(models_dir, d, CHECKPOINT_FILE)))


def remove_stale_tmp(models_dir: str) -> None:
    """Delete temporary directories left by saves that never finished (a run owns its models directory)."""
    if not os.path.isdir(models_dir):
        return
    for d in os.listdir(models_dir):
        if d.startswith(TMP_PREFIX):
            log.warning("removing the unfinished checkpoint %s", os.path.join(models_dir, d))
            shutil.rmtree(os.path.join(models_dir, d), ignore_errors=True)


def save_checkpoint(models_dir: str, t_env: int, payload: dict[str, Any],
                    write_files: Callable[[str], dict[str, Any]] | None = None, keep: int = 0,
                    keep_data: int = 0) -> str:
    """Write a checkpoint atomically (temp dir, fsync, manifest last, rename), then apply retention.

    ``write_files(tmp_dir)`` may write large parts (the replay buffer) as files of their own; what it returns is
    stored in the payload under ``"files"``. ``keep``/``keep_data``: see the module docstring (0: all).
    """
    os.makedirs(models_dir, exist_ok=True)
    remove_stale_tmp(models_dir)
    final = os.path.join(models_dir, str(t_env))
    tmp = os.path.join(models_dir, f"{TMP_PREFIX}{t_env}-{os.getpid()}")
    os.makedirs(tmp)
    payload = dict(payload, files=write_files(tmp) if write_files is not None else None)
    data_files = sorted(os.listdir(tmp))
    with open(os.path.join(tmp, CHECKPOINT_FILE), "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    if "config" in payload:
        _write_json(os.path.join(tmp, CONFIG_FILE), payload["config"])
    for name in data_files:  # np.save does not fsync
        with open(os.path.join(tmp, name), "rb+") as f:
            os.fsync(f.fileno())
    files = {name: {"size": os.path.getsize(os.path.join(tmp, name)), "sha256": _sha256(os.path.join(tmp, name))}
             for name in sorted(os.listdir(tmp))}
    _write_json(os.path.join(tmp, MANIFEST_FILE), {"t_env": t_env, "files": files, "data_files": data_files,
                                                   "data_dropped": False})
    _fsync_dir(tmp)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(models_dir)
    apply_retention(models_dir, keep, keep_data)
    return final


def _read_manifest(directory: str) -> dict[str, Any] | None:
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def drop_data_files(directory: str) -> None:
    """Delete a checkpoint's data files (the replay buffer) and record that in its manifest."""
    manifest = _read_manifest(directory)
    if manifest is None or manifest.get("data_dropped") or not manifest.get("data_files"):
        return
    for name in manifest["data_files"]:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            os.remove(path)
        manifest["files"].pop(name, None)
    manifest["data_dropped"] = True
    tmp = os.path.join(directory, MANIFEST_FILE + ".tmp")
    _write_json(tmp, manifest)
    os.replace(tmp, os.path.join(directory, MANIFEST_FILE))


def apply_retention(models_dir: str, keep: int, keep_data: int) -> None:
    """Keep the newest ``keep`` checkpoints and the data files of the newest ``keep_data`` (0: all)."""
    steps = checkpoint_steps(models_dir)
    if keep > 0:
        for s in steps[:-keep]:
            shutil.rmtree(os.path.join(models_dir, str(s)), ignore_errors=True)
        steps = steps[-keep:]
    if keep_data > 0:
        for s in steps[:-keep_data]:
            drop_data_files(os.path.join(models_dir, str(s)))


def verify_checkpoint(directory: str) -> str | None:
    """What is wrong with the checkpoint in ``directory`` (a missing, truncated or altered file), or None.

    A checkpoint without a manifest (written before manifests existed) is accepted unverified."""
    if not os.path.isfile(os.path.join(directory, CHECKPOINT_FILE)):
        return f"no {CHECKPOINT_FILE}"
    manifest_path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isfile(manifest_path):
        return None
    key = (os.path.abspath(directory), *sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                                               for e in os.scandir(directory)))
    if key in _verified:
        return None
    try:
        manifest = _read_manifest(directory)
    except (OSError, ValueError) as e:
        return f"unreadable {MANIFEST_FILE} ({e})"
    for name, meta in manifest["files"].items():
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            return f"{name} is missing"
        size = os.path.getsize(path)
        if size != meta["size"]:
            return f"{name} has {size} bytes, the manifest says {meta['size']}"
        if _sha256(path) != meta["sha256"]:
            return f"{name} does not match its checksum"
    _verified.add(key)
    return None


def has_data_files(directory: str) -> bool:
    """False when retention dropped this checkpoint's data files (the replay buffer)."""
    manifest = _read_manifest(directory)
    return not (manifest and manifest.get("data_dropped"))


def find_checkpoint(path: str, load_step: int) -> str:
    """The intact checkpoint directory in ``path`` closest to ``load_step`` (0: the latest), or ``path`` itself.

    A damaged checkpoint is skipped with a warning in favour of the next one (the newest intact one for
    ``load_step=0``); a ``path`` that is itself a damaged checkpoint is an error."""
    if os.path.isfile(os.path.join(path, CHECKPOINT_FILE)):
        problem = verify_checkpoint(path)
        if problem:
            raise ConfigError(f"checkpoint '{path}' is damaged: {problem}")
        return path
    if not os.path.isdir(path):
        raise ConfigError(f"checkpoint_path '{path}' does not exist")
    steps = checkpoint_steps(path)
    if not steps:
        raise ConfigError(f"no checkpoints in '{path}' (expected <t_env>/{CHECKPOINT_FILE} directories)")
    order = sorted(steps, reverse=True) if load_step == 0 else sorted(steps, key=lambda s: (abs(s - load_step), s))
    for step in order:
        directory = os.path.join(path, str(step))
        problem = verify_checkpoint(directory)
        if problem is None:
            return directory
        log.warning("checkpoint %s is damaged (%s); falling back to the next one", directory, problem)
    raise ConfigError(f"no intact checkpoint in '{path}' (all {len(steps)} are damaged)")


def read_config(directory: str) -> dict[str, Any]:
    """The config a checkpoint was trained with (``config.json``; older checkpoints: from the payload)."""
    path = os.path.join(directory, CONFIG_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return dict(load_checkpoint(directory)["config"])


def load_checkpoint(directory: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The payload of ``checkpoint.pt``; an unreadable file is a one-line error."""
    # Concord's own files: they hold numpy arrays and RNG states, so a full unpickle is needed.
    try:
        return torch.load(os.path.join(directory, CHECKPOINT_FILE), map_location=device, weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise ConfigError(f"checkpoint '{directory}' cannot be read: {str(e).splitlines()[0]}") from e

