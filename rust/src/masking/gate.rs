//! Where a Hyperscan database's matches can start, found by a SIMD pass of our own (Teddy's
//! bucketed byte tables), so that Hyperscan scans only the few regions around them.
//!
//! Why: Hyperscan runs the shipped literal-led database at about 5.5 GB/s on prose (its
//! multi-literal matcher; any one literal alone runs at 20-30 GB/s), and every scan also needs
//! an aligned copy of the text (see `with_aligned` in engine.rs). On text that holds no secret,
//! that alone is more than the engine's whole budget. The expressions of that database all
//! begin with fixed bytes or small classes (`-----BEGIN `, `eyJ`, `AKIA`, `[Bb][Ee][Aa]`,
//! `[A-Za-z0-9._%+-]@`...): every match holds one of a few *fingerprints*, up to `WIDTH` byte
//! sets at a known offset from its start, read from the expression's syntax tree. One pass
//! finds the positions whose bytes fit a fingerprint (a superset: fingerprints share the
//! tables' bucket bits), and Hyperscan then scans a region around each, from one byte before
//! the match can start (so `\b` and `\B` see the real byte there) to one byte past the longest
//! match an expression can make. A match of the database lies inside a region, so Hyperscan
//! finds it there; a region may also report ends that the whole text would not (a `\b` or `^`
//! at its edge), which only widens the windows the exact regexes search.
//!
//! Hyperscan still decides what matches; the pass only tells it where to look. When the
//! candidates are many (PII-dense text, or an operator's expression led by a broad class) a
//! region costs more than its share of one whole scan, and the caller scans the whole range.
//!
//! When every expression is a finite union of byte-set sequences (`exact_seqs`; every shipped
//! one is: `-----BEGIN `, `(?i)aws`, `[A-Za-z0-9._%+-]@[A-Za-z0-9-]`...), the gate is *exact*:
//! it checks the sequences where a fitting fingerprint says a match would start, and reports
//! the match ends Hyperscan would (`Found::ends`), with no Hyperscan call and no limit.
//!
//! With AVX-512 VBMI, each position is one 128-byte table lookup (`vpermi2b`), exact for
//! ASCII; with AVX2 only, Teddy's nibble tables, which accept more (a byte is accepted when its
//! low and its high nibble each appear in the set, though maybe not together).

use regex_syntax::hir::{Class, Hir, HirKind};

use super::engine::syntax_config;

/// Byte positions a fingerprint checks.
pub(crate) const WIDTH: usize = 5;
/// Positions read from the start of a match, among which the `WIDTH` rarest are chosen.
const EXTRACT: usize = 16;
/// Fingerprints share these few bits of the tables (one per bucket).
const BUCKETS: usize = 8;
/// More alternatives than this are merged into one (by position, a superset).
const MAX_ALTS: usize = 64;

/// A set of bytes.
type Set = [u64; 4];

fn set_has(s: &Set, b: u8) -> bool {
    s[usize::from(b >> 6)] >> (b & 63) & 1 == 1
}

fn set_add(s: &mut Set, b: u8) {
    s[usize::from(b >> 6)] |= 1 << (b & 63);
}

fn single(b: u8) -> Set {
    let mut s = [0; 4];
    set_add(&mut s, b);
    s
}

/// The bytes a class matches, and whether that is exact: a Unicode class reaching past ASCII
/// also gets every byte of 0x80 and up (its characters' UTF-8 bytes), a superset.
fn class_set(c: &Class) -> (Set, bool) {
    let mut s = [0; 4];
    let mut exact = true;
    match c {
        Class::Bytes(c) => {
            for r in c.ranges() {
                (r.start()..=r.end()).for_each(|b| set_add(&mut s, b));
            }
        }
        Class::Unicode(c) => {
            for r in c.ranges() {
                let (lo, hi) = (u32::from(r.start()), u32::from(r.end()));
                (lo.min(256)..=hi.min(255)).for_each(|b| set_add(&mut s, b as u8));
                if hi >= 128 {
                    (128..=255).for_each(|b| set_add(&mut s, b)); // UTF-8 bytes
                    exact = false;
                }
            }
        }
    }
    (s, exact)
}

fn set_union(a: &Set, b: &Set) -> Set {
    [a[0] | b[0], a[1] | b[1], a[2] | b[2], a[3] | b[3]]
}

/// A rough share of each byte in the text the gateway sees (English prose, JSON, URLs): only
/// to choose fingerprints and buckets that ordinary text rarely fits.
fn freq(b: u8) -> f64 {
    const LETTERS: &[u8; 26] = b"etaoinshrdlcumwfgypbvkjxqz";
    match b {
        b' ' => 0.12,
        b'a'..=b'z' => {
            let rank = LETTERS.iter().position(|&l| l == b).unwrap_or(25);
            0.09 / (1.0 + rank as f64 * 0.25)
        }
        b'A'..=b'Z' => 0.004,
        b'0'..=b'9' => 0.006,
        b'.' | b',' | b'"' | b'\n' | b'/' => 0.01,
        // runs of these draw Markdown rules and tables
        b'-' | b'=' | b'|' | b'#' | b'*' => 0.03,
        b':' | b'_' | b'\'' | b'(' | b')' => 0.004,
        128.. => 0.0005,
        _ => 0.001,
    }
}

fn set_freq(s: &Set) -> f64 {
    (0..=255u8).filter(|&b| set_has(s, b)).map(freq).sum::<f64>().min(1.0)
}

/// How a match of a piece of a pattern begins: `seq[k]` holds its byte `k`. `open`: what
/// follows `seq` is not known (a repeat may go on), so nothing after it can be added.
#[derive(Clone, Debug)]
struct Alt {
    seq: Vec<Set>,
    open: bool,
}

impl Alt {
    fn done(&self) -> bool {
        self.open || self.seq.len() >= EXTRACT
    }
}

/// How every match of `h` begins (one of the alternatives).
fn alts(h: &Hir) -> Vec<Alt> {
    let closed = |seq: Vec<Set>| vec![Alt { seq, open: false }];
    let out = match h.kind() {
        HirKind::Empty | HirKind::Look(_) => closed(Vec::new()),
        HirKind::Literal(lit) => closed(lit.0.iter().take(EXTRACT).map(|&b| single(b)).collect()),
        HirKind::Class(c) => closed(vec![class_set(c).0]),
        HirKind::Capture(c) => alts(&c.sub),
        HirKind::Repetition(r) => {
            let sub = alts(&r.sub);
            // once: the piece itself; more: it may go on (open); none: it may be empty
            let sub: Vec<Alt> =
                if r.max == Some(1) { sub } else { sub.into_iter().map(|a| Alt { open: true, ..a }).collect() };
            if r.min == 0 {
                let mut v = closed(Vec::new());
                v.extend(sub);
                v
            } else {
                sub
            }
        }
        HirKind::Alternation(v) => v.iter().flat_map(alts).collect(),
        HirKind::Concat(v) => {
            let mut cur = closed(Vec::new());
            for sub in v {
                if cur.iter().all(Alt::done) {
                    break;
                }
                let next = alts(sub);
                let mut grown = Vec::new();
                for a in cur {
                    if a.done() {
                        grown.push(a);
                        continue;
                    }
                    for b in &next {
                        let mut seq = a.seq.clone();
                        seq.extend(b.seq.iter().take(EXTRACT - a.seq.len()));
                        grown.push(Alt { seq, open: b.open });
                    }
                }
                cur = limit(grown);
            }
            cur
        }
    };
    limit(out)
}

