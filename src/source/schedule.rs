//! Rate-limit schedules: windows of local time, each with a limit in Mbit/s
//! (0 = none), and a default limit outside every window.
//!
//! A schedule comes from the job file's `[rate]` table or from the compact
//! form `--rate-schedule` takes (docs/job-file.md has both grammars):
//!
//! ```text
//! mon-fri 08:00-18:00=100, sat,sun 00:00-24:00=500, *=0
//! ```
//!
//! A window whose end is earlier than its start crosses midnight: `fri
//! 22:00-06:00` covers Friday 22:00 to Saturday 06:00. [`follow`] keeps a
//! [`RateLimit`] in step with the schedule while a pass runs.

use std::fmt;
use std::str::FromStr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rate::RateLimit;

/// The highest limit a window or the default may carry, Mbit/s.
pub const MAX_MBIT: u64 = 1000;
mod time;
use time::{DAY, WEEK};
pub use time::{Days, LocalTime, TimeOfDay, Weekday, local_now};

/// One window of the schedule: on each of `days`, from `start` to `end`,
/// the limit is `mbit`. An `end` earlier than `start` (or 00:00) runs past
/// midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub days: Days,
    pub start: TimeOfDay,
    pub end: TimeOfDay,
    /// Mbit/s, 0..=1000; 0 = no limit.
    pub mbit: u64,
}

impl Window {
    /// The window's stretches of the week as `[from, to)` minutes since
    /// Monday 00:00; none crosses the end of the week.
    fn spans(&self) -> Vec<(u32, u32)> {
        let (s, e) = (self.start.minutes(), self.end.minutes());
        let mut v = Vec::new();
        for d in self.days.iter() {
            let base = d.index() * DAY;
            if s < e {
                v.push((base + s, base + e));
            } else {
                v.push((base + s, base + DAY));
                if e > 0 {
                    let next = d.next().index() * DAY;
                    v.push((next, next + e));
                }
            }
        }
        v
    }

    /// Whether the window is in force at `t`.
    pub fn contains(&self, t: LocalTime) -> bool {
        let m = t.week_minute();
        self.spans().iter().any(|&(a, b)| a <= m && m < b)
    }
}

impl fmt::Display for Window {
    /// The compact form: `mon-fri 08:00-18:00=100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}-{}={}", self.days, self.start, self.end, self.mbit)
    }
}

/// Rate limits by local time: `windows`, and `mbit` outside all of them.
/// Windows may not overlap ([`Schedule::validate`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Mbit/s outside every window, 0..=1000; 0 = no limit.
    #[serde(default)]
    pub mbit: u64,
    /// `[[rate.window]]` in the job file.
    #[serde(default, rename = "window", skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
}

/// What is wrong with a schedule; every message names the window (numbered
/// from 1 in the order given) and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid time {value:?}: {reason} (expected HH:MM, 00:00 to 24:00)")]
    Time { value: String, reason: String },
    #[error(
        "invalid days {value:?}: {reason} (expected daily or *, a day such as mon, \
         a range such as mon-fri, or a list such as sat,sun)"
    )]
    Days { value: String, reason: String },
    #[error("{window}: mbit {mbit} is above the maximum of 1000 (0 = no limit)")]
    Mbit { window: String, mbit: u64 },
    #[error("{window}: start 24:00 is the end of the day; a window starts at 23:59 at the latest")]
    StartAtEndOfDay { window: String },
    #[error("{window}: start and end are both {at}; a whole day is 00:00-24:00")]
    Empty { window: String, at: TimeOfDay },
    #[error("{second} overlaps {first} on {day} at {at}")]
    Overlap {
        first: String,
        second: String,
        day: Weekday,
        at: TimeOfDay,
    },
    #[error("the rate schedule is empty; give at least *=MBIT")]
    EmptySpec,
    #[error("rate schedule entry {entry} ({text:?}): {reason}")]
    Spec {
        entry: usize,
        text: String,
        reason: String,
    },
}

/// When the limit next changes, seen from some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Minutes from that moment, 1..10080.
    pub in_minutes: u32,
    /// The limit from then on, Mbit/s (0 = none).
    pub mbit: u64,
}

