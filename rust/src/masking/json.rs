//! JSON-aware masking: string values (and keys) are decoded, masked as text and re-encoded, so
//! escapes (`\n`, `\"`, `\u0040`) neither hide a secret nor create one, and everything else is
//! copied byte for byte. The input is validated first; the output is always valid JSON.

/// Masks `doc`. `mask` returns the masked text, or None when nothing changed.
pub fn mask_json(doc: &[u8], mask: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> Result<Vec<u8>, String> {
    Ok(mask_json_opt(doc, mask)?.unwrap_or_else(|| doc.to_vec()))
}

/// Err when `doc` is not one valid JSON document.
pub fn validate(doc: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(doc).map_err(|e| format!("not valid JSON: {e}"))?;
    Ok(())
}

/// Like `mask_json`, but `Ok(None)` when no string changed.
pub fn mask_json_opt(doc: &[u8], mut mask: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> Result<Option<Vec<u8>>, String> {
    validate(doc)?;
    let mut out: Vec<u8> = Vec::with_capacity(doc.len());
    let mut i = 0;
    let n = doc.len();
    let mut copied = 0;
    let mut decoded: Vec<u8> = Vec::new();
    while i < n {
        // the next string token (the document is valid: every quote outside a string opens one)
        let Some(q) = memchr::memchr(b'"', &doc[i..]) else { break };
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
        let end = i + 1; // past the closing quote
        let inner = &doc[start + 1..i];
        i = end;
        let text: &[u8] = if escaped {
            decoded.clear();
            decode_into(inner, &mut decoded);
            &decoded
        } else {
            inner
        };
        if let Some(masked) = mask(text) {
            out.extend_from_slice(&doc[copied..start]);
            match std::str::from_utf8(&masked) {
                Ok(t) => encode_into(t, &mut out),
                Err(_) => encode_into(&String::from_utf8_lossy(&masked), &mut out),
            }
            copied = end;
        }
    }
    if copied == 0 {
        return Ok(None);
    }
    out.extend_from_slice(&doc[copied..]);
    Ok(Some(out))
}

fn hex4(s: &[u8]) -> Option<u32> {
    if s.len() < 4 {
        return None;
    }
    let t = std::str::from_utf8(&s[..4]).ok()?;
    u32::from_str_radix(t, 16).ok()
}

/// JSON string escapes to UTF-8 (lone surrogates become U+FFFD).
fn decode_into(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        // up to the next escape, copied whole
        let run = memchr::memchr(b'\\', &s[i..]).unwrap_or(s.len() - i);
        out.extend_from_slice(&s[i..i + run]);
        i += run;
        if i + 1 >= s.len() {
            out.extend_from_slice(&s[i..]); // (a lone backslash at the end: cannot be, once validated)
            break;
        }
        let e = s[i + 1];
        i += 2;
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
            out.push(v);
            continue;
        }
        // \uXXXX, maybe a surrogate pair
        let Some(hi) = hex4(&s[i..]) else {
            out.extend_from_slice("\u{FFFD}".as_bytes());
            continue;
        };
        i += 4;
        let cp = if (0xD800..0xDC00).contains(&hi) {
            if s.len() >= i + 6 && s[i] == b'\\' && s[i + 1] == b'u' {
                match hex4(&s[i + 2..]) {
                    Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                        i += 6;
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    _ => 0xFFFD,
                }
            } else {
                0xFFFD
            }
        } else if (0xDC00..0xE000).contains(&hi) {
            0xFFFD
        } else {
            hi
        };
        let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
}

/// Bytes from the start of `s` that a JSON string holds as they are: none of '"', '\\' or a
/// control byte (below 0x20). Eight at a time (the test serde_json's reader makes, with
/// Mycroft's zero-byte trick): the byte-by-byte loop over `chars` it replaces was about 40
/// instructions a byte, most of a 1 KiB document's masking (callgrind).
fn plain_len(s: &[u8]) -> usize {
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

/// A JSON string literal for `s`: runs that need no escape are copied whole.
fn encode_into(s: &str, out: &mut Vec<u8>) {
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

    fn star_at(t: &[u8]) -> Option<Vec<u8>> {
        if t.windows(5).any(|w| w == b"a@b.c") {
            Some(b"[E]".to_vec())
        } else {
            None
        }
    }

    #[test]
    fn escapes_neither_hide_nor_create() {
        let doc = br#"{"x":"a\u0040b.c","y":["q\"","a@b\\.c"],"a@b.c":1,"n":1.50}"#;
        let out = mask_json(doc, star_at).unwrap();
        assert_eq!(out, br#"{"x":"[E]","y":["q\"","a@b\\.c"],"[E]":1,"n":1.50}"#.to_vec());
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
    /// '\\', ' ', 0x7f, multi-byte characters) at every offset of its 8-byte words: encoded
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
            }
        }
    }

    #[test]
    fn invalid_json_is_refused() {
        assert!(mask_json(b"{\"a\":", star_at).is_err());
    }
}
