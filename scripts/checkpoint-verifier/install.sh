#!/usr/bin/env bash
# A Python with `cryptography` (PyPI, pinned) for the independent checkpoint verifier
# (scripts/checkpoint-verifier/verify.py), which tests/it/federation.rs runs so the
# checkpoint format is not checked only by the code that writes it.
#
#   scripts/checkpoint-verifier/install.sh    install if missing; the LAST line is
#                                             PICKET_TEST_PYTHON=<the venv's python>
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=50.0.2
BASE=${PICKET_SERVERS_DIR:-.servers}
mkdir -p "$BASE/checkpoint-verifier"
DIR=$(cd "$BASE/checkpoint-verifier" && pwd)

installed=$("$DIR/venv/bin/pip" show cryptography 2>/dev/null || true)
if [ ! -x "$DIR/venv/bin/python" ] || ! grep -qx "Version: $VERSION" <<<"$installed"; then
  echo "installing cryptography==$VERSION (PyPI) into $DIR/venv ..." >&2
  python3 -m venv "$DIR/venv" >&2
  "$DIR/venv/bin/pip" install -q "cryptography==$VERSION" >&2
fi
echo "PICKET_TEST_PYTHON=$DIR/venv/bin/python"
