//! Resource quantities: CPU and memory requests as Kubernetes writes them, read and written.

use serde::{Deserialize, Serialize};

use super::*;

/// CPU and memory requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
}

impl Resources {
    /// These requests `count` times over.
    pub fn times(self, count: i32) -> Self {
        Self {
            cpu_millis: self.cpu_millis.saturating_mul(i64::from(count)),
            memory_bytes: self.memory_bytes.saturating_mul(i64::from(count)),
        }
    }

    /// Sum of two requests.
    pub fn plus(self, other: Self) -> Self {
        Self {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }

    /// Whether nothing is requested.
    pub fn is_zero(self) -> bool {
        self.cpu_millis == 0 && self.memory_bytes == 0
    }
}

impl std::fmt::Display for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CPU, {} memory",
            format_cpu(self.cpu_millis),
            format_memory(self.memory_bytes)
        )
    }
}

/// CPU millicores as Kubernetes writes them: `250m`, `2`.
pub fn format_cpu(millis: i64) -> String {
    if millis % 1000 == 0 {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

/// Memory bytes in the largest binary unit that divides them: `128Mi`, `1536Ki`.
pub fn format_memory(bytes: i64) -> String {
    for (suffix, factor) in [
        ("Ti", 1i64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes != 0 && bytes % factor == 0 {
            return format!("{}{suffix}", bytes / factor);
        }
    }
    bytes.to_string()
}

/// A parsed quantity: `digits / 10^scale * base^exponent`, exact.
pub(super) struct Quantity {
    digits: i128,
    decimal_places: u32,
    base: i128,
    exponent: i32,
}

/// Parses a Kubernetes resource quantity (`resource.Quantity`): a signed decimal number with
/// an optional suffix: binary `Ki Mi Gi Ti Pi Ei`, decimal `n u m k M G T P E`, or an
/// exponent `e3`/`E3`.
pub(super) fn parse_quantity(input: &str) -> Result<Quantity, PlanError> {
    let invalid = |reason| PlanError::InvalidQuantity {
        input: input.to_owned(),
        reason,
    };
    let number_end = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(input.len());
    let (number, suffix) = input.split_at(number_end);
    let (base, exponent) = match suffix {
        "" => (10, 0),
        "n" => (10, -9),
        "u" => (10, -6),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        "Ki" => (2, 10),
        "Mi" => (2, 20),
        "Gi" => (2, 30),
        "Ti" => (2, 40),
        "Pi" => (2, 50),
        "Ei" => (2, 60),
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(|| invalid("unknown suffix"))?;
            let exp: i32 = exp.parse().map_err(|_| invalid("invalid exponent"))?;
            (10, exp)
        }
    };
    let unsigned = number.strip_prefix(['+', '-']).unwrap_or(number);
    if number.starts_with('-') {
        return Err(invalid("a request cannot be negative"));
    }
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(invalid("not a decimal number"));
    }
    if whole.len() + fraction.len() > 30 || !(-30..=60).contains(&exponent) {
        return Err(invalid("too large"));
    }
    let digits: i128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| invalid("not a decimal number"))?;
    Ok(Quantity {
        digits,
        decimal_places: fraction.len() as u32,
        base,
        exponent,
    })
}

impl Quantity {
    /// The quantity in units of `1/scale`, rounded up (Kubernetes rounds requests up too).
    fn ceil_in(&self, scale: i128) -> Option<i64> {
        let mut numerator = self.digits.checked_mul(scale)?;
        let mut denominator = 10i128.checked_pow(self.decimal_places)?;
        let power = self.base.checked_pow(self.exponent.unsigned_abs())?;
        if self.exponent >= 0 {
            numerator = numerator.checked_mul(power)?;
        } else {
            denominator = denominator.checked_mul(power)?;
        }
        let value =
            numerator.div_euclid(denominator) + i128::from(numerator.rem_euclid(denominator) != 0);
        i64::try_from(value).ok()
    }
}

/// A CPU quantity (`250m`, `0.5`, `2`) in millicores, rounded up.
pub fn parse_cpu_millis(quantity: &str) -> Result<i64, PlanError> {
    parse_quantity(quantity)?
        .ceil_in(1000)
        .ok_or_else(|| PlanError::InvalidQuantity {
            input: quantity.to_owned(),
            reason: "too large",
        })
}

/// A memory quantity (`128Mi`, `1G`, `1e9`) in bytes, rounded up.
pub fn parse_memory_bytes(quantity: &str) -> Result<i64, PlanError> {
    parse_units(quantity)
}

/// A plain quantity (`110`, `1k`) in whole units, rounded up: e.g. a node's allocatable pods.
pub fn parse_units(quantity: &str) -> Result<i64, PlanError> {
    parse_quantity(quantity)?
        .ceil_in(1)
        .ok_or_else(|| PlanError::InvalidQuantity {
            input: quantity.to_owned(),
            reason: "too large",
        })
}
