//! The risk engine at run time: the baselines in force (arc-swap, beside the live policy),
//! their training from history, and the scorer that follows the event log and stores each
//! swipe's score and reasons (`events.risk_score`, `events.risk_reasons`).
//!
//! The scorer is a consumer of the event log's broadcast, so scoring never delays a door's
//! answer: an event is scored once it is on record. It keeps a working copy of the
//! baselines that it updates online with each swipe, publishes that copy every few
//! minutes, and takes over a retrained copy when the `risk_retrain` job makes one
//! (replaying the swipes it saw since that training's end). Scores are written in one
//! short transaction per second at most.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use tokio::sync::broadcast::{self, error::RecvError};

use super::baselines::Baselines;
use super::context::ScoringContext;
use super::observation::Observation;
use super::recent::Recent;
use super::score::{Score, score};
use crate::identity::admins::Role;
use crate::store::event_log::{EventKind, EventLog, Recorded};
use crate::store::history::{
    self, EventQuery, EventsOf, HistoryError, MAX_CHUNK, Period, ReadScope,
};
use crate::store::schema::events;
use crate::store::{DbConnection, DbPool, write_transaction};

/// How often the scorer writes the scores it has made (and at most how many at once).
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const FLUSH_AT_MOST: usize = 2_000;

/// How often the scorer's online-updated baselines are published to other readers.
const PUBLISH_EVERY: Duration = Duration::from_secs(300);

/// Swipes kept to replay into freshly trained baselines (those recorded after the
/// training read its last chunk).
const REPLAY_KEPT: usize = 100_000;

/// Baselines and the context they were trained with.
#[derive(Debug, Clone, Default)]
pub struct Trained {
    pub baselines: Baselines,
    pub context: Arc<ScoringContext>,
    /// Counts up with each training (0: none yet).
    pub generation: u64,
    /// The end of the history the training read.
    pub until: Option<DateTime<Utc>>,
}

/// One stored score, for live watchers (the event stream).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scored {
    pub id: i64,
    pub score: Score,
}

/// What a training did, for the job's run record.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    pub swipes: u64,
    pub people: usize,
    pub groups: usize,
    pub bytes: usize,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub generation: u64,
}

impl std::fmt::Display for TrainSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "baselines {} trained on {} swipes from {} to {}: {} people, {} peer groups, about {:.1} MiB",
            self.generation,
            self.swipes,
            self.from.format("%Y-%m-%d"),
            self.until.format("%Y-%m-%d %H:%M UTC"),
            self.people,
            self.groups,
            self.bytes as f64 / 1_048_576.0
        )
    }
}

/// The risk engine's shared handle: the baselines in force and the live scores.
pub struct RiskEngine {
    trained: ArcSwap<Trained>,
    /// How far back training reads.
    window: TimeDelta,
    scored: broadcast::Sender<Arc<Scored>>,
    /// Serialises trainings (the job, and the one at start).
    training: Mutex<()>,
}

impl RiskEngine {
    /// An engine that trains on the last `window` of history.
    pub fn new(window: TimeDelta) -> Arc<RiskEngine> {
        let (scored, _) = broadcast::channel(4096);
        Arc::new(RiskEngine {
            trained: ArcSwap::from_pointee(Trained::default()),
            window,
            scored,
            training: Mutex::new(()),
        })
    }

    /// The baselines in force.
    pub fn current(&self) -> Arc<Trained> {
        self.trained.load_full()
    }

    /// Every score stored from now on.
    pub fn watch_scores(&self) -> broadcast::Receiver<Arc<Scored>> {
        self.scored.subscribe()
    }

    /// Trains fresh baselines from the history up to `now` and puts them in force
    /// (blocking: run it off the async threads).
    pub fn retrain(&self, pool: &DbPool, now: DateTime<Utc>) -> Result<TrainSummary, String> {
        let _one_at_a_time = self.training.lock().unwrap_or_else(|p| p.into_inner());
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        let generation = self.current().generation + 1;
        let trained = train(&mut conn, now, self.window, generation).map_err(|e| e.to_string())?;
        let summary = TrainSummary {
            swipes: trained.baselines.observed,
            people: trained.baselines.people_count(),
            groups: trained.baselines.group_count(),
            bytes: trained.baselines.approximate_bytes(),
            from: now - self.window,
            until: now,
            generation,
        };
        self.trained.store(Arc::new(trained));
        Ok(summary)
    }

