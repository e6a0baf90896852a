//! Server-side prepared statements for queries diesel would otherwise prepare on every run.
//!
//! diesel keeps a per-connection cache of prepared statements, but only for queries it can
//! prove produce the same SQL each time. Raw SQL (`sql_query`), every `UPDATE`, and inserts
//! of rows with optional columns are marked unsafe to cache, so each run costs a parse round
//! trip before the execute one. On the send and delivery paths that is a third of all round
//! trips. [`CacheStatement::cached`] marks a query safe: the cache is then keyed by the SQL
//! text itself (and the bind types), which is correct whatever built the text. Use it only on
//! statements whose text takes a bounded set of shapes (fixed SQL, one row, a fixed changeset):
//! each distinct text stays prepared on the connection for its lifetime.
//!
//! A statement over a batch of ids (`id = ANY($1)`, a join with `unnest` of the batch) is the
//! opposite case: [`CacheStatement::planned_each_run`] has it planned on every run, for the
//! batch it is given and the table as it is then. A kept statement is given a generic plan
//! after five runs, and one made while its table was still small (a new database, before the
//! first `ANALYZE`, or on a server without autovacuum) scans the whole table on every batch
//! from then on: each batch slower than the one before. A plan per batch costs one parse
//! round trip among the batch's several.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

/// A query whose prepared statement is kept on the connection, keyed by its SQL text.
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Cached<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

/// No static query id: the statement cache falls back to the SQL text as the key.
impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

/// A query planned on every run, never kept as a prepared statement.
#[derive(Debug, Clone, Copy)]
pub struct PlannedEachRun<Q>(Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for PlannedEachRun<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(false)
    }
}

impl<Q> QueryId for PlannedEachRun<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for PlannedEachRun<Q> {
    type SqlType = Q::SqlType;
}

/// Marks a query's prepared statement as reusable, or as one to plan on every run.
pub trait CacheStatement: Sized {
    fn cached(self) -> Cached<Self> {
        Cached(self)
    }

    fn planned_each_run(self) -> PlannedEachRun<Self> {
        PlannedEachRun(self)
    }
}

impl<Q: QueryFragment<Pg>> CacheStatement for Q {}
