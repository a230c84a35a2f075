#!/usr/bin/env bash
# Print the KAFKA_* environment as server.properties, by the apache/kafka image's rule
# (kafka.docker.KafkaDockerWrapper): drop "KAFKA_", lower-case, "_" -> ".", "___" -> "-", "__" -> "_". The JVM
# and log4j settings are not properties. Used by format-and-start.sh (to format the storage) and by the
# bcfwatch-kafka image's entry point (compose/images/kafka/run), so both read the environment the same way.
set -euo pipefail
for name in $(compgen -e); do
  case $name in
    KAFKA_VERSION | KAFKA_HEAP_OPTS | KAFKA_LOG4J_OPTS | KAFKA_OPTS | KAFKA_JMX_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | \
      KAFKA_GC_LOG_OPTS | KAFKA_LOG4J_ROOT_LOGLEVEL | KAFKA_LOG4J_LOGGERS | KAFKA_TOOLS_LOG4J_LOGLEVEL | \
      KAFKA_JMX_HOSTNAME) ;;
    KAFKA_*)
      key=${name//KAFKA_/}
      key=${key,,}
      key=${key//_/.}
      key=${key//.../-}
      key=${key//../_}
      printf '%s=%s\n' "$key" "${!name}"
      ;;
  esac
done
