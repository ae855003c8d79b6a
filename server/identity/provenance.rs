//! Provenance of a change: who asked for it, who approved it when approval is required, and
//! through what. Every change carries one into its audit entry, stored as typed columns.

use serde::Serialize;
use utoipa::ToSchema;

use crate::identity::admins::Identity;
use crate::store::rows::ProvenanceColumns;

/// Who asked for a change.
///
/// Stored as a kind and the id and name that kind has (`ProvenanceColumns`), so that the
/// requesters still to come (a rule, a SCIM client, the risk engine, an assistant draft on
/// behalf of an admin) need a variant here and no migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Requester {
    /// An admin signed in to the console.
    Admin { admin_id: i64, username: String },
    /// An API token, acting for its admin (with that admin's role).
    ApiToken {
        token_id: i64,
        token_name: String,
        admin_id: i64,
        username: String,
    },
    /// Someone running `gatehouse` on the appliance, by the OS user the CLI knows
    /// (`$SUDO_USER` under sudo, else `$USER`).
    CliUser { os_user: String },
    /// Whoever held the one-time code that creates the first admin (`/setup`).
    SetupCode,
    /// The appliance itself, for what its own checks change (`function`: "sign-in lockout").
    Appliance { function: String },
    /// An entry written before provenance was recorded, whose actor text says nothing more:
    /// an admin's username, through the console or the API (not told apart then).
    Recorded { actor: String },
}

/// Who approved a change that needed approval (nothing needs it yet; an assistant's draft
/// will): an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Approval {
    pub admin_id: i64,
    pub username: String,
}

/// Through what a change came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Channel {
    /// The admin console (including its sign-in and setup forms).
    Console,
    /// The JSON API.
    Api,
    /// A `gatehouse` command on the appliance.
    Cli,
    /// An import of a file (`gatehouse import`): the file as it was named.
    Import { file: String },
    /// Not recorded (entries from before provenance, through the console or the API).
    Unknown,
}

/// Who asked for a change, who approved it, and through what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Provenance {
    pub requested_by: Requester,
    pub approved_by: Option<Approval>,
    pub via: Channel,
}

/// The actor text of an entry written by the appliance's first-admin setup.
const SETUP_ACTOR: &str = "first-admin setup";
/// The appliance function that locks an account after wrong passwords.
pub const SIGN_IN_LOCKOUT: &str = "sign-in lockout";

impl Provenance {
    fn asked(requested_by: Requester, via: Channel) -> Provenance {
        Provenance {
            requested_by,
            approved_by: None,
            via,
        }
    }

    /// A change made by a signed-in admin in the console.
    pub fn console(admin: &Identity) -> Provenance {
        Provenance::asked(
            Requester::Admin {
                admin_id: admin.admin_id,
                username: admin.username.clone(),
            },
            Channel::Console,
        )
    }

    /// A change made through the API with a token of `admin`.
    pub fn api_token(admin: &Identity, token_id: i64, token_name: &str) -> Provenance {
        Provenance::asked(
            Requester::ApiToken {
                token_id,
                token_name: token_name.to_owned(),
                admin_id: admin.admin_id,
                username: admin.username.clone(),
            },
            Channel::Api,
        )
    }

    /// A change made by a `gatehouse` command run by `os_user`.
    pub fn cli(os_user: &str) -> Provenance {
        Provenance::asked(
            Requester::CliUser {
                os_user: os_user.to_owned(),
            },
            Channel::Cli,
        )
    }

    /// An import of `file` run by `os_user` with `gatehouse import`.
    pub fn import(os_user: &str, file: &str) -> Provenance {
        Provenance::asked(
            Requester::CliUser {
                os_user: os_user.to_owned(),
            },
            Channel::Import {
                file: file.to_owned(),
            },
        )
    }

    /// The first admin, created in the console with the one-time setup code.
    pub fn setup_code() -> Provenance {
        Provenance::asked(Requester::SetupCode, Channel::Console)
    }

    /// What the appliance's own check `function` changes, prompted through `via`.
    pub fn appliance(function: &str, via: Channel) -> Provenance {
        Provenance::asked(
            Requester::Appliance {
                function: function.to_owned(),
            },
            via,
        )
    }

    /// The same change, approved by `approver` (for changes that need approval: an
    /// assistant's draft is applied only once an admin approves it).
    pub fn approved_by(mut self, approver: &Identity) -> Provenance {
        self.approved_by = Some(Approval {
            admin_id: approver.admin_id,
            username: approver.username.clone(),
        });
        self
    }

