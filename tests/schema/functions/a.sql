CREATE TABLE counters (id integer PRIMARY KEY, n integer NOT NULL DEFAULT 0, updated timestamptz);
CREATE FUNCTION add(a integer, b integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
CREATE FUNCTION answer() RETURNS integer LANGUAGE sql AS $$ SELECT 42 $$;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER counters_touch BEFORE UPDATE ON counters FOR EACH ROW EXECUTE FUNCTION touch();
CREATE FUNCTION next_code() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;
CREATE TABLE codes (id integer PRIMARY KEY, code integer DEFAULT next_code());
CREATE PROCEDURE reset_counters() LANGUAGE sql AS $$ UPDATE counters SET n = 0 $$;
CREATE FUNCTION obsolete(x text) RETURNS text LANGUAGE sql AS $$ SELECT x $$;
CREATE FUNCTION total() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT sum(n) FROM counters; END;
-- A SQL-standard body depends on the columns it reads: one whose type changes takes it.
CREATE FUNCTION top() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT max(n)::text FROM counters; END;
