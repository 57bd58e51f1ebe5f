CREATE SCHEMA app;
COMMENT ON SCHEMA app IS 'the application';
CREATE SCHEMA legacy;
CREATE TABLE legacy.imports (id bigint PRIMARY KEY, payload text);
CREATE TABLE app.users (id bigint PRIMARY KEY, name text NOT NULL);
