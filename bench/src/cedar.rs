//! The same policy as a Cedar policy set over Cedar entities, in two forms, for a
//! reference measured in the same run as `decide`.
//!
//! What Cedar is given (see BENCHMARKS.md for why each choice is made):
//!
//! * Principal: `Credential::"<kind>:<key>"`, the key the reader presented. An unknown
//!   key names an entity that is not in the store: `has` is false on it, so the request
//!   is refused, which is Cedar's own lookup doing the work of our `credential_known`.
//!   A credential's parent is its person; `person`, `active` (status is `active`) and
//!   `valid_until` (Unix seconds, absent when open-ended) are attributes. People carry
//!   `active`, `valid_from`, `valid_until`.
//! * Resource: `Door::"<id>"`, child of its zone; zones are children of their parent
//!   zone. Doors carry `site` (a `Site` entity with `lockdown`), `mode` and, for lobby
//!   doors, `free_access` (a schedule id). The reader-to-door lookup is done outside
//!   Cedar (Cedar has no readers).
//! * Context: `now` (Unix seconds) and `open`, the ids of the schedules open at the
//!   door's site at `now`, computed by our own schedule evaluation. Cedar has no cron
//!   schedules and no holidays: this work is done for it, which favours Cedar.
//! * Entitlements: the entity store is built as of the request instant; a person's
//!   expired entitlements are left out of it (Cedar has no quantifier to pick "the
//!   unexpired entitlement of this level" at request time). Like the schedules, this
//!   favours Cedar.
//! * Anti-passback is not modelled: the benchmark's presence state is empty, so it never
//!   refuses. PINs are not modelled beyond "a card-and-PIN door without a PIN is not
//!   opened" (requests carry no PIN; `decide` answers `pin_required`).
//!
//! Forms:
//!
//! * [`Form::PerLevel`]: one `permit` per access level, `principal in Level::"<id>"`
//!   (person → levels via parents), with a `when` listing the level's items as
//!   `resource in Zone::"z"` / `resource == Door::"d"` each with its schedule open, plus
//!   four shared `forbid`s (principal not valid, lockdown, locked door, card-and-PIN) and
//!   one `permit` for free access (unlocked door or open free-access schedule).
//! * [`Form::Attributes`]: a single `permit` over attributes and hierarchy. Cedar has no
//!   "exists" over sets, so a level's items are grouped by schedule into `Cover` entities
//!   (`Cover::"<level>@<schedule>"`), the zones and doors an item names are children of
//!   its cover (so doors reach covers through their zones), and a person carries
//!   `covers`, a record from `s<schedule id>` to the set of their covers under that
//!   schedule. The policy has one disjunct per schedule (20, not one per level):
//!   `context.open.contains(S) && principal.person.covers has sS && resource in
//!   principal.person.covers.sS`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;

use anyhow::{Context as _, Result};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use chrono::{DateTime, Utc};
use gatehouse::policy::{
    CredentialKey, CredentialStatus, PersonStatus, PolicyData, Snapshot, Target,
};

use crate::requests::BenchRequest;

/// The two ways the policy is written in Cedar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// One policy per access level.
    PerLevel,
    /// One policy over entity attributes and hierarchy.
    Attributes,
}

impl Form {
    pub fn name(self) -> &'static str {
        match self {
            Form::PerLevel => "per-level",
            Form::Attributes => "attribute",
        }
    }
}

/// A policy set and entity store for one form.
pub struct CedarBuilding {
    pub form: Form,
    pub policies: PolicySet,
    pub entities: Entities,
    pub policy_count: usize,
    pub entity_count: usize,
    types: Types,
}

struct Types {
    credential: EntityTypeName,
    person: EntityTypeName,
    level: EntityTypeName,
    cover: EntityTypeName,
    door: EntityTypeName,
    zone: EntityTypeName,
    site: EntityTypeName,
    action: EntityUid,
}

