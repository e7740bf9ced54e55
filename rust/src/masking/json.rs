//! JSON pieces for `Engine::mask_json_valid`: validation, the string and number tokens of a
//! document, escapes decoded, and masked strings written back (their raw bytes with the
//! replacements put in, or encoded again).

use super::engine::Span;

/// Err when `doc` is not one valid JSON document (RFC 8259; strings' bytes at or above 0x80
/// are taken as they are, as serde_json's reader takes them).
///
/// A loop of its own rather than serde_json's reader: it skips a string's plain bytes sixteen
/// at a time (`plain_len`), where that reader looks them up one by one. A 1 KiB document of one
/// string: validation 2.8K instructions with serde_json, 1.8K with this; the whole
/// `mask_json` call 12.1K and 10.9K (callgrind, `GW_BENCH_LOOP=json`).
pub fn validate(doc: &[u8]) -> Result<(), String> {
    validate_with(doc, |_| {})
}

/// `validate`, and the document's string tokens as `strings` gives them: one pass where a
/// document with escapes was read twice (`Engine::mask_json_if_needed`).
pub fn validate_strings(doc: &[u8]) -> Result<Vec<StrTok>, String> {
    let mut out = Vec::new();
    validate_with(doc, |t| out.push(t))?;
    Ok(out)
}

/// `validate`, calling `tok` with each string token (keys and values) in order.
fn validate_with(doc: &[u8], mut tok: impl FnMut(StrTok)) -> Result<(), String> {
    let err = |what: &str, at: usize| Err(format!("not valid JSON: {what} at byte {at}"));
    let n = doc.len();
    let ws = |i: usize| skip_ws(doc, i);
    // open containers, innermost last: true for an object (on the heap, as deep as the
    // document nests, as serde_json's reader keeps them when it skips a value)
    let mut stack: Vec<bool> = Vec::new();
    let mut i = ws(0);
    loop {
        // a value at `i`
        match doc.get(i) {
            None => return err("a value expected", i),
            Some(b'{' | b'[') => {
                let object = doc[i] == b'{';
                i = ws(i + 1);
                let close = if object { b'}' } else { b']' };
                if doc.get(i) == Some(&close) {
                    i += 1;
                } else {
                    stack.push(object);
                    if object {
                        i = key(doc, i, &mut tok)?;
                    }
                    continue;
                }
            }
            Some(b'"') => {
                let (end, escaped) = string(doc, i)?;
                tok(StrTok { start: i, end, escaped });
                i = end;
            }
            Some(b't') if doc[i..].starts_with(b"true") => i += 4,
            Some(b'f') if doc[i..].starts_with(b"false") => i += 5,
            Some(b'n') if doc[i..].starts_with(b"null") => i += 4,
            Some(b'-' | b'0'..=b'9') => i = number(doc, i)?,
            Some(_) => return err("a value expected", i),
        }
        // after a value: the next one in its container, or the container's end
        loop {
            i = ws(i);
            let Some(&object) = stack.last() else {
                return if i == n { Ok(()) } else { err("trailing bytes", i) };
            };
            match doc.get(i) {
                Some(b',') => {
                    i = ws(i + 1);
                    if object {
                        i = key(doc, i, &mut tok)?;
                    }
                    break;
                }
                Some(b'}') if object => {
                    stack.pop();
                    i += 1;
                }
                Some(b']') if !object => {
                    stack.pop();
                    i += 1;
                }
                _ => return err(if object { "',' or '}' expected" } else { "',' or ']' expected" }, i),
            }
        }
    }
}

/// A key and its colon at `i`: where its value begins (after white space).
fn key(doc: &[u8], i: usize, tok: &mut impl FnMut(StrTok)) -> Result<usize, String> {
    if doc.get(i) != Some(&b'"') {
        return Err(format!("not valid JSON: a key expected at byte {i}"));
    }
    let (end, escaped) = string(doc, i)?;
    tok(StrTok { start: i, end, escaped });
    let j = skip_ws(doc, end);
    if doc.get(j) != Some(&b':') {
        return Err(format!("not valid JSON: ':' expected at byte {j}"));
    }
    Ok(skip_ws(doc, j + 1))
}

