//! Detection and rewriting (docs/MASKING.md describes each step with its measurements).
//!
//! Where matches can be: Hyperscan block-mode databases report match *ends* (no start-of-match
//! tracking) of the entries led by a literal or a `prefilter`, and of an operator's class-led
//! entries; the shipped card, SSN, IBAN and phone patterns are located by a SIMD pass over digit
//! shapes instead (`digit_triggers`). Each reported end gives a window of possible match starts,
//! as narrow as the expression proves (`start_window`: one byte for a leading literal
//! prefilter). Hyperscan scans only the regions where a SIMD pass of our own (`gate.rs`) finds
//! that a match of a database can start, or the whole range when those are many; when every
//! expression of the database is a finite union of byte-set sequences (all the shipped ones
//! are), that pass reports the match ends itself and Hyperscan is not called. With AVX-512 VBMI
//! or AVX2 that pass and the digit shapes read the text in one loop (`Engine::fused`). Text
//! without PII costs these passes and nothing else.
//!
//! Exact spans: `regex-automata`'s meta regex (leftmost-first, the same semantics as Python's
//! `re`, which the tests use as the oracle) runs only in those windows, or over the whole text
//! when they are many; a window of a few bytes is searched by the pattern's lazy DFA, anchored
//! at each start in turn (`narrow_search`). This is how the start of a match is found: Hyperscan's own start-of-match
//! tracking (SOM_LEFTMOST) is costly and fails to compile for some bounded repeats, while a
//! small regex over a window known to hold a match start is cheap.
//!
//! Validators run on each candidate before spans are merged; overlapping spans are masked as
//! their union, labelled with the entity of the highest-priority entry (catalogue order).
//!
//! Streaming keeps back only what can still become part of a match: for entries without a
//! literal prefix, the bytes after the last one their pattern cannot contain, within their
//! `max_len`; for entries that start with a literal (PEM blocks, JWTs, tokens), the text from the
//! earliest occurrence of one that may still grow, or of a partial literal at the very end. A
//! cut never falls inside a candidate match, and a few bytes of released text are kept as
//! look-behind context, so the output for any chunking equals the block-mode output.

use std::mem::MaybeUninit;
use std::sync::Mutex;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_automata::meta::Regex;
use regex_automata::{hybrid, util::syntax, Anchored, Input};

use super::ffi::*;
use super::gate::{Found, Gate, WIDTH as GATE_WIDTH};
use super::json::StrTok;
use super::runs::Runs;
use super::split::Split;
use super::validators::Validator;

/// What replaces a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `[ENTITY]`
    Label,
    /// Every letter and digit but the last four becomes `*` (separators kept).
    Partial,
    /// `[ENTITY:<12 hex of keyed BLAKE3>]`: same value, same token.
    Hash,
    /// Removed.
    Drop,
}

impl Action {
    /// Parses a catalogue name.
    pub fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "label" | "redact" => Action::Label,
            "partial" => Action::Partial,
            "hash" => Action::Hash,
            "drop" => Action::Drop,
            _ => return None,
        })
    }
}

/// One catalogue entry, as the engine needs it.
#[derive(Clone, Debug)]
pub struct EntrySpec {
    /// Unique id (error messages, findings summaries).
    pub id: String,
    /// Entity label, e.g. "EMAIL".
    pub entity: String,
    /// Regular expressions (bytes, ASCII semantics).
    pub patterns: Vec<String>,
    /// Check run on the matched text (or capture group).
    pub validator: Validator,
    /// Rewrite.
    pub action: Action,
    /// Capture group to mask (0 = whole match).
    pub group: usize,
    /// Longest possible match, in bytes (bounds streaming hold-back).
    pub max_len: usize,
    /// Literals every match starts with (lower-case, compared caselessly); empty = none.
    pub prefixes: Vec<Vec<u8>>,
    /// A cheaper Hyperscan expression that matches wherever any of `patterns` does (a superset),
    /// used instead of the patterns for the "does it occur at all" pass.
    pub prefilter: Option<String>,
}

/// A pattern the library or the regex compiler refused.
#[derive(Debug, Clone)]
pub struct CompileError {
    /// Catalogue id of the entry.
    pub id: String,
    /// What the compiler said.
    pub message: String,
}

struct Pat {
    entry: usize,
    re: Regex,
    /// The pattern as a forward lazy DFA (leftmost-first, as `re`), and its caches: for the
    /// anchored searches of narrow windows (`raw_matches`), and to tell when nothing starting at
    /// a literal prefix can grow any more (`settled`).
    fwd: Option<(hybrid::dfa::DFA, Mutex<Vec<hybrid::dfa::Cache>>)>,
    /// The longest match the pattern can make (None: unbounded). Searches for a match starting
    /// at most at `hi` then end at `hi + max_match`, with look-around still seeing past it.
    max_match: Option<usize>,
    /// Entries that mask a group: how to place it in a match without capture search, where
    /// the pattern allows (`split.rs`).
    split: Option<Split>,
    /// The pattern as a sequence of class runs, read greedily, for anchored searches, where
    /// its shape allows (`runs.rs`).
    runs: Option<Runs>,
    /// The bytes a match can begin with (None when it can be empty): a narrow window holding
    /// none of them is not searched (`raw_matches`).
    first: Option<Box<[bool; 256]>>,
}

pub(crate) fn syntax_config() -> syntax::Config {
    syntax::Config::new().unicode(false).utf8(false)
}

/// Every byte a match of `pattern` can contain (all bytes when it cannot be parsed).
fn byte_set(pattern: &str) -> [bool; 256] {
    let mut set = [false; 256];
    match syntax::parse_with(pattern, &syntax_config()) {
        Ok(hir) => hir_bytes(&hir, &mut set),
        Err(_) => set = [true; 256],
    }
    set
}

/// Adds every byte a match of `h` can contain to `set`.
fn hir_bytes(h: &regex_syntax::hir::Hir, set: &mut [bool; 256]) {
    use regex_syntax::hir::{Class, Hir, HirKind};
    fn walk(h: &Hir, set: &mut [bool; 256]) {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => {}
            HirKind::Literal(lit) => lit.0.iter().for_each(|&b| set[usize::from(b)] = true),
            HirKind::Class(Class::Bytes(c)) => {
                for r in c.ranges() {
                    (r.start()..=r.end()).for_each(|b| set[usize::from(b)] = true);
                }
            }
            HirKind::Class(Class::Unicode(c)) => {
                for r in c.ranges() {
                    let (lo, hi) = (u32::from(r.start()), u32::from(r.end()));
                    (lo.min(256)..=hi.min(255)).for_each(|b| set[b as usize] = true);
                    if hi >= 128 {
                        set[128..].iter_mut().for_each(|x| *x = true); // UTF-8 bytes of any non-ASCII
                    }
                }
            }
            HirKind::Repetition(r) => walk(&r.sub, set),
            HirKind::Capture(c) => walk(&c.sub, set),
            HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().for_each(|x| walk(x, set)),
        }
    }
    walk(h, set)
}

/// The bytes a match of `pattern` can begin with; None when it can match the empty string or
/// cannot be parsed. An entry's windows are shared by its patterns: of the three phone patterns,
/// two begin with '+' and one cannot, and each searched the windows of the others' triggers.
fn first_bytes(pattern: &str) -> Option<Box<[bool; 256]>> {
    use regex_syntax::hir::{Hir, HirKind};
    // adds the first bytes of a non-empty match of `h` to `set`; true when `h` can match empty
    fn walk(h: &Hir, set: &mut [bool; 256]) -> bool {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => true,
            HirKind::Literal(lit) => match lit.0.first() {
                Some(&b) => {
                    set[usize::from(b)] = true;
                    false
                }
                None => true,
            },
            HirKind::Class(_) => {
                hir_bytes(h, set);
                false
            }
            HirKind::Repetition(r) => walk(&r.sub, set) || r.min == 0,
            HirKind::Capture(c) => walk(&c.sub, set),
            HirKind::Concat(v) => v.iter().all(|x| walk(x, set)),
            HirKind::Alternation(v) => v.iter().fold(false, |empty, x| walk(x, set) | empty),
        }
    }
    let hir = syntax::parse_with(pattern, &syntax_config()).ok()?;
    let mut set = Box::new([false; 256]);
    (!walk(&hir, &mut set)).then_some(set)
}

/// The longest match of `pattern` (None when unbounded or unparsable).
fn max_match(pattern: &str) -> Option<usize> {
    syntax::parse_with(pattern, &syntax_config()).ok()?.properties().maximum_len()
}

/// For an expression of `entry` that Hyperscan reports the match ends of (one of its
/// `patterns`, or its `prefilter`), `(lo, hi)` such that every match of the entry that a
/// reported end `e` stands for starts in `[e - lo, e - hi]`.
///
/// * A pattern: the matches that end at `e` are between its shortest and longest match (capped
///   at `max_len`: a longer one is no match) long.
/// * A *leading* prefilter (`leading_literals`: a finite set of literals that every match of
///   every pattern begins with, such as PEM's `-----BEGIN `): each match starts with one of
///   them, whose end Hyperscan reports, so it starts one literal's length before a reported end.
///   The window is a byte or a few (searched anchored), where `[e - max_len, e]` had the regex
///   search up to 16 KiB before each PEM header and 7 KiB before each JWT.
/// * A prefilter with an *anchor byte* (`anchor_window`: the email's `@`): from the longest to
///   the shortest way before that byte in a match.
/// * Any other prefilter (its match lies inside the real match): `[e - max_len, e]`.
fn start_window(entry: &EntrySpec, expr: &str, prefilter: bool) -> (usize, usize) {
    let whole = (entry.max_len, 0);
    if prefilter {
        if let Some(lits) = leading_literals(expr, &entry.patterns) {
            let lens = lits.iter().map(Vec::len);
            return (lens.clone().max().unwrap_or(0), lens.min().unwrap_or(0));
        }
        return anchor_window(expr, &entry.patterns).map_or(whole, |(lo, hi)| {
            let lo = lo.min(entry.max_len);
            (lo, hi.min(lo))
        });
    }
    let Ok(hir) = syntax::parse_with(expr, &syntax_config()) else { return whole };
    let props = hir.properties();
    let lo = props.maximum_len().map_or(entry.max_len, |m| m.min(entry.max_len));
    (lo, props.minimum_len().unwrap_or(0).min(lo))
}

/// The top-level sequence of `hir` (itself when it is no sequence).
fn items(hir: &regex_syntax::hir::Hir) -> Vec<regex_syntax::hir::Hir> {
    match hir.kind() {
        regex_syntax::hir::HirKind::Concat(v) => v.clone(),
        _ => vec![hir.clone()],
    }
}

/// For a prefilter whose matches lie inside the real matches: `(lo, hi)` such that a match
/// containing a reported end's prefilter match starts in `[e - lo, e - hi]`, when the prefilter
/// holds an *anchor byte*: a byte of a literal at a fixed distance from its end that every
/// match of every pattern holds exactly once (in a literal of the pattern's top-level sequence,
/// no other part of which can hold that byte), after a part of bounded length.
///
/// The prefilter's match is inside the real match, so its anchor byte is the real match's only
/// one; the real match starts that part's length before it. The email's `@` (the core
/// `[A-Za-z0-9._%+-]@[A-Za-z0-9-]` ends 2 bytes after it, and 1 to 64 bytes come before it in a
/// match) gives `[e - 66, e - 3]`, where `[e - max_len, e]` had the regex search 410 bytes
/// before each `@`, and on past it.
fn anchor_window(prefilter: &str, patterns: &[String]) -> Option<(usize, usize)> {
    use regex_syntax::hir::{Hir, HirKind};
    let pf = items(&syntax::parse_with(prefilter, &syntax_config()).ok()?);
    let pats: Vec<Vec<Hir>> = patterns
        .iter()
        .map(|p| syntax::parse_with(p, &syntax_config()).ok().map(|h| items(&h)))
        .collect::<Option<_>>()?;
    let len_range = |v: &[Hir]| {
        let p = Hir::concat(v.to_vec()).properties().clone();
        Some((p.minimum_len()?, p.maximum_len()?))
    };
    // where `c` lies in every match of `items`, counted from the match's start
    let place = |items: &[Hir], c: u8| -> Option<(usize, usize)> {
        let mut found = None;
        for (k, h) in items.iter().enumerate() {
            let mut set = [false; 256];
            hir_bytes(h, &mut set);
            if !set[usize::from(c)] {
                continue;
            }
            let HirKind::Literal(lit) = h.kind() else { return None };
            let mut at = lit.0.iter().enumerate().filter(|&(_, &b)| b == c).map(|(o, _)| o);
            let (Some(o), None, None) = (at.next(), at.next(), found) else { return None };
            let (lo, hi) = len_range(&items[..k])?;
            found = Some((lo + o, hi + o));
        }
        found
    };
    for (j, h) in pf.iter().enumerate() {
        let HirKind::Literal(lit) = h.kind() else { continue };
        let (after, after_max) = len_range(&pf[j + 1..])?;
        if after != after_max {
            continue;
        }
        for (o, &c) in lit.0.iter().enumerate() {
            // the anchor byte is `to_end` bytes before a reported end
            let to_end = lit.0.len() - o + after;
            let places: Option<Vec<(usize, usize)>> = pats.iter().map(|p| place(p, c)).collect();
            if let Some(places) = places {
                let before_max = places.iter().map(|p| p.1).max()?;
                let before_min = places.iter().map(|p| p.0).min()?;
                return Some((to_end + before_max, to_end + before_min));
            }
        }
    }
    None
}

/// When `prefilter` matches exactly a finite set of literals (no look-around, no unbounded
/// part) and every match of every one of `patterns` begins with one of them: the shortest and
/// longest of those literals. None when that cannot be shown (then the caller falls back to
/// the window every prefilter gets).
///
/// Read from regex-syntax's prefix literal extraction: a finite sequence of prefixes means every
/// match begins with one of them (inexact ones) or is one of them (exact ones); look-arounds such
/// as `\b` are zero-width and extract as the empty string.
fn leading_literals(prefilter: &str, patterns: &[String]) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let mut ex = Extractor::new();
    // classes are expanded up to a byte each (JWT's `eyJ[A-Za-z0-9_-]` is 64 literals)
    ex.kind(ExtractKind::Prefix).limit_class(256).limit_total(4096);
    let pf = syntax::parse_with(prefilter, &syntax_config()).ok()?;
    if !pf.properties().look_set().is_empty() {
        return None; // Hyperscan's matches of it need not be where the literals are
    }
    let seq = ex.extract(&pf);
    let lits = seq.literals()?;
    if !seq.is_exact() || lits.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    let starts_with_one = |x: &[u8]| lits.iter().any(|l| x.starts_with(l.as_bytes()));
    for p in patterns {
        let hir = syntax::parse_with(p, &syntax_config()).ok()?;
        // Any extraction is sound; which one is long enough depends on the pattern: repeats
        // unrolled 10 times blew the limit for OpenAI's `[A-Za-z0-9]{48}` (leaving only "sk-",
        // shorter than its prefilter's "sk-" and one more byte), once they do not.
        let proven = [10, 1].into_iter().any(|repeat| {
            let ps = ex.limit_repeat(repeat).extract(&hir);
            ps.literals().is_some_and(|l| l.iter().all(|x| starts_with_one(x.as_bytes())))
        });
        if !proven {
            return None;
        }
    }
    Some(lits.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// The Hyperscan expressions for an entry's `prefilter`, each with its start window: the
/// prefilter itself, or, when it is a leading set of literals of several lengths, one
/// alternation of those of each length, whose reports each say where the match starts
/// (connection URIs: `amqp://` to `mongodb+srv://`, where one expression gave windows of 8
/// bytes, searched unanchored).
fn prefilter_exprs(entry: &EntrySpec, prefilter: &str) -> Vec<(String, (usize, usize))> {
    if let Some(lits) = leading_literals(prefilter, &entry.patterns) {
        let mut lens: Vec<usize> = lits.iter().map(Vec::len).collect();
        lens.sort_unstable();
        lens.dedup();
        if lens.len() > 1 {
            return lens
                .into_iter()
                .map(|n| {
                    let alts: Vec<String> = lits
                        .iter()
                        .filter(|l| l.len() == n)
                        .map(|l| l.iter().map(|b| format!("\\x{b:02x}")).collect())
                        .collect();
                    (format!("(?:{})", alts.join("|")), (n, n))
                })
                .collect();
        }
    }
    vec![(prefilter.to_string(), start_window(entry, prefilter, true))]
}

/// Hyperscan expressions with, for each, its entry and start window (`Db::compile`).
type ExprGroup = (Vec<std::ffi::CString>, Vec<usize>, Vec<(usize, usize)>);

/// A compiled pattern set.
pub struct Engine {
    entries: Vec<EntrySpec>,
    pats: Vec<Pat>,
    dbs: Vec<Db>,
    base_hold: usize,
    /// Literal prefixes of the entries that always start with one (caseless), for the
    /// streaming hold-back: `prefix_max[i]` is the longest match starting with prefix `i`.
    prefixes: Option<AhoCorasick>,
    prefix_bytes: Vec<Vec<u8>>,
    prefix_max: Vec<usize>,
    /// The entry of each prefix.
    prefix_entry: Vec<usize>,
    /// Entries without a prefix: (max_len, the bytes a match can contain). A match still open
    /// at the end of a stream's buffer starts after the last byte outside its set.
    holds: Vec<(usize, Box<[bool; 256]>)>,
    /// The largest `prefix_max`.
    prefix_reach: usize,
    /// Proper prefixes of the prefixes, by their last byte (lower case): (length, prefix index),
    /// longest first. A partial prefix at the end of a stream's buffer ends with its last byte.
    partials_by_last: Vec<Vec<(usize, usize)>>,
    /// The prefixes as caseless Hyperscan literals: tells fast whether a buffer holds any
    /// (the overlapping Aho-Corasick search that finds them all reads every byte).
    prefix_db: Option<Db>,
    hash_key: [u8; 32],
    /// No pattern (or prefilter) uses `^`, `$`, `\A`, `\z` or `\Z`: then a match inside a JSON
    /// string without escapes is also a match of the raw document (the quote around a string is a
    /// non-word byte, like the edge of a text, so `\b` agrees), and one raw pass can clear it.
    raw_superset: bool,
    /// Per entry: every pattern has a longest match (`Pat::max_match`).
    bounded: Vec<bool>,
    /// Every entry of the digit shapes' `Card` trigger rejects what fails Luhn, masks its whole
    /// match and allows 19 digits: `card_block_rejected` is then the Luhn check of the block,
    /// which the shapes pass makes itself (`shape_triggers`).
    card_luhn: bool,
    /// Per entry: a pattern's match can hold a '"' (`byte_set`), so it can run from one JSON
    /// string into the next (`aws_secret_access_key`'s `["']?`), and its matches in a document
    /// are not those in its strings (`mask_json_valid`).
    quote_capable: Vec<bool>,
}

/// The regex library's message for a pattern that does not build, with what it wraps: its own
/// text is only "error parsing pattern 0"; the syntax error under it says what and where
/// ("unclosed group", with the pattern and a caret under the place).
fn build_error_message(err: &regex_automata::meta::BuildError) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(s.to_string().trim_end());
        source = s.source();
    }
    message
}

/// Whether a regex uses a text anchor (`^`/`$` outside a class, `\A`, `\z`, `\Z`).
fn has_anchor(p: &str) -> bool {
    let b = p.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if !in_class && matches!(b.get(i + 1), Some(b'A' | b'z' | b'Z')) {
                    return true;
                }
                i += 2;
                continue;
            }
            b'[' if !in_class => {
                in_class = true;
                // `[^` negates and `[]` / `[^]` start with a literal `]`
                if b.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if b.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b']' if in_class => in_class = false,
            b'^' | b'$' if !in_class => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

// The database is immutable after compilation and scratch spaces are handed out one per scan.
unsafe impl Send for Engine {}
unsafe impl Sync for Engine {}

/// A 64-byte aligned copy of a byte string, followed by 64 zero bytes.
struct AlignedCopy {
    buf: Vec<[u8; 64]>,
    len: usize,
}

impl AlignedCopy {
    /// `len` bytes written by `fill`, then zeros.
    fn new(len: usize, fill: impl FnOnce(&mut [u8])) -> AlignedCopy {
        let blocks = len / 64 + 2;
        let mut buf = vec![[0u8; 64]; blocks];
        // SAFETY: `buf` is `blocks * 64` contiguous, initialised bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, blocks * 64) };
        fill(&mut bytes[..len]);
        AlignedCopy { buf, len }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: as above; `len` is within the allocation.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr() as *const u8, self.len) }
    }
}

/// The most regions around a gate's candidates (`gate.rs`) worth scanning in `len` bytes
/// rather than the whole range. The regions go to Hyperscan in one call; each costs its
/// checks, its copy and its reports, about 0.1 µs on PII-dense text, as much as Hyperscan
/// scanning ~500 bytes of it whole. At one per KiB (the limit before), text with a JWT per
/// KiB (two candidates each, the header's and the payload's `eyJ`) went to whole scans:
/// 1.13x faster with this limit (`masking_ab`-style interleaved runs, 5 rounds, median).
fn max_regions(len: usize) -> usize {
    len / 512 + 1
}

/// Windows of fewer possible starts than this are searched by the lazy DFA, anchored at each
/// start (`narrow_search`), rather than by the meta regex.
const NARROW: usize = 8;

/// The leftmost-first match that starts in `[pos, hi]` and ends by `end` (look-around still
/// seeing the bytes around), as `(start, end)`: the first start where the forward DFA `dfa`,
/// anchored there, finds a match, and that match, as an unanchored search from `pos` would find
/// it. Starts whose byte no match begins with (`first`) are skipped. Err when the DFA gives up
/// (its cache cleared too often): the caller searches with the meta regex.
fn narrow_search(
    dfa: &hybrid::dfa::DFA,
    cache: &mut hybrid::dfa::Cache,
    hay: &[u8],
    pos: usize,
    hi: usize,
    end: usize,
    first: Option<&[bool; 256]>,
) -> Result<Option<(usize, usize)>, regex_automata::MatchError> {
    for s in pos..=hi.min(end) {
        if first.is_some_and(|f| !hay.get(s).is_some_and(|&b| f[usize::from(b)])) {
            continue;
        }
        let input = Input::new(hay).span(s..end).anchored(Anchored::Yes);
        if let Some(m) = dfa.try_search_fwd(cache, &input)? {
            return Ok(Some((s, m.offset())));
        }
    }
    Ok(None)
}

/// How many windows ahead `raw_matches` asks for a window's bytes: `hits` has read the whole
/// text before the searches start, so on a text of some MiB a window's bytes have left the
/// cache by the time its search reads them.
const PREFETCH_AHEAD: usize = 4;

/// Asks the CPU to bring the first bytes of window `k` (if any) into the cache.
#[inline(always)]
fn prefetch_window(hay: &[u8], windows: &[(usize, usize)], k: usize, from: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(&(lo, _)) = windows.get(k) {
        if let Some(p) = hay.get(from + lo..) {
            // SAFETY: a prefetch is a hint; the address is inside `hay`.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.as_ptr().cast()) };
        }
    }
}

/// `spans` sorted by (start, end): scattered into buckets by start (about one span per bucket;
/// a counting sort, which keeps their order), and each bucket of more than one sorted on its
/// own. They come as one ascending run per pattern (`raw_matches`): 2,168 spans in 23 runs per
/// 2 MiB of PII-dense text. The standard library's stable sort quicksorted most runs (it keeps
/// only runs longer than about the square root of the length); merging the runs two by two
/// (five rounds for 23) was 4.9% of a perf profile of that text, its comparisons a coin toss for
/// the branch predictor where the runs of different patterns interleave. No bucket holds more
/// than one span per pattern and byte of its width (a pattern's spans do not overlap), so the
/// sorts of the buckets cost in all at most the patterns times the text's length.
fn sort_runs(mut spans: Vec<Span>) -> Vec<Span> {
    let key = |s: &Span| (s.start, s.end);
    if spans.len() <= 64 {
        // (a body's few spans: the standard sort, with no allocation, where counting had cost
        // a 1 KiB body more than it saved)
        spans.sort_by_key(key);
        return spans;
    }
    let n = spans.len();
    let last = spans.iter().map(|s| s.start).max().unwrap_or(0);
    // buckets of 2^shift bytes, about as many as there are spans
    let shift = (last / n).max(1).ilog2();
    let buckets = (last >> shift) + 1;
    let mut at = vec![0u32; buckets + 1];
    for s in &spans {
        at[(s.start >> shift) + 1] += 1;
    }
    for b in 1..=buckets {
        at[b] += at[b - 1];
    }
    let mut out = vec![Span { start: 0, end: 0, entry: 0 }; n];
    for s in &spans {
        let b = s.start >> shift;
        out[at[b] as usize] = *s;
        at[b] += 1;
    }
    // (`at[b]` is now where bucket b ends, and where bucket b + 1 begins)
    let mut from = 0usize;
    for &to in &at[..buckets] {
        let to = to as usize;
        if to - from > 1 {
            out[from..to].sort_unstable_by_key(key);
        }
        from = to;
    }
    out
}

/// Texts longer than this are scanned in chunks (`Engine::hits`).
const SCAN_CHUNK: usize = 256 << 10;

/// Texts up to this size are copied into the thread's reused buffer (larger ones get their own).
const ALIGNED_KEEP_MAX: usize = 4 << 20;

