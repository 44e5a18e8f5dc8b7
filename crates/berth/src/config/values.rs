//! How registry:2 writes values, parsed: booleans, Go durations, numbers, listen addresses. Each parser
//! returns what is allowed as its error, for the caller to put after the key and the value.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Booleans as YAML 1.1 (yaml.v2, which registry:2 uses) and Go's `strconv` spell them.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "t" | "y" => Ok(true),
        "false" | "no" | "off" | "0" | "f" | "n" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// A whole number in `min..=max`.
pub fn parse_int(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let allowed = || format!("expected a whole number from {min} to {max}");
    let n: u64 = s.trim().parse().map_err(|_| allowed())?;
    if n < min || n > max {
        return Err(allowed());
    }
    Ok(n)
}

/// A size in bytes: a whole number with an optional binary unit (`500M`, `50G`, `50GiB`, `1T`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err("expected a size such as 500M, 50G or 1T (binary units)".into()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| "expected a size such as 500M, 50G or 1T (binary units)".into())
}

/// A duration as Go's `time.ParseDuration` reads it (`10s`, `168h`, `1h30m`, `1.5h`, `500ms`), not negative.
/// `0` needs no unit; any other bare number is refused (yaml.v2 would read it as nanoseconds, which is
/// never what was meant).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const ALLOWED: &str =
        "expected a duration such as 10s, 5m, 168h or 1h30m (units ns, us, ms, s, m, h)";
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(ALLOWED.into());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{ALLOWED}; a number needs a unit"))?;
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| ALLOWED.to_string())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(ALLOWED.into()),
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("{ALLOWED}; this one is too long"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// An age as berth's lifecycle sections write it: whole days (`30d`) or a [`parse_duration`] duration.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    match s.trim().strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .map(Duration::from_secs)
            .ok_or_else(|| "too many days".to_string()),
        _ => parse_duration(s).map_err(|e| format!("{e}, or whole days such as 30d")),
    }
}

/// An age as [`parse_age`] reads it: whole days as `30d`, anything else as [`format_duration`].
pub fn format_age(d: Duration) -> String {
    let secs = d.as_secs();
    if secs > 0 && secs.is_multiple_of(86_400) && d.subsec_nanos() == 0 {
        format!("{}d", secs / 86_400)
    } else {
        format_duration(d)
    }
}

/// A duration as registry:2 documents write them: `168h`, `10s`, `1h30m`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d.subsec_nanos() != 0 {
        if d.subsec_millis() * 1_000_000 == d.subsec_nanos() {
            return format!("{}ms", d.as_millis());
        }
        return format!("{}ns", d.as_nanos());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// registry:2's listen address: `host:port`, where an empty host (`:5000`) means every interface.
/// Hosts are IP literals (IPv6 in brackets) or `localhost`; berth resolves no other names, so a
/// listener never ends up on an address nobody expected.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or("expected host:port, or :port for every interface")?;
    let port: u16 = port
        .parse()
        .map_err(|_| "not a valid port (0-65535)".to_string())?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => other.parse().map_err(|_| {
            format!("{other:?} is not an IP address (use an IP, localhost, or :port)")
        })?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// One of `allowed` (compared without case); the error lists them.
pub fn parse_choice<'a>(s: &str, allowed: &[&'a str]) -> Result<&'a str, String> {
    let lower = s.trim().to_ascii_lowercase();
    allowed
        .iter()
        .find(|a| **a == lower)
        .copied()
        .ok_or_else(|| format!("expected one of {}", allowed.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_writes_them() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("10s", 10_000_000_000),
            ("168h", 168 * 3_600_000_000_000),
            ("24h", 24 * 3_600_000_000_000),
            ("5m", 300_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("500ms", 500_000_000),
            ("300us", 300_000),
            ("10µs", 10_000),
            ("7ns", 7),
            ("2h45m30.5s", 9_930_500_000_000),
            ("+3s", 3_000_000_000),
        ];
        for (text, nanos) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_nanos(*nanos)),
                "{text}"
            );
        }
        for bad in [
            "", "10", "-5s", "5 s", "s", "5d", "1h-5m", "abc", "1..5s", "1e3s", "5sm",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
    }

    #[test]
    fn durations_print_as_written() {
        for text in ["168h", "24h", "10s", "5m", "1h30m", "500ms", "0s", "2h0m1s"] {
            let d = parse_duration(text).unwrap();
            let printed = format_duration(d);
            assert_eq!(parse_duration(&printed), Ok(d), "{text} -> {printed}");
        }
        assert_eq!(format_duration(Duration::from_secs(168 * 3600)), "168h");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(3601)), "1h1s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(
            format_duration(Duration::from_nanos(1_500_000_001)),
            "1500000001ns"
        );
    }

    #[test]
    fn booleans_of_yaml_and_go() {
        for t in ["true", "True", "TRUE", "yes", "on", "1", "t", "y"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "FALSE", "no", "off", "0", "f", "n"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["2", "maybe", ""] {
            assert!(parse_bool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_addresses() {
        let cases: &[(&str, Option<&str>)] = &[
            (":5000", Some("0.0.0.0:5000")),
            ("0.0.0.0:80", Some("0.0.0.0:80")),
            ("127.0.0.1:0", Some("127.0.0.1:0")),
            ("localhost:5001", Some("127.0.0.1:5001")),
            ("[::1]:5000", Some("[::1]:5000")),
            ("example.com:5000", None),
            ("5000", None),
            (":99999", None),
            (":port", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = parse_addr(text).ok().map(|a| a.to_string());
            assert_eq!(got.as_deref(), *want, "{text:?}");
        }
        assert_eq!(
            parse_addr("localhost:99999").unwrap_err(),
            "not a valid port (0-65535)"
        );
    }

    #[test]
    fn numbers_and_choices() {
        assert_eq!(parse_int("3", 0, 10), Ok(3));
        assert!(parse_int("11", 0, 10).unwrap_err().contains("0 to 10"));
        assert!(parse_int("-1", 0, 10).is_err());
        assert!(parse_int("1.5", 0, 10).is_err());
        assert_eq!(parse_choice("JSON", &["text", "json"]), Ok("json"));
        assert_eq!(
            parse_choice("xml", &["text", "json"]).unwrap_err(),
            "expected one of text, json"
        );
    }
}
