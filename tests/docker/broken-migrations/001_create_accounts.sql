-- migrate:up
CREATE TABLE accounts (id bigint PRIMARY KEY);
