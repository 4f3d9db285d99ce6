//! Integration tests: the real server on a free port, spoken to over HTTP. One test binary
//! for all of them keeps link time down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tests sign requests as clients do, with the wall clock.
#![allow(clippy::disallowed_methods)]
// Tests index into JSON bodies and vectors freely: a miss fails the test, as it should.
#![allow(clippy::indexing_slicing)]

mod helpers;

mod abuse;
mod access;
mod audit;
mod auth_hmac;
mod auth_timing;
mod backup;
mod blobs;
mod browser;
mod canonical_input;
mod cli;
mod cli_stream;
mod clock;
mod commit_queue;
mod connections;
mod cors;
mod credentials;
mod deploy;
mod envelope_bomb;
mod keys;
mod large;
mod large_lifecycle;
mod moto;
mod objects;
mod openapi;
mod ops;
mod pg_roles;
mod recipients;
mod redaction;
mod redis;
mod replay;
mod retention;
mod runbooks;
mod schemathesis;
mod sealing;
mod sharing;
mod subjects;
mod tlog;
mod tls;
mod wallet;
