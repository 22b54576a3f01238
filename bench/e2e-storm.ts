/**
 * The reconnect storm of `bench:e2e`, run as its own process: `subscribers` sockets, each with a
 * token of its own (as browsers have), opened all at once, each subscribing to its own shipment.
 * It mints the tokens first (200 requests at a time), prints `{"ready":n}`, waits for a line
 * `go` on stdin, then opens every socket in one pass and prints the time until the last one had
 * its snapshot (or, on the bare Bun server, its `subscribed` answer). Bounded: 30 s at most.
 *
 *   bun bench/e2e-storm.ts '{"base":"http://127.0.0.1:3000","apiKey":"…","carrier":"dhl","trackingNumbers":[…]}'
 */
export {}

interface Spec {
  base: string
  bare?: boolean
  apiKey: string
  carrier: string
  trackingNumbers: string[] // one socket each
}

const spec = JSON.parse(process.argv[2]!) as Spec
const topics = spec.trackingNumbers.map((tn) => `shipment:${spec.carrier}:${tn}`)
const tokens: string[] = []
if (!spec.bare) {
  for (let i = 0; i < topics.length; i += 200) {
    tokens.push(
      ...(await Promise.all(
        topics.slice(i, i + 200).map(async (topic) => {
          const r = await fetch(`${spec.base}/v1/tokens`, {
            method: 'POST',
            headers: { authorization: `Bearer ${spec.apiKey}`, 'content-type': 'application/json' },
            body: JSON.stringify({ topics: [topic], ttlSeconds: 3600 })
          })
          if (!r.ok) throw new Error(`token: HTTP ${r.status}`)
          return ((await r.json()) as { token: string }).token
        })
      ))
    )
  }
}
process.stdout.write(JSON.stringify({ ready: topics.length }) + '\n')
for await (const line of console) if (line.trim() === 'go') break

const wsBase = spec.base.replace('http', 'ws')
const sockets: WebSocket[] = []
const start = performance.now()
let done = 0
await new Promise<void>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`storm: ${done} of ${topics.length} sockets subscribed in 30 s`)), 30_000)
  topics.forEach((topic, i) => {
    const ws = new WebSocket(spec.bare ? `${wsBase}/ws` : `${wsBase}/v1/ws?token=${tokens[i]}`)
    sockets.push(ws)
    ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', topic }))
    ws.onmessage = (e) => {
      const text = String(e.data)
      if (!text.startsWith('{"type":"snapshot"') && text !== '{"type":"subscribed"}') return reject(new Error(`storm: unexpected frame ${text.slice(0, 200)}`))
      ws.onmessage = null
      if (++done === topics.length) {
        clearTimeout(timer)
        resolve()
      }
    }
    ws.onerror = () => reject(new Error('storm: socket error'))
  })
})
process.stdout.write(JSON.stringify({ sockets: done, allSubscribedMs: performance.now() - start }) + '\n')
for (const ws of sockets) ws.close()
process.exit(0)
