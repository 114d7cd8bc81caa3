"""The Iceberg table `market_data.trades`: one schema, owned here, shared by writer and readers.

consumer-crypto creates it (idempotently) at start; k2-query-api and the tests only read it.
Prices and quantities stay decimal(18,8) end to end, timestamps are microseconds in UTC.
Partitioned by day of trade time and a small bucket of the symbol: queries filter on both,
and a handful of buckets keeps the files per commit few when a batch spans many symbols.
"""

from __future__ import annotations

import contextlib
from typing import Final

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import BucketTransform, DayTransform, IdentityTransform
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

SYMBOL_BUCKETS: Final = 8

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
        11, "trade_conditions", ListType(16, StringType(), element_required=True), required=True
    ),
    NestedField(12, "source_sequence", LongType(), required=False),
    NestedField(13, "ingestion_timestamp", TimestamptzType(), required=True),
    NestedField(14, "platform_sequence", LongType(), required=False),
    NestedField(
        15,
        "vendor_data",
        MapType(17, StringType(), 18, StringType(), value_required=True),
        required=False,
    ),
    # Lineage: where in Kafka the row came from, so exactly-once can be checked, not assumed.
    NestedField(19, "kafka_partition", IntegerType(), required=True),
    NestedField(20, "kafka_offset", LongType(), required=True),
    identifier_field_ids=[1],
)

TRADES_PARTITION_SPEC: Final = PartitionSpec(
    PartitionField(source_id=6, field_id=1000, transform=DayTransform(), name="timestamp_day"),
    PartitionField(
        source_id=3, field_id=1001, transform=BucketTransform(SYMBOL_BUCKETS), name="symbol_bucket"
    ),
)

TRADES_SORT_ORDER: Final = SortOrder(
    SortField(source_id=3, transform=IdentityTransform()),
    SortField(source_id=6, transform=IdentityTransform()),
)


def arrow_schema() -> pa.Schema:
    """The Arrow schema appends must match exactly (nullability included)."""
    return TRADES_SCHEMA.as_arrow()


def ensure_table(catalog: Catalog) -> Table:
    """Create the namespace and table if absent; a concurrent creator is not an error."""
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(ICEBERG_NAMESPACE)
    try:
        return catalog.create_table(
            ICEBERG_TABLE,
            schema=TRADES_SCHEMA,
            partition_spec=TRADES_PARTITION_SPEC,
            sort_order=TRADES_SORT_ORDER,
            properties={"write.parquet.compression-codec": "zstd"},
        )
    except TableAlreadyExistsError:
        return catalog.load_table(ICEBERG_TABLE)
