#!/usr/bin/env bash
# Make headless Chromium available for the report's browser test (tests/reports/test_browser.py).
# Installs Debian's `chromium` package when no Chromium is on PATH; a no-op otherwise.
# Without root or apt-get it says why and exits 0: the browser test then skips with that reason.
set -euo pipefail

for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "browser.sh: using $(command -v "$name") ($("$name" --version 2>/dev/null || echo 'version unknown'))"
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser.sh: no Chromium and no apt-get here; the browser test will be skipped" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "browser.sh: installing chromium needs root; the browser test will be skipped" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
echo "browser.sh: installed $(command -v chromium) ($(chromium --version 2>/dev/null || echo 'version unknown'))"
