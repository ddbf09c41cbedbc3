# syntax=docker/dockerfile:1
# The clock on the official Python slim image, as a non-root user.
# Decisions and measured sizes: docs/IMAGES.md.

# Exact version and the digest docker-library published for it (repo-info,
# python:3.13.14-slim-trixie, multi-arch index). Override to use a mirror.
ARG PYTHON_IMAGE=python:3.13.14-slim-trixie@sha256:9662417aace5ae7b8e2609cce472b72a8958e134ba372808abe9cc1a0c0125e6

# --- dependencies: a venv without pip, from the hash-pinned lock file -------
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv --without-pip /opt/venv
# Only the lock file first, so a code change does not reinstall dependencies.
COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip --python /opt/venv/bin/python install \
        --require-hashes --no-deps --no-compile -r /tmp/requirements.txt \
 && python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib
# Compile the gettext catalogues here, where Babel's tools are; then keep only
# the CLDR data and zones the service uses (~38 MB less; docs/IMAGES.md).
COPY moscow_clock/translations /build/translations
COPY scripts/prune-site-packages /build/prune-site-packages
RUN /opt/venv/bin/python -m babel.messages.frontend -q compile --domain messages \
        --directory /build/translations \
 && python /build/prune-site-packages /opt/venv/lib/python3.13/site-packages /build/translations
# The static files' gzip and brotli variants, made here where brotli is
# installed; the runtime serves them and does without the module (~5 MB;
# moscow_clock/web/assets.py, docs/page-delivery.md).
COPY static /build/static
COPY moscow_clock/web/assets.py /build/assets.py
RUN /opt/venv/bin/python /build/assets.py /build/static \
 && find /opt/venv/lib -name '*brotli*' -prune -exec rm -rf {} +

# --- the app, compiled once so a read-only container never needs to ------
FROM ${PYTHON_IMAGE} AS app
COPY moscow_clock /app/moscow_clock
RUN python -m compileall -q --invalidation-mode unchecked-hash /app/moscow_clock

# --- runtime ----------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
# Where the code lives; CI passes the repository URL (docs/IMAGES.md).
ARG SOURCE=""
LABEL org.opencontainers.image.title="moscow_clock" \
      org.opencontainers.image.description="The exact time in Moscow, live in the browser" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="python:3.13.14-slim-trixie"

# A fixed uid/gid with no login shell and no home; it owns nothing in the image.
RUN groupadd --system --gid 10001 clock \
 && useradd --system --uid 10001 --gid clock --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin clock

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000

COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY templates /app/templates
COPY --from=deps /build/static /app/static
COPY --from=app /app/moscow_clock /app/moscow_clock
COPY --from=deps /build/translations /app/moscow_clock/translations

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-m", "moscow_clock.healthcheck"]
# Exec form: the server is PID 1 and gets SIGTERM itself (graceful drain, 1001).
CMD ["python", "-m", "moscow_clock"]
