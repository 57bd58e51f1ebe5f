CREATE DOMAIN positive_int AS integer CONSTRAINT positive_int_check CHECK (VALUE > 0);
CREATE DOMAIN email AS text;
CREATE DOMAIN code AS varchar(10) NOT NULL DEFAULT 'none';
CREATE DOMAIN unused AS integer;
CREATE TABLE contacts (id integer PRIMARY KEY, address email, amount positive_int, tag code);
