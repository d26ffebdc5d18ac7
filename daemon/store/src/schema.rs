//! Opening the database: directory checks, pragmas for flash, schema migrations, and moving a
//! corrupt file aside.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;

/// The schema this build writes. Older files are migrated forward; newer ones are refused.
pub const SCHEMA_VERSION: i64 = 4;

/// What marks a database as ebpfstat's (`PRAGMA application_id`, in the file's header): "ebps".
/// Files made before it was set are known by their tables, and marked when opened.
pub const APPLICATION_ID: i64 = 0x6562_7073;

/// Tables every ebpfstat database has had since schema 1.
const FIRST_TABLES: [&str; 7] = ["meta", "boots", "series", "ticks", "raw", "min1", "hour1"];

/// SQLite page size for new files. Measured on the `store` benchmark: 1 KiB pages leave ~20 %
/// of each page empty around ~300-byte segments (1.23 bytes/program-tick), 4 KiB pages make
/// every commit rewrite bigger pages (6.4× write amplification against 3.9×); 2 KiB is the
/// balance (0.99 bytes/program-tick).
pub const PAGE_SIZE: u32 = 2048;

/// WAL pages before an automatic checkpoint, and the size the WAL is truncated back to.
pub const WAL_AUTOCHECKPOINT_PAGES: u32 = 1024;
pub const JOURNAL_SIZE_LIMIT: u64 = 1 << 20;

