#!/usr/bin/env bash
# Installs, with apt, the Debian packages Sluice needs to build, test, demo and
# benchmark; does nothing when all of them are present. Run as root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  liburing-dev libfabric-dev libfabric-bin libxxhash-dev libzstd-dev liblmdb-dev
  libspdlog-dev libfmt-dev libfuse3-dev fuse3 libgtest-dev libgmock-dev
  libcli11-dev libtoml11-dev libflatbuffers-dev flatbuffers-compiler
  libcpp-httplib-dev pybind11-dev python3-dev python3-numpy python3-torch
  fio iperf3 iproute2 procps psmisc util-linux
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
