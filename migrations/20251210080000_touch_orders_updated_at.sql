-- Keep orders.updated_at current on every update.
-- migrate:up
CREATE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.updated_at := now();  -- a semicolon inside the body is not the end of the statement
    RETURN NEW;
END;
$fn$;

CREATE TRIGGER orders_touch_updated_at
    BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- migrate:down
DROP TRIGGER orders_touch_updated_at ON orders;
DROP FUNCTION touch_updated_at();
