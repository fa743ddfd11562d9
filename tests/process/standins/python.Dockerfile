# Stand-in for python:3.11-slim-bookworm (no registry is reachable in CI): Debian's Python
# 3.11 with ca-certificates, and `python`, `pip` (and setuptools) in /usr/local as the
# official image has them: a virtualenv there, from which `python -m pip uninstall` removes
# them as it does from the official image.
ARG BASE
FROM $BASE
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      -o Dpkg::Options::=--force-unsafe-io \
      python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /usr/local \
 && rm /usr/local/bin/activate* /usr/local/bin/Activate.ps1
ENV LANG=C.UTF-8
CMD ["python3"]
