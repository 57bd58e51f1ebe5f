CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, kind text) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE INDEX events_at_idx ON events (at);
CREATE TABLE customers (id bigint NOT NULL, region text NOT NULL, name text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE customers_eu PARTITION OF customers FOR VALUES IN ('de', 'fr');
CREATE TABLE customers_us PARTITION OF customers FOR VALUES IN ('us');
