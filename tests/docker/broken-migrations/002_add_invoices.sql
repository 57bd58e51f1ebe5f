-- Valid SQL that fails on the server (a foreign key violation, SQLSTATE 23503), so
-- schemagate gets past validation and must roll back and exit 7.
-- migrate:up
CREATE TABLE invoices (id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id));
INSERT INTO invoices (id, account_id) VALUES (1, 42);
