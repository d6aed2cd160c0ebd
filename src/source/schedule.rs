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
/// Minutes in a day and in a week.
const DAY: u32 = 24 * 60;
const WEEK: u32 = 7 * DAY;

/// A day of the week, Monday first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// 0 for Monday to 6 for Sunday.
    pub fn index(self) -> u32 {
        self as u32
    }

    /// The day `i` days after Monday (taken modulo 7).
    pub fn from_index(i: u32) -> Weekday {
        Weekday::ALL[(i % 7) as usize]
    }

    pub fn next(self) -> Weekday {
        Weekday::from_index(self.index() + 1)
    }

    pub fn prev(self) -> Weekday {
        Weekday::from_index(self.index() + 6)
    }

    /// The three-letter name the grammar uses: `mon` .. `sun`.
    pub fn name(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self as usize]
    }

    fn parse(s: &str) -> Option<Weekday> {
        const LONG: [&str; 7] = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ];
        let s = s.to_ascii_lowercase();
        Weekday::ALL
            .into_iter()
            .find(|d| d.name() == s || LONG[d.index() as usize] == s)
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A moment of the local week: the weekday and the minute since midnight
/// (0..1440).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub weekday: Weekday,
    pub minute: u32,
}

impl LocalTime {
    /// `hour`:`minute` on `weekday`; values past the day wrap into the
    /// following days.
    pub fn new(weekday: Weekday, hour: u32, minute: u32) -> LocalTime {
        LocalTime::from_week_minute(weekday.index() * DAY + hour * 60 + minute)
    }

    /// Minutes since Monday 00:00.
    fn week_minute(self) -> u32 {
        self.weekday.index() * DAY + self.minute % DAY
    }

    fn from_week_minute(m: u32) -> LocalTime {
        let m = m % WEEK;
        LocalTime {
            weekday: Weekday::from_index(m / DAY),
            minute: m % DAY,
        }
    }

    /// The UTC weekday and minute of `secs` seconds since the Unix epoch
    /// (a Thursday).
    pub fn from_unix_utc(secs: i64) -> LocalTime {
        let days = secs.div_euclid(86_400);
        let minute = (secs.rem_euclid(86_400) / 60) as u32;
        LocalTime {
            weekday: Weekday::from_index((days + 3).rem_euclid(7) as u32),
            minute,
        }
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.weekday, TimeOfDay(self.minute as u16))
    }
}

/// The local time now, from the C library's idea of the zone
/// (`/etc/localtime` or `TZ`; UTC when there is none, as in a bare boot
/// image).
pub fn local_now() -> LocalTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let t = secs as libc::time_t;
    // SAFETY: `libc::tm` is a plain C struct of integers and (on glibc and
    // musl) a `*const c_char` zone name, for all of which all-zero bytes are
    // valid values (a null name pointer is never read here).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers come from references to live locals of the right
    // types; `localtime_r` is the re-entrant variant that writes only into
    // `tm` (no shared static buffer), and it returns null on failure, which
    // is checked before `tm` is used.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return LocalTime::from_unix_utc(secs);
    }
    // tm_wday counts from Sunday = 0.
    let weekday = Weekday::from_index((tm.tm_wday.rem_euclid(7) as u32) + 6);
    let minute = (tm.tm_hour.clamp(0, 23) * 60 + tm.tm_min.clamp(0, 59)) as u32;
    LocalTime { weekday, minute }
}

