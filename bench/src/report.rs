//! The table (Markdown, printed and pasted into the README) and the raw figures (JSON).

use std::{fs, path::Path};

use serde_json::{Map, Value};

use crate::Error;

pub struct Row {
    pub metric: String,
    pub value: String,
    pub notes: String,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub scenarios: Map<String, Value>,
    pub failures: Vec<String>,
}

impl Report {
    pub fn row(
        &mut self,
        metric: impl Into<String>,
        value: impl Into<String>,
        notes: impl Into<String>,
    ) {
        let row = Row {
            metric: metric.into(),
            value: value.into(),
            notes: notes.into(),
        };
        // Shown as they come, so a long run shows progress.
        eprintln!("    {} | {} | {}", row.metric, row.value, row.notes);
        self.rows.push(row);
    }

    pub fn table(&self) -> String {
        let mut out = String::from("| metric | median | notes |\n|---|---|---|\n");
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                cell(&row.metric),
                cell(&row.value),
                cell(&row.notes)
            ));
        }
        out
    }

    pub fn write_json(&self, path: &Path, meta: Value) -> Result<(), Error> {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| serde_json::json!({"metric": r.metric, "value": r.value, "notes": r.notes}))
            .collect();
        let document = serde_json::json!({
            "meta": meta,
            "table": rows,
            "scenarios": self.scenarios,
            "failures": self.failures,
        });
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| Error::msg(format!("cannot create {}: {e}", dir.display())))?;
        }
        let text =
            serde_json::to_string_pretty(&document).map_err(|e| Error::msg(e.to_string()))?;
        fs::write(path, text + "\n")
            .map_err(|e| Error::msg(format!("cannot write {}: {e}", path.display())))
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Per-run figures of one scenario, and their medians.
#[derive(Default)]
pub struct Runs(pub Vec<Value>);

impl Runs {
    pub fn push(&mut self, run: Value) {
        self.0.push(run);
    }

    pub fn median(&self, key: &str) -> Option<f64> {
        let mut values: Vec<f64> = self.0.iter().filter_map(|run| run[key].as_f64()).collect();
        median(&mut values)
    }

    pub fn max(&self, key: &str) -> Option<f64> {
        self.0
            .iter()
            .filter_map(|run| run[key].as_f64())
            .reduce(f64::max)
    }

    pub fn sum(&self, key: &str) -> f64 {
        self.0.iter().filter_map(|run| run[key].as_f64()).sum()
    }

    /// Every distinct string value of `key` over the runs, joined.
    pub fn strings(&self, key: &str) -> String {
        let mut seen: Vec<String> = Vec::new();
        for run in &self.0 {
            if let Some(text) = run[key].as_str() {
                if !seen.iter().any(|s| s == text) {
                    seen.push(text.to_owned());
                }
            }
        }
        seen.join(" / ")
    }

    pub fn json(&self) -> Value {
        Value::Array(self.0.clone())
    }
}

pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// Milliseconds with three significant digits.
pub fn ms(value: Option<f64>) -> String {
    match value {
        None => "n/a".to_owned(),
        Some(v) if v >= 100.0 => format!("{v:.0} ms"),
        Some(v) if v >= 10.0 => format!("{v:.1} ms"),
        Some(v) => format!("{v:.2} ms"),
    }
}

/// A count with thousands separators.
pub fn count(value: f64) -> String {
    let n = value.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub fn opt_count(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), count)
}

pub fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_formats() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
        assert_eq!(count(1234567.0), "1,234,567");
        assert_eq!(count(999.0), "999");
        assert_eq!(ms(Some(1.234)), "1.23 ms");
        assert_eq!(ms(Some(123.4)), "123 ms");
        let mut runs = Runs::default();
        runs.push(serde_json::json!({"p99": 3.0, "why": "a"}));
        runs.push(serde_json::json!({"p99": 1.0, "why": "a"}));
        runs.push(serde_json::json!({"p99": 2.0, "why": "b"}));
        assert_eq!(runs.median("p99"), Some(2.0));
        assert_eq!(runs.strings("why"), "a / b");
    }
}
