//! Writing results: atomic files, the results folder, row formats, charts and traces.

pub mod files;
pub mod plots;
pub mod records;
pub mod table;
pub mod writer;
