CREATE TABLE docs (
    id integer PRIMARY KEY,
    title text NOT NULL,
    slug text,
    body text,
    tags text[],
    created timestamptz,
    n integer,
    deleted boolean NOT NULL DEFAULT false
);
CREATE INDEX docs_title_idx ON docs (title);
CREATE UNIQUE INDEX docs_slug_key ON docs (slug);
CREATE INDEX docs_n_idx ON docs (n);
CREATE INDEX docs_obsolete_idx ON docs (body);
COMMENT ON INDEX docs_title_idx IS 'prefix search';
CREATE INDEX docs_created_body_idx ON docs (created, body);
