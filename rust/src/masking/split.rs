//! Where an entry's capture group lies inside a match whose ends are known, read with lazy DFAs
//! instead of the NFA engines that capture search uses.
//!
//! The entries that mask one group of their match (Bearer and Basic credentials, the password
//! of a connection URI, the key after an AWS keyword) cost 2-4x more to search with captures
//! than without: regex-automata finds the match with its DFAs and then runs the bounded
//! backtracker over the match to place the groups, and the backtracker's work grows with the
//! states of the pattern (the `{16,2048}` of a Bearer token, the two `{0,24}` of the AWS
//! keyword's case-folded classes) times the match's length.
//!
//! When the pattern is `P (G) S`, the group a direct part of its top-level sequence, every way
//! of reading a match `[ms, me]` as P, G and S ends P at the group's start and begins S at its
//! end. Where only one reading exists, every engine reports the same group, leftmost-first
//! included, so it can be worked out from the match alone:
//! * the end: `me` less the length of S, when S always has one length;
//! * the start: `ms` plus the length of P, or the end less the length of G, when one of those
//!   always has one length; else the places where P can end (an anchored forward DFA of P from
//!   `ms`), when there is one, or those shared with the places where G can start (an anchored
//!   reverse DFA of G from the group's end), when exactly one is.
//!
//! Anything else (S of several lengths, several readings, a DFA that gives up) is left to the
//! capture search (`Split::group` returns None).

use std::sync::Mutex;

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};
use regex_syntax::hir::{Hir, HirKind};

/// How to place one pattern's group in its matches (`Split::new`).
pub(crate) struct Split {
    /// The length of every match of what follows the group.
    after: usize,
    start: Start,
}

/// How the group's start is found.
enum Start {
    /// `ms` plus this: what comes before the group has one length.
    After(usize),
    /// The group's end less this: the group has one length.
    Before(usize),
    /// Read with DFAs.
    Dfa(Box<Dfas>),
}

/// What comes before the group as an anchored forward DFA, the group as an anchored reverse DFA
/// (both reporting every match, not only the leftmost-first), and a pool of their caches.
struct Dfas {
    prefix: DFA,
    group: DFA,
    caches: Mutex<Vec<(Cache, Cache)>>,
}

/// The length of every match of `hir`, when all have the same.
fn fixed_len(hir: &Hir) -> Option<usize> {
    let p = hir.properties();
    p.minimum_len().filter(|&n| p.maximum_len() == Some(n))
}

/// `hir` as a lazy DFA reporting every match (`MatchKind::All`), read backwards when `reverse`.
fn dfa(hir: &Hir, reverse: bool) -> Option<DFA> {
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .reverse(reverse)
                .utf8(false)
                .which_captures(thompson::WhichCaptures::None)
                .nfa_size_limit(Some(64 << 20)),
        )
        .build_from_hir(hir)
        .ok()?;
    DFA::builder().configure(DFA::config().match_kind(MatchKind::All)).build_from_nfa(nfa).ok()
}

impl Split {
    /// For `pattern` (parsed as the engine parses it) and its capture group `group`: None when
    /// the group is not a direct part of the pattern's top-level sequence, or what follows it
    /// has matches of several lengths.
    pub(crate) fn new(pattern: &str, group: usize) -> Option<Split> {
        let hir = syntax::parse_with(pattern, &crate::masking::engine::syntax_config()).ok()?;
        let is_group = |h: &Hir| matches!(h.kind(), HirKind::Capture(c) if c.index as usize == group);
        let items: Vec<Hir> = match hir.kind() {
            HirKind::Concat(items) => items.clone(),
            _ => vec![hir.clone()],
        };
        let k = items.iter().position(is_group)?;
        let HirKind::Capture(cap) = items[k].kind() else { return None };
        let prefix = Hir::concat(items[..k].to_vec());
        let after = fixed_len(&Hir::concat(items[k + 1..].to_vec()))?;
        let start = if let Some(n) = fixed_len(&prefix) {
            Start::After(n)
        } else if let Some(n) = fixed_len(&cap.sub) {
            Start::Before(n)
        } else {
            Start::Dfa(Box::new(Dfas {
                prefix: dfa(&prefix, false)?,
                group: dfa(&cap.sub, true)?,
                caches: Mutex::new(Vec::new()),
            }))
        };
        Some(Split { after, start })
    }

