//! Server-sent events on the hot path: split a byte stream into events, rewrite the `data:`
//! payload of the bulk ones natively, and hand the few events the gateway must look at
//! (run metadata, task results, errors, token deltas) to Python, in stream order.
//!
//! Framing follows the WHATWG event-stream rules: lines end with LF, CRLF or CR; a blank line
//! ends an event; a CR at the end of a chunk waits for the next byte (it may be a CRLF). Events
//! are never released before they are complete, and an event's bytes are passed on unchanged
//! unless its data changed, so an unmodified stream is byte-identical.

/// What one `feed` produces, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Segment {
    /// Bytes ready for the client (events already rewritten, comments, unchanged events).
    Bytes(Vec<u8>),
    /// An event whose name matched a routed prefix: its exact raw bytes, for the caller.
    Event {
        /// The `event:` field (empty for unnamed events).
        name: Vec<u8>,
        /// The complete event, including its terminating blank line.
        raw: Vec<u8>,
    },
}

/// Rewrites an event's data (the `data:` lines joined with LF). `None` keeps the event as is.
pub trait DataRewriter {
    /// The new data for an event named `name`, or `None` to pass the event unchanged.
    fn rewrite(&mut self, name: &[u8], data: &[u8]) -> Option<Vec<u8>>;

    /// False when `rewrite` would always answer `None` (events are only routed).
    fn wants_data(&self) -> bool {
        true
    }

    /// True when `rewrite` would answer `None` for every event whose data is a single line
    /// without a backslash lying inside `region` (one pass over many events instead of one per
    /// event). The default never claims it.
    fn region_clear(&mut self, _region: &[u8]) -> bool {
        false
    }
}

impl<F: FnMut(&[u8], &[u8]) -> Option<Vec<u8>>> DataRewriter for F {
    fn rewrite(&mut self, name: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        self(name, data)
    }
}

/// Largest incomplete event carried between feeds that is still rescanned by the region pass.
const REGION_CARRY_MAX: usize = 64 * 1024;

/// Incremental splitter. `routed` lists event-name prefixes handed to the caller; a prefix
/// matches the whole name or the name up to a `|` (LangGraph's `tasks|subgraph:id`).
pub struct SseSplitter {
    /// The incomplete event carried over from earlier chunks.
    buf: Vec<u8>,
    /// Offset in `buf` of the first line not yet known to be complete.
    scanned: usize,
    /// What the LF path knows of the carried event (see `LfState`).
    lf: LfState,
    /// The general path holds the carried bytes: it goes on with them.
    carry_cr: bool,
    /// General path: offset in `buf` before which no line end remains to be found.
    searched: usize,
    /// Event-name prefixes handed to the caller.
    routed: Vec<Vec<u8>>,
    max_event_bytes: usize,
    /// Complete events seen so far (comments included).
    pub events: u64,
}

/// The stream broke a limit.
#[derive(Debug, PartialEq, Eq)]
pub struct EventTooLarge(pub usize);

impl SseSplitter {
    /// A splitter routing events whose names start with one of `routed`.
    pub fn new(routed: Vec<Vec<u8>>, max_event_bytes: usize) -> Self {
        SseSplitter {
            buf: Vec::new(),
            scanned: 0,
            lf: LfState::default(),
            carry_cr: false,
            searched: 0,
            routed,
            max_event_bytes,
            events: 0,
        }
    }

    fn is_routed(&self, name: &[u8]) -> bool {
        let base = match name.iter().position(|&b| b == b'|') {
            Some(i) => &name[..i],
            None => name,
        };
        self.routed.iter().any(|p| p.as_slice() == base)
    }

    /// Add bytes; returns the segments they complete.
    pub fn feed<R: DataRewriter>(&mut self, chunk: &[u8], rw: &mut R) -> Result<Vec<Segment>, EventTooLarge> {
        let mut out: Vec<Segment> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        for piece in self.feed_pieces(chunk, rw)? {
            match piece {
                Piece::Borrowed(b) => bytes.extend_from_slice(b),
                Piece::Owned(b) => bytes.extend_from_slice(&b),
                Piece::Event { name, raw } => {
                    if !bytes.is_empty() {
                        out.push(Segment::Bytes(std::mem::take(&mut bytes)));
                    }
                    out.push(Segment::Event { name, raw });
                }
            }
        }
        if !bytes.is_empty() {
            out.push(Segment::Bytes(bytes));
        }
        Ok(out)
    }