thread_local! {
    /// Reused 64-byte aligned buffer for `Engine::may_match` (small texts, many calls).
    static ALIGNED: std::cell::RefCell<Vec<[u8; 64]>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Calls `f` with a 64-byte aligned copy of `data` followed by at least 64 zero bytes, in a
/// buffer reused by the thread (no allocation once it is large enough).
fn with_aligned<R>(data: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    with_aligned_pieces(data, &[(0, data.len())], f)
}

/// `with_aligned` of the `pieces` `[a, b)` of `text`, back to back.
fn with_aligned_pieces<R>(text: &[u8], pieces: &[(usize, usize)], f: impl FnOnce(&[u8]) -> R) -> R {
    let len: usize = pieces.iter().map(|(a, b)| b - a).sum();
    let fill = |bytes: &mut [u8]| {
        let mut at = 0;
        for &(a, b) in pieces {
            bytes[at..at + b - a].copy_from_slice(&text[a..b]);
            at += b - a;
        }
    };
    if len > ALIGNED_KEEP_MAX {
        let copy = AlignedCopy::new(len, fill);
        return f(copy.as_slice());
    }
    ALIGNED.with(|cell| {
        let Ok(mut buf) = cell.try_borrow_mut() else {
            // re-entered (cannot happen today): fall back to a fresh copy
            let copy = AlignedCopy::new(len, fill);
            return f(copy.as_slice());
        };
        let blocks = len / 64 + 2;
        if buf.len() < blocks {
            buf.resize(blocks, [0u8; 64]);
        }
        // SAFETY: `buf` holds at least `blocks * 64` contiguous, initialised bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, blocks * 64) };
        fill(&mut bytes[..len]);
        bytes[len..len + 64].fill(0);
        f(&bytes[..len])
    })
}

/// One Hyperscan database with its scratch spaces.
struct Db {
    db: *mut hs_database_t,
    proto: *mut hs_scratch_t,
    pool: Mutex<Vec<*mut hs_scratch_t>>,
    /// The catalogue entry each expression reports for.
    expr_entry: Vec<usize>,
    /// Per expression, where a match of its entry can start relative to a reported end `e`:
    /// in `[e - back.0, e - back.1]` (`start_window`).
    back: Vec<(usize, usize)>,
    /// The shipped digit patterns' database (`Engine::new`): (trigger, entry) pairs, and where
    /// each entry's matches may start is found by `digit_triggers` instead of a Hyperscan pass
    /// (empty: scan with Hyperscan).
    triggers: Vec<(Trigger, usize)>,
    /// Where this database's matches can start (`gate.rs`): when set, Hyperscan scans only the
    /// regions around those places, unless they are too many.
    gate: Option<Gate>,
}

/// What a match of a `DIGIT_GATED` pattern must contain (see `digit_triggers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// A block of 12-19 digits, or joined blocks of 4, 4 and 4 or of 4, 6 and 4-5 digits.
    Card,
    /// Joined blocks of 3, 2 and 4 digits.
    Ssn,
    /// Joined blocks of 3, 3 and 4 digits (North American phones).
    Phone,
    /// '+' and a digit 1-9 (international phones).
    Plus,
    /// Two upper-case letters and two digits (IBANs).
    Upper,
}

/// The default catalogue's class-led patterns (exactly as shipped), with what each match
/// contains. They get a database of their own (`Engine::new`); a changed pattern is not one of
/// these and is scanned with Hyperscan, with the operator's other class-led patterns.
///
/// Why not Hyperscan for these: on text with many digits (ids, dates, amounts, UUIDs: 23% of the
/// bytes of the benchmark corpus) Hyperscan runs these bounded digit repeats at about 8 ns a
/// byte. Finding the digit blocks that have the shape of a match is a skip from digit to digit
/// (16 bytes at a time between them), and the exact regexes then run only where a shape is.
const DIGIT_GATED: &[(&str, Trigger)] = &[
    (r"\b(?:\d{12,19}|\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{4,5})\b", Trigger::Card),
    (r"\b\d{3}[- ]\d{2}[- ]\d{4}\b", Trigger::Ssn),
    (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", Trigger::Upper),
    (r"\+[1-9]\d{7,14}\b", Trigger::Plus),
    (r"\+[1-9]\d{0,2}(?:[ .-]\(?\d{1,6}\)?){2,5}\b", Trigger::Plus),
    (r"(?:\b1[ .-])?\(?\b[2-9]\d{2}\)?[ .-]\d{3}[ .-]\d{4}\b", Trigger::Phone),
];

/// Bytes allowed between the digit blocks of one shape (`digit_triggers`; the SIMD masks
/// compare with these).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn run_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')')
}

/// Every place a match of `DIGIT_GATED` may start, as `f(trigger, lo, hi)`: the match starts
/// in `[lo, hi]`. Every match of those patterns contains one of these (a digit block is a
/// maximal run of ASCII digits; two blocks are joined when one or two bytes, all separators,
/// lie between them, which covers the single ' '/'-'/'.' of cards, SSNs and phones and the ")"
/// + one of " .-" of "(415) 555-0100"):
/// * `Card`: a block of 12-19 digits (`\b\d{12,19}\b` is a whole block), or three joined
///   blocks of 4, 4, 4 or 4, 6, 4-5 digits: the match starts at the first block;
/// * `Ssn`: three joined blocks of 3, 2, 4; `Phone`: of 3, 3, 4. The match starts at the first
///   block, at a "(" just before it, or at a "1" up to 3 bytes before it;
/// * `Plus`: '+' followed by a digit 1-9 that starts a block of 8+ digits or of 1-3 digits
///   followed by ' ', '.' or '-' (`plus_shape`), where the match starts;
/// * `Upper`: two upper-case letters followed by a block of 2+ digits, where the match starts,
///   when no word byte comes before the letters (the IBAN pattern's `\b`: in base64, two
///   capitals and two digits come every 250 bytes, nearly always after a word byte).
///
/// Word boundaries make each block of a match a whole block (a digit before or after one
/// would be a word byte), which is why block lengths can be compared exactly. Each trigger is
/// found at the start of its (first) block, so a range's triggers are those of the blocks that
/// start in it, whatever lies before or after (`shape_triggers`). Stops when `f` returns false.
#[cfg(test)]
fn digit_triggers(text: &[u8], f: impl FnMut(Trigger, usize, usize) -> bool) {
    shape_triggers(text, 0, text.len(), false, f);
}

/// Whether the digits at `i`, right after a '+', can begin an international phone number
/// (`DIGIT_GATED`'s two `Plus` patterns): a first digit 1-9, and a block of 8 or more digits
/// (`\+[1-9]\d{7,14}\b`) or of 1 to 3 followed by one of " .-" (`\+[1-9]\d{0,2}[ .-]...`).
/// Base64 (images and files in agent messages) has a '+' followed by a digit every 450 bytes
/// or so, and almost never either shape; each was a regex search of both patterns.
#[inline]
fn plus_shape(text: &[u8], i: usize) -> bool {
    if text[i] == b'0' {
        return false;
    }
    let n = text[i..].iter().take(8).take_while(|b| b.is_ascii_digit()).count();
    n >= 8 || (n <= 3 && matches!(text.get(i + n), Some(b' ' | b'.' | b'-')))
}

/// Starts of blocks one window reports: bits 2 to 44 of a 64-byte window whose bit 0 is the
/// byte two before the first of them (`ShapeMasks`).
const SHAPE_STEP: usize = 43;

/// `digit_triggers` of the blocks that start in `[from, to)`; `text` is the whole text (the
/// bytes around the range decide where its blocks begin and end). False when `f` stopped it.
/// With `luhn`, a block of 12-19 digits that fails the Luhn check is no `Card` trigger (for
/// card entries that `Engine::card_block_rejected` would reject it for: `Engine::card_luhn`).
fn shape_triggers(
    text: &[u8],
    from: usize,
    to: usize,
    luhn: bool,
    f: impl FnMut(Trigger, usize, usize) -> bool,
) -> bool {
    shape_triggers_with(text, from, to, Simd::detect(), luhn, f)
}

/// `shape_triggers` reading masks with `simd`: a level the CPU has (`Simd::detect`; the tests
/// pass each of `Simd::available`).
fn shape_triggers_with(
    text: &[u8],
    from: usize,
    to: usize,
    simd: Simd,
    luhn: bool,
    f: impl FnMut(Trigger, usize, usize) -> bool,
) -> bool {
    // With AVX-512, ranges of a few windows (the 64-byte chunks `Engine::fused` gives) go one
    // window at a time with the AVX-512 masks, and longer ones four at a time in AVX2
    // registers (`shapes_x4`; an AVX-512 CPU has AVX2): since the blocks of 12-19 digits are
    // checked in batches (`Longs`), most groups of four on digit-heavy text have no trigger
    // and end at one test. On an AMD EPYC with AVX-512 VBMI against `shapes_avx512` for every
    // range (`benchmarks/masking_ab.py`, 4 rounds): digit-heavy 1.50x (3.9 to 5.8 GB/s),
    // PII-dense 1.17x, base64 JSON 1.10x; for every range including the short ones, prose lost
    // 6%, which the short ranges' own path keeps.
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx512 && to.saturating_sub(from) < 4 * SHAPE_STEP {
        // SAFETY: the CPU has AVX-512BW (`Simd::detect`).
        return unsafe { shapes_avx512(text, from, to, luhn, f) };
    }
    #[cfg(target_arch = "x86_64")]
    if simd >= Simd::Avx2 {
        // SAFETY: the CPU has AVX2 (`Simd::detect`).
        return unsafe { shapes_avx2(text, from, to, luhn, f) };
    }
    shapes_loop(text, from, to, simd, luhn, f)
}

/// `shapes_loop` compiled for AVX2, so that `masks_avx2` is inlined rather than called per
/// window (about a quarter of the digit-heavy text's time in a perf profile on an AMD EPYC
/// without AVX-512); see `movemask_opaque` for what that took.
///
/// Whole windows go four at a time (`shapes_x4`); the first (which may begin before the text)
/// and the last few (which may run past `to` or the text) go one at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn shapes_avx2(
    text: &[u8],
    from: usize,
    to: usize,
    luhn: bool,
    mut f: impl FnMut(Trigger, usize, usize) -> bool,
) -> bool {
    let mut s = from;
    if s < 2 {
        let first = to.min(s + SHAPE_STEP);
        if !shapes_loop(text, s, first, Simd::Avx2, luhn, &mut f) {
            return false;
        }
        s = first;
    }
    let mut longs = Longs::new();
    while s + 4 * SHAPE_STEP <= to && s + 3 * SHAPE_STEP + 62 <= text.len() {
        if longs.n + 4 > LONG_BATCH && !longs.flush(text, Simd::Avx2, &mut f) {
            return false;
        }
        // SAFETY: the CPU has AVX2 (the caller's feature); the four windows' bytes,
        // `text[s - 2..s + 3 * SHAPE_STEP + 62]`, are in `text` (`s >= 2`).
        if !unsafe { shapes_x4(text, s, luhn.then_some(&mut longs), &mut f) } {
            return false;
        }
        s += 4 * SHAPE_STEP;
    }
    longs.flush(text, Simd::Avx2, &mut f) && shapes_loop(text, s, to, Simd::Avx2, luhn, f)
}

/// Four whole windows of `shapes_loop`, at `s`, `s + 43`, `s + 86` and `s + 129`, with
/// `ShapeMasks::of` worked out for all four at once in the 64-bit lanes of AVX2 registers
/// (its shifts and ands are the same in every lane). Four windows in five or so have no
/// trigger on digit-heavy text (most of the rest a 12-digit UUID tail); a group of four with
/// none is done after one test, and the others report their triggers window by window, in
/// order. The window's bytes must be in `text` (`s >= 2` and
/// `s + 3 * SHAPE_STEP + 62 <= text.len()`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn shapes_x4(
    text: &[u8],
    s: usize,
    longs: Option<&mut Longs>,
    f: &mut impl FnMut(Trigger, usize, usize) -> bool,
) -> bool {
    use std::arch::x86_64::*;
    debug_assert!(s >= 2 && s + 3 * SHAPE_STEP + 62 <= text.len());
    // SAFETY (all below): AVX2 is the function's feature; the loads read the windows' bytes.
    let p = unsafe { text.as_ptr().add(s - 2) };
    let k = [0, 1, 2, 3].map(|j| unsafe { masks_avx2(p.add(j * SHAPE_STEP)) });
    let lanes = |m: fn(&ChunkMasks) -> u64| {
        _mm256_setr_epi64x(m(&k[0]) as i64, m(&k[1]) as i64, m(&k[2]) as i64, m(&k[3]) as i64)
    };
    let (d, sep) = (lanes(|k| k.digit), lanes(|k| k.sep));
    let (plus, upper) = (lanes(|k| k.plus), lanes(|k| k.upper));
    macro_rules! shl {
        ($x:expr, $n:literal) => {
            _mm256_slli_epi64::<$n>($x)
        };
    }
    macro_rules! shr {
        ($x:expr, $n:literal) => {
            _mm256_srli_epi64::<$n>($x)
        };
    }
    let and = |a, b| _mm256_and_si256(a, b);
    let or = |a, b| _mm256_or_si256(a, b);
    let andnot = |not: __m256i, b| _mm256_andnot_si256(not, b);
    // as in `ShapeMasks::of`
    let starts = andnot(shl!(d, 1), d);
    let r2 = and(d, shr!(d, 1));
    let r4 = and(r2, shr!(r2, 2));
    let r6 = and(r4, shr!(r2, 4));
    let r8 = and(r4, shr!(r4, 4));
    let r12 = and(r8, shr!(r4, 8));
    let r20 = and(r12, shr!(r8, 12));
    let long = andnot(r20, and(starts, r12));
    let plus = and(shl!(plus, 1), d);
    let upper = and(and(starts, r2), and(shl!(upper, 1), shl!(upper, 2)));
    let joined_before = and(shl!(sep, 1), or(shl!(d, 2), and(shl!(sep, 2), shl!(d, 3))));
    let maybe_joined = and(andnot(r6, and(starts, r4)), joined_before);
    let zero = _mm256_setzero_si256();
    let (mut card, mut ssn, mut phone) = (zero, zero, zero);
    if _mm256_testz_si256(maybe_joined, maybe_joined) == 0 {
        let r3 = and(r2, shr!(d, 2));
        let r5 = and(r4, shr!(d, 4));
        let e2 = andnot(shr!(d, 2), and(starts, r2));
        let e3 = andnot(shr!(d, 3), and(starts, r3));
        let e4 = andnot(shr!(d, 4), and(starts, r4));
        let e5 = andnot(shr!(d, 5), and(starts, r5));
        let e6 = andnot(shr!(d, 6), and(starts, r6));
        // blocks `x` of `n` digits followed by one or two separators and a block of `y`
        macro_rules! join {
            ($x:expr, $n:literal, $n1:literal, $n2:literal, $y:expr) => {{
                let y = $y;
                and(and($x, shr!(sep, $n)), or(shr!(y, $n1), and(shr!(sep, $n1), shr!(y, $n2))))
            }};
        }
        card = join!(e4, 4, 5, 6, or(join!(e4, 4, 5, 6, e4), join!(e6, 6, 7, 8, or(e4, e5))));
        ssn = join!(e3, 3, 4, 5, join!(e2, 2, 3, 4, e4));
        phone = join!(e3, 3, 4, 5, join!(e3, 3, 4, 5, e4));
    }
    let keep = _mm256_set1_epi64x((((1u64 << SHAPE_STEP) - 1) << 2) as i64);
    let get = |v: __m256i| {
        let mut a = [0u64; 4];
        // SAFETY: `a` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(a.as_mut_ptr().cast(), v) };
        a
    };
    // with `luhn`, the long blocks are noted (`Longs`) and left out of the windows' triggers
    let luhn = longs.is_some();
    let (want, long) = match longs {
        Some(longs) => {
            longs.note4(s, std::array::from_fn(|j| k[j].digit), get(and(long, keep)));
            (and(or(or(card, or(ssn, phone)), or(plus, upper)), keep), _mm256_setzero_si256())
        }
        None => (and(or(or(or(long, card), or(ssn, phone)), or(plus, upper)), keep), long),
    };
    if _mm256_testz_si256(want, want) == 1 {
        return true;
    }
    let (wants, long, card, ssn) = (get(want), get(long), get(card), get(ssn));
    let (phone, plus, upper) = (get(phone), get(plus), get(upper));
    for j in 0..4 {
        if wants[j] == 0 {
            continue;
        }
        let m =
            ShapeMasks { long: long[j], card: card[j], ssn: ssn[j], phone: phone[j], plus: plus[j], upper: upper[j] };
        if !window_triggers(text, s + j * SHAPE_STEP, k[j].digit, &m, wants[j], Simd::Avx2, luhn, f) {
            return false;
        }
    }
    true
}

/// `shapes_loop` compiled for AVX-512: the masks are computed inline, in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn shapes_avx512(
    text: &[u8],
    from: usize,
    to: usize,
    luhn: bool,
    f: impl FnMut(Trigger, usize, usize) -> bool,
) -> bool {
    shapes_loop(text, from, to, Simd::Avx512, luhn, f)
}

/// The window loop of `shape_triggers_with`: the masks of 64 bytes from two before the next
/// start to look at, then every trigger of 43 starts at once (`ShapeMasks`), with no state
/// carried from window to window. Every window's masks are worked out, with no branch on
/// whether it holds digits: on digit-heavy text about three windows in four have two digits in
/// a row, and a branch on that was mispredicted often enough to cost more than the shifts it
/// saved (the pass alone went from 2.8 to 3.5 GB/s on the benchmark's digit-heavy 4 MiB). It
/// lost 16% on prose, where `Engine::fused` runs it only on the chunks with digits; without a
/// fused pass (a catalogue of digit entries alone) prose masks about 7% slower. Choosing per
/// block of windows from how many had digits was slower on all three texts.
///
/// With `luhn`, the blocks of 12-19 digits are checked batch by batch (`LONG_BATCH`), after
/// the batch's other triggers, so the triggers do not all come in the order of the text.
#[inline(always)]
fn shapes_loop(
    text: &[u8],
    from: usize,
    to: usize,
    simd: Simd,
    luhn: bool,
    mut f: impl FnMut(Trigger, usize, usize) -> bool,
) -> bool {
    let mut s = from;
    if !luhn || to.saturating_sub(from) <= 2 * SHAPE_STEP {
        // (a range of one or two windows, such as the 64 bytes `Engine::fused` gives: no batch)
        while s < to {
            let k = window_masks(text, s, simd);
            let keep = ((1u64 << SHAPE_STEP.min(to - s)) - 1) << 2;
            let m = ShapeMasks::of(&k);
            let want = (m.long | m.card | m.ssn | m.phone | m.plus | m.upper) & keep;
            if !window_triggers(text, s, k.digit, &m, want, simd, luhn, &mut f) {
                return false;
            }
            s += SHAPE_STEP;
        }
        return true;
    }
    // (with `luhn`) the blocks of 12-19 digits, checked batch by batch
    let mut longs = Longs::new();
    while s < to {
        let stop = to.min(s.saturating_add(LONG_BATCH * SHAPE_STEP));
        while s < stop {
            let k = window_masks(text, s, simd);
            let d = k.digit;
            let keep = ((1u64 << SHAPE_STEP.min(to - s)) - 1) << 2;
            let mut m = ShapeMasks::of(&k);
            longs.note(s, d, m.long & keep);
            m.long = 0;
            let want = (m.card | m.ssn | m.phone | m.plus | m.upper) & keep;
            if want != 0 && !window_triggers(text, s, d, &m, want, simd, luhn, &mut f) {
                return false;
            }
            s += SHAPE_STEP;
        }
        if !longs.flush(text, simd, &mut f) {
            return false;
        }
    }
    true
}

/// Windows whose blocks of 12-19 digits the shapes pass checks together (`Longs`), with
/// `luhn`, after their other triggers. On digit-heavy text such a block (nearly always the
/// 12-digit tail of a UUID, which fails the check) is the only trigger of about one window in
/// five, at random: reported window by window, each was a branch the CPU mispredicted, taken
/// to run the Luhn check. Noted with no branch and checked after the batch, the branch is
/// taken only where another trigger is, and the checks' own branch (a block that passes) is
/// rarely taken.
const LONG_BATCH: usize = 32;

/// The blocks of 12-19 digits of up to `LONG_BATCH` windows, as (window, digit mask, bits of
/// the blocks' starts), to be checked (`Longs::flush`).
struct Longs {
    // (not zeroed: a short range, such as the 64 bytes `Engine::fused` gives, costs no more
    // than before; only the first `n` are read)
    noted: [MaybeUninit<(usize, u64, u64)>; LONG_BATCH],
    n: usize,
}

impl Longs {
    #[inline(always)]
    fn new() -> Longs {
        Longs { noted: [const { MaybeUninit::uninit() }; LONG_BATCH], n: 0 }
    }

    /// Notes the window at `s`'s `long` bits, with no branch (`n` moves on when there are any).
    /// At most `LONG_BATCH` windows between flushes.
    #[inline(always)]
    fn note(&mut self, s: usize, d: u64, long: u64) {
        self.noted[self.n].write((s, d, long));
        self.n += usize::from(long != 0);
    }

    /// `note` for the four windows of `shapes_x4` (from `s`, `SHAPE_STEP` apart), with `n` kept
    /// in a register: noting them one by one stored `n` and loaded it again for the next (the
    /// stores to `noted` might have been to it, as far as the compiler could tell), and
    /// those stores were a seventh of the samples of the shapes pass on PII-dense text.
    /// The caller leaves room for four.
    #[inline(always)]
    fn note4(&mut self, s: usize, d: [u64; 4], long: [u64; 4]) {
        let mut n = self.n;
        for j in 0..4 {
            self.noted[n].write((s + j * SHAPE_STEP, d[j], long[j]));
            n += usize::from(long[j] != 0);
        }
        self.n = n;
    }

    /// `f(Card, i, i)` for each noted block that passes the Luhn check; false when `f` stopped.
    #[inline(always)]
    fn flush(&mut self, text: &[u8], simd: Simd, f: &mut impl FnMut(Trigger, usize, usize) -> bool) -> bool {
        let n = std::mem::take(&mut self.n);
        for slot in &self.noted[..n] {
            // SAFETY: the first `n` were written since the last flush.
            let (w, d, mut long) = unsafe { slot.assume_init() };
            while long != 0 {
                let bit = long.trailing_zeros();
                long &= long - 1;
                // (bit >= 2; the block's digits end inside the window: `window_triggers`)
                let i = w + bit as usize - 2;
                if luhn_block(text, i, (!(d >> bit)).trailing_zeros(), simd) && !f(Trigger::Card, i, i) {
                    return false;
                }
            }
        }
        true
    }
}

/// The triggers of the window at `s` (`shapes_loop`) whose bits are in `want`, in order, given
/// its masks `m` and its digit mask `d`. False when `f` stopped.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn window_triggers(
    text: &[u8],
    s: usize,
    d: u64,
    m: &ShapeMasks,
    mut want: u64,
    simd: Simd,
    luhn: bool,
    f: &mut impl FnMut(Trigger, usize, usize) -> bool,
) -> bool {
    while want != 0 {
        let bit = want.trailing_zeros();
        want &= want - 1;
        let i = s + bit as usize - 2; // (bit >= 2)
        let on = |mask: u64| mask >> bit & 1 == 1;
        // A long block's digits end inside the window (bit + 19 < 64), so its length is
        // read from the digit mask. On digit-heavy text most are the 12-digit tails of
        // UUIDs, which fail Luhn: checked here, they cost no call.
        let rejected = || luhn && on(m.long) && !luhn_block(text, i, (!(d >> bit)).trailing_zeros(), simd);
        let go = (!on(m.long | m.card) || rejected() || f(Trigger::Card, i, i))
            && (!on(m.ssn) || f(Trigger::Ssn, i.saturating_sub(3), i))
            && (!on(m.phone) || f(Trigger::Phone, i.saturating_sub(3), i))
            && (!on(m.plus) || !plus_shape(text, i) || f(Trigger::Plus, i - 1, i - 1))
            && (!on(m.upper) || (i >= 3 && super::runs::is_word(text[i - 3])) || f(Trigger::Upper, i - 2, i - 2));
        if !go {
            return false;
        }
    }
    true
}

/// Where the triggers of `digit_triggers` are in a 64-byte window (`ChunkMasks`), by the start
/// of their (first) block: bit k of each mask stands for the block starting at byte k. Exact
/// for bits 2 to 44: a block starting there is known to start there (bits k - 1 and k - 2 are
/// in the window), and everything a trigger needs lies within 19 bytes after it (4 + 2 + 6 +
/// 2 + 5 digits and separators, then a byte that is no digit).
#[derive(Clone, Copy, Debug)]
struct ShapeMasks {
    /// Blocks of 12-19 digits (`Card`).
    long: u64,
    /// First blocks of joined 4, 4, 4 and 4, 6, 4-5 (`Card`).
    card: u64,
    /// First blocks of joined 3, 2, 4.
    ssn: u64,
    /// First blocks of joined 3, 3, 4.
    phone: u64,
    /// Digits right after a '+' (the trigger needs a digit 1-9, checked when reported).
    plus: u64,
    /// Blocks of 2+ digits after two capitals.
    upper: u64,
}

impl ShapeMasks {
    /// Shifts and ands over the window's masks: bit k of `rN` is set when bytes k to k + N - 1
    /// are digits, of `exact(rN, N)` when a block of exactly N digits starts at k.
    ///
    /// The three-block shapes are worked out only when the window has a block that may be the
    /// last of one: 4 or 5 digits, joined to a block before it. Dates, amounts, versions and
    /// UUIDs have none (their joined blocks end in fewer digits, or more), so on digit-heavy
    /// text this skips about two thirds of the work.
    #[inline(always)]
    fn of(k: &ChunkMasks) -> ShapeMasks {
        let (d, sep) = (k.digit, k.sep);
        let starts = d & !(d << 1);
        let r2 = d & (d >> 1);
        let r4 = r2 & (r2 >> 2);
        let r6 = r4 & (r2 >> 4);
        let r8 = r4 & (r4 >> 4);
        let r12 = r8 & (r4 >> 8);
        let r20 = r12 & (r8 >> 12);
        let mut m = ShapeMasks {
            long: starts & r12 & !r20,
            card: 0,
            ssn: 0,
            phone: 0,
            plus: (k.plus << 1) & d,
            upper: starts & r2 & (k.upper << 1) & (k.upper << 2),
        };
        // a separator before, and a digit before it or before another separator
        let joined_before = (sep << 1) & ((d << 2) | ((sep << 2) & (d << 3)));
        if starts & r4 & !r6 & joined_before == 0 {
            return m;
        }
        let r3 = r2 & (d >> 2);
        let r5 = r4 & (d >> 4);
        let exact = |r: u64, n: u32| starts & r & !(d >> n);
        let (e2, e3, e4, e5, e6) = (exact(r2, 2), exact(r3, 3), exact(r4, 4), exact(r5, 5), exact(r6, 6));
        // blocks `x` of `n` digits followed by one or two separators and a block of `y`
        let join = |x: u64, n: u32, y: u64| x & (sep >> n) & ((y >> (n + 1)) | ((sep >> (n + 1)) & (y >> (n + 2))));
        m.card = join(e4, 4, join(e4, 4, e4) | join(e6, 6, e4 | e5));
        m.ssn = join(e3, 3, join(e2, 2, e4));
        m.phone = join(e3, 3, join(e3, 3, e4));
        m
    }
}