/// Past the JSON white space at `doc[i..]`.
fn skip_ws(doc: &[u8], mut i: usize) -> usize {
    while i < doc.len() && matches!(doc[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The string whose opening quote is at `i`: past its closing quote, and whether it holds an
/// escape.
fn string(doc: &[u8], i: usize) -> Result<(usize, bool), String> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        j += plain_len(&doc[j..]);
        match doc.get(j) {
            Some(b'"') => return Ok((j + 1, escaped)),
            Some(b'\\') => match doc.get(j + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                    escaped = true;
                    j += 2
                }
                Some(b'u') if doc.get(j + 2..j + 6).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) => {
                    escaped = true;
                    j += 6
                }
                _ => return Err(format!("not valid JSON: a bad escape at byte {j}")),
            },
            Some(_) => return Err(format!("not valid JSON: a control character in a string at byte {j}")),
            None => return Err(format!("not valid JSON: an unterminated string at byte {i}")),
        }
    }
}

/// The number at `i`: past its end.
fn number(doc: &[u8], i: usize) -> Result<usize, String> {
    let digits = |j: usize| j + doc[j..].iter().take_while(|b| b.is_ascii_digit()).count();
    let bad = |j: usize| Err(format!("not valid JSON: a bad number at byte {j}"));
    let mut j = i + usize::from(doc[i] == b'-');
    match doc.get(j) {
        Some(b'0') => j += 1,
        Some(b'1'..=b'9') => j = digits(j),
        _ => return bad(j),
    }
    if doc.get(j) == Some(&b'.') {
        let k = digits(j + 1);
        if k == j + 1 {
            return bad(k);
        }
        j = k;
    }
    if matches!(doc.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(doc.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let k = digits(j);
        if k == j {
            return bad(k);
        }
        j = k;
    }
    Ok(j)
}

/// A string token of a valid document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrTok {
    /// Its opening quote.
    pub start: usize,
    /// Past its closing quote.
    pub end: usize,
    /// Whether it holds a backslash.
    pub escaped: bool,
}

impl StrTok {
    /// Where its raw content begins and ends (inside the quotes).
    pub fn content(&self) -> (usize, usize) {
        (self.start + 1, self.end - 1)
    }
}

/// The string tokens (keys and values) of `doc`, which must be valid JSON (`validate`), in order.
pub fn strings(doc: &[u8]) -> Vec<StrTok> {
    let mut out = Vec::new();
    let n = doc.len();
    let mut i = 0;
    // every quote outside a string opens one (the document is valid)
    while let Some(q) = memchr::memchr(b'"', &doc[i..]) {
        let start = i + q;
        i = start + 1;
        let mut escaped = false;
        // to its closing quote, skipping escaped characters
        let closed = loop {
            let Some(k) = memchr::memchr2(b'"', b'\\', &doc[i.min(n)..]) else { break false };
            i += k;
            if doc[i] == b'"' {
                break true;
            }
            escaped = true;
            i += 2;
        };
        if !closed {
            break; // unterminated: cannot happen after `validate`
        }
        i += 1;
        out.push(StrTok { start, end: i, escaped });
    }
    out
}

/// Bytes of a number token (`-0.5e+3`).
fn number_byte(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
}

/// The number tokens of `doc` (valid JSON) that overlap `[lo, hi)`, a stretch outside its
/// strings: maximal runs of number bytes that hold a digit (the `e` of `true` and `false` is a
/// run of its own, without one).
pub fn numbers(doc: &[u8], lo: usize, hi: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = lo;
    while i > 0 && number_byte(doc[i - 1]) {
        i -= 1;
    }
    while i < hi {
        if !number_byte(doc[i]) {
            i += 1;
            continue;
        }
        let j = i + doc[i..].iter().take_while(|&&b| number_byte(b)).count();
        if doc[i..j].iter().any(u8::is_ascii_digit) {
            out.push((i, j));
        }
        i = j;
    }
    out
}

fn hex4(s: &[u8]) -> Option<u32> {
    if s.len() < 4 {
        return None;
    }
    let t = std::str::from_utf8(&s[..4]).ok()?;
    u32::from_str_radix(t, 16).ok()
}

