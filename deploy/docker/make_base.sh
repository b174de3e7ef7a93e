#!/usr/bin/env bash
# Make a Debian bookworm base image with python3 and venv, without pulling from a registry.
#
#   deploy/docker/make_base.sh [TAG]            # default TAG: pqcompress-base:bookworm
#
# Uses debootstrap (apt-get install -y debootstrap; needs root and a Debian mirror, about 2 min)
# and `docker import`. Pass the tag to build.sh as BASE_IMAGE. Environment: MIRROR (Debian
# mirror URL), SUITE (default bookworm: python 3.11, matching the default python:3.11-slim).
set -euo pipefail
TAG="${1:-pqcompress-base:bookworm}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install -y debootstrap" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
nice -n 10 debootstrap --variant=minbase --include=python3,python3-venv "$SUITE" "$WORK/root" "$MIRROR"
# Nothing at run time needs apt's lists and caches, docs, man pages or locales.
rm -rf "$WORK/root/var/lib/apt/lists/"* "$WORK/root/var/cache/apt/"* \
    "$WORK/root/usr/share/doc/"* "$WORK/root/usr/share/man/"* "$WORK/root/usr/share/locale/"* \
    "$WORK/root/var/log/"*
tar --numeric-owner -C "$WORK/root" -c . | nice -n 10 docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    - "$TAG"
docker image inspect --format '{{.RepoTags}} {{.Size}} bytes' "$TAG"
