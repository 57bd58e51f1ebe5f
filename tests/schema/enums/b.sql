CREATE TYPE status AS ENUM ('new', 'active', 'blocked', 'done', 'archived');
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE priority AS ENUM ('low', 'high');
CREATE TABLE tasks (id integer PRIMARY KEY, state status NOT NULL DEFAULT 'active', level priority);
CREATE TABLE people (
    id integer PRIMARY KEY,
    current mood NOT NULL DEFAULT 'ok',
    history mood[] NOT NULL DEFAULT '{}',
    previous mood
);
CREATE INDEX people_current_idx ON people (current);
CREATE VIEW happy_people AS SELECT id FROM people WHERE current = 'happy';