impl Schedule {
    /// One limit at all times.
    pub fn constant(mbit: u64) -> Schedule {
        Schedule {
            mbit,
            windows: Vec::new(),
        }
    }

    /// How error messages name window `i` (0-based).
    fn label(&self, i: usize) -> String {
        format!("window {} ({})", i + 1, self.windows[i])
    }

    /// Check every limit, every window's times and that no two windows
    /// overlap on any day.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if self.mbit > MAX_MBIT {
            return Err(ScheduleError::Mbit {
                window: "the default outside windows".into(),
                mbit: self.mbit,
            });
        }
        for (i, w) in self.windows.iter().enumerate() {
            if w.mbit > MAX_MBIT {
                return Err(ScheduleError::Mbit {
                    window: self.label(i),
                    mbit: w.mbit,
                });
            }
            if w.start == TimeOfDay::END_OF_DAY {
                return Err(ScheduleError::StartAtEndOfDay {
                    window: self.label(i),
                });
            }
            if w.start == w.end {
                return Err(ScheduleError::Empty {
                    window: self.label(i),
                    at: w.start,
                });
            }
        }
        let spans: Vec<Vec<(u32, u32)>> = self.windows.iter().map(Window::spans).collect();
        for j in 0..spans.len() {
            for i in 0..j {
                let first_common = spans[i]
                    .iter()
                    .flat_map(|a| spans[j].iter().map(move |b| (a, b)))
                    .filter(|(a, b)| a.0 < b.1 && b.0 < a.1)
                    .map(|(a, b)| a.0.max(b.0))
                    .min();
                if let Some(m) = first_common {
                    let at = LocalTime::from_week_minute(m);
                    return Err(ScheduleError::Overlap {
                        first: self.label(i),
                        second: self.label(j),
                        day: at.weekday,
                        at: TimeOfDay(at.minute as u16),
                    });
                }
            }
        }
        Ok(())
    }

    /// The limit in force at `t`, Mbit/s (0 = none): the window's that
    /// holds `t`, else the default.
    pub fn limit_at(&self, t: LocalTime) -> u64 {
        self.windows
            .iter()
            .find(|w| w.contains(t))
            .map_or(self.mbit, |w| w.mbit)
    }

    /// When, after `t`, the limit next differs from the one at `t`; `None`
    /// when it never changes.
    pub fn next_change(&self, t: LocalTime) -> Option<Change> {
        let now = self.limit_at(t);
        let m = t.week_minute();
        let mut ahead: Vec<u32> = self
            .windows
            .iter()
            .flat_map(|w| w.spans())
            .flat_map(|(a, b)| [a, b])
            .map(|b| (b + WEEK - m) % WEEK)
            .filter(|&d| d > 0)
            .collect();
        ahead.sort_unstable();
        ahead.into_iter().find_map(|d| {
            let mbit = self.limit_at(LocalTime::from_week_minute(m + d));
            (mbit != now).then_some(Change {
                in_minutes: d,
                mbit,
            })
        })
    }
}

