"""A corpus for the personal-data detectors: text that holds one value of a kind, and text that holds none.

Written as prompts, answers, tool arguments and error messages are: values inside sentences, next to the ids,
timestamps, versions and prices that look most like them. The hard cases a detector is known to miss or to
hit wrongly stay in, marked ``# known miss`` / ``# known false positive``: the test measures the rates with
them, so the figures in docs/privacy.md are what a user gets on text like this, not on easy text.
Card numbers are the networks' published test numbers; phone numbers are from ranges reserved for fiction
(555-01xx aside, Ofcom's 020 7946 0xxx and 07700 900xxx) or obviously made up.
"""

from __future__ import annotations

import random
import uuid

#: (kind, text, the value in it that must be replaced)
POSITIVES: list[tuple[str, str, str]] = [
    ("email", "Please send the invoice to bob@example.com today.", "bob@example.com"),
    ("email", "cc: Bob.Smith+billing@mail.example.co.uk", "Bob.Smith+billing@mail.example.co.uk"),
    ("email", "From: Alice <alice@example.org>", "alice@example.org"),
    ("email", "<a href=\"mailto:carol@example.net\">write to us</a>", "carol@example.net"),
    ("email", "reach me (dave@example.io) after 5pm", "dave@example.io"),
    ("email", "Contact: eve_99@sub.example-mail.com.", "eve_99@sub.example-mail.com"),
    ("email", "Kunde: jürgen.müller@beispiel.de, Bestellung 4711", "jürgen.müller@beispiel.de"),
    ("email", "correo: josé.garcía@correo.es", "josé.garcía@correo.es"),
    ("email", "Hi,\n\nmy address is grace@example.com\nThanks", "grace@example.com"),
    ("email", "\tHEIDI@EXAMPLE.COM", "HEIDI@EXAMPLE.COM"),
    ("email", '{"customer": {"email": "ivan@example.com", "tier": "gold"}}', "ivan@example.com"),
    ("email", "user=judy.o@example.travel;session=7", "judy.o@example.travel"),
    ("email", "Le client (mallory@exemple.fr) demande un remboursement", "mallory@exemple.fr"),
    ("email", "reply to peggy at example dot com", "peggy at example dot com"),  # known miss: spelled out

    ("phone", "Call me at (415) 555-2671 tomorrow.", "(415) 555-2671"),
    ("phone", "my cell is 415-555-2671, texts are fine", "415-555-2671"),
    ("phone", "office: 415.555.2671", "415.555.2671"),
    ("phone", "US support +1 415 555 2671", "+1 415 555 2671"),
    ("phone", "dial +1-415-555-2671 ext. 4", "+1-415-555-2671"),
    ("phone", '<a href="tel:+14155552671">call</a>', "+14155552671"),
    ("phone", "+1 (415) 555-2671 is my number", "+1 (415) 555-2671"),
    ("phone", "toll-free 1-800-555-0199", "1-800-555-0199"),
    ("phone", "or 1 (415) 555-2671", "1 (415) 555-2671"),
    ("phone", "UK office: +44 20 7946 0958", "+44 20 7946 0958"),
    ("phone", "ring 020 7946 0958 between 9 and 5", "020 7946 0958"),
    ("phone", "mobile 07700 900123", "07700 900123"),
    ("phone", "+44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
    ("phone", "Telefon: +49 30 12345678", "+49 30 12345678"),
    ("phone", "Tel. 030 12345678 (Mo-Fr)", "030 12345678"),
    ("phone", "Handy 0151 23456789", "0151 23456789"),
    ("phone", "appelez le +33 1 23 45 67 89", "+33 1 23 45 67 89"),
    ("phone", "mon numéro : 01 23 45 67 89", "01 23 45 67 89"),
    ("phone", "portable 06.12.34.56.78", "06.12.34.56.78"),
    ("phone", "Tokyo +81 3-1234-5678", "+81 3-1234-5678"),
    ("phone", "電話 03-1234-5678 まで", "03-1234-5678"),
    ("phone", "WhatsApp +91 98765 43210", "+91 98765 43210"),
    ("phone", "celular +55 11 91234-5678", "+55 11 91234-5678"),
    ("phone", "Sydney +61 2 9876 5432", "+61 2 9876 5432"),
    ("phone", "call 02 9876 5432 (AU)", "02 9876 5432"),
    ("phone", "móvil +34 612 34 56 78", "+34 612 34 56 78"),
    ("phone", "ufficio +39 06 1234 5678", "+39 06 1234 5678"),
    ("phone", "bel 020 123 4567", "020 123 4567"),
    ("phone", "Zürich 044 668 18 00", "044 668 18 00"),
    ("phone", "Phone:\n415-555-2671", "415-555-2671"),
    ("phone", "my number is 4155552671", "4155552671"),  # known miss: a bare 10-digit run is also an epoch time
    ("phone", "llámame al 612 34 56 78", "612 34 56 78"),  # known miss: no country code and no trunk 0

    ("card", "card 4111 1111 1111 1111 exp 12/28", "4111 1111 1111 1111"),
    ("card", "Visa: 4111-1111-1111-1111", "4111-1111-1111-1111"),
    ("card", "pay with 4111111111111111 please", "4111111111111111"),
    ("card", "Mastercard 5555 5555 5555 4444", "5555 5555 5555 4444"),
    ("card", "MC 2-series 2223 0031 2200 3222", "2223 0031 2200 3222"),
    ("card", "Amex 3782 822463 10005", "3782 822463 10005"),
    ("card", "amex:371449635398431", "371449635398431"),
    ("card", "Discover 6011 1111 1111 1117", "6011 1111 1111 1117"),
    ("card", "Diners 3056 930902 5904", "3056 930902 5904"),
    ("card", "JCB 3530-1113-3330-0000", "3530-1113-3330-0000"),
    ("card", "old Visa 4222222222222", "4222222222222"),
    ("card", "UnionPay 6200 0000 0000 0005", "6200 0000 0000 0005"),
    ("card", "Maestro 6759649826438453", "6759649826438453"),
    ("card", '{"number": "5105105105105100", "cvc": "123"}', "5105105105105100"),
    ("card", "card:\n4012888888881881", "4012888888881881"),
    ("card", "number 4111 1111 1111 1111.", "4111 1111 1111 1111"),

    ("ipv4", "client 203.0.113.7 connected", "203.0.113.7"),
    ("ipv4", "GET http://198.51.100.23/index.html", "198.51.100.23"),
    ("ipv4", "upstream 10.0.0.1:8080 timed out", "10.0.0.1"),
    ("ipv4", "allow 192.168.1.10/24", "192.168.1.10"),
    ("ipv4", "from=172.16.254.1, to=gateway", "172.16.254.1"),
    ("ipv4", "resolver\n8.8.8.8", "8.8.8.8"),
    ("ipv4", "X-Forwarded-For: 100.64.0.1", "100.64.0.1"),
    ("ipv4", "the server at 192.0.2.255.", "192.0.2.255"),
    ("ipv4", "ssh deploy@203.0.113.50", "203.0.113.50"),

    ("ipv6", "client 2001:0db8:85a3:0000:0000:8a2e:0370:7334 connected", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("ipv6", "bind 2001:db8::1", "2001:db8::1"),
    ("ipv6", "curl http://[::1]:8080/", "::1"),
    ("ipv6", "link-local fe80::1ff:fe23:4567:890a%eth0 is up", "fe80::1ff:fe23:4567:890a%eth0"),
    ("ipv6", "https://[2001:db8::42]:443/health", "2001:db8::42"),
    ("ipv6", "mapped ::ffff:192.0.2.128", "::ffff:192.0.2.128"),
    ("ipv6", "RFC 2373 example 2001:DB8:0:0:8:800:200C:417A", "2001:DB8:0:0:8:800:200C:417A"),
    ("ipv6", "resolver 2606:4700:4700::1111.", "2606:4700:4700::1111"),
    ("ipv6", "peer=fd12:3456:789a:1::1,", "fd12:3456:789a:1::1"),
]

#: (the kind the text's shape is closest to, text holding no personal data)
NEGATIVES: list[tuple[str, str]] = [
    ("email", "@channel please review the release notes"),
    ("email", "connect to user@localhost on the dev box"),
    ("email", "npm i -D @types/node@20.11.5"),
    ("email", "use icon@2x.png for retina screens"),
    ("email", "pin the package as pkg@1.2.3"),
    ("email", "@property\ndef name(self): ..."),
    ("email", "docker pull python@sha256:4b1c5e0d2f"),
    ("email", "the decorator @functools.lru_cache(maxsize=128)"),
    ("email", "git clone git@github.com:org/repo.git"),  # known false positive: an address in form
    ("phone", "order ORD-2026-000123 shipped"),
    ("phone", "invoice INV-20261127-0042"),
    ("phone", "ISBN 978-3-16-148410-0"),
    ("phone", "ship to zip 94103-1234"),
    ("phone", "SKU 1234-5678-90 is out of stock"),
    ("phone", "delivered 2026-11-27 at 14:55"),
    ("phone", "am 27.11.2026 um 14:55 Uhr"),
    ("phone", "due 11/27/2026"),
    ("phone", "1 234 567 tokens this month"),
    ("phone", "total 1 234 567,89 €"),
    ("phone", "revenue $1,234,567.89"),
    ("phone", "epoch 1796156788"),
    ("phone", "latency 1234.5678 ms"),
    ("phone", "rooms 1202-1205 are booked"),
    ("phone", "+15 points since last week"),
    ("phone", "pi is 3.14159265358979"),
    ("phone", "at 37.7749, -122.4194"),
    ("phone", "the years 2019 2020 2021 2022"),
    ("phone", "ticket #00012345678"),
    ("phone", "ranges 100-200-300-400"),
    ("phone", "batch 2026-11-27-000042 done"),
    ("phone", "tracking 1Z 999 AA1 01 2345 6784"),
    ("phone", "IBAN DE89 3704 0044 0532 0130 00"),
    ("card", "order 4111111111111112 (not a card: Luhn fails)"),
    ("card", "order id 1234567812345670"),
    ("card", "IMEI 490154203237518"),
    ("card", "EAN 4006381333931"),
    ("card", "ts_ns 1796156788000284865"),
    ("card", "created_ms 1796156788123"),
    ("card", "account 0001234567890123"),
    ("card", "ref 7992739871300001"),
    ("card", "span 3704 0044 0532 0130"),
    ("ipv4", "upgrade to version 1.2.3"),
    ("ipv4", "tag v1.2.3.4 is out"),
    ("ipv4", "Windows 10.0.19045.3693"),
    ("ipv4", "OID 1.3.6.1.4.1.311.21.7"),
    ("ipv4", "User-Agent: Chrome/120.0.6099.109"),
    ("ipv4", "256.1.1.1 is not an address"),
    ("ipv4", "see section 3.2.1 of the spec"),
    ("ipv4", "libssl.so.3.0.2 was loaded"),
    ("ipv4", "timestamp 2026.11.27.1455"),
    ("ipv4", "release 4.2.1.0 of the SDK"),  # known false positive: a four-part version in an address's form
    ("ipv6", "std::vector<int> v;"),
    ("ipv6", "call Foo::Bar::baz() first"),
    ("ipv6", "map :: (a -> b) -> [a] -> [b]"),
    ("ipv6", "MAC 00:1A:2B:3C:4D:5E"),
    ("ipv6", "at 12:30:45 UTC"),
    ("ipv6", "2026-11-27T14:55:03.123456+00:00"),
    ("ipv6", "aspect ratio 16:9"),
    ("ipv6", "cb::add(x)"),
    ("ipv6", "use node::v8 bindings"),
    ("ipv6", "frames 10:30:00:00 to 10:31:00:00"),
    ("ipv6", "sha256:4b1c5e0d2f8a9b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c"),
    ("other", "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7"),
    ("other", "UUID 123e4567-e89b-12d3-a456-426614174000"),
    ("other", "commit 2b505c4 fixed it; see aadcba0"),
    ("other", "pod checkout-7d9f8c6b5-x2x9p restarted"),
    ("other", "model gpt-4o-mini-2024-07-18 answered in 812 ms"),
    ("other", "The quick brown fox jumps over the lazy dog. Order 1234 has not arrived."),
]


def generated_negatives(count: int = 1000, seed: int = 17) -> dict[str, list[str]]:
    """Ids and numbers that records and prompts are full of, made at random (reproducibly), by family.

    The card detector's false-positive rate on random 16-digit ids is the one figure this measures that the
    hand-written corpus cannot: about a third of random 16-digit numbers start like a card, and a tenth of
    those pass the Luhn check.
    """
    rng = random.Random(seed)
    return {
        "16-digit order ids": [f"order {rng.randrange(10**15, 10**16)}" for _ in range(count)],
        "UUIDs": [f"request {uuid.UUID(int=rng.getrandbits(128), version=4)}" for _ in range(count)],
        "trace ids": [f"trace {rng.getrandbits(128):032x}" for _ in range(count)],
        "epoch ms": [f"at {rng.randrange(1_600_000_000_000, 1_900_000_000_000)}" for _ in range(count)],
        "ISO timestamps": [f"{rng.randrange(2020, 2030)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
                           f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
                           f"{rng.randrange(10**6):06d}+00:00" for _ in range(count)],
        "versions": [f"v{rng.randrange(20)}.{rng.randrange(50)}.{rng.randrange(300)}" for _ in range(count)],
        "prices": [f"${rng.randrange(10**7) / 100:,.2f}" for _ in range(count)],
    }
