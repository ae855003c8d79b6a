//! Times on the wall clock of the site they belong to.
//!
//! A page keeps one clock, the first site's (`Chrome::timezone`), for whatever belongs to
//! no site (the audit log, admins, the dashboard's "today"). An event, an alarm, a door's
//! state or a reader's last word is shown on the clock of the site its door is at, as
//! people there read it. A time on another clock than the page's carries that zone's
//! abbreviation ("09:05:00 EST"), so a list that mixes sites cannot be misread; the
//! footer says which zone each abbreviation is. Where every site keeps the same time no
//! time carries a mark and pages read exactly as on a single site.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use chrono_tz::Tz;

use crate::policy::Snapshot;

/// A date and time, as lists show them.
pub const DATE_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// A time of day, for today's lists (the live feed, open doors).
pub const TIME_OF_DAY: &str = "%H:%M:%S";

/// `at` on `tz`'s wall clock in `format` (strftime), followed by the zone's abbreviation
/// when `tz` is not the page's clock `page`.
pub fn on_clock(at: &DateTime<Utc>, tz: Tz, page: Tz, format: &str) -> String {
    let local = at.with_timezone(&tz);
    if tz == page {
        local.format(format).to_string()
    } else {
        format!("{} {}", local.format(format), local.format("%Z"))
    }
}

/// An end date as forms take it: access "until 2027-03-31" ends at the midnight that
/// closes that day, and is shown as that day, the last one it is good for. An end at any
/// other time (set through the API or a site file) is shown with its time. Marked with
/// the zone like [`on_clock`].
pub fn last_day(at: &DateTime<Utc>, tz: Tz, page: Tz) -> String {
    let local = at.with_timezone(&tz);
    let midnight = local.time() == chrono::NaiveTime::MIN;
    if midnight {
        let day = (*at - chrono::TimeDelta::seconds(1)).with_timezone(&tz);
        if tz == page {
            day.format("%Y-%m-%d").to_string()
        } else {
            format!("{} {}", day.format("%Y-%m-%d"), local.format("%Z"))
        }
    } else {
        on_clock(at, tz, page, "%Y-%m-%d %H:%M")
    }
}

/// A timezone that sites keep other than the page's, as the footer explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherClock {
    /// The names of the sites that keep it, joined: "New York, Boston".
    pub sites: String,
    pub tz: Tz,
    /// The abbreviations its times are marked with this year: "EST or EDT".
    pub marks: String,
}

/// Every timezone the appliance's sites keep other than `page`, in site order.
pub fn other_clocks(snapshot: &Snapshot, page: Tz, now: DateTime<Utc>) -> Vec<OtherClock> {
    let mut clocks: Vec<(Tz, Vec<&str>)> = Vec::new();
    for site in snapshot.sites() {
        let Some(tz) = snapshot.site_timezone(site.id).filter(|tz| *tz != page) else {
            continue;
        };
        match clocks.iter_mut().find(|(known, _)| *known == tz) {
            Some((_, names)) => names.push(&site.name),
            None => clocks.push((tz, vec![&site.name])),
        }
    }
    clocks
        .into_iter()
        .map(|(tz, names)| OtherClock {
            sites: names.join(", "),
            tz,
            marks: zone_marks(tz, now),
        })
        .collect()
}

/// Every door's id grouped by its site's timezone, in site order.
pub fn doors_by_clock(snapshot: &Snapshot) -> Vec<(Tz, Vec<i64>)> {
    let mut clocks: Vec<(Tz, Vec<i64>)> = Vec::new();
    for site in snapshot.sites() {
        if let Some(tz) = snapshot.site_timezone(site.id)
            && !clocks.iter().any(|(known, _)| *known == tz)
        {
            clocks.push((tz, Vec::new()));
        }
    }
    for door in snapshot.doors() {
        let tz = snapshot.door_timezone(door.id);
        if let Some((_, doors)) = clocks.iter_mut().find(|(known, _)| Some(*known) == tz) {
            doors.push(door.id);
        }
    }
    clocks
}

/// The doors of each site, in site order, with the site's timezone.
pub fn doors_by_site(snapshot: &Snapshot) -> Vec<(i64, Tz, Vec<i64>)> {
    let mut sites: Vec<(i64, Tz, Vec<i64>)> = snapshot
        .sites()
        .iter()
        .filter_map(|site| Some((site.id, snapshot.site_timezone(site.id)?, Vec::new())))
        .collect();
    for door in snapshot.doors() {
        let site = snapshot.door_view(door.id).map(|view| view.site.id);
        if let Some((_, _, doors)) = sites.iter_mut().find(|(id, _, _)| Some(*id) == site) {
            doors.push(door.id);
        }
    }
    sites
}

/// The abbreviations `tz` uses in winter and summer of `now`'s year: "EST or EDT",
/// "JST", or an offset ("+03") for a zone with no abbreviation.
pub fn zone_marks(tz: Tz, now: DateTime<Utc>) -> String {
    let year = now.with_timezone(&tz).year();
    let mut marks: Vec<String> = Vec::new();
    for month in [1, 7] {
        if let Some(at) = Utc.with_ymd_and_hms(year, month, 15, 12, 0, 0).single() {
            let mark = at.with_timezone(&tz).format("%Z").to_string();
            if !marks.contains(&mark) {
                marks.push(mark);
            }
        }
    }
    marks.join(" or ")
}

#[cfg(test)]
mod tests {
    use chrono_tz::America::New_York;
    use chrono_tz::Asia::{Dubai, Tokyo};
    use chrono_tz::Europe::Berlin;

    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_time_on_the_pages_clock_has_no_mark_and_one_elsewhere_has_its_zone() {
        let at = utc("2026-11-23T14:05:00Z");
        assert_eq!(
            on_clock(&at, Berlin, Berlin, DATE_TIME),
            "2026-11-23 15:05:00"
        );
        assert_eq!(
            on_clock(&at, New_York, Berlin, DATE_TIME),
            "2026-11-23 09:05:00 EST"
        );
        assert_eq!(on_clock(&at, Berlin, New_York, TIME_OF_DAY), "15:05:00 CET");
        let summer = utc("2026-07-01T14:05:00Z");
        assert_eq!(
            on_clock(&summer, New_York, Berlin, TIME_OF_DAY),
            "10:05:00 EDT"
        );
        // A zone without an abbreviation is marked with its offset.
        assert_eq!(on_clock(&at, Dubai, Berlin, TIME_OF_DAY), "18:05:00 +04");
    }

    #[test]
    fn marks_are_the_winter_and_summer_abbreviations() {
        let now = utc("2026-11-23T14:05:00Z");
        assert_eq!(zone_marks(New_York, now), "EST or EDT");
        assert_eq!(zone_marks(Berlin, now), "CET or CEST");
        assert_eq!(zone_marks(Tokyo, now), "JST");
    }
}
