//! One frame of `shmsem watch`, drawn from a snapshot of semaphores and nothing else: no clock,
//! no terminal, no library calls. The same widget draws into the terminal and, in the tests,
//! into a plain [`Buffer`] that is read back as text.
//!
//! ```text
//! ┌ shmsem watch · scope local · namespace default ──────────────────────────────────┐
//! │ 2 semaphores · 3 holders · 1 waiter                                              │
//! │                                                                                  │
//! │ build   ██████████████████████████████  4/4  auto        root:root 0600          │
//! │           held     4242 ×2 (3.2 s) · 4243 ×1 (1.0 s) · 4250 ×1 (0.5 s)           │
//! │           waiting  4260 ×2 (500 ms)                                              │
//! │ deploy  ░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░  0/2  persistent  root:root 0600          │
//! └ q quit · refresh every 500 ms ───────────────────────────────────────────────────┘
//! ```
//!
//! The bar is the value against the capacity: green while there is room, yellow when full, red
//! when the value is above the capacity (after `shmsem set --capacity` lowered it).

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Paragraph, Widget},
};
use shmsem::{Info, Party, Scope};

use crate::output;

/// The longest a name column gets; longer names are cut.
const NAME_COLUMN_MAX: usize = 32;
/// Bar widths, in cells.
const BAR_MIN: usize = 10;
const BAR_MAX: usize = 40;
/// Where a semaphore's holder and waiter lines start.
const INDENT: &str = "    ";

/// What one frame shows.
#[derive(Debug)]
pub struct Dashboard<'a> {
    /// The semaphores, sorted by name.
    pub infos: &'a [Info],
    /// The scope and namespace watched.
    pub scope: Scope,
    pub namespace: &'a str,
    /// The one semaphore watched, if one was named: its holders and waiters get a line each.
    pub only: Option<&'a str>,
    /// Milliseconds between refreshes, for the footer.
    pub interval_ms: u64,
    /// Wall-clock ms since the epoch when the snapshot was taken, for the holders' ages.
    pub now_ms: u64,
}

impl Widget for &Dashboard<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let block = Block::bordered()
            .title(format!(
                " shmsem watch · scope {} · namespace {} ",
                self.scope, self.namespace
            ))
            .title_bottom(format!(" q quit · refresh every {} ms ", self.interval_ms));
        Paragraph::new(self.lines(usize::from(area.width.saturating_sub(4))))
            .block(block)
            .render(area, buf);
    }
}

