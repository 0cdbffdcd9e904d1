//! What a person needs to know about a server's certificate — subject,
//! issuer, validity, SHA-256 fingerprint — read from its DER bytes. Only
//! the few fields `check` shows and the pinning check needs are read; the
//! signature and chain are webpki's business, not this file's.

use std::fmt;

use sha2::{Digest, Sha256};

/// A certificate's SHA-256 fingerprint, written `sha256:AB:CD:…` (the form
/// `openssl x509 -fingerprint -sha256` prints, with a prefix naming the hash).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Parses `sha256:` followed by 64 hex digits, with or without `:`
    /// between the bytes (both forms are common in tools' output).
    pub fn parse(text: &str) -> Result<Fingerprint, String> {
        let t = text.trim();
        let hex = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .ok_or_else(|| format!("{t:?} does not start with `sha256:`"))?;
        let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!(
                "{t:?} is not `sha256:` followed by 64 hex digits (32 bytes)"
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            out[i] = u8::from_str_radix(s, 16).map_err(|e| e.to_string())?;
        }
        Ok(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The fields of a certificate that `check` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    pub fingerprint: Fingerprint,
}

impl CertificateInfo {
    /// Reads a DER certificate; `None` when it is not one (the handshake
    /// would have failed on it anyway).
    pub fn parse(der: &[u8]) -> Option<CertificateInfo> {
        let (cert, _) = Der::new(der).element(SEQUENCE)?;
        let (tbs, _) = Der::new(cert).element(SEQUENCE)?;
        let mut tbs = Der::new(tbs);
        // version [0] EXPLICIT, optional
        if tbs.peek() == Some(0xA0) {
            tbs.element(0xA0)?;
        }
        tbs.element(0x02)?; // serialNumber
        tbs.element(SEQUENCE)?; // signature algorithm
        let (issuer, _) = tbs.element(SEQUENCE)?;
        let (validity, _) = tbs.element(SEQUENCE)?;
        let (subject, _) = tbs.element(SEQUENCE)?;
        let mut v = Der::new(validity);
        let (nb_tag, nb) = v.any()?;
        let (na_tag, na) = v.any()?;
        Some(CertificateInfo {
            subject: name(subject)?,
            issuer: name(issuer)?,
            not_before: time(nb_tag, nb)?,
            not_after: time(na_tag, na)?,
            fingerprint: Fingerprint::of(der),
        })
    }

    /// True when issuer and subject are the same name (a self-signed
    /// certificate, the usual self-hosted setup).
    pub fn is_self_issued(&self) -> bool {
        self.subject == self.issuer
    }
}

/// `2026-12-03 08:51:39 UTC` for seconds since the epoch.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;

/// A cursor over DER elements (short and long definite lengths only; DER
/// allows nothing else).
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(b: &'a [u8]) -> Der<'a> {
        Der { rest: b }
    }

    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element: (tag, contents).
    fn any(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, after) = self.rest.split_first()?;
        let (&first, mut after) = after.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || after.len() < n {
                return None;
            }
            let mut len = 0usize;
            for &b in &after[..n] {
                len = (len << 8) | usize::from(b);
            }
            after = &after[n..];
            len
        };
        if after.len() < len {
            return None;
        }
        let (body, rest) = after.split_at(len);
        self.rest = rest;
        Some((tag, body))
    }

    /// The next element, which must carry `tag`: (contents, tag).
    fn element(&mut self, tag: u8) -> Option<(&'a [u8], u8)> {
        let (t, body) = self.any()?;
        (t == tag).then_some((body, t))
    }
}

/// A distinguished name as `CN=mail.example.org, O=Example`, in the order
/// the certificate lists it.
fn name(der: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    let mut rdns = Der::new(der);
    while rdns.peek().is_some() {
        let (set, _) = rdns.element(SET)?;
        let mut atvs = Der::new(set);
        while atvs.peek().is_some() {
            let (atv, _) = atvs.element(SEQUENCE)?;
            let mut a = Der::new(atv);
            let (oid, _) = a.element(0x06)?;
            let (_, value) = a.any()?;
            let label = match oid {
                [0x55, 0x04, 0x03] => "CN".to_owned(),
                [0x55, 0x04, 0x06] => "C".to_owned(),
                [0x55, 0x04, 0x07] => "L".to_owned(),
                [0x55, 0x04, 0x08] => "ST".to_owned(),
                [0x55, 0x04, 0x0A] => "O".to_owned(),
                [0x55, 0x04, 0x0B] => "OU".to_owned(),
                [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01] => "emailAddress".to_owned(),
                other => format!(
                    "OID.{}",
                    other.iter().map(|b| format!("{b:02x}")).collect::<String>()
                ),
            };
            // Printable, UTF8, IA5 and T61 strings are shown as text; a
            // control character would only garble a terminal.
            let text: String = String::from_utf8_lossy(value)
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            parts.push(format!("{label}={text}"));
        }
    }
    Some(if parts.is_empty() {
        "(empty)".to_owned()
    } else {
        parts.join(", ")
    })
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if s.len() == 12 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        0x18 if s.len() == 14 => (s.get(..4)?.parse().ok()?, &s[4..]),
        _ => return None,
    };
    if !rest.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (mo, d, h, mi, se) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// well-known algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_both_common_forms_and_print_with_colons() {
        let hex = "ab".repeat(32);
        let a = Fingerprint::parse(&format!("sha256:{hex}")).expect("plain hex");
        let shown = a.to_string();
        assert!(shown.starts_with("sha256:AB:AB:"), "{shown}");
        assert_eq!(Fingerprint::parse(&shown), Ok(a));
        assert!(Fingerprint::parse(&hex).is_err(), "no prefix");
        assert!(Fingerprint::parse("sha256:abcd").is_err(), "too short");
        assert!(Fingerprint::parse(&format!("sha256:{}zz", "ab".repeat(31))).is_err());
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_796_284_299), "2026-12-03 07:51:39 UTC");
        assert_eq!(time(0x17, b"261203075139Z"), Some(1_796_284_299));
        assert_eq!(time(0x18, b"20261203075139Z"), Some(1_796_284_299));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x17, b"261303083139Z"), None, "month 13");
        assert_eq!(time(0x17, b"2612030831"), None, "no seconds, no Z");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(CertificateInfo::parse(b""), None);
        assert_eq!(CertificateInfo::parse(&[0x30, 0x84, 0xff, 0xff]), None);
        assert_eq!(
            CertificateInfo::parse(&[0x30, 0x03, 0x30, 0x01, 0x00]),
            None
        );
    }
}
