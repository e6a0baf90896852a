ALTER TABLE template_versions DROP COLUMN html_body;
ALTER TABLE templates DROP COLUMN html_body;
ALTER TABLE messages DROP COLUMN html_body, DROP COLUMN reply_to;
