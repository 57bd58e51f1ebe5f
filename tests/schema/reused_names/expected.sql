-- up
ALTER TABLE public.replication_policy DROP CONSTRAINT replication_policy_target_id_fkey;
-- hazard: drop: deletes public.replication_target and every row in it
DROP TABLE public.replication_target;
-- hazard: drop: deletes sequence public.counter; what uses it stops working
DROP SEQUENCE public.counter;
CREATE TABLE public.counter (
    n integer
);
CREATE TABLE public.registry (
    id integer NOT NULL,
    url text,
    insecure boolean
);
ALTER TABLE public.registry ADD CONSTRAINT replication_target_pkey PRIMARY KEY (id);
ALTER TABLE public.replication_policy ADD CONSTRAINT replication_policy_target_id_fkey FOREIGN KEY (target_id) REFERENCES public.registry(id) NOT VALID;
ALTER TABLE public.replication_policy VALIDATE CONSTRAINT replication_policy_target_id_fkey;

-- down
ALTER TABLE public.replication_policy DROP CONSTRAINT replication_policy_target_id_fkey;
-- hazard: drop: deletes public.counter and every row in it
DROP TABLE public.counter;
-- hazard: drop: deletes public.registry and every row in it
DROP TABLE public.registry;
CREATE SEQUENCE public.counter AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1 NO CYCLE;
CREATE TABLE public.replication_target (
    id integer NOT NULL,
    url text
);
ALTER TABLE public.replication_target ADD CONSTRAINT replication_target_pkey PRIMARY KEY (id);
ALTER TABLE public.replication_policy ADD CONSTRAINT replication_policy_target_id_fkey FOREIGN KEY (target_id) REFERENCES public.replication_target(id) NOT VALID;
ALTER TABLE public.replication_policy VALIDATE CONSTRAINT replication_policy_target_id_fkey;
