-- up
-- hazard: drop: deletes column public.settings.bag and its data
ALTER TABLE public.settings DROP COLUMN bag;
-- hazard: drop: deletes extension hstore; what uses it stops working
DROP EXTENSION hstore;
CREATE SCHEMA ext;
CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA ext;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;
ALTER TABLE public.people ADD COLUMN login ext.citext;
ALTER TABLE public.people ADD COLUMN token text DEFAULT encode(public.gen_random_bytes(16), 'hex'::text) NOT NULL;
CREATE UNIQUE INDEX CONCURRENTLY people_login_key ON public.people USING btree (login);
ALTER TABLE public.people ADD CONSTRAINT people_login_key UNIQUE USING INDEX people_login_key;

-- down
ALTER TABLE public.people DROP CONSTRAINT people_login_key;
-- hazard: drop: deletes column public.people.login and its data
ALTER TABLE public.people DROP COLUMN login;
-- hazard: drop: deletes column public.people.token and its data
ALTER TABLE public.people DROP COLUMN token;
-- hazard: drop: deletes extension citext; what uses it stops working
DROP EXTENSION citext;
-- hazard: drop: deletes extension pgcrypto; what uses it stops working
DROP EXTENSION pgcrypto;
-- hazard: drop: deletes schema ext; what uses it stops working
DROP SCHEMA ext;
CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA public;
ALTER TABLE public.settings ADD COLUMN bag public.hstore;
