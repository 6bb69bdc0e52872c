//! Number parsing and formatting shared by the wire formats.
//!
//! Floats parse exactly as Prometheus parses them: Go's `strconv.ParseFloat(s, 64)` after
//! refusing `p`, `P` and `_` (`model/textparse`, `parseFloat`). That grammar is an optional sign,
//! decimal digits with an optional point and an optional exponent, or `Inf`/`Infinity`
//! (case-insensitive, optionally signed) or `NaN` (case-insensitive, unsigned). A finite
//! spelling whose value is beyond `f64::MAX` is an error (Go's `ErrRange`); values below the
//! smallest subnormal round to zero.
//!
//! Decimal strings whose digits form an integer mantissa up to 2^53 with a decimal exponent
//! within ±22 take Clinger's exact fast path (one multiplication or division
//! of two exactly representable floats, which IEEE 754 rounds correctly); everything else goes
//! to the standard library's correctly rounded parser (Eisel–Lemire with a big-number
//! fallback). Both give the nearest double, as Go does.

/// The bits of the NaN that decoders return for `NaN`: Go's `math.NaN()` (`0x7FF8000000000001`),
/// so that a decoded sample is bit-identical to what Prometheus stores for the same text.
pub const PARSED_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// [`PARSED_NAN_BITS`] as a float.
pub const PARSED_NAN: f64 = f64::from_bits(PARSED_NAN_BITS);

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// Parses a float with Go's `strconv.ParseFloat` grammar and rounding (see the module docs).
/// Returns `None` when the text is not a float or a finite spelling overflows.
#[inline]
pub fn parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if let Some(v) = fast_path(b) {
        return Some(v);
    }
    slow_path(s)
}

#[inline]
fn fast_path(b: &[u8]) -> Option<f64> {
    let mut i = 0;
    let neg = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    // At most 19 digits fit a u64 without overflow; longer mantissas take the slow path.
    let mut mant: u64 = 0;
    let mut ndigits = 0usize;
    let mut exp: i32 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        mant = mant.wrapping_mul(10).wrapping_add((b[i] - b'0') as u64);
        i += 1;
        ndigits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            mant = mant.wrapping_mul(10).wrapping_add((b[i] - b'0') as u64);
            exp -= 1;
            i += 1;
            ndigits += 1;
        }
    }
    if ndigits == 0 || ndigits > 19 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        let eneg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut e: i32 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start >= 4 {
                return None;
            }
            e = e * 10 + (b[i] - b'0') as i32;
            i += 1;
        }
        if i == start {
            return None;
        }
        exp += if eneg { -e } else { e };
    }
    if i != b.len() || mant > (1u64 << 53) {
        return None;
    }
    let m = mant as f64;
    let v = if exp == 0 {
        m
    } else if (1..=22).contains(&exp) {
        m * POW10[exp as usize]
    } else if (-22..0).contains(&exp) {
        m / POW10[(-exp) as usize]
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

#[cold]
fn slow_path(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.is_empty() || b.iter().any(|&c| c == b'p' || c == b'P' || c == b'_') {
        return None;
    }
    let unsigned = match b[0] {
        b'+' | b'-' => &s[1..],
        _ => s,
    };
    if unsigned.eq_ignore_ascii_case("nan") {
        // Go accepts no sign on NaN.
        return if unsigned.len() == s.len() { Some(PARSED_NAN) } else { None };
    }
    let is_inf_spelling = unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity");
    let v: f64 = s.parse().ok()?;
    if v.is_infinite() && !is_inf_spelling {
        return None; // Go: ErrRange
    }
    if v.is_nan() {
        return Some(PARSED_NAN);
    }
    Some(v)
}

/// Parses a signed decimal integer (`strconv.ParseInt(s, 10, 64)` grammar: optional sign,
/// at least one digit).
#[inline]
pub fn parse_i64(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    let mut mag: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        mag = mag.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    signed(neg, mag as u128)
}

#[inline]
fn signed(neg: bool, mag: u128) -> Option<i64> {
    if neg { i64::try_from(-(mag as i128)).ok() } else { i64::try_from(mag).ok() }
}

/// Parses a timestamp in seconds (OpenMetrics `timestamp`, StatsD/JSON seconds) into
/// milliseconds.
///
/// `[sign] digits [. digits]` is converted exactly from its decimal digits: `1795264944.510`
/// gives `1795264944510`; fractional digits after the third are truncated toward zero (the
/// model has millisecond resolution). Other float spellings (exponents) go through `f64` and
/// are truncated toward zero as Prometheus does (`int64(ts * 1000)`). Returns `None` for a
/// non-number, NaN, infinities and values outside `i64` milliseconds.
#[inline]
pub fn parse_seconds_to_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, rest) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let mut i = 0;
    let mut secs: u64 = 0;
    while i < rest.len() && rest[i].is_ascii_digit() {
        secs = secs.wrapping_mul(10).wrapping_add((rest[i] - b'0') as u64);
        i += 1;
    }
    let int_digits = i;
    if int_digits > 18 {
        // Possibly overflowed: more than 18 digits of seconds is beyond i64 milliseconds
        // unless it has leading zeros, which the f64 route below handles.
        return slow_seconds(s);
    }
    let mut frac_ms: u64 = 0;
    let mut frac_digits = 0usize;
    if i < rest.len() && rest[i] == b'.' {
        i += 1;
        while i < rest.len() && rest[i].is_ascii_digit() {
            if frac_digits < 3 {
                frac_ms = frac_ms * 10 + (rest[i] - b'0') as u64;
            }
            frac_digits += 1;
            i += 1;
        }
    }
    if i == rest.len() && int_digits + frac_digits > 0 {
        for _ in frac_digits..3 {
            frac_ms *= 10;
        }
        let mag = (secs as u128) * 1000 + frac_ms as u128;
        return signed(neg, mag);
    }
    slow_seconds(s)
}

