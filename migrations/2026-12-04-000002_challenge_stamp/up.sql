-- GoTrue's auth.mfa_factors.last_challenged_at is UNIQUE, so two factors challenged in the same
-- microsecond collided (500 under load: the benchmark's mfa_verify cell found it). weauth stamps
-- the factor through this function, which moves its stamp on by a microsecond until it is free.
CREATE OR REPLACE FUNCTION weauth.stamp_last_challenged(factor uuid, at timestamptz)
RETURNS timestamptz LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  LOOP
    BEGIN
      UPDATE auth.mfa_factors SET last_challenged_at = at WHERE id = factor;
      RETURN at;
    EXCEPTION WHEN unique_violation THEN
      at := at + interval '1 microsecond';
    END;
  END LOOP;
END
$$;
