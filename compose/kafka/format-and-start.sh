#!/usr/bin/env bash
# Entry point of each of the compose stack's three Kafka nodes (kafka-1, kafka-2, kafka-3; apache/kafka:3.9.2), in
# place of the image's /etc/kafka/docker/run:
#
# 1. reads the broker's own secrets and the cluster id from /run/secrets (compose/make-secrets.sh makes them) and
#    fails, naming the file, when one is missing or malformed;
# 2. on the first start (an empty kafka-N-data volume) formats the KRaft storage with the cluster id of
#    kafka_cluster_id (the same for the three nodes: a node formatted with another id cannot join the quorum) and
#    every principal's SCRAM-SHA-512 credentials from kafka_scram_credentials (KIP-900: the users exist before the
#    first client connects; the image's own entry point formats without them). The credentials are salted, not
#    passwords. A volume formatted before must hold the same cluster id, or the node does not start;
# 3. exports the settings that hold secrets (listener JAAS configs, keystore password) for this process only and
#    hands over to the image's entry point, which writes server.properties from the KAFKA_* environment
#    (compose/docker-compose.yml plus these) and starts the broker.
#
# It also writes the health check's client settings (the broker principal, verifying the CA) to
# /opt/kafka/config/healthcheck.properties, mode 0600. Nothing secret is printed (the cluster id is not secret).
set -euo pipefail
umask 077

secrets=/run/secrets
data=${KAFKA_LOG_DIRS:?KAFKA_LOG_DIRS must name the data directory}
data=${data%%,*}
kafka_bin=/opt/kafka/bin

fail() { echo "format-and-start: $*" >&2; exit 1; }

# secret NAME: the one-line password in /run/secrets/NAME (letters, digits, '-' and '_': it goes into JAAS configs).
secret() {
  local file=$secrets/$1 value
  [[ -r $file ]] || fail "cannot read $file: run compose/make-secrets.sh (docs/operations.md)"
  value=$(<"$file")
  value=${value%$'\n'}
  [[ $value =~ ^[A-Za-z0-9_-]{16,}$ ]] || fail "$file must hold one password: 16 or more letters, digits, '-' or '_'"
  printf '%s' "$value"
}

# read_cluster_id FILE: the cluster id in FILE, one line: a Kafka Uuid as kafka-storage.sh random-uuid prints it
# (16 bytes, base64url without padding: 22 characters, not starting with '-').
read_cluster_id() {
  local file=$1 value
  [[ -r $file ]] || fail "cannot read $file (the cluster id every node formats with): run compose/make-secrets.sh"
  value=$(<"$file")
  value=${value%$'\n'}
  [[ $value =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{20}[AQgw]$ ]] \
    || fail "$file must hold one Kafka cluster id: 22 base64url characters (kafka-storage.sh random-uuid)"
  printf '%s' "$value"
}

broker_password=$(secret kafka_broker_password)
controller_password=$(secret kafka_controller_password)
keystore_password=$(secret kafka_keystore_password)
[[ -r $secrets/kafka_keystore ]] || fail "cannot read $secrets/kafka_keystore: run compose/make-secrets.sh"
[[ -r $secrets/kafka_ca ]] || fail "cannot read $secrets/kafka_ca: run compose/make-secrets.sh"
CLUSTER_ID=$(read_cluster_id "$secrets/kafka_cluster_id")

if [[ -s $data/meta.properties ]]; then
  # Formatted before: it must be this cluster's storage (the image's format step then leaves it as it is).
  formatted=$(sed -n 's/^cluster\.id=//p' "$data/meta.properties")
  [[ -n $formatted ]] || fail "no cluster.id in $data/meta.properties"
  [[ $formatted == "$CLUSTER_ID" ]] || fail "$data was formatted for cluster $formatted, but" \
    "$secrets/kafka_cluster_id says $CLUSTER_ID: restore that file, or remove this node's data volume to format it anew"
else
  credentials=$secrets/kafka_scram_credentials
  [[ -r $credentials ]] || fail "cannot read $credentials: run compose/make-secrets.sh"
  scram=()
  while IFS= read -r line || [[ -n $line ]]; do
    [[ -z $line || $line == '#'* ]] && continue
    [[ $line =~ ^SCRAM-SHA-512=\[name=[a-z]+,iterations=[0-9]+,salt=\"[A-Za-z0-9+/=]+\",saltedpassword=\"[A-Za-z0-9+/=]+\"\]$ ]] \
      || fail "$credentials: a line is not SCRAM-SHA-512=[name=...,iterations=...,salt=\"...\",saltedpassword=\"...\"]"
    scram+=(--add-scram "$line")
  done <"$credentials"
  for user in broker admin; do
    grep -q "^SCRAM-SHA-512=\[name=$user," "$credentials" || fail "$credentials has no credentials for $user"
  done
  config=$(mktemp)
  "$(dirname "${BASH_SOURCE[0]}")/env-to-properties.sh" >"$config"  # no secret in it yet: those are exported below
  echo "format-and-start: formatting $data for cluster $CLUSTER_ID with ${#scram[@]} SCRAM-SHA-512 credential" \
    "arguments" >&2
  "$kafka_bin/kafka-storage.sh" format --cluster-id="$CLUSTER_ID" --config "$config" "${scram[@]}"
  rm -f "$config"
fi
export CLUSTER_ID

export KAFKA_SSL_KEYSTORE_PASSWORD=$keystore_password
export KAFKA_SSL_KEY_PASSWORD=$keystore_password
# listener.name.client.scram-sha-512.sasl.jaas.config: the broker's own principal on the SASL_SSL listener.
export KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"$broker_password\";"
# listener.name.controller.plain.sasl.jaas.config: broker -> controller and controller -> controller (the quorum of
# kafka-1, kafka-2, kafka-3) on the controller listener, TLS like the client listener.
export KAFKA_LISTENER_NAME_CONTROLLER_PLAIN_SASL_JAAS_CONFIG="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"controller\" password=\"$controller_password\" user_controller=\"$controller_password\";"

cat >/opt/kafka/config/healthcheck.properties <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$broker_password";
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/kafka_ca
EOF

exec /etc/kafka/docker/run