/// Exponent forms and the like: through `f64`, truncated toward zero.
#[cold]
fn slow_seconds(s: &str) -> Option<i64> {
    let f = parse_float(s)?;
    if !f.is_finite() {
        return None;
    }
    let ms = (f * 1000.0).trunc();
    if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&ms) { Some(ms as i64) } else { None }
}

/// Appends a float the way Prometheus writes it: `NaN`, `+Inf`, `-Inf`, integers below 2^53
/// without a fraction, everything else in the shortest form that parses back to the same
/// bits.
#[inline]
pub fn write_float(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v == v.trunc() && v.abs() < 9.007_199_254_740_992e15 && !(v == 0.0 && v.is_sign_negative()) {
        let _ = write!(out, "{}", v as i64); // ok: writing to a Vec cannot fail
    } else {
        let _ = write!(out, "{v:?}"); // ok: writing to a Vec cannot fail
    }
}

/// Appends milliseconds as seconds with exactly three decimals (`1795264944.510`).
#[inline]
pub fn write_ms_as_seconds(out: &mut Vec<u8>, ms: i64) {
    use std::io::Write;
    let mag = ms.unsigned_abs();
    let sign = if ms < 0 { "-" } else { "" };
    let _ = write!(out, "{sign}{}.{:03}", mag / 1000, mag % 1000); // ok: Vec write cannot fail
}

/// Appends a decimal integer.
#[inline]
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    use std::io::Write;
    let _ = write!(out, "{v}"); // ok: writing to a Vec cannot fail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_match_go_grammar() {
        assert_eq!(parse_float("3.3178e-05"), Some(3.3178e-05));
        assert_eq!(parse_float("1"), Some(1.0));
        assert_eq!(parse_float("-0").map(f64::to_bits), Some((-0.0f64).to_bits()));
        assert_eq!(parse_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_float("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float("inf"), Some(f64::INFINITY));
        assert_eq!(parse_float("Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_float("NaN").map(f64::to_bits), Some(PARSED_NAN_BITS));
        assert_eq!(parse_float("nan").map(f64::to_bits), Some(PARSED_NAN_BITS));
        assert_eq!(parse_float("-NaN"), None);
        assert_eq!(parse_float("1e400"), None);
        assert_eq!(parse_float("1e-400"), Some(0.0));
        assert_eq!(parse_float("0x1p-2"), None);
        assert_eq!(parse_float("1_000"), None);
        assert_eq!(parse_float(""), None);
        assert_eq!(parse_float("."), None);
        assert_eq!(parse_float("1."), Some(1.0));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("1e"), None);
        assert_eq!(parse_float(" 1"), None);
        assert_eq!(parse_float("9007199254740993"), Some(9007199254740992.0));
        assert_eq!(parse_float("0.1"), Some(0.1));
        assert_eq!(parse_float("123456789012345678901234567890"), Some(1.2345678901234568e29));
    }

    #[test]
    fn fast_path_agrees_with_std() {
        for s in ["0.000033178", "12345.678", "1e22", "4503599627370497e-22", "17.5e3", "-2.5E-3", "9e-22"] {
            assert_eq!(parse_float(s).map(f64::to_bits), s.parse::<f64>().ok().map(f64::to_bits), "{s}");
        }
    }

    #[test]
    fn seconds_to_ms_is_exact() {
        assert_eq!(parse_seconds_to_ms("1795264944.510"), Some(1795264944510));
        assert_eq!(parse_seconds_to_ms("1795264944.5"), Some(1795264944500));
        assert_eq!(parse_seconds_to_ms("1795264944"), Some(1795264944000));
        assert_eq!(parse_seconds_to_ms("1795264944.5109"), Some(1795264944510));
        assert_eq!(parse_seconds_to_ms("-1.5"), Some(-1500));
        assert_eq!(parse_seconds_to_ms("1.5e3"), Some(1_500_000));
        assert_eq!(parse_seconds_to_ms("-9223372036854775.808"), Some(i64::MIN));
        assert_eq!(parse_seconds_to_ms("9223372036854775.808"), None);
        assert_eq!(parse_seconds_to_ms("NaN"), None);
        assert_eq!(parse_seconds_to_ms("."), None);
        assert_eq!(parse_seconds_to_ms(""), None);
    }

    #[test]
    fn formatting_round_trips() {
        for v in [0.0, -0.0, 1.0, 0.1, 1e300, -1e-300, 3.3178e-05, 9007199254740993.0, 123.0, f64::MIN_POSITIVE] {
            let mut out = Vec::new();
            write_float(&mut out, v);
            let s = std::str::from_utf8(&out).unwrap();
            assert_eq!(parse_float(s).unwrap().to_bits(), v.to_bits(), "{s}");
        }
        let mut out = Vec::new();
        write_ms_as_seconds(&mut out, i64::MIN);
        assert_eq!(parse_seconds_to_ms(std::str::from_utf8(&out).unwrap()), Some(i64::MIN));
    }
}
