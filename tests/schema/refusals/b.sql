CREATE TABLE measurements (id bigint NOT NULL, taken date NOT NULL, value numeric) PARTITION BY RANGE (taken);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE DOMAIN amount AS numeric(12, 2) CHECK (VALUE >= 0);
CREATE TABLE ledger (id integer PRIMARY KEY, credit amount);
CREATE TYPE point3 AS (x double precision, y double precision, z double precision);
CREATE TABLE paths (id integer PRIMARY KEY, points point3[]);
-- An aggregate: read and compared, never written.
CREATE AGGREGATE total_of (integer) (SFUNC = int4pl, STYPE = integer);
