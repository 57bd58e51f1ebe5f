//! Reads one database's schema from pg_catalog into plain data ([`Schema`]).
//!
//! Every definition is the server's own text (`pg_get_indexdef`, `pg_get_constraintdef`,
//! `pg_get_viewdef`, `pg_get_functiondef`, `format_type`...), read with an empty
//! `search_path` so every name is schema-qualified the same way on both sides of a diff:
//! normalisation is PostgreSQL's, never a parser's here. Dependencies come from
//! `pg_depend`. Objects that belong to an extension are the extension's, and are left out.

use std::collections::HashMap;

use serde_json::Value;

use crate::db::session::Session;
use crate::error::Result;
use crate::schema::model::{
    Column, Constraint, Detail, Domain, Enum, Function, Key, Kind, Object, Policy, Schema,
    Sequence, Table, Trigger,
};

// The catalogs' own oids, fixed since PostgreSQL 7.
const PG_CLASS: u64 = 1259;
const PG_TYPE: u64 = 1247;
const PG_PROC: u64 = 1255;
const PG_NAMESPACE: u64 = 2615;
const PG_CONSTRAINT: u64 = 2606;
const PG_TRIGGER: u64 = 2620;
const PG_REWRITE: u64 = 2618;
const PG_ATTRDEF: u64 = 2604;
const PG_EXTENSION: u64 = 3079;
const PG_POLICY: u64 = 3256;

/// Schemas that are never the user's.
const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

fn not_extension_member(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = '{catalog}'::regclass \
         AND x.objid = {oid} AND x.deptype = 'e')"
    )
}

/// Tables to leave out (`schema.table`, as `format('%I.%I')` spells them): schemagate's
/// own history tables when the live database is read.
pub async fn read(session: &Session, leave_out: &[String]) -> Result<Schema> {
    session
        .execute("SET search_path = ''; SET check_function_bodies = false")
        .await?;
    let mut reader = Reader {
        session,
        schema: Schema::default(),
        ids: HashMap::new(),
        leave_out: leave_out
            .iter()
            .map(|t| format!("'{}'", t.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", "),
    };
    reader.schemas().await?;
    reader.extensions().await?;
    reader.types().await?;
    reader.sequences().await?;
    reader.functions().await?;
    reader.tables().await?;
    reader.constraints().await?;
    reader.indexes().await?;
    reader.views().await?;
    reader.triggers().await?;
    reader.policies().await?;
    reader.unsupported().await?;
    reader.dependencies().await?;
    session.execute("RESET search_path").await?;
    Ok(reader.schema)
}

struct Reader<'a> {
    session: &'a Session,
    schema: Schema,
    /// (catalog, oid, sub-id) of each object read, for pg_depend's rows.
    ids: HashMap<(u64, u64, i64), Key>,
    leave_out: String,
}

fn text(row: &Value, field: &str) -> String {
    match row.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn optional(row: &Value, field: &str) -> Option<String> {
    match row.get(field) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    }
}

fn number(row: &Value, field: &str) -> u64 {
    row.get(field)
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(0)
}

fn flag(row: &Value, field: &str) -> bool {
    row.get(field).and_then(Value::as_bool).unwrap_or(false)
}

fn object(key: Key, create: Vec<String>, drop: String) -> Object {
    let fingerprint = create.join(";\n");
    Object {
        key,
        create,
        drop,
        fingerprint,
        deps: Vec::new(),
        comment_target: None,
        comment: None,
        detail: Detail::None,
    }
}