/// Whether the block of `len` (12 to 19) digits at `text[at..]` passes the Luhn check
/// (`validators::luhn`), with AVX-512 where `simd` says the CPU has it.
#[inline(always)]
fn luhn_block(text: &[u8], at: usize, len: u32, simd: Simd) -> bool {
    let block = &text[at..at + len as usize];
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx512 {
        // SAFETY: the CPU has AVX-512BW (`Simd::detect`); `block` is `len` bytes long.
        return unsafe { luhn_avx512(block) };
    }
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx2 {
        // SAFETY: the CPU has AVX2 (`Simd::detect`); 32 bytes from `at` are in `text`, or
        // `block` is copied out.
        return unsafe {
            if at + 32 <= text.len() {
                luhn_avx2(text.as_ptr().add(at), len)
            } else {
                let mut buf = [b'0'; 32];
                buf[..block.len()].copy_from_slice(block);
                luhn_avx2(buf.as_ptr(), len)
            }
        };
    }
    let _ = simd;
    super::validators::luhn(block)
}

/// `luhn_avx512` with AVX2, for the `len` (12 to 19) digits at `p`, of 32 readable bytes: the
/// bytes past the block zeroed after the subtraction of `'0'`, every second digit from the
/// right doubled by a table lookup and blended in, the digits summed. Against the validator's
/// byte loop in the same (AVX2-compiled) window loop: digit-heavy text 1.10x, PII-dense 1.07x
/// (`benchmarks/masking_ab.py`, 6 rounds, AMD EPYC); reading the block in place rather than
/// from a copy: digit-heavy 1.05x.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn luhn_avx2(p: *const u8, len: u32) -> bool {
    use std::arch::x86_64::*;
    debug_assert!((12..=19).contains(&len));
    let iota = _mm256_setr_epi8(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
        30, 31,
    );
    let inside = _mm256_cmpgt_epi8(_mm256_set1_epi8(len as i8), iota);
    let v = _mm256_sub_epi8(_mm256_loadu_si256(p as *const __m256i), _mm256_set1_epi8(b'0' as i8));
    let v = _mm256_and_si256(v, inside);
    // doubled: byte j when len - 1 - j is odd, that is when j and len are both odd or even
    let (even, odd) = (_mm256_set1_epi16(0x00ff), _mm256_set1_epi16(0xff00u16 as i16));
    let doubled = if len.is_multiple_of(2) { even } else { odd };
    let table = _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 2, 4, 6, 8, 1, 3, 5, 7, 9, 0, 0, 0, 0, 0, 0));
    let x = _mm256_blendv_epi8(v, _mm256_shuffle_epi8(table, v), doubled);
    let s = _mm256_sad_epu8(x, _mm256_setzero_si256());
    let s = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    let sum = _mm_cvtsi128_si64(_mm_add_epi64(s, _mm_unpackhi_epi64(s, s)));
    sum % 10 == 0
}

/// `validators::luhn` of a block of 12-19 digits in one register: the block loaded under a
/// mask (bytes past it are neither read nor summed), every second digit from the right
/// doubled by a table lookup, the digits summed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn luhn_avx512(block: &[u8]) -> bool {
    use std::arch::x86_64::*;
    debug_assert!((12..=19).contains(&block.len()) && block.iter().all(u8::is_ascii_digit));
    let len = block.len() as u32;
    let k: u64 = (1u64 << len) - 1;
    let v = _mm512_maskz_loadu_epi8(k, block.as_ptr() as *const i8);
    let v = _mm512_maskz_sub_epi8(k, v, _mm512_set1_epi8(b'0' as i8));
    // doubled: byte j when len - 1 - j is odd, that is when j and len are both odd or even
    let doubled = k & if len.is_multiple_of(2) { 0x5555_5555_5555_5555 } else { 0xaaaa_aaaa_aaaa_aaaa };
    let table = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 2, 4, 6, 8, 1, 3, 5, 7, 9, 0, 0, 0, 0, 0, 0));
    let x = _mm512_mask_shuffle_epi8(v, doubled, table, v);
    let sum = _mm512_reduce_add_epi64(_mm512_sad_epu8(x, _mm512_setzero_si512()));
    sum % 10 == 0
}

/// Bit masks of the 64 bytes `text[c..c + 64]`: bit k stands for `text[c + k]`, and bits past
/// the end of `text` are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ChunkMasks {
    /// ASCII digits.
    digit: u64,
    /// '+'.
    plus: u64,
    /// The bytes that may separate the blocks of a shape (`run_separator`).
    sep: u64,
    /// ASCII upper-case letters.
    upper: u64,
}

/// Non-zero when a block that reports a trigger of `digit_triggers`, or is the first of a
/// shape, may start in a whole chunk and is seen to within the chunk, from two of its masks,
/// `d` (digits) and `pu` ('+' or capitals), and the same masks' last bits in the chunk before
/// (`before_d`, `before_pu`: 0 or 1). A superset, so that the separators need not be read: a
/// block after '+' or two capitals starts with a digit after one of them; the first block of
/// a shape is followed, one or two bytes after its end, by a digit; a block of 12+ digits has
/// 12 in a row. What the chunk's last three bytes need of the next chunk is `NEXT_VISITS`.
///
/// A block that goes on from the chunk before is that chunk's (its start is there, where
/// `shape_triggers` finds it). The first and last bytes were once read as "may be either",
/// whatever was around them: on chat prose, where 38% of the chunks hold a digit, half of
/// the visits came from those bytes alone (5.1% of the chunks visited, now 2.1%).
#[inline(always)]
fn visit_within(d: u64, pu: u64, before_d: u64, before_pu: u64) -> u64 {
    let starts = d & !((d << 1) | before_d);
    let after = (pu << 1) | before_pu;
    let (d1, d2) = (d >> 1, d >> 2);
    let ends = (d << 1) & !d;
    let r2 = d & d1; // bit k: digits at k and k + 1
    let r4 = r2 & (r2 >> 2); // k to k + 3
    let r12 = r4 & (r4 >> 4) & (r4 >> 8); // k to k + 11
    (starts & after) | (ends & (d1 | d2)) | r12
}

/// Bit `8 * top + next`: whether a chunk whose last three bytes have the digit bits `top`
/// (bit 0 the third last) is visited for the first three bytes of the next chunk, whose digit
/// bits are `next`: a block that runs on into it (a start there is no block start, and the
/// block may be 12 digits long or the first of a shape), or one that ends in the last two
/// bytes and is followed by a digit one or two bytes past its end (what `visit_within` reads
/// within the chunk).
const NEXT_VISITS: u64 = {
    let mut table = 0u64;
    let mut i = 0;
    while i < 64 {
        let (top, next) = (i >> 3, i & 7);
        let (d61, d62, d63) = (top & 1 != 0, top & 2 != 0, top & 4 != 0);
        let (n0, n1, n2) = (next & 1 != 0, next & 2 != 0, next & 4 != 0);
        let runs_on = d63 && (n0 || n1 || n2); // into the next chunk, or ends at 63 (n1, n2)
        let ends_at_62 = d62 && !d63 && (n0 || n1);
        let ends_at_61 = d61 && !d62 && n0;
        if runs_on || ends_at_62 || ends_at_61 {
            table |= 1 << i;
        }
        i += 1;
    }
    table
};

/// The chunks of `Engine::fused` that the digit shapes visit, decided one chunk late (the
/// last bytes of a chunk want the next chunk's first): `push` takes a chunk's masks and says
/// whether the chunk before it is visited; `last` says it of the last chunk pushed, with
/// nothing after it in view. One word, so that the pass keeps it in a register: bit 0 for
/// `visit_within` of the last chunk pushed, bits 1-3 its last three digit bits, bit 4 its last
/// '+'-or-capital bit.
#[derive(Clone, Copy, Debug)]
struct Visits(u64);

impl Visits {
    /// No chunk pushed yet; the first one's first byte is read as a block start after a '+'.
    fn new() -> Visits {
        Visits(1 << 4)
    }

    #[inline(always)]
    fn push(&mut self, d: u64, pu: u64) -> bool {
        let s = self.0;
        let visit = (s | NEXT_VISITS >> (((s >> 1) & 7) << 3 | (d & 7))) & 1 != 0;
        let within = u64::from(visit_within(d, pu, (s >> 3) & 1, (s >> 4) & 1) != 0);
        self.0 = within | (d >> 61) << 1 | (pu >> 63) << 4;
        visit
    }

    fn last(&self) -> bool {
        (self.0 | NEXT_VISITS >> (((self.0 >> 1) & 7) << 3 | 7)) & 1 != 0
    }
}

/// The vector instructions `chunk_masks` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Simd {
    /// 16 bytes at a time (part of the x86_64 baseline; elsewhere, byte by byte).
    Sse2,
    /// 32 bytes at a time.
    Avx2,
    /// 64 bytes at a time, compared straight into bit masks.
    Avx512,
}

/// The environment variable that caps the vector instructions the masking passes use.
pub const SIMD_ENV: &str = "GRAPHWARDEN_SIMD";

impl Simd {
    /// The best this CPU has, capped by `GRAPHWARDEN_SIMD` (`Simd::cap`); worked out once (it
    /// is asked on hot paths: per class run, per shapes pass).
    pub(crate) fn detect() -> Simd {
        static LEVEL: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
        *LEVEL.get_or_init(|| Simd::cpu().min(Simd::cap().unwrap_or(Simd::Avx512)))
    }

    /// The best this CPU has.
    fn cpu() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512bw") {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Simd::Avx2;
            }
        }
        Simd::Sse2
    }

    /// The level `GRAPHWARDEN_SIMD` names (`avx512`, `avx2` or `sse2`): the widest
    /// the passes may use, whatever the CPU has. For operators whose CPUs slow down under
    /// AVX-512, and to compare the levels' passes on one machine (`benchmarks/masking_ab.py
    /// --simd`). Unset: no cap. Any other value is refused by `Engine::new` (`simd_env_error`)
    /// and caps nothing here.
    fn cap() -> Option<Simd> {
        Simd::parse(&std::env::var(SIMD_ENV).ok()?)
    }

    fn parse(name: &str) -> Option<Simd> {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512" => Some(Simd::Avx512),
            "avx2" => Some(Simd::Avx2),
            "sse2" => Some(Simd::Sse2),
            _ => None,
        }
    }

    /// Every level this CPU can run (for the tests).
    #[cfg(test)]
    fn available() -> Vec<Simd> {
        [Simd::Sse2, Simd::Avx2, Simd::Avx512].into_iter().filter(|&s| s <= Simd::detect()).collect()
    }
}

/// What is wrong with `GRAPHWARDEN_SIMD`, when it is set to a name `Simd::cap` does not know:
/// an operator who asked for a cap is told so, rather than left with passes they meant to avoid.
fn simd_env_error() -> Option<String> {
    let v = std::env::var_os(SIMD_ENV)?;
    match v.to_str().and_then(Simd::parse) {
        Some(_) => None,
        None => Some(format!("{SIMD_ENV}={} is not one of avx512, avx2, sse2", v.to_string_lossy())),
    }
}

/// `ChunkMasks` of the window of `shapes_loop` at `s`, the 64 bytes `text[s - 2..s + 62]`, with
/// the vector instructions `simd` names (which the CPU must have: `Simd::detect`). Bytes
/// before or past the text are zeros (in none of the masks, as if the text ended there).
#[inline(always)]
fn window_masks(text: &[u8], s: usize, simd: Simd) -> ChunkMasks {
    if s >= 2 && s + 62 <= text.len() {
        return whole_chunk_masks(&text[s - 2..s + 62], simd);
    }
    let mut buf = [0u8; 64];
    let lo = s.saturating_sub(2);
    let hi = text.len().min(s + 62);
    if lo < hi {
        buf[lo + 2 - s..hi + 2 - s].copy_from_slice(&text[lo..hi]);
    }
    whole_chunk_masks(&buf, simd)
}

/// `ChunkMasks` of `text[c..c + 64]` (for the tests: `window_masks` two bytes on).
#[cfg(test)]
fn chunk_masks(text: &[u8], c: usize, simd: Simd) -> ChunkMasks {
    window_masks(text, c + 2, simd)
}

/// `ChunkMasks` of the 64 bytes of `chunk`, with the vector instructions `simd` names (which
/// the CPU must have: `Simd::detect`).
#[inline(always)]
fn whole_chunk_masks(chunk: &[u8], simd: Simd) -> ChunkMasks {
    assert!(chunk.len() >= 64);
    #[cfg(target_arch = "x86_64")]
    {
        let p = chunk.as_ptr();
        // SAFETY: `p` points at 64 readable bytes; AVX2 or AVX-512 only when the CPU has them
        // (`Simd::detect`); SSE2 is part of the x86_64 baseline.
        unsafe {
            match simd {
                Simd::Avx512 => masks_avx512(p),
                Simd::Avx2 => masks_avx2(p),
                Simd::Sse2 => masks_sse2(p),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = simd;
        chunk_masks_bytes(&chunk[..64])
    }
}

/// `chunk_masks` of up to 64 bytes, byte by byte.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn chunk_masks_bytes(chunk: &[u8]) -> ChunkMasks {
    let mut k = ChunkMasks { digit: 0, plus: 0, sep: 0, upper: 0 };
    for (i, &b) in chunk.iter().enumerate() {
        k.digit |= u64::from(b.is_ascii_digit()) << i;
        k.plus |= u64::from(b == b'+') << i;
        k.sep |= u64::from(run_separator(b)) << i;
        k.upper |= u64::from(b.is_ascii_uppercase()) << i;
    }
    k
}

/// `chunk_masks` of the 64 bytes at `p`, in one register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn masks_avx512(p: *const u8) -> ChunkMasks {
    use std::arch::x86_64::*;
    let set = |b: u8| _mm512_set1_epi8(b as i8);
    let v = _mm512_loadu_si512(p as *const __m512i);
    let eq = |b: u8| _mm512_cmpeq_epi8_mask(v, set(b));
    // unsigned: '0'..='9' and 'A'..='Z' are the bytes less than 10 (26) above '0' ('A')
    let digit = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, set(b'0')), set(10));
    let upper = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, set(b'A')), set(26));
    // ' ', '-', '.', and '(' or ')' (0x28 and 0x29: equal once bit 0 is cleared)
    let paren = _mm512_cmpeq_epi8_mask(_mm512_and_si512(v, set(0xfe)), set(b'('));
    let sep = eq(b' ') | eq(b'-') | eq(b'.') | paren;
    ChunkMasks { digit, plus: eq(b'+'), sep, upper }
}

/// `chunk_masks` of the 64 bytes at `p`, 16 at a time.
#[cfg(target_arch = "x86_64")]
unsafe fn masks_sse2(p: *const u8) -> ChunkMasks {
    use std::arch::x86_64::*;
    let set = |b: u8| _mm_set1_epi8(b as i8);
    let mut k = ChunkMasks { digit: 0, plus: 0, sep: 0, upper: 0 };
    for i in 0..4 {
        let v = _mm_loadu_si128(p.add(16 * i) as *const __m128i);
        let eq = |b: u8| _mm_cmpeq_epi8(v, set(b));
        // signed compares: bytes >= 0x80 are negative, never digits or capitals
        let d = _mm_and_si128(_mm_cmpgt_epi8(v, set(b'/')), _mm_cmplt_epi8(v, set(b':')));
        let u = _mm_and_si128(_mm_cmpgt_epi8(v, set(b'@')), _mm_cmplt_epi8(v, set(b'[')));
        // ' ', '-', '.', and '(' or ')' (0x28 and 0x29: equal once bit 0 is cleared)
        let paren = _mm_cmpeq_epi8(_mm_and_si128(v, set(0xfe)), set(b'('));
        let s = _mm_or_si128(_mm_or_si128(eq(b' '), paren), _mm_or_si128(eq(b'-'), eq(b'.')));
        let at = 16 * i;
        k.digit |= u64::from(_mm_movemask_epi8(d) as u16) << at;
        k.plus |= u64::from(_mm_movemask_epi8(eq(b'+')) as u16) << at;
        k.sep |= u64::from(_mm_movemask_epi8(s) as u16) << at;
        k.upper |= u64::from(_mm_movemask_epi8(u) as u16) << at;
    }
    k
}

/// `chunk_masks` of the 64 bytes at `p`, 32 at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn masks_avx2(p: *const u8) -> ChunkMasks {
    use std::arch::x86_64::*;
    let set = |b: u8| _mm256_set1_epi8(b as i8);
    let seps = _mm256_broadcastsi128_si256(_mm_setr_epi8(
        0x20, -1, -1, -1, -1, -1, -1, -1, 0x28, 0x29, -1, -1, -1, 0x2d, 0x2e, -1,
    ));
    let mut k = ChunkMasks { digit: 0, plus: 0, sep: 0, upper: 0 };
    for i in 0..2 {
        let v = _mm256_loadu_si256(p.add(32 * i) as *const __m256i);
        let eq = |b: u8| _mm256_cmpeq_epi8(v, set(b));
        // signed compares: bytes >= 0x80 are negative, never digits or capitals
        let d = _mm256_and_si256(_mm256_cmpgt_epi8(v, set(b'/')), _mm256_cmpgt_epi8(set(b':'), v));
        let u = _mm256_and_si256(_mm256_cmpgt_epi8(v, set(b'@')), _mm256_cmpgt_epi8(set(b'['), v));
        // ' ', '(', ')', '-', '.': the separator with the byte's low nibble, looked up, is the
        // byte itself (bytes >= 0x80 look up 0, which none is)
        let s = _mm256_cmpeq_epi8(_mm256_shuffle_epi8(seps, v), v);
        let at = 32 * i;
        k.digit |= u64::from(movemask_opaque(d)) << at;
        k.plus |= u64::from(movemask_opaque(eq(b'+'))) << at;
        k.sep |= u64::from(movemask_opaque(s)) << at;
        k.upper |= u64::from(movemask_opaque(u)) << at;
    }
    k
}

/// `_mm256_movemask_epi8` that the compiler cannot see through: with the intrinsic, LLVM read
/// the masks' shifts and ands in `ShapeMasks::of` as operations on vectors of 64 booleans and
/// lowered them byte by byte (`vpinsrb`), when the loop was compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn movemask_opaque(v: std::arch::x86_64::__m256i) -> u32 {
    let r: u32;
    // SAFETY: reads a register, writes one; the CPU has AVX2 (the caller's feature).
    unsafe {
        std::arch::asm!("vpmovmskb {r:e}, {v}", r = out(reg) r, v = in(ymm_reg) v, options(pure, nomem, nostack));
    }
    r
}

impl Drop for Db {
    fn drop(&mut self) {
        unsafe {
            for s in self.pool.get_mut().map(std::mem::take).unwrap_or_default() {
                hs_free_scratch(s);
            }
            if !self.proto.is_null() {
                hs_free_scratch(self.proto);
            }
            if !self.db.is_null() {
                hs_free_database(self.db);
            }
        }
    }
}

impl Db {
    fn compile(
        exprs: &[std::ffi::CString],
        expr_entry: Vec<usize>,
        back: Vec<(usize, usize)>,
        entries: &[EntrySpec],
    ) -> Result<Db, CompileError> {
        let mut db: *mut hs_database_t = std::ptr::null_mut();
        let mut proto: *mut hs_scratch_t = std::ptr::null_mut();
        let ptrs: Vec<*const std::os::raw::c_char> = exprs.iter().map(|c| c.as_ptr()).collect();
        // Every match end is reported: exact spans are then searched only around them.
        let flags: Vec<u32> = vec![0; exprs.len()];
        let ids: Vec<u32> = (0..exprs.len() as u32).collect();
        let mut err: *mut hs_compile_error_t = std::ptr::null_mut();
        let rc = unsafe {
            hs_compile_multi(
                ptrs.as_ptr(),
                flags.as_ptr(),
                ids.as_ptr(),
                exprs.len() as u32,
                HS_MODE_BLOCK,
                std::ptr::null(),
                &mut db,
                &mut err,
            )
        };
        if rc != HS_SUCCESS {
            let (idx, message) = unsafe {
                if err.is_null() {
                    (-1, format!("hs_compile_multi failed ({rc})"))
                } else {
                    let m = std::ffi::CStr::from_ptr((*err).message).to_string_lossy().into_owned();
                    let i = (*err).expression;
                    hs_free_compile_error(err);
                    (i, m)
                }
            };
            let id = if idx >= 0 { entries[expr_entry[idx as usize]].id.clone() } else { "(catalogue)".into() };
            return Err(CompileError { id, message: format!("Hyperscan: {message}") });
        }
        if unsafe { hs_alloc_scratch(db, &mut proto) } != HS_SUCCESS {
            unsafe { hs_free_database(db) };
            return Err(CompileError { id: "(catalogue)".into(), message: "hs_alloc_scratch failed".into() });
        }
        Ok(Db { db, proto, pool: Mutex::new(Vec::new()), expr_entry, back, triggers: Vec::new(), gate: None })
    }

    /// A scratch space for one scan: from the pool, or cloned from the prototype (None when
    /// cloning fails). Give it back with `put_scratch`.
    fn take_scratch(&self) -> Option<*mut hs_scratch_t> {
        if let Some(s) = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Some(s);
        }
        let mut s: *mut hs_scratch_t = std::ptr::null_mut();
        (unsafe { hs_clone_scratch(self.proto, &mut s) } == HS_SUCCESS).then_some(s)
    }

    fn put_scratch(&self, scratch: *mut hs_scratch_t) {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(scratch);
    }

    /// Whether any expression matches in `text` (stops at the first match).
    /// `text` must be 64-byte aligned and followed by 64 readable bytes. True on any failure.
    fn any(&self, text: &[u8]) -> bool {
        if text.len() >= 1 << 30 {
            return true; // huge inputs: let the windowed scan decide
        }
        let Some(scratch) = self.take_scratch() else {
            return true;
        };
        let rc = unsafe {
            hs_scan(
                self.db,
                text.as_ptr() as *const _,
                text.len() as u32,
                0,
                scratch,
                Some(on_any),
                std::ptr::null_mut(),
            )
        };
        self.put_scratch(scratch);
        rc != HS_SUCCESS // terminated by a match, or an error (fail closed: "may match")
    }

    /// Whether any expression may match in `text`: Hyperscan over the gate's regions, or over
    /// the whole text.
    fn may_occur(&self, text: &[u8]) -> bool {
        if let Some(g) = &self.gate {
            let mut found = Found::default();
            if g.regions(text, 0, text.len(), max_regions(text.len()), &mut found).is_ok() {
                return !found.ends.is_empty()
                    || found.regions.iter().any(|&(a, b)| with_aligned(&text[a..b], |t| self.any(t)));
            }
        }
        with_aligned(text, |t| self.any(t))
    }

    /// Adds (entry, lo, hi) windows of possible match starts to `found` for the matches in
    /// `text`, which is the `pieces` `[a, b)` of the input back to back (`with_aligned_pieces`);
    /// marks `everywhere` the entries it cannot tell about. `text` must be 64-byte aligned,
    /// followed by 64 readable bytes and shorter than 4 GiB.
    ///
    /// A match inside a piece is found as in the piece alone. One that runs from a piece into
    /// the next is not in the input: its end is mapped into the later piece, which only widens
    /// the windows the exact regexes search (as a match cut by a region's edge would).
    fn scan(
        &self,
        text: &[u8],
        pieces: &[(usize, usize)],
        found: &mut Vec<(usize, usize, usize)>,
        everywhere: &mut [bool],
    ) {
        let mut at = 0;
        let offsets = pieces
            .iter()
            .map(|&(a, b)| {
                at += b - a;
                (at - (b - a), a)
            })
            .collect();
        let mut ends = Ends::new(&self.back, offsets, 0);
        let Some(scratch) = self.take_scratch() else {
            // Fail closed: search every entry everywhere (the exact regexes decide).
            self.expr_entry.iter().for_each(|&e| everywhere[e] = true);
            return;
        };
        let rc = unsafe {
            hs_scan(
                self.db,
                text.as_ptr() as *const _,
                text.len() as u32,
                0,
                scratch,
                Some(on_match),
                &mut ends as *mut Ends<'_> as *mut std::ffi::c_void,
            )
        };
        self.put_scratch(scratch);
        if ends.overflow || (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED) {
            self.expr_entry.iter().for_each(|&e| everywhere[e] = true);
            return;
        }
        found.extend(ends.windows.iter().map(|&(expr, lo, hi)| (self.expr_entry[expr as usize], lo, hi)));
    }

    /// `scan`'s windows from match ends that an exact gate found (`Found::ends`: expression,
    /// end in the text) instead of Hyperscan.
    /// (`bufs`: `Ends`' lists, taken and given back)
    fn confirmed(
        &self,
        matches: &[(u32, usize)],
        found: &mut Vec<(usize, usize, usize)>,
        everywhere: &mut [bool],
        bufs: &mut (Vec<(u32, usize, usize)>, Vec<usize>),
    ) {
        let (windows, open) = std::mem::take(bufs);
        let mut ends = Ends::reusing(&self.back, Vec::new(), windows, open);
        for &(x, end) in matches {
            ends.add(x, end);
        }
        if ends.overflow {
            self.expr_entry.iter().for_each(|&e| everywhere[e] = true);
        } else {
            found.extend(ends.windows.iter().map(|&(expr, lo, hi)| (self.expr_entry[expr as usize], lo, hi)));
        }
        *bufs = (ends.windows, ends.open);
    }
}

