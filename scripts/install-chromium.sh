#!/usr/bin/env bash
# Chromium is needed only by the browser tests (tests/test_site_browser.py), which open the built
# website the way a student does. Playwright's own browser download cannot be used offline, so
# the tests drive the distribution's Chromium at /usr/bin/chromium (override with CNNBOOK_CHROMIUM).
set -euo pipefail
CHROMIUM="${CNNBOOK_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Chromium not found at $CHROMIUM: installing Debian's chromium package (for the browser tests)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [ -x "$CHROMIUM" ] || { echo "error: apt-get installed chromium but $CHROMIUM is still missing; set CNNBOOK_CHROMIUM=/path/to/chromium." >&2; exit 1; }
else
  echo "warning: Chromium not found at $CHROMIUM, so the browser tests will be skipped. To run them, install Chromium (Debian/Ubuntu: sudo apt-get install chromium; others: any Chromium or Chrome build) and, if it is not at /usr/bin/chromium, set CNNBOOK_CHROMIUM=/path/to/chromium." >&2
fi
