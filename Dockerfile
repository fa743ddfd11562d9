# Two stages: the first builds the project's wheel and installs it into a virtualenv; the
# second copies only that virtualenv onto a fresh slim base, so no source tree, wheel, pip
# cache or build tool reaches the image. tests/process/test_container.py builds it and runs it
# with compose.yaml on a real engine; tests/process/test_deploy.py reads it with Docker's own
# parser.

FROM python:3.11-slim-bookworm AS build
# Certificates (PEM text) that the build's pip trusts besides the base image's own, for a
# network that re-signs TLS (a TLS-inspecting proxy): --build-arg EXTRA_CA_CERTS="$(cat ca.pem)".
# Empty by default. It exists in this stage only, which the image does not keep.
ARG EXTRA_CA_CERTS=""
# The venv has no pip of its own: the base image's pip installs into it (--python).
RUN python -m venv --without-pip /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY coordinator ./coordinator
# Every dependency ships a manylinux wheel, so nothing compiles here either.
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
      cat /etc/ssl/certs/ca-certificates.crt > /tmp/ca.pem \
      && printf '%s\n' "$EXTRA_CA_CERTS" >> /tmp/ca.pem \
      && export PIP_CERT=/tmp/ca.pem; \
    fi \
 && pip --python /opt/venv/bin/python install --no-cache-dir --disable-pip-version-check \
      --root-user-action=ignore .

FROM python:3.11-slim-bookworm
# The base image's own pip (and setuptools, wheel) go: nothing installs anything at run time.
# A fixed uid, so volumes and Kubernetes' runAsNonRoot can rely on it; no home, no shell.
RUN python -m pip uninstall --yes --quiet --root-user-action=ignore pip setuptools wheel \
 && groupadd --gid 10001 coordinator \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin coordinator
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
# The slim base has no curl: the standard library asks /health, which answers 503 when
# Redis does not, so Docker marks a replica cut off from Redis unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/health', timeout=2)"]
# Exec form: coordinator is PID 1 and gets the SIGTERM of `docker stop` itself (it then
# finishes the requests in flight and exits).
CMD ["coordinator", "serve", "--host", "0.0.0.0", "--port", "8080"]
