//! Moving and keeping data: `picket db copy` moves every table between SQLite and
//! PostgreSQL, and `picket db backup` takes an online SQLite backup.
//!
//! A copy reads the source inside one read transaction (a consistent snapshot even while
//! picket runs on it) and writes the destination in chunks of rows, each its own
//! transaction, with `ON CONFLICT DO NOTHING`: a copy cut short is run again and goes on
//! where it stopped, never writing a row twice. A table without any key is written in one
//! transaction, so it is either all there or not at all. Ids are copied as they are (the
//! destination's identity counters move past them) so every reference still holds.
//! Parents are written before the tables that refer to them.
//!
//! Then both sides are verified table by table: the number of rows and a checksum of
//! their contents, the same on either database (a sum of per-row SHA-256 hashes, so the
//! order rows come back in does not matter; integers and booleans hash alike, as SQLite
//! stores booleans as integers).
//!
//! The column types come from PostgreSQL's catalog (the one side that keeps them strict);
//! SQLite's values are read by the type each one is stored as.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, PgPool, Row, SqlitePool, TypeInfo, ValueRef};

use super::{PgStore, SqliteStore, StoreError};

/// Rows written per statement at most (and fewer for wide tables): far below either
/// database's limit of bound parameters.
const PARAMS_PER_INSERT: usize = 4_000;

/// Rows per destination transaction: the unit a copy cut short resumes from.
const ROWS_PER_COMMIT: usize = 10_000;

/// Why a copy or a backup did not happen, or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Opening or reading a database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Both URLs name the same kind of database.
    #[error(
        "db copy moves data between SQLite and PostgreSQL: give one sqlite:// and one \
         postgres:// URL (for a copy of a SQLite file use `picket db backup`)"
    )]
    SameKind,
    /// The two databases do not hold the same tables (different picket versions).
    #[error("the two databases' tables differ ({0}): run the same picket on both")]
    SchemaDiffers(String),
    /// A column of a type this copy does not know.
    #[error("column {table}.{column} has a type db copy does not know ({kind})")]
    UnknownType {
        table: String,
        column: String,
        kind: String,
    },
    /// After copying, a table differs between the two databases.
    #[error(
        "table {table} differs after copying: {source_rows} rows (checksum {source_sum}) in \
         the source, {dest_rows} (checksum {dest_sum}) in the destination; was the \
         destination empty?"
    )]
    Mismatch {
        table: String,
        source_rows: u64,
        dest_rows: u64,
        source_sum: String,
        dest_sum: String,
    },
    /// `db backup` works on SQLite only.
    #[error("db backup takes SQLite databases (for PostgreSQL use pg_dump)")]
    NotSqlite,
    /// The backup's file is there already.
    #[error("{0} exists already: back up to a new file")]
    Exists(String),
    /// The backup was written but SQLite's own check of it failed.
    #[error("the backup at {path} does not pass SQLite's integrity check: {said}")]
    Corrupt { path: String, said: String },
}

/// A table's row count and checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSum {
    pub table: String,
    pub rows: u64,
    /// Hex: the 256-bit sum of the rows' SHA-256 hashes.
    pub checksum: String,
}

/// One table of a finished copy.
#[derive(Debug, Clone)]
pub struct TableCopied {
    pub sum: TableSum,
    /// Rows the destination did not have yet (fewer than `sum.rows` on a resumed copy).
    pub written: u64,
}

/// How a column's values are written to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Text,
    Bytes,
    Real,
}

#[derive(Debug, Clone)]
struct Table {
    name: String,
    columns: Vec<(String, Kind)>,
    /// Has a primary key or a unique constraint: a conflicting row is one already copied.
    keyed: bool,
    /// The identity column whose counter must move past the copied ids (PostgreSQL).
    identity: Option<String>,
}

/// One value, as read from either database.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Real(f64),
}