/// A detected span (validated), in input coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// Index of the catalogue entry that wins the label.
    pub entry: usize,
}

#[derive(Clone, Copy, Debug)]
struct Raw {
    start: usize,
    end: usize,
    /// The pattern's entry.
    entry: usize,
    span: Option<Span>,
}

/// Keep this much released text as look-behind context: for `\b`, and for the 25 bytes before
/// a card candidate that tell a UUID's last group (`validators::uuid_tail`).
const CONTEXT: usize = 32;

/// The windows of possible match starts that the match ends of one scan give, (expression,
/// lo, hi); past `MAX_ENDS` windows the database's entries are searched whole.
///
/// Consecutive ends of one expression are merged here, as they come: a pattern that ends in a
/// repeat with no `\b` after it (`sk-ant-[A-Za-z0-9_-]{20,200}`) has an end at every byte along
/// the token, about 80 per key. Kept one by one, they were a callback push each and then most of
/// the sort in `Engine::hits` (17% of the time on text with one Anthropic key per KiB).
struct Ends<'a> {
    windows: Vec<(u32, usize, usize)>,
    /// Per expression, the index in `windows` of its latest window (`usize::MAX`: none yet).
    open: Vec<usize>,
    /// `Db::back`.
    back: &'a [(usize, usize)],
    overflow: bool,
    /// Where each piece of the text that was scanned (`Db::scan`) begins: (offset in the
    /// scanned buffer, offset in the text).
    offsets: Vec<(usize, usize)>,
}

const MAX_ENDS: usize = 1 << 16;

#[cfg(test)]
thread_local! {
    /// Bytes of the spans `raw_matches` has searched on this thread (for the tests).
    static SEARCHED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

unsafe extern "C" fn on_any(_id: u32, _from: u64, _to: u64, _flags: u32, _ctx: *mut std::ffi::c_void) -> i32 {
    1 // stop at the first match
}

unsafe extern "C" fn on_match(id: u32, _from: u64, to: u64, _flags: u32, ctx: *mut std::ffi::c_void) -> i32 {
    let ends = &mut *(ctx as *mut Ends<'_>);
    // in the text: from the piece that holds the match's last byte
    let to = to as usize;
    let k = ends.offsets.partition_point(|&(buf, _)| buf < to).saturating_sub(1);
    let Some(&(buf, at)) = ends.offsets.get(k) else {
        ends.overflow = true; // nothing was scanned: fail closed
        return 0;
    };
    ends.add(id, at + (to - buf));
    0
}

impl<'a> Ends<'a> {
    /// (`expected`: about how many windows there will be, for the first allocation)
    fn new(back: &'a [(usize, usize)], offsets: Vec<(usize, usize)>, expected: usize) -> Ends<'a> {
        Ends::reusing(back, offsets, Vec::with_capacity(expected.min(MAX_ENDS)), Vec::new())
    }

    /// `new` with the `windows` and `open` lists of an earlier one (`Scratch::ends`).
    fn reusing(
        back: &'a [(usize, usize)],
        offsets: Vec<(usize, usize)>,
        mut windows: Vec<(u32, usize, usize)>,
        mut open: Vec<usize>,
    ) -> Ends<'a> {
        windows.clear();
        open.clear();
        open.resize(back.len(), usize::MAX);
        Ends { windows, open, back, overflow: false, offsets }
    }

    /// The window of starts of a match of expression `x` that ends at `end` of the text.
    fn add(&mut self, x: u32, end: usize) {
        let Some(&(back_lo, back_hi)) = self.back.get(x as usize) else {
            self.overflow = true; // an id we did not compile: fail closed
            return;
        };
        let (lo, hi) = (end.saturating_sub(back_lo), end.saturating_sub(back_hi));
        // Hyperscan reports ends in increasing order: a window that overlaps or touches the
        // expression's latest one extends it (any other order just starts a new window; `hits`
        // sorts and merges them all anyway)
        if let Some(w) = self.windows.get_mut(self.open[x as usize]) {
            if lo <= w.2 + 1 && hi >= w.2 && lo >= w.1 {
                w.2 = hi;
                return;
            }
        }
        if self.windows.len() < MAX_ENDS {
            self.open[x as usize] = self.windows.len();
            self.windows.push((x, lo, hi));
        } else {
            self.overflow = true;
        }
    }
}

/// Where `Engine::rewrite` writes: a `Vec`, a count (`Engine::masked_len`) or a slice of
/// that length (`Engine::write_masked`).
trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn byte(&mut self, b: u8) {
        self.put(&[b]);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn byte(&mut self, b: u8) {
        self.push(b);
    }
}

struct Count(usize);

impl Sink for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

struct Fill<'a> {
    out: &'a mut [MaybeUninit<u8>],
    at: usize,
}

impl Sink for Fill<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let dst = &mut self.out[self.at..self.at + bytes.len()];
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; `dst` is `bytes.len()` long, and a
        // `&[u8]` cannot overlap the `&mut` slice.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.as_mut_ptr().cast::<u8>(), bytes.len()) };
        self.at += bytes.len();
    }
}

/// Where an entry's exact regexes must look.
#[derive(Clone, Debug)]
enum Where {
    Nowhere,
    /// Sorted, merged [lo, hi] ranges of possible match starts.
    Windows(Vec<(usize, usize)>),
    Everywhere,
}

/// The lists `Engine::raw_matches` and `Engine::hits` fill, kept by the thread from call to
/// call for texts below `SCRATCH_MAX`: a 1 KiB JSON document with one value made 18
/// allocations per `mask_json` (valgrind's dhat), and malloc, free and Vec growth were about a
/// sixth of its time in a perf profile from Python.
#[derive(Default)]
struct Scratch {
    /// Per entry: searched everywhere (`hits`).
    everywhere: Vec<bool>,
    /// Per entry, its windows: lent to `Where::Windows` and given back, emptied, after the
    /// searches.
    per: Vec<Vec<(usize, usize)>>,
    /// (entry, lo, hi) windows as the passes find them.
    found: Vec<(usize, usize, usize)>,
    gfound: Found,
    /// `Ends`' lists (`Db::confirmed`).
    ends: (Vec<(u32, usize, usize)>, Vec<usize>),
    /// `hits`' answer, by entry.
    wheres: Vec<Where>,
}

