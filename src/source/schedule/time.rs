//! Local time for rate schedules: weekdays, times of day, sets of days,
//! and the machine's local time now (localtime_r).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ScheduleError;

/// Minutes in a day and in a week.
pub(super) const DAY: u32 = 24 * 60;
pub(super) const WEEK: u32 = 7 * DAY;

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
    pub(super) fn week_minute(self) -> u32 {
        self.weekday.index() * DAY + self.minute % DAY
    }

    pub(super) fn from_week_minute(m: u32) -> LocalTime {
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
pub struct TimeOfDay(pub(super) u16);

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
pub struct Days(pub(super) u8);

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
