//! Pieces of SQL text and statement building that every area of the store uses: the
//! placeholders of statements with many parameters, how many ids or rows go in one statement,
//! and the condition under which a post may be claimed or sent.
//!
//! SQL placeholders are `$1`, `$2`, ... in both databases; booleans are spelled `TRUE` and
//! `FALSE`, which SQLite (3.23+) and PostgreSQL both accept.

/// An `UPDATE` of one row by its id changed `changed` rows: none means there is no such
/// row (`what` names it in the error).
pub(crate) fn one_row(
    changed: u64,
    what: impl FnOnce() -> String,
) -> Result<(), super::StoreError> {
    if changed == 0 {
        return Err(super::StoreError::NotFound(what()));
    }
    Ok(())
}

/// Most ids bound in one `IN (...)` list or rows in one multi-row `INSERT`: far below
/// SQLite's 32,766 and PostgreSQL's 65,535 bind parameters even at 15 per row.
pub(crate) const CHUNK: usize = 500;

/// Most ids in one `IN (...)` list, and parameters in one `VALUES` list, of the statements a
/// dispatcher round runs on its batch (claimed rows, their accounts, `begin_sending`,
/// `record`): the size `picket bench dispatch` was measured with.
pub(crate) const BATCH_PARAMS: usize = 128;

/// Rows of `cols` parameters each that fit in one [`BATCH_PARAMS`] statement.
pub(crate) const fn values_rows(cols: usize) -> usize {
    BATCH_PARAMS / cols
}

/// Placeholders for statements with many parameters, each bound once, in order.
///
/// sqlx binds a SQLite parameter written `$n` by asking `sqlite3_bind_parameter_name` for
/// its name, a linear scan over the statement's named parameters, so binding costs grow with
/// the square of their number: at 13 columns × 500 rows it was three quarters of planning
/// time. An anonymous `?` has no name to scan for. PostgreSQL has no `?`, so there the same
/// statement is numbered `$1, $2, ...`.
pub(crate) struct Params {
    numbered: bool,
    bound: usize,
}

/// Which placeholder spelling a database wants (see [`Params`]), and how it takes a list of
/// ids.
pub(crate) trait Dialect: sqlx::Database {
    const NUMBERED: bool;
    /// Most ids one statement takes in [`Params::ids`].
    const IDS_AT_ONCE: usize;
    /// Bind the ids of a [`Params::ids`] list, in its place among the parameters.
    fn bind_ids<'q>(q: Query<'q, Self>, ids: &[i64]) -> Query<'q, Self>;
    /// Most rows of `cols` columns one [`Params::table`] takes.
    fn rows_at_once(cols: usize) -> usize;
}

/// A statement of `DB` with its parameters.
pub(crate) type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>;

impl Dialect for sqlx::Sqlite {
    const NUMBERED: bool = false;
    const IDS_AT_ONCE: usize = BATCH_PARAMS;
    fn bind_ids<'q>(q: Query<'q, Self>, ids: &[i64]) -> Query<'q, Self> {
        ids.iter().fold(q, |q, id| q.bind(*id))
    }
    fn rows_at_once(cols: usize) -> usize {
        values_rows(cols)
    }
}

/// PostgreSQL takes a batch's ids, and each column of its rows, as one array: a list of
/// placeholders is planned anew on each execution, and a dispatcher round's statements
/// over 1,024 posts took longer to plan than to run (or, split into lists of
/// [`BATCH_PARAMS`], a round trip each).
impl Dialect for sqlx::Postgres {
    const NUMBERED: bool = true;
    const IDS_AT_ONCE: usize = ARRAY_AT_ONCE;
    fn bind_ids<'q>(q: Query<'q, Self>, ids: &[i64]) -> Query<'q, Self> {
        q.bind(ids)
    }
    fn rows_at_once(_cols: usize) -> usize {
        ARRAY_AT_ONCE
    }
}

/// Most elements of one array parameter: a bound on the statement's size, well above a
/// dispatcher's batch.
const ARRAY_AT_ONCE: usize = 1 << 16;

/// Binding the rows of a [`Params::table`], each a tuple of its columns' values: row by row
/// on SQLite, an array per column on PostgreSQL.
pub(crate) trait BindRows<R>: Dialect {
    fn bind_rows<'q>(q: Query<'q, Self>, rows: &[R]) -> Query<'q, Self>;
}

