//! Writing results: atomic files, the results folder, row formats, charts and traces.

pub mod chrome;
pub mod dag;
pub mod files;
pub mod plots;
pub mod records;
pub mod staging;
pub mod table;
pub mod writer;
