#!/usr/bin/env bash
# Fails when a C file differs from .clang-format, or uses a banned function.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files -co --exclude-standard -- '*.c' '*.h')
bad=0
for f in $files; do
  [ -f "$f" ] || continue
  if ! clang-format --style=file --dry-run --Werror "$f" 2>/dev/null; then
    echo "format: $f differs from .clang-format (run: clang-format -i $f)"
    bad=1
  fi
done
if grep -nE '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gets)\s*\(' $files; then
  echo "banned function used (see docs/style.md)"
  bad=1
fi
exit $bad
