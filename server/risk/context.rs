//! What the scorer knows about people and places beside the baselines: each person's peer
//! group, their last status change, each site's time zone, which zones have exit readers.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::identity::admins::Role;
use crate::store::DbConnection;
use crate::store::history::{self, ChangeQuery, ChangesOf, HistoryError, Period, ReadScope};
use crate::store::schema::{doors, people, readers, sites};

/// A department+title group needs this many members to be a peer group; a smaller one
/// falls back to the whole department (one person alone has no peers to compare with).
pub const MIN_PEERS: usize = 3;

/// How far back status changes are looked up: the scorer weighs them for
/// `score::STATUS_CHANGE_DAYS` days, so older ones never matter.
pub const STATUS_CHANGE_LOOKBACK: TimeDelta = TimeDelta::days(30);

/// One person as the scorer sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonContext {
    /// The peer group scored against: `department / title`, or the department alone.
    pub peer_group: Arc<str>,
    /// The department's group: every member's swipes count there too, so that a person
    /// whose title has too few holders is compared with the whole department.
    pub department: Arc<str>,
    /// When their status (active, suspended, terminated) last changed, if lately.
    pub status_changed_at: Option<DateTime<Utc>>,
}

/// The people and places the scorer needs, beside the baselines. Built at start and
/// rebuilt with the baselines (`live`); a person added since is scored against the global
/// baseline until then.
#[derive(Debug, Clone)]
pub struct ScoringContext {
    people: FxHashMap<i64, PersonContext>,
    site_tz: FxHashMap<i64, Tz>,
    default_tz: Tz,
    zones_with_exit: FxHashSet<i64>,
}

impl Default for ScoringContext {
    fn default() -> Self {
        ScoringContext {
            people: FxHashMap::default(),
            site_tz: FxHashMap::default(),
            default_tz: Tz::UTC,
            zones_with_exit: FxHashSet::default(),
        }
    }
}

impl ScoringContext {
    pub fn person(&self, id: i64) -> Option<&PersonContext> {
        self.people.get(&id)
    }

    /// The site's time zone (UTC for an unknown site).
    pub fn timezone(&self, site: Option<i64>) -> Tz {
        site.and_then(|s| self.site_tz.get(&s).copied())
            .unwrap_or(self.default_tz)
    }

    /// Whether the zone has readers for leaving: only there does an entry without an exit
    /// in between mean anything.
    pub fn zone_has_exit(&self, zone: i64) -> bool {
        self.zones_with_exit.contains(&zone)
    }

    pub fn people_count(&self) -> usize {
        self.people.len()
    }

    /// Reads what the context needs: people, sites, which zones have exit readers, and
    /// status changes from the audit log since `now - STATUS_CHANGE_LOOKBACK`.
    pub fn load(
        conn: &mut DbConnection,
        now: DateTime<Utc>,
    ) -> Result<ScoringContext, HistoryError> {
        let mut b = ContextBuilder::default();
        let site_rows: Vec<(i64, String)> = sites::table
            .select((sites::id, sites::timezone))
            .load(conn)?;
        for (id, tz) in site_rows {
            // A timezone the site file validated; an unreadable one scores in UTC.
            b.site(id, tz.parse().unwrap_or(Tz::UTC));
        }
        let exits: Vec<i64> = readers::table
            .inner_join(doors::table)
            .filter(readers::direction.eq("out"))
            .select(doors::zone_id)
            .distinct()
            .load(conn)?;
        for zone in exits {
            b.zone_with_exit(zone);
        }
        let people_rows: Vec<(i64, String, String)> = people::table
            .select((people::id, people::department, people::title))
            .load(conn)?;
        for (id, department, title) in people_rows {
            b.person(id, &department, &title);
        }
        let query = ChangeQuery {
            of: ChangesOf::Entity {
                entity: "person".to_owned(),
                id: None,
            },
            period: Period {
                from: Some(now - STATUS_CHANGE_LOOKBACK),
                until: None,
            },
        };
        for chunk in history::change_chunks(conn, ReadScope::of(Role::Auditor), query, 1_000) {
            for row in chunk? {
                let status = |json: &Option<String>| {
                    json.as_deref()
                        .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
                        .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_owned))
                };
                let (before, after) = (status(&row.before_json), status(&row.after_json));
                if before.is_some()
                    && after.is_some()
                    && before != after
                    && let Some(id) = row.entity_id.as_deref().and_then(|i| i.parse().ok())
                {
                    b.status_change(id, row.at.and_utc());
                }
            }
        }
        Ok(b.build())
    }
}

/// Builds a `ScoringContext` (from the database in `load`, from a scenario in tests).
#[derive(Debug, Default)]
pub struct ContextBuilder {
    people: Vec<(i64, String, String)>,
    changes: FxHashMap<i64, DateTime<Utc>>,
    site_tz: FxHashMap<i64, Tz>,
    zones_with_exit: FxHashSet<i64>,
}

impl ContextBuilder {
    pub fn site(&mut self, id: i64, tz: Tz) -> &mut Self {
        self.site_tz.insert(id, tz);
        self
    }

    pub fn zone_with_exit(&mut self, zone: i64) -> &mut Self {
        self.zones_with_exit.insert(zone);
        self
    }

    pub fn person(&mut self, id: i64, department: &str, title: &str) -> &mut Self {
        self.people
            .push((id, department.trim().to_owned(), title.trim().to_owned()));
        self
    }

    /// The person's status changed at `at` (the latest one counts).
    pub fn status_change(&mut self, person: i64, at: DateTime<Utc>) -> &mut Self {
        let e = self.changes.entry(person).or_insert(at);
        *e = (*e).max(at);
        self
    }

    pub fn build(&self) -> ScoringContext {
        let mut sizes: FxHashMap<(&str, &str), usize> = FxHashMap::default();
        for (_, d, t) in &self.people {
            *sizes.entry((d, t)).or_default() += 1;
        }
        let mut names: FxHashMap<String, Arc<str>> = FxHashMap::default();
        let mut people = FxHashMap::default();
        for (id, d, t) in &self.people {
            let name = if sizes.get(&(d.as_str(), t.as_str())).copied().unwrap_or(0) >= MIN_PEERS {
                format!("{d} / {t}")
            } else {
                d.clone()
            };
            let mut intern = |name: &str| {
                names
                    .entry(name.to_owned())
                    .or_insert_with(|| Arc::from(name))
                    .clone()
            };
            let (peer_group, department) = (intern(&name), intern(d));
            people.insert(
                *id,
                PersonContext {
                    peer_group,
                    department,
                    status_changed_at: self.changes.get(id).copied(),
                },
            );
        }
        ScoringContext {
            people,
            site_tz: self.site_tz.clone(),
            default_tz: Tz::UTC,
            zones_with_exit: self.zones_with_exit.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_with_too_few_holders_falls_back_to_the_department() {
        let mut b = ContextBuilder::default();
        for id in 1..=3 {
            b.person(id, "Finance", "Clerk");
        }
        b.person(4, "Finance", "CFO");
        let ctx = b.build();
        assert_eq!(&*ctx.person(1).unwrap().peer_group, "Finance / Clerk");
        assert_eq!(&*ctx.person(4).unwrap().peer_group, "Finance");
        assert_eq!(&*ctx.person(1).unwrap().department, "Finance");
        assert!(ctx.person(5).is_none());
    }
}
