/**
 * WebSocket topics: `shipment:<carrier>:<trackingNumber>` (normalized like everywhere else),
 * `shipment:*` (every shipment, for dashboards; only in tokens) and `user:<userId>`.
 */
import { USER_ID_RE } from '../notifications/model.ts'
import { IdentityError, normalizeCarrier, normalizeTrackingNumber } from '../pipeline/identity.ts'

export type Topic =
  | { kind: 'shipment'; carrier: string; trackingNumber: string; name: string }
  | { kind: 'user'; userId: string; name: string }
  | { kind: 'all_shipments'; name: 'shipment:*' }

/** Parses and normalizes a topic name; throws IdentityError with field `topic` when it is not one. */
export function parseTopic(input: string, { wildcard = false } = {}): Topic {
  const raw = input.trim()
  if (wildcard && raw === 'shipment:*') return { kind: 'all_shipments', name: 'shipment:*' }
  const shipment = /^shipment:([^:]+):([^:]+)$/.exec(raw)
  if (shipment) {
    try {
      const carrier = normalizeCarrier(shipment[1]!)
      const trackingNumber = normalizeTrackingNumber(shipment[2]!)
      return { kind: 'shipment', carrier, trackingNumber, name: `shipment:${carrier}:${trackingNumber}` }
    } catch (err) {
      if (err instanceof IdentityError) throw new IdentityError('topic', `"${input}": ${err.message}`)
      throw err
    }
  }
  // The userId is everything after the first ':' (it may hold ':' itself).
  const user = /^user:(.+)$/.exec(raw)
  if (user && USER_ID_RE.test(user[1]!)) return { kind: 'user', userId: user[1]!, name: raw }
  throw new IdentityError('topic', `"${input}" is not a topic: use shipment:<carrier>:<trackingNumber>${wildcard ? ', shipment:*' : ''} or user:<userId>`)
}

/** Whether a token's topic list lets its holder subscribe to `topic` (already normalized). */
export function topicAllowed(granted: readonly string[], topic: Topic): boolean {
  return granted.includes(topic.name) || (topic.kind === 'shipment' && granted.includes('shipment:*'))
}
