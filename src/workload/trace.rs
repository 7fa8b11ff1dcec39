//! Trace files: reading, format detection and row validation.
//!
//! Three formats (see [`TraceFormat`]):
//! - `azure`: the Azure LLM inference trace CSV, header
//!   `TIMESTAMP,ContextTokens,GeneratedTokens`, timestamps like
//!   `2023-11-16 18:15:46.6805900`; arrival = offset from the first row.
//! - `csv`: header `arrival_s,prompt_tokens,output_tokens`; `arrival_s` is the
//!   arrival time in seconds as written (not shifted to the first row).
//! - `mooncake`: JSON lines with `timestamp` (ms), `input_length`,
//!   `output_length` and optionally `hash_ids` (the prompt's 512-token blocks, each
//!   named by an integer that stands for its content and everything before it: two
//!   rows share a prefix exactly as far as their lists agree; Mooncake, FAST '25,
//!   trace README at github.com/kvcache-ai/Mooncake); other keys are ignored;
//!   arrival = offset from the first row. The hash ids of all rows are kept in one
//!   arena of `u32` ([`Trace::hash_ids`]), 4 bytes a block.
//!
//! CSV headers are matched case-insensitively and may list the columns in any
//! order or add columns (ignored); every row must have as many columns as the
//! header. Blank lines are skipped; CRLF line ends and a UTF-8 BOM are accepted.
//!
//! Rows must be in arrival order (equal times are fine). A prompt must have at
//! least 1 token. A row with **0 output tokens is replayed as 1 output token**
//! (a served request always yields the token its prefill produces, and TTFT/TPOT
//! need it); [`Trace::zero_output_rows`] counts such rows so the run can report
//! them. The shipped Azure and Mooncake traces have none.
//!
//! Any other problem is an error naming the file, the 1-based line, what was
//! wrong and what was expected.

use super::config::TraceFormat;
use super::timestamp::parse_timestamp_ns;
use crate::error::{Error, InputError};
use serde_json::Value;
use std::path::Path;

/// One request of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceRow {
    /// Arrival offset before `time_scale`, ns.
    pub offset_ns: u64,
    /// Prompt tokens, >= 1.
    pub prompt_tokens: u32,
    /// Output tokens, >= 1.
    pub output_tokens: u32,
}

/// A parsed, validated trace.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The format it was read as.
    pub format: TraceFormat,
    /// Requests in arrival order.
    pub rows: Vec<TraceRow>,
    /// Rows that said 0 output tokens and are replayed with 1.
    pub zero_output_rows: u64,
    /// Every row's `hash_ids`, end to end (empty when the trace has none).
    pub hash_ids: Vec<u32>,
    /// Where row `i`'s ids start in `hash_ids`: row `i` is `hash_starts[i]..hash_starts[i + 1]`
    /// (empty when the trace has no `hash_ids`).
    pub hash_starts: Vec<u32>,
}

impl Trace {
    /// Row `i`'s hash ids (empty if it has none).
    pub fn row_hashes(&self, i: usize) -> &[u32] {
        match (self.hash_starts.get(i), self.hash_starts.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.hash_ids[a as usize..b as usize],
            _ => &[],
        }
    }
}

const AZURE_COLS: [&str; 3] = ["timestamp", "contexttokens", "generatedtokens"];
const CSV_COLS: [&str; 3] = ["arrival_s", "prompt_tokens", "output_tokens"];
const AZURE_HEADER: &str = "TIMESTAMP,ContextTokens,GeneratedTokens";
const CSV_HEADER: &str = "arrival_s,prompt_tokens,output_tokens";
const MOONCAKE_EXAMPLE: &str = r#"{"timestamp": 0, "input_length": 6758, "output_length": 500}"#;

