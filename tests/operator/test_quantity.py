"""Kubernetes quantities read as the API server reads them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fondation_operator.quantity import QuantityError, parse


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("64", Decimal(64)),
        ("1.5", Decimal("1.5")),
        ("4Gi", Decimal(4 * 2**30)),
        ("10G", Decimal(10 * 10**9)),
        ("128974848", Decimal(128974848)),
        ("129e6", Decimal(129 * 10**6)),
        ("123Mi", Decimal(123 * 2**20)),
        (".5", Decimal("0.5")),
    ],
)
def test_quantities(text: str, value: Decimal) -> None:
    assert parse(text) == value


@pytest.mark.parametrize("text", ["", "abc", "4GB", "1..2", "5 m", "1e", "Gi"])
def test_not_quantities_name_the_value(text: str) -> None:
    with pytest.raises(QuantityError, match="not a Kubernetes quantity"):
        parse(text)
