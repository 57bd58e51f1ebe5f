-- up
DROP MATERIALIZED VIEW public.price_stats;
DROP VIEW public.expensive;
DROP VIEW public.obsolete;
DROP VIEW public.priced;
-- hazard: type_change: integer to numeric(10,2) rewrites public.products and its indexes under an ACCESS EXCLUSIVE lock, and fails for values numeric(10,2) cannot hold
ALTER TABLE public.products ALTER COLUMN price TYPE numeric(10,2) USING price::numeric(10,2);
CREATE VIEW public.priced AS
 SELECT products.id,
    products.name,
    products.price
   FROM public.products;
COMMENT ON VIEW public.priced IS 'every product with its price';
CREATE VIEW public.cheap AS
 SELECT priced.id
   FROM public.priced
  WHERE (priced.price < (10)::numeric);
CREATE VIEW public.expensive AS
 SELECT priced.id,
    priced.name,
    priced.price
   FROM public.priced
  WHERE (priced.price > (200)::numeric);
CREATE MATERIALIZED VIEW public.price_stats AS
 SELECT count(*) AS n,
    max(products.price) AS top,
    min(products.price) AS bottom
   FROM public.products;
CREATE UNIQUE INDEX price_stats_n_idx ON public.price_stats USING btree (n);

-- down
DROP MATERIALIZED VIEW public.price_stats;
DROP VIEW public.cheap;
DROP VIEW public.expensive;
DROP VIEW public.priced;
-- hazard: type_change: numeric(10,2) to integer rewrites public.products and its indexes under an ACCESS EXCLUSIVE lock, and fails for values integer cannot hold
ALTER TABLE public.products ALTER COLUMN price TYPE integer USING price::integer;
CREATE VIEW public.obsolete AS
 SELECT products.id
   FROM public.products;
CREATE VIEW public.priced AS
 SELECT products.id,
    products.name,
    products.price
   FROM public.products;
COMMENT ON VIEW public.priced IS 'every product with its price';
CREATE VIEW public.expensive AS
 SELECT priced.id,
    priced.name
   FROM public.priced
  WHERE (priced.price > 100);
CREATE MATERIALIZED VIEW public.price_stats AS
 SELECT count(*) AS n,
    max(products.price) AS top
   FROM public.products;
