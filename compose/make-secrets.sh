#!/usr/bin/env bash
# Make every secret file the compose stack mounts (compose/docker-compose.yml, top-level `secrets:`), once.
#
#   sudo compose/make-secrets.sh [DIR]      # DIR defaults to compose/secrets next to this script
#
# Creates only what is missing and keeps what is there (a new pseudonymisation key would unlink every
# patient's events from their earlier ones; new Kafka passwords do not reach a broker already formatted:
# docs/security.md "Rotation"). Prints file names, never values. Needs bash, openssl and python3 (PBKDF2,
# standard library only).
#
# Kafka (three brokers, kafka-1, kafka-2 and kafka-3): kafka_cluster_id, the cluster id the three format their
# storage with; a private CA (its key is discarded once it has signed), the brokers' key and certificate for the
# names kafka-1, kafka-2, kafka-3, kafka and localhost in a PKCS12 keystore with a random password (one keystore,
# shared by the three); a random password per principal (broker, controller, admin, replay, worker, monitor,
# notifier), and kafka_scram_credentials: each SCRAM principal's salted SCRAM-SHA-512 credentials (salt,
# iterations, salted password; no password), which a broker adds when it formats its storage. The brokers never
# hold a service's password. A keystore made earlier whose certificate lacks one of the names is made anew, with
# a new CA (restart the brokers, then the bcfwatch services).
#
# Every file is mode 0600 except kafka_ca.pem, the public CA certificate (0644: the broker and every
# bcfwatch service read it). Run as root, the script gives each file to the container user that reads it
# (docker compose cannot set the owner or mode of a file secret: it bind-mounts the file as it is):
# uid 10001 (bcfwatch image, compose/Dockerfile), 1000 (apache/kafka's appuser), 472 (grafana); override
# with SECRETS_UID_BCFWATCH, SECRETS_UID_KAFKA, SECRETS_UID_GRAFANA. Run again as root to fix the owners
# of files made earlier.
set -euo pipefail
umask 077

dir=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secrets}
uid_bcfwatch=${SECRETS_UID_BCFWATCH:-10001}
uid_kafka=${SECRETS_UID_KAFKA:-1000}
uid_grafana=${SECRETS_UID_GRAFANA:-472}
CERT_DAYS=825
SCRAM_ITERATIONS=8192
# SCRAM principals: the broker itself and the admin are super users; every service has its own.
SCRAM_USERS=(broker admin replay worker monitor notifier)
# The names the brokers' certificate is valid for: each broker's compose service name (its advertised name, in
# BCFWATCH_BOOTSTRAP and KAFKA_CONTROLLER_QUORUM_VOTERS), "kafka" and localhost.
BROKER_NAMES=(kafka-1 kafka-2 kafka-3 kafka localhost)

fail() { echo "make-secrets: $*" >&2; exit 1; }
for tool in openssl python3; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done
mkdir -p "$dir"
chmod 0700 "$dir"

created=()
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# new NAME COMMAND...: write COMMAND's output to DIR/NAME unless it exists; true if it was made now.
new() {
  local name=$1 path=$dir/$1
  shift
  [[ -e $path ]] && return 1
  "$@" >"$work/new"
  [[ -s $work/new ]] || fail "could not make $name"
  chmod 0600 "$work/new"
  mv "$work/new" "$path"
  created+=("$name")
}

password() { openssl rand -hex 32; }
# A Kafka cluster id as `kafka-storage.sh random-uuid` makes one: 16 random bytes, base64url without padding, not
# starting with '-' (Kafka's Uuid.randomUuid draws again then, as a leading '-' reads as an option).
cluster_id() {
  python3 -c '
import base64, os
while True:
    value = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not value.startswith("-"):
        print(value)
        break
'
}
webhook_secret() { echo "whsec_$(openssl rand -base64 32)"; }

# -- passwords and keys --------------------------------------------------------------------------------
kafka_passwords_new=false
for user in "${SCRAM_USERS[@]}"; do
  if new "kafka_${user}_password" password; then kafka_passwords_new=true; fi
done
new kafka_controller_password password || true
new kafka_cluster_id cluster_id || true
new pseudonym_key openssl rand -hex 32 || true
new webhook_secret webhook_secret || true
new grafana_admin_password password || true

# -- SCRAM credentials the broker is formatted with -----------------------------------------------------
scram_credentials() {
  python3 - "$dir" "$SCRAM_ITERATIONS" "${SCRAM_USERS[@]}" <<'PY'
import base64
import hashlib
import os
import sys

folder, iterations, users = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for user in users:
    with open(os.path.join(folder, f"kafka_{user}_password"), encoding="utf-8") as handle:
        password = handle.read().strip()
    salt = os.urandom(32)
    # RFC 5802 Hi() is PBKDF2 with HMAC-SHA-512 and one 64-byte block, as Kafka's ScramFormatter computes it.
    salted = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    print(f'SCRAM-SHA-512=[name={user},iterations={iterations},'
          f'salt="{base64.b64encode(salt).decode()}",saltedpassword="{base64.b64encode(salted).decode()}"]')
PY
}
if [[ $kafka_passwords_new == true ]]; then
  rm -f "$dir/kafka_scram_credentials"
