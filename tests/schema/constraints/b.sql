CREATE TABLE accounts (
    id integer NOT NULL,
    tenant integer NOT NULL,
    email text,
    balance integer CONSTRAINT accounts_balance_check CHECK (balance >= -100),
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, email) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE payments (
    id integer PRIMARY KEY,
    tenant integer NOT NULL,
    account_id integer,
    FOREIGN KEY (tenant, account_id) REFERENCES accounts (tenant, id) ON DELETE CASCADE
);
-- The same constraint under another name: renamed.
CREATE TABLE rooms (id integer PRIMARY KEY, name text UNIQUE, code text CONSTRAINT rooms_code_key UNIQUE);
CREATE TABLE bookings (
    id integer PRIMARY KEY,
    room integer REFERENCES rooms (id) DEFERRABLE INITIALLY DEFERRED,
    during tstzrange NOT NULL,
    EXCLUDE USING gist (during WITH &&)
);
