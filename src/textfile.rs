//! Reading a user's text file (scenario, trace) so that every way it can be bad
//! is an input error naming the file and, where there is one, the line.
//!
//! `std::fs::read_to_string` reports invalid UTF-8 and unreadable files as bare
//! I/O errors (exit 1, no line); users need to know which line of which file.

use crate::error::InputError;
use std::path::Path;

/// Reads `path` as UTF-8 text; `what` names the file's role in messages
/// ("trace", "scenario file"). Errors: unreadable (named with the OS reason),
/// binary (a NUL byte, with its line), or not UTF-8 (the line and column of the
/// first bad byte).
pub fn read_text(path: &Path, what: &str) -> Result<String, InputError> {
    let bytes = std::fs::read(path).map_err(|e| InputError::file(path, format!("cannot read the {what}: {e}")))?;
    text_from_bytes(path, what, bytes)
}

/// Checks `bytes` (read from `path`) are text and returns them as a `String`.
pub fn text_from_bytes(path: &Path, what: &str, bytes: Vec<u8>) -> Result<String, InputError> {
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        let (line, _) = line_col(&bytes, at);
        return Err(InputError::line(
            path,
            line,
            format!("holds a NUL byte: this looks like a binary file, not a {what}; expected UTF-8 text"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bad = e.as_bytes()[at];
        let (line, col) = line_col(e.as_bytes(), at);
        InputError::line(
            path,
            line,
            format!("byte 0x{bad:02x} at column {col} is not valid UTF-8; the {what} must be UTF-8 text"),
        )
    })
}

/// 1-based line and byte column of byte offset `at`.
fn line_col(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = at - before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_utf8_is_reported_at_its_line_and_column() {
        // "ab\ncd\xffe": the 0xff is the 3rd byte of line 2.
        let e = text_from_bytes(Path::new("t.csv"), "trace", b"ab\ncd\xffe".to_vec()).unwrap_err();
        assert_eq!(e.location, crate::error::Location::Line(2));
        assert!(e.message.contains("0xff at column 3"), "{}", e.message);
    }

    #[test]
    fn a_nul_byte_marks_a_binary_file() {
        // NUL on line 3 (after two newlines).
        let e = text_from_bytes(Path::new("t.bin"), "trace", b"a\nb\n\x00".to_vec()).unwrap_err();
        assert_eq!(e.location, crate::error::Location::Line(3));
        assert!(e.message.contains("binary"), "{}", e.message);
    }

    #[test]
    fn text_passes_through() {
        assert_eq!(text_from_bytes(Path::new("t"), "trace", "é\n".as_bytes().to_vec()).unwrap(), "é\n");
    }
}
