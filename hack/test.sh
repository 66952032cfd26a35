#!/usr/bin/env bash
# The test passes of `make test` (MODE=all) and `make test-e2e` (MODE=e2e), each timed:
# every step prints "[test] NAME: <s>s rc=<rc>" (.ci/run lists these lines at the end).
#
# `make test` overlaps the suites that wait with the one that computes. The e2e_serial pass and
# the quick chaos subset mostly wait on the stack (helm rollouts, leases, pauses; about a third
# of two cores busy), so the unit, tools, integration and security tests run beside them on
# TEST_WORKERS workers, their output kept in a file and printed when they end. The modules marked
# `alone` (latency bounds under attack) run first, before the stack starts, with nothing beside
# them. The e2e modules that share the default operator release run last on E2E_WORKERS workers:
# that pass keeps both cores busy by itself. Every pass runs even when an earlier one failed;
# the exit status is the first failure's.
set -uo pipefail
MODE=${1:?usage: hack/test.sh all|e2e}
PY=${PY:-.venv/bin/python}
STACK=("${PY}" -m hack.stack.stack)
read -r -a EXTRA <<<"${PYTEST_ARGS:-}"
workers() { (( $1 > 0 )) && echo "-n $1 --dist loadfile" || echo "-p no:xdist"; }
# shellcheck disable=SC2046 # word splitting of $(workers N) is intended
E2E_PARALLEL=("${PY}" -m pytest tests/e2e tests/security -m "e2e and not e2e_serial" -q $(workers "${E2E_WORKERS:-4}") --durations=12 "${EXTRA[@]}")
E2E_SERIAL=("${PY}" -m pytest tests/e2e tests/security -m "e2e and e2e_serial" -q --durations=12 "${EXTRA[@]}")
CHAOS_QUICK=("${PY}" -m pytest tests/chaos -m chaos_quick -q "${EXTRA[@]}")
STACKLESS=(tests/unit tests/integration tests/security)

status=0
timed() {  # timed NAME CMD...: run CMD, print its wall time and exit code, remember the first failure
  local name=$1 t0 rc=0; shift; t0=$(date +%s)
  "$@" || rc=$?
  echo "[test] ${name}: $(( $(date +%s) - t0 ))s rc=${rc}"
  (( status != 0 )) || status=${rc}
  return "${rc}"
}

if [[ "${MODE}" == e2e ]]; then
  timed e2e-serial "${E2E_SERIAL[@]}"
  timed e2e-parallel "${E2E_PARALLEL[@]}"
  exit "${status}"
fi
[[ "${MODE}" == all ]] || { echo "hack/test.sh: unknown mode ${MODE} (all|e2e)" >&2; exit 2; }

timed alone "${PY}" -m pytest "${STACKLESS[@]}" -m "alone and not e2e" -q -p no:xdist "${EXTRA[@]}"
timed stack-up "${STACK[@]}" up || exit "${status}"
trap '"${STACK[@]}" down --keep-logs' EXIT

stackless_log="$(mktemp)"
# One OpenMP thread per test process: FAISS's spinning threads would otherwise fight the e2e pods for the cores.
# shellcheck disable=SC2046
( OMP_NUM_THREADS=1 timed unit+integration "${PY}" -m pytest "${STACKLESS[@]}" -m "not e2e and not alone" -q \
    $(workers "${TEST_WORKERS:-1}") "${EXTRA[@]}" >"${stackless_log}" 2>&1; exit "${status}" ) &
stackless=$!

timed e2e-serial "${E2E_SERIAL[@]}"
timed chaos-quick "${CHAOS_QUICK[@]}"
wait "${stackless}" || { rc=$?; (( status != 0 )) || status=${rc}; }
echo "== the unit+integration pass (it ran beside e2e-serial and chaos-quick) =="
cat "${stackless_log}"; rm -f "${stackless_log}"
timed e2e-parallel "${E2E_PARALLEL[@]}"
exit "${status}"
