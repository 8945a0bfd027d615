#!/usr/bin/env bash
# Build Concord's StarCraft II image (docker/Dockerfile) from the repository root.
#   docker/build.sh                          # SC2 4.10 on ubuntu:22.04 (CPU base; GPUs still usable)
#   docker/build.sh --sc2-version 4.6.2.69232  # the SC2 version of the SMAC paper and LAN
#   docker/build.sh --cuda                   # CUDA runtime base image
#   docker/build.sh -- --no-cache            # anything after -- goes to `docker build`
# The image is tagged concord-sc2:<SC2 version> unless IMAGE is set.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SC2_VERSION=4.10
CUDA_BASE_IMAGE="${CUDA_BASE_IMAGE:-nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04}"
BASE_IMAGE=ubuntu:22.04
EXTRA=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --sc2-version) SC2_VERSION="$2"; shift 2 ;;
    --sc2-version=*) SC2_VERSION="${1#*=}"; shift ;;
    --cuda) BASE_IMAGE="$CUDA_BASE_IMAGE"; shift ;;
    --base-image) BASE_IMAGE="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

IMAGE="${IMAGE:-concord-sc2:${SC2_VERSION}}"
# the container user gets the host user's ids (files in results/ stay the host user's); never root's
USER_UID="$(id -u)"; USER_GID="$(id -g)"
[[ "$USER_UID" -eq 0 ]] && USER_UID=1000
[[ "$USER_GID" -eq 0 ]] && USER_GID=1000
echo "building $IMAGE (StarCraft II $SC2_VERSION, base $BASE_IMAGE)" >&2
exec docker build \
  -f "$REPO/docker/Dockerfile" \
  -t "$IMAGE" \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --build-arg "SC2_VERSION=$SC2_VERSION" \
  --build-arg "USER_UID=$USER_UID" \
  --build-arg "USER_GID=$USER_GID" \
  ${EXTRA[@]+"${EXTRA[@]}"} \
  "$REPO"