impl Reader<'_> {
    /// Runs `sql` and returns its rows as JSON objects, one round trip.
    async fn rows(&self, sql: &str) -> Result<Vec<Value>> {
        let wrapped = format!("SELECT coalesce(json_agg(r), '[]')::text FROM ({sql}) r");
        let rows = self.session.rows(&wrapped).await?;
        let text = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_else(|| "[]".to_string());
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => Ok(items),
            _ => Err(crate::Error::Internal(format!(
                "the catalog query answered something that is not a JSON array: {}",
                crate::db::session::first_line(&text)
            ))),
        }
    }

    fn add(
        &mut self,
        mut object: Object,
        id: (u64, u64, i64),
        comment: Option<String>,
        target: Option<String>,
    ) {
        object.comment = comment;
        object.comment_target = target;
        self.ids.insert(id, object.key.clone());
        self.schema.insert(object);
    }

    fn table_filter(&self, alias: &str) -> String {
        if self.leave_out.is_empty() {
            "true".to_string()
        } else {
            format!(
                "format('%I.%I', n.nspname, {alias}.relname) NOT IN ({})",
                self.leave_out
            )
        }
    }

    async fn schemas(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT n.oid, quote_ident(n.nspname) AS q, obj_description(n.oid, 'pg_namespace') AS comment
             FROM pg_namespace n WHERE {USER_SCHEMA} AND {}",
            not_extension_member("pg_namespace", "n.oid")
        );
        for row in self.rows(&sql).await? {
            let q = text(&row, "q");
            let object = object(
                Key::new(Kind::Schema, &q),
                vec![format!("CREATE SCHEMA {q}")],
                format!("DROP SCHEMA {q}"),
            );
            self.add(
                object,
                (PG_NAMESPACE, number(&row, "oid"), 0),
                optional(&row, "comment"),
                Some(format!("SCHEMA {q}")),
            );
        }
        Ok(())
    }

    async fn extensions(&mut self) -> Result<()> {
        let sql = "SELECT e.oid, quote_ident(e.extname) AS q, quote_ident(n.nspname) AS s
             FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
             WHERE e.extname <> 'plpgsql'";
        for row in self.rows(sql).await? {
            let (q, s) = (text(&row, "q"), text(&row, "s"));
            let mut object = object(
                Key::new(Kind::Extension, &q),
                vec![format!(
                    "CREATE EXTENSION IF NOT EXISTS {q} WITH SCHEMA {s}"
                )],
                format!("DROP EXTENSION {q}"),
            );
            object.deps.push(Key::new(Kind::Schema, &s));
            self.add(object, (PG_EXTENSION, number(&row, "oid"), 0), None, None);
        }
        Ok(())
    }

    async fn types(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT t.oid, t.typarray, t.typrelid, t.typtype, format('%I.%I', n.nspname, t.typname) AS q,
               quote_ident(n.nspname) AS s, t.typname AS name,
               (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) AS labels,
               format_type(t.typbasetype, t.typtypmod) AS base,
               CASE WHEN t.typtype = 'd' AND t.typcollation <> 0
                     AND t.typcollation <> (SELECT b.typcollation FROM pg_type b WHERE b.oid = t.typbasetype)
                 THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                       JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END AS collation,
               t.typdefault AS default, t.typnotnull AS not_null,
               (SELECT json_agg(json_build_array(quote_ident(c.conname), pg_get_constraintdef(c.oid), c.oid) ORDER BY c.conname)
                  FROM pg_constraint c WHERE c.contypid = t.oid) AS checks,
               (SELECT json_agg(json_build_array(quote_ident(a.attname), format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
                  FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) AS attributes,
               obj_description(t.oid, 'pg_type') AS comment
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE t.typtype IN ('e', 'd', 'c', 'r') AND {USER_SCHEMA} AND {}
               AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')",
            not_extension_member("pg_type", "t.oid")
        );
        for row in self.rows(&sql).await? {
            let q = text(&row, "q");
            let oid = number(&row, "oid");
            let (kind, create, detail, target) = match text(&row, "typtype").as_str() {
                "e" => {
                    let labels: Vec<String> = row
                        .get("labels")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|l| l.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    let listed: Vec<String> = labels
                        .iter()
                        .map(|l| crate::schema::model::quote_literal(l))
                        .collect();
                    (
                        Kind::Enum,
                        format!("CREATE TYPE {q} AS ENUM ({})", listed.join(", ")),
                        Detail::Enum(Enum {
                            schema: text(&row, "s"),
                            name: text(&row, "name"),
                            labels,
                        }),
                        format!("TYPE {q}"),
                    )
                }
                "d" => {
                    let checks: Vec<(String, String)> = row
                        .get("checks")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(|c| (text_at(c, 0), text_at(c, 1))).collect())
                        .unwrap_or_default();
                    for check in row
                        .get("checks")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let id = check.get(2).and_then(Value::as_u64).unwrap_or(0);
                        self.ids
                            .insert((PG_CONSTRAINT, id, 0), Key::new(Kind::Domain, &q));
                    }
                    let domain = Domain {
                        qualified: q.clone(),
                        base: text(&row, "base"),
                        default: optional(&row, "default"),
                        not_null: flag(&row, "not_null"),
                        checks,
                    };
                    let mut create = format!("CREATE DOMAIN {q} AS {}", domain.base);
                    if let Some(collation) = optional(&row, "collation") {
                        create.push_str(&format!(" COLLATE {collation}"));
                    }
                    if let Some(default) = &domain.default {
                        create.push_str(&format!(" DEFAULT {default}"));
                    }
                    if domain.not_null {
                        create.push_str(" NOT NULL");
                    }
                    for (name, definition) in &domain.checks {
                        create.push_str(&format!(" CONSTRAINT {name} {definition}"));
                    }
                    (
                        Kind::Domain,
                        create,
                        Detail::Domain(domain),
                        format!("DOMAIN {q}"),
                    )
                }
                "c" => {
                    let attributes: Vec<(String, String)> = row
                        .get("attributes")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(|c| (text_at(c, 0), text_at(c, 1))).collect())
                        .unwrap_or_default();
                    let listed: Vec<String> =
                        attributes.iter().map(|(n, t)| format!("{n} {t}")).collect();
                    self.ids.insert(
                        (PG_CLASS, number(&row, "typrelid"), -1),
                        Key::new(Kind::Composite, &q),
                    );
                    (
                        Kind::Composite,
                        format!("CREATE TYPE {q} AS ({})", listed.join(", ")),
                        Detail::Composite(attributes),
                        format!("TYPE {q}"),
                    )
                }
                _ => {
                    // A range type: read, compared, not written.
                    let mut object = object(
                        Key::new(Kind::Unsupported, format!("range type {q}")),
                        vec![format!("range type {q}")],
                        String::new(),
                    );
                    object.fingerprint = format!("range type {q}");
                    self.add(object, (PG_TYPE, oid, 0), None, None);
                    continue;
                }
            };
            let mut object = object(
                Key::new(kind, &q),
                vec![create],
                format!(
                    "DROP {} {q}",
                    if kind == Kind::Domain {
                        "DOMAIN"
                    } else {
                        "TYPE"
                    }
                ),
            );
            object.detail = detail;
            let key = object.key.clone();
            self.ids
                .insert((PG_TYPE, number(&row, "typarray"), 0), key.clone());
            self.add(
                object,
                (PG_TYPE, oid, 0),
                optional(&row, "comment"),
                Some(target),
            );
        }
        Ok(())
    }

    async fn sequences(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS q, format_type(s.seqtypid, NULL) AS type,
               s.seqstart::text AS start, s.seqincrement::text AS increment, s.seqmax::text AS max,
               s.seqmin::text AS min, s.seqcache::text AS cache, s.seqcycle AS cycle,
               (SELECT format('%I.%I.%I', tn.nspname, t.relname, a.attname) FROM pg_depend d
                  JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'a'
                   AND d.refclassid = 'pg_class'::regclass) AS owned_by,
               obj_description(c.oid, 'pg_class') AS comment
             FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'S' AND {USER_SCHEMA} AND {} AND {}
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                               AND d.objid = c.oid AND d.deptype = 'i')",
            not_extension_member("pg_class", "c.oid"),
            self.table_filter("c"),
        );
        for row in self.rows(&sql).await? {
            let q = text(&row, "q");
            let options = format!(
                "AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {}{}",
                text(&row, "type"),
                text(&row, "increment"),
                text(&row, "min"),
                text(&row, "max"),
                text(&row, "start"),
                text(&row, "cache"),
                if flag(&row, "cycle") {
                    " CYCLE"
                } else {
                    " NO CYCLE"
                }
            );
            let mut object = object(
                Key::new(Kind::Sequence, &q),
                vec![format!("CREATE SEQUENCE {q} {options}")],
                format!("DROP SEQUENCE {q}"),
            );
            object.detail = Detail::Sequence(Sequence {
                qualified: q.clone(),
                options,
            });
            self.add(
                object,
                (PG_CLASS, number(&row, "oid"), 0),
                optional(&row, "comment"),
                Some(format!("SEQUENCE {q}")),
            );
            if let Some(column) = optional(&row, "owned_by") {
                let mut owner = self::object(
                    Key::new(Kind::SequenceOwner, &q),
                    vec![format!("ALTER SEQUENCE {q} OWNED BY {column}")],
                    format!("ALTER SEQUENCE {q} OWNED BY NONE"),
                );
                owner.deps = vec![
                    Key::new(Kind::Sequence, &q),
                    Key::new(Kind::Column, &column),
                ];
                self.schema.insert(owner);
            }
        }
        Ok(())
    }

    async fn functions(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT p.oid, p.prokind AS kind,
               format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) AS q,
               CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END AS def,
               CASE WHEN p.prokind = 'f' THEN pg_get_function_result(p.oid) ELSE '' END AS result,
               pg_get_function_arguments(p.oid) AS arguments,
               (SELECT row(a.aggtransfn, a.aggfinalfn, a.aggtranstype::regtype, a.agginitval, a.aggkind)::text
                  FROM pg_aggregate a WHERE a.aggfnoid = p.oid) AS aggregate,
               obj_description(p.oid, 'pg_proc') AS comment
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE {USER_SCHEMA} AND {}",
            not_extension_member("pg_proc", "p.oid")
        );
        for row in self.rows(&sql).await? {
            let q = text(&row, "q");
            let kind = text(&row, "kind");
            let oid = number(&row, "oid");
            if kind != "f" && kind != "p" {
                let what = if kind == "a" {
                    "aggregate"
                } else {
                    "window function"
                };
                let mut object = object(
                    Key::new(Kind::Unsupported, format!("{what} {q}")),
                    vec![],
                    String::new(),
                );
                object.fingerprint = format!("{what} {q} {}", text(&row, "aggregate"));
                self.add(object, (PG_PROC, oid, 0), None, None);
                continue;
            }
            let word = if kind == "p" { "PROCEDURE" } else { "FUNCTION" };
            let definition = text(&row, "def").trim_end().to_string();
            let mut object = object(
                Key::new(Kind::Function, &q),
                vec![definition],
                format!("DROP {word} {q}"),
            );
            object.detail = Detail::Function(Function {
                signature: q.clone(),
                result: text(&row, "result"),
                arguments: text(&row, "arguments"),
            });
            self.add(
                object,
                (PG_PROC, oid, 0),
                optional(&row, "comment"),
                Some(format!("{word} {q}")),
            );
        }
        Ok(())
    }

    async fn tables(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT c.oid, c.reltype, format('%I.%I', n.nspname, c.relname) AS q, quote_ident(n.nspname) AS s,
               c.relkind AS kind, c.relpersistence AS persistence,
               c.relrowsecurity AS rls, c.relforcerowsecurity AS force_rls,
               CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
               (SELECT format('%I.%I', pn.nspname, pc.relname) FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
                  JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid AND c.relispartition) AS parent,
               CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound,
               array_to_string(c.reloptions, ', ') AS options,
               (SELECT string_agg(format('%I.%I', pn.nspname, pc.relname), ', ' ORDER BY i.inhseqno) FROM pg_inherits i
                  JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                 WHERE i.inhrelid = c.oid AND NOT c.relispartition) AS inherits,
               c.relacl::text AS acl,
               obj_description(c.oid, 'pg_class') AS comment
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMA} AND {} AND {}",
            not_extension_member("pg_class", "c.oid"),
            self.table_filter("c"),
        );
        let tables = self.rows(&sql).await?;
        let columns = self.columns().await?;
        for row in tables {
            let q = text(&row, "q");
            let key = Key::new(Kind::Table, &q);
            let mine: Vec<&Column> = columns
                .iter()
                .map(|(c, _)| c)
                .filter(|c| c.table == key && !c.inherited)
                .collect();
            let parent = optional(&row, "parent");
            let mut shape = String::new();
            let create = match &parent {
                Some(parent) => {
                    shape.push_str(&format!(" PARTITION OF {parent} {}", text(&row, "bound")));
                    format!("CREATE TABLE {q}{shape}")
                }
                None => {
                    let body: Vec<String> = mine
                        .iter()
                        .map(|c| format!("    {}", c.definition()))
                        .collect();
                    let unlogged = if text(&row, "persistence") == "u" {
                        "UNLOGGED "
                    } else {
                        ""
                    };
                    if body.is_empty() {
                        format!("CREATE {unlogged}TABLE {q} ()")
                    } else {
                        format!("CREATE {unlogged}TABLE {q} (\n{}\n)", body.join(",\n"))
                    }
                }
            };
            let mut create = create;
            if let Some(key) = optional(&row, "partition_key") {
                create.push_str(&format!(" PARTITION BY {key}"));
                shape.push_str(&format!(" PARTITION BY {key}"));
            }
            let options = text(&row, "options");
            if !options.is_empty() {
                create.push_str(&format!(" WITH ({options})"));
                shape.push_str(&format!(" WITH ({options})"));
            }
            if text(&row, "persistence") == "u" {
                shape.push_str(" UNLOGGED");
            }
            let table = Table {
                qualified: q.clone(),
                row_security: flag(&row, "rls"),
                force_row_security: flag(&row, "force_rls"),
                shape: shape.clone(),
                partition_of: parent.as_ref().map(|p| Key::new(Kind::Table, p)),
            };
            let mut statements = vec![create];
            if table.row_security {
                statements.push(format!("ALTER TABLE {q} ENABLE ROW LEVEL SECURITY"));
            }
            if table.force_row_security {
                statements.push(format!("ALTER TABLE {q} FORCE ROW LEVEL SECURITY"));
            }
            let mut object = object(key.clone(), statements, format!("DROP TABLE {q}"));
            // Columns are compared as objects of their own; the table is its shape.
            object.fingerprint = format!(
                "table {q}{shape} rls={} force={}",
                table.row_security, table.force_row_security
            );
            if let Some(parent) = &table.partition_of {
                object.deps.push(parent.clone());
            }
            object.deps.push(Key::new(Kind::Schema, text(&row, "s")));
            object.detail = Detail::Table(table);
            let oid = number(&row, "oid");
            self.ids
                .insert((PG_TYPE, number(&row, "reltype"), 0), key.clone());
            self.add(
                object,
                (PG_CLASS, oid, 0),
                optional(&row, "comment"),
                Some(format!("TABLE {q}")),
            );
            if let Some(parents) = optional(&row, "inherits") {
                self.unsupported_object(
                    format!("inheritance of {q}"),
                    format!("{q} INHERITS ({parents})"),
                );
            }
            if let Some(acl) = optional(&row, "acl") {
                self.unsupported_object(format!("privileges on table {q}"), acl);
            }
        }
        for (column, comment) in columns {
            if column.inherited {
                continue;
            }
            let key = Key::new(
                Kind::Column,
                format!("{}.{}", column.qualified_table, column.name),
            );
            let mut object = object(
                key.clone(),
                vec![format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    column.qualified_table,
                    column.definition()
                )],
                format!(
                    "ALTER TABLE {} DROP COLUMN {}",
                    column.qualified_table, column.name
                ),
            );
            object.fingerprint = column.definition();
            object.deps.push(column.table.clone());
            object.comment_target =
                Some(format!("COLUMN {}.{}", column.qualified_table, column.name));
            object.comment = comment;
            object.detail = Detail::Column(column);
            self.schema.insert(object);
        }
        Ok(())
    }

    /// The columns of every table, with the ids pg_depend uses for them and their defaults.
    async fn columns(&mut self) -> Result<Vec<(Column, Option<String>)>> {
        let sql = format!(
            "SELECT c.oid, a.attnum, format('%I.%I', n.nspname, c.relname) AS q, quote_ident(a.attname) AS name,
               format_type(a.atttypid, a.atttypmod) AS type, t.typname AS type_name,
               CASE WHEN a.attcollation <> t.typcollation
                 THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                       JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END AS collation,
               a.attnotnull AS not_null, a.attidentity AS identity, a.attgenerated AS generated,
               (SELECT json_build_array(s.seqincrement::text, s.seqmin::text, s.seqmax::text, s.seqstart::text,
                       s.seqcache::text, s.seqcycle, format_type(s.seqtypid, NULL))
                  FROM pg_depend d JOIN pg_sequence s ON s.seqrelid = d.objid
                 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                   AND d.refobjid = c.oid AND d.refobjsubid = a.attnum AND d.deptype = 'i') AS identity_sequence,
               pg_get_expr(ad.adbin, ad.adrelid) AS default, ad.oid AS default_oid,
               NOT a.attislocal AS inherited, col_description(c.oid, a.attnum) AS comment
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
             WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
               AND {USER_SCHEMA} AND {} AND {}
             ORDER BY c.oid, a.attnum",
            not_extension_member("pg_class", "c.oid"),
            self.table_filter("c"),
        );
        let mut columns = Vec::new();
        for row in self.rows(&sql).await? {
            let table = text(&row, "q");
            let name = text(&row, "name");
            let generated = text(&row, "generated") == "s";
            let default = optional(&row, "default");
            let column = Column {
                table: Key::new(Kind::Table, &table),
                qualified_table: table.clone(),
                name: name.clone(),
                position: number(&row, "attnum") as i32,
                data_type: text(&row, "type"),
                type_name: text(&row, "type_name"),
                collation: optional(&row, "collation"),
                not_null: flag(&row, "not_null"),
                default: if generated { None } else { default.clone() },
                identity: text(&row, "identity"),
                identity_options: row
                    .get("identity_sequence")
                    .map(identity_options)
                    .unwrap_or_default(),
                generated: if generated { default } else { None },
                inherited: flag(&row, "inherited"),
            };
            let key = Key::new(Kind::Column, format!("{table}.{name}"));
            let oid = number(&row, "oid");
            self.ids
                .insert((PG_CLASS, oid, number(&row, "attnum") as i64), key.clone());
            if let Some(default_oid) = optional(&row, "default_oid") {
                if let Ok(id) = default_oid.parse() {
                    self.ids.insert((PG_ATTRDEF, id, 0), key.clone());
                }
            }
            columns.push((column, optional(&row, "comment")));
        }
        Ok(columns)
    }

    async fn constraints(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT co.oid, co.conindid, co.contype AS kind, format('%I.%I', n.nspname, c.relname) AS q,
               quote_ident(co.conname) AS name, pg_get_constraintdef(co.oid) AS def,
               CASE WHEN co.contype IN ('p', 'u') THEN pg_get_indexdef(co.conindid) END AS index_def,
               concat_ws(' ', CASE WHEN co.condeferrable THEN 'DEFERRABLE' END,
                         CASE WHEN co.condeferred THEN 'INITIALLY DEFERRED' END) AS deferrable,
               obj_description(co.oid, 'pg_constraint') AS comment
             FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE co.contype IN ('p', 'u', 'c', 'f', 'x') AND co.conrelid <> 0 AND co.conparentid = 0
               AND co.conislocal AND {USER_SCHEMA} AND {}",
            self.table_filter("c"),
        );
        for row in self.rows(&sql).await? {
            let (table, name) = (text(&row, "q"), text(&row, "name"));
            let kind = if text(&row, "kind") == "f" {
                Kind::ForeignKey
            } else {
                Kind::Constraint
            };
            let key = Key::new(kind, format!("{table}.{name}"));
            let definition = text(&row, "def");
            let mut object = object(
                key.clone(),
                vec![format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
                )],
                format!("ALTER TABLE {table} DROP CONSTRAINT {name}"),
            );
            let table_key = Key::new(Kind::Table, &table);
            object.deps.push(table_key.clone());
            object.detail = Detail::Constraint(Constraint {
                table: table_key,
                name: name.clone(),
                kind: text(&row, "kind"),
                definition: definition.clone(),
                index: optional(&row, "index_def"),
                deferrable: text(&row, "deferrable"),
            });
            if kind == Kind::Constraint {
                self.ids
                    .insert((PG_CLASS, number(&row, "conindid"), 0), key.clone());
            }
            self.add(
                object,
                (PG_CONSTRAINT, number(&row, "oid"), 0),
                optional(&row, "comment"),
                Some(format!("CONSTRAINT {name} ON {table}")),
            );
        }
        Ok(())
    }

    async fn indexes(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT i.indexrelid AS oid, format('%I.%I', n.nspname, ci.relname) AS q,
               format('%I.%I', n.nspname, ct.relname) AS t, ct.relkind AS table_kind,
               pg_get_indexdef(i.indexrelid) AS def, obj_description(i.indexrelid, 'pg_class') AS comment
             FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_class ct ON ct.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = ci.relnamespace
             WHERE ct.relkind IN ('r', 'p', 'm') AND {USER_SCHEMA} AND {} AND {}
               AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid
                               AND co.contype IN ('p', 'u', 'x') AND co.conrelid = i.indrelid)
               AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)",
            not_extension_member("pg_class", "ct.oid"),
            self.table_filter("ct"),
        );
        for row in self.rows(&sql).await? {
            let q = text(&row, "q");
            let table = text(&row, "t");
            let table_kind = if text(&row, "table_kind") == "m" {
                Kind::MaterializedView
            } else {
                Kind::Table
            };
            // A partitioned table's index reads back `ON ONLY` (how pg_dump builds it and
            // attaches the partitions' own); created plainly it is built on every
            // partition, which is what one statement has to do here.
            let definition = text(&row, "def").replacen(" ON ONLY ", " ON ", 1);
            let mut object = object(
                Key::new(Kind::Index, &q),
                vec![definition],
                format!("DROP INDEX {q}"),
            );
            let table_key = Key::new(table_kind, &table);
            object.deps.push(table_key.clone());
            object.detail = Detail::OnTable(table_key);
            self.add(
                object,
                (PG_CLASS, number(&row, "oid"), 0),
                optional(&row, "comment"),
                Some(format!("INDEX {q}")),
            );
        }
        Ok(())
    }

    async fn views(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT c.oid, c.reltype, r.oid AS rule, c.relkind AS kind, format('%I.%I', n.nspname, c.relname) AS q,
               pg_get_viewdef(c.oid) AS def, array_to_string(c.reloptions, ', ') AS options,
               obj_description(c.oid, 'pg_class') AS comment
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_rewrite r ON r.ev_class = c.oid AND r.rulename = '_RETURN'
             WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA} AND {}",
            not_extension_member("pg_class", "c.oid"),
        );
        for row in self.rows(&sql).await? {
            let q = text(&row, "q");
            let materialized = text(&row, "kind") == "m";
            let (kind, word) = if materialized {
                (Kind::MaterializedView, "MATERIALIZED VIEW")
            } else {
                (Kind::View, "VIEW")
            };
            let definition = text(&row, "def");
            let definition = definition.trim().trim_end_matches(';');
            let options = text(&row, "options");
            let with = if options.is_empty() {
                String::new()
            } else {
                format!(" WITH ({options})")
            };
            let object = object(
                Key::new(kind, &q),
                vec![format!("CREATE {word} {q}{with} AS\n {definition}")],
                format!("DROP {word} {q}"),
            );
            let key = object.key.clone();
            self.ids
                .insert((PG_REWRITE, number(&row, "rule"), 0), key.clone());
            self.ids
                .insert((PG_TYPE, number(&row, "reltype"), 0), key.clone());
            self.add(
                object,
                (PG_CLASS, number(&row, "oid"), 0),
                optional(&row, "comment"),
                Some(format!("{word} {q}")),
            );
        }
        Ok(())
    }

    async fn triggers(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT t.oid, format('%I.%I', n.nspname, c.relname) AS q, c.relkind AS table_kind,
               quote_ident(t.tgname) AS name, pg_get_triggerdef(t.oid) AS def, t.tgenabled AS enabled,
               obj_description(t.oid, 'pg_trigger') AS comment
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND {USER_SCHEMA} AND {} AND {}",
            not_extension_member("pg_class", "c.oid"),
            self.table_filter("c"),
        );
        for row in self.rows(&sql).await? {
            let (table, name) = (text(&row, "q"), text(&row, "name"));
            let definition = text(&row, "def");
            let enabled = text(&row, "enabled");
            let mut create = vec![definition.clone()];
            match enabled.as_str() {
                "D" => create.push(format!("ALTER TABLE {table} DISABLE TRIGGER {name}")),
                "R" => create.push(format!("ALTER TABLE {table} ENABLE REPLICA TRIGGER {name}")),
                "A" => create.push(format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}")),
                _ => {}
            }
            let table_kind = if text(&row, "table_kind") == "v" {
                Kind::View
            } else {
                Kind::Table
            };
            let mut object = object(
                Key::new(Kind::Trigger, format!("{table}.{name}")),
                create,
                format!("DROP TRIGGER {name} ON {table}"),
            );
            let table_key = Key::new(table_kind, &table);
            object.deps.push(table_key.clone());
            object.detail = Detail::Trigger(Trigger {
                table: table_key,
                name: name.clone(),
                definition,
                enabled,
            });
            self.add(
                object,
                (PG_TRIGGER, number(&row, "oid"), 0),
                optional(&row, "comment"),
                Some(format!("TRIGGER {name} ON {table}")),
            );
        }
        Ok(())
    }

    async fn policies(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT p.oid, format('%I.%I', n.nspname, c.relname) AS q, quote_ident(p.polname) AS name,
               p.polpermissive AS permissive, p.polcmd AS command,
               CASE WHEN p.polroles = '{{0}}' THEN 'PUBLIC' ELSE
                 (SELECT string_agg(quote_ident(r.rolname), ', ' ORDER BY r.rolname) FROM pg_roles r WHERE r.oid = ANY (p.polroles)) END AS roles,
               pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS with_check,
               obj_description(p.oid, 'pg_policy') AS comment
             FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE {USER_SCHEMA} AND {}",
            self.table_filter("c"),
        );
        for row in self.rows(&sql).await? {
            let (table, name) = (text(&row, "q"), text(&row, "name"));
            let command = match text(&row, "command").as_str() {
                "r" => "SELECT",
                "a" => "INSERT",
                "w" => "UPDATE",
                "d" => "DELETE",
                _ => "ALL",
            };
            let shape = format!(
                "AS {} FOR {command}",
                if flag(&row, "permissive") {
                    "PERMISSIVE"
                } else {
                    "RESTRICTIVE"
                }
            );
            let roles = text(&row, "roles");
            let mut create = format!("CREATE POLICY {name} ON {table} {shape} TO {roles}");
            let (using, with_check) = (optional(&row, "qual"), optional(&row, "with_check"));
            if let Some(qual) = &using {
                create.push_str(&format!(" USING ({qual})"));
            }
            if let Some(check) = &with_check {
                create.push_str(&format!(" WITH CHECK ({check})"));
            }
            let mut object = object(
                Key::new(Kind::Policy, format!("{table}.{name}")),
                vec![create],
                format!("DROP POLICY {name} ON {table}"),
            );
            let table_key = Key::new(Kind::Table, &table);
            object.deps.push(table_key.clone());
            object.detail = Detail::Policy(Policy {
                table: table_key,
                name: name.clone(),
                shape,
                roles,
                using,
                with_check,
            });
            self.add(
                object,
                (PG_POLICY, number(&row, "oid"), 0),
                optional(&row, "comment"),
                Some(format!("POLICY {name} ON {table}")),
            );
        }
        Ok(())
    }

    fn unsupported_object(&mut self, name: String, fingerprint: String) {
        let mut object = object(Key::new(Kind::Unsupported, name), vec![], String::new());
        object.fingerprint = fingerprint;
        self.schema.insert(object);
    }

    /// What schemagate does not write, read only so that a difference in it is named.
    async fn unsupported(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT format('rule %I on %I.%I', r.rulename, n.nspname, c.relname) AS name, pg_get_ruledef(r.oid) AS def
               FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE r.rulename <> '_RETURN' AND {USER_SCHEMA}
             UNION ALL
             SELECT format('foreign table %I.%I', n.nspname, c.relname), c.oid::regclass::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'f' AND {USER_SCHEMA} AND {ext_class}
             UNION ALL
             SELECT format('operator %s', o.oid::regoperator), o.oprcode::text
               FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE {USER_SCHEMA} AND {ext_operator}
             UNION ALL
             SELECT format('collation %I.%I', n.nspname, co.collname), concat_ws(' ', co.collprovider, co.collcollate, co.collctype)
               FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace WHERE {USER_SCHEMA} AND {ext_collation}
             UNION ALL
             SELECT format('cast (%s AS %s)', ca.castsource::regtype, ca.casttarget::regtype), concat_ws(' ', ca.castfunc::regprocedure, ca.castcontext, ca.castmethod)
               FROM pg_cast ca WHERE ca.oid >= 16384 AND {ext_cast}
             UNION ALL
             SELECT format('event trigger %I', e.evtname), concat_ws(' ', e.evtevent, e.evtfoid::regprocedure, e.evtenabled) FROM pg_event_trigger e
             UNION ALL
             SELECT format('statistics %I.%I', n.nspname, s.stxname), pg_get_statisticsobjdef(s.oid)
               FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE {USER_SCHEMA}
             UNION ALL
             SELECT format('text search configuration %I.%I', n.nspname, t.cfgname), t.cfgparser::text
               FROM pg_ts_config t JOIN pg_namespace n ON n.oid = t.cfgnamespace WHERE {USER_SCHEMA} AND {ext_ts}
             UNION ALL
             SELECT format('publication %I', p.pubname), concat_ws(' ', p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete) FROM pg_publication p
             UNION ALL
             SELECT format('base type %I.%I', n.nspname, t.typname), t.typinput::text
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
              WHERE t.typtype = 'b' AND t.typelem = 0 AND {USER_SCHEMA} AND {ext_type}
             UNION ALL
             SELECT format('privileges on %s %I.%I', CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'view' END, n.nspname, c.relname), c.relacl::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('S', 'v', 'm') AND c.relacl IS NOT NULL AND {USER_SCHEMA}
             UNION ALL
             SELECT format('privileges on function %s', p.oid::regprocedure), p.proacl::text
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proacl IS NOT NULL AND {USER_SCHEMA}
             UNION ALL
             SELECT format('privileges on schema %I', n.nspname), n.nspacl::text
               FROM pg_namespace n WHERE n.nspacl IS NOT NULL AND {USER_SCHEMA} AND n.nspname <> 'public'",
            ext_class = not_extension_member("pg_class", "c.oid"),
            ext_operator = not_extension_member("pg_operator", "o.oid"),
            ext_collation = not_extension_member("pg_collation", "co.oid"),
            ext_cast = not_extension_member("pg_cast", "ca.oid"),
            ext_ts = not_extension_member("pg_ts_config", "t.oid"),
            ext_type = not_extension_member("pg_type", "t.oid"),
        );
        for row in self.rows(&sql).await? {
            self.unsupported_object(text(&row, "name"), text(&row, "def"));
        }
        Ok(())
    }

    /// pg_depend's normal and automatic rows between objects read here.
    async fn dependencies(&mut self) -> Result<()> {
        let sql = "SELECT classid, objid, objsubid, refclassid, refobjid, refobjsubid, deptype FROM pg_depend
             WHERE deptype IN ('n', 'a') AND refobjid >= 16384 AND objid >= 16384";
        let mut found: Vec<(Key, Key)> = Vec::new();
        for row in self.rows(sql).await? {
            let from = (
                number(&row, "classid"),
                number(&row, "objid"),
                row.get("objsubid").and_then(Value::as_i64).unwrap_or(0),
            );
            let to = (
                number(&row, "refclassid"),
                number(&row, "refobjid"),
                row.get("refobjsubid").and_then(Value::as_i64).unwrap_or(0),
            );
            let (Some(from), Some(to)) = (self.lookup(from), self.lookup(to)) else {
                continue;
            };
            // A sequence's OWNED BY is its own object (SequenceOwner); as a dependency it
            // would make the sequence and its column's default wait for each other.
            if from.kind == Kind::Sequence && text(&row, "deptype") == "a" {
                continue;
            }
            if from != to {
                found.push((from, to));
            }
        }
        for (from, to) in found {
            if let Some(object) = self.schema.objects.get_mut(&from)
                && !object.deps.contains(&to)
            {
                object.deps.push(to);
            }
        }
        for object in self.schema.objects.values_mut() {
            object.deps.sort();
            object.deps.dedup();
        }
        Ok(())
    }

    /// An id as pg_depend gives it; a column of a view or a composite type stands for
    /// the whole object.
    fn lookup(&self, id: (u64, u64, i64)) -> Option<Key> {
        self.ids
            .get(&id)
            .or_else(|| self.ids.get(&(id.0, id.1, 0)))
            .or_else(|| self.ids.get(&(id.0, id.1, -1)))
            .cloned()
    }
}

