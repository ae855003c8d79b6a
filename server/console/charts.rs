//! The console's charts as SVG text: activity heatmaps (weekday × hour) and door traffic
//! over time, rendered on the server from the history layer's swipe counts (`store::history`); pure functions, no I/O.
//!
//! The SVG is meant to be inlined in a page and read without JavaScript: it scales to its
//! container (`viewBox`, `width="100%"`), names itself to screen readers (`role="img"` and
//! an `aria-label` that says what a sighted reader would take from it), shows a tooltip per
//! cell or bar (`<title>`), and uses presentation attributes (`fill=`, `class=`) only,
//! because the console's Content-Security-Policy forbids inline `style`. Every text that
//! comes from data goes through [`escape`].
//!
//! Heatmap colours are a sequential blue ramp of [`LEVELS`] steps, from pale (one swipe)
//! to dark (the busiest cell), linear in between; an empty cell is white with a grey
//! outline, so that "none" never looks like "a few". Traffic bars stack granted (blue)
//! under denied (vermilion), a pair that colour-blind readers tell apart.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use crate::store::history::{TrafficPoint, WeekGrid};

/// Colour steps of the heatmap, not counting empty.
pub const LEVELS: usize = 6;

/// Pale to dark; the palest still differs from the empty cell's white.
const RAMP: [&str; LEVELS] = [
    "#dbe9f6", "#bad6eb", "#89bedc", "#539ecd", "#2b7bba", "#0b559f",
];
const EMPTY_FILL: &str = "#ffffff";
const EMPTY_STROKE: &str = "#c4c9d0";
const TEXT: &str = "#333333";
const MUTED_TEXT: &str = "#5f6b7a";
const GRID_LINE: &str = "#e3e6ea";
const AXIS_LINE: &str = "#8a939e";
const GRANTED: &str = "#0072b2";
const DENIED: &str = "#d55e00";

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Text made safe inside SVG (XML) text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// The colour step of a count: 0 for none, then 1 (a single swipe) to `LEVELS` (the
/// busiest), linear in between.
pub fn level(count: u32, max: u32) -> usize {
    if count == 0 || max == 0 {
        return 0;
    }
    if max == 1 || count >= max {
        return LEVELS;
    }
    // Round (count - 1) / (max - 1) of the way from step 1 to the last step.
    let (count, max, steps) = (u64::from(count), u64::from(max), LEVELS as u64 - 1);
    let step = ((count - 1) * steps * 2 + (max - 1)) / ((max - 1) * 2);
    1 + usize::try_from(step).unwrap_or(0)
}

/// A coordinate to one decimal, without a trailing ".0".
fn num(x: f64) -> String {
    let rounded = format!("{x:.1}");
    match rounded.strip_suffix(".0") {
        Some(whole) => whole.to_owned(),
        None => rounded,
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The opening `<svg>` every chart shares.
fn svg_open(out: &mut String, width: u32, height: u32, class: &str, label: &str) {
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" \
         width=\"100%\" role=\"img\" aria-label=\"{}\" class=\"chart {class}\" \
         font-size=\"12\" fill=\"{TEXT}\">",
        escape(label)
    );
}

fn title_text(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        "<text x=\"0\" y=\"16\" font-size=\"15\" font-weight=\"bold\" class=\"chart-title\">{}</text>",
        escape(title)
    );
}

// Heatmap layout, in viewBox units.
const CELL_WIDTH: u32 = 28;
const CELL_HEIGHT: u32 = 24;
const CELL_GAP: u32 = 2;
const GRID_LEFT: u32 = 40;
const GRID_TOP: u32 = 48;
const HEATMAP_WIDTH: u32 = GRID_LEFT + 24 * CELL_WIDTH + 4;
const LEGEND_TOP: u32 = GRID_TOP + 7 * CELL_HEIGHT + 14;
const HEATMAP_HEIGHT: u32 = LEGEND_TOP + 34;

/// "Tue 09:00" for a cell.
fn cell_name(day: usize, hour: usize) -> String {
    format!("{} {hour:02}:00", WEEKDAYS.get(day).copied().unwrap_or("?"))
}

