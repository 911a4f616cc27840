# CI only: a stand-in for python:3.11-slim-bookworm (no registry is reachable in CI): the Debian base from
# mmdebstrap with Debian's Python 3.11. CI's network re-signs TLS with CAs of its own (the host's extra CAs); pip
# gets them here, for the Cloud Map emulator image's `pip install` only.
ARG DEBIAN_IMAGE=local/debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
COPY extra-ca.crt /usr/local/share/ca-certificates/ci-extra-ca.crt
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && update-ca-certificates
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