    /// The provenance of an entry written before provenance was recorded, read from its
    /// actor text as well as it can be. The migration that added provenance filled the
    /// columns of those entries the same way, and `audit verify` checks them against this.
    pub fn from_recorded_actor(actor: &str) -> Provenance {
        if let Some(os_user) = actor.strip_prefix("cli:") {
            Provenance::cli(os_user)
        } else if actor == SIGN_IN_LOCKOUT {
            Provenance::appliance(SIGN_IN_LOCKOUT, Channel::Console)
        } else if actor == SETUP_ACTOR {
            Provenance::setup_code()
        } else {
            Provenance::asked(
                Requester::Recorded {
                    actor: actor.to_owned(),
                },
                Channel::Unknown,
            )
        }
    }

    /// The one-string actor every entry also keeps (the `actor` field of the audit API,
    /// `granted_by` of an entitlement, `acked_by` of an alarm), spelled as before
    /// provenance: the admin's username for the console and a token, `cli:USER` for the CLI.
    pub fn actor(&self) -> String {
        match &self.requested_by {
            Requester::Admin { username, .. } | Requester::ApiToken { username, .. } => {
                username.clone()
            }
            Requester::CliUser { os_user } => format!("cli:{os_user}"),
            Requester::SetupCode => SETUP_ACTOR.to_owned(),
            Requester::Appliance { function } => function.clone(),
            Requester::Recorded { actor } => actor.clone(),
        }
    }

    /// Who asked, in words: "admin root", "API token 'HR sync' (#3) of admin root".
    pub fn requester_text(&self) -> String {
        match &self.requested_by {
            Requester::Admin { username, .. } => format!("admin {username}"),
            Requester::ApiToken {
                token_id,
                token_name,
                username,
                ..
            } => format!("API token '{token_name}' (#{token_id}) of admin {username}"),
            Requester::CliUser { os_user } => format!("CLI user {os_user}"),
            Requester::SetupCode => "the holder of the first-admin setup code".to_owned(),
            Requester::Appliance { function } => format!("the appliance ({function})"),
            Requester::Recorded { actor } => actor.clone(),
        }
    }

    /// Through what, in words: "console", "API", "CLI", "import of office.toml".
    pub fn channel_text(&self) -> String {
        match &self.via {
            Channel::Console => "console".to_owned(),
            Channel::Api => "API".to_owned(),
            Channel::Cli => "CLI".to_owned(),
            Channel::Import { file } => format!("import of {file}"),
            Channel::Unknown => "not recorded".to_owned(),
        }
    }

    /// Who approved, in words, when someone had to.
    pub fn approver_text(&self) -> Option<String> {
        self.approved_by
            .as_ref()
            .map(|a| format!("admin {}", a.username))
    }

    /// The columns that store it.
    pub fn columns(&self) -> ProvenanceColumns {
        let (kind, id, name, on_behalf_of) = match &self.requested_by {
            Requester::Admin { admin_id, username } => {
                ("admin", Some(*admin_id), username.clone(), None)
            }
            Requester::ApiToken {
                token_id,
                token_name,
                admin_id,
                username,
            } => (
                "api_token",
                Some(*token_id),
                token_name.clone(),
                Some((*admin_id, username.clone())),
            ),
            Requester::CliUser { os_user } => ("cli_user", None, os_user.clone(), None),
            Requester::SetupCode => ("setup_code", None, String::new(), None),
            Requester::Appliance { function } => ("appliance", None, function.clone(), None),
            Requester::Recorded { actor } => ("recorded", None, actor.clone(), None),
        };
        let (via, via_detail) = match &self.via {
            Channel::Console => ("console", None),
            Channel::Api => ("api", None),
            Channel::Cli => ("cli", None),
            Channel::Import { file } => ("import", Some(file.clone())),
            Channel::Unknown => ("unknown", None),
        };
        let (on_behalf_of_id, on_behalf_of_name) = on_behalf_of.unzip();
        let (approved_by_id, approved_by_name) = self
            .approved_by
            .as_ref()
            .map(|a| (a.admin_id, a.username.clone()))
            .unzip();
        ProvenanceColumns {
            requested_by_kind: kind.to_owned(),
            requested_by_id: id,
            requested_by_name: name,
            on_behalf_of_id,
            on_behalf_of_name,
            approved_by_id,
            approved_by_name,
            via: via.to_owned(),
            via_detail,
        }
    }

