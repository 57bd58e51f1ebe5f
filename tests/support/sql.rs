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
