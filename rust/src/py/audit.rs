//! Bindings for the audit chain: `AuditWriter` plus `audit_verify`, `audit_read_records`,
//! `audit_write_bundle` and `audit_public_key`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::audit::canonical::iso_micros;
use crate::audit::format::hex;
use crate::audit::keys;
use crate::audit::verify;
use crate::audit::writer::{now_ns, AppendError, Durability, Options, Writer};

use super::canonical;

pyo3::create_exception!(graphwarden._native, AuditError, PyException, "The audit log cannot be opened or used.");
pyo3::create_exception!(
    graphwarden._native,
    AuditUnavailable,
    AuditError,
    "The audit log cannot write now (fail closed)."
);

fn dur(s: f64, name: &str) -> PyResult<Duration> {
    if !(s.is_finite() && s > 0.0) {
        return Err(PyValueError::new_err(format!("{name} must be a positive number of seconds, got {s}")));
    }
    Ok(Duration::from_secs_f64(s))
}

/// A chain writer (one per worker process).
#[pyclass(frozen, module = "graphwarden._native")]
struct AuditWriter {
    inner: Writer,
}

#[pymethods]
impl AuditWriter {
    #[new]
    #[pyo3(signature = (dir, chain, key_file, durability="batch", batch_window_s=0.05, checkpoint_every=10_000, checkpoint_interval_s=10.0, idle_s=1.0, segment_max_bytes=64*1024*1024, anchor_dir=None, retention_s=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        dir: PathBuf,
        chain: String,
        key_file: PathBuf,
        durability: &str,
        batch_window_s: f64,
        checkpoint_every: u64,
        checkpoint_interval_s: f64,
        idle_s: f64,
        segment_max_bytes: u64,
        anchor_dir: Option<PathBuf>,
        retention_s: Option<f64>,
    ) -> PyResult<Self> {
        let durability = match durability {
            "strict" => Durability::Strict,
            "batch" => Durability::Batch,
            other => {
                return Err(PyValueError::new_err(format!("durability must be \"strict\" or \"batch\", got {other:?}")))
            }
        };
        let opts = Options {
            dir,
            chain,
            durability,
            batch_window: dur(batch_window_s, "batch_window_s")?,
            checkpoint_every,
            checkpoint_interval: dur(checkpoint_interval_s, "checkpoint_interval_s")?,
            idle: dur(idle_s, "idle_s")?,
            segment_max_bytes: segment_max_bytes.max(4096),
            anchor_dir,
            retention: retention_s.map(|r| dur(r, "retention_s")).transpose()?,
        };
        let inner = py
            .detach(|| keys::load_or_create(&key_file).and_then(|k| Writer::open(opts, k)))
            .map_err(AuditError::new_err)?;
        Ok(AuditWriter { inner })
    }

    /// Append one record; returns its seq. Raises AuditUnavailable when the log cannot write.
    fn append(&self, kind: &str, body: &[u8]) -> PyResult<u64> {
        self.inner.append(kind, body).map_err(|e| match e {
            AppendError::Unavailable(m) => AuditUnavailable::new_err(m),
            AppendError::Closed => AuditUnavailable::new_err("the audit log is closed"),
            AppendError::Invalid(m) => PyValueError::new_err(m),
        })
    }

    /// Append a record whose body is a dict, encoded canonically here (see `canonical_json`);
    /// `stamp`: add `"ts"` (now) when the body has none. TypeError for a body that is not
    /// natively encoded (the caller falls back to orjson); nothing is appended then.
    #[pyo3(signature = (kind, body, stamp=false))]
    fn append_obj(&self, kind: &str, body: &Bound<'_, PyAny>, stamp: bool) -> PyResult<u64> {
        let ts = stamp.then(|| iso_micros(now_ns()));
        let mut out = Vec::with_capacity(512);
        canonical::encode(body, &mut out, ts.as_ref())?;
        self.append(kind, &out)
    }

    /// Records durable so far: every seq below this value is synced.
    fn durable_count(&self) -> u64 {
        self.inner.durable_count()
    }

    /// Records appended so far (the next seq).
    fn appended_count(&self) -> u64 {
        self.inner.appended_count()
    }

    /// The current write error, or None when healthy.
    fn error(&self) -> Option<String> {
        self.inner.error()
    }

    /// The last retention problem, or None.
    fn warning(&self) -> Option<String> {
        self.inner.warning()
    }

    /// (checkpoints written, segments created) by this writer.
    fn counters(&self) -> (u64, u64) {
        self.inner.counters()
    }

    /// An eventfd that becomes readable whenever durability or health changes (read 8 bytes to reset).
    fn event_fd(&self) -> i32 {
        self.inner.event_fd()
    }

    /// Say that record `seq` is waited for: strict mode syncs it now (see `Writer::want`).
    fn want(&self, seq: u64) {
        self.inner.want(seq)
    }

    /// Block (without the GIL) until `seq` is durable. True when durable, False on timeout.
    #[pyo3(signature = (seq, timeout_s=None))]
    fn wait_durable(&self, py: Python<'_>, seq: u64, timeout_s: Option<f64>) -> PyResult<bool> {
        let t = timeout_s.map(|t| Duration::from_secs_f64(t.max(0.0)));
        py.detach(|| self.inner.wait_durable(seq, t)).map_err(AuditUnavailable::new_err)
    }

    /// Prune sealed segments older than `older_than_s` through a signed pruning checkpoint.
    fn prune(&self, py: Python<'_>, older_than_s: f64) -> PyResult<u64> {
        let d = Duration::from_secs_f64(older_than_s.max(0.0));
        py.detach(|| self.inner.prune(d)).map_err(AuditError::new_err)
    }

    /// Flush, write a close checkpoint and stop the writer thread. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.close()).map_err(AuditError::new_err)
    }

    #[getter]
    fn chain(&self) -> String {
        self.inner.chain().to_string()
    }

    #[getter]
    fn public_key(&self) -> String {
        hex(&self.inner.public_key)
    }

    #[getter]
    fn recovered(&self) -> Option<String> {
        self.inner.recovered.clone()
    }

    #[getter]
    fn durability(&self) -> &'static str {
        match self.inner.durability() {
            Durability::Strict => "strict",
            Durability::Batch => "batch",
        }
    }
}

