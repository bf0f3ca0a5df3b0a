//! Vocabulary words that belong to a neighbouring value: month and weekday
//! names, time zone abbreviations, and units (`Sat Jul  9 12:16:49 PDT`,
//! `18.4 KB`, `4.9 MiB/s`). The masker masks them only next to a masked
//! value, so `May not be null` and `UTC offset` keep their words.
//!
//! The lists are short and well known (English calendar names, common zone
//! abbreviations, SI/IEC size and time units): they describe how software
//! in general prints values, not any one log source.

/// English month and weekday names (abbreviated or full, capitalised or upper
/// case). They are masked only next to other date parts, see the masker.
pub(crate) fn is_date_name(w: &[u8]) -> bool {
    if w.len() < 3 || w.len() > 9 || !w[0].is_ascii_uppercase() {
        return false;
    }
    if w.len() <= 4 && w[1].is_ascii_uppercase() {
        // Upper-case spelling ("JUN", "FRI", "SEPT").
        let mut lower = [0u8; 4];
        lower[..w.len()].copy_from_slice(w);
        lower[1..w.len()].make_ascii_lowercase();
        return is_date_name(&lower[..w.len()]) && w.iter().all(u8::is_ascii_uppercase);
    }
    matches!(
        w,
        b"Jan"
            | b"Feb"
            | b"Mar"
            | b"Apr"
            | b"May"
            | b"Jun"
            | b"Jul"
            | b"Aug"
            | b"Sep"
            | b"Sept"
            | b"Oct"
            | b"Nov"
            | b"Dec"
            | b"January"
            | b"February"
            | b"March"
            | b"April"
            | b"June"
            | b"July"
            | b"August"
            | b"September"
            | b"October"
            | b"November"
            | b"December"
            | b"Mon"
            | b"Tue"
            | b"Tues"
            | b"Wed"
            | b"Thu"
            | b"Thur"
            | b"Thurs"
            | b"Fri"
            | b"Sat"
            | b"Sun"
            | b"Monday"
            | b"Tuesday"
            | b"Wednesday"
            | b"Thursday"
            | b"Friday"
            | b"Saturday"
            | b"Sunday"
    )
}

/// Time zone abbreviations printed after a clock time (`10:00:00 UTC`).
pub(crate) fn is_zone(w: &[u8]) -> bool {
    matches!(
        w,
        b"UTC"
            | b"GMT"
            | b"PST"
            | b"PDT"
            | b"MST"
            | b"MDT"
            | b"CST"
            | b"CDT"
            | b"EST"
            | b"EDT"
            | b"HST"
            | b"CET"
            | b"CEST"
            | b"EET"
            | b"EEST"
            | b"WET"
            | b"BST"
            | b"IST"
            | b"JST"
            | b"KST"
            | b"HKT"
            | b"SGT"
            | b"AEST"
            | b"AEDT"
            | b"NZST"
            | b"NZDT"
            | b"MSK"
    )
}

/// Units printed after a number (`18.4 KB`, `<1 sec`, `300 ms`, `42 bytes`).
/// A unit right after a masked number is part of the value: masking it keeps
/// `5 bytes (5.0 KB)` and `5 bytes` in one template.
pub(crate) fn is_unit(w: &[u8]) -> bool {
    // Rates: `MiB/s`, `KB/sec`, `req/s`, `ops/s`.
    if let Some(per) = w.strip_suffix(b"/s").or_else(|| w.strip_suffix(b"/sec")) {
        return matches!(per, b"req" | b"ops" | b"msg" | b"msgs") || is_unit(per);
    }
    matches!(
        w,
        b"B" | b"KB"
            | b"kB"
            | b"MB"
            | b"GB"
            | b"TB"
            | b"PB"
            | b"KiB"
            | b"MiB"
            | b"GiB"
            | b"TiB"
            | b"bytes"
            | b"byte"
            | b"kb"
            | b"mb"
            | b"gb"
            | b"ns"
            | b"us"
            | b"\xc2\xb5s"
            | b"ms"
            | b"nsec"
            | b"usec"
            | b"msec"
            | b"millis"
            | b"milliseconds"
            | b"microseconds"
            | b"nanoseconds"
            | b"bps"
            | b"Kbps"
            | b"kbps"
            | b"Mbps"
            | b"Gbps"
            | b"s"
            | b"sec"
            | b"secs"
            | b"second"
            | b"seconds"
            | b"min"
            | b"mins"
            | b"minute"
            | b"minutes"
            | b"hr"
            | b"hrs"
            | b"hour"
            | b"hours"
            | b"day"
            | b"days"
            | b"%"
            | b"Hz"
            | b"KHz"
            | b"kHz"
            | b"MHz"
            | b"GHz"
    )
}
