DROP FUNCTION IF EXISTS weauth.in_time(timestamptz);
