CREATE DOMAIN positive_int AS integer DEFAULT 1 NOT NULL CONSTRAINT positive_int_check CHECK (VALUE >= 1) CONSTRAINT positive_int_max CHECK (VALUE < 1000000);
CREATE DOMAIN email AS text CONSTRAINT email_has_at CHECK (VALUE LIKE '%@%');
CREATE DOMAIN code AS varchar(10);
CREATE DOMAIN percent AS numeric(5, 2) CHECK (VALUE BETWEEN 0 AND 100);
CREATE TABLE contacts (id integer PRIMARY KEY, address email, amount positive_int, tag code, share percent);