/// Verify an audit directory or bundle file; returns the JSON report.
#[pyfunction]
#[pyo3(signature = (path, anchor=None, key=None))]
fn audit_verify(py: Python<'_>, path: PathBuf, anchor: Option<PathBuf>, key: Option<String>) -> PyResult<String> {
    let pinned = key.map(|k| keys::parse_public_key(&k)).transpose().map_err(AuditError::new_err)?;
    py.detach(|| verify::verify_path(&path, anchor.as_deref(), pinned))
        .map(|r| r.to_json())
        .map_err(AuditError::new_err)
}

/// (chain, seq, time_ns, kind, body).
type RecordRow<'py> = (String, u64, u64, String, Bound<'py, PyBytes>);

/// Records as (chain, seq, time_ns, kind, body) with seq >= from_seq.
#[pyfunction]
#[pyo3(signature = (dir, chain=None, from_seq=0))]
fn audit_read_records<'py>(
    py: Python<'py>,
    dir: PathBuf,
    chain: Option<String>,
    from_seq: u64,
) -> PyResult<Vec<RecordRow<'py>>> {
    let recs = py.detach(|| verify::read_records(&dir, chain.as_deref(), from_seq)).map_err(AuditError::new_err)?;
    Ok(recs.into_iter().map(|r| (r.chain, r.seq, r.time_ns, r.kind, PyBytes::new(py, &r.body))).collect())
}

/// Write an export bundle of the selected seqs per chain; returns the number of full records.
#[pyfunction]
fn audit_write_bundle(
    py: Python<'_>,
    dir: PathBuf,
    out: PathBuf,
    selected: BTreeMap<String, Vec<u64>>,
    header_json: Vec<u8>,
) -> PyResult<u64> {
    py.detach(|| verify::write_bundle(Path::new(&dir), &out, &selected, &header_json)).map_err(AuditError::new_err)
}

/// Public key (hex) of a key file (created if missing) .
#[pyfunction]
fn audit_public_key(key_file: PathBuf) -> PyResult<String> {
    keys::load_or_create(&key_file).map(|k| hex(&k.verifying_key().to_bytes())).map_err(AuditError::new_err)
}

/// Benchmark helper: open a batch-mode writer in `dir`, append `n` records of `body_len` bytes
/// from Rust and return the mean nanoseconds per `append` (encoding, CRC, hashing, queueing;
/// no fsync on this thread). The writer is closed (and synced) afterwards.
#[pyfunction]
fn audit_bench_append(py: Python<'_>, dir: PathBuf, key_file: PathBuf, n: u64, body_len: usize) -> PyResult<f64> {
    py.detach(|| -> Result<f64, String> {
        let key = keys::load_or_create(&key_file)?;
        let opts = Options {
            dir,
            chain: "bench".into(),
            durability: Durability::Batch,
            batch_window: Duration::from_millis(50),
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(10),
            idle: Duration::from_secs(1),
            segment_max_bytes: 64 << 20,
            anchor_dir: None,
            retention: None,
        };
        let w = Writer::open(opts, key)?;
        let body: Vec<u8> = (0..body_len).map(|i| b'a' + (i % 26) as u8).collect();
        let t = std::time::Instant::now();
        for _ in 0..n {
            w.append("bench.record", &body).map_err(|e| format!("{e:?}"))?;
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        w.close()?;
        Ok(ns)
    })
    .map_err(AuditError::new_err)
}

/// BLAKE3 of `data` as 64 lower-case hex digits: the digests of digest-level evidence payloads
/// and of masking catalogues in the audit trail. Large inputs are hashed with the GIL released.
#[pyfunction]
fn blake3_hex(py: Python<'_>, data: &[u8]) -> String {
    let hash = if data.len() >= 64 << 10 { py.detach(|| blake3::hash(data)) } else { blake3::hash(data) };
    hash.to_hex().to_string()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AuditWriter>()?;
    m.add_function(wrap_pyfunction!(blake3_hex, m)?)?;
    // A Rust panic reaches Python as this type, which derives from BaseException (not
    // Exception): the gateway catches it by name so that a failing engine answers 500.
    m.add("PanicException", m.py().get_type::<pyo3::panic::PanicException>())?;
    m.add("AuditError", m.py().get_type::<AuditError>())?;
    m.add("AuditUnavailable", m.py().get_type::<AuditUnavailable>())?;
    m.add_function(wrap_pyfunction!(audit_verify, m)?)?;
    m.add_function(wrap_pyfunction!(audit_read_records, m)?)?;
    m.add_function(wrap_pyfunction!(audit_write_bundle, m)?)?;
    m.add_function(wrap_pyfunction!(audit_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(audit_bench_append, m)?)?;
    Ok(())
}
