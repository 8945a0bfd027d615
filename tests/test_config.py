"""Config merging, validation and one-line errors."""
from __future__ import annotations

import pytest

from concord.config import check_registry_names, load_config, parse_updates, parse_value, split_cli
from concord.errors import ConfigError


def test_merge_order_default_env_alg_cli():
    cfg = load_config("qmix", "matrix_game", [])
    assert cfg["mixer"] == "qmix"  # from the algorithm yaml
    assert cfg["mixing_embed_dim"] == 32  # declared by config/mixers/qmix.yaml, merged because qmix is selected
    assert cfg["t_max"] == 10000  # env yaml overrides default.yaml
    assert cfg["lr"] == 0.0005  # the q_learner's yaml
    cfg = load_config("qmix", "matrix_game", ["t_max=77", "lr=1e-3", "env_args.payoff=[[1,0],[0,1]]"])
    assert cfg["t_max"] == 77 and cfg["lr"] == 0.001 and cfg["env_args"]["payoff"] == [[1, 0], [0, 1]]


def test_int_widens_to_float_and_seed_is_drawn():
    cfg = load_config("vdn", "matrix_game", ["gamma=1"])
    assert isinstance(cfg["gamma"], float) and cfg["gamma"] == 1.0
    assert isinstance(cfg["seed"], int)


@pytest.mark.parametrize("update,needle", [
    ("no_such_key=1", "unknown config key 'no_such_key'"),
    ("env_args.no_such=1", "unknown config key 'env_args.no_such'"),
    ("t_max=lots", "config key 't_max' must be int"),
    ("use_cuda=1", "config key 'use_cuda' must be bool"),
    ("optimizer=sgd", "must be one of rmsprop, adam"),
    ("batch_size=0", "config key 'batch_size' must be in [1, inf)"),
    ("gamma=1.5", "config key 'gamma' must be in [0, 1]"),
    ("mixing_embed_dim=abc", "config key 'mixing_embed_dim' must be int"),
    ("env_args=3", "is a mapping"),
])
def test_bad_values_are_one_line_errors(update, needle):
    with pytest.raises(ConfigError) as e:
        load_config("qmix", "matrix_game", [update])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_config_files_list_known():
    with pytest.raises(ConfigError, match="unknown --config 'nope'; known: .*qmix"):
        load_config("nope", "matrix_game")
    with pytest.raises(ConfigError, match="unknown --env-config 'nope'; known: .*matrix_game"):
        load_config("qmix", "nope")


def test_unknown_registry_name_lists_known():
    with pytest.raises(ConfigError, match=r"unknown mixer 'qmixx'; known mixers: .*qmix.*vdn"):
        load_config("qmix", "matrix_game", ["mixer=qmixx"])
    with pytest.raises(ConfigError, match=r"unknown runner 'fast'; known runners: dials, episode, parallel"):
        load_config("qmix", "matrix_game", ["runner=fast"])
    cfg = load_config("qmix", "matrix_game")
    cfg["env"] = "no_such_env"
    with pytest.raises(ConfigError, match=r"unknown env 'no_such_env'; known envs: .*matrix_game"):
        check_registry_names(cfg)


def test_missing_plugin_module_is_reported():
    with pytest.raises(ConfigError, match="plugin module 'not_a_module_xyz' could not be imported"):
        load_config("qmix", "matrix_game", ["plugins=[not_a_module_xyz]"])


