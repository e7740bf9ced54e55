//! The verifier: checks a directory of chains (or an export bundle) against the rules of
//! docs/AUDIT_FORMAT.md section 6, optionally against an anchor directory.
//!
//! # Untrusted input
//! Everything read is untrusted; every anomaly becomes a [`Finding`], never a panic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::format::*;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Informational.
    Info,
    /// Recoverable / not provable (exit 2).
    Incomplete,
    /// Evidence of alteration (exit 1).
    Tampering,
}

impl Severity {
    fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Incomplete => "incomplete",
            Self::Tampering => "tampering",
        }
    }
}

/// One finding.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Chain id.
    pub chain: String,
    /// Seq concerned, when known.
    pub seq: Option<u64>,
    /// Segment file (or "anchor:<file>" / "bundle").
    pub segment: Option<String>,
    /// Machine kind (see the format doc).
    pub kind: &'static str,
    /// Severity.
    pub severity: Severity,
    /// Human detail.
    pub detail: String,
}

/// Per-chain result.
#[derive(Clone, Debug, Default)]
pub struct ChainReport {
    /// Chain id.
    pub chain: String,
    /// Records read.
    pub records: u64,
    /// First seq present.
    pub first_seq: Option<u64>,
    /// Last seq present.
    pub last_seq: Option<u64>,
    /// Last seq such that everything up to it verified.
    pub verified_through: Option<u64>,
    /// Largest checkpoint size - 1 that verified.
    pub signed_through: Option<u64>,
    /// Checkpoints read.
    pub checkpoints: u64,
    /// Anchor checkpoints checked.
    pub anchored: u64,
    /// Pruned below.
    pub pruned_before: u64,
    /// Key used (hex).
    pub public_key: Option<String>,
    /// Findings.
    pub findings: Vec<Finding>,
}

/// A whole verification.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Chains in name order.
    pub chains: Vec<ChainReport>,
    /// Findings not tied to a present chain.
    pub findings: Vec<Finding>,
}

impl Report {
    /// 0 intact, 1 tampering, 2 incomplete.
    pub fn exit_code(&self) -> i32 {
        let worst = self
            .chains
            .iter()
            .flat_map(|c| c.findings.iter())
            .chain(self.findings.iter())
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Info);
        match worst {
            Severity::Tampering => 1,
            Severity::Incomplete => 2,
            Severity::Info => {
                if self.chains.is_empty() {
                    2
                } else {
                    0
                }
            }
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"status\":");
        s.push_str(match self.exit_code() {
            0 => "\"intact\"",
            1 => "\"tampered\"",
            _ => "\"incomplete\"",
        });
        s.push_str(&format!(",\"exit_code\":{},\"chains\":[", self.exit_code()));
        for (i, c) in self.chains.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                "{{\"chain\":{},\"records\":{},\"first_seq\":{},\"last_seq\":{},\"verified_through\":{},\"signed_through\":{},\"checkpoints\":{},\"anchored\":{},\"pruned_before\":{},\"public_key\":{},\"findings\":",
                js(&c.chain),
                c.records,
                opt(c.first_seq),
                opt(c.last_seq),
                opt(c.verified_through),
                opt(c.signed_through),
                c.checkpoints,
                c.anchored,
                c.pruned_before,
                c.public_key.as_deref().map(js).unwrap_or_else(|| "null".into())
            ));
            findings_json(&mut s, &c.findings);
            s.push('}');
        }
        s.push_str("],\"findings\":");
        findings_json(&mut s, &self.findings);
        s.push('}');
        s
    }
}

fn opt(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "null".into())
}

fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn findings_json(s: &mut String, fs_: &[Finding]) {
    s.push('[');
    for (i, f) in fs_.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"chain\":{},\"seq\":{},\"segment\":{},\"kind\":{},\"severity\":{},\"detail\":{}}}",
            js(&f.chain),
            opt(f.seq),
            f.segment.as_deref().map(js).unwrap_or_else(|| "null".into()),
            js(f.kind),
            js(f.severity.name()),
            js(&f.detail)
        ));
    }
    s.push(']');
}

