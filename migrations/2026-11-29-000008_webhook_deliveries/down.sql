DROP TABLE webhook_delivery_attempts;
DROP TABLE webhook_deliveries;
DROP FUNCTION cpaas_uuid_v7();