// Rows carrying chunk blobs live in rowid tables: SQLite moves WITHOUT ROWID rows larger than
// about a quarter of a page to overflow pages, wasting most of them. Raw segments use the rowid
// itself as their key, `start_tick << 32 | series_id`, so they cluster by time at no cost.
const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
     CREATE TABLE boots (
         boot_seq INTEGER PRIMARY KEY,
         boot_id TEXT NOT NULL UNIQUE,
         wall_offset_ns INTEGER NOT NULL,
         clock_steps INTEGER NOT NULL DEFAULT 0,
         stats_cost_ps INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE series (
         series_id INTEGER PRIMARY KEY,
         boot_seq INTEGER NOT NULL,
         prog_id INTEGER NOT NULL,
         load_bt_ns INTEGER NOT NULL,
         name TEXT NOT NULL,
         full_name TEXT NOT NULL,
         type TEXT NOT NULL,
         tag TEXT NOT NULL,
         created_by_uid INTEGER NOT NULL,
         btf_id INTEGER,
         jited_size INTEGER NOT NULL,
         xlated_size INTEGER NOT NULL,
         verified_insns INTEGER NOT NULL,
         first_tick INTEGER NOT NULL,
         first_bt_ns INTEGER NOT NULL,
         base_cnt INTEGER NOT NULL,
         base_rt INTEGER NOT NULL,
         end_tick INTEGER,
         end_bt_ns INTEGER,
         end_cnt INTEGER,
         end_rt INTEGER,
         map_mem INTEGER NOT NULL DEFAULT 0,
         map_mem_own INTEGER NOT NULL DEFAULT 0,
         map_mem_shared INTEGER NOT NULL DEFAULT 0,
         UNIQUE (boot_seq, prog_id, load_bt_ns)
     );
     CREATE INDEX series_identity ON series (full_name, type, tag);
     CREATE TABLE ticks (
         first_tick INTEGER PRIMARY KEY,
         boot_seq INTEGER NOT NULL,
         first_bt_us INTEGER NOT NULL,
         last_bt_us INTEGER NOT NULL,
         n INTEGER NOT NULL,
         data BLOB NOT NULL
     );
     CREATE TABLE raw (
         key INTEGER PRIMARY KEY,
         base_cnt INTEGER NOT NULL,
         base_rt INTEGER NOT NULL,
         data BLOB NOT NULL
     );
     CREATE TABLE min1 (
         boot_seq INTEGER NOT NULL,
         chunk INTEGER NOT NULL,
         series_id INTEGER NOT NULL,
         base_cnt INTEGER NOT NULL,
         base_rt INTEGER NOT NULL,
         samples INTEGER NOT NULL,
         sum_cnt INTEGER NOT NULL,
         sum_rt INTEGER NOT NULL,
         peak_cnt_rate INTEGER NOT NULL,
         peak_rt_rate INTEGER NOT NULL,
         covered INTEGER NOT NULL,
         data BLOB NOT NULL,
         UNIQUE (boot_seq, chunk, series_id)
     );
     CREATE TABLE hour1 (
         boot_seq INTEGER NOT NULL,
         chunk INTEGER NOT NULL,
         series_id INTEGER NOT NULL,
         base_cnt INTEGER NOT NULL,
         base_rt INTEGER NOT NULL,
         samples INTEGER NOT NULL,
         sum_cnt INTEGER NOT NULL,
         sum_rt INTEGER NOT NULL,
         peak_cnt_rate INTEGER NOT NULL,
         peak_rt_rate INTEGER NOT NULL,
         covered INTEGER NOT NULL,
         data BLOB NOT NULL,
         UNIQUE (boot_seq, chunk, series_id)
     );",
    // 1 → 2: what the daemon concluded (a version compared), a bounded ring.
    "CREATE TABLE events (
         event_id INTEGER PRIMARY KEY,
         time_ns INTEGER NOT NULL,
         kind TEXT NOT NULL,
         program TEXT NOT NULL,
         type TEXT NOT NULL,
         tag TEXT NOT NULL,
         before_tag TEXT NOT NULL,
         judged INTEGER NOT NULL,
         significant INTEGER NOT NULL,
         ratio REAL NOT NULL,
         ratio_low REAL NOT NULL,
         ratio_high REAL NOT NULL,
         text TEXT NOT NULL
     );
     CREATE TABLE concluded (
         program TEXT NOT NULL,
         type TEXT NOT NULL,
         tag TEXT NOT NULL,
         PRIMARY KEY (program, type, tag)
     ) WITHOUT ROWID",
    // 2 → 3: alerts raised and cleared (a bounded ring of their own), and those raised now.
    "CREATE TABLE alerts (
         alert_id INTEGER PRIMARY KEY,
         time_ns INTEGER NOT NULL,
         rule TEXT NOT NULL,
         metric TEXT NOT NULL,
         state TEXT NOT NULL,
         prog_id INTEGER NOT NULL,
         program TEXT NOT NULL,
         type TEXT NOT NULL,
         value REAL NOT NULL,
         threshold REAL NOT NULL,
         clear REAL NOT NULL,
         since_ns INTEGER NOT NULL,
         text TEXT NOT NULL
     );
     CREATE TABLE open_alerts (
         rule TEXT NOT NULL,
         prog_id INTEGER NOT NULL,
         time_ns INTEGER NOT NULL,
         metric TEXT NOT NULL,
         state TEXT NOT NULL,
         program TEXT NOT NULL,
         type TEXT NOT NULL,
         value REAL NOT NULL,
         threshold REAL NOT NULL,
         clear REAL NOT NULL,
         since_ns INTEGER NOT NULL,
         text TEXT NOT NULL,
         PRIMARY KEY (rule, prog_id)
     )",
    // 3 → 4: per-map history. A point is written when a map's memory or entries change, in
    // each tier's bucket (wall seconds over the tier's width), keyed time first so that new
    // points append to the end of the tree (flash writes stay close to the bytes added).
    "CREATE TABLE map_series (
         map_series_id INTEGER PRIMARY KEY,
         boot_seq INTEGER NOT NULL,
         map_id INTEGER NOT NULL,
         name TEXT NOT NULL,
         type TEXT NOT NULL,
         max_entries INTEGER NOT NULL,
         first_s INTEGER NOT NULL,
         end_s INTEGER,
         UNIQUE (boot_seq, map_id)
     );
     CREATE INDEX map_series_name ON map_series (name);
     CREATE TABLE map_points (
         tier INTEGER NOT NULL,
         bucket INTEGER NOT NULL,
         map_series_id INTEGER NOT NULL,
         memory INTEGER,
         entries INTEGER,
         peak_entries INTEGER,
         PRIMARY KEY (tier, bucket, map_series_id)
     ) WITHOUT ROWID",
];

/// What opening found.
#[derive(Debug, Default)]
pub struct Opened {
    /// Set when a damaged file was renamed to this path and a fresh one created.
    pub moved_aside: Option<(PathBuf, String)>,
}

/// Opens (creating or repairing) the database at `path`: ours, or a new one, never through a
/// link nor another program's SQLite file.
pub fn open(path: &Path) -> Result<(Connection, Opened), StoreError> {
    // Its directory is root's (0700): nobody else can put a link there between this look and
    // the open.
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(StoreError::Link {
                path: path.to_owned(),
            });
        }
        _ => {}
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
        path: dir.to_owned(),
        source,
    })?;
    check_writable(dir)?;

    let mut opened = Opened::default();
    let conn = match try_open(path) {
        Ok(conn) => conn,
        Err(OpenFailure::Damaged(why)) => {
            let aside = move_aside(path)?;
            opened.moved_aside = Some((aside, why));
            try_open(path).map_err(|f| f.at(path))?
        }
        Err(f) => return Err(f.at(path)),
    };
    Ok((conn, opened))
}

