//! `.ralph/config.json`: the loop's settings (`cli`, `flags`, `max_iterations`, `test_command`,
//! `model`, `model_pricing`). Read leniently: a bad file gives the defaults, a bad field gives that
//! field's default, and each case leaves a warning for the operator.
//!
//! Pure functions over bytes: no I/O, compiled for the server and the WASM client alike.

use crate::contract::lenient::{whole_u32, Whole};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Price used when `model_pricing` has neither the project's cli nor a `"default"` entry:
/// 0.01 USD per 1,000 tokens, a middle-of-the-road blended (input + output) rate for current
/// frontier coding models, so an unconfigured cost is the right order of magnitude.
pub const DEFAULT_PRICE_PER_K_TOKENS: f64 = 0.01;

/// Offending values quoted in warnings are cut to this many bytes.
const MAX_QUOTED_BYTES: usize = 60;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopConfig {
    pub cli: Option<String>,
    /// Extra arguments for the cli; a string is split like a shell would (see [`parse_config`]).
    pub flags: Vec<String>,
    /// As written: 0 means unlimited; `None` when not configured.
    pub max_iterations: Option<u32>,
    pub test_command: Option<String>,
    pub model: Option<String>,
    /// USD per 1,000 tokens by cli name, keys as written; only finite, non-negative prices.
    pub model_pricing: BTreeMap<String, f64>,
}

/// Where [`LoopConfig::price_per_k_tokens`] found its price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    /// From `model_pricing` (the cli's entry or its `"default"` entry).
    Configured,
    /// [`DEFAULT_PRICE_PER_K_TOKENS`]: the project configures no price.
    Default,
}

impl LoopConfig {
    /// USD per 1,000 tokens for this project's cli: its `model_pricing` entry (key matched
    /// case-insensitively, an exact match first), else a `"default"` entry, else
    /// [`DEFAULT_PRICE_PER_K_TOKENS`].
    pub fn price_per_k_tokens(&self) -> (f64, PriceSource) {
        let cli_price = self
            .cli
            .as_deref()
            .and_then(|cli| self.price_for(cli.trim()));
        match cli_price.or_else(|| self.price_for("default")) {
            Some(price) => (price, PriceSource::Configured),
            None => (DEFAULT_PRICE_PER_K_TOKENS, PriceSource::Default),
        }
    }

    fn price_for(&self, name: &str) -> Option<f64> {
        self.model_pricing.get(name).copied().or_else(|| {
            self.model_pricing
                .iter()
                .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
                .map(|(_, price)| *price)
        })
    }
}

/// Reads `config.json`. Never fails: an unreadable file (bad UTF-8, not JSON, not an object)
/// gives the defaults and one warning saying why; a field of the wrong type gives that field's
/// default and a warning naming it; prices that are negative, not finite or not numbers are
/// dropped with a warning. Unknown keys are ignored (the loop script may keep its own there).
///
/// Accepted leniently: `flags` as an array (numbers and booleans become their text) or as one
/// string split on whitespace with `'...'`, `"..."` and `\` quoting; `max_iterations` as an
/// integer, an integral float or a numeric string; prices as numbers or numeric strings; empty
/// strings count as missing.
pub fn parse_config(bytes: &[u8]) -> (LoopConfig, Vec<String>) {
    let mut warnings = Vec::new();
    let Ok(text) = std::str::from_utf8(bytes) else {
        warnings.push("config.json is not valid UTF-8; using the defaults".to_owned());
        return (LoopConfig::default(), warnings);
    };
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        warnings.push("config.json is empty; using the defaults".to_owned());
        return (LoopConfig::default(), warnings);
    }
    let map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            warnings.push(format!(
                "config.json is {} instead of an object; using the defaults",
                type_name(&other)
            ));
            return (LoopConfig::default(), warnings);
        }
        Err(err) => {
            warnings.push(format!(
                "config.json is not valid JSON ({err}); using the defaults"
            ));
            return (LoopConfig::default(), warnings);
        }
    };
    let config = LoopConfig {
        cli: string_field(&map, "cli", &mut warnings),
        flags: flags_field(&map, &mut warnings),
        max_iterations: max_iterations_field(&map, &mut warnings),
        test_command: string_field(&map, "test_command", &mut warnings),
        model: string_field(&map, "model", &mut warnings),
        model_pricing: pricing_field(&map, &mut warnings),
    };
    (config, warnings)
}

