-- Lists at scale: a post's vote count kept with the post, and an index for title search.

-- The number of votes on the post. A trigger keeps it in the same transaction as every vote
-- added or taken back, including votes deleted by a cascade (a voter's account deleted), so
-- that reading a post never counts its votes. Concurrent votes on one post queue on its row.
ALTER TABLE posts ADD COLUMN votes BIGINT NOT NULL DEFAULT 0 CHECK (votes >= 0);
UPDATE posts p SET votes = (SELECT COUNT(*) FROM votes v WHERE v.post_id = p.id);

CREATE FUNCTION votes_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE posts SET votes = votes + 1 WHERE id = NEW.post_id;
    ELSE
        UPDATE posts SET votes = votes - 1 WHERE id = OLD.post_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER votes_count AFTER INSERT OR DELETE ON votes
    FOR EACH ROW EXECUTE FUNCTION votes_count();

-- Title search: a trigram index over the lower-cased titles, which `LIKE '%...%'` uses for
-- patterns of three characters or more. pg_trgm ships with PostgreSQL and is a trusted
-- extension: the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX posts_title_key_trgm_idx ON posts USING gin (title_key gin_trgm_ops);
