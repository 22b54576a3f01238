/**
 * JSON Schemas (2020-12, as OpenAPI 3.1 and AsyncAPI 3 take them) of what parcelcast answers:
 * the shapes of src/shipments/store.ts, src/delivery and src/webhooks, written down once for
 * both documents. Objects stay open (no additionalProperties: false): a field may be added.
 */
import { STATUSES } from '../pipeline/identity.ts'

type Schema = Record<string, unknown>

const str = (description?: string): Schema => ({ type: 'string', ...(description ? { description } : {}) })
const nullable = (s: Schema): Schema => ({ anyOf: [s, { type: 'null' }] })
const instant: Schema = { type: 'string', format: 'date-time', description: 'UTC ISO-8601 (…Z)' }
const int = (description?: string): Schema => ({ type: 'integer', minimum: 0, ...(description ? { description } : {}) })
const obj = (properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema => ({ type: 'object', properties, required })
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` })
const listOf = (item: Schema, cursor = 'nextCursor'): Schema => obj({ items: { type: 'array', items: item }, [cursor]: nullable(str()) })

const shipmentFields: Record<string, Schema> = {
  id: { type: 'string', format: 'uuid' },
  carrier: str(),
  trackingNumber: str(),
  reference: nullable(str()),
  status: ref('Status'),
  carrierStatus: nullable(str()),
  lastEventAt: nullable(instant),
  lastSeq: int('the seq of its newest event; 0 before the first'),
  createdAt: instant,
  updatedAt: instant,
  deletedAt: nullable(instant),
  expectedDelivery: ref('ExpectedDelivery'),
  lastPollError: nullable(obj({ at: instant, message: str() }))
}
const { updatedAt: _, ...snapshotFields } = shipmentFields
/** What a tracking link's token (the recipient's view) is shown of its shipment. */
const { carrier, trackingNumber, status, carrierStatus, lastEventAt, lastSeq, expectedDelivery } = shipmentFields
const recipientFields = { carrier, trackingNumber, status, carrierStatus, lastEventAt, lastSeq, expectedDelivery } as Record<string, Schema>

export const schemas: Record<string, Schema> = {
  Error: obj({
    error: obj(
      {
        code: str('stable, machine-readable: validation_failed, not_found, unauthorized, …'),
        message: str('what went wrong and what to do'),
        field: str('the input that is wrong, when one is')
      },
      ['code', 'message']
    )
  }),
  Status: { type: 'string', enum: STATUSES },
  /** An event as POST /v1/events takes it. Each is validated on its own: a bad one is an `invalid` outcome, not a 400 for the batch. */
  EventInput: obj(
    {
      carrier: str('a known carrier code (GET /v1/carriers)'),
      trackingNumber: str('spaces removed and upper-cased; 1-64 of A-Z, 0-9, ".", "_", "-", at least one letter or digit'),
      carrierStatus: str("the carrier's own status code or text"),
      status: ref('Status'),
      occurredAt: str('ISO-8601 with Z, ±HH:MM, ±HHMM or ±HH; without an offset read as UTC'),
      location: nullable(str()),
      description: nullable(str())
    },
    ['carrier', 'trackingNumber', 'carrierStatus', 'occurredAt']
  ),
  ExpectedDelivery: nullable(obj({ from: nullable(instant), to: nullable(instant) })),
  Shipment: obj(shipmentFields),
  /** The shipment of a WebSocket snapshot: the REST one without updatedAt, or for a tracking link's token its public fields only. */
  SnapshotShipment: {
    anyOf: [
      { ...obj(snapshotFields), title: 'full view', description: 'the REST shipment without updatedAt (tokens of POST /v1/tokens)' },
      { ...obj(recipientFields), title: 'recipient view', description: "a tracking link's token: the parcel's public fields, no reference, id or poll error" }
    ]
  },
  TimelineEvent: obj({
    seq: { type: 'integer', minimum: 1 },
    dedupKey: str(),
    carrierStatus: str(),
    status: ref('Status'),
    occurredAt: instant,
    location: nullable(str()),
    description: nullable(str()),
    receivedAt: instant
  }),
  Projection: obj({ status: ref('Status'), carrierStatus: nullable(str()), lastEventAt: nullable(instant), expectedDelivery: ref('ExpectedDelivery') }, [
    'status',
    'carrierStatus',
    'lastEventAt'
  ]),
  EventResult: obj(
    {
      dedupKey: nullable(str()),
      outcome: { type: 'string', enum: ['inserted', 'duplicate', 'unknown_shipment', 'invalid'] },
      seq: { type: 'integer' },
      projectionUpdated: { type: 'boolean' },
      published: { type: 'boolean' },
      error: obj({ field: str(), message: str() })
    },
    ['dedupKey', 'outcome', 'projectionUpdated', 'published']
  ),
  Carrier: obj({ code: str(), name: str(), form: str(), polling: { type: 'boolean' }, health: str('"ok" or "failing: <why>"') }),
  Token: obj({ token: str('a signed JWT for GET /v1/ws?token='), expiresAt: instant, sub: nullable(str()), topics: { type: 'array', items: str() } }),
  TrackingLink: obj({
    url: str('/t/<trackingNumber>?token=<token>, relative to this server'),
    token: str("a WebSocket token granting this shipment's topic only"),
    expiresAt: instant
  }),
  Notification: obj(
    {
      id: str(),
      userId: str(),
      seq: { type: 'integer', minimum: 1 },
      type: str(),
      title: nullable(str()),
      body: nullable(str()),
      data: nullable({ type: 'object' }),
      shipmentId: nullable(str()),
      createdAt: instant,
      deliveredAt: nullable(instant),
      readAt: nullable(instant)
    },
    ['id', 'userId', 'seq', 'type', 'createdAt']
  ),
  Presence: obj({ userId: str(), online: { type: 'boolean' }, connections: int(), lastSeenAt: nullable(instant) }),
  Watcher: obj({ shipmentId: str(), userId: str(), createdAt: instant }),
  WebhookEndpoint: obj(
    {
      id: str(),
      url: { type: 'string', format: 'uri' },
      eventTypes: { type: 'array', items: { type: 'string', enum: ['shipment.event', 'shipment.status_changed', 'notification.created'] } },
      userIds: nullable({ type: 'array', items: str() }),
      description: nullable(str()),
      enabled: { type: 'boolean' },
      disabledReason: nullable(str()),
      failingSince: nullable(instant),
      createdAt: instant,
      updatedAt: instant,
      secret: str('whsec_…: in the answers of create and rotate-secret only')
    },
    ['id', 'url', 'eventTypes', 'userIds', 'enabled', 'createdAt']
  ),
  WebhookMessage: obj(
    {
      id: str('also its webhook-id'),
      endpointId: str(),
      type: str(),
      state: { type: 'string', enum: ['pending', 'delivered', 'failed'] },
      attempts: { type: 'array', items: obj({ at: instant, status: nullable({ type: 'integer' }), error: nullable(str()), ms: int() }, ['at', 'ms']) },
      nextAttemptAt: nullable(instant),
      deliveredAt: nullable(instant)
    },
    ['id', 'endpointId', 'type', 'state']
  ),
  Readiness: obj(
    {
      status: { type: 'string', enum: ['ready', 'degraded', 'not_ready'] },
      db: { type: 'string', enum: ['up', 'down'] },
      ingest: { type: 'string', enum: ['up', 'down'] },
      database: str('embedded or external'),
      redis: { type: 'string', enum: ['up', 'down', 'not_used'] },
      engine: { type: 'string', enum: ['redis', 'memory'] },
      broadcaster: nullable({ type: 'object' }),
      notificationWorkers: nullable({ type: 'object' }),
      carriers: { type: 'object', additionalProperties: str('"ok" or "failing: <why>"') },
      webhooks: nullable(
        obj({
          status: str(),
          deadLetters: int(),
          deadLettersLastHour: int(),
          pending: int(),
          disabledEndpoints: { type: 'array', items: obj({ id: str(), reason: nullable(str()) }) }
        })
      )
    },
    ['status', 'db', 'redis', 'engine', 'carriers']
  )
}

export { ref, obj, str, nullable, instant, listOf, int }
export type { Schema }
