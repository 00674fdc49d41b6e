DROP TABLE signing_keys;
DROP TABLE users;