def test_cli_values_parse_like_sacred():
    assert parse_value("1e-5") == 1e-5 and parse_value("true") is True and parse_value("null") is None
    assert parse_value("[my_pkg.my_mixer]") == ["my_pkg.my_mixer"] and parse_value("3m") == "3m"
    assert parse_updates(["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}
    assert split_cli(["--config=qmix", "--env-config=smax", "with", "a=1"]) == ("qmix", "smax", ["a=1"])
    with pytest.raises(ConfigError, match="usage"):
        split_cli(["--config=qmix"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_updates(["novalue"])


def test_empty_mapping_is_free_form():
    cfg = load_config("qmix", "gymma", ["env_args.env_kwargs.penalty=0.1"])
    assert cfg["env_args"]["env_kwargs"] == {"penalty": 0.1}


# --- per-component configuration -----------------------------------------------------------------

def test_selecting_a_component_merges_its_keys_wherever_it_is_selected():
    cfg = load_config("vdn", "matrix_game", ["mixer=qmix"])
    assert cfg["mixer"] == "qmix" and cfg["mixing_embed_dim"] == 32 and cfg["hypernet_layers"] == 2
    assert "mixing_embed_dim" not in load_config("vdn", "matrix_game")  # vdn has no keys of its own
    cfg = load_config("vast", "matrix_game", ["vast_mixer=qmix"])  # a component selected by a component
    assert cfg["hypernet_embed"] == 64 and "qtran_lambda_opt" not in cfg  # vast.yaml's qtran overrides dropped
    assert load_config("vast", "matrix_game")["qtran_lambda_nopt"] == 1.0  # ... and kept when qtran is selected


def test_a_key_of_an_unselected_component_is_a_one_line_error_naming_its_owner():
    with pytest.raises(ConfigError) as e:
        load_config("vdn", "matrix_game", ["mixing_embed_dim=8"])
    msg = str(e.value)
    assert "unknown config key 'mixing_embed_dim'" in msg and "mixer 'qmix'" in msg and "mixer=vdn" in msg
    assert "\n" not in msg
    with pytest.raises(ConfigError, match="unknown config key 'epsilon_start'.*action selector 'epsilon_greedy'"):
        load_config("qmix", "matrix_game", ["action_selector=multinomial", "epsilon_start=0.5"])


def test_components_restrict_other_components_keys():
    with pytest.raises(ConfigError, match="config key 'action_selector' must be one of epsilon_greedy"):
        load_config("qmix", "matrix_game", ["action_selector=multinomial"])


def test_a_plugin_declares_its_keys_at_registration():
    cfg = load_config("vdn", "matrix_game", ["plugins=[examples.weighted_mixer]", "mixer=weighted",
                                            "weighted_temperature=2"])
    assert cfg["weighted_temperature"] == 2.0
    with pytest.raises(ConfigError, match="unknown config key 'weighted_temperature'"):
        load_config("vdn", "matrix_game", ["plugins=[examples.weighted_mixer]", "weighted_temperature=2"])


def test_a_key_declared_by_two_selected_components_is_an_error():
    from concord.registry import register_mixer

    @register_mixer("test_clashing_mixer", config={"lr": 0.1})
    class Clash:  # noqa: D401 - never constructed
        pass

    with pytest.raises(ConfigError, match="config key 'lr' is declared by both .*q_learner.yaml and plugin mixer"):
        load_config("vdn", "matrix_game", ["mixer=test_clashing_mixer"])


def _names(kind: str) -> list[str]:
    from concord import registry
    from concord.config import KINDS

    return getattr(registry, KINDS[kind][0]).names()


@pytest.mark.parametrize("alg", sorted(f[:-5] for f in __import__("os").listdir("config/algs") if f.endswith(".yaml")))
@pytest.mark.parametrize("env", ["matrix_game", "smax", "coordination_game", "gymma"])
def test_every_algorithm_loads_on_every_env_config(alg, env):
    cfg = load_config(alg, env)
    assert cfg["name"]


@pytest.mark.parametrize("kind,key", [("mixers", "mixer"), ("learners", "learner"), ("selectors", "action_selector"),
                                      ("agents", "agent"), ("runners", "runner"), ("trainers", "trainer")])
def test_every_registered_component_has_its_declaration(kind, key):
    """Each of Concord's own parts has config/<kind>/<name>.yaml, and selecting it loads."""
    import os

    from concord.config import CONFIG_DIR, component_declaration

    from concord import registry
    from concord.config import KINDS

    reg = getattr(registry, KINDS[kind][0])
    for name in _names(kind):
        if not getattr(reg.get(name), "__module__", "").startswith("concord."):
            continue  # plugins declare their keys at registration
        assert os.path.isfile(os.path.join(CONFIG_DIR, kind, f"{name}.yaml")), f"config/{kind}/{name}.yaml missing"
        decl = component_declaration(kind, name)
        assert all(not k.startswith("_") for k in decl.keys)
