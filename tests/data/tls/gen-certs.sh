#!/usr/bin/env bash
# gen-certs.sh OUTDIR [NAME...] - a throwaway CA and a server certificate for
# test peers (Prosody in the integration tests), made with GnuTLS certtool.
# Nothing is committed: keys are generated fresh into OUTDIR each run.
#
# Writes OUTDIR/ca.pem (the trust anchor for fieldgate's xmpp.ca_file),
# OUTDIR/ca-key.pem, OUTDIR/server.pem (leaf certificate) and
# OUTDIR/server-key.pem.  NAMEs become dNSName entries (default:
# localhost); 127.0.0.1 and ::1 are always added as iPAddress entries.
# The unit tests (tests/unit/test_xs_tls.c) do not use this script: they
# generate their certificates in-process with the GnuTLS x509 API.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 OUTDIR [NAME...]" >&2
  exit 2
fi
out=$1
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(localhost)
command -v certtool >/dev/null || { echo "certtool not found (gnutls-bin)" >&2; exit 77; }
mkdir -p "$out"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/ca.tmpl" <<TMPL
cn = "fieldgate test CA"
ca
cert_signing_key
crl_signing_key
expiration_days = 30
TMPL

{
  echo "cn = \"${names[0]}\""
  for n in "${names[@]}"; do echo "dns_name = \"$n\""; done
  echo 'ip_address = "127.0.0.1"'
  echo 'ip_address = "::1"'
  echo 'signing_key'
  echo 'encryption_key'
  echo 'tls_www_server'
  echo 'expiration_days = 30'
} >"$tmp/server.tmpl"

certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
  --outfile "$out/ca-key.pem" 2>/dev/null
certtool --generate-self-signed --load-privkey "$out/ca-key.pem" \
  --template "$tmp/ca.tmpl" --outfile "$out/ca.pem" 2>/dev/null
certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
  --outfile "$out/server-key.pem" 2>/dev/null
certtool --generate-certificate --load-privkey "$out/server-key.pem" \
  --load-ca-certificate "$out/ca.pem" --load-ca-privkey "$out/ca-key.pem" \
  --template "$tmp/server.tmpl" --outfile "$out/server.pem" 2>/dev/null
chmod 0644 "$out/ca.pem" "$out/server.pem"
echo "$out/ca.pem $out/server.pem $out/server-key.pem"
