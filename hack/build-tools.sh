#!/usr/bin/env bash
# Builds the dev/test control-plane binaries (etcd, kube-apiserver,
# kube-controller-manager), helm and kube-score from pinned Go modules, cached by version
# outside the work tree. Nothing here ships in the product; see
# ../shared/design/LOCAL_CLUSTER.md for why we build instead of download.
# Only what Debian does not package in a version that serves the tests is built: promtool
# comes from Debian's `prometheus` package when it is installed (`make tools` installs it),
# and `all` builds the rest concurrently (module downloads and links overlap; the compile
# of kube-apiserver dominates either way), each cached under a directory named by its
# pinned version.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
K8S_VERSION="v1.33.13"
ETCD_VERSION="v3.5.35"
HELM_VERSION="v3.19.5"
TOOLS_DIR="${FAISS_TOOLS_DIR:-${HOME}/.cache/faiss-index-operator/tools}"
K8S_DIR="${TOOLS_DIR}/k8s-${K8S_VERSION}"
ETCD_DIR="${TOOLS_DIR}/etcd-${ETCD_VERSION}"
HELM_DIR="${TOOLS_DIR}/helm-${HELM_VERSION}"
# kube-score (static checks of the rendered chart, tests/unit/test_chart_lint.py): the
# version is the one pinned in hack/tools/kube-score/go.mod (go.sum checks every module).
KUBE_SCORE_VERSION="$(awk '$1 == "require" && $2 == "github.com/zegl/kube-score" {print $3}' "${HERE}/tools/kube-score/go.mod")"
KUBE_SCORE_DIR="${TOOLS_DIR}/kube-score-${KUBE_SCORE_VERSION}"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0

log() { printf '[build-tools] %s\n' "$*" >&2; }