/// One segment (or one chain section of a bundle) as read.
pub struct Unit {
    /// File name for reports.
    pub name: String,
    /// First seq from the file name (None in bundles).
    pub name_seq: Option<u64>,
    /// Decoded frames.
    pub frames: Vec<(usize, Result<Item, String>)>,
    /// Parse stop (offset, reason, bytes after).
    pub stop: Option<(usize, String, bool)>,
}

/// Read the segment files of one chain directory, in order.
pub fn load_chain_dir(dir: &Path) -> Result<Vec<Unit>, String> {
    let mut segs = Vec::new();
    for ent in fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".seg") {
            let n = if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) { stem.parse().ok() } else { None };
            segs.push((n.unwrap_or(u64::MAX), name, ent.path()));
        }
    }
    segs.sort();
    let mut out = Vec::new();
    for (n, name, path) in segs {
        let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let f = split_frames(&bytes);
        out.push(Unit { name, name_seq: if n == u64::MAX { None } else { Some(n) }, frames: f.frames, stop: f.stop });
    }
    Ok(out)
}

/// Chains of an audit directory: (chain id, path).
pub fn chain_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = Vec::new();
    for ent in fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if !valid_chain_id(&name) || !ent.path().is_dir() {
            continue;
        }
        let has_seg = fs::read_dir(ent.path())
            .map(|rd| rd.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".seg")))
            .unwrap_or(false);
        if has_seg {
            out.push((name, ent.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn genesis_key(body: &[u8]) -> Option<[u8; 32]> {
    let s = std::str::from_utf8(body).ok()?;
    let i = s.find("\"public_key\":\"")? + "\"public_key\":\"".len();
    let h = s.get(i..i + 64)?;
    unhex(h)?.try_into().ok()
}

/// Parsed chain state after verification, used by the anchor check and export.
pub struct ChainData {
    /// Record hashes by seq.
    pub hashes: HashMap<u64, [u8; 32]>,
    /// Checkpoint hashes present locally.
    pub cp_hashes: HashSet<[u8; 32]>,
    /// Next seq after the last record.
    pub end_seq: u64,
    /// First seq present.
    pub first_seq: u64,
    /// Key in force.
    pub key: Option<[u8; 32]>,
}

/// Verify one chain from its units. `bundle`: start anywhere, no pruning rule.
pub fn verify_units(chain: &str, units: &[Unit], pinned: Option<[u8; 32]>, bundle: bool) -> (ChainReport, ChainData) {
    let mut rep = ChainReport { chain: chain.to_string(), ..Default::default() };
    let mut data =
        ChainData { hashes: HashMap::new(), cp_hashes: HashSet::new(), end_seq: 0, first_seq: 0, key: pinned };
    let find =
        |rep: &mut ChainReport, seq: Option<u64>, seg: &str, kind: &'static str, sev: Severity, detail: String| {
            if rep.findings.len() < 200 {
                rep.findings.push(Finding {
                    chain: chain.to_string(),
                    seq,
                    segment: Some(seg.to_string()),
                    kind,
                    severity: sev,
                    detail,
                });
            }
        };
    let mut expected: Option<u64> = None;
    let mut prev = ZERO32;
    let mut last_time = 0u64;
    let mut broken = false;
    let mut last_cp: Option<Checkpoint> = None;
    let mut first_header: Option<SegmentHeader> = None;
    let mut pruning_proofs: Vec<(u64, [u8; 32])> = Vec::new();
    let mut signed_size = 0u64;
    let n_units = units.len();
    for (ui, u) in units.iter().enumerate() {
        let is_last = ui + 1 == n_units;
        let mut frames = u.frames.iter();
        let header = match frames.next() {
            Some((_, Ok(Item::Segment(h)))) => h.clone(),
            _ => {
                let sev = if is_last && u.frames.is_empty() && u.stop.as_ref().is_none_or(|s| !s.2) {
                    Severity::Incomplete
                } else {
                    Severity::Tampering
                };
                find(
                    &mut rep,
                    expected,
                    &u.name,
                    if sev == Severity::Incomplete { "torn_tail" } else { "frame_corrupt" },
                    sev,
                    "segment does not start with a valid segment header".into(),
                );
                broken = true;
                continue;
            }
        };
        if header.chain != chain {
            find(
                &mut rep,
                Some(header.first_seq),
                &u.name,
                "foreign_segment",
                Severity::Tampering,
                format!("segment header names chain {:?}", header.chain),
            );
            broken = true;
        }
        if let Some(n) = u.name_seq {
            if n != header.first_seq {
                find(
                    &mut rep,
                    Some(header.first_seq),
                    &u.name,
                    "segment_renamed",
                    Severity::Tampering,
                    format!("file name says first seq {n}, header says {}", header.first_seq),
                );
                broken = true;
            }
        } else if !bundle {
            find(
                &mut rep,
                None,
                &u.name,
                "segment_renamed",
                Severity::Tampering,
                "segment file name is not a 20-digit seq".into(),
            );
            broken = true;
        }
        match expected {
            None => {
                first_header = Some(header.clone());
                data.first_seq = header.first_seq;
                prev = header.prev;
                if header.first_seq == 0 && header.prev != ZERO32 {
                    find(
                        &mut rep,
                        Some(0),
                        &u.name,
                        "chain_broken",
                        Severity::Tampering,
                        "first segment of the chain has a non-zero prev hash".into(),
                    );
                    broken = true;
                }
            }
            Some(e) => {
                if header.first_seq != e {
                    let what = if header.first_seq > e {
                        format!("records {e}..{} are missing (segment deleted?)", header.first_seq - 1)
                    } else {
                        format!(
                            "segment starts at seq {} but the previous one ended at {}",
                            header.first_seq,
                            e.saturating_sub(1)
                        )
                    };
                    find(&mut rep, Some(e), &u.name, "segment_gap", Severity::Tampering, what);
                    broken = true;
                } else if header.prev != prev {
                    find(
                        &mut rep,
                        Some(e),
                        &u.name,
                        "segment_replaced",
                        Severity::Tampering,
                        "segment header's prev hash does not match the previous segment's last record".into(),
                    );
                    broken = true;
                }
                prev = header.prev;
            }
        }
        expected = Some(header.first_seq);
        for (off, item) in frames {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    find(
                        &mut rep,
                        expected,
                        &u.name,
                        "frame_corrupt",
                        Severity::Tampering,
                        format!("undecodable frame at offset {off}: {e}"),
                    );
                    broken = true;
                    continue;
                }
            };
            match item {
                Item::Record(r) => {
                    if r.body.is_none() && !bundle {
                        find(
                            &mut rep,
                            Some(r.seq),
                            &u.name,
                            "frame_corrupt",
                            Severity::Tampering,
                            "elided record inside a segment".into(),
                        );
                        broken = true;
                    }
                    let e = expected.unwrap_or(0);
                    rep.records += 1;
                    if rep.first_seq.is_none() {
                        rep.first_seq = Some(r.seq);
                    }
                    rep.last_seq = Some(r.seq);
                    let mut ok = true;
                    if r.chain != chain {
                        find(
                            &mut rep,
                            Some(r.seq),
                            &u.name,
                            "foreign_record",
                            Severity::Tampering,
                            format!("record of chain {:?} spliced in at offset {off}", r.chain),
                        );
                        ok = false;
                    }
                    if r.seq != e {
                        let kind = if r.seq < e { "reordered" } else { "seq_gap" };
                        let detail = if r.seq < e {
                            format!("record seq {} where {e} was expected (reordered or duplicated)", r.seq)
                        } else {
                            format!("records {e}..{} are missing", r.seq - 1)
                        };
                        find(&mut rep, Some(e), &u.name, kind, Severity::Tampering, detail);
                        ok = false;
                    } else if r.prev != prev {
                        find(
                            &mut rep,
                            Some(r.seq),
                            &u.name,
                            "chain_broken",
                            Severity::Tampering,
                            "prev hash does not match the previous record (record edited, replaced or inserted)".into(),
                        );
                        ok = false;
                    }
                    if r.time_ns < last_time {
                        find(
                            &mut rep,
                            Some(r.seq),
                            &u.name,
                            "time_backwards",
                            Severity::Tampering,
                            format!("time {} is before the previous record's {}", r.time_ns, last_time),
                        );
                        ok = false;
                    }
                    if r.seq == 0 {
                        if r.kind != "audit.genesis" {
                            find(
                                &mut rep,
                                Some(0),
                                &u.name,
                                "chain_broken",
                                Severity::Tampering,
                                "seq 0 is not an audit.genesis record".into(),
                            );
                            ok = false;
                        } else if let Some(k) = r.body.as_deref().and_then(genesis_key) {
                            match data.key {
                                None => data.key = Some(k),
                                Some(p) if p != k => {
                                    find(
                                        &mut rep,
                                        Some(0),
                                        &u.name,
                                        "wrong_key",
                                        Severity::Tampering,
                                        format!("genesis names key {}, expected {}", hex(&k), hex(&p)),
                                    );
                                    ok = false;
                                }
                                _ => {}
                            }
                        }
                    }
                    if !ok {
                        broken = true;
                    }
                    if !broken {
                        rep.verified_through = Some(r.seq);
                    }
                    data.hashes.insert(r.seq, r.hash);
                    prev = r.hash;
                    last_time = last_time.max(r.time_ns);
                    expected = Some(r.seq + 1);
                }
                Item::Checkpoint(c) => {
                    rep.checkpoints += 1;
                    let e = expected.unwrap_or(0);
                    let cpseq = c.size.checked_sub(1);
                    let mut ok = true;
                    if data.key.is_none() {
                        data.key = Some(c.public_key);
                        find(
                            &mut rep,
                            cpseq,
                            &u.name,
                            "key_unpinned",
                            Severity::Info,
                            format!(
                                "no genesis record and no --key: trusting the first checkpoint's key {}",
                                hex(&c.public_key)
                            ),
                        );
                    }
                    let key = data.key.unwrap();
                    if c.chain != chain {
                        find(
                            &mut rep,
                            cpseq,
                            &u.name,
                            "foreign_checkpoint",
                            Severity::Tampering,
                            format!("checkpoint of chain {:?}", c.chain),
                        );
                        ok = false;
                    }
                    if c.public_key != key {
                        find(
                            &mut rep,
                            cpseq,
                            &u.name,
                            "wrong_key",
                            Severity::Tampering,
                            format!(
                                "checkpoint signed by {} instead of the chain key {}",
                                hex(&c.public_key),
                                hex(&key)
                            ),
                        );
                        ok = false;
                    } else if !c.signature_ok() {
                        find(
                            &mut rep,
                            cpseq,
                            &u.name,
                            "bad_signature",
                            Severity::Tampering,
                            "checkpoint signature does not verify".into(),
                        );
                        ok = false;
                    }
                    if c.size > e {
                        find(
                            &mut rep,
                            cpseq,
                            &u.name,
                            "checkpoint_mismatch",
                            Severity::Tampering,
                            format!("checkpoint covers {} records but only {e} precede it", c.size),
                        );
                        ok = false;
                    } else if c.size > 0 {
                        match data.hashes.get(&(c.size - 1)) {
                            Some(h) if *h == c.head => {}
                            Some(_) => {
                                find(
                                    &mut rep,
                                    cpseq,
                                    &u.name,
                                    "checkpoint_mismatch",
                                    Severity::Tampering,
                                    format!("signed head hash of seq {} differs from the record on disk", c.size - 1),
                                );
                                ok = false;
                            }
                            None if bundle || c.size <= data.first_seq => {}
                            None => {
                                find(
                                    &mut rep,
                                    cpseq,
                                    &u.name,
                                    "checkpoint_mismatch",
                                    Severity::Tampering,
                                    format!("record {} covered by the checkpoint is missing", c.size - 1),
                                );
                                ok = false;
                            }
                        }
                    }
                    match &last_cp {
                        Some(l) => {
                            if c.prev_cp != l.hash() {
                                find(&mut rep, cpseq, &u.name, "checkpoint_chain_broken", Severity::Tampering, "prev checkpoint hash does not match the previous checkpoint (checkpoint removed or replaced)".into());
                                ok = false;
                            }
                            if c.size < l.size || c.time_ns < l.time_ns {
                                find(
                                    &mut rep,
                                    cpseq,
                                    &u.name,
                                    "time_backwards",
                                    Severity::Tampering,
                                    "checkpoint size or time goes backwards".into(),
                                );
                                ok = false;
                            }
                        }
                        None => {
                            if c.prev_cp != ZERO32 && !bundle && data.first_seq == 0 {
                                find(
                                    &mut rep,
                                    cpseq,
                                    &u.name,
                                    "checkpoint_chain_broken",
                                    Severity::Tampering,
                                    "first checkpoint of an unpruned chain has a previous checkpoint".into(),
                                );
                                ok = false;
                            }
                        }
                    }
                    if c.time_ns < last_time && c.size == e {
                        find(
                            &mut rep,
                            cpseq,
                            &u.name,
                            "time_backwards",
                            Severity::Tampering,
                            "checkpoint time is before its head record's time".into(),
                        );
                        ok = false;
                    }
                    if c.pruned_before > 0 {
                        pruning_proofs.push((c.pruned_before, c.pruned_prev));
                        rep.pruned_before = rep.pruned_before.max(c.pruned_before);
                    }
                    if ok && !broken {
                        signed_size = signed_size.max(c.size);
                    }
                    if !ok {
                        broken = true;
                    }
                    data.cp_hashes.insert(c.hash());
                    last_cp = Some(c.clone());
                }
                Item::Segment(_) | Item::Bundle(_) => {
                    find(
                        &mut rep,
                        expected,
                        &u.name,
                        "frame_corrupt",
                        Severity::Tampering,
                        format!("unexpected header frame at offset {off}"),
                    );
                    broken = true;
                }
            }
        }
        if let Some((off, why, after)) = &u.stop {
            if is_last && !after {
                find(&mut rep, expected, &u.name, "torn_tail", Severity::Incomplete, format!("{why} at offset {off}: torn write at the tail (recoverable: the writer quarantines it and appends audit.recovery)"));
            } else {
                find(
                    &mut rep,
                    expected,
                    &u.name,
                    "frame_corrupt",
                    Severity::Tampering,
                    format!("{why} at offset {off} with data after it"),
                );
                broken = true;
            }
        }
    }
    data.end_seq = expected.unwrap_or(0);
    if let Some(h) = &first_header {
        if !bundle && h.first_seq != 0 && !pruning_proofs.iter().any(|(b, p)| *b == h.first_seq && *p == h.prev) {
            find(
                &mut rep,
                Some(h.first_seq),
                &units[0].name,
                "head_deleted",
                Severity::Tampering,
                format!("chain starts at seq {} without a signed pruning checkpoint for it", h.first_seq),
            );
            rep.verified_through = None;
        }
    }
    rep.signed_through = signed_size.checked_sub(1);
    if let Some(last) = rep.last_seq {
        if signed_size <= last && !broken {
            let sev = if bundle { Severity::Incomplete } else { Severity::Info };
            find(
                &mut rep,
                Some(signed_size),
                "",
                "unsigned_tail",
                sev,
                format!("records {signed_size}..{last} are not yet covered by a signed checkpoint"),
            );
        }
    }
    rep.public_key = data.key.map(|k| hex(&k));
    (rep, data)
}

