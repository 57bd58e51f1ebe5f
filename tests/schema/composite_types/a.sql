CREATE TYPE address AS (street text, city text, zip integer, obsolete text);
CREATE TYPE dimensions AS (w integer, h integer, unit text);
CREATE TYPE old_pair AS (a integer, b integer);
CREATE TABLE shops (id integer PRIMARY KEY, location address, size dimensions);
CREATE VIEW shop_cities AS SELECT id, (location).city AS city FROM shops;
CREATE FUNCTION city_of(a address) RETURNS text LANGUAGE sql AS $$ SELECT a.city $$;