build_k8s() {
  if [[ -x "${K8S_DIR}/kube-apiserver" && -x "${K8S_DIR}/kube-controller-manager" ]]; then
    log "kube-apiserver/kube-controller-manager ${K8S_VERSION}: cached in ${K8S_DIR}"; return
  fi
  log "building kube-apiserver + kube-controller-manager ${K8S_VERSION} (cold: about 7 min on a quiet 2-core machine, up to ~25 min on a loaded one)"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local ld=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ld+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "${K8S_DIR}.tmp"
  (cd "${HERE}/tools/k8s" && go build -trimpath -ldflags "-s -w ${ld}" -o "${K8S_DIR}.tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)
  rm -rf "${K8S_DIR}"; mv "${K8S_DIR}.tmp" "${K8S_DIR}"
}

build_etcd() {
  if [[ -x "${ETCD_DIR}/etcd" ]]; then log "etcd ${ETCD_VERSION}: cached"; return; fi
  log "building etcd ${ETCD_VERSION}"
  mkdir -p "${ETCD_DIR}.tmp"
  (cd "${HERE}/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "${ETCD_DIR}.tmp/etcd" .)
  rm -rf "${ETCD_DIR}"; mv "${ETCD_DIR}.tmp" "${ETCD_DIR}"
}

build_helm() {
  if [[ -x "${HELM_DIR}/helm" ]]; then log "helm ${HELM_VERSION}: cached"; return; fi
  log "building helm ${HELM_VERSION}"
  mkdir -p "${HELM_DIR}.tmp"
  GOBIN="${HELM_DIR}.tmp" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=33" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  rm -rf "${HELM_DIR}"; mv "${HELM_DIR}.tmp" "${HELM_DIR}"
}

build_kube_score() {
  if [[ -x "${KUBE_SCORE_DIR}/kube-score" ]]; then log "kube-score ${KUBE_SCORE_VERSION}: cached"; return; fi
  log "building kube-score ${KUBE_SCORE_VERSION} (cold: 2-5 min on 2 cores)"
  mkdir -p "${KUBE_SCORE_DIR}.tmp"
  (cd "${HERE}/tools/kube-score" && go build -trimpath -ldflags "-s -w -X main.version=${KUBE_SCORE_VERSION}" \
      -o "${KUBE_SCORE_DIR}.tmp/kube-score" github.com/zegl/kube-score/cmd/kube-score)
  rm -rf "${KUBE_SCORE_DIR}"; mv "${KUBE_SCORE_DIR}.tmp" "${KUBE_SCORE_DIR}"
}

# promtool (checks and unit-tests the chart's alerting rules, tests/unit/test_alerts.py):
# the Prometheus module pinned in hack/tools/promtool/go.mod (v0.3MM.P is Prometheus
# 3.MM.P), built without the service-discovery plugins (tag remove_all_sd), which rule
# checks never use and whose dependencies are most of Prometheus' build.
promtool_dir() {
  local module
  module="$(awk -v m=github.com/prometheus/prometheus '$1 == "require" && $2 == m {print $3} $1 == m {print $2}' \
      "${HERE}/tools/promtool/go.mod")"
  [[ -n "${module}" ]] || { log "no github.com/prometheus/prometheus in hack/tools/promtool/go.mod"; exit 1; }
  echo "${TOOLS_DIR}/promtool-${module}"
}

# Debian's promtool (bookworm: 2.42) runs `check rules --lint` and `test rules` as the
# tests use them, in seconds instead of a 5-20 min build; older or missing: build.
PROMTOOL_MIN_MINOR=42
packaged_promtool() {
  local path version
  path="$(command -v promtool 2>/dev/null)" || return 1
  [[ "${path}" != "${TOOLS_DIR}/"* ]] || return 1
  version="$("${path}" --version 2>&1 | awk 'NR == 1 {print $3}')"
  [[ "${version}" =~ ^([0-9]+)\.([0-9]+)\. ]] || return 1
  (( BASH_REMATCH[1] > 2 || (BASH_REMATCH[1] == 2 && BASH_REMATCH[2] >= PROMTOOL_MIN_MINOR) )) || return 1
  echo "${path}"
}

build_promtool() {
  local dir tmp mm version packaged; dir="$(promtool_dir)"
  if packaged="$(packaged_promtool)"; then
    log "promtool: packaged ${packaged} ($("${packaged}" --version 2>&1 | awk 'NR == 1 {print $3}'))"
    mkdir -p "${TOOLS_DIR}/bin"; ln -sfn "${packaged}" "${TOOLS_DIR}/bin/promtool"; return
  fi
  if [[ -x "${dir}/promtool" ]]; then log "promtool ${dir##*/promtool-}: cached"; else
    mm="${dir##*/promtool-v0.}"; version="$(( ${mm%%.*} / 100 )).$(( ${mm%%.*} % 100 )).${mm#*.}"
    log "building promtool ${version} (cold: ~6 CPU-min, 5-20 min on 2 cores)"
    mkdir -p "${TOOLS_DIR}"; tmp="$(mktemp -d "${dir}.tmp.XXXXXX")"; chmod 755 "${tmp}"
    (cd "${HERE}/tools/promtool" && go build -trimpath -tags remove_all_sd \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=${version}" \
        -o "${tmp}/promtool" github.com/prometheus/prometheus/cmd/promtool)
    if [[ -d "${dir}" ]]; then rm -rf "${tmp}"; else mv "${tmp}" "${dir}"; fi  # a parallel build may have won
  fi
  mkdir -p "${TOOLS_DIR}/bin"; ln -sfn "${dir}/promtool" "${TOOLS_DIR}/bin/promtool"
}

# Argo CD Lua test runner (gopher-lua, as Argo CD; tests/unit/test_argocd_lua.py). Our
# own source, so it is cached by a digest of that source instead of a version.
LUATEST_SRC="${HERE}/tools/luatest"
luatest_dir() {
  local digest
  digest="$(cd "${LUATEST_SRC}" && cat go.mod go.sum *.go | sha256sum | cut -c1-16)"
  echo "${TOOLS_DIR}/luatest-${digest}"
}

build_luatest() {
  local dir tmp; dir="$(luatest_dir)"
  if [[ -x "${dir}/luatest" ]]; then log "luatest ${dir##*/luatest-}: cached"; else
    log "building luatest ${dir##*/luatest-} (gopher-lua; cold: under a minute)"
    mkdir -p "${TOOLS_DIR}"; tmp="$(mktemp -d "${dir}.tmp.XXXXXX")"; chmod 755 "${tmp}"
    (cd "${LUATEST_SRC}" && go build -trimpath -ldflags "-s -w" -o "${tmp}/luatest" .)
    if [[ -d "${dir}" ]]; then rm -rf "${tmp}"; else mv "${tmp}" "${dir}"; fi  # a parallel build may have won
  fi
  mkdir -p "${TOOLS_DIR}/bin"; ln -sfn "${dir}/luatest" "${TOOLS_DIR}/bin/luatest"
}

case "${1:-all}" in
  print-dir) echo "${TOOLS_DIR}";;
  k8s) build_k8s;;
  etcd) build_etcd;;
  helm) build_helm; echo "${HELM_DIR}/helm";;  # prints the binary's path
  kube-score) build_kube_score; echo "${KUBE_SCORE_DIR}/kube-score";;  # prints the binary's path
  luatest) build_luatest; echo "$(luatest_dir)/luatest";;  # prints the binary's path
  promtool) build_promtool; readlink -f "${TOOLS_DIR}/bin/promtool";;  # prints the binary's path
  all) start=$(date +%s); pids=(); names=()
       # Concurrent builds: each writes its own cache directory (atomic rename at the end).
       for tool in k8s etcd helm kube-score luatest promtool; do
         ( case "${tool}" in k8s) build_k8s;; etcd) build_etcd;; helm) build_helm;;
             kube-score) build_kube_score;; luatest) build_luatest;; promtool) build_promtool;; esac
           log "${tool}: ready after $(( $(date +%s) - start ))s" ) &
         pids+=($!); names+=("${tool}")
       done
       failed=()
       for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${names[$i]}"); done
       (( ${#failed[@]} == 0 )) || { log "failed: ${failed[*]}"; exit 1; }
       mkdir -p "${TOOLS_DIR}/bin"
       ln -sf "${K8S_DIR}/kube-apiserver" "${K8S_DIR}/kube-controller-manager" \
              "${ETCD_DIR}/etcd" "${HELM_DIR}/helm" "${KUBE_SCORE_DIR}/kube-score" "${TOOLS_DIR}/bin/"
       log "tools ready in ${TOOLS_DIR}/bin after $(( $(date +%s) - start ))s";;
  *) echo "usage: $0 [all|k8s|etcd|helm|kube-score|luatest|promtool|print-dir]" >&2; exit 2;;
esac
