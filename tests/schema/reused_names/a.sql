CREATE TABLE replication_target (id int CONSTRAINT replication_target_pkey PRIMARY KEY, url text);
CREATE TABLE replication_policy (id int PRIMARY KEY, target_id int REFERENCES replication_target (id));
CREATE SEQUENCE counter;