/// The escape at `s[i..]` (a backslash): its length in `s`, and what it stands for in UTF-8
/// (lone surrogates and malformed escapes become U+FFFD).
fn escape_at(s: &[u8], i: usize) -> (usize, [u8; 4], usize) {
    let utf8 = |ch: char| {
        let mut buf = [0u8; 4];
        let n = ch.encode_utf8(&mut buf).len();
        (buf, n)
    };
    let Some(&e) = s.get(i + 1) else {
        return (1, [b'\\', 0, 0, 0], 1); // a lone backslash at the end (not after `validate`)
    };
    let simple = match e {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        b'/' => Some(b'/'),
        b'b' => Some(8),
        b'f' => Some(12),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        _ => None,
    };
    if let Some(v) = simple {
        return (2, [v, 0, 0, 0], 1);
    }
    // a `\u` escape of four hex digits, maybe a surrogate pair
    let Some(hi) = hex4(&s[i + 2..]) else {
        let (b, n) = utf8('\u{FFFD}');
        return (2, b, n);
    };
    let mut len = 6;
    let cp = if (0xD800..0xDC00).contains(&hi) {
        let j = i + 6;
        match (s.get(j..j + 2), s.get(j + 2..).and_then(hex4)) {
            (Some(b"\\u"), Some(lo)) if (0xDC00..0xE000).contains(&lo) => {
                len = 12;
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            _ => 0xFFFD,
        }
    } else if (0xDC00..0xE000).contains(&hi) {
        0xFFFD
    } else {
        hi
    };
    let (b, n) = utf8(char::from_u32(cp).unwrap_or('\u{FFFD}'));
    (len, b, n)
}

/// JSON string escapes to UTF-8 (lone surrogates become U+FFFD).
pub fn decode_into(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        // up to the next escape, copied whole
        let run = memchr::memchr(b'\\', &s[i..]).unwrap_or(s.len() - i);
        out.extend_from_slice(&s[i..i + run]);
        i += run;
        if i < s.len() {
            let (len, bytes, n) = escape_at(s, i);
            out.extend_from_slice(&bytes[..n]);
            i += len;
        }
    }
}

/// The JSON string literal of a string whose raw content is `raw`, with the ranges `spans` of
/// its decoded text (`decode_into`; sorted, disjoint) replaced by what `put(span, out)`
/// writes: around them the raw bytes are copied, escapes as they were, so nothing is
/// encoded again. False, with `out` to be cut back, when a range begins or ends inside what one
/// escape stands for, or a replacement is not text a JSON string holds as it is (`plain`,
/// UTF-8): the caller then encodes the masked decoded text. (`escaped`: whether `raw` holds a
/// backslash; without one, it is not looked for.)
pub fn rewrite_raw(
    raw: &[u8],
    escaped: bool,
    spans: &[Span],
    out: &mut Vec<u8>,
    mut put: impl FnMut(&Span, &mut Vec<u8>),
) -> bool {
    // (raw offset, decoded offset, the next backslash at or after the raw offset), moved to
    // decoded offset `to`; false when `to` falls inside an escape's decoded bytes
    let find = |i: usize| memchr::memchr(b'\\', &raw[i..]).map_or(raw.len(), |k| i + k);
    let advance = |(i, d, bs): &mut (usize, usize, usize), to: usize| -> bool {
        while *d < to {
            let run = *bs - *i;
            if *d + run >= to {
                *i += to - *d;
                *d = to;
                return true;
            }
            *i += run;
            *d += run;
            let (len, _, n) = escape_at(raw, *i);
            if *d + n > to {
                return false;
            }
            *i += len;
            *d += n;
            *bs = find(*i);
        }
        true
    };
    out.push(b'"');
    let mut at = (0, 0, if escaped { find(0) } else { raw.len() });
    for sp in spans {
        let from = at.0;
        if !advance(&mut at, sp.start) {
            return false;
        }
        out.extend_from_slice(&raw[from..at.0]);
        let mark = out.len();
        put(sp, out);
        if !plain(&out[mark..]) || std::str::from_utf8(&out[mark..]).is_err() || !advance(&mut at, sp.end) {
            return false;
        }
    }
    out.extend_from_slice(&raw[at.0..]);
    out.push(b'"');
    true
}

/// Bytes from the start of `s` that a JSON string holds as they are: none of '"', '\\' or a
/// control byte (below 0x20). Sixteen at a time with SSE2 (every x86_64 CPU has it), else
/// eight (Mycroft's zero-byte trick, the test serde_json's reader makes). The byte-by-byte
/// loop over `chars` this replaced was about 40 instructions a byte, most of a 1 KiB
/// document's masking; eight at a time, about 2.4 (and validation as costly as serde_json's
/// reader); sixteen with SSE2, about 1.1 (validation of 1 KiB strings, callgrind).
fn plain_len(s: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    let i = {
        use std::arch::x86_64::*;
        let mut i = 0;
        // SAFETY: SSE2 is part of x86_64; every load reads `s[i..i + 16]`, inside `s`.
        unsafe {
            let (quote, backslash, ctrl_max) =
                (_mm_set1_epi8(b'"' as i8), _mm_set1_epi8(b'\\' as i8), _mm_set1_epi8(0x1f));
            while i + 16 <= s.len() {
                let v = _mm_loadu_si128(s.as_ptr().add(i).cast());
                // a control byte: max(v, 0x1f) == 0x1f (unsigned)
                let ctrl = _mm_cmpeq_epi8(_mm_max_epu8(v, ctrl_max), ctrl_max);
                let hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)), ctrl);
                let mask = _mm_movemask_epi8(hit) as u32;
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 16;
            }
        }
        i
    };
    #[cfg(not(target_arch = "x86_64"))]
    let i = 0;
    i + plain_len_swar(&s[i..])
}

