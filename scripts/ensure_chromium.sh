#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the tester console's browser tests
# (tests/e2e/test_console.py drives it with Playwright; Playwright never downloads a browser),
# with a Thai font (Loma, 264 kB) so Thai labels render in the screenshots. Installs only what
# is missing; needs root (CI runs as root).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
dpkg-query -W -f='${Status}' fonts-tlwg-loma-otf 2>/dev/null | grep -q "ok installed" \
  || missing+=(fonts-tlwg-loma-otf)
if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "ensure_chromium: missing ${missing[*]}; as root: apt-get install ${missing[*]}" >&2
  [ -x /usr/bin/chromium ] && exit 0  # the font only improves screenshots
  exit 1
fi
echo "ensure_chromium: installing ${missing[*]} (browser tests of the console)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq "${missing[@]}" >&2
test -x /usr/bin/chromium
