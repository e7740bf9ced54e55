//! graphwarden's native core.
//!
//! * [`masking`]: Hyperscan-backed detection and masking of PII and secrets.
//! * [`audit`]: the BLAKE3-chained, Ed25519-checkpointed append-only audit log.
//! * [`sse`]: server-sent event splitting and data rewriting for streamed responses.
//! * `py`: every `#[py*]` binding, one file per area, so the engines stay plain Rust.
#![deny(missing_docs)]

pub mod audit;
pub mod masking;
mod py;
pub mod sse;

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod test_util {
    /// A small deterministic generator for the randomised tests.
    pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }
}

use pyo3::prelude::*;

/// The `graphwarden._native` extension module.
#[pymodule]
#[pyo3(name = "_native")]
fn native_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    py::register(m)
}
