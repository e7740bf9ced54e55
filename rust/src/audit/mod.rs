//! Audit chain (segment writer, checkpoints, verifier).