    /// Starts the scorer: it follows the event log from now on, waits for the first
    /// training, then scores every swipe and stores the scores.
    pub fn start_scorer(self: &Arc<Self>, log: &EventLog, pool: DbPool) {
        let receiver = log.watch();
        tokio::spawn(run_scorer(self.clone(), receiver, pool));
    }
}

/// Reads the swipes of `window` before `now` in chunks and builds baselines from them.
pub fn train(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    window: TimeDelta,
    generation: u64,
) -> Result<Trained, HistoryError> {
    let context = ScoringContext::load(conn, now)?;
    let mut baselines = Baselines::default();
    let query = EventQuery {
        of: EventsOf::All,
        period: Period::between(now - window, now),
        kind: Some(EventKind::Swipe),
    };
    // The risk engine reads as an auditor: read-only, every event.
    for chunk in history::event_chunks(conn, ReadScope::of(Role::Auditor), query, MAX_CHUNK) {
        for row in chunk? {
            if let Some(o) = Observation::of_event(&row.event) {
                baselines.observe(&context, &o);
            }
        }
    }
    Ok(Trained {
        baselines,
        context: Arc::new(context),
        generation,
        until: Some(now),
    })
}

/// The scorer's own state: its working copy of the baselines and the short-term state.
struct Scorer {
    generation: u64,
    baselines: Baselines,
    context: Arc<ScoringContext>,
    recent: Recent,
    /// Recent swipes, to replay into a retrained copy.
    replay: VecDeque<Observation>,
    pending: Vec<Scored>,
    changed: bool,
}

impl Scorer {
    fn adopt(&mut self, trained: &Trained) {
        self.generation = trained.generation;
        self.baselines = trained.baselines.clone();
        self.context = trained.context.clone();
        let until = trained.until;
        for o in &self.replay {
            if until.is_none_or(|u| o.at >= u) {
                self.baselines.observe(&self.context, o);
            }
        }
        self.changed = false;
    }

    fn take(&mut self, id: i64, o: &Observation) {
        let s = score(&self.baselines, &self.context, &self.recent, o);
        self.baselines.observe(&self.context, o);
        self.recent.record(&self.context, o);
        if self.replay.len() >= REPLAY_KEPT {
            self.replay.pop_front();
        }
        self.replay.push_back(*o);
        self.changed = true;
        self.pending.push(Scored { id, score: s });
    }
}

async fn run_scorer(
    engine: Arc<RiskEngine>,
    mut receiver: broadcast::Receiver<Arc<Recorded>>,
    pool: DbPool,
) {
    // Nothing is scored against empty baselines: the first training comes first (events
    // recorded meanwhile wait in the broadcast's buffer).
    let mut trained = engine.current();
    while trained.generation == 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trained = engine.current();
    }
    let mut scorer = Scorer {
        generation: 0,
        baselines: Baselines::default(),
        context: Arc::default(),
        recent: Recent::default(),
        replay: VecDeque::new(),
        pending: Vec::new(),
        changed: false,
    };
    scorer.adopt(&trained);
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    publish.tick().await;
    loop {
        tokio::select! {
            received = receiver.recv() => match received {
                Ok(recorded) => {
                    let latest = engine.current();
                    if latest.generation != scorer.generation {
                        scorer.adopt(&latest);
                    }
                    if let Some(o) = Observation::of_event(&recorded.event) {
                        scorer.take(recorded.id, &o);
                    }
                    if scorer.pending.len() >= FLUSH_AT_MOST {
                        store_scores(&engine, &pool, &mut scorer.pending).await;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the risk scorer fell behind the event log: those events stay unscored");
                }
                Err(RecvError::Closed) => {
                    store_scores(&engine, &pool, &mut scorer.pending).await;
                    return;
                }
            },
            _ = flush.tick() => store_scores(&engine, &pool, &mut scorer.pending).await,
            _ = publish.tick() => {
                // Others (the console, the hub one day) see the online updates too; the
                // generation stays, so the scorer does not take its own copy back.
                if scorer.changed && engine.current().generation == scorer.generation {
                    let copy = Trained {
                        baselines: scorer.baselines.clone(),
                        context: scorer.context.clone(),
                        generation: scorer.generation,
                        until: engine.current().until,
                    };
                    engine.trained.store(Arc::new(copy));
                    scorer.changed = false;
                }
            }
        }
    }
}

