//! Audit chain: an append-only, BLAKE3-chained, Ed25519-checkpointed log (docs/AUDIT_FORMAT.md).
//!
//! * [`format`]: byte layout, hashes and signatures.
//! * [`canonical`]: strings, floats and timestamps of canonical record bodies.
//! * [`writer`]: group-commit writer with checkpoints, anchoring, rotation and retention.
//! * [`verify`]: the verifier, export bundles and record reading.
//! * [`keys`]: local Ed25519 key files.
//!
//! # Performance
//! `append` encodes, CRCs and hashes the record on the caller's thread under one short lock
//! (about 1 µs for 1 KiB, see benchmarks/audit_bench.py); the fdatasync happens on the writer
//! thread, shared by everything appended meanwhile.

pub mod canonical;
pub mod format;
pub mod keys;
pub mod verify;
pub mod writer;
