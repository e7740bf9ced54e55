//! Python bindings. All pyo3 glue lives under this module: engines convert their own error types
//! into Python exceptions only here.
use pyo3::prelude::*;

mod audit;
mod canonical;
mod masking;
pub(crate) mod sse;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    masking::register(m)?;
    audit::register(m)?;
    canonical::register(m)?;
    sse::register(m)?;
    Ok(())
}
