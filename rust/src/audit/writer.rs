//! The chain writer: appends are encoded and hashed on the caller's thread (under one short
//! lock, so seq order is chain order); a background thread does group commit (one write and one
//! fdatasync for everything appended meanwhile), checkpoints, anchoring, rotation and retention.
//!
//! # Failure model
//! Any I/O error puts the writer in an error state: `append` fails at once (fail closed) and
//! the thread retries every `RETRY_INTERVAL` by reopening the segment, truncating it to the last
//! durable length and rewriting the records not yet durable. When that works the error clears.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;

use super::format::*;

/// Pause between attempts to get out of the error state.
const RETRY_INTERVAL: Duration = Duration::from_millis(200);
/// Batch mode: staged records wait at most this long (or `batch_window`, if shorter) before the
/// writer thread takes them, so that a busy gateway wakes the thread once per interval rather
/// than once per record. This is what a kill -9 can lose in batch mode.
const STAGE_WINDOW: Duration = Duration::from_millis(10);
/// Strict mode: when the last fdatasync carried fewer than `GATHER_BELOW` records (records
/// trickle in, one or two per sync), the next one waits until this long after it. The records of
/// more requests then share each sync: fewer syncs, less CPU per request. An idle log, whose
/// last sync is older than this, syncs a new record at once; many concurrent writers, whose
/// records already fill each sync, are not delayed.
const STRICT_GATHER: Duration = Duration::from_micros(250);
const GATHER_BELOW: u64 = 4;
/// Batch mode: wake the writer at once when this much is staged.
const STAGE_BYTES: usize = 256 * 1024;
/// How often retention is applied when configured.
const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// When an append counts as durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Callers wait for durability: as soon as someone waits for a staged record (`want`,
    /// `wait_durable`), it is synced with everything staged before it; records nobody waits
    /// for are synced within `batch_window`.
    Strict,
    /// Records are written to the OS at once and fdatasync'ed at most every `batch_window`.
    Batch,
}

/// Writer settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Audit directory (holds one subdirectory per chain).
    pub dir: PathBuf,
    /// This writer's chain id.
    pub chain: String,
    /// Durability mode.
    pub durability: Durability,
    /// Batch mode: longest time between a write and its fdatasync. Strict mode: longest a
    /// record nobody waits for stays unsynced.
    pub batch_window: Duration,
    /// Checkpoint after this many records.
    pub checkpoint_every: u64,
    /// Checkpoint at least this often while records arrive.
    pub checkpoint_interval: Duration,
    /// Checkpoint after this long without appends.
    pub idle: Duration,
    /// Rotate segments above this size.
    pub segment_max_bytes: u64,
    /// Directory to copy every checkpoint to.
    pub anchor_dir: Option<PathBuf>,
    /// Remove sealed segments older than this (through a signed pruning checkpoint).
    pub retention: Option<Duration>,
}

/// Current time in ns since the epoch.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

struct State {
    /// Staged records, not yet hashed: `u64 time_ns || u8 kind_len || kind || u32 body_len || body`.
    buf: Vec<u8>,
    next_seq: u64,
    last_time: u64,
    last_append: Instant,
    durable_count: u64,
    error: Option<String>,
    closing: bool,
    closed: bool,
    warning: Option<String>,
    prune_request: Option<u64>,
    prune_result: Option<Result<u64, String>>,
    checkpoints: u64,
    segments_created: u64,
    /// When the oldest staged record was appended (batch mode).
    staged_at: Instant,
    /// The writer thread sleeps on a deadline that does not account for staged records:
    /// the next append must wake it.
    writer_idle: bool,
    /// Strict mode: someone waits for every record below this (`want`); the writer syncs on
    /// demand, and records nobody waits for within `batch_window`.
    wanted: u64,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    durable: Condvar,
    event_fd: i32,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to our own eventfd.
        unsafe {
            libc::write(self.event_fd, &one as *const u64 as *const libc::c_void, 8);
        }
        self.durable.notify_all();
    }
}

/// The writer handle (one per chain per process).
pub struct Writer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    chain: String,
    durability: Durability,
    /// Public key of the chain.
    pub public_key: [u8; 32],
    /// Details of what recovery found on open (None when the chain closed cleanly or is new).
    pub recovered: Option<String>,
}

/// Errors from `append`.
#[derive(Debug)]
pub enum AppendError {
    /// The log cannot be written now (fail closed); the text says why.
    Unavailable(String),
    /// The writer was closed.
    Closed,
    /// Bad arguments.
    Invalid(String),
}