fn string_field(map: &Map<String, Value>, key: &str, warnings: &mut Vec<String>) -> Option<String> {
    match map.get(key)? {
        Value::Null => None,
        Value::String(text) => {
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_owned())
        }
        other => {
            warnings.push(format!(
                "`{key}` should be a string, not {}; ignored",
                type_name(other)
            ));
            None
        }
    }
}

fn flags_field(map: &Map<String, Value>, warnings: &mut Vec<String>) -> Vec<String> {
    match map.get("flags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => split_flags(text, warnings),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| match item {
                Value::String(flag) => Some(flag.clone()),
                Value::Number(number) => Some(number.to_string()),
                Value::Bool(flag) => Some(flag.to_string()),
                other => {
                    warnings.push(format!(
                        "`flags[{index}]` should be a string, not {}; dropped",
                        type_name(other)
                    ));
                    None
                }
            })
            .collect(),
        Some(other) => {
            warnings.push(format!(
                "`flags` should be a string or a list of strings, not {}; ignored",
                type_name(other)
            ));
            Vec::new()
        }
    }
}

/// Splits a flags string into arguments: whitespace separates, `'...'` is literal, `"..."` allows
/// `\"` and `\\`, a `\` outside quotes escapes the next char. An unclosed quote runs to the end.
fn split_flags(text: &str, warnings: &mut Vec<String>) -> Vec<String> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut flags = Vec::new();
    let mut current = String::new();
    // A flag has started even if it is still empty (`''` is an empty argument).
    let mut started = false;
    let mut quote = Quote::None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match quote {
            Quote::Single if c == '\'' => quote = Quote::None,
            Quote::Single => current.push(c),
            Quote::Double if c == '"' => quote = Quote::None,
            Quote::Double if c == '\\' => match chars.next() {
                Some(next @ ('"' | '\\')) => current.push(next),
                Some(next) => {
                    current.push('\\');
                    current.push(next);
                }
                None => current.push('\\'),
            },
            Quote::Double => current.push(c),
            Quote::None if c.is_whitespace() => {
                if started {
                    flags.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            Quote::None => {
                started = true;
                match c {
                    '\'' => quote = Quote::Single,
                    '"' => quote = Quote::Double,
                    '\\' => current.push(chars.next().unwrap_or('\\')),
                    c => current.push(c),
                }
            }
        }
    }
    if quote != Quote::None {
        warnings.push("`flags` has an unclosed quote; it runs to the end".to_owned());
    }
    if started {
        flags.push(current);
    }
    flags
}

fn max_iterations_field(map: &Map<String, Value>, warnings: &mut Vec<String>) -> Option<u32> {
    let value = map.get("max_iterations")?;
    let parsed = match whole_u32(value) {
        Whole::Absent => return None,
        Whole::Value(n) => Some(n),
        Whole::Invalid => None,
    };
    if parsed.is_none() {
        warnings.push(format!(
            "`max_iterations` should be a whole number from 0 (unlimited) to {}, not {}; ignored",
            u32::MAX,
            quote(&value.to_string())
        ));
    }
    parsed
}

