//! `shmsem`: the command-line tool. This file parses the command line, runs the command, and
//! turns errors into one line on stderr and an exit status:
//!
//! | status | when |
//! |---|---|
//! | 0 | done (`run`, `tree`: the command's own status, 128 + signal if a signal ended it) |
//! | 1 | an error |
//! | 2 | bad usage: an unknown flag, a malformed or out-of-range value, `--scope self` outside a tree |
//! | 75 | timed out, or would block with `--timeout 0` / `-n` |
//! | 77 | permission denied |
//!
//! The line is the error's chain, each cause once (a library error's cause is its `source()`,
//! not part of its message), and then, for some library errors, the command's own advice
//! ([`advice`]).

mod advice;
mod cli;
mod commands;
mod dashboard;
mod group;
#[cfg(feature = "serve")]
mod serve;
mod signals;

use shmsem_cli::output;

use std::{
    io::{self, Write},
    process::ExitCode,
};

use clap::{Parser, error::ErrorKind};

/// `EX_TEMPFAIL`: timed out, or would block.
const TIMED_OUT: u8 = 75;
/// `EX_NOPERM`: permission denied.
const NO_PERMISSION: u8 = 77;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse().and_then(cli::Cli::check) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let place = advice::Place::of(&cli);
    match commands::dispatch(cli) {
        Ok(status) => ExitCode::from(status),
        Err(err) => {
            report(&message(&err, &place));
            ExitCode::from(exit_status(&err))
        }
    }
}

/// The error line: the chain of causes, as `{:#}` prints it, with the command's hint for the
/// library error in it when it has one. The hint replaces the library's own advice (what
/// follows the first `; ` of its message), which speaks to programs: which method, which option.
fn message(err: &anyhow::Error, place: &advice::Place) -> String {
    let hint = library_error(err).and_then(|e| advice::hint(e, place));
    let causes: Vec<String> = err
        .chain()
        .map(|cause| {
            let text = cause.to_string();
            match (&hint, cause.downcast_ref::<shmsem::Error>()) {
                (Some(_), Some(_)) => text
                    .split_once("; ")
                    .map_or_else(|| text.clone(), |(what, _)| what.to_owned()),
                _ => text,
            }
        })
        .collect();
    let mut line = causes.join(": ");
    if let Some(hint) = hint {
        line.push_str("; ");
        line.push_str(&hint);
    }
    line
}

/// The library error in `err`'s chain, if any.
fn library_error(err: &anyhow::Error) -> Option<&shmsem::Error> {
    err.chain().find_map(|e| e.downcast_ref::<shmsem::Error>())
}

/// The exit status for an error: by the library error inside it, if any.
fn exit_status(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<commands::TimedOut>()) {
        return TIMED_OUT;
    }
    match library_error(err) {
        Some(
            shmsem::Error::Timeout { .. }
            | shmsem::Error::WouldBlock { .. }
            | shmsem::Error::Busy { .. },
        ) => TIMED_OUT,
        Some(shmsem::Error::PermissionDenied { .. }) => NO_PERMISSION,
        _ => 1,
    }
}

/// Help and version go to stdout with status 0, and a bare `shmsem` prints its help with
/// status 2, as clap does; any other usage error becomes one line with status 2.
fn usage_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ => {
            report(&format!(
                "{}; try --help",
                one_line(&e.render().to_string())
            ));
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}

/// Clap's multi-line message as one line: its lines up to the usage, joined.
fn one_line(rendered: &str) -> String {
    let mut out = String::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            let joint = if out.ends_with(':') || line.starts_with('[') {
                " "
            } else {
                "; "
            };
            out.push_str(joint);
        }
        out.push_str(line.strip_prefix("error: ").unwrap_or(line));
    }
    out
}

/// Print `message` to stderr as one line starting `shmsem: `. A closed stderr is ignored.
fn report(message: &str) {
    let message = message.replace('\n', " ");
    let _ = writeln!(io::stderr(), "shmsem: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_messages_become_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  \
                        <NAME>\n\nUsage: shmsem show <NAME>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "the following required arguments were not provided: <NAME>"
        );
        let rendered = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' \
                        as a value, use '-- --bogus'\n\nUsage: shmsem ls [OPTIONS]\n";
        assert_eq!(
            one_line(rendered),
            "unexpected argument '--bogus' found; tip: to pass '--bogus' as a value, use '-- --bogus'"
        );
    }

    #[test]
    fn library_errors_choose_the_status() {
        let timeout = anyhow::Error::new(shmsem::Error::Timeout {
            weight: 1,
            timeout_ms: 5,
        });
        assert_eq!(exit_status(&timeout), TIMED_OUT);
        let denied = anyhow::Error::new(shmsem::Error::PermissionDenied { path: "x".into() })
            .context("opening");
        assert_eq!(exit_status(&denied), NO_PERMISSION);
        assert_eq!(exit_status(&anyhow::anyhow!("other")), 1);
    }

    #[test]
    fn an_io_cause_is_printed_once_and_advice_follows_the_message() {
        use clap::Parser;
        let place = advice::Place::of(&cli::Cli::try_parse_from(["shmsem", "show", "x"]).unwrap());
        let cause = io::Error::from_raw_os_error(libc::ENOTDIR);
        let err = anyhow::Error::new(shmsem::Error::Io {
            context: "creating /tmp/f/d".into(),
            source: io::Error::from_raw_os_error(libc::ENOTDIR),
        });
        let line = message(&err, &place);
        assert_eq!(line, format!("creating /tmp/f/d failed: {cause}"));
        let err = anyhow::Error::new(shmsem::Error::NotFound { name: "x".into() });
        let line = message(&err, &place);
        assert!(
            line.starts_with("no semaphore \"x\" here;")
                && line.ends_with(
                    "; `shmsem ls` lists the semaphores of this --scope and --namespace"
                ),
            "{line}"
        );
    }
}
