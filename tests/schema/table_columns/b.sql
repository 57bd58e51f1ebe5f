CREATE TABLE items (
    id integer GENERATED ALWAYS AS IDENTITY,
    code text,
    label text COLLATE "C",
    qty bigint NOT NULL DEFAULT 1,
    price numeric(12, 2),
    doubled integer,
    serial_no bigint,
    ref integer GENERATED ALWAYS AS IDENTITY,
    note text DEFAULT 'none',
    flag boolean,
    plain_total numeric GENERATED ALWAYS AS (qty * price) STORED,
    total numeric GENERATED ALWAYS AS (qty * price * 1.2) STORED
);
