#!/bin/sh
# Installs the project into a root filesystem at DEST: the one install step of
# both ways to build the images (images/build.py on a Debian rootfs made by
# mmdebstrap, and the Dockerfiles), so both give the same project files.
#
# Usage: images/install.sh runner|operator DEST
#        images/install.sh --lock       (re)writes images/requirements/*.txt
#   PYTHON  a Python 3.11 with pip (default python3), used only to run pip:
#           the files are installed for the image's Python 3.11 on
#           x86_64 glibc, whatever this machine runs.
#
# What it writes, under DEST:
#   usr/local/lib/python3.11/dist-packages/   the project and its dependencies,
#       exactly the wheels (and hashes) images/requirements/<flavour>.txt pins;
#       Debian's python3 has this directory on its path;
#   usr/local/bin/fondation                   the command line.
# No byte code: the images run with PYTHONDONTWRITEBYTECODE=1 on a read-only
# root, and .pyc files would differ from build to build.
set -eu
flavour=$1
dest=${2:-}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
umask 022
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip() {
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$python" -m pip --quiet "$@"
}
# Binary wheels for CPython 3.11 on glibc x86_64 (Debian bookworm: glibc 2.36).
for_image() {
  pip "$@" --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 \
    --platform manylinux_2_36_x86_64 --platform manylinux_2_34_x86_64 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 \
    --platform manylinux1_x86_64
}

if [ "$flavour" = --lock ]; then
  # The dependencies of pyproject.toml (plus the `claude` extra for the
  # runner), resolved for the image's Python, pinned with their wheels' sha256.
  for f in operator runner; do
    reqs=$("$python" - "$src/pyproject.toml" "$f" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
deps = list(project["dependencies"])
if sys.argv[2] == "runner":
    deps += project["optional-dependencies"]["claude"]
print("\n".join(deps))
PY
)
    printf '%s\n' "$reqs" >"$work/$f.in"
    for_image install --dry-run --ignore-installed --report "$work/$f.json" \
      --target "$work/t" -r "$work/$f.in"
    "$python" - "$work/$f.json" "$f" >"$here/requirements/$f.txt" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print(f"# The {sys.argv[2]} image's Python dependencies, pinned: images/install.sh --lock")
for item in sorted(report["install"], key=lambda i: i["metadata"]["name"].lower()):
    meta, hashes = item["metadata"], item["download_info"]["archive_info"]["hashes"]
    print(f"{meta['name']}=={meta['version']} --hash=sha256:{hashes['sha256']}")
PY
  done
  exit 0
fi

case $flavour in
  runner | operator) ;;
  *) echo "install.sh: unknown flavour '$flavour' (runner or operator)" >&2; exit 2 ;;
esac
site=$dest/usr/local/lib/python3.11/dist-packages

# Dependencies: exactly the pinned wheels, each checked against its sha256.
for_image install --no-deps --no-compile --require-hashes \
  --target "$site" -r "$here/requirements/$flavour.txt"

# The project, built from a copy of its sources (nothing is written into the
# checkout) with the pinned setuptools.
mkdir "$work/src"
cp "$src/pyproject.toml" "$src/README.md" "$work/src/"
for d in contracts operator runner cli prompts; do
  cp -R "$src/$d" "$work/src/$d"
done
find "$work/src" -name __pycache__ -type d -prune -exec rm -rf {} +
find "$work/src" -name '*.egg-info' -type d -prune -exec rm -rf {} +
PIP_CONSTRAINT="$here/requirements/build.txt" PIP_BUILD_CONSTRAINT="$here/requirements/build.txt" \
  pip wheel --no-deps --wheel-dir "$work/wheel" "$work/src"
pip install --no-deps --no-compile --target "$site" "$work"/wheel/*.whl

# What pip adds that depends on where and how it ran: scripts with this
# machine's interpreter in their first line, the wheel's path, byte code.
rm -rf "$site/bin"
rm -f "$site"/*.dist-info/direct_url.json "$site"/*.dist-info/REQUESTED
find "$site" -name __pycache__ -type d -prune -exec rm -rf {} +
mkdir -p "$dest/usr/local/bin"
cat >"$dest/usr/local/bin/fondation" <<'PY'
#!/usr/bin/python3
import sys

from fondation_cli.main import main

sys.exit(main())
PY
chmod 0755 "$dest/usr/local/bin/fondation"
