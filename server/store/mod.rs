//! Storage: the connection pool over SQLite or PostgreSQL (chosen by the database URL),
//! embedded migrations, the row types, the event log and the audit chain.

pub mod audit;
pub mod checkpoint;
pub mod event_log;
pub mod history;
pub mod last_use;
pub mod load;
pub mod rows;
pub mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::Connection as _;
use diesel::RunQueryDsl as _;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// One connection to whichever backend the URL named. Queries are written once against it.
#[cfg(feature = "postgres")]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Postgres(diesel::pg::PgConnection),
}

/// One connection to whichever backend the URL named. Queries are written once against it.
#[cfg(not(feature = "postgres"))]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
}

pub type DbPool = Pool<ConnectionManager<DbConnection>>;
pub type PooledDb = PooledConnection<ConnectionManager<DbConnection>>;

/// Which backend a database URL selects, before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite(PathBuf),
    Postgres,
}

/// Why a database could not be opened or migrated. Startup turns these into messages.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "database URL '{0}' is not supported: use sqlite://PATH (for example sqlite:///var/lib/gatehouse/gatehouse.db) or postgres://USER@HOST/DB"
    )]
    UnsupportedScheme(String),
    #[error(
        "this build of gatehouse has no PostgreSQL support; rebuild with `--features postgres` or use a sqlite:// database URL"
    )]
    PostgresNotCompiled,
    #[error(
        "the folder '{0}' for the SQLite database does not exist: create it or change database.url (GATEHOUSE_DATABASE_URL)"
    )]
    MissingFolder(PathBuf),
    #[error("could not open the database: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("could not connect to the database: {0}")]
    Connection(String),
    #[error("database migration failed: {0}")]
    Migration(String),
}

impl Backend {
    /// Reads the backend out of a database URL without touching the file system.
    pub fn from_url(url: &str) -> Result<Backend, OpenError> {
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if rest.is_empty() {
                return Err(OpenError::UnsupportedScheme(url.to_owned()));
            }
            return Ok(Backend::Sqlite(PathBuf::from(rest)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return if cfg!(feature = "postgres") {
                Ok(Backend::Postgres)
            } else {
                Err(OpenError::PostgresNotCompiled)
            };
        }
        Err(OpenError::UnsupportedScheme(url.to_owned()))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Pragmas every SQLite connection needs: a busy timeout instead of instant SQLITE_BUSY,
/// enforced foreign keys, full fsync for durability, and a 32 MB page cache (the event
/// indexes outgrow the default 2 MB within a day of traffic). (WAL is set once, in `open`.)
/// The pool's connections checkpoint the log themselves only past a backstop: the event
/// writer's checkpoint thread does it (see `checkpoint`).
#[derive(Debug, Clone, Copy)]
struct SqliteSetup;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqliteSetup {
    #[allow(irrefutable_let_patterns)] // irrefutable in a build without PostgreSQL
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(c) = conn {
            sqlite_pragmas(c, 32_768, checkpoint::POOL_AUTOCHECKPOINT_PAGES)
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

fn sqlite_pragmas(
    conn: &mut SqliteConnection,
    cache_kib: i64,
    autocheckpoint_pages: i64,
) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
         PRAGMA synchronous = FULL; PRAGMA cache_size = -{cache_kib}; \
         PRAGMA wal_autocheckpoint = {autocheckpoint_pages};"
    ))
}

/// The file of the pool's SQLite database, if the pool is on SQLite and on a file.
#[allow(irrefutable_let_patterns)] // irrefutable in a build without PostgreSQL
pub fn sqlite_file(pool: &DbPool) -> Result<Option<PathBuf>, OpenError> {
    #[derive(diesel::QueryableByName)]
    struct File {
        #[diesel(sql_type = diesel::sql_types::Text)]
        file: String,
    }
    let mut conn = pool.get()?;
    let DbConnection::Sqlite(c) = &mut *conn else {
        return Ok(None);
    };
    let main: File = diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .get_result(c)
        .map_err(|e| OpenError::Connection(e.to_string()))?;
    // An in-memory or temporary database has no file, and no second connection sees it.
    Ok((!main.file.is_empty()).then(|| PathBuf::from(main.file)))
}

/// A connection of its own (not the pool's) to a SQLite file, for a writer that holds it
/// for good: the pool's pragmas, but `cache_kib` of page cache, no automatic checkpoints
/// (a `checkpoint::Checkpointer` runs them instead), and temporary data in memory.
///
/// The last is for its multi-row INSERTs: a statement that can fail halfway on a
/// constraint (the resend key is unique) keeps a copy of every page it changes, to undo
/// itself, and past 64 KiB SQLite spills that copy to a new file in /var/tmp, statement
/// after statement. For the event writer that was more bytes than it wrote to the WAL
/// (621 MiB against 385 MiB in a traced run); in memory it is a few MiB at most.
pub fn sqlite_writer(path: &Path, cache_kib: i64) -> Result<DbConnection, OpenError> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| OpenError::Connection(e.to_string()))?;
    sqlite_pragmas(&mut conn, cache_kib, 0)
        .and_then(|()| conn.batch_execute("PRAGMA temp_store = MEMORY;"))
        .map_err(|e| OpenError::Connection(e.to_string()))?;
    Ok(DbConnection::Sqlite(conn))
}

