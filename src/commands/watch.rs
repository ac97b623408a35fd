//! `shmsem watch`: a live view of the scope's semaphores in the terminal.
//!
//! Each refresh lists the namespace (which also sweeps idle auto semaphores, as `ls` does) and
//! draws one [`Dashboard`] frame with ratatui. The terminal is put back as it was (raw mode off,
//! the alternate screen left, the cursor shown) on every way out: a quit key, an error (the
//! [`Restore`] guard), a panic (the panic hook), or SIGINT, SIGTERM or SIGHUP (noticed by
//! [`signals::catch_ending`] within [`KEY_POLL`]).

use std::{
    io::{self, IsTerminal, Stdout},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use ratatui::{
    Terminal,
    backend::CrosstermBackend,
    crossterm::{
        cursor,
        event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers},
        execute,
        terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
    },
};
use shmsem::{Info, Namespace, Options};

use crate::{cli::WatchArgs, dashboard::Dashboard, output, signals};

/// The longest the loop waits for a key before it looks for an ending signal.
const KEY_POLL: Duration = Duration::from_millis(100);

/// Watch until a quit key (q, Esc, Ctrl-C) or an ending signal; the exit status (0, or 128 + the
/// signal).
pub fn watch(opts: Options, args: WatchArgs) -> anyhow::Result<u8> {
    if !io::stdout().is_terminal() {
        bail!(
            "watch draws on a terminal and standard output is not one; \
             for a script, run `shmsem ls --json` in a loop"
        );
    }
    let only = args.name.as_deref();
    let ns = opts.to_namespace()?;
    // The first snapshot before the screen changes: a refused namespace is a plain error line.
    let mut infos = snapshot(&ns, only)?;
    signals::catch_ending().context("installing the signal handlers")?;
    let _restore = Restore::install();
    let mut terminal = enter().context("setting up the terminal")?;
    let interval = args.interval;
    loop {
        let view = Dashboard {
            infos: &infos,
            scope: ns.scope(),
            namespace: ns.name(),
            only,
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            now_ms: output::now_ms(),
        };
        terminal
            .draw(|frame| frame.render_widget(&view, frame.area()))
            .context("drawing")?;
        let next = Instant::now() + interval;
        loop {
            if let Some(sig) = signals::ended() {
                return Ok(u8::try_from(128 + sig).unwrap_or(255));
            }
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if !event::poll(left.min(KEY_POLL)).context("reading the terminal")? {
                continue;
            }
            match event::read().context("reading the terminal")? {
                Event::Key(key) if quits(key) => return Ok(0),
                Event::Resize(..) => break,
                _ => {}
            }
        }
        infos = snapshot(&ns, only)?;
    }
}

/// The semaphores to show: every one of the namespace, or just `only`.
fn snapshot(ns: &Namespace, only: Option<&str>) -> anyhow::Result<Vec<Info>> {
    let mut infos = ns.list()?;
    if let Some(name) = only {
        infos.retain(|i| i.name == name);
    }
    Ok(infos)
}

/// q, Esc, or Ctrl-C (a key in raw mode, not a signal).
fn quits(key: KeyEvent) -> bool {
    key.kind == KeyEventKind::Press
        && match key.code {
            KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => true,
            KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

/// Raw mode and the alternate screen, and a terminal drawing on stdout.
fn enter() -> io::Result<Terminal<CrosstermBackend<Stdout>>> {
    terminal::enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen)?;
    Terminal::new(CrosstermBackend::new(io::stdout()))
}

/// Puts the terminal back when dropped, and from the panic hook while installed.
struct Restore;

impl Restore {
    /// Created before the terminal is touched, so that a failure halfway through `enter` is
    /// undone too.
    fn install() -> Restore {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        Restore
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        restore();
    }
}

/// Raw mode off, back to the normal screen, cursor shown. Each step is tried even if one
/// before it failed (a terminal that went away fails them all, harmlessly).
fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quit_keys_quit_and_others_do_not() {
        let key = |code, modifiers| KeyEvent::new(code, modifiers);
        let none = KeyModifiers::NONE;
        assert!(quits(key(KeyCode::Char('q'), none)));
        assert!(quits(key(KeyCode::Esc, none)));
        assert!(quits(key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!quits(key(KeyCode::Char('c'), none)));
        assert!(!quits(key(KeyCode::Char('x'), none)));
        let mut release = key(KeyCode::Char('q'), none);
        release.kind = KeyEventKind::Release;
        assert!(!quits(release));
    }
}
