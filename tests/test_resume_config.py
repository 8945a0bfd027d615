"""Resume and evaluate take the checkpoint's own config: the command line may change only safe keys, anything
else is a one-line error before any work; env RNG state that does not fit the new number of envs is re-seeded
with a warning."""
from __future__ import annotations

import json
import os

import pytest

from tests.conftest import require

KEYS = ["env_args.limit=4", "batch_size=4", "use_tensorboard=False", "seed=3", "t_max=40", "test_nepisode=2"]


@pytest.fixture
def trained(run_main):
    code, result, err = run_main("qmix", "chain_test", *KEYS, "batch_size_run=2", "mixing_embed_dim=8")
    assert code == 0, err
    return result


def _no_new_run(tmp_path, before: int) -> bool:
    return len(os.listdir(os.path.join(tmp_path, "sacred"))) == before


def test_changing_a_model_key_on_resume_is_one_line_before_any_work(run_main, trained, tmp_path):
    before = len(os.listdir(os.path.join(tmp_path, "sacred")))
    code, _, err = run_main("qmix", "chain_test", "mixing_embed_dim=16", "t_max=80",
                            f"checkpoint_path={trained['models_dir']}")
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith("error: cannot change mixing_embed_dim (8 -> 16) when resuming")
    code, _, err = run_main("vdn", "chain_test", "t_max=80", f"checkpoint_path={trained['models_dir']}")
    assert code == 2 and "holds a 'qmix' run on env 'test_chain', but this command line selects 'vdn'" in err
    assert _no_new_run(tmp_path, before)


def test_resume_uses_the_checkpoint_config_and_safe_keys_may_change(run_main, trained):
    code, result, err = run_main("qmix", "chain_test", "t_max=80", "test_nepisode=3",
                                 f"checkpoint_path={trained['models_dir']}")
    assert code == 0, err
    with open(os.path.join(result["results_dir"], "config.json")) as f:
        cfg = json.load(f)
    assert cfg["mixing_embed_dim"] == 8 and cfg["batch_size_run"] == 2 and cfg["seed"] == 3 and cfg["t_max"] == 80
    assert result["t_env"] == 80


def test_evaluate_with_another_number_of_envs_reseeds_with_a_warning(run_main, trained, tmp_path):
    code, ev, err = run_main("qmix", "chain_test", "evaluate=True", "batch_size_run=1",
                             f"checkpoint_path={trained['models_dir']}")
    assert code == 0, err
    assert "env RNG state not restored: the checkpoint was trained with runner=episode batch_size_run=2" in err
    run = os.path.basename(trained["models_dir"])
    assert os.path.isfile(os.path.join(tmp_path, "runs", run, f"evaluation_{ev['t_env']}.json"))


@pytest.mark.slow
def test_smax_parallel_8_model_evaluates_and_resumes_with_the_episode_runner(run_main):
    require("jaxmarl")
    smax = ["env_args.map_name=3m", "batch_size=4", "use_tensorboard=False", "seed=2", "test_nepisode=8",
            "buffer_size=64"]
    code, trained, err = run_main("qmix", "smax", *smax, "runner=parallel", "batch_size_run=8", "t_max=400")
    assert code == 0, err
    code, ev, err = run_main("qmix", "smax", "evaluate=True", "runner=episode", "batch_size_run=1",
                             "test_nepisode=2", f"checkpoint_path={trained['models_dir']}")
    assert code == 0, err
    assert "env RNG state not restored" in err and ev["t_env"] == trained["t_env"]
    code, resumed, err = run_main("qmix", "smax", "runner=episode", "batch_size_run=1", "test_nepisode=2",
                                  f"t_max={trained['t_env'] + 60}", f"checkpoint_path={trained['models_dir']}")
    assert code == 0, err
    assert resumed["t_env"] >= trained["t_env"] + 60
