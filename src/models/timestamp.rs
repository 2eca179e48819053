//! RFC 3339 timestamps for the JSON the API returns, written digit by digit. Byte for byte what
//! chrono's serde output is (`SecondsFormat::AutoSi`, `Z`), at a fraction of its cost: a user
//! object carries a dozen timestamps, and going through `fmt::Display` made them a fifth of
//! `GET /user`'s instructions (bench/analysis.md).

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// `#[serde(serialize_with = "timestamp::one")]`
pub fn one<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match write(t, &mut buf) {
        Some(text) => s.serialize_str(text),
        // Years outside 0..=9999 and leap seconds: chrono's own format.
        None => serde::Serialize::serialize(t, s),
    }
}

/// `#[serde(serialize_with = "timestamp::optional")]`
pub fn optional<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => one(t, s),
        None => s.serialize_none(),
    }
}

fn write<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; 30]) -> Option<&'b str> {
    let year = t.year();
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    let fraction = match nanos {
        0 => 0,
        n if n % 1_000_000 == 0 => 3,
        n if n % 1_000 == 0 => 6,
        _ => 9,
    };
    let mut at = 0;
    let mut put = |before: Option<u8>, value: u32, digits: u32| {
        if let Some(sep) = before {
            buf[at] = sep;
            at += 1;
        }
        let mut div = 10u32.pow(digits - 1);
        for _ in 0..digits {
            buf[at] = b'0' + (value / div % 10) as u8;
            div /= 10;
            at += 1;
        }
    };
    // YYYY-MM-DDTHH:MM:SS[.fff[fff[fff]]]Z
    put(None, year as u32, 4);
    put(Some(b'-'), t.month(), 2);
    put(Some(b'-'), t.day(), 2);
    put(Some(b'T'), t.hour(), 2);
    put(Some(b':'), t.minute(), 2);
    put(Some(b':'), t.second(), 2);
    if fraction > 0 {
        put(Some(b'.'), nanos / 10u32.pow(9 - fraction), fraction);
    }
    buf[at] = b'Z';
    std::str::from_utf8(&buf[..=at]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(t: DateTime<Utc>) -> String {
        #[derive(serde::Serialize)]
        struct W(#[serde(serialize_with = "one")] DateTime<Utc>);
        serde_json::to_string(&W(t)).unwrap()
    }

    #[test]
    fn matches_chrono_for_every_fraction_width_and_the_edges() {
        let base = DateTime::from_timestamp(1_764_876_126, 0).unwrap();
        let mut cases = vec![
            base,
            DateTime::from_timestamp(0, 0).unwrap(),
            DateTime::from_timestamp(-62_167_219_200, 0).unwrap(), // 0000-01-01
            DateTime::from_timestamp(253_402_300_799, 999_999_999).unwrap(), // 9999-12-31
            DateTime::from_timestamp(253_402_300_800, 0).unwrap(), // year 10000: chrono's way
            DateTime::from_timestamp(-62_167_219_201, 0).unwrap(), // year -1
        ];
        for nanos in [
            1,
            10,
            1_000,
            120_000,
            311_878_000,
            5_000_000,
            100_000_000,
            999_999_999,
        ] {
            cases.push(base + chrono::Duration::nanoseconds(nanos));
        }
        for t in cases {
            assert_eq!(ours(t), serde_json::to_string(&t).unwrap(), "{t:?}");
        }
    }
}
