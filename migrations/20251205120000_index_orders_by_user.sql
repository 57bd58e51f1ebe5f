-- Built without blocking writes: CONCURRENTLY cannot run inside a transaction.
-- migrate:up transaction:false
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_user_id_idx ON orders (user_id, created_at DESC);

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY IF EXISTS orders_user_id_idx;