    /// `feed`, with the bytes that pass unchanged borrowed from `chunk` rather than copied: the
    /// caller joins consecutive `Borrowed` and `Owned` pieces into what it sends, so each byte
    /// of an LF stream is copied once (into the caller's output), or twice when it belongs to
    /// an event that straddles two chunks.
    pub fn feed_pieces<'c, R: DataRewriter>(
        &mut self,
        chunk: &'c [u8],
        rw: &mut R,
    ) -> Result<Vec<Piece<'c>>, EventTooLarge> {
        let mut out: Vec<Piece<'c>> = Vec::new();
        if self.carry_cr {
            return self.general_into(out, chunk, rw);
        }
        let mut rest = chunk;
        let carried = self.buf.len();
        if carried > 0 {
            // Complete the carried event with the chunk's head (only that part is copied).
            let end = if self.buf.last() == Some(&b'\n') && chunk.first() == Some(&b'\n') {
                Some(1)
            } else {
                memchr::memmem::find(chunk, b"\n\n").map(|i| i + 2)
            };
            let take = end.unwrap_or(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            rest = &chunk[take..];
            let data = std::mem::take(&mut self.buf);
            let clear = end.is_some() && carried <= REGION_CARRY_MAX && rw.wants_data() && rw.region_clear(&data);
            let st = if self.lf.valid { self.lf } else { LfState { valid: true, ..LfState::default() } };
            let mut lf_out = Vec::new();
            let (done, cr) = self.split_lf(&data, st, rw, clear, &mut lf_out);
            // `data` is dropped or kept below: what passes is copied out
            push_pieces(&mut out, lf_out, &data, |a, b| Piece::Owned(data[a..b].to_vec()));
            self.buf = if done == 0 { data } else { data[done..].to_vec() };
            if cr {
                return self.general_into(out, rest, rw);
            }
        }
        if !rest.is_empty() {
            let clear = rw.wants_data() && rw.region_clear(rest);
            let mut lf_out = Vec::new();
            let st = LfState { valid: true, ..LfState::default() };
            let (done, cr) = self.split_lf(rest, st, rw, clear, &mut lf_out);
            push_pieces(&mut out, lf_out, rest, |a, b| Piece::Borrowed(&rest[a..b]));
            self.buf = rest[done..].to_vec();
            if cr {
                return self.general_into(out, b"", rw);
            }
        }
        if self.buf.len() > self.max_event_bytes {
            return Err(EventTooLarge(self.max_event_bytes));
        }
        Ok(out)
    }

    /// The general path from here on: `self.buf` (read up to `self.scanned`) and then `chunk`.
    fn general_into<'c, R: DataRewriter>(
        &mut self,
        mut out: Vec<Piece<'c>>,
        chunk: &[u8],
        rw: &mut R,
    ) -> Result<Vec<Piece<'c>>, EventTooLarge> {
        let segs = self.feed_general(chunk, rw)?;
        // Stay on the general path while it holds an incomplete event (whether that event has
        // a CR or not; looking would read the carried bytes again on every feed).
        self.carry_cr = !self.buf.is_empty();
        self.lf.valid = false;
        out.extend(segs.into_iter().map(|s| match s {
            Segment::Bytes(b) => Piece::Owned(b),
            Segment::Event { name, raw } => Piece::Event { name, raw },
        }));
        Ok(out)
    }

    /// Any stream with a CR (the WHATWG rules in full; copies the bytes it keeps).
    fn feed_general<R: DataRewriter>(&mut self, chunk: &[u8], rw: &mut R) -> Result<Vec<Segment>, EventTooLarge> {
        let carried = self.buf.len();
        self.buf.extend_from_slice(chunk);
        // One pass over the whole buffer clears most events at once. Not when a large
        // incomplete event was carried over (it would be rescanned on every feed).
        let clear = carried <= REGION_CARRY_MAX && rw.wants_data() && rw.region_clear(&self.buf);
        let mut out: Vec<Segment> = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let buf = std::mem::take(&mut self.buf);
        let n = buf.len();
        let mut event_start = 0usize;
        let mut line_start = self.scanned;
        // the bytes before `searched` hold no line end (a long line is not searched again)
        let mut i = self.scanned.max(self.searched);
        // Find complete events: a line end followed by an empty line.
        while i < n {
            let b = buf[i];
            if b != b'\n' && b != b'\r' {
                // fast skip to the next CR or LF
                match memchr2(b'\n', b'\r', &buf[i..]) {
                    Some(off) => {
                        i += off;
                        continue;
                    }
                    None => {
                        i = n;
                        break;
                    }
                }
            }
            let (end, next) = if b == b'\r' {
                if i + 1 == n {
                    break; // a CR at the end: wait for the next byte
                }
                (i, if buf[i + 1] == b'\n' { i + 2 } else { i + 1 })
            } else {
                (i, i + 1)
            };
            let empty = end == line_start;
            line_start = next;
            i = next;
            if empty {
                let raw = &buf[event_start..next];
                self.emit(raw, rw, &mut out, &mut pending, clear);
                event_start = next;
            }
        }
        if !pending.is_empty() {
            out.push(Segment::Bytes(pending));
        }
        // Keep the incomplete tail (without copying it when nothing was taken from it, so a
        // large event that arrives in many chunks costs linear time); remember where its first
        // incomplete line starts and how far line ends were searched.
        let rest = if event_start == 0 { buf } else { buf[event_start..].to_vec() };
        self.scanned = line_start.saturating_sub(event_start).min(rest.len());
        self.searched = i.saturating_sub(event_start).min(rest.len());
        self.buf = rest;
        if self.buf.len() > self.max_event_bytes {
            return Err(EventTooLarge(self.max_event_bytes));
        }
        Ok(out)
    }

    /// The LF-only path (what LangGraph sends): reads `buf` from `st.read` 64 bytes at a time
    /// as LF, backslash and CR bit masks (a CR hands the rest to the general path), classifies each line by its first bytes as it ends, and
    /// decides at each blank line whether the event passes unchanged (most do: no data, or one
    /// backslash-free data line in a region the rewriter cleared), is routed, or is rewritten.
    /// Events that pass are reported as ranges, merged into runs. The same decisions as
    /// `emit`. Returns where the incomplete tail starts and whether a CR stopped it; `self.lf` and `self.scanned` describe
    /// that tail afterwards, so the next feed reads only new bytes.
    fn split_lf<R: DataRewriter>(
        &mut self,
        buf: &[u8],
        mut st: LfState,
        rw: &mut R,
        clear: bool,
        out: &mut Vec<LfOut>,
    ) -> (usize, bool) {
        let wants_data = rw.wants_data();
        let mut event_start = 0usize;
        let mut pos = st.read;
        let mut cr = false;
        while pos < buf.len() {
            let (mut lf, mut bs, crs) = line_masks(buf, pos);
            if crs != 0 {
                // Not an LF-only stream after all: the general path takes over from the
                // start of this event (its lines before `st.line_start` have no CR).
                cr = true;
                break;
            }
            while lf != 0 {
                let k = lf.trailing_zeros() as usize;
                let p = pos + k;
                let below = (1u64 << k) - 1;
                if bs & below != 0 {
                    st.backslash = true;
                }
                bs &= !below;
                lf &= lf - 1;
                let ls = st.line_start;
                let line = &buf[ls..p];
                st.line_start = p + 1;
                match line.first() {
                    None => {
                        self.events += 1;
                        self.end_event_lf(buf, event_start, p + 1, &st, rw, clear, wants_data, out);
                        event_start = p + 1;
                        st = LfState { valid: true, line_start: p + 1, ..LfState::default() };
                    }
                    Some(b'd') if line.starts_with(b"data") && (line.len() == 4 || line[4] == b':') => {
                        st.data_lines += 1
                    }
                    Some(b'e') if line.starts_with(b"event") && (line.len() == 5 || line[5] == b':') => {
                        let mut v = p.min(ls + 6);
                        if v < p && buf[v] == b' ' {
                            v += 1;
                        }
                        st.name = (v, p);
                    }
                    _ => {}
                }
            }
            if bs != 0 {
                st.backslash = true; // in the line still open at the block's end
            }
            pos += 64;
        }
        // Rebase what is known of the tail onto its start.
        let base = event_start;
        self.lf = LfState {
            valid: true,
            name: (st.name.0.saturating_sub(base), st.name.1.saturating_sub(base)),
            data_lines: st.data_lines,
            backslash: st.backslash,
            line_start: st.line_start - base,
            read: pos.min(buf.len()) - base,
        };
        self.scanned = st.line_start - base;
        self.searched = self.scanned;
        (event_start, cr)
    }

    /// One complete LF event `buf[start..end]` (see `split_lf`).
    #[allow(clippy::too_many_arguments)]
    fn end_event_lf<R: DataRewriter>(
        &self,
        buf: &[u8],
        start: usize,
        end: usize,
        st: &LfState,
        rw: &mut R,
        clear: bool,
        wants_data: bool,
        out: &mut Vec<LfOut>,
    ) {
        let mut pass = st.data_lines == 0;
        let mut routed = false;
        if !pass {
            routed = self.is_routed(&buf[st.name.0.max(start)..st.name.1.max(start)]);
            pass = !routed && (!wants_data || (clear && !st.backslash && st.data_lines == 1));
        }
        if pass {
            push_pass(out, start, end);
            return;
        }
        if routed {
            out.push(LfOut::Routed(start, end, (st.name.0.max(start), st.name.1.max(start))));
            return;
        }
        let raw = &buf[start..end];
        let parsed = parse_event(raw);
        match rw.rewrite(&parsed.name, &parsed.data) {
            Some(new) if new != parsed.data => {
                let mut v = Vec::with_capacity(raw.len() + new.len());
                rebuild_into(raw, &new, &mut v);
                out.push(LfOut::Owned(v));
            }
            _ => push_pass(out, start, end),
        }
    }

    /// End of stream: whatever is left (an unterminated event), unmodified.
    pub fn finish(&mut self) -> Vec<u8> {
        self.scanned = 0;
        self.lf = LfState::default();
        self.carry_cr = false;
        self.searched = 0;
        std::mem::take(&mut self.buf)
    }

    fn emit<R: DataRewriter>(
        &mut self,
        raw: &[u8],
        rw: &mut R,
        out: &mut Vec<Segment>,
        pending: &mut Vec<u8>,
        clear: bool,
    ) {
        self.events += 1;
        if !rw.wants_data() {
            // Routing only: the event name decides, the data is never looked at.
            let (name, has_data) = name_only(raw);
            if has_data && self.is_routed(&name) {
                if !pending.is_empty() {
                    out.push(Segment::Bytes(std::mem::take(pending)));
                }
                out.push(Segment::Event { name, raw: raw.to_vec() });
            } else {
                pending.extend_from_slice(raw);
            }
            return;
        }
        let parsed = parse_event(raw);
        if parsed.data_lines == 0 {
            pending.extend_from_slice(raw); // comments, heartbeats, fields without data
            return;
        }
        if self.is_routed(&parsed.name) {
            if !pending.is_empty() {
                out.push(Segment::Bytes(std::mem::take(pending)));
            }
            out.push(Segment::Event { name: parsed.name, raw: raw.to_vec() });
            return;
        }
        if clear && parsed.data_lines == 1 && memchr::memchr(b'\\', &parsed.data).is_none() {
            // One data line is a substring of the raw event: cleared by the region pass.
            pending.extend_from_slice(raw);
            return;
        }
        match rw.rewrite(&parsed.name, &parsed.data) {
            Some(new) if new != parsed.data => rebuild_into(raw, &new, pending),
            _ => pending.extend_from_slice(raw),
        }
    }
}

