"""The TradeV2 data model: the Avro schema, the Trade type, Binance mapping and validation.

The consumer, the API and the tests import from here; the submodules each do one job.
"""

from k2.model.binance import MalformedFrameError, from_binance_frame, quote_currency
from k2.model.codec import AvroBodyError, decode_body, decode_trade, encode_body, encode_trade
from k2.model.decimals import format_decimal, to_decimal_18_8
from k2.model.ids import K2_MESSAGE_NAMESPACE, message_id_for
from k2.model.names import CONSUMER_GROUP, SUBJECT, TOPIC
from k2.model.schema import parsed_trade_v2_schema, trade_v2_schema, trade_v2_schema_str
from k2.model.trade import AssetClass, Side, Trade
from k2.model.validation import validate
from k2.model.wire import WireFormatError, split_wire, wire_header

__all__ = [
    "CONSUMER_GROUP",
    "K2_MESSAGE_NAMESPACE",
    "SUBJECT",
    "TOPIC",
    "AssetClass",
    "AvroBodyError",
    "MalformedFrameError",
    "Side",
    "Trade",
    "WireFormatError",
    "decode_body",
    "decode_trade",
    "encode_body",
    "encode_trade",
    "format_decimal",
    "from_binance_frame",
    "message_id_for",
    "parsed_trade_v2_schema",
    "quote_currency",
    "split_wire",
    "to_decimal_18_8",
    "trade_v2_schema",
    "trade_v2_schema_str",
    "validate",
    "wire_header",
]
