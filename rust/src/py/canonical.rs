//! Canonical JSON of Python objects (docs/AUDIT_FORMAT.md 4.2), byte for byte what
//! `orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)` writes, for the types records are made of:
//! dict (str keys), list, tuple, str, int (64-bit), float, bool and None, exact types only.
//!
//! Why not orjson: the request path appends two or three records per request. On a 450-byte
//! request record (callgrind, instructions): orjson with sorted keys about 13k, this encoder
//! about 11.5k, and the `ts` that `stamp` writes here cost about 5k when Python formatted it;
//! no bytes object is made in between either. Anything else (a subclass, a dataclass, an int
//! above 64 bits) raises `TypeError` and the caller falls back to orjson, which either encodes
//! it or reports it.
use std::ptr::addr_of_mut;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::audit::canonical::{iso_micros, write_f64, write_int, write_str};
use crate::audit::writer::now_ns;

/// orjson's nesting limit.
const MAX_DEPTH: u32 = 254;

/// Why an object was not encoded (turned into a Python exception by `encode`).
enum Refused {
    Type(String),
    Python,
}

/// Append the canonical JSON of `obj` (a dict). `ts`: a `"ts"` key added to this top-level
/// dict when it has none.
pub(crate) fn encode(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, ts: Option<&[u8; 32]>) -> PyResult<()> {
    let py = obj.py();
    // SAFETY: the GIL is held (`obj` is bound) for the whole walk, and the walk runs no Python
    // code: it only reads exact built-in types (dict, list, tuple, str, int, float, bool,
    // None) through C API calls that call no Python code, so nothing can change or free the
    // objects reached through the borrowed references below while they are in use.
    let res = unsafe {
        let p = obj.as_ptr();
        if ffi::Py_TYPE(p) != addr_of_mut!(ffi::PyDict_Type) {
            return Err(PyTypeError::new_err("a record body must be a dict"));
        }
        encode_dict(p, out, 0, ts)
    };
    res.map_err(|r| match r {
        Refused::Type(m) => PyTypeError::new_err(m),
        Refused::Python => PyErr::take(py).unwrap_or_else(|| PyTypeError::new_err("value not encodable")),
    })
}

/// The UTF-8 of an exact str (borrowed from the str object).
unsafe fn utf8<'a>(p: *mut ffi::PyObject) -> Result<&'a [u8], Refused> {
    let mut n: ffi::Py_ssize_t = 0;
    let data = ffi::PyUnicode_AsUTF8AndSize(p, &mut n);
    if data.is_null() {
        // surrogates: orjson refuses them as well
        ffi::PyErr_Clear();
        return Err(Refused::Type("str is not valid UTF-8: surrogates not allowed".into()));
    }
    Ok(std::slice::from_raw_parts(data.cast::<u8>(), n as usize))
}

unsafe fn encode_value(p: *mut ffi::PyObject, out: &mut Vec<u8>, depth: u32) -> Result<(), Refused> {
    let t = ffi::Py_TYPE(p);
    if t == addr_of_mut!(ffi::PyUnicode_Type) {
        write_str(out, utf8(p)?);
    } else if p == ffi::Py_None() {
        out.extend_from_slice(b"null");
    } else if t == addr_of_mut!(ffi::PyDict_Type) {
        encode_dict(p, out, depth + 1, None)?;
    } else if t == addr_of_mut!(ffi::PyBool_Type) {
        out.extend_from_slice(if p == ffi::Py_True() { b"true" } else { b"false" });
    } else if t == addr_of_mut!(ffi::PyLong_Type) {
        let mut overflow = 0;
        let v = ffi::PyLong_AsLongLongAndOverflow(p, &mut overflow);
        if overflow == 0 {
            if v == -1 && !ffi::PyErr_Occurred().is_null() {
                return Err(Refused::Python);
            }
            write_int(out, i128::from(v));
        } else {
            let u = ffi::PyLong_AsUnsignedLongLong(p);
            if u == u64::MAX && !ffi::PyErr_Occurred().is_null() {
                ffi::PyErr_Clear();
                return Err(Refused::Type("Integer exceeds 64-bit range".into()));
            }
            write_int(out, i128::from(u));
        }
    } else if t == addr_of_mut!(ffi::PyFloat_Type) {
        write_f64(out, ffi::PyFloat_AsDouble(p));
    } else if t == addr_of_mut!(ffi::PyList_Type) {
        encode_array(p, out, depth, ffi::PyList_Size, ffi::PyList_GetItem)?;
    } else if t == addr_of_mut!(ffi::PyTuple_Type) {
        encode_array(p, out, depth, ffi::PyTuple_Size, ffi::PyTuple_GetItem)?;
    } else {
        let obj = Bound::from_borrowed_ptr(Python::assume_attached(), p);
        let name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        return Err(Refused::Type(format!("Type is not natively encoded: {name}")));
    }
    Ok(())
}

