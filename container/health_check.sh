#!/bin/sh
# The image's health check: Docker's HEALTHCHECK, and the ECS relay container's `CMD-SHELL /health_check.sh`.
# Exits 0 when the running agent reports HEALTHY over its management socket or port, 1 otherwise.
# AGENT_BINARY is for tests; in the image the agent is /usr/bin/agent.
exec "${AGENT_BINARY:-/usr/bin/agent}" healthcheck
