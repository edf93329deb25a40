#!/usr/bin/env bash
# Installs fieldgate's build, test and demo dependencies from Debian 12
# when any is missing.  Idempotent and quick when everything is present.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libuv1-dev libmodbus-dev libxml2-dev libgnutls28-dev libyaml-dev
  libcmocka-dev
  prosody gnutls-bin python3-slixmpp python3-pymodbus mbpoll socat
  procps iproute2
  # pymodbus's client imports serial and serial_asyncio (only Recommends of
  # python3-pymodbus, which --no-install-recommends leaves out).
  python3-serial python3-serial-asyncio
  # tests/integration/test_systemd_unit.py: systemd-analyze, and the unit's
  # sandbox applied without systemd as PID 1 (scripts/unit-sandbox.py).
  systemd bubblewrap python3-seccomp util-linux
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian starts prosody's system service on install where it can; the tests
# run their own private instance, so keep the packaged one from starting.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
