//! Storage: the connection pool over SQLite or PostgreSQL (chosen by the database URL),
//! embedded migrations, and the row types and queries of every table.

pub mod load;
pub mod rows;
pub mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::Connection as _;
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
#[derive(Debug, Clone, Copy)]
struct SqliteSetup;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqliteSetup {
    #[allow(irrefutable_let_patterns)] // irrefutable in a build without PostgreSQL
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(c) = conn {
            c.batch_execute(
                "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
                 PRAGMA synchronous = FULL; PRAGMA cache_size = -32768;",
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
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

    #[test]
    fn sqlite_in_missing_folder_is_a_clear_error() {
        let err = open("sqlite:///nonexistent-gatehouse-folder/x.db", 1)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent-gatehouse-folder"), "{err}");
        assert!(err.contains("does not exist"), "{err}");
    }
}
