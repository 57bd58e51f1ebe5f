-- up
SET check_function_bodies = false;
ALTER TABLE public.codes ALTER COLUMN code DROP DEFAULT;
DROP FUNCTION public.answer();
DROP FUNCTION public.next_code();
DROP FUNCTION public.obsolete(x text);
DROP PROCEDURE public.reset_counters();
DROP FUNCTION public.top();
DROP FUNCTION public.total();
CREATE OR REPLACE FUNCTION public.add(a integer, b integer)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE STRICT
AS $function$ SELECT a + b + 0 $function$;
CREATE OR REPLACE FUNCTION public.answer()
 RETURNS bigint
 LANGUAGE sql
AS $function$ SELECT 42::bigint $function$;
CREATE OR REPLACE FUNCTION public.next_code()
 RETURNS bigint
 LANGUAGE sql
AS $function$ SELECT 2::bigint $function$;
CREATE OR REPLACE PROCEDURE public.reset_counters(IN to_value integer DEFAULT 0)
 LANGUAGE sql
AS $procedure$ UPDATE counters SET n = to_value $procedure$;
CREATE OR REPLACE FUNCTION public.touch()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    NEW.updated := clock_timestamp();
    RETURN NEW;
END
$function$;
ALTER TABLE public.codes ALTER COLUMN code SET DEFAULT public.next_code();
ALTER TABLE public.counters ALTER COLUMN n DROP DEFAULT;
-- hazard: type_change: integer to bigint rewrites public.counters and its indexes under an ACCESS EXCLUSIVE lock, and fails for values bigint cannot hold
ALTER TABLE public.counters ALTER COLUMN n TYPE bigint USING n::bigint;
ALTER TABLE public.counters ALTER COLUMN n SET DEFAULT 0;
CREATE OR REPLACE FUNCTION public.counter_of(wanted integer)
 RETURNS bigint
 LANGUAGE sql
 STABLE
BEGIN ATOMIC
 SELECT counters.n
    FROM public.counters
   WHERE (counters.id = counter_of.wanted);
END;
CREATE OR REPLACE FUNCTION public.top()
 RETURNS text
 LANGUAGE sql
BEGIN ATOMIC
 SELECT (max(counters.n))::text AS max
    FROM public.counters;
END;
CREATE OR REPLACE FUNCTION public.total()
 RETURNS bigint
 LANGUAGE sql
BEGIN ATOMIC
 SELECT (sum(counters.n) + (count(*))::numeric)
    FROM public.counters;
END;

-- down
SET check_function_bodies = false;
ALTER TABLE public.codes ALTER COLUMN code DROP DEFAULT;
DROP FUNCTION public.answer();
DROP FUNCTION public.counter_of(wanted integer);
DROP FUNCTION public.next_code();
DROP PROCEDURE public.reset_counters(IN to_value integer);
DROP FUNCTION public.top();
DROP FUNCTION public.total();
CREATE OR REPLACE FUNCTION public.add(a integer, b integer)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE
AS $function$ SELECT a + b $function$;
CREATE OR REPLACE FUNCTION public.answer()
 RETURNS integer
 LANGUAGE sql
AS $function$ SELECT 42 $function$;
CREATE OR REPLACE FUNCTION public.next_code()
 RETURNS integer
 LANGUAGE sql
AS $function$ SELECT 1 $function$;
CREATE OR REPLACE FUNCTION public.obsolete(x text)
 RETURNS text
 LANGUAGE sql
AS $function$ SELECT x $function$;
CREATE OR REPLACE PROCEDURE public.reset_counters()
 LANGUAGE sql
AS $procedure$ UPDATE counters SET n = 0 $procedure$;
CREATE OR REPLACE FUNCTION public.touch()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    NEW.updated := now();
    RETURN NEW;
END
$function$;
ALTER TABLE public.codes ALTER COLUMN code SET DEFAULT public.next_code();
ALTER TABLE public.counters ALTER COLUMN n DROP DEFAULT;
-- hazard: type_change: bigint to integer rewrites public.counters and its indexes under an ACCESS EXCLUSIVE lock, and fails for values integer cannot hold
ALTER TABLE public.counters ALTER COLUMN n TYPE integer USING n::integer;
ALTER TABLE public.counters ALTER COLUMN n SET DEFAULT 0;
CREATE OR REPLACE FUNCTION public.top()
 RETURNS text
 LANGUAGE sql
BEGIN ATOMIC
 SELECT (max(counters.n))::text AS max
    FROM public.counters;
END;
CREATE OR REPLACE FUNCTION public.total()
 RETURNS bigint
 LANGUAGE sql
BEGIN ATOMIC
 SELECT sum(counters.n) AS sum
    FROM public.counters;
END;
