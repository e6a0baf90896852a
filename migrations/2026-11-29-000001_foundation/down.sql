DROP TABLE providers;
DROP TABLE login_throttles;
DROP TABLE refresh_tokens;
DROP TABLE refresh_token_families;
DROP TABLE users;
DROP TABLE tenants;
