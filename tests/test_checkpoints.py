"""Checkpoints: a manifest of sizes and checksums written last; damaged checkpoints are skipped in favour of the
newest intact one with a warning; stale temp directories go; ``keep_checkpoints`` prunes; only the newest
``buffer_checkpoints`` keep the replay buffer."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

from concord.errors import ConfigError
from concord.utils.checkpoint import (MANIFEST_FILE, checkpoint_steps, find_checkpoint, has_data_files,
                                      load_checkpoint, save_checkpoint)


def _write_buffer(directory: str) -> dict:
    np.save(os.path.join(directory, "buffer_obs.npy"), np.arange(1000, dtype=np.float32))
    return {"size": 1000}


def _save(models: str, t: int, **kw) -> str:
    return save_checkpoint(models, t, {"config": {"seed": 1}, "t": t}, _write_buffer, **kw)


def test_manifest_lists_every_file_and_truncation_falls_back(tmp_path, caplog):
    models = str(tmp_path)
    _save(models, 10)
    newest = _save(models, 20)
    with open(os.path.join(newest, MANIFEST_FILE)) as f:
        manifest = json.load(f)
    assert set(manifest["files"]) == {"checkpoint.pt", "config.json", "buffer_obs.npy"}
    assert manifest["files"]["buffer_obs.npy"]["size"] == os.path.getsize(os.path.join(newest, "buffer_obs.npy"))
    with open(os.path.join(newest, "buffer_obs.npy"), "r+b") as f:
        f.truncate(100)
    with caplog.at_level(logging.WARNING):
        assert find_checkpoint(models, 0) == os.path.join(models, "10")
    assert "checkpoint" in caplog.text and "buffer_obs.npy has 100 bytes" in caplog.text
    with pytest.raises(ConfigError, match="is damaged"):
        find_checkpoint(newest, 0)
    with open(os.path.join(models, "10", "checkpoint.pt"), "r+b") as f:  # same size, altered bytes
        f.seek(50)
        f.write(b"\0\0\0\0")
    with pytest.raises(ConfigError, match="no intact checkpoint"):
        find_checkpoint(models, 0)


def test_stale_temp_dirs_go_and_retention(tmp_path):
    models = str(tmp_path)
    os.makedirs(os.path.join(models, ".tmp-5-999"))
    for t in (10, 20, 30, 40):
        _save(models, t, keep=2, keep_data=1)
    assert sorted(os.listdir(models)) == ["30", "40"]
    assert has_data_files(os.path.join(models, "40")) and not has_data_files(os.path.join(models, "30"))
    assert not os.path.exists(os.path.join(models, "30", "buffer_obs.npy"))
    assert find_checkpoint(models, 30) == os.path.join(models, "30")  # still intact without its buffer
    assert load_checkpoint(os.path.join(models, "30"))["t"] == 30


def test_truncated_newest_checkpoint_resumes_from_the_previous_one(run_main, tmp_path):
    keys = ["env_args.limit=4", "batch_size=4", "use_tensorboard=False", "seed=3", "t_max=80",
            "save_model_interval=40", "test_nepisode=2", "keep_checkpoints=2", "buffer_checkpoints=1"]
    code, result, err = run_main("qmix", "chain_test", *keys)
    assert code == 0, err
    models = result["models_dir"]
    assert checkpoint_steps(models) == [40, 80]
    assert not has_data_files(os.path.join(models, "40"))
    with open(os.path.join(models, "80", "checkpoint.pt"), "r+b") as f:
        f.truncate(1000)
    code, resumed, err = run_main("qmix", "chain_test", "t_max=120", f"checkpoint_path={models}")
    assert code == 0, err
    assert "checkpoint.pt has 1000 bytes" in err and "resuming with an empty buffer" in err
    assert "resumed from " + os.path.join(models, "40") in err
