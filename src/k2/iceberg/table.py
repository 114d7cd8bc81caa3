"""The Iceberg table `market_data.trades`: one schema, owned here, shared by writer and readers.

consumer-crypto creates it (idempotently) at start; k2-query-api and the tests only read it.
Prices and quantities stay decimal(18,8) end to end, timestamps are microseconds in UTC.
Partitioned by day of trade time only, so a commit writes one data file (two around
midnight): the streaming writer commits every second or so, and each file a commit writes
is work that pyiceberg does in Python, in parallel threads that contend for the interpreter
lock (measured with the stack limited to one core of two, --e2e-cpus 1: the data-file
phase of a commit took a p50 of 0.19-1.07 s across runs with a file per symbol bucket, four
per commit in the tests, and 0.10-0.24 s with one file). Readers filter by symbol through the
column bounds of `symbol` in the manifests; the API answers from its in-memory replica and
its per-symbol index.

Two table properties serve the streaming writer (one commit a second):
- `commit.retry.num-retries=0` turns off pyiceberg's automatic commit retry: on a conflict that
  retry replays the same rows and the same snapshot summary onto the new head, and the writer's
  summary carries Kafka offsets computed from the old head, so a replay would write rows twice
  and could move another writer's offsets back. The writer retries itself instead, after
  re-reading the offsets. Readers are not affected.
- `commit.manifest-merge.enabled=true` merges the one small manifest each commit adds, so
  manifest lists stay short: cheaper commits, and faster scan planning for readers, which
  otherwise open one manifest per commit ever made. Merges are small and frequent (8
  manifests into one, up to 64 KiB): with the defaults (100, 8 MiB) every hundredth commit
  read a hundred manifests and rewrote everything merged so far (measured 1.3 s, one
  commit in a hundred: a freshness p99 by itself); this way a merge reads at most eight
  small manifests and one medium one, and full merged manifests are left alone.
- Column metrics (bounds and counts in every manifest entry) only for `symbol` and
  `timestamp`, the columns queries filter on: with the default (every column) a manifest
  entry carries 17 columns of statistics, which pyiceberg encodes and decodes in Python on
  every commit and every read of the manifests.
- `write.metadata.previous-versions-max=10`: the metadata log (in every metadata file, parsed
  by every reader and copied by every pyiceberg commit) stays short. Old metadata files stay
  in the bucket (deleting them on every commit would add a request to each): orphan-file
  clean-up is a maintenance job's, not the streaming writer's.
"""

from __future__ import annotations

import contextlib
from typing import Final

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    DecimalType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    TimestamptzType,
)

from k2.model.names import ICEBERG_NAMESPACE, ICEBERG_TABLE

COMMIT_NUM_RETRIES: Final = TableProperties.COMMIT_NUM_RETRIES
"""`commit.retry.num-retries`: must be "0" on this table (see the module docstring)."""

TABLE_PROPERTIES: Final = {
    "write.parquet.compression-codec": "zstd",
    COMMIT_NUM_RETRIES: "0",
    TableProperties.MANIFEST_MERGE_ENABLED: "true",
    TableProperties.MANIFEST_MIN_MERGE_COUNT: "8",
    TableProperties.MANIFEST_TARGET_SIZE_BYTES: str(64 * 1024),
    TableProperties.METADATA_PREVIOUS_VERSIONS_MAX: "10",
    TableProperties.DEFAULT_WRITE_METRICS_MODE: "none",
    f"{TableProperties.METRICS_MODE_COLUMN_CONF_PREFIX}.symbol": "full",
    f"{TableProperties.METRICS_MODE_COLUMN_CONF_PREFIX}.timestamp": "full",
}
"""Set at creation, and brought back to these values on an existing table by ensure_table."""

# Field ids are in the order a catalog assigns fresh ids on create (every field of a struct,
# then the fields nested in them): Iceberg (Java and pyiceberg) renumbers a new table's schema
# that way, so with these ids the table gets exactly this schema and arrow_schema() matches it.
# Numbered otherwise, the table's ids differ from arrow_schema()'s and every append is refused.
TRADES_SCHEMA: Final = Schema(
    NestedField(1, "message_id", StringType(), required=True),
    NestedField(2, "trade_id", StringType(), required=True),
    NestedField(3, "symbol", StringType(), required=True),
    NestedField(4, "exchange", StringType(), required=True),
    NestedField(5, "asset_class", StringType(), required=True),
    NestedField(6, "timestamp", TimestamptzType(), required=True),
    NestedField(7, "price", DecimalType(18, 8), required=True),
    NestedField(8, "quantity", DecimalType(18, 8), required=True),
    NestedField(9, "currency", StringType(), required=True),
    NestedField(10, "side", StringType(), required=True),
    NestedField(
        11, "trade_conditions", ListType(18, StringType(), element_required=True), required=True
    ),
    NestedField(12, "source_sequence", LongType(), required=False),
    NestedField(13, "ingestion_timestamp", TimestamptzType(), required=True),
    NestedField(14, "platform_sequence", LongType(), required=False),
    NestedField(
        15,
        "vendor_data",
        MapType(19, StringType(), 20, StringType(), value_required=True),
        required=False,
    ),
    # Lineage: where in Kafka the row came from, so exactly-once can be checked, not assumed.
    NestedField(16, "kafka_partition", IntegerType(), required=True),
    NestedField(17, "kafka_offset", LongType(), required=True),
    identifier_field_ids=[1],
)

TRADES_PARTITION_SPEC: Final = PartitionSpec(
    PartitionField(source_id=6, field_id=1000, transform=DayTransform(), name="timestamp_day"),
)

TRADES_SORT_ORDER: Final = SortOrder(
    SortField(source_id=3, transform=IdentityTransform()),
    SortField(source_id=6, transform=IdentityTransform()),
)


def arrow_schema() -> pa.Schema:
    """The Arrow schema appends must match exactly (nullability included)."""
    return TRADES_SCHEMA.as_arrow()


def ensure_table(catalog: Catalog) -> Table:
    """Create the namespace and table if absent; a concurrent creator is not an error.

    An existing table whose TABLE_PROPERTIES differ (one created before they were added) gets
    them set, in one metadata-only commit.
    """
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(ICEBERG_NAMESPACE)
    try:
        return catalog.create_table(
            ICEBERG_TABLE,
            schema=TRADES_SCHEMA,
            partition_spec=TRADES_PARTITION_SPEC,
            sort_order=TRADES_SORT_ORDER,
            properties=dict(TABLE_PROPERTIES),
        )
    except TableAlreadyExistsError:
        table = catalog.load_table(ICEBERG_TABLE)
    changed = {k: v for k, v in TABLE_PROPERTIES.items() if table.properties.get(k) != v}
    if changed:
        with table.transaction() as transaction:
            transaction.set_properties(changed)
    return table
