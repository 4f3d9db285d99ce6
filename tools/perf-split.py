#!/usr/bin/env python3
"""Split a data-vault server profile into per-request stages (docs/performance.md).

Reads `perf script -F comm,tid,ip,sym` output of a `perf record --call-graph dwarf -p <server>`
and puts every sample in one bucket: samples of sqlx's SQLite connection threads by what the
stack shows SQLite doing; samples of the async runtime's threads by the first rule below whose
pattern matches any frame of the stack (the rules are checked in order, so a sample in the
audit writer's commit counts there even though HTTP frames are below it). Inlined functions
count towards their callers: the split is a guide to where the time goes, not an exact
accounting.

    perf script -i perf.data -F comm,tid,ip,sym | tools/perf-split.py
"""

import collections
import re
import sys

SQLITE_COMMIT = re.compile(
    r"sqlite3VdbeHalt|CommitPhase|pagerWalFrames|unixSync|walWriteOneFrame|sqlite3WalFrames"
)
SQLITE_ANY = re.compile(r"sqlite3|ExecuteIter|StatementHandle|sqlx_sqlite::connection::execute")
RULES = [
    (
        "audit append: group-commit writer (rows, chain links, tree, commit wait)",
        r"commit_queue::run|BatchStore>::commit_jobs|append_chain_in_tx|audit::chain"
        r"|push_leaf|insert_tree_nodes",
    ),
    (
        "signature check (HMAC, signed-request parsing, client secret)",
        r"verify_client_signature|hmac_scheme|hmac::|Hmac|auth::authenticate",
    ),
    ("nonce check-and-record", r"nonce::"),
    (
        "open/unseal (tenant key, data key, ChaCha20-Poly1305)",
        r"crypto::keys|unwrap_tenant_key|chacha20|poly1305",
    ),
    ("store read: metadata (blob_meta, incl. handoff to SQLite thread)", r"blob_meta"),
    ("store read: sealed content (blob_content, incl. handoff)", r"blob_content"),
    (
        "audit event building + waiting for the commit (record)",
        r"Vault::record|blob_event|NewEvent|Vault::commit",
    ),
    ("decision (scopes, access)", r"data_vault_scopes|service::access"),
    ("sqlx pool (acquire, ping, return)", r"sqlx_core::pool|ConnectionWorker::ping|return_to_pool"),
    (
        "HTTP middleware (request id, access log, metrics, timeout, IP limit)",
        r"http::middleware",
    ),
    (
        "HTTP + serialisation (hyper, axum, sockets, JSON)",
        r"hyper::|axum::|serde_json|Watched|data_vault::http",
    ),
    ("tokio scheduler (polling, parking, wake-ups)", r"tokio::"),
]
RULES = [(name, re.compile(pattern)) for name, pattern in RULES]


def samples(lines):
    current = None
    for line in lines:
        if not line.strip():
            if current:
                yield current
            current = None
        elif not line[0].isspace():
            current = (line.split()[0], [])
        elif current is not None:
            current[1].append(line.strip().split(" ", 1)[-1])
    if current:
        yield current


def bucket(comm, frames):
    stack = "\n".join(frames)
    if comm.startswith("sqlx-sqlite"):
        if SQLITE_COMMIT.search(stack):
            return "SQLite thread: commit (WAL append, fsync)"
        if SQLITE_ANY.search(stack):
            return "SQLite thread: statements (B-tree reads, inserts, page cache)"
        return "SQLite thread: waiting for and handing off commands (flume, futex)"
    for name, pattern in RULES:
        if pattern.search(stack):
            return name
    return f"other ({comm})"


def main():
    counts = collections.Counter(bucket(c, f) for c, f in samples(sys.stdin))
    total = sum(counts.values())
    print(f"{total} samples")
    for name, n in counts.most_common():
        print(f"{100 * n / max(total, 1):5.1f} %  {name}")


if __name__ == "__main__":
    main()
