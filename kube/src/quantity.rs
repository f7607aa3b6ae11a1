//! Kubernetes resource quantities ("500m", "128Mi", "1.5", "2e3").
//!
//! Grammar (as the Kubernetes API defines it):
//!
//! ```text
//! quantity        ::= signedNumber suffix
//! signedNumber    ::= number | sign number          sign ::= "+" | "-"
//! number          ::= digits | digits "." digits | digits "." | "." digits
//! suffix          ::= binarySI | decimalExponent | decimalSI
//! binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! decimalSI       ::= n | u | m | "" | k | M | G | T | P | E
//! decimalExponent ::= ("e" | "E") sign? digits
//! ```
//!
//! Values are kept exactly, in nano-units (the finest precision the `n` suffix
//! can express), so comparing a request with a limit never goes through
//! floating point. Finer fractions are rounded away from zero, as Kubernetes
//! rounds them up.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;

/// Kubernetes caps quantities at 2^63-1 units; podlab refuses anything larger
/// instead of silently capping, since such a limit can only be a typo.
const MAX_NANOS: i128 = i64::MAX as i128 * NANO;

const SUFFIXES: &str =
    "Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E or an exponent such as e3";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("quantity \"\" is empty")]
    Empty,
    #[error("quantity {input:?} {reason}")]
    Format { input: String, reason: String },
    #[error("quantity {input:?} is larger than 2^63-1 in magnitude")]
    OutOfRange { input: String },
}

impl Error {
    /// What is wrong, as a clause without the quantity itself ("has more
    /// than one decimal point"), for messages that already show the value.
    pub fn reason(&self) -> String {
        match self {
            Error::Empty => "is empty".to_string(),
            Error::Format { reason, .. } => reason.clone(),
            Error::OutOfRange { .. } => "is larger than 2^63-1 in magnitude".to_string(),
        }
    }
}

/// A parsed quantity: its exact value plus the text it came from.
#[derive(Debug, Clone)]
pub struct Quantity {
    nanos: i128,
    text: String,
}

impl Quantity {
    /// The value in units, rounded away from zero (Kubernetes' `Value()`):
    /// `0.5` → 1, `1.5Ki` → 1536, `-0.5` → -1.
    pub fn value(&self) -> i64 {
        self.scaled(NANO)
    }

    /// The value in thousandths, rounded away from zero (Kubernetes'
    /// `MilliValue()`): `0.1` → 100, `1n` → 1.
    pub fn milli_value(&self) -> i64 {
        self.scaled(1_000_000)
    }

    /// The exact value in billionths.
    pub fn nano_value(&self) -> i128 {
        self.nanos
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whether the value is a whole number of units (no fraction left).
    pub fn is_whole(&self) -> bool {
        self.nanos % NANO == 0
    }

    /// The text as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn scaled(&self, per: i128) -> i64 {
        let whole = self.nanos / per;
        let rounded = if self.nanos % per == 0 {
            whole
        } else {
            whole + self.nanos.signum()
        };
        // MAX_NANOS bounds `nanos`, so the quotient always fits.
        i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
    }
}

/// Equality is by value: `1Gi == 1024Mi`.
impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Quantity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        parse(s)
    }
}

