#!/usr/bin/env bash
# Fails, naming the files, when a C source or header differs from the committed .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r f; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(find src include tests bench -name '*.[ch]' -not -path '*/corpus/*' | sort)
if [ ${#bad[@]} -gt 0 ]; then
    echo "not clang-formatted (run: make format): ${bad[*]}" >&2
    exit 1
fi
echo "clang-format: every C file matches .clang-format"
