//! Integration tests: the real server on a free port, spoken to over HTTP. One test binary
//! for all of them keeps link time down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod abuse;
mod access;
mod audit;
mod audit_writer;
mod auth_hmac;
mod auth_timing;
mod blobs;
mod canonical_input;
mod cli;
mod redis;
mod sealing;
mod wallet;
