/**
 * The HTTP edge over the wire (raw TCP, not `app.handle`): no request line or Host header
 * reaches a protected route without a key; short Host names route with one; malformed lines,
 * hosts and headers are 4xx, never a 5xx or a development page; the body limit answers a JSON
 * 413 on every route, by Content-Length or chunked; an unexpected error is a JSON 500 with a
 * request id whose stack is in the log.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import fc from 'fast-check'
import { listen } from '../../src/http/server.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { rawRequest, requestText, type RawResponse } from '../support/raw-http.ts'
import { API_KEY, capturingLog, testService } from '../support/service.ts'

setDefaultTimeout(60_000)

const LIMIT = 4096
let db: TestDb
let service: ReturnType<typeof testService>
let port: number
const captured = capturingLog()

beforeAll(async () => {
  db = await createTestDb()
  service = testService({ DATABASE_URL: db.url, BODY_LIMIT_BYTES: String(LIMIT), POLL_ENABLED: 'false' }, { log: captured.log })
  await service.start()
  port = service.port
  await db.sql`insert into shipments (carrier, tracking_number) values ('dhl', 'SECRET1')`
})
afterAll(async () => {
  await service.stop()
  await db.drop()
})

/** Sends `n` requests at most `width` at a time. */
async function all<T, R>(items: T[], width: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++
        out[i] = await f(items[i]!)
      }
    })
  )
  return out
}

function send(method: string, target: string, host: string | null, headers: [string, string][] = [], body = ''): Promise<RawResponse> {
  const version = host === null ? 'HTTP/1.0' : 'HTTP/1.1'
  const h: [string, string][] = host === null ? [] : [['Host', host]]
  if (body) h.push(['Content-Type', 'application/json'], ['Content-Length', String(Buffer.byteLength(body))])
  return rawRequest(port, requestText(`${method} ${target} ${version}`, [...h, ...headers, ['Connection', 'close']], body))
}

/** The dashboard: public, and a page with no data in it (the data needs the key, in the browser). */
const isPublicPage = (res: RawResponse) =>
  res.status === 200 &&
  res.headers['content-type']?.startsWith('text/html') &&
  res.headers['content-security-policy']?.startsWith("default-src 'self'") &&
  res.body.includes('id="api-key"')

const shortHosts = ['x', 'ab', 'abc', 'abcd', 'x:1', 'ab:80']
const badHosts = ['', 'a#b', 'a/b', 'a?b', 'a@b', 'http://evil/', 'x, y', 'x:99999', '[::1', 'a b']