    /// Reads stored columns back. A kind or channel this version does not know (written by
    /// a newer one), or one missing what its kind needs, reads as the entry's actor text.
    pub fn from_columns(c: &ProvenanceColumns, actor: &str) -> Provenance {
        let recorded = || Requester::Recorded {
            actor: actor.to_owned(),
        };
        let name = c.requested_by_name.clone();
        let requested_by = match (c.requested_by_kind.as_str(), c.requested_by_id) {
            ("admin", Some(admin_id)) => Requester::Admin {
                admin_id,
                username: name,
            },
            ("api_token", Some(token_id)) => match (c.on_behalf_of_id, &c.on_behalf_of_name) {
                (Some(admin_id), Some(username)) => Requester::ApiToken {
                    token_id,
                    token_name: name,
                    admin_id,
                    username: username.clone(),
                },
                _ => recorded(),
            },
            ("cli_user", _) => Requester::CliUser { os_user: name },
            ("setup_code", _) => Requester::SetupCode,
            ("appliance", _) => Requester::Appliance { function: name },
            _ => recorded(),
        };
        let via = match (c.via.as_str(), &c.via_detail) {
            ("console", _) => Channel::Console,
            ("api", _) => Channel::Api,
            ("cli", _) => Channel::Cli,
            ("import", Some(file)) => Channel::Import { file: file.clone() },
            _ => Channel::Unknown,
        };
        let approved_by = match (c.approved_by_id, &c.approved_by_name) {
            (Some(admin_id), Some(username)) => Some(Approval {
                admin_id,
                username: username.clone(),
            }),
            _ => None,
        };
        Provenance {
            requested_by,
            approved_by,
            via,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::admins::Role;

    fn root() -> Identity {
        Identity {
            admin_id: 1,
            username: "root".to_owned(),
            role: Role::Admin,
        }
    }

    #[test]
    fn every_provenance_reads_back_from_its_columns() {
        let dana = Identity {
            admin_id: 2,
            username: "dana".to_owned(),
            role: Role::Admin,
        };
        let approved = Provenance::api_token(&root(), 7, "HR sync").approved_by(&dana);
        assert_eq!(approved.approver_text().as_deref(), Some("admin dana"));
        for p in [
            Provenance::console(&root()),
            Provenance::api_token(&root(), 7, "HR sync"),
            Provenance::cli("alice"),
            Provenance::import("alice", "/srv/office.toml"),
            Provenance::setup_code(),
            Provenance::appliance(SIGN_IN_LOCKOUT, Channel::Console),
            Provenance::from_recorded_actor("root"),
            approved,
        ] {
            assert_eq!(Provenance::from_columns(&p.columns(), &p.actor()), p);
        }
    }

    #[test]
    fn actors_are_spelled_as_before_provenance() {
        assert_eq!(Provenance::console(&root()).actor(), "root");
        assert_eq!(Provenance::api_token(&root(), 7, "ci").actor(), "root");
        assert_eq!(Provenance::cli("alice").actor(), "cli:alice");
        assert_eq!(Provenance::import("alice", "x.csv").actor(), "cli:alice");
        for actor in ["root", "cli:alice", "sign-in lockout", "first-admin setup"] {
            assert_eq!(Provenance::from_recorded_actor(actor).actor(), actor);
        }
    }

    #[test]
    fn recorded_actors_map_as_the_migration_maps_them() {
        let cli = Provenance::from_recorded_actor("cli:alice").columns();
        assert_eq!(
            (
                cli.requested_by_kind.as_str(),
                cli.requested_by_name.as_str(),
                cli.via.as_str()
            ),
            ("cli_user", "alice", "cli")
        );
        let lockout = Provenance::from_recorded_actor("sign-in lockout").columns();
        assert_eq!(
            (lockout.requested_by_kind.as_str(), lockout.via.as_str()),
            ("appliance", "console")
        );
        let setup = Provenance::from_recorded_actor("first-admin setup").columns();
        assert_eq!(
            (
                setup.requested_by_kind.as_str(),
                setup.requested_by_name.as_str()
            ),
            ("setup_code", "")
        );
        let admin = Provenance::from_recorded_actor("root").columns();
        assert_eq!(
            (
                admin.requested_by_kind.as_str(),
                admin.requested_by_name.as_str(),
                admin.via.as_str()
            ),
            ("recorded", "root", "unknown")
        );
    }

    #[test]
    fn an_unknown_kind_reads_as_the_actor_text() {
        let mut columns = Provenance::cli("alice").columns();
        columns.requested_by_kind = "risk_engine".to_owned();
        columns.via = "scim".to_owned();
        let read = Provenance::from_columns(&columns, "cli:alice");
        assert_eq!(
            read.requested_by,
            Requester::Recorded {
                actor: "cli:alice".to_owned()
            }
        );
        assert_eq!(read.via, Channel::Unknown);
    }
}