/// Texts from this size get lists of their own (`Scratch`): their allocations cost little
/// beside their scan, and the thread does not keep lists that large.
const SCRATCH_MAX: usize = 1 << 20;

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Calls `f` with the thread's `Scratch` (a new one for a text of `len` from `SCRATCH_MAX`,
/// or when the thread's is in use).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut Scratch) -> R) -> R {
    if len >= SCRATCH_MAX {
        return f(&mut Scratch::default());
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

impl Engine {
    /// Compiles `entries`. Errors name the entry.
    pub fn new(entries: Vec<EntrySpec>, hash_key: [u8; 32]) -> Result<Engine, CompileError> {
        if let Some(bad) = simd_env_error() {
            return Err(CompileError { id: "(environment)".into(), message: bad });
        }
        let mut pats = Vec::new();
        let mut exprs: Vec<std::ffi::CString> = Vec::new();
        let mut expr_entry: Vec<usize> = Vec::new();
        let mut back: Vec<(usize, usize)> = Vec::new();
        let cstr = |id: &str, p: &str| {
            std::ffi::CString::new(p.as_bytes())
                .map_err(|_| CompileError { id: id.to_string(), message: "pattern contains a NUL byte".into() })
        };
        for (i, e) in entries.iter().enumerate() {
            if e.patterns.is_empty() {
                return Err(CompileError { id: e.id.clone(), message: "no pattern".into() });
            }
            if e.max_len == 0 {
                return Err(CompileError { id: e.id.clone(), message: "max_len must be at least 1".into() });
            }
            for p in &e.patterns {
                let re = Regex::builder()
                    .syntax(syntax_config())
                    .configure(Regex::config().utf8_empty(false).nfa_size_limit(Some(64 << 20)))
                    .build(p)
                    .map_err(|err| CompileError { id: e.id.clone(), message: build_error_message(&err) })?;
                if e.group >= re.captures_len() {
                    return Err(CompileError {
                        id: e.id.clone(),
                        message: format!("group {} does not exist in the pattern", e.group),
                    });
                }
                if e.prefilter.is_none() {
                    exprs.push(cstr(&e.id, p)?);
                    expr_entry.push(i);
                    back.push(start_window(e, p, false));
                }
                let fwd = hybrid::dfa::DFA::builder()
                    .syntax(syntax_config())
                    .build(p)
                    .ok()
                    .map(|dfa| (dfa, Mutex::new(Vec::new())));
                let split = if e.group == 0 { None } else { Split::new(p, e.group) };
                let runs = Runs::new(p, e.group);
                pats.push(Pat { entry: i, re, max_match: max_match(p), fwd, split, runs, first: first_bytes(p) });
            }
            if let Some(pf) = &e.prefilter {
                for (x, window) in prefilter_exprs(e, pf) {
                    exprs.push(cstr(&e.id, &x)?);
                    expr_entry.push(i);
                    back.push(window);
                }
            }
        }
        // Patterns led by a literal (tokens, keys, keyword-anchored secrets) and patterns led by
        // a character class (cards, SSNs, IBANs, phones) go to separate databases: on ordinary
        // text, scanning the two is several times faster than one combined database. The shipped
        // digit patterns (`DIGIT_GATED`) get a database of their own, which digit shapes stand
        // in for, so that an operator's class-led entry does not send them back to Hyperscan.
        let mut groups: [ExprGroup; 3] = Default::default();
        let mut triggers: Vec<(Trigger, usize)> = Vec::new(); // of the digit database's entries
        for ((x, e), b) in exprs.into_iter().zip(expr_entry).zip(back) {
            let shipped = DIGIT_GATED.iter().find(|(g, _)| g.as_bytes() == x.as_bytes());
            let g = if !entries[e].prefixes.is_empty() || entries[e].prefilter.is_some() {
                0
            } else if let Some(&(_, t)) = shipped {
                if !triggers.contains(&(t, e)) {
                    triggers.push((t, e));
                }
                1
            } else {
                2
            };
            groups[g].0.push(x);
            groups[g].1.push(e);
            groups[g].2.push(b);
        }
        let mut dbs = Vec::new();
        for (g, (x, ee, b)) in groups.into_iter().enumerate() {
            if !x.is_empty() {
                let mut db = Db::compile(&x, ee, b, &entries)?;
                if g == 1 {
                    db.triggers = std::mem::take(&mut triggers);
                } else {
                    let strs: Option<Vec<&str>> = x.iter().map(|c| c.to_str().ok()).collect();
                    db.gate = strs.and_then(|v| Gate::new(&v));
                }
                dbs.push(db);
            }
        }
        let base_hold = entries.iter().filter(|e| e.prefixes.is_empty()).map(|e| e.max_len).max().unwrap_or(0);
        let mut prefix_bytes = Vec::new();
        let mut prefix_max = Vec::new();
        let mut prefix_entry = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            for p in e.prefixes.iter().filter(|p| !p.is_empty()) {
                prefix_bytes.push(p.to_ascii_lowercase());
                prefix_max.push(e.max_len);
                prefix_entry.push(i);
            }
        }
        let prefixes = if prefix_bytes.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .kind(Some(AhoCorasickKind::DFA))
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&prefix_bytes)
                    .map_err(|err| CompileError { id: "prefixes".into(), message: err.to_string() })?,
            )
        };
        let prefix_reach = prefix_max.iter().copied().max().unwrap_or(0);
        let prefix_db = if prefix_bytes.is_empty() {
            None
        } else {
            let exprs: Vec<std::ffi::CString> = prefix_bytes
                .iter()
                .map(|p| {
                    let hex: String = p.iter().map(|b| format!("\\x{b:02x}")).collect();
                    std::ffi::CString::new(format!("(?i){hex}")).expect("hex escapes hold no NUL")
                })
                .collect();
            // only asked whether anything occurs (`Db::may_occur`): no windows. The gate (exact
            // for caseless literals) answers without a Hyperscan call, which was about 1.1K of a
            // 256-byte streamed write's 7.3K instructions (callgrind, `GW_BENCH_LOOP=stream`).
            let back = vec![(0, 0); exprs.len()];
            let mut db = Db::compile(&exprs, prefix_entry.clone(), back, &entries)?;
            let strs: Option<Vec<&str>> = exprs.iter().map(|c| c.to_str().ok()).collect();
            db.gate = strs.and_then(|v| Gate::with_odds(&v, 1.0 / 16.0));
            Some(db)
        };
        let mut partials_by_last: Vec<Vec<(usize, usize)>> = vec![Vec::new(); 256];
        for (i, p) in prefix_bytes.iter().enumerate() {
            for k in 1..p.len() {
                partials_by_last[usize::from(p[k - 1])].push((k, i)); // `prefix_bytes` are lower case
            }
        }
        partials_by_last.iter_mut().for_each(|v| v.sort_by(|a, b| b.cmp(a)));
        let holds = entries
            .iter()
            .filter(|e| e.prefixes.is_empty())
            .map(|e| {
                let mut set = [false; 256];
                for p in &e.patterns {
                    for (x, y) in set.iter_mut().zip(byte_set(p)) {
                        *x |= y;
                    }
                }
                (e.max_len, Box::new(set))
            })
            .collect();
        let raw_superset = !entries.iter().any(|e| e.patterns.iter().chain(e.prefilter.iter()).any(|p| has_anchor(p)));
        let bounded =
            (0..entries.len()).map(|i| pats.iter().filter(|p| p.entry == i).all(|p| p.max_match.is_some())).collect();
        let quote_capable = entries.iter().map(|e| e.patterns.iter().any(|p| byte_set(p)[usize::from(b'"')])).collect();
        let card_luhn = dbs.iter().flat_map(|db| &db.triggers).filter(|(t, _)| *t == Trigger::Card).all(|&(_, e)| {
            let e = &entries[e];
            e.group == 0 && e.validator == Validator::Luhn && e.max_len >= 19
        });
        Ok(Engine {
            bounded,
            entries,
            pats,
            dbs,
            base_hold,
            prefixes,
            prefix_bytes,
            prefix_max,
            prefix_entry,
            holds,
            prefix_reach,
            partials_by_last,
            prefix_db,
            hash_key,
            raw_superset,
            card_luhn,
            quote_capable,
        })
    }

    /// The catalogue entries, in priority order.
    pub fn entries(&self) -> &[EntrySpec] {
        &self.entries
    }

    /// Where each entry's exact regexes must search (Hyperscan pass over `text`, whose
    /// offsets are relative to `text`), in `sc.wheres` by entry. False when that is nowhere.
    fn hits(&self, text: &[u8], sc: &mut Scratch) -> bool {
        let n = self.entries.len();
        let Scratch { everywhere, per, found, gfound, ends: ends_bufs, wheres, .. } = sc;
        // (the windows of the call before were given back to `per`; the thread's lists may
        // have served an engine with another number of entries)
        wheres.clear();
        if text.is_empty() {
            wheres.resize(n, Where::Nowhere);
            return false;
        }
        found.clear();
        gfound.clear();
        everywhere.clear();
        everywhere.resize(n, false);
        per.iter_mut().for_each(Vec::clear);
        per.resize_with(n, Vec::new);
        // vectorscan 5.4.9 was seen to miss matches depending on where the input buffer sits
        // in memory (same bytes, different results from call to call, found by the streaming
        // property test). Scanning a 64-byte aligned, zero-padded copy made results stable;
        // the copy costs one memcpy per call (of the gate's regions only, when it gates).
        // Large texts go in chunks that stay in the cache: the gate and the digit shapes read
        // each, and the Hyperscan databases an aligned copy of it (or of the gate's regions),
        // instead of each pass reading the whole text from memory. Chunks overlap by the longest
        // match (plus a byte of context on each side), so every match lies whole inside one chunk.
        let overlap = self.max_len() + 2;
        let chunk = SCAN_CHUNK.max(4 * overlap).min(1 << 30);
        let overlap = overlap.min(chunk / 2);
        // at most one database is located by digit shapes (`Engine::new`)
        let shape_db = self.dbs.iter().find(|db| !db.triggers.is_empty());
        let any_hs = self.dbs.iter().any(|db| db.triggers.is_empty());
        // Where the literal-led database has a gate (AVX-512 VBMI or AVX2), one pass reads each
        // chunk for the gate and for the digit shapes (`fused`), when those are the only passes.
        let mut hs_dbs = self.dbs.iter().filter(|db| db.triggers.is_empty());
        let fusable = match (hs_dbs.next(), hs_dbs.next()) {
            (Some(db), None) => {
                db.gate.as_ref().filter(|_| shape_db.is_some() && Simd::detect() >= Simd::Avx2).map(|g| (db, g))
            }
            _ => None,
        };
        let (mut start, mut shaped) = (0usize, 0usize);
        let mut prev_gated = true; // (the first chunk has no overlap)
        loop {
            let end = text.len().min(start + chunk);
            if let (Some((gdb, gate)), Some(sdb)) = (fusable, shape_db) {
                // The gate with the digit shapes from where the chunk before ended. When that
                // chunk was scanned whole, which sees no match running past its end, the gate
                // reads the overlap with it first; a gated chunk's regions already reach past
                // its end for every candidate in it.
                gfound.clear();
                let max = max_regions(end - start);
                let ok = prev_gated || gate.regions(text, start, shaped, max, gfound).is_ok();
                let mut on_shape = |t, lo, hi| self.on_shape(sdb, text, t, lo, hi, per);
                prev_gated = self.fused(gate, text, shaped, end, max, ok, gfound, &mut on_shape);
                if !gfound.ends.is_empty() {
                    gdb.confirmed(&gfound.ends, found, everywhere, ends_bufs);
                }
                // the regions in one call (a call costs about as much as scanning a few hundred
                // bytes), or the range whole
                let scan: &[(usize, usize)] = if prev_gated { &gfound.regions } else { &[(start, end)] };
                if !scan.is_empty() {
                    with_aligned_pieces(text, scan, |aligned| gdb.scan(aligned, scan, found, everywhere));
                }
                shaped = end;
                if end == text.len() {
                    break;
                }
                start = end - overlap;
                continue;
            }
            if any_hs {
                let mut whole: [Option<&Db>; 3] = [None; 3];
                for (k, db) in self.dbs.iter().filter(|db| db.triggers.is_empty()).enumerate() {
                    gfound.clear();
                    let gated = db
                        .gate
                        .as_ref()
                        .is_some_and(|g| g.regions(text, start, end, max_regions(end - start), gfound).is_ok());
                    if !gated {
                        whole[k] = Some(db);
                        continue;
                    }
                    if !gfound.ends.is_empty() {
                        db.confirmed(&gfound.ends, found, everywhere, ends_bufs);
                    }
                    let regions = &gfound.regions;
                    if !regions.is_empty() {
                        with_aligned_pieces(text, regions, |aligned| db.scan(aligned, regions, found, everywhere));
                    }
                }
                if whole.iter().any(Option::is_some) {
                    with_aligned(&text[start..end], |aligned| {
                        for db in whole.iter().flatten() {
                            db.scan(aligned, &[(start, end)], found, everywhere);
                        }
                    });
                }
            }
            if let Some(db) = shape_db {
                shape_triggers(text, shaped, end, self.card_luhn, |t, lo, hi| self.on_shape(db, text, t, lo, hi, per));
            }
            shaped = end;
            if end == text.len() {
                break;
            }
            start = end - overlap;
        }
        if found.len() > 64 {
            // (a long text's: each list allocated once)
            let mut more = vec![0usize; n];
            found.iter().for_each(|&(entry, _, _)| more[entry] += 1);
            per.iter_mut().zip(&more).for_each(|(w, &k)| w.reserve(k));
        }
        for &(entry, lo, hi) in found.iter() {
            per[entry].push((lo, hi));
        }
        if per.iter().all(Vec::is_empty) && !everywhere.contains(&true) {
            // (most texts: nothing to search)
            wheres.resize(n, Where::Nowhere);
            return false;
        }
        for (e, w) in per.iter_mut().enumerate() {
            wheres.push(self.windows(e, w, everywhere[e], text.len()));
        }
        true
    }

    /// Entry `e`'s `Where` from its windows `w` (taken when they are the answer), as `hits`
    /// found them in a text of `len` bytes.
    fn windows(&self, e: usize, w: &mut Vec<(usize, usize)>, everywhere: bool, len: usize) -> Where {
        if everywhere {
            return Where::Everywhere;
        }
        if w.is_empty() {
            return Where::Nowhere;
        }
        w.sort_unstable();
        // merged in place: a window that overlaps or touches the one kept before it joins it
        w.dedup_by(|cur, last| {
            let joins = cur.0 <= last.1 + 1;
            if joins {
                last.1 = last.1.max(cur.1);
            }
            joins
        });
        // Many scattered windows cost more than one pass of the regex over the text (an
        // unbounded pattern searches on from each window to its next match). A window of
        // one byte is searched anchored, which does not search on: a PEM block per KiB
        // is searched at its headers only (`raw_matches` bounds what they cost in all).
        let covered: usize = w.iter().map(|(lo, hi)| hi - lo + 1).sum();
        let wide = w.iter().filter(|(lo, hi)| hi > lo).count();
        if (wide > 32 && !self.bounded[e]) || covered > len / 4 {
            return Where::Everywhere;
        }
        Where::Windows(std::mem::take(w))
    }

    /// A digit shape's trigger `t` of `db` (the shapes' database): the window `[lo, hi]` for
    /// each of its entries the trigger stands for (`hits`).
    fn on_shape(
        &self,
        db: &Db,
        text: &[u8],
        t: Trigger,
        lo: usize,
        hi: usize,
        per: &mut [Vec<(usize, usize)>],
    ) -> bool {
        for &(_, e) in db.triggers.iter().filter(|(k, _)| *k == t) {
            // with `card_luhn`, the shapes pass has already dropped the blocks this rejects
            if t == Trigger::Card && !self.card_luhn && self.card_block_rejected(text, lo, e) {
                continue;
            }
            per[e].push((lo, hi));
        }
        true
    }

    /// `gate.regions(text, from, to, max, regions)` (while `gate_on`) and
    /// `shape_triggers(text, from, to, f)` in one pass over the whole chunks that both can read in
    /// place, then one after the other over the rest. Whether the regions stayed within `max`
    /// (else the caller scans the range whole; the digit shapes are complete either way).
    #[allow(clippy::too_many_arguments)]
    fn fused(
        &self,
        gate: &Gate,
        text: &[u8],
        from: usize,
        to: usize,
        max: usize,
        mut gate_on: bool,
        regions: &mut Found,
        f: &mut impl FnMut(Trigger, usize, usize) -> bool,
    ) -> bool {
        // chunks that end by `to` and whose bytes up to `WIDTH - 1` past them are in `text`
        let inner = to.min(text.len().saturating_sub(GATE_WIDTH - 1));
        let mut c = from;
        // Each chunk the digit shapes visit leaves the pass and enters it again (reloading its
        // tables): on text where they visit many (ids, dates, amounts), two passes cost less.
        // A short text decides after fewer visits: a KiB of digit-heavy text, whose 16 chunks
        // never gave 16 visits, took 12.5K instructions to mask, and 9.4K deciding after 4
        // (callgrind); deciding after 4 on long prose cost it 8% (early visits were dense).
        let mut visits = 0usize;
        let decide_after = ((to - from) / 256).clamp(4, 16);
        let mut lag = Visits::new();
        #[cfg(target_arch = "x86_64")]
        while c + 64 <= inner && !(visits >= decide_after && visits * 8 > (c - from) / 64) {
            let chunks = (inner - c) / 64;
            // SAFETY: the chunks and the `WIDTH - 1` bytes after them are in `text`
            // (`inner`).
            let (at, m, visit) =
                unsafe { gate.next_with_digits(text.as_ptr().add(c), chunks, |d, pu| lag.push(d, pu)) };
            if at == chunks {
                c += 64 * chunks;
                break;
            }
            c += 64 * at;
            if visit {
                // the chunk before `at` (in this call or, at 0, the last of the one before)
                visits += 1;
                shape_triggers(text, c - 64, c, self.card_luhn, &mut *f);
            }
            if m != 0 && gate_on {
                gate_on = gate.add_regions(text, c, m, max, regions).is_ok();
            }
            c += 64;
        }
        if gate_on {
            gate_on = gate.regions(text, c, to, max, regions).is_ok();
        }
        // the last chunk pushed (it ends at `c`) with the rest, in one call
        let rest = if lag.last() { c - 64 } else { c };
        shape_triggers(text, rest, to, self.card_luhn, f);
        gate_on
    }

    /// Whether the card trigger at `at` is a block of 12-19 digits that `entry`'s validator
    /// rejects whole: then nothing the window could find is a match, and it is not searched.
    ///
    /// At the start of such a block the card pattern's only candidate is the whole block: its
    /// other branches need a separator after four digits, and `\d{12,19}\b` cannot end
    /// between two digits (nor at the block's end when a letter follows, and then there is no
    /// candidate at all). A candidate the validator rejects is no span, and a search from the
    /// next byte starts inside the block, where `\b` fails. On digit-heavy text these are
    /// mostly the 12-digit tails of UUIDs (`446655440000`), which fail Luhn: their regex
    /// searches were about a fifth of the time. Not searching them loses only the rejected
    /// candidate, which a stream would have kept its cut out of; a cut inside the block lets
    /// no match through either (the rest of the block starts after a digit, where `\b`
    /// fails; the tests check streams against block mode for every cut).
    fn card_block_rejected(&self, text: &[u8], at: usize, entry: usize) -> bool {
        let e = &self.entries[entry];
        if e.group != 0 {
            return false;
        }
        let len = text[at..].iter().take(20).take_while(|b| b.is_ascii_digit()).count();
        (12..=19).contains(&len) && (len > e.max_len || !e.validator.check(&text[at..at + len]))
    }

    /// True when some entry may occur in `text`: the Hyperscan pass only, and the regexes of
    /// the digit shapes at their triggers, less the blocks of 12-19 digits that the card entries
    /// reject whole (`card_luhn`, as `hits` leaves them out). No validator runs.
    pub fn may_match(&self, text: &[u8]) -> bool {
        if text.is_empty() {
            return false;
        }
        // the digit shapes first: they need no copy, and most text has none
        self.dbs.iter().filter(|db| !db.triggers.is_empty()).any(|db| self.shapes_match(db, text))
            || self.dbs.iter().any(|db| db.triggers.is_empty() && db.may_occur(text))
    }

    /// Whether a pattern of a digit-shape database matches somewhere in `text` (what a
    /// Hyperscan pass over it would say): its regexes, run only at the shapes' windows.
    ///
    /// With `card_luhn`, a block of 12-19 digits that fails Luhn is not a window, as in `hits`:
    /// there the card pattern's only candidate is the whole block, which the validator rejects
    /// (`card_block_rejected`), in the raw bytes as in any JSON string that holds the block
    /// (the same digits, between the same non-digits). The 12-digit tail of nearly every UUID
    /// is such a block, so JSON with a UUID (every run, thread and assistant id) used to fail
    /// `raw_clear` and had each of its strings masked in turn.
    fn shapes_match(&self, db: &Db, text: &[u8]) -> bool {
        let mut found = false;
        shape_triggers(text, 0, text.len(), self.card_luhn, |t, lo, hi| {
            for &(_, e) in db.triggers.iter().filter(|(k, _)| *k == t) {
                for pat in self.pats.iter().filter(|p| p.entry == e) {
                    let end = pat.max_match.map_or(text.len(), |m| text.len().min(hi.saturating_add(m)));
                    // leftmost-first: no match starts in [lo, hi] when the leftmost one is later
                    if pat.re.search(&Input::new(text).span(lo..end)).is_some_and(|m| m.start() <= hi) {
                        found = true;
                        return false;
                    }
                }
            }
            true
        });
        found
    }

    fn max_len(&self) -> usize {
        self.entries.iter().map(|e| e.max_len).max().unwrap_or(0)
    }

    /// Every candidate match of every occurring pattern starting at or after `from` (the bytes
    /// before `from` are look-behind context only).
    fn raw_matches(&self, hay: &[u8], from: usize) -> Vec<Raw> {
        with_scratch(hay.len() - from, |sc| {
            if !self.hits(&hay[from..], sc) {
                return Vec::new();
            }
            let out = self.searches(hay, from, &sc.wheres);
            // the windows back to the lists they were lent from
            for (w, list) in sc.wheres.drain(..).zip(sc.per.iter_mut()) {
                if let Where::Windows(mut w) = w {
                    w.clear();
                    *list = w;
                }
            }
            out
        })
    }

    /// `raw_matches` in the windows `hits` gave (by entry, in `hay[from..]`'s offsets).
    fn searches(&self, hay: &[u8], from: usize, hits: &[Where]) -> Vec<Raw> {
        // a long text's candidates in one allocation (as many as one per 512 bytes: PII-dense
        // text has about two per KiB), not in a dozen doublings that each copy them
        let mut out =
            if hay.len() - from >= 1 << 16 { Vec::with_capacity((hay.len() - from) >> 9) } else { Vec::new() };
        let whole = [(0, hay.len() - from)];
        for pat in &self.pats {
            // (in `hay[from..]`'s offsets)
            let windows: &[(usize, usize)] = match &hits[pat.entry] {
                Where::Nowhere => continue,
                Where::Everywhere => &whole,
                Where::Windows(w) => w,
            };
            let entry = &self.entries[pat.entry];
            // The same iteration as over the whole text (leftmost-first, a rejected candidate
            // searched again from its next byte), skipping the stretches where no match can
            // start: every match ends at (or contains) a reported end, so it starts inside one
            // of the windows.
            let mut caps = if entry.group == 0 { None } else { Some(pat.re.create_captures()) };
            // the DFA's cache, taken from its pool at the first narrow window, given back below
            let mut fwd_cache: Option<hybrid::dfa::Cache> = None;
            let mut pos = from;
            // Bytes the searches may have read, counted up to the match end when one is found and
            // to the end of the span when none is. Windows of one byte (digit shapes, leading
            // prefilters) are not limited in number by `hits`, and each search can read on past
            // its window (up to `max_match`, or to the end of the text); text built to hold many
            // such windows (a JWT prefix every few bytes) must not make the searches read it over
            // and over: past this budget, the rest of the text is searched in one pass.
            let budget = 4 * (hay.len() - from) + 4096;
            let mut work = 0usize;
            'windows: for (k, (lo, mut hi)) in windows.iter().map(|&(lo, hi)| (from + lo, from + hi)).enumerate() {
                prefetch_window(hay, windows, k + PREFETCH_AHEAD, from);
                if work > budget {
                    hi = hay.len(); // covers every later window
                }
                pos = pos.max(lo);
                // a match starting at most at `hi` ends by `end`
                let end = pat.max_match.map_or(hay.len(), |m| hay.len().min(hi.saturating_add(m)));
                // a narrow window (a digit shape's, a leading prefilter's) where no match of
                // this pattern can begin
                if hi < pos + 8
                    && pat.first.as_ref().is_some_and(|f| {
                        !hay.get(pos..hay.len().min(hi + 1)).unwrap_or_default().iter().any(|&b| f[usize::from(b)])
                    })
                {
                    if hi == hay.len() {
                        break;
                    }
                    continue;
                }
                while pos <= hi && pos <= end {
                    // one possible start left (a digit shape's window is one byte): an anchored
                    // search, with no scan for where a match begins
                    let anchored = pos == hi;
                    #[cfg(test)]
                    SEARCHED.with(|c| c.set(c.get() + (end - pos)));
                    let by_runs = pat.runs.as_ref().filter(|_| anchored).map(|r| r.find(hay, pos, end));
                    // A narrow window (a few bytes: digit shapes, leading prefilters) is searched
                    // by the lazy DFA anchored at each start in turn (the first start with a
                    // match, and there the leftmost-first match: what an unanchored search
                    // finds). The meta regex's own costs per search (its cache pool, strategy,
                    // start-of-match) were more than the DFA's reading of a few bytes.
                    let narrow = by_runs.is_none() && hi < pos + NARROW && pat.first.is_some();
                    let by_dfa = match (&pat.fwd, narrow) {
                        (Some((dfa, pool)), true) => {
                            let cache = fwd_cache.get_or_insert_with(|| {
                                pool.lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .pop()
                                    .unwrap_or_else(|| dfa.create_cache())
                            });
                            narrow_search(dfa, cache, hay, pos, hi, end, pat.first.as_deref()).ok()
                        }
                        _ => None,
                    };
                    let narrow = by_dfa.is_some();
                    let found = by_runs.unwrap_or_else(|| {
                        let bounds = by_dfa.unwrap_or_else(|| {
                            let input = Input::new(hay).span(pos..end).anchored(if anchored {
                                Anchored::Yes
                            } else {
                                Anchored::No
                            });
                            pat.re.search(&input).map(|m| (m.start(), m.end()))
                        });
                        bounds.map(|(ms, me)| {
                            let Some(caps) = caps.as_mut() else { return (ms, me, ms, me) };
                            // the group: placed from the match's ends where the pattern allows, else
                            // by capture search over the match (the same leftmost-first reading)
                            let (gs, ge) = pat.split.as_ref().and_then(|s| s.group(hay, ms, me)).unwrap_or_else(|| {
                                pat.re.search_captures(&Input::new(hay).span(ms..me).anchored(Anchored::Yes), caps);
                                caps.get_group(entry.group).map_or((ms, ms), |g| (g.start, g.end))
                            });
                            (ms, me, gs, ge)
                        })
                    });
                    work += found.map_or(end - pos, |(_, me, _, _)| me.saturating_sub(pos));
                    let Some((ms, me, gs, ge)) = found else {
                        if end == hay.len() && !anchored && !narrow {
                            break 'windows; // no match anywhere after `pos`
                        }
                        break; // none starts in this window
                    };
                    if ms > hi {
                        break; // starts in a later window: found again there
                    }
                    // `max_len` is part of the entry's meaning: a longer match is no match, in
                    // block mode as in streams (whose hold-back it bounds).
                    let valid = ge > gs && me - ms <= entry.max_len && entry.validator.check_in(hay, gs, ge);
                    out.push(Raw {
                        start: ms,
                        end: me,
                        entry: pat.entry,
                        span: valid.then_some(Span { start: gs, end: ge, entry: pat.entry }),
                    });
                    // A candidate the validator rejects may hide a valid one that overlaps it
                    // (a card number glued to an order number): search again from its next byte.
                    pos = if valid && me > ms { me } else { ms + 1 };
                }
                if hi == hay.len() {
                    break; // the last window, or one that covered the rest of the text
                }
            }
            // (tested first: moving the `Option` of a cache, some hundred bytes, for every pattern
            // of every call showed in the time of a 1 KiB body)
            if fwd_cache.is_some() {
                if let (Some(cache), Some((_, pool))) = (fwd_cache, &pat.fwd) {
                    pool.lock().unwrap_or_else(|e| e.into_inner()).push(cache);
                }
            }
        }
        out
    }

    /// Validated spans merged into their union (sorted, non-overlapping).
    fn merge(spans: Vec<Span>) -> Vec<Span> {
        // (the label of a union is its least entry, whatever the order of equal spans)
        let mut spans = sort_runs(spans);
        // in place: a span that overlaps the one kept before it joins it
        spans.dedup_by(|s, last| {
            let joins = s.start < last.end;
            if joins {
                last.end = last.end.max(s.end);
                last.entry = last.entry.min(s.entry);
            }
            joins
        });
        spans
    }

    /// Validated spans of `text` before merging, sorted.
    pub fn unmerged(&self, text: &[u8]) -> Vec<Span> {
        let mut v: Vec<Span> = self.raw_matches(text, 0).into_iter().filter_map(|r| r.span).collect();
        v.sort_by_key(|s| (s.start, s.end, s.entry));
        v
    }

    /// Longest hold-back for entries without a literal prefix (an upper bound: see `hold_cut`).
    pub fn base_hold(&self) -> usize {
        self.base_hold
    }

    /// Merged spans of `text`.
    pub fn spans(&self, text: &[u8]) -> Vec<Span> {
        Self::merge(self.raw_matches(text, 0).into_iter().filter_map(|r| r.span).collect())
    }

    fn replacement(&self, span: &Span, value: &[u8], out: &mut impl Sink) {
        let e = &self.entries[span.entry];
        match e.action {
            Action::Label => {
                out.byte(b'[');
                out.put(e.entity.as_bytes());
                out.byte(b']');
            }
            Action::Drop => {}
            Action::Hash => {
                let h = blake3::keyed_hash(&self.hash_key, value);
                out.byte(b'[');
                out.put(e.entity.as_bytes());
                out.byte(b':');
                out.put(&h.to_hex().as_bytes()[..12]);
                out.byte(b']');
            }
            Action::Partial => {
                let total = value.iter().filter(|b| b.is_ascii_alphanumeric()).count();
                let keep_from = total.saturating_sub(4);
                let mut seen = 0;
                for &b in value {
                    if b.is_ascii_alphanumeric() {
                        out.byte(if seen >= keep_from { b } else { b'*' });
                        seen += 1;
                    } else {
                        out.byte(b);
                    }
                }
            }
        }
    }

    fn rewrite(&self, text: &[u8], spans: &[Span], out: &mut impl Sink) {
        let mut pos = 0;
        for s in spans {
            out.put(&text[pos..s.start]);
            self.replacement(s, &text[s.start..s.end], out);
            pos = s.end;
        }
        out.put(&text[pos..]);
    }

    /// The length of `text` masked at `spans` (`spans(text)`).
    pub fn masked_len(&self, text: &[u8], spans: &[Span]) -> usize {
        let mut n = Count(0);
        self.rewrite(text, spans, &mut n);
        n.0
    }

    /// Writes `text` masked at `spans` into `out`, which is `masked_len` bytes long (so that a
    /// caller can write straight into memory of its own, such as a new Python `bytes`, without
    /// zeroing it first). Every byte of `out` is written.
    pub fn write_masked(&self, text: &[u8], spans: &[Span], out: &mut [MaybeUninit<u8>]) {
        let mut fill = Fill { out, at: 0 };
        self.rewrite(text, spans, &mut fill);
        assert_eq!(fill.at, fill.out.len(), "masked_len");
    }

    /// Block mode.
    pub fn mask(&self, text: &[u8]) -> Vec<u8> {
        let spans = self.spans(text);
        if spans.is_empty() {
            return text.to_vec();
        }
        let mut out = Vec::with_capacity(text.len());
        self.rewrite(text, &spans, &mut out);
        out
    }

    /// `mask`, but None when nothing matched (saves a copy).
    pub fn mask_if_needed(&self, text: &[u8]) -> Option<Vec<u8>> {
        let spans = self.spans(text);
        if spans.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(text.len());
        self.rewrite(text, &spans, &mut out);
        Some(out)
    }

    /// Where it is safe to release up to, in `hay` coordinates (`from` = start of unreleased).
    ///
    /// A match of a prefixed entry starts at an occurrence of one of its prefixes; one that
    /// starts within `max_len` of the end may still grow, so the cut goes before the *earliest*
    /// such occurrence (a JWT holds `eyJ` again at its payload; cutting at the last occurrence
    /// released the header of a long token unmasked). One Aho-Corasick pass over the
    /// unreleased bytes finds them all.
    ///
    /// Entries without a prefix: a match still open at the end starts within `max_len` of it
    /// and after the last byte its pattern cannot contain (a space for an email, a letter for
    /// a card number), so ordinary text is held back by a word, not by the longest `max_len`.
    fn hold_cut(&self, hay: &[u8], from: usize) -> usize {
        let n = hay.len();
        let mut cut = n;
        for (max_len, set) in &self.holds {
            let lo = n.saturating_sub(*max_len).max(from);
            let start = hay[lo..].iter().rposition(|&b| !set[usize::from(b)]).map_or(lo, |i| lo + i + 1);
            cut = cut.min(start);
        }
        if let Some(ac) = &self.prefixes {
            let lo = n.saturating_sub(self.prefix_reach).max(from);
            let longest = self.prefix_bytes.iter().map(Vec::len).max().unwrap_or(0);
            // most text holds no prefix at all: one search that can skip ahead says so, before
            // the overlapping one (which reads every byte) looks for all of them
            let any = self.prefix_db.as_ref().is_none_or(|db| db.may_occur(&hay[lo..]));
            let found = if any { Some(ac.find_overlapping_iter(&hay[lo..])) } else { None };
            for m in found.into_iter().flatten() {
                if lo + m.end() >= cut + longest {
                    break; // matches come in order of their end: none of the rest starts before `cut`
                }
                let at = lo + m.start();
                let p = m.pattern().as_usize();
                if at < cut && at + self.prefix_max[p] >= n && !self.settled(self.prefix_entry[p], hay, at) {
                    cut = at;
                }
            }
            // a partial prefix at the very end
            if n > from {
                let last = usize::from(hay[n - 1].to_ascii_lowercase());
                for &(k, p) in &self.partials_by_last[last] {
                    if n >= from + k && n - k < cut && hay[n - k..].eq_ignore_ascii_case(&self.prefix_bytes[p][..k]) {
                        cut = n - k;
                        break; // longest first
                    }
                }
            }
        }
        cut
    }

    /// `cut`, moved back so that it falls inside no candidate match.
    fn outside_candidates(mut cut: usize, raws: &[Raw]) -> usize {
        loop {
            let mut moved = false;
            for r in raws {
                if r.start < cut && cut < r.end {
                    cut = r.start;
                    moved = true;
                }
            }
            if !moved {
                return cut;
            }
        }
    }

    /// True when no match of `entry` starting at `at` can change with more input: every one
    /// of its patterns, run as an anchored DFA from `at`, dies before the end of `hay` (a token
    /// followed by a space, a PEM block past its END line, an `sk-` in prose). Such an
    /// occurrence needs no hold-back: any match there is complete and already in `raws`. False
    /// whenever that cannot be shown (the DFA still alive at the end, or it gave up).
    fn settled(&self, entry: usize, hay: &[u8], at: usize) -> bool {
        self.pats.iter().filter(|p| p.entry == entry).all(|pat| {
            let Some((dfa, pool)) = &pat.fwd else { return false };
            let mut cache = pool.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_else(|| dfa.create_cache());
            let dead = dies_before_end(dfa, &mut cache, hay, at);
            pool.lock().unwrap_or_else(|e| e.into_inner()).push(cache);
            dead
        })
    }

    /// Streaming: add `data`, return what can be released now.
    pub fn feed(&self, st: &mut StreamState, data: &[u8]) -> Vec<u8> {
        st.hay.extend_from_slice(data);
        let c = st.ctx;
        let hay = &st.hay;
        let hold = self.hold_cut(hay, c);
        if hold <= c {
            return Vec::new(); // all of it could still be part of a match
        }
        let raws = self.raw_matches(hay, c);
        let cut = Self::outside_candidates(hold, &raws);
        let spans =
            Self::shifted(Self::merge(raws.iter().filter(|r| r.start < cut).filter_map(|r| r.span).collect()), c);
        let mut out = Vec::with_capacity(cut - c);
        self.rewrite(&hay[c..cut], &spans, &mut out);
        // keep CONTEXT released bytes as look-behind (`\b`) and everything not released
        let keep_from = cut.saturating_sub(CONTEXT);
        st.hay.drain(..keep_from);
        st.ctx = cut - keep_from;
        out
    }

    /// Streaming: end of input.
    pub fn finish(&self, st: &mut StreamState) -> Vec<u8> {
        let c = st.ctx;
        let hay = std::mem::take(&mut st.hay);
        st.ctx = 0;
        let raws = self.raw_matches(&hay, c);
        let spans = Self::shifted(Self::merge(raws.into_iter().filter_map(|r| r.span).collect()), c);
        let mut out = Vec::with_capacity(hay.len() - c);
        self.rewrite(&hay[c..], &spans, &mut out);
        out
    }

    fn shifted(spans: Vec<Span>, by: usize) -> Vec<Span> {
        spans.into_iter().map(|s| Span { start: s.start - by, end: s.end - by, entry: s.entry }).collect()
    }

    /// JSON-aware masking (`mask_json_valid`); Err when `doc` is not JSON.
    pub fn mask_json(&self, doc: &[u8]) -> Result<Vec<u8>, String> {
        Ok(self.mask_json_if_needed(doc)?.unwrap_or_else(|| doc.to_vec()))
    }

    /// `mask_json`, but `Ok(None)` when nothing changed.
    ///
    /// (No raw pass first, unlike the SSE splitter's events: a 1 KiB document with one value
    /// took 26.6K instructions with it and 22.3K without, one without PII 9.3K and 12.1K;
    /// callgrind, `GW_BENCH_LOOP=jsonitem|json`. From Python, 3.0-3.1 and 2.4 µs with a value,
    /// 0.84 and 1.17-1.25 without.)
    pub fn mask_json_if_needed(&self, doc: &[u8]) -> Result<Option<Vec<u8>>, String> {
        // A document with escapes has its strings decoded before the search, which needs its
        // string tokens: they come from the validating pass (reading it again for them was a
        // fifth of a 121 KiB LangGraph state's `mask_json`, in memchr).
        if memchr::memchr(b'\\', doc).is_some() {
            let strs = super::json::validate_strings(doc)?;
            return Ok(self.mask_json_valid(doc, JsonWay::Fast, true, Some(strs)));
        }
        super::json::validate(doc)?;
        Ok(self.mask_json_valid(doc, JsonWay::Fast, false, None))
    }

    /// JSON-aware masking of a valid document; None when nothing changed.
    ///
    /// What is searched is the document with every string decoded in place (`decoded_doc`; the
    /// document itself when it holds no backslash), as one text: escapes (`\n`, `\"`,
    /// `\u0040`) neither hide a secret nor create one, and a keyword-anchored secret that runs
    /// from a key into its value (`"aws_secret_access_key": "wJalr..."`, which neither string
    /// holds alone) is found as `mask()` finds it. Its spans are applied to the strings and
    /// numbers they overlap: a string's decoded text is masked and written back as JSON (its
    /// raw bytes with the replacements put in when they can be, else encoded again); a number is replaced whole by a JSON string
    /// of its masked text (a card number may be a number).
    /// Quotes, punctuation, white space and `true`/`false`/`null` are never changed, and the
    /// replacements are JSON-encoded: the output is valid JSON.
    ///
    /// Each string is searched on its own as well unless one pass is provably enough: no
    /// pattern has a text anchor (`raw_superset`) and no candidate in the decoded document
    /// holds a quote that opens or closes a string (only the patterns that can match a '"' are
    /// checked). Then no candidate reaches from a string's content past its quotes, and within
    /// each string the document's search and the string's own search find the same matches in
    /// the same order (the quote around a string is a non-word byte, as a text's edge is to
    /// `\b`, and a validator's context cannot reach past it; a pattern's preferred match at a
    /// start is a candidate, so it does not reach past them either).
    /// (`way`: `Fast`, or for the tests a way that skips a shortcut; `escaped`: whether the
    /// document holds a backslash; `tokens`: its string tokens, `json::strings`, when known.)
    fn mask_json_valid(&self, doc: &[u8], way: JsonWay, escaped: bool, tokens: Option<Vec<StrTok>>) -> Option<Vec<u8>> {
        use super::json::{numbers, strings};
        // the strings and the text searched: with escapes, the decoded document and where its
        // strings are in it
        let (strs, decoded) = if escaped {
            let strs = tokens.unwrap_or_else(|| strings(doc));
            let dec = decoded_doc(doc, &strs);
            (Some(strs), Some(dec))
        } else {
            (None, None)
        };
        let (hay, dstrs): (&[u8], Option<&[StrTok]>) = match &decoded {
            Some((d, ds)) => (d, Some(ds)),
            None => (doc, None),
        };
        let raws = self.raw_matches(hay, 0);
        let per_string = way == JsonWay::EveryString || !self.raw_superset || self.crossing(hay, dstrs, &raws);
        let spans = Self::merge(raws.into_iter().filter_map(|r| r.span).collect());
        if spans.is_empty() && !per_string {
            return None;
        }
        let strs = strs.unwrap_or_else(|| strings(doc));
        let dstrs = dstrs.unwrap_or(&strs);
        // the spans cut to the strings' contents (by string) and to the numbers they overlap,
        // in the searched text's offsets
        let mut in_str: Vec<(usize, Span)> = Vec::new();
        let mut in_num: Vec<((usize, usize), Span)> = Vec::new();
        for sp in &spans {
            let (mut cur, mut t) = (sp.start, dstrs.partition_point(|k| k.end <= sp.start));
            while cur < sp.end {
                let next = dstrs.get(t).filter(|k| k.start < sp.end);
                // outside the strings, from `cur` to the next string (or the span's end)
                let gap_end = next.map_or(sp.end, |k| k.start.max(cur));
                for (lo, hi) in if cur < gap_end { numbers(hay, cur, gap_end) } else { Vec::new() } {
                    in_num.push(((lo, hi), Span { start: cur.max(lo), end: gap_end.min(hi), entry: sp.entry }));
                }
                let Some(k) = next else { break };
                let (cs, ce) = k.content();
                let (a, b) = (cs.max(cur), ce.min(sp.end));
                if a < b {
                    in_str.push((t, Span { start: a - cs, end: b - cs, entry: sp.entry }));
                }
                cur = k.end;
                t += 1;
            }
        }
        in_num.sort_by_key(|(tok, _)| *tok);
        // a number's offset in `doc`: the searched text's, moved by the strings before it
        let in_doc = |x: usize| match dstrs.partition_point(|k| k.end <= x) {
            0 => x,
            p => x - dstrs[p - 1].end + strs[p - 1].end,
        };
        // (start, end, JSON string) of each number of `doc` that changes, in order
        let mut num_edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        let mut i = 0;
        while i < in_num.len() {
            let (lo, hi) = in_num[i].0;
            let n = in_num[i..].iter().take_while(|(tok, _)| *tok == (lo, hi)).count();
            let spans = in_num[i..i + n].iter().map(|(_, s)| Span { start: s.start - lo, end: s.end - lo, ..*s });
            num_edits.push((in_doc(lo), in_doc(hi), self.json_string(&hay[lo..hi], Self::merge(spans.collect()))));
            i += n;
        }
        // the output, written in order: `doc[..copied]` is done
        let mut out = Vec::new();
        let mut copied = 0;
        let mut changed = !num_edits.is_empty();
        // (in order: each number is looked at once, not once per masked string)
        let mut nums = num_edits.into_iter().peekable();
        let mut numbers_before = |at: usize, out: &mut Vec<u8>, copied: &mut usize| {
            while let Some((start, end, json)) = nums.next_if(|e| e.0 < at) {
                out.extend_from_slice(&doc[*copied..start]);
                out.extend_from_slice(&json);
                *copied = end;
            }
        };
        let mut cut = in_str.into_iter().peekable();
        // Every string when each is searched on its own, else only those the spans cut (in
        // order: `in_str` follows the spans): a LangGraph state of 121 KiB has 3,600 strings,
        // and walking them all to find the few with a value was a seventh of its `mask_json`.
        let mut next = 0;
        loop {
            let t = match cut.peek() {
                _ if per_string => next,
                Some(&(t, _)) => t,
                None => break,
            };
            let (Some(k), Some(dk)) = (strs.get(t), dstrs.get(t)) else { break };
            next = t + 1;
            let mut spans: Vec<Span> = Vec::new();
            let (cs, ce) = dk.content();
            let text = &hay[cs..ce];
            while let Some((_, sp)) = cut.next_if(|(i, _)| *i == t) {
                spans.push(sp);
            }
            if per_string {
                spans.extend(self.spans(text));
            }
            if spans.is_empty() {
                continue;
            }
            let spans = Self::merge(spans);
            out.reserve(doc.len() + 64);
            numbers_before(k.start, &mut out, &mut copied);
            out.extend_from_slice(&doc[copied..k.start]);
            copied = k.end;
            changed = true;
            // The string's raw bytes, escapes as they were, with the replacements put in where
            // they can stand as they are and no span cuts a character or an escape; else its
            // masked decoded text, encoded again.
            let at_char = |i: usize| text.get(i).is_none_or(|&b| !(0x80..0xC0).contains(&b));
            let mark = out.len();
            if way == JsonWay::Encode
                || !spans.iter().all(|s| at_char(s.start) && at_char(s.end))
                || !super::json::rewrite_raw(&doc[k.start + 1..k.end - 1], k.escaped, &spans, &mut out, |sp, out| {
                    self.replacement(sp, &text[sp.start..sp.end], out)
                })
            {
                out.truncate(mark);
                out.extend_from_slice(&self.json_string(text, spans));
            }
        }
        numbers_before(usize::MAX, &mut out, &mut copied);
        if !changed {
            return None;
        }
        out.extend_from_slice(&doc[copied..]);
        Some(out)
    }

    /// `mask_json_valid` of a valid document, `way` (for the tests).
    #[cfg(test)]
    fn mask_json_way(&self, doc: &[u8], way: JsonWay) -> Option<Vec<u8>> {
        self.mask_json_valid(doc, way, memchr::memchr(b'\\', doc).is_some(), None)
    }

    /// Whether a candidate of a pattern that can match a '"' holds a quote that opens or closes
    /// a string of `hay` (a document without escapes: any quote; a decoded document, whose
    /// strings `dstrs` may hold quotes of their own: one of theirs).
    fn crossing(&self, hay: &[u8], dstrs: Option<&[StrTok]>, raws: &[Raw]) -> bool {
        raws.iter().any(|r| {
            self.quote_capable[r.entry]
                && match dstrs {
                    None => memchr::memchr(b'"', &hay[r.start..r.end]).is_some(),
                    Some(ds) => ds.get(ds.partition_point(|k| k.end <= r.start)).is_some_and(|k| {
                        let (open, close) = (k.start, k.end - 1);
                        (r.start..r.end).contains(&open) || (open < r.start && close < r.end)
                    }),
                }
        })
    }

    /// `text` masked at `spans` (merged), as a JSON string literal.
    fn json_string(&self, text: &[u8], spans: Vec<Span>) -> Vec<u8> {
        let mut masked = Vec::with_capacity(text.len());
        self.rewrite(text, &spans, &mut masked);
        let mut out = Vec::with_capacity(masked.len() + 2);
        match std::str::from_utf8(&masked) {
            Ok(t) => super::json::encode_into(t, &mut out),
            Err(_) => super::json::encode_into(&String::from_utf8_lossy(&masked), &mut out),
        }
        out
    }

    /// Whether some of the default catalogue's digit patterns are located by their digit
    /// shapes instead of a Hyperscan pass (`DIGIT_GATED`).
    pub fn digit_gated(&self) -> bool {
        self.dbs.iter().any(|db| !db.triggers.is_empty())
    }

    /// The vector instructions the passes use on this CPU, for benchmark reports: the gates'
    /// tables (`avx512vbmi`, `avx2`, or `none` when no database is gated) and the digit shapes'
    /// masks (`avx512bw`, `avx2`, `sse2`).
    pub fn simd(&self) -> String {
        let gate = self.dbs.iter().find_map(|db| db.gate.as_ref()).map_or("none", Gate::level_name);
        let shapes = match Simd::detect() {
            // (short ranges with AVX-512BW, long ones four windows at a time with AVX2)
            Simd::Avx512 => "avx512bw+avx2x4",
            Simd::Avx2 => "avx2",
            Simd::Sse2 => "sse2",
        };
        format!("gate {gate}, digit shapes {shapes}")
    }

    /// Whether a match inside a JSON string or SSE data line without escapes is always also a
    /// match of the raw bytes around it (no anchored pattern).
    pub fn raw_superset(&self) -> bool {
        self.raw_superset
    }

    /// True when one pass over the raw bytes proves that nothing in `doc` is masked, as JSON
    /// (`mask_json_valid`) or as text: no escapes, anchor-free patterns, and no candidate anywhere.
    pub fn raw_clear(&self, doc: &[u8]) -> bool {
        self.raw_superset && memchr::memchr(b'\\', doc).is_none() && !self.may_match(doc)
    }
}

