//! SQL that is hard to split, shared by the test of `up` that runs it and the
//! differential test that asks PostgreSQL where its statements end.

/// A `transaction:false` migration with a `;` in every place that must not end a
/// statement, ending in a statement without `;`.
pub const TRICKY: &str = r#"-- migrate:up transaction:false
CREATE TABLE "semi;colon" ("it's" text, "a""b" text);
INSERT INTO "semi;colon" VALUES ('one; two', E'three\'; four'), ($$five; six$$, $tag$ $$ seven; $tag$);
/* a comment; /* nested; */ still comment; */
CREATE FUNCTION tricky() RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
  RETURN 'x;y';  -- a comment; in a body
END;
$body$;
CREATE INDEX CONCURRENTLY semi_idx ON "semi;colon" ("it's");
CREATE FUNCTION atomic_add(a int, b int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT a + b;
END;
SELECT 1 -- last statement without a semicolon
"#;

/// A database with data that pg_dump writes as `COPY ... FROM stdin` rows full of what a
/// naive splitter trips on (quotes, `;`, `--`, `\.`, tabs, `COMMIT;`), a BEGIN ATOMIC body
/// and an oddly quoted table: the source of a realistic baseline migration.
pub const DATA_FOR_DUMP: &str = r#"
CREATE TABLE notes (id serial PRIMARY KEY, body text, tags text[]);
INSERT INTO notes (body, tags) VALUES
    ('it''s; -- not a comment', '{a,b}'),
    (E'tab\there\nnewline \\. backslash', NULL),
    ('\.', '{}'),
    (NULL, '{"x;y"}'),
    ('COMMIT;', NULL);
CREATE TABLE empty_one (a int);
CREATE TABLE "Odd ""Name""" (b bytea);
INSERT INTO "Odd ""Name""" VALUES ('\x00ff'), (NULL);
CREATE FUNCTION add_one(x int) RETURNS int LANGUAGE sql
    BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN x + 1 ELSE 0 END; END;
CREATE FUNCTION plpgsql_one() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;
"#;