/// Anchor checkpoints of one chain: (file name, parsed checkpoint or why not).
type AnchorCps = Vec<(String, Result<Checkpoint, String>)>;
/// A frame as split: (offset, decoded item or why not).
type FrameAt = (usize, Result<Item, String>);

fn load_anchor(anchor: &Path) -> BTreeMap<String, AnchorCps> {
    let mut out: BTreeMap<String, AnchorCps> = BTreeMap::new();
    let Ok(rd) = fs::read_dir(anchor) else { return out };
    for ent in rd.flatten() {
        let chain = ent.file_name().to_string_lossy().into_owned();
        if !valid_chain_id(&chain) || !ent.path().is_dir() {
            continue;
        }
        let mut v = Vec::new();
        if let Ok(rd2) = fs::read_dir(ent.path()) {
            for f in rd2.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".ckpt") || name.starts_with('.') {
                    continue;
                }
                let parsed = fs::read(f.path()).map_err(|e| e.to_string()).and_then(|b| {
                    let fr = split_frames(&b);
                    match (fr.frames.as_slice(), fr.stop) {
                        ([(_, Ok(Item::Checkpoint(c)))], None) => Ok(c.clone()),
                        _ => Err("not a single valid checkpoint frame".into()),
                    }
                });
                v.push((name, parsed));
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        out.insert(chain, v);
    }
    out
}