/// The heatmap's one-line summary for screen readers.
fn heatmap_summary(grid: &WeekGrid, title: &str) -> String {
    match grid.busiest() {
        None => format!("{title}: no swipes"),
        Some((day, hour, most)) => format!(
            "{title}. Busiest: {}, {}; {} in all",
            cell_name(day, hour),
            plural(u64::from(most), "swipe", "swipes"),
            grid.total()
        ),
    }
}

/// Swipes per weekday (rows, Monday first) and hour (columns) as an SVG heatmap.
pub fn heatmap(grid: &WeekGrid, title: &str) -> String {
    let max = grid.max();
    let mut out = String::with_capacity(48 * 1024);
    svg_open(
        &mut out,
        HEATMAP_WIDTH,
        HEATMAP_HEIGHT,
        "heatmap",
        &heatmap_summary(grid, title),
    );
    title_text(&mut out, title);

    // Hour labels every three hours, centred over their column.
    for hour in (0..24).step_by(3) {
        let x = GRID_LEFT + hour * CELL_WIDTH + CELL_WIDTH / 2;
        let _ = writeln!(
            out,
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED_TEXT}\">{hour:02}</text>",
            GRID_TOP - 8
        );
    }
    for (day, name) in WEEKDAYS.iter().enumerate() {
        let y = GRID_TOP + day as u32 * CELL_HEIGHT + CELL_HEIGHT / 2 + 4;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{y}\" text-anchor=\"end\" fill=\"{MUTED_TEXT}\">{name}</text>",
            GRID_LEFT - 6
        );
    }

    out.push_str("<g class=\"cells\">\n");
    for (day, hours) in grid.counts.iter().enumerate() {
        for (hour, &count) in hours.iter().enumerate() {
            let denied = grid.denied.get(day).and_then(|d| d.get(hour)).copied();
            let x = GRID_LEFT + hour as u32 * CELL_WIDTH;
            let y = GRID_TOP + day as u32 * CELL_HEIGHT;
            let tooltip = match (count, denied.unwrap_or(0)) {
                (0, _) => "no swipes".to_owned(),
                (n, 0) => plural(u64::from(n), "swipe", "swipes"),
                (n, d) => format!("{} ({d} denied)", plural(u64::from(n), "swipe", "swipes")),
            };
            let _ = writeln!(
                out,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{}\" rx=\"2\" {}>\
                 <title>{} {hour:02}:00–{:02}:00: {tooltip}</title></rect>",
                CELL_WIDTH - CELL_GAP,
                CELL_HEIGHT - CELL_GAP,
                cell_paint(level(count, max)),
                WEEKDAYS.get(day).copied().unwrap_or("?"),
                hour + 1,
            );
        }
    }
    out.push_str("</g>\n");

    heatmap_legend(&mut out, max);
    out.push_str("</svg>\n");
    out
}

/// The fill (and, for empty, the outline) of a colour step.
fn cell_paint(level: usize) -> String {
    match level.checked_sub(1).and_then(|i| RAMP.get(i)) {
        Some(colour) => format!("fill=\"{colour}\" class=\"level-{level}\""),
        None => format!(
            "fill=\"{EMPTY_FILL}\" stroke=\"{EMPTY_STROKE}\" stroke-width=\"1\" class=\"level-0\""
        ),
    }
}

/// Which counts a colour step stands for, at this maximum: (lowest, highest); None for a
/// step no count reaches (when the maximum is below `LEVELS`).
fn level_range(step: usize, max: u32) -> Option<(u32, u32)> {
    let low = lowest_with_level(step, max)?;
    let high = match lowest_with_level(step + 1, max) {
        Some(next) => next - 1,
        None => max,
    };
    (low <= high && level(low, max) == step).then_some((low, high))
}