/// At most `MAX_ALTS` alternatives: more are merged into one, position by position, as long as
/// the shortest (a superset of each).
fn limit(v: Vec<Alt>) -> Vec<Alt> {
    if v.len() <= MAX_ALTS {
        return v;
    }
    let len = v.iter().map(|a| a.seq.len()).min().unwrap_or(0);
    let seq = (0..len).map(|k| v.iter().fold([0; 4], |s, a| set_union(&s, &a.seq[k]))).collect();
    vec![Alt { seq, open: true }]
}

/// A fingerprint: bytes `offset..offset + sets.len()` of a match are in `sets`, and the match
/// is at most `longest` bytes long.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    offset: usize,
    sets: Vec<Set>,
    longest: usize,
    /// The expression (its index in the gate's list).
    expr: usize,
}

impl Fingerprint {
    /// The `WIDTH` positions of `seq` that ordinary text fits least. Web URLs are everywhere in
    /// agent traffic and a byte share cannot tell: a window holding 3 bytes of `https://` in a
    /// row is the last choice (`ps://` would make every web URL a candidate).
    fn choose(seq: Vec<Set>) -> Fingerprint {
        if seq.len() <= WIDTH {
            return Fingerprint { offset: 0, sets: seq, longest: 0, expr: 0 };
        }
        let url = |w: &[Set]| {
            w.windows(3).any(|x| b"https://".windows(3).any(|u| x.iter().zip(u).all(|(s, &b)| *s == single(b))))
        };
        let score = |w: &[Set]| w.iter().map(set_freq).product::<f64>() * if url(w) { 1e30 } else { 1.0 };
        let offset = (0..=seq.len() - WIDTH)
            .min_by(|&a, &b| score(&seq[a..a + WIDTH]).total_cmp(&score(&seq[b..b + WIDTH])))
            .unwrap_or(0);
        Fingerprint { offset, sets: seq[offset..offset + WIDTH].to_vec(), longest: 0, expr: 0 }
    }
}

/// The fingerprints of `pattern`, expression `expr` of its gate (each with the longest match
/// it can make), and the byte sequences its matches are when `exact_seqs` knows them all; None
/// when a match may begin with any byte (or the pattern cannot be parsed or is unbounded).
#[allow(clippy::type_complexity)]
fn fingerprints(pattern: &str, expr: usize) -> Option<(Vec<Fingerprint>, Option<Vec<Vec<Set>>>)> {
    let hir = regex_automata::util::syntax::parse_with(pattern, &syntax_config()).ok()?;
    let longest = hir.properties().maximum_len()?;
    let v = alts(&hir);
    if v.iter().any(|a| a.seq.is_empty()) {
        return None;
    }
    let mut fps: Vec<Fingerprint> =
        v.into_iter().map(|a| Fingerprint { longest, expr, ..Fingerprint::choose(a.seq) }).collect();
    fps.dedup();
    Some((fps, exact_seqs(&hir).filter(|v| v.iter().all(|q| !q.is_empty()))))
}

/// Most sequences `exact_seqs` lists for one expression (once merged: `merge_seqs`; eight
/// times as many before), and their longest.
const EXACT_SEQS: usize = 64;
const EXACT_LEN: usize = 64;

/// Every match of `h`, as byte-set sequences (a match is a byte string that one of them
/// accepts, position by position), when `h` is such a finite union: literals, classes,
/// alternations, concatenations and repeats with a bound of at most 8, no look-around, at
/// most `EXACT_SEQS` sequences of at most `EXACT_LEN` bytes. Every shipped prefilter is one
/// (`-----BEGIN `, `(?i)aws`, `[A-Za-z0-9._%+-]@[A-Za-z0-9-]`, `(?:sk|rk|pk)_(?:live|test)_`).
fn exact_seqs(h: &Hir) -> Option<Vec<Vec<Set>>> {
    let cross = |a: Vec<Vec<Set>>, b: &[Vec<Set>]| -> Option<Vec<Vec<Set>>> {
        if a.len().saturating_mul(b.len()) > 8 * EXACT_SEQS {
            return None;
        }
        Some(a.iter().flat_map(|x| b.iter().map(move |y| [x.as_slice(), y].concat())).collect())
    };
    let out = match h.kind() {
        HirKind::Empty => vec![Vec::new()],
        HirKind::Look(_) => return None,
        HirKind::Literal(lit) => vec![lit.0.iter().map(|&b| single(b)).collect()],
        HirKind::Class(c) => match class_set(c) {
            (s, true) => vec![vec![s]],
            _ => return None, // several bytes per character
        },
        HirKind::Capture(c) => exact_seqs(&c.sub)?,
        HirKind::Repetition(r) => {
            let max = r.max.filter(|&m| m <= 8)?;
            let sub = exact_seqs(&r.sub)?;
            let mut power = vec![Vec::new()];
            let mut out = Vec::new();
            for k in 0..=max {
                if k >= r.min {
                    out.extend(power.iter().cloned());
                }
                if k < max {
                    power = cross(power, &sub)?;
                }
            }
            out
        }
        HirKind::Alternation(v) => {
            let mut out = Vec::new();
            for sub in v {
                out.extend(exact_seqs(sub)?);
                if out.len() > 8 * EXACT_SEQS {
                    return None;
                }
            }
            out
        }
        HirKind::Concat(v) => {
            let mut out = vec![Vec::new()];
            for sub in v {
                out = cross(out, &exact_seqs(sub)?)?;
            }
            out
        }
    };
    let out = merge_seqs(out);
    (out.len() <= EXACT_SEQS && out.iter().all(|q| q.len() <= EXACT_LEN)).then_some(out)
}

/// `seqs` with every two sequences that differ at one position only merged into one (the
/// union of their sets there), until no two do: the same strings in fewer sequences (a
/// caseless prefilter's literals, which `prefilter_exprs` lists one by one, become one).
fn merge_seqs(mut seqs: Vec<Vec<Set>>) -> Vec<Vec<Set>> {
    let mut i = 0;
    while i < seqs.len() {
        let mut merged = false;
        let mut j = i + 1;
        while j < seqs.len() {
            let (a, b) = (&seqs[i], &seqs[j]);
            let differ: Vec<usize> =
                if a.len() == b.len() { (0..a.len()).filter(|&k| a[k] != b[k]).collect() } else { vec![0, 0] };
            match differ.as_slice() {
                [] => {
                    seqs.swap_remove(j);
                }
                &[k] => {
                    let u = set_union(&a[k], &b[k]);
                    seqs[i][k] = u;
                    seqs.swap_remove(j);
                    merged = true;
                }
                _ => j += 1,
            }
        }
        // a merged sequence may now differ from an earlier one at one position only
        i = if merged { 0 } else { i + 1 };
    }
    seqs
}

/// Bucket bits per position: position `k` of a fingerprint in bucket `b` accepts byte `x`
/// when bit `b` is set in `exact[k][x & 127]` (VBMI), or in both `lo[k][x & 15]` and
/// `hi[k][x >> 4]` (nibbles).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tables {
    exact: [[u8; 128]; WIDTH],
    lo: [[u8; 16]; WIDTH],
    hi: [[u8; 16]; WIDTH],
}

impl Default for Tables {
    fn default() -> Tables {
        Tables { exact: [[0; 128]; WIDTH], lo: [[0; 16]; WIDTH], hi: [[0; 16]; WIDTH] }
    }
}

impl Tables {
    fn add(&mut self, bucket: usize, fp: &[Set]) {
        let bit = 1u8 << bucket;
        for k in 0..WIDTH {
            let any = [u64::MAX; 4]; // a shorter fingerprint accepts any byte here
            let s = fp.get(k).unwrap_or(&any);
            for x in 0..=255u8 {
                if set_has(s, x) {
                    self.exact[k][usize::from(x & 127)] |= bit;
                    self.lo[k][usize::from(x & 15)] |= bit;
                    self.hi[k][usize::from(x >> 4)] |= bit;
                }
            }
        }
    }

