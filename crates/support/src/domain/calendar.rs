//! When a team works: its time zone, its opening hours on each weekday and its
//! public holidays. SLA clocks count only the time inside those hours.
//!
//! Hours are local wall-clock times, turned into instants through the zone's
//! rules on each day, so a daylight-saving change is counted as the hours that
//! really passed (a 00:00–24:00 day is 23 or 25 hours long on the change days).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How far ahead a due time is searched: a calendar open so little that a
/// target does not fit in this many days has no due time.
const HORIZON_DAYS: i64 = 3 * 366;
const MINUTES_PER_DAY: u16 = 24 * 60;

/// Opening hours inside one day, as minutes after local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: u16,
    end: u16,
}

impl Span {
    /// Parses `HH:MM-HH:MM`; the end may be `24:00`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (start, end) = text
            .split_once('-')
            .ok_or_else(|| format!("{text:?} is not HH:MM-HH:MM"))?;
        let (start, end) = (minute_of_day(start.trim())?, minute_of_day(end.trim())?);
        if start >= end {
            return Err(format!("{text:?} ends before it starts"));
        }
        Ok(Self { start, end })
    }

    /// Whether `minute` after local midnight falls inside.
    pub fn contains(&self, minute: u32) -> bool {
        (u32::from(self.start)..u32::from(self.end)).contains(&minute)
    }
}

fn minute_of_day(text: &str) -> Result<u16, String> {
    if text == "24:00" {
        return Ok(MINUTES_PER_DAY);
    }
    let time = NaiveTime::parse_from_str(text, "%H:%M")
        .map_err(|_| format!("{text:?} is not a time of day (HH:MM)"))?;
    // Whole minutes only: below 1440, so the cast is exact.
    Ok(u16::try_from(time.signed_duration_since(NaiveTime::MIN).num_minutes()).unwrap_or(0))
}

/// A team's working time.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessCalendar {
    zone: Tz,
    /// Monday first.
    week: [Vec<Span>; 7],
    holidays: BTreeSet<NaiveDate>,
}

impl BusinessCalendar {
    /// A calendar from its parts. Each day's spans must not overlap, and the
    /// week must have some hours (a clock that can never run is a mistake in
    /// the data, not a case that never breaches).
    pub fn new(
        zone: &str,
        week: [Vec<Span>; 7],
        holidays: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<Self, String> {
        let zone: Tz = zone
            .parse()
            .map_err(|_| format!("{zone:?} is not an IANA time zone"))?;
        let mut week = week;
        for day in &mut week {
            day.sort_by_key(|s| s.start);
            if day.windows(2).any(|w| w[0].end > w[1].start) {
                return Err("a day's hours overlap".into());
            }
        }
        if week.iter().all(Vec::is_empty) {
            return Err("the week has no working hours".into());
        }
        Ok(Self {
            zone,
            week,
            holidays: holidays.into_iter().collect(),
        })
    }

    /// Every hour of every day, no holidays: for clocks that run around the clock.
    pub fn always(zone: &str) -> Result<Self, String> {
        let day = vec![Span {
            start: 0,
            end: MINUTES_PER_DAY,
        }];
        Self::new(zone, std::array::from_fn(|_| day.clone()), [])
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    pub fn is_holiday(&self, day: NaiveDate) -> bool {
        self.holidays.contains(&day)
    }

    /// Whether `day` is a working day: the week has hours on it and it is not
    /// a holiday.
    pub fn works_on(&self, day: NaiveDate) -> bool {
        !self.week[day.weekday().num_days_from_monday() as usize].is_empty()
            && !self.is_holiday(day)
    }

    /// The end of the `days`-th working day after the local day of `from` (the
    /// day something is asked is not counted): when "within N working days"
    /// runs out. `None` for no days at all, or past the search horizon.
    pub fn working_days_after(&self, from: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
        if days == 0 {
            return None;
        }
        let mut day = from.with_timezone(&self.zone).date_naive();
        let mut left = days;
        for _ in 0..HORIZON_DAYS {
            day = day.succ_opt()?;
            if self.works_on(day) {
                left = left.saturating_sub(1);
                if left == 0 {
                    return Some(self.instant(day.succ_opt()?, 0));
                }
            }
        }
        None
    }

    /// The instant a local minute of `day` stands for. A minute skipped by a
    /// spring-forward change is the change itself; one repeated in autumn is
    /// its first occurrence.
    fn instant(&self, day: NaiveDate, minute: u16) -> DateTime<Utc> {
        let mut local = day.and_time(NaiveTime::MIN) + Duration::minutes(i64::from(minute));
        // Gaps last at most a few hours; a minute at a time finds their end.
        for _ in 0..MINUTES_PER_DAY {
            match self.zone.from_local_datetime(&local) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    return t.with_timezone(&Utc);
                }
                LocalResult::None => local += Duration::minutes(1),
            }
        }
        Utc.from_utc_datetime(&local)
    }

