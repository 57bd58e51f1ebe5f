CREATE TABLE notes (id integer PRIMARY KEY, owner text NOT NULL DEFAULT current_user, body text, shared boolean NOT NULL DEFAULT false);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY notes_owner ON notes USING (owner = current_user) WITH CHECK (owner = current_user AND body IS NOT NULL);
CREATE POLICY notes_shared ON notes AS RESTRICTIVE FOR SELECT USING (shared OR owner = current_user);
CREATE TABLE open_data (id integer PRIMARY KEY);
ALTER TABLE open_data ENABLE ROW LEVEL SECURITY;
CREATE POLICY open_data_read ON open_data FOR SELECT TO PUBLIC USING (true);