/// A piece of `SseSplitter::feed_pieces` output, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'c> {
    /// Bytes of the caller's chunk that pass unchanged.
    Borrowed(&'c [u8]),
    /// Bytes made or kept by the splitter (rewritten events, events carried across chunks).
    Owned(Vec<u8>),
    /// A routed event (see `Segment::Event`).
    Event {
        /// The `event:` field.
        name: Vec<u8>,
        /// The complete event.
        raw: Vec<u8>,
    },
}

/// What the LF path knows of the event it is reading (offsets into the buffer it reads; for
/// the carried event, into `SseSplitter::buf`).
#[derive(Clone, Copy, Debug, Default)]
struct LfState {
    /// False after the general path ran: the carried bytes are read again from the start.
    valid: bool,
    /// The value of the last `event:` line (empty range: none).
    name: (usize, usize),
    data_lines: usize,
    /// A backslash somewhere in the event.
    backslash: bool,
    /// Start of the line being read.
    line_start: usize,
    /// Bytes already read (the masks start here).
    read: usize,
}

/// `split_lf` output: ranges of the buffer it read, or bytes it made.
enum LfOut {
    Pass(usize, usize),
    Owned(Vec<u8>),
    /// (start, end, name range)
    Routed(usize, usize, (usize, usize)),
}

