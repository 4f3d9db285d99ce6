#!/usr/bin/env python3
"""Verify data-vault audit chains from exported events, independently of the vault.

Reads JSON from standard input: either a list of events, or one or more pages of
`GET /api/v1/vault/audit` (objects with an "events" list), concatenated. Groups the events by
chain, orders them by seq, and checks each chain from its genesis: no gaps, each
previous_hash equal to the hash before it, and each hash equal to the SHA-256 of the RFC 8785
canonical JSON of the event without "hash". Exits 1 if any chain does not verify.

The events' values are strings, integers and nulls only; for those, Python's json.dumps with
sorted keys, no whitespace and ensure_ascii=False produces exactly the RFC 8785 form.
"""

import hashlib
import json
import sys

GENESIS = "0" * 64


def canonical(event):
    body = {k: v for k, v in event.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load(text):
    decoder = json.JSONDecoder()
    events, pos = [], 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        value, pos = decoder.raw_decode(text, pos)
        events.extend(value["events"] if isinstance(value, dict) else value)
    return events


def verify(events):
    previous, expected_seq = GENESIS, 1
    for event in sorted(events, key=lambda e: e["seq"]):
        if event["seq"] != expected_seq:
            return expected_seq
        if event["previous_hash"] != previous:
            return expected_seq
        if hashlib.sha256(canonical(event).encode("utf-8")).hexdigest() != event["hash"]:
            return expected_seq
        previous, expected_seq = event["hash"], expected_seq + 1
    return None


def main():
    chains = {}
    for event in load(sys.stdin.read()):
        chains.setdefault(event["chain"], {})[event["id"]] = event
    ok = True
    for chain, by_id in sorted(chains.items()):
        bad = verify(list(by_id.values()))
        if bad is None:
            print(f"{chain}: valid, {len(by_id)} events")
        else:
            ok = False
            print(f"{chain}: INVALID from seq {bad}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
