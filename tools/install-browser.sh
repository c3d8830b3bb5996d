#!/usr/bin/env bash
# The headless browser the status page's tests drive: Debian's chromium and its driver.
# Idempotent: does nothing when both binaries are there. Debian's packages, not a
# browser download (Selenium Manager's), because the machines reach only the package
# registries; the tests point Selenium at /usr/bin/chromedriver for the same reason.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
DRIVER=/usr/bin/chromedriver

if [[ -x "$CHROMIUM" && -x "$DRIVER" ]]; then
    echo "install-browser: $CHROMIUM and $DRIVER are installed"
    exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
    echo "install-browser: $CHROMIUM or $DRIVER is missing; as root, run:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver" >&2
    # --optional (make test): the browser tests then skip, saying so; the rest still runs.
    [[ "${1:-}" == --optional ]] && exit 0
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver
"$CHROMIUM" --version
"$DRIVER" --version