fn check_anchor(rep: &mut ChainReport, data: &ChainData, cps: &[(String, Result<Checkpoint, String>)]) {
    let chain = rep.chain.clone();
    for (name, cp) in cps {
        let seg = Some(format!("anchor:{name}"));
        let push = |rep: &mut ChainReport, seq: Option<u64>, kind: &'static str, detail: String| {
            rep.findings.push(Finding {
                chain: chain.clone(),
                seq,
                segment: seg.clone(),
                kind,
                severity: Severity::Tampering,
                detail,
            });
        };
        let c = match cp {
            Ok(c) => c,
            Err(e) => {
                push(rep, None, "anchor_corrupt", e.clone());
                continue;
            }
        };
        rep.anchored += 1;
        let seq = c.size.checked_sub(1);
        if c.chain != chain {
            push(rep, seq, "foreign_checkpoint", format!("anchor checkpoint names chain {:?}", c.chain));
            continue;
        }
        if Some(c.public_key) != data.key {
            push(
                rep,
                seq,
                "wrong_key",
                format!(
                    "anchor checkpoint signed by {}, chain key is {}",
                    hex(&c.public_key),
                    data.key.map(|k| hex(&k)).unwrap_or_default()
                ),
            );
            continue;
        }
        if !c.signature_ok() {
            push(rep, seq, "bad_signature", "anchor checkpoint signature does not verify".into());
            continue;
        }
        if c.size > data.end_seq {
            push(rep, seq, "truncated", format!("the anchor attests {} records but the local chain ends at {}: tail truncated or rolled back to an older copy", c.size, data.end_seq));
            if let Some(v) = rep.verified_through {
                rep.verified_through = Some(v.min(data.end_seq.saturating_sub(1)));
            }
            continue;
        }
        if c.size > 0 && c.size > data.first_seq {
            match data.hashes.get(&(c.size - 1)) {
                Some(h) if *h == c.head => {}
                _ => {
                    push(
                        rep,
                        seq,
                        "anchor_mismatch",
                        format!("record {} differs from the anchored head hash (history rewritten)", c.size - 1),
                    );
                    if let Some(v) = rep.verified_through {
                        rep.verified_through = Some(v.min(c.size.saturating_sub(2)));
                    }
                    continue;
                }
            }
            if !data.cp_hashes.contains(&c.hash()) {
                push(
                    rep,
                    seq,
                    "checkpoint_missing",
                    format!("anchored checkpoint at size {} is missing from the local log", c.size),
                );
            }
        }
    }
}