/// How `Engine::mask_json_valid` goes: with its shortcuts, or (for the tests, which compare)
/// searching every string on its own as well, or encoding every masked string again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JsonWay {
    Fast,
    #[cfg_attr(not(test), allow(dead_code))]
    EveryString,
    #[cfg_attr(not(test), allow(dead_code))]
    Encode,
}

/// `doc` (valid JSON, its string tokens `strs`) with every string that holds an escape
/// decoded in place between its quotes, and where each string lies in it. What lies outside
/// the strings is byte for byte the document's.
fn decoded_doc(doc: &[u8], strs: &[StrTok]) -> (Vec<u8>, Vec<StrTok>) {
    let mut d = Vec::with_capacity(doc.len());
    let mut at = Vec::with_capacity(strs.len());
    // `doc[copied..]` is still to copy, to `d[d.len()..]`
    let mut copied = 0;
    for k in strs {
        if !k.escaped {
            let to_d = |x: usize| x - copied + d.len();
            at.push(StrTok { start: to_d(k.start), end: to_d(k.end), escaped: false });
            continue;
        }
        d.extend_from_slice(&doc[copied..=k.start]);
        let start = d.len() - 1;
        super::json::decode_into(&doc[k.start + 1..k.end - 1], &mut d);
        d.push(b'"');
        at.push(StrTok { start, end: d.len(), escaped: true });
        copied = k.end;
    }
    d.extend_from_slice(&doc[copied..]);
    (d, at)
}

/// Whether `dfa`, anchored at `at`, reaches its dead state before the end of `hay`.
fn dies_before_end(dfa: &hybrid::dfa::DFA, cache: &mut hybrid::dfa::Cache, hay: &[u8], at: usize) -> bool {
    let input = Input::new(hay).span(at..hay.len()).anchored(Anchored::Yes);
    let Ok(mut sid) = dfa.start_state_forward(cache, &input) else {
        return false;
    };
    for &b in &hay[at..] {
        match dfa.next_state(cache, sid, b) {
            Ok(next) if next.is_dead() => return true,
            Ok(next) if next.is_quit() => return false,
            Ok(next) => sid = next,
            Err(_) => return false,
        }
    }
    false
}

/// State of one streaming masker.
#[derive(Default)]
pub struct StreamState {
    /// Look-behind context (`hay[..ctx]`, already released) followed by the unreleased bytes.
    hay: Vec<u8>,
    ctx: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::validators;
    use crate::test_util::xorshift;

    /// A necessary condition for any match of `DIGIT_GATED`: some `digit_triggers` trigger.
    fn digit_gate(text: &[u8]) -> bool {
        let mut any = false;
        digit_triggers(text, |_, _, _| {
            any = true;
            false
        });
        any
    }

    /// `may_match` on a digit-shape database says what a Hyperscan pass would: whether any of
    /// its patterns matches (validators aside), on generated digit-heavy texts.
    #[test]
    fn may_match_on_digit_shapes_agrees_with_the_regexes() {
        let entries: Vec<EntrySpec> = DIGIT_GATED
            .iter()
            .enumerate()
            .map(|(i, (p, _))| spec(&format!("g{i}"), "G", p, Validator::None, 40, &[]))
            .collect();
        let engine = Engine::new(entries, [7; 32]).unwrap();
        assert!(engine.digit_gated());
        let res: Vec<Regex> =
            DIGIT_GATED.iter().map(|(p, _)| Regex::builder().syntax(syntax_config()).build(p).unwrap()).collect();
        let pieces: &[&str] = &[
            "4111",
            "1111",
            "415",
            "555",
            "0100",
            "12",
            "446655440000",
            "(",
            ") ",
            "-",
            " ",
            ".",
            "+4",
            "GB82",
            "x",
            "a",
            "\n",
        ];
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..30_000 {
            let mut text = String::new();
            for _ in 0..next() % 9 {
                text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let want = res.iter().any(|re| re.is_match(text.as_bytes()));
            assert_eq!(engine.may_match(text.as_bytes()), want, "{text:?}");
            if want {
                yes += 1
            } else {
                no += 1
            }
        }
        assert!(yes > 500 && no > 500, "{yes} matching, {no} not");
    }

    /// A one-pattern entry that labels its matches.
    fn spec(id: &str, ent: &str, p: &str, v: Validator, max: usize, pre: &[&str]) -> EntrySpec {
        EntrySpec {
            id: id.into(),
            entity: ent.into(),
            patterns: vec![p.into()],
            validator: v,
            action: Action::Label,
            group: 0,
            max_len: max,
            prefixes: pre.iter().map(|s| s.as_bytes().to_vec()).collect(),
            prefilter: None,
        }
    }

    fn engine() -> Engine {
        let e = spec;
        Engine::new(
            vec![
                e("gh", "GITHUB_TOKEN", r"\bghp_[A-Za-z0-9]{36}\b", Validator::None, 40, &["ghp_"]),
                e(
                    "email",
                    "EMAIL",
                    r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b",
                    Validator::None,
                    254,
                    &[],
                ),
                e("card", "CARD", r"\b(?:\d[ -]?){12,18}\d\b", Validator::Luhn, 23, &[]),
            ],
            [7; 32],
        )
        .unwrap()
    }

    #[test]
    fn a_gated_chunk_after_a_whole_scan_reads_the_overlap() {
        // The first chunk holds more gate candidates than pay as regions, so Hyperscan scans it
        // whole, and that sees no match running past its end; the next chunk is gated, and its
        // gate must read the overlap with the first for the token across the edge.
        let engine = token_and_card_engine(&[]);
        assert!(engine.dbs.iter().any(|db| db.gate.is_some()), "the gate is in use");
        let mut text = Vec::new();
        while text.len() < SCAN_CHUNK {
            text.extend_from_slice(b"ghp_a ");
            text.extend_from_slice(&b"lorem ipsum dolor sit amet ".repeat(4)[..94]);
        }
        text.truncate(SCAN_CHUNK - 20);
        let token = b"ghp_abcdefghijklmnopqrstuvwxyz0123456789";
        let start = text.len() + 1;
        text.push(b' ');
        text.extend_from_slice(token);
        text.push(b' ');
        text.extend_from_slice(&b"lorem ipsum ".repeat(SCAN_CHUNK / 12));
        let spans: Vec<(usize, usize)> = engine.spans(&text).iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(spans, vec![(start, start + token.len())]);
    }

    /// An engine with a GitHub-like token (literal-led), the shipped card pattern (digit
    /// shapes) and `more`.
    fn token_and_card_engine(more: &[(&str, &str, usize, &str)]) -> Engine {
        let mut entries = vec![
            spec("gh", "GH", r"\bghp_[A-Za-z0-9]{36}\b", Validator::None, 40, &["ghp_"]),
            spec("card", "CARD", DIGIT_GATED[0].0, Validator::Luhn, 24, &[]),
        ];
        for &(id, p, max, prefix) in more {
            entries.push(spec(id, &id.to_uppercase(), p, Validator::None, max, &[prefix]));
        }
        Engine::new(entries, [7; 32]).unwrap()
    }

    /// Texts longer than `SCAN_CHUNK` are scanned in overlapping chunks: values placed across
    /// every chunk edge and overlap edge are all found, by the Hyperscan databases and by the
    /// digit shapes alike.
    #[test]
    fn chunked_scans_find_matches_across_chunk_edges() {
        let engine = token_and_card_engine(&[("long", r"\bLONG<[a-z]{1,3000}>", 3010, "long<")]);
        assert!(engine.dbs.iter().any(|db| !db.triggers.is_empty()));
        let overlap = engine.max_len() + 2;
        let values: [&[u8]; 3] =
            [b"ghp_abcdefghijklmnopqrstuvwxyz0123456789", b"4111 1111 1111 1111", b"LONG<abcdefgh>"];
        let mut edges = Vec::new();
        for k in 1..4 {
            let end = k * SCAN_CHUNK - (k - 1) * overlap; // where chunk k ends
            edges.extend([end, end - overlap]);
        }
        let mut text = b"lorem ipsum 12 ab ".repeat((3 * SCAN_CHUNK + 5000) / 18);
        let mut want = Vec::new();
        for &edge in &edges {
            for (v, value) in values.iter().enumerate() {
                for at in [edge - value.len(), edge - value.len() / 2, edge, edge - value.len() - 1, edge + 1] {
                    let at = at + 200 * v; // values for one edge do not overlap
                    let mut t = text.clone();
                    t[at - 1] = b' ';
                    t[at..at + value.len()].copy_from_slice(value);
                    t[at + value.len()] = b' ';
                    want.push((t, at, at + value.len()));
                }
            }
        }
        text.clear();
        for (t, start, end) in want {
            let spans = engine.spans(&t);
            assert_eq!(
                spans.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>(),
                vec![(start, end)],
                "{:?} at {start}",
                String::from_utf8_lossy(&t[start..end])
            );
        }
    }

    /// The Hyperscan prefix check is caseless, like the prefixes: a PEM header (prefix
    /// "-----begin ") split across writes is held back until the block can be masked whole.
    #[test]
    fn prefix_check_is_caseless() {
        let engine = Engine::new(
            vec![spec(
                "pem",
                "PEM",
                r"-----BEGIN KEY-----[A-Za-z0-9\n]+-----END KEY-----",
                Validator::None,
                400,
                &["-----begin "],
            )],
            [7; 32],
        )
        .unwrap();
        let db = engine.prefix_db.as_ref().unwrap();
        for (text, want) in
            [("xx -----BEGIN KEY", true), ("-----begin", false), ("-----Begin x", true), ("plain", false)]
        {
            assert_eq!(with_aligned(text.as_bytes(), |t| db.any(t)), want, "{text}");
        }
        let text = b"a -----BEGIN KEY-----\nQUJD\n-----END KEY----- b";
        for cut in 0..text.len() {
            let mut st = StreamState::default();
            let mut out = engine.feed(&mut st, &text[..cut]);
            out.extend(engine.feed(&mut st, &text[cut..]));
            out.extend(engine.finish(&mut st));
            assert_eq!(out, b"a [PEM] b", "cut at {cut}");
        }
    }

    /// The streams' prefix check goes through the gate with the shipped catalogue, and says
    /// what the Hyperscan check says: whether any prefix occurs, in any case, at any offset of
    /// a text (generated: words, digits and the prefixes, whole, cut short and in mixed case).
    #[test]
    fn gated_prefix_check_agrees_with_hyperscan() {
        let engine = Engine::new(shipped_entries(), [7; 32]).unwrap();
        let db = engine.prefix_db.as_ref().unwrap();
        if Simd::detect() >= Simd::Avx2 {
            assert!(db.gate.is_some(), "the shipped prefixes are gated");
        }
        let mut next = xorshift(0x5eed_0f9a_7e01);
        let words: &[&[u8]] = &[b"the ", b"run ", b"a-b ", b"0123 ", b"_", b"-", b"\n", b"\xff", b"x", b"  "];
        let (mut yes, mut no) = (0, 0);
        for round in 0..3000 {
            let mut text = Vec::new();
            let len = (next() % 300) as usize;
            while text.len() < len {
                if next().is_multiple_of(60) {
                    let p = &engine.prefix_bytes[(next() % engine.prefix_bytes.len() as u64) as usize];
                    // the prefix, or all of it but its last byte; random letters in upper case
                    let keep = if next().is_multiple_of(3) { p.len() - 1 } else { p.len() };
                    text.extend(p[..keep].iter().map(|&b| {
                        if next().is_multiple_of(2) {
                            b.to_ascii_uppercase()
                        } else {
                            b
                        }
                    }));
                } else {
                    text.extend_from_slice(words[(next() % words.len() as u64) as usize]);
                }
            }
            if round % 5 == 0 {
                text.truncate(len.min(text.len()));
            }
            let want = with_aligned(&text, |t| db.any(t));
            assert_eq!(db.may_occur(&text), want, "{:?}", String::from_utf8_lossy(&text));
            if want {
                yes += 1;
            } else {
                no += 1;
            }
        }
        assert!(yes > 800 && no > 800, "{yes} {no}");
    }

    /// `write_masked` into a slice of `masked_len` bytes equals `mask`, for every action.
    #[test]
    fn writing_into_a_slice_equals_mask() {
        for action in [Action::Label, Action::Partial, Action::Hash, Action::Drop] {
            let with = |e: EntrySpec| EntrySpec { action, ..e };
            let engine = Engine::new(
                vec![
                    with(spec("gh", "GITHUB_TOKEN", r"\bghp_[A-Za-z0-9]{36}\b", Validator::None, 40, &["ghp_"])),
                    with(spec("card", "CARD", r"\b(?:\d[ -]?){12,18}\d\b", Validator::Luhn, 23, &[])),
                ],
                [7; 32],
            )
            .unwrap();
            for text in [
                "",
                "nothing here",
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "pay 4111 1111 1111 1111 and ghp_abcdefghijklmnopqrstuvwxyz0123456789 then 4111111111111111.",
            ] {
                let text = text.as_bytes();
                let spans = engine.spans(text);
                let mut out = vec![MaybeUninit::<u8>::uninit(); engine.masked_len(text, &spans)];
                engine.write_masked(text, &spans, &mut out);
                // SAFETY: `write_masked` writes every byte (it asserts so)
                let out: Vec<u8> = out.iter().map(|b| unsafe { b.assume_init() }).collect();
                assert_eq!(out, engine.mask(text), "{action:?} {:?}", String::from_utf8_lossy(text));
            }
        }
    }

    #[test]
    fn block_masks_and_validates() {
        let m = engine();
        let out = m.mask(b"mail a.b@example.com card 4111 1111 1111 1111 not 4111 1111 1111 1112");
        assert_eq!(out, b"mail [EMAIL] card [CARD] not 4111 1111 1111 1112".to_vec());
    }

    #[test]
    fn stream_equals_block_for_every_split() {
        let text = b"x ghp_abcdefghijklmnopqrstuvwxyz0123456789 y jo@ex.io z 4111-1111-1111-1111.";
        streams_equal_block(&engine(), text);
    }

    /// `text` fed to a stream in three writes, cut at every pair of points, is masked as in
    /// block mode.
    fn streams_equal_block(m: &Engine, text: &[u8]) {
        let whole = m.mask(text);
        for a in 0..text.len() {
            for b in a..text.len() {
                let mut st = StreamState::default();
                let mut out = m.feed(&mut st, &text[..a]);
                out.extend(m.feed(&mut st, &text[a..b]));
                out.extend(m.feed(&mut st, &text[b..]));
                out.extend(m.finish(&mut st));
                assert_eq!(out, whole, "split {a},{b}");
            }
        }
    }

    /// A UUID whose last group is 12 digits passing Luhn keeps it, in block mode and in a
    /// stream cut anywhere (the context kept from released text holds the UUID's head); the
    /// same digits alone are a card.
    #[test]
    fn uuid_tails_are_no_cards_in_blocks_and_streams() {
        // the shipped card pattern (12-19 digits), so that the digit shapes locate it
        let card = spec("card", "CARD", DIGIT_GATED[0].0, Validator::Luhn, 24, &[]);
        let m = Engine::new(vec![card], [7; 32]).unwrap();
        assert!(m.digit_gated());
        let text =
            b"run 01a22d8d-934b-7461-bf00-123456789015 of card 123456789015, run 01a22d8d-934b-7461-bf00-123456789015";
        let whole = m.mask(text);
        assert_eq!(
            String::from_utf8_lossy(&whole),
            "run 01a22d8d-934b-7461-bf00-123456789015 of card [CARD], run 01a22d8d-934b-7461-bf00-123456789015"
        );
        streams_equal_block(&m, text);
    }

    #[test]
    fn stream_holds_back_from_the_earliest_prefix_within_reach() {
        // A JWT holds `eyJ` at its header and again at its payload; a token longer than the
        // base hold-back must not be released from the first one while it is still arriving.
        let m = Engine::new(
            vec![EntrySpec {
                id: "jwt".into(),
                entity: "JWT".into(),
                patterns: vec![r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}".into()],
                validator: Validator::None,
                action: Action::Label,
                group: 0,
                max_len: 2000,
                prefixes: vec![b"eyj".to_vec()],
                prefilter: None,
            }],
            [7; 32],
        )
        .unwrap();
        let mut text = b"token: eyJhbGciOiJSUzI1NiJ9.eyJ".to_vec();
        text.extend(std::iter::repeat_n(b'a', 900));
        text.extend_from_slice(b".signature0123 and eyJ more text after it");
        let whole = m.mask(&text);
        assert!(whole.starts_with(b"token: [JWT] and"));
        for size in [1, 7, 64, 256] {
            let mut st = StreamState::default();
            let mut out = Vec::new();
            for chunk in text.chunks(size) {
                out.extend(m.feed(&mut st, chunk));
            }
            out.extend(m.finish(&mut st));
            assert_eq!(out, whole, "chunks of {size}");
        }
    }

    #[test]
    fn bounded_searches_see_past_their_span() {
        // `raw_matches` ends a window's search at `hi + max_match`; `\b` there must still see
        // the next byte, or a digit run cut at the span's end would match.
        let re = Regex::builder().syntax(syntax_config()).build(r"\b\d{3}\b").unwrap();
        assert!(re.search(&Input::new(b"x 1234 y").span(0..5)).is_none());
        assert!(re.search(&Input::new(b"x 123 y").span(0..5)).is_some());
        assert_eq!(max_match(r"\b\d{3}[- ]\d{2}\b"), Some(6));
        assert_eq!(max_match(r"ghp_[a-z]+"), None);
    }

    #[test]
    fn chunk_masks_are_exact_for_every_byte_and_offset() {
        let mut text: Vec<u8> = (0u8..=255).collect();
        text.extend_from_slice(b"+1x9+");
        for simd in Simd::available() {
            for c in 0..text.len() {
                let k = chunk_masks(&text, c, simd);
                assert_eq!(k, chunk_masks_bytes(&text[c..text.len().min(c + 64)]), "{c} {simd:?}");
                for i in 0..64 {
                    let b = text.get(c + i).copied();
                    let bit = |m: u64| m >> i & 1 == 1;
                    assert_eq!(bit(k.digit), b.is_some_and(|b| b.is_ascii_digit()), "digit {c}+{i} {simd:?}");
                    assert_eq!(bit(k.plus), b == Some(b'+'), "plus {c}+{i} {simd:?}");
                    assert_eq!(bit(k.sep), b.is_some_and(run_separator), "separator {c}+{i} {simd:?}");
                    assert_eq!(bit(k.upper), b.is_some_and(|b| b.is_ascii_uppercase()), "upper {c}+{i} {simd:?}");
                }
            }
        }
    }

    /// `digit_triggers` read block by block: every block of the text in order, with what it
    /// reports (the reference for `ShapeMasks`, in the same order).
    fn triggers_by_blocks(text: &[u8]) -> Vec<(Trigger, usize, usize)> {
        let mut blocks: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let len = text[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if len > 0 {
                blocks.push((i, i + len));
            }
            i += len.max(1);
        }
        let joined = |a: (usize, usize), b: (usize, usize)| {
            (1..=2).contains(&(b.0 - a.1)) && text[a.1..b.0].iter().all(|&c| run_separator(c))
        };
        let mut out = Vec::new();
        for (n, &(i, j)) in blocks.iter().enumerate() {
            if (12..=19).contains(&(j - i)) {
                out.push((Trigger::Card, i, i));
            }
            if let (Some(&b), Some(&c)) = (blocks.get(n + 1), blocks.get(n + 2)) {
                if joined((i, j), b) && joined(b, c) {
                    match (j - i, b.1 - b.0, c.1 - c.0) {
                        (4, 4, 4) | (4, 6, 4) | (4, 6, 5) => out.push((Trigger::Card, i, i)),
                        (3, 2, 4) => out.push((Trigger::Ssn, i.saturating_sub(3), i)),
                        (3, 3, 4) => out.push((Trigger::Phone, i.saturating_sub(3), i)),
                        _ => {}
                    }
                }
            }
            let tail = text.get(j).copied();
            if i >= 1
                && text[i - 1] == b'+'
                && text[i] != b'0'
                && (j - i >= 8 || (j - i <= 3 && matches!(tail, Some(b' ' | b'.' | b'-'))))
            {
                out.push((Trigger::Plus, i - 1, i - 1));
            }
            if i >= 2
                && j - i >= 2
                && text[i - 1].is_ascii_uppercase()
                && text[i - 2].is_ascii_uppercase()
                && (i < 3 || !(text[i - 3].is_ascii_alphanumeric() || text[i - 3] == b'_'))
            {
                out.push((Trigger::Upper, i - 2, i - 2));
            }
        }
        out
    }

    /// The triggers of the blocks starting in `[from, to)`, at SIMD level `simd`.
    fn shape_list(text: &[u8], from: usize, to: usize, simd: Simd) -> Vec<(Trigger, usize, usize)> {
        shape_list_luhn(text, from, to, simd, false)
    }

    /// `shape_list`, with long blocks that fail Luhn dropped when `luhn`.
    fn shape_list_luhn(text: &[u8], from: usize, to: usize, simd: Simd, luhn: bool) -> Vec<(Trigger, usize, usize)> {
        let mut out = Vec::new();
        shape_triggers_with(text, from, to, simd, luhn, |t, lo, hi| {
            out.push((t, lo, hi));
            true
        });
        out
    }

    /// The masks (`ShapeMasks`) report exactly what a block-by-block reading reports, at every
    /// SIMD level this CPU has, in one range and in two at every split point: long random
    /// texts of digit blocks, separators, capitals, '+' and words, so that lone and joined
    /// blocks of every length meet at every window offset.
    #[test]
    fn shape_masks_report_what_a_block_by_block_reading_reports() {
        let pieces: &[&[u8]] = &[b" ", b" ", b"-", b".", b"(", b")", b"  ", b"+", b"GB", b"word ", b"x", b",", b"\n"];
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let check = |text: &[u8], splits: bool| -> usize {
            let want = triggers_by_blocks(text);
            // without the `Card` triggers of 12-19 digit blocks that fail Luhn
            let passing: Vec<_> = want
                .iter()
                .copied()
                .filter(|&(t, lo, _)| {
                    let n = text[lo..].iter().take_while(|b| b.is_ascii_digit()).count();
                    t != Trigger::Card || !(12..=19).contains(&n) || validators::luhn(&text[lo..lo + n])
                })
                .collect();
            for simd in Simd::available() {
                assert_eq!(shape_list(text, 0, text.len(), simd), want, "{simd:?} {:?}", String::from_utf8_lossy(text));
                // (with `luhn`, the Card triggers of long blocks come after a batch's others)
                let mut luhn = shape_list_luhn(text, 0, text.len(), simd, true);
                luhn.sort_unstable_by_key(|&(t, lo, hi)| (lo, hi, t as u8));
                let mut passing = passing.clone();
                passing.sort_unstable_by_key(|&(t, lo, hi)| (lo, hi, t as u8));
                assert_eq!(luhn, passing, "{simd:?} Luhn {:?}", String::from_utf8_lossy(text));
            }
            if splits {
                for cut in 0..=text.len() {
                    let mut two = shape_list(text, 0, cut, Simd::detect());
                    two.extend(shape_list(text, cut, text.len(), Simd::detect()));
                    assert_eq!(two, want, "split at {cut} of {:?}", String::from_utf8_lossy(text));
                }
            }
            want.len()
        };
        // shapes whose blocks are joined by two separators, at every window offset, with a
        // short and a long tail (the window past the text's end, or inside it)
        for shape in [
            "415) 555-0100",
            "123  45  6789",
            "4111 1111  1111",
            "1 (415) 555-0100",
            "123. 45. 6789",
            "+1 2",
            "GB82 1234567890123",
        ] {
            for tail in [" tail".to_string(), " tail".repeat(14)] {
                for pad in 0..140 {
                    let text = format!("{}{shape}{tail}", "a".repeat(pad));
                    assert!(check(text.as_bytes(), pad % 7 == 0) > 0, "{text}");
                }
            }
        }
        let mut reported = 0usize;
        for round in 0..4000 {
            let mut text: Vec<u8> = Vec::new();
            let len = 64 + (next() % 400) as usize;
            // some texts are mostly words, whose digit blocks are mostly lone; a quarter are
            // blocks of the shapes' lengths joined by one or two separators, so that runs of
            // three joined blocks form shapes (or near misses) at every window offset
            let shapes = round % 4 == 3;
            let digit_share = [2, 4, 8, 4][round % 4];
            while text.len() < len {
                if next() % 8 < digit_share {
                    let count = if shapes {
                        [2u64, 3, 3, 4, 4, 4, 5, 6][(next() % 8) as usize]
                    } else if next().is_multiple_of(16) {
                        10 + next() % 12
                    } else {
                        1 + next() % 7
                    };
                    for _ in 0..count {
                        text.push(b'0' + (next() % 10) as u8);
                    }
                } else if shapes {
                    let seps: &[&[u8]] = &[b" ", b"-", b".", b"  ", b") ", b". ", b" (", b"x", b"word "];
                    text.extend_from_slice(seps[(next() % seps.len() as u64) as usize]);
                } else {
                    text.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
                }
            }
            reported += check(&text, round % 10 == 0);
        }
        assert!(reported > 3000, "only {reported} triggers");
    }

    /// The fused pass (`Engine::fused`, gate and digit shapes in one loop, the visits decided
    /// a chunk late by `Visits`) reports the triggers of the whole range that `shape_triggers`
    /// reports, on prose-like text whose few digit blocks, '+' signs and capitals fall at every
    /// offset of the 64-byte chunks, from ranges that start anywhere.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn fused_pass_visits_every_chunk_with_a_trigger() {
        let engine = Engine::new(shipped_entries(), [7; 32]).unwrap();
        let Some(gate) = engine.dbs.iter().find(|db| db.triggers.is_empty()).and_then(|db| db.gate.as_ref()) else {
            assert!(Simd::detect() < Simd::Avx2, "a gate wherever the pass runs");
            return;
        };
        let key = |&(t, lo, hi): &(Trigger, usize, usize)| (lo, hi, t as u8);
        let check = |text: &[u8], from: usize| {
            let mut got = Vec::new();
            let mut found = Found::default();
            engine.fused(gate, text, from, text.len(), usize::MAX, true, &mut found, &mut |t, lo, hi| {
                got.push((t, lo, hi));
                true
            });
            let mut want = shape_list_luhn(text, from, text.len(), Simd::detect(), engine.card_luhn);
            got.sort_by_key(key);
            want.sort_by_key(key);
            assert_eq!(got, want, "from {from} of {:?}", String::from_utf8_lossy(text));
            want
        };
        // every shape at every offset of a chunk, and a range that starts at its first byte
        // or digit
        let shapes = [
            "4111 1111 1111 1111",
            "4111-111111-11111",
            "4539578763621486",
            "123-45-6789",
            "415.555.0100",
            "(415) 555-0100",
            "1-415-555-0100",
            "+44 20 7946 0958",
            "+14155550100",
            "GB82 WEST 1234 5698 7654 32",
        ];
        for shape in shapes {
            for pad in 0..140 {
                let text = format!("{}{shape}{}", &"ab cd ".repeat(pad / 6 + 1)[..pad], " tail".repeat(30));
                let first_digit = pad + shape.bytes().position(|b| b.is_ascii_digit()).unwrap_or(0);
                for from in [0, pad, first_digit] {
                    assert!(!check(text.as_bytes(), from).is_empty() || from == first_digit, "{text}");
                }
            }
        }
        let pieces: &[&[u8]] = &[b"+", b"GB", b"(", b") ", b"-", b".", b" ", b"  ", b"x", b"Q"];
        let mut next = xorshift(0x5eed_0fc4_a1d1_e5f0u64);
        let (mut reported, mut visited_late) = (0usize, 0usize);
        for round in 0..6000 {
            let mut text: Vec<u8> = Vec::new();
            let len = 64 * (2 + (next() % 12) as usize) + (next() % 64) as usize;
            // mostly words; a shape piece every 16 bytes or so (every 6 in a tenth of them, where
            // the pass visits so many chunks that it goes on in two passes)
            let every = if round % 10 == 0 { 6 } else { 16 };
            while text.len() < len {
                if next().is_multiple_of(every) {
                    if next().is_multiple_of(3) {
                        text.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
                    }
                    let count = [1u64, 2, 3, 3, 4, 4, 5, 6, 8, 12, 13, 16][(next() % 12) as usize];
                    for _ in 0..count {
                        text.push(b'0' + (next() % 10) as u8);
                    }
                    text.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
                } else {
                    text.push(b"etaoin shrdlu "[(next() % 14) as usize]);
                }
            }
            let from = (next() % 64) as usize;
            let want = check(&text, from);
            reported += want.len();
            // triggers whose block starts in a chunk's last three bytes or first byte
            visited_late +=
                want.iter().filter(|&&(_, _, hi)| hi >= from && !(1..61).contains(&((hi - from) % 64))).count();
        }
        assert!(reported > 5000 && visited_late > 300, "{reported} triggers, {visited_late} at chunk edges");
    }

