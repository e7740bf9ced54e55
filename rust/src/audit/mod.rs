//! Audit chain: an append-only, BLAKE3-chained, Ed25519-checkpointed log (docs/AUDIT_FORMAT.md).
//!
//! * [`format`]: byte layout, hashes and signatures.
//! * [`canonical`]: strings, floats and timestamps of canonical record bodies.
//! * [`writer`]: group-commit writer with checkpoints, anchoring, rotation and retention.
//! * [`verify`]: the verifier, export bundles and record reading.
//! * [`keys`]: local Ed25519 key files.
//!
//! # Performance
//! `append` only stages the record (timestamp, kind, body) under one short lock; the writer
//! thread chains, hashes and CRCs staged records in seq order and shares one fdatasync among
//! everything appended meanwhile (see benchmarks/audit_bench.py). Record bodies built in Python
//! are encoded canonically in Rust (`py/canonical.rs`), straight from the dict.

pub mod canonical;
pub mod format;
pub mod keys;
pub mod verify;
pub mod writer;
