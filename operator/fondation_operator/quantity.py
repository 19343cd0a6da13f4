"""Kubernetes resource quantities (`500m`, `4Gi`, `1e3`) as exact numbers.

The operator compares quantities twice: an AnalysisJob's `spec.resources`
against the operator's maxima, and a ResourceQuota refusal's `requested`
against its `limited` (can the Job ever fit?). Both need the API server's
own reading of a quantity, so this follows its grammar (binary and decimal
suffixes, exponents) exactly, with `Decimal` so `100m` is not 0.1000000001.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))(?:(?P<exp>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)


class QuantityError(ValueError):
    """Not a Kubernetes quantity; the message says which value."""


def parse(value: str | int | float) -> Decimal:
    """The quantity's value in base units (cores, bytes)."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)")
    try:
        number = Decimal(match["number"])
        if match["exp"]:
            return number * Decimal(10) ** int(match["exp"][1:])
        return number * _SUFFIXES[match["suffix"] or ""]
    except (InvalidOperation, OverflowError) as exc:
        raise QuantityError(f"{text!r} is out of range") from exc
