-- Connect tickets redeemed without Redis: the primary key lets exactly one redemption of
-- a ticket in, across every instance on this database. Rows go once the ticket expires.
CREATE TABLE ticket_redemptions (
    jti TEXT PRIMARY KEY NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX ticket_redemptions_expiry ON ticket_redemptions (expires_at);
