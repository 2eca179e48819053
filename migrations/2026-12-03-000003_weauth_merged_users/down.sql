DROP TABLE IF EXISTS weauth.merged_users;
