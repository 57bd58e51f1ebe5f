CREATE TABLE notes (id integer PRIMARY KEY, owner text NOT NULL DEFAULT current_user, body text, shared boolean NOT NULL DEFAULT false);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY notes_owner ON notes USING (owner = current_user);
CREATE POLICY notes_old ON notes FOR SELECT USING (true);
CREATE TABLE open_data (id integer PRIMARY KEY);
