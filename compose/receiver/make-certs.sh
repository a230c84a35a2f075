#!/usr/bin/env bash
# Make the webhook receiver's TLS files for compose/check.yml, once, in DIR (default compose/secrets):
#   receiver_ca.pem         a private CA certificate (the notifier's subscription names it as ca_file)
#   receiver_tls_cert.pem   the receiver's certificate for the name webhook-receiver, signed by that CA
#   receiver_tls_key.pem    its key (mode 0600, given to the bcfwatch image's uid 10001 when run as root)
# The CA's key is discarded once it has signed. Needs openssl.
set -euo pipefail
umask 077
dir=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/secrets}
[[ -s $dir/receiver_tls_cert.pem && -s $dir/receiver_tls_key.pem && -s $dir/receiver_ca.pem ]] && exit 0
command -v openssl >/dev/null || { echo "make-certs: openssl is not installed" >&2; exit 1; }
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=bcfwatch webhook receiver CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=webhook-receiver" -keyout "$work/key.pem" -out "$work/req.csr" \
  2>/dev/null
printf 'subjectAltName=DNS:webhook-receiver,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$work/ext"
openssl x509 -req -in "$work/req.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 825 \
  -extfile "$work/ext" -out "$work/cert.pem" 2>/dev/null
install -m 0644 "$work/ca.pem" "$dir/receiver_ca.pem"
install -m 0644 "$work/cert.pem" "$dir/receiver_tls_cert.pem"
install -m 0600 "$work/key.pem" "$dir/receiver_tls_key.pem"
[[ $(id -u) -eq 0 ]] && chown "${SECRETS_UID_BCFWATCH:-10001}" "$dir/receiver_tls_key.pem"
echo "made in $dir: receiver_ca.pem receiver_tls_cert.pem receiver_tls_key.pem"