    /// How many positions from the first accept no byte of 0x80 and up in the nibble tables:
    /// there the low nibble is looked up with the byte itself (`vpshufb` gives 0 for a byte
    /// with its top bit set), not with the byte and 0x0f. In the shipped tables, the first 3
    /// (the fourth and fifth accept any byte for fingerprints shorter than 4 or 5): prose
    /// masked 1.022x faster (`benchmarks/masking_ab.py`, 5 rounds, AMD EPYC with AVX2 only).
    fn ascii_prefix(&self) -> usize {
        (0..WIDTH).take_while(|&k| self.hi[k][8..].iter().all(|&b| b == 0)).count()
    }

    /// The share of positions of ordinary text (`freq`) that bucket `b` accepts (exact tables).
    fn odds(&self, bucket: usize) -> f64 {
        self.odds_at(Level::Vbmi, bucket)
    }

    /// The share of positions of ordinary text (`freq`) that bucket `b` accepts at `level`.
    fn odds_at(&self, level: Level, bucket: usize) -> f64 {
        let bit = 1u8 << bucket;
        let accepts = |k: usize, x: u8| match level {
            Level::Vbmi => self.exact[k][usize::from(x & 127)] & bit != 0,
            Level::Avx2 => self.lo[k][usize::from(x & 15)] & self.hi[k][usize::from(x >> 4)] & bit != 0,
        };
        (0..WIDTH).map(|k| (0..=255u8).filter(|&x| accepts(k, x)).map(freq).sum::<f64>().min(1.0)).product()
    }

    /// Bucket bits that accept a fingerprint at `text[p]` (bytes past the end read as 0).
    #[cfg(test)]
    fn at(&self, level: Level, text: &[u8], p: usize) -> u8 {
        (0..WIDTH).fold(0xff, |bits, k| {
            let x = text.get(p + k).copied().unwrap_or(0);
            bits & match level {
                Level::Vbmi => self.exact[k][usize::from(x & 127)],
                Level::Avx2 => self.lo[k][usize::from(x & 15)] & self.hi[k][usize::from(x >> 4)],
            }
        })
    }
}

/// The vector instructions the pass uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Nibble tables, 32 bytes at a time.
    Avx2,
    /// Exact tables, 64 bytes at a time (AVX-512BW and VBMI).
    Vbmi,
}

impl Level {
    /// The most positions of ordinary text (`freq`) a gate may fit at this level. The pass is
    /// cheap, and when it finds too many candidates the caller scans whole: a gate that fits
    /// once in a hundred bytes costs more than it saves. The shipped catalogue's fits about once
    /// in 570 with VBMI (mostly the email's `@`) and once in 152 with the nibble tables, which
    /// accept more (this repository's Markdown and Python: once in 300 bytes, against 1,600).
    /// A candidate costs an 8-byte test per fingerprint of its buckets (`Word`) unless it fits
    /// one, so the nibble tables' extra candidates are cheap. Until the word test, an AVX2 host
    /// gated only sets that fit once in 4 KiB and scanned the shipped one whole; gating it
    /// there, with the digit shapes in the same pass (`next_with_digits`), masked prose 2.1x
    /// faster on an AMD EPYC without AVX-512 (2.6 to 5.5 GB/s, `benchmarks/masking_ab.py`).
    fn max_odds(self) -> f64 {
        1.0 / 128.0
    }

    fn detect() -> Option<Level> {
        #[cfg(target_arch = "x86_64")]
        {
            // `Simd::detect`: what the CPU has, capped by `GRAPHWARDEN_SIMD`
            let simd = super::engine::Simd::detect();
            if simd == super::engine::Simd::Avx512 && std::arch::is_x86_feature_detected!("avx512vbmi") {
                return Some(Level::Vbmi);
            }
            if simd >= super::engine::Simd::Avx2 {
                return Some(Level::Avx2);
            }
        }
        None
    }
}

/// The filter of one database.
#[derive(Debug)]
pub(crate) struct Gate {
    tables: Tables,
    /// Each bucket's fingerprints, to check a candidate against before Hyperscan is called, and
    /// to tell where its matches can be.
    buckets: Vec<Vec<Fingerprint>>,
    /// Per bucket and fingerprint, a test of 8 bytes at once (`Word`).
    words: Vec<Vec<Word>>,
    level: Level,
    /// How many positions from the first accept no byte of 0x80 and up (`Tables::ascii_prefix`).
    ascii: usize,
    /// Per expression, every byte sequence its matches are (`exact_seqs`), when every expression
    /// has them: the gate then tells the matches themselves, and Hyperscan is not called.
    exact: Option<Vec<Vec<Vec<Set>>>>,
}

/// What the gate found in a range: regions for Hyperscan to scan, or, when the gate is exact
/// (`Gate::exact`), the matches as (expression, end), in the order of their candidates.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub(crate) regions: Vec<(usize, usize)>,
    pub(crate) ends: Vec<(u32, usize)>,
}

impl Found {
    pub(crate) fn clear(&mut self) {
        self.regions.clear();
        self.ends.clear();
    }
}

/// What the bytes at a candidate must be for a fingerprint, read as one little-endian word:
/// `word & mask == value` holds for every byte sequence the fingerprint accepts (each byte
/// position keeps the bits its set's bytes all share). `exact`: nothing else passes (each
/// set is all the bytes with those bits: `b`, `[Bb]`, `[0-7]`), so the sets need no reading.
#[derive(Clone, Copy, Debug)]
struct Word {
    mask: u64,
    value: u64,
    exact: bool,
}

impl Word {
    fn of(fp: &Fingerprint) -> Word {
        let mut w = Word { mask: 0, value: 0, exact: true };
        for (k, set) in fp.sets.iter().enumerate().take(8) {
            let members: Vec<u8> = (0..=255u8).filter(|&b| set_has(set, b)).collect();
            let Some(&first) = members.first() else { continue };
            let differ = members.iter().fold(0u8, |acc, &b| acc | (b ^ first));
            let m = !differ;
            w.mask |= u64::from(m) << (8 * k);
            w.value |= u64::from(first & m) << (8 * k);
            w.exact &= members.len() == 1 << differ.count_ones();
        }
        w.exact &= fp.sets.len() <= 8;
        w
    }
}

/// The pass stopped: more regions than the caller allowed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooMany;

impl Gate {
    /// The filter for a database of `exprs`; None when one of them may begin with any byte, is
    /// unbounded or cannot be parsed here, when the fingerprints together would fit ordinary
    /// text too often to pay, or when the CPU has no AVX2.
    pub(crate) fn new(exprs: &[&str]) -> Option<Gate> {
        let level = Level::detect()?;
        Gate::build(exprs, level, level.max_odds())
    }

    /// `new`, with the tables allowed to fit ordinary text at up to `max_odds` of the positions:
    /// for a check over a few hundred bytes whose alternative is a Hyperscan call (about a
    /// thousand instructions), where even one candidate in 16 bytes costs less.
    pub(crate) fn with_odds(exprs: &[&str], max_odds: f64) -> Option<Gate> {
        Gate::build(exprs, Level::detect()?, max_odds)
    }

