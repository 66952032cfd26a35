# faiss-index-operator — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY_VERSION ?= 3.11
VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.9.30
STACK_DIR ?= $(CURDIR)/.stack
export FAISS_STACK_DIR := $(STACK_DIR)
STACK := $(PY) -m hack.stack.stack
PYTEST_ARGS ?=
# Parallel test workers (pytest-xdist, --dist loadfile), passed to hack/test.sh. The e2e suite
# mostly waits on the stack, so 4 workers overlap that waiting on 2 cores; modules marked
# e2e_serial (they change the shared operator release) run alone. In `make test` the stackless
# tests (unit, tools, integration, security) run on TEST_WORKERS workers beside the e2e_serial
# and chaos passes, which leave most of the machine idle. 0: no xdist.
E2E_WORKERS ?= 4
TEST_WORKERS ?= 1
TEST_SH := PY=$(PY) E2E_WORKERS=$(E2E_WORKERS) TEST_WORKERS=$(TEST_WORKERS) PYTEST_ARGS="$(PYTEST_ARGS)" bash hack/test.sh

##@ Setup
.PHONY: install
install: $(VENV)/.installed ## Create .venv from requirements.lock (fast, repeatable)

$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || python$(PY_VERSION) -m pip install -q "uv==$(UV_VERSION)"
	@test -x $(PY) || uv venv -q --python python$(PY_VERSION) $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip sync -q requirements.lock
	VIRTUAL_ENV=$(VENV) uv pip install -q --no-deps -e .
	@touch $@

.PHONY: lock
lock: ## Re-resolve requirements.lock (dev) and requirements-runtime.lock (the image's subset, same pins)
	uv pip compile pyproject.toml --extra dev --python-version $(PY_VERSION) -o requirements.lock
	{ printf '%s\n' "# Runtime dependencies only (what the image installs): uv pip compile pyproject.toml without the dev" \
	    "# extra, constrained to requirements.lock so every pin equals the test lock's (\`make lock\` writes both)."; \
	  uv pip compile -q pyproject.toml -c requirements.lock --python-version $(PY_VERSION) --no-header; } > requirements-runtime.lock

.PHONY: tools-deps
tools-deps: ## Install promtool from Debian's prometheus package when missing (else it is built)
	@command -v promtool >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q --no-install-recommends prometheus; } \
	  || echo "[tools] Debian's prometheus package (promtool) not installable here; building promtool instead" >&2

.PHONY: tools
tools: tools-deps ## Build etcd, kube-apiserver, kube-controller-manager, helm, kube-score from Go modules, concurrently (cached in ~/.cache)
	bash hack/build-tools.sh all

##@ Development
.PHONY: generate
generate: install ## Regenerate the CRD (crds/ and the chart) from the pydantic models
	$(PY) -m hack.generate

.PHONY: lint
lint: install ## Layering contracts (import-linter) and generated-file drift
	$(VENV)/bin/lint-imports
	$(PY) -m hack.generate --check

##@ Image (buildah, no Docker engine; see docs/release.md)
IMAGE ?= localhost/faiss-index-operator:dev

.PHONY: image-deps
image-deps: ## Install buildah and mmdebstrap from Debian's packages when missing
	@command -v buildah >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1 \
	  || { apt-get update -q && apt-get install -y -q buildah mmdebstrap; }

.PHONY: image
image: image-deps ## Build the image (IMAGE=localhost/faiss-index-operator:dev) from the Dockerfile (buildah, chroot isolation, local Debian base)
	IMAGE=$(IMAGE) bash hack/image/build.sh

.PHONY: test-image
test-image: install tools image ## Run each program from the image's root filesystem as uid 65532, read-only root (starts and stops the stack)
	$(STACK) up
	set -o pipefail; FAISS_IMAGE=$(IMAGE) $(PY) -m pytest tests/image -q $(PYTEST_ARGS); rc=$$?; $(STACK) down --keep-logs; exit $$rc

##@ Local stack (dev/test infrastructure, see hack/stack/)
.PHONY: stack-up
stack-up: install tools ## Start etcd, kube-apiserver, kube-controller-manager, node agent, S3 (moto)
	$(STACK) up

