-- up
-- hazard: drop: deletes sequence public.obsolete_seq; what uses it stops working
DROP SEQUENCE public.obsolete_seq;
CREATE SEQUENCE public.batch_seq AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1 NO CYCLE;
ALTER SEQUENCE public.invoice_no AS bigint INCREMENT BY 10 MINVALUE 1 MAXVALUE 9999999 START WITH 1000 CACHE 5 CYCLE;
ALTER SEQUENCE public.ticket_seq AS bigint INCREMENT BY 1 MINVALUE 0 MAXVALUE 9223372036854775807 START WITH 0 CACHE 1 NO CYCLE;
CREATE TABLE public.tickets (
    id integer NOT NULL,
    serial bigint DEFAULT nextval('public.ticket_seq'::regclass)
);
ALTER TABLE public.tickets ADD CONSTRAINT tickets_pkey PRIMARY KEY (id);
ALTER SEQUENCE public.invoice_no OWNED BY public.invoices.other;
ALTER SEQUENCE public.ticket_seq OWNED BY public.tickets.serial;

-- down
ALTER SEQUENCE public.ticket_seq OWNED BY NONE;
-- hazard: drop: deletes public.tickets and every row in it
DROP TABLE public.tickets;
-- hazard: drop: deletes sequence public.batch_seq; what uses it stops working
DROP SEQUENCE public.batch_seq;
ALTER SEQUENCE public.invoice_no AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1000 CACHE 1 NO CYCLE;
CREATE SEQUENCE public.obsolete_seq AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1 NO CYCLE;
ALTER SEQUENCE public.ticket_seq AS integer INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1 NO CYCLE;
ALTER SEQUENCE public.invoice_no OWNED BY public.invoices.no;
