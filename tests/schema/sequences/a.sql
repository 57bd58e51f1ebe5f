CREATE SEQUENCE invoice_no START 1000;
CREATE TABLE invoices (id integer PRIMARY KEY, no bigint NOT NULL DEFAULT nextval('invoice_no'), other bigint);
ALTER SEQUENCE invoice_no OWNED BY invoices.no;
CREATE SEQUENCE ticket_seq AS integer;
CREATE SEQUENCE obsolete_seq;
