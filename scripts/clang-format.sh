#!/usr/bin/env bash
# Formats (--write) or checks (--check) every C/C++/CUDA source under native/ with clang-format.
# Installs Debian's clang-format when it is missing (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:---check}"
if ! command -v clang-format >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq clang-format >/dev/null
  else
    echo "clang-format is not installed (Debian: apt-get install clang-format)" >&2
    exit 1
  fi
fi
mapfile -t files < <(find native -type f \( -name '*.cc' -o -name '*.h' -o -name '*.cu' \) | sort)
case "$mode" in
  --write) clang-format -i "${files[@]}" ;;
  --check) clang-format --dry-run --Werror "${files[@]}" ;;
  *) echo "usage: $0 --write|--check" >&2; exit 2 ;;
esac