describe('the API key over the wire', () => {
  test('no request line or Host header reaches a protected route without a key', async () => {
    const templates = [
      '/v1/{r}',
      '/ab/v1/{r}',
      '/a/v1/{r}',
      '/abcdefghij/v1/{r}',
      'http://x/ab/v1/{r}',
      'http://x/v1/{r}',
      'https://x/v1/{r}',
      '//v1/{r}',
      '///v1/{r}',
      '/v1//{r}',
      '/v1/{r}/',
      '/v1/./{r}',
      '/x/../v1/{r}',
      '/v1/%2e%2e/v1/{r}',
      '/%2e%2e/v1/{r}',
      '/v1%2f{r}',
      '/%2fv1%2f{r}',
      '/v1/webhooks/../{r}',
      '/v1/webhooks/%2e%2e/{r}',
      '/v1/webhooks/dhl/../../{r}',
      '/v1/webhooks/%2f..%2f{r}',
      '/v1/{r}#x',
      '/v1\\{r}',
      '/v1/ws/../{r}',
      '/v1/ws?/v1/{r}',
      '/healthz/../v1/{r}',
      '/V1/{r}',
      '/%76%31/{r}',
      '/v1/%73{r}',
      '/v1/{r}?x=/v1/webhooks/',
      '/v1/{r}%00',
      '/v1/{r};x'
    ]
    const targets = templates.flatMap((t) => ['shipments', 'events', 'tokens'].map((r) => t.replaceAll('{r}', r)))
    const hosts: (string | null)[] = [...shortHosts, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost', ...badHosts, null]
    // One body for every protected POST: a shipment to create, an event to insert, a topic to sign.
    const body = JSON.stringify({
      carrier: 'dhl',
      trackingNumber: 'HACKED1',
      topics: ['shipment:*'],
      events: [{ carrier: 'dhl', trackingNumber: 'SECRET1', carrierStatus: 'HACK', occurredAt: '2026-11-20T08:00:00Z' }]
    })
    const cases = targets.flatMap((target) => hosts.flatMap((host) => [['GET', target, host] as const, ['POST', target, host] as const]))
    const responses = await all(cases, 16, ([method, target, host]) => send(method, target, host, [], method === 'POST' ? body : ''))
    const seen = new Map<number, number>()
    responses.forEach((res, i) => {
      const [method, target, host] = cases[i]!
      seen.set(res.status, (seen.get(res.status) ?? 0) + 1)
      const what = `${method} ${target} with Host ${JSON.stringify(host)}: ${res.status} ${res.body.slice(0, 200)}`
      // 426: `/v1/ws` itself, which asks for a WebSocket upgrade (and then a token).
      expect([400, 401, 404, 405, 426], what).toContain(res.status)
      expect(res.body, what).not.toContain('SECRET1')
      if (res.status !== 404 || res.json) expect(res.json?.error?.code, what).toBeString()
    })
    // The refusals are of every kind: the key (401), the target or host (400), no such route (404).
    expect(seen.get(401)).toBeGreaterThan(100)
    expect(seen.get(400)).toBeGreaterThan(100)
    const [events] = await db.sql`select count(*)::int as n from tracking_events`
    const [hacked] = await db.sql`select count(*)::int as n from shipments where tracking_number = 'HACKED1'`
    expect([events!.n, hacked!.n]).toEqual([0, 0])
  })

  test('generated request lines and hosts: without a key never a 2xx, never a 5xx', async () => {
    const segment = fc.oneof(
      fc.constantFrom('v1', 'shipments', 'events', 'tokens', 'webhooks', 'dhl', 'ws', '..', '.', '', '%2e', '%2f', '%2e%2e', 'V1', 'healthz', 'x'),
      fc.string({ unit: fc.constantFrom(...'abv1/.%2fe;#?\\:@'.split('')), maxLength: 6 })
    )
    const target = fc
      .tuple(fc.constantFrom('', 'http://x', 'http://ab:1', '/'), fc.array(segment, { minLength: 1, maxLength: 6 }))
      .map(([prefix, segs]) => `${prefix}/${segs.join('/')}`)
    const host = fc.oneof(fc.constantFrom(...shortHosts, ...badHosts), fc.string({ unit: fc.constantFrom(...'ab1.:[]/#?@-'.split('')), maxLength: 8 }))
    const samples = fc.sample(fc.tuple(fc.constantFrom('GET', 'POST', 'DELETE'), target, host), { numRuns: 300, seed: 15 })
    const body = JSON.stringify({
      carrier: 'dhl',
      trackingNumber: 'HACKED2',
      topics: ['shipment:*'],
      events: [{ carrier: 'dhl', trackingNumber: 'SECRET1', carrierStatus: 'HACK2', occurredAt: '2026-11-20T08:00:00Z' }]
    })
    const responses = await all(samples, 16, ([m, t, h]) => send(m, t, h, [], m === 'POST' ? body : ''))
    responses.forEach((res, i) => {
      const what = `${JSON.stringify(samples[i])}: ${res.status} ${res.body.slice(0, 200)}`
      // A target that reads as `/` is the public dashboard (contract §10), which holds no data.
      if (isPublicPage(res)) return
      expect(res.status, what).toBeGreaterThanOrEqual(400)
      expect(res.status, what).toBeLessThan(500)
      expect(res.body, what).not.toContain('SECRET1')
    })
    const [events] = await db.sql`select count(*)::int as n from tracking_events`
    expect(events!.n).toBe(0)
  })

  test('short Host names, IP literals and HTTP/1.0 without Host route normally with a key', async () => {
    const hosts: (string | null)[] = [...shortHosts, 'localhost', `127.0.0.1:${port}`, `[::1]:${port}`, null]
    for (const [i, host] of hosts.entries()) {
      const what = `Host ${JSON.stringify(host)}`
      const auth: [string, string] = ['Authorization', `Bearer ${API_KEY}`]
      const list = await send('GET', '/v1/shipments?limit=200', host, [auth])
      expect(list.status, what).toBe(200)
      expect(
        list.json.items.map((s: any) => s.trackingNumber),
        what
      ).toContain('SECRET1')
      const created = await send('POST', '/v1/shipments', host, [auth], JSON.stringify({ carrier: 'dhl', trackingNumber: `SHORTHOST${i}` }))
      expect(created.status, what).toBe(201)
      expect((await send('GET', `/v1/shipments/${created.json.id}`, host, [auth])).json.trackingNumber).toBe(`SHORTHOST${i}`)
      expect((await send('GET', '/healthz', host)).json, what).toEqual({ status: 'ok' })
    }
    await db.sql`delete from shipments where tracking_number like 'SHORTHOST%'`
  })

  test('every route the app serves needs the key, but health, metrics, documents and carrier webhooks', async () => {
    const open = new Set([
      '/healthz',
      '/readyz',
      '/metrics',
      '/',
      '/docs',
      '/openapi',
      '/openapi.json',
      '/asyncapi.json',
      '/assets/:name',
      '/favicon.ico',
      '/t/:trackingNumber',
      '/v1/webhooks/:carrier'
    ])
    const routes = service.app.routes.filter((r) => !open.has(r.path))
    expect(routes.length).toBeGreaterThanOrEqual(7)
    for (const r of routes) {
      const path = r.path.replace(/:\w+/g, '00000000-0000-0000-0000-000000000000')
      const res = await send(r.method, path, 'x', [], r.method === 'GET' || r.method === 'DELETE' ? '' : '{}')
      expect(res.status, `${r.method} ${r.path}`).toBe(401)
      expect(res.json.error.code).toBe('unauthorized')
    }
  })
})

describe('malformed requests', () => {
  test('a Host that is not one host and port is a JSON 400, never a page', async () => {
    for (const host of badHosts) {
      const res = await send('GET', '/v1/shipments', host, [['Authorization', `Bearer ${API_KEY}`]])
      expect(res.status, JSON.stringify(host)).toBe(400)
      expect(res.json.error.code).toBe('invalid_host')
      expect(res.body).not.toMatch(/\/work|node_modules|\.ts:\d|at </)
    }
  })

  test('request lines and headers no parser would keep: 4xx, never a 5xx', async () => {
    const lines = [
      'GARBAGE',
      'GET',
      'G@T / HTTP/1.1',
      'GET * HTTP/1.1',
      'OPTIONS * HTTP/1.1',
      'CONNECT x:443 HTTP/1.1',
      'GET v1/shipments HTTP/1.1',
      'GET ?x HTTP/1.1',
      'GET http:// HTTP/1.1',
      'GET http://x HTTP/1.1',
      'GET /%ff%fe HTTP/1.1',
      'GET /v1/shipments/%E0%A4%A HTTP/1.1',
      'GET /v1/shipments?limit=%ff&cursor=%E0 HTTP/1.1',
      `GET /${'a'.repeat(100_000)} HTTP/1.1`,
      'GET /\u00fc HTTP/1.1',
      'PATCH /v1/shipments HTTP/1.1',
      // %-escapes that are not UTF-8 (a surrogate, a lone byte): Elysia would hand the route a null parameter.
      'PUT /v1/carriers/%ED%A0%80 HTTP/1.1',
      'POST /v1/webhooks/%ff HTTP/1.1',
      'GET /v1/shipments/%C0%AF HTTP/1.1'
    ]
    for (const line of lines) {
      const res = await rawRequest(
        port,
        requestText(line, [
          ['Host', 'abcd'],
          ['Authorization', `Bearer ${API_KEY}`],
          ['Connection', 'close']
        ])
      )
      // `http://` and `http://x` (no path) read as `/`: the public dashboard.
      if ((line === 'GET http:// HTTP/1.1' || line === 'GET http://x HTTP/1.1') && isPublicPage(res)) continue
      expect(res.status, line.slice(0, 80)).toBeGreaterThanOrEqual(400)
      expect(res.status, line.slice(0, 80)).toBeLessThan(500)
    }
    // Lines whose version Bun's HTTP parser cannot read (none, HTTP/2.0 on a 1.1 socket, a control
    // character before it) are answered by that parser, before any code of ours runs, with the
    // protocol's own 505 and nothing else; a method it does not know, by closing the connection.
    for (const line of ['GET /', 'GET / HTTP/1.1 extra', 'GET / HTTP/2.0', 'GET / http/1.1', 'GET /a\u0001 HTTP/1.1', 'GET /a\tb HTTP/1.1']) {
      const res = await rawRequest(
        port,
        requestText(line, [
          ['Host', 'abcd'],
          ['Connection', 'close']
        ])
      )
      expect(res.raw, line).toBe('HTTP/1.1 505 HTTP Version Not Supported\r\nConnection: close\r\n\r\n')
    }
    expect(rawRequest(port, requestText('BREW /v1/shipments HTTP/1.1', [['Host', 'abcd']]))).rejects.toThrow('closed without a response')
    const headers: [string, string][][] = [
      [
        ['Host', 'abcd'],
        ['Host', 'efgh']
      ],
      [
        ['Host', 'abcd'],
        ['X', 'a'.repeat(100_000)]
      ],
      [
        ['Host', 'abcd'],
        ['Content-Length', '-1']
      ],
      [
        ['Host', 'abcd'],
        ['Content-Length', '1'],
        ['Content-Length', '2']
      ],
      [
        ['Host', 'abcd'],
        ['Content-Length', '99999999999999999999999']
      ],
      [
        ['Host', 'abcd'],
        ['Transfer-Encoding', 'gzip']
      ],
      [
        ['Host', 'abcd'],
        ['Authorization', 'Bearer \u00ff\u00fe']
      ],
      [
        ['Host', 'abcd'],
        ['Authorization', `Basic ${API_KEY}`]
      ],
      [['Host', '\u00ff\u00fe']],
      [
        ['Host', 'abcd'],
        ['Content-Type', 'application/json; charset=\u00ff']
      ]
    ]
    for (const h of headers) {
      const res = await rawRequest(port, requestText('POST /v1/shipments HTTP/1.1', [...h, ['Connection', 'close']]))
      expect(res.status, JSON.stringify(h).slice(0, 120)).toBeGreaterThanOrEqual(400)
      expect(res.status, JSON.stringify(h).slice(0, 120)).toBeLessThan(500)
    }
  })

  test('generated header values and content types: never a 5xx', async () => {
    const value = fc.string({ unit: fc.constantFrom(...'ab;=,/ "\\\t*+-:\u00e9'.split('')), maxLength: 30 })
    const samples = fc.sample(
      fc.tuple(fc.constantFrom('content-type', 'authorization', 'accept', 'content-encoding', 'x-forwarded-host', 'upgrade', 'expect'), value),
      { numRuns: 200, seed: 7 }
    )
    const responses = await all(samples, 16, ([name, v]) =>
      send(
        'POST',
        '/v1/shipments',
        'abcd',
        [
          ['Authorization', `Bearer ${API_KEY}`],
          [name, v]
        ],
        JSON.stringify({ carrier: 'dhl', trackingNumber: 'GEN1' })
      )
    )
    for (const [i, res] of responses.entries()) expect(res.status, `${JSON.stringify(samples[i])}: ${res.body.slice(0, 200)}`).toBeLessThan(500)
  })
})

describe('the body limit', () => {
  const routes: [string, string, [string, string][]][] = [
    ['POST', '/v1/events', [['Authorization', `Bearer ${API_KEY}`]]],
    ['POST', '/v1/events', []],
    ['POST', '/v1/shipments', [['Authorization', `Bearer ${API_KEY}`]]],
    ['POST', '/v1/tokens', [['Authorization', `Bearer ${API_KEY}`]]],
    ['POST', '/v1/webhooks/dhl', []],
    ['DELETE', '/v1/shipments/00000000-0000-0000-0000-000000000000', [['Authorization', `Bearer ${API_KEY}`]]],
    ['GET', '/healthz', []],
    ['GET', '/v1/ws', []],
    ['POST', '/no/such/route', []]
  ]
  const big = JSON.stringify({
    events: [{ carrier: 'dhl', trackingNumber: 'SECRET1', carrierStatus: 'BIG', occurredAt: '2026-11-20T08:00:00Z', description: 'x'.repeat(LIMIT) }]
  })

  test('over the limit by Content-Length: a JSON 413 on every route', async () => {
    for (const [method, path, headers] of routes) {
      const res = await rawRequest(
        port,
        requestText(
          `${method} ${path} HTTP/1.1`,
          [['Host', 'abcd'], ...headers, ['Content-Type', 'application/json'], ['Content-Length', String(big.length)]],
          big
        )
      )
      expect(res.status, `${method} ${path}`).toBe(413)
      expect(res.json.error.code).toBe('payload_too_large')
      expect(res.json.error.message).toContain(String(LIMIT))
      // Announced and never sent: refused from the header alone.
      const announced = await rawRequest(port, requestText(`${method} ${path} HTTP/1.1`, [['Host', 'abcd'], ...headers, ['Content-Length', '10000000000']]))
      expect(announced.status).toBe(413)
      expect(announced.json.error.code).toBe('payload_too_large')
    }
  })

  test('over the limit chunked: a JSON 413 on every route; within it, served as usual', async () => {
    const chunked = (s: string) =>
      s
        .match(/[\s\S]{1,1000}/g)!
        .map((c) => `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`)
        .join('') + '0\r\n\r\n'
    // Bun hands no body of a GET to anyone (it skips it on the socket), so a chunked GET is
    // served as a GET; every method with a body is refused once it grows past the limit.
    for (const [method, path, headers] of routes.filter(([m]) => m !== 'GET')) {
      const res = await rawRequest(
        port,
        requestText(
          `${method} ${path} HTTP/1.1`,
          [['Host', 'abcd'], ...headers, ['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked']],
          chunked(big)
        )
      )
      expect(res.status, `${method} ${path}`).toBe(413)
      expect(res.json.error.code).toBe('payload_too_large')
    }
    const ok = JSON.stringify({ carrier: 'dhl', trackingNumber: 'CHUNKED1', reference: 'r'.repeat(150) })
    const res = await rawRequest(
      port,
      requestText(
        'POST /v1/shipments HTTP/1.1',
        [
          ['Host', 'abcd'],
          ['Authorization', `Bearer ${API_KEY}`],
          ['Content-Type', 'application/json'],
          ['Transfer-Encoding', 'chunked'],
          ['Connection', 'close']
        ],
        chunked(ok)
      )
    )
    expect(res.status).toBe(201)
    expect(res.json.trackingNumber).toBe('CHUNKED1')
  })
})

describe('unexpected errors', () => {
  test('an error in a route is a JSON 500 with a request id; the stack is in the log', async () => {
    await db.sql`alter table shipments rename to shipments_away`
    try {
      const res = await send('GET', '/v1/shipments', 'abcd', [['Authorization', `Bearer ${API_KEY}`]])
      expect(res.status).toBe(500)
      expect(res.json.error.code).toBe('internal')
      expect(res.json.error.requestId).toBe(res.headers['x-request-id']!)
      expect(res.body).not.toMatch(/shipments_away|relation|\.ts:\d/)
      const line = captured.lines.find((l) => l.requestId === res.json.error.requestId)
      expect(line?.err?.stack).toContain('relation "shipments" does not exist')
      expect(line?.path).toBe('/v1/shipments')
    } finally {
      await db.sql`alter table shipments_away rename to shipments`
    }
  })

  test("an error outside the app (in the server itself) is the same JSON 500, never Bun's page", async () => {
    const server = listen({
      fetch: () => {
        throw new Error('boom in the server')
      },
      hub: service.hub,
      log: captured.log,
      port: 0,
      hostname: '127.0.0.1',
      bodyLimitBytes: LIMIT,
      wsBackpressureBytes: 1 << 20
    })
    try {
      const res = await rawRequest(
        server.port!,
        requestText('GET /anything HTTP/1.1', [
          ['Host', 'abcd'],
          ['Connection', 'close']
        ])
      )
      expect(res.status).toBe(500)
      expect(res.json.error.code).toBe('internal')
      expect(res.headers['x-request-id']).toBe(res.json.error.requestId)
      expect(res.body).not.toContain('boom')
      expect(captured.lines.find((l) => l.requestId === res.json.error.requestId)?.err?.stack).toContain('boom in the server')
    } finally {
      server.stop(true)
    }
  })
})
