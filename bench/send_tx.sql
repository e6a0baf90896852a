-- What POST /cpaas/v1/messages runs for one accepted SMS without an Idempotency-Key (same
-- statements, same order, no transaction around them): the shared rate limit's statement, then
-- one statement that checks the recipient's opt-outs and the tenant's providers and writes the
-- message and its outbox row.
\set n random(1, 1000000)
INSERT INTO rate_limit_buckets AS b (key, tat, granted)
SELECT 'send' || chr(58) || '00000000-0000-0000-0000-000000000001' || chr(58) || 'SMS', -- chr(58) is ':', which pgbench would read as a variable
       clock_timestamp() + make_interval(secs => g * 6e-8), g
  FROM (SELECT CASE WHEN true THEN (CASE WHEN 1 <= 1000000000 THEN 1 ELSE 0 END)
               ELSE GREATEST(0, LEAST(1, 1000000000)) END AS g) AS f
ON CONFLICT (key) DO UPDATE SET
  granted = CASE WHEN true THEN (CASE WHEN 1 <= floor(1000000000 - GREATEST(0, EXTRACT(EPOCH FROM (b.tat - clock_timestamp()))) / 6e-8 + 1e-9)::int THEN 1 ELSE 0 END)
                 ELSE 1 END,
  tat = GREATEST(b.tat, clock_timestamp()) + make_interval(secs => (CASE WHEN 1 <= floor(1000000000 - GREATEST(0, EXTRACT(EPOCH FROM (b.tat - clock_timestamp()))) / 6e-8 + 1e-9)::int THEN 1 ELSE 0 END) * 6e-8)
RETURNING granted AS units, GREATEST(0, EXTRACT(EPOCH FROM (tat - clock_timestamp())))::float8 AS ahead_secs;
WITH blocked AS (
  SELECT 1 FROM opt_outs o
   WHERE o.tenant_id = '00000000-0000-0000-0000-000000000001' AND o.removed_at IS NULL
     AND o.recipient = '+14155552671' AND o.channel IN ('SMS', 'ALL')
   LIMIT 1),
usable AS (
  SELECT 1 FROM providers p
   WHERE p.tenant_id = '00000000-0000-0000-0000-000000000001' AND p.deleted_at IS NULL
     AND p.is_active AND p.channels @> ARRAY['SMS'] AND (NULL::uuid IS NULL OR p.id = NULL::uuid)
   LIMIT 1),
m AS (
  INSERT INTO messages (id, tenant_id, channel, recipient, status, subject, body, template_id,
      template_version, pinned_provider_id, metadata, source_event_id, scheduled_at, created_at,
      updated_at, notification_id, html_body, reply_to, priority)
  SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'SMS', '+14155552671',
      'QUEUED', NULL, 'Your code is ' || :n, NULL, NULL, NULL, '{}', NULL, NULL, now(), now(),
      NULL, NULL, NULL, 'normal'
   WHERE NOT EXISTS (SELECT 1 FROM blocked) AND EXISTS (SELECT 1 FROM usable)
  RETURNING id, tenant_id),
o AS (
  INSERT INTO outbox_events (id, tenant_id, aggregate_type, aggregate_id, topic, payload, lane)
  SELECT gen_random_uuid(), m.tenant_id, 'message', m.id,
    'eventzr.cpaas.communication.requested.v1',
    jsonb_build_object('specversion', '1.0', 'type', 'eventzr.cpaas.communication.requested.v1',
      'source', 'cpaas-orchestrator-svc', 'id', 'evt-' || gen_random_uuid(), 'time', now(),
      'datacontenttype', 'application/json', 'subject', '00000000-0000-0000-0000-000000000001',
      'data', jsonb_build_object('tenantId', '00000000-0000-0000-0000-000000000001',
        'channel', 'SMS', 'recipient', '+14155552671', 'status', 'QUEUED')), 1
  FROM m)
SELECT EXISTS (SELECT 1 FROM blocked) AS opted_out, EXISTS (SELECT 1 FROM usable) AS usable,
  EXISTS (SELECT 1 FROM m) AS inserted;
