DROP TABLE IF EXISTS weauth.otp_attempts;