enum Db {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

async fn open(url: &str) -> Result<Db, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Db::Pg(PgStore::connect(url).await?.pool));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if url.contains("://") && !url.starts_with("sqlite://") {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    if path.is_empty() || path.starts_with(":memory:") {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    // A source that does not exist is a typo, not an empty database; a destination given
    // as sqlite://PATH is created.
    let create = url.starts_with("sqlite:");
    if !create && !Path::new(path).is_file() {
        return Err(StoreError::NoSuchFile(url.to_string()));
    }
    Ok(Db::Sqlite(
        SqliteStore::open(Path::new(path), create).await?.pool,
    ))
}

/// Copy every table from `from` to `to` (one SQLite, one PostgreSQL), then verify both
/// sides table by table. `progress` hears of each table as it is done.
pub async fn copy(
    from: &str,
    to: &str,
    mut progress: impl FnMut(&TableCopied),
) -> Result<Vec<TableCopied>, CopyError> {
    let (source, dest) = (open(from).await?, open(to).await?);
    let pg = match (&source, &dest) {
        (Db::Sqlite(_), Db::Pg(pg)) | (Db::Pg(pg), Db::Sqlite(_)) => pg.clone(),
        _ => return Err(CopyError::SameKind),
    };
    let tables = pg_tables(&pg).await?;
    let sqlite = match (&source, &dest) {
        (Db::Sqlite(s), _) | (_, Db::Sqlite(s)) => s.clone(),
        _ => unreachable!("one side is SQLite"),
    };
    let on_sqlite = sqlite_table_names(&sqlite).await?;
    let on_pg: BTreeSet<String> = tables.iter().map(|t| t.name.clone()).collect();
    if on_sqlite != on_pg {
        let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| {
            a.difference(b).cloned().collect::<Vec<_>>().join(", ")
        };
        return Err(CopyError::SchemaDiffers(format!(
            "only in SQLite: [{}], only in PostgreSQL: [{}]",
            only(&on_sqlite, &on_pg),
            only(&on_pg, &on_sqlite)
        )));
    }
    let mut done = Vec::with_capacity(tables.len());
    match (&source, &dest) {
        (Db::Sqlite(s), Db::Pg(p)) => {
            let mut snapshot = s.begin().await.map_err(StoreError::from)?;
            for t in &tables {
                let (source_sum, written) = {
                    let rows = sqlx::query(AssertSqlSafe(select(t)))
                        .fetch(&mut *snapshot)
                        .map_err(StoreError::from)
                        .and_then(|r| async move { sqlite_cells(&r) });
                    write_pg(p, t, rows).await?
                };
                let dest_sum = pg_sum(p, t).await?;
                done.push(verified(t, source_sum, dest_sum, written, &mut progress)?);
            }
            snapshot.commit().await.map_err(StoreError::from)?;
            // A database just filled has no statistics until autovacuum gets to it, and
            // the claim's plan depends on them (see `Store::refresh_statistics`).
            sqlx::query("ANALYZE")
                .execute(p)
                .await
                .map_err(StoreError::from)?;
        }
        (Db::Pg(p), Db::Sqlite(s)) => {
            let mut snapshot = p.begin().await.map_err(StoreError::from)?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *snapshot)
                .await
                .map_err(StoreError::from)?;
            for t in &tables {
                let (source_sum, written) = {
                    let rows = sqlx::query(AssertSqlSafe(select(t)))
                        .fetch(&mut *snapshot)
                        .map_err(StoreError::from)
                        .and_then(|r| {
                            let cells = pg_cells(&r, t);
                            async move { cells }
                        });
                    write_sqlite(s, t, rows).await?
                };
                let dest_sum = sqlite_sum(s, t).await?;
                done.push(verified(t, source_sum, dest_sum, written, &mut progress)?);
            }
            snapshot.commit().await.map_err(StoreError::from)?;
        }
        _ => unreachable!("checked above"),
    }
    Ok(done)
}

fn verified(
    t: &Table,
    source: TableSum,
    dest: TableSum,
    written: u64,
    progress: &mut impl FnMut(&TableCopied),
) -> Result<TableCopied, CopyError> {
    if source != dest {
        return Err(CopyError::Mismatch {
            table: t.name.clone(),
            source_rows: source.rows,
            dest_rows: dest.rows,
            source_sum: source.checksum,
            dest_sum: dest.checksum,
        });
    }
    let copied = TableCopied {
        sum: source,
        written,
    };
    progress(&copied);
    Ok(copied)
}

/// Row counts and checksums of every table of the database at `url` (the tables picket's
/// migrations made), by name.
pub async fn table_sums(url: &str) -> Result<Vec<TableSum>, CopyError> {
    match open(url).await? {
        Db::Sqlite(s) => {
            let mut out = Vec::new();
            for name in sqlite_table_names(&s).await? {
                let t = Table {
                    columns: sqlite_columns(&s, &name).await?,
                    name,
                    keyed: true,
                    identity: None,
                };
                out.push(sqlite_sum(&s, &t).await?);
            }
            Ok(out)
        }
        Db::Pg(p) => {
            let mut out = Vec::new();
            let mut tables = pg_tables(&p).await?;
            tables.sort_by(|a, b| a.name.cmp(&b.name));
            for t in &tables {
                out.push(pg_sum(&p, t).await?);
            }
            Ok(out)
        }
    }
}

