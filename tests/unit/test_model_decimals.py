"""decimal(18,8): exact at 8 places, rejected (never rounded) outside it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from k2.model.decimals import MAX_VALUE, check_decimal_18_8, format_decimal, to_decimal_18_8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.00000001", "0.00000001"),
        ("12345678.12345678", "12345678.12345678"),
        ("9999999999.99999999", "9999999999.99999999"),
        ("-9999999999.99999999", "-9999999999.99999999"),
        ("1", "1.00000000"),
        ("1.5", "1.50000000"),
        ("60000.01000000", "60000.01000000"),
        ("1.000000000000", "1.00000000"),  # zeros beyond the 8th place lose nothing
        ("1E-8", "0.00000001"),
        ("0", "0.00000000"),
        ("-0", "0.00000000"),
    ],
)
def test_fitting_values_come_back_exact_at_scale_8(text: str, expected: str) -> None:
    value = to_decimal_18_8("price", text)
    assert format_decimal(value) == expected
    assert value.as_tuple().exponent == -8
    assert value == Decimal(text)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0.000000001", "more than 8 fractional digits"),
        ("12345678.123456789", "more than 8 fractional digits"),
        ("1.000000005", "more than 8 fractional digits"),
        ("10000000000", "more than 10 integer digits"),
        ("-10000000000", "more than 10 integer digits"),
        ("9999999999.999999999", "more than"),
        ("1E+10", "more than 10 integer digits"),
        ("NaN", "not a decimal number"),
        ("Infinity", "not a decimal number"),
        ("1_000", "not a decimal number"),
        (" 1", "not a decimal number"),
        ("", "not a decimal number"),
        ("abc", "not a decimal number"),
    ],
)
def test_values_that_do_not_fit_are_rejected_naming_field_and_value(
    value: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        to_decimal_18_8("quantity", value)
    assert f"quantity={value}" in str(caught.value) or f"quantity={value!r}" in str(caught.value)


def test_decimal_nan_and_infinity_are_rejected() -> None:
    for value in (Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")):
        with pytest.raises(ValueError, match="not a finite decimal"):
            to_decimal_18_8("price", value)


def test_floats_and_bools_are_refused_because_they_are_already_inexact() -> None:
    with pytest.raises(ValueError, match="not float"):
        to_decimal_18_8("price", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not bool"):
        to_decimal_18_8("price", True)


def test_ints_are_accepted() -> None:
    assert to_decimal_18_8("price", 42) == Decimal("42.00000000")


def test_largest_value_is_ten_integer_and_eight_fractional_digits() -> None:
    assert format_decimal(MAX_VALUE) == "9999999999.99999999"
    assert len(MAX_VALUE.as_tuple().digits) == 18


def test_hot_path_returns_the_same_object_when_already_exact() -> None:
    value = Decimal("43251.12345678")
    assert check_decimal_18_8("price", value) is value


def test_hot_path_still_normalises_and_rejects() -> None:
    assert check_decimal_18_8("price", Decimal("1.5")) == Decimal("1.50000000")
    assert check_decimal_18_8("price", Decimal("1.5")).as_tuple().exponent == -8
    with pytest.raises(ValueError, match="price"):
        check_decimal_18_8("price", Decimal("12345678901.00000000"))


def test_format_is_fixed_point_never_exponent() -> None:
    assert format_decimal(to_decimal_18_8("p", "0.00000001")) == "0.00000001"
    assert format_decimal(to_decimal_18_8("p", "0")) == "0.00000000"