impl Dashboard<'_> {
    /// The lines inside the border, for a frame `width` cells wide inside.
    fn lines(&self, width: usize) -> Vec<Line<'static>> {
        let mut out = vec![Line::from(format!(" {}", self.summary())), Line::default()];
        if self.infos.is_empty() {
            let absent = match self.only {
                Some(name) => format!(" no semaphore {name:?} here (yet); waiting for it"),
                None => " no semaphores in this scope and namespace (yet)".to_owned(),
            };
            out.push(Line::styled(absent, Style::new().fg(Color::DarkGray)));
            return out;
        }
        let name_width = self
            .infos
            .iter()
            .map(|i| i.name.len())
            .max()
            .unwrap_or(0)
            .min(NAME_COLUMN_MAX);
        let bar_width = (width / 3).clamp(BAR_MIN, BAR_MAX);
        let count_width = self
            .infos
            .iter()
            .map(|i| format!("{}/{}", i.value, i.capacity).len())
            .max()
            .unwrap_or(0);
        for info in self.infos {
            out.push(self.semaphore_line(info, name_width, bar_width, count_width));
            for (title, parties, style) in [
                ("held   ", &info.holders, Style::new()),
                ("waiting", &info.waiters, Style::new().fg(Color::Yellow)),
            ] {
                if parties.is_empty() {
                    continue;
                }
                if self.only.is_some() {
                    for p in parties {
                        out.push(Line::styled(
                            format!(" {INDENT}{title}  {}", self.party(p)),
                            style,
                        ));
                    }
                } else {
                    let all: Vec<String> = parties.iter().map(|p| self.party(p)).collect();
                    out.push(Line::styled(
                        format!(" {INDENT}{title}  {}", all.join(" · ")),
                        style,
                    ));
                }
            }
        }
        out
    }

    /// `2 semaphores · 3 holders · 1 waiter`.
    fn summary(&self) -> String {
        let holders: usize = self.infos.iter().map(|i| i.holders.len()).sum();
        let waiters: usize = self.infos.iter().map(|i| i.waiters.len()).sum();
        format!(
            "{} · {} · {}",
            plural(self.infos.len(), "semaphore"),
            plural(holders, "holder"),
            plural(waiters, "waiter")
        )
    }

    /// `name  ██████░░░░  2/4  auto  root:root 0600`.
    fn semaphore_line(
        &self,
        info: &Info,
        name_width: usize,
        bar_width: usize,
        count_width: usize,
    ) -> Line<'static> {
        let name: String = info.name.chars().take(name_width).collect();
        let (filled, color) = bar(info.value, info.capacity, bar_width);
        let count = format!("{}/{}", info.value, info.capacity);
        let mut spans = vec![
            Span::styled(
                format!(" {name:<name_width$}  "),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::styled("█".repeat(filled), Style::new().fg(color)),
            Span::styled(
                "░".repeat(bar_width - filled),
                Style::new().fg(Color::DarkGray),
            ),
            Span::raw(format!("  {count:>count_width$}  ")),
            Span::raw(format!("{:<10}  ", info.kind.as_str())),
            Span::styled(
                output::owner_cell(&info.owner),
                Style::new().fg(Color::DarkGray),
            ),
        ];
        if info.value > info.capacity {
            spans.push(Span::styled(
                "  over capacity",
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ));
        }
        Line::from(spans)
    }

    /// `4242 ×2 (3.2 s)`: pid, weight, and how long it has held or waited.
    fn party(&self, p: &Party) -> String {
        let age = output::age(self.now_ms, p.since_ms);
        let age = age.strip_suffix(" ago").unwrap_or(&age);
        format!("{} ×{} ({age})", p.pid, p.weight)
    }
}

/// How many of `width` cells to fill for `value` of `capacity`, rounded up so that any holding
/// shows, and the colour: green with room left, yellow when full, red above the capacity.
fn bar(value: u32, capacity: u32, width: usize) -> (usize, Color) {
    let capacity = u64::from(capacity.max(1));
    let value = u64::from(value);
    let filled = (value.min(capacity) * width as u64).div_ceil(capacity) as usize;
    let color = match value.cmp(&capacity) {
        std::cmp::Ordering::Less => Color::Green,
        std::cmp::Ordering::Equal => Color::Yellow,
        std::cmp::Ordering::Greater => Color::Red,
    };
    (filled.min(width), color)
}