/// Write a consistent copy of the SQLite database at `url` to the new file `to` while
/// picket may be running on it (`VACUUM INTO`: one read transaction, so a snapshot), then
/// check the copy with SQLite's `integrity_check`.
pub async fn backup(url: &str, to: &Path) -> Result<(), CopyError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(CopyError::NotSqlite);
    }
    if to.exists() {
        return Err(CopyError::Exists(to.display().to_string()));
    }
    let Db::Sqlite(pool) = open(url).await? else {
        return Err(CopyError::NotSqlite);
    };
    sqlx::query("VACUUM INTO $1")
        .bind(to.to_string_lossy().into_owned())
        .execute(&pool)
        .await
        .map_err(StoreError::from)?;
    let check = SqliteStore::open(to, false).await?;
    let said: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&check.pool)
        .await
        .map_err(StoreError::from)?;
    if said != "ok" {
        return Err(CopyError::Corrupt {
            path: to.display().to_string(),
            said,
        });
    }
    Ok(())
}

fn select(t: &Table) -> String {
    let cols: Vec<String> = t.columns.iter().map(|(c, _)| quoted(c)).collect();
    format!("SELECT {} FROM {}", cols.join(", "), quoted(&t.name))
}

/// Names come from the databases' own catalogs; quoting keeps a keyword usable as one.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The tables picket's migrations made in PostgreSQL, parents before the tables that
/// refer to them.
async fn pg_tables(pg: &PgPool) -> Result<Vec<Table>, CopyError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::TEXT FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name <> '_sqlx_migrations' ORDER BY table_name",
    )
    .fetch_all(pg)
    .await
    .map_err(StoreError::from)?;
    let columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::TEXT, column_name::TEXT, data_type::TEXT, is_identity::TEXT \
         FROM information_schema.columns WHERE table_schema = current_schema() \
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(pg)
    .await
    .map_err(StoreError::from)?;
    let keyed: BTreeSet<String> = sqlx::query_scalar(
        "SELECT DISTINCT table_name::TEXT FROM information_schema.table_constraints \
         WHERE table_schema = current_schema() AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
    )
    .fetch_all(pg)
    .await
    .map_err(StoreError::from)?
    .into_iter()
    .collect();
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT tc.table_name::TEXT, ccu.table_name::TEXT \
         FROM information_schema.table_constraints tc \
         JOIN information_schema.constraint_column_usage ccu \
         ON ccu.constraint_name = tc.constraint_name \
         AND ccu.constraint_schema = tc.constraint_schema \
         WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()",
    )
    .fetch_all(pg)
    .await
    .map_err(StoreError::from)?;
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for name in &names {
        tables.insert(
            name.clone(),
            Table {
                name: name.clone(),
                columns: Vec::new(),
                keyed: keyed.contains(name),
                identity: None,
            },
        );
    }
    for (table, column, data_type, identity) in columns {
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        let kind = match data_type.as_str() {
            "smallint" | "integer" | "bigint" => Kind::Int,
            "boolean" => Kind::Bool,
            "text" | "character varying" | "character" => Kind::Text,
            "bytea" => Kind::Bytes,
            "real" | "double precision" => Kind::Real,
            other => {
                return Err(CopyError::UnknownType {
                    table,
                    column,
                    kind: other.to_string(),
                });
            }
        };
        if identity == "YES" {
            t.identity = Some(column.clone());
        }
        t.columns.push((column, kind));
    }
    // Parents first: a table is placed once every table it refers to is.
    let mut parents: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (child, parent) in references {
        if child != parent {
            parents.entry(child).or_default().insert(parent);
        }
    }
    let mut ordered = Vec::with_capacity(tables.len());
    let mut placed = BTreeSet::new();
    while !tables.is_empty() {
        let ready: Vec<String> = tables
            .keys()
            .filter(|n| {
                parents
                    .get(*n)
                    .is_none_or(|ps| ps.iter().all(|p| placed.contains(p) || !names.contains(p)))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(CopyError::SchemaDiffers(
                "the tables refer to each other in a cycle".into(),
            ));
        }
        for n in ready {
            ordered.push(tables.remove(&n).expect("listed"));
            placed.insert(n);
        }
    }
    Ok(ordered)
}

async fn sqlite_table_names(s: &SqlitePool) -> Result<BTreeSet<String>, CopyError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(s)
    .await
    .map_err(StoreError::from)?;
    Ok(names.into_iter().collect())
}

