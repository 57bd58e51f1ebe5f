CREATE TABLE users (id integer PRIMARY KEY, email text, name text);
CREATE INDEX users_email_idx ON users (email);
CREATE FUNCTION greet(who text) RETURNS text LANGUAGE sql AS $$ SELECT 'hi ' || who $$;
CREATE VIEW user_emails AS SELECT id, email FROM users;
COMMENT ON TABLE users IS 'people';
COMMENT ON COLUMN users.email IS 'where we write';
COMMENT ON COLUMN users.name IS 'what they are called';
COMMENT ON FUNCTION greet(text) IS 'says hi';
COMMENT ON VIEW user_emails IS 'for the mailer';
