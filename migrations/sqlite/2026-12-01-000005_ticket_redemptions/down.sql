DROP TABLE ticket_redemptions;
