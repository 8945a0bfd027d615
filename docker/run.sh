#!/usr/bin/env bash
# Run main.py inside Concord's StarCraft II image; every argument goes to main.py.
#   docker/run.sh --config=qmix --env-config=sc2 with env_args.map_name=3s5z_vs_3s6z
# results/ of the repository is mounted at /app/results (sacred runs, tensorboard, models, replays).
# GPUs are passed (--gpus all) when nvidia-smi works on the host. Environment:
#   IMAGE        the image to run (default concord-sc2:4.10, see docker/build.sh)
#   DOCKER_ARGS  extra `docker run` arguments, e.g. DOCKER_ARGS="--shm-size 8g"
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${IMAGE:-concord-sc2:4.10}"
mkdir -p "$REPO/results"

ARGS=(--rm -v "$REPO/results:/app/results")
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  ARGS+=(--gpus all)
fi
if [[ -t 0 && -t 1 ]]; then
  ARGS+=(-it)
fi
read -r -a USER_ARGS <<< "${DOCKER_ARGS:-}"

exec docker run "${ARGS[@]}" ${USER_ARGS[@]+"${USER_ARGS[@]}"} "$IMAGE" "$@"
