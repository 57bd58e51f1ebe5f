CREATE TABLE products (id integer PRIMARY KEY, name text NOT NULL, price integer NOT NULL);
CREATE VIEW priced AS SELECT id, name, price FROM products;
CREATE VIEW expensive AS SELECT id, name FROM priced WHERE price > 100;
CREATE VIEW obsolete AS SELECT id FROM products;
CREATE MATERIALIZED VIEW price_stats AS SELECT count(*) AS n, max(price) AS top FROM products;
CREATE MATERIALIZED VIEW names AS SELECT name FROM products;
COMMENT ON VIEW priced IS 'every product with its price';