/// The smallest count from 1 to `max` whose step is at least `step` (steps grow with the
/// count, so a binary search finds it; the maximum can be millions).
fn lowest_with_level(step: usize, max: u32) -> Option<u32> {
    if max == 0 || level(max, max) < step {
        return None;
    }
    let (mut low, mut high) = (1u32, max);
    while low < high {
        let middle = low + (high - low) / 2;
        if level(middle, max) >= step {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    Some(low)
}

/// "none", the ramp from 1 to the maximum, each swatch saying which counts it stands for.
fn heatmap_legend(out: &mut String, max: u32) {
    let swatch = 22;
    let y = LEGEND_TOP;
    let _ = writeln!(out, "<g class=\"legend\">");
    let _ = writeln!(
        out,
        "<text x=\"{GRID_LEFT}\" y=\"{}\" fill=\"{MUTED_TEXT}\">Swipes</text>",
        y + 11
    );
    let none_x = GRID_LEFT + 52;
    let _ = writeln!(
        out,
        "<rect x=\"{none_x}\" y=\"{y}\" width=\"{swatch}\" height=\"14\" rx=\"2\" {}><title>no swipes</title></rect>",
        cell_paint(0)
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED_TEXT}\">0</text>",
        none_x + swatch / 2,
        y + 28
    );
    let ramp_x = none_x + swatch + 16;
    for step in 1..=LEVELS {
        let x = ramp_x + (step as u32 - 1) * swatch;
        let what = match level_range(step, max) {
            Some((low, high)) if low == high => plural(u64::from(low), "swipe", "swipes"),
            Some((low, high)) => format!("{low}–{high} swipes"),
            None => "not used at this scale".to_owned(),
        };
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{swatch}\" height=\"14\" {}><title>{what}</title></rect>",
            cell_paint(step)
        );
    }
    if max > 0 {
        let _ = writeln!(
            out,
            "<text x=\"{ramp_x}\" y=\"{}\" fill=\"{MUTED_TEXT}\">1</text>",
            y + 28
        );
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{MUTED_TEXT}\">{max} (busiest)</text>",
            ramp_x + LEVELS as u32 * swatch,
            y + 28
        );
    }
    let _ = writeln!(out, "</g>");
}

/// Round y-axis ticks from 0 to at least `max`: steps of 1, 2 or 5 times a power of ten,
/// about four of them.
pub fn nice_ticks(max: u64) -> Vec<u64> {
    let max = max.max(1);
    let rough = max.div_ceil(4);
    let mut magnitude = 1u64;
    while magnitude.saturating_mul(10) <= rough {
        magnitude = magnitude.saturating_mul(10);
    }
    let step = [1, 2, 5, 10]
        .into_iter()
        .map(|f| magnitude.saturating_mul(f))
        .find(|&s| s >= rough)
        .unwrap_or(magnitude.saturating_mul(10));
    let top = max.div_ceil(step).saturating_mul(step);
    (0..=top / step).map(|i| i * step).collect()
}

// Traffic chart layout, in viewBox units.
const TRAFFIC_WIDTH: u32 = 720;
const TRAFFIC_HEIGHT: u32 = 270;
const PLOT_LEFT: f64 = 48.0;
const PLOT_RIGHT: f64 = 712.0;
const PLOT_TOP: f64 = 44.0;
const PLOT_BOTTOM: f64 = 222.0;
/// At most this many labels under the x axis, so that they never overlap.
const MOST_X_LABELS: usize = 12;

/// Whether the points are days (else hours): a day apart, or one point at local midnight.
fn daily(points: &[TrafficPoint], tz: Tz) -> bool {
    match points {
        [first, second, ..] => second.start - first.start >= TimeDelta::hours(20),
        [only] => {
            let local = only.start.with_timezone(&tz);
            local.hour() == 0 && local.minute() == 0
        }
        [] => true,
    }
}

/// What a bar covers, for its tooltip and the summary: "Tue 24 Nov 2026" for a day,
/// "Tue 24 Nov 09:00–10:00" for an hour.
fn bar_name(start: DateTime<Utc>, tz: Tz, days: bool) -> String {
    let local = start.with_timezone(&tz);
    if days {
        local.format("%a %-d %b %Y").to_string()
    } else {
        let end = (local.hour() + 1) % 24;
        format!("{}–{end:02}:00", local.format("%a %-d %b %H:00"))
    }
}

