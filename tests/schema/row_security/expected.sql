-- up
DROP POLICY notes_old ON public.notes;
ALTER TABLE public.notes FORCE ROW LEVEL SECURITY;
ALTER TABLE public.open_data ENABLE ROW LEVEL SECURITY;
ALTER POLICY notes_owner ON public.notes WITH CHECK (((owner = CURRENT_USER) AND (body IS NOT NULL)));
CREATE POLICY notes_shared ON public.notes AS RESTRICTIVE FOR SELECT TO PUBLIC USING ((shared OR (owner = CURRENT_USER)));
CREATE POLICY open_data_read ON public.open_data AS PERMISSIVE FOR SELECT TO PUBLIC USING (true);

-- down
DROP POLICY notes_owner ON public.notes;
DROP POLICY notes_shared ON public.notes;
DROP POLICY open_data_read ON public.open_data;
ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.open_data DISABLE ROW LEVEL SECURITY;
CREATE POLICY notes_old ON public.notes AS PERMISSIVE FOR SELECT TO PUBLIC USING (true);
CREATE POLICY notes_owner ON public.notes AS PERMISSIVE FOR ALL TO PUBLIC USING ((owner = CURRENT_USER));
