-- The guard of weauth's single-statement writes (src/db/mod.rs, `fast_path`): a statement that
-- runs without BEGIN/COMMIT calls weauth.in_time(deadline) where it writes, and aborts (writing
-- nothing) when it only starts executing after the request already answered 503, e.g. when a
-- stalled network delivers it late. NULL means no deadline (the statement is inside a
-- transaction that the server rolls back itself).
CREATE OR REPLACE FUNCTION weauth.in_time(deadline timestamptz) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF deadline IS NOT NULL AND clock_timestamp() >= deadline THEN
    RAISE EXCEPTION 'weauth: the request gave up before this statement ran'
      USING ERRCODE = '57014';
  END IF;
  RETURN true;
END
$$;