    /// The gate at `level`, unless its tables fit ordinary text (`freq`) at more than `max_odds`
    /// of the positions.
    fn build(exprs: &[&str], level: Level, max_odds: f64) -> Option<Gate> {
        let mut fps = Vec::new();
        let mut exact = Some(Vec::new());
        for (i, e) in exprs.iter().enumerate() {
            let (f, seqs) = fingerprints(e, i)?;
            fps.extend(f);
            exact = exact.zip(seqs).map(|(mut all, seqs)| {
                all.push(seqs);
                all
            });
        }
        if fps.is_empty() {
            return None;
        }
        // Commonest first: each goes to the bucket it widens least (an empty one while any is
        // left), so the ones ordinary text fits most get a bucket of their own and rare ones
        // share.
        let alone = |f: &Fingerprint| {
            let mut t = Tables::default();
            t.add(0, &f.sets);
            t.odds(0)
        };
        fps.sort_by(|a, b| alone(b).total_cmp(&alone(a)));
        let mut buckets: Vec<(Tables, Vec<Fingerprint>)> = Vec::new();
        for fp in fps {
            if buckets.len() < BUCKETS {
                let mut t = Tables::default();
                t.add(0, &fp.sets);
                buckets.push((t, vec![fp]));
                continue;
            }
            let (best, _) = buckets
                .iter()
                .enumerate()
                .map(|(i, (t, _))| {
                    let mut wider = t.clone();
                    wider.add(0, &fp.sets);
                    (i, wider.odds(0) - t.odds(0))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("buckets");
            buckets[best].0.add(0, &fp.sets);
            buckets[best].1.push(fp);
        }
        let mut tables = Tables::default();
        for (b, (_, fps)) in buckets.iter().enumerate() {
            fps.iter().for_each(|fp| tables.add(b, &fp.sets));
        }
        if (0..BUCKETS).map(|b| tables.odds_at(level, b)).sum::<f64>() > max_odds {
            return None;
        }
        let buckets: Vec<Vec<Fingerprint>> = buckets.into_iter().map(|(_, fps)| fps).collect();
        let words = buckets.iter().map(|fps| fps.iter().map(Word::of).collect()).collect();
        let ascii = tables.ascii_prefix();
        Some(Gate { tables, buckets, words, level, ascii, exact })
    }

    /// What the gate finds for the candidates in `[from, to)` of `text`, added to `out`: the
    /// matches themselves when it is exact (`exact`), else regions `[a, b)` for Hyperscan to
    /// scan, sorted and apart, from a byte before a match can start to a byte past where it
    /// can end. Err when the regions would be more than `max` (matches are not limited).
    pub(crate) fn regions(
        &self,
        text: &[u8],
        from: usize,
        to: usize,
        max: usize,
        out: &mut Found,
    ) -> Result<(), TooMany> {
        self.candidates(text, from, to, &mut |c, m| self.add_regions(text, c, m, max, out))
    }

    /// Whether the gate tells the matches themselves (`Found::ends`) rather than regions: every
    /// expression is a finite union of byte-set sequences (`exact_seqs`).
    #[cfg(test)]
    pub(crate) fn exact(&self) -> bool {
        self.exact.is_some()
    }

    /// Adds what the candidates `m` of the chunk at `c` of `text` (bit `i` for `c + i`) give to
    /// `out` (see `regions`), for those that fit one of their buckets' fingerprints exactly: the
    /// tables accept the union of a bucket's fingerprints, position by position (`LangGraph`
    /// fitted one that way), and a Hyperscan call costs far more than this check.
    ///
    /// When the gate is exact, a fitting fingerprint's match would start `offset` bytes before
    /// the candidate, and each sequence of its expression is checked there: every match of the
    /// expression is one of them, and its start is a candidate of one of its fingerprints, so
    /// the ends found are the ends Hyperscan reports (a test compares them on generated text).
    pub(crate) fn add_regions(
        &self,
        text: &[u8],
        c: usize,
        mut m: u64,
        max: usize,
        out: &mut Found,
    ) -> Result<(), TooMany> {
        let n = text.len();
        if let Some(exact) = &self.exact {
            while m != 0 {
                let p = c + m.trailing_zeros() as usize;
                m &= m - 1;
                self.each_fit(text, p, |fp| {
                    let Some(s) = p.checked_sub(fp.offset) else { return };
                    for q in &exact[fp.expr] {
                        let Some(bytes) = text.get(s..s + q.len()) else { continue };
                        if q.iter().zip(bytes).all(|(set, &x)| set_has(set, x)) {
                            let end = (fp.expr as u32, s + q.len());
                            if out.ends.last() != Some(&end) {
                                out.ends.push(end);
                            }
                        }
                    }
                });
            }
            return Ok(());
        }
        let regions = &mut out.regions;
        while m != 0 {
            let p = c + m.trailing_zeros() as usize;
            m &= m - 1;
            let Some((start, end)) = self.fits(text, p) else {
                continue;
            };
            // with a byte of context on each side
            let (a, b) = (start.saturating_sub(1), n.min(end + 1));
            if let Some(last) = regions.last_mut().filter(|last| a <= last.1) {
                last.1 = last.1.max(b);
            } else if regions.len() >= max {
                return Err(TooMany);
            } else {
                regions.push((a, b));
            }
        }
        Ok(())
    }

    /// Where the matches whose fingerprints the bytes at `p` fit can be (all of a fingerprint's
    /// bytes in `text`: a match holds them): from the earliest start to the latest end those
    /// fingerprints allow; None when none fits.
    fn fits(&self, text: &[u8], p: usize) -> Option<(usize, usize)> {
        let mut span: Option<(usize, usize)> = None;
        self.each_fit(text, p, |fp| {
            let start = p.saturating_sub(fp.offset);
            let end = start + fp.longest;
            span = Some(span.map_or((start, end), |(a, z)| (a.min(start), z.max(end))));
        });
        span
    }

    /// Calls `f` with each fingerprint that the bytes at `p` fit.
    #[inline(always)]
    fn each_fit(&self, text: &[u8], p: usize, mut f: impl FnMut(&Fingerprint)) {
        // the buckets whose tables accept it (bytes past the end read as 0, as in the pass)
        let mut bits = 0xffu8;
        for (k, table) in self.tables.exact.iter().enumerate() {
            bits &= table[usize::from(text.get(p + k).copied().unwrap_or(0) & 127)];
        }
        // Plain loops: an iterator chain here compiled to a call per fingerprint, its fold
        // state passed through the stack (a store-forwarding stall each time: this function was
        // a tenth of the time of text with one AWS key id per KiB).
        // the 8 bytes at `p`, when the text holds them (else each set is read)
        let word = text.get(p..p + 8).map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let (Some(fps), Some(words)) = (self.buckets.get(b), self.words.get(b)) else { continue };
            for (fp, w) in fps.iter().zip(words) {
                let fits = match word {
                    Some(x) if x & w.mask != w.value => false,
                    Some(_) if w.exact => true,
                    _ => {
                        let mut all = true;
                        for (k, set) in fp.sets.iter().enumerate() {
                            all &= text.get(p + k).is_some_and(|&x| set_has(set, x));
                        }
                        all
                    }
                };
                if fits {
                    f(fp);
                }
            }
        }
    }

    /// The level's name: `avx512vbmi` or `avx2`.
    pub(crate) fn level_name(&self) -> &'static str {
        match self.level {
            Level::Vbmi => "avx512vbmi",
            Level::Avx2 => "avx2",
        }
    }

