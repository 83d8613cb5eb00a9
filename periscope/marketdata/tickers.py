"""Option tickers in the OCC/Massive form ``O:<root><YYMMDD><C|P><strike x 1000, 8 digits>``.

The last 15 characters are fixed width, so a ticker is parsed from the right: roots may contain
digits after corporate actions (``O:SDS1220204C00003000``) and a root is not the underlying
(``SPXW`` options are on ``I:SPX``). Underlying and contract size therefore come from the vendor's
``details``/reference fields, never from the root.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from periscope.errors import InvalidInputError

PREFIX = "O:"
_TAIL = 15  # YYMMDD + C/P + 8 strike digits
_TICKER = re.compile(r"(?:O:)?([A-Za-z0-9]+?)\d{6}[CP]\d{8}")


@dataclass(frozen=True, slots=True)
class OptionTicker:
    """The parts of an option ticker. ``right`` is ``"call"`` or ``"put"``."""

    root: str
    expiry: dt.date
    right: str
    strike: float

    def __str__(self) -> str:
        return format_option_ticker(self.root, self.expiry, self.right, self.strike)


def parse_option_ticker(ticker: str) -> OptionTicker:
    """Split ``O:SPXW240119C04500000`` into root, expiry, right and strike, from the right.

    Raises
    ------
    InvalidInputError
        The ticker does not have the fixed-width tail, or its date or strike is malformed.
    """
    body = ticker[len(PREFIX) :] if ticker.startswith(PREFIX) else ticker
    if len(body) <= _TAIL:
        raise InvalidInputError(f"option ticker too short: {ticker!r}", ticker=ticker)
    root, date_part, cp, strike_part = body[:-_TAIL], body[-15:-9], body[-9], body[-8:]
    if not (date_part.isdigit() and strike_part.isdigit() and len(strike_part) == 8):
        raise InvalidInputError(f"malformed option ticker {ticker!r}", ticker=ticker)
    if cp not in "CP" or not root.isalnum():
        raise InvalidInputError(f"malformed option ticker {ticker!r}", ticker=ticker)
    try:
        expiry = dt.datetime.strptime(date_part, "%y%m%d").date()
    except ValueError as exc:
        raise InvalidInputError(f"bad expiry in option ticker {ticker!r}", ticker=ticker) from exc
    return OptionTicker(
        root=root,
        expiry=expiry,
        right="call" if cp == "C" else "put",
        strike=int(strike_part) / 1000,
    )


def format_option_ticker(root: str, expiry: dt.date, right: str, strike: float) -> str:
    """The ``O:`` ticker of a contract; ``right`` is ``"call"``/``"put"`` (or ``"C"``/``"P"``)."""
    milli = round(strike * 1000)
    if not 0 < milli < 100_000_000:
        raise InvalidInputError(f"strike {strike} cannot be encoded in 8 digits", strike=strike)
    cp = right[0].upper()
    if cp not in "CP":
        raise InvalidInputError(f"right must be call or put, got {right!r}", right=right)
    return f"{PREFIX}{root}{expiry:%y%m%d}{cp}{milli:08d}"


def option_root(ticker: str) -> str:
    """The root of an option ticker, checking the fixed-width tail without parsing the date.

    The fast path for whole chains (the expiry and strike come from the vendor's ``details``).

    Raises
    ------
    InvalidInputError
        The tail is not ``YYMMDD`` + ``C``/``P`` + eight digits, or the root is empty.
    """
    match = _TICKER.fullmatch(ticker)
    if match is None:
        raise InvalidInputError(f"malformed option ticker {ticker!r}", ticker=ticker)
    return match.group(1)
