/**
 * The baseline for `bench:e2e`: a bare Bun topic server, no database, no Redis.
 * `{"op":"subscribe","topic"}` subscribes; `POST /publish` takes the body of `POST /v1/events`
 * and publishes each event to its topic in a frame of parcelcast's shape and size (the event
 * with seq, dedupKey and receivedAt, and the shipment's projection), so that the two servers
 * send, and the load generator parses, the same bytes.
 */
interface Input {
  carrier: string
  trackingNumber: string
  carrierStatus: string
  status: string
  occurredAt: string
  description: string
}

const seqs = new Map<string, number>()
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  async fetch(req, s) {
    const url = new URL(req.url)
    if (url.pathname === '/ws') return s.upgrade(req) ? undefined : new Response('upgrade expected', { status: 400 })
    if (url.pathname === '/publish') {
      const { events } = (await req.json()) as { events: Input[] }
      const receivedAt = new Date().toISOString()
      for (const e of events) {
        const topic = `shipment:${e.carrier}:${e.trackingNumber}`
        const seq = (seqs.get(topic) ?? 0) + 1
        seqs.set(topic, seq)
        const event = { seq, dedupKey: `${e.carrier}:${e.trackingNumber}:${e.carrierStatus}:${e.occurredAt}`, ...e, location: null, receivedAt }
        s.publish(
          topic,
          JSON.stringify({ type: 'event', topic, seq, event, shipment: { status: e.status, carrierStatus: e.carrierStatus, lastEventAt: e.occurredAt } })
        )
      }
      return new Response('ok')
    }
    return new Response('not found', { status: 404 })
  },
  websocket: {
    message(ws, m) {
      const { topic } = JSON.parse(String(m))
      ws.subscribe(topic)
      ws.send('{"type":"subscribed"}')
    }
  }
})
console.log(JSON.stringify({ port: server.port }))
