//! Checks a candidate must pass before it is masked (so look-alikes survive).

/// A validator named in the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validator {
    /// Always true.
    None,
    /// Payment card: 12-19 digits (spaces/dashes ignored) with a valid Luhn checksum, and not
    /// the last group of a UUID (`uuid_tail`).
    Luhn,
    /// US SSN: area not 000, 666 or 9xx; group not 00; serial not 0000.
    Ssn,
    /// IBAN: country code, check digits, mod-97 == 1.
    Iban,
    /// HTTP Basic credentials: base64 that decodes to printable `user:password`.
    BasicAuth,
}

impl Validator {
    /// Parses a catalogue name.
    pub fn parse(name: &str) -> Option<Validator> {
        Some(match name {
            "" | "none" => Validator::None,
            "luhn" => Validator::Luhn,
            "ssn" => Validator::Ssn,
            "iban" => Validator::Iban,
            "basic_auth" => Validator::BasicAuth,
            _ => return None,
        })
    }

    /// True when the candidate `hay[start..end]` passes, in its context: `check`, and for
    /// `Luhn`, not the 12 digits that end a UUID.
    pub fn check_in(self, hay: &[u8], start: usize, end: usize) -> bool {
        self.check(&hay[start..end]) && !(self == Validator::Luhn && uuid_tail(hay, start, end))
    }

    /// True when `text` passes (without its context: see `check_in`).
    pub fn check(self, text: &[u8]) -> bool {
        match self {
            Validator::None => true,
            Validator::Luhn => luhn(text),
            Validator::Ssn => ssn(text),
            Validator::Iban => iban(text),
            Validator::BasicAuth => basic_auth(text),
        }
    }
}

/// Whether `hay[start..end]` is the last group of a UUID: 12 digits after
/// `xxxxxxxx-xxxx-xxxx-xxxx-` (hex digits), with no letter or digit right before or after the
/// UUID. One UUID in about 2,900 has a last group of 12 decimal digits that pass Luhn (a 12-digit
/// card number's shape): masked, it broke the ids of the API calls the gateway carries. The
/// stream masker keeps enough released text (`CONTEXT`) for the 25 bytes this reads before.
pub fn uuid_tail(hay: &[u8], start: usize, end: usize) -> bool {
    const HEAD: &[u8] = b"hhhhhhhh-hhhh-hhhh-hhhh-";
    let alnum = |i: usize| hay.get(i).is_some_and(u8::is_ascii_alphanumeric);
    end - start == 12
        && hay[start..end].iter().all(u8::is_ascii_digit)
        && start >= HEAD.len()
        && hay[start - HEAD.len()..start]
            .iter()
            .zip(HEAD)
            .all(|(&b, &h)| if h == b'h' { b.is_ascii_hexdigit() } else { b == h })
        && !(start > HEAD.len() && alnum(start - HEAD.len() - 1))
        && !alnum(end)
}

/// Luhn checksum over the digits of `text` (12 to 19 of them).
pub fn luhn(text: &[u8]) -> bool {
    // the digits from the right, every second one doubled (with its digits summed)
    const VALUE: [[u8; 10]; 2] = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]];
    let (mut count, mut sum) = (0usize, 0u32);
    for &b in text.iter().rev() {
        let d = b.wrapping_sub(b'0');
        if d < 10 {
            sum += u32::from(VALUE[count & 1][usize::from(d)]);
            count += 1;
        }
    }
    (12..=19).contains(&count) && sum % 10 == 0
}

