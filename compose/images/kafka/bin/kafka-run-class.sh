#!/usr/bin/env bash
# kafka-run-class.sh CLASS ARGS...: run a Kafka class on the jars in /opt/kafka/libs (the upstream distribution's
# script of the same name, reduced to what this image needs). KAFKA_HEAP_OPTS and KAFKA_OPTS as upstream.
set -euo pipefail
class=$1
shift
log4j=${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties}
# shellcheck disable=SC2086  # the options are word lists, as upstream
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_OPTS:-} $log4j -cp '/opt/kafka/libs/*' "$class" "$@"
