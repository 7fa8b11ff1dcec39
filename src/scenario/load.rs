//! Reading a scenario file and applying `--set key.path=value` overrides.
//!
//! Overrides are applied to the TOML document with `toml_edit`, which keeps the
//! file's layout, so parse errors still point at the right line and column.

use super::types::Scenario;
use crate::error::{Error, InputError, Location};
use std::path::Path;
use toml_edit::{DocumentMut, Item, Table, Value};

/// One `--set key.path=value` override.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// Dotted path; array elements by index (`events.0.fraction`).
    pub key: String,
    /// TOML value text (`4`, `"ring"`, `{ process = "poisson", rate_per_s = 2.0 }`);
    /// a bare word that is not valid TOML is taken as a string.
    pub value: String,
}

impl std::str::FromStr for Override {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (key, value) =
            s.split_once('=').ok_or_else(|| format!("`{s}`: expected key.path=value, e.g. parallel.tp=4"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|p| p.trim().is_empty()) {
            return Err(format!("`{s}`: the key path has an empty part; expected e.g. hardware.nodes=4"));
        }
        Ok(Override { key: key.to_string(), value: value.trim().to_string() })
    }
}

/// Reads `path`, applies `overrides`, and parses the result.
pub fn load(path: &Path, overrides: &[Override]) -> Result<Scenario, Error> {
    let text = crate::textfile::read_text(path, "scenario file")?;
    parse(&text, path, overrides)
}

/// Parses scenario text (as if read from `path`) with overrides applied.
///
/// An error in the file itself is reported at its line and column in the file. An
/// error that only the overrides bring in is reported against the first override
/// that brings it in, by its key and value: the document they produce is never
/// seen by the user, so its line numbers would mean nothing to them.
pub fn parse(text: &str, path: &Path, overrides: &[Override]) -> Result<Scenario, Error> {
    let plain = toml::from_str::<Scenario>(text);
    if overrides.is_empty() {
        return plain.map_err(|e| toml_error(path, text, e.span(), e.message()));
    }
    let mut doc: DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| toml_error(path, text, e.span(), e.message()))?;
    let mut failed: Option<(&Override, toml::de::Error)> = None;
    for o in overrides {
        apply(&mut doc, o).map_err(|m| Error::Input(InputError::key(path, &o.key, format!("--set: {m}"))))?;
        if failed.is_none() {
            if let Err(e) = toml::from_str::<Scenario>(&doc.to_string()) {
                // An error already in the file stays the file's; blame an override
                // only for the first document it breaks.
                if plain.is_ok() {
                    failed = Some((o, e));
                }
            }
        }
    }
    let merged = doc.to_string();
    match toml::from_str::<Scenario>(&merged) {
        Ok(s) => Ok(s),
        Err(e) => match (plain, failed) {
            // The file is broken by itself: its own line and column.
            (Err(first), _) => Err(toml_error(path, text, first.span(), first.message())),
            (Ok(_), Some((o, e))) => Err(override_error(path, o, &e)),
            (Ok(_), None) => {
                Err(Error::Input(InputError::file(path, format!("after the --set overrides: {}", e.message().trim()))))
            }
        },
    }
}

/// An error brought in by override `o`, named by its key and value.
fn override_error(path: &Path, o: &Override, e: &toml::de::Error) -> Error {
    let mut message = format!("--set {}={}: {}", o.key, o.value, e.message().trim());
    if o.value.parse::<Value>().is_err() {
        message.push_str(&format!(
            " (`{}` is not a TOML value, e.g. a number out of range or an unquoted word, so it was read as a string)",
            o.value
        ));
    }
    Error::Input(InputError::key(path, &o.key, message))
}

fn toml_error(path: &Path, text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> Error {
    let location = match span {
        Some(r) => {
            let (line, col) = line_col(text, r.start);
            Location::LineCol(line, col)
        }
        None => Location::File,
    };
    Error::Input(InputError { file: path.to_path_buf(), location, message: message.trim().to_string() })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

fn parse_value(text: &str) -> Value {
    text.parse::<Value>().unwrap_or_else(|_| Value::from(text))
}

fn apply(doc: &mut DocumentMut, o: &Override) -> Result<(), String> {
    let parts: Vec<&str> = o.key.split('.').map(str::trim).collect();
    set_in(doc.as_table_mut(), &parts, parse_value(&o.value))
}

/// Sets `parts` (relative to `table`) to `value`,
/// creating tables on the way and descending into inline tables and arrays of tables.
fn set_in(table: &mut Table, parts: &[&str], value: Value) -> Result<(), String> {
    let (first, rest) = parts.split_first().ok_or("empty key path")?;
    if rest.is_empty() {
        table.insert(first, Item::Value(value));
        return Ok(());
    }
    let entry = table.entry(first).or_insert(Item::Table(Table::new()));
    if let Item::Value(Value::InlineTable(inline)) = entry {
        // Inline tables hold values, not items: turn it into a normal table to walk on.
        let t = inline.clone().into_table();
        *entry = Item::Table(t);
    }
    match entry {
        Item::Table(sub) => set_in(sub, rest, value),
        Item::ArrayOfTables(array) => {
            let (index, inner) = rest.split_first().ok_or("empty key path")?;
            let n = array.len();
            let i: usize =
                index.parse().map_err(|_| format!("`{first}` is an array: give an index, e.g. {first}.0.<key>"))?;
            let sub = array.get_mut(i).ok_or(format!("`{first}` has {n} entries; index {i} is past the end"))?;
            if inner.is_empty() {
                return Err(format!("set a key inside `{first}.{i}`, not the whole entry"));
            }
            set_in(sub, inner, value)
        }
        _ => Err(format!("`{first}` holds a value, not a table, so `{}` cannot be set inside it", parts.join("."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 4));
    }
}
