//! The rendering of the `shmsem` command's output (`ls`, `show`, `ps`, `reap` as text and as
//! JSON; `metrics` as OpenMetrics text), as a library so that the fuzz targets render corrupted segments exactly as the
//! command does. The command itself is `src/main.rs`; nothing here is a stable interface.

pub mod openmetrics;
pub mod output;
