# One image for the operator, the builder and the serving runtime (console scripts
# faiss-operator, faiss-index-builder, faiss-index-server). Installs the same
# requirements.lock as the tests. Runs as non-root and works with a read-only root
# filesystem (all scratch space is /tmp, mounted as an emptyDir by the chart/operator).
# The base image is pinned to a patch release; bump it together with requirements.lock.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY indexops_api ./indexops_api
COPY indexops_store ./indexops_store
COPY faiss_operator ./faiss_operator
COPY index_builder ./index_builder
COPY index_serving ./index_serving
COPY faissctl ./faissctl
RUN /opt/venv/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/* \
    && groupadd -g 65532 faiss && useradd -u 65532 -g 65532 -M -s /usr/sbin/nologin faiss
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TMPDIR=/tmp HOME=/tmp
USER 65532:65532
ENTRYPOINT []
CMD ["faiss-operator"]
