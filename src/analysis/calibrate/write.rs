//! Writing a fitted profile: the base profile's file with the fitted values put in,
//! each with its meaning and "fitted by `clustersim calibrate ...` on <data>" above it,
//! `fitted_parameters` naming what was fitted and `fitted_rows` listing the rows it was
//! fitted to. Everything else of the base file (header, other values, their sources) is
//! kept as written (`toml_edit`).

use crate::error::{Error, InputError, Result};
use crate::model::framework::{FrameworkProfile, Parameter};
use std::path::Path;
use toml_edit::{Array, DocumentMut, Item, Value};

/// The text of the fitted profile: `base_text` (from `base_file`) with `name`, the
/// `free` parameters of `fitted` and `fitted_rows` replaced. `command` and `data`
/// describe the fit for the source comments.
pub fn profile_text(
    base_text: &str,
    base_file: &Path,
    fitted: &FrameworkProfile,
    free: &[Parameter],
    command: &str,
    data: &str,
) -> Result<String> {
    let mut doc: DocumentMut = base_text
        .parse()
        .map_err(|e: toml_edit::TomlError| Error::Input(InputError::file(base_file, e.message().trim().to_string())))?;
    set_keeping_decor(&mut doc, "name", Value::from(fitted.name.as_str()));
    for p in free {
        let v = fitted.get(p.key).unwrap_or(f64::NAN);
        doc.insert(p.key, Item::Value(Value::from(v)));
        if let Some(mut key) = doc.key_mut(p.key) {
            let prefix = format!("\n# {}\n# source: fitted by `{command}` on {data}.\n", p.meaning);
            key.leaf_decor_mut().set_prefix(prefix);
        }
    }
    let mut keys = Array::new();
    for k in &fitted.fitted_parameters {
        keys.push(k.as_str());
    }
    doc.insert("fitted_parameters", Item::Value(Value::Array(keys)));
    if let Some(mut key) = doc.key_mut("fitted_parameters") {
        let prefix = "\n# The parameters fitted (`clustersim validation` refits them when it leaves a source\n\
                      # out).\n# source: written by the same command.\n";
        key.leaf_decor_mut().set_prefix(prefix);
    }
    let mut rows = Array::new();
    for r in &fitted.fitted_rows {
        let mut v = Value::from(r.as_str());
        v.decor_mut().set_prefix("\n    ");
        rows.push_formatted(v);
    }
    rows.set_trailing("\n");
    rows.set_trailing_comma(true);
    doc.insert("fitted_rows", Item::Value(Value::Array(rows)));
    if let Some(mut key) = doc.key_mut("fitted_rows") {
        let prefix = "\n# The rows of the data this profile was fitted to (`clustersim validation` reports the\n\
                      # others as held out).\n# source: written by the same command.\n";
        key.leaf_decor_mut().set_prefix(prefix);
    }
    Ok(doc.to_string())
}

fn set_keeping_decor(doc: &mut DocumentMut, key: &str, v: Value) {
    if let Some(Item::Value(old)) = doc.get_mut(key) {
        let decor = old.decor().clone();
        *old = v;
        *old.decor_mut() = decor;
    } else {
        doc.insert(key, Item::Value(v));
    }
}
