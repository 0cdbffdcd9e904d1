//! Sizes as written in the file (`"100MB"`, `"64KiB"`, a number of bytes).

use serde::Deserialize;

/// A size written as `"100MB"`, `"64KiB"` or a number of bytes.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(crate) enum SizeValue {
    Bytes(u64),
    Text(String),
}

pub(super) fn parse_size(key: &str, v: &SizeValue) -> Result<u64, String> {
    let text = match v {
        SizeValue::Bytes(b) => return Ok(*b),
        SizeValue::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("`{key}` = {text:?} is not a size; write e.g. \"100MB\" or \"512KiB\"")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1000,
        "kib" => 1024,
        "mb" | "m" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "gb" | "g" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "`{key}` = {text:?}: unknown unit {other:?}; use B, KB, KiB, MB, MiB, GB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{key}` = {text:?} is too large"))
}