/// `split_lf`'s output over `buf` as pieces; `pass` makes the piece for a range that passes.
fn push_pieces<'c>(out: &mut Vec<Piece<'c>>, lf_out: Vec<LfOut>, buf: &[u8], pass: impl Fn(usize, usize) -> Piece<'c>) {
    for o in lf_out {
        out.push(match o {
            LfOut::Pass(a, b) => pass(a, b),
            LfOut::Owned(v) => Piece::Owned(v),
            LfOut::Routed(a, b, n) => Piece::Event { name: buf[n.0..n.1].to_vec(), raw: buf[a..b].to_vec() },
        });
    }
}

fn push_pass(out: &mut Vec<LfOut>, start: usize, end: usize) {
    if let Some(LfOut::Pass(_, e)) = out.last_mut() {
        if *e == start {
            *e = end;
            return;
        }
    }
    out.push(LfOut::Pass(start, end));
}

/// Bit masks of the LF, backslash and CR bytes in `buf[at..at + 64]` (bit i: byte at + i;
/// bytes past the end count as none of them).
fn line_masks(buf: &[u8], at: usize) -> (u64, u64, u64) {
    let mut pad = [0u8; 64];
    let block: &[u8; 64] = match buf.get(at..at + 64) {
        Some(b) => b.try_into().expect("64 bytes"),
        None => {
            let tail = &buf[at..];
            pad[..tail.len()].copy_from_slice(tail);
            &pad
        }
    };
    masks_64(block)
}

#[cfg(target_arch = "x86_64")]
fn masks_64(block: &[u8; 64]) -> (u64, u64, u64) {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let (mut lf, mut bs, mut cr) = (0u64, 0u64, 0u64);
    // SAFETY: SSE2 is part of x86_64; each load reads 16 of the block's 64 bytes.
    unsafe {
        let nl = _mm_set1_epi8(b'\n' as i8);
        let bsl = _mm_set1_epi8(b'\\' as i8);
        let ret = _mm_set1_epi8(b'\r' as i8);
        for k in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * k) as *const __m128i);
            lf |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) as u32 as u64) << (16 * k);
            bs |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, bsl)) as u32 as u64) << (16 * k);
            cr |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, ret)) as u32 as u64) << (16 * k);
        }
    }
    (lf, bs, cr)
}

