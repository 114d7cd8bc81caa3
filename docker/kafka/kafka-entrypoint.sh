#!/bin/bash
# Single-node KRaft Kafka (combined broker + controller): write server.properties from the
# environment, format the data dir on first start, then exec the broker as PID 1 so that
# `docker stop` (SIGTERM) triggers Kafka's clean shutdown.
set -euo pipefail

: "${KAFKA_HOST_PORT:?set KAFKA_HOST_PORT to the host port published for container port 9094}"

KAFKA_HOME=/opt/kafka
DATA_DIR=/var/lib/kafka/data

# Started as root (the image default): hand the data dir to kafka whatever is mounted there
# (a fresh tmpfs or bind mount is root-owned), then run this script again as kafka.
if [ "$(id -u)" = 0 ]; then
  find "$DATA_DIR" ! -user kafka -exec chown kafka:kafka {} +
  exec setpriv --reuid=kafka --regid=kafka --init-groups "$0" "$@"
fi

CONFIG="$KAFKA_HOME/config/server.properties"
# Fixed default (made by `StorageTool random-uuid`) so every fresh stack looks the same.
CLUSTER_ID="${KAFKA_CLUSTER_ID:-3FKaDgVWSoiQ1bs6Fw4fGQ}"
# Sized for 3 JVMs on 2 cores / 24 GiB. Measured here: SerialGC suits a small heap; the
# AppCDS archive kafka.jsa (recorded at build time, see Dockerfile) cuts start-to-ready by
# ~3 s, and C1 only (TieredStopAtLevel=1) by ~1 s more while the broker also burnt less CPU
# than with C2 through 9 rounds of 200k produced + consumed 1 KiB records.
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:SharedArchiveFile=$KAFKA_HOME/kafka.jsa -XX:+ExitOnOutOfMemoryError}"

{
  cat <<EOF
process.roles=broker,controller
node.id=${KAFKA_NODE_ID:-1}
controller.listener.names=CONTROLLER
# Dynamic quorum of one (formatted with --standalone), the 4.x replacement for static voters.
controller.quorum.bootstrap.servers=localhost:9093
listeners=INTERNAL://:9092,CONTROLLER://:9093,HOST://:9094
advertised.listeners=INTERNAL://${KAFKA_INTERNAL_ADVERTISED:-kafka:9092},CONTROLLER://localhost:9093,HOST://${KAFKA_HOST_ADDRESS:-127.0.0.1}:${KAFKA_HOST_PORT}
listener.security.protocol.map=INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT,HOST:PLAINTEXT
inter.broker.listener.name=INTERNAL
log.dirs=$DATA_DIR
num.partitions=${KAFKA_NUM_PARTITIONS:-3}
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=${KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS:-3000}
# One broker: every internal topic must live with a single replica.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
EOF
  # Passthrough: KAFKA_CFG_FOO_BAR=x -> foo.bar=x. Written last, and java.util.Properties
  # keeps the last value of a repeated key, so these override the lines above.
  for name in $(compgen -e | grep '^KAFKA_CFG_' || true); do
    key="${name#KAFKA_CFG_}"
    key="${key,,}"
    echo "${key//_/.}=${!name}"
  done
} > "$CONFIG"
echo "kafka-entrypoint: $CONFIG:" && grep -v '^#' "$CONFIG"

# shellcheck disable=SC2206 # the *_OPTS variables are word lists on purpose
JAVA=(java $HEAP_OPTS $JVM_OPTS -Dlog4j2.configurationFile="$KAFKA_HOME/config/log4j2.properties"
  -cp "$KAFKA_HOME/libs/*")

# meta.properties marks a formatted dir; checking it saves a JVM start on restarts.
if [ ! -f "$DATA_DIR/meta.properties" ]; then
  # A one-shot tool: C1 alone starts faster and there is no long run to optimise.
  "${JAVA[@]}" -XX:TieredStopAtLevel=1 kafka.tools.StorageTool format --standalone \
    --cluster-id "$CLUSTER_ID" --config "$CONFIG" --ignore-formatted
fi

exec "${JAVA[@]}" kafka.Kafka "$CONFIG"
