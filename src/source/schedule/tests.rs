//! Unit tests of `schedule`.

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