    /// Calls `f(c, mask)` for each 64-byte chunk at `c` in `[from, to)` that holds candidates:
    /// bit `i` of `mask` for `c + i` (never at or past `to`).
    fn candidates<E>(
        &self,
        text: &[u8],
        from: usize,
        to: usize,
        f: &mut impl FnMut(usize, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let to = to.min(text.len());
        // chunks whose 64 + WIDTH bytes are all in `text` are read in place
        let inner = text.len().saturating_sub(64 + WIDTH - 1);
        let mut c = from;
        while c < to.min(inner) {
            let chunks = (to.min(inner) - c).div_ceil(64);
            // SAFETY: `chunks` chunks from `c` end within `text` (`inner`).
            let (at, m) = unsafe { self.next(text.as_ptr().add(c), chunks) };
            if at == chunks {
                c += 64 * chunks;
                break;
            }
            let at = c + 64 * at;
            f(at, self.keep(m, at, to))?;
            c = at + 64;
        }
        // the last chunks, copied into zeros
        let mut pad = [0u8; 64 + WIDTH];
        while c < to {
            let have = (text.len() - c).min(pad.len());
            pad[..have].copy_from_slice(&text[c..c + have]);
            pad[have..].fill(0);
            // SAFETY: `pad` holds one chunk.
            let (_, m) = unsafe { self.next(pad.as_ptr(), 1) };
            let m = self.keep(m, c, to);
            if m != 0 {
                f(c, m)?;
            }
            c += 64;
        }
        Ok(())
    }

    /// `m` without the bits at or past `to` (for the chunk at `c`).
    fn keep(&self, m: u64, c: usize, to: usize) -> u64 {
        if to - c < 64 {
            m & ((1u64 << (to - c)) - 1)
        } else {
            m
        }
    }

    /// The first of `chunks` chunks from `p` that holds a candidate, as (index, mask), or
    /// (`chunks`, 0). A call of its own with no call inside, so the tables stay in registers.
    ///
    /// # Safety
    /// `64 * chunks + WIDTH - 1` bytes must be readable at `p`.
    unsafe fn next(&self, p: *const u8, chunks: usize) -> (usize, u64) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Gate::new` chose a level the CPU has; the caller vouches for `p`.
        unsafe {
            match self.level {
                Level::Vbmi => self.next_vbmi(p, chunks),
                Level::Avx2 => match self.ascii {
                    0 => self.next_avx2::<0>(p, chunks),
                    1 => self.next_avx2::<1>(p, chunks),
                    2 => self.next_avx2::<2>(p, chunks),
                    3 => self.next_avx2::<3>(p, chunks),
                    4 => self.next_avx2::<4>(p, chunks),
                    _ => self.next_avx2::<WIDTH>(p, chunks),
                },
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (p, chunks);
            unreachable!("no gate without x86_64 SIMD");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn next_vbmi(&self, p: *const u8, chunks: usize) -> (usize, u64) {
        use std::arch::x86_64::*;
        let half = |t: &[u8; 128], h: usize| _mm512_loadu_si512(t[64 * h..].as_ptr() as *const __m512i);
        let tab: [(__m512i, __m512i); WIDTH] =
            std::array::from_fn(|k| (half(&self.tables.exact[k], 0), half(&self.tables.exact[k], 1)));
        for i in 0..chunks {
            let q = p.add(64 * i);
            let mut acc = _mm512_set1_epi8(-1);
            for (k, &(t0, t1)) in tab.iter().enumerate() {
                let v = _mm512_loadu_si512(q.add(k) as *const __m512i);
                // bits 0-5 pick the byte, bit 6 the table: `x & 127`
                acc = _mm512_and_si512(acc, _mm512_permutex2var_epi8(t0, v, t1));
            }
            let m = _mm512_test_epi8_mask(acc, acc);
            if m != 0 {
                return (i, m);
            }
        }
        (chunks, 0)
    }

    /// `next` with, in the same pass over each chunk, `digits(digit mask, mask of '+' and
    /// capitals)` (engine.rs: the digit shapes' test, called once per chunk read, in order, so
    /// it may keep state: `Visits` answers for the chunk before): the first chunk where either
    /// finds something, as (index, candidates, the test's answer), or (`chunks`, 0, false). One
    /// read of the text for both, and one loop.
    ///
    /// # Safety
    /// `64 * chunks + WIDTH - 1` bytes must be readable at `p`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) unsafe fn next_with_digits(
        &self,
        p: *const u8,
        chunks: usize,
        digits: impl FnMut(u64, u64) -> bool,
    ) -> (usize, u64, bool) {
        // SAFETY: `Gate::new` chose a level the CPU has; the caller vouches for `p`.
        unsafe {
            match self.level {
                Level::Vbmi => self.next_with_digits_vbmi(p, chunks, digits),
                Level::Avx2 => match self.ascii {
                    0 => self.next_with_digits_avx2::<0>(p, chunks, digits),
                    1 => self.next_with_digits_avx2::<1>(p, chunks, digits),
                    2 => self.next_with_digits_avx2::<2>(p, chunks, digits),
                    3 => self.next_with_digits_avx2::<3>(p, chunks, digits),
                    4 => self.next_with_digits_avx2::<4>(p, chunks, digits),
                    _ => self.next_with_digits_avx2::<WIDTH>(p, chunks, digits),
                },
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn next_with_digits_vbmi(
        &self,
        p: *const u8,
        chunks: usize,
        mut digits: impl FnMut(u64, u64) -> bool,
    ) -> (usize, u64, bool) {
        use std::arch::x86_64::*;
        let half = |t: &[u8; 128], h: usize| _mm512_loadu_si512(t[64 * h..].as_ptr() as *const __m512i);
        let tab: [(__m512i, __m512i); WIDTH] =
            std::array::from_fn(|k| (half(&self.tables.exact[k], 0), half(&self.tables.exact[k], 1)));
        let set = |b: u8| _mm512_set1_epi8(b as i8);
        let (zero, ten, a, twenty_six, plus) = (set(b'0'), set(10), set(b'A'), set(26), set(b'+'));
        for i in 0..chunks {
            let q = p.add(64 * i);
            let v = _mm512_loadu_si512(q as *const __m512i);
            let digit = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, zero), ten);
            let upper = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, a), twenty_six);
            let visit = digits(digit, upper | _mm512_cmpeq_epi8_mask(v, plus));
            let mut acc = _mm512_permutex2var_epi8(tab[0].0, v, tab[0].1);
            for (k, &(t0, t1)) in tab.iter().enumerate().skip(1) {
                let v = _mm512_loadu_si512(q.add(k) as *const __m512i);
                acc = _mm512_and_si512(acc, _mm512_permutex2var_epi8(t0, v, t1));
            }
            let m = _mm512_test_epi8_mask(acc, acc);
            if m != 0 || visit {
                return (i, m, visit);
            }
        }
        (chunks, 0, false)
    }

