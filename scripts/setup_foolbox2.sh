#!/usr/bin/env bash
# Install foolbox 2.2.1, the paper's attack library, into a side folder for the differential test
# (tests/attacks/test_foolbox2.py) and the side-by-side attack benchmark. Idempotent: a stamp records what
# is installed, and nothing is reinstalled while it matches.
#
# foolbox 2.2.1 needs numpy < 2, the project's environment has numpy 2. Both are installed with
# --no-deps into FOOLBOX2_DIR (default .cache/foolbox2, git-ignored), next to nothing else: the
# reference runs in a subprocess with PYTHONPATH=FOOLBOX2_DIR, so it takes numpy 1.26.4 from there
# and torch / scipy from the project's venv, which keeps numpy 2 (torch is never reinstalled).
# Where PyPI is unreachable, FOOLBOX2_WHEEL=path/to/foolbox-2.2.1-py3-none-any.whl (or a wheel in
# .whl/) is used instead. Exit status 3: nothing could be installed (the tests then skip).
#   VENV=path         the project's environment (default .venv)
#   FOOLBOX2_DIR=dir  where to install (default .cache/foolbox2)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
DEST=${FOOLBOX2_DIR:-.cache/foolbox2}
PKGS=(foolbox==2.2.1 numpy==1.26.4)
stamp_value="${PKGS[*]}"
if [ -f "$DEST/.stamp" ] && [ "$(cat "$DEST/.stamp")" = "$stamp_value" ]; then
  echo "[foolbox2] $DEST is up to date"
  exit 0
fi
wheel=${FOOLBOX2_WHEEL:-$(ls .whl/foolbox-2.2.1-*.whl 2>/dev/null | head -n1 || true)}
foolbox_spec=${PKGS[0]}
[ -n "$wheel" ] && [ -f "$wheel" ] && foolbox_spec=$wheel
echo "[foolbox2] installing $foolbox_spec and ${PKGS[1]} into $DEST"
tmp="$DEST.tmp.$$"
rm -rf "$tmp"
# few retries and a short timeout: offline, pip must give up quickly
"$VENV/bin/python" -m pip install -q --no-deps --no-compile --retries 1 --timeout 20 --target "$tmp" \
  "$foolbox_spec" "${PKGS[1]}" 2>&1 | grep -v '^WARNING: Location' || true
if [ ! -d "$tmp/foolbox" ] || [ ! -d "$tmp/numpy" ]; then
  rm -rf "$tmp"
  echo "[foolbox2] could not install foolbox 2.2.1 (offline? set FOOLBOX2_WHEEL); its tests will skip" >&2
  exit 3
fi
# check that it imports beside the venv's torch and scipy (with the collections.abc aliases)
PYTHONPATH="$tmp" "$VENV/bin/python" -c "
from benchmarks.foolbox2_ref import import_foolbox2
fb, np = import_foolbox2()
assert fb.__version__ == '2.2.1' and np.__version__.startswith('1.'), (fb.__version__, np.__version__)
"
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
mv "$tmp" "$DEST"
echo "$stamp_value" > "$DEST/.stamp"
echo "[foolbox2] done: $DEST"
