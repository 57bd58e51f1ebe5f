-- up
COMMENT ON FUNCTION public.greet(who text) IS 'says hi, it''s polite';
COMMENT ON TABLE public.users IS 'people who sign in';
COMMENT ON COLUMN public.users.id IS 'never reused';
COMMENT ON COLUMN public.users.name IS NULL;
COMMENT ON CONSTRAINT users_pkey ON public.users IS 'the key';
COMMENT ON INDEX public.users_email_idx IS 'login lookups';
COMMENT ON VIEW public.user_emails IS NULL;

-- down
COMMENT ON FUNCTION public.greet(who text) IS 'says hi';
COMMENT ON TABLE public.users IS 'people';
COMMENT ON COLUMN public.users.id IS NULL;
COMMENT ON COLUMN public.users.name IS 'what they are called';
COMMENT ON CONSTRAINT users_pkey ON public.users IS NULL;
COMMENT ON INDEX public.users_email_idx IS NULL;
COMMENT ON VIEW public.user_emails IS 'for the mailer';