    /// With `luhn`, the long blocks of a text of many batches of windows (`LONG_BATCH`), in
    /// whole and in ranges cut anywhere, are the ones that pass the check, with every other
    /// trigger, at every SIMD level.
    #[test]
    fn long_blocks_are_checked_batch_by_batch() {
        let mut next = xorshift(0x0dd_ba11_cafe_f00du64);
        let mut text = Vec::new();
        while text.len() < 40 * LONG_BATCH * SHAPE_STEP {
            match next() % 6 {
                0 | 1 => {
                    for _ in 0..12 + next() % 9 {
                        text.push(b'0' + (next() % 10) as u8);
                    }
                }
                2 => text.extend_from_slice(b"415-555-0100"),
                3 => text.extend_from_slice(b"550e8400-e29b-41d4-a716-446655440000"),
                _ => text.extend_from_slice(b" word "),
            }
            text.push(if next().is_multiple_of(3) { b'-' } else { b' ' });
        }
        let key = |&(t, lo, hi): &(Trigger, usize, usize)| (lo, hi, t as u8);
        let passing = |from: usize, to: usize| {
            let mut v: Vec<_> = triggers_by_blocks(&text)
                .into_iter()
                .filter(|&(t, lo, _)| {
                    let n = text[lo..].iter().take_while(|b| b.is_ascii_digit()).count();
                    t != Trigger::Card || !(12..=19).contains(&n) || validators::luhn(&text[lo..lo + n])
                })
                // a range reports the triggers of the blocks that start in it
                .filter(|&(t, lo, hi)| {
                    let block = match t {
                        Trigger::Card => lo,
                        Trigger::Ssn | Trigger::Phone => hi,
                        Trigger::Plus => lo + 1,
                        Trigger::Upper => lo + 2,
                    };
                    (from..to).contains(&block)
                })
                .collect();
            v.sort_unstable_by_key(key);
            v
        };
        let mut cuts = vec![(0, text.len())];
        for _ in 0..20 {
            let a = (next() % text.len() as u64) as usize;
            let b = a + (next() % (3 * LONG_BATCH * SHAPE_STEP) as u64) as usize;
            cuts.push((a, b.min(text.len())));
        }
        let mut longs = 0;
        for simd in Simd::available() {
            for &(from, to) in &cuts {
                let mut got = shape_list_luhn(&text, from, to, simd, true);
                got.sort_unstable_by_key(key);
                assert_eq!(got, passing(from, to), "{simd:?} {from}..{to}");
                longs += got
                    .iter()
                    .filter(|&&(t, lo, _)| {
                        t == Trigger::Card && text[lo..].iter().take_while(|b| b.is_ascii_digit()).count() >= 12
                    })
                    .count();
            }
        }
        assert!(longs > 300, "only {longs} long blocks passed");
    }

    #[test]
    fn digit_shapes_are_found_in_every_shape_the_gated_patterns_match() {
        for yes in [
            "4111111111111111",
            "card 4111 1111 1111 1111.",
            "4111-1111-1111-1111",
            "3782 822463 10005",
            "123-45-6789",
            "ssn 123 45 6789",
            "+14155550100",
            "call +1 415 555 0100",
            "+44 20 7946 0958",
            "(415) 555-0100",
            "415-555-0100",
            "1-415.555.0100",
            "+49 30 901820",
            "+1 2 3",
            "GB82WEST12345698765432",
            "DE89 3704 0044 0532 0130 00",
            "1 (415) 555-0100",
            "4111 111111 11111",
        ] {
            assert!(digit_gate(yes.as_bytes()), "{yes}");
        }
        for no in [
            "",
            "plain prose without any numbers at all, long enough to use the word skipping path",
            r#"{"event": "on_chain_stream", "run_id": "1ef-run", "step": 123456, "chunk": {}}"#,
            "id: 99\ndata: 12345678",
            "2026-11-24T10:20:30.123456+00:00",
            "v2.14.3 INV-482913 total 1249.50",
            "+0 1 2",
            "12345678",
            "1234 5678",
            "1234,5678,9012,3456",
            "x  123456789",
            "2026-11-24 1249.50",
            "550e8400-e29b-41d4-a716-44665544000a",
            "12345678901234567890",
        ] {
            assert!(!digit_gate(no.as_bytes()), "{no}");
        }
    }

