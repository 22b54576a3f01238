/**
 * Shipment topics, `shipment:<carrier>:<trackingNumber>`: the snapshot is the shipment (with
 * `lastSeq`) and, with `since`, its events after it; events are `{"type":"event",…}` frames
 * carrying the event and the shipment's projection right after it. A recipient's token (a
 * tracking link, tokens.ts) is shown the shipment's public fields only, and no deleted shipment.
 */
import type { DeliveryQueries } from './queries.ts'
import { seqFrame, type TopicKind } from './topic-kind.ts'

/** Events a snapshot lists at most; the rest follow as event frames. */
export const SNAPSHOT_EVENT_LIMIT = 1000

export function createShipmentKind(queries: DeliveryQueries): TopicKind<string> {
  const frame = (topic: string, seq: number, data: string) => seqFrame('event', topic, seq, data)
  return {
    name: 'shipment',
    async snapshot(topic, since, view) {
      if (topic.kind !== 'shipment') throw new Error(`${topic.name} is not a shipment topic`)
      const shipment = await queries.shipment(topic.carrier, topic.trackingNumber)
      if (!shipment || (view === 'recipient' && shipment.deletedAt)) return null
      let lastSeq = shipment.lastSeq
      let events: unknown[] = []
      if (since !== undefined && since < shipment.lastSeq) {
        // The snapshot lists the events; the shipment it carries is the current one.
        const rows = await queries.payloads(shipment.id, since, shipment.lastSeq, SNAPSHOT_EVENT_LIMIT)
        events = rows
        // A bounded snapshot: what did not fit follows as event frames.
        lastSeq = rows.at(-1)?.seq ?? since
      }
      const shown =
        view === 'recipient'
          ? {
              carrier: shipment.carrier,
              trackingNumber: shipment.trackingNumber,
              status: shipment.status,
              carrierStatus: shipment.carrierStatus,
              lastEventAt: shipment.lastEventAt,
              expectedDelivery: shipment.expectedDelivery
            }
          : shipment
      return { ref: shipment.id, lastSeq, body: { shipment: { ...shown, lastSeq }, events } }
    },
    notFound: (topic) => (topic.kind === 'shipment' ? `no shipment ${topic.carrier} ${topic.trackingNumber}` : `no ${topic.name}`),
    async fetch(topic, shipmentId, after, upto, limit) {
      const rows = await queries.events(shipmentId, topic, after, upto, limit)
      return rows.map((m) => ({ seq: m.seq, frame: frame(topic, m.seq, JSON.stringify({ event: m.event, shipment: m.shipment })) }))
    },
    lastSeqs(topics) {
      // Normalized names: shipment:<carrier>:<trackingNumber>, neither part holding a ':'.
      return queries.lastSeqs(topics.map((t) => t.split(':').slice(1) as [string, string]))
    },
    frame,
    check: (seq, data) => {
      const d = data as { event?: { seq?: unknown }; shipment?: unknown }
      return d.event?.seq === seq && typeof d.shipment === 'object' && d.shipment !== null
    }
  }
}
