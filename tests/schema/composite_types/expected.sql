-- up
SET check_function_bodies = false;
DROP VIEW public.shop_cities;
DROP FUNCTION public.city_of(a public.address);
-- hazard: drop: deletes type public.old_pair; what uses it stops working
DROP TYPE public.old_pair;
-- hazard: type_change: an attribute changes type while columns hold public.address: it is rebuilt, every column of it rewritten under an ACCESS EXCLUSIVE lock, and the rewrite fails for values the new attribute types cannot hold
ALTER TYPE public.address RENAME TO address__old;
CREATE TYPE public.address AS (street text, city character varying(80), zip text, country text);
ALTER TABLE public.shops ALTER COLUMN location TYPE public.address USING CASE WHEN (location)::text IS NULL THEN NULL ELSE ROW((location).street::text, (location).city::character varying(80), (location).zip::text, NULL::text)::public.address END;
DROP TYPE public.address__old;
ALTER TYPE public.dimensions DROP ATTRIBUTE unit;
ALTER TYPE public.dimensions ADD ATTRIBUTE d integer;
CREATE TYPE public.money_amount AS (currency character(3), cents bigint);
CREATE OR REPLACE FUNCTION public.city_of(a public.address)
 RETURNS text
 LANGUAGE sql
AS $function$ SELECT a.city $function$;
ALTER TABLE public.shops ADD COLUMN price public.money_amount;
CREATE VIEW public.shop_cities AS
 SELECT shops.id,
    (shops.location).city AS city
   FROM public.shops;

-- down
SET check_function_bodies = false;
DROP VIEW public.shop_cities;
-- hazard: drop: deletes column public.shops.price and its data
ALTER TABLE public.shops DROP COLUMN price;
DROP FUNCTION public.city_of(a public.address);
-- hazard: drop: deletes type public.money_amount; what uses it stops working
DROP TYPE public.money_amount;
-- hazard: type_change: an attribute changes type while columns hold public.address: it is rebuilt, every column of it rewritten under an ACCESS EXCLUSIVE lock, and the rewrite fails for values the new attribute types cannot hold
ALTER TYPE public.address RENAME TO address__old;
CREATE TYPE public.address AS (street text, city text, zip integer, obsolete text);
ALTER TABLE public.shops ALTER COLUMN location TYPE public.address USING CASE WHEN (location)::text IS NULL THEN NULL ELSE ROW((location).street::text, (location).city::text, (location).zip::integer, NULL::text)::public.address END;
DROP TYPE public.address__old;
ALTER TYPE public.dimensions DROP ATTRIBUTE d;
ALTER TYPE public.dimensions ADD ATTRIBUTE unit text;
CREATE TYPE public.old_pair AS (a integer, b integer);
CREATE OR REPLACE FUNCTION public.city_of(a public.address)
 RETURNS text
 LANGUAGE sql
AS $function$ SELECT a.city $function$;
CREATE VIEW public.shop_cities AS
 SELECT shops.id,
    (shops.location).city AS city
   FROM public.shops;