    /// The group's span in the match `[ms, me]` of `hay` (a match of the whole pattern, found
    /// with `hay` around it as its context), or None when this cannot tell it.
    pub(crate) fn group(&self, hay: &[u8], ms: usize, me: usize) -> Option<(usize, usize)> {
        let ge = me.checked_sub(self.after).filter(|&e| e >= ms)?;
        let gs = match &self.start {
            Start::After(n) => ms + n,
            Start::Before(n) => ge.checked_sub(*n)?,
            Start::Dfa(d) => {
                let Dfas { prefix, group, caches } = &**d;
                let mut c = caches
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop()
                    .unwrap_or_else(|| (prefix.create_cache(), group.create_cache()));
                let gs = one_start(prefix, group, &mut c, hay, ms, ge);
                caches.lock().unwrap_or_else(|e| e.into_inner()).push(c);
                gs?
            }
        };
        (ms <= gs && gs <= ge).then_some((gs, ge))
    }
}

/// The one place in `[ms, ge]` where `prefix` (forward, anchored at `ms`) can end and `group`
/// (reverse, anchored at `ge`) can start, if there is exactly one.
fn one_start(prefix: &DFA, group: &DFA, c: &mut (Cache, Cache), hay: &[u8], ms: usize, ge: usize) -> Option<usize> {
    let ends = ends_forward(prefix, &mut c.0, hay, ms, ge)?;
    match ends.as_slice() {
        [] => None,
        &[one] => Some(one),
        _ => {
            let starts = starts_reverse(group, &mut c.1, hay, ms, ge)?;
            let mut both = ends.iter().filter(|p| starts.contains(p));
            match (both.next(), both.next()) {
                (Some(&p), None) => Some(p),
                _ => None,
            }
        }
    }
}

/// After a step to `sid` whose match would be at `at`: records `at` when `sid` matches; whether
/// the walk is over (the DFA is dead), or None when it gave up (a quit state).
fn reached(sid: LazyStateID, at: usize, out: &mut Vec<usize>) -> Option<bool> {
    if !sid.is_tagged() {
        return Some(false);
    }
    if sid.is_match() {
        out.push(at);
    }
    if sid.is_quit() {
        return None;
    }
    Some(sid.is_dead())
}

/// Every `p` in `[from, to]` such that `dfa` (anchored at `from`) matches `hay[from..p]`, in
/// order; None when the DFA gives up. A lazy DFA enters a match state one byte after the match
/// ends (that byte decides a look-ahead such as `\b`), or at the end of the text.
fn ends_forward(dfa: &DFA, cache: &mut Cache, hay: &[u8], from: usize, to: usize) -> Option<Vec<usize>> {
    let input = Input::new(hay).range(from..to).anchored(Anchored::Yes);
    let mut sid = dfa.start_state_forward(cache, &input).ok()?;
    let mut out = Vec::new();
    let mut at = from;
    while at <= to {
        sid = match hay.get(at) {
            Some(&b) => dfa.next_state(cache, sid, b).ok()?,
            None => dfa.next_eoi_state(cache, sid).ok()?,
        };
        if reached(sid, at, &mut out)? {
            break;
        }
        at += 1;
    }
    Some(out)
}

