DROP FUNCTION IF EXISTS weauth.stamp_last_challenged(uuid, timestamptz);
