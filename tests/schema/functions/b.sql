CREATE TABLE counters (id integer PRIMARY KEY, n bigint NOT NULL DEFAULT 0, updated timestamptz);
CREATE FUNCTION add(a integer, b integer) RETURNS integer LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT a + b + 0 $$;
CREATE FUNCTION answer() RETURNS bigint LANGUAGE sql AS $$ SELECT 42::bigint $$;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated := clock_timestamp();
    RETURN NEW;
END
$$;
CREATE TRIGGER counters_touch BEFORE UPDATE ON counters FOR EACH ROW EXECUTE FUNCTION touch();
CREATE FUNCTION next_code() RETURNS bigint LANGUAGE sql AS $$ SELECT 2::bigint $$;
CREATE TABLE codes (id integer PRIMARY KEY, code integer DEFAULT next_code());
CREATE PROCEDURE reset_counters(to_value integer DEFAULT 0) LANGUAGE sql AS $$ UPDATE counters SET n = to_value $$;
CREATE FUNCTION total() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT sum(n) + count(*) FROM counters; END;
CREATE FUNCTION top() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT max(n)::text FROM counters; END;
CREATE FUNCTION counter_of(wanted integer) RETURNS bigint LANGUAGE sql STABLE
BEGIN ATOMIC SELECT n FROM counters WHERE id = wanted; END;