fn text_at(value: &Value, index: usize) -> String {
    match value.get(index) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// An identity column's sequence options, each as `ALTER COLUMN ... SET` takes it, but
/// only those that differ from what `GENERATED ... AS IDENTITY` alone would give (so a
/// plain identity column reads back as it is usually written).
fn identity_options(sequence: &Value) -> Vec<String> {
    let Some(fields) = sequence.as_array() else {
        return Vec::new();
    };
    let field = |i: usize| text_at(sequence, i);
    let increment: i128 = field(0).parse().unwrap_or(1);
    let (min, max, start, cache) = (field(1), field(2), field(3), field(4));
    let cycle = fields.get(5).and_then(Value::as_bool).unwrap_or(false);
    let (type_min, type_max): (i128, i128) = match field(6).as_str() {
        "smallint" => (i16::MIN.into(), i16::MAX.into()),
        "integer" => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    };
    let (default_min, default_max) = if increment > 0 {
        (1, type_max)
    } else {
        (type_min, -1)
    };
    let number = |text: &str| text.parse::<i128>().ok();
    let mut options = Vec::new();
    if increment != 1 {
        options.push(format!("INCREMENT BY {increment}"));
    }
    if number(&min) != Some(default_min) {
        options.push(format!("MINVALUE {min}"));
    }
    if number(&max) != Some(default_max) {
        options.push(format!("MAXVALUE {max}"));
    }
    let actual_min = number(&min).unwrap_or(default_min);
    let actual_max = number(&max).unwrap_or(default_max);
    let implied_start = if increment > 0 {
        actual_min
    } else {
        actual_max
    };
    if number(&start) != Some(implied_start) {
        options.push(format!("START WITH {start}"));
    }
    if cache != "1" {
        options.push(format!("CACHE {cache}"));
    }
    if cycle {
        options.push("CYCLE".to_string());
    }
    options
}
