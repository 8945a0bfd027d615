"""Config merging, validation and one-line errors."""
from __future__ import annotations

import pytest

from concord.config import check_registry_names, load_config, parse_updates, parse_value, split_cli
from concord.errors import ConfigError


def test_merge_order_default_env_alg_cli():
    cfg = load_config("qmix", "matrix_game", [])
    assert cfg["mixer"] == "qmix" and cfg["mixing_embed_dim"] == 32  # from the algorithm yaml
    assert cfg["t_max"] == 10000  # env yaml overrides default.yaml
    assert cfg["lr"] == 0.0005  # default.yaml
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
    ("batch_size=0", "must be positive"),
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
    cfg = load_config("qmix", "matrix_game", ["mixer=qmixx"])
    with pytest.raises(ConfigError, match=r"unknown mixer 'qmixx'; known mixers: .*qmix.*vdn"):
        check_registry_names(cfg)
    cfg = load_config("qmix", "matrix_game", ["runner=fast"])
    with pytest.raises(ConfigError, match=r"unknown runner 'fast'; known runners: episode, parallel"):
        check_registry_names(cfg)


def test_missing_plugin_module_is_reported():
    cfg = load_config("qmix", "matrix_game", ["plugins=[not_a_module_xyz]"])
    with pytest.raises(ConfigError, match="plugin module 'not_a_module_xyz' could not be imported"):
        check_registry_names(cfg)


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
