# Stand-in for python:3.11-slim-bookworm (no registry is reachable in CI): Debian's Python
# 3.11 with ca-certificates, and `python` and `pip` in /usr/local as the official image has
# them (a virtualenv there, so pip's files lie where the Dockerfile's final stage removes them).
ARG BASE
FROM $BASE
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /usr/local \
 && rm /usr/local/bin/activate* /usr/local/bin/Activate.ps1
ENV LANG=C.UTF-8
CMD ["python3"]
