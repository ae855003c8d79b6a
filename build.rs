//! Rebuilds the binary when a migration is added or changed: the migrations are embedded
//! by `embed_migrations!`, which cargo does not know reads them.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
