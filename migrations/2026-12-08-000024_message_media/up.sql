-- Pictures and files a message carries by URL (MMS, WhatsApp media, e-mail attachments, push
-- images): [{ url, content_type, filename }].
ALTER TABLE messages ADD COLUMN media jsonb;