impl Types {
    fn new() -> Result<Self> {
        let ty = |s: &str| EntityTypeName::from_str(s).context("entity type name");
        Ok(Types {
            credential: ty("Credential")?,
            person: ty("Person")?,
            level: ty("Level")?,
            cover: ty("Cover")?,
            door: ty("Door")?,
            zone: ty("Zone")?,
            site: ty("Site")?,
            action: EntityUid::from_type_name_and_id(ty("Action")?, EntityId::new("open")),
        })
    }
}

fn uid(ty: &EntityTypeName, id: impl AsRef<str>) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

/// The principal id of a presented key: `card:04A1…` or `wiegand:12:3456`, with card
/// uids normalised as the snapshot normalises them.
pub fn principal_id(key: &CredentialKey) -> String {
    match key {
        CredentialKey::Card { uid } => match CredentialKey::card(uid) {
            Ok(k) => format!("card:{k}"),
            Err(_) => format!("card:{uid}"),
        },
        CredentialKey::Wiegand { .. } => format!("wiegand:{key}"),
    }
}

fn cover_id(level_id: i64, schedule_id: i64) -> String {
    format!("{level_id}@{schedule_id}")
}

fn long(v: i64) -> RestrictedExpression {
    RestrictedExpression::new_long(v)
}

fn boolean(v: bool) -> RestrictedExpression {
    RestrictedExpression::new_bool(v)
}

/// "The credential and its person are usable now"; false for an unknown credential.
const VALID_PRINCIPAL: &str = "principal has person && principal.active \
    && (!(principal has valid_until) || context.now < principal.valid_until) \
    && principal.person.active \
    && (!(principal.person has valid_from) || principal.person.valid_from <= context.now) \
    && (!(principal.person has valid_until) || context.now < principal.person.valid_until)";

const FREE_OPEN: &str = "(resource has free_access && context.open.contains(resource.free_access))";

