#!/usr/bin/env bash
# Install Debian's nodejs and npm (for the TypeScript SDK test) unless npm is on PATH.
set -euo pipefail
if command -v node >/dev/null && command -v npm >/dev/null; then
  exit 0
fi
echo "installing nodejs and npm (Debian packages)..." >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >&2
