"""Detectors of personal data in a rendered trace record: e-mail addresses, phone numbers, payment card
numbers, IPv4 and IPv6 addresses, each replaced by ``[REDACTED:<kind>]``.

They work on the rendered JSON line (so every field is covered: messages, answers, tool arguments, error
messages, bound context), and keep it valid JSON whatever the text holds:

- a match never contains a quote or a backslash, never starts inside an escape (``\\n``, ``\\u001b``),
  never splits a UTF-8 sequence, and is replaced only inside a JSON string: a number such as
  ``"ts_ns":1796156788000284865`` is never touched;
- replacements are plain ASCII.

What each kind matches, and what it deliberately leaves alone (measured on the corpus in
``tests/core/pii_corpus.py``; the rates are in docs/privacy.md):

========  ==========================================================================================
email     ``local@domain.tld`` with a letter TLD (internationalised names too); not ``user@host``,
          ``@mentions``, ``pkg@1.2.3`` or image names such as ``icon@2x.png``
phone     ``+`` and a country code with 9–15 digits (``+44 20 7946 0958``, ``+1-415-555-2671``); North
          American ``(415) 555-2671`` / ``1-415-555-2671`` / ``415.555.2671``; national numbers with a
          trunk ``0`` in groups (``020 7946 0958``, ``01 23 45 67 89``, ``0151 23456789``). Not bare digit
          runs (``4155552671`` is also an epoch timestamp or an order id), groups of three without a trunk
          0 (``612 345 678`` is also a number with thin-space thousands), nor the tail of a longer run of
          digit groups (an IBAN, a tracking number)
card      13–19 digits, bare or in groups of 4 (Amex 4-6-5) with spaces or dashes, whose prefix belongs
          to a card network (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay, Maestro) and whose
          Luhn check digit is right: timestamps and most order ids of the same length are not cards
ipv4      dotted quads with octets ≤ 255; not version strings written ``v1.2.3.4`` nor longer dotted
          numbers (OIDs ``1.3.6.1.4.1``)
ipv6      full and compressed forms, with ``%zone`` and embedded IPv4, validated by :mod:`ipaddress`;
          a standalone token with at least one digit, so ``std::fs`` or ``a :: b`` are not addresses
========  ==========================================================================================

Cost: each detector first looks for what it cannot do without (``@``; ``.d.d.``; ``:h:``; a run of
digits), with a literal search, so a record without any costs little (``benchmarks/pii_redaction.py``).

>>> PIIRedactor(("email", "card")).redact(b'{"q":"mail bob@example.com, card 4111 1111 1111 1111"}')
(b'{"q":"mail [REDACTED:email], card [REDACTED:card]"}', ('email', 'card'))
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

__all__ = ["KINDS", "PIIRedactor"]

#: The kinds of personal data that can be switched on (``redact_pii``), in the order they are reported.
KINDS: tuple[str, ...] = ("email", "phone", "card", "ipv4", "ipv6")

Span = tuple[int, int, str]

_BACKSLASH = 0x5C
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_DIGITS = frozenset(b"0123456789")
_SHORT_ESCAPES = frozenset(b'"\\/bfnrt')

# e-mail: the local part is found backwards from each "@", the domain forwards. Beyond ASCII they take two-byte
# UTF-8 characters (Latin, Greek, Cyrillic: jürgen@, .рф) but not CJK, which is written without spaces around
# an address ("連絡先bob@example.com まで")
_LETTER = rb"(?:[A-Za-z0-9]|[\xc2-\xdf][\x80-\xbf])"
# (the local part is matched on the bytes before the "@", reversed: one anchored match instead of a search)
_LOCAL_REVERSED = re.compile(rb"(?:[A-Za-z0-9._%+\-]|[\x80-\xbf][\xc2-\xdf])+")
_DOMAIN = re.compile(rb"(?:" + _LETTER + rb"(?:(?:" + _LETTER + rb"|-){0,61}" + _LETTER + rb")?\.)+"
                     rb"(?P<tld>(?:[A-Za-z]|[\xc2-\xdf][\x80-\xbf]){2,})")
_NOT_TLDS = frozenset({b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp"})
_MAX_LOCAL = 64

# IPv4: a dot, octet, dot, octet, dot, digit: the first dot is a literal, found fast
_IPV4_HINT = re.compile(rb"\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")
_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rb"(?:" + _OCTET + rb"\.){3}" + _OCTET + rb"(?![0-9A-Za-z_]|\.[0-9])")

# IPv6: "::" or three colons with hex digits between them (not a time: 14:55:03), then the whole token
_IPV6_HINT = re.compile(rb":(?::|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:)")
_IPV6_CHARS_REVERSED = re.compile(rb"[0-9A-Fa-f:.]*")
_IPV6_TOKEN = re.compile(rb"[0-9A-Fa-f:.]+(?:%[0-9A-Za-z_.\-]+)?")

# cards and phones: runs of digits and separators, found on a copy where every digit is "0"
_ZERO_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_DIGIT_RUN = re.compile(rb"0[0 ().\-]{7,}0")
# not preceded by a digit, unless the digit ends an escape ("\u0007" + number)
_NO_DIGIT_BEFORE = rb"(?:(?<![0-9])|(?<=\\u[0-9a-fA-F]{4}))"
_CARD = re.compile(_NO_DIGIT_BEFORE + rb"(?:(?:[0-9]{4}[ \-]){3}[0-9]{1,7}|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4,5}"
                   rb"|[0-9]{13,19})(?![0-9])")
_SEPARATORS = b" -"
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")
# A phone is not the tail of a longer sequence of digit groups (an IBAN, a tracking number): no "<digit><sep>"
# before it. A letter before it is checked apart, because the letter can be an escape's: "\n415-555-2671".
_NOT_CONTINUED = rb"(?<![0-9][ .\-])"
_PHONE = re.compile(
    _NOT_CONTINUED + _NO_DIGIT_BEFORE
    + rb"(?:(?P<intl>(?<!\+)\+[1-9](?:[ .\-]?\(?[0-9]\)?){8,14})(?![0-9])"
    rb"|(?P<nanp>(?<![\-/.])(?:1[ .\-]?)?(?:\([2-9][0-9]{2}\)[ .\-]?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4})"
    rb"(?![0-9]|[ .\-][0-9])"
    rb"|(?P<trunk>(?<![\-/.+])0[1-9][0-9]{0,3}(?:[ .\-][0-9]{2,8}){1,4})(?![0-9]|[ .\-][0-9]))")
_PHONE_DIGITS = {"intl": (9, 15), "nanp": (10, 11), "trunk": (9, 12)}
_NOT_DIGITS = b" ().-+"

_ESCAPED_QUOTE = re.compile(rb'(\\+)"')


class PIIRedactor:
    """Replaces the chosen kinds of personal data in rendered JSON lines. Stateless once built; thread-safe.

    ``redact`` returns the new line and the kinds it replaced (empty when the line is unchanged).
    """

    def __init__(self, kinds: Iterable[str]) -> None:
        chosen = set(kinds)
        unknown = chosen - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kind(s) of personal data: {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(KINDS)})")
        self.kinds = tuple(k for k in KINDS if k in chosen)
        self._email = "email" in chosen
        self._ipv4 = "ipv4" in chosen
        self._ipv6 = "ipv6" in chosen
        self._card = "card" in chosen
        self._phone = "phone" in chosen

    def redact(self, line: bytes) -> tuple[bytes, tuple[str, ...]]:
        spans: list[Span] = []
        if self._email and b"@" in line:
            spans += _emails(line)
        if self._card or self._phone:
            spans += _cards_and_phones(line, self._card, self._phone)
        if self._ipv6:
            spans += _ipv6(line)
        if self._ipv4:
            spans += _ipv4(line)
        if not spans:
            return line, ()
        return _replace(line, spans)


def _replace(line: bytes, spans: list[Span]) -> tuple[bytes, tuple[str, ...]]:
    """Replace the non-overlapping spans (earliest, then longest, wins) that lie inside JSON strings.

    Only a card can be outside a string: a bare run of digits is also a JSON number (``"seed":4111…``). Every
    other kind needs a character (``@``, a space, a second dot or colon) that JSON puts outside strings only
    between tokens, so only card spans pay for counting the quotes before them.
    """
    spans.sort(key=lambda s: (s[0], -s[1]))
    out: list[bytes] = []
    kinds: set[str] = set()
    pos = 0  # end of the last replaced span
    scanned, quotes = 0, 0  # unescaped quotes in line[:scanned]
    for start, end, kind in spans:
        if start < pos:
            continue
        if kind == "card":
            quotes += _quotes(line, scanned, start)
            scanned = start
            if quotes % 2 == 0:
                continue
        out.append(line[pos:start])
        out.append(b"[REDACTED:" + kind.encode() + b"]")
        kinds.add(kind)
        pos = end
    if not kinds:
        return line, ()
    out.append(line[pos:])
    return b"".join(out), tuple(k for k in KINDS if k in kinds)


def _quotes(line: bytes, start: int, end: int) -> int:
    """Unescaped double quotes in line[start:end] (``start`` is never inside a backslash run)."""
    n = line.count(b'"', start, end)
    if n and line.find(b'\\"', start, end) != -1:
        n -= sum(1 for m in _ESCAPED_QUOTE.finditer(line, start, end) if len(m.group(1)) % 2)
    return n


def _escaped(line: bytes, i: int) -> bool:
    """Whether the byte at ``i`` follows an odd run of backslashes (is the letter of an escape)."""
    j = i
    while j > 0 and line[j - 1] == _BACKSLASH:
        j -= 1
    return (i - j) % 2 == 1


def _past_escape(line: bytes, start: int) -> int:
    """The first position >= start that is not inside an escape sequence (``\\n``, ``\\u00e9``)."""
    if start > 0 and line[start - 1] == _BACKSLASH and _escaped(line, start):
        return start + (5 if line[start] == 0x75 else 1)  # \uXXXX or a one-letter escape
    for back in range(1, 5):  # inside the four hex digits of \uXXXX
        u = start - back
        if u > 0 and line[u] == 0x75 and line[u - 1] == _BACKSLASH and _escaped(line, u):
            return u + 5
    return start


def _token_start(line: bytes, start: int) -> bool:
    """Whether ``start`` begins a token: after a non-word byte, or right after an escape (``\\n`` + text; a
    literal backslash-n in the text, as code has, counts as one too)."""
    if start == 0 or line[start - 1] not in _WORD:
        return True
    if start >= 2 and line[start - 2] == _BACKSLASH and line[start - 1] in _SHORT_ESCAPES:
        return True
    u = start - 5
    return u > 0 and line[u] == 0x75 and line[u - 1] == _BACKSLASH


def _emails(line: bytes) -> list[Span]:
    spans: list[Span] = []
    at = line.find(b"@")
    while at != -1:
        domain = _DOMAIN.match(line, at + 1)
        local = _LOCAL_REVERSED.match(line[max(0, at - _MAX_LOCAL):at][::-1]) if domain else None
        if domain and local and domain.group("tld").lower() not in _NOT_TLDS:
            start = _past_escape(line, at - local.end())
            while start < at and line[start] == 0x2E:  # a local part does not start with a dot
                start += 1
            start = _past_escape(line, start)
            if start < at:
                spans.append((start, domain.end(), "email"))
                at = line.find(b"@", domain.end())
                continue
        at = line.find(b"@", at + 1)
    return spans


def _ipv4(line: bytes) -> list[Span]:
    spans: list[Span] = []
    end = 0
    for hint in _IPV4_HINT.finditer(line):
        dot = hint.start()
        if dot < end:
            continue
        start = dot
        while start > 0 and dot - start < 3 and line[start - 1] in _DIGITS:
            start -= 1
        if start == dot:
            continue
        start = _past_escape(line, start)
        if start > 0 and (line[start - 1] == 0x2E or not _token_start(line, start)):
            continue  # part of a longer dotted number, or of a word (v1.2.3.4)
        match = _IPV4.match(line, start)
        if match:
            spans.append((start, match.end(), "ipv4"))
            end = match.end()
    return spans


def _ipv6(line: bytes) -> list[Span]:
    spans: list[Span] = []
    end = 0
    for hint in _IPV6_HINT.finditer(line):
        if hint.start() < end:
            continue
        before = _IPV6_CHARS_REVERSED.match(line[max(0, hint.start() - 40):hint.start()][::-1])
        start = _past_escape(line, hint.start() - (before.end() if before else 0))
        token = _IPV6_TOKEN.match(line, start)
        if token is None:
            continue
        stop = token.end()
        end = stop
        text = line[start:stop].rstrip(b".")
        address = text.split(b"%", 1)[0]
        if not (b"::" in address or address.count(b":") >= 6) or not any(c in _DIGITS for c in address):
            continue
        if not _token_start(line, start) or (start + len(text) < len(line) and line[start + len(text)] in _WORD):
            continue
        try:
            ipaddress.IPv6Address(address.decode("ascii"))
        except ValueError:
            continue
        spans.append((start, start + len(text), "ipv6"))
    return spans


def _cards_and_phones(line: bytes, cards: bool, phones: bool) -> list[Span]:
    spans: list[Span] = []
    for run in _DIGIT_RUN.finditer(line.translate(_ZERO_DIGITS)):
        digits = run.group().count(b"0")  # in the translated copy every digit is a "0"
        if digits < 9:
            continue  # the shortest phone without "+" has 9 digits; this is a date, a time, a version
        start, end = run.span()
        if line[start - 1] in b":,[-" and line[end:end + 1] in (b"", b",", b"]", b"}") \
                and _quotes(line, 0, start) % 2 == 0:
            continue  # a JSON number (ts_ns, latency_ms), not text
        if line.find(b"\\", max(start - 5, 0), start) != -1:
            start = _past_escape(line, start)
        if cards and digits >= 13:
            for match in _CARD.finditer(line, start, end):
                number = match.group().translate(None, _SEPARATORS)
                if _card_network(number) and _luhn(number):
                    spans.append((match.start(), match.end(), "card"))
        if phones:
            if line[start - 1] in b"+(":
                start -= 1
            elif end - start == digits:
                continue  # a bare run of digits is an id or a timestamp as often as a phone
            for match in _PHONE.finditer(line, start, end):
                low, high = _PHONE_DIGITS[match.lastgroup or "intl"]
                count = len(match.group().translate(None, _NOT_DIGITS))
                if low <= count <= high and _token_start(line, match.start()):
                    spans.append((match.start(), match.end(), "phone"))
    return spans


def _card_network(digits: bytes) -> bool:
    """Whether the prefix and length are those of a card network (IIN ranges of ISO/IEC 7812 issuers)."""
    n = len(digits)
    first, two, four = digits[0], int(digits[:2]), int(digits[:4])
    if first == 0x34:  # 4: Visa
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if 300 <= int(digits[:3]) <= 305 or two in (36, 38, 39):  # Diners Club
        return 14 <= n <= 19
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    if first == 0x36 or two == 50 or 56 <= two <= 58:  # Discover, UnionPay, Maestro
        return 12 <= n <= 19
    return False


def _luhn(digits: bytes) -> bool:
    """The Luhn check: every second digit from the right doubled (its digits summed), the total a multiple of 10."""
    total = sum(digits[-1::-2]) + sum(digits[-2::-2].translate(_LUHN_DOUBLED)) - 48 * len(digits)
    return total % 10 == 0