struct Segment {
    path: PathBuf,
    file: Option<File>,
    /// Bytes known durable in the file.
    durable_len: u64,
}

struct Worker {
    shared: Arc<Shared>,
    opts: Options,
    chain_dir: PathBuf,
    key: SigningKey,
    seg: Segment,
    /// Bytes written (or to write) since the last fdatasync, kept to rewrite after an error.
    unsynced: Vec<u8>,
    /// How many bytes of `unsynced` are in the file.
    written: usize,
    /// Record count and head covered by `unsynced`.
    count: u64,
    head: [u8; 32],
    head_time: u64,
    last_sync: Instant,
    /// Record count at the last fdatasync, and how many records it carried.
    synced_count: u64,
    last_sync_records: u64,
    cp_count: u64,
    last_cp: Instant,
    last_cp_hash: [u8; 32],
    pruned_before: u64,
    pruned_prev: [u8; 32],
    anchor_pending: Vec<(String, Vec<u8>)>,
    need_rotate: bool,
    last_retention: Instant,
    _lock: File,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("audit log {what} failed on {}: {e}", path.display())
}

fn fsync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err("directory fsync", dir, e))
}

fn list_segments(chain_dir: &Path) -> Result<Vec<(u64, PathBuf)>, String> {
    let mut out = Vec::new();
    let rd = fs::read_dir(chain_dir).map_err(|e| io_err("listing", chain_dir, e))?;
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".seg") {
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                out.push((stem.parse::<u64>().unwrap_or(0), ent.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let mut v = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut v)).map_err(|e| io_err("read", path, e))?;
    Ok(v)
}

fn create_segment(chain_dir: &Path, chain: &str, first_seq: u64, prev: &[u8; 32]) -> Result<Segment, String> {
    // Written under a temporary name and renamed, so a crash never leaves a headerless segment.
    let path = chain_dir.join(segment_name(first_seq));
    let tmp = chain_dir.join(format!(".{}.tmp", segment_name(first_seq)));
    let mut hdr = Vec::new();
    put_frame(&mut hdr, &segment_header_payload(chain, first_seq, prev));
    (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o640).open(&tmp)?;
        f.write_all(&hdr)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })()
    .map_err(|e| io_err("segment create", &path, e))?;
    fsync_dir(chain_dir)?;
    let f = OpenOptions::new().append(true).open(&path).map_err(|e| io_err("open", &path, e))?;
    Ok(Segment { path, file: Some(f), durable_len: hdr.len() as u64 })
}

/// What recovery learned from the tail of an existing chain.
struct Tail {
    next_seq: u64,
    head: [u8; 32],
    head_time: u64,
    last_cp: Option<Checkpoint>,
    clean: bool,
    torn_bytes: u64,
    torn_file: Option<String>,
    seg_path: PathBuf,
    seg_len: u64,
}

