#!/usr/bin/env python3
"""Writes the hand-made seeds of the `auth_headers` target (fuzz/corpus/auth_headers/).

The target decodes its input with `arbitrary` 1.x, so a seed is laid out as that decoder reads
it: integers little-endian from the front, and the length of each non-final string or byte
field taken from the *end* of the data (one byte while at most 256 bytes remain, two bytes,
big-endian, while at most 65,537 remain); the last field takes the rest. Check a seed with
`cargo fuzz fmt auth_headers fuzz/corpus/auth_headers/<seed>`.
"""

import hashlib
import os
import struct
import sys

CASES = ["Timestamp", "Nonce", "Window", "Hmac", "Wallet", "WalletSigned", "Address"]
TAMPERS = ["None", "ForeignChain", "OtherData", "SignatureChar", "UppercaseAddress"]


def variant(index, count):
    """The u32 that `arbitrary` maps to variant `index` of `count` ((v * count) >> 32)."""
    v = -(-(index << 32) // count)
    assert (v * count) >> 32 == index
    return struct.pack("<I", v)


def encode(fields):
    """fields: ("raw", bytes) read from the front, ("len", bytes) a sized field, ("rest",
    bytes) the final field."""
    front_total = sum(len(b) for _, b in fields)
    sized = [b for kind, b in fields if kind == "len"]
    widths = [1] * len(sized)
    for _ in range(10):  # the width of each length depends on what remains when it is read
        total = front_total + sum(widths)
        remaining, new, k = total, [], 0
        for kind, b in fields:
            if kind == "len":
                w = 1 if remaining <= 256 else 2
                new.append(w)
                remaining -= w + len(b)
                k += 1
            else:
                remaining -= len(b)
        if new == widths:
            break
        widths = new
    front, back, k = b"", [], 0
    for kind, b in fields:
        if kind == "len":
            n = len(b)
            back.append(bytes([n]) if widths[k] == 1 else struct.pack(">H", n))
            k += 1
        front += b
    return front + b"".join(reversed(back))


def s(text):
    return text.encode()


MNEMONIC_ADDRESS = "virtengine19rl4cm2hmr8afy4kldpxz3fka4jguq0a6mvv5p"
MNEMONIC_PUBKEY = "Ak9OKtmcNNYLm6YoPJQxqEGK+GcyEpYfl6d7Y3f80Fti"
GET_SIGNED_DATA = (
    '{"method":"GET","path":"/api/v1/vault/blobs/0190b6a0-0000-7000-8000-000000000000'
    '?reason=audit%20review&purpose=support","timestamp":1700000000000,'
    '"nonce":"00112233445566778899aabbccddeeff","body_hash":""}'
)
GET_SIGNATURE = "M46TDDQPY6YuVLxpGGyKrUAK0KQ6U0JSVvCRErN0fq40qcVEMVVh3A6DGbhHvNj0mIBlS1iM+lAQBJ4jLAgo8g=="
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def case(name):
    return ("raw", variant(CASES.index(name), len(CASES)))


SEEDS = {
    "timestamp-seconds": [case("Timestamp"), ("rest", s("1700000000"))],
    "timestamp-millis": [case("Timestamp"), ("rest", s("1700000000123"))],
    "timestamp-signed": [case("Timestamp"), ("rest", s("+1700000000"))],
    "nonce-32-hex": [case("Nonce"), ("rest", s("00112233445566778899aabbccddeeff"))],
    "nonce-short": [case("Nonce"), ("rest", s("0011223344"))],
    "window-edge": [
        case("Window"),
        ("raw", struct.pack("<q", 1_700_000_000_000 - 300_000)),
        ("raw", struct.pack("<q", 1_700_000_000_000)),
    ],
    "hmac-get": [
        case("Hmac"),
        ("len", s("GET")),
        ("len", s("/api/v1/vault/blobs/0190b6a0-0000-7000-8000-000000000000")),
        ("len", s("reason=audit%20review")),
        ("len", s("provider-daemon-7")),
        ("len", s("1700000000")),
        ("len", s("00112233445566778899aabbccddeeff")),
        ("len", s(EMPTY_SHA256)),
        ("len", s("9cec0856efcb419701c65a539ff8cf54eee1b745f5b72da2fb46f00bc2d54ba9")),
        ("len", s("secret")),
        ("rest", s("old-secret")),
    ],
    "wallet-test-vector": [
        case("Wallet"),
        ("len", s("virtengine")),
        ("raw", b"\x00"),  # chain_id: None
        ("len", s(MNEMONIC_ADDRESS)),
        ("len", s(MNEMONIC_PUBKEY)),
        ("len", s(GET_SIGNATURE)),
        ("rest", s(GET_SIGNED_DATA)),
    ],
    "wallet-chain-id-uppercase-address": [
        case("Wallet"),
        ("len", s("virtengine")),
        ("raw", b"\x01"),
        ("len", s("virtengine-1")),
        ("len", s(MNEMONIC_ADDRESS.upper())),
        ("len", s(MNEMONIC_PUBKEY)),
        ("len", s(GET_SIGNATURE)),
        ("rest", s(GET_SIGNED_DATA)),
    ],
}

for i, tamper in enumerate(TAMPERS):
    fields = [
        case("WalletSigned"),
        ("len", s("POST")),
        ("len", s("/api/v1/vault/blobs")),
        ("raw", struct.pack("<q", 1_700_000_000_123)),
        ("len", s("0f1e2d3c4b5a69788796a5b4c3d2e1f0")),
        ("len", s('{"scope":"support"}')),
        ("raw", bytes([i % 2])),  # use_chain_id
        ("raw", variant(i, len(TAMPERS))),
    ]
    if tamper in ("OtherData", "SignatureChar"):
        fields.append(("rest", b"\x07"))
    SEEDS[f"wallet-signed-{tamper.lower()}"] = fields

SEEDS["address-of-key"] = [
    case("Address"),
    ("raw", bytes.fromhex("024f4e2ad99c34d60b9ba6283c9431a8418af8673212961f97a77b6377fcd05b62")),
    ("rest", s("virtengine")),
]

out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/auth_headers"
os.makedirs(out, exist_ok=True)
for name, fields in SEEDS.items():
    with open(os.path.join(out, f"seed-{name}"), "wb") as f:
        f.write(encode(fields))
print(f"{len(SEEDS)} seeds written to {out}")
