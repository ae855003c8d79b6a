//! Opening the appliance's database, the one way every command and `serve` do it: the data
//! folder made private, the pool opened, migrations run, the appliance key installed.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::store::{self, DbPool, audit};

/// Opens the database the config names and migrates it, after creating the data folder
/// (for its owner only) and loading the appliance key kept in it.
pub fn open_database(config: &Config) -> Result<DbPool> {
    prepare_data_dir(&config.data_dir)?;
    let pool = store::open(&config.database_url(), config.database.pool_size)?;
    let mut conn = pool.get().context("no database connection")?;
    let applied = store::migrate(&mut conn)?;
    for name in applied {
        tracing::info!(migration = %name, "applied migration");
    }
    let keyed = audit::is_keyed(&mut conn)?;
    crate::identity::appliance_key::install_from(&config.data_dir, !keyed)?;
    Ok(pool)
}

/// Creates the data folder, 0700: it holds the database (reader secrets in clear), the
/// appliance key and the setup code. One that others may enter is warned about, not changed:
/// an installer may share it on purpose.
pub fn prepare_data_dir(data_dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(data_dir).with_context(|| {
        format!(
            "cannot create the data folder {} (set data_dir or GATEHOUSE_DATA_DIR)",
            data_dir.display()
        )
    })?;
    if let Some(mode) = crate::identity::appliance_key::others_may_access(data_dir) {
        tracing::warn!(
            "the data folder {} may be entered by other users (mode {mode:o}), and it holds \
             reader secrets and the appliance key; run `chmod 700 {}`",
            data_dir.display(),
            data_dir.display()
        );
    }
    Ok(())
}