/// Reads and validates the trace at `path`: `format` if given, otherwise from
/// the first line (a CSV header, or `{` for JSON lines) or a `.jsonl` extension.
/// Stops after `limit` requests (rows past the limit are not read).
pub fn load_trace(path: &Path, format: Option<TraceFormat>, limit: Option<u64>) -> Result<Trace, Error> {
    let text = crate::textfile::read_text(path, "trace")?;
    Ok(parse_trace(path, &text, format, limit)?)
}

/// Parses trace text; `path` is only used in messages.
pub fn parse_trace(
    path: &Path,
    text: &str,
    format: Option<TraceFormat>,
    limit: Option<u64>,
) -> Result<Trace, InputError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines =
        text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r'))).filter(|(_, l)| !l.trim().is_empty());
    let first = lines.clone().next();
    let format = match format {
        Some(f) => f,
        None => detect(path, first.map(|(_, l)| l))?,
    };
    let mut p = Parser {
        path,
        rows: Vec::new(),
        zero_output_rows: 0,
        first_raw: None,
        prev_raw: 0,
        prev_line: 0,
        hash_ids: Vec::new(),
        hash_starts: vec![0],
    };
    let limit = limit.unwrap_or(u64::MAX);
    match format {
        TraceFormat::Azure | TraceFormat::Csv => p.csv_rows(&mut lines, format, limit)?,
        TraceFormat::Mooncake => p.json_rows(lines, limit)?,
    }
    if p.rows.is_empty() {
        return Err(InputError::file(path, "has no requests; expected at least one row after the header"));
    }
    if p.hash_ids.is_empty() {
        p.hash_starts.clear();
    }
    Ok(Trace {
        format,
        rows: p.rows,
        zero_output_rows: p.zero_output_rows,
        hash_ids: p.hash_ids,
        hash_starts: p.hash_starts,
    })
}

fn detect(path: &Path, first: Option<&str>) -> Result<TraceFormat, InputError> {
    if let Some(l) = first {
        if l.trim_start().starts_with('{') {
            return Ok(TraceFormat::Mooncake);
        }
        let names: Vec<String> = l.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
        let has = |cols: [&str; 3]| cols.iter().all(|c| names.iter().any(|n| n == c));
        if has(AZURE_COLS) {
            return Ok(TraceFormat::Azure);
        }
        if has(CSV_COLS) {
            return Ok(TraceFormat::Csv);
        }
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("jsonl")) {
        return Ok(TraceFormat::Mooncake);
    }
    Err(InputError::file(
        path,
        format!(
            "cannot tell the trace format from its first line {:?}; expected the header {AZURE_HEADER} (azure) or \
             {CSV_HEADER} (csv), JSON lines (mooncake), or set workload.trace_format",
            first.unwrap_or("")
        ),
    ))
}

/// Column indices of `names` in the header, and the header's width.
fn header_columns(
    path: &Path,
    line: usize,
    text: &str,
    names: [&str; 3],
    header: &str,
) -> Result<([usize; 3], usize), InputError> {
    let cols: Vec<String> = text.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
    let mut idx = [0; 3];
    for (slot, name) in idx.iter_mut().zip(names) {
        *slot = cols.iter().position(|c| c == name).ok_or_else(|| {
            InputError::line(path, line, format!("header {text:?} has no column {name}; expected {header}"))
        })?;
    }
    Ok((idx, cols.len()))
}

/// A JSON value as the text a CSV field would hold (strings unquoted).
fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn seconds_ns(text: &str) -> Option<u64> {
    let s: f64 = text.parse().ok()?;
    (s.is_finite() && s >= 0.0 && s * 1e9 < u64::MAX as f64).then(|| (s * 1e9).round() as u64)
}

fn ms_ns(ms: f64) -> Option<u64> {
    (ms.is_finite() && ms >= 0.0 && ms * 1e6 < u64::MAX as f64).then(|| (ms * 1e6).round() as u64)
}

struct Parser<'a> {
    path: &'a Path,
    rows: Vec<TraceRow>,
    zero_output_rows: u64,
    first_raw: Option<u64>,
    prev_raw: u64,
    prev_line: usize,
    hash_ids: Vec<u32>,
    hash_starts: Vec<u32>,
}

