-- E-mail in two parts: the HTML part beside the plain-text body, and a Reply-To address.
ALTER TABLE messages ADD COLUMN html_body TEXT, ADD COLUMN reply_to TEXT;
ALTER TABLE templates ADD COLUMN html_body TEXT;
ALTER TABLE template_versions ADD COLUMN html_body TEXT;
