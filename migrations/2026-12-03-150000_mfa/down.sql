-- auth.mfa_challenges may predate weauth and holds GoTrue's data: it stays.
DROP TABLE IF EXISTS weauth.mfa_factor_attempts;
