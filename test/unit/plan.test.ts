import { describe, expect, test } from 'bun:test'
import { toNormalizedEvent, type NormalizedEvent } from '../../src/pipeline/event.ts'
import { plan, type LockedShipment } from '../../src/pipeline/ingest-query.ts'

const ship = (id: string, tn: string, over: Partial<LockedShipment> = {}): LockedShipment => ({
  id,
  carrier: 'dhl',
  tracking_number: tn,
  last_seq: 0,
  status: 'pending',
  carrier_status: null,
  last_event_at: null,
  ...over
})
const ev = (tn: string, carrierStatus: string, occurredAt: string, status?: string): NormalizedEvent => {
  const c = toNormalizedEvent({ carrier: 'dhl', trackingNumber: tn, carrierStatus, occurredAt, status })
  if (!c.ok) throw new Error(c.message)
  return c.event
}
const batch = (...events: NormalizedEvent[]) => events.map((event, ord) => ({ ord, event }))

describe('plan', () => {
  test('numbers new events after last_seq, per shipment, in input order', () => {
    const { planned } = plan(
      batch(ev('A', 's1', '2026-01-01T00:00:00Z'), ev('B', 's1', '2026-01-01T00:00:00Z'), ev('A', 's2', '2026-01-01T01:00:00Z')),
      [ship('a', 'A', { last_seq: 7 }), ship('b', 'B')],
      new Map()
    )
    expect(planned.map((p) => [p.outcome, p.shipmentId, p.seq])).toEqual([
      ['inserted', 'a', 8],
      ['inserted', 'b', 1],
      ['inserted', 'a', 9]
    ])
  })

  test('stored keys and keys repeated in the batch are duplicates with the stored seq', () => {
    const e = ev('A', 's1', '2026-01-01T00:00:00Z')
    const { planned } = plan(
      batch(e, ev('A', 's2', '2026-01-01T00:00:01Z'), ev('A', 's2', '2026-01-01T00:00:01Z')),
      [ship('a', 'A', { last_seq: 3 })],
      new Map([[e.dedupKey, 2]])
    )
    expect(planned.map((p) => [p.outcome, p.seq])).toEqual([
      ['duplicate', 2],
      ['inserted', 4],
      ['duplicate', 4]
    ])
  })

  test('events for shipments that were not locked are unknown', () => {
    const { planned } = plan(batch(ev('Z', 's', '2026-01-01T00:00:00Z')), [], new Map())
    expect(planned[0]).toMatchObject({ outcome: 'unknown_shipment', seq: null, shipmentId: null })
  })

  test('the projection moves only to a strictly newer carrier time, event by event', () => {
    const { planned, shipments } = plan(
      batch(
        ev('A', 'old', '2026-01-01T00:00:00Z', 'in_transit'),
        ev('A', 'new', '2026-01-03T00:00:00Z', 'delivered'),
        ev('A', 'same-instant', '2026-01-03T00:00:00Z', 'exception'),
        ev('A', 'between', '2026-01-02T00:00:00Z', 'out_for_delivery')
      ),
      [ship('a', 'A', { last_seq: 1, status: 'in_transit', carrier_status: 'x', last_event_at: '2026-01-01T12:00:00.000Z' })],
      new Map()
    )
    expect(planned.map((p) => p.projectionUpdated)).toEqual([false, true, false, false])
    expect(planned.map((p) => p.projection!.status)).toEqual(['in_transit', 'delivered', 'delivered', 'delivered'])
    expect(shipments.get('a')).toMatchObject({
      lastSeq: 5,
      moved: true,
      projection: { status: 'delivered', carrierStatus: 'new', lastEventAt: '2026-01-03T00:00:00.000Z' }
    })
  })

  test('statusChange: set exactly when an inserted event moves the projection to another status', () => {
    const e1 = ev('A', 'a1', '2026-01-02T00:00:00Z', 'in_transit')
    const { planned } = plan(
      batch(
        e1,
        ev('A', 'a2', '2026-01-03T00:00:00Z', 'in_transit'),
        ev('A', 'a3', '2026-01-01T00:00:00Z', 'delivered'),
        ev('A', 'a4', '2026-01-04T00:00:00Z', 'out_for_delivery'),
        e1,
        ev('A', 'a5', '2026-01-05T00:00:00Z', 'delivered')
      ),
      [ship('a', 'A')],
      new Map()
    )
    expect(planned.map((p) => p.statusChange)).toEqual([
      { from: 'pending', to: 'in_transit' },
      null,
      null,
      { from: 'in_transit', to: 'out_for_delivery' },
      null,
      { from: 'out_for_delivery', to: 'delivered' }
    ])
  })

  test('each inserted event says whether it changed the projected status, from what to what (contract §8)', () => {
    const stored = ev('A', 'stored', '2026-01-01T06:00:00Z', 'info_received')
    const { planned } = plan(
      batch(
        ev('A', 'pickup', '2026-01-01T08:00:00Z', 'in_transit'),
        ev('A', 'hub', '2026-01-01T09:00:00Z', 'in_transit'), // newer, same status
        ev('A', 'late', '2026-01-01T07:00:00Z', 'exception'), // older: the projection stays
        ev('A', 'pickup', '2026-01-01T08:00:00Z', 'in_transit'), // repeated in the batch
        stored, // stored before
        ev('A', 'out', '2026-01-01T10:00:00Z', 'out_for_delivery'),
        ev('A', 'done', '2026-01-01T12:00:00Z', 'delivered'),
        ev('B', 'first', '2026-01-01T08:00:00Z', 'info_received'),
        ev('Z', 'unknown', '2026-01-01T08:00:00Z', 'delivered')
      ),
      [ship('a', 'A', { last_seq: 1, status: 'info_received', last_event_at: '2026-01-01T06:00:00.000Z' }), ship('b', 'B')],
      new Map([[stored.dedupKey, 1]])
    )
    expect(planned.map((p) => p.statusChange)).toEqual([
      { from: 'info_received', to: 'in_transit' },
      null,
      null,
      null,
      null,
      { from: 'in_transit', to: 'out_for_delivery' },
      { from: 'out_for_delivery', to: 'delivered' },
      { from: 'pending', to: 'info_received' },
      null
    ])
  })
})
