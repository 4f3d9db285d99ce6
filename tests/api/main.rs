//! Integration tests: the real server on a free port, spoken to over HTTP. One test binary
//! for all of them keeps link time down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod abuse;
mod access;
mod audit;
mod auth_hmac;
mod auth_timing;
mod blobs;
mod canonical_input;
mod cli;
mod commit_queue;
mod connections;
mod envelope_bomb;
mod pg_roles;
mod redaction;
mod redis;
mod replay;
mod sealing;
mod wallet;
