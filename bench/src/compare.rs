//! `compare`: the tables of runs of two servers (JSON files written by `--out`) side by side, each
//! row as the medians of both and their ratio, so a change is judged against a build measured in
//! the same session on the same machine.

use std::{fs, path::PathBuf};

use serde_json::Value;

use crate::{report::median, Error};

/// `compare --names REF HEAD --ref FILE... --head FILE...`
pub fn main(args: &[String]) -> Result<(), Error> {
    let mut names = (String::from("ref"), String::from("head"));
    let (mut refs, mut heads): (Vec<PathBuf>, Vec<PathBuf>) = (Vec::new(), Vec::new());
    let mut list: Option<&mut Vec<PathBuf>> = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--names" => {
                let (Some(a), Some(b)) = (iter.next(), iter.next()) else {
                    return Err(Error::msg("--names needs two names"));
                };
                names = (a.clone(), b.clone());
                list = None;
            }
            "--ref" => list = Some(&mut refs),
            "--head" => list = Some(&mut heads),
            file => match list.as_deref_mut() {
                Some(files) => files.push(PathBuf::from(file)),
                None => return Err(Error::msg(format!("unexpected argument {file:?}"))),
            },
        }
    }
    if refs.is_empty() || heads.is_empty() {
        return Err(Error::msg("compare needs --ref FILE... and --head FILE..."));
    }
    let (ref_rows, ref_meta) = read_all(&refs)?;
    let (head_rows, head_meta) = read_all(&heads)?;
    println!();
    println!(
        "loopwatch benchmark, side by side: {} vs {}; {} run(s) each, interleaved; {}",
        names.1,
        names.0,
        refs.len().max(1) / groups(&refs).max(1),
        head_meta.or(ref_meta).unwrap_or_default()
    );
    println!();
    print!("{}", table(&names, &ref_rows, &head_rows));
    Ok(())
}

/// Scenario groups among the files (`side-run-group.json`), to count runs.
fn groups(files: &[PathBuf]) -> usize {
    let mut seen: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_stem()?.to_str())
        .filter_map(|stem| stem.splitn(3, '-').nth(2).map(str::to_owned))
        .collect();
    seen.sort();
    seen.dedup();
    seen.len()
}

/// Every row's values over the files, by metric, in first-seen order; and a line about the
/// machine.
type Rows = Vec<(String, Vec<String>)>;

fn read_all(files: &[PathBuf]) -> Result<(Rows, Option<String>), Error> {
    let mut rows: Rows = Vec::new();
    let mut meta = None;
    for file in files {
        let text = fs::read_to_string(file)
            .map_err(|e| Error::msg(format!("cannot read {}: {e}", file.display())))?;
        let document: Value = serde_json::from_str(&text)
            .map_err(|e| Error::msg(format!("{}: {e}", file.display())))?;
        if meta.is_none() {
            meta = document["meta"]["machine"]
                .as_str()
                .map(|m| format!("{m}; {}", document["meta"]["date"].as_str().unwrap_or("")));
        }
        for row in document["table"].as_array().into_iter().flatten() {
            let (Some(metric), Some(value)) = (row["metric"].as_str(), row["value"].as_str())
            else {
                continue;
            };
            match rows.iter_mut().find(|(m, _)| m == metric) {
                Some((_, values)) => values.push(value.to_owned()),
                None => rows.push((metric.to_owned(), vec![value.to_owned()])),
            }
        }
    }
    Ok((rows, meta))
}

/// The first number of a value and the word after it: `"1,234.5 ms p99"` -> (1234.5, "ms").
fn number(value: &str) -> Option<(f64, String)> {
    let start = value.find(|c: char| c.is_ascii_digit())?;
    let rest = &value[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(rest.len());
    let n: f64 = rest[..end].replace(',', "").parse().ok()?;
    let negative = value[..start].ends_with('-');
    let unit = rest[end..]
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == ',')
        .next()
        .unwrap_or("")
        .to_owned();
    Some((if negative { -n } else { n }, unit))
}

/// The median of a row's first numbers, with its unit.
fn summary(values: &[String]) -> Option<(f64, String)> {
    let parsed: Vec<(f64, String)> = values.iter().filter_map(|v| number(v)).collect();
    let unit = parsed.first()?.1.clone();
    let mut numbers: Vec<f64> = parsed.into_iter().map(|(n, _)| n).collect();
    Some((median(&mut numbers)?, unit))
}

fn show(value: Option<&(f64, String)>) -> String {
    match value {
        None => "n/a".to_owned(),
        Some((n, unit)) => {
            let digits = if n.abs() >= 100.0 {
                0
            } else if n.abs() >= 10.0 {
                1
            } else {
                2
            };
            format!("{n:.digits$} {unit}").trim_end().to_owned()
        }
    }
}

fn table(names: &(String, String), refs: &Rows, heads: &Rows) -> String {
    let mut out = format!(
        "| metric (first figure of the row, median) | {} | {} | {} / {} |\n|---|---|---|---|\n",
        names.0, names.1, names.1, names.0
    );
    let mut metrics: Vec<&String> = refs.iter().map(|(m, _)| m).collect();
    for (m, _) in heads {
        if !metrics.contains(&m) {
            metrics.push(m);
        }
    }
    for metric in metrics {
        let of = |rows: &Rows| {
            rows.iter()
                .find(|(m, _)| m == metric)
                .and_then(|(_, values)| summary(values))
        };
        let (a, b) = (of(refs), of(heads));
        let ratio = match (&a, &b) {
            (Some((a, _)), Some((b, _))) if *a != 0.0 => format!("{:.2}", b / a),
            _ => "n/a".to_owned(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            metric.replace('|', "\\|"),
            show(a.as_ref()),
            show(b.as_ref()),
            ratio
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_units_and_ratios() {
        assert_eq!(number("1,234.5 ms p99"), Some((1234.5, "ms".to_owned())));
        assert_eq!(number("629 KiB gzip"), Some((629.0, "KiB".to_owned())));
        assert_eq!(number("121,733/s"), Some((121733.0, "/s".to_owned())));
        assert_eq!(number("-3 %"), Some((-3.0, "%".to_owned())));
        assert_eq!(number("FAILED"), None);
        let rows = |v: &[&str]| -> Rows {
            vec![(
                "p99".to_owned(),
                v.iter().map(|s| (*s).to_owned()).collect(),
            )]
        };
        let out = table(
            &("main".into(), "perf".into()),
            &rows(&["4 ms", "2 ms", "3 ms"]),
            &rows(&["1.5 ms", "9 ms", "1 ms"]),
        );
        assert!(out.contains("| p99 | 3.00 ms | 1.50 ms | 0.50 |"), "{out}");
        let out = table(
            &("a".into(), "b".into()),
            &rows(&["FAILED"]),
            &rows(&["1 ms"]),
        );
        assert!(out.contains("| p99 | n/a | 1.00 ms | n/a |"), "{out}");
    }
}