.PHONY: stack-down
stack-down: ## Stop the local stack and every process it started (logs stay in .stack/; `make clean` removes them)
	@test -x $(PY) && $(STACK) down --keep-logs || true

.PHONY: stack-status
stack-status: ## Show the local stack's components
	$(STACK) status

##@ Demo and tests
.PHONY: demo
demo: stack-up ## Full walkthrough: helm install, sample index, wait Ready, query, describe
	$(PY) -m hack.demo

.PHONY: walkthrough
walkthrough: stack-up ## Regenerate docs/walkthrough.md from a real run (demo, migration, rollback, failing source)
	$(PY) -m hack.walkthrough

.PHONY: test-unit
test-unit: install ## Pure unit tests (no network, no Go-built tool)
	$(PY) -m pytest tests/unit -m "not tools" -q $(PYTEST_ARGS)

.PHONY: test-tools
test-tools: install tools ## Unit tests that run a pinned Go-built tool: helm template, kube-score, promtool, luatest
	$(PY) -m pytest tests/unit -m tools -q $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: install ## Integration tests (real S3 server on loopback)
	$(PY) -m pytest tests/integration -q $(PYTEST_ARGS)

.PHONY: test-security
test-security: install ## Tenant attacks without the stack (tests/security; the e2e part runs with test-e2e)
	$(PY) -m pytest tests/security -m "not e2e" -q $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: stack-up ## End-to-end tests against the local stack (operator installed by helm; e2e_serial alone, then E2E_WORKERS parallel)
	$(TEST_SH) e2e

.PHONY: test
test: install lint tools ## Everything: unit, tools, integration, security and e2e (starts and stops the stack; hack/test.sh)
	$(TEST_SH) all

.PHONY: chaos
chaos: install tools ## Every chaos scenario (tests/chaos: faults injected into the local stack; ~25 min), stack started and stopped
	$(STACK) up
	set -o pipefail; $(PY) -m pytest tests/chaos -q -s $(PYTEST_ARGS); rc=$$?; $(STACK) down --keep-logs; exit $$rc

.PHONY: bench
bench: install ## Benchmarks, each against a baseline in the same run (results under bench/results/)
	@test ! -f bench/requirements.txt || VIRTUAL_ENV=$(VENV) uv pip install -q -r bench/requirements.txt
	$(PY) -m bench.run
	@test ! -f bench/builder_bench.py || $(PY) bench/builder_bench.py
	@test ! -f bench/serving_bench.py || $(PY) bench/serving_bench.py
	@test ! -f bench/scale_bench.py || $(PY) bench/scale_bench.py
	@test ! -f bench/scale_slice_reads.py || $(PY) bench/scale_slice_reads.py

.PHONY: bench-scale-quick
bench-scale-quick: install ## Scale-out benchmark on 100k vectors (1 vs 2 vs 4 shards; bench/results/scale-quick.*)
	$(PY) bench/scale_bench.py --quick

.PHONY: bench-scale-control-plane
bench-scale-control-plane: install tools ## One operator, 1,000 FaissIndexes at idle (starts/stops the stack; BENCH_ARGS=...)
	$(STACK) up
	set -o pipefail; $(PY) -m bench.scale_control_plane $(BENCH_ARGS); rc=$$?; $(STACK) down; exit $$rc

.PHONY: bench-minilm
bench-minilm: install ## Builder bench on all-MiniLM-L6-v2 sentence embeddings (own torch venv, ~3 GB, made on first use)
	@test ! -f bench/requirements.txt || VIRTUAL_ENV=$(VENV) uv pip install -q -r bench/requirements.txt
	$(PY) bench/builder_bench.py --dataset minilm --n 50000 --queries 1000 --no-autofaiss $(BENCH_ARGS)

.PHONY: clean
clean: stack-down ## Remove the venv, stack state and logs (the Go tool cache stays)
	rm -rf $(VENV) $(STACK_DIR) .pytest_cache

##@ Help
.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)
