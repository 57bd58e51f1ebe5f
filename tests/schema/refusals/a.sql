-- What schemagate refuses rather than writing something wrong: each is named.
-- A table that becomes partitioned: only a rebuild and a copy of its rows can do it.
CREATE TABLE measurements (id bigint NOT NULL, taken date NOT NULL, value numeric);
-- A domain whose base type changes: every column of it would have to be converted.
CREATE DOMAIN amount AS integer CHECK (VALUE >= 0);
CREATE TABLE ledger (id integer PRIMARY KEY, credit amount);
-- A composite type's attribute changes type under an array column of it.
CREATE TYPE point3 AS (x integer, y integer, z integer);
CREATE TABLE paths (id integer PRIMARY KEY, points point3[]);
