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
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Input(InputError::file(path, format!("cannot read the scenario file: {e}"))))?;
    parse(&text, path, overrides)
}

/// Parses scenario text (as if read from `path`) with overrides applied.
pub fn parse(text: &str, path: &Path, overrides: &[Override]) -> Result<Scenario, Error> {
    let text = if overrides.is_empty() {
        text.to_string()
    } else {
        let mut doc: DocumentMut =
            text.parse().map_err(|e: toml_edit::TomlError| toml_error(path, text, e.span(), e.message()))?;
        for o in overrides {
            apply(&mut doc, o).map_err(|m| Error::Input(InputError::key(path, &o.key, format!("--set: {m}"))))?;
        }
        doc.to_string()
    };
    toml::from_str::<Scenario>(&text).map_err(|e| {
        let mut err = toml_error(path, &text, e.span(), e.message());
        if !overrides.is_empty() {
            if let Error::Input(ie) = &mut err {
                ie.message.push_str(" (in the scenario after --set overrides)");
            }
        }
        err
    })
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
