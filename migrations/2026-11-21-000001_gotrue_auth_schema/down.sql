-- Deliberately empty: the auth schema holds users' accounts and may predate weauth (it is
-- GoTrue's schema). Rolling weauth back must never drop it.
SELECT 1;