/// Opens a pool for the URL. A SQLite file is created if its folder exists.
pub fn open(url: &str, pool_size: u32) -> Result<DbPool, OpenError> {
    let backend = Backend::from_url(url)?;
    let manager_url = match &backend {
        Backend::Sqlite(path) => {
            check_sqlite_folder(path)?;
            let path = path.to_string_lossy().into_owned();
            // WAL (concurrent readers beside one writer) is a property of the file: set it
            // once here, before the pool opens connections in parallel, because switching
            // journal modes does not wait for other connections.
            let mut first = SqliteConnection::establish(&path)
                .map_err(|e| OpenError::Connection(e.to_string()))?;
            first
                .batch_execute("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;")
                .map_err(|e| OpenError::Connection(e.to_string()))?;
            path
        }
        Backend::Postgres => url.to_owned(),
    };
    let pool = Pool::builder()
        .max_size(pool_size)
        .connection_timeout(Duration::from_secs(10))
        .connection_customizer(Box::new(SqliteSetup))
        .build(ConnectionManager::<DbConnection>::new(manager_url))
        .map_err(|e| {
            // r2d2 hides the connection error inside a timeout; try once directly for a
            // message an installer can act on.
            match diesel::Connection::establish(&pool_probe_url(&backend, url)) {
                Err::<DbConnection, _>(conn_err) => OpenError::Connection(conn_err.to_string()),
                Ok(_) => OpenError::Pool(e),
            }
        })?;
    Ok(pool)
}

fn pool_probe_url(backend: &Backend, url: &str) -> String {
    match backend {
        Backend::Sqlite(path) => path.to_string_lossy().into_owned(),
        Backend::Postgres => url.to_owned(),
    }
}

fn check_sqlite_folder(path: &Path) -> Result<(), OpenError> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if folder.is_dir() {
        Ok(())
    } else {
        Err(OpenError::MissingFolder(folder.to_path_buf()))
    }
}

/// Applies every pending migration of the connection's backend; returns their names.
pub fn migrate(conn: &mut DbConnection) -> Result<Vec<String>, OpenError> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
    }
    .map_err(|e| OpenError::Migration(e.to_string()))?;
    Ok(applied.iter().map(|m| m.to_string()).collect())
}

/// Runs `read` in one transaction that sees the database as of one moment, so that what it
/// reads in several statements fits together (every reference resolves, a count matches a
/// walk). SQLite's transactions do that already; PostgreSQL's default isolation reads each
/// statement at a different moment, so there the transaction is repeatable-read, read-only.
pub fn read_consistently<T, E, F>(conn: &mut DbConnection, read: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    conn.transaction(|conn| {
        #[cfg(feature = "postgres")]
        if matches!(conn, DbConnection::Postgres(_)) {
            diesel::connection::SimpleConnection::batch_execute(
                conn,
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            )?;
        }
        read(conn)
    })
}

