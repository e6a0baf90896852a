-- The floor of a send: one statement writing the message row and its outbox row (implicit
-- transaction), nothing looked up, nothing else written. POST /cpaas/v1/messages is measured
-- against it.
\set n random(1, 1000000)
WITH m AS (
  INSERT INTO messages (id, tenant_id, channel, recipient, status, body, metadata, created_at, updated_at)
  VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'SMS', '+14155552671',
          'QUEUED', 'Your code is ' || :n, '{}', now(), now())
  RETURNING id)
INSERT INTO outbox_events (id, tenant_id, aggregate_type, aggregate_id, topic, payload)
SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'message', m.id,
  'eventzr.cpaas.communication.requested.v1',
  jsonb_build_object('specversion', '1.0', 'type', 'eventzr.cpaas.communication.requested.v1',
    'source', 'cpaas-orchestrator-svc', 'id', 'evt-' || gen_random_uuid(), 'time', now(),
    'datacontenttype', 'application/json', 'subject', '00000000-0000-0000-0000-000000000001',
    'data', jsonb_build_object('tenantId', '00000000-0000-0000-0000-000000000001',
      'channel', 'SMS', 'recipient', '+14155552671', 'status', 'QUEUED'))
FROM m;
