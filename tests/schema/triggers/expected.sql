-- up
DROP TRIGGER orders_old ON public.orders;
DROP TRIGGER orders_stamp ON public.orders;
ALTER TABLE public.orders DISABLE TRIGGER orders_audit;
CREATE TRIGGER orders_stamp BEFORE UPDATE ON public.orders FOR EACH ROW WHEN ((old.status IS DISTINCT FROM new.status)) EXECUTE FUNCTION public.stamp();
CREATE TRIGGER orders_status AFTER UPDATE OF status ON public.orders FOR EACH ROW EXECUTE FUNCTION public.audit();
ALTER TABLE public.orders DISABLE TRIGGER orders_status;

-- down
DROP TRIGGER orders_stamp ON public.orders;
DROP TRIGGER orders_status ON public.orders;
ALTER TABLE public.orders ENABLE TRIGGER orders_audit;
CREATE TRIGGER orders_old AFTER DELETE ON public.orders FOR EACH STATEMENT EXECUTE FUNCTION public.audit();
CREATE TRIGGER orders_stamp BEFORE UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION public.stamp();
