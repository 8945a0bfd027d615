"""docker/ checked without Docker: the Dockerfile against requirements.txt, README and the sc2 env; the scripts run
against a stand-in ``docker`` executable that prints its arguments."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from concord.envs import sc2

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILE = (DOCKER / "Dockerfile").read_text()
README = (DOCKER / "README.md").read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, rest = current.strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
        current = ""
    return out


def build_args() -> dict[str, str]:
    return dict(a.split("=", 1) for k, a in instructions(DOCKERFILE) if k == "ARG" and "=" in a)


def pip_installs() -> list[list[str]]:
    """The argument lists of every ``pip install`` in the RUN instructions, in order (shell-split, ${ARG}s expanded)."""
    args = build_args()
    out = []
    for keyword, rest in instructions(DOCKERFILE):
        if keyword != "RUN":
            continue
        for command in rest.split("&&"):
            if "pip install" not in command:
                continue
            words = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), command))
            assert words[:2] == ["pip", "install"], command
            out.append(words[2:])
    return out


def pinned_requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(ln.split("#")[0].strip()) for ln in lines if ln.split("#")[0].strip()]


def test_dockerfile_installs_requirements_txt_and_nothing_that_contradicts_its_pins() -> None:
    copies = [rest.split() for k, rest in instructions(DOCKERFILE) if k == "COPY"]
    dest = next(c[-1] for c in copies if c[-2] == "requirements.txt")
    installs = pip_installs()
    req_index = next(i for i, words in enumerate(installs) if "-r" in words and words[words.index("-r") + 1] == dest)
    pins = {r.name.lower(): r for r in pinned_requirements()}
    assert pins, "requirements.txt is empty"
    for words in installs[req_index + 1:]:  # nothing installed later may move a pinned package off its pin
        for word in words:
            if word.startswith("-"):
                continue
            req = Requirement(word)
            pin = pins.get(req.name.lower())
            if pin is not None:
                version = next(iter(pin.specifier)).version
                assert req.specifier.contains(version), f"{word} contradicts requirements.txt's {pin}"


def test_starcraft_packages_are_pinned_and_match_the_env() -> None:
    args = build_args()
    assert args["SMAC_COMMIT"] == sc2.SMAC_COMMIT and args["SMACV2_COMMIT"] == sc2.SMACV2_COMMIT
    assert all(re.fullmatch(r"[0-9a-f]{40}", c) for c in (sc2.SMAC_COMMIT, sc2.SMACV2_COMMIT))
    words = [w for ws in pip_installs() for w in ws]
    assert f"SMAC @ git+https://github.com/oxwhirl/smac.git@{sc2.SMAC_COMMIT}" in words
    assert f"SMACv2 @ git+https://github.com/oxwhirl/smacv2.git@{sc2.SMACV2_COMMIT}" in words
    assert f"pysc2=={args['PYSC2_VERSION']}" in words and "protobuf<3.21" in words
    assert all(w not in ("enum34", "pygame") for w in words)


def sc2_versions() -> tuple[str, set[str]]:
    """(default, supported) SC2 versions: the SC2_VERSION build argument and the Dockerfile's check of it."""
    case = re.search(r'case "\$\{SC2_VERSION\}" in[\s\\]+([\w.|]+)\)', DOCKERFILE)
    assert case, "the Dockerfile must check SC2_VERSION against the supported versions"
    return build_args()["SC2_VERSION"], set(case.group(1).split("|"))


def test_readme_names_exactly_the_dockerfiles_sc2_versions() -> None:
    default, supported = sc2_versions()
    assert {"4.10", "4.6.2.69232"} <= supported and default == "4.10"
    rows = re.findall(r"^\| `([\d.]+)`( \(default\))? \| `\"([\d.]+)\"`", README, flags=re.M)
    assert {v for v, _, _ in rows} == supported
    assert [v for v, d, _ in rows if d] == [default]
    for version, _, game_version in rows:  # pysc2's name of the version: major.minor[.patch]
        assert game_version == ".".join(version.split(".")[:3])
        if version.count(".") == 3:
            assert f"Base{version.split('.')[-1]}" in README
    named = set(re.findall(r"--sc2-version ([\d.]+)", README)) | set(re.findall(r"concord-sc2:([\d.]+)", README))
    assert named and named <= supported


