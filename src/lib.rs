//! data-vault: a multi-tenant, scope-aware vault for client-encrypted artifacts.
//!
//! The binary's `serve` runs [`startup::Application`]; `admin`, `blob` and `audit` are the CLI.

pub mod audit;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod envelope;
pub mod error;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod nonce;
pub mod objects;
pub mod offload;
pub mod redis_conn;
pub mod retention;
pub mod server;
pub mod service;
pub mod spikes;
pub mod startup;
pub mod store;
pub mod time;
