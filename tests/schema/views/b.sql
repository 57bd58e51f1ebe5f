CREATE TABLE products (id integer PRIMARY KEY, name text NOT NULL, price numeric(10, 2) NOT NULL);
CREATE VIEW priced AS SELECT id, name, price FROM products;
CREATE VIEW expensive AS SELECT id, name, price FROM priced WHERE price > 200;
CREATE VIEW cheap AS SELECT id FROM priced WHERE price < 10;
CREATE MATERIALIZED VIEW price_stats AS SELECT count(*) AS n, max(price) AS top, min(price) AS bottom FROM products;
CREATE UNIQUE INDEX price_stats_n_idx ON price_stats (n);
CREATE MATERIALIZED VIEW names AS SELECT name FROM products;
COMMENT ON VIEW priced IS 'every product with its price';
