//! Bindings for the SSE splitter: `SseSplitter(routed, rewrite, max_event_bytes)`.
//!
//! `feed(chunk)` returns a list of `bytes` (ready for the client) and `(name, raw)` tuples
//! (routed events, for the caller), in stream order. The rewrite step for the bulk events is a
//! Python callable `rewrite(name, data) -> bytes | None` or, much faster, a native masker
//! (see `crate::py::masking`) that rewrites without calling back into Python.
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyTuple};

use crate::sse::{DataRewriter, Piece, SseSplitter as Inner};

/// A native rewriter of an event's data (name, data): the new data, or None to keep it.
pub(crate) type NativeRewrite = Box<dyn FnMut(&[u8], &[u8]) -> Option<Vec<u8>> + Send + Sync>;
/// A region pass: true when nothing in these bytes can need a rewrite.
pub(crate) type RegionClear = Box<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// What rewrites bulk events' data.
pub(crate) enum Rewrite {
    /// A Python callable (slow path, used by tests and custom filters).
    Callable(Py<PyAny>),
    /// A native rewriter (masking engine), with an optional region pass (see
    /// `DataRewriter::region_clear`).
    Native(NativeRewrite, Option<RegionClear>),
    /// Leave events as they are (only routing and framing).
    Keep,
}

struct CallRewriter<'py, 'a> {
    py: Python<'py>,
    rw: &'a mut Rewrite,
    err: Option<PyErr>,
}

impl DataRewriter for CallRewriter<'_, '_> {
    fn wants_data(&self) -> bool {
        !matches!(self.rw, Rewrite::Keep)
    }

    fn region_clear(&mut self, region: &[u8]) -> bool {
        match self.rw {
            Rewrite::Native(_, Some(clear)) => clear(region),
            _ => false,
        }
    }

    fn rewrite(&mut self, name: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        if self.err.is_some() {
            return None;
        }
        match self.rw {
            Rewrite::Keep => None,
            Rewrite::Native(f, _) => f(name, data),
            Rewrite::Callable(f) => {
                let r = f.call1(self.py, (PyBytes::new(self.py, name), PyBytes::new(self.py, data)));
                match r {
                    Ok(v) if v.is_none(self.py) => None,
                    Ok(v) => match v.extract::<Vec<u8>>(self.py) {
                        Ok(b) => Some(b),
                        Err(e) => {
                            self.err = Some(e);
                            None
                        }
                    },
                    Err(e) => {
                        self.err = Some(e);
                        None
                    }
                }
            }
        }
    }
}

/// Incremental SSE splitter with native rewriting of bulk events.
#[pyclass(module = "graphwarden._native")]
pub(crate) struct SseSplitter {
    inner: Inner,
    rewrite: Rewrite,
}

impl SseSplitter {
    pub(crate) fn with_rewrite(routed: Vec<Vec<u8>>, rewrite: Rewrite, max_event_bytes: usize) -> Self {
        SseSplitter { inner: Inner::new(routed, max_event_bytes), rewrite }
    }
}

/// One `bytes` object holding `parts` joined (a single copy of each byte).
fn joined<'py>(py: Python<'py>, parts: &[&[u8]]) -> PyResult<Bound<'py, PyBytes>> {
    if let [one] = parts {
        return Ok(PyBytes::new(py, one));
    }
    let len: usize = parts.iter().map(|p| p.len()).sum();
    // Not `PyBytes::new_with`: it zero-fills the buffer first, a second pass over every byte.
    // SAFETY: `PyBytes_FromStringAndSize(NULL, len)` returns a new bytes object (or NULL with
    // an exception set) whose `len` bytes are ours to write before anyone else sees it; the
    // copies below fill exactly those `len` bytes.
    unsafe {
        let obj = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len as pyo3::ffi::Py_ssize_t);
        let bytes = Bound::from_owned_ptr_or_err(py, obj)?.cast_into_unchecked::<PyBytes>();
        let mut dst = pyo3::ffi::PyBytes_AsString(obj) as *mut u8;
        for p in parts {
            std::ptr::copy_nonoverlapping(p.as_ptr(), dst, p.len());
            dst = dst.add(p.len());
        }
        Ok(bytes)
    }
}

