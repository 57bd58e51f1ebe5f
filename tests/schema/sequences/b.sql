CREATE SEQUENCE invoice_no START 1000 INCREMENT BY 10 MAXVALUE 9999999 CACHE 5 CYCLE;
CREATE TABLE invoices (id integer PRIMARY KEY, no bigint NOT NULL DEFAULT nextval('invoice_no'), other bigint);
ALTER SEQUENCE invoice_no OWNED BY invoices.other;
CREATE SEQUENCE ticket_seq AS bigint MINVALUE 0 START 0;
CREATE TABLE tickets (id integer PRIMARY KEY, serial bigint DEFAULT nextval('ticket_seq'));
ALTER SEQUENCE ticket_seq OWNED BY tickets.serial;
CREATE SEQUENCE batch_seq;
