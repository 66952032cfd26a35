#!/usr/bin/env bash
# `make image`: builds the Dockerfile, unchanged, with buildah (no Docker engine needed) on the
# local Debian base from base.sh, with chroot isolation (the only one that works inside this
# kind of VM). RUN steps that install Python packages need this machine's TLS trust and pip/uv
# configuration: they are bind-mounted read-only for the build (--volume …:ro) and never land
# in a layer, so the image carries neither. Layers are cached: a rebuild after a code change
# reruns only the project's own `pip install`.
#   IMAGE=<name:tag>        result (default localhost/faiss-index-operator:dev)
#   FAISS_CA_BUNDLE=<file>  CA bundle to trust (default: the system bundle)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "${HERE}/../.." && pwd)"
IMAGE="${IMAGE:-localhost/faiss-index-operator:dev}"
log() { printf '[image] %s\n' "$*" >&2; }

base="$(bash "${HERE}/base.sh")"
mounts=()
ca="${FAISS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
[[ -s "${ca}" ]] && mounts+=(--volume "${ca}:/etc/ssl/certs/ca-certificates.crt:ro")
# The first pip configuration pip itself would read, mounted where pip reads it in the image.
for f in "${PIP_CONFIG_FILE:-}" "${HOME}/.config/pip/pip.conf" "${HOME}/.pip/pip.conf" /etc/pip.conf; do
  if [[ -n "${f}" && -s "${f}" ]]; then mounts+=(--volume "${f}:/etc/pip.conf:ro"); break; fi
done
for f in "${UV_CONFIG_FILE:-}" "${HOME}/.config/uv/uv.toml" /etc/uv/uv.toml; do
  if [[ -n "${f}" && -s "${f}" ]]; then mounts+=(--volume "${f}:/etc/uv/uv.toml:ro"); break; fi
done
log "building ${IMAGE} from ${base} ($(( ${#mounts[@]} / 2 )) read-only mounts)"
start=$(date +%s)
buildah bud --isolation chroot --layers --quiet \
  --build-arg PYTHON_IMAGE="${base}" "${mounts[@]}" \
  -f "${ROOT}/Dockerfile" -t "${IMAGE}" "${ROOT}" >/dev/null
size="$(buildah images --format '{{.Size}}' "${IMAGE}" | head -1)"
log "${IMAGE}: ${size} in $(( $(date +%s) - start ))s"
echo "${IMAGE}"
