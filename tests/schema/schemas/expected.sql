-- up
-- hazard: drop: deletes legacy.imports and every row in it
DROP TABLE legacy.imports;
-- hazard: drop: deletes schema legacy; what uses it stops working
DROP SCHEMA legacy;
CREATE SCHEMA "Reporting";
COMMENT ON SCHEMA app IS 'the application, version 2';
CREATE TABLE "Reporting".daily (
    day date NOT NULL,
    signups integer DEFAULT 0 NOT NULL
);
ALTER TABLE "Reporting".daily ADD CONSTRAINT daily_pkey PRIMARY KEY (day);
CREATE VIEW "Reporting".user_names AS
 SELECT users.id,
    users.name
   FROM app.users;

-- down
DROP VIEW "Reporting".user_names;
-- hazard: drop: deletes "Reporting".daily and every row in it
DROP TABLE "Reporting".daily;
-- hazard: drop: deletes schema "Reporting"; what uses it stops working
DROP SCHEMA "Reporting";
COMMENT ON SCHEMA app IS 'the application';
CREATE SCHEMA legacy;
CREATE TABLE legacy.imports (
    id bigint NOT NULL,
    payload text
);
ALTER TABLE legacy.imports ADD CONSTRAINT imports_pkey PRIMARY KEY (id);
