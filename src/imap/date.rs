//! INTERNALDATE (`17-Jul-1996 02:44:25 -0700`) to UTC ISO-8601, so dates in the
//! database sort and compare as text.

/// Converts an IMAP date-time to `YYYY-MM-DDTHH:MM:SSZ`; `None` if malformed.
pub fn internal_date_to_utc(s: &str) -> Option<String> {
    let s = s.trim();
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.trim_start().split_once(' ')?;
    let mut dp = date.split('-');
    let day: i64 = dp.next()?.trim().parse().ok()?;
    let month = match dp.next()?.to_ascii_lowercase().as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let year: i64 = dp.next()?.parse().ok()?;
    let mut tp = time.split(':');
    let h: i64 = tp.next()?.parse().ok()?;
    let m: i64 = tp.next()?.parse().ok()?;
    let sec: i64 = tp.next()?.parse().ok()?;
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 || zone.len() != 5 {
        return None;
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zh: i64 = zone.get(1..3)?.parse().ok()?;
    let zm: i64 = zone.get(3..5)?.parse().ok()?;
    let offset = sign * (zh * 3600 + zm * 60);
    let days = crate::utc::days_from_civil(year, month, day);
    let t = days * 86400 + h * 3600 + m * 60 + sec - offset;
    Some(crate::utc::format_utc(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_utc() {
        assert_eq!(
            internal_date_to_utc("17-Jul-1996 02:44:25 -0700").as_deref(),
            Some("1996-07-17T09:44:25Z")
        );
        assert_eq!(
            internal_date_to_utc(" 1-Jan-2024 00:30:00 +0100").as_deref(),
            Some("2023-12-31T23:30:00Z")
        );
        assert_eq!(
            internal_date_to_utc("29-Feb-2000 12:00:00 +0000").as_deref(),
            Some("2000-02-29T12:00:00Z")
        );
        assert_eq!(internal_date_to_utc("yesterday"), None);
        assert_eq!(internal_date_to_utc("17-Foo-1996 02:44:25 -0700"), None);
    }
}
