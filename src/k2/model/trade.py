"""Trade: the in-memory TradeV2, immutable, checked once when built, cheap to convert.

A plain frozen dataclass, not a pydantic model: the consumer builds one per record at 20k+
records/s on two cores, and the Avro schema has already checked the types. What the schema
cannot check is enforced here, on construction: decimals fit decimal(18,8) at exactly
8 places, timestamps are timezone-aware UTC, enums are enum members. Everything a valid
record may still get wrong (empty symbol, zero price...) is reported by `validate`, not raised,
so the consumer can dead-letter the record with the reasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from k2.model.decimals import check_decimal_18_8, format_decimal, to_decimal_18_8
from k2.model.ids import message_id_for
from k2.model.timestamps import ensure_utc, from_micros, to_micros


class AssetClass(StrEnum):
    """The Avro enum com.k2.marketdata.AssetClass."""

    EQUITIES = "equities"
    CRYPTO = "crypto"
    FUTURES = "futures"
    OPTIONS = "options"


class Side(StrEnum):
    """The Avro enum com.k2.marketdata.TradeSide: the aggressor's side."""

    BUY = "BUY"
    SELL = "SELL"
    SELL_SHORT = "SELL_SHORT"
    UNKNOWN = "UNKNOWN"


_ASSET_CLASSES: Final[dict[str, AssetClass]] = {member.value: member for member in AssetClass}
_SIDES: Final[dict[str, Side]] = {member.value: member for member in Side}


def _asset_class(value: AssetClass | str) -> AssetClass:
    # A dict lookup, not AssetClass(value): the enum call is several times slower per record.
    member = _ASSET_CLASSES.get(value)
    if member is None:
        raise ValueError(f"asset_class={value!r} is not one of {', '.join(_ASSET_CLASSES)}")
    return member