    /// The working intervals of one local day, as instants; none on a holiday.
    fn open_on(&self, day: NaiveDate) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> {
        let spans: &[Span] = if self.is_holiday(day) {
            &[]
        } else {
            &self.week[day.weekday().num_days_from_monday() as usize]
        };
        spans
            .iter()
            .map(move |s| (self.instant(day, s.start), self.instant(day, s.end)))
    }

    fn local_day(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.zone).date_naive()
    }

    /// Working time between two instants (zero when `to` is not after `from`).
    pub fn elapsed(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        let mut total = Duration::zero();
        let (first, last) = (self.local_day(from).pred_opt(), self.local_day(to));
        let mut day = first.unwrap_or(last);
        while day <= last {
            for (open, close) in self.open_on(day) {
                let (start, end) = (open.max(from), close.min(to));
                if end > start {
                    total += end - start;
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        total
    }

    /// The instant at which `work` of working time has passed since `from`;
    /// `None` when that is beyond the search horizon.
    pub fn after(&self, from: DateTime<Utc>, work: Duration) -> Option<DateTime<Utc>> {
        if work <= Duration::zero() {
            return Some(from);
        }
        let mut left = work;
        let mut day = self.local_day(from).pred_opt()?;
        for _ in 0..HORIZON_DAYS {
            for (open, close) in self.open_on(day) {
                let start = open.max(from);
                if close <= start {
                    continue;
                }
                let span = close - start;
                if span >= left {
                    return Some(start + left);
                }
                left -= span;
            }
            day = day.succ_opt()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn weekdays(hours: &str) -> [Vec<Span>; 7] {
        let span = Span::parse(hours).unwrap();
        std::array::from_fn(|d| if d < 5 { vec![span] } else { vec![] })
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn berlin() -> BusinessCalendar {
        // 2026-12-25 and 26 are public holidays in Germany.
        BusinessCalendar::new(
            "Europe/Berlin",
            weekdays("09:00-17:00"),
            [day("2026-12-25"), day("2026-12-26")],
        )
        .unwrap()
    }

    fn kolkata() -> BusinessCalendar {
        BusinessCalendar::new("Asia/Kolkata", weekdays("10:00-18:30"), [day("2026-10-02")]).unwrap()
    }

    #[test]
    fn an_hour_target_inside_a_day_is_an_hour_later() {
        // Tuesday 10:00 Berlin (CET, +1) is 09:00 UTC.
        let at = utc("2026-12-01T09:00:00Z");
        assert_eq!(
            berlin().after(at, Duration::hours(1)),
            Some(utc("2026-12-01T10:00:00Z"))
        );
    }

    #[test]
    fn the_same_instant_counts_by_each_teams_own_hours() {
        // Friday 2026-12-04 15:00 UTC: 16:00 in Berlin, 20:30 in Bengaluru.
        let at = utc("2026-12-04T15:00:00Z");
        // Berlin: one hour on Friday, three on Monday from 09:00 CET (08:00 UTC).
        assert_eq!(
            berlin().after(at, Duration::hours(4)),
            Some(utc("2026-12-07T11:00:00Z"))
        );
        // Bengaluru has closed: four hours from Monday 10:00 IST (04:30 UTC).
        assert_eq!(
            kolkata().after(at, Duration::hours(4)),
            Some(utc("2026-12-07T08:30:00Z"))
        );
    }

    #[test]
    fn working_days_skip_weekends_and_holidays_and_end_at_local_midnight() {
        let calendar = BusinessCalendar::new(
            "Europe/Berlin",
            weekdays("08:00-20:00"),
            ["2026-12-25".parse().unwrap(), "2026-12-26".parse().unwrap()],
        )
        .unwrap();
        // Asked on Tuesday 22 Dec: Wed 23, Thu 24, (Fri 25 and Sat 26 off,
        // Sunday off) Mon 28, Tue 29, Wed 30: due at Thursday 00:00 CET.
        let asked: DateTime<Utc> = "2026-12-22T15:00:00Z".parse().unwrap();
        assert_eq!(
            calendar.working_days_after(asked, 5),
            Some("2026-12-30T23:00:00Z".parse().unwrap())
        );
        // Within no working days is no promise at all.
        assert_eq!(calendar.working_days_after(asked, 0), None);
    }

    #[test]
    fn a_weekend_and_public_holidays_are_skipped() {
        // Thursday 24 December 16:00 CET: one hour that day, then the 25th (holiday,
        // Friday), the 26th (holiday, Saturday) and Sunday are closed.
        let at = utc("2026-12-24T15:00:00Z");
        assert_eq!(
            berlin().after(at, Duration::hours(2)),
            Some(utc("2026-12-28T09:00:00Z"))
        );
        assert_eq!(
            berlin().elapsed(at, utc("2026-12-28T09:00:00Z")),
            Duration::hours(2)
        );
        // Gandhi Jayanti, Friday 2 October: Thursday 18:00 IST plus one hour is
        // Monday 10:30 IST.
        assert_eq!(
            kolkata().after(utc("2026-10-01T12:30:00Z"), Duration::hours(1)),
            Some(utc("2026-10-05T05:00:00Z"))
        );
    }

    #[test]
    fn a_daylight_saving_change_counts_the_hours_that_really_passed() {
        // Clocks around the clock in Berlin: on Sunday 29 March 2026 clocks go from
        // 02:00 to 03:00, so that local day has 23 hours.
        let always = BusinessCalendar::always("Europe/Berlin").unwrap();
        let midnight = utc("2026-03-28T23:00:00Z"); // 00:00 CET on the 29th
        let next_midnight = utc("2026-03-29T22:00:00Z"); // 00:00 CEST on the 30th
        assert_eq!(always.elapsed(midnight, next_midnight), Duration::hours(23));
        assert_eq!(
            always.after(midnight, Duration::hours(23)),
            Some(next_midnight)
        );
        // Office hours: Friday 16:00 CET plus two hours ends Monday 10:00 CEST,
        // which is 08:00 UTC where a week earlier it would have been 09:00.
        assert_eq!(
            berlin().after(utc("2026-03-27T15:00:00Z"), Duration::hours(2)),
            Some(utc("2026-03-30T08:00:00Z"))
        );
        // Autumn: 25 October has 25 hours.
        let october = always.elapsed(utc("2026-10-24T22:00:00Z"), utc("2026-10-25T23:00:00Z"));
        assert_eq!(october, Duration::hours(25));
    }

    #[test]
    fn hours_that_start_inside_a_skipped_hour_start_when_the_clocks_move() {
        let mut week: [Vec<Span>; 7] = Default::default();
        week[6] = vec![Span::parse("02:30-04:00").unwrap()]; // Sunday
        let odd = BusinessCalendar::new("Europe/Berlin", week, []).unwrap();
        // 29 March: 02:30 does not exist; work starts at 03:00 CEST (01:00 UTC).
        let saturday = utc("2026-03-28T12:00:00Z");
        assert_eq!(
            odd.after(saturday, Duration::minutes(1)),
            Some(utc("2026-03-29T01:01:00Z"))
        );
        assert_eq!(
            odd.elapsed(saturday, utc("2026-03-30T00:00:00Z")),
            Duration::hours(1)
        );
    }

    #[test]
    fn bad_calendars_are_refused() {
        assert!(Span::parse("17:00-09:00").is_err());
        assert!(Span::parse("9-5").is_err());
        assert!(Span::parse("09:00-25:00").is_err());
        assert!(BusinessCalendar::new("Mars/Olympus", weekdays("09:00-17:00"), []).is_err());
        assert!(BusinessCalendar::new("UTC", Default::default(), []).is_err());
        let overlapping: [Vec<Span>; 7] = std::array::from_fn(|_| {
            vec![
                Span::parse("09:00-13:00").unwrap(),
                Span::parse("12:00-17:00").unwrap(),
            ]
        });
        assert!(BusinessCalendar::new("UTC", overlapping, []).is_err());
    }

    proptest! {
        /// What `after` adds, `elapsed` counts back, in any zone and from any instant.
        #[test]
        fn after_and_elapsed_agree(
            start in 1_767_225_600i64..1_830_297_600, // 2026 to 2028
            minutes in 0i64..20_000,
            zone in prop::sample::select(vec!["Europe/Berlin", "Asia/Kolkata", "America/New_York", "Asia/Shanghai"]),
        ) {
            let calendar = BusinessCalendar::new(zone, weekdays("08:30-17:45"), [day("2027-01-01")]).unwrap();
            let from = DateTime::from_timestamp(start, 0).unwrap();
            let due = calendar.after(from, Duration::minutes(minutes)).unwrap();
            prop_assert!(due >= from);
            prop_assert_eq!(calendar.elapsed(from, due), Duration::minutes(minutes));
        }
    }
}