fn pricing_field(map: &Map<String, Value>, warnings: &mut Vec<String>) -> BTreeMap<String, f64> {
    let entries = match map.get("model_pricing") {
        None | Some(Value::Null) => return BTreeMap::new(),
        Some(Value::Object(entries)) => entries,
        Some(other) => {
            warnings.push(format!(
                "`model_pricing` should be an object of prices by cli, not {}; ignored",
                type_name(other)
            ));
            return BTreeMap::new();
        }
    };
    let mut prices = BTreeMap::new();
    for (name, value) in entries {
        let price = match value {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => text.trim().parse::<f64>().ok(),
            _ => None,
        };
        match price {
            Some(price) if price.is_finite() && price >= 0.0 => {
                prices.insert(name.clone(), price);
            }
            _ => warnings.push(format!(
                "`model_pricing.{}` should be a non-negative number of USD per 1k tokens, not {}; dropped",
                quote(name),
                quote(&value.to_string())
            )),
        }
    }
    prices
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value shown in a warning, cut on a char boundary so one bad field cannot flood the list.
fn quote(value: &str) -> String {
    if value.len() <= MAX_QUOTED_BYTES {
        return value.to_owned();
    }
    let mut end = MAX_QUOTED_BYTES;
    // Terminates: 0 is always a char boundary.
    while !value.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    format!("{}…", value.get(..end).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FULL: &str = r#"{
  "cli": "claude",
  "flags": ["--dangerously-skip-permissions", "--verbose"],
  "max_iterations": 50,
  "test_command": "cargo test",
  "model": "opus",
  "model_pricing": {"claude": 0.015, "codex": "0.01", "default": 0.02},
  "extra": "ignored"
}"#;

    fn no_warnings() -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn full_config_field_by_field() {
        let (config, warnings) = parse_config(FULL.as_bytes());
        assert_eq!(config.cli.as_deref(), Some("claude"));
        assert_eq!(
            config.flags,
            vec!["--dangerously-skip-permissions", "--verbose"]
        );
        assert_eq!(config.max_iterations, Some(50));
        assert_eq!(config.test_command.as_deref(), Some("cargo test"));
        assert_eq!(config.model.as_deref(), Some("opus"));
        assert_eq!(config.model_pricing.len(), 3);
        assert_eq!(config.model_pricing.get("claude"), Some(&0.015));
        assert_eq!(config.model_pricing.get("codex"), Some(&0.01));
        assert_eq!(config.model_pricing.get("default"), Some(&0.02));
        assert_eq!(warnings, no_warnings());
        assert_eq!(
            config.price_per_k_tokens(),
            (0.015, PriceSource::Configured)
        );
    }

    #[test]
    fn demo_config() {
        let (config, warnings) = parse_config(
            br#"{"cli":"claude","max_iterations":20,"test_command":"cargo test","model_pricing":{"claude":0.015}}"#,
        );
        assert_eq!(
            config,
            LoopConfig {
                cli: Some("claude".to_owned()),
                flags: Vec::new(),
                max_iterations: Some(20),
                test_command: Some("cargo test".to_owned()),
                model: None,
                model_pricing: BTreeMap::from([("claude".to_owned(), 0.015)]),
            }
        );
        assert_eq!(warnings, no_warnings());
    }

    #[test]
    fn flags_as_a_string_are_split_like_a_shell() {
        let (config, warnings) = parse_config(
            br#"{"flags": "  --model 'claude opus' --name \"a \\\"b\\\"\" plain\\ space '' "}"#,
        );
        assert_eq!(
            config.flags,
            vec![
                "--model",
                "claude opus",
                "--name",
                "a \"b\"",
                "plain space",
                ""
            ]
        );
        assert_eq!(warnings, no_warnings());

        let (config, warnings) = parse_config(br#"{"flags": "--a 'open"}"#);
        assert_eq!(config.flags, vec!["--a", "open"]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("unclosed quote"));

        let (config, _) = parse_config(br#"{"flags": ""}"#);
        assert_eq!(config.flags, Vec::<String>::new());
    }

    #[test]
    fn flags_lists_keep_scalars_and_drop_the_rest() {
        let (config, warnings) =
            parse_config(br#"{"flags": ["--max-turns", 5, true, null, ["x"]]}"#);
        assert_eq!(config.flags, vec!["--max-turns", "5", "true"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("`flags[3]`"));
        assert!(warnings[1].contains("`flags[4]`"));

        let (config, warnings) = parse_config(br#"{"flags": {"a": 1}}"#);
        assert_eq!(config.flags, Vec::<String>::new());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("`flags`"));
    }

    #[test]
    fn max_iterations_forms() {
        let cases: [(&str, Option<u32>, usize); 9] = [
            (r#"0"#, Some(0), 0),
            (r#""12""#, Some(12), 0),
            (r#"" 7 ""#, Some(7), 0),
            (r#"30.0"#, Some(30), 0),
            (r#""""#, None, 0),
            (r#"null"#, None, 0),
            (r#"-1"#, None, 1),
            (r#""many""#, None, 1),
            (r#"4294967296"#, None, 1),
        ];
        for (raw, expected, warning_count) in cases {
            let (config, warnings) =
                parse_config(format!(r#"{{"max_iterations": {raw}}}"#).as_bytes());
            assert_eq!(config.max_iterations, expected, "{raw}");
            assert_eq!(warnings.len(), warning_count, "{raw}: {warnings:?}");
            if warning_count > 0 {
                assert!(warnings[0].contains("`max_iterations`"), "{warnings:?}");
            }
        }
    }

    #[test]
    fn wrong_types_fall_back_per_field() {
        let (config, warnings) = parse_config(
            br#"{"cli": 3, "test_command": ["make"], "model": {"name": "x"}, "max_iterations": true, "model_pricing": [1]}"#,
        );
        assert_eq!(config, LoopConfig::default());
        assert_eq!(warnings.len(), 5, "{warnings:?}");
        for (warning, field) in warnings.iter().zip([
            "`cli`",
            "`max_iterations`",
            "`test_command`",
            "`model`",
            "`model_pricing`",
        ]) {
            assert!(warning.contains(field), "{warning} should name {field}");
        }
    }

    #[test]
    fn bad_prices_are_dropped() {
        let (config, warnings) = parse_config(
            br#"{"model_pricing": {"a": -1, "b": "NaN", "c": "inf", "d": "cheap", "e": null, "f": "0", "g": 1e2}}"#,
        );
        assert_eq!(
            config.model_pricing,
            BTreeMap::from([("f".to_owned(), 0.0), ("g".to_owned(), 100.0)])
        );
        assert_eq!(warnings.len(), 5, "{warnings:?}");
        for (warning, key) in warnings.iter().zip([
            "`model_pricing.a`",
            "`model_pricing.b`",
            "`model_pricing.c`",
            "`model_pricing.d`",
            "`model_pricing.e`",
        ]) {
            assert!(warning.contains(key), "{warning} should name {key}");
        }
    }

    #[test]
    fn invalid_files_give_defaults_and_one_warning() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "empty"),
            (b"  \n", "empty"),
            (b"{\"cli\": \"claude\"", "not valid JSON"),
            (b"[1, 2]", "a list instead of an object"),
            (b"\"claude\"", "a string instead of an object"),
            (b"{\"cli\": \"cl\xffaude\"}", "not valid UTF-8"),
        ];
        for (bytes, reason) in cases {
            let (config, warnings) = parse_config(bytes);
            assert_eq!(config, LoopConfig::default(), "{reason}");
            assert_eq!(warnings.len(), 1, "{reason}: {warnings:?}");
            assert!(
                warnings[0].contains(reason),
                "{} should say {reason}",
                warnings[0]
            );
        }
        let (config, warnings) = parse_config("\u{feff}{\"cli\": \"codex\"}".as_bytes());
        assert_eq!(config.cli.as_deref(), Some("codex"));
        assert_eq!(warnings, no_warnings());
    }

    #[test]
    fn price_lookup_order() {
        let pricing = |entries: &[(&str, f64)]| {
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        let config = |cli: Option<&str>, entries: &[(&str, f64)]| LoopConfig {
            cli: cli.map(str::to_owned),
            model_pricing: pricing(entries),
            ..LoopConfig::default()
        };
        assert_eq!(
            config(Some("Claude"), &[("claude", 0.015), ("default", 0.02)]).price_per_k_tokens(),
            (0.015, PriceSource::Configured)
        );
        assert_eq!(
            config(Some("claude"), &[("CLAUDE", 0.1), ("claude", 0.2)]).price_per_k_tokens(),
            (0.2, PriceSource::Configured)
        );
        assert_eq!(
            config(Some("codex"), &[("claude", 0.015), ("Default", 0.02)]).price_per_k_tokens(),
            (0.02, PriceSource::Configured)
        );
        assert_eq!(
            config(None, &[("default", 0.03)]).price_per_k_tokens(),
            (0.03, PriceSource::Configured)
        );
        assert_eq!(
            config(Some("codex"), &[("claude", 0.015)]).price_per_k_tokens(),
            (DEFAULT_PRICE_PER_K_TOKENS, PriceSource::Default)
        );
        assert_eq!(
            LoopConfig::default().price_per_k_tokens(),
            (DEFAULT_PRICE_PER_K_TOKENS, PriceSource::Default)
        );
        assert_eq!(
            serde_json::to_string(&PriceSource::Configured).expect("serializes"),
            r#""configured""#
        );
    }

    fn mutate(bytes: &mut Vec<u8>, op: u8, at: usize, value: u8) {
        let len = bytes.len();
        match op % 4 {
            0 if len > 0 => {
                if let Some(b) = bytes.get_mut(at % len) {
                    *b ^= value;
                }
            }
            1 => bytes.insert(at % (len + 1), value),
            2 if len > 0 => {
                let start = at % len;
                bytes.drain(start..(start + usize::from(value % 16)).min(len));
            }
            _ => bytes.truncate(at % (len + 1)),
        }
    }

    fn check_invariants(config: &LoopConfig) -> Result<(), TestCaseError> {
        prop_assert!(config
            .model_pricing
            .values()
            .all(|p| p.is_finite() && *p >= 0.0));
        let (price, _) = config.price_per_k_tokens();
        prop_assert!(price.is_finite() && price >= 0.0);
        Ok(())
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (config, warnings) = parse_config(&bytes);
            check_invariants(&config)?;
            // Anything that is not a JSON object leaves a warning.
            let start = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes).trim_ascii_start();
            if config == LoopConfig::default() && !start.starts_with(b"{") {
                prop_assert!(!warnings.is_empty());
            }
        }

        #[test]
        fn mutated_fixtures_never_panic(
            ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = FULL.as_bytes().to_vec();
            for (op, at, value) in ops {
                mutate(&mut bytes, op, at, value);
            }
            let (config, _) = parse_config(&bytes);
            check_invariants(&config)?;
            prop_assert_eq!(parse_config(&bytes).0, config);
        }

        #[test]
        fn max_iterations_round_trip(n in any::<u32>(), as_string in any::<bool>()) {
            let raw = if as_string { format!("\"{n}\"") } else { n.to_string() };
            let (config, warnings) = parse_config(format!(r#"{{"max_iterations": {raw}}}"#).as_bytes());
            prop_assert_eq!(config.max_iterations, Some(n));
            prop_assert!(warnings.is_empty());
        }

        #[test]
        fn prices_round_trip(
            cli in "[a-z]{1,10}",
            // Up to 3 decimals: serde_json without `float_roundtrip` may be 1 ulp off on long mantissas.
            price in (0u32..1_000_000).prop_map(|millis| f64::from(millis) / 1000.0),
            as_string in any::<bool>(),
        ) {
            let value = if as_string {
                serde_json::Value::String(price.to_string())
            } else {
                serde_json::json!(price)
            };
            let file = serde_json::json!({ "cli": cli.to_uppercase(), "model_pricing": { cli.clone(): value } });
            let (config, warnings) = parse_config(file.to_string().as_bytes());
            prop_assert!(warnings.is_empty());
            prop_assert_eq!(config.model_pricing.get(&cli).copied(), Some(price));
            prop_assert_eq!(config.price_per_k_tokens(), (price, PriceSource::Configured));
        }

        #[test]
        fn flag_lists_round_trip(flags in proptest::collection::vec(".{0,12}", 0..6)) {
            let file = serde_json::json!({ "flags": flags });
            let (config, warnings) = parse_config(file.to_string().as_bytes());
            prop_assert!(warnings.is_empty());
            prop_assert_eq!(config.flags, flags);
        }
    }
}
