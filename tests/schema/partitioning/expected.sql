-- up
-- hazard: drop: deletes public.customers_us and every row in it
DROP TABLE public.customers_us;
-- hazard: drop: deletes public.events_2024 and every row in it
DROP TABLE public.events_2024;
CREATE TABLE public.customers_asia PARTITION OF public.customers FOR VALUES IN ('jp', 'kr');
COMMENT ON TABLE public.events_2025 IS 'this year';
CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.events_default PARTITION OF public.events DEFAULT;
-- hazard: blocking_index: builds the constraint's index under an ACCESS EXCLUSIVE lock: reads and writes of public.customers wait until it is built
ALTER TABLE public.customers ADD CONSTRAINT customers_name_region_key UNIQUE (name, region);
-- hazard: blocking_index: builds the index on every partition under a SHARE lock: writes to public.customers wait until it is built; on big partitions create it ON ONLY the parent, each partition's CONCURRENTLY, and ALTER INDEX ... ATTACH PARTITION them
CREATE INDEX customers_name_idx ON public.customers USING btree (name);
-- hazard: blocking_index: builds the index on every partition under a SHARE lock: writes to public.events wait until it is built; on big partitions create it ON ONLY the parent, each partition's CONCURRENTLY, and ALTER INDEX ... ATTACH PARTITION them
CREATE INDEX events_kind_idx ON public.events USING btree (kind) WHERE (kind IS NOT NULL);

-- down
DROP INDEX public.customers_name_idx;
DROP INDEX public.events_kind_idx;
ALTER TABLE public.customers DROP CONSTRAINT customers_name_region_key;
-- hazard: drop: deletes public.customers_asia and every row in it
DROP TABLE public.customers_asia;
-- hazard: drop: deletes public.events_2026 and every row in it
DROP TABLE public.events_2026;
-- hazard: drop: deletes public.events_default and every row in it
DROP TABLE public.events_default;
CREATE TABLE public.customers_us PARTITION OF public.customers FOR VALUES IN ('us');
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
COMMENT ON TABLE public.events_2025 IS NULL;
