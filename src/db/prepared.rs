//! Raw SQL that diesel keeps prepared on each connection.
//!
//! `diesel::sql_query` is never cached, so PostgreSQL parses and plans it again on every call.
//! For weauth's multi-table CTEs (session creation, token rotation) that costs more than running
//! them: the benchmark's refresh floor drops from ~2,600 to ~1,000 transactions/s when pgbench
//! re-parses every statement (`BENCH_PGBENCH_MODE=extended`). [`prepared`] renders the same SQL
//! text on every call and lets diesel's statement cache key it by that text.

use std::borrow::Cow;
use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::Error;
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};

/// A raw statement with `$1`, `$2`… placeholders, bound with [`PreparedSql::bind`] in order.
/// A placeholder may appear several times. Hot statements pass a `&'static str` built once
/// (`LazyLock`), which is neither formatted nor copied per call.
pub fn prepared(sql: impl Into<Cow<'static, str>>) -> PreparedSql {
    PreparedSql {
        sql: sql.into(),
        binds: Vec::new(),
    }
}

pub struct PreparedSql {
    sql: Cow<'static, str>,
    binds: Vec<Box<dyn Bind>>,
}

impl PreparedSql {
    pub fn bind<ST, V>(mut self, value: V) -> Self
    where
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + 'static,
        ST: 'static,
    {
        self.binds.push(Box::new(Typed::<ST, V> {
            value,
            sql_type: PhantomData,
        }));
        self
    }
}

/// One bound value with its SQL type.
trait Bind {
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct Typed<ST, V> {
    value: V,
    sql_type: PhantomData<fn() -> ST>,
}

impl<ST, V> Bind for Typed<ST, V>
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, V>(&self.value)
    }
}

impl QueryFragment<Pg> for PreparedSql {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // Each `$n` becomes diesel's next placeholder, bound to value n: the text diesel sends
        // numbers the occurrences in order, so a repeated `$n` is sent as its own parameter.
        let mut rest: &str = &self.sql;
        while let Some(at) = rest.find('$') {
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if digits == 0 {
                out.push_sql(&rest[..=at]);
                rest = &rest[at + 1..];
                continue;
            }
            out.push_sql(&rest[..at]);
            let n: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
            let bind = n
                .checked_sub(1)
                .and_then(|i| self.binds.get(i))
                .ok_or_else(|| {
                    Error::QueryBuilderError(format!("no value bound for ${n}").into())
                })?;
            bind.push(&mut out)?;
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

/// No static id: diesel then caches the statement by its SQL text and bind types.
impl QueryId for PreparedSql {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for PreparedSql {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for PreparedSql {}

impl PreparedSql {
    /// For a statement whose text is the same on every call (built once, in a `LazyLock`):
    /// diesel's statement cache then finds it by the type `Id` instead of rendering the text
    /// and hashing it, which for the long sign-in and refresh statements cost more than
    /// everything else diesel does per call (bench/analysis.md). `Id` must belong to this one
    /// statement (a unit struct declared next to it).
    pub fn same_text_as<Id: 'static>(self) -> StaticSql<Id> {
        StaticSql(self, PhantomData)
    }
}

/// See [`PreparedSql::same_text_as`].
pub struct StaticSql<Id>(PreparedSql, PhantomData<fn() -> Id>);

impl<Id> QueryFragment<Pg> for StaticSql<Id> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(out)
    }
}

impl<Id: 'static> QueryId for StaticSql<Id> {
    type QueryId = Id;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Id> Query for StaticSql<Id> {
    type SqlType = Untyped;
}

impl<Id, Conn> RunQueryDsl<Conn> for StaticSql<Id> {}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::{Integer, Text};

    #[test]
    fn placeholders_become_ordered_binds_and_repeats_are_rebound() {
        let q = prepared("SELECT $2::text, $1::int, $2 || '$' WHERE $1 > 0")
            .bind::<Integer, _>(7)
            .bind::<Text, _>("x".to_string());
        let sql = diesel::debug_query::<Pg, _>(&q).to_string();
        assert!(
            sql.starts_with("SELECT $1::text, $2::int, $3 || '$' WHERE $4 > 0"),
            "{sql}"
        );
        assert!(sql.contains(r#"binds: ["x", 7, "x", 7]"#), "{sql}");
    }

    #[test]
    fn a_placeholder_without_a_value_is_an_error_not_a_panic() {
        let q = prepared("SELECT $1, $2").bind::<Integer, _>(1);
        let rendered = q.to_sql(&mut diesel::pg::PgQueryBuilder::default(), &Pg);
        assert!(matches!(rendered, Err(Error::QueryBuilderError(_))));
    }
}