/// A time of day as `HH:MM`, 00:00 to 24:00 (minutes since midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub const MIDNIGHT: TimeOfDay = TimeOfDay(0);
    pub const END_OF_DAY: TimeOfDay = TimeOfDay(DAY as u16);

    /// `hour`:`minute`, or `None` past 24:00.
    pub fn new(hour: u32, minute: u32) -> Option<TimeOfDay> {
        let m = hour.checked_mul(60)?.checked_add(minute)?;
        (minute < 60 && m <= DAY).then_some(TimeOfDay(m as u16))
    }

    /// Minutes since midnight, 0..=1440.
    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl FromStr for TimeOfDay {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<TimeOfDay, ScheduleError> {
        let bad = |reason: &str| ScheduleError::Time {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (h, m) = s.split_once(':').ok_or_else(|| bad("no colon"))?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || h.len() > 2 || !digits(m) || m.len() != 2 {
            return Err(bad("hours and minutes must be one or two and two digits"));
        }
        let (h, m): (u32, u32) = (h.parse().expect("digits"), m.parse().expect("digits"));
        if m > 59 {
            return Err(bad(&format!("minute {m} is above 59")));
        }
        if h > 24 {
            return Err(bad(&format!("hour {h} is above 24")));
        }
        TimeOfDay::new(h, m).ok_or_else(|| bad("past 24:00, the end of the day"))
    }
}

impl TryFrom<String> for TimeOfDay {
    type Error = ScheduleError;
    fn try_from(s: String) -> Result<TimeOfDay, ScheduleError> {
        s.parse()
    }
}

impl From<TimeOfDay> for String {
    fn from(t: TimeOfDay) -> String {
        t.to_string()
    }
}

/// A set of weekdays: `daily` or `*` (all), a day (`mon`), a range
/// (`mon-fri`, or `fri-mon` across the week's end), or a comma list of
/// those (`sat,sun`, `mon,wed-fri`). Full names (`monday`) are accepted;
/// case does not matter. Written back in a canonical form (`mon-fri`,
/// `sat,sun`, `daily`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Days(u8);

impl Days {
    pub const DAILY: Days = Days(0x7f);

    pub fn contains(self, d: Weekday) -> bool {
        self.0 & (1 << d.index()) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Weekday> {
        Weekday::ALL.into_iter().filter(move |d| self.contains(*d))
    }

    fn with(self, d: Weekday) -> Days {
        Days(self.0 | (1 << d.index()))
    }
}

impl FromIterator<Weekday> for Days {
    fn from_iter<I: IntoIterator<Item = Weekday>>(it: I) -> Days {
        it.into_iter().fold(Days(0), Days::with)
    }
}

impl fmt::Display for Days {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Days::DAILY {
            return f.write_str("daily");
        }
        let mut parts = Vec::new();
        let mut i = 0;
        while i < 7 {
            if !self.contains(Weekday::from_index(i)) {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < 6 && self.contains(Weekday::from_index(j + 1)) {
                j += 1;
            }
            let (a, b) = (Weekday::from_index(i), Weekday::from_index(j));
            parts.push(match j - i {
                0 => a.to_string(),
                1 => format!("{a},{b}"),
                _ => format!("{a}-{b}"),
            });
            i = j + 1;
        }
        f.write_str(&parts.join(","))
    }
}

impl FromStr for Days {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Days, ScheduleError> {
        let bad = |reason: String| ScheduleError::Days {
            value: s.to_string(),
            reason,
        };
        let t = s.trim();
        if t.eq_ignore_ascii_case("daily") || t == "*" {
            return Ok(Days::DAILY);
        }
        let mut days = Days(0);
        for item in t.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(bad("an empty item".into()));
            }
            let day = |n: &str| {
                let n = n.trim();
                Weekday::parse(n).ok_or_else(|| bad(format!("unknown day {n:?}")))
            };
            match item.split_once('-') {
                None => days = days.with(day(item)?),
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let span = (b.index() + 7 - a.index()) % 7;
                    for k in 0..=span {
                        days = days.with(Weekday::from_index(a.index() + k));
                    }
                }
            }
        }
        Ok(days)
    }
}

impl TryFrom<String> for Days {
    type Error = ScheduleError;
    fn try_from(s: String) -> Result<Days, ScheduleError> {
        s.parse()
    }
}