/// `plain_len`, eight bytes at a time.
fn plain_len_swar(s: &[u8]) -> usize {
    const ONES: u64 = u64::MAX / 255;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & (ONES << 7);
    let mut i = 0;
    while i + 8 <= s.len() {
        let w = u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
        // a byte below 0x20: `w - 0x20` borrows into bit 7 where bit 7 was clear
        let ctrl = w.wrapping_sub(ONES * 0x20) & !w & (ONES << 7);
        let hit = ctrl | has_zero(w ^ (ONES * u64::from(b'"'))) | has_zero(w ^ (ONES * u64::from(b'\\')));
        if hit != 0 {
            // (the lowest flagged byte is exact: a borrow only runs upwards from it)
            return i + hit.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    i + s[i..].iter().take_while(|&&b| b >= 0x20 && b != b'"' && b != b'\\').count()
}

/// Whether `s` can stand inside a JSON string as it is (no byte needs an escape).
pub fn plain(s: &[u8]) -> bool {
    plain_len(s) == s.len()
}

/// A JSON string literal for `s`: runs that need no escape are copied whole.
pub fn encode_into(s: &str, out: &mut Vec<u8>) {
    let s = s.as_bytes();
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut i = 0;
    while i < s.len() {
        let n = plain_len(&s[i..]);
        out.extend_from_slice(&s[i..i + n]);
        i += n;
        let Some(&b) = s.get(i) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
        }
        i += 1;
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_a_document() {
        let doc = br#"{"a\"b":[1,-2.5e+3,true,"x"],"n":null,"f":false}"#;
        let strs = strings(doc);
        let text: Vec<&[u8]> = strs.iter().map(|t| &doc[t.start..t.end]).collect();
        assert_eq!(text, [&br#""a\"b""#[..], br#""x""#, br#""n""#, br#""f""#]);
        assert_eq!(strs.iter().map(|t| t.escaped).collect::<Vec<_>>(), [true, false, false, false]);
        let nums: Vec<&[u8]> = numbers(doc, 0, doc.len()).into_iter().map(|(i, j)| &doc[i..j]).collect();
        assert_eq!(nums, [&b"1"[..], b"-2.5e+3"]);
        // a stretch inside a number gives the whole number
        let at = doc.windows(3).position(|w| w == b"2.5").unwrap();
        assert_eq!(numbers(doc, at + 1, at + 2), [(at - 1, at + 6)]);
    }

    /// The validator accepts what serde_json's reader accepts (which it replaced), on documents
    /// edited at random bytes, cut short and nested deep.
    #[test]
    fn validation_agrees_with_serde_json() {
        let serde_ok = |d: &[u8]| serde_json::from_slice::<serde::de::IgnoredAny>(d).is_ok();
        let seeds: &[&[u8]] = &[
            br#"{"a": [1, -2.5e+3, 0, 0.25, 1E-2, true, false, null, "x\n\u00e9\"\\\/\b\f\r\t"], "b": {}, "c": [], "d": {"e": [[{}]]}}"#,
            b" [ \"\xc3\xa9\xff\" , { \"k\" : -0 } ]\r\n",
            br#""just a string""#,
            b"12",
            b"{\"mail\": \"jo@ex.io\", \"n\": 4111111111111111, \"t\": \"\\ud83d\\ude00\"}",
        ];
        const BYTES: &[u8] = b"{}[],:\"\\ \t\n0123456789-+.eEabfnrtu\x00\x1f\x7f\xc3";
        let mut next = crate::test_util::xorshift(0x510e_527f_ade6_82d1);
        let mut checked = (0, 0);
        for _ in 0..60_000 {
            let mut d = seeds[(next() % seeds.len() as u64) as usize].to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % (d.len() as u64 + 1)) as usize;
                let b = BYTES[(next() % BYTES.len() as u64) as usize];
                match next() % 4 {
                    0 if at < d.len() => drop(d.remove(at)),
                    1 => d.insert(at, b),
                    2 if at < d.len() => d[at] = b,
                    _ => d.truncate(at),
                }
            }
            let ok = serde_ok(&d);
            assert_eq!(validate(&d).is_ok(), ok, "{:?}", String::from_utf8_lossy(&d));
            assert_eq!(validate_strings(&d).ok(), ok.then(|| strings(&d)), "{:?}", String::from_utf8_lossy(&d));
            if ok {
                checked.0 += 1
            } else {
                checked.1 += 1
            }
        }
        assert!(checked.0 > 5_000 && checked.1 > 20_000, "{checked:?}");
        for depth in [1, 127, 128, 129, 5_000] {
            let d = [vec![b'['; depth], vec![b']'; depth]].concat();
            assert_eq!(validate(&d).is_ok(), serde_ok(&d), "{depth}");
            let d = [b"{\"a\":".repeat(depth), b"1".to_vec(), vec![b'}'; depth]].concat();
            assert_eq!(validate(&d).is_ok(), serde_ok(&d), "{depth}");
        }
        assert_eq!(validate(b"[1,]"), Err("not valid JSON: a value expected at byte 3".to_string()));
    }

    #[test]
    fn raw_bytes_are_kept_around_replacements() {
        let raw = br#"a\nb\u00e9c"#; // decoded: a, newline, b, 0xc3 0xa9, c
        let run = |spans: &[(usize, usize)], rep: &[u8]| {
            let spans: Vec<Span> = spans.iter().map(|&(start, end)| Span { start, end, entry: 0 }).collect();
            let mut out = Vec::new();
            rewrite_raw(raw, true, &spans, &mut out, |_, o| o.extend_from_slice(rep)).then_some(out)
        };
        assert_eq!(run(&[(2, 3)], b"[X]").unwrap(), br#""a\n[X]\u00e9c""#);
        assert_eq!(run(&[(0, 2), (3, 6)], b"[X]").unwrap(), br#""[X]b[X]""#);
        assert_eq!(run(&[], b"").unwrap(), br#""a\nb\u00e9c""#);
        // a span that ends inside what `\u00e9` stands for, and replacements that need escapes
        assert_eq!(run(&[(3, 4)], b"[X]"), None);
        assert_eq!(run(&[(2, 3)], b"\"x\""), None);
        assert_eq!(run(&[(2, 3)], b"\n"), None);
        assert_eq!(run(&[(2, 3)], b"\xff"), None);
    }

    #[test]
    fn escapes_decode_to_utf8() {
        let s = br#"ab\ncd\u00e9\ud83d\ude00e\"\\\/\ud800x"#;
        let mut d = Vec::new();
        decode_into(s, &mut d);
        assert_eq!(d, "ab\ncd\u{e9}\u{1f600}e\"\\/\u{fffd}x".as_bytes());
    }

    /// The encoder as it was, a char at a time: the reference for the one that copies runs.
    fn encode_by_char(s: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for ch in s.chars() {
            match ch {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
                c => out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
            }
        }
        out.push(b'"');
        out
    }

    /// Strings of the bytes around every class boundary of `plain_len` (each control byte, '"',
    /// '\\', ' ', 0x7f, multi-byte characters) at every offset of its 16- and 8-byte words: encoded
    /// as the char-by-char encoder did, read back by serde_json and by `decode_into` as
    /// themselves, and a run of plain bytes is as long as a byte-by-byte count says.
    #[test]
    fn encoding_copies_runs_and_escapes_the_rest() {
        let mut pieces: Vec<String> = (0u8..0x20).map(|b| char::from(b).to_string()).collect();
        pieces.extend(["\"", "\\", " ", "\u{7f}", "a", "é", "€", "😀", "\u{fffd}", "abcdefgh"].map(String::from));
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let n = (next() % 24) as usize;
            let s: String = (0..n).map(|_| pieces[(next() % pieces.len() as u64) as usize].as_str()).collect();
            let mut out = Vec::new();
            encode_into(&s, &mut out);
            assert_eq!(out, encode_by_char(&s), "{s:?}");
            assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
            let mut back = Vec::new();
            decode_into(&out[1..out.len() - 1], &mut back);
            assert_eq!(back, s.as_bytes());
            let bytes = s.as_bytes();
            for k in 0..=bytes.len() {
                let want = bytes[k..].iter().take_while(|&&b| b >= 0x20 && b != b'"' && b != b'\\').count();
                assert_eq!(plain_len(&bytes[k..]), want, "{:?}", &bytes[k..]);
                assert_eq!(plain_len_swar(&bytes[k..]), want, "{:?}", &bytes[k..]);
            }
        }
    }

    #[test]
    fn invalid_json_is_refused() {
        assert!(validate(b"{\"a\":").is_err());
        assert!(validate(b"{\"a\":1}").is_ok());
    }
}