    /// Every match of every `DIGIT_GATED` pattern (found by the regex crate, leftmost-first,
    /// searched again from each byte so that overlapping candidates count too) starts inside a
    /// window that `digit_triggers` reports for that pattern's trigger: random texts over an
    /// alphabet that makes digit shapes common.
    #[test]
    fn digit_triggers_cover_every_match_of_the_gated_patterns() {
        // units: an optional prefix, a digit block of a length the patterns use, an optional
        // ")" and a separator, so that every pattern's shapes (and near misses) are common
        let prefixes: &[&[u8]] = &[b"", b"", b"", b"(", b"+", b"GB", b"1 ", b"1-(", b"x", b"+0"];
        let lengths = [1usize, 2, 3, 3, 4, 4, 4, 5, 6, 12, 13, 16, 20];
        let seps: &[&[u8]] = &[b" ", b" ", b"-", b".", b"", b",", b"\n", b"  ", b") ", b")"];
        let res: Vec<(Regex, Trigger)> =
            DIGIT_GATED.iter().map(|&(p, t)| (Regex::builder().syntax(syntax_config()).build(p).unwrap(), t)).collect();
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        let mut checked = 0usize;
        let mut check = |text: &[u8]| {
            let mut windows: Vec<(Trigger, usize, usize)> = Vec::new();
            digit_triggers(text, |t, lo, hi| {
                windows.push((t, lo, hi));
                true
            });
            // the same, in consecutive ranges at every split point
            for cut in 0..=text.len() {
                let mut pieces = shape_list(text, 0, cut, Simd::detect());
                pieces.extend(shape_list(text, cut, text.len(), Simd::detect()));
                assert_eq!(pieces, windows, "split at {cut} of {:?}", String::from_utf8_lossy(text));
            }
            for (re, t) in &res {
                for from in 0..text.len() {
                    if let Some(m) = re.search(&Input::new(text).span(from..text.len())) {
                        checked += 1;
                        assert!(
                            windows.iter().any(|&(k, lo, hi)| k == *t && lo <= m.start() && m.start() <= hi),
                            "{:?} at {} in {:?}: {:?}",
                            t,
                            m.start(),
                            String::from_utf8_lossy(text),
                            windows
                        );
                    }
                }
            }
        };
        // every shape the patterns take, in a few contexts
        for shape in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1",
            "3782 822463 10005",
            "123-45-6789",
            "123 45 6789",
            "+14155550100",
            "+1 415 555 0100",
            "+44 20 7946 0958",
            "+49 (30) 901820",
            "(415) 555-0100",
            "415-555-0100",
            "415.555.0100",
            "1-415.555.0100",
            "1 (415) 555-0100",
            "1.(415)-555-0100",
            "GB82WEST12345698765432",
            "DE89 3704 0044 0532 0130 00",
        ] {
            for (before, after) in [("", ""), ("x ", " y"), ("(", ")"), ("1 ", "."), ("12 ", " 34")] {
                check(format!("{before}{shape}{after}").as_bytes());
            }
            // across the 64-byte chunks the scan reads
            for pad in 40..66 {
                check(format!("{}{shape} ", " 7".repeat(pad)).as_bytes());
            }
        }
        for _ in 0..30_000 {
            let count = (next() % 6) as usize;
            let mut text: Vec<u8> = Vec::new();
            for _ in 0..count {
                text.extend_from_slice(prefixes[(next() % prefixes.len() as u64) as usize]);
                for _ in 0..lengths[(next() % lengths.len() as u64) as usize] {
                    text.push(b'0' + (next() % 10) as u8);
                }
                text.extend_from_slice(seps[(next() % seps.len() as u64) as usize]);
            }
            check(&text);
        }
        assert!(checked > 1000, "only {checked} matches were checked");
    }

    #[test]
    fn anchors_are_found_outside_classes_only() {
        assert!(has_anchor("^abc"));
        assert!(has_anchor("(?:^|\\s)abc"));
        assert!(has_anchor("abc$"));
        assert!(has_anchor("\\Aabc"));
        assert!(has_anchor("abc\\z"));
        assert!(!has_anchor("[^\\s:/@]{1,256}"));
        assert!(!has_anchor("[]^$]x"));
        assert!(!has_anchor("\\$\\^"));
        assert!(!has_anchor("\\bghp_[A-Za-z0-9]{36}\\b"));
    }

    #[test]
    fn raw_pass_clears_json_only_when_it_is_a_superset() {
        let m = engine();
        assert!(m.raw_superset);
        assert!(m.raw_clear(br#"{"a":"nothing here","n":[1,2,3]}"#));
        assert!(!m.raw_clear(br#"{"a":"mail jo@ex.io"}"#));
        // an escape could hide a match from the raw bytes: never cleared by the raw pass
        assert!(!m.raw_clear(br#"{"a":"jo@ex.io"}"#));
        assert_eq!(m.mask_json_if_needed(br#"{"a":"jo@ex.io"}"#).unwrap().unwrap(), br#"{"a":"[EMAIL]"}"#.to_vec());
        // invalid JSON is refused on the fast path too
        assert!(m.mask_json_if_needed(br#"{"a":"x""#).is_err());
        // an anchored pattern matches the decoded string, not the raw document
        let anchored = Engine::new(
            vec![EntrySpec {
                id: "k".into(),
                entity: "KEY".into(),
                patterns: vec!["^key-[0-9]{4}".into()],
                validator: Validator::None,
                action: Action::Label,
                group: 0,
                max_len: 8,
                prefixes: vec![],
                prefilter: None,
            }],
            [7; 32],
        )
        .unwrap();
        assert!(!anchored.raw_superset);
        assert_eq!(
            anchored.mask_json_if_needed(br#"{"a":"key-1234"}"#).unwrap().unwrap(),
            br#"{"a":"[KEY]"}"#.to_vec()
        );
    }

    include!("shipped.rs");

    /// `sort_runs` sorts as the standard sort does: runs of random lengths and counts, with
    /// equal keys among them, close together or spread over a long text.
    #[test]
    fn runs_merge_into_a_sorted_list() {
        let mut next = xorshift(0x7a1e_5eed_0f5a_1700u64);
        for round in 0..2000 {
            let mut spans = Vec::new();
            let spread = [50, 5_000, 1 << 22][round % 3];
            for _ in 0..(round % 40) {
                let mut at = (next() % spread) as usize;
                for _ in 0..(next() % 30) {
                    at += (next() % 4) as usize;
                    let end = at + (next() % 3) as usize;
                    spans.push(Span { start: at, end, entry: (next() % 5) as usize });
                }
            }
            let mut want = spans.clone();
            want.sort_by_key(|s| (s.start, s.end));
            let key = |v: &[Span]| v.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>();
            let got = sort_runs(spans.clone());
            assert_eq!(key(&got), key(&want));
            let (mut a, mut b) = (got, spans);
            a.sort_by_key(|s| (s.start, s.end, s.entry));
            b.sort_by_key(|s| (s.start, s.end, s.entry));
            assert_eq!(a, b, "the same spans");
        }
    }

    /// Every (expression, end) Hyperscan reports for `db` over the whole of `text`.
    fn hyperscan_ends(db: &Db, text: &[u8]) -> Vec<(u32, usize)> {
        unsafe extern "C" fn push(id: u32, _from: u64, to: u64, _flags: u32, ctx: *mut std::ffi::c_void) -> i32 {
            (*(ctx as *mut Vec<(u32, usize)>)).push((id, to as usize));
            0
        }
        let mut out: Vec<(u32, usize)> = Vec::new();
        with_aligned(text, |t| {
            let scratch = db.take_scratch().expect("scratch");
            let rc = unsafe {
                hs_scan(
                    db.db,
                    t.as_ptr() as *const _,
                    t.len() as u32,
                    0,
                    scratch,
                    Some(push),
                    &mut out as *mut _ as *mut _,
                )
            };
            db.put_scratch(scratch);
            assert_eq!(rc, HS_SUCCESS);
        });
        out.sort_unstable();
        out.dedup();
        out
    }

    /// An exact gate (`Gate::exact`) reports the matches Hyperscan would: the same (expression,
    /// end) pairs over generated texts, for the shipped literal-led database and for operator
    /// prefilters with case folding, optional parts and alternatives of several lengths.
    #[test]
    fn exact_gates_find_what_hyperscan_finds() {
        let mut shipped = Engine::new(shipped_entries(), [7; 32]).expect("compiles");
        let operator: Vec<EntrySpec> = [
            (r"(?i)api[-_]?key", "apikey"),
            (r"(?:tok|token)_(?:a|bb|ccc)=", "token_bb="),
            (r"x[0-9]{2,3}Q", "x123Q"),
            (r"(?:ab|abab)c", "ababc"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (pf, _))| EntrySpec {
            prefilter: Some(pf.to_string()),
            ..spec(&format!("op{i}"), "OP", &format!("{pf}[a-z]{{0,8}}"), Validator::None, 40, &[])
        })
        .collect();
        let mut operator = Engine::new(operator, [7; 32]).expect("compiles");
        let mut next = xorshift(0x51a7_e0b5_3c2d_9e11u64);
        let (mut compared, mut matches) = (0, 0);
        for (engine, pieces) in [
            (
                &mut shipped,
                &[
                    &b"-----BEGIN "[..],
                    b"eyJhb",
                    b"AKIA",
                    b"ASIA",
                    b"aWs",
                    b"ghp_",
                    b"github_pat_",
                    b"glpat-",
                    b"xoxb-",
                    b"https://hooks.slack.com/",
                    b"sk-ant-",
                    b"sk-a",
                    b"sk_live_",
                    b"rk_test_",
                    b"AIza",
                    b"BeArEr",
                    b"basic ",
                    b"postgres://",
                    b"mongodb+srv://",
                    b"rediss://",
                    b"a@b",
                    b"x.y@z-",
                ][..],
            ),
            (
                &mut operator,
                &[&b"apikey"[..], b"API-KEY", b"api_Key", b"tok_a=", b"token_ccc=", b"x12Q", b"x123Q", b"ababc"][..],
            ),
        ] {
            let db = engine.dbs.iter().find(|db| db.gate.as_ref().is_some_and(Gate::exact)).unwrap_or_else(|| {
                panic!(
                    "an exact gate: {:?}",
                    engine.dbs.iter().map(|d| d.gate.as_ref().map(Gate::exact)).collect::<Vec<_>>()
                )
            });
            let gate = db.gate.as_ref().expect("gate");
            for _ in 0..400 {
                let len = 1 + (next() % 600) as usize;
                let mut t = Vec::new();
                while t.len() < len {
                    if next().is_multiple_of(3) {
                        let p = pieces[(next() % pieces.len() as u64) as usize];
                        // whole, or cut short, or with a byte changed
                        let mut p = p[..p.len() - (next() % 2) as usize].to_vec();
                        if next().is_multiple_of(5) {
                            let k = (next() % p.len() as u64) as usize;
                            p[k] ^= 0x20;
                        }
                        t.extend_from_slice(&p);
                    } else {
                        let noise = b"aZ9_-. @:/=+\n\t(x";
                        t.push(noise[(next() % noise.len() as u64) as usize]);
                    }
                }
                let mut found = Found::default();
                gate.regions(&t, 0, t.len(), 0, &mut found).expect("matches are not limited");
                assert!(found.regions.is_empty());
                let mut got = found.ends;
                got.sort_unstable();
                got.dedup();
                let want = hyperscan_ends(db, &t);
                assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&t));
                compared += 1;
                matches += want.len();
            }
        }
        assert!(compared == 800 && matches > 2000, "{compared} {matches}");
    }

    /// The enabled entries of the shipped catalogue.
    fn shipped_entries() -> Vec<EntrySpec> {
        shipped_catalogue().0
    }

    /// With the shipped catalogue (`card_luhn`), the raw pass clears JSON whose only digit
    /// blocks of 12-19 fail Luhn (UUID tails), and never a document that masking would change:
    /// generated documents of ids, cards, SSNs, phones, IBANs and emails, split into strings.
    #[test]
    fn raw_pass_clears_uuid_tails_and_nothing_that_masks() {
        let m = Engine::new(shipped_entries(), [7; 32]).unwrap();
        assert!(m.card_luhn && m.raw_superset);
        assert!(m.raw_clear(br#"{"run_id":"550e8400-e29b-41d4-a716-446655440000","status":"success"}"#));
        assert!(!m.raw_clear(br#"{"n":"4111111111111111"}"#));
        let pieces: &[&str] = &[
            "550e8400-e29b-41d4-a716-446655440000", // tail fails Luhn
            "1f0b7c2e-93aa-4c41-8d2f-123456789015", // tail passes Luhn: a UUID, not a card
            "446655440000",
            "123456789015",
            "4111111111111111",
            "4111111111111112",
            "4111 1111 1111 1111",
            "123-45-6789",
            "(415) 555-0100",
            "+14155550100",
            "GB82WEST12345698765432",
            "jo@ex.io",
            "2026-11-24",
            "12",
            " ",
            "-",
            "x",
            "\",\"",
            "\",{\"k\":\"",
        ];
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let (mut cleared, mut cleared_long, mut masked) = (0, 0, 0);
        for _ in 0..4_000 {
            // an array of strings, or of objects of one string
            let mut doc = String::from("[\"");
            let mut open = 0;
            for _ in 0..next() % 7 {
                let p = pieces[(next() % pieces.len() as u64) as usize];
                if p.starts_with("\",") {
                    doc.push_str(if open > 0 { "\"}" } else { "\"" });
                    doc.push_str(&p[1..]);
                    open = usize::from(p.contains('{'));
                } else {
                    doc.push_str(p);
                }
            }
            doc.push_str(if open > 0 { "\"}]" } else { "\"]" });
            let changed = m.mask_json_if_needed(doc.as_bytes()).unwrap().is_some();
            masked += usize::from(changed);
            if m.raw_clear(doc.as_bytes()) {
                assert!(!changed, "{doc}");
                cleared += 1;
                cleared_long += usize::from(doc.as_bytes().windows(12).any(|w| w.iter().all(u8::is_ascii_digit)));
            }
        }
        assert!(cleared > 300 && cleared_long > 100 && masked > 1000, "{cleared} {cleared_long} {masked}");
    }

    /// A random JSON value of the pieces below (strings of pieces, with and without escapes;
    /// numbers, among them card numbers; literals; arrays and objects).
    fn json_value(next: &mut impl FnMut() -> u64, depth: u32, out: &mut String) {
        const TEXT: &[&str] = &[
            "note ",
            "jo@ex.io",
            "jo\\u0040ex.io",
            "4111 1111 1111 1111",
            "123-45-6789",
            "550e8400-e29b-41d4-a716-446655440000",
            "ghp_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8",
            "\\n",
            "\\\"",
            "aws_secret_access_key",
            "AWS secret: ",
            "aws_secret_access_key\\\": \\\"",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "postgres://app:hunter2@db/x",
            "é",
            " ",
        ];
        const NUMBERS: &[&str] =
            &["0", "-12", "2.50", "1E+3", "4111111111111111", "4111111111111111.5", "123456789012"];
        let pick = |next: &mut dyn FnMut() -> u64, n: usize| (next() % n as u64) as usize;
        let string = |next: &mut dyn FnMut() -> u64, out: &mut String| {
            out.push('"');
            for _ in 0..next() % 4 {
                out.push_str(TEXT[pick(next, TEXT.len())]);
            }
            out.push('"');
        };
        match if depth > 2 { next() % 3 } else { next() % 6 } {
            0 => string(next, out),
            1 => out.push_str(NUMBERS[pick(next, NUMBERS.len())]),
            2 => out.push_str(["true", "false", "null"][pick(next, 3)]),
            3 | 4 => {
                out.push('{');
                for i in 0..next() % 4 {
                    if i > 0 {
                        out.push_str(if next().is_multiple_of(2) { "," } else { ", " });
                    }
                    if next().is_multiple_of(3) {
                        out.push_str("\"aws_secret_access_key\"");
                    } else {
                        string(next, out);
                    }
                    out.push_str(if next().is_multiple_of(2) { ":" } else { ": " });
                    json_value(next, depth + 1, out);
                }
                out.push('}');
            }
            _ => {
                out.push('[');
                for i in 0..next() % 4 {
                    if i > 0 {
                        out.push(',');
                    }
                    json_value(next, depth + 1, out);
                }
                out.push(']');
            }
        }
    }

    /// JSON documents with the shipped catalogue: the output is valid JSON; a document's own
    /// spans reach its strings and numbers (an AWS secret after its key, a card number that is a
    /// number); and where the raw pass gives the spans of the strings without escapes (no
    /// candidate of a pattern that can match a quote), searching every string on its own as
    /// well changes nothing.
    #[test]
    fn json_is_masked_in_its_strings_and_where_its_raw_bytes_match() {
        let m = Engine::new(shipped_entries(), [7; 32]).unwrap();
        let masked = |doc: &[u8]| m.mask_json(doc).unwrap();
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            masked(format!(r#"{{"config": {{"aws_secret_access_key": "{secret}"}}, "ok": true}}"#).as_bytes()),
            br#"{"config": {"aws_secret_access_key": "[AWS_SECRET_KEY]"}, "ok": true}"#.to_vec()
        );
        // escapes in the value: the decoded value is masked, and the escapes around the span
        // stay as they were
        assert_eq!(
            masked(format!(r#"{{"aws_secret_access_key":"{secret}\n\u00e9"}}"#).as_bytes()),
            r#"{"aws_secret_access_key":"[AWS_SECRET_KEY]\n\u00e9"}"#.as_bytes()
        );
        assert_eq!(
            masked(br#"{"card": 4111111111111111, "n": [1, 2.50, null, true], "x": -4111111111111111.5}"#),
            br#"{"card": "[CARD]", "n": [1, 2.50, null, true], "x": "-[CARD].5"}"#.to_vec()
        );
        let mut next = xorshift(0x6a09_e667_f3bc_c908);
        let (mut fast, mut fast_masked, mut fast_escaped, mut fast_quotable, mut changed) = (0, 0, 0, 0, 0);
        let mut fast_inner_quote = 0;
        for _ in 0..3_000 {
            let mut doc = String::new();
            json_value(&mut next, 0, &mut doc);
            let doc = doc.as_bytes();
            super::super::json::validate(doc).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(doc)));
            let out = m.mask_json_way(doc, JsonWay::Fast);
            assert_eq!(out, m.mask_json_way(doc, JsonWay::EveryString), "{}", String::from_utf8_lossy(doc));
            // encoded again, the same JSON (escapes outside the spans may be written otherwise)
            let value =
                |o: Option<Vec<u8>>| serde_json::from_slice::<serde_json::Value>(&o.unwrap_or(doc.to_vec())).unwrap();
            assert_eq!(
                value(out.clone()),
                value(m.mask_json_way(doc, JsonWay::Encode)),
                "{}",
                String::from_utf8_lossy(doc)
            );
            let out = out.unwrap_or_else(|| doc.to_vec());
            serde_json::from_slice::<serde_json::Value>(&out).unwrap();
            let text = String::from_utf8_lossy(&out);
            for key in ["\"aws_secret_access_key\":\"", "\"aws_secret_access_key\": \""] {
                assert!(!text.contains(&format!("{key}{secret}\"")), "{}", String::from_utf8_lossy(doc));
            }
            assert!(!text.contains("4111111111111111"), "{}", String::from_utf8_lossy(doc));
            // what was searched: the document, or with escapes the decoded one
            let escaped = memchr::memchr(b'\\', doc).is_some();
            let (hay, dstrs) =
                if escaped { decoded_doc(doc, &super::super::json::strings(doc)) } else { (doc.to_vec(), Vec::new()) };
            let raws = m.raw_matches(&hay, 0);
            if !m.crossing(&hay, escaped.then_some(dstrs.as_slice()), &raws) {
                fast += 1;
                fast_masked += usize::from(raws.iter().any(|r| r.span.is_some()));
                fast_escaped += usize::from(escaped);
                fast_quotable += usize::from(raws.iter().any(|r| m.quote_capable[r.entry]));
                // a decoded quote inside a string, in a candidate that stays in it
                fast_inner_quote +=
                    usize::from(raws.iter().any(|r| m.quote_capable[r.entry] && hay[r.start..r.end].contains(&b'"')));
            }
            changed += usize::from(out != doc);
        }
        let counts = format!("{fast} {fast_masked} {fast_escaped} {fast_quotable} {fast_inner_quote} {changed}");
        let slow = 3_000 - fast;
        assert!(
            fast_masked > 100
                && fast_escaped > 100
                && fast_quotable > 20
                && fast_inner_quote > 5
                && slow > 5
                && changed > 1000,
            "{counts}"
        );
    }

    #[test]
    fn a_decoded_document_keeps_what_lies_outside_its_strings() {
        let doc = br#"{"a\n": [1, "x"], "b": "q\"\u0040", "c": 2}"#;
        let strs = super::super::json::strings(doc);
        let (d, at) = decoded_doc(doc, &strs);
        assert_eq!(d, b"{\"a\n\": [1, \"x\"], \"b\": \"q\"@\", \"c\": 2}".to_vec());
        let text = |k: &StrTok| &d[k.start..k.end];
        let texts: Vec<&[u8]> = at.iter().map(text).collect();
        assert_eq!(texts, [&b"\"a\n\""[..], b"\"x\"", b"\"b\"", b"\"q\"@\"", b"\"c\""]);
        assert_eq!(at.iter().map(|k| k.escaped).collect::<Vec<_>>(), [true, false, false, true, false]);
    }

    /// A masked string without escapes is rewritten in place only where the result is JSON:
    /// an entity name that needs escapes, or a partial mask, still gives a valid document.
    #[test]
    fn masked_strings_stay_json_whatever_the_replacement() {
        let doc = br#"{"a": "mail jo@ex.io, id 1234-5678 \u00e9", "b": ["x jo@ex.io"]}"#;
        for (entity, action) in [
            ("EMAIL", Action::Label),
            ("E\"M\\A\nIL", Action::Label),
            ("E\"", Action::Hash),
            ("EMAIL", Action::Partial),
            ("EMAIL", Action::Drop),
        ] {
            let mut e = spec("email", entity, r"[a-z]+@[a-z]+\.io", Validator::None, 64, &[]);
            e.action = action;
            let m = Engine::new(vec![e], [7; 32]).unwrap();
            let out = m.mask_json(doc).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
            assert!(!String::from_utf8_lossy(&out).contains("jo@ex.io"), "{entity} {action:?}");
            let encoded = m.mask_json_way(doc, JsonWay::Encode).unwrap();
            assert_eq!(v, serde_json::from_slice::<serde_json::Value>(&encoded).unwrap());
            // the raw bytes with the replacements put in, escapes as they were, when they can be
            assert_eq!(
                out.ends_with(br#" 1234-5678 \u00e9", "b": ["x [EMAIL]"]}"#),
                entity == "EMAIL" && action == Action::Label
            );
            if action == Action::Label {
                assert_eq!(v["b"][0], format!("x [{entity}]"));
            }
        }
    }

    #[test]
    fn first_bytes_are_where_matches_begin() {
        let set = |p: &str| {
            first_bytes(p).map(|f| (0u8..=255).filter(|&b| f[usize::from(b)]).map(char::from).collect::<String>())
        };
        assert_eq!(set(r"\+[1-9]\d{7,14}\b").as_deref(), Some("+"));
        assert_eq!(set(r"(?:\b1[ .-])?\(?\b[2-9]\d{2}\)?[ .-]\d{3}").as_deref(), Some("(123456789"));
        assert_eq!(set(r"(?i)aws").as_deref(), Some("Aa"));
        assert_eq!(set(r"\b(?:x|)(?:|z)y").as_deref(), Some("xyz"));
        assert_eq!(set(r"(?:ab){0,2}c|d+").as_deref(), Some("acd"));
        assert_eq!(set(r"a*"), None);
        assert_eq!(set(r"\b"), None);
        assert_eq!(set(r"("), None);
        // each shipped pattern's matches begin with a byte of its set
        let positives: Vec<&str> = vec!["+14155550100", "(415) 555-0100", "1-415-555-0100", "4111 1111 1111 1111"];
        for (p, _) in DIGIT_GATED {
            let f = first_bytes(p).expect("not empty");
            let re = Regex::builder().syntax(syntax_config()).build(p).unwrap();
            for text in &positives {
                for m in re.find_iter(text.as_bytes()) {
                    assert!(f[usize::from(text.as_bytes()[m.start()])], "{p} {text}");
                }
            }
        }
    }

    #[test]
    fn bad_pattern_names_the_entry() {
        let r = Engine::new(
            vec![EntrySpec {
                id: "broken".into(),
                entity: "X".into(),
                patterns: vec!["(unclosed".into()],
                validator: Validator::None,
                action: Action::Label,
                group: 0,
                max_len: 10,
                prefixes: vec![],
                prefilter: None,
            }],
            [0; 32],
        );
        let err = r.err().expect("error");
        assert_eq!(err.id, "broken");
    }

    /// A prefilter made of literals that start every match of the entry gives windows of one
    /// byte per reported end; any other prefilter, the whole `[e - max_len, e]`; a pattern, its
    /// shortest to longest match.
    #[test]
    fn start_windows_follow_what_the_expression_proves() {
        let entry = |patterns: &[&str], max_len: usize| EntrySpec {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            ..spec("x", "X", "x", Validator::None, max_len, &[])
        };
        let pem = entry(&[r"-----BEGIN (?:RSA |EC )?PRIVATE KEY-----[A-Za-z0-9+/=\s]+?-----END [A-Z ]+-----"], 16400);
        assert_eq!(start_window(&pem, "-----BEGIN ", true), (11, 11));
        let jwt = entry(&[r"\beyJ[A-Za-z0-9_-]{8,2000}\.eyJ[A-Za-z0-9_-]{8,4000}\.[A-Za-z0-9_-]{8,1000}"], 7010);
        assert_eq!(start_window(&jwt, "eyJ[A-Za-z0-9_-]", true), (4, 4));
        assert_eq!(start_window(&jwt, "eyJ", true), (3, 3));
        let aws = entry(&[r"(?i)aws[A-Za-z0-9_ .-]{0,24}secret\s{0,3}=\s{0,3}([A-Za-z0-9/+]{40})\b"], 130);
        assert_eq!(start_window(&aws, "(?i)aws", true), (3, 3));
        let openai = entry(
            &[r"\bsk-(?:proj-[A-Za-z0-9_-]{40,200}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{48})\b"],
            215,
        );
        assert_eq!(start_window(&openai, "sk-[A-Za-z0-9]", true), (4, 4));
        // literals of two lengths: a start is one or the other before the end
        let two = entry(&[r"\b(?:ab|abc)[0-9]{4}\b"], 10);
        assert_eq!(start_window(&two, "ab|abcd|abc0", true), (4, 2));
        let whole = |e: &EntrySpec| (e.max_len, 0);
        // not leading: a match can start before the prefilter's match ("aws" is case-sensitive
        // here, and no byte of it is an anchor; a second pattern starts otherwise, but `J` is an
        // anchor of both, 2 and 3 bytes after their starts)
        assert_eq!(start_window(&entry(&["(?i)aws_[a-z]{4}"], 20), "aws", true), (20, 0));
        assert_eq!(start_window(&entry(&["eyJ[a-z]{4}", "xeyJ[a-z]{4}"], 20), "eyJ", true), (4, 3));
        assert_eq!(start_window(&entry(&["eyJ[a-zJ]{4}", "xeyJ[a-z]{4}"], 20), "eyJ", true), (20, 0));
        // an anchor byte: one `@` in every match, after 1 to 64 bytes; the core's `@` is 2 bytes
        // before its end
        let email = entry(&[r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}\.[A-Za-z]{2,24}\b"], 410);
        assert_eq!(start_window(&email, "[A-Za-z0-9._%+-]@[A-Za-z0-9-]", true), (66, 3));
        assert_eq!(start_window(&email, "@", true), (65, 2));
        assert_eq!(start_window(&email, "x@[a-z]{2}", true), (67, 4));
        // no anchor: `@` may come twice, or after a part of unbounded length, or the prefilter's
        // `@` is not a fixed distance from its end
        let twice = entry(&[r"[a-z]{1,64}@[a-z@]{1,9}"], 80);
        assert_eq!(start_window(&twice, "@", true), whole(&twice));
        let unbounded = entry(&[r"[a-z]+@[a-z]{1,9}"], 80);
        assert_eq!(start_window(&unbounded, "@", true), whole(&unbounded));
        assert_eq!(start_window(&email, "@[a-z]+", true), whole(&email));
        // a prefilter that is not a finite set of plain literals
        assert_eq!(start_window(&jwt, r"\beyJ", true), whole(&jwt));
        assert_eq!(start_window(&jwt, "eyJ[a-z]+", true), whole(&jwt));
        assert_eq!(start_window(&jwt, "", true), whole(&jwt));
        // a pattern: its own length, capped by max_len
        assert_eq!(start_window(&jwt, &jwt.patterns[0], false), (7008, 32));
        assert_eq!(start_window(&two, &two.patterns[0], false), (7, 6));
        assert_eq!(start_window(&pem, &pem.patterns[0], false), (16400, 43));
    }

    /// The spans found through the windows are those of a search over the whole text, for
    /// entries with leading prefilters (one-byte windows, anchored searches), with their
    /// patterns in Hyperscan (runs of ends merged into windows as they are reported) and with
    /// a group, on texts built from the pieces of their matches.
    #[test]
    fn windows_find_what_a_whole_text_search_finds() {
        let pem = r"-----BEGIN (?:RSA )?PRIVATE KEY-----[A-Za-z0-9+/=\s-]+?-----END (?:RSA )?PRIVATE KEY-----";
        let jwt = r"\beyJ[A-Za-z0-9_-]{2,20}\.eyJ[A-Za-z0-9_-]{2,20}\.[A-Za-z0-9_-]{2,10}";
        let aws = r"(?i)aws[A-Za-z0-9_ .-]{0,24}secret\s{0,3}=\s{0,3}([A-Za-z0-9/+]{8})\b";
        let ant = r"\bsk-ant-[A-Za-z0-9_-]{4,20}";
        let uri = r"\b(?:ab|abcd)://[a-z]{1,6}:([a-z0-9:]{1,6})@";
        let mail = r"\b[A-Za-z0-9._%+-]{1,12}@[A-Za-z0-9-]{1,8}(?:\.[A-Za-z0-9-]{1,8}){0,2}\.[A-Za-z]{2,4}\b";
        let entries = |prefiltered: bool| {
            let e = |id: &str, p: &str, max: usize, pf: &str| EntrySpec {
                prefilter: prefiltered.then(|| pf.to_string()),
                group: usize::from(id == "aws" || id == "uri"),
                ..spec(id, &id.to_uppercase(), p, Validator::None, max, &[])
            };
            vec![
                e("pem", pem, 120, "-----BEGIN "),
                e("jwt", jwt, 60, "eyJ[A-Za-z0-9_-]"),
                e("aws", aws, 70, "(?i)aws"),
                e("ant", ant, 27, "sk-ant-"),
                e("uri", uri, 20, "(?:ab|abcd)://"),
                e("mail", mail, 50, "[A-Za-z0-9._%+-]@[A-Za-z0-9-]"),
            ]
        };
        let engines = [Engine::new(entries(true), [7; 32]).unwrap(), Engine::new(entries(false), [7; 32]).unwrap()];
        // every prefilter is leading but the email's, which is anchored on its `@`; the URI's
        // literals of two lengths are two expressions
        assert_eq!(engines[0].dbs[0].back, [(11, 11), (4, 4), (3, 3), (7, 7), (5, 5), (7, 7), (14, 3)]);
        let pieces = [
            "-----BEGIN ",
            "-----BEGIN PRIVATE KEY-----",
            "-----END PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIB",
            "-----END RSA PRIVATE KEY-----",
            "MIIBOgIBAAJ",
            "eyJ",
            "eyJhbGci",
            ".",
            "aws",
            "AWS ",
            "_secret",
            "Secret",
            " = ",
            "wJalrXUtnFE",
            "sk-ant-",
            "api03-AbCdEf",
            "@",
            "@mail",
            ".io",
            ".example",
            "john.smith",
            "a_b%c",
            "ab://",
            "abcd://",
            "usr:",
            "pw1@",
            ":",
            " ",
            "-",
            "x",
            "\n",
        ];
        // the spans of a whole-text search, found by both engines
        let check = |text: &str| {
            let want = whole_text_spans(&engines[0], text.as_bytes());
            for engine in &engines {
                assert_eq!(engine.unmerged(text.as_bytes()), want, "{text:?}");
            }
            want.len()
        };
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        let mut found = 0;
        for _ in 0..30_000 {
            let mut text = String::new();
            for _ in 0..next() % 14 {
                text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            found += check(&text);
        }
        assert!(found > 2000, "{found} matches");
        // long texts whose candidates lie far apart: a region each (`gate.rs`), all scanned in
        // one Hyperscan call, whose ends are mapped back piece by piece
        let mut found = 0;
        for _ in 0..400 {
            let mut text = String::new();
            while text.len() < 8000 {
                text.push_str(&"filler ".repeat((next() % 150) as usize));
                for _ in 0..1 + next() % 6 {
                    text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                }
            }
            found += check(&text);
        }
        assert!(found > 300, "{found} matches in long texts");
    }

    /// `unmerged` by the iteration of `raw_matches` over the whole text (no windows).
    fn whole_text_spans(engine: &Engine, text: &[u8]) -> Vec<Span> {
        let mut want = Vec::new();
        for pat in &engine.pats {
            let entry = &engine.entries[pat.entry];
            let mut caps = pat.re.create_captures();
            let mut pos = 0;
            while pos <= text.len() {
                pat.re.search_captures(&Input::new(text).span(pos..text.len()), &mut caps);
                let Some(m) = caps.get_match() else { break };
                let g = caps.get_group(entry.group).unwrap_or(m.span());
                let valid = g.end > g.start && m.end() - m.start() <= entry.max_len && entry.validator.check(&text[g]);
                if valid {
                    want.push(Span { start: g.start, end: g.end, entry: pat.entry });
                }
                pos = if valid && m.end() > m.start() { m.end() } else { m.start() + 1 };
            }
        }
        want.sort_by_key(|s| (s.start, s.end, s.entry));
        want
    }

    /// Card windows at a block of 12-19 digits that the validator rejects are not searched
    /// (`card_block_rejected`): the spans are still those of a whole-text search, with Luhn,
    /// with a validator that accepts everything and with a `max_len` shorter than some blocks.
    #[test]
    fn rejected_card_blocks_lose_no_span() {
        let card = |v: Validator, max_len: usize| spec("card", "CARD", DIGIT_GATED[0].0, v, max_len, &[]);
        let pieces = [
            "4111111111111111",
            "446655440000",
            "378282246310005",
            "5500005555555559",
            "1234567890123",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "12345",
            "0",
            " ",
            "-",
            "a",
            "_",
            "x ",
        ];
        for (v, max_len) in [(Validator::Luhn, 24), (Validator::None, 24), (Validator::Luhn, 15)] {
            let engine = Engine::new(vec![card(v, max_len)], [7; 32]).unwrap();
            assert!(engine.digit_gated());
            let mut next = xorshift(0x1234_5678_9abc_def1u64);
            let mut found = 0;
            for _ in 0..30_000 {
                let mut text = String::new();
                for _ in 0..next() % 8 {
                    text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                }
                let want = whole_text_spans(&engine, text.as_bytes());
                found += want.len();
                assert_eq!(engine.unmerged(text.as_bytes()), want, "{text:?} {v:?} {max_len}");
            }
            assert!(found > 500, "{found} matches");
        }
    }

    /// The ends Hyperscan reports along a token (a pattern that ends in a repeat without `\b`
    /// has one at every byte) come out of the scan as one window per token.
    #[test]
    fn consecutive_ends_are_one_window() {
        let e = spec("ant", "ANT", r"\bsk-ant-[A-Za-z0-9_-]{20,200}", Validator::None, 210, &["sk-ant-"]);
        let engine = Engine::new(vec![e], [7; 32]).unwrap();
        let key = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-AAAAAA";
        let gap = " x".repeat(150); // the windows of two keys do not touch
        let text = format!("a {key}{gap} {key}{gap} {key}.");
        let mut found = Vec::new();
        let mut everywhere = [false];
        with_aligned(text.as_bytes(), |t| engine.dbs[0].scan(t, &[(0, text.len())], &mut found, &mut everywhere));
        assert!(!everywhere[0]);
        let starts: Vec<usize> = text.match_indices(key).map(|(i, _)| i).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        for ((_, lo, hi), s) in found.into_iter().zip(starts) {
            // reported ends from s + 27 to s + key.len(): starts from 207 before the first to
            // 27 before the last
            assert_eq!((lo, hi), ((s + 27).saturating_sub(207), s + key.len() - 27));
        }
    }

    /// Text made of prefixes that start no match (PEM headers with no END, a JWT prefix every
    /// few bytes) gives a one-byte window per prefix, and each search from one reads on (to
    /// the end of the text for the unbounded PEM pattern): past a budget of a few times the
    /// text, the rest is searched in one pass, so the bytes searched stay a small multiple of
    /// the text (without the budget: 67 MB searched for these 64 KiB of PEM headers; 40 s for a
    /// MiB of them in a release build).
    #[test]
    fn windows_that_read_on_are_searched_within_a_budget() {
        let pem = r"-----BEGIN PRIVATE KEY-----[A-Za-z0-9+/=\s-]+?-----END PRIVATE KEY-----";
        let jwt = r"\beyJ[A-Za-z0-9_-]{8,2000}\.eyJ[A-Za-z0-9_-]{8,4000}\.[A-Za-z0-9_-]{8,1000}";
        let e = |id: &str, p: &str, max: usize, pf: &str| EntrySpec {
            prefilter: Some(pf.to_string()),
            ..spec(id, &id.to_uppercase(), p, Validator::None, max, &[])
        };
        let engine =
            Engine::new(vec![e("pem", pem, 16400, "-----BEGIN "), e("jwt", jwt, 7010, "eyJ[A-Za-z0-9_-]")], [7; 32])
                .unwrap();
        for unit in ["-----BEGIN PRIVATE KEY-----AAAA ", "-eyJa"] {
            let text = unit.repeat((64 << 10) / unit.len());
            let mut sc = Scratch::default();
            assert!(engine.hits(text.as_bytes(), &mut sc));
            match &sc.wheres[usize::from(unit == "-eyJa")] {
                Where::Windows(w) => assert!(w.len() > 1000 && w.iter().all(|(lo, hi)| lo == hi)),
                other => panic!("{other:?}"),
            }
            SEARCHED.with(|c| c.set(0));
            assert!(engine.spans(text.as_bytes()).is_empty());
            let searched = SEARCHED.with(|c| c.get());
            assert!(searched < 8 * text.len() + (64 << 10), "{unit:?}: {searched} bytes searched");
        }
    }

    /// Every prefilter of the shipped catalogue but the email's (whose `@` core lies inside
    /// its match) is leading: the windows of those entries are a byte or a few long. The
    /// email's is anchored on its `@`.
    #[test]
    fn shipped_prefilters_are_leading() {
        let mut leading = Vec::new();
        for e in shipped_entries() {
            let Some(pf) = e.prefilter.clone() else { continue };
            let (lo, hi) = start_window(&e, &pf, true);
            if e.id == "email" {
                assert_eq!((lo, hi), (66, 3));
            } else {
                // literals of several lengths (`amqp://`, `mongodb+srv://`) give a few bytes
                assert!(hi > 0 && lo - hi <= 8, "{}: {pf:?} gives ({lo}, {hi})", e.id);
                leading.push(e.id);
            }
        }
        assert!(leading.len() >= 12, "{leading:?}");
    }
}
