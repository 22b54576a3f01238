/**
 * A webhook receiver for tests: a real Bun HTTP server that records every request (headers,
 * exact body, arrival time) and answers with what the test's `answer` function says — a status,
 * headers, or a delay first (to hold a request open, or outlast the sender's timeout).
 */
export interface Received {
  path: string
  headers: Record<string, string>
  body: string
  at: number
  id: string
}

export interface Answer {
  status?: number
  headers?: Record<string, string>
  delayMs?: number
}

export function receiver(answer: (r: Received, nth: number) => Answer | Promise<Answer> = () => ({ status: 200 })) {
  const received: Received[] = []
  let inFlight = 0
  let maxInFlight = 0
  let handler = answer
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      const r: Received = {
        path: new URL(req.url).pathname,
        headers: Object.fromEntries(req.headers),
        body: await req.text(),
        at: Date.now(),
        id: req.headers.get('webhook-id') ?? ''
      }
      received.push(r)
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      try {
        const a = await handler(r, received.filter((x) => x.id === r.id).length)
        if (a.delayMs) await Bun.sleep(a.delayMs)
        return new Response('ok', { status: a.status ?? 200, headers: a.headers })
      } finally {
        inFlight--
      }
    }
  })
  return {
    url: (path = '/hook') => `http://127.0.0.1:${server.port}${path}`,
    received,
    get maxInFlight() {
      return maxInFlight
    },
    answer(f: typeof answer) {
      handler = f
    },
    stop: () => server.stop(true)
  }
}