#[cfg(not(target_arch = "x86_64"))]
fn masks_64(block: &[u8; 64]) -> (u64, u64, u64) {
    let (mut lf, mut bs, mut cr) = (0u64, 0u64, 0u64);
    for (i, &b) in block.iter().enumerate() {
        lf |= ((b == b'\n') as u64) << i;
        bs |= ((b == b'\\') as u64) << i;
        cr |= ((b == b'\r') as u64) << i;
    }
    (lf, bs, cr)
}

struct Parsed {
    name: Vec<u8>,
    data: Vec<u8>,
    data_lines: usize,
}

fn lines(raw: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut s = 0;
    while let Some(off) = memchr2(b'\n', b'\r', &raw[s..]) {
        let i = s + off;
        out.push(&raw[s..i]);
        s = if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') { i + 2 } else { i + 1 };
    }
    if s < raw.len() {
        out.push(&raw[s..]);
    }
    out
}

fn field(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b':') {
        Some(c) => {
            let v = &line[c + 1..];
            (&line[..c], if v.first() == Some(&b' ') { &v[1..] } else { v })
        }
        None => (line, &[]),
    }
}

fn parse_event(raw: &[u8]) -> Parsed {
    let mut name = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    let mut data_lines = 0;
    for line in lines(raw) {
        if line.is_empty() || line[0] == b':' {
            continue;
        }
        let (k, v) = field(line);
        if k == b"data" {
            if data_lines > 0 {
                data.push(b'\n');
            }
            data.extend_from_slice(v);
            data_lines += 1;
        } else if k == b"event" {
            name = v.to_vec();
        }
    }
    Parsed { name, data, data_lines }
}

/// The `event:` field and whether the event has a `data:` line, without copying the data.
fn name_only(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut name = Vec::new();
    let mut has_data = false;
    for line in lines(raw) {
        if line.is_empty() || line[0] == b':' {
            continue;
        }
        let (k, v) = field(line);
        if k == b"data" {
            has_data = true;
        } else if k == b"event" {
            name = v.to_vec();
        }
    }
    (name, has_data)
}

fn line_end(raw: &[u8]) -> &'static [u8] {
    match memchr2(b'\n', b'\r', raw) {
        Some(i) if raw[i] == b'\r' => {
            if raw.get(i + 1) == Some(&b'\n') {
                b"\r\n"
            } else {
                b"\r"
            }
        }
        _ => b"\n",
    }
}