/// The policy text of `form` for `data`.
pub fn policy_text(data: &PolicyData, form: Form) -> String {
    let mut out = String::new();
    match form {
        Form::PerLevel => {
            let _ = writeln!(
                out,
                "forbid(principal, action, resource) unless {{ {VALID_PRINCIPAL} }};\n\
                 forbid(principal, action, resource) when {{ resource.site.lockdown }};\n\
                 forbid(principal, action, resource) when {{ resource.mode == \"locked\" }};\n\
                 forbid(principal, action, resource) when {{ resource.mode == \"card_and_pin\" && !{FREE_OPEN} }};\n\
                 permit(principal, action == Action::\"open\", resource) when {{ resource.mode == \"unlocked\" || {FREE_OPEN} }};"
            );
            for level in &data.levels {
                if level.items.is_empty() {
                    continue;
                }
                let items: Vec<String> = level
                    .items
                    .iter()
                    .map(|item| {
                        let target = match item.target {
                            Target::Zone(z) => format!("resource in Zone::\"{z}\""),
                            Target::Door(d) => format!("resource == Door::\"{d}\""),
                        };
                        format!("({target} && context.open.contains({}))", item.schedule_id)
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "permit(principal in Level::\"{}\", action == Action::\"open\", resource) when {{ {} }};",
                    level.id,
                    items.join(" || ")
                );
            }
        }
        Form::Attributes => {
            let mut schedules: Vec<i64> = data.schedules.iter().map(|s| s.id).collect();
            schedules.sort_unstable();
            let per_schedule: Vec<String> = schedules
                .iter()
                .map(|s| {
                    format!(
                        "(context.open.contains({s}) && principal.person.covers has s{s} \
                         && resource in principal.person.covers.s{s})"
                    )
                })
                .collect();
            let entitled = if per_schedule.is_empty() {
                "false".to_owned()
            } else {
                per_schedule.join("\n      || ")
            };
            let _ = writeln!(
                out,
                "permit(principal is Credential, action == Action::\"open\", resource is Door) when {{\n  \
                 {VALID_PRINCIPAL}\n  \
                 && !resource.site.lockdown\n  \
                 && resource.mode != \"locked\"\n  \
                 && (resource.mode == \"unlocked\" || {FREE_OPEN}\n    \
                 || (resource.mode != \"card_and_pin\" && (\n      {entitled})))\n}};"
            );
        }
    }
    out
}

/// Which credential row owns each key, by the snapshot's rule: the active row, else the
/// newest.
fn key_owners(data: &PolicyData) -> HashMap<String, usize> {
    let mut owners: HashMap<String, usize> = HashMap::with_capacity(data.credentials.len());
    for (i, c) in data.credentials.iter().enumerate() {
        let active = |c: &gatehouse::policy::Credential| c.status == CredentialStatus::Active;
        owners
            .entry(principal_id(&c.key))
            .and_modify(|prev| {
                let p = &data.credentials[*prev];
                if active(c) || (!active(p) && c.id > p.id) {
                    *prev = i;
                }
            })
            .or_insert(i);
    }
    owners
}

impl CedarBuilding {
    /// Builds the entity store and the policy set of `form`, as of `at`.
    pub fn build(data: &PolicyData, form: Form, at: DateTime<Utc>) -> Result<Self> {
        let types = Types::new()?;
        let policies = PolicySet::from_str(&policy_text(data, form))
            .map_err(|e| anyhow::anyhow!("cedar policy text: {e}"))?;
        let policy_count = policies.policies().count();
        let entities = build_entities(data, form, at, &types)?;
        let entity_count = entities.iter().count();
        Ok(CedarBuilding {
            form,
            policies,
            entities,
            policy_count,
            entity_count,
            types,
        })
    }

    /// The Cedar request for one swipe: `open` is computed here from the snapshot.
    pub fn request(
        &self,
        req: &BenchRequest,
        snap: &Snapshot,
        schedule_ids: &[i64],
        at: DateTime<Utc>,
    ) -> Result<Request> {
        let open = schedule_ids
            .iter()
            .filter(|&&s| snap.is_schedule_open(s, req.site_id, at) == Some(true))
            .map(|&s| long(s));
        let context = Context::from_pairs([
            ("now".to_owned(), long(at.timestamp())),
            ("open".to_owned(), RestrictedExpression::new_set(open)),
        ])
        .context("cedar context")?;
        Request::new(
            uid(&self.types.credential, principal_id(&req.key)),
            self.types.action.clone(),
            uid(&self.types.door, req.door_id.to_string()),
            context,
            None,
        )
        .context("cedar request")
    }
}

/// Evaluates one prepared request; returns whether Cedar allows it and how many
/// evaluation errors it reported (an unknown principal's attribute reads).
pub fn is_allowed(
    authorizer: &Authorizer,
    building: &CedarBuilding,
    req: &Request,
) -> (bool, usize) {
    let response = authorizer.is_authorized(req, &building.policies, &building.entities);
    (
        response.decision() == Decision::Allow,
        response.diagnostics().errors().count(),
    )
}

fn build_entities(data: &PolicyData, form: Form, at: DateTime<Utc>, t: &Types) -> Result<Entities> {
    let attributes = form == Form::Attributes;
    let mut out: Vec<Entity> = Vec::new();
    let entity = |uid: EntityUid,
                  attrs: Vec<(&str, RestrictedExpression)>,
                  parents: HashSet<EntityUid>|
     -> Result<Entity> {
        Entity::new(
            uid,
            attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            parents,
        )
        .context("cedar entity")
    };

    // Sites.
    for s in &data.sites {
        out.push(entity(
            uid(&t.site, s.id.to_string()),
            vec![("lockdown", boolean(s.lockdown))],
            HashSet::new(),
        )?);
    }

    // Covers (attribute form): which targets each (level, schedule) names.
    let mut target_covers: HashMap<Target, HashSet<EntityUid>> = HashMap::new();
    if attributes {
        let mut covers = HashSet::new();
        for level in &data.levels {
            for item in &level.items {
                let cover = uid(&t.cover, cover_id(level.id, item.schedule_id));
                covers.insert(cover.clone());
                target_covers.entry(item.target).or_default().insert(cover);
            }
        }
        for cover in covers {
            out.push(Entity::new_no_attrs(cover, HashSet::new()));
        }
    }
    let covers_of = |target: Target| target_covers.get(&target).cloned().unwrap_or_default();

    // Zones and doors.
    for z in &data.zones {
        let mut parents = covers_of(Target::Zone(z.id));
        if let Some(p) = z.parent_id {
            parents.insert(uid(&t.zone, p.to_string()));
        }
        out.push(Entity::new_no_attrs(
            uid(&t.zone, z.id.to_string()),
            parents,
        ));
    }
    for d in &data.doors {
        let site_id = data
            .zones
            .iter()
            .find(|z| z.id == d.zone_id)
            .map(|z| z.site_id)
            .context("door's zone")?;
        let mut attrs = vec![
            (
                "site",
                RestrictedExpression::new_entity_uid(uid(&t.site, site_id.to_string())),
            ),
            (
                "mode",
                RestrictedExpression::new_string(d.mode.as_str().to_owned()),
            ),
        ];
        if let Some(s) = d.free_access_schedule_id {
            attrs.push(("free_access", long(s)));
        }
        let mut parents = covers_of(Target::Door(d.id));
        parents.insert(uid(&t.zone, d.zone_id.to_string()));
        out.push(entity(uid(&t.door, d.id.to_string()), attrs, parents)?);
    }

    // Levels (per-level form): plain groups.
    if !attributes {
        for l in &data.levels {
            out.push(Entity::new_no_attrs(
                uid(&t.level, l.id.to_string()),
                HashSet::new(),
            ));
        }
    }

    // People, with their unexpired entitlements as parents (per-level form) or as the
    // `covers` record (attribute form).
    let level_items: HashMap<i64, &[gatehouse::policy::LevelItem]> = data
        .levels
        .iter()
        .map(|l| (l.id, l.items.as_slice()))
        .collect();
    let mut person_levels: HashMap<i64, Vec<i64>> = HashMap::new();
    for e in &data.entitlements {
        if e.valid_until.is_none_or(|u| u > at) {
            person_levels
                .entry(e.person_id)
                .or_default()
                .push(e.level_id);
        }
    }
    for p in &data.people {
        let levels = person_levels.get(&p.id).map(Vec::as_slice).unwrap_or(&[]);
        let mut attrs = vec![("active", boolean(p.status == PersonStatus::Active))];
        if let Some(f) = p.valid_from {
            attrs.push(("valid_from", long(f.timestamp())));
        }
        if let Some(u) = p.valid_until {
            attrs.push(("valid_until", long(u.timestamp())));
        }
        let mut parents = HashSet::new();
        if attributes {
            let mut by_schedule: BTreeMap<i64, HashSet<String>> = BTreeMap::new();
            for l in levels {
                for item in level_items.get(l).copied().unwrap_or(&[]) {
                    by_schedule
                        .entry(item.schedule_id)
                        .or_default()
                        .insert(cover_id(*l, item.schedule_id));
                }
            }
            let record =
                RestrictedExpression::new_record(by_schedule.into_iter().map(|(s, covers)| {
                    (
                        format!("s{s}"),
                        RestrictedExpression::new_set(
                            covers
                                .into_iter()
                                .map(|c| RestrictedExpression::new_entity_uid(uid(&t.cover, c))),
                        ),
                    )
                }))
                .context("covers record")?;
            attrs.push(("covers", record));
        } else {
            parents.extend(levels.iter().map(|l| uid(&t.level, l.to_string())));
        }
        out.push(entity(uid(&t.person, p.id.to_string()), attrs, parents)?);
    }

    // Credentials: one entity per key, owned by the row the snapshot would pick.
    for (key, i) in key_owners(data) {
        let c = &data.credentials[i];
        let person = uid(&t.person, c.person_id.to_string());
        let mut attrs = vec![
            (
                "person",
                RestrictedExpression::new_entity_uid(person.clone()),
            ),
            ("active", boolean(c.status == CredentialStatus::Active)),
        ];
        if let Some(u) = c.valid_until {
            attrs.push(("valid_until", long(u.timestamp())));
        }
        out.push(entity(
            uid(&t.credential, key),
            attrs,
            HashSet::from([person]),
        )?);
    }

    Entities::from_entities(out, None).context("cedar entity store")
}