/// Why a file could not be opened: damage (move it aside) or anything else (leave it alone).
#[derive(Debug, thiserror::Error)]
enum OpenFailure {
    #[error("{0}")]
    Damaged(String),
    #[error("{0}")]
    Other(String),
    /// Not ours: left as it is.
    #[error("{0}")]
    Foreign(String),
}

impl OpenFailure {
    /// The store's error for the file at `path` (damage that could not be moved aside included).
    fn at(self, path: &Path) -> StoreError {
        let path = path.to_owned();
        match self {
            Self::Foreign(why) => StoreError::Foreign { path, why },
            other => StoreError::Open {
                path,
                why: other.to_string(),
            },
        }
    }
}

impl From<rusqlite::Error> for OpenFailure {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::NotADatabase | C::DatabaseCorrupt) => Self::Damaged(e.to_string()),
            _ => Self::Other(e.to_string()),
        }
    }
}

fn check_writable(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::ffi::OsStrExt;
    let c =
        std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| StoreError::Directory {
            path: dir.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
    // SAFETY: `c` is a NUL-terminated path alive for the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return Err(StoreError::Directory {
            path: dir.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Opens, configures, checks and migrates; any failure that means "this file is damaged" comes
/// back as the reason, so the caller can move the file aside.
fn try_open(path: &Path) -> Result<Connection, OpenFailure> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    // Room for every statement the daemon uses (about 40; rusqlite keeps 16): a query path
    // longer than the cache parsed its SQL again on every call, an export page included.
    conn.set_prepared_statement_cache_capacity(64);
    // Exclusive locking keeps the WAL index in heap memory instead of a shared-memory `-shm`
    // file that every commit would dirty (flash writes); the daemon is the database's only
    // user. It must come before the first read: a read of a file already in WAL mode (a
    // restart) would otherwise open the shared-memory index.
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE;")?;
    let fresh: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    // Before anything is written (WAL mode, tables): another program's file stays as it was.
    let marked = check_ours(&conn, fresh == 0)?;
    if fresh == 0 {
        // Only effective before the first table exists.
        conn.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE}; PRAGMA auto_vacuum = INCREMENTAL;"
        ))?;
    }
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT};
         PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};
         PRAGMA cache_size = -512;
         PRAGMA temp_store = MEMORY;"
    ))?;
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(OpenFailure::Damaged(format!(
            "integrity check failed: {}",
            first_problem(&check)
        )));
    }
    migrate(&conn)?;
    if !marked {
        conn.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))?;
    }
    Ok(conn)
}

/// Whether the file is ours to use: marked as ours (`Ok(true)`), or new, or made by an
/// ebpfstatd from before the mark (`Ok(false)`: to be marked). Anything else is another
/// program's SQLite file.
fn check_ours(conn: &Connection, empty: bool) -> Result<bool, OpenFailure> {
    let id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    if id == APPLICATION_ID {
        return Ok(true);
    }
    if id != 0 {
        return Err(OpenFailure::Foreign(format!(
            "its application_id is {id:#x}, not ebpfstat's {APPLICATION_ID:#x}"
        )));
    }
    if empty {
        return Ok(false);
    }
    let names = FIRST_TABLES.map(|t| format!("'{t}'")).join(", ");
    let ours: usize = conn.query_row(
        &format!("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({names})"),
        [],
        |r| r.get(0),
    )?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if ours < FIRST_TABLES.len() || version < 1 {
        return Err(OpenFailure::Foreign(
            "it holds tables, but not ebpfstat's".to_owned(),
        ));
    }
    Ok(false)
}

/// The first problem `quick_check` lists, and how many more: one line for the log, where
/// SQLite gives a line per damaged page (up to a hundred).
fn first_problem(check: &str) -> String {
    let mut problems = check
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("***"));
    let first = problems.next().unwrap_or("no details");
    match problems.count() {
        0 => first.to_owned(),
        more => format!("{first} (and {more} more)"),
    }
}

