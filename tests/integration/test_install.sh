#!/bin/bash
# Integration: `cmake --install` lays out what the Debian package ships
# (scripts/package.sh packs the same tree with CPack), the installed map is
# valid for the installed binary, and the maintainer scripts are sound.
set -euo pipefail
build=${FG_BUILD_DIR:?}
src=${FG_SOURCE_DIR:?}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

DESTDIR="$dest" cmake --install "$build" --prefix /usr >/dev/null
for f in usr/bin/fieldgate usr/bin/fieldgate-sim \
         usr/lib/systemd/system/fieldgate.service \
         etc/fieldgate/fieldgate.yaml usr/share/doc/fieldgate/README.md \
         usr/share/doc/fieldgate/device-map.md; do
  [ -e "$dest/$f" ] || { echo "not installed: /$f"; exit 1; }
done
unit="$dest/usr/lib/systemd/system/fieldgate.service"
grep -q '^Type=notify$' "$unit"
grep -q '^WatchdogSec=' "$unit"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$unit"
grep -q '^ExecStart=/usr/bin/fieldgate run -c /etc/fieldgate/fieldgate.yaml$' "$unit"
"$dest/usr/bin/fieldgate" check -c "$dest/etc/fieldgate/fieldgate.yaml" >/dev/null
for s in postinst prerm postrm; do
  sh -n "$src/packaging/debian/$s"
  [ -x "$src/packaging/debian/$s" ] || { echo "$s is not executable"; exit 1; }
done
grep -qx /etc/fieldgate/fieldgate.yaml "$src/packaging/debian/conffiles"
echo "test_install: 1 passed, 0 failed"
