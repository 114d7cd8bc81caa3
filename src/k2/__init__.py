"""K2: a crypto market-data pipeline (Kafka -> Iceberg -> query API) and its E2E harness."""
