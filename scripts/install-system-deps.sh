#!/usr/bin/env bash
# Debian packages some features need (listed in scripts/system-packages.txt, one per line, '#'
# comments). Installed by `make install` when missing and apt-get can run (root or passwordless
# sudo); otherwise each missing one is named once and the tests that need it skip with that reason.
set -u
list="$(dirname "$0")/system-packages.txt"
[ -f "$list" ] || exit 0
missing=()
while read -r pkg _; do
  [ -z "$pkg" ] && continue
  case "$pkg" in \#*) continue ;; esac
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done <"$list"
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then apt=(apt-get); elif sudo -n true 2>/dev/null; then apt=(sudo -n apt-get); else apt=(); fi
if [ ${#apt[@]} -eq 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: Debian packages not installed (no root/apt): ${missing[*]}; tests that need them will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
"${apt[@]}" install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || { "${apt[@]}" update -q >/dev/null 2>&1 && "${apt[@]}" install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } \
  || echo "note: could not install ${missing[*]}; tests that need them will skip" >&2
exit 0
