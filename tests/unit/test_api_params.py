"""Parameter parsing and settings: the rules stated once, tested without HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from k2.api.__main__ import main
from k2.api.query import (
    MAX_LIMIT,
    PageRequest,
    ParameterError,
    TradeFilter,
    parse_code,
    parse_day,
    parse_instant,
    utc_day_window,
)
from k2.api.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T01:30:00+01:30", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00.123456+00:00", datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2025-12-31T19:00:00-05:00", datetime(2026, 1, 1, tzinfo=UTC)),
        (" 2026-01-01T00:00:00Z ", datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_instants_are_aware_and_normalised_to_utc(text: str, expected: datetime) -> None:
    value = parse_instant("start_time", text)
    assert value == expected
    assert value is not None
    assert value.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2026-01-01T00:00:00", "no timezone"),
        ("2026-01-01", "no timezone"),
        ("1767225600", "not an ISO 8601"),
        ("tomorrow", "not an ISO 8601"),
        ("2026-13-01T00:00:00Z", "not an ISO 8601"),
        ("9999-12-31T23:59:59-01:00", "out of range"),
    ],
)
def test_bad_instants_say_why(text: str, words: str) -> None:
    with pytest.raises(ParameterError, match=words) as caught:
        parse_instant("end_time", text)
    assert caught.value.name == "end_time"
    assert caught.value.location == "query"


def test_absent_parameters_stay_none() -> None:
    assert parse_instant("start_time", None) is None
    assert parse_code("symbol", None) is None


def test_codes_are_upper_cased_and_checked() -> None:
    assert parse_code("symbol", "btcusdt") == "BTCUSDT"
    assert parse_code("exchange", " Binance ") == "BINANCE"
    for bad in ("", "BTC/USDT", "BTC USDT", "Ä", "X" * 33):
        with pytest.raises(ParameterError, match="letters and digits"):
            parse_code("symbol", bad)
    with pytest.raises(ParameterError) as caught:
        parse_code("symbol", "-", "path")
    assert str(caught.value).startswith("path.symbol: ")


def test_days_are_strict_yyyy_mm_dd() -> None:
    assert parse_day("date", "2026-02-28") == date(2026, 2, 28)
    for bad in ("2026-2-28", "20260228", "2026-W09-6", "2026-02-29", "2026-02-28T00:00"):
        with pytest.raises(ParameterError) as caught:
            parse_day("date", bad)
        assert caught.value.location == "path"


def test_utc_day_window_is_inclusive_to_the_last_microsecond() -> None:
    start, end = utc_day_window(date(2026, 1, 1))
    assert start == datetime(2026, 1, 1, tzinfo=UTC)
    assert end == datetime(2026, 1, 2, tzinfo=UTC) - timedelta(microseconds=1)


def test_filter_refuses_an_inverted_window_but_not_an_instant() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    TradeFilter(start=t, end=t)
    with pytest.raises(ParameterError, match="after end_time"):
        TradeFilter(start=t + timedelta(microseconds=1), end=t)


def test_page_bounds() -> None:
    PageRequest(1, 0)
    PageRequest(MAX_LIMIT, 10**9)
    for limit, offset in ((0, 0), (MAX_LIMIT + 1, 0), (1, -1)):
        with pytest.raises(ParameterError):
            PageRequest(limit, offset)


# -- settings -----------------------------------------------------------------------------


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "K2_API_KEY": "secret-key",
            "K2_ICEBERG_URI": "http://iceberg-rest:8181",
            "K2_S3_ENDPOINT": "http://minio:9000",
            "K2_S3_ACCESS_KEY": "ak",
            "K2_S3_SECRET_KEY": "sk",
            "K2_S3_REGION": "eu-central-1",
        }
    )
    assert settings.api_key == "secret-key"
    assert settings.s3_region == "eu-central-1"
    assert "secret-key" not in repr(settings)
    assert "'sk'" not in repr(settings)


def test_settings_defaults_need_only_the_key() -> None:
    settings = Settings.from_env({"K2_API_KEY": "k"})
    assert settings.iceberg_uri == "http://iceberg-rest:8181"
    assert settings.s3_endpoint == "http://minio:9000"
    assert settings.s3_access_key is None
    assert settings.s3_secret_key is None


@pytest.mark.parametrize("environ", [{}, {"K2_API_KEY": ""}, {"K2_API_KEY": "   "}])
def test_missing_api_key_is_an_error_with_no_fallback(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="K2_API_KEY is not set"):
        Settings.from_env(environ)


def test_s3_keys_come_in_pairs() -> None:
    with pytest.raises(SettingsError, match="set both or neither"):
        Settings.from_env({"K2_API_KEY": "k", "K2_S3_ACCESS_KEY": "ak"})


def test_main_without_key_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main({}) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "K2_API_KEY" in err


def test_no_dev_key_in_the_api_code() -> None:
    from pathlib import Path

    import k2.api

    package = Path(k2.api.__file__).parent
    for source in package.glob("*.py"):
        assert "k2-dev-api-key" not in source.read_text(), source


def test_offsets_other_than_utc_keep_the_instant() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    value = parse_instant("start_time", datetime(2026, 1, 1, 5, 30, tzinfo=india).isoformat())
    assert value == datetime(2026, 1, 1, tzinfo=UTC)


def test_replica_size_is_tunable_and_checked() -> None:
    assert Settings.from_env({"K2_API_KEY": "k"}).replica_max_rows == 1_000_000
    assert (
        Settings.from_env({"K2_API_KEY": "k", "K2_API_REPLICA_MAX_ROWS": "0"}).replica_max_rows == 0
    )
    for bad in ("-1", "many", "1e6"):
        with pytest.raises(SettingsError, match="K2_API_REPLICA_MAX_ROWS"):
            Settings.from_env({"K2_API_KEY": "k", "K2_API_REPLICA_MAX_ROWS": bad})