/// A list or tuple (its size and borrowed items through `size` and `get`) as a JSON array.
unsafe fn encode_array(
    p: *mut ffi::PyObject,
    out: &mut Vec<u8>,
    depth: u32,
    size: unsafe extern "C" fn(*mut ffi::PyObject) -> ffi::Py_ssize_t,
    get: unsafe extern "C" fn(*mut ffi::PyObject, ffi::Py_ssize_t) -> *mut ffi::PyObject,
) -> Result<(), Refused> {
    check_depth(depth)?;
    out.push(b'[');
    for i in 0..size(p) {
        if i > 0 {
            out.push(b',');
        }
        encode_value(get(p, i), out, depth + 1)?;
    }
    out.push(b']');
    Ok(())
}

fn check_depth(depth: u32) -> Result<(), Refused> {
    if depth > MAX_DEPTH {
        return Err(Refused::Type("Recursion limit reached".into()));
    }
    Ok(())
}

/// The first 8 bytes of a key, big-endian: orders keys as their bytes do whenever they differ
/// there, without a call to memcmp.
fn key_prefix(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = k.len().min(8);
    b[..n].copy_from_slice(&k[..n]);
    u64::from_be_bytes(b)
}

/// (prefix, key bytes, value; null for the stamped `ts`)
type Item<'a> = (u64, &'a [u8], *mut ffi::PyObject);

unsafe fn encode_dict(
    d: *mut ffi::PyObject,
    out: &mut Vec<u8>,
    depth: u32,
    ts: Option<&[u8; 32]>,
) -> Result<(), Refused> {
    check_depth(depth)?;
    let n = ffi::PyDict_Size(d).max(0) as usize;
    // small dicts (records are) sort on the stack
    let mut stack: [Item<'_>; 20] = [(0, &[], std::ptr::null_mut()); 20];
    let mut heap: Vec<Item<'_>> = Vec::new();
    let items: &mut [Item<'_>] = if n < stack.len() {
        &mut stack[..]
    } else {
        heap.resize(n + 1, (0, &[], std::ptr::null_mut()));
        &mut heap[..]
    };
    let mut len = 0usize;
    let mut has_ts = false;
    let mut pos: ffi::Py_ssize_t = 0;
    let mut k: *mut ffi::PyObject = std::ptr::null_mut();
    let mut v: *mut ffi::PyObject = std::ptr::null_mut();
    while ffi::PyDict_Next(d, &mut pos, &mut k, &mut v) != 0 {
        if ffi::Py_TYPE(k) != addr_of_mut!(ffi::PyUnicode_Type) {
            return Err(Refused::Type("Dict key must be str".into()));
        }
        if len + 1 >= items.len() {
            return Err(Refused::Type("dictionary changed size during iteration".into()));
        }
        let key = utf8(k)?;
        has_ts |= key == b"ts";
        items[len] = (key_prefix(key), key, v);
        len += 1;
    }
    if ts.is_some() && !has_ts {
        items[len] = (key_prefix(b"ts"), b"ts", std::ptr::null_mut());
        len += 1;
    }
    let items = &mut items[..len];
    items.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    out.push(b'{');
    for (i, &(_, key, value)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        if value.is_null() {
            out.push(b'"');
            out.extend_from_slice(ts.expect("only the stamp has no value"));
            out.push(b'"');
        } else {
            encode_value(value, out, depth)?;
        }
    }
    out.push(b'}');
    Ok(())
}

/// Canonical JSON of a record body (a dict); `stamp`: add `"ts"` (now) when missing.
/// TypeError for what is not natively encoded (the caller falls back to orjson).
#[pyfunction]
#[pyo3(signature = (obj, stamp=false))]
fn canonical_json<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>, stamp: bool) -> PyResult<Bound<'py, PyBytes>> {
    let ts = stamp.then(|| iso_micros(now_ns()));
    let mut out = Vec::with_capacity(512);
    encode(obj, &mut out, ts.as_ref())?;
    Ok(PyBytes::new(py, &out))
}

/// UTC now as the records' `ts` (`2026-11-30T01:48:47.400892+00:00`).
#[pyfunction]
fn now_iso(py: Python<'_>) -> Bound<'_, PyString> {
    let b = iso_micros(now_ns());
    PyString::new(py, std::str::from_utf8(&b).expect("ASCII"))
}

/// `time_ns` (Unix epoch) as the records' `ts`.
#[pyfunction]
fn iso_from_ns(py: Python<'_>, time_ns: u64) -> Bound<'_, PyString> {
    let b = iso_micros(time_ns);
    PyString::new(py, std::str::from_utf8(&b).expect("ASCII"))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(canonical_json, m)?)?;
    m.add_function(wrap_pyfunction!(now_iso, m)?)?;
    m.add_function(wrap_pyfunction!(iso_from_ns, m)?)?;
    Ok(())
}