/// The label under each bar, if it gets one, in two lines: the time, and the day under the
/// first label of each day (hours); the date, and the weekday while there is room (days).
/// At most about `MOST_X_LABELS` of them.
fn x_labels(points: &[TrafficPoint], tz: Tz, days: bool) -> Vec<Option<(String, String)>> {
    if days {
        let every = [1, 2, 7, 14, 28, 56, 91, 182, 364]
            .into_iter()
            .find(|k| points.len().div_ceil(*k) <= MOST_X_LABELS)
            .unwrap_or(points.len().max(1));
        // The weekday under the date while there is room for one under every bar or two.
        let weekday = every < 7;
        return points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                i.is_multiple_of(every).then(|| {
                    let local = p.start.with_timezone(&tz);
                    let under = if weekday {
                        local.format("%a").to_string()
                    } else {
                        String::new()
                    };
                    (local.format("%-d %b").to_string(), under)
                })
            })
            .collect();
    }
    // Hours: label round hours (every 3, 6, 12 …), or every few midnights for long spans.
    let every = [1, 2, 3, 6, 12, 24, 48, 72, 168, 336]
        .into_iter()
        .find(|k| points.len().div_ceil(*k) <= MOST_X_LABELS)
        .unwrap_or(24 * 28);
    let mut day_shown = None;
    points
        .iter()
        .map(|p| {
            let local = p.start.with_timezone(&tz);
            let hour = local.hour() as usize;
            let date = local.date_naive();
            let day_number = usize::try_from(date.num_days_from_ce()).unwrap_or(0);
            let labelled = hour.is_multiple_of(every.min(24))
                && (every <= 24 || (hour == 0 && day_number.is_multiple_of(every / 24)));
            if !labelled {
                return None;
            }
            let day = if day_shown == Some(date) {
                String::new()
            } else {
                day_shown = Some(date);
                local.format("%a %-d %b").to_string()
            };
            Some((local.format("%H:00").to_string(), day))
        })
        .collect()
}

/// The traffic chart's one-line summary for screen readers.
fn traffic_summary(points: &[TrafficPoint], tz: Tz, days: bool, title: &str) -> String {
    let (granted, denied) = points.iter().fold((0u64, 0u64), |(g, d), p| {
        (g + u64::from(p.granted), d + u64::from(p.denied))
    });
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return format!("{title}: no data");
    };
    let span = format!(
        "{} to {}",
        bar_name(first.start, tz, days),
        bar_name(last.start, tz, days)
    );
    if granted + denied == 0 {
        return format!("{title}: no swipes, {span}");
    }
    // Reversed, so that the earliest of equally busy bars is named.
    let busiest = points
        .iter()
        .rev()
        .max_by_key(|p| u64::from(p.granted) + u64::from(p.denied))
        .map(|p| {
            format!(
                "; busiest: {}, {}",
                bar_name(p.start, tz, days),
                plural(
                    u64::from(p.granted) + u64::from(p.denied),
                    "swipe",
                    "swipes"
                )
            )
        })
        .unwrap_or_default();
    format!("{title}. {granted} granted and {denied} denied, {span}{busiest}")
}

