-- Tenants are kept: going back keeps the data valid for the older release too.
SELECT 1;
