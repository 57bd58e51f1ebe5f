-- up
DROP VIEW public.happy_people;
-- hazard: drop: deletes enum public.retired; what uses it stops working
DROP TYPE public.retired;
-- hazard: enum_value_removed: 'meh' removed: public.mood is rebuilt, every column of it rewritten, and the rewrite fails if a row still holds it
ALTER TYPE public.mood RENAME TO mood__old;
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
ALTER TABLE public.people ALTER COLUMN current DROP DEFAULT;
ALTER TABLE public.people ALTER COLUMN current TYPE public.mood USING current::text::public.mood;
ALTER TABLE public.people ALTER COLUMN current SET DEFAULT 'ok'::public.mood;
ALTER TABLE public.people ALTER COLUMN history DROP DEFAULT;
ALTER TABLE public.people ALTER COLUMN history TYPE public.mood[] USING history::text[]::public.mood[];
ALTER TABLE public.people ALTER COLUMN history SET DEFAULT '{}'::public.mood[];
ALTER TABLE public.people ALTER COLUMN previous TYPE public.mood USING previous::text::public.mood;
DROP TYPE public.mood__old;
CREATE TYPE public.priority AS ENUM ('low', 'high');
-- schemagate: 'active' is used below, and a new enum value must be committed before it is used: this section runs outside a transaction
ALTER TYPE public.status ADD VALUE 'active' BEFORE 'done';
ALTER TYPE public.status ADD VALUE 'blocked' BEFORE 'done';
ALTER TYPE public.status ADD VALUE 'archived';
ALTER TABLE public.tasks ALTER COLUMN state DROP DEFAULT;
ALTER TABLE public.tasks ALTER COLUMN state SET DEFAULT 'active'::public.status;
ALTER TABLE public.tasks ADD COLUMN level public.priority;
CREATE VIEW public.happy_people AS
 SELECT people.id
   FROM public.people
  WHERE (people.current = 'happy'::public.mood);

-- down
-- hazard: drop: deletes column public.tasks.level and its data
ALTER TABLE public.tasks DROP COLUMN level;
-- hazard: drop: deletes enum public.priority; what uses it stops working
DROP TYPE public.priority;
ALTER TYPE public.mood ADD VALUE 'meh' BEFORE 'ok';
CREATE TYPE public.retired AS ENUM ('x', 'y');
-- hazard: enum_value_removed: 'active', 'blocked', 'archived' removed: public.status is rebuilt, every column of it rewritten, and the rewrite fails if a row still holds one of them
ALTER TYPE public.status RENAME TO status__old;
CREATE TYPE public.status AS ENUM ('new', 'done');
ALTER TABLE public.tasks ALTER COLUMN state DROP DEFAULT;
ALTER TABLE public.tasks ALTER COLUMN state TYPE public.status USING state::text::public.status;
ALTER TABLE public.tasks ALTER COLUMN state SET DEFAULT 'new'::public.status;
DROP TYPE public.status__old;
ALTER TABLE public.tasks ALTER COLUMN state DROP DEFAULT;
ALTER TABLE public.tasks ALTER COLUMN state SET DEFAULT 'new'::public.status;