/// Granted and denied swipes per bucket as stacked bars, labelled in the site's time.
pub fn traffic(points: &[TrafficPoint], tz: Tz, title: &str) -> String {
    let days = daily(points, tz);
    let mut out = String::with_capacity(64 * 1024);
    svg_open(
        &mut out,
        TRAFFIC_WIDTH,
        TRAFFIC_HEIGHT,
        "traffic",
        &traffic_summary(points, tz, days, title),
    );
    title_text(&mut out, title);
    traffic_legend(&mut out);

    let highest = points
        .iter()
        .map(|p| u64::from(p.granted) + u64::from(p.denied))
        .max()
        .unwrap_or(0);
    let ticks = nice_ticks(highest);
    let top = ticks.last().copied().unwrap_or(1).max(1) as f64;
    let plot_height = PLOT_BOTTOM - PLOT_TOP;
    let y_of = |n: u64| PLOT_BOTTOM - n as f64 / top * plot_height;

    out.push_str("<g class=\"y-axis\">\n");
    for tick in &ticks {
        let y = num(y_of(*tick));
        let _ = writeln!(
            out,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{GRID_LINE}\" stroke-width=\"1\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{MUTED_TEXT}\">{tick}</text>",
            num(PLOT_LEFT),
            num(PLOT_RIGHT),
            num(PLOT_LEFT - 6.0),
            num(y_of(*tick) + 4.0),
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{MUTED_TEXT}\">swipes</text>",
        num(PLOT_LEFT - 6.0),
        num(PLOT_TOP - 10.0)
    );
    out.push_str("</g>\n");

    let slot = (PLOT_RIGHT - PLOT_LEFT) / points.len().max(1) as f64;
    // Bars keep a gap while there is room for one; a dense series becomes a continuous band.
    let bar_width = if slot >= 4.0 { slot * 0.75 } else { slot };
    out.push_str("<g class=\"bars\">\n");
    for (i, point) in points.iter().enumerate() {
        let slot_left = PLOT_LEFT + i as f64 * slot;
        let x = slot_left + (slot - bar_width) / 2.0;
        let granted_top = y_of(u64::from(point.granted));
        let denied_top = y_of(u64::from(point.granted) + u64::from(point.denied));
        let _ = write!(
            out,
            "<g><title>{}: {} granted, {} denied</title>\
             <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"transparent\"/>",
            escape(&bar_name(point.start, tz, days)),
            point.granted,
            point.denied,
            num(slot_left),
            num(PLOT_TOP),
            num(slot),
            num(plot_height),
        );
        if point.granted > 0 {
            let _ = write!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{GRANTED}\" class=\"granted\"/>",
                num(x),
                num(granted_top),
                num(bar_width),
                num(PLOT_BOTTOM - granted_top),
            );
        }
        if point.denied > 0 {
            let _ = write!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{DENIED}\" class=\"denied\"/>",
                num(x),
                num(denied_top),
                num(bar_width),
                num(granted_top - denied_top),
            );
        }
        out.push_str("</g>\n");
    }
    out.push_str("</g>\n");

    out.push_str("<g class=\"x-axis\">\n");
    let _ = writeln!(
        out,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{AXIS_LINE}\" stroke-width=\"1\"/>",
        num(PLOT_LEFT),
        num(PLOT_BOTTOM),
        num(PLOT_RIGHT),
        num(PLOT_BOTTOM)
    );
    for (i, label) in x_labels(points, tz, days).into_iter().enumerate() {
        let Some((time, day)) = label else {
            continue;
        };
        let x = num(PLOT_LEFT + (i as f64 + 0.5) * slot);
        let _ = writeln!(
            out,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{AXIS_LINE}\" stroke-width=\"1\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED_TEXT}\">{}</text>",
            num(PLOT_BOTTOM),
            num(PLOT_BOTTOM + 4.0),
            num(PLOT_BOTTOM + 17.0),
            escape(&time),
        );
        if !day.is_empty() {
            let _ = writeln!(
                out,
                "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED_TEXT}\">{}</text>",
                num(PLOT_BOTTOM + 31.0),
                escape(&day),
            );
        }
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\" fill=\"{MUTED_TEXT}\">times in {}</text>",
        num(PLOT_RIGHT),
        TRAFFIC_HEIGHT - 4,
        escape(tz.name()),
    );
    if highest == 0 {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED_TEXT}\">No swipes in this period</text>",
            num((PLOT_LEFT + PLOT_RIGHT) / 2.0),
            num((PLOT_TOP + PLOT_BOTTOM) / 2.0),
        );
    }
    out.push_str("</g>\n</svg>\n");
    out
}

