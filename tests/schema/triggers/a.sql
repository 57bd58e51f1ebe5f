CREATE TABLE orders (id integer PRIMARY KEY, status text, updated timestamptz, audit_count integer NOT NULL DEFAULT 0);
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated := now(); RETURN NEW; END $$;
CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER orders_stamp BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION stamp();
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit();
CREATE TRIGGER orders_old AFTER DELETE ON orders FOR EACH STATEMENT EXECUTE FUNCTION audit();