/// `1 waiter`, `3 waiters`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmsem::{Kind, Owner};

    fn info(name: &str, capacity: u32, value: u32, holders: &[(u32, u32)]) -> Info {
        Info {
            name: name.to_owned(),
            scope: Scope::Local,
            namespace: "default".to_owned(),
            kind: Kind::Auto,
            idle_ms: 60_000,
            capacity,
            value,
            holders: holders
                .iter()
                .map(|&(pid, w)| party(pid, w, 7_000))
                .collect(),
            waiters: Vec::new(),
            owner: Owner {
                uid: 0,
                gid: 4242,
                user: Some("root".to_owned()),
                group: None,
                mode: 0o660,
            },
        }
    }

    fn party(pid: u32, weight: u32, since_ms: u64) -> Party {
        Party {
            pid,
            weight: weight.into(),
            since_ms,
            host: None,
            token: None,
        }
    }

    const NOW_MS: u64 = 10_000;

    /// The frame as text: one line per row, trailing blanks trimmed.
    fn frame(infos: &[Info], only: Option<&str>, width: u16, height: u16) -> String {
        let view = Dashboard {
            infos,
            scope: Scope::Local,
            namespace: "default",
            only,
            interval_ms: 500,
            now_ms: NOW_MS,
        };
        let area = Rect::new(0, 0, width, height);
        let mut buf = Buffer::empty(area);
        (&view).render(area, &mut buf);
        (0..height)
            .map(|y| {
                let row: String = (0..width).map(|x| buf[(x, y)].symbol()).collect();
                row.trim_end().to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn row<'a>(text: &'a str, starts: &str) -> &'a str {
        text.lines()
            .find(|l| l.trim_start_matches(['│', ' ']).starts_with(starts))
            .unwrap_or_else(|| panic!("no line starting {starts:?} in\n{text}"))
    }

    #[test]
    fn a_frame_shows_bars_values_and_holders() {
        let mut build = info("build", 4, 3, &[(4242, 2), (4243, 1)]);
        build.waiters.push(party(4250, 2, 9_500));
        let idle = info("idle", 2, 0, &[]);
        let text = frame(&[build, idle], None, 100, 12);
        assert!(
            text.contains("shmsem watch · scope local · namespace default"),
            "{text}"
        );
        assert!(
            text.contains("2 semaphores · 2 holders · 1 waiter"),
            "{text}"
        );
        assert!(text.contains("q quit · refresh every 500 ms"), "{text}");

        // 3 of 4 on a 32-cell bar (96 / 3): 24 filled, 8 empty; the idle one all empty.
        let line = row(&text, "build");
        let want = format!("{}{}  3/4", "█".repeat(24), "░".repeat(8));
        assert!(line.contains(&want), "{line}");
        assert!(
            line.contains("auto") && line.contains("root:4242 0660"),
            "{line}"
        );
        let line = row(&text, "idle");
        assert!(line.contains(&format!("{}  0/2", "░".repeat(32))), "{line}");
        assert!(!line.contains('█'), "{line}");

        let held = row(&text, "held");
        assert!(held.contains("4242 ×2 (3.0 s) · 4243 ×1 (3.0 s)"), "{held}");
        let waiting = row(&text, "waiting");
        assert!(waiting.contains("4250 ×2 (500 ms)"), "{waiting}");
    }

    #[test]
    fn a_named_semaphore_lists_each_party_on_its_own_line() {
        let mut one = info("one", 3, 3, &[(11, 1), (12, 2)]);
        one.waiters = vec![party(21, 3, 9_000), party(22, 1, 9_900)];
        let text = frame(&[one], Some("one"), 80, 12);
        for want in ["11 ×1", "12 ×2", "21 ×3 (1.0 s)", "22 ×1 (100 ms)"] {
            assert_eq!(
                text.lines().filter(|l| l.contains(want)).count(),
                1,
                "{want} in\n{text}"
            );
        }
        // Full: every cell of the bar filled.
        let line = row(&text, "one");
        assert!(line.contains(&format!("{}  3/3", "█".repeat(25))), "{line}");
    }

    #[test]
    fn nothing_to_show_says_so() {
        let text = frame(&[], None, 70, 6);
        assert!(
            text.contains("0 semaphores · 0 holders · 0 waiters"),
            "{text}"
        );
        assert!(text.contains("no semaphores in this scope"), "{text}");
        let text = frame(&[], Some("later"), 70, 6);
        assert!(text.contains("no semaphore \"later\" here (yet)"), "{text}");
    }

    #[test]
    fn a_value_above_a_lowered_capacity_is_marked() {
        let text = frame(&[info("shrunk", 1, 2, &[(5, 2)])], None, 90, 8);
        let line = row(&text, "shrunk");
        assert!(
            line.contains("2/1") && line.contains("over capacity"),
            "{line}"
        );
        assert!(!line.contains('░'), "{line}");
    }

    #[test]
    fn bars_round_up_and_stay_in_bounds() {
        assert_eq!(bar(0, 4, 20), (0, Color::Green));
        assert_eq!(bar(1, 1000, 20), (1, Color::Green));
        assert_eq!(bar(2, 4, 20), (10, Color::Green));
        assert_eq!(bar(4, 4, 20), (20, Color::Yellow));
        assert_eq!(bar(9, 4, 20), (20, Color::Red));
        assert_eq!(bar(u32::MAX, u32::MAX, 40), (40, Color::Yellow));
    }

    #[test]
    fn a_small_terminal_clips_without_panicking() {
        let many: Vec<Info> = (0..30)
            .map(|i| info(&format!("s{i}"), 2, 1, &[(100 + i, 1)]))
            .collect();
        for (w, h) in [(0, 0), (1, 1), (5, 3), (20, 4), (200, 60)] {
            let _ = frame(&many, None, w, h);
        }
    }
}
