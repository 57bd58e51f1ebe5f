CREATE TABLE orders (id integer PRIMARY KEY, status text, updated timestamptz, audit_count integer NOT NULL DEFAULT 0);
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated := now(); RETURN NEW; END $$;
CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER orders_stamp BEFORE UPDATE ON orders FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION stamp();
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit();
ALTER TABLE orders DISABLE TRIGGER orders_audit;
CREATE TRIGGER orders_status AFTER UPDATE OF status ON orders FOR EACH ROW EXECUTE FUNCTION audit();
ALTER TABLE orders DISABLE TRIGGER orders_status;
