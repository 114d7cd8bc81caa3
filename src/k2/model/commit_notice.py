"""The notice the writer sends after each Iceberg commit, and what readers make of it.

Why: a reader (k2-query-api) that learns of new snapshots only by loading the table through
the catalog must either load often (catalog CPU on every poll) or serve stale data. The
writer knows the moment a commit lands, so it says so on a one-partition topic; a reader
then loads the table through the catalog once per commit, at once, and otherwise not at all.
The notice is a hint, never the data: readers still read through the catalog, and a lost
notice costs only freshness until their next periodic load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

NOTICE_PARTITION: Final = 0
"""The topic has one partition: notices of one table stay in commit order."""


@dataclass(frozen=True, slots=True)
class CommitNotice:
    """One commit: which table, which snapshot."""

    table: str
    snapshot_id: int

    def encode(self) -> bytes:
        """The message value (JSON, so a person reading the topic can follow it)."""
        return json.dumps({"table": self.table, "snapshot_id": self.snapshot_id}).encode()

    @classmethod
    def decode(cls, value: bytes | None) -> CommitNotice | None:
        """The notice in a message value, or None if it is not one (ignored by readers)."""
        try:
            document = json.loads(value or b"")
            return cls(str(document["table"]), int(document["snapshot_id"]))
        except (ValueError, TypeError, KeyError):
            return None