macro_rules! bind_rows {
    ($($t:ident . $i:tt),+) => {
        impl<$($t),+> BindRows<($($t,)+)> for sqlx::Sqlite
        where
            $($t: Clone + for<'e> sqlx::Encode<'e, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>),+
        {
            fn bind_rows<'q>(q: Query<'q, Self>, rows: &[($($t,)+)]) -> Query<'q, Self> {
                rows.iter().fold(q, |q, row| q $(.bind(row.$i.clone()))+)
            }
        }

        impl<$($t),+> BindRows<($($t,)+)> for sqlx::Postgres
        where
            $($t: Clone
                + for<'e> sqlx::Encode<'e, sqlx::Postgres>
                + sqlx::Type<sqlx::Postgres>
                + sqlx::postgres::PgHasArrayType),+
        {
            fn bind_rows<'q>(q: Query<'q, Self>, rows: &[($($t,)+)]) -> Query<'q, Self> {
                q $(.bind(rows.iter().map(|row| row.$i.clone()).collect::<Vec<_>>()))+
            }
        }
    };
}

bind_rows!(A.0, B.1);
bind_rows!(A.0, B.1, C.2);
bind_rows!(A.0, B.1, C.2, D.3);

impl Params {
    pub(crate) fn new<DB: Dialect>() -> Self {
        Params {
            numbered: DB::NUMBERED,
            bound: 0,
        }
    }

    /// The next placeholder; its value must be the next one bound.
    pub(crate) fn next(&mut self) -> String {
        self.bound += 1;
        if self.numbered {
            format!("${}", self.bound)
        } else {
            "?".to_string()
        }
    }

    /// How many placeholders were handed out so far.
    pub(crate) fn bound(&self) -> usize {
        self.bound
    }

    /// `n` placeholders separated by commas, for an `IN (...)` list or a `VALUES` row.
    pub(crate) fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.next()).collect::<Vec<_>>().join(", ")
    }

    /// ` IN (p, ..., p)` for `n` ids or, on PostgreSQL, ` = ANY(p)` for one array of
    /// them: to follow a column, with the ids bound by [`Dialect::bind_ids`] (at most
    /// [`Dialect::IDS_AT_ONCE`]).
    pub(crate) fn ids(&mut self, n: usize) -> String {
        if self.numbered {
            format!(" = ANY({})", self.next())
        } else {
            format!(" IN ({})", self.list(n))
        }
    }

    /// The body of a `WITH v (...) AS (...)` table of `rows` rows of `cols` columns, bound
    /// by [`BindRows::bind_rows`] (at most [`Dialect::rows_at_once`] rows): a `VALUES` list
    /// on SQLite, `UNNEST` of one array per column on PostgreSQL.
    pub(crate) fn table(&mut self, rows: usize, cols: usize) -> String {
        if self.numbered {
            format!("SELECT * FROM UNNEST({})", self.list(cols))
        } else {
            format!("VALUES {}", self.rows(rows, cols))
        }
    }

    /// `(p, ..., p), (...)`: `rows` rows of `cols` placeholders, for a `VALUES` list.
    pub(crate) fn rows(&mut self, rows: usize, cols: usize) -> String {
        self.rows_with(rows, |p| format!("({})", p.list(cols)))
    }

    /// `rows` rows of a `VALUES` list, each written by `row` with its own placeholders
    /// (and any constants between them).
    pub(crate) fn rows_with(
        &mut self,
        rows: usize,
        mut row: impl FnMut(&mut Params) -> String,
    ) -> String {
        (0..rows).map(|_| row(self)).collect::<Vec<_>>().join(", ")
    }
}

/// A post may be claimed or sent only while its pledge, account and campaign all stand.
/// `$t` is the outbox table's name or alias in the surrounding statement. A macro, not a
/// function, so that statements using it stay `concat!`-ed constants.
macro_rules! eligible {
    ($t:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM pledges p WHERE p.id = ",
            $t,
            ".pledge_id AND p.status = 'active') \
             AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = ",
            $t,
            ".account_id AND a.status = 'active') \
             AND NOT EXISTS (SELECT 1 FROM campaign_state c WHERE c.campaign_id = ",
            $t,
            ".campaign_id AND c.cancelled_at IS NOT NULL)"
        )
    };
}
pub(crate) use eligible;
