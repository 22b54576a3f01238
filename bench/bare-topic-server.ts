/**
 * The baseline for `bench:e2e`: a bare Bun topic server, no database, no Redis.
 * `{"op":"subscribe","topic"}` subscribes; `POST /publish {topic, marker}` publishes one frame,
 * `POST /publish {events: [{topic, marker}, ...]}` one per entry.
 */
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  async fetch(req, s) {
    const url = new URL(req.url)
    if (url.pathname === '/ws') return s.upgrade(req) ? undefined : new Response('upgrade expected', { status: 400 })
    if (url.pathname === '/publish') {
      type Entry = { topic: string; marker: string }
      const body = (await req.json()) as Entry | { events: Entry[] }
      for (const { topic, marker } of 'events' in body ? body.events : [body]) s.publish(topic, JSON.stringify({ type: 'bare', topic, marker }))
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