    /// `next_with_digits` with AVX2: the nibble tables (at the first `ASCII` positions, the low
    /// nibble looked up with the byte itself: `ascii_prefix`), and the digit, '+' and capital
    /// masks of each half of a chunk from the nibbles of the load at position 0 (`CLASS_LO`,
    /// `CLASS_HI`).
    ///
    /// The high nibbles are worked out once per byte, `AHEAD` chunks before they are read
    /// (`HighNibbles`), rather than once per byte and position (a shift and an and for each of
    /// the `WIDTH` overlapping loads). Prose masked 3-4% faster with this on an AMD EPYC (Zen 2,
    /// `benchmarks/masking_ab.py`, two runs of 3 and 4 rounds); the same change in `next_avx2`
    /// (the gate's pass when the digit shapes have one of their own) made digit-heavy text 4%
    /// faster but PII-dense text, base64 and 1 KiB bodies 1-4% slower, where the pass stops
    /// every few chunks and each call pays for the chunks read ahead, so that one is unchanged.
    /// With the nibbles read back a chunk after they were stored (`AHEAD` 1) or three, prose
    /// gained 2%.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn next_with_digits_avx2<const ASCII: usize>(
        &self,
        p: *const u8,
        chunks: usize,
        mut digits: impl FnMut(u64, u64) -> bool,
    ) -> (usize, u64, bool) {
        use std::arch::x86_64::*;
        let (lo, hi) = self.nibble_tables();
        let table = |t: &[u8; 16]| _mm256_broadcastsi128_si256(_mm_loadu_si128(t.as_ptr() as *const __m128i));
        let (class_lo, class_hi) = (table(&CLASS_LO), table(&CLASS_HI));
        let (nibble, zero) = (_mm256_set1_epi8(0x0f), _mm256_setzero_si256());
        // (not zeroed: this function is entered again after each chunk the digit shapes visit,
        // and a slot's bytes are read only after `fill` has written them)
        let mut ring = std::mem::MaybeUninit::<HighNibbles>::uninit();
        let base = (&raw mut (*ring.as_mut_ptr()).0).cast::<u8>();
        // chunk j's bytes and the `WIDTH - 1` after it (68 of the slot's 96), in three loads
        let fill = |j: usize| {
            let q = p.add(64 * j);
            let slot = base.add(96 * (j % RING));
            for off in [0usize, 32, 36] {
                let v = _mm256_loadu_si256(q.add(off) as *const __m256i);
                _mm256_storeu_si256(slot.add(off) as *mut __m256i, _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble));
            }
        };
        for j in 0..chunks.min(AHEAD) {
            fill(j);
        }
        for i in 0..chunks {
            if i + AHEAD < chunks {
                fill(i + AHEAD);
            }
            let q = p.add(64 * i);
            let h = base.add(96 * (i % RING)).cast_const();
            let (mut d, mut pu) = (0u64, 0u64);
            let mut acc = [zero; 2];
            for (half, acc) in acc.iter_mut().enumerate() {
                let q = q.add(32 * half);
                let h = h.add(32 * half);
                let mut a = _mm256_set1_epi8(-1);
                for k in 0..WIDTH {
                    let v = _mm256_loadu_si256(q.add(k) as *const __m256i);
                    let ln = if k < ASCII { v } else { _mm256_and_si256(v, nibble) };
                    let hn = _mm256_loadu_si256(h.add(k) as *const __m256i);
                    if k == 0 {
                        let class =
                            _mm256_and_si256(_mm256_shuffle_epi8(class_lo, ln), _mm256_shuffle_epi8(class_hi, hn));
                        d |= u64::from(_mm256_movemask_epi8(class) as u32) << (32 * half);
                        let plus_upper = _mm256_cmpgt_epi8(class, zero);
                        pu |= u64::from(_mm256_movemask_epi8(plus_upper) as u32) << (32 * half);
                    }
                    a = _mm256_and_si256(
                        a,
                        _mm256_and_si256(_mm256_shuffle_epi8(lo[k], ln), _mm256_shuffle_epi8(hi[k], hn)),
                    );
                }
                *acc = a;
            }
            let visit = digits(d, pu);
            let any = any_opaque(_mm256_or_si256(acc[0], acc[1]));
            if any || visit {
                let m = u64::from(nonzero_bytes(acc[0])) | u64::from(nonzero_bytes(acc[1])) << 32;
                return (i, m, visit);
            }
        }
        (chunks, 0, false)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn next_avx2<const ASCII: usize>(&self, p: *const u8, chunks: usize) -> (usize, u64) {
        use std::arch::x86_64::*;
        let (lo, hi) = self.nibble_tables();
        for i in 0..chunks {
            let q = p.add(64 * i);
            let (a, b) = (nibble_acc::<ASCII>(&lo, &hi, q), nibble_acc::<ASCII>(&lo, &hi, q.add(32)));
            let any = _mm256_or_si256(a, b);
            if _mm256_testz_si256(any, any) == 0 {
                return (i, u64::from(nonzero_bytes(a)) | u64::from(nonzero_bytes(b)) << 32);
            }
        }
        (chunks, 0)
    }

    /// The nibble tables of each position, in registers (both halves of each the same).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    fn nibble_tables(&self) -> ([std::arch::x86_64::__m256i; WIDTH], [std::arch::x86_64::__m256i; WIDTH]) {
        use std::arch::x86_64::*;
        // SAFETY: each table is 16 readable bytes.
        let table =
            |t: &[u8; 16]| unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(t.as_ptr() as *const __m128i)) };
        (std::array::from_fn(|k| table(&self.tables.lo[k])), std::array::from_fn(|k| table(&self.tables.hi[k])))
    }
}

/// A byte's class from its nibbles, `CLASS_LO[low] & CLASS_HI[high]`: 0x80 for an ASCII digit,
/// 1, 2 or 4 for a capital (0x41-0x4f, 0x50-0x5a) or '+' (0x2b), else 0 (so a '+' or a capital
/// is a byte whose class is above 0 as a signed byte).
#[cfg(target_arch = "x86_64")]
const CLASS_LO: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut l = 0;
    while l < 16 {
        t[l] = if l <= 9 { 0x80 } else { 0 }
            | if l >= 1 { 1 } else { 0 }
            | if l <= 0xa { 2 } else { 0 }
            | if l == 0xb { 4 } else { 0 };
        l += 1;
    }
    t
};
#[cfg(target_arch = "x86_64")]
const CLASS_HI: [u8; 16] = [0, 0, 4, 0x80, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Chunks whose high nibbles `Gate::next_with_digits_avx2` holds at once.
#[cfg(target_arch = "x86_64")]
const RING: usize = 4;
/// How many chunks ahead of the one it reads it works them out: loads that straddle two
/// stores still in flight cannot take their bytes from them and wait until both are written.
#[cfg(target_arch = "x86_64")]
const AHEAD: usize = 2;

/// The high nibbles of `RING` chunks (each with the `WIDTH - 1` bytes after it), by chunk
/// number modulo `RING`.
#[cfg(target_arch = "x86_64")]
#[repr(align(32))]
struct HighNibbles([[u8; 96]; RING]);
#[cfg(target_arch = "x86_64")]
const _: () = assert!(AHEAD < RING && 64 + WIDTH - 1 <= 96);

/// Non-zero at byte `j` when the 32 positions from `q` accept a fingerprint at `q + j` by the
/// nibble tables `lo` and `hi` (`nibble_tables`): a byte's low and high nibble each looked up,
/// per position (the low one with the byte itself at the first `ASCII`: `ascii_prefix`).
///
/// # Safety
/// `32 + WIDTH - 1` bytes must be readable at `q`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn nibble_acc<const ASCII: usize>(
    lo: &[std::arch::x86_64::__m256i; WIDTH],
    hi: &[std::arch::x86_64::__m256i; WIDTH],
    q: *const u8,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let nibble = _mm256_set1_epi8(0x0f);
    let mut acc = _mm256_set1_epi8(-1);
    for k in 0..WIDTH {
        // SAFETY: the caller vouches for `WIDTH - 1` bytes past the 32.
        let v = unsafe { _mm256_loadu_si256(q.add(k) as *const __m256i) };
        let l = _mm256_shuffle_epi8(lo[k], if k < ASCII { v } else { _mm256_and_si256(v, nibble) });
        let h = _mm256_shuffle_epi8(hi[k], _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble));
        acc = _mm256_and_si256(acc, _mm256_and_si256(l, h));
    }
    acc
}

/// Whether `v` has a byte that is not 0, by `vptest`. With `_mm256_testz_si256` in
/// `Gate::next_with_digits_avx2`, LLVM folded the test into the loop's exit with the digit
/// shapes' answer as a reduction (`vextracti128`, two `vpor`, `vpshufd`, `vmovq`, `or`); with
/// this one, prose masked 1.031x and 1.034x faster (`benchmarks/masking_ab.py`, 4 and 5
/// rounds; the other texts within noise). `next_avx2` already had the `vptest`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn any_opaque(v: std::arch::x86_64::__m256i) -> bool {
    let z: u8;
    // SAFETY: reads a register, sets flags; the CPU has AVX2 (the caller's feature).
    unsafe {
        std::arch::asm!("vptest {v}, {v}", "setz {z}", v = in(ymm_reg) v, z = out(reg_byte) z, options(pure, nomem, nostack));
    }
    z == 0
}

