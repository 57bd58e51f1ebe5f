-- up
DROP INDEX CONCURRENTLY public.docs_obsolete_idx;
CREATE TABLE public.archive (
    id integer NOT NULL,
    title text
);
ALTER TABLE public.archive ADD CONSTRAINT archive_pkey PRIMARY KEY (id);
CREATE INDEX archive_title_idx ON public.archive USING btree (title);
ALTER INDEX public.docs_created_body_idx RENAME TO docs_created_body_index;
CREATE INDEX CONCURRENTLY docs_created_idx ON public.docs USING brin (created);
CREATE INDEX CONCURRENTLY docs_lower_title_idx ON public.docs USING btree (lower(title)) INCLUDE (id);
CREATE INDEX CONCURRENTLY docs_n_idx__new ON public.docs USING hash (n);
DROP INDEX CONCURRENTLY public.docs_n_idx;
ALTER INDEX public.docs_n_idx__new RENAME TO docs_n_idx;
CREATE UNIQUE INDEX CONCURRENTLY docs_slug_key__new ON public.docs USING btree (slug) WHERE (NOT deleted);
DROP INDEX CONCURRENTLY public.docs_slug_key;
ALTER INDEX public.docs_slug_key__new RENAME TO docs_slug_key;
CREATE INDEX CONCURRENTLY docs_tags_idx ON public.docs USING gin (tags);
CREATE INDEX CONCURRENTLY docs_title_idx__new ON public.docs USING btree (title text_pattern_ops);
DROP INDEX CONCURRENTLY public.docs_title_idx;
ALTER INDEX public.docs_title_idx__new RENAME TO docs_title_idx;
COMMENT ON INDEX public.docs_title_idx IS 'prefix search';

-- down
DROP INDEX CONCURRENTLY public.docs_created_idx;
DROP INDEX CONCURRENTLY public.docs_lower_title_idx;
DROP INDEX CONCURRENTLY public.docs_tags_idx;
-- hazard: drop: deletes public.archive and every row in it
DROP TABLE public.archive;
ALTER INDEX public.docs_created_body_index RENAME TO docs_created_body_idx;
CREATE INDEX CONCURRENTLY docs_n_idx__new ON public.docs USING btree (n);
DROP INDEX CONCURRENTLY public.docs_n_idx;
ALTER INDEX public.docs_n_idx__new RENAME TO docs_n_idx;
CREATE INDEX CONCURRENTLY docs_obsolete_idx ON public.docs USING btree (body);
CREATE UNIQUE INDEX CONCURRENTLY docs_slug_key__new ON public.docs USING btree (slug);
DROP INDEX CONCURRENTLY public.docs_slug_key;
ALTER INDEX public.docs_slug_key__new RENAME TO docs_slug_key;
CREATE INDEX CONCURRENTLY docs_title_idx__new ON public.docs USING btree (title);
DROP INDEX CONCURRENTLY public.docs_title_idx;
ALTER INDEX public.docs_title_idx__new RENAME TO docs_title_idx;
COMMENT ON INDEX public.docs_title_idx IS 'prefix search';
