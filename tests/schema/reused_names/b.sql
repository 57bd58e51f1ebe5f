CREATE TABLE registry (id int CONSTRAINT replication_target_pkey PRIMARY KEY, url text, insecure boolean);
CREATE TABLE replication_policy (id int PRIMARY KEY, target_id int REFERENCES registry (id));
CREATE TABLE counter (n int);