fi
new kafka_scram_credentials scram_credentials || true

# -- certificates: a private CA and the brokers' keystore -----------------------------------------------
new kafka_keystore_password password || true
# missing_names: the names of BROKER_NAMES the certificate in the existing keystore is not valid for (none when
# it cannot be read: it is then left as it is, as every file that is there).
missing_names() {
  local certificate=$work/existing.pem name
  openssl pkcs12 -in "$dir/kafka_keystore.p12" -passin "file:$dir/kafka_keystore_password" -nokeys -clcerts \
    -out "$certificate" 2>/dev/null || return 0
  for name in "${BROKER_NAMES[@]}"; do
    openssl x509 -in "$certificate" -noout -checkhost "$name" 2>/dev/null | grep -q "does match" || printf '%s ' "$name"
  done
}
if [[ -e $dir/kafka_keystore.p12 ]]; then
  missing=$(missing_names)
  if [[ -n $missing ]]; then
    echo "the brokers' certificate in $dir/kafka_keystore.p12 is not valid for ${missing% }: making a new CA and" \
      "keystore (restart the brokers, then the bcfwatch services)"
    rm -f "$dir/kafka_keystore.p12" "$dir/kafka_ca.pem"
  fi
fi
if [[ ! -e $dir/kafka_ca.pem || ! -e $dir/kafka_keystore.p12 ]]; then
  subject_alt_names=$(printf 'DNS:%s, ' "${BROKER_NAMES[@]}")
  cat >"$work/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = bcfwatch compose Kafka CA
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[broker]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = ${subject_alt_names%, }
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
  openssl req -x509 -new -config "$work/openssl.cnf" -extensions ca -newkey rsa:3072 -nodes -sha256 \
    -days "$CERT_DAYS" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
  openssl req -new -newkey rsa:3072 -nodes -subj "/CN=kafka" -keyout "$work/broker.key" -out "$work/broker.csr" \
    2>/dev/null
  openssl x509 -req -in "$work/broker.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$CERT_DAYS" -sha256 \
    -extfile "$work/openssl.cnf" -extensions broker -out "$work/broker.pem" 2>/dev/null
  openssl verify -CAfile "$work/ca.pem" "$work/broker.pem" >/dev/null || fail "the broker certificate does not verify"
  openssl pkcs12 -export -name kafka -inkey "$work/broker.key" -in "$work/broker.pem" -certfile "$work/ca.pem" \
    -passout "file:$dir/kafka_keystore_password" -out "$work/kafka_keystore.p12"
  chmod 0600 "$work/kafka_keystore.p12"
  chmod 0644 "$work/ca.pem"
  mv "$work/kafka_keystore.p12" "$dir/kafka_keystore.p12"
  mv "$work/ca.pem" "$dir/kafka_ca.pem"
  created+=(kafka_keystore.p12 kafka_ca.pem)
  missing=$(missing_names)
  [[ -z $missing ]] || fail "the new broker certificate is not valid for ${missing% }"
fi

# -- owners ------------------------------------------------------------------------------------------------
owner_of() {
  case $1 in
    kafka_broker_password | kafka_controller_password | kafka_keystore_password | kafka_keystore.p12 | \
      kafka_scram_credentials | kafka_cluster_id) echo "$uid_kafka" ;;
    grafana_admin_password) echo "$uid_grafana" ;;
    kafka_ca.pem) echo "" ;;
    *) echo "$uid_bcfwatch" ;;
  esac
}
owned=false
if [[ $(id -u) -eq 0 ]]; then
  for path in "$dir"/*; do
    name=$(basename "$path")
    [[ $name == README* || ! -f $path ]] && continue
    uid=$(owner_of "$name")
    [[ -n $uid ]] && chown "$uid" "$path"
  done
  owned=true
fi

if ((${#created[@]})); then
  echo "made in $dir: ${created[*]}"
else
  echo "every secret was already in $dir; nothing made"
fi
if [[ $owned == false ]]; then
  echo "not run as root: the files belong to uid $(id -u); the containers read them as uid $uid_bcfwatch" \
    "(bcfwatch), $uid_kafka (kafka) and $uid_grafana (grafana): run \`sudo $0 $dir\` to give each its owner"
fi
if [[ $kafka_passwords_new == true ]]; then
  echo "new Kafka passwords: a broker reads kafka_scram_credentials only when it formats an empty kafka-N-data" \
    "volume (docs/security.md, Rotation)"
fi
