CREATE TABLE accounts (
    id integer PRIMARY KEY,
    tenant integer NOT NULL,
    email text UNIQUE,
    balance integer CHECK (balance >= 0)
);
CREATE TABLE payments (id integer PRIMARY KEY, tenant integer NOT NULL, account_id integer REFERENCES accounts (id));
CREATE TABLE rooms (id integer PRIMARY KEY, name text, code text CONSTRAINT rooms_code_unique UNIQUE);
CREATE TABLE bookings (
    id integer PRIMARY KEY,
    room integer REFERENCES rooms (id),
    during tstzrange NOT NULL,
    CONSTRAINT bookings_sane CHECK (lower(during) > '2000-01-01')
);
