//! Masking engine (Hyperscan FFI, catalogue, streaming masker).