/// The event with its `data:` lines replaced by `data` (other lines kept, in order).
pub fn rebuild_into(raw: &[u8], data: &[u8], out: &mut Vec<u8>) {
    let eol = line_end(raw);
    let mut wrote = false;
    for line in lines(raw) {
        if line.is_empty() {
            continue;
        }
        let is_data = line[0] != b':' && field(line).0 == b"data";
        if is_data {
            if !wrote {
                for part in data.split(|&b| b == b'\n') {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(part);
                    out.extend_from_slice(eol);
                }
                wrote = true;
            }
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(eol);
}

fn memchr2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr2(a, b, hay)
}

/// Test helper type: routed events as (name, raw event bytes).
#[cfg(test)]
type Routed = Vec<(Vec<u8>, Vec<u8>)>;

/// Test helper: appends `segs` to `out`, writing `<R>` where a routed event was taken out and
/// keeping that event (name, raw) in `routed`.
#[cfg(test)]
fn collect_segments(segs: Vec<Segment>, out: &mut Vec<u8>, routed: &mut Routed) {
    for seg in segs {
        match seg {
            Segment::Bytes(b) => out.extend(b),
            Segment::Event { name, raw } => {
                out.extend_from_slice(b"<R>");
                routed.push((name, raw));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(_: &[u8], d: &[u8]) -> Option<Vec<u8>> {
        Some(d.to_ascii_uppercase())
    }

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Routed) {
        let mut s = SseSplitter::new(vec![b"tasks".to_vec(), b"metadata".to_vec()], 1 << 20);
        let mut out = Vec::new();
        let mut routed = Vec::new();
        let mut rw = upper;
        for c in chunks {
            collect_segments(s.feed(c, &mut rw).unwrap(), &mut out, &mut routed);
        }
        out.extend(s.finish());
        (out, routed)
    }

    const STREAM: &[u8] = b"event: metadata\ndata: {\"run_id\":\"r\"}\n\nevent: values\r\nid: 3\r\ndata: {\"a\":\"x\"}\r\ndata: y\r\n\r\n: heartbeat\n\nevent: tasks|sub:1\rdata: t\r\revent: custom\ndata: z\n\ntail";

    #[test]
    fn rewrites_routes_and_keeps_order() {
        let (out, routed) = run(&[STREAM]);
        assert_eq!(
            out,
            b"<R>event: values\r\nid: 3\r\ndata: {\"A\":\"X\"}\r\ndata: Y\r\n\r\n: heartbeat\n\n<R>event: custom\ndata: Z\n\ntail".to_vec()
        );
        assert_eq!(routed[0].0, b"metadata".to_vec());
        assert_eq!(routed[1].0, b"tasks|sub:1".to_vec());
        assert_eq!(routed[1].1, b"event: tasks|sub:1\rdata: t\r\r".to_vec());
    }

    #[test]
    fn every_split_point_gives_the_same_output() {
        let whole = run(&[STREAM]);
        for a in 0..STREAM.len() {
            for b in a..STREAM.len() {
                let parts = [&STREAM[..a], &STREAM[a..b], &STREAM[b..]];
                assert_eq!(run(&parts), whole, "split at {a},{b}");
            }
        }
    }

    #[test]
    fn unchanged_events_pass_byte_identical() {
        let mut s = SseSplitter::new(vec![], 1 << 20);
        let mut keep = |_: &[u8], _: &[u8]| -> Option<Vec<u8>> { None };
        let segs = s.feed(STREAM, &mut keep).unwrap();
        let mut out = Vec::new();
        for seg in segs {
            if let Segment::Bytes(b) = seg {
                out.extend(b);
            }
        }
        out.extend(s.finish());
        assert_eq!(out, STREAM.to_vec());
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut s = SseSplitter::new(vec![], 16);
        let mut keep = |_: &[u8], _: &[u8]| -> Option<Vec<u8>> { None };
        assert!(s.feed(b"data: 0123456789012345678901234567890", &mut keep).is_err());
    }
}

#[cfg(test)]
mod region_tests {
    use super::*;

    /// Upper-cases data; claims every region clear unless it holds "SECRET".
    struct Claims {
        rewrites: usize,
    }

    impl DataRewriter for Claims {
        fn rewrite(&mut self, _name: &[u8], data: &[u8]) -> Option<Vec<u8>> {
            self.rewrites += 1;
            Some(data.to_ascii_uppercase())
        }
        fn region_clear(&mut self, region: &[u8]) -> bool {
            !region.windows(6).any(|w| w == b"SECRET")
        }
    }

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, usize) {
        let mut s = SseSplitter::new(vec![], 1 << 20);
        let mut rw = Claims { rewrites: 0 };
        let mut out = Vec::new();
        for c in chunks {
            for seg in s.feed(c, &mut rw).unwrap() {
                if let Segment::Bytes(b) = seg {
                    out.extend(b);
                }
            }
        }
        (out, rw.rewrites)
    }

    #[test]
    fn a_clear_region_skips_single_line_events_only() {
        let stream: &[u8] = b"data: a\n\ndata: b\ndata: c\n\ndata: d\\n\n\n";
        let (out, rewrites) = run(&[stream]);
        // "a" passes untouched; two data lines and a backslash still go through the rewriter
        assert_eq!(out, b"data: a\n\ndata: B\ndata: C\n\ndata: D\\N\n\n".to_vec());
        assert_eq!(rewrites, 2);
    }

    #[test]
    fn a_region_that_may_match_is_rewritten_event_by_event() {
        let (out, rewrites) = run(&[b"data: a\n\ndata: SECRET\n\n"]);
        assert_eq!(out, b"data: A\n\ndata: SECRET\n\n".to_vec());
        assert_eq!(rewrites, 2);
    }
}

#[cfg(test)]
mod lf_tests {
    use super::*;

    fn upper(_: &[u8], d: &[u8]) -> Option<Vec<u8>> {
        Some(d.to_ascii_uppercase())
    }

    fn run(chunks: &[&[u8]], keep: bool) -> (Vec<u8>, Vec<Vec<u8>>, u64) {
        struct Keep;
        impl DataRewriter for Keep {
            fn rewrite(&mut self, _: &[u8], _: &[u8]) -> Option<Vec<u8>> {
                None
            }
            fn wants_data(&self) -> bool {
                false
            }
        }
        let mut s = SseSplitter::new(vec![b"tasks".to_vec(), b"metadata".to_vec()], 1 << 20);
        let mut out = Vec::new();
        let mut routed = Vec::new();
        for c in chunks {
            let segs = if keep { s.feed(c, &mut Keep).unwrap() } else { s.feed(c, &mut upper).unwrap() };
            collect_segments(segs, &mut out, &mut routed);
        }
        out.extend(s.finish());
        (out, routed.into_iter().map(|(_, raw)| raw).collect(), s.events)
    }

    const LF: &[u8] = b"event: metadata\ndata: {\"run_id\":\"r\"}\n\nevent: values\nid: 3\ndata: {\"a\":\"x\"}\ndata\n\n: heartbeat\n\nevent: tasks|sub:1\ndata: t\n\nevent: custom\ndata: z\n\nevent: nodata\nid: 9\n\nevent: tasks\nevent: values\ndata: w\n\ntail";

    #[test]
    fn lf_streams_route_and_rewrite_like_the_general_path() {
        let (out, routed, events) = run(&[LF], false);
        assert_eq!(
            out,
            b"<R>event: values\nid: 3\ndata: {\"A\":\"X\"}\ndata: \n\n: heartbeat\n\n<R>event: custom\ndata: Z\n\nevent: nodata\nid: 9\n\nevent: tasks\nevent: values\ndata: W\n\ntail".to_vec()
        );
        assert_eq!(routed.len(), 2);
        assert_eq!(events, 7);
        // routing only: every unrouted event byte-identical
        let (out, routed, _) = run(&[LF], true);
        assert_eq!(routed.len(), 2);
        let mut rebuilt = Vec::new();
        let mut parts = out.split(|_| false).next().unwrap().to_vec();
        for r in &routed {
            let at = parts.windows(3).position(|w| w == b"<R>").unwrap();
            rebuilt.extend_from_slice(&parts[..at]);
            rebuilt.extend_from_slice(r);
            parts = parts[at + 3..].to_vec();
        }
        rebuilt.extend_from_slice(&parts);
        assert_eq!(rebuilt, LF.to_vec());
    }

    #[test]
    fn lf_every_split_point_gives_the_same_output() {
        for keep in [false, true] {
            let whole = run(&[LF], keep);
            for a in 0..LF.len() {
                for b in a..LF.len() {
                    assert_eq!(run(&[&LF[..a], &LF[a..b], &LF[b..]], keep), whole, "split {a},{b} keep {keep}");
                }
            }
        }
    }
}

#[cfg(test)]
mod diff_tests {
    //! The splitter against a whole-text reference, on generated streams cut at random points.
    use super::*;
    use crate::test_util::xorshift;

    /// Masks "SECRET" in data, where `\z` decodes to `S` (so a backslash can hide a match
    /// from a raw region check, as a JSON escape can).
    struct Secret;

    fn decode(d: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < d.len() {
            if d[i] == b'\\' && d.get(i + 1) == Some(&b'z') {
                out.push(b'S');
                i += 2;
            } else {
                out.push(d[i]);
                i += 1;
            }
        }
        out
    }

    fn has_secret(d: &[u8]) -> bool {
        d.windows(6).any(|w| w == b"SECRET")
    }

    impl DataRewriter for Secret {
        fn rewrite(&mut self, _: &[u8], data: &[u8]) -> Option<Vec<u8>> {
            let d = decode(data);
            if !has_secret(&d) {
                return None;
            }
            let mut out = d.clone();
            for i in 0..d.len().saturating_sub(5) {
                if &d[i..i + 6] == b"SECRET" {
                    out[i..i + 6].copy_from_slice(b"######");
                }
            }
            Some(out)
        }
        fn region_clear(&mut self, region: &[u8]) -> bool {
            // sometimes claims nothing, so that both paths run
            !has_secret(region) && !region.len().is_multiple_of(3)
        }
    }

    /// The WHATWG rules over the whole text at once.
    fn reference(text: &[u8], routed: &[&[u8]]) -> (Vec<u8>, Routed, u64) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        let mut count = 0;
        let (mut i, mut start, mut line_start) = (0, 0, 0);
        while i < text.len() {
            let b = text[i];
            if b != b'\n' && b != b'\r' {
                i += 1;
                continue;
            }
            if b == b'\r' && i + 1 == text.len() {
                break; // may still become a CRLF
            }
            let next = if b == b'\r' && text[i + 1] == b'\n' { i + 2 } else { i + 1 };
            let empty = i == line_start;
            line_start = next;
            i = next;
            if !empty {
                continue;
            }
            let raw = &text[start..next];
            start = next;
            count += 1;
            let p = parse_event(raw);
            let base = p.name.split(|&c| c == b'|').next().unwrap_or(b"");
            if p.data_lines == 0 {
                out.extend_from_slice(raw);
            } else if routed.contains(&base) {
                out.extend_from_slice(b"<R>");
                events.push((p.name.clone(), raw.to_vec()));
            } else {
                match Secret.rewrite(&p.name, &p.data) {
                    Some(new) if new != p.data => rebuild_into(raw, &new, &mut out),
                    _ => out.extend_from_slice(raw),
                }
            }
        }
        out.extend_from_slice(&text[start..]);
        (out, events, count)
    }

    fn split(text: &[u8], cuts: &[usize], routed: &[&[u8]], pieces: bool) -> (Vec<u8>, Routed, u64) {
        let mut s = SseSplitter::new(routed.iter().map(|r| r.to_vec()).collect(), 1 << 20);
        let (mut out, mut events) = (Vec::new(), Vec::new());
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&text.len())) {
            let chunk = &text[at..c];
            at = c;
            if pieces {
                for p in s.feed_pieces(chunk, &mut Secret).unwrap() {
                    match p {
                        Piece::Borrowed(b) => out.extend_from_slice(b),
                        Piece::Owned(b) => out.extend(b),
                        Piece::Event { name, raw } => {
                            out.extend_from_slice(b"<R>");
                            events.push((name, raw));
                        }
                    }
                }
            } else {
                collect_segments(s.feed(chunk, &mut Secret).unwrap(), &mut out, &mut events);
            }
        }
        out.extend(s.finish());
        (out, events, s.events)
    }

    #[test]
    fn generated_streams_match_the_reference_for_any_cuts() {
        let lines: &[&[u8]] = &[
            b"event: values",
            b"event: tasks",
            b"event: tasks|sub:1",
            b"event:metadata",
            b"event",
            b"event : tasks",
            b"eventx: tasks",
            b"data: {\"a\":1}",
            b"data: SECRET",
            b"data: xx\\zECRET yy",
            b"data: \\\\ plain",
            b"data",
            b"data:SECR",
            b"ET",
            b"datax: SECRET",
            b"id: 7",
            b": heartbeat",
            b": SECRET in a comment",
            b"retry: 5",
            b"",
            b"",
            b"",
        ];
        let long = {
            let mut l = b"data: ".to_vec();
            l.extend(std::iter::repeat_n(b'a', 150));
            l.extend_from_slice(b"SECRET");
            l.extend(std::iter::repeat_n(b'b', 70));
            l
        };
        let routed: &[&[u8]] = &[b"tasks", b"metadata"];
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        let (mut rewritten, mut routed_n) = (0, 0);
        for round in 0..4000 {
            let with_cr = round % 4 == 3;
            let mut text = Vec::new();
            let n_lines = next() % 40;
            let cr_from = next() % 40; // CR streams: LF-only lines first, then any line end
            for line in 0..n_lines {
                let k = (next() % (lines.len() as u64 + 1)) as usize;
                text.extend_from_slice(if k == lines.len() { &long } else { lines[k] });
                let eol: &[u8] = if with_cr && line >= cr_from {
                    [&b"\r\n"[..], b"\r", b"\n"][(next() % 3) as usize]
                } else {
                    b"\n"
                };
                text.extend_from_slice(eol);
            }
            if next().is_multiple_of(2) {
                text.extend_from_slice(b"data: unterminated");
            }
            let want = reference(&text, routed);
            rewritten += want.0.windows(6).filter(|w| w == b"######").count();
            routed_n += want.1.len();
            let mut cuts: Vec<usize> = (0..next() % 6).map(|_| (next() as usize) % (text.len() + 1)).collect();
            cuts.sort();
            assert_eq!(
                split(&text, &cuts, routed, true),
                want,
                "pieces, cuts {cuts:?} in {:?}",
                String::from_utf8_lossy(&text)
            );
            assert_eq!(
                split(&text, &cuts, routed, false),
                want,
                "segments, cuts {cuts:?} in {:?}",
                String::from_utf8_lossy(&text)
            );
        }
        assert!(rewritten > 1000 && routed_n > 1000, "{rewritten} rewritten, {routed_n} routed");
    }

    #[test]
    fn masks_mark_every_lf_backslash_and_cr() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let text: Vec<u8> = (0..1000).map(|_| [b'\n', b'\\', b'a', b'\r', 0u8][(next() % 5) as usize]).collect();
        for at in 0..text.len() {
            let (lf, bs, cr) = line_masks(&text, at);
            for i in 0..64 {
                let b = text.get(at + i).copied();
                assert_eq!(cr >> i & 1 == 1, b == Some(b'\r'), "cr at {at}+{i}");
                assert_eq!(lf >> i & 1 == 1, b == Some(b'\n'), "lf at {at}+{i}");
                assert_eq!(bs >> i & 1 == 1, b == Some(b'\\'), "backslash at {at}+{i}");
            }
        }
    }
}

#[cfg(test)]
mod large_event_tests {
    use super::*;

    /// An 8 MiB event arriving 512 bytes at a time, on both paths. Each feed reads only its
    /// own bytes: were the carried event read (or copied) again on every feed, this would move
    /// tens of GB and not finish.
    #[test]
    fn a_large_event_in_small_chunks_costs_linear_time() {
        for eol in [&b"\n"[..], b"\r\n"] {
            let mut text = b"event: values".to_vec();
            text.extend_from_slice(eol);
            text.extend_from_slice(b"data: ");
            text.extend(std::iter::repeat_n(b'a', 8 << 20));
            text.extend_from_slice(eol);
            text.extend_from_slice(eol);
            let mut s = SseSplitter::new(vec![], 16 << 20);
            let mut keep = |_: &[u8], _: &[u8]| -> Option<Vec<u8>> { None };
            let mut out = Vec::new();
            for chunk in text.chunks(512) {
                for seg in s.feed(chunk, &mut keep).unwrap() {
                    if let Segment::Bytes(b) = seg {
                        out.extend(b);
                    }
                }
            }
            assert_eq!(out, text);
            assert_eq!(s.events, 1);
        }
    }
}