/// US Social Security Number rules (SSA): 9 digits, area 001-665 or 667-899, group 01-99,
/// serial 0001-9999.
pub fn ssn(text: &[u8]) -> bool {
    let mut d = [0u8; 9];
    let mut n = 0;
    for b in text.iter().filter(|b| b.is_ascii_digit()) {
        if n == 9 {
            return false;
        }
        d[n] = b - b'0';
        n += 1;
    }
    if n != 9 {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial = d[5..].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// IBAN mod-97 (ISO 13616): move the first four characters to the end, letters to numbers.
pub fn iban(text: &[u8]) -> bool {
    // read in place, white space and '-' skipped, letters upper-cased: the country code and
    // check digits (the first four) go last. The remainder is taken once the number nears
    // 2^56, not at every character (a division each had made this a few thousand
    // instructions per IBAN).
    let mut chars = text.iter().filter(|b| !b.is_ascii_whitespace() && **b != b'-').map(u8::to_ascii_uppercase);
    let mut head = [0u8; 4];
    for (k, h) in head.iter_mut().enumerate() {
        match chars.next() {
            Some(c) if (k < 2 && c.is_ascii_uppercase()) || (k >= 2 && c.is_ascii_digit()) => *h = c,
            _ => return false,
        }
    }
    let mut rem: u64 = 0;
    let mut len = 4;
    for c in chars.chain(head) {
        let (v, scale) = match c {
            b'0'..=b'9' => (u64::from(c - b'0'), 10),
            b'A'..=b'Z' => (u64::from(c - b'A') + 10, 100),
            _ => return false,
        };
        rem = rem * scale + v;
        if rem >= 1 << 56 {
            rem %= 97;
        }
        len += 1;
    }
    // (the head was counted twice)
    (19..=38).contains(&len) && rem % 97 == 1
}

/// Base64 (standard alphabet, padding optional) decoding to printable ASCII with a colon.
pub fn basic_auth(text: &[u8]) -> bool {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let (mut len, mut colon) = (0usize, false);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return false,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            let b = (bits >> nbits) as u8;
            if !(0x20..0x7f).contains(&b) {
                return false;
            }
            colon |= b == b':';
            len += 1;
            bits &= (1 << nbits) - 1;
        }
    }
    len >= 3 && colon
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IBAN and Basic validators as first written (a buffer of the cleaned or decoded
    /// bytes, a remainder per character), against the ones that read in place, on generated
    /// strings near valid ones.
    #[test]
    fn validators_agree_with_their_plain_forms() {
        fn iban_plain(text: &[u8]) -> bool {
            let s: Vec<u8> = text
                .iter()
                .filter(|b| !b.is_ascii_whitespace() && **b != b'-')
                .map(|b| b.to_ascii_uppercase())
                .collect();
            if s.len() < 15
                || s.len() > 34
                || !s[..2].iter().all(u8::is_ascii_uppercase)
                || !s[2..4].iter().all(u8::is_ascii_digit)
            {
                return false;
            }
            let mut rem: u32 = 0;
            for &c in s[4..].iter().chain(s[..4].iter()) {
                let v = match c {
                    b'0'..=b'9' => u32::from(c - b'0'),
                    b'A'..=b'Z' => u32::from(c - b'A') + 10,
                    _ => return false,
                };
                rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
            }
            rem == 1
        }
        fn basic_plain(text: &[u8]) -> bool {
            let (mut bits, mut nbits, mut out) = (0u32, 0, Vec::new());
            for &c in text {
                let v = match c {
                    b'A'..=b'Z' => c - b'A',
                    b'a'..=b'z' => c - b'a' + 26,
                    b'0'..=b'9' => c - b'0' + 52,
                    b'+' => 62,
                    b'/' => 63,
                    b'=' => break,
                    _ => return false,
                };
                bits = (bits << 6) | u32::from(v);
                nbits += 6;
                if nbits >= 8 {
                    nbits -= 8;
                    out.push((bits >> nbits) as u8);
                    bits &= (1 << nbits) - 1;
                }
            }
            out.len() >= 3 && out.contains(&b':') && out.iter().all(|b| (0x20..0x7f).contains(b))
        }
        let mut next = crate::test_util::xorshift(0x1ba5_0c0d_e5a1_7e57);
        let seeds: [&[u8]; 6] = [
            b"GB82 WEST 1234 5698 7654 32",
            b"DE89370400440532013000",
            b"FR1420041010050500013M02606",
            b"NO9386011117947",
            b"MT84MALT011000012345MTLCAST001S",
            b"dXNlcjpwYXNzd29yZA==",
        ];
        let (mut ibans, mut basics) = (0, 0);
        for round in 0..200_000 {
            let mut t = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 4) {
                let k = (next() % (t.len() as u64 + 1)) as usize;
                let b = b"0123456789ABCXYZabz -+/=:\t"[(next() % 26) as usize];
                match next() % 3 {
                    0 if k < t.len() => t[k] = b,
                    1 => t.insert(k, b),
                    _ if k < t.len() => drop(t.remove(k)),
                    _ => {}
                }
            }
            assert_eq!(iban(&t), iban_plain(&t), "{:?}", String::from_utf8_lossy(&t));
            assert_eq!(basic_auth(&t), basic_plain(&t), "{:?}", String::from_utf8_lossy(&t));
            ibans += usize::from(iban(&t));
            basics += usize::from(basic_auth(&t));
        }
        assert!(ibans > 10_000 && basics > 5_000, "{ibans} {basics}");
    }

    #[test]
    fn uuid_tails_are_told_by_their_context() {
        let tail = |s: &str| {
            let at = s.rfind('-').map_or(0, |i| i + 1);
            uuid_tail(s.as_bytes(), at, s.len())
        };
        assert!(tail("01a22d8d-934b-7461-bf00-123456789015"));
        assert!(tail("run 01A22D8D-934B-7461-BF00-123456789015"));
        assert!(Validator::Luhn.check(b"123456789015"));
        let hay = b"id=01a22d8d-934b-7461-bf00-123456789015.";
        assert!(!Validator::Luhn.check_in(hay, 27, 39));
        // not a UUID's last group: a letter or digit around it, a group of another length, a
        // byte that is no hex digit, a separator missing, or not 12 digits
        assert!(!tail("x01a22d8d-934b-7461-bf00-123456789015"));
        assert!(!uuid_tail(b"01a22d8d-934b-7461-bf00-123456789015x", 24, 36));
        assert!(!tail("1a22d8d-934b-7461-bf00-123456789015"));
        assert!(!tail("01a22d8g-934b-7461-bf00-123456789015"));
        assert!(!tail("01a22d8d-934b-7461 bf00-123456789015"));
        assert!(!tail("01a22d8d-934b-7461-bf00-1234567890"));
        assert!(!tail("card 123456789015"));
        assert!(Validator::Luhn.check_in(b"card 123456789015", 5, 17));
        assert!(!tail("23456789015"));
    }

    #[test]
    fn luhn_cases() {
        assert!(luhn(b"4111 1111 1111 1111"));
        assert!(luhn(b"5500-0000-0000-0004"));
        assert!(!luhn(b"4111 1111 1111 1112"));
        assert!(!luhn(b"1234"));
        // odd and even counts, the ends of the 12-19 range, bytes that are no digit
        assert!(luhn(b"378282246310005"));
        assert!(luhn(b"6011 0009 9013 9424"));
        assert!(!luhn(b"378282246310006"));
        assert!(luhn(b"000000000000"));
        assert!(!luhn(b"00000000000"));
        assert!(luhn(b"0000000000000000000"));
        assert!(!luhn(b"00000000000000000000"));
        assert!(luhn(b"4111/1111:1111\xff1111"));
    }

    #[test]
    fn ssn_cases() {
        assert!(ssn(b"123-45-6789"));
        for bad in [&b"000-12-3456"[..], b"666-12-3456", b"912-12-3456", b"123-00-4567", b"123-45-0000"] {
            assert!(!ssn(bad), "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn basic_auth_cases() {
        assert!(basic_auth(b"dXNlcjpzM2NyZXQ="));
        assert!(!basic_auth(b"understanding"));
    }

    #[test]
    fn iban_cases() {
        assert!(iban(b"GB82 WEST 1234 5698 7654 32"));
        assert!(iban(b"DE89370400440532013000"));
        assert!(!iban(b"GB82 WEST 1234 5698 7654 33"));
        assert!(!iban(b"XX00"));
    }
}