impl Parser<'_> {
    fn err(&self, line: usize, msg: String) -> InputError {
        InputError::line(self.path, line, msg)
    }

    /// Rows of an `azure` or `csv` trace: the header, then up to `limit` rows.
    fn csv_rows<'t>(
        &mut self,
        lines: &mut impl Iterator<Item = (usize, &'t str)>,
        format: TraceFormat,
        limit: u64,
    ) -> Result<(), InputError> {
        let path = self.path;
        let (names, header) =
            if format == TraceFormat::Azure { (AZURE_COLS, AZURE_HEADER) } else { (CSV_COLS, CSV_HEADER) };
        let Some((hline, htext)) = lines.next() else {
            return Err(InputError::file(path, format!("is empty; expected the header {header} and rows")));
        };
        let (cols, width) = header_columns(path, hline, htext, names, header)?;
        let hnames: Vec<&str> = htext.split(',').map(str::trim).collect();
        for (line, l) in lines {
            if self.rows.len() as u64 >= limit {
                break;
            }
            let fields: Vec<&str> = l.split(',').map(str::trim).collect();
            if fields.len() != width {
                return Err(self
                    .err(line, format!("has {} columns; expected {width} like the header ({header})", fields.len())));
            }
            let [t, pr, out] = cols.map(|c| fields[c]);
            let [_, pr_name, out_name] = cols.map(|c| hnames[c]);
            let raw = if format == TraceFormat::Azure {
                parse_timestamp_ns(t).ok_or_else(|| {
                    self.err(
                        line,
                        format!("TIMESTAMP {t:?} is not a timestamp; expected e.g. 2023-11-16 18:15:46.6805900"),
                    )
                })?
            } else {
                seconds_ns(t).ok_or_else(|| {
                    self.err(line, format!("arrival_s {t:?} is not a time; expected seconds >= 0, e.g. 1.25"))
                })?
            };
            self.push(line, raw, format == TraceFormat::Azure, (pr_name, pr), (out_name, out))?;
        }
        Ok(())
    }

    /// Rows of a `mooncake` trace: one JSON object a line, up to `limit` of them.
    fn json_rows<'t>(&mut self, lines: impl Iterator<Item = (usize, &'t str)>, limit: u64) -> Result<(), InputError> {
        for (line, l) in lines {
            if self.rows.len() as u64 >= limit {
                break;
            }
            let v: Value = serde_json::from_str(l).map_err(|e| {
                // serde_json counts lines inside the one-line text: keep only the column.
                let what = e.to_string();
                let what = what.split(" at line ").next().unwrap_or_default().to_string();
                self.err(
                    line,
                    format!(
                        "is not valid JSON ({what} at column {}); expected one object per line like {MOONCAKE_EXAMPLE}",
                        e.column()
                    ),
                )
            })?;
            let field = |k: &str| {
                v.get(k).ok_or_else(|| {
                    self.err(line, format!("has no \"{k}\"; expected an object like {MOONCAKE_EXAMPLE}"))
                })
            };
            let ts = field("timestamp")?;
            let raw = ts.as_f64().and_then(ms_ns).ok_or_else(|| {
                self.err(line, format!("timestamp {ts} is not a time; expected milliseconds >= 0, e.g. 1500"))
            })?;
            let (pr, out) = (json_text(field("input_length")?), json_text(field("output_length")?));
            self.push(line, raw, true, ("input_length", &pr), ("output_length", &out))?;
            if let Some(h) = v.get("hash_ids") {
                self.hashes(line, h)?;
            }
            let end = u32::try_from(self.hash_ids.len())
                .map_err(|_| self.err(line, "hash_ids: more than 2^32 in the whole trace; expected fewer".into()))?;
            self.hash_starts.push(end);
        }
        Ok(())
    }

    /// Appends a row's `hash_ids`: a list of whole numbers in 0..2^32.
    fn hashes(&mut self, line: usize, h: &Value) -> Result<(), InputError> {
        let list = h.as_array().ok_or_else(|| {
            self.err(line, format!("hash_ids {h} is not a list; expected whole numbers like [0, 1, 2]"))
        })?;
        for x in list {
            let id = x.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
                self.err(line, format!("hash_ids has {x}; expected whole numbers from 0 to {}", u32::MAX))
            })?;
            self.hash_ids.push(id);
        }
        Ok(())
    }

    /// Checks one row and appends it; `relative` shifts times to the first row.
    /// `prompt` and `output` are (column name, text).
    fn push(
        &mut self,
        line: usize,
        raw: u64,
        relative: bool,
        prompt: (&str, &str),
        output: (&str, &str),
    ) -> Result<(), InputError> {
        if !self.rows.is_empty() && raw < self.prev_raw {
            let back = (self.prev_raw - raw) as f64 * 1e-9;
            return Err(self.err(
                line,
                format!(
                    "arrival goes backwards by {back:.6} s from line {}; expected rows in nondecreasing arrival order",
                    self.prev_line
                ),
            ));
        }
        let prompt_tokens = self.tokens(line, prompt, "prompt", 1)?;
        if prompt_tokens == 0 {
            return Err(self.err(line, format!("{} (prompt tokens) is 0; expected at least 1 token", prompt.0)));
        }
        let mut output_tokens = self.tokens(line, output, "output", 0)?;
        if output_tokens == 0 {
            self.zero_output_rows += 1;
            output_tokens = 1;
        }
        let first = *self.first_raw.get_or_insert(raw);
        let offset_ns = if relative { raw - first } else { raw };
        self.prev_raw = raw;
        self.prev_line = line;
        self.rows.push(TraceRow { offset_ns, prompt_tokens, output_tokens });
        Ok(())
    }

    /// A token count from `(column, text)`; `kind` and `min` word the message.
    fn tokens(&self, line: usize, (col, text): (&str, &str), kind: &str, min: u32) -> Result<u32, InputError> {
        let what = format!("{col} ({kind} tokens)");
        let expected = "expected a whole number of tokens";
        match text.parse::<i64>() {
            Ok(n) if n < 0 => Err(self.err(line, format!("{what} is {n}, negative; {expected} >= {min}"))),
            Ok(n) => u32::try_from(n)
                .map_err(|_| self.err(line, format!("{what} is {n}, too large; {expected} up to {}", u32::MAX))),
            Err(_) => Err(self.err(line, format!("{what} {text:?} is not a whole number; {expected}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mooncake_hash_ids_are_kept_per_row_and_bad_ones_are_refused() {
        let p = Path::new("t.jsonl");
        let text = "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 5, \"hash_ids\": [0, 1]}\n\
                    {\"timestamp\": 3, \"input_length\": 10, \"output_length\": 5}\n\
                    {\"timestamp\": 4, \"input_length\": 1100, \"output_length\": 5, \"hash_ids\": [0, 7, 8]}\n";
        let t = parse_trace(p, text, None, None).expect("valid");
        assert_eq!(t.hash_ids, vec![0, 1, 0, 7, 8]);
        assert_eq!((t.row_hashes(0), t.row_hashes(1), t.row_hashes(2)), (&[0, 1][..], &[][..], &[0, 7, 8][..]));
        let bad = "{\"timestamp\": 0, \"input_length\": 6, \"output_length\": 5, \"hash_ids\": [1, -2]}\n";
        let e = parse_trace(p, bad, None, None).expect_err("negative id").to_string();
        assert!(e.contains("t.jsonl") && e.contains(":1") && e.contains("hash_ids has -2"), "{e}");
        let bad = "{\"timestamp\": 0, \"input_length\": 6, \"output_length\": 5, \"hash_ids\": 3}\n";
        let e = parse_trace(p, bad, None, None).expect_err("not a list").to_string();
        assert!(e.contains("hash_ids 3 is not a list"), "{e}");
    }
}
