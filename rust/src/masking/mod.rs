//! Masking engine: a thin Hyperscan FFI, validators, span resolution and rewriting, streaming
//! and JSON-aware masking. The catalogue (TOML) is read in Python and handed over as entries.

pub mod engine;
mod ffi;
mod gate;
pub mod json;
mod runs;
mod split;
pub mod validators;

pub use engine::{Action, CompileError, Engine, EntrySpec, Span, StreamState};
pub use validators::Validator;