/// Verify an audit directory (or, if `path` is a file, an export bundle).
pub fn verify_path(path: &Path, anchor: Option<&Path>, pinned: Option<[u8; 32]>) -> Result<Report, String> {
    if path.is_file() {
        return verify_bundle(path, pinned);
    }
    if !path.is_dir() {
        return Err(format!("{} is neither an audit directory nor a bundle file", path.display()));
    }
    let mut report = Report::default();
    let anchors = anchor.map(load_anchor).unwrap_or_default();
    if let Some(a) = anchor {
        if !a.is_dir() {
            return Err(format!("anchor directory {} does not exist", a.display()));
        }
    }
    let chains = chain_dirs(path)?;
    let present: HashSet<String> = chains.iter().map(|c| c.0.clone()).collect();
    for (chain, dir) in chains {
        let units = load_chain_dir(&dir)?;
        let (mut rep, data) = verify_units(&chain, &units, pinned, false);
        if let Some(cps) = anchors.get(&chain) {
            check_anchor(&mut rep, &data, cps);
        }
        report.chains.push(rep);
    }
    for (chain, cps) in &anchors {
        if !present.contains(chain) && !cps.is_empty() {
            report.findings.push(Finding {
                chain: chain.clone(),
                seq: None,
                segment: None,
                kind: "chain_missing",
                severity: Severity::Tampering,
                detail: format!(
                    "the anchor holds {} checkpoints of chain {chain:?} but the audit directory has no such chain",
                    cps.len()
                ),
            });
        }
    }
    Ok(report)
}

