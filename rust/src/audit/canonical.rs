//! The scalar pieces of a canonical record body (docs/AUDIT_FORMAT.md 4.2), written natively:
//! JSON strings and floats exactly as `orjson.dumps` writes them, and the records' `ts` strings.
//!
//! The Python binding (`py/audit.rs`, `canonical_json` and `AuditWriter.append_obj`) walks the
//! objects; these functions only write bytes, so they are tested here without Python. The
//! differential tests in tests/audit/test_canonical.py hold the whole encoder to orjson's output.

/// Bytes that a JSON string must escape (`"`, `\` and the C0 controls).
const ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Whether some byte of `s` must be escaped in a JSON string. Eight bytes at a time (a record's
/// keys and values are mostly short and need no escape): a byte below 0x20, a `"` or a `\`
/// leaves a high bit in the word test, and any hit is confirmed byte by byte.
fn needs_escape(s: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // `haszero`: a zero byte in `w` sets its high bit here (a byte of 0x80 and up in `w` can set
    // one too, hence the exact check of a hit)
    let zero = |w: u64| w.wrapping_sub(LO) & !w & HI;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        let below = w.wrapping_sub(LO * 0x20) & !w & HI; // bytes under 0x20 (exact when ASCII)
        if below | zero(w ^ (LO * u64::from(b'"'))) | zero(w ^ (LO * u64::from(b'\\'))) != 0
            && c.iter().any(|&b| ESCAPE[b as usize])
        {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| ESCAPE[b as usize])
}

/// Append `s` (UTF-8) as a JSON string: `"` and `\` escaped, the C0 controls as `\b \t \n \f \r`
/// or `\u00XX` (lower-case hex), everything else (non-ASCII and DEL included) as itself.
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    // Most strings need no escape: one check, then one copy.
    if !needs_escape(s) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    out.reserve(s.len() + 8);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if !ESCAPE[b as usize] {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// Append `x` as orjson writes a float: the shortest digits that read back as `x`; positional
/// notation for decimal exponents -5..=15 (with `.0` when integral), else `d[.ddd]e±N`;
/// NaN and the infinities as `null`.
pub fn write_f64(out: &mut Vec<u8>, x: f64) {
    if !x.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    if x == 0.0 {
        out.extend_from_slice(if x.is_sign_negative() { b"-0.0" } else { b"0.0" });
        return;
    }
    // ryu: the shortest digits that read back as `x`, ties to even (as orjson and Python's repr);
    // its layout ("1e16", "0.0001", "123.45") is parsed back into digits and an exponent.
    let mut buf = ryu::Buffer::new();
    let (digits, exp, neg) = decimal(buf.format_finite(x));
    if neg {
        out.push(b'-');
    }
    if (-5..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.extend_from_slice(&digits);
                out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..int_len]);
                out.push(b'.');
                out.extend_from_slice(&digits[int_len..]);
            }
        } else {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(&digits);
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp > 0 { b'+' } else { b'-' });
        out.extend_from_slice(exp.unsigned_abs().to_string().as_bytes());
    }
}

/// The significant digits of a decimal float literal (no leading or trailing zeros), the decimal
/// exponent of the first one, and the sign: "-0.0012e3" -> ("12", 0, true).
fn decimal(lit: &str) -> (Vec<u8>, i32, bool) {
    let (neg, lit) = match lit.strip_prefix('-') {
        Some(l) => (true, l),
        None => (false, lit),
    };
    let (mant, e) = match lit.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().expect("a decimal exponent")),
        None => (lit, 0),
    };
    let point = mant.find('.').unwrap_or(mant.len()) as i32;
    let all: Vec<u8> = mant.bytes().filter(|&b| b != b'.').collect();
    let lead = all.iter().take_while(|&&b| b == b'0').count();
    let trail = all.iter().rev().take_while(|&&b| b == b'0').count();
    let digits = all[lead..all.len() - trail.min(all.len() - lead)].to_vec();
    (digits, e + point - 1 - lead as i32, neg)
}