/// A piece of `feed`'s answer once nothing borrows the caller's chunk any more.
enum Item<'py> {
    Bytes(Bound<'py, PyBytes>),
    /// The next routed event.
    Event,
}

/// The pieces as `bytes` (consecutive pass-through and rewritten pieces joined into one) and
/// `(name, raw)` tuples, in order.
///
/// In two steps: the `bytes` objects first, while the pieces may still borrow the caller's
/// `bytearray`; then the tuples and the list. Only the second step allocates objects the
/// garbage collector tracks, and a collection may run arbitrary `__del__` code, which must not
/// happen while the `bytearray` is borrowed (`SseSplitter::feed`).
fn to_list<'py>(py: Python<'py>, pieces: Vec<Piece<'_>>) -> PyResult<Bound<'py, PyList>> {
    let mut items: Vec<Item<'py>> = Vec::new();
    let mut parts: Vec<&[u8]> = Vec::new();
    for piece in &pieces {
        match piece {
            Piece::Borrowed(b) => parts.push(b),
            Piece::Owned(b) => parts.push(b),
            Piece::Event { .. } => {
                if !parts.is_empty() {
                    items.push(Item::Bytes(joined(py, &parts)?));
                    parts.clear();
                }
                items.push(Item::Event);
            }
        }
    }
    if !parts.is_empty() {
        items.push(Item::Bytes(joined(py, &parts)?));
    }
    drop(parts);
    let events: Vec<(Vec<u8>, Vec<u8>)> = pieces
        .into_iter()
        .filter_map(|p| match p {
            Piece::Event { name, raw } => Some((name, raw)),
            _ => None,
        })
        .collect();
    // nothing borrows the chunk from here on
    let mut events = events.into_iter();
    let out = PyList::empty(py);
    for item in items {
        match item {
            Item::Bytes(b) => out.append(b)?,
            Item::Event => {
                let (name, raw) = events.next().expect("one event per Event item");
                out.append(PyTuple::new(py, [PyBytes::new(py, &name), PyBytes::new(py, &raw)])?)?;
            }
        }
    }
    Ok(out)
}

#[pymethods]
impl SseSplitter {
    #[new]
    #[pyo3(signature = (routed, rewrite=None, max_event_bytes=64*1024*1024))]
    fn new(routed: Vec<Vec<u8>>, rewrite: Option<Py<PyAny>>, max_event_bytes: usize) -> Self {
        let rewrite = match rewrite {
            Some(f) => Rewrite::Callable(f),
            None => Rewrite::Keep,
        };
        Self::with_rewrite(routed, rewrite, max_event_bytes)
    }

    /// Add bytes (`bytes` or `bytearray`, as h11 hands them over); returns the completed
    /// segments in order.
    fn feed<'py>(&mut self, py: Python<'py>, chunk: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let native = matches!(self.rewrite, Rewrite::Native(..) | Rewrite::Keep);
        let copied: Vec<u8>;
        let data: &[u8] = if let Ok(b) = chunk.cast::<PyBytes>() {
            b.as_bytes()
        } else if let Ok(ba) = chunk.cast::<PyByteArray>() {
            if native {
                // SAFETY: no Python code runs while `data` is borrowed (native rewriting
                // only, and `to_list` makes only untracked `bytes` objects until it drops
                // the pieces), so nothing can resize or free the bytearray meanwhile.
                unsafe { ba.as_bytes() }
            } else {
                copied = ba.to_vec();
                &copied
            }
        } else {
            return Err(PyTypeError::new_err("SseSplitter.feed takes bytes or bytearray"));
        };
        let mut rw = CallRewriter { py, rw: &mut self.rewrite, err: None };
        let pieces = self
            .inner
            .feed_pieces(data, &mut rw)
            .map_err(|e| PyValueError::new_err(format!("SSE event larger than {} bytes", e.0)))?;
        if let Some(e) = rw.err {
            return Err(e);
        }
        to_list(py, pieces)
    }

    /// Complete events seen so far.
    #[getter]
    fn events(&self) -> u64 {
        self.inner.events
    }

    /// End of stream: the bytes of an unterminated final event (not rewritten).
    fn finish<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.finish())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SseSplitter>()?;
    Ok(())
}