/// Verify an export bundle file.
pub fn verify_bundle(path: &Path, pinned: Option<[u8; 32]>) -> Result<Report, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let f = split_frames(&bytes);
    let mut report = Report::default();
    let mut it = f.frames.into_iter().peekable();
    match it.next() {
        Some((_, Ok(Item::Bundle(_)))) => {}
        _ => return Err(format!("{} is not an audit bundle (no bundle header)", path.display())),
    }
    let mut sections: Vec<(String, Vec<FrameAt>)> = Vec::new();
    for (off, item) in it {
        if let Ok(Item::Segment(h)) = &item {
            sections.push((h.chain.clone(), Vec::new()));
        }
        match sections.last_mut() {
            Some(s) => s.1.push((off, item)),
            None => return Err("bundle has frames before its first chain section".into()),
        }
    }
    let nsec = sections.len();
    for (i, (chain, frames)) in sections.into_iter().enumerate() {
        let stop = if i + 1 == nsec { f.stop.clone().map(|(o, w, _)| (o, w, true)) } else { None };
        let unit = Unit { name: "bundle".into(), name_seq: None, frames, stop };
        let (rep, _) = verify_units(&chain, &[unit], pinned, true);
        report.chains.push(rep);
    }
    Ok(report)
}

/// Write an export bundle: for each chain, the records from the first to the last selected seq
/// (others elided) up to the first checkpoint covering the last selected one.
pub fn write_bundle(
    dir: &Path,
    out: &Path,
    selected: &BTreeMap<String, Vec<u64>>,
    header_json: &[u8],
) -> Result<u64, String> {
    let mut buf = Vec::new();
    put_frame(&mut buf, &bundle_header_payload(header_json));
    let mut written = 0u64;
    for (chain, seqs) in selected {
        if seqs.is_empty() {
            continue;
        }
        let want: HashSet<u64> = seqs.iter().copied().collect();
        let lo = *seqs.iter().min().unwrap();
        let hi = *seqs.iter().max().unwrap();
        let units = load_chain_dir(&dir.join(chain))?;
        let mut started = false;
        let mut done = false;
        for u in &units {
            for (_, item) in &u.frames {
                let Ok(item) = item else { continue };
                match item {
                    Item::Record(r) if r.seq >= lo && !done => {
                        if !started {
                            put_frame(&mut buf, &segment_header_payload(chain, r.seq, &r.prev));
                            started = true;
                        }
                        if want.contains(&r.seq) {
                            put_frame(&mut buf, &r.full_payload());
                            written += 1;
                        } else {
                            put_frame(&mut buf, &r.elided_payload());
                        }
                    }
                    Item::Checkpoint(c) if started && !done && c.size > lo => {
                        put_frame(&mut buf, &c.payload());
                        if c.size > hi {
                            done = true;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    fs::write(out, &buf).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(written)
}

/// A record as read for tail/export.
pub struct ReadRecord {
    /// Chain.
    pub chain: String,
    /// Seq.
    pub seq: u64,
    /// Time.
    pub time_ns: u64,
    /// Kind.
    pub kind: String,
    /// Body.
    pub body: Vec<u8>,
}

/// Records of every chain (or one chain) with seq >= from_seq, in chain then seq order.
pub fn read_records(dir: &Path, chain: Option<&str>, from_seq: u64) -> Result<Vec<ReadRecord>, String> {
    let mut out = Vec::new();
    for (c, cdir) in chain_dirs(dir)? {
        if chain.is_some_and(|x| x != c) {
            continue;
        }
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for ent in fs::read_dir(&cdir).map_err(|e| e.to_string())?.flatten() {
            let n = ent.file_name().to_string_lossy().into_owned();
            if let Some(s) = n.strip_suffix(".seg").and_then(|s| s.parse::<u64>().ok()) {
                names.push((s, ent.path()));
            }
        }
        names.sort();
        for (i, (_, p)) in names.iter().enumerate() {
            if let Some((next, _)) = names.get(i + 1) {
                if *next <= from_seq {
                    continue;
                }
            }
            let bytes = fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            for (_, item) in split_frames(&bytes).frames {
                if let Ok(Item::Record(r)) = item {
                    if r.seq >= from_seq {
                        out.push(ReadRecord {
                            chain: c.clone(),
                            seq: r.seq,
                            time_ns: r.time_ns,
                            kind: r.kind,
                            body: r.body.unwrap_or_default(),
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::writer::{Durability, Options, Writer};
    use ed25519_dalek::SigningKey;
    use std::time::Duration;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gw-audit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(dir: &Path, n: u64) -> Writer {
        let opts = Options {
            dir: dir.join("audit"),
            chain: "c0".into(),
            durability: Durability::Strict,
            batch_window: Duration::from_millis(10),
            checkpoint_every: 25,
            checkpoint_interval: Duration::from_secs(10),
            idle: Duration::from_secs(10),
            segment_max_bytes: 4096,
            anchor_dir: Some(dir.join("anchor")),
            retention: None,
        };
        let w = Writer::open(opts, SigningKey::from_bytes(&[9u8; 32])).unwrap();
        for i in 0..n {
            let s = w.append("t", format!("{{\"i\":{i}}}").as_bytes()).unwrap();
            if i % 10 == 9 {
                assert!(w.wait_durable(s, Some(Duration::from_secs(5))).unwrap());
            }
        }
        w
    }

    #[test]
    fn written_chain_verifies_and_edits_are_caught() {
        let d = tmpdir("edit");
        let w = write(&d, 300);
        w.close().unwrap();
        let r = verify_path(&d.join("audit"), Some(&d.join("anchor")), None).unwrap();
        assert_eq!(r.exit_code(), 0, "{}", r.to_json());
        assert_eq!(r.chains[0].verified_through, Some(300));
        let seg = fs::read_dir(d.join("audit/c0"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .min()
            .unwrap();
        let mut b = fs::read(&seg).unwrap();
        let pos = b.windows(6).position(|w| w == b"\"i\":5}").unwrap();
        b[pos + 4] = b'6';
        fs::write(&seg, b).unwrap();
        let r = verify_path(&d.join("audit"), None, None).unwrap();
        assert_eq!(r.exit_code(), 1);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn torn_tail_is_incomplete_and_chains_are_independent() {
        let d = tmpdir("recover");
        let w = write(&d, 40);
        let n = w.appended_count();
        assert!(w.wait_durable(n - 1, Some(Duration::from_secs(5))).unwrap());
        // Simulate a crash: leak the writer so no close checkpoint is written, then add a torn frame.
        std::mem::forget(w);
        let dir = d.join("audit/c0");
        let last = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .max()
            .unwrap();
        let mut b = fs::read(&last).unwrap();
        b.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
        fs::write(&last, b).unwrap();
        assert_eq!(verify_path(&d.join("audit"), None, None).unwrap().exit_code(), 2);
        let _ = fs::remove_file(dir.join("LOCK")); // the leaked writer still holds the flock on its fd
        let opts = Options {
            dir: d.join("audit"),
            chain: "c1".into(),
            durability: Durability::Batch,
            batch_window: Duration::from_millis(10),
            checkpoint_every: 25,
            checkpoint_interval: Duration::from_secs(10),
            idle: Duration::from_secs(10),
            segment_max_bytes: 4096,
            anchor_dir: None,
            retention: None,
        };
        // Another chain in the same directory is independent of the torn one.
        let w2 = Writer::open(opts, SigningKey::from_bytes(&[9u8; 32])).unwrap();
        w2.close().unwrap();
        let r = verify_path(&d.join("audit"), None, None).unwrap();
        assert_eq!(r.chains.len(), 2);
        assert_eq!(r.exit_code(), 2);
        let _ = fs::remove_dir_all(&d);
    }
}
