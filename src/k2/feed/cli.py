"""`python -m k2.feed`: produce generated or replayed Binance trades to Kafka, one summary line.

Exit status 0 when Kafka acknowledged every trade, 1 when it did not (or the registry, the
replay file or a frame was bad), 2 for bad arguments, 130 when interrupted. The ledger, when
asked for, is written once sending has started, however it ends.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from k2.feed.clients import open_feed
from k2.feed.generator import generate_frames
from k2.feed.producer import DeliveryError, FeedProducer
from k2.feed.replay import ReplayError, read_frames
from k2.model.binance import MalformedFrameError
from k2.model.names import TOPIC
from k2.model.timestamps import ensure_utc, utc_now

FeedOpener = Callable[..., FeedProducer]
OWN_ERRORS = (DeliveryError, ReplayError, MalformedFrameError)


def _symbols(text: str) -> list[str]:
    symbols = [part.strip().upper() for part in text.split(",") if part.strip()]
    if not symbols:
        raise argparse.ArgumentTypeError("give at least one symbol, e.g. BTCUSDT,ETHUSDT")
    return symbols


def _start(text: str) -> datetime:
    if text == "now":
        return utc_now()
    try:
        return ensure_utc("--start", datetime.fromisoformat(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m k2.feed`."""
    parser = argparse.ArgumentParser(prog="python -m k2.feed", description=__doc__)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap, HOST:PORT")
    parser.add_argument("--registry", required=True, help="schema registry URL (Confluent API)")
    parser.add_argument("--topic", default=TOPIC, help=f"default {TOPIC}")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--symbols", type=_symbols, help="generate trades over these, e.g. BTCUSDT,ETHUSDT"
    )
    source.add_argument("--replay", type=Path, help="send the Binance frames of this JSONL file")
    parser.add_argument("--count", type=int, help="trades to send (needed when generating)")
    parser.add_argument("--rate", type=float, help="msg/s; 0 or absent: as fast as possible")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--start",
        type=_start,
        default="now",
        help="generated trade time of the first trade: ISO 8601 with zone, or now (default)",
    )
    parser.add_argument("--ledger", type=Path, help="write the delivery ledger here (JSONL)")
    parser.add_argument(
        "-X",
        dest="settings",
        type=_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra librdkafka producer setting, repeatable",
    )
    return parser


def _frames(args: argparse.Namespace) -> Iterable[Mapping[str, Any]]:
    if args.replay is not None:
        return read_frames(args.replay)
    return generate_frames(args.symbols, seed=args.seed, start=args.start, count=args.count)


def main(argv: list[str] | None = None, *, opener: FeedOpener = open_feed) -> int:
    """Run one feed, print its summary (or one error line), return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.replay is None and (args.symbols is None or args.count is None):
        parser.error("generating needs --symbols and --count (or pass --replay FILE)")
    if args.count is not None and args.count < 0:
        parser.error(f"--count {args.count} is negative")
    if args.rate is not None and args.rate < 0:
        parser.error(f"--rate {args.rate} is negative")
    try:
        feed = opener(
            args.bootstrap, args.registry, topic=args.topic, producer_overrides=dict(args.settings)
        )
    except Exception as exc:  # one line, whatever the client raised: a traceback buries it
        return _error(f"cannot open the feed (registry {args.registry}): {_describe(exc)}")
    try:
        summary = feed.send_frames(_frames(args), count=args.count, rate=args.rate)
    except KeyboardInterrupt:
        return _error(f"interrupted after {len(feed.ledger)} acknowledged trades", status=130)
    except Exception as exc:
        return _error(_describe(exc))
    finally:
        if args.ledger is not None:
            feed.ledger.dump_jsonl(args.ledger)
    ledger = f", ledger {args.ledger}" if args.ledger is not None else ""
    print(f"k2-feed: {summary} to {feed.topic}{ledger}")
    return 0


def _describe(exc: BaseException) -> str:
    # Our own errors read as sentences; a library's needs its type to make sense.
    text = str(exc) if isinstance(exc, OWN_ERRORS) else f"{type(exc).__name__}: {exc}"
    return "; ".join([text, *getattr(exc, "__notes__", [])])


def _error(message: str, status: int = 1) -> int:
    print(f"k2-feed: error: {message}", file=sys.stderr)
    return status