def test_readme_maps_and_urls_match_the_dockerfile() -> None:
    loop = re.search(r"for m in ([\w ]+); do", DOCKERFILE)
    assert loop, "the Dockerfile must check the maps it installs"
    checked = set(loop.group(1).split())
    named = set(re.findall(r"`(\w+)\.SC2Map`", README))
    assert {"3m", "32x32_flat"} <= named <= checked
    assert yaml.safe_load((ROOT / "config" / "envs" / "sc2.yaml").read_text())["env_args"]["map_name"] in checked
    args = build_args()
    for key in ("SMAC_MAPS_URL", "SMACV2_MAPS_URL"):
        assert args[key] in README
    assert "unzip -q -P iagreetotheeula" in DOCKERFILE and "iagreetotheeula" in README


def test_image_layout_user_python_and_entrypoint() -> None:
    ins = instructions(DOCKERFILE)
    assert ins[-1] == ("ENTRYPOINT", '["python", "main.py"]')
    users = [rest for k, rest in ins if k == "USER"]
    assert users[-1] not in ("root", "0")
    assert ("ENV", "SC2PATH=/opt/StarCraftII") in ins and '-d /opt' in DOCKERFILE  # the zip unpacks StarCraftII/
    assert build_args()["PYTHON_VERSION"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert build_args()["BASE_IMAGE"] == "ubuntu:22.04" and ins[0] == ("ARG", "BASE_IMAGE=ubuntu:22.04")
    assert ("FROM", "${BASE_IMAGE}") in ins
    for k, rest in ins:
        if k == "COPY":
            for src in [w for w in rest.split()[:-1] if not w.startswith("--")]:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"


@pytest.mark.parametrize("script", ["build.sh", "run.sh"])
def test_scripts_parse(script) -> None:
    subprocess.run(["bash", "-n", str(DOCKER / script)], check=True)
    assert os.access(DOCKER / script, os.X_OK)


def _run_with_stub_docker(tmp_path: Path, script: str, *args: str, gpu: bool | None = None) -> list[str]:
    """Run a docker/ script with ``docker`` (and maybe ``nvidia-smi``) replaced by stubs; return docker's argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    out = tmp_path / "docker_args"
    (bin_dir / "docker").write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > {out}\n')
    if gpu is not None:
        (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\nexit {0 if gpu else 9}\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run(["bash", str(DOCKER / script), *args], check=True, env=env, stdin=subprocess.DEVNULL,
                   capture_output=True)
    return out.read_text().splitlines()


def test_build_script_passes_version_base_and_non_root_ids(tmp_path) -> None:
    argv = _run_with_stub_docker(tmp_path, "build.sh", "--sc2-version", "4.6.2.69232", "--cuda")
    assert argv[:3] == ["build", "-f", str(DOCKER / "Dockerfile")]
    assert "SC2_VERSION=4.6.2.69232" in argv and "concord-sc2:4.6.2.69232" in argv
    assert any(a.startswith("BASE_IMAGE=nvidia/cuda:") for a in argv)
    uid = next(a for a in argv if a.startswith("USER_UID="))
    assert uid != "USER_UID=0" and argv[-1] == str(ROOT)


@pytest.mark.parametrize("gpu", [True, False, None])
def test_run_script_mounts_results_passes_gpus_and_forwards_arguments(tmp_path, gpu) -> None:
    args = ["--config=qmix", "--env-config=sc2", "with", "label=a b"]
    argv = _run_with_stub_docker(tmp_path, "run.sh", *args, gpu=gpu)
    assert argv[0] == "run" and f"{ROOT / 'results'}:/app/results" in argv
    assert (argv[argv.index("concord-sc2:4.10") + 1:]) == args
    assert ("--gpus" in argv) is bool(gpu)


def test_pysc2_patch_keeps_python_310_fixed_shuffle(tmp_path):
    """pysc2's colors.py shuffles with random.shuffle(x, lambda: 0.5), gone in Python 3.11; the patch must give the
    permutation Python 3.10 gave (by hand for 4 items: i=3 swaps 3<->2, i=2 swaps 2<->1, i=1 swaps 1<->1)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("patch_pysc2", os.path.join(ROOT, "docker", "patch_pysc2.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    original = ("import random\n\n\ndef shuffled_hue(palette):\n"
                "  palette = list(palette)\n  random.shuffle(palette, lambda: 0.5)  # Return a fixed shuffle\n"
                "  return palette\n")
    path = tmp_path / "colors.py"
    path.write_text(original)
    mod.main([str(path)])
    scope: dict = {}
    exec(path.read_text(), scope)
    assert scope["shuffled_hue"]([0, 1, 2, 3]) == [0, 3, 1, 2]
    with pytest.raises(SystemExit, match="does not contain"):
        mod.patch("def shuffled_hue(palette):\n  return palette\n")
    assert "patch_pysc2.py" in open(os.path.join(ROOT, "docker", "Dockerfile")).read()
