"""consumer-crypto: the Iceberg writer of K2 (`python -m k2.consumer`).

Kafka (Confluent-framed Avro) -> decode and validate -> batches -> one Iceberg commit per batch
on `market_data.trades`, with the Kafka offsets in the snapshot summary -> Kafka offset commit.
Bad input goes to the dead-letter topic. Modules, one job each:

- config: K2_* environment variables -> ConsumerConfig
- clients: the real Kafka, registry and catalog clients
- registry: writer schemas by id (cached; unknown id vs registry down)
- decoding: one value -> a valid Trade, or Rejected(kind, reason)
- deadletter: the dead-letter topic and its headers
- columns, batch: rows per batch as Arrow columns; when a batch closes
- offsets: the offsets map in snapshot summaries; where to resume
- sink: one batch -> one Iceberg commit, conflicts handled, old snapshots expired
- writer: the consume loop, rebalances, shutdown
- health: the health endpoints (JSON for people and tests, one line for the healthcheck)
- commit_timing: where each commit's time goes
- cli: start-up and exit codes
"""