def _side(value: Side | str) -> Side:
    member = _SIDES.get(value)
    if member is None:
        raise ValueError(f"side={value!r} is not one of {', '.join(_SIDES)}")
    return member


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """One TradeV2 record. Fields, order and meaning are those of trade_v2.avsc.

    Build one with `Trade.new` (derives message_id), `from_avro_dict` (a decoded record) or
    `k2.model.binance.from_binance_frame`. `vendor_data` is shared, not copied: treat it as
    read-only.
    """

    message_id: str
    trade_id: str
    symbol: str
    exchange: str
    asset_class: AssetClass
    timestamp: datetime
    price: Decimal
    quantity: Decimal
    currency: str
    side: Side
    trade_conditions: tuple[str, ...] = ()
    source_sequence: int | None = None
    ingestion_timestamp: datetime
    platform_sequence: int | None = None
    vendor_data: Mapping[str, str] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        """Normalise and check what the Avro schema cannot: decimal(18,8), UTC, enum members."""
        # Each check hands back its argument when it already conforms (always, for a decoded
        # record), so the frozen-dataclass setattr detour runs only for values that change.
        setattr_ = object.__setattr__
        if type(self.asset_class) is not AssetClass:
            setattr_(self, "asset_class", _asset_class(self.asset_class))
        if type(self.side) is not Side:
            setattr_(self, "side", _side(self.side))
        price = check_decimal_18_8("price", self.price)
        if price is not self.price:
            setattr_(self, "price", price)
        quantity = check_decimal_18_8("quantity", self.quantity)
        if quantity is not self.quantity:
            setattr_(self, "quantity", quantity)
        timestamp = ensure_utc("timestamp", self.timestamp)
        if timestamp is not self.timestamp:
            setattr_(self, "timestamp", timestamp)
        ingestion = ensure_utc("ingestion_timestamp", self.ingestion_timestamp)
        if ingestion is not self.ingestion_timestamp:
            setattr_(self, "ingestion_timestamp", ingestion)
        if type(self.trade_conditions) is not tuple:
            setattr_(self, "trade_conditions", tuple(self.trade_conditions))

    @classmethod
    def new(
        cls,
        *,
        trade_id: str,
        symbol: str,
        exchange: str,
        asset_class: AssetClass | str,
        timestamp: datetime,
        price: Decimal | str | int,
        quantity: Decimal | str | int,
        currency: str,
        side: Side | str,
        ingestion_timestamp: datetime,
        trade_conditions: Sequence[str] = (),
        source_sequence: int | None = None,
        platform_sequence: int | None = None,
        vendor_data: Mapping[str, str] | None = None,
    ) -> Trade:
        """A trade from loose input: message_id derived, decimal strings parsed exactly."""
        return cls(
            message_id=message_id_for(symbol, trade_id),
            trade_id=trade_id,
            symbol=symbol,
            exchange=exchange,
            asset_class=_asset_class(asset_class),
            timestamp=timestamp,
            price=check_decimal_18_8("price", price),
            quantity=check_decimal_18_8("quantity", quantity),
            currency=currency,
            side=_side(side),
            ingestion_timestamp=ingestion_timestamp,
            trade_conditions=tuple(trade_conditions),
            source_sequence=source_sequence,
            platform_sequence=platform_sequence,
            vendor_data=vendor_data,
        )

    def to_avro_dict(self) -> dict[str, Any]:
        """The record for fastavro / AvroSerializer: decimals as Decimal, timestamps as int micros.

        Int micros are the Avro wire value itself, so the writer does no datetime arithmetic.
        """
        return {
            "message_id": self.message_id,
            "trade_id": self.trade_id,
            "symbol": self.symbol,
            "exchange": self.exchange,
            "asset_class": self.asset_class.value,
            "timestamp": to_micros(self.timestamp),
            "price": self.price,
            "quantity": self.quantity,
            "currency": self.currency,
            "side": self.side.value,
            "trade_conditions": list(self.trade_conditions),
            "source_sequence": self.source_sequence,
            "ingestion_timestamp": to_micros(self.ingestion_timestamp),
            "platform_sequence": self.platform_sequence,
            "vendor_data": None if self.vendor_data is None else dict(self.vendor_data),
        }

    @classmethod
    def from_avro_dict(cls, record: Mapping[str, Any]) -> Trade:
        """A trade from a decoded TradeV2 record (fastavro or AvroDeserializer output).

        Timestamps may be datetimes (fastavro's default) or int micros. Raises ValueError
        for a record no Trade can represent, naming the field: a missing field, a decimal
        beyond decimal(18,8), an unknown enum symbol.
        """
        try:
            timestamp = record["timestamp"]
            ingestion = record["ingestion_timestamp"]
            return cls(
                message_id=record["message_id"],
                trade_id=record["trade_id"],
                symbol=record["symbol"],
                exchange=record["exchange"],
                asset_class=_asset_class(record["asset_class"]),
                timestamp=from_micros(timestamp) if type(timestamp) is int else timestamp,
                price=record["price"],
                quantity=record["quantity"],
                currency=record["currency"],
                side=_side(record["side"]),
                ingestion_timestamp=from_micros(ingestion) if type(ingestion) is int else ingestion,
                trade_conditions=tuple(record.get("trade_conditions") or ()),
                source_sequence=record.get("source_sequence"),
                platform_sequence=record.get("platform_sequence"),
                vendor_data=record.get("vendor_data"),
            )
        except KeyError as exc:
            raise ValueError(f"TradeV2 record has no field {exc.args[0]!r}") from None

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: decimals as fixed-point strings, timestamps as ISO 8601 UTC."""
        record = self.to_avro_dict()
        record["price"] = format_decimal(self.price)
        record["quantity"] = format_decimal(self.quantity)
        record["timestamp"] = self.timestamp.isoformat()
        record["ingestion_timestamp"] = self.ingestion_timestamp.isoformat()
        return record

    @classmethod
    def from_json_dict(cls, record: Mapping[str, Any]) -> Trade:
        """The inverse of `to_json_dict`."""
        decoded = dict(record)
        for name in ("timestamp", "ingestion_timestamp"):
            value = decoded.get(name)
            if isinstance(value, str):
                decoded[name] = datetime.fromisoformat(value)
        for name in ("price", "quantity"):
            if name in decoded:
                decoded[name] = to_decimal_18_8(name, decoded[name])
        return cls.from_avro_dict(decoded)
