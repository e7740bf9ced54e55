//! Anchored matches of patterns that are a sequence of byte-class runs, read greedily in one
//! pass with a table lookup per byte instead of a lazy DFA.
//!
//! Most secret patterns are a literal followed by runs of a class with counted bounds: a JWT is
//! `eyJ[A-Za-z0-9_-]{8,2000}\.eyJ[A-Za-z0-9_-]{8,4000}\.[A-Za-z0-9_-]{8,1000}`. The bounds make
//! the lazy DFA grow a state per count (thousands), so each byte of such a match is a jump to a
//! state of its own that is rarely in the L1 cache: about 2 ns a byte, the largest part of what
//! a token costs once Hyperscan has placed its start. Their matches are searched anchored at
//! that start (`Engine::raw_matches`), where the pattern can often be read without choices.
//!
//! A pattern qualifies (`Runs::new`) when its top-level sequence is made of
//! * runs: a byte class (or a byte) repeated greedily `{m, n}` times;
//! * literals, and alternations of literals where no alternative is a prefix of another
//!   (merged with the literal bytes after them first: `(?:redis|rediss)://` reads as
//!   `redis://|rediss://`); at most one of those matches at a place, so there is no choice;
//! * `\b` (ASCII word boundaries), and the capture group the entry masks, around a part of the
//!   sequence.
//!
//! Reading each run as long as it goes (up to `n`) is the path leftmost-first prefers; it is
//! the match whenever it succeeds. It is also the only path that can succeed when, after each
//! run with a choice (`m < n`), what follows must consume a byte and cannot begin with a byte of
//! the run's class: a shorter run leaves such a byte next. Where what follows may match empty
//! and holds no `\b`, the greedy path succeeds (every later item can take zero bytes, or is a
//! run whose own greedy reading follows the same rules). A last run followed only by `\b` (a
//! token's `[A-Za-z0-9_-]{20,50}\b`) is read back from its greedy end to the last place where
//! the boundary holds, which is the order leftmost-first tries them in. Any other shape is left
//! to the regex (`Runs::new` returns None). The tests compare both on generated text.

use regex_automata::util::syntax;
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// 256 bits: the bytes of a class.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct ByteSet([u64; 4]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0; 4]);

    fn one(b: u8) -> ByteSet {
        let mut s = ByteSet::EMPTY;
        s.add(b);
        s
    }

    fn add(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    #[inline(always)]
    fn has(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] >> (b & 63) & 1 == 1
    }

    fn union(self, o: ByteSet) -> ByteSet {
        ByteSet([0, 1, 2, 3].map(|i| self.0[i] | o.0[i]))
    }

    fn meets(self, o: ByteSet) -> bool {
        (0..4).any(|i| self.0[i] & o.0[i] != 0)
    }
}

/// One part of the sequence.
#[derive(Clone, Debug)]
enum Item {
    /// `class{min, max}`, greedy; `back` when it is the last run and only `\b` follows it (read
    /// back from its greedy end to a boundary). `table` is the class a byte to a byte.
    Run { class: ByteSet, table: Box<[bool; 256]>, nibbles: Option<[u8; 16]>, min: usize, max: usize, back: bool },
    /// These bytes.
    Lit(Vec<u8>),
    /// One of these byte strings (none a prefix of another).
    Alt(Vec<Vec<u8>>),
    /// `\b` (ASCII).
    Boundary,
    /// The masked group starts (true) or ends here.
    Group(bool),
}

/// A pattern read as a sequence of runs (see the module's documentation).
#[derive(Clone, Debug)]
pub(crate) struct Runs {
    items: Vec<Item>,
}

/// An ASCII word byte (`\b` sees a boundary between one of these and any other byte).
pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `\b` between `hay[at - 1]` and `hay[at]` (no byte outside `hay` is a word byte).
fn boundary(hay: &[u8], at: usize) -> bool {
    let before = at > 0 && is_word(hay[at - 1]);
    let after = at < hay.len() && is_word(hay[at]);
    before != after
}

/// The bytes of a class, when it is one of bytes (or of code points below 0x80).
fn class_set(c: &Class) -> Option<ByteSet> {
    let mut s = ByteSet::EMPTY;
    match c {
        Class::Bytes(b) => {
            for r in b.ranges() {
                for x in r.start()..=r.end() {
                    s.add(x);
                }
            }
        }
        Class::Unicode(u) => {
            for r in u.ranges() {
                if r.end() as u32 >= 0x80 {
                    return None;
                }
                for x in r.start() as u8..=r.end() as u8 {
                    s.add(x);
                }
            }
        }
    }
    Some(s)
}