/// Every `p` in `[from, to]` such that `dfa` (a reverse DFA, anchored at `to`) matches
/// `hay[p..to]`, latest first; None when the DFA gives up. A reverse match state is entered one
/// byte before the match starts, or at the start of the text.
fn starts_reverse(dfa: &DFA, cache: &mut Cache, hay: &[u8], from: usize, to: usize) -> Option<Vec<usize>> {
    let input = Input::new(hay).range(from..to).anchored(Anchored::Yes);
    let mut sid = dfa.start_state_reverse(cache, &input).ok()?;
    let mut out = Vec::new();
    let mut at = to;
    loop {
        // the byte before `at` tells whether a match starts at `at`
        sid = match at.checked_sub(1) {
            Some(i) => dfa.next_state(cache, sid, hay[i]).ok()?,
            None => dfa.next_eoi_state(cache, sid).ok()?,
        };
        if reached(sid, at, &mut out)? || at == from {
            break;
        }
        at -= 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::meta::Regex;

    fn regex(p: &str) -> Regex {
        Regex::builder()
            .syntax(crate::masking::engine::syntax_config())
            .configure(Regex::config().utf8_empty(false))
            .build(p)
            .unwrap()
    }

    /// A match's start and end, and its group's span.
    type Captured = (usize, usize, Option<(usize, usize)>);

    /// Every leftmost-first match of `re` in `hay` (from each byte after a match's start, as
    /// the engine searches on after a rejected candidate), with the group capture search finds.
    fn captured(re: &Regex, hay: &[u8], group: usize) -> Vec<Captured> {
        let mut caps = re.create_captures();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos <= hay.len() {
            re.search_captures(&Input::new(hay).span(pos..hay.len()), &mut caps);
            let Some(m) = caps.get_match() else { break };
            out.push((m.start(), m.end(), caps.get_group(group).map(|g| (g.start, g.end))));
            pos = m.start() + 1;
        }
        out
    }

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Texts for `pattern`: its fixtures, and random mixes of pieces that make and break it.
    fn texts(fixtures: &[&str], pieces: &[&str], rng: &mut Rng) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = fixtures.iter().map(|f| f.as_bytes().to_vec()).collect();
        for _ in 0..3000 {
            let mut t = Vec::new();
            for _ in 0..rng.below(8) + 1 {
                let p = pieces[rng.below(pieces.len())].as_bytes();
                // a piece whole, or cut short
                t.extend_from_slice(&p[..if rng.below(4) == 0 { rng.below(p.len() + 1) } else { p.len() }]);
            }
            out.push(t);
        }
        out
    }

    /// Each split places the group where capture search does, whenever it tells; and tells for
    /// `must` (matches with one reading). How many matches it told, of how many.
    fn agrees(pattern: &str, group: usize, fixtures: &[&str], pieces: &[&str], must: &[&str]) -> (usize, usize) {
        let re = regex(pattern);
        let split = Split::new(pattern, group).expect("a split");
        let (mut told, mut all) = (0, 0);
        for t in texts(fixtures, pieces, &mut Rng(0x9e37_79b9_7f4a_7c15)) {
            for (ms, me, g) in captured(&re, &t, group) {
                all += 1;
                if let Some(s) = split.group(&t, ms, me) {
                    assert_eq!(Some(s), g, "{pattern} on {:?}", String::from_utf8_lossy(&t));
                    told += 1;
                }
            }
        }
        for m in must {
            let t = m.as_bytes();
            let (ms, me, g) = captured(&re, t, group)[0];
            assert_eq!(split.group(t, ms, me), g, "{pattern} must tell on {m:?}");
        }
        (told, all)
    }

    #[test]
    fn shipped_groups_are_placed_where_capture_search_places_them() {
        let aws = r#"(?i)aws[A-Za-z0-9_ .-]{0,24}(?:secret|private)[A-Za-z0-9_ .-]{0,24}["']?\s{0,3}[:=]{1,2}\s{0,3}["']?([A-Za-z0-9/+]{39}(?:[A-Za-z0-9]\b|[/+]\B))"#;
        let (key, slash) = ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "ztu5jRJnKY3FFkX0LRfNR4AeGcBeTwTUy9jAdom/");
        // every match of these has one reading: all are told
        let (told, all) = agrees(
            aws,
            1,
            &["aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
            &[
                "aws_secret_access_key",
                "AWS Secret Key",
                "aws private",
                " = ",
                "=",
                ": \"",
                "'",
                key,
                slash,
                " ",
                "x",
                "\"",
            ],
            &[
                "AWS Secret Key: \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
                "\"awsSecret\": \"ztu5jRJnKY3FFkX0LRfNR4AeGcBeTwTUy9jAdom/\"",
            ],
        );
        assert!(told == all && all > 20, "{told} of {all}");
        let bearer = r"\b[Bb][Ee][Aa][Rr][Ee][Rr]\s{1,5}([A-Za-z0-9._~+/-]{16,2048}=*)";
        let (told, all) = agrees(
            bearer,
            1,
            &["Authorization: Bearer abcdef0123456789abcdef0123456789"],
            &["Bearer", "bearer", " ", "\t", "  ", "abcdef0123456789", "abcdef0123456789", "==", "=", "x", "-", "."],
            &["bearer    9f8e7d6c5b4a39281706f5e4d3c2b1a0=="],
        );
        assert!(told == all && all > 20, "{told} of {all}");
        let basic = r"\b[Bb][Aa][Ss][Ii][Cc]\s{1,5}([A-Za-z0-9+/]{8,1024}={0,2})";
        let (told, all) =
            agrees(basic, 1, &["basic YWxhZGRpbjpvcGVuc2VzYW1l"], &["Basic", " ", "YWxhZGRp", "==", "="], &[]);
        assert!(told == all && all > 20, "{told} of {all}");
        let uri = r"\b(?:postgres|postgresql|mysql|mariadb|mongodb|mongodb\+srv|redis|rediss|amqp|amqps)://[^\s:/@]{1,256}:([^\s@/]{1,256})@";
        let (told, all) = agrees(
            uri,
            1,
            &["postgres://app:s3cr3t-pw@db.internal:5432/app", "mongodb+srv://admin:hunter2@cluster0.example.net/t"],
            &["postgres://", "redis://", "mongodb+srv://", "app", ":", "pw", "@", "/", " ", "a:b"],
            &["amqp://svc:Rab:bit@rabbit:5672/"],
        );
        assert!(told == all && all > 20, "{told} of {all}");
    }

    #[test]
    fn readings_that_are_not_one_are_left_to_capture_search() {
        // several readings: `a*` before the group may take any of the a's
        let (told, all) = agrees(r"x\s*a*(a+)y", 1, &["xaaay"], &["x", "a", "aa", "y", " "], &[]);
        assert!(0 < told && told < all, "{told} of {all}");
        let re = regex(r"x\s*a*(a+)y");
        let split = Split::new(r"x\s*a*(a+)y", 1).unwrap();
        let (ms, me, _) = captured(&re, b"xaaay", 1)[0];
        assert_eq!(split.group(b"xaaay", ms, me), None);
        // a prefix of one length, a group of one length, and a tail of one length: all told
        for (p, must, pieces) in [
            (r"\bkey=([a-z0-9]{4,12})\b", "key=abcd1234", &["key=", "abcd", "12", " ", "x"][..]),
            (r"[a-z]{1,8}:([0-9]{4})!", "user:1234!", &["user", ":", "1234", "12", "!", " "][..]),
            (r"<(\w+?)>", "<tag>", &["<", ">", "tag", " ", "x"][..]),
        ] {
            let (told, all) = agrees(p, 1, &[must], pieces, &[must]);
            assert!(told == all && all > 10, "{p}: {told} of {all}");
        }
        // lazy and greedy neighbours with one reading agree too
        agrees(r"k\s+?(\w+?)\b", 1, &["k  abc def"], &["k", " ", "abc", "d"], &["k  abc"]);
        agrees(r"\b(?:ab|a)(b+)c", 1, &["abbc"], &["a", "b", "bb", "c", " "], &[]);
        // a group that is not part of every match, or a tail of several lengths: no split
        assert!(Split::new(r"a(b)?c", 1).is_none());
        assert!(Split::new(r"a(b)c+", 1).is_none());
        assert!(Split::new(r"a(?:(b)|c)", 1).is_none());
    }
}
