//! `src/db/schema.rs` is diesel's view of the tables; it is written to match `migrations/`, so
//! this test holds the two together: every table it declares must have exactly the columns of
//! the migrated database, in the same order, with the same types and nullability. On a mismatch
//! it prints the `table!` block the database implies.

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::support::TestDb;

#[derive(QueryableByName, PartialEq, Debug)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    udt: String,
    #[diesel(sql_type = Text)]
    nullable: String,
}

/// diesel's name for a PostgreSQL type (custom enums become their schema.rs type).
fn diesel_type(udt: &str) -> String {
    match udt {
        "uuid" => "Uuid".into(),
        "varchar" => "Varchar".into(),
        "text" => "Text".into(),
        "timestamptz" => "Timestamptz".into(),
        "timestamp" => "Timestamp".into(),
        "jsonb" => "Jsonb".into(),
        "json" => "Json".into(),
        "bool" => "Bool".into(),
        "int2" => "Int2".into(),
        "int4" => "Int4".into(),
        "int8" => "Int8".into(),
        "inet" => "Inet".into(),
        other => other
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect(),
    }
}

/// `(schema.table, [(column, type)])` for every `diesel::table!` in schema.rs.
fn declared_tables(source: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut tables = Vec::new();
    let mut lines = source.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line != "diesel::table! {" {
            continue;
        }
        // The next lines: optional `use` lines, then `schema.table (pk) {`.
        let header = lines
            .by_ref()
            .find(|l| !l.starts_with("use ") && !l.is_empty())
            .expect("table header");
        let name = header
            .split_whitespace()
            .next()
            .expect("table name")
            .to_string();
        let mut columns = Vec::new();
        for line in lines.by_ref() {
            if line == "}" {
                break;
            }
            if let Some((column, ty)) = line.trim_end_matches(',').split_once(" -> ") {
                columns.push((column.trim().to_string(), ty.trim().to_string()));
            }
        }
        tables.push((name, columns));
    }
    tables
}

#[test]
fn schema_rs_matches_the_migrated_database() {
    let source = include_str!("../../src/db/schema.rs");
    let tables = declared_tables(source);
    assert!(
        tables.len() >= 8,
        "schema.rs declares {} tables",
        tables.len()
    );
    let db = TestDb::migrated();
    let mut conn = db.conn();
    let mut mismatches = Vec::new();
    for (name, declared) in &tables {
        let (schema, table) = name.split_once('.').expect("schema-qualified table");
        let columns: Vec<Column> = diesel::sql_query(
            "SELECT column_name::text AS name, udt_name::text AS udt, is_nullable::text AS nullable
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2
             ORDER BY ordinal_position",
        )
        .bind::<Text, _>(schema)
        .bind::<Text, _>(table)
        .load(&mut conn)
        .unwrap();
        let expected: Vec<(String, String)> = columns
            .iter()
            .map(|c| {
                let ty = diesel_type(&c.udt);
                let ty = if c.nullable == "YES" {
                    format!("Nullable<{ty}>")
                } else {
                    ty
                };
                (c.name.clone(), ty)
            })
            .collect();
        if &expected != declared {
            let body: Vec<String> = expected
                .iter()
                .map(|(c, t)| format!("        {c} -> {t},"))
                .collect();
            mismatches.push(format!(
                "{name} differs; the database says:\n    {name} (...) {{\n{}\n    }}",
                body.join("\n")
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

#[test]
fn the_parser_reads_what_diesel_reads() {
    let tables = declared_tables(
        "diesel::table! {\n    use diesel::sql_types::*;\n\n    auth.x (id) {\n        id -> Uuid,\n        n -> Nullable<Text>,\n    }\n}\n",
    );
    assert_eq!(
        tables,
        vec![(
            "auth.x".to_string(),
            vec![
                ("id".to_string(), "Uuid".to_string()),
                ("n".to_string(), "Nullable<Text>".to_string())
            ]
        )]
    );
}
