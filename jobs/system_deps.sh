#!/usr/bin/env bash
# Install the Debian packages named in $DEBS when running as root with apt; otherwise say what is missing.
set -euo pipefail
missing=()
for pkg in ${DEBS:-espeak-ng flite libportaudio2}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
elif command -v dpkg >/dev/null 2>&1; then
  echo "kws-hpc: missing system packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
else
  for tool in espeak-ng flite; do
    command -v "$tool" >/dev/null 2>&1 || echo "kws-hpc: $tool not found (macOS: brew install espeak-ng flite portaudio)" >&2
  done
fi