/// Writes scores to their events in one short transaction, then tells the watchers.
async fn store_scores(engine: &RiskEngine, pool: &DbPool, pending: &mut Vec<Scored>) {
    if pending.is_empty() {
        return;
    }
    let batch = std::mem::take(pending);
    let pool = pool.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<Vec<Scored>, String> {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        write_scores(&mut conn, &batch).map_err(|e| e.to_string())?;
        Ok(batch)
    })
    .await;
    match written {
        Ok(Ok(batch)) => {
            for s in batch {
                let _ = engine.scored.send(Arc::new(s));
            }
        }
        Ok(Err(e)) => tracing::error!(error = %e, "risk scores not stored"),
        Err(e) => tracing::error!(error = %e, "risk scores not stored"),
    }
}

/// Stores scores and reasons on their events.
pub fn write_scores(conn: &mut DbConnection, scores: &[Scored]) -> QueryResult<()> {
    write_transaction(conn, |conn| {
        for s in scores {
            diesel::update(events::table.find(s.id))
                .set((
                    events::risk_score.eq(f64::from(s.score.value)),
                    events::risk_reasons.eq(s.score.reasons_json()),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event_log::{Appended, Event, Recorded, SeqMarks, write_batch};
    use crate::store::history::test_databases::databases;

    fn swipe(at: DateTime<Utc>, door: i64) -> Event {
        Event {
            door_id: Some(door),
            zone_id: Some(door * 10),
            person_id: Some(1),
            credential_id: Some(11),
            result: Some("granted".to_owned()),
            direction: Some(crate::policy::model::Direction::In),
            ..Event::new(EventKind::Swipe, at)
        }
    }

    #[test]
    fn training_reads_the_window_only_and_scores_are_stored_on_their_events() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .to_utc();
        for db in databases() {
            let mut conn = db.pool.get().unwrap();
            let mut batch: Vec<Event> = (1..=20)
                .map(|day| swipe(now - TimeDelta::days(day), 5))
                .collect();
            // Outside the window: not trained on.
            batch.push(swipe(now - TimeDelta::days(45), 6));
            // Not a swipe: not trained on.
            batch.push(Event::new(EventKind::DoorOpen, now - TimeDelta::days(2)));
            let ids: Vec<i64> = write_batch(&mut conn, &batch, &mut SeqMarks::default())
                .unwrap()
                .into_iter()
                .map(|a| match a {
                    Appended::New(id) => id,
                    other => panic!("{other:?}"),
                })
                .collect();
            let trained = train(&mut conn, now, TimeDelta::days(30), 1).unwrap();
            assert_eq!(trained.baselines.observed, 20, "{}", db.backend);
            let person = trained.baselines.person(1).unwrap();
            assert_eq!(person.door(5).unwrap().count, 20);
            assert!(person.door(6).is_none());

            // A score as the scorer stores it, read back as the events API reads it.
            let o = Observation::of_event(&swipe(now, 6)).unwrap();
            let scored = score(&trained.baselines, &trained.context, &Recent::default(), &o);
            assert!(
                scored
                    .reasons
                    .iter()
                    .any(|r| r.code == super::super::ReasonCode::FirstDoorUse),
                "{scored:?}"
            );
            write_scores(
                &mut conn,
                &[Scored {
                    id: ids[0],
                    score: scored.clone(),
                }],
            )
            .unwrap();
            let row: Recorded = events::table
                .find(ids[0])
                .select(Recorded::as_select())
                .first(&mut conn)
                .unwrap();
            assert_eq!(row.event.risk_score, Some(f64::from(scored.value)));
            assert_eq!(row.event.risk_reasons, Some(scored.reasons_json()));
        }
    }
}
