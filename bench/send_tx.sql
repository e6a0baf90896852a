-- The transaction POST /cpaas/v1/messages commits for one accepted SMS (same statements, same
-- order): opt-out look-up, provider look-up, message insert, outbox insert, NOTIFY.
\set n random(1, 1000000)
BEGIN;
SELECT recipient, channel FROM opt_outs
 WHERE tenant_id = '00000000-0000-0000-0000-000000000001' AND removed_at IS NULL
   AND recipient = ANY(ARRAY['+14155552671']);
SELECT id FROM providers
 WHERE tenant_id = '00000000-0000-0000-0000-000000000001' AND deleted_at IS NULL
   AND is_active = true AND channels @> ARRAY['SMS']
 ORDER BY priority, id;
INSERT INTO messages (id, tenant_id, channel, recipient, status, subject, body, template_id,
    template_version, pinned_provider_id, metadata, source_event_id, scheduled_at, created_at, updated_at)
VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'SMS', '+14155552671', 'QUEUED',
    NULL, 'Your code is ' || :n, NULL, NULL, NULL, '{}', NULL, NULL, now(), now())
RETURNING *;
INSERT INTO outbox_events (id, tenant_id, aggregate_type, aggregate_id, topic, payload)
VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'message', gen_random_uuid(),
    'eventzr.cpaas.communication.requested.v1',
    jsonb_build_object('specversion', '1.0', 'type', 'eventzr.cpaas.communication.requested.v1',
      'source', 'cpaas-orchestrator-svc', 'id', 'evt-' || gen_random_uuid(), 'time', now(),
      'datacontenttype', 'application/json', 'subject', '00000000-0000-0000-0000-000000000001',
      'data', jsonb_build_object('tenantId', '00000000-0000-0000-0000-000000000001',
        'channel', 'SMS', 'recipient', '+14155552671', 'status', 'QUEUED')));
NOTIFY cpaas_outbox;
COMMIT;
