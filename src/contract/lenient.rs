//! Reading numbers the way loop scripts write them: JSON integers, integral floats, or the same
//! in a string. Shared by the JSON parsers of the contract.

use serde_json::Value;

/// What a field holding a count turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whole {
    /// Null or an empty string.
    Absent,
    Value(u32),
    /// Something that is not a whole number from 0 to `u32::MAX`.
    Invalid,
}

pub fn whole_u32(value: &Value) -> Whole {
    let parsed = match value {
        Value::Null => return Whole::Absent,
        Value::Number(number) => match number.as_u64() {
            Some(n) => u32::try_from(n).ok(),
            None => number.as_f64().and_then(integral_u32),
        },
        Value::String(text) => {
            let text = text.trim();
            if text.is_empty() {
                return Whole::Absent;
            }
            text.parse::<u32>()
                .ok()
                .or_else(|| text.parse::<f64>().ok().and_then(integral_u32))
        }
        _ => None,
    };
    parsed.map_or(Whole::Invalid, Whole::Value)
}

fn integral_u32(value: f64) -> Option<u32> {
    // The range check makes the cast exact.
    (value.is_finite() && value.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&value))
        .then_some(value as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_the_spellings_scripts_use() {
        for (value, expected) in [
            (json!(7), Whole::Value(7)),
            (json!(7.0), Whole::Value(7)),
            (json!("7"), Whole::Value(7)),
            (json!(" 7.0 "), Whole::Value(7)),
            (json!(null), Whole::Absent),
            (json!(""), Whole::Absent),
            (json!(7.5), Whole::Invalid),
            (json!(-1), Whole::Invalid),
            (json!("seven"), Whole::Invalid),
            (json!(4_294_967_296u64), Whole::Invalid),
            (json!([7]), Whole::Invalid),
            (json!(true), Whole::Invalid),
        ] {
            assert_eq!(whole_u32(&value), expected, "{value}");
        }
    }
}
