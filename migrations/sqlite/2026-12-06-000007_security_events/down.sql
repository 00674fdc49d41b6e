DROP TABLE event_acks;
DROP TABLE event_cursors;
DROP TABLE security_events;