/// A SQLite table's columns (their kinds matter only for writing to PostgreSQL).
async fn sqlite_columns(s: &SqlitePool, table: &str) -> Result<Vec<(String, Kind)>, CopyError> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
            .bind(table)
            .fetch_all(s)
            .await
            .map_err(StoreError::from)?;
    Ok(names.into_iter().map(|n| (n, Kind::Text)).collect())
}

/// A row read from SQLite, each value by the type it is stored as.
fn sqlite_cells(row: &SqliteRow) -> Result<Vec<Cell>, StoreError> {
    let mut out = Vec::with_capacity(row.columns().len());
    for i in 0..row.columns().len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            out.push(Cell::Null);
            continue;
        }
        let kind = raw.type_info().name().to_string();
        out.push(match kind.as_str() {
            "INTEGER" | "BOOLEAN" => Cell::Int(row.try_get_unchecked::<i64, _>(i)?),
            "REAL" => Cell::Real(row.try_get_unchecked::<f64, _>(i)?),
            "BLOB" => Cell::Bytes(row.try_get_unchecked::<Vec<u8>, _>(i)?),
            _ => Cell::Text(row.try_get_unchecked::<String, _>(i)?),
        });
    }
    Ok(out)
}

/// A row read from PostgreSQL, each value by its column's type.
fn pg_cells(row: &PgRow, t: &Table) -> Result<Vec<Cell>, StoreError> {
    let mut out = Vec::with_capacity(t.columns.len());
    for (i, (_, kind)) in t.columns.iter().enumerate() {
        let name = row.try_get_raw(i)?.type_info().name().to_string();
        let cell = match kind {
            Kind::Int => match name.as_str() {
                "INT2" => row.try_get::<Option<i16>, _>(i)?.map(i64::from),
                "INT4" => row.try_get::<Option<i32>, _>(i)?.map(i64::from),
                _ => row.try_get::<Option<i64>, _>(i)?,
            }
            .map(Cell::Int),
            Kind::Bool => row
                .try_get::<Option<bool>, _>(i)?
                .map(|b| Cell::Int(i64::from(b))),
            Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Cell::Text),
            Kind::Bytes => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Cell::Bytes),
            Kind::Real => match name.as_str() {
                "FLOAT4" => row.try_get::<Option<f32>, _>(i)?.map(f64::from),
                _ => row.try_get::<Option<f64>, _>(i)?,
            }
            .map(Cell::Real),
        };
        out.push(cell.unwrap_or(Cell::Null));
    }
    Ok(out)
}

/// Rows and checksum, as they are summed: the sum is the same whatever order rows come in.
#[derive(Default)]
struct Summer {
    rows: u64,
    sum: [u128; 2],
}

impl Summer {
    fn add(&mut self, cells: &[Cell]) {
        let mut h = Sha256::new();
        for c in cells {
            match c {
                Cell::Null => h.update(b"N"),
                Cell::Int(v) => h.update(format!("I{v};")),
                Cell::Text(s) => {
                    h.update(format!("T{}:", s.len()));
                    h.update(s.as_bytes());
                }
                Cell::Bytes(b) => {
                    h.update(format!("X{}:", b.len()));
                    h.update(b);
                }
                Cell::Real(f) => h.update(format!("R{};", f.to_bits())),
            }
        }
        let d = h.finalize();
        let hi = u128::from_be_bytes(d[..16].try_into().expect("16 bytes"));
        let lo = u128::from_be_bytes(d[16..].try_into().expect("16 bytes"));
        self.sum[0] = self.sum[0].wrapping_add(hi);
        self.sum[1] = self.sum[1].wrapping_add(lo);
        self.rows += 1;
    }

    fn done(self, table: &str) -> TableSum {
        TableSum {
            table: table.to_string(),
            rows: self.rows,
            checksum: format!("{:032x}{:032x}", self.sum[0], self.sum[1]),
        }
    }
}

async fn sqlite_sum(s: &SqlitePool, t: &Table) -> Result<TableSum, CopyError> {
    let mut summer = Summer::default();
    let mut rows = sqlx::query(AssertSqlSafe(select(t))).fetch(s);
    while let Some(row) = rows.try_next().await.map_err(StoreError::from)? {
        summer.add(&sqlite_cells(&row)?);
    }
    Ok(summer.done(&t.name))
}

async fn pg_sum(p: &PgPool, t: &Table) -> Result<TableSum, CopyError> {
    let mut summer = Summer::default();
    let mut rows = sqlx::query(AssertSqlSafe(select(t))).fetch(p);
    while let Some(row) = rows.try_next().await.map_err(StoreError::from)? {
        summer.add(&pg_cells(&row, t)?);
    }
    Ok(summer.done(&t.name))
}

