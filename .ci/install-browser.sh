#!/usr/bin/env sh
# Installs Debian's Chromium and chromedriver for the dashboard's browser
# test (crates/ai-usage-server/tests/e2e_browser.rs), only when missing.
# Non-interactive; needs root (or sudo) and the Debian package mirrors.
# Also installs a small CJK font so the (Chinese) dashboard screenshot shows
# characters instead of boxes.
set -eu

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] \
    && fc-list :lang=zh 2>/dev/null | grep -q .; then
    echo "chromium and chromedriver already installed:"
    /usr/bin/chromium --version 2>/dev/null || true
    /usr/bin/chromedriver --version 2>/dev/null || true
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-browser.sh: need root or sudo to run apt-get" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium chromium-driver fonts-wqy-zenhei

/usr/bin/chromium --version
/usr/bin/chromedriver --version