/// Parses a quantity following the Kubernetes grammar (see the module docs).
pub fn parse(s: &str) -> Result<Quantity, Error> {
    if s.is_empty() {
        return Err(Error::Empty);
    }
    let bad = |reason: String| Error::Format {
        input: s.to_string(),
        reason,
    };
    if s.chars().any(char::is_whitespace) {
        return Err(bad("contains whitespace".to_string()));
    }

    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    if !number.bytes().any(|b| b.is_ascii_digit()) {
        return Err(bad("does not start with a number".to_string()));
    }
    let (int_digits, frac_digits) = match number.split_once('.') {
        None => (number, ""),
        Some((_, frac)) if frac.contains('.') => {
            return Err(bad("has more than one decimal point".to_string()))
        }
        Some(parts) => parts,
    };

    // The value is digits × 10^exp10 × 1024^pow1024.
    let (mut exp10, pow1024): (i64, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        _ => (parse_exponent(suffix).map_err(bad)?, 0),
    };

    // Significant digits only: leading zeros add nothing and trailing zeros of
    // the fraction only shift the exponent.
    let frac = frac_digits.trim_end_matches('0');
    let digits = format!("{int_digits}{frac}");
    let digits = digits.trim_start_matches('0');
    exp10 -= frac.len() as i64;

    let out_of_range = || Error::OutOfRange {
        input: s.to_string(),
    };
    let nanos = if digits.is_empty() {
        0
    } else {
        let mantissa: u128 = digits.parse().map_err(|_| out_of_range())?;
        let scaled = 1024u128
            .checked_pow(pow1024)
            .and_then(|m| mantissa.checked_mul(m))
            .ok_or_else(out_of_range)?;
        let shift = exp10 + 9; // to nano-units
        let magnitude = if shift >= 0 {
            u32::try_from(shift)
                .ok()
                .and_then(|e| 10u128.checked_pow(e))
                .and_then(|m| scaled.checked_mul(m))
                .ok_or_else(out_of_range)?
        } else {
            match u32::try_from(-shift)
                .ok()
                .and_then(|e| 10u128.checked_pow(e))
            {
                // Round what is left below a nano-unit up, away from zero.
                Some(div) => scaled.div_ceil(div),
                // A divisor beyond u128 dwarfs any mantissa: a tiny non-zero value.
                None => 1,
            }
        };
        i128::try_from(magnitude).map_err(|_| out_of_range())?
    };
    if nanos > MAX_NANOS {
        return Err(out_of_range());
    }
    Ok(Quantity {
        nanos: if negative { -nanos } else { nanos },
        text: s.to_string(),
    })
}

/// Parses the `e3` / `E-2` suffix form into a power of ten.
fn parse_exponent(suffix: &str) -> Result<i64, String> {
    let unknown = || format!("has an unknown suffix {suffix:?} (expected {SUFFIXES})");
    let Some(exp) = suffix.strip_prefix(['e', 'E']) else {
        return Err(if suffix.contains('.') {
            "has more than one decimal point".to_string()
        } else {
            unknown()
        });
    };
    let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown());
    }
    // Anything past a few dozen digits is out of range either way; clamping
    // keeps absurd exponents from overflowing the arithmetic.
    let magnitude: i64 = digits.parse().unwrap_or(i64::from(i32::MAX)).min(1000);
    Ok(if exp.starts_with('-') {
        -magnitude
    } else {
        magnitude
    })
}

/// A memory or storage quantity in bytes, fractions of a byte rounded up
/// (like Kubernetes' `Value()`): `"1Gi"` → 1073741824, `"1.5"` → 2.
pub fn memory_bytes(s: &str) -> Result<i64, Error> {
    parse(s).map(|q| q.value())
}

/// Bytes as Kubernetes prints a binary quantity: the largest binary suffix
/// that divides them (`31457280` → `30Mi`), else plain digits.
pub fn format_bytes(n: i64) -> String {
    for (shift, suffix) in [
        (60, "Ei"),
        (50, "Pi"),
        (40, "Ti"),
        (30, "Gi"),
        (20, "Mi"),
        (10, "Ki"),
    ] {
        if n != 0 && n % (1i64 << shift) == 0 {
            return format!("{}{suffix}", n >> shift);
        }
    }
    n.to_string()
}

/// A CPU quantity in millicores, finer fractions rounded up (like
/// Kubernetes' `MilliValue()`): `"0.5"` → 500, `"250m"` → 250, `"1u"` → 1.
pub fn cpu_millis(s: &str) -> Result<i64, Error> {
    parse(s).map(|q| q.milli_value())
}