/// Rows per statement for a table of `columns` columns.
fn rows_per_insert(columns: usize) -> usize {
    (PARAMS_PER_INSERT / columns.max(1)).max(1)
}

fn insert_sql(t: &Table, rows: usize, numbered: bool, overriding: bool) -> String {
    let cols: Vec<String> = t.columns.iter().map(|(c, _)| quoted(c)).collect();
    let mut n = 0;
    let values: Vec<String> = (0..rows)
        .map(|_| {
            let row: Vec<String> = t
                .columns
                .iter()
                .map(|_| {
                    n += 1;
                    if numbered {
                        format!("${n}")
                    } else {
                        "?".into()
                    }
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) {}VALUES {} ON CONFLICT DO NOTHING",
        quoted(&t.name),
        cols.join(", "),
        if overriding {
            "OVERRIDING SYSTEM VALUE "
        } else {
            ""
        },
        values.join(", ")
    )
}

/// Bind one value for a column of `kind` (PostgreSQL is strict about types; SQLite
/// takes what it is given).
macro_rules! bind_cell {
    ($q:expr, $cell:expr, $kind:expr) => {
        match ($cell, $kind) {
            (Cell::Null, Kind::Int) => $q.bind(None::<i64>),
            (Cell::Null, Kind::Bool) => $q.bind(None::<bool>),
            (Cell::Null, Kind::Bytes) => $q.bind(None::<Vec<u8>>),
            (Cell::Null, Kind::Real) => $q.bind(None::<f64>),
            (Cell::Null, Kind::Text) => $q.bind(None::<String>),
            (Cell::Int(v), Kind::Bool) => $q.bind(*v != 0),
            (Cell::Int(v), Kind::Real) => $q.bind(*v as f64),
            (Cell::Int(v), _) => $q.bind(*v),
            (Cell::Real(v), _) => $q.bind(*v),
            (Cell::Bytes(b), Kind::Text) => $q.bind(String::from_utf8_lossy(b).into_owned()),
            (Cell::Bytes(b), _) => $q.bind(b.clone()),
            (Cell::Text(s), Kind::Bytes) => $q.bind(s.as_bytes().to_vec()),
            (Cell::Text(s), _) => $q.bind(s.clone()),
        }
    };
}

/// `write_pg` and `write_sqlite`: write `rows` in statements of many rows and commits of
/// [`ROWS_PER_COMMIT`] (all in one for a table without a key); the source's sum and the
/// rows newly written.
macro_rules! writer {
    ($name:ident, $pool:ty, $numbered:expr, $fix_ids:expr) => {
        async fn $name(
            pool: &$pool,
            t: &Table,
            rows: impl futures::Stream<Item = Result<Vec<Cell>, StoreError>>,
        ) -> Result<(TableSum, u64), CopyError> {
            let per_insert = rows_per_insert(t.columns.len());
            let per_commit = if t.keyed { ROWS_PER_COMMIT } else { usize::MAX };
            let overriding = $numbered && t.identity.is_some();
            let mut summer = Summer::default();
            let mut written = 0u64;
            let mut batch: Vec<Vec<Cell>> = Vec::new();
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let mut in_tx = 0usize;
            futures::pin_mut!(rows);
            loop {
                let next = rows.try_next().await?;
                let end = next.is_none();
                if let Some(cells) = next {
                    summer.add(&cells);
                    batch.push(cells);
                }
                if batch.len() >= per_insert || (end && !batch.is_empty()) {
                    let sql = insert_sql(t, batch.len(), $numbered, overriding);
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for row in &batch {
                        for (cell, (_, kind)) in row.iter().zip(&t.columns) {
                            q = bind_cell!(q, cell, kind);
                        }
                    }
                    written += q
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from)?
                        .rows_affected();
                    in_tx += batch.len();
                    batch.clear();
                    if in_tx >= per_commit {
                        tx.commit().await.map_err(StoreError::from)?;
                        tx = pool.begin().await.map_err(StoreError::from)?;
                        in_tx = 0;
                    }
                }
                if end {
                    break;
                }
            }
            if let (true, Some(id)) = ($fix_ids, &t.identity) {
                // The next id PostgreSQL hands out comes after the copied ones.
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{id}'), \
                     COALESCE(MAX({col}), 0) + 1, false) FROM {qt}",
                    table = t.name.replace('\'', "''"),
                    id = id.replace('\'', "''"),
                    col = quoted(id),
                    qt = quoted(&t.name)
                )))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            Ok((summer.done(&t.name), written))
        }
    };
}

writer!(write_pg, PgPool, true, true);
writer!(write_sqlite, SqlitePool, false, false);
