/**
 * Prometheus metrics (prom-client), one registry per service instance so tests that start
 * several instances in one process do not collide.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export function createMetrics({ defaults = true }: { defaults?: boolean } = {}) {
  const registry = new Registry()
  if (defaults) collectDefaultMetrics({ register: registry, prefix: 'parcelcast_' })
  const registers = [registry]
  return {
    registry,
    eventsIngested: new Counter({
      name: 'parcelcast_events_ingested_total',
      help: 'Events handed to the processor, by outcome',
      labelNames: ['outcome'] as const,
      registers
    }),
    eventsPublished: new Counter({
      name: 'parcelcast_events_published_total',
      help: 'Events appended to the Redis stream, by path (inline after commit, or outbox relay)',
      labelNames: ['path'] as const,
      registers
    }),
    publishFailures: new Counter({
      name: 'parcelcast_publish_failures_total',
      help: 'Committed events whose inline stream append failed (left to the outbox relay)',
      registers
    }),
    ingestDuration: new Histogram({
      name: 'parcelcast_ingest_batch_seconds',
      help: 'Time to commit one ingest batch (database part)',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers
    }),
    ingestCalls: new Histogram({
      name: 'parcelcast_ingest_calls_per_transaction',
      help: 'Ingest calls (HTTP requests, webhook pushes, poll results) sharing one transaction (group commit)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers
    }),
    ingestQueued: new Gauge({ name: 'parcelcast_ingest_queued_events', help: 'Events waiting for an ingest transaction slot', registers }),
    ingestRefused: new Counter({
      name: 'parcelcast_ingest_refused_events_total',
      help: 'Events refused with 503 overloaded because the ingest queue was full',
      registers
    }),
    ingestRetries: new Counter({
      name: 'parcelcast_ingest_retries_total',
      help: 'Ingest transactions retried after a serialization failure or deadlock, by SQLSTATE',
      labelNames: ['sqlstate'] as const,
      registers
    }),
    dbDeadlines: new Counter({
      name: 'parcelcast_db_deadlines_total',
      help: 'Database calls abandoned at their deadline (INGEST_TIMEOUT_MS), their connection closed and replaced, by what was running (ingest transaction, outbox relay batch, readiness probe)',
      labelNames: ['what'] as const,
      registers
    }),
    ingestIsolated: new Counter({
      name: 'parcelcast_ingest_isolated_events_total',
      help: 'Events PostgreSQL refused as data, each found by retrying its transaction without it (stored nothing of it)',
      labelNames: ['sqlstate'] as const,
      registers
    }),
    acksPending: new Gauge({
      name: 'parcelcast_publish_acks_pending',
      help: 'Rows on the stream waiting to be taken out of their outbox (events, notifications)',
      labelNames: ['outbox'] as const,
      registers
    }),
    acksDropped: new Counter({
      name: 'parcelcast_publish_acks_dropped_total',
      help: 'Outbox acks dropped because the pending buffer was full (the relay resends those rows)',
      labelNames: ['outbox'] as const,
      registers
    }),
    outboxBacklog: new Gauge({
      name: 'parcelcast_outbox_backlog',
      help: 'Committed rows not yet on their stream, by outbox (events, notifications), as of the last relay cycle (exact up to 1000, estimated beyond)',
      labelNames: ['outbox'] as const,
      registers
    }),
    outboxCycles: new Counter({
      name: 'parcelcast_outbox_cycles_total',
      help: 'Outbox relay cycles, by outbox and result',
      labelNames: ['outbox', 'result'] as const,
      registers
    }),
    streamDelivered: new Counter({
      name: 'parcelcast_broadcaster_entries_total',
      help: 'Stream entries a broadcaster fanned out to all processes, by consumer group (ws-broadcaster, notification-workers)',
      labelNames: ['group'] as const,
      registers
    }),
    streamMalformed: new Counter({
      name: 'parcelcast_broadcaster_malformed_total',
      help: 'Malformed stream entries, acknowledged and skipped, by consumer group',
      labelNames: ['group'] as const,
      registers
    }),
    streamReclaimed: new Counter({
      name: 'parcelcast_broadcaster_reclaimed_total',
      help: 'Entries reclaimed from dead consumers with XAUTOCLAIM, by consumer group',
      labelNames: ['group'] as const,
      registers
    }),
    broadcasterLag: new Gauge({
      name: 'parcelcast_broadcaster_lag_entries',
      help: 'Stream entries a consumer group (ws-broadcaster, notification-workers) has not acknowledged (pending) or not read (unread), as of the last readiness check',
      labelNames: ['group', 'kind'] as const,
      registers
    }),
    notificationsCreated: new Counter({
      name: 'parcelcast_notifications_created_total',
      help: 'Notifications committed, by type source (api: POST /v1/notifications, watchers: shipment.status_changed)',
      labelNames: ['source'] as const,
      registers
    }),
    notificationsPublished: new Counter({
      name: 'parcelcast_notifications_published_total',
      help: 'Notifications appended to notifications:stream, by path (inline after commit, or outbox relay)',
      labelNames: ['path'] as const,
      registers
    }),
    notificationsDelivered: new Counter({
      name: 'parcelcast_notifications_delivered_marks_total',
      help: 'Notifications marked deliveredAt by this process (a socket of the user was sent it)',
      registers
    }),
    deliveredDropped: new Counter({
      name: 'parcelcast_notifications_delivered_dropped_total',
      help: 'deliveredAt marks dropped because the pending buffer was full (those stay without deliveredAt)',
      registers
    }),
    notificationsDeleted: new Counter({
      name: 'parcelcast_notifications_deleted_total',
      help: 'Rows deleted by the retention loop, by what (notifications past NOTIFICATION_RETENTION_DAYS, idempotency answers past 24 h)',
      labelNames: ['what'] as const,
      registers
    }),
    presenceConnections: new Gauge({
      name: 'parcelcast_presence_connections',
      help: 'Presence entries (user, connection) this process keeps alive with heartbeats',
      registers
    }),
    presenceFailures: new Counter({
      name: 'parcelcast_presence_failures_total',
      help: 'Presence writes (touch, leave) the engine did not take, by kind',
      labelNames: ['kind'] as const,
      registers
    }),
    wsConnections: new Gauge({ name: 'parcelcast_ws_connections', help: 'Open WebSocket connections in this process', registers }),
    wsMessages: new Counter({
      name: 'parcelcast_ws_messages_total',
      help: 'Event frames sent to WebSocket clients, by path (publish to a topic, or send to one socket in handover)',
      labelNames: ['path'] as const,
      registers
    }),
    hubOffers: new Counter({
      name: 'parcelcast_hub_events_total',
      help: "Events offered to this process's delivery sequencer for topics it has subscribers on, by source (local: committed by this process; fanout: Redis pub/sub). The first copy of each seq is delivered, later ones dropped",
      labelNames: ['source'] as const,
      registers
    }),
    gapFills: new Counter({
      name: 'parcelcast_delivery_gap_fills_total',
      help: 'Events read back from PostgreSQL because the stream lost or had not brought them',
      registers
    }),
    wsTopics: new Gauge({
      name: 'parcelcast_ws_topics',
      help: 'Topics (shipments, users) with subscribers in this process, as of the last reconcile pass',
      registers
    }),
    wsTasksQueued: new Gauge({
      name: 'parcelcast_ws_tasks_queued',
      help: 'Token checks and client frames waiting for a slice of the event loop (a reconnect storm shows here)',
      registers
    }),
    subscribeLookups: new Histogram({
      name: 'parcelcast_subscribe_lookups_per_query',
      help: 'Shipments read by one query for subscribing sockets (subscribes arriving while a query runs share the next one)',
      buckets: [1, 2, 8, 32, 128, 500],
      registers
    }),
    reconcileDuration: new Histogram({
      name: 'parcelcast_reconcile_seconds',
      help: 'One reconcile pass: every WebSocket topic of this process compared with PostgreSQL, gaps backfilled',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers
    }),
    pollCycles: new Counter({
      name: 'parcelcast_poll_cycles_total',
      help: 'Poll cycles by carrier and result',
      labelNames: ['carrier', 'result'] as const,
      registers
    }),
    pollShipments: new Counter({ name: 'parcelcast_poll_shipments_total', help: 'Shipments polled, by carrier', labelNames: ['carrier'] as const, registers }),
    pollErrors: new Counter({
      name: 'parcelcast_poll_errors_total',
      help: 'Carrier calls that failed, by carrier and kind (rate_limited, retryable, final)',
      labelNames: ['carrier', 'kind'] as const,
      registers
    }),
    pollEvents: new Counter({
      name: 'parcelcast_poll_events_total',
      help: 'Events found by polling, by carrier and processing outcome',
      labelNames: ['carrier', 'outcome'] as const,
      registers
    }),
    carrierRejectedScans: new Counter({
      name: 'parcelcast_carrier_rejected_scans_total',
      help: 'Carrier scans (polled or pushed) rejected as unreadable, by carrier and the carrier field that was wrong; none of them is stored',
      labelNames: ['carrier', 'field'] as const,
      registers
    }),
    carrierShipmentErrors: new Counter({
      name: 'parcelcast_carrier_shipment_errors_total',
      help: "Shipments whose carrier answer was an error or could not be read (nothing of it stored), by carrier and source (poll: the carrier's error for one shipment, a SOAP fault about one parcel; push: a shipment of a signed push that could not be read)",
      labelNames: ['carrier', 'source'] as const,
      registers
    }),
    carrierUnreadablePushes: new Counter({
      name: 'parcelcast_carrier_unreadable_pushes_total',
      help: "Signed carrier pushes refused whole as unreadable (400: not UTF-8, nested too deep, not the carrier's format, nothing readable in it), by carrier",
      labelNames: ['carrier'] as const,
      registers
    }),
    pollDuration: new Histogram({
      name: 'parcelcast_poll_cycle_seconds',
      help: 'Poll cycle duration by carrier',
      labelNames: ['carrier'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers
    }),
    webhookMessagesCreated: new Counter({
      name: 'parcelcast_webhook_messages_created_total',
      help: "Webhook messages created by this process's transactions (one per matching endpoint and event or notification)",
      registers
    }),
    webhookAttempts: new Counter({
      name: 'parcelcast_webhook_attempts_total',
      help: 'Webhook delivery attempts, by result (delivered, retry, dead_letter) and reason (2xx, 5xx, 429, timeout, connection, refused_address, …)',
      labelNames: ['result', 'reason'] as const,
      registers
    }),
    webhookAttemptSeconds: new Histogram({
      name: 'parcelcast_webhook_attempt_seconds',
      help: 'Duration of one webhook attempt (address check, request, answer)',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers
    }),
    webhookInFlight: new Gauge({ name: 'parcelcast_webhook_in_flight', help: 'Webhook attempts running in this process', registers }),
    webhookScheduled: new Gauge({
      name: 'parcelcast_webhook_scheduled',
      help: 'Members of the webhook schedule in the engine, as of the last rebuild',
      registers
    }),
    webhookPending: new Gauge({
      name: 'parcelcast_webhook_pending',
      help: 'Webhook messages waiting to be delivered (PostgreSQL), as of the last check',
      registers
    }),
    webhookDeadLetterQueue: new Gauge({
      name: 'parcelcast_webhook_dead_letters',
      help: 'Webhook messages in the dead-letter queue (PostgreSQL), as of the last check',
      registers
    }),
    webhookDeadLetters: new Counter({
      name: 'parcelcast_webhook_dead_lettered_total',
      help: 'Webhook messages this process moved to the dead-letter queue',
      registers
    }),
    webhookEndpointsDisabled: new Counter({
      name: 'parcelcast_webhook_endpoints_disabled_total',
      help: 'Webhook endpoints this process disabled, by why (failures, gone)',
      labelNames: ['by'] as const,
      registers
    }),
    httpRequests: new Histogram({
      name: 'parcelcast_http_request_seconds',
      help: 'HTTP request duration',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers
    })
  }
}

export type Metrics = ReturnType<typeof createMetrics>