/// A count of things, such as podlab's pod-level `pids` limit: a whole,
/// non-negative number. Any suffix of the grammar is fine as long as the
/// value is whole (`"64"`, `"1k"` → 1000, `"2e3"` → 2000, `"1Ki"` → 1024),
/// as manifest validation accepts it; a fraction (`"1.5"`, `"500m"`) or a
/// negative number is refused, not rounded like a byte count: half a
/// process cannot be what was meant.
pub fn count(s: &str) -> Result<i64, Error> {
    let q = parse(s)?;
    let bad = |reason: &str| Error::Format {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    if q.is_negative() {
        return Err(bad("is negative"));
    }
    if !q.is_whole() {
        return Err(bad("is not a whole number"));
    }
    Ok(q.value())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("0", 0)]
    #[case("1", 1_000_000_000)]
    #[case("+1", 1_000_000_000)]
    #[case("-1", -1_000_000_000)]
    #[case("1.5", 1_500_000_000)]
    #[case("1.", 1_000_000_000)]
    #[case(".5", 500_000_000)]
    #[case("-.5", -500_000_000)]
    #[case("007", 7_000_000_000)]
    #[case("1.500", 1_500_000_000)]
    #[case("1n", 1)]
    #[case("1u", 1_000)]
    #[case("100m", 100_000_000)]
    #[case("1k", 1_000_000_000_000)]
    #[case("1M", 1_000_000_000_000_000)]
    #[case("1G", 1_000_000_000 * 1_000_000_000)]
    #[case("1T", 1_000_000_000_000 * 1_000_000_000)]
    #[case("1P", 1_000_000_000_000_000 * 1_000_000_000)]
    #[case("1E", 1_000_000_000_000_000_000 * 1_000_000_000)]
    #[case("1Ki", 1024 * 1_000_000_000)]
    #[case("1Mi", 1024 * 1024 * 1_000_000_000)]
    #[case("1.5Gi", 1536 * 1024 * 1024 * 1_000_000_000)]
    #[case("1Ti", (1_i128 << 40) * 1_000_000_000)]
    #[case("1Pi", (1_i128 << 50) * 1_000_000_000)]
    #[case("1Ei", (1_i128 << 60) * 1_000_000_000)]
    #[case("1e3", 1_000_000_000_000)]
    #[case("1E3", 1_000_000_000_000)]
    #[case("1e+3", 1_000_000_000_000)]
    #[case("5E-2", 50_000_000)]
    #[case("0.1n", 1)] // below a nano-unit: rounded up
    #[case("-0.1n", -1)] // ...away from zero
    #[case("0.000000000000000000000000000000000000000000001", 1)]
    #[case("0Ei", 0)]
    #[case("0e99999", 0)]
    fn parses_exact_values(#[case] input: &str, #[case] nanos: i128) {
        let q = parse(input).unwrap();
        assert_eq!(q.nano_value(), nanos, "{input}");
        assert_eq!(q.as_str(), input);
    }

    #[rstest]
    #[case("1.2.3", "has more than one decimal point")]
    #[case("12x", "has an unknown suffix \"x\"")]
    #[case("12K", "has an unknown suffix \"K\"")] // only the binary Ki is upper case
    #[case("12ki", "has an unknown suffix \"ki\"")]
    #[case("12e", "has an unknown suffix \"e\"")]
    #[case("12e+", "has an unknown suffix \"e+\"")]
    #[case("12e1.5", "has an unknown suffix \"e1.5\"")]
    #[case("12Mii", "has an unknown suffix \"Mii\"")]
    #[case("Mi", "does not start with a number")]
    #[case(".", "does not start with a number")]
    #[case("-", "does not start with a number")]
    #[case("--1", "does not start with a number")]
    #[case("+-1", "does not start with a number")]
    #[case("1 Gi", "contains whitespace")]
    #[case(" 1", "contains whitespace")]
    #[case("1\n", "contains whitespace")]
    #[case("", "is empty")]
    fn refuses_malformed(#[case] input: &str, #[case] reason: &str) {
        let err = parse(input).unwrap_err();
        assert!(
            err.reason().starts_with(reason),
            "{input:?}: got {:?}",
            err.reason()
        );
        assert!(err.to_string().contains(&format!("{input:?}")), "{err}");
    }

    #[rstest]
    #[case("10E")] // 10^19 > 2^63-1
    #[case("8Ei")]
    #[case("1e19")]
    #[case("1e400")]
    #[case("99999999999999999999999999999999999999999")]
    #[case("-9223372036854775808")] // 2^63, one past the cap
    fn refuses_out_of_range(#[case] input: &str) {
        assert_eq!(
            parse(input).unwrap_err(),
            Error::OutOfRange {
                input: input.to_string()
            }
        );
    }

    #[test]
    fn bytes_print_with_the_largest_binary_suffix() {
        assert_eq!(format_bytes(30 << 20), "30Mi");
        assert_eq!(format_bytes(3 << 30), "3Gi");
        assert_eq!(format_bytes(1536), "1536");
        assert_eq!(format_bytes(1000), "1000");
        assert_eq!(format_bytes(0), "0");
    }

    #[test]
    fn the_cap_itself_is_accepted() {
        assert_eq!(parse("9223372036854775807").unwrap().value(), i64::MAX);
        assert_eq!(parse("7.99Ei").unwrap().value(), 9_211_842_821_808_707_339);
    }

    #[rstest]
    #[case("1Gi", 1 << 30)]
    #[case("128Mi", 128 << 20)]
    #[case("1.5", 2)] // a fraction of a byte rounds up
    #[case("1001m", 2)]
    #[case("1000m", 1)]
    #[case("1k", 1000)]
    #[case("0.5Ki", 512)]
    #[case("1e3", 1000)]
    #[case("-1Gi", -(1 << 30))] // parses; validation refuses it
    #[case("-1.5", -2)]
    fn memory_in_bytes(#[case] input: &str, #[case] bytes: i64) {
        assert_eq!(memory_bytes(input).unwrap(), bytes);
    }

    #[rstest]
    #[case("1", 1000)]
    #[case("0.5", 500)]
    #[case("250m", 250)]
    #[case("0.0001", 1)] // a fraction of a millicore rounds up
    #[case("1u", 1)]
    #[case("1500000u", 1500)]
    #[case("2e-3", 2)]
    #[case("-100m", -100)]
    fn cpu_in_millicores(#[case] input: &str, #[case] millis: i64) {
        assert_eq!(cpu_millis(input).unwrap(), millis);
    }

    #[rstest]
    #[case("64", 64)]
    #[case("0", 0)]
    #[case("+7", 7)]
    #[case("1k", 1000)] // a decimal SI suffix, as Kubernetes reads it
    #[case("2e3", 2000)]
    #[case("1Ki", 1024)]
    #[case("1.0", 1)]
    #[case("2000m", 2)] // whole, however written
    #[case("0.5k", 500)]
    #[case("9223372036854775807", i64::MAX)]
    fn counts(#[case] input: &str, #[case] n: i64) {
        assert_eq!(count(input).unwrap(), n);
    }

    #[rstest]
    #[case("1.5", "is not a whole number")]
    #[case("500m", "is not a whole number")]
    #[case("1n", "is not a whole number")]
    #[case("1e-1", "is not a whole number")]
    #[case("-1", "is negative")]
    #[case("-0.5", "is negative")]
    fn refuses_fractional_or_negative_counts(#[case] input: &str, #[case] reason: &str) {
        let err = count(input).unwrap_err();
        assert_eq!(err.reason(), reason, "{input}");
        assert!(err.to_string().contains(&format!("{input:?}")), "{err}");
    }

    #[test]
    fn helpers_pass_parse_errors_through() {
        assert!(matches!(memory_bytes("1 Gi"), Err(Error::Format { .. })));
        assert!(matches!(cpu_millis(""), Err(Error::Empty)));
        assert!(matches!(count("12x"), Err(Error::Format { .. })));
        assert!(matches!(count("1e19"), Err(Error::OutOfRange { .. })));
    }

    #[test]
    fn compares_by_value_not_by_text() {
        let q = |s: &str| parse(s).unwrap();
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1"), q("1000m"));
        assert!(q("2Gi") > q("1Gi"));
        assert!(q("1G") < q("1Gi"));
        assert!(q("100m") < q("0.2"));
        assert!(q("-1") < q("0"));
        assert!(q("-1").is_negative() && !q("0").is_negative());
        assert!(q("0.0").is_zero());
        assert!(q("64").is_whole() && q("1k").is_whole() && !q("1.5").is_whole());
    }

    #[test]
    fn displays_the_original_text() {
        assert_eq!(parse("1.50Gi").unwrap().to_string(), "1.50Gi");
        assert_eq!("2e3".parse::<Quantity>().unwrap().value(), 2000);
    }
}
