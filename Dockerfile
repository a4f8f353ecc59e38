# syntax=docker/dockerfile:1
#
# email-worker: `docker run IMAGE` serves the Pub/Sub push endpoint on $PORT (default 8080);
# `docker run IMAGE pull` streams from the subscription instead. Configuration is by
# environment variables (see the README); the image holds no credentials.
#
# Both stages use the same base image, so the virtual environment built in the first finds
# its interpreter at the same path in the second. It is pinned by digest: the tag moves with
# every rebuild of the official image, the digest names these exact bytes. To update, take the
# new index digest of the tag (`docker buildx imagetools inspect python:3.11-slim-bookworm`, or
# docker-library/repo-info's repos/python/remote/3.11-slim-bookworm.md) and rebuild.
ARG PYTHON_DIGEST=sha256:fe556eaffd0d96abd8685b83bb8a69addd0dc730fa193669a7df0d49ddcfac02

# ---- builder: resolve nothing, install exactly what uv.lock says into /opt/venv ----------
FROM python:3.11-slim-bookworm@${PYTHON_DIGEST} AS builder

WORKDIR /src

# uv, hash-pinned: tools/uv-requirements.txt names its version and the sha256 of each of its
# files, and pip refuses anything else (the Makefile installs uv from the same file).
COPY tools/uv-requirements.txt ./tools/
RUN pip install --no-cache-dir --require-hashes --no-deps -r tools/uv-requirements.txt

ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1

# Dependencies first, in their own layer: it is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the worker itself, as a regular (non-editable) install: /src is not needed at run time.
COPY README.md ./
COPY worker ./worker
RUN uv sync --frozen --no-dev --no-editable

# ---- runtime: the interpreter, the virtual environment and an unprivileged user ----------
FROM python:3.11-slim-bookworm@${PYTHON_DIGEST}

# OCI annotations: what the image is, which commit it was built from, and its base. The CI
# that builds the image passes VERSION, REVISION (the commit) and CREATED (RFC 3339).
ARG PYTHON_DIGEST
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="email-worker" \
    org.opencontainers.image.description="Pub/Sub-driven email sender for Google Cloud that sends through Amazon SES" \
    org.opencontainers.image.licenses="MIT" \
    org.opencontainers.image.version="${VERSION}" \
    org.opencontainers.image.revision="${REVISION}" \
    org.opencontainers.image.created="${CREATED}" \
    org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm" \
    org.opencontainers.image.base.digest="${PYTHON_DIGEST}"

ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" worker \
    && useradd --system --uid "${APP_UID}" --gid worker --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin worker

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8080 \
    EMAIL_WORKER_LEDGER=sqlite:////tmp/email-worker-ledger.db

USER ${APP_UID}:${APP_UID}
EXPOSE 8080

# No HEALTHCHECK: Cloud Run ignores it and probes /readyz and /healthz itself (terraform/run.tf).
# checkov:skip=CKV_DOCKER_2: Cloud Run ignores HEALTHCHECK; its startup and liveness probes are in terraform/run.tf
# Exec form, no shell: email-worker is PID 1 and receives SIGTERM directly to drain in-flight work.
ENTRYPOINT ["email-worker"]
CMD ["serve"]