/// The literal bytes `hir` matches, when it matches exactly one string.
fn literal(hir: &Hir) -> Option<Vec<u8>> {
    match hir.kind() {
        HirKind::Empty => Some(Vec::new()),
        HirKind::Literal(l) => Some(l.0.to_vec()),
        HirKind::Class(c) => {
            let s = class_set(c)?;
            let bytes: Vec<u8> = (0..=255u8).filter(|&b| s.has(b)).collect();
            (bytes.len() == 1).then_some(bytes)
        }
        HirKind::Concat(items) => {
            let mut out = Vec::new();
            for h in items {
                out.extend(literal(h)?);
            }
            Some(out)
        }
        HirKind::Capture(c) => literal(&c.sub),
        _ => None,
    }
}

/// `hir`'s parts appended to `out`; `group` is the capture group to mark (0: none).
fn flatten(hir: &Hir, group: usize, out: &mut Vec<Item>) -> Option<()> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(l) => out.push(Item::Lit(l.0.to_vec())),
        HirKind::Class(c) => out.push(run(class_set(c)?, 1, 1)),
        HirKind::Look(Look::WordAscii) => out.push(Item::Boundary),
        HirKind::Look(_) => return None,
        HirKind::Repetition(r) => {
            if !r.greedy {
                return None;
            }
            let class = match r.sub.kind() {
                HirKind::Class(c) => class_set(c)?,
                HirKind::Literal(l) if l.0.len() == 1 => ByteSet::one(l.0[0]),
                _ => return None,
            };
            let min = r.min as usize;
            let max = r.max.map_or(usize::MAX, |m| m as usize);
            out.push(run(class, min, max));
        }
        HirKind::Capture(c) => {
            let marked = c.index as usize == group;
            if marked {
                out.push(Item::Group(true));
            }
            flatten(&c.sub, group, out)?;
            if marked {
                out.push(Item::Group(false));
            }
        }
        HirKind::Concat(items) => {
            for h in items {
                flatten(h, group, out)?;
            }
        }
        HirKind::Alternation(alts) => {
            let alts: Option<Vec<Vec<u8>>> = alts.iter().map(literal).collect();
            out.push(Item::Alt(alts?));
        }
    }
    Some(())
}

fn run(class: ByteSet, min: usize, max: usize) -> Item {
    Item::Run {
        class,
        table: Box::new(std::array::from_fn(|b| class.has(b as u8))),
        nibbles: ascii_nibbles(class),
        min,
        max,
        back: false,
    }
}

/// For a class of ASCII bytes only: by low nibble, the high nibbles (bit h for 0xh_) of its
/// bytes, for `run_len_avx2`.
fn ascii_nibbles(class: ByteSet) -> Option<[u8; 16]> {
    if (128..=255u8).any(|b| class.has(b)) {
        return None;
    }
    Some(std::array::from_fn(|lo| (0..8u8).filter(|&h| class.has(h << 4 | lo as u8)).fold(0, |m, h| m | 1 << h)))
}

/// How many of the bytes at `p` (at most `cap`, and `p..p + cap` rounded up to 32 readable)
/// are in the class whose `nibbles` these are, 32 at a time: a byte is in it when the bit of
/// its high nibble is set in its low nibble's entry (bytes from 0x80 have none). Tokens run
/// 20 to 2,000 bytes of one class (a JWT's three parts, an Anthropic key's 90), which the
/// table loop read a byte at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_len_avx2(p: *const u8, cap: usize, nibbles: &[u8; 16]) -> usize {
    use std::arch::x86_64::*;
    let lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(nibbles.as_ptr() as *const __m128i));
    let bit = _mm256_broadcastsi128_si256(_mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0));
    let mut n = 0;
    while n < cap {
        let v = _mm256_loadu_si256(p.add(n) as *const __m256i);
        // a byte with its top bit set indexes 0 in the low-nibble lookup
        let hi = _mm256_shuffle_epi8(bit, _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f)));
        let inside = _mm256_and_si256(_mm256_shuffle_epi8(lo, v), hi);
        let out = _mm256_movemask_epi8(_mm256_cmpeq_epi8(inside, _mm256_setzero_si256())) as u32;
        if out != 0 {
            return cap.min(n + out.trailing_zeros() as usize);
        }
        n += 32;
    }
    cap
}

/// Whether no string of `alts` is a prefix of another (then at most one matches at a place).
fn prefix_free(alts: &[Vec<u8>]) -> bool {
    alts.iter().enumerate().all(|(i, a)| alts.iter().enumerate().all(|(j, b)| i == j || !b.starts_with(a)))
}

