CREATE TYPE address AS (street text, city varchar(80), zip text, country text);
CREATE TYPE dimensions AS (w integer, h integer, d integer);
CREATE TYPE money_amount AS (currency char(3), cents bigint);
CREATE TABLE shops (id integer PRIMARY KEY, location address, size dimensions, price money_amount);
CREATE VIEW shop_cities AS SELECT id, (location).city AS city FROM shops;
CREATE FUNCTION city_of(a address) RETURNS text LANGUAGE sql AS $$ SELECT a.city $$;
