#!/usr/bin/env bash
# System packages the set-up needs besides Python and npm, from Debian's archive:
#   bubblewrap  sandbox for the students' code when nbgrader autogrades (cnnbook/sandbox.py)
#   chromium    the browser tests open the built website the way a student does
#               (Playwright's own browser download does not work offline; CNNBOOK_CHROMIUM overrides)
#   postgresql  the gradebook tests start a real PostgreSQL server (tests/pg.py); only its binaries are used
# Installed with apt-get when run as root; otherwise this prints how to install them.
set -euo pipefail
CHROMIUM="${CNNBOOK_CHROMIUM:-/usr/bin/chromium}"
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
[ -x "$CHROMIUM" ] || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  command -v bwrap >/dev/null || { echo "error: apt-get installed bubblewrap but bwrap is still missing." >&2; exit 1; }
  [ -x "$CHROMIUM" ] || { echo "error: apt-get installed chromium but $CHROMIUM is still missing; set CNNBOOK_CHROMIUM=/path/to/chromium." >&2; exit 1; }
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "error: apt-get installed postgresql but /usr/lib/postgresql/*/bin/initdb is still missing." >&2; exit 1; }
else
  echo "warning: missing system packages: ${missing[*]}. Install them (Debian/Ubuntu: sudo apt-get install ${missing[*]})." >&2
  echo "  Without bubblewrap, nbgrader autograde refuses to run students' code; without Chromium the browser tests are skipped;" >&2
  echo "  without PostgreSQL the gradebook tests (tests/test_gradebook_postgres.py) fail." >&2
fi
