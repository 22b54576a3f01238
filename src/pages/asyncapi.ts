/**
 * The AsyncAPI 3.0 document of the WebSocket protocol (contract §5 and §8): one channel,
 * `GET /v1/ws?token=`, the frames a client sends (subscribe, unsubscribe, ack, ping) and those
 * it receives (snapshot, event, notification, acked, error, pong), as src/delivery writes them.
 */
import { WS_PATH } from '../http/server.ts'
import { int, obj, ref, schemas, str, type Schema } from './schemas.ts'

const topic = str('shipment:<carrier>:<trackingNumber> or user:<userId>')
const seq = { type: 'integer', minimum: 1 }

const messages: Record<string, { summary: string; payload: Schema }> = {
  subscribe: {
    summary: 'Subscribe to a topic the token grants; with since, every event after that seq is sent (resume)',
    payload: obj({ op: { const: 'subscribe' }, topic, since: { type: 'integer', minimum: 0, description: 'the last seq the client already has' } }, [
      'op',
      'topic'
    ])
  },
  unsubscribe: { summary: 'Stop receiving a topic', payload: obj({ op: { const: 'unsubscribe' }, topic }) },
  ack: {
    summary: 'Mark notifications of a user topic read: every one up to seq, or those ids',
    payload: obj({ op: { const: 'ack' }, topic: str('user:<userId>'), seq: int(), ids: { type: 'array', items: str() } }, ['op', 'topic'])
  },
  ping: { summary: 'Keep-alive; answered with pong', payload: obj({ op: { const: 'ping' } }) },
  snapshot: {
    summary:
      'The state at subscribe time: a shipment (with lastSeq and, with since, its events after since) or a user (with unread notifications or, with since, those after it)',
    payload: {
      oneOf: [
        obj({ type: { const: 'snapshot' }, topic, shipment: ref('SnapshotShipment'), events: { type: 'array', items: ref('TimelineEvent') } }),
        obj(
          {
            type: { const: 'snapshot' },
            topic,
            user: obj({ userId: str(), lastSeq: int(), unread: int() }),
            notifications: { type: 'array', items: ref('Notification') },
            truncated: { type: 'boolean', description: 'present when notifications after since were deleted by retention' }
          },
          ['type', 'topic', 'user', 'notifications']
        )
      ]
    }
  },
  event: {
    summary: "A new tracking event of a shipment topic: exactly once, in seq order, right after the snapshot's lastSeq",
    payload: obj({ type: { const: 'event' }, topic, seq, event: ref('TimelineEvent'), shipment: ref('Projection') })
  },
  notification: {
    summary: 'A new notification of a user topic: exactly once, in seq order',
    payload: obj({ type: { const: 'notification' }, topic, seq, notification: ref('Notification') })
  },
  acked: {
    summary: 'The answer to ack',
    payload: obj({ type: { const: 'acked' }, topic, upToSeq: int(), ids: { type: 'array', items: str() }, unread: int() }, ['type', 'topic', 'unread'])
  },
  error: {
    summary: 'A refused frame or subscription (the socket stays open), or the reason it is closed (token_invalid, token_expired: close code 4401)',
    payload: obj(
      {
        type: { const: 'error' },
        code: {
          type: 'string',
          examples: [
            'forbidden_topic',
            'not_found',
            'bad_message',
            'token_expired',
            'token_invalid',
            'already_subscribed',
            'not_subscribed',
            'too_many_topics',
            'unavailable'
          ]
        },
        message: str(),
        topic
      },
      ['type', 'code', 'message']
    )
  },
  pong: { summary: 'The answer to ping', payload: obj({ type: { const: 'pong' } }) }
}

const SENT = ['subscribe', 'unsubscribe', 'ack', 'ping']
const RECEIVED = ['snapshot', 'event', 'notification', 'acked', 'error', 'pong']

export function asyncApiDocument(): Record<string, unknown> {
  const channelRef = { $ref: '#/channels/socket' }
  const msgRef = (name: string) => ({ $ref: `#/channels/socket/messages/${name}` })
  const operation = (action: 'send' | 'receive', name: string) => ({ action, channel: channelRef, summary: messages[name]!.summary, messages: [msgRef(name)] })
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'parcelcast WebSocket protocol',
      version: '0.1.0',
      description:
        'Text frames, one JSON object each. Per topic, a connection receives every event (or notification) exactly once and in seq order after the snapshot; a reconnecting client subscribes with since=<last seq it has> and misses nothing. See CONTRACT.md §5 and §8.'
    },
    defaultContentType: 'application/json',
    servers: {
      parcelcast: {
        host: 'localhost:3000',
        protocol: 'ws',
        description: 'this server: use its own host and port (wss behind TLS)',
        security: [{ $ref: '#/components/securitySchemes/token' }]
      }
    },
    channels: {
      socket: {
        address: WS_PATH,
        title: 'The WebSocket',
        messages: Object.fromEntries(Object.keys(messages).map((name) => [name, { $ref: `#/components/messages/${name}` }])),
        bindings: { ws: { method: 'GET', query: obj({ token: str('a token from POST /v1/tokens or a tracking link') }) } }
      }
    },
    operations: Object.fromEntries([
      ...SENT.map((name) => [`send${cap(name)}`, operation('send', name)]),
      ...RECEIVED.map((name) => [`receive${cap(name)}`, operation('receive', name)])
    ]),
    components: {
      messages: Object.fromEntries(Object.entries(messages).map(([name, m]) => [name, { name, summary: m.summary, payload: m.payload }])),
      schemas: {
        SnapshotShipment: schemas.SnapshotShipment,
        TimelineEvent: schemas.TimelineEvent,
        Projection: schemas.Projection,
        Notification: schemas.Notification,
        Status: schemas.Status,
        ExpectedDelivery: schemas.ExpectedDelivery
      },
      securitySchemes: {
        token: {
          type: 'httpApiKey',
          name: 'token',
          in: 'query',
          description: 'a signed, short-lived, topic-scoped token (POST /v1/tokens); it lets its holder subscribe to its topics and nothing else'
        }
      }
    }
  }
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1)