/// Append a signed or unsigned integer in decimal (digits written backwards into a stack
/// buffer: no allocation, unlike `to_string`).
pub fn write_int(out: &mut Vec<u8>, v: i128) {
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    let mut u = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    out.extend_from_slice(&buf[i..]);
}

/// `time_ns` (Unix epoch, UTC) as the records' `ts`: what Python's
/// `datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds")` writes, e.g.
/// `2026-11-30T01:48:47.400892+00:00` (truncated to the microsecond).
pub fn iso_micros(time_ns: u64) -> [u8; 32] {
    let secs = time_ns / 1_000_000_000;
    let micros = (time_ns % 1_000_000_000) / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil_from_days (H. Hinnant): proleptic Gregorian date of a day count since 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut b = *b"0000-00-00T00:00:00.000000+00:00";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, rem / 3600);
    put(14, 2, rem / 60 % 60);
    put(17, 2, rem % 60);
    put(20, 6, micros);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> String {
        let mut v = Vec::new();
        write_f64(&mut v, x);
        String::from_utf8(v).unwrap()
    }

    #[test]
    // The smallest normal double, written with the 17 digits that orjson and Python's repr
    // print for it: clippy's excessive-precision lint flags that literal.
    #[allow(clippy::excessive_precision)]
    fn floats_are_written_as_orjson_writes_them() {
        // (value, orjson.dumps(value)) pairs taken from orjson 3.13
        let cases: &[(f64, &str)] = &[
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-7, "1.5e-7"),
            (0.1, "0.1"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (1e21, "1e+21"),
            (5e-324, "5e-324"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (100.0, "100.0"),
            (0.001, "0.001"),
            (1e-5, "0.00001"),
            (1e-6, "1e-6"),
            (2.5e-5, "0.000025"),
            (12.345, "12.345"),
            (-12.345, "-12.345"),
            (1234567890123456.8, "1234567890123456.8"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (0.30000000000000004, "0.30000000000000004"),
            // exactly 2^46 + 1/8: two shortest candidates, the even one wins
            (70368744177664.125, "70368744177664.12"),
            (f64::NAN, "null"),
            (f64::NEG_INFINITY, "null"),
        ];
        for &(x, want) in cases {
            assert_eq!(f(x), want, "{x:?}");
        }
    }

    #[test]
    fn strings_escape_quotes_backslashes_and_controls_only() {
        let mut v = Vec::new();
        write_str(&mut v, "a\"b\\c\u{0}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}/é😀".as_bytes());
        assert_eq!(String::from_utf8(v).unwrap(), "\"a\\\"b\\\\c\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f\u{7f}/é😀\"");
    }

    #[test]
    fn the_word_check_finds_every_byte_to_escape() {
        // every byte value at every position of strings up to 3 words long, in ASCII and
        // non-ASCII surroundings (bytes of 0x80 and up can set the word test's high bits)
        for fill in [b'a', 0x7f, 0x80, 0xe9, 0xff] {
            for len in 1..=24 {
                for at in 0..len {
                    for b in 0..=255u8 {
                        let mut s = vec![fill; len];
                        s[at] = b;
                        assert_eq!(needs_escape(&s), s.iter().any(|&x| ESCAPE[x as usize]), "{s:?}");
                    }
                }
            }
        }
        assert!(!needs_escape(b""));
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for v in [0i128, 7, -7, 10, -10, 1234567890, i128::from(i64::MIN), i128::from(i64::MAX), i128::from(u64::MAX)] {
            let mut out = Vec::new();
            write_int(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
    }

    #[test]
    fn timestamps_match_the_civil_calendar() {
        let s = |ns: u64| String::from_utf8(iso_micros(ns).to_vec()).unwrap();
        assert_eq!(s(0), "1970-01-01T00:00:00.000000+00:00");
        // 2000-02-29 (leap day of a century leap year) 23:59:59.999999999
        assert_eq!(s(951_868_799_999_999_999), "2000-02-29T23:59:59.999999+00:00");
        assert_eq!(s(4_107_542_400_000_000_000), "2100-03-01T00:00:00.000000+00:00");
        assert_eq!(s(1_795_916_927_400_892_123), "2026-11-29T01:48:47.400892+00:00");
    }
}
