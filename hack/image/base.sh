#!/usr/bin/env bash
# Bootstraps the local base image for `make image`: Debian bookworm (minbase) with python3.11,
# made by mmdebstrap from Debian's own packages and imported into buildah's local storage.
# It stands in for the official python:3.11-slim-bookworm base on a machine that cannot pull
# images; the Dockerfile does not change (the tag is passed as its PYTHON_IMAGE build arg).
# The apt sources are the machine's own (this repository names no package host). The tag
# carries a digest of this script, so a changed package list bootstraps a new base; an
# existing tag is reused (cold: ~35 s plus the package download). Prints the tag.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PACKAGES="python3.11,python3.11-venv,python-is-python3,libgomp1,ca-certificates"
DIGEST="$(sha256sum "${HERE}/base.sh" | cut -c1-12)"
TAG="${FAISS_BASE_IMAGE:-localhost/faiss-base:bookworm-py311-${DIGEST}}"
log() { printf '[image-base] %s\n' "$*" >&2; }

if buildah inspect --type image "${TAG}" >/dev/null 2>&1; then
  log "${TAG}: cached"; echo "${TAG}"; exit 0
fi
SOURCES="${FAISS_DEBIAN_SOURCES:-}"
if [[ -z "${SOURCES}" ]]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [[ -s "${f}" ]]; then SOURCES="${f}"; break; fi
  done
fi
[[ -n "${SOURCES}" ]] || { log "no apt sources on this machine; set FAISS_DEBIAN_SOURCES"; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "${work}"' EXIT
log "bootstrapping bookworm minbase + ${PACKAGES} from ${SOURCES}"
start=$(date +%s)
# Documentation, man pages and translations are dropped, as the official slim images do.
mmdebstrap --quiet --variant=minbase --include="${PACKAGES}" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "${work}/rootfs.tar" "${SOURCES}"
ctr="$(buildah from scratch)"
buildah add --quiet "${ctr}" "${work}/rootfs.tar" / >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
  --cmd python3 --label org.opencontainers.image.description="local Debian bookworm + python3.11 base" "${ctr}"
buildah commit --quiet --rm "${ctr}" "${TAG}" >/dev/null
log "${TAG} in $(( $(date +%s) - start ))s"
echo "${TAG}"