fn migrate(conn: &Connection) -> Result<(), OpenFailure> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(OpenFailure::Other(format!(
            "schema version {version} is newer than this ebpfstatd understands ({SCHEMA_VERSION})"
        )));
    }
    let done = usize::try_from(version)
        .map_err(|_| OpenFailure::Damaged(format!("schema version {version} is negative")))?;
    for (v, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let next = v + 1;
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {next}; COMMIT;"
        ))
        .map_err(|e| OpenFailure::Other(format!("migrating schema to version {next}: {e}")))?;
    }
    Ok(())
}

/// Renames the database (and its WAL and shm) to `<path>.corrupt-<unix seconds>`.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{stamp}"));
    let aside = PathBuf::from(aside);
    // The side files first: if one cannot move, nothing has, and the damaged file stays where
    // it is. A stale WAL left beside a new database would be replayed into it.
    for suffix in ["-wal", "-shm"] {
        let mut from = path.as_os_str().to_owned();
        from.push(suffix);
        let mut to = aside.as_os_str().to_owned();
        to.push(suffix);
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            // The side files may not exist.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::MoveAside {
                    path: PathBuf::from(from),
                    source,
                });
            }
        }
    }
    std::fs::rename(path, &aside).map_err(|source| StoreError::MoveAside {
        path: path.to_owned(),
        source,
    })?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use rusqlite::Connection;

    use super::{APPLICATION_ID, first_problem, open};
    use crate::error::StoreError;

    /// A directory of this test's own, removed after it.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("ebpfstat-schema-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch directory");
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn pragma(path: &Path, name: &str) -> String {
        let conn = Connection::open(path).expect("open");
        conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| format!("{v:?}"))
        .expect("pragma")
    }

    fn tables(path: &Path) -> Vec<String> {
        let conn = Connection::open(path).expect("open");
        let mut q = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .expect("prepare");
        q.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("names")
    }

    #[test]
    fn a_link_is_not_followed() {
        let dir = Scratch::new("link");
        let real = dir.0.join("real.db");
        drop(open(&real).expect("a new database"));
        let link = dir.0.join("history.db");
        std::os::unix::fs::symlink(&real, &link).expect("link");
        let e = open(&link).expect_err("through a link");
        assert!(matches!(e, StoreError::Link { .. }), "{e}");
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
    }

    #[test]
    fn another_programs_file_is_left_as_it_was() {
        let dir = Scratch::new("foreign");
        let other = dir.0.join("other.db");
        Connection::open(&other)
            .and_then(|c| {
                c.execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('a');")
            })
            .expect("another program's file");
        let e = open(&other).expect_err("not ours");
        assert!(matches!(e, StoreError::Foreign { .. }), "{e}");
        assert!(
            e.to_string().contains("not an ebpfstat history database"),
            "{e}"
        );
        assert_eq!(tables(&other), ["notes"]);
        assert_eq!(pragma(&other, "journal_mode"), "Text(\"delete\")");
        // Marked as another application's, even without tables.
        let marked = dir.0.join("marked.db");
        Connection::open(&marked)
            .and_then(|c| c.execute_batch("PRAGMA application_id = 42;"))
            .expect("marked");
        let e = open(&marked).expect_err("another application's");
        assert!(e.to_string().contains("application_id is 0x2a"), "{e}");
    }

    #[test]
    fn a_file_from_before_the_mark_opens_and_is_marked() {
        let dir = Scratch::new("old");
        let db = dir.0.join("history.db");
        drop(open(&db).expect("a new database"));
        assert_eq!(
            pragma(&db, "application_id"),
            format!("Integer({APPLICATION_ID})")
        );
        Connection::open(&db)
            .and_then(|c| c.execute_batch("PRAGMA application_id = 0;"))
            .expect("unmark");
        assert_eq!(pragma(&db, "application_id"), "Integer(0)");
        drop(open(&db).expect("ebpfstat's tables, no mark"));
        assert_eq!(
            pragma(&db, "application_id"),
            format!("Integer({APPLICATION_ID})")
        );
    }

    #[test]
    fn a_damaged_file_is_one_line() {
        let check = "*** in database main ***\nTree 3 page 3: btreeInitPage() returns error code \
                     11\nTree 4 page 4: btreeInitPage() returns error code 11\n";
        assert_eq!(
            first_problem(check),
            "Tree 3 page 3: btreeInitPage() returns error code 11 (and 1 more)"
        );
        assert_eq!(
            first_problem("row 7 missing from index x"),
            "row 7 missing from index x"
        );
    }
}
