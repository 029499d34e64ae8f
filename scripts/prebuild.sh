#!/usr/bin/env bash
# Prebuilt addons with prebuildify (N-API, stripped), loaded by node-gyp-build without a compiler:
#   prebuilds/linux-x64/dp-lora.node     built with the host compiler (on an x64 host)
#   prebuilds/linux-arm64/dp-lora.node   cross-built with the aarch64 toolchain that
#                                        scripts/arm64-tests.sh uses (g++-aarch64-linux-gnu)
# Usage: scripts/prebuild.sh [x64] [arm64]   (default: both)
# prebuildify builds in build/ and moves the .node out of it: run `npx node-gyp rebuild`
# afterwards for a local development build (node-gyp-build prefers build/Release).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(x64 arm64)
host="$(node -p process.arch)"
jobs="$(nproc 2> /dev/null || echo 2)"
export JOBS="$jobs"

for arch in "${targets[@]}"; do
  case "$arch" in
    x64 | arm64) ;;
    *)
      echo "usage: $0 [x64] [arm64]" >&2
      exit 2
      ;;
  esac
  echo "prebuild: linux-${arch}"
  if [[ "$arch" == "$host" ]]; then
    npx prebuildify --napi --strip --arch "$arch"
  elif [[ "$arch" == arm64 ]]; then
    for tool in aarch64-linux-gnu-g++ aarch64-linux-gnu-gcc aarch64-linux-gnu-strip; do
      command -v "$tool" > /dev/null || {
        echo "missing $tool (apt-get install -y g++-aarch64-linux-gnu)" >&2
        exit 1
      }
    done
    CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ \
      AR=aarch64-linux-gnu-ar PREBUILD_STRIP_BIN=aarch64-linux-gnu-strip \
      npx prebuildify --napi --strip --arch arm64
  else
    echo "prebuild: no cross toolchain set up for ${arch} on a ${host} host" >&2
    exit 1
  fi
  out="prebuilds/linux-${arch}/dp-lora.node"
  [[ -f "$out" ]] || {
    echo "prebuild: $out was not made" >&2
    exit 1
  }
  file "$out"
done