impl fmt::Display for Schedule {
    /// The compact form `--rate-schedule` takes; the default comes last.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in &self.windows {
            write!(f, "{w}, ")?;
        }
        write!(f, "*={}", self.mbit)
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    /// The compact form: entries separated by `,` or `;`, each
    /// `[DAYS] HH:MM-HH:MM=MBIT` (a window; no DAYS = daily) or `*=MBIT` /
    /// `default=MBIT` (the limit outside windows, 0 when not given). DAYS
    /// may itself hold commas (`sat,sun`): an entry ends after its number.
    /// The result is validated.
    fn from_str(s: &str) -> Result<Schedule, ScheduleError> {
        let mut sched = Schedule::default();
        let mut default_at: Option<usize> = None;
        let mut rest = s;
        let mut entry = 0;
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            entry += 1;
            let spec = |text: &str, reason: String| ScheduleError::Spec {
                entry,
                text: text.trim().to_string(),
                reason,
            };
            let Some(eq) = rest.find('=') else {
                return Err(spec(rest, "no =MBIT".into()));
            };
            let head = rest[..eq].trim();
            let after = &rest[eq + 1..];
            let num_len = after
                .trim_start()
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let stop = eq + 1 + (after.len() - after.trim_start().len()) + num_len;
            let text = &rest[..stop];
            if num_len == 0 {
                return Err(spec(text, "expected a number of Mbit/s after =".into()));
            }
            let mbit: u64 = rest[stop - num_len..stop]
                .parse()
                .map_err(|_| spec(text, "the number of Mbit/s is too large".into()))?;
            rest = rest[stop..].trim_start();
            match rest.chars().next() {
                None => {}
                Some(',' | ';') => rest = &rest[1..],
                Some(c) => {
                    return Err(spec(
                        text,
                        format!("expected , or ; after the number, found {c:?}"),
                    ));
                }
            }
            if head == "*" || head.eq_ignore_ascii_case("default") {
                if let Some(first) = default_at {
                    return Err(spec(
                        text,
                        format!("the default is already given in entry {first}"),
                    ));
                }
                default_at = Some(entry);
                sched.mbit = mbit;
                continue;
            }
            let mut words: Vec<&str> = head.split_whitespace().collect();
            let Some(times) = words.pop() else {
                return Err(spec(
                    text,
                    "expected [DAYS] HH:MM-HH:MM or * before =".into(),
                ));
            };
            let Some((from, to)) = times.split_once('-').filter(|_| times.contains(':')) else {
                return Err(spec(
                    text,
                    format!("expected HH:MM-HH:MM before =, found {times:?}"),
                ));
            };
            let start = from
                .parse()
                .map_err(|e: ScheduleError| spec(text, format!("start: {e}")))?;
            let end = to
                .parse()
                .map_err(|e: ScheduleError| spec(text, format!("end: {e}")))?;
            let days = if words.is_empty() {
                Days::DAILY
            } else {
                words
                    .concat()
                    .parse()
                    .map_err(|e: ScheduleError| spec(text, format!("days: {e}")))?
            };
            sched.windows.push(Window {
                days,
                start,
                end,
                mbit,
            });
        }
        if entry == 0 {
            return Err(ScheduleError::EmptySpec);
        }
        sched.validate()?;
        Ok(sched)
    }
}

/// Keeps a [`RateLimit`]'s base in step with a schedule until dropped.
#[must_use = "the schedule stops being followed when the guard is dropped"]
#[derive(Debug)]
pub struct Follower {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How often [`follow`] looks at the clock.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(15);

/// Set `rate`'s base limit ([`RateLimit::set`]) to the schedule's limit for
/// local now, at once and then whenever the schedule's limit changes
/// (checked every 15 s), until the returned guard is dropped. Between
/// changes the base is left alone, so a change made by hand holds until the
/// schedule's next boundary. The receiver's override is not touched. A
/// schedule without windows is applied once and needs no thread.
pub fn follow(schedule: Schedule, rate: RateLimit) -> Follower {
    follow_with(schedule, rate, FOLLOW_EVERY, local_now)
}

/// [`follow`] with its own period and clock (for tests and simulations).
pub fn follow_with<C>(schedule: Schedule, rate: RateLimit, every: Duration, clock: C) -> Follower
where
    C: Fn() -> LocalTime + Send + 'static,
{
    let mut last = schedule.limit_at(clock());
    rate.set(last);
    tracing::info!(mbit = last, "rate limit from the schedule");
    if schedule.windows.is_empty() {
        return Follower {
            stop: None,
            thread: None,
        };
    }
    let (tx, rx) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ferry-rate-schedule".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                let now = clock();
                let mbit = schedule.limit_at(now);
                if mbit != last {
                    rate.set(mbit);
                    tracing::info!(mbit, at = %now, "rate limit from the schedule");
                    last = mbit;
                }
            }
        });
    match thread {
        Ok(t) => Follower {
            stop: Some(tx),
            thread: Some(t),
        },
        Err(e) => {
            tracing::warn!(
                "cannot start the rate schedule thread ({e}); the limit stays at {last} Mbit/s"
            );
            Follower {
                stop: None,
                thread: None,
            }
        }
    }
}

#[cfg(test)]
mod tests;