fn recover_tail(chain_dir: &Path, chain: &str) -> Result<Option<Tail>, String> {
    loop {
        let segs = list_segments(chain_dir)?;
        let Some((_, last)) = segs.last().cloned() else { return Ok(None) };
        let bytes = read_file(&last)?;
        let f = split_frames(&bytes);
        let mut torn_bytes = 0u64;
        let mut torn_file = None;
        if f.end < bytes.len() {
            // Quarantine the torn tail for forensics, then cut it off.
            let name = format!("{}.torn-{}", last.file_name().unwrap().to_string_lossy(), f.end);
            let qpath = chain_dir.join(&name);
            fs::write(&qpath, &bytes[f.end..]).map_err(|e| io_err("quarantine", &qpath, e))?;
            let file = OpenOptions::new().write(true).open(&last).map_err(|e| io_err("open", &last, e))?;
            file.set_len(f.end as u64).map_err(|e| io_err("truncate", &last, e))?;
            file.sync_all().map_err(|e| io_err("fsync", &last, e))?;
            torn_bytes = (bytes.len() - f.end) as u64;
            torn_file = Some(name);
        }
        let header = match f.frames.first() {
            Some((_, Ok(Item::Segment(h)))) => h.clone(),
            _ => {
                // Not even a header survived: the segment was being created. Set it aside.
                let q = chain_dir.join(format!("{}.torn-0", last.file_name().unwrap().to_string_lossy()));
                fs::rename(&last, &q).map_err(|e| io_err("quarantine", &last, e))?;
                fsync_dir(chain_dir)?;
                continue;
            }
        };
        if header.chain != chain {
            return Err(format!("segment {} belongs to chain {:?}, not {chain:?}", last.display(), header.chain));
        }
        let mut next_seq = header.first_seq;
        let mut head = header.prev;
        let mut head_time = 0u64;
        let mut last_cp = None;
        let mut clean = false;
        for (_, item) in &f.frames[1..] {
            match item {
                Ok(Item::Record(r)) => {
                    next_seq = r.seq + 1;
                    head = r.hash;
                    head_time = r.time_ns;
                    clean = false;
                }
                Ok(Item::Checkpoint(c)) => {
                    clean = c.kind == CpKind::Close && c.size == next_seq;
                    last_cp = Some(c.clone());
                }
                Ok(_) => return Err(format!("unexpected frame in {}", last.display())),
                Err(e) => return Err(format!("undecodable frame in {}: {e}", last.display())),
            }
        }
        if last_cp.is_none() {
            // The newest checkpoint is at the end of an earlier segment (a seal).
            for (_, p) in segs.iter().rev().skip(1) {
                let b = read_file(p)?;
                let cps: Vec<Checkpoint> = split_frames(&b)
                    .frames
                    .into_iter()
                    .filter_map(|(_, it)| match it {
                        Ok(Item::Checkpoint(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if let Some(c) = cps.last() {
                    last_cp = Some(c.clone());
                    break;
                }
            }
        }
        // A torn tail after a close checkpoint still means the last run did not end cleanly.
        let clean = clean && torn_bytes == 0;
        let seg_len = f.end as u64;
        return Ok(Some(Tail {
            next_seq,
            head,
            head_time,
            last_cp,
            clean,
            torn_bytes,
            torn_file,
            seg_path: last,
            seg_len,
        }));
    }
}

impl Writer {
    /// Open (or create) the chain `opts.chain` under `opts.dir`.
    pub fn open(opts: Options, key: SigningKey) -> Result<Writer, String> {
        if !valid_chain_id(&opts.chain) {
            return Err(format!(
                "invalid chain id {:?}: use 1-64 of [A-Za-z0-9._-], not starting with '.'",
                opts.chain
            ));
        }
        if opts.checkpoint_every == 0 {
            return Err("checkpoint_every must be at least 1".into());
        }
        let chain_dir = opts.dir.join(&opts.chain);
        fs::create_dir_all(&chain_dir).map_err(|e| io_err("create directory", &chain_dir, e))?;
        let lock_path = chain_dir.join("LOCK");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_err("open", &lock_path, e))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(format!(
                "audit chain {:?} in {} is open in another process; give each worker its own chain id",
                opts.chain,
                opts.dir.display()
            ));
        }
        if let Some(a) = &opts.anchor_dir {
            let ad = a.join(&opts.chain);
            fs::create_dir_all(&ad).map_err(|e| io_err("create anchor directory", &ad, e))?;
        }
        let pk = key.verifying_key().to_bytes();
        let tail = recover_tail(&chain_dir, &opts.chain)?;
        let mut recovered = None;
        let (seg, next_seq, head, head_time, last_cp, initial) = match tail {
            None => {
                let seg = create_segment(&chain_dir, &opts.chain, 0, &ZERO32)?;
                let body = format!("{{\"chain\":\"{}\",\"format\":1,\"public_key\":\"{}\"}}", opts.chain, hex(&pk));
                (seg, 0, ZERO32, 0, None, vec![("audit.genesis".to_string(), body.into_bytes())])
            }
            Some(t) => {
                if let Some(c) = &t.last_cp {
                    if c.public_key != pk {
                        return Err(format!(
                            "the audit key does not match chain {:?}: its checkpoints are signed by {}, the key file holds {}",
                            opts.chain,
                            hex(&c.public_key),
                            hex(&pk)
                        ));
                    }
                }
                let file =
                    OpenOptions::new().append(true).open(&t.seg_path).map_err(|e| io_err("open", &t.seg_path, e))?;
                let seg = Segment { path: t.seg_path.clone(), file: Some(file), durable_len: t.seg_len };
                let mut initial = Vec::new();
                if !t.clean {
                    let torn_file = match &t.torn_file {
                        Some(n) => format!("\"{n}\""),
                        None => "null".into(),
                    };
                    let last_seq = if t.next_seq == 0 { "null".to_string() } else { (t.next_seq - 1).to_string() };
                    let body = format!(
                        "{{\"last_seq\":{last_seq},\"reason\":\"unclean_shutdown\",\"torn_bytes\":{},\"torn_file\":{torn_file}}}",
                        t.torn_bytes
                    );
                    recovered = Some(body.clone());
                    initial.push(("audit.recovery".to_string(), body.into_bytes()));
                }
                // Times never go backwards across restarts either (even if the clock did).
                let floor = t.head_time.max(t.last_cp.as_ref().map_or(0, |c| c.time_ns));
                (seg, t.next_seq, t.head, floor, t.last_cp, initial)
            }
        };
        // SAFETY: plain eventfd creation.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(format!("eventfd failed: {}", std::io::Error::last_os_error()));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: Vec::with_capacity(1 << 16),
                next_seq,
                last_time: head_time,
                last_append: Instant::now(),
                durable_count: next_seq,
                error: None,
                closing: false,
                closed: false,
                warning: None,
                prune_request: None,
                prune_result: None,
                checkpoints: 0,
                segments_created: 0,
                staged_at: Instant::now(),
                writer_idle: true,
                wanted: 0,
            }),
            work: Condvar::new(),
            durable: Condvar::new(),
            event_fd: efd,
        });
        let (cp_count, last_cp_hash, pruned_before, pruned_prev) = match &last_cp {
            Some(c) => (c.size, c.hash(), c.pruned_before, c.pruned_prev),
            None => (0, ZERO32, 0, ZERO32),
        };
        let worker = Worker {
            shared: shared.clone(),
            chain_dir,
            key,
            seg,
            unsynced: Vec::new(),
            written: 0,
            count: next_seq,
            head,
            head_time,
            last_sync: Instant::now(),
            synced_count: next_seq,
            last_sync_records: GATHER_BELOW,
            cp_count,
            last_cp: Instant::now(),
            last_cp_hash,
            pruned_before,
            pruned_prev,
            anchor_pending: Vec::new(),
            need_rotate: false,
            last_retention: Instant::now() - RETENTION_CHECK_INTERVAL,
            _lock: lock,
            opts: opts.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("audit-{}", opts.chain))
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start the audit writer thread: {e}"))?;
        let w = Writer {
            shared,
            thread: Mutex::new(Some(thread)),
            chain: opts.chain.clone(),
            durability: opts.durability,
            public_key: pk,
            recovered,
        };
        for (kind, body) in initial {
            w.append_raw(kind.as_bytes(), &body).map_err(|e| format!("{e:?}"))?;
        }
        Ok(w)
    }

    /// Chain id.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Durability mode.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Append one record; returns its seq. `kind` must not start with "audit.".
    pub fn append(&self, kind: &str, body: &[u8]) -> Result<u64, AppendError> {
        if kind.is_empty() || kind.len() > 255 || kind.starts_with("audit.") {
            return Err(AppendError::Invalid(format!(
                "record kind {kind:?} must be 1-255 bytes and not start with \"audit.\""
            )));
        }
        if body.len() > MAX_PAYLOAD_BYTES - 512 {
            return Err(AppendError::Invalid(format!(
                "record body of {} bytes is above the 16 MiB frame limit",
                body.len()
            )));
        }
        self.append_raw(kind.as_bytes(), body)
    }

    fn append_raw(&self, kind: &[u8], body: &[u8]) -> Result<u64, AppendError> {
        let mut st = self.shared.lock();
        if st.closing || st.closed {
            return Err(AppendError::Closed);
        }
        if let Some(e) = &st.error {
            return Err(AppendError::Unavailable(e.clone()));
        }
        let seq = st.next_seq;
        let t = now_ns().max(st.last_time);
        let was_empty = st.buf.is_empty();
        // Only stage here; the writer thread hashes in seq order (cheaper for the caller).
        let buf = &mut st.buf;
        buf.reserve(13 + kind.len() + body.len());
        buf.extend_from_slice(&t.to_le_bytes());
        buf.push(kind.len() as u8);
        buf.extend_from_slice(kind);
        buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
        buf.extend_from_slice(body);
        st.next_seq = seq + 1;
        st.last_time = t;
        let now = Instant::now();
        st.last_append = now;
        // Stage (batch: up to STAGE_WINDOW; strict: until someone waits for a record, see
        // `want`, or batch_window); wake the thread only when it sleeps on a deadline that
        // ignores the staged records, or when the stage is full.
        if was_empty {
            st.staged_at = now;
        }
        let len = st.buf.len();
        let notify =
            (was_empty && st.writer_idle) || (len >= STAGE_BYTES && len - (13 + kind.len() + body.len()) < STAGE_BYTES);
        drop(st);
        if notify {
            self.shared.work.notify_one();
        }
        Ok(seq)
    }

    /// Number of records durable (every seq below it is on disk and synced).
    pub fn durable_count(&self) -> u64 {
        self.shared.lock().durable_count
    }

    /// Number of records appended.
    pub fn appended_count(&self) -> u64 {
        self.shared.lock().next_seq
    }

    /// The current error, if the writer cannot write.
    pub fn error(&self) -> Option<String> {
        self.shared.lock().error.clone()
    }

    /// The last retention problem (retention does not fail the log closed).
    pub fn warning(&self) -> Option<String> {
        self.shared.lock().warning.clone()
    }

    /// Checkpoints and segments written by this writer so far.
    pub fn counters(&self) -> (u64, u64) {
        let st = self.shared.lock();
        (st.checkpoints, st.segments_created)
    }

    /// The eventfd signalled whenever durability or health changes.
    pub fn event_fd(&self) -> i32 {
        self.shared.event_fd
    }

    /// Someone waits for record `seq` to be durable: in strict mode the writer syncs it (with
    /// whatever else is staged) now, instead of within `batch_window`. Records nobody waits for
    /// (a read's request record, whose response record is waited for anyway) then share the
    /// next sync someone needs: fewer syncs per request.
    pub fn want(&self, seq: u64) {
        let mut st = self.shared.lock();
        if Self::note_want(&mut st, seq) {
            drop(st);
            self.shared.work.notify_one();
        }
    }

    /// True when this raised the demand (the writer must be woken).
    fn note_want(st: &mut State, seq: u64) -> bool {
        if st.durable_count > seq || seq < st.wanted {
            return false; // durable, or already asked for
        }
        st.wanted = seq + 1;
        true
    }

    /// Block until record `seq` is durable. Ok(true) durable, Ok(false) timeout, Err when the
    /// writer is failing or closed before it got there.
    pub fn wait_durable(&self, seq: u64, timeout: Option<Duration>) -> Result<bool, String> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.shared.lock();
        if Self::note_want(&mut st, seq) {
            self.shared.work.notify_one();
        }
        loop {
            if st.durable_count > seq {
                return Ok(true);
            }
            if let Some(e) = &st.error {
                return Err(e.clone());
            }
            if st.closed {
                return Err("the audit log was closed before the record became durable".into());
            }
            match deadline {
                None => st = self.shared.durable.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(false);
                    }
                    st = self.shared.durable.wait_timeout(st, d - now).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        }
    }

    /// Remove sealed segments last written before `older_than` ago, through a signed pruning
    /// checkpoint. Returns how many segments were removed.
    pub fn prune(&self, older_than: Duration) -> Result<u64, String> {
        let cutoff = SystemTime::now().checked_sub(older_than).unwrap_or(UNIX_EPOCH);
        let cutoff_ns = cutoff.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let mut st = self.shared.lock();
        if st.closing || st.closed {
            return Err("the audit log is closed".into());
        }
        st.prune_result = None;
        st.prune_request = Some(cutoff_ns);
        self.shared.work.notify_one();
        loop {
            if let Some(r) = st.prune_result.take() {
                return r;
            }
            if st.closed {
                return Err("the audit log was closed before pruning ran".into());
            }
            st = self.shared.durable.wait_timeout(st, Duration::from_millis(100)).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Flush, write a close checkpoint, stop the thread. Idempotent.
    pub fn close(&self) -> Result<(), String> {
        {
            let mut st = self.shared.lock();
            st.closing = true;
        }
        self.shared.work.notify_one();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        let st = self.shared.lock();
        match &st.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.close();
        // SAFETY: closing our own eventfd once, after the thread has stopped.
        unsafe {
            libc::close(self.shared.event_fd);
        }
    }
}

impl Worker {
    fn run(mut self) {
        loop {
            let (taken, count, closing, prune, last_append) = {
                let mut st = self.shared.lock();
                let stage = STAGE_WINDOW.min(self.opts.batch_window);
                loop {
                    let strict = self.opts.durability == Durability::Strict;
                    // strict: someone waits for a staged record
                    let demanded = st.wanted > st.durable_count;
                    let gathered = self.last_sync_records >= GATHER_BELOW || self.last_sync.elapsed() >= STRICT_GATHER;
                    let staged_due = !st.buf.is_empty()
                        && (st.buf.len() >= STAGE_BYTES
                            || if strict {
                                (demanded && gathered) || st.staged_at.elapsed() >= self.opts.batch_window
                            } else {
                                st.staged_at.elapsed() >= stage
                            });
                    if staged_due || st.closing || st.prune_request.is_some() {
                        break;
                    }
                    let mut wait = self.next_deadline(st.error.is_some(), st.last_append);
                    st.writer_idle = st.buf.is_empty();
                    if !st.buf.is_empty() {
                        let left = if strict && demanded {
                            // (here the last sync carried few records: see staged_due)
                            STRICT_GATHER.saturating_sub(self.last_sync.elapsed())
                        } else if strict {
                            self.opts.batch_window.saturating_sub(st.staged_at.elapsed())
                        } else {
                            stage.saturating_sub(st.staged_at.elapsed())
                        };
                        wait = wait.min(left).max(Duration::from_micros(20));
                    }
                    let (g, res) = self.shared.work.wait_timeout(st, wait).unwrap_or_else(|p| p.into_inner());
                    st = g;
                    st.writer_idle = false;
                    if res.timed_out() {
                        // Timer: stage window, batch window or housekeeping below.
                        break;
                    }
                }
                let taken = std::mem::replace(&mut st.buf, Vec::with_capacity(1 << 16));
                (taken, st.next_seq, st.closing, st.prune_request.take(), st.last_append)
            };
            if !taken.is_empty() {
                self.encode_staged(&taken);
                debug_assert_eq!(self.count, count);
            }
            let _ = count;
            let res = self.step(closing, prune.is_some(), last_append);
            let prune_res = match (prune, &res) {
                (Some(cutoff), Ok(())) => Some(self.prune(cutoff)),
                (Some(_), Err(e)) => Some(Err(e.clone())),
                (None, _) => None,
            };
            let retention_res = match (self.opts.retention, &res) {
                (Some(r), Ok(())) if self.last_retention.elapsed() >= RETENTION_CHECK_INTERVAL => {
                    self.last_retention = Instant::now();
                    let cutoff = SystemTime::now().checked_sub(r).unwrap_or(UNIX_EPOCH);
                    let ns = cutoff.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
                    self.prune(ns).err()
                }
                _ => None,
            };
            {
                let mut st = self.shared.lock();
                let old_err = st.error.clone();
                let old_durable = st.durable_count;
                st.error = res.err();
                let mut changed = st.error != old_err || closing;
                if let Some(w) = retention_res {
                    st.warning = Some(w);
                    changed = true;
                }
                if let Some(p) = prune_res {
                    st.prune_result = Some(p);
                    changed = true;
                }
                if self.unsynced.is_empty() {
                    st.durable_count = self.count;
                }
                changed |= st.durable_count != old_durable;
                if closing && st.error.is_none() && st.buf.is_empty() {
                    st.closed = true;
                }
                if closing && st.error.is_some() && st.closing {
                    // Give up on close after an error: leave the tail for recovery on reopen.
                    st.closed = true;
                }
                let done = st.closed;
                drop(st);
                if changed || done {
                    // Waiters (the eventfd, wait_durable) only care about these changes.
                    self.shared.signal();
                }
                if done {
                    return;
                }
            }
        }
    }

    /// Turn staged records into frames: chain them, hash them, CRC them.
    fn encode_staged(&mut self, staged: &[u8]) {
        let chain = self.opts.chain.as_bytes();
        self.unsynced.reserve(staged.len() + staged.len() / 8);
        let mut i = 0usize;
        while i < staged.len() {
            let t = u64::from_le_bytes(staged[i..i + 8].try_into().unwrap());
            let kl = staged[i + 8] as usize;
            let kind = &staged[i + 9..i + 9 + kl];
            let j = i + 9 + kl;
            let bl = u32::from_le_bytes(staged[j..j + 4].try_into().unwrap()) as usize;
            let body = &staged[j + 4..j + 4 + bl];
            let h = put_record(&mut self.unsynced, chain, self.count, t, &self.head, kind, body);
            self.head = h;
            self.head_time = t;
            self.count += 1;
            i = j + 4 + bl;
        }
    }

    fn next_deadline(&self, failing: bool, last_append: Instant) -> Duration {
        let mut d = Duration::from_secs(1);
        if failing {
            d = d.min(RETRY_INTERVAL);
        }
        if !self.unsynced.is_empty() {
            d = d.min(self.opts.batch_window.saturating_sub(self.last_sync.elapsed()));
        }
        if self.count > self.cp_count {
            d = d.min(self.opts.checkpoint_interval.saturating_sub(self.last_cp.elapsed()));
            d = d.min(self.opts.idle.saturating_sub(last_append.elapsed()));
        }
        d.max(Duration::from_millis(1))
    }

    /// Write what is pending, sync when due, checkpoint and rotate when due.
    fn step(&mut self, closing: bool, force_sync: bool, last_append: Instant) -> Result<(), String> {
        if self.seg.file.is_none() {
            self.reopen()?;
        }
        if self.need_rotate {
            self.rotate()?;
        }
        self.write_pending()?;
        let cp_due = self.count > self.cp_count
            && (self.count - self.cp_count >= self.opts.checkpoint_every
                || self.last_cp.elapsed() >= self.opts.checkpoint_interval
                || last_append.elapsed() >= self.opts.idle);
        let sync_due = !self.unsynced.is_empty()
            && (self.opts.durability == Durability::Strict
                || self.last_sync.elapsed() >= self.opts.batch_window
                || closing
                || force_sync
                || cp_due);
        if sync_due {
            self.sync()?;
        }
        if cp_due || (closing && self.unsynced.is_empty()) {
            let kind = if closing { CpKind::Close } else { CpKind::Periodic };
            self.checkpoint(kind)?;
        }
        self.flush_anchor()?;
        if self.seg.durable_len >= self.opts.segment_max_bytes && self.unsynced.is_empty() && !closing {
            self.need_rotate = true;
            self.rotate()?;
        }
        Ok(())
    }

    fn fail(&mut self, msg: String) -> String {
        // Drop the handle: after a failed write or fsync the page cache cannot be trusted.
        self.seg.file = None;
        self.written = 0;
        msg
    }

    fn reopen(&mut self) -> Result<(), String> {
        let f = OpenOptions::new().write(true).open(&self.seg.path).map_err(|e| io_err("open", &self.seg.path, e))?;
        f.set_len(self.seg.durable_len).map_err(|e| io_err("truncate", &self.seg.path, e))?;
        let mut f = f;
        use std::io::Seek;
        f.seek(std::io::SeekFrom::End(0)).map_err(|e| io_err("seek", &self.seg.path, e))?;
        self.seg.file = Some(f);
        self.written = 0;
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), String> {
        if self.written >= self.unsynced.len() {
            return Ok(());
        }
        let f = self.seg.file.as_mut().expect("segment open");
        let r = f.write_all(&self.unsynced[self.written..]);
        match r {
            Ok(()) => {
                self.written = self.unsynced.len();
                Ok(())
            }
            Err(e) => {
                let m = io_err("write", &self.seg.path, e);
                Err(self.fail(m))
            }
        }
    }

    fn sync(&mut self) -> Result<(), String> {
        self.write_pending()?;
        let f = self.seg.file.as_ref().expect("segment open");
        if let Err(e) = f.sync_data() {
            let m = io_err("fdatasync", &self.seg.path, e);
            return Err(self.fail(m));
        }
        self.seg.durable_len += self.unsynced.len() as u64;
        self.unsynced.clear();
        self.written = 0;
        self.last_sync = Instant::now();
        self.last_sync_records = self.count.saturating_sub(self.synced_count);
        self.synced_count = self.count;
        Ok(())
    }

    fn make_checkpoint(&self, kind: CpKind) -> Checkpoint {
        let mut cp = Checkpoint {
            chain: self.opts.chain.clone(),
            kind,
            size: self.count,
            head: self.head,
            time_ns: now_ns().max(self.head_time),
            prev_cp: self.last_cp_hash,
            pruned_before: self.pruned_before,
            pruned_prev: self.pruned_prev,
            public_key: ZERO32,
            signature: [0; 64],
        };
        cp.sign(&self.key);
        cp
    }

    fn checkpoint(&mut self, kind: CpKind) -> Result<(), String> {
        let cp = self.make_checkpoint(kind);
        let payload = cp.payload();
        put_frame(&mut self.unsynced, &payload);
        self.sync()?;
        self.cp_count = cp.size;
        self.last_cp = Instant::now();
        self.last_cp_hash = cp.hash();
        let mut frame = Vec::new();
        put_frame(&mut frame, &payload);
        if self.opts.anchor_dir.is_some() {
            self.anchor_pending.push((format!("{:020}-{}.ckpt", cp.size, &hex(&cp.hash())[..16]), frame));
        }
        self.shared.lock().checkpoints += 1;
        Ok(())
    }

    fn flush_anchor(&mut self) -> Result<(), String> {
        let Some(anchor) = self.opts.anchor_dir.clone() else { return Ok(()) };
        let dir = anchor.join(&self.opts.chain);
        while let Some((name, frame)) = self.anchor_pending.first().cloned() {
            let tmp = dir.join(format!(".{name}.tmp"));
            let res = (|| -> std::io::Result<()> {
                fs::create_dir_all(&dir)?;
                let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
                f.write_all(&frame)?;
                f.sync_all()?;
                fs::rename(&tmp, dir.join(&name))?;
                File::open(&dir)?.sync_all()
            })();
            if let Err(e) = res {
                return Err(format!("audit anchor copy failed on {}: {e}", dir.display()));
            }
            self.anchor_pending.remove(0);
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), String> {
        // Always seal: the last frame of every sealed segment is a checkpoint, so recovery on
        // open never needs to look further back than one segment.
        self.checkpoint(CpKind::Seal)?;
        let seg = create_segment(&self.chain_dir, &self.opts.chain, self.count, &self.head)?;
        self.seg = seg;
        self.written = 0;
        self.need_rotate = false;
        self.shared.lock().segments_created += 1;
        Ok(())
    }

    fn prune(&mut self, cutoff_ns: u64) -> Result<u64, String> {
        let segs = list_segments(&self.chain_dir)?;
        let mut victims = Vec::new();
        for (first, path) in segs.iter() {
            if *path == self.seg.path {
                break;
            }
            let mtime = fs::metadata(path)
                .and_then(|m| m.modified())
                .map_err(|e| io_err("stat", path, e))?
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(u64::MAX);
            if mtime >= cutoff_ns {
                break;
            }
            victims.push((*first, path.clone()));
        }
        if victims.is_empty() {
            return Ok(0);
        }
        let keep_idx = victims.len();
        let (keep_first, keep_path) = segs[keep_idx].clone();
        let bytes = read_file(&keep_path)?;
        let hdr = match split_frames(&bytes).frames.first() {
            Some((_, Ok(Item::Segment(h)))) => h.clone(),
            _ => return Err(format!("cannot read the header of {}", keep_path.display())),
        };
        debug_assert_eq!(hdr.first_seq, keep_first);
        self.sync()?;
        self.pruned_before = hdr.first_seq;
        self.pruned_prev = hdr.prev;
        self.checkpoint(CpKind::Prune)?;
        self.flush_anchor()?;
        for (_, p) in &victims {
            fs::remove_file(p).map_err(|e| io_err("remove", p, e))?;
        }
        fsync_dir(&self.chain_dir)?;
        Ok(victims.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict_writer(name: &str, batch_window: Duration) -> (Writer, PathBuf) {
        let d = std::env::temp_dir().join(format!("gw-writer-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let opts = Options {
            dir: d.join("audit"),
            chain: "c0".into(),
            durability: Durability::Strict,
            batch_window,
            checkpoint_every: 1_000_000,
            checkpoint_interval: Duration::from_secs(3600),
            idle: Duration::from_secs(3600),
            segment_max_bytes: 1 << 26,
            anchor_dir: None,
            retention: None,
        };
        (Writer::open(opts, SigningKey::from_bytes(&[7u8; 32])).unwrap(), d)
    }

    #[test]
    fn strict_syncs_on_demand_and_what_nobody_waits_for_within_the_window() {
        let (w, d) = strict_writer("demand", Duration::from_secs(30));
        let first = w.append("t", b"{\"i\":1}").unwrap();
        let second = w.append("t", b"{\"i\":2}").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(w.durable_count() <= first, "nobody waits: not synced before the window");
        // waiting for the second syncs the first with it
        assert!(w.wait_durable(second, Some(Duration::from_secs(5))).unwrap());
        assert!(w.durable_count() > second);
        let third = w.append("t", b"{\"i\":3}").unwrap();
        w.want(third);
        let t0 = Instant::now();
        while w.durable_count() <= third {
            assert!(t0.elapsed() < Duration::from_secs(5), "want() did not get the record synced");
            std::thread::sleep(Duration::from_millis(1));
        }
        w.close().unwrap();
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn strict_records_nobody_waits_for_are_synced_within_the_batch_window() {
        let (w, d) = strict_writer("window", Duration::from_millis(50));
        let seq = w.append("t", b"{}").unwrap();
        let t0 = Instant::now();
        while w.durable_count() <= seq {
            assert!(t0.elapsed() < Duration::from_secs(5), "an unawaited record was never synced");
            std::thread::sleep(Duration::from_millis(2));
        }
        w.close().unwrap();
        let _ = fs::remove_dir_all(&d);
    }
}
