CREATE EXTENSION hstore;
CREATE TABLE settings (id integer PRIMARY KEY, bag hstore);
CREATE TABLE people (id integer PRIMARY KEY, email text NOT NULL);
