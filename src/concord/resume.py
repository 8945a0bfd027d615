"""Resuming and evaluating a checkpoint with the config it was trained with.

The checkpoint's saved config is the base. The command line may change only what does not change the trained
model or its data (``RESUME_SAFE``: how long to train, intervals, how many envs and which runner, devices,
evaluation, checkpoint retention and where results go); a different value for any other key it sets, or a
different algorithm or env (``--config``/``--env-config``), is a one-line error naming the keys, before any
work. Keys the command line does not set come from the checkpoint, so the resume and evaluate commands need only
``checkpoint_path`` (keys declared since the checkpoint was written take their defaults).
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

from concord.config import dotted_get
from concord.errors import ConfigError
from concord.utils.checkpoint import find_checkpoint, read_config

RESUME_SAFE = frozenset({
    "t_max", "test_interval", "log_interval", "save_model_interval", "test_nepisode", "batch_size_run", "runner",
    "use_cuda", "torch_threads", "evaluate", "save_replay", "checkpoint_path", "load_step", "local_results_path",
    "progress_bar", "save_model", "use_tensorboard", "max_env_failures", "env_step_timeout", "keep_checkpoints",
    "buffer_checkpoints", "checkpoint_buffer", "on_nonfinite",
})
_MISSING = object()


def flatten(updates: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"a": 1, "env_args": {"map_name": "3m"}}`` -> ``["a", "env_args.map_name"]``."""
    out = []
    for k, v in updates.items():
        if isinstance(v, dict) and v:
            out += flatten(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out


def _get(cfg: Mapping[str, Any], dotted: str) -> Any:
    return dotted_get(cfg, dotted, _MISSING)


def _set(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = copy.deepcopy(value)


def resume_config(saved: Mapping[str, Any], new: Mapping[str, Any], cli_keys: Iterable[str],
                  where: str) -> dict[str, Any]:
    """The config to resume or evaluate with: ``saved`` updated by the command line's safe keys.

    ``new`` is the config merged from this command line (validated), ``cli_keys`` the dotted keys it set."""
    if (saved.get("name"), saved.get("env")) != (new["name"], new["env"]):
        raise ConfigError(f"checkpoint '{where}' holds a '{saved.get('name')}' run on env '{saved.get('env')}', "
                          f"but this command line selects '{new['name']}' on '{new['env']}'; resume or evaluate "
                          "it with the --config and --env-config it was trained with")
    changed = []
    for key in cli_keys:
        before, after = _get(saved, key), _get(new, key)
        if key.split(".")[0] not in RESUME_SAFE and before != after:
            shown = "unset" if before is _MISSING else repr(before)
            changed.append(f"{key} ({shown} -> {after!r})")
    if changed:
        raise ConfigError(f"cannot change {', '.join(changed)} when resuming or evaluating checkpoint '{where}' "
                          f"(it was trained with them); the command line may change only {', '.join(sorted(RESUME_SAFE))}")
    out = copy.deepcopy(dict(saved))
    for key, value in new.items():
        if key not in out:  # declared since the checkpoint was written
            out[key] = copy.deepcopy(value)
    for key in cli_keys:
        _set(out, key, _get(new, key))
    return out


def prepare(config: Mapping[str, Any], cli_updates: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``evaluate`` has a checkpoint; for a run from a checkpoint, the config from :func:`resume_config`."""
    if config["evaluate"] and not config["checkpoint_path"]:
        raise ConfigError("evaluate=True needs checkpoint_path=<a results/models/<run> directory> "
                          "(there is nothing to evaluate)")
    if not config["checkpoint_path"]:
        return dict(config)
    directory = find_checkpoint(config["checkpoint_path"], config["load_step"])
    return resume_config(read_config(directory), config, flatten(cli_updates), directory)
