# One image for the operator, the builder and the serving runtime (console scripts
# faiss-operator, faiss-index-builder, faiss-index-server, faissctl). Installs
# requirements-runtime.lock: the runtime dependencies only, pinned to exactly the versions of
# the tests' requirements.lock (no pytest, moto or linters in the image). Runs as non-root and
# works with a read-only root filesystem (all scratch space is /tmp, mounted as an emptyDir by
# the chart/operator). The base image is pinned to a patch release; bump it together with the
# locks. `make image` builds this file unchanged with buildah on a Debian base bootstrapped
# locally (hack/image/), passed as PYTHON_IMAGE; see docs/release.md.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements-runtime.lock ./
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-deps -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY indexops_api ./indexops_api
COPY indexops_store ./indexops_store
COPY faiss_operator ./faiss_operator
COPY index_builder ./index_builder
COPY index_serving ./index_serving
COPY faissctl ./faissctl
# The installer itself (pip, and the setuptools the venv seeds) is no runtime dependency.
RUN /opt/venv/bin/pip install --no-deps . && /opt/venv/bin/python -m pip uninstall -y -q pip setuptools

FROM ${PYTHON_IMAGE}
# faiss needs OpenMP's runtime; a base that already has it (the local Debian base) skips apt.
RUN (python -c "import ctypes; ctypes.CDLL('libgomp.so.1')" 2>/dev/null \
     || (apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*)) \
    && groupadd -g 65532 faiss && useradd -u 65532 -g 65532 -M -s /usr/sbin/nologin faiss
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TMPDIR=/tmp HOME=/tmp
USER 65532:65532
ENTRYPOINT []
CMD ["faiss-operator"]
