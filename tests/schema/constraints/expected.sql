-- up
ALTER TABLE public.bookings DROP CONSTRAINT bookings_room_fkey;
ALTER TABLE public.payments DROP CONSTRAINT payments_account_id_fkey;
ALTER TABLE public.accounts DROP CONSTRAINT accounts_balance_check;
ALTER TABLE public.accounts DROP CONSTRAINT accounts_email_key;
ALTER TABLE public.accounts DROP CONSTRAINT accounts_pkey;
ALTER TABLE public.bookings DROP CONSTRAINT bookings_sane;
ALTER TABLE public.accounts ADD CONSTRAINT accounts_balance_check CHECK ((balance >= '-100'::integer)) NOT VALID;
ALTER TABLE public.accounts VALIDATE CONSTRAINT accounts_balance_check;
CREATE UNIQUE INDEX CONCURRENTLY accounts_pkey ON public.accounts USING btree (tenant, id);
ALTER TABLE public.accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY USING INDEX accounts_pkey;
CREATE UNIQUE INDEX CONCURRENTLY accounts_tenant_email_key ON public.accounts USING btree (tenant, email);
ALTER TABLE public.accounts ADD CONSTRAINT accounts_tenant_email_key UNIQUE USING INDEX accounts_tenant_email_key DEFERRABLE INITIALLY DEFERRED;
-- hazard: blocking_index: builds the constraint's index under an ACCESS EXCLUSIVE lock: reads and writes of public.bookings wait until it is built
ALTER TABLE public.bookings ADD CONSTRAINT bookings_during_excl EXCLUDE USING gist (during WITH &&);
ALTER TABLE public.rooms RENAME CONSTRAINT rooms_code_unique TO rooms_code_key;
CREATE UNIQUE INDEX CONCURRENTLY rooms_name_key ON public.rooms USING btree (name);
ALTER TABLE public.rooms ADD CONSTRAINT rooms_name_key UNIQUE USING INDEX rooms_name_key;
ALTER TABLE public.bookings ADD CONSTRAINT bookings_room_fkey FOREIGN KEY (room) REFERENCES public.rooms(id) DEFERRABLE INITIALLY DEFERRED NOT VALID;
ALTER TABLE public.bookings VALIDATE CONSTRAINT bookings_room_fkey;
ALTER TABLE public.payments ADD CONSTRAINT payments_tenant_account_id_fkey FOREIGN KEY (tenant, account_id) REFERENCES public.accounts(tenant, id) ON DELETE CASCADE NOT VALID;
ALTER TABLE public.payments VALIDATE CONSTRAINT payments_tenant_account_id_fkey;

-- down
ALTER TABLE public.bookings DROP CONSTRAINT bookings_room_fkey;
ALTER TABLE public.payments DROP CONSTRAINT payments_tenant_account_id_fkey;
ALTER TABLE public.accounts DROP CONSTRAINT accounts_balance_check;
ALTER TABLE public.accounts DROP CONSTRAINT accounts_pkey;
ALTER TABLE public.accounts DROP CONSTRAINT accounts_tenant_email_key;
ALTER TABLE public.bookings DROP CONSTRAINT bookings_during_excl;
ALTER TABLE public.rooms DROP CONSTRAINT rooms_name_key;
ALTER TABLE public.accounts ADD CONSTRAINT accounts_balance_check CHECK ((balance >= 0)) NOT VALID;
ALTER TABLE public.accounts VALIDATE CONSTRAINT accounts_balance_check;
CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON public.accounts USING btree (email);
ALTER TABLE public.accounts ADD CONSTRAINT accounts_email_key UNIQUE USING INDEX accounts_email_key;
CREATE UNIQUE INDEX CONCURRENTLY accounts_pkey ON public.accounts USING btree (id);
ALTER TABLE public.accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY USING INDEX accounts_pkey;
ALTER TABLE public.bookings ADD CONSTRAINT bookings_sane CHECK ((lower(during) > '2000-01-01 00:00:00+00'::timestamp with time zone)) NOT VALID;
ALTER TABLE public.bookings VALIDATE CONSTRAINT bookings_sane;
ALTER TABLE public.rooms RENAME CONSTRAINT rooms_code_key TO rooms_code_unique;
ALTER TABLE public.bookings ADD CONSTRAINT bookings_room_fkey FOREIGN KEY (room) REFERENCES public.rooms(id) NOT VALID;
ALTER TABLE public.bookings VALIDATE CONSTRAINT bookings_room_fkey;
ALTER TABLE public.payments ADD CONSTRAINT payments_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id) NOT VALID;
ALTER TABLE public.payments VALIDATE CONSTRAINT payments_account_id_fkey;
