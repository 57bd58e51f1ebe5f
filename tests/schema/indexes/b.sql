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
CREATE INDEX docs_title_idx ON docs (title text_pattern_ops);
CREATE UNIQUE INDEX docs_slug_key ON docs (slug) WHERE NOT deleted;
CREATE INDEX docs_n_idx ON docs USING hash (n);
CREATE INDEX docs_tags_idx ON docs USING gin (tags);
CREATE INDEX docs_created_idx ON docs USING brin (created);
CREATE INDEX docs_lower_title_idx ON docs (lower(title)) INCLUDE (id);
CREATE TABLE archive (id integer PRIMARY KEY, title text);
CREATE INDEX archive_title_idx ON archive (title);
COMMENT ON INDEX docs_title_idx IS 'prefix search';
-- The same index under another name: renamed.
CREATE INDEX docs_created_body_index ON docs (created, body);