/// Runs `f` in a transaction meant to write. On SQLite it starts with `BEGIN IMMEDIATE`,
/// taking the write lock up front: a deferred transaction that reads first and writes later
/// fails at once (no busy wait) when another process, say `gatehouse import` beside
/// `gatehouse serve`, committed in between. Inside a transaction it is a savepoint.
// Without the `postgres` feature SQLite is the only variant and the `let … else` below is
// irrefutable; the code stays the same for both builds.
#[allow(irrefutable_let_patterns)]
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::Connection;
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    let depth =
        AnsiTransactionManager::transaction_manager_status_mut(sqlite).transaction_depth()?;
    if depth.is_some() {
        return conn.transaction(f);
    }
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    let result = f(conn);
    let DbConnection::Sqlite(sqlite) = conn else {
        return result;
    };
    match result {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(sqlite)?;
            Ok(value)
        }
        Err(e) => {
            AnsiTransactionManager::rollback_transaction(sqlite)?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reverts the newest migrations of `conn` back through the one whose version starts
    /// with `version` (digits only, e.g. "20261209000001"): the database as it was just
    /// before that migration, for a test that fills it with old rows and migrates again.
    fn revert_through(conn: &mut SqliteConnection, version: &str) {
        while !conn
            .revert_last_migration(SQLITE_MIGRATIONS)
            .unwrap()
            .to_string()
            .replace('-', "")
            .starts_with(version)
        {}
    }

    #[test]
    fn urls_choose_backends() {
        assert_eq!(
            Backend::from_url("sqlite:///var/lib/g/g.db").ok(),
            Some(Backend::Sqlite(PathBuf::from("/var/lib/g/g.db")))
        );
        assert_eq!(
            Backend::from_url("sqlite:data/g.db").ok(),
            Some(Backend::Sqlite(PathBuf::from("data/g.db")))
        );
        assert!(matches!(
            Backend::from_url("mysql://x"),
            Err(OpenError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            Backend::from_url("sqlite://"),
            Err(OpenError::UnsupportedScheme(_))
        ));
    }

    /// The migration that orders the resend key by time keeps each reader's highest
    /// number from the events already stored, and the resend lookup uses the new key.
    #[test]
    fn the_resend_key_migration_keeps_each_readers_highest_number() {
        use diesel::sql_types::{BigInt, Text};
        #[derive(diesel::QueryableByName, Debug, PartialEq)]
        struct Mark {
            #[diesel(sql_type = Text)]
            reader_id: String,
            #[diesel(sql_type = BigInt)]
            highest_seq: i64,
        }
        #[derive(diesel::QueryableByName)]
        struct Plan {
            #[diesel(sql_type = Text)]
            detail: String,
        }
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        revert_through(&mut conn, "20261203000001");
        conn.batch_execute(
            "INSERT INTO events (at, reader_id, seq, reader_ts, kind) VALUES \
             ('2026-11-24 08:00:00', 'r1', 3, '2026-11-24 08:00:00', 'swipe'), \
             ('2026-11-24 08:00:01', 'r1', 9, '2026-11-24 08:00:01', 'swipe'), \
             ('2026-11-24 08:00:02', 'r1', 5, '2026-11-24 08:00:02', 'swipe'), \
             ('2026-11-24 08:00:03', 'r2', 4, '2026-11-24 08:00:03', 'swipe'), \
             ('2026-11-24 08:00:04', NULL, NULL, NULL, 'door_open');",
        )
        .unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let marks: Vec<Mark> = diesel::sql_query(
            "SELECT reader_id, highest_seq FROM event_reader_marks ORDER BY reader_id",
        )
        .load(&mut conn)
        .unwrap();
        assert_eq!(
            marks,
            [
                Mark {
                    reader_id: "r1".into(),
                    highest_seq: 9
                },
                Mark {
                    reader_id: "r2".into(),
                    highest_seq: 4
                }
            ]
        );
        let plan: Vec<Plan> = diesel::sql_query(
            "EXPLAIN QUERY PLAN SELECT id FROM events \
             WHERE reader_id = 'r1' AND seq = 9 AND reader_ts = '2026-11-24 08:00:01'",
        )
        .load(&mut conn)
        .unwrap();
        assert!(
            plan.iter().any(|p| p.detail.contains("events_resend")),
            "{:?}",
            plan.iter().map(|p| &p.detail).collect::<Vec<_>>()
        );
    }

    /// Holidays stored twice on one site's date before the unique index are merged into
    /// the first, keeping every name; after it, a second is refused.
    #[test]
    fn the_holiday_migration_merges_holidays_on_one_sites_date() {
        use diesel::sql_types::{BigInt, Nullable, Text};
        #[derive(diesel::QueryableByName, Debug, PartialEq)]
        struct Holiday {
            #[diesel(sql_type = Nullable<BigInt>)]
            site_id: Option<i64>,
            #[diesel(sql_type = Text)]
            name: String,
            #[diesel(sql_type = Text)]
            date: String,
        }
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        revert_through(&mut conn, "20261210000400");
        conn.batch_execute(
            "INSERT INTO sites (name, timezone, lockdown, created_at, updated_at) VALUES \
             ('HQ', 'UTC', 0, '2026-11-24 08:00:00', '2026-11-24 08:00:00'); \
             INSERT INTO holidays (site_id, name, date) VALUES \
             (1, 'Christmas Day', '2026-12-25'), (NULL, 'New Year', '2027-01-01'), \
             (1, 'Company closure', '2026-12-25'), (NULL, 'Hogmanay', '2027-01-01'), \
             (1, 'Third', '2026-12-25'), (1, 'Boxing Day', '2026-12-26');",
        )
        .unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let rows: Vec<Holiday> =
            diesel::sql_query("SELECT site_id, name, date FROM holidays ORDER BY date")
                .load(&mut conn)
                .unwrap();
        let holiday = |site_id, name: &str, date: &str| Holiday {
            site_id,
            name: name.to_owned(),
            date: date.to_owned(),
        };
        assert_eq!(
            rows,
            [
                holiday(
                    Some(1),
                    "Christmas Day / Company closure / Third",
                    "2026-12-25"
                ),
                holiday(Some(1), "Boxing Day", "2026-12-26"),
                holiday(None, "New Year / Hogmanay", "2027-01-01"),
            ]
        );
        assert!(
            conn.batch_execute(
                "INSERT INTO holidays (site_id, name, date) VALUES (NULL, 'Again', '2027-01-01')"
            )
            .is_err()
        );
    }

    #[test]
    fn sqlite_in_missing_folder_is_a_clear_error() {
        let err = open("sqlite:///nonexistent-gatehouse-folder/x.db", 1)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent-gatehouse-folder"), "{err}");
        assert!(err.contains("does not exist"), "{err}");
    }

    /// The sealed-events migration keeps the MQTT readers registered before it working
    /// (marked legacy: their firmware sends bare events), leaves Modbus readers and new
    /// readers sealed, and the reused-seq lookup walks one door's day, not the log.
    #[test]
    fn the_sealed_events_migration_marks_existing_mqtt_readers_legacy() {
        use diesel::sql_types::{Bool, Text};
        #[derive(diesel::QueryableByName, Debug, PartialEq)]
        struct Legacy {
            #[diesel(sql_type = Text)]
            reader_id: String,
            #[diesel(sql_type = Bool)]
            legacy: bool,
        }
        #[derive(diesel::QueryableByName)]
        struct Plan {
            #[diesel(sql_type = Text)]
            detail: String,
        }
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        revert_through(&mut conn, "20261208000001");
        // The door is beside the point: no site, zone and door rows for it.
        conn.batch_execute("PRAGMA foreign_keys = OFF").unwrap();
        conn.batch_execute(
            "INSERT INTO readers (reader_id, door_id, protocol, direction, secret, created_at, updated_at) VALUES \
             ('old-mqtt', 1, 'mqtt', 'in', 's', '2026-11-24 08:00:00', '2026-11-24 08:00:00'), \
             ('old-modbus', 1, 'modbus', 'in', 's', '2026-11-24 08:00:00', '2026-11-24 08:00:00');",
        )
        .unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        conn.batch_execute(
            "INSERT INTO readers (reader_id, door_id, protocol, direction, secret, created_at, updated_at) VALUES \
             ('new-mqtt', 1, 'mqtt', 'in', 's', '2026-12-08 08:00:00', '2026-12-08 08:00:00');",
        )
        .unwrap();
        let rows: Vec<Legacy> =
            diesel::sql_query("SELECT reader_id, legacy FROM readers ORDER BY id")
                .load(&mut conn)
                .unwrap();
        let expected = [
            ("old-mqtt", true),
            ("old-modbus", false),
            ("new-mqtt", false),
        ];
        assert_eq!(
            rows,
            expected.map(|(reader_id, legacy)| Legacy {
                reader_id: reader_id.into(),
                legacy
            })
        );
        let plan: Vec<Plan> = diesel::sql_query(
            "EXPLAIN QUERY PLAN SELECT id FROM events \
             WHERE reader_id = 'r1' AND seq = 9 AND at >= '2026-11-24 08:00:01' AND door_id = 3",
        )
        .load(&mut conn)
        .unwrap();
        assert!(
            plan.iter().any(|p| p.detail.contains("events_door_at")),
            "{:?}",
            plan.iter().map(|p| &p.detail).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_audit_keyed_migration_keeps_entries_and_refuses_numbers_below_1() {
        use diesel::sql_types::{BigInt, Bool};
        #[derive(diesel::QueryableByName, Debug, PartialEq)]
        struct Entry {
            #[diesel(sql_type = BigInt)]
            id: i64,
            #[diesel(sql_type = BigInt)]
            seq: i64,
            #[diesel(sql_type = Bool)]
            keyed: bool,
        }
        let before_it = |conn: &mut SqliteConnection| {
            conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
            revert_through(conn, "20261208000003");
        };
        let insert = |seq: i64, id: i64| {
            format!(
                "INSERT INTO audit_log (id, seq, at, actor, action, entity, summary, prev_hash, \
                 hash) VALUES ({id}, {seq}, '2026-12-01 08:00:00', 'root', 'create', 'person', \
                 'create person E{seq}', 'p{seq}', 'h{seq}')"
            )
        };
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        before_it(&mut conn);
        conn.batch_execute(&format!("{}; {}", insert(1, 10), insert(2, 11)))
            .unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let entries: Vec<Entry> =
            diesel::sql_query("SELECT id, seq, keyed FROM audit_log ORDER BY seq")
                .load(&mut conn)
                .unwrap();
        assert_eq!(
            entries,
            [
                Entry {
                    id: 10,
                    seq: 1,
                    keyed: false
                },
                Entry {
                    id: 11,
                    seq: 2,
                    keyed: false
                }
            ]
        );
        // New rows continue the ids, and the table refuses a number below 1.
        conn.batch_execute("INSERT INTO audit_log (seq, at, actor, action, entity, summary, prev_hash, hash) VALUES (3, '2026-12-01 08:00:00', 'root', 'create', 'person', 's', 'h2', 'h3')")
            .unwrap();
        let newest: Vec<Entry> =
            diesel::sql_query("SELECT id, seq, keyed FROM audit_log WHERE seq = 3")
                .load(&mut conn)
                .unwrap();
        assert_eq!(newest[0].id, 12);
        assert!(conn.batch_execute(&insert(0, 20)).is_err());

        // A database that already holds an entry below 1 stops at the migration.
        let mut forged = SqliteConnection::establish(":memory:").unwrap();
        before_it(&mut forged);
        forged.batch_execute(&insert(0, 1)).unwrap();
        assert!(forged.run_pending_migrations(SQLITE_MIGRATIONS).is_err());
    }

    /// The provenance migration maps the actor of every earlier entry as
    /// `Provenance::from_recorded_actor` does (which `audit verify` checks them against),
    /// keeps their hashes at version 1, and makes every earlier token full.
    #[test]
    fn the_provenance_migration_reads_earlier_actors_and_keeps_tokens_full() {
        use crate::identity::provenance::Provenance;
        use crate::store::rows::AuditRow;
        use crate::store::schema::{api_tokens, audit_log};
        use diesel::prelude::*;
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        revert_through(&mut conn, "20261209000020");
        let actors = [
            "root",
            "cli:alice",
            "sign-in lockout",
            "first-admin setup",
            "CLI:shouting",
        ];
        for (i, actor) in actors.iter().enumerate() {
            conn.batch_execute(&format!(
                "INSERT INTO audit_log (seq, at, actor, action, entity, summary, prev_hash, \
                 hash) VALUES ({}, '2026-12-01 08:00:00', '{actor}', 'create', 'person', 's', \
                 'p', 'h')",
                i + 1
            ))
            .unwrap();
        }
        conn.batch_execute(
            "INSERT INTO admin_users (username, password_hash, role, disabled, created_at, \
             updated_at) VALUES ('root', 'x', 'admin', 0, '2026-12-01 08:00:00', \
             '2026-12-01 08:00:00'); \
             INSERT INTO api_tokens (admin_user_id, name, token_hash, created_at, revoked) \
             VALUES (1, 'ci', 'd', '2026-12-01 08:00:00', 0)",
        )
        .unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let rows: Vec<AuditRow> = audit_log::table
            .order(audit_log::seq)
            .select(AuditRow::as_select())
            .load(&mut conn)
            .unwrap();
        assert_eq!(rows.len(), actors.len());
        for row in &rows {
            assert_eq!(row.hash_version, 1, "{}", row.actor);
            assert_eq!(
                row.provenance,
                Provenance::from_recorded_actor(&row.actor).columns(),
                "{}",
                row.actor
            );
        }
        let read: Vec<String> = rows
            .iter()
            .map(|row| {
                Provenance::from_columns(&row.provenance, &row.actor).requester_text()
                    + " / "
                    + &Provenance::from_columns(&row.provenance, &row.actor).channel_text()
            })
            .collect();
        assert_eq!(
            read,
            [
                "root / not recorded",
                "CLI user alice / CLI",
                "the appliance (sign-in lockout) / console",
                "the holder of the first-admin setup code / console",
                "CLI:shouting / not recorded",
            ]
        );
        let scopes: Vec<String> = api_tokens::table
            .select(api_tokens::scope)
            .load(&mut conn)
            .unwrap();
        assert_eq!(scopes, ["full"]);
        // And back (with any migration after it).
        revert_through(&mut conn, "20261209000020");
        let scopes: Vec<String> = api_tokens::table
            .select(api_tokens::name)
            .load(&mut conn)
            .unwrap();
        assert_eq!(scopes, ["ci"], "the tokens stay, without their scope");
    }

    /// The event-context migration fills what old rows can know (a swipe's direction from
    /// its reader, its reason code from the stored decision) and leaves where and under
    /// which policy it was decided unknown: today's zone of the door may not be then's.
    #[test]
    fn the_event_context_migration_fills_only_what_old_rows_can_know() {
        use diesel::sql_types::{BigInt, Nullable, Text};
        #[derive(diesel::QueryableByName, Debug, PartialEq)]
        struct Context {
            #[diesel(sql_type = Nullable<Text>)]
            direction: Option<String>,
            #[diesel(sql_type = Nullable<Text>)]
            reason_code: Option<String>,
            #[diesel(sql_type = Nullable<BigInt>)]
            zone_id: Option<i64>,
            #[diesel(sql_type = Nullable<BigInt>)]
            policy_version: Option<i64>,
        }
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        revert_through(&mut conn, "20261209000001");
        conn.batch_execute("PRAGMA foreign_keys = OFF").unwrap();
        conn.batch_execute(
            "INSERT INTO readers (reader_id, door_id, protocol, direction, secret, created_at, updated_at) VALUES \
             ('lab-out', 1, 'mqtt', 'out', 's', '2026-11-24 08:00:00', '2026-11-24 08:00:00'); \
             INSERT INTO events (at, reader_id, seq, reader_ts, kind, door_id, result, detail) VALUES \
             ('2026-11-24 08:00:00', 'lab-out', 1, '2026-11-24 08:00:00', 'swipe', 1, 'granted', \
              '{\"kind\":\"entitled\",\"entitlement_id\":1,\"level_id\":1,\"schedule_id\":1,\"via_zone\":null}'), \
             ('2026-11-24 08:00:01', 'lab-out', 2, '2026-11-24 08:00:01', 'swipe', 1, 'denied', \
              '{\"pin_lockout\":{\"attempts\":5},\"decision\":{\"kind\":\"pin_wrong\",\"credential_id\":1}}'), \
             ('2026-11-24 08:00:02', 'gone', 3, '2026-11-24 08:00:02', 'reader_fault', NULL, NULL, 'not json');",
        )
        .unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let rows: Vec<Context> = diesel::sql_query(
            "SELECT direction, reason_code, zone_id, policy_version FROM events ORDER BY id",
        )
        .load(&mut conn)
        .unwrap();
        let context = |direction: Option<&str>, reason: Option<&str>| Context {
            direction: direction.map(str::to_owned),
            reason_code: reason.map(str::to_owned),
            zone_id: None,
            policy_version: None,
        };
        assert_eq!(
            rows,
            [
                context(Some("out"), Some("entitled")),
                context(Some("out"), Some("pin_wrong")),
                context(None, None),
            ]
        );
    }
}
