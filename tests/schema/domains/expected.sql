-- up
-- hazard: drop: deletes domain public.unused; what uses it stops working
DROP DOMAIN public.unused;
ALTER DOMAIN public.code DROP DEFAULT;
ALTER DOMAIN public.code DROP NOT NULL;
ALTER DOMAIN public.email ADD CONSTRAINT email_has_at CHECK ((VALUE ~~ '%@%'::text)) NOT VALID;
ALTER DOMAIN public.email VALIDATE CONSTRAINT email_has_at;
CREATE DOMAIN public.percent AS numeric(5,2) CONSTRAINT percent_check CHECK (((VALUE >= (0)::numeric) AND (VALUE <= (100)::numeric)));
ALTER DOMAIN public.positive_int SET DEFAULT 1;
-- hazard: not_null: checks every column of type public.positive_int and fails if one holds NULL
ALTER DOMAIN public.positive_int SET NOT NULL;
ALTER DOMAIN public.positive_int DROP CONSTRAINT positive_int_check;
ALTER DOMAIN public.positive_int ADD CONSTRAINT positive_int_check CHECK ((VALUE >= 1)) NOT VALID;
ALTER DOMAIN public.positive_int VALIDATE CONSTRAINT positive_int_check;
ALTER DOMAIN public.positive_int ADD CONSTRAINT positive_int_max CHECK ((VALUE < 1000000)) NOT VALID;
ALTER DOMAIN public.positive_int VALIDATE CONSTRAINT positive_int_max;
ALTER TABLE public.contacts ADD COLUMN share public.percent;

-- down
-- hazard: drop: deletes column public.contacts.share and its data
ALTER TABLE public.contacts DROP COLUMN share;
-- hazard: drop: deletes domain public.percent; what uses it stops working
DROP DOMAIN public.percent;
ALTER DOMAIN public.code SET DEFAULT 'none'::character varying;
-- hazard: not_null: checks every column of type public.code and fails if one holds NULL
ALTER DOMAIN public.code SET NOT NULL;
ALTER DOMAIN public.email DROP CONSTRAINT email_has_at;
ALTER DOMAIN public.positive_int DROP DEFAULT;
ALTER DOMAIN public.positive_int DROP NOT NULL;
ALTER DOMAIN public.positive_int DROP CONSTRAINT positive_int_check;
ALTER DOMAIN public.positive_int DROP CONSTRAINT positive_int_max;
ALTER DOMAIN public.positive_int ADD CONSTRAINT positive_int_check CHECK ((VALUE > 0)) NOT VALID;
ALTER DOMAIN public.positive_int VALIDATE CONSTRAINT positive_int_check;
CREATE DOMAIN public.unused AS integer;
