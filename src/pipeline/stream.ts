/**
 * The stream side of the outbox: one entry per committed event on `tracking:events`, through the
 * delivery engine (one EVAL per batch with Redis).
 *
 * Guarantees: `append` resolves with the events the engine took, a prefix of those given, in
 * order; it never throws and never waits longer than the engine's command timeout, so a Redis
 * outage costs an ingest request at most that long. Entries may reach the stream more than once
 * (inline publish racing the relay); consumers dedupe by (topic, seq).
 *
 * An entry's fields: `topic`, `seq`, `data` (JSON `{event, shipment}`: the frame body) — what
 * every kind of topic's entries carry — and `shipmentId`. `data` is encoded once, when the
 * message is made (`shipmentMessage`): the stream entry and this process's own sockets (the local
 * hand-off) share that string.
 */
import type { Engine } from '../engine/engine.ts'
import type { NormalizedEvent } from './event.ts'

export const STREAM = 'tracking:events'

export interface StreamMessage {
  topic: string
  shipmentId: string
  seq: number
  /** The frame body, `{event, shipment}`, as JSON. */
  data: string
}

/** The shipment's projection right after an event. */
export interface ShipmentProjection {
  status: string
  carrierStatus: string | null
  lastEventAt: string | null
  expectedDelivery?: { from: string | null; to: string | null } | null
}

export interface EventPayload {
  seq: number
  dedupKey: string
  carrier: string
  trackingNumber: string
  carrierStatus: string
  status: string
  occurredAt: string
  location: string | null
  description: string | null
  receivedAt: string
}

/** A stored event as frames, the stream and notifications carry it: its seq and when it was received. */
export const eventPayload = (e: NormalizedEvent, seq: number, receivedAt: string): EventPayload => ({
  seq,
  dedupKey: e.dedupKey,
  carrier: e.carrier,
  trackingNumber: e.trackingNumber,
  carrierStatus: e.carrierStatus,
  status: e.status,
  occurredAt: e.occurredAt,
  location: e.location,
  description: e.description,
  receivedAt
})

export const shipmentTopic = (carrier: string, trackingNumber: string) => `shipment:${carrier}:${trackingNumber}`

/** A shipment event's message, its frame body encoded here, once. */
export function shipmentMessage(shipmentId: string, event: EventPayload, shipment: ShipmentProjection): StreamMessage {
  return { topic: shipmentTopic(event.carrier, event.trackingNumber), shipmentId, seq: event.seq, data: JSON.stringify({ event, shipment }) }
}

export interface StreamWriter {
  append(messages: StreamMessage[]): Promise<StreamMessage[]>
}

export function createStreamWriter({ engine, maxLen }: { engine: Engine; maxLen: number }): StreamWriter {
  return {
    async append(messages) {
      // Down: nothing to encode (the events stay in the outbox).
      if (messages.length === 0 || !engine.isReady) return []
      const entries = messages.map((m) => ({ topic: m.topic, shipmentId: m.shipmentId, seq: String(m.seq), data: m.data }))
      const n = await engine.append(STREAM, entries, { maxLen })
      return n === messages.length ? messages : messages.slice(0, n)
    }
  }
}
