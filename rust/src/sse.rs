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
        SseSplitter { buf: Vec::new(), scanned: 0, routed, max_event_bytes, events: 0 }
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
        let carried = self.buf.len();
        if carried == 0 && memchr::memchr(b'\r', chunk).is_none() {
            // Nothing carried over: split the caller's bytes in place (no copy).
            let clear = rw.wants_data() && rw.region_clear(chunk);
            return self.feed_lf(chunk, rw, clear);
        }
        self.buf.extend_from_slice(chunk);
        // One pass over the whole buffer clears most events at once. Not when a large
        // incomplete event was carried over (it would be rescanned on every feed).
        let clear = carried <= REGION_CARRY_MAX && rw.wants_data() && rw.region_clear(&self.buf);
        if memchr::memchr(b'\r', &self.buf).is_none() {
            let data = std::mem::take(&mut self.buf);
            return self.feed_lf(&data, rw, clear);
        }
        let mut out: Vec<Segment> = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let buf = std::mem::take(&mut self.buf);
        let n = buf.len();
        let mut event_start = 0usize;
        let mut line_start = self.scanned;
        let mut i = self.scanned;
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
                    None => break,
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
        // Keep the incomplete tail; remember how far it was scanned (whole lines only).
        let rest = buf[event_start..].to_vec();
        self.scanned = line_start.saturating_sub(event_start).min(rest.len());
        self.buf = rest;
        if self.buf.len() > self.max_event_bytes {
            return Err(EventTooLarge(self.max_event_bytes));
        }
        Ok(out)
    }

    /// `feed` for a buffer without CR (what LangGraph sends): events end at "\n\n", found with
    /// one SIMD search; events that pass unchanged are copied in runs, not one by one. Makes
    /// the same decisions as `emit`, which still handles every routed or rewritten event.
    fn feed_lf<R: DataRewriter>(&mut self, buf: &[u8], rw: &mut R, clear: bool) -> Result<Vec<Segment>, EventTooLarge> {
        debug_assert!(self.buf.is_empty());
        let wants_data = rw.wants_data();
        let no_backslash = clear && memchr::memchr(b'\\', buf).is_none();
        let mut out: Vec<Segment> = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut event_start = 0usize;
        let mut run_start = 0usize; // start of the pass-through bytes not yet copied
        let finder = memchr::memmem::Finder::new(b"\n\n");
        let mut search = self.scanned.saturating_sub(1);
        while let Some(off) = finder.find(&buf[search..]) {
            let end = search + off + 2;
            let raw = &buf[event_start..end];
            let (name, data_lines) = scan_lf(raw);
            let pass = if data_lines == 0 {
                true
            } else if self.is_routed(name) {
                false
            } else {
                !wants_data || (no_backslash && data_lines == 1)
            };
            if pass {
                self.events += 1;
            } else {
                pending.extend_from_slice(&buf[run_start..event_start]);
                self.emit(raw, rw, &mut out, &mut pending, clear);
                run_start = end;
            }
            event_start = end;
            search = end;
        }
        pending.extend_from_slice(&buf[run_start..event_start]);
        if !pending.is_empty() {
            out.push(Segment::Bytes(pending));
        }
        let rest = buf[event_start..].to_vec();
        // the first line of the tail not yet known complete: after its last LF
        self.scanned = memchr::memrchr(b'\n', &rest).map_or(0, |i| i + 1);
        self.buf = rest;
        if self.buf.len() > self.max_event_bytes {
            return Err(EventTooLarge(self.max_event_bytes));
        }
        Ok(out)
    }

    /// End of stream: whatever is left (an unterminated event), unmodified.
    pub fn finish(&mut self) -> Vec<u8> {
        self.scanned = 0;
        std::mem::take(&mut self.buf)
    }

    fn emit<R: DataRewriter>(&mut self, raw: &[u8], rw: &mut R, out: &mut Vec<Segment>, pending: &mut Vec<u8>, clear: bool) {
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

/// For an event without CR: its `event:` field (the last one) and how many data lines it has,
/// by the same rules as `parse_event`, without allocating.
fn scan_lf(raw: &[u8]) -> (&[u8], usize) {
    let mut name: &[u8] = b"";
    let mut data_lines = 0;
    let mut s = 0;
    for i in memchr::memchr_iter(b'\n', raw).chain(std::iter::once(raw.len())) {
        if i < s {
            continue;
        }
        let line = &raw[s..i];
        s = i + 1;
        if line.is_empty() || line[0] == b':' {
            continue;
        }
        let (k, v) = field(line);
        if k == b"data" {
            data_lines += 1;
        } else if k == b"event" {
            name = v;
        }
    }
    (name, data_lines)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(_: &[u8], d: &[u8]) -> Option<Vec<u8>> {
        Some(d.to_ascii_uppercase())
    }

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>) {
        let mut s = SseSplitter::new(vec![b"tasks".to_vec(), b"metadata".to_vec()], 1 << 20);
        let mut out = Vec::new();
        let mut routed = Vec::new();
        let mut rw = upper;
        for c in chunks {
            for seg in s.feed(c, &mut rw).unwrap() {
                match seg {
                    Segment::Bytes(b) => out.extend(b),
                    Segment::Event { name, raw } => {
                        out.extend_from_slice(b"<R>");
                        routed.push((name, raw));
                    }
                }
            }
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
            for seg in segs {
                match seg {
                    Segment::Bytes(b) => out.extend(b),
                    Segment::Event { name, raw } => {
                        out.extend_from_slice(b"<R>");
                        let _ = name;
                        routed.push(raw);
                    }
                }
            }
        }
        out.extend(s.finish());
        (out, routed, s.events)
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
