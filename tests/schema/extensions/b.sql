CREATE SCHEMA ext;
CREATE EXTENSION citext WITH SCHEMA ext;
CREATE EXTENSION pgcrypto;
CREATE TABLE settings (id integer PRIMARY KEY);
CREATE TABLE people (
    id integer PRIMARY KEY,
    email text NOT NULL,
    login ext.citext UNIQUE,
    token text NOT NULL DEFAULT encode(public.gen_random_bytes(16), 'hex')
);
