//! Backups: prove a backup file is whole and restorable, list them, and
//! apply a retention policy. This file lists the module's primitives, each
//! declared beside its function; the code lives by concern: checks (the
//! verify report), checksum, compress, formats (pg archives, SQL, SQLite,
//! Redis RDB), restore (the scratch-database restore), listing, retention,
//! tools (the PostgreSQL client programs).

mod checks;
pub(crate) mod checksum;
pub(crate) mod compress;
pub(crate) mod formats;
mod listing;
pub(crate) mod opts;
pub(crate) mod restore;
mod retention;
pub(crate) mod tools;

use crate::registry::ModuleDecl;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "backup",
    doc: "Backup files: prove one is whole and restorable (checksum, compression, format, a real restore into a scratch database), list them, apply a retention policy.",
    target: None,
    primitives: &[
        checks::VERIFY,
        listing::LIST,
        listing::LATEST,
        retention::RETENTION,
    ],
};