fn traffic_legend(out: &mut String) {
    let y = 8;
    let _ = writeln!(
        out,
        "<g class=\"legend\">\
         <rect x=\"560\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{GRANTED}\"/>\
         <text x=\"577\" y=\"{}\">Granted</text>\
         <rect x=\"640\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{DENIED}\"/>\
         <text x=\"657\" y=\"{}\">Denied</text></g>",
        y + 10,
        y + 10
    );
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use chrono_tz::Europe::Berlin;

    use super::*;

    /// Checks that every tag is closed in order, that `&` only starts an entity, and that
    /// the whole is one `<svg>` element: well-formed enough for a browser's XML parser.
    fn assert_well_formed(svg: &str) {
        let mut open: Vec<String> = Vec::new();
        let mut roots = 0;
        let mut rest = svg;
        while let Some(lt) = rest.find('<') {
            check_text(&rest[..lt]);
            let gt = rest[lt..].find('>').expect("a tag is closed") + lt;
            let tag = &rest[lt + 1..gt];
            assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    open.pop().as_deref(),
                    Some(name),
                    "closing tag out of order"
                );
            } else {
                let name: String = tag.chars().take_while(|c| c.is_alphanumeric()).collect();
                assert!(!name.is_empty(), "a tag without a name: {tag}");
                check_attributes(tag);
                if open.is_empty() {
                    roots += 1;
                }
                if !tag.ends_with('/') {
                    open.push(name);
                }
            }
            rest = &rest[gt + 1..];
        }
        check_text(rest);
        assert!(open.is_empty(), "unclosed: {open:?}");
        assert_eq!(roots, 1, "one root element");
        assert!(svg.starts_with("<svg "), "starts with <svg>");
    }

    fn check_text(text: &str) {
        assert!(!text.contains('>'), "a raw '>' in text: {text}");
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "a raw '&' in: {text}"
            );
        }
    }

    /// Attribute values are quoted, and hold no raw quote, '<' or '&'.
    fn check_attributes(tag: &str) {
        let quotes = tag.matches('"').count();
        assert_eq!(quotes % 2, 0, "unbalanced quotes in <{tag}>");
        for value in tag.split('"').skip(1).step_by(2) {
            check_text(value);
        }
    }

    /// No inline style and no script: the console's CSP would refuse or run them.
    fn assert_csp_safe(svg: &str) {
        assert!(!svg.contains("style="), "inline style");
        assert!(!svg.contains("<style"), "style element");
        assert!(!svg.to_lowercase().contains("<script"), "script");
        assert!(!svg.contains(" on"), "event handler attribute");
    }

    fn small_grid() -> WeekGrid {
        let mut grid = WeekGrid::default();
        grid.counts[1][9] = 31; // Tue 09
        grid.denied[1][9] = 2;
        grid.counts[1][10] = 12;
        grid.counts[0][8] = 1;
        grid.counts[4][17] = 7;
        grid.denied[4][17] = 7;
        grid
    }

    fn day(d: u32) -> DateTime<Utc> {
        Berlin
            .with_ymd_and_hms(2026, 11, d, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn point(start: DateTime<Utc>, granted: u32, denied: u32) -> TrafficPoint {
        TrafficPoint {
            start,
            granted,
            denied,
        }
    }

    #[test]
    fn escape_neutralises_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("Tür 3 – Süd"), "Tür 3 – Süd");
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn the_scale_tells_none_from_one_and_one_from_the_most() {
        assert_eq!(level(0, 0), 0);
        assert_eq!(level(0, 50), 0);
        assert_eq!(level(1, 50), 1, "one swipe is the palest colour, not empty");
        assert_eq!(level(50, 50), LEVELS);
        assert_eq!(level(1, 1), LEVELS, "the only count is the busiest");
        assert_eq!(level(60, 50), LEVELS);
        assert_eq!(level(1, 1_000_000), 1);
        assert_eq!(level(u32::MAX, u32::MAX), LEVELS);
        let steps: Vec<usize> = (1..=50).map(|n| level(n, 50)).collect();
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
        assert_eq!(
            (1..=LEVELS).filter(|s| steps.contains(s)).count(),
            LEVELS,
            "every step is used"
        );
        assert_eq!(level_range(1, 50), Some((1, 5)));
        assert_eq!(level_range(LEVELS, 50), Some((46, 50)));
        assert_eq!(level_range(2, 2), None);
        assert_eq!(level_range(1, 2), Some((1, 1)));
        assert_eq!(level_range(LEVELS, 2), Some((2, 2)));
        // The legend's ranges cover every count once, however large the maximum.
        for max in [1, 3, 7, 50, 1_000_003, u32::MAX] {
            let ranges: Vec<(u32, u32)> =
                (1..=LEVELS).filter_map(|s| level_range(s, max)).collect();
            assert_eq!(ranges.first().map(|r| r.0), Some(1), "{max}");
            assert_eq!(ranges.last().map(|r| r.1), Some(max), "{max}");
            assert!(
                ranges.windows(2).all(|w| w[0].1 + 1 == w[1].0),
                "{max}: {ranges:?}"
            );
        }
    }

    #[test]
    fn ticks_are_round_and_reach_the_top() {
        assert_eq!(nice_ticks(0), [0, 1]);
        assert_eq!(nice_ticks(1), [0, 1]);
        assert_eq!(nice_ticks(7), [0, 2, 4, 6, 8]);
        assert_eq!(nice_ticks(10), [0, 5, 10]);
        assert_eq!(nice_ticks(31), [0, 10, 20, 30, 40]);
        assert_eq!(nice_ticks(412), [0, 200, 400, 600]);
        assert_eq!(nice_ticks(1_000_000), [0, 500_000, 1_000_000]);
        for max in [3, 17, 99, 101, 2_500, 77_777] {
            let ticks = nice_ticks(max);
            assert!(ticks.last().is_some_and(|&t| t >= max), "{max}: {ticks:?}");
            assert!(ticks.len() <= 6, "{max}: {ticks:?}");
        }
    }

    #[test]
    fn heatmap_snapshot() {
        insta::assert_snapshot!(heatmap(&small_grid(), "Front door, last 4 weeks"));
    }

    #[test]
    fn traffic_by_day_snapshot() {
        let points = [
            point(day(23), 120, 4),
            point(day(24), 96, 0),
            point(day(25), 0, 0),
            point(day(26), 88, 11),
            point(day(27), 3, 1),
        ];
        insta::assert_snapshot!(traffic(&points, Berlin, "Front door"));
    }

    #[test]
    fn traffic_by_hour_snapshot() {
        let points: Vec<TrafficPoint> = (0..8)
            .map(|h| {
                point(
                    day(24) + TimeDelta::hours(6 + h),
                    (h * 5) as u32,
                    (h % 3) as u32,
                )
            })
            .collect();
        insta::assert_snapshot!(traffic(&points, Berlin, "Site, Tuesday morning"));
    }

    #[test]
    fn heatmap_is_well_formed_accessible_and_csp_safe() {
        let svg = heatmap(&small_grid(), r#"<script>alert(1)</script> "Lab" & Co"#);
        assert_well_formed(&svg);
        assert_csp_safe(&svg);
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt; &quot;Lab&quot; &amp; Co"));
        assert!(svg.contains("viewBox=\"0 0 "));
        assert!(svg.contains("role=\"img\""));
        assert!(
            svg.contains("Busiest: Tue 09:00, 31 swipes; 51 in all"),
            "{svg}"
        );
        assert!(svg.contains("<title>Tue 09:00–10:00: 31 swipes (2 denied)</title>"));
        assert!(svg.contains("<title>Mon 08:00–09:00: 1 swipe</title>"));
        assert!(svg.contains("<title>Sun 23:00–24:00: no swipes</title>"));
        assert_eq!(svg.matches("class=\"level-0\"").count(), 168 - 4 + 1);
        assert!(svg.contains(">31 (busiest)<"));
    }

    #[test]
    fn an_empty_heatmap_says_so() {
        let svg = heatmap(&WeekGrid::default(), "Nobody");
        assert_well_formed(&svg);
        assert!(svg.contains("aria-label=\"Nobody: no swipes\""));
        // Every cell, and the legend's "none" swatch.
        assert_eq!(svg.matches("class=\"level-0\"").count(), 168 + 1);
    }

    #[test]
    fn traffic_is_well_formed_accessible_and_csp_safe() {
        let points: Vec<TrafficPoint> = (0..24 * 14)
            .map(|h| {
                point(
                    day(10) + TimeDelta::hours(h),
                    (h % 24) as u32,
                    (h % 5) as u32,
                )
            })
            .collect();
        for (points, title) in [
            (&points[..], "Door <b>&amp;</b> 'x'"),
            (&points[..30], "\"quoted\""),
            (&points[..1], "one"),
            (&[][..], "none"),
        ] {
            let svg = traffic(points, Berlin, title);
            assert_well_formed(&svg);
            assert_csp_safe(&svg);
            assert!(svg.contains(&escape(title)), "{svg}");
            let labels = svg
                .matches("text-anchor=\"middle\" fill=\"#5f6b7a\">")
                .count();
            assert!(labels <= 2 * MOST_X_LABELS + 1, "{labels} labels");
        }
        let svg = traffic(&points[..30], Berlin, "Lab");
        assert!(svg.contains("aria-label=\"Lab. "), "{svg}");
        assert!(svg.contains("<title>Tue 10 Nov 06:00–07:00: 6 granted, 1 denied</title>"));
    }

    #[test]
    fn traffic_without_swipes_says_so() {
        let svg = traffic(
            &[point(day(23), 0, 0), point(day(24), 0, 0)],
            Berlin,
            "Quiet",
        );
        assert_well_formed(&svg);
        assert!(svg.contains("No swipes in this period"));
        assert!(
            svg.contains("aria-label=\"Quiet: no swipes, Mon 23 Nov 2026 to Tue 24 Nov 2026\"")
        );
    }
}