impl From<Days> for String {
    fn from(d: Days) -> String {
        d.to_string()
    }
}

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
mod tests {
    use super::*;
    use Weekday::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn at(d: Weekday, h: u32, m: u32) -> LocalTime {
        LocalTime::new(d, h, m)
    }

    fn sched(s: &str) -> Schedule {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match s.parse::<Schedule>() {
            Ok(v) => panic!("{s} parsed as {v}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn times_of_day() {
        assert_eq!("08:00".parse::<TimeOfDay>().unwrap().minutes(), 480);
        assert_eq!("8:05".parse::<TimeOfDay>().unwrap().minutes(), 485);
        assert_eq!("24:00".parse::<TimeOfDay>().unwrap(), TimeOfDay::END_OF_DAY);
        assert_eq!("00:00".parse::<TimeOfDay>().unwrap(), TimeOfDay::MIDNIGHT);
        assert_eq!(TimeOfDay::new(7, 5).unwrap().to_string(), "07:05");
        assert_eq!(TimeOfDay::new(24, 1), None);
        let e = |s: &str| s.parse::<TimeOfDay>().unwrap_err().to_string();
        assert_eq!(
            e("25:00"),
            "invalid time \"25:00\": hour 25 is above 24 (expected HH:MM, 00:00 to 24:00)"
        );
        assert_eq!(
            e("12:60"),
            "invalid time \"12:60\": minute 60 is above 59 (expected HH:MM, 00:00 to 24:00)"
        );
        assert_eq!(
            e("24:30"),
            "invalid time \"24:30\": past 24:00, the end of the day (expected HH:MM, 00:00 to 24:00)"
        );
        assert_eq!(
            e("0800"),
            "invalid time \"0800\": no colon (expected HH:MM, 00:00 to 24:00)"
        );
        for s in ["8:5", "123:00", ":30", "ab:cd", "-1:00", "08:00 "] {
            assert!(
                e(s).contains("hours and minutes must be one or two and two digits"),
                "{s}: {}",
                e(s)
            );
        }
    }

    #[test]
    fn days() {
        let d = |s: &str| s.parse::<Days>().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(d("daily"), Days::DAILY);
        assert_eq!(d("*"), Days::DAILY);
        assert_eq!(d("mon-sun"), Days::DAILY);
        assert_eq!(d("mon-fri").to_string(), "mon-fri");
        assert_eq!(d("Sat, Sunday").to_string(), "sat,sun");
        assert_eq!(d("wed").to_string(), "wed");
        assert_eq!(d("mon,wed-fri").to_string(), "mon,wed-fri");
        // A range across the week's end; the canonical form starts on Monday.
        assert_eq!(d("fri-mon").to_string(), "mon,fri-sun");
        assert_eq!(d("fri-mon"), d("fri,sat,sun,mon"));
        assert_eq!(d("tue-tue").to_string(), "tue");
        assert_eq!(d("mon,mon,tue").to_string(), "mon,tue");
        let e = |s: &str| s.parse::<Days>().unwrap_err().to_string();
        let tail = "(expected daily or *, a day such as mon, a range such as mon-fri, \
                    or a list such as sat,sun)";
        assert_eq!(
            e("mon-frx"),
            format!("invalid days \"mon-frx\": unknown day \"frx\" {tail}")
        );
        assert_eq!(e(""), format!("invalid days \"\": an empty item {tail}"));
        assert_eq!(
            e("sat,,sun"),
            format!("invalid days \"sat,,sun\": an empty item {tail}")
        );
        for s in ["daily", "mon-fri", "sat,sun", "mon,wed,fri", "tue-thu,sun"] {
            assert_eq!(d(&d(s).to_string()), d(s), "{s} round trip");
        }
    }

    #[test]
    fn windows_in_the_day_and_the_default() {
        let s = sched("mon-fri 08:00-18:00=100, sat,sun 00:00-24:00=500, *=20");
        assert_eq!(s.windows.len(), 2);
        assert_eq!(s.limit_at(at(Mon, 8, 0)), 100, "start is inside");
        assert_eq!(s.limit_at(at(Mon, 7, 59)), 20, "before: the default");
        assert_eq!(s.limit_at(at(Fri, 17, 59)), 100);
        assert_eq!(s.limit_at(at(Fri, 18, 0)), 20, "end is outside");
        assert_eq!(s.limit_at(at(Sat, 0, 0)), 500);
        assert_eq!(s.limit_at(at(Sun, 23, 59)), 500);
        assert_eq!(
            s.limit_at(at(Mon, 0, 0)),
            20,
            "the weekend ends at Sunday 24:00"
        );
        assert_eq!(sched("*=0").limit_at(at(Wed, 12, 0)), 0);
        assert_eq!(
            sched("09:00-10:00=7").limit_at(at(Sun, 9, 30)),
            7,
            "no days = daily"
        );
        assert_eq!(sched("09:00-10:00=7").mbit, 0, "no default = no limit");
        assert_eq!(sched("default=3; tue 01:00-02:00=4").mbit, 3);
    }

    #[test]
    fn midnight_crossing_belongs_to_the_next_day() {
        let s = sched("fri 22:00-06:00=50, *=0");
        assert_eq!(s.limit_at(at(Fri, 21, 59)), 0);
        assert_eq!(s.limit_at(at(Fri, 22, 0)), 50);
        assert_eq!(s.limit_at(at(Fri, 23, 59)), 50);
        assert_eq!(s.limit_at(at(Sat, 0, 0)), 50, "after midnight: Saturday");
        assert_eq!(s.limit_at(at(Sat, 5, 59)), 50);
        assert_eq!(s.limit_at(at(Sat, 6, 0)), 0);
        assert_eq!(
            s.limit_at(at(Fri, 3, 0)),
            0,
            "Friday early is Thursday's night"
        );
        assert_eq!(
            s.limit_at(at(Sat, 22, 30)),
            0,
            "only Friday starts the window"
        );
        // Sunday night runs into Monday morning across the week's end.
        let s = sched("sun 23:00-01:00=9");
        assert_eq!(s.limit_at(at(Sun, 23, 30)), 9);
        assert_eq!(s.limit_at(at(Mon, 0, 30)), 9);
        assert_eq!(s.limit_at(at(Mon, 1, 0)), 0);
        assert_eq!(s.limit_at(at(Sat, 0, 30)), 0);
        // An end of 00:00 stops at midnight.
        let s = sched("mon 22:00-00:00=5");
        assert_eq!(s.limit_at(at(Mon, 23, 59)), 5);
        assert_eq!(s.limit_at(at(Tue, 0, 0)), 0);
        // Nights on weekdays: Monday's early hours belong to Sunday, which is
        // not listed.
        let s = sched("mon-fri 20:00-08:00=300, *=40");
        assert_eq!(s.limit_at(at(Mon, 7, 0)), 40);
        assert_eq!(s.limit_at(at(Tue, 7, 0)), 300);
        assert_eq!(
            s.limit_at(at(Sat, 7, 59)),
            300,
            "Friday night ends Saturday 08:00"
        );
        assert_eq!(s.limit_at(at(Sat, 8, 0)), 40);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn weekday_boundaries() {
        let s = sched("mon-fri 00:00-24:00=1, *=2");
        assert_eq!(s.limit_at(at(Sun, 23, 59)), 2);
        assert_eq!(s.limit_at(at(Mon, 0, 0)), 1);
        assert_eq!(s.limit_at(at(Fri, 23, 59)), 1);
        assert_eq!(s.limit_at(at(Sat, 0, 0)), 2);
        // Windows that touch do not overlap.
        let s = sched("mon 00:00-12:00=1, mon 12:00-24:00=2, tue 00:00-01:00=3");
        assert_eq!(s.limit_at(at(Mon, 11, 59)), 1);
        assert_eq!(s.limit_at(at(Mon, 12, 0)), 2);
        assert_eq!(s.limit_at(at(Tue, 0, 0)), 3);
        // A night window touching the next morning's window.
        assert!(
            "fri 22:00-06:00=1, sat 06:00-08:00=2"
                .parse::<Schedule>()
                .is_ok()
        );
    }

    #[test]
    fn next_change() {
        let s = sched("mon-fri 08:00-18:00=100, *=0");
        let c = |t| s.next_change(t);
        assert_eq!(
            c(at(Mon, 7, 0)),
            Some(Change {
                in_minutes: 60,
                mbit: 100
            })
        );
        assert_eq!(
            c(at(Mon, 8, 0)),
            Some(Change {
                in_minutes: 600,
                mbit: 0
            })
        );
        assert_eq!(
            c(at(Fri, 20, 0)).unwrap().in_minutes,
            2 * DAY + 12 * 60,
            "to Monday 08:00"
        );
        assert_eq!(c(at(Sun, 23, 59)).unwrap().in_minutes, 8 * 60 + 1);
        // Adjacent windows with the same limit: no change at their seam.
        let s = sched("mon 00:00-12:00=5, mon 12:00-24:00=5, *=1");
        assert_eq!(s.next_change(at(Mon, 1, 0)).unwrap().in_minutes, 23 * 60);
        assert_eq!(s.next_change(at(Mon, 1, 0)).unwrap().mbit, 1);
        // A night crossing midnight.
        let s = sched("daily 22:00-06:00=9, *=1");
        assert_eq!(s.next_change(at(Wed, 23, 0)).unwrap().in_minutes, 7 * 60);
        assert_eq!(s.next_change(at(Wed, 21, 0)).unwrap().in_minutes, 60);
        assert_eq!(sched("*=5").next_change(at(Tue, 3, 0)), None);
        assert_eq!(
            sched("daily 00:00-24:00=5, *=0").next_change(at(Tue, 3, 0)),
            None
        );
        assert_eq!(
            sched("daily 00:00-24:00=5, *=5").next_change(at(Tue, 3, 0)),
            None
        );
    }

    #[test]
    fn overlaps_are_refused_naming_both_windows() {
        assert_eq!(
            err("mon-fri 08:00-18:00=100, sat,sun 00:00-24:00=500, sat 10:00-12:00=50"),
            "window 3 (sat 10:00-12:00=50) overlaps window 2 (sat,sun 00:00-24:00=500) on sat at 10:00"
        );
        assert_eq!(
            err("fri 22:00-06:00=50, sat 05:00-07:00=10"),
            "window 2 (sat 05:00-07:00=10) overlaps window 1 (fri 22:00-06:00=50) on sat at 05:00",
            "the part after midnight overlaps on the next day"
        );
        assert_eq!(
            err("sun 23:00-02:00=1, mon 01:00-03:00=2"),
            "window 2 (mon 01:00-03:00=2) overlaps window 1 (sun 23:00-02:00=1) on mon at 01:00",
            "across the week's end"
        );
        assert_eq!(
            err("08:00-09:00=1, thu 08:30-08:45=2"),
            "window 2 (thu 08:30-08:45=2) overlaps window 1 (daily 08:00-09:00=1) on thu at 08:30"
        );
        // The same hours on other days are no overlap.
        assert!(
            "mon 08:00-18:00=1, tue 08:00-18:00=2"
                .parse::<Schedule>()
                .is_ok()
        );
    }

    #[test]
    fn every_validation_error() {
        assert_eq!(
            err("mon-fri 08:00-18:00=1001"),
            "window 1 (mon-fri 08:00-18:00=1001): mbit 1001 is above the maximum of 1000 (0 = no limit)"
        );
        assert_eq!(
            err("*=2000"),
            "the default outside windows: mbit 2000 is above the maximum of 1000 (0 = no limit)"
        );
        assert_eq!(
            err("mon 24:00-01:00=1"),
            "window 1 (mon 24:00-01:00=1): start 24:00 is the end of the day; a window starts at 23:59 at the latest"
        );
        assert_eq!(
            err("*=1, tue 10:00-10:00=1"),
            "window 1 (tue 10:00-10:00=1): start and end are both 10:00; a whole day is 00:00-24:00"
        );
        assert!(
            sched("mon 00:00-24:00=1000").validate().is_ok(),
            "1000 is allowed"
        );
    }

    #[test]
    fn every_spec_error() {
        assert_eq!(
            err("mon-fri 08:00-18:00"),
            "rate schedule entry 1 (\"mon-fri 08:00-18:00\"): no =MBIT"
        );
        assert_eq!(
            err("*=1, mon 08:00-09:00=x"),
            "rate schedule entry 2 (\"mon 08:00-09:00=\"): expected a number of Mbit/s after ="
        );
        assert_eq!(
            err("mon 08:00-09:00=10 tue"),
            "rate schedule entry 1 (\"mon 08:00-09:00=10\"): expected , or ; after the number, found 't'"
        );
        assert_eq!(
            err("mon 08:00-09:00=99999999999999999999999"),
            "rate schedule entry 1 (\"mon 08:00-09:00=99999999999999999999999\"): the number of Mbit/s is too large"
        );
        assert_eq!(
            err("*=1, default=2"),
            "rate schedule entry 2 (\"default=2\"): the default is already given in entry 1"
        );
        assert_eq!(
            err("=5"),
            "rate schedule entry 1 (\"=5\"): expected [DAYS] HH:MM-HH:MM or * before ="
        );
        assert_eq!(
            err("mon-fri=5"),
            "rate schedule entry 1 (\"mon-fri=5\"): expected HH:MM-HH:MM before =, found \"mon-fri\""
        );
        assert_eq!(
            err("mon 25:00-26:00=5"),
            "rate schedule entry 1 (\"mon 25:00-26:00=5\"): start: invalid time \"25:00\": \
             hour 25 is above 24 (expected HH:MM, 00:00 to 24:00)"
        );
        assert_eq!(
            err("mon 08:00-8=5"),
            "rate schedule entry 1 (\"mon 08:00-8=5\"): end: invalid time \"8\": no colon \
             (expected HH:MM, 00:00 to 24:00)"
        );
        assert!(
            err("mun 08:00-09:00=5").starts_with(
                "rate schedule entry 1 (\"mun 08:00-09:00=5\"): days: invalid days \"mun\": unknown day \"mun\""
            ),
            "{}",
            err("mun 08:00-09:00=5")
        );
        assert_eq!(
            err("  "),
            "the rate schedule is empty; give at least *=MBIT"
        );
    }

    #[test]
    fn compact_form_round_trips_and_tolerates_spacing() {
        let s = sched("mon-fri 08:00-18:00=100, sat,sun 00:00-24:00=500, *=0");
        assert_eq!(
            s.to_string(),
            "mon-fri 08:00-18:00=100, sat,sun 00:00-24:00=500, *=0"
        );
        assert_eq!(sched(&s.to_string()), s);
        let t = sched(" sat, sun  00:00-24:00 = 500 ;mon-fri 08:00-18:00=100;*= 0, ");
        assert_eq!(t.windows[0], s.windows[1]);
        assert_eq!(t.windows[1], s.windows[0]);
        assert_eq!(Schedule::constant(7).to_string(), "*=7");
        assert_eq!(sched("*=7"), Schedule::constant(7));
    }

    #[test]
    fn toml_round_trip() {
        let s = sched("mon-fri 08:00-18:00=100, fri 22:00-06:00=10, *=30");
        let text = toml::to_string(&s).unwrap();
        assert!(text.contains("[[window]]"), "{text}");
        assert!(text.contains("days = \"mon-fri\""), "{text}");
        assert!(text.contains("start = \"22:00\""), "{text}");
        let back: Schedule = toml::from_str(&text).unwrap();
        assert_eq!(back, s);
        let bad = toml::from_str::<Schedule>(
            "[[window]]\ndays = \"mon\"\nstart = \"8\"\nend = \"09:00\"\nmbit = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("line 3") && bad.contains("invalid time \"8\""),
            "{bad}"
        );
        let bad = toml::from_str::<Schedule>("mbit = 1\nspeed = 2\n")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("unknown field `speed`") && bad.contains("line 2"),
            "{bad}"
        );
    }

    #[test]
    fn utc_fallback_and_local_now() {
        assert_eq!(
            LocalTime::from_unix_utc(0),
            at(Thu, 0, 0),
            "the epoch was a Thursday"
        );
        // 2024-01-01 was a Monday.
        assert_eq!(
            LocalTime::from_unix_utc(1_704_067_200 + 3_661),
            at(Mon, 1, 1)
        );
        assert_eq!(LocalTime::from_unix_utc(-60), at(Wed, 23, 59));
        let now = local_now();
        assert!(now.minute < DAY);
    }

    /// Wait until `rate` shows `want` (the follower runs on its own thread).
    fn wait_for(rate: &RateLimit, want: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rate.get() != want {
            assert!(
                std::time::Instant::now() < deadline,
                "the limit stayed at {} instead of {want}",
                rate.get()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn follower_tracks_the_schedule_until_dropped() {
        let s = sched("mon 01:00-02:00=100, mon 02:00-03:00=200, *=50");
        // A clock the test moves; it counts how often it is read.
        let minute = Arc::new(AtomicU32::new(0));
        let reads = Arc::new(AtomicU32::new(0));
        let (m2, r2) = (minute.clone(), reads.clone());
        let clock = move || {
            r2.fetch_add(1, Ordering::SeqCst);
            LocalTime::new(Mon, 0, m2.load(Ordering::SeqCst))
        };
        let rate = RateLimit::new(999);
        let f = follow_with(s, rate.clone(), Duration::from_millis(2), clock);
        assert_eq!(rate.get(), 50, "set at once, before the thread runs");
        for (m, want) in [
            (60, 100),
            (150, 200),
            (179, 200),
            (180, 50),
            (24 * 60 + 60, 50),
        ] {
            minute.store(m, Ordering::SeqCst);
            wait_for(&rate, want);
        }
        minute.store(90, Ordering::SeqCst);
        wait_for(&rate, 100);
        drop(f);
        let stopped_at = reads.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(reads.load(Ordering::SeqCst), stopped_at, "stopped on drop");
        minute.store(0, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(rate.get(), 100, "nobody changes the limit after the drop");
        // A schedule without windows sets the limit and starts no thread.
        let r = RateLimit::new(0);
        let f = follow(Schedule::constant(30), r.clone());
        assert!(f.thread.is_none());
        assert_eq!(r.get(), 30);
    }

    #[test]
    fn follower_leaves_a_hand_set_limit_until_the_next_boundary() {
        let minute = Arc::new(AtomicU32::new(0));
        let m2 = minute.clone();
        let clock = move || LocalTime::new(Tue, 0, m2.load(Ordering::SeqCst));
        let rate = RateLimit::new(0);
        let _f = follow_with(
            sched("tue 10:00-11:00=100, *=10"),
            rate.clone(),
            Duration::from_millis(2),
            clock,
        );
        assert_eq!(rate.get(), 10);
        rate.set(77);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            rate.get(),
            77,
            "no boundary passed: the hand-set limit holds"
        );
        minute.store(10 * 60, Ordering::SeqCst);
        wait_for(&rate, 100);
        rate.set_override(Some(5));
        assert_eq!(rate.get(), 5, "the receiver's override is left alone");
    }
}