impl Runs {
    /// `pattern` (parsed as the engine parses it) read as runs, marking capture group `group`
    /// (0: the whole match); None when it does not qualify.
    pub(crate) fn new(pattern: &str, group: usize) -> Option<Runs> {
        let hir = syntax::parse_with(pattern, &crate::masking::engine::syntax_config()).ok()?;
        let mut raw = Vec::new();
        flatten(&hir, group, &mut raw)?;
        if group != 0 && !raw.iter().any(|i| matches!(i, Item::Group(true))) {
            return None;
        }
        // literals joined (a class of one byte is a literal), and merged into an alternation
        // before them until no alternative is a prefix of another
        let mut items: Vec<Item> = Vec::new();
        for it in raw {
            let it = match it {
                Item::Run { class, min: 1, max: 1, .. } if single(class).is_some() => {
                    Item::Lit(single(class).into_iter().collect())
                }
                it => it,
            };
            match (items.last_mut(), it) {
                (Some(Item::Lit(a)), Item::Lit(b)) => a.extend(b),
                (Some(Item::Alt(alts)), Item::Lit(b)) if !prefix_free(alts) => {
                    alts.iter_mut().for_each(|a| a.extend_from_slice(&b));
                }
                (_, it) => items.push(it),
            }
        }
        for i in 0..items.len() {
            match &items[i] {
                Item::Alt(alts) if !prefix_free(alts) => return None,
                Item::Run { class, min, max, .. } if min < max => {
                    let rest = &items[i + 1..];
                    let (first, consumes) = first_set(rest);
                    let bounds = rest.iter().any(|x| matches!(x, Item::Boundary));
                    let back = if consumes {
                        if first.meets(*class) {
                            return None;
                        }
                        false
                    } else if !bounds {
                        false
                    } else if rest.iter().all(|x| matches!(x, Item::Boundary | Item::Group(false))) {
                        true
                    } else {
                        return None;
                    };
                    if let Item::Run { back: b, .. } = &mut items[i] {
                        *b = back;
                    }
                }
                _ => {}
            }
        }
        Some(Runs { items })
    }

    /// The match leftmost-first finds starting exactly at `at` (an anchored search of `hay`
    /// over `[at, end)`, whose look-around sees all of `hay`): (start, end, group start, group
    /// end), the group being the whole match when the pattern marks none.
    pub(crate) fn find(&self, hay: &[u8], at: usize, end: usize) -> Option<(usize, usize, usize, usize)> {
        let end = end.min(hay.len());
        if at > end {
            return None;
        }
        let mut pos = at;
        let (mut gs, mut ge) = (at, usize::MAX);
        for it in &self.items {
            match it {
                Item::Run { table, nibbles, min, max, back, .. } => {
                    let limit = end - pos;
                    let cap = (*max).min(limit);
                    let mut n = 0;
                    #[cfg(target_arch = "x86_64")]
                    if let Some(nib) = nibbles.as_ref().filter(|_| {
                        cap >= 16
                            && pos + cap.next_multiple_of(32) <= hay.len()
                            && super::engine::Simd::detect() >= super::engine::Simd::Avx2
                    }) {
                        // SAFETY: the CPU has AVX2; `cap` rounded up to 32 bytes from `pos` are in `hay`.
                        n = unsafe { run_len_avx2(hay.as_ptr().add(pos), cap, nib) };
                    }
                    #[cfg(not(target_arch = "x86_64"))]
                    let _ = nibbles;
                    // the run's last byte counts when it stays within `max`; one byte past it
                    // tells only whether the run stops there
                    while n < cap && table[usize::from(hay[pos + n])] {
                        n += 1;
                    }
                    if n < *min {
                        return None;
                    }
                    if *back {
                        while !boundary(hay, pos + n) {
                            if n == *min {
                                return None;
                            }
                            n -= 1;
                        }
                    }
                    pos += n;
                }
                Item::Lit(l) => {
                    if !hay[pos..end].starts_with(l) {
                        return None;
                    }
                    pos += l.len();
                }
                Item::Alt(alts) => {
                    let a = alts.iter().find(|a| hay[pos..end].starts_with(a))?;
                    pos += a.len();
                }
                Item::Boundary => {
                    if !boundary(hay, pos) {
                        return None;
                    }
                }
                Item::Group(true) => gs = pos,
                Item::Group(false) => ge = pos,
            }
        }
        Some((at, pos, gs, if ge == usize::MAX { pos } else { ge }))
    }
}

