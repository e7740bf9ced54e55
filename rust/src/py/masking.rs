//! Bindings for the masking engine: `MaskEngine`, `MaskStream`, and native SSE rewriting.
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::sse::{Rewrite, SseSplitter};
use crate::masking::{Action, Engine, EntrySpec, StreamState, Validator};

/// Inputs above this size are masked with the GIL released.
const DETACH_BYTES: usize = 64 * 1024;

/// A compiled catalogue.
#[pyclass(frozen, module = "graphwarden._native")]
struct MaskEngine {
    inner: Arc<Engine>,
}

type EntryTuple = (String, String, Vec<String>, String, String, usize, usize, Vec<String>, Option<String>);

#[pymethods]
impl MaskEngine {
    /// `entries`: (id, entity, patterns, validator, action, group, max_len, prefixes, prefilter) in
    /// priority order; `hash_key`: 32 bytes for the keyed-hash action.
    #[new]
    fn new(py: Python<'_>, entries: Vec<EntryTuple>, hash_key: Vec<u8>) -> PyResult<Self> {
        let key: [u8; 32] =
            hash_key.try_into().map_err(|_| PyValueError::new_err("hash_key must be exactly 32 bytes"))?;
        let mut specs = Vec::with_capacity(entries.len());
        for (id, entity, patterns, validator, action, group, max_len, prefixes, prefilter) in entries {
            let v = Validator::parse(&validator)
                .ok_or_else(|| PyValueError::new_err(format!("entry {id}: unknown validator {validator:?}")))?;
            let a = Action::parse(&action)
                .ok_or_else(|| PyValueError::new_err(format!("entry {id}: unknown action {action:?}")))?;
            specs.push(EntrySpec {
                id,
                entity,
                patterns,
                validator: v,
                action: a,
                group,
                max_len,
                prefixes: prefixes.into_iter().map(|p| p.into_bytes()).collect(),
                prefilter,
            });
        }
        let engine = py.detach(|| Engine::new(specs, key)).map_err(|e| match e.id.as_str() {
            // a bad `GRAPHWARDEN_SIMD`: no entry is at fault
            "(environment)" => PyValueError::new_err(e.message),
            _ => PyValueError::new_err(format!("entry {}: pattern does not compile: {}", e.id, e.message)),
        })?;
        Ok(MaskEngine { inner: Arc::new(engine) })
    }

    /// Block mode. Returns the input object itself when nothing is masked (no copy); else the
    /// masked text is written straight into the new `bytes` (one copy, not two).
    fn mask<'py>(&self, py: Python<'py>, data: Bound<'py, PyBytes>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = data.as_bytes();
        let spans =
            if bytes.len() >= DETACH_BYTES { py.detach(|| self.inner.spans(bytes)) } else { self.inner.spans(bytes) };
        if spans.is_empty() {
            return Ok(data);
        }
        let len = self.inner.masked_len(bytes, &spans);
        // Not `PyBytes::new_with`, which zeroes the buffer first (a pass over the output as
        // costly as a copy): `write_masked` writes every byte of it.
        // SAFETY: `PyBytes_FromStringAndSize(NULL, len)` returns a new reference to a `bytes` of
        // `len` uninitialised bytes (or NULL with an exception set, which `from_owned_ptr_or_err`
        // turns into the error), whose buffer `PyBytes_AsString` gives; nothing else sees the
        // object before it is filled.
        unsafe {
            let ptr = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len as pyo3::ffi::Py_ssize_t);
            let out = Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyBytes>();
            let buf = pyo3::ffi::PyBytes_AsString(ptr).cast::<std::mem::MaybeUninit<u8>>();
            self.inner.write_masked(bytes, &spans, std::slice::from_raw_parts_mut(buf, len));
            Ok(out)
        }
    }

    /// JSON-aware; ValueError when `data` is not JSON. The input object itself when unchanged.
    fn mask_json<'py>(&self, py: Python<'py>, data: Bound<'py, PyBytes>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = data.as_bytes();
        let res = if bytes.len() >= DETACH_BYTES {
            py.detach(|| self.inner.mask_json_if_needed(bytes))
        } else {
            self.inner.mask_json_if_needed(bytes)
        };
        match res.map_err(PyValueError::new_err)? {
            Some(v) => Ok(PyBytes::new(py, &v)),
            None => Ok(data),
        }
    }

    /// Whether the default catalogue's digit patterns (cards, SSNs, IBANs, phones) are located
    /// by their digit shapes instead of a Hyperscan pass (see `digit_triggers`).
    fn digit_gated(&self) -> bool {
        self.inner.digit_gated()
    }

    /// The vector instructions the engine's passes use on this CPU (for benchmark reports).
    fn simd(&self) -> String {
        self.inner.simd()
    }

    /// (entity, start, end) of each merged span; never the value.
    fn findings(&self, py: Python<'_>, data: &[u8]) -> Vec<(String, usize, usize)> {
        let spans = py.detach(|| self.inner.spans(data));
        let entries = self.inner.entries();
        spans.into_iter().map(|s| (entries[s.entry].entity.clone(), s.start, s.end)).collect()
    }

    /// (entry id, start, end) of every validated match before merging (for tooling and tests).
    fn matches(&self, py: Python<'_>, data: &[u8]) -> Vec<(String, usize, usize)> {
        let spans = py.detach(|| self.inner.unmerged(data));
        let entries = self.inner.entries();
        spans.into_iter().map(|s| (entries[s.entry].id.clone(), s.start, s.end)).collect()
    }

    /// A streaming masker.
    fn stream(&self) -> MaskStream {
        MaskStream { engine: self.inner.clone(), st: StreamState::default() }
    }

    /// An SSE splitter routing `routed` event names to the caller and masking every other
    /// event's data natively (as JSON; as text when it is not JSON).
    fn sse_splitter(&self, routed: Vec<Vec<u8>>) -> SseSplitter {
        let eng = self.inner.clone();
        let region = self.inner.clone();
        let rw = Rewrite::Native(
            Box::new(move |_name: &[u8], data: &[u8]| {
                // Without a backslash, JSON strings are their raw bytes: if nothing in the raw
                // data can match, nothing decoded can either, and the event passes as is.
                if eng.raw_clear(data) {
                    return None;
                }
                match eng.mask_json_if_needed(data) {
                    Ok(v) => v,
                    Err(_) => eng.mask_if_needed(data),
                }
            }),
            Some(Box::new(move |bytes: &[u8]| region.raw_superset() && !region.may_match(bytes))),
        );
        SseSplitter::with_rewrite(routed, rw, 64 * 1024 * 1024)
    }

    /// Longest hold-back of the stream masker without literal-prefixed entries.
    #[getter]
    fn base_hold(&self) -> usize {
        self.inner.base_hold()
    }
}

/// Streaming masker state.
#[pyclass(module = "graphwarden._native")]
struct MaskStream {
    engine: Arc<Engine>,
    st: StreamState,
}

#[pymethods]
impl MaskStream {
    /// Add bytes; returns what can be released.
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
        let out = self.engine.feed(&mut self.st, data);
        PyBytes::new(py, &out)
    }

    /// End of input: the rest, masked.
    fn finish<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let out = self.engine.finish(&mut self.st);
        PyBytes::new(py, &out)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MaskEngine>()?;
    m.add_class::<MaskStream>()?;
    Ok(())
}
