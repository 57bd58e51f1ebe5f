CREATE SCHEMA app;
COMMENT ON SCHEMA app IS 'the application, version 2';
CREATE SCHEMA "Reporting";
CREATE TABLE app.users (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE "Reporting".daily (day date PRIMARY KEY, signups integer NOT NULL DEFAULT 0);
CREATE VIEW "Reporting".user_names AS SELECT id, name FROM app.users;