/// The bits of the bytes of `acc` that are not 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn nonzero_bytes(acc: std::arch::x86_64::__m256i) -> u32 {
    use std::arch::x86_64::*;
    !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(acc, _mm256_setzero_si256())) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::{meta::Regex, Anchored, Input};

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    fn levels() -> Vec<Level> {
        [Level::Avx2, Level::Vbmi].into_iter().filter(|&l| Level::detect().is_some_and(|d| l <= d)).collect()
    }

    /// The shipped literal-led database's expressions (prefilters, or patterns without one).
    fn shipped() -> Vec<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/python/graphwarden/masking/catalogue.toml");
        let doc: toml::Table = std::fs::read_to_string(path).expect("catalogue").parse().expect("toml");
        let mut out = Vec::new();
        for e in doc["entries"].as_array().expect("entries") {
            let t = e.as_table().expect("entry");
            let literal_led = t.get("prefixes").is_some() || t.get("prefilter").is_some();
            if t.get("enabled").and_then(|v| v.as_bool()) == Some(false) || !literal_led {
                continue;
            }
            match t.get("prefilter").and_then(|v| v.as_str()) {
                Some(p) => out.push(p.to_string()),
                None => {
                    for p in t["patterns"].as_array().expect("patterns") {
                        out.push(p.as_str().expect("pattern").to_string());
                    }
                }
            }
        }
        out
    }

    /// Text made of pieces that start (or almost start) matches of `exprs`, and noise.
    fn text(rng: &mut Rng, len: usize, pieces: &[&[u8]]) -> Vec<u8> {
        let noise = b"aZ9_-. @:/=+\n\t(BeAr";
        let mut t = Vec::with_capacity(len + 64);
        while t.len() < len {
            if rng.below(4) == 0 {
                let p = pieces[rng.below(pieces.len())];
                t.extend_from_slice(&p[..p.len() - rng.below(2).min(p.len() - 1)]);
            } else {
                t.push(noise[rng.below(noise.len())]);
            }
        }
        t
    }

    /// Every position where some expression's match starts is a candidate, and the region of
    /// a candidate holds every match that starts there.
    fn check_complete(exprs: &[&str], pieces: &[&[u8]], seed: u64) {
        let res: Vec<Regex> =
            exprs.iter().map(|e| Regex::builder().syntax(syntax_config()).build(e).expect("compiles")).collect();
        for level in levels() {
            let exact_gate = Gate::build(exprs, level, 1.0).expect("gate");
            let mut gate = Gate::build(exprs, level, 1.0).expect("gate");
            gate.exact = None;
            let mut rng = Rng(seed);
            for round in 0..300 {
                let len = 1 + rng.below(300);
                let t = text(&mut rng, len, pieces);
                let from = if round % 3 == 0 { rng.below(t.len()) } else { 0 };
                let mut found = Found::default();
                gate.regions(&t, from, t.len(), usize::MAX, &mut found).expect("no limit");
                let regions = found.regions;
                let mut exact = Found::default();
                exact_gate.regions(&t, from, t.len(), usize::MAX, &mut exact).expect("no limit");
                for p in from..t.len() {
                    for (x, re) in res.iter().enumerate() {
                        let input = Input::new(&t).span(p..t.len()).anchored(Anchored::Yes);
                        let Some(m) = re.search(&input) else { continue };
                        assert!(
                            !exact_gate.exact() || exact.ends.contains(&(x as u32, m.end())),
                            "match {:?} of {x} in {:?} not among the ends {:?}",
                            m.range(),
                            String::from_utf8_lossy(&t),
                            exact.ends
                        );
                        assert!(
                            regions.iter().any(|&(a, b)| a <= p.saturating_sub(1) && (m.end() + 1).min(t.len()) <= b),
                            "match {:?} of {} in {:?} outside the regions {:?}",
                            m.range(),
                            re.pattern_len(),
                            String::from_utf8_lossy(&t),
                            regions
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn shipped_database_is_gated_and_complete() {
        let exprs = shipped();
        let exprs: Vec<&str> = exprs.iter().map(String::as_str).collect();
        assert!(
            Gate::build(&exprs, Level::Vbmi, Level::Vbmi.max_odds()).is_some(),
            "the shipped literal-led expressions have fingerprints that pay with VBMI"
        );
        let avx2 = Gate::build(&exprs, Level::Avx2, Level::Avx2.max_odds());
        assert!(avx2.is_some(), "and with nibble tables");
        assert!(avx2.as_ref().is_some_and(Gate::exact), "every shipped expression is a union of byte-set sequences");
        assert_eq!(avx2.as_ref().map(|g| g.ascii), Some(3), "the first 3 positions of the shipped tables are ASCII");
        let pieces: &[&[u8]] = &[
            b"-----BEGIN ",
            b"eyJhbGciOi",
            b"AKIAABCDEFGHIJKLMNOP",
            b"aWs_secret",
            b"ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            b"github_pat_",
            b"glpat-abcdefghijklmnopqrst",
            b"xoxb-",
            b"https://hooks.slack.com/",
            b"sk-ant-",
            b"sk-a",
            b"sk_live_",
            b"AIzaabcdefghijklmnopqrstuvwxyz012345678",
            b"BeArEr",
            b"basic ",
            b"postgres://",
            b"mongodb+srv://",
            b"a@b",
        ];
        check_complete(&exprs, pieces, 1);
    }

    #[test]
    fn operator_expressions_are_complete() {
        // optional and repeated pieces, alternations, classes, case folding, look-around
        let exprs = [r"\Bfoo", r"(?i)x[0-9]{1,9}y", r"Q{0,5}bc", r"(?:ab|cd?)E{2,3}", r"q?[wW]\.z", r"(pre)?fix"];
        let pieces: &[&[u8]] =
            &[b"foo", b"X12y", b"QQQbc", b"bc", b"abEE", b"cEEE", b"cdEE", b"qW.z", b"w.z", b"prefix", b"fix"];
        check_complete(&exprs, pieces, 2);
    }

    /// `exact_seqs` lists exactly the matches: every string of up to 4 bytes of a small
    /// alphabet is accepted by a sequence when the whole string matches the expression.
    #[test]
    fn exact_sequences_are_the_matches() {
        let exact = [r"(?i)ab", r"a[bc]{1,2}d", r"(?:x|yz)?w", r"q{2}", r"(a|b)(?:c|)", r"[^a-y]", r"(?:ab){0,2}c"];
        let alphabet = b"abcdxyzwqAB";
        for e in exact {
            let hir = regex_automata::util::syntax::parse_with(e, &syntax_config()).expect("parses");
            let seqs = exact_seqs(&hir).unwrap_or_else(|| panic!("{e} is exact"));
            let whole = Regex::builder().syntax(syntax_config()).build(&format!(r"\A(?:{e})\z")).expect("compiles");
            let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
            for len in 1..=4 {
                strings = strings
                    .iter()
                    .filter(|s| s.len() == len - 1)
                    .flat_map(|s| alphabet.iter().map(move |&b| [s.as_slice(), &[b]].concat()))
                    .chain(strings.iter().cloned())
                    .collect();
            }
            let mut hits = 0;
            for t in &strings {
                let listed =
                    seqs.iter().any(|q| q.len() == t.len() && q.iter().zip(t).all(|(set, &b)| set_has(set, b)));
                assert_eq!(listed, whole.is_match(t.as_slice()), "{e} on {:?}", String::from_utf8_lossy(t));
                hits += usize::from(listed);
            }
            assert!(hits > 0, "{e}");
        }
        // unbounded or long repeats, look-around, too many sequences
        for e in [
            r"a+",
            r"\bfoo",
            r"a{1,9}",
            r"x[0-9]*",
            r"(?:ab|cd)(?:ef|gh)(?:ij|kl)(?:mn|op)(?:qr|st)(?:uv|wx)(?:yz|AB)",
            r"foo$",
        ] {
            let hir = regex_automata::util::syntax::parse_with(e, &syntax_config()).expect("parses");
            assert!(exact_seqs(&hir).is_none(), "{e}");
        }
    }

    #[test]
    fn no_gate_when_a_match_may_begin_anywhere() {
        // unbounded, or a first byte that may be anything
        for e in [r"a?", r"[^x]{1,9}foo", r"foo.*", r"\w+@x", r"(?s).{1,3}bar", r"x[0-9]+y"] {
            assert!(Gate::build(&["sk-ant-", e], Level::Vbmi, Level::Vbmi.max_odds()).is_none(), "{e}");
        }
    }

    #[test]
    fn simd_levels_agree_with_the_tables() {
        let exprs = shipped();
        let exprs: Vec<&str> = exprs.iter().map(String::as_str).collect();
        let pieces: &[&[u8]] = &[b"-----", b"eyJ", b"AKIA", b"aws", b"ghp_", b"sk-a", b"BEAR", b"x@y", b"://"];
        for level in levels() {
            let gate = Gate::build(&exprs, level, 1.0).expect("gate");
            let mut rng = Rng(3);
            for _ in 0..500 {
                let len = rng.below(400);
                let t = text(&mut rng, len, pieces);
                let from = rng.below(t.len() + 1);
                let to = from + rng.below(t.len() + 1 - from);
                let mut got = Vec::new();
                gate.candidates::<()>(&t, from, to, &mut |c, mut m| {
                    while m != 0 {
                        got.push(c + m.trailing_zeros() as usize);
                        m &= m - 1;
                    }
                    Ok(())
                })
                .expect("no error");
                let want: Vec<usize> = (from..to).filter(|&p| gate.tables.at(level, &t, p) != 0).collect();
                assert_eq!(got, want, "{level:?}");
            }
        }
    }

    /// `next_with_digits` at each level: the candidates of `next`, and for each chunk it reads
    /// the digit mask and the mask of '+' and capitals, byte by byte; it stops at the first
    /// chunk with a candidate or where the test says so.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn fused_pass_reads_the_candidates_and_the_digit_masks() {
        let exprs = shipped();
        let exprs: Vec<&str> = exprs.iter().map(String::as_str).collect();
        let pieces: &[&[u8]] = &[b"eyJ", b"AKIA", b"sk-a", b"x@y", b"4111", b"+44 ", b"GB82", b"\xff9", b"Z+"];
        for level in levels() {
            let gate = Gate::build(&exprs, level, 1.0).expect("gate");
            let mut rng = Rng(11);
            for round in 0..600 {
                // (up to 16 chunks, some without the pieces: the pass reads past the chunks
                // whose high nibbles it holds at once, `RING`)
                let chunks = 1 + rng.below(16);
                let len = 64 * chunks + WIDTH - 1;
                let plain = b"abcdefghij0123456789 XYZ+";
                let t = if round % 3 == 0 {
                    (0..len).map(|_| plain[rng.below(plain.len())]).collect()
                } else {
                    text(&mut rng, len, pieces)
                };
                let stop_at = rng.below(chunks + 1); // the test says yes at this chunk
                let seen = std::cell::RefCell::new(Vec::new());
                let digits = |d: u64, pu: u64| {
                    let mut seen = seen.borrow_mut();
                    seen.push((d, pu));
                    seen.len() - 1 == stop_at
                };
                // SAFETY: `t` holds the chunks and `WIDTH - 1` bytes more.
                let (at, m, visit) = unsafe { gate.next_with_digits(t.as_ptr(), chunks, digits) };
                // SAFETY: as above.
                let (first, fm) = unsafe { gate.next(t.as_ptr(), chunks) };
                let want_at = first.min(stop_at).min(chunks);
                assert_eq!(at, want_at, "{level:?}");
                if at < chunks {
                    assert_eq!(m, if first == at { fm } else { 0 }, "{level:?}");
                    assert_eq!(visit, at == stop_at, "{level:?}");
                } else {
                    assert_eq!((m, visit), (0, false));
                }
                let seen = seen.into_inner();
                assert_eq!(seen.len(), (at + 1).min(chunks), "{level:?}");
                for (i, &(d, pu)) in seen.iter().enumerate() {
                    let chunk = &t[64 * i..64 * i + 64];
                    let bits = |f: &dyn Fn(u8) -> bool| {
                        chunk.iter().enumerate().fold(0u64, |acc, (k, &b)| acc | (u64::from(f(b)) << k))
                    };
                    assert_eq!(d, bits(&|b| b.is_ascii_digit()), "{level:?}");
                    assert_eq!(pu, bits(&|b| b == b'+' || b.is_ascii_uppercase()), "{level:?}");
                }
            }
        }
    }

    /// A fingerprint's word test passes every byte sequence its sets accept, and, when it
    /// says it is exact, no other: on bytes drawn from the sets, near them (one bit flipped)
    /// and at random, for the shipped fingerprints and operator-like ones.
    #[test]
    fn word_tests_agree_with_the_sets() {
        let mut exprs = shipped();
        exprs
            .extend([r"(?i)x[0-9]{1,9}y", r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]", r"[ab]c[0-3]", r"\Bfoo"].map(String::from));
        let mut rng = Rng(7);
        let (mut exact, mut checked) = (0, 0);
        for e in &exprs {
            for fp in fingerprints(e, 0).expect("fingerprints").0 {
                let w = Word::of(&fp);
                exact += usize::from(w.exact);
                for round in 0..3000 {
                    let mut bytes = [0u8; 8];
                    for (k, b) in bytes.iter_mut().enumerate() {
                        let members: Vec<u8> =
                            fp.sets.get(k).map_or(Vec::new(), |s| (0..=255u8).filter(|&x| set_has(s, x)).collect());
                        *b = match (round % 3, members.is_empty()) {
                            (0, false) => members[rng.below(members.len())],
                            (1, false) => members[rng.below(members.len())] ^ (1 << rng.below(8)),
                            _ => rng.below(256) as u8,
                        };
                    }
                    let accepted = fp.sets.iter().enumerate().all(|(k, s)| set_has(s, bytes[k]));
                    let passes = u64::from_le_bytes(bytes) & w.mask == w.value;
                    assert!(!accepted || passes, "{e}: {bytes:?} accepted but fails the word test");
                    assert!(!w.exact || accepted == passes, "{e}: {bytes:?} passes an exact word test only");
                    checked += usize::from(accepted);
                }
            }
        }
        // (the draws reach accepted bytes, and some tests are exact: `sk-ant-`, `[Bb][Ee]...`)
        assert!(checked > 1000 && exact >= 5, "{checked} {exact}");
    }

    #[test]
    fn regions_merge_and_stop_at_the_limit() {
        let mut gate = Gate::build(&["sk-ant-"], Level::detect().expect("x86_64 with AVX2"), 1.0).expect("gate");
        let t = b"xx sk-ant- sk-ant- ........................................ sk-ant-";
        // exact: the matches themselves, with no limit
        let mut r = Found::default();
        gate.regions(t, 0, t.len(), 1, &mut r).expect("matches are not limited");
        assert_eq!((r.regions, r.ends), (vec![], vec![(0, 10), (0, 18), (0, t.len())]));
        gate.exact = None;
        let mut r = Found::default();
        gate.regions(t, 0, t.len(), 8, &mut r).expect("few");
        // candidates at 3 and 11 (regions 2..11 and 10..19, merged) and at the end
        assert_eq!(r.regions, vec![(2, 19), (t.len() - 8, t.len())]);
        let mut r = Found::default();
        assert_eq!(gate.regions(t, 0, t.len(), 1, &mut r), Err(TooMany));
    }
}