/// The byte of a class of one byte.
fn single(class: ByteSet) -> Option<u8> {
    let mut it = (0..=255u8).filter(|&b| class.has(b));
    let b = it.next()?;
    it.next().is_none().then_some(b)
}

/// The bytes the first consumed byte of `items` can be, and whether every reading of them
/// consumes one (false: they may match empty).
fn first_set(items: &[Item]) -> (ByteSet, bool) {
    let mut set = ByteSet::EMPTY;
    for it in items {
        match it {
            Item::Run { class, min, .. } => {
                set = set.union(*class);
                if *min > 0 {
                    return (set, true);
                }
            }
            Item::Lit(l) if !l.is_empty() => return (set.union(ByteSet::one(l[0])), true),
            Item::Alt(alts) => {
                for a in alts.iter().filter(|a| !a.is_empty()) {
                    set = set.union(ByteSet::one(a[0]));
                }
                if alts.iter().all(|a| !a.is_empty()) {
                    return (set, true);
                }
            }
            Item::Lit(_) | Item::Boundary | Item::Group(_) => {}
        }
    }
    (set, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::meta::Regex;
    use regex_automata::{Anchored, Input};

    fn re(p: &str) -> Regex {
        Regex::builder().syntax(crate::masking::engine::syntax_config()).build(p).unwrap()
    }

    /// What the regex finds anchored at `at` (with its captures for `group`).
    fn by_regex(r: &Regex, hay: &[u8], at: usize, end: usize, group: usize) -> Option<(usize, usize, usize, usize)> {
        let mut caps = r.create_captures();
        r.search_captures(&Input::new(hay).span(at..end).anchored(Anchored::Yes), &mut caps);
        let m = caps.get_match()?;
        let g = caps.get_group(group).map_or((usize::MAX, usize::MAX), |g| (g.start, g.end));
        Some((m.start(), m.end(), g.0, g.1))
    }

    /// Texts made of the pattern's own pieces (a positive example cut, repeated and mutated
    /// with bytes of its classes and bytes around them), so that runs stop, overflow and
    /// meet boundaries in every way.
    fn texts(seed: &[u8], n: usize) -> Vec<Vec<u8>> {
        let alphabet: &[u8] = b"aZ09_-.=+/:@ \n\"eyJ";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |k: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % k as u64) as usize
        };
        let mut out = Vec::new();
        for _ in 0..n {
            let mut t: Vec<u8> = Vec::new();
            for _ in 0..1 + next(3) {
                let mut piece = seed.to_vec();
                for _ in 0..next(4) {
                    let i = next(piece.len() + 1);
                    match next(3) {
                        0 if i < piece.len() => piece[i] = alphabet[next(alphabet.len())],
                        1 if i < piece.len() => {
                            piece.remove(i);
                        }
                        _ => {
                            let b = piece.get(i.saturating_sub(1)).copied().unwrap_or(b'a');
                            for _ in 0..next(40) {
                                piece.insert(i, b);
                            }
                        }
                    }
                }
                t.extend(piece);
                t.push(alphabet[next(alphabet.len())]);
            }
            out.push(t);
        }
        out
    }

    const SHAPES: &[(&str, usize, &str)] = &[
        (
            r"\beyJ[A-Za-z0-9_-]{8,2000}\.eyJ[A-Za-z0-9_-]{8,4000}\.[A-Za-z0-9_-]{8,1000}",
            0,
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
        (r"\bgh[pousr]_[A-Za-z0-9]{36,251}\b", 0, "ghp_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8"),
        (r"\bglpat-[A-Za-z0-9_-]{20,50}\b", 0, "glpat-AbCdEfGh-IjKlMnOpQrSt1234-"),
        (r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,247}\b", 0, "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        (r"\b(?:AKIA|ASIA|ABIA)[0-9A-Z]{16}\b", 0, "AKIAIOSFODNN7EXAMPLE"),
        (r"\b[Bb][Ee][Aa][Rr][Ee][Rr]\s{1,5}([A-Za-z0-9._~+/-]{16,2048}=*)", 1, "Bearer abcdef0123456789abcdef=="),
        (r"\b[Bb][Aa][Ss][Ii][Cc]\s{1,5}([A-Za-z0-9+/]{8,1024}={0,2})", 1, "basic YWxhZGRpbjpvcGVuc2VzYW1l=="),
        (
            r"\b(?:postgres|postgresql|mongodb|mongodb\+srv|redis|rediss)://[^\s:/@]{1,256}:([^\s@/]{1,256})@",
            1,
            "postgresql://app:s3cr3t-pw@db:5432/x",
        ),
        (
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,200}",
            0,
            "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX",
        ),
        (r"\bAIza[0-9A-Za-z_-]{35}", 0, "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"),
        // shapes that must be read with choices, or fall back
        (r"[a-z]{1,5}[a-z0-9]{0,3}", 0, "abcdefg12"),
        (r"x[a-z0-9]{2,9}\b", 0, "xab-cd9_"),
        (r"(?:ab|abc)", 0, "abcab"),
        (r"[a-z]{2,4}[a-c]", 0, "abcdab"),
        (r"q[0-9]{1,3}=?\b", 0, "q123=="),
    ];

    #[test]
    fn runs_find_what_the_regex_finds_anchored() {
        let mut compiled = 0;
        for &(p, group, seed) in SHAPES {
            let r = re(p);
            let Some(runs) = Runs::new(p, group) else { continue };
            compiled += 1;
            let mut matched = 0;
            for t in texts(seed.as_bytes(), 300) {
                for at in 0..=t.len() {
                    for end in [t.len(), (at + 37).min(t.len())] {
                        let got = runs.find(&t, at, end);
                        let want = by_regex(&r, &t, at, end, group);
                        let got = got.map(
                            |(s, e, gs, ge)| if group == 0 { (s, e, usize::MAX, usize::MAX) } else { (s, e, gs, ge) },
                        );
                        let want = want.map(
                            |(s, e, gs, ge)| if group == 0 { (s, e, usize::MAX, usize::MAX) } else { (s, e, gs, ge) },
                        );
                        assert_eq!(got, want, "{p} on {:?} at {at}..{end}", String::from_utf8_lossy(&t));
                        matched += usize::from(got.is_some());
                    }
                }
            }
            // (the texts give each pattern matches to compare, not only misses)
            assert!(matched >= 100, "{p}: {matched}");
        }
        assert!(compiled >= 12, "{compiled}");
    }

    #[test]
    fn patterns_with_choices_are_left_to_the_regex() {
        for p in
            [r"(?:ab|abc)", r"[a-z]{2,4}[a-c]", r"[a-z]{1,3}=?\b", r"a+?b", r"(?:ab){2}", r"^abc", r"[a-z]+(?:x|y)?\b"]
        {
            assert!(Runs::new(p, 0).is_none(), "{p}");
        }
        // a group that is not in the pattern
        assert!(Runs::new(r"a(b)c", 2).is_none());
    }

    /// The shipped entries read as runs, and on their own fixtures (in text, cut short, glued
    /// to word bytes) the runs agree with the regex at every place.
    #[test]
    fn shipped_token_patterns_are_read_as_runs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/python/graphwarden/masking/catalogue.toml");
        let doc: toml::Table = std::fs::read_to_string(path).expect("catalogue").parse().expect("toml");
        let mut ids = Vec::new();
        for e in doc["entries"].as_array().expect("entries") {
            let t = e.as_table().expect("entry");
            let group = t.get("group").and_then(|v| v.as_integer()).unwrap_or(0) as usize;
            let strs = |k: &str| -> Vec<String> {
                t.get(k)
                    .and_then(|v| v.as_array())
                    .map_or(Vec::new(), |a| a.iter().map(|x| x.as_str().expect("str").to_string()).collect())
            };
            for p in strs("patterns") {
                let Some(runs) = Runs::new(&p, group) else { continue };
                ids.push(t["id"].as_str().expect("id").to_string());
                let r = re(&p);
                for v in strs("positive").into_iter().chain(strs("negative")) {
                    let v = v.as_bytes();
                    for t in [[b"x ", v, b" y"].concat(), [b"a", v, b"b"].concat(), v[..v.len() / 2].to_vec()]
                        .into_iter()
                        .chain(texts(v, 20))
                    {
                        for at in 0..=t.len() {
                            assert_eq!(
                                runs.find(&t, at, t.len()),
                                by_regex(&r, &t, at, t.len(), group).map(|m| {
                                    if group == 0 {
                                        (m.0, m.1, m.0, m.1)
                                    } else {
                                        m
                                    }
                                }),
                                "{p} at {at} of {:?}",
                                String::from_utf8_lossy(&t)
                            );
                        }
                    }
                }
            }
        }
        ids.dedup();
        let want = [
            "jwt",
            "aws_access_key_id",
            "github_token",
            "github_fine_grained_token",
            "gitlab_token",
            "slack_token",
            "slack_webhook",
            "anthropic_api_key",
            "stripe_key",
            "google_api_key",
            "bearer_credential",
            "basic_credential",
            "connection_uri_password",
            "us_ssn",
            "phone",
        ];
        assert_eq!(ids, want);
    }
}
