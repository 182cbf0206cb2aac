#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver (for the dashboard's browser tests)
# unless both are already on PATH. Browser downloads are not possible here; the
# Debian packages are, and chromedriver matches that chromium's version.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
echo "installing chromium and chromium-driver (Debian packages)..." >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >&2
