#!/usr/bin/env bash
# Build the pqcompress serving image from a wheelhouse made on this host (offline inside the build).
#
#   deploy/docker/build.sh [--model FILE.pqz] [--tag TAG] [--base IMAGE] [--python X.Y]
#
#   --model   bake FILE into the image as /models/model.pqz (default: none; mount /models)
#   --tag     image tag (default pqcompress-serve:<version>)
#   --base    BASE_IMAGE build argument (default python:3.11-slim; without registry access
#             make one with make_base.sh and pass pqcompress-base:bookworm)
#   --python  the base image's Python version, for the wheels (default 3.11)
#
# Steps: (1) the pqcompress wheel, built from a copy of the source tree (nothing is written into
# the checkout); (2) the wheels of requirements-serve.txt for Linux x86_64 CPython X.Y, with
# `pip download` from the index pip is configured with (PIP_INDEX_URL / PIP_FIND_LINKS, or pass
# a directory of wheels as WHEELHOUSE=DIR to copy instead); (3) `docker build` with the legacy
# builder (DOCKER_BUILDKIT=0 unless set), context deploy/docker/.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON_BIN="${PYTHON_BIN:-python3}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -n 1)"
MODEL="" TAG="pqcompress-serve:${VERSION}" BASE="python:3.11-slim" PYVER="3.11"
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL="$2"; shift 2 ;;
        --tag) TAG="$2"; shift 2 ;;
        --base) BASE="$2"; shift 2 ;;
        --python) PYVER="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

WHEELS="$HERE/wheelhouse"
rm -rf "$WHEELS" && mkdir -p "$WHEELS"
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT

# (1) pqcompress itself, pure Python; --no-build-isolation when setuptools is at hand (offline).
# A fixed SOURCE_DATE_EPOCH makes the wheel byte-identical for the same source, so docker's
# layer cache keeps the installed venv when only the model changes.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 315532800)}"
cp "$REPO/pyproject.toml" "$REPO/README.md" "$SRC/"
cp -r "$REPO/src" "$SRC/src"
find "$SRC" -name __pycache__ -prune -exec rm -rf {} + -o -name '*.egg-info' -prune -exec rm -rf {} +
ISOLATION=()
if "$PYTHON_BIN" -c "import setuptools, wheel" 2>/dev/null; then ISOLATION=(--no-build-isolation); fi
nice -n 10 "$PYTHON_BIN" -m pip wheel -q --no-deps "${ISOLATION[@]}" -w "$WHEELS" "$SRC"

# (2) the serving requirements, binary wheels for the image's platform and Python.
if [ -n "${WHEELHOUSE:-}" ]; then
    cp "$WHEELHOUSE"/*.whl "$WHEELS/"
else
    nice -n 10 "$PYTHON_BIN" -m pip download -q -d "$WHEELS" -r "$HERE/requirements-serve.txt" \
        --only-binary=:all: --implementation cp --python-version "$PYVER" \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64
fi

# (3) the model, if one is baked in.
find "$HERE/models" -mindepth 1 ! -name .keep -delete
if [ -n "$MODEL" ]; then
    case "$MODEL" in *.pqz) ;; *) echo "build.sh: --model must be a .pqz file" >&2; exit 2 ;; esac
    cp "$MODEL" "$HERE/models/model.pqz"
fi

DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" nice -n 10 docker build \
    --build-arg BASE_IMAGE="$BASE" --build-arg VERSION="$VERSION" -t "$TAG" "$HERE"
docker image inspect --format "{{index .RepoTags 0}}: {{.Size}} bytes" "$TAG"
