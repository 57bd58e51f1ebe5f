-- up
ALTER SEQUENCE public.notes_id_seq OWNED BY NONE;
-- hazard: drop: deletes column public.users.legacy and its data
ALTER TABLE public.users DROP COLUMN legacy;
-- hazard: drop: deletes public.notes and every row in it
DROP TABLE public.notes;
-- hazard: drop: deletes sequence public.notes_id_seq; what uses it stops working
DROP SEQUENCE public.notes_id_seq;
CREATE TABLE public.orders (
    id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    user_id bigint NOT NULL,
    total numeric(12,2) NOT NULL,
    tax numeric(12,2) GENERATED ALWAYS AS ((total * 0.2)) STORED
);
COMMENT ON TABLE public.users IS 'people who sign in';
ALTER TABLE public.users ALTER COLUMN name TYPE character varying(100) USING name::character varying(100);
ALTER TABLE public.users ALTER COLUMN name SET DEFAULT ''::character varying;
-- hazard: not_null: scans public.users under an ACCESS EXCLUSIVE lock and fails if a row holds NULL; on a big table add CHECK (name IS NOT NULL) NOT VALID and VALIDATE it first
ALTER TABLE public.users ALTER COLUMN name SET NOT NULL;
-- hazard: type_change: integer to bigint rewrites public.users and its indexes under an ACCESS EXCLUSIVE lock, and fails for values bigint cannot hold
ALTER TABLE public.users ALTER COLUMN age TYPE bigint USING age::bigint;
ALTER TABLE public.users ADD COLUMN created_at timestamp with time zone DEFAULT now() NOT NULL;
ALTER TABLE public.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id);
ALTER TABLE public.users ADD CONSTRAINT users_age_check CHECK ((age >= 0)) NOT VALID;
ALTER TABLE public.users VALIDATE CONSTRAINT users_age_check;
CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON public.users USING btree (email);
ALTER TABLE public.users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;
CREATE INDEX orders_user_id_idx ON public.orders USING btree (user_id);
CREATE INDEX CONCURRENTLY users_lower_email_idx ON public.users USING btree (lower(email)) WHERE (age > 18);
ALTER TABLE public.orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

-- down
DROP INDEX CONCURRENTLY public.users_lower_email_idx;
ALTER TABLE public.users DROP CONSTRAINT users_age_check;
ALTER TABLE public.users DROP CONSTRAINT users_email_key;
-- hazard: drop: deletes column public.users.created_at and its data
ALTER TABLE public.users DROP COLUMN created_at;
-- hazard: drop: deletes public.orders and every row in it
DROP TABLE public.orders;
CREATE SEQUENCE public.notes_id_seq AS integer INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1 NO CYCLE;
CREATE TABLE public.notes (
    id integer DEFAULT nextval('public.notes_id_seq'::regclass) NOT NULL,
    body text
);
COMMENT ON TABLE public.users IS NULL;
ALTER TABLE public.users ALTER COLUMN name DROP DEFAULT;
-- hazard: type_change: character varying(100) to character varying(50) rewrites public.users and its indexes under an ACCESS EXCLUSIVE lock, and fails for values character varying(50) cannot hold
ALTER TABLE public.users ALTER COLUMN name TYPE character varying(50) USING name::character varying(50);
ALTER TABLE public.users ALTER COLUMN name DROP NOT NULL;
-- hazard: type_change: bigint to integer rewrites public.users and its indexes under an ACCESS EXCLUSIVE lock, and fails for values integer cannot hold
ALTER TABLE public.users ALTER COLUMN age TYPE integer USING age::integer;
ALTER TABLE public.users ADD COLUMN legacy text;
ALTER TABLE public.notes ADD CONSTRAINT notes_pkey PRIMARY KEY (id);
ALTER SEQUENCE public.notes_id_seq OWNED BY public.notes.id;
