CREATE TYPE status AS ENUM ('new', 'done');
CREATE TYPE mood AS ENUM ('sad', 'meh', 'ok', 'happy');
CREATE TYPE retired AS ENUM ('x', 'y');
CREATE TABLE tasks (id integer PRIMARY KEY, state status NOT NULL DEFAULT 'new');
CREATE TABLE people (
    id integer PRIMARY KEY,
    current mood NOT NULL DEFAULT 'ok',
    history mood[] NOT NULL DEFAULT '{}',
    previous mood
);
CREATE INDEX people_current_idx ON people (current);
CREATE VIEW happy_people AS SELECT id FROM people WHERE current = 'happy';
