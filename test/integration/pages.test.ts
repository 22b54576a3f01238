/**
 * Contract §10 over the wire (real HTTP on a listening port, real WebSockets): tracking links
 * (shape, 404, 400, a token scoped to one shipment that is no API key), the tracking page's
 * server-side token check, the OpenAPI 3.1 and AsyncAPI 3 documents, the reference page with
 * nothing off-host, the pages' security headers, and which paths are public.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import Ajv2020 from 'ajv/dist/2020.js'
import { SignJWT } from 'jose'
import { createTestDb, type TestDb } from '../support/db.ts'
import { connect } from '../support/ws.ts'
import { API_KEY, testService, TOKEN_SECRET } from '../support/service.ts'

setDefaultTimeout(30_000)

let db: TestDb
let service: ReturnType<typeof testService>
let base: string
let one: { id: string; trackingNumber: string }
let other: { id: string; trackingNumber: string }

const http = async (method: string, path: string, body?: unknown, headers: Record<string, string> = { authorization: `Bearer ${API_KEY}` }) => {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
  })
  const text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {}
  return { status: res.status, headers: res.headers, text, json }
}

beforeAll(async () => {
  db = await createTestDb()
  service = testService({ DATABASE_URL: db.url, POLL_ENABLED: 'false', WEBHOOK_ALLOW_PRIVATE: 'true' })
  await service.start()
  base = `http://127.0.0.1:${service.port}`
  one = (await http('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'PAGE 0001' })).json
  other = (await http('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'PAGE0002' })).json
  await http('POST', '/v1/events', {
    events: [
      { carrier: 'dhl', trackingNumber: 'PAGE0001', carrierStatus: 'PU', status: 'info_received', occurredAt: '2026-11-20T08:15:00Z', description: 'picked up' }
    ]
  })
})
afterAll(async () => {
  await service.stop()
  await db.drop()
})

describe('POST /v1/shipments/:id/tracking-link', () => {
  test('201 {url, token, expiresAt}: a relative /t/ URL carrying the token, valid for the ttl asked', async () => {
    const before = Date.now()
    const res = await http('POST', `/v1/shipments/${one.id}/tracking-link`, { ttlSeconds: 600 })
    expect(res.status).toBe(201)
    expect(Object.keys(res.json).sort()).toEqual(['expiresAt', 'token', 'url'])
    expect(res.json.url).toBe(`/t/PAGE0001?token=${encodeURIComponent(res.json.token)}`)
    const expires = Date.parse(res.json.expiresAt)
    expect(expires - before).toBeGreaterThan(598_000)
    expect(expires - before).toBeLessThan(602_000)
    expect(await service.tokens.verify(res.json.token)).toMatchObject({ sub: null, topics: ['shipment:dhl:PAGE0001'] })
    // Without a body, or with {}: a day.
    for (const body of [undefined, {}]) {
      const d = await http('POST', `/v1/shipments/${one.id}/tracking-link`, body)
      expect(d.status).toBe(201)
      expect(Date.parse(d.json.expiresAt) - Date.now()).toBeGreaterThan(86_390_000)
    }
  })

  test('an unknown or deleted shipment is a 404', async () => {
    for (const id of ['00000000-0000-0000-0000-000000000000', 'not-a-uuid']) {
      const res = await http('POST', `/v1/shipments/${id}/tracking-link`, {})
      expect(res.status, id).toBe(404)
      expect(res.json.error.code).toBe('not_found')
    }
    const gone = (await http('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'PAGEGONE' })).json
    await http('DELETE', `/v1/shipments/${gone.id}`)
    expect((await http('POST', `/v1/shipments/${gone.id}/tracking-link`, {})).status).toBe(404)
  })

  test('a bad ttlSeconds is a 400 naming it, as on POST /v1/tokens', async () => {
    for (const ttlSeconds of [0, -1, 1.5, 86_401, 1e308, '60', true, [], {}]) {
      const res = await http('POST', `/v1/shipments/${one.id}/tracking-link`, { ttlSeconds })
      expect(res.status, JSON.stringify(ttlSeconds)).toBe(400)
      expect(res.json.error).toMatchObject({ code: 'validation_failed', field: 'ttlSeconds' })
    }
    expect((await http('POST', `/v1/shipments/${one.id}/tracking-link`, [1])).status).toBe(400)
    expect((await http('POST', `/v1/shipments/${one.id}/tracking-link`, '{not json')).status).toBe(400)
  })

  test('needs the API key; its token is no API key', async () => {
    expect((await http('POST', `/v1/shipments/${one.id}/tracking-link`, {}, {})).status).toBe(401)
    const { token } = (await http('POST', `/v1/shipments/${one.id}/tracking-link`, {})).json
    for (const [method, path] of [
      ['GET', '/v1/shipments'],
      ['GET', `/v1/shipments/${one.id}`],
      ['POST', `/v1/shipments/${one.id}/tracking-link`],
      ['POST', '/v1/tokens']
    ]) {
      const res = await http(method!, path!, method === 'POST' ? {} : undefined, { authorization: `Bearer ${token}` })
      expect(res.status, `${method} ${path}`).toBe(401)
    }
  })

  test('its token subscribes to that shipment only', async () => {
    const { token } = (await http('POST', `/v1/shipments/${one.id}/tracking-link`, {})).json
    const ws = await connect(`ws://127.0.0.1:${service.port}/v1/ws?token=${encodeURIComponent(token)}`)
    try {
      ws.send({ op: 'subscribe', topic: 'shipment:dhl:PAGE0002' })
      expect(await ws.next()).toMatchObject({ type: 'error', code: 'forbidden_topic' })
      ws.send({ op: 'subscribe', topic: 'user:someone' })
      expect(await ws.next()).toMatchObject({ type: 'error', code: 'forbidden_topic' })
      ws.send({ op: 'subscribe', topic: 'shipment:dhl:PAGE0001', since: 0 })
      const snap = await ws.next()
      expect(snap).toMatchObject({ type: 'snapshot', topic: 'shipment:dhl:PAGE0001', shipment: { trackingNumber: 'PAGE0001', status: 'info_received' } })
      expect(snap.events.map((e: any) => e.description)).toEqual(['picked up'])
    } finally {
      ws.close()
    }
  })

  test("its holder is a recipient: the snapshot shows the parcel's public fields, not your reference, id or poll errors, and no deleted shipment", async () => {
    const mine = (await http('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'PAGE0003', reference: 'order 4711, jane@example.com' })).json
    const topic = 'shipment:dhl:PAGE0003'
    const { token } = (await http('POST', `/v1/shipments/${mine.id}/tracking-link`, {})).json
    const full = (await http('POST', '/v1/tokens', { topics: [topic] })).json.token
    const snapshotWith = async (t: string) => {
      const ws = await connect(`ws://127.0.0.1:${service.port}/v1/ws?token=${encodeURIComponent(t)}`)
      try {
        ws.send({ op: 'subscribe', topic, since: 0 })
        return await ws.next()
      } finally {
        ws.close()
      }
    }
    const recipient = await snapshotWith(token)
    expect(recipient.type).toBe('snapshot')
    expect(Object.keys(recipient.shipment).sort()).toEqual([
      'carrier',
      'carrierStatus',
      'expectedDelivery',
      'lastEventAt',
      'lastSeq',
      'status',
      'trackingNumber'
    ])
    expect(JSON.stringify(recipient)).not.toContain('jane@example.com')
    // Your own clients' tokens still see the shipment as the REST API shows it.
    expect((await snapshotWith(full)).shipment).toMatchObject({ id: mine.id, reference: 'order 4711, jane@example.com' })
    // Deleted: the link shows nothing more, though it has not expired.
    expect((await http('DELETE', `/v1/shipments/${mine.id}`)).status).toBe(200)
    expect(await snapshotWith(token)).toMatchObject({ type: 'error', code: 'not_found', topic })
    expect((await snapshotWith(full)).shipment).toMatchObject({ id: mine.id, deletedAt: expect.any(String) })
  })
})

describe('headers of the API answers (over the wire)', () => {
  test('nosniff on every answer; no-store on every /v1 answer, refused ones included', async () => {
    for (const [path, headers] of [
      ['/v1/shipments', undefined],
      ['/v1/shipments', { authorization: 'Bearer wrong-key-1234' }],
      [`/v1/shipments/${one.id}`, undefined],
      ['/v1/nothing-here', undefined]
    ] as const) {
      const res = await http('GET', path, undefined, headers)
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff')
      expect(res.headers.get('cache-control'), path).toBe('no-store')
    }
    const health = await http('GET', '/healthz', undefined, {})
    expect(health.headers.get('x-content-type-options')).toBe('nosniff')
    expect(health.headers.get('cache-control')).toBeNull()
    // The edge's own refusals too: a bad target (400), a body over the limit (413), a plain
    // request to the WebSocket endpoint (426).
    const edge = [await http('GET', '/v1//x'), await http('POST', '/v1/events', 'x'.repeat(2_000_000)), await http('GET', '/v1/ws', undefined, {})]
    expect(edge.map((r) => r.status)).toEqual([400, 413, 426])
    for (const r of edge) {
      expect(r.headers.get('x-content-type-options'), String(r.status)).toBe('nosniff')
      expect(r.headers.get('cache-control'), String(r.status)).toBe('no-store')
    }
  })
})

describe('GET /t/:trackingNumber', () => {
  const link = async (id: string) => (await http('POST', `/v1/shipments/${id}/tracking-link`, {})).json

  test('with its token: the page, naming the parcel and loading its script, with no token or key in it', async () => {
    const { url, token } = await link(one.id)
    const res = await http('GET', url, undefined, {})
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toStartWith('text/html')
    expect(res.text).toContain('PAGE0001')
    expect(res.text).toContain('data-topic="shipment:dhl:PAGE0001"')
    expect(res.text).toContain('<script type="module" src="/assets/tracking.js">')
    expect(res.text).not.toContain(token)
    expect(res.text).not.toContain(API_KEY)
    expect(res.text).not.toContain('PAGE0002')
    // Tracking numbers are compared normalized.
    expect((await http('GET', url.replace('/t/PAGE0001', '/t/page%200001'), undefined, {})).status).toBe(200)
  })

  test('no token, a bad, expired or foreign token, or another shipment: a plain 403/404 page with no data', async () => {
    const mine = await link(one.id)
    const theirs = await link(other.id)
    const key = new TextEncoder().encode(TOKEN_SECRET)
    const now = Math.floor(Date.now() / 1000)
    const sign = (topics: string[], exp = now + 600) =>
      new SignJWT({ topics })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer('parcelcast')
        .setAudience('parcelcast:ws')
        .setIssuedAt(now - 700)
        .setExpirationTime(exp)
        .sign(key)
    const wrongSecret = await new SignJWT({ topics: ['shipment:dhl:PAGE0001'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('parcelcast')
      .setAudience('parcelcast:ws')
      .setExpirationTime(now + 600)
      .sign(new TextEncoder().encode('another-secret-0123456789-0123456789'))
    const cases: [string, number][] = [
      ['/t/PAGE0001', 403],
      ['/t/PAGE0001?token=', 403],
      ['/t/PAGE0001?token=garbage', 403],
      [`/t/PAGE0001?token=${wrongSecret}`, 403],
      [`/t/PAGE0001?token=${await sign(['shipment:dhl:PAGE0001'], now - 60)}`, 403],
      [`/t/PAGE0001?token=${await sign(['shipment:*'])}`, 403],
      [`/t/PAGE0001?token=${await sign(['shipment:dhl:PAGE0001', 'shipment:dhl:PAGE0002'])}`, 403],
      [`/t/PAGE0001?token=${await sign(['user:PAGE0001'])}`, 403],
      // Another shipment's link with this tracking number, and this link with another's.
      [`/t/PAGE0001?token=${encodeURIComponent(theirs.token)}`, 403],
      [`/t/PAGE0002?token=${encodeURIComponent(mine.token)}`, 403],
      // A valid token for a shipment that is no longer tracked.
      [`/t/NOSUCH?token=${await sign(['shipment:dhl:NOSUCH'])}`, 404]
    ]
    for (const [path, status] of cases) {
      const res = await http('GET', path, undefined, {})
      expect(res.status, path.slice(0, 60)).toBe(status)
      expect(res.headers.get('content-type')).toStartWith('text/html')
      expect(res.text).not.toContain('tracking.js')
      expect(res.text).not.toContain('data-topic')
      expect(res.text).not.toMatch(/info.received|picked up|PAGE0002/)
    }
    expect((await http('GET', `/t/PAGE0001?token=${await sign(['shipment:dhl:PAGE0001'], now - 60)}`, undefined, {})).text).toContain('expired')
  })
})

describe('pages and their headers', () => {
  test('every page and asset: strict CSP, nosniff, no referrer; HTML never cached', async () => {
    const { url } = (await http('POST', `/v1/shipments/${one.id}/tracking-link`, {})).json
    for (const path of [
      '/',
      '/docs',
      url,
      '/t/PAGE0001',
      '/assets/dashboard.js',
      '/assets/tracking.js',
      '/assets/docs.js',
      '/assets/pages.css',
      '/openapi.json',
      '/asyncapi.json'
    ]) {
      const res = await http('GET', path, undefined, {})
      const csp = res.headers.get('content-security-policy') ?? ''
      expect(csp, path).toContain("default-src 'self'")
      expect(csp, path).toContain("script-src 'self'")
      expect(csp, path).not.toContain('unsafe-inline')
      expect(csp, path).toContain("frame-ancestors 'none'")
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff')
      expect(res.headers.get('referrer-policy'), path).toBe('no-referrer')
      if (res.headers.get('content-type')?.startsWith('text/html')) {
        expect(res.headers.get('cache-control'), path).toBe('no-store')
        // No inline script or style, no handler attributes: CSP would block them anyway.
        expect(res.text, path).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|<style|\son[a-z]+=|style=/i)
      }
    }
    expect((await http('GET', '/assets/tracking.js', undefined, {})).headers.get('content-type')).toStartWith('text/javascript')
    expect((await http('GET', '/assets/pages.css', undefined, {})).headers.get('content-type')).toStartWith('text/css')
  })

  test('only the listed assets are served', async () => {
    for (const path of ['/assets/nope.js', '/assets/routes.ts', '/assets/..%2Froutes.ts', '/assets/', '/assets/DASHBOARD.JS']) {
      const res = await http('GET', path, undefined, {})
      expect(res.status, path).toBeGreaterThanOrEqual(400)
      expect(res.status, path).toBeLessThan(500)
      expect(res.text).not.toContain('import ')
    }
  })

  test('the dashboard asks for the key in the page and renders no secret', async () => {
    const res = await http('GET', '/', undefined, {})
    expect(res.status).toBe(200)
    expect(res.text).toContain('id="api-key"')
    expect(res.text).toContain('type="password"')
    expect(res.text).not.toContain(API_KEY)
    expect(res.text).not.toContain(TOKEN_SECRET)
    const script = (await http('GET', '/assets/dashboard.js', undefined, {})).text
    expect(script).toContain('sessionStorage')
    expect(script).not.toContain(API_KEY)
  })

  test('pages and documents are public; every /v1 route still needs the key', async () => {
    const { url } = (await http('POST', `/v1/shipments/${one.id}/tracking-link`, {})).json
    for (const path of ['/', '/docs', '/openapi.json', '/openapi', '/asyncapi.json', '/assets/dashboard.js', url]) {
      expect((await http('GET', path, undefined, {})).status, path).toBe(200)
    }
    const guarded = service.app.routes.filter((r) => r.path.startsWith('/v1/') && !r.path.startsWith('/v1/webhooks/'))
    expect(guarded.length).toBeGreaterThan(20)
    for (const r of guarded) {
      const path = r.path.replace(/:\w+/g, one.id)
      const res = await http(r.method, path, r.method === 'GET' || r.method === 'DELETE' ? undefined : {}, {})
      expect(res.status, `${r.method} ${r.path}`).toBe(401)
    }
  })
})

describe('documents', () => {
  test('/openapi.json: OpenAPI 3.1 with every route, request and response schemas, the error body and the bearer scheme', async () => {
    const res = await http('GET', '/openapi.json', undefined, {})
    expect(res.status).toBe(200)
    const doc = res.json
    expect(doc.openapi).toStartWith('3.1.')
    expect(doc).toEqual((await http('GET', '/openapi', undefined, {})).json)
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' })
    expect(doc.components.schemas.Error).toMatchObject({ type: 'object', required: ['error'], properties: { error: { required: ['code', 'message'] } } })
    const refs = JSON.stringify(doc).match(/#\/components\/[a-zA-Z]+\/[A-Za-z0-9]+/g) ?? []
    for (const r of new Set(refs)) {
      const [, , kind, name] = r.split('/')
      expect(doc.components[kind!]?.[name!], r).toBeDefined()
    }
    const routes = service.app.routes.filter((r) => !(r.hooks as any)?.detail?.hide)
    expect(routes.length).toBeGreaterThan(25)
    for (const r of routes) {
      const path = r.path.replace(/:(\w+)/g, '{$1}')
      const op = doc.paths[path]?.[r.method.toLowerCase()]
      const what = `${r.method} ${path}`
      expect(op, what).toBeDefined()
      expect(op.summary, what).toBeString()
      const success = Object.keys(op.responses).filter((s) => /^2/.test(s))
      expect(success.length, `${what} documents its success answer`).toBeGreaterThan(0)
      for (const s of success) if (s !== '204') expect(Object.values(op.responses[s].content ?? {}).length, `${what} ${s} has a schema`).toBe(1)
      const secured = path.startsWith('/v1/') && !path.startsWith('/v1/webhooks/')
      expect(op.security, what).toEqual(secured ? [{ apiKey: [] }] : [])
      if (secured) expect(op.responses['401'], what).toEqual({ $ref: '#/components/responses/E401' })
      if (['POST', 'PUT', 'PATCH'].includes(r.method) && (r.hooks as any)?.body) {
        expect(op.requestBody.content['application/json'].schema.type, what).toBe('object')
      }
      for (const p of path.matchAll(/\{(\w+)\}/g))
        expect(
          op.parameters.some((x: any) => x.in === 'path' && x.name === p[1]),
          `${what} ${p[1]}`
        ).toBeTrue()
    }
    expect(doc.components.responses.E401.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Error' })
    expect(doc.paths['/v1/shipments/{id}/tracking-link'].post.responses['201'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/TrackingLink'
    })
    expect(doc.paths['/v1/ws'].get.parameters[0].name).toBe('token')
    // The pages and documents are operations too (contract §4 lists GET /openapi), public ones;
    // their assets are not.
    for (const p of ['/', '/docs', '/t/{trackingNumber}', '/openapi.json', '/openapi', '/asyncapi.json']) expect(doc.paths[p]?.get?.security, p).toEqual([])
    expect(doc.paths['/'].get.operationId).toBe('getRoot')
    expect(doc.paths['/t/{trackingNumber}'].get.parameters.map((x: any) => [x.in, x.name])).toEqual([
      ['path', 'trackingNumber'],
      ['query', 'token']
    ])
    expect(doc.paths['/assets/{name}']).toBeUndefined()
  })

  test('real answers conform to the schemas /openapi.json gives for them', async () => {
    const doc = (await http('GET', '/openapi.json', undefined, {})).json
    // The document's components at the root, so that its `#/components/...` references resolve.
    const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true })
    const checked = new Set<string>()
    const conforms = (method: string, template: string, res: { status: number; json: any }) => {
      const op = doc.paths[template]?.[method.toLowerCase()]
      expect(op, `${method} ${template}`).toBeDefined()
      let answer = op.responses[String(res.status)]
      expect(answer, `${method} ${template} documents ${res.status}`).toBeDefined()
      if (answer.$ref) answer = doc.components.responses[answer.$ref.split('/').pop()]
      const schema = answer.content?.['application/json']?.schema
      expect(schema, `${method} ${template} ${res.status} has a JSON schema`).toBeDefined()
      const validate = ajv.compile({ components: doc.components, ...schema })
      const ok = validate(res.json)
      expect(ok ? [] : validate.errors, `${method} ${template} ${res.status}: ${JSON.stringify(res.json).slice(0, 300)}`).toEqual([])
      checked.add(`${method} ${template} ${res.status}`)
    }
    const run = async (method: string, template: string, path: string, body?: unknown, headers?: Record<string, string>) => {
      const res = await http(method, path, body, headers)
      conforms(method, template, res)
      return res
    }
    const created = await run('POST', '/v1/shipments', '/v1/shipments', { carrier: 'gls', trackingNumber: 'SCHEMA1', reference: 'r1' })
    await run('POST', '/v1/shipments', '/v1/shipments', { carrier: 'gls', trackingNumber: 'SCHEMA1' })
    await run('POST', '/v1/events', '/v1/events', {
      events: [
        { carrier: 'gls', trackingNumber: 'SCHEMA1', carrierStatus: 'X', status: 'in_transit', occurredAt: '2026-11-20T08:00:00Z', location: 'Kassel' },
        { carrier: 'gls', trackingNumber: 'NOSUCH', carrierStatus: 'X', occurredAt: '2026-11-20T08:00:00Z' }
      ]
    })
    await run('GET', '/v1/shipments', '/v1/shipments?limit=2')
    await run('GET', '/v1/shipments/{id}', `/v1/shipments/${created.json.id}`)
    await run('GET', '/v1/shipments/{id}/events', `/v1/shipments/${created.json.id}/events`)
    await run('POST', '/v1/shipments/{id}/tracking-link', `/v1/shipments/${created.json.id}/tracking-link`, { ttlSeconds: 60 })
    await run('GET', '/v1/carriers', '/v1/carriers')
    await run('POST', '/v1/tokens', '/v1/tokens', { sub: 'u1', topics: ['user:u1'] })
    await run('PUT', '/v1/shipments/{id}/watchers/{userId}', `/v1/shipments/${created.json.id}/watchers/u1`)
    await run('GET', '/v1/shipments/{id}/watchers', `/v1/shipments/${created.json.id}/watchers`)
    await run('POST', '/v1/notifications', '/v1/notifications', { userId: 'u1', type: 'note', title: 't', data: { a: 1 } })
    await run('GET', '/v1/users/{userId}/notifications', '/v1/users/u1/notifications?state=all')
    await run('POST', '/v1/users/{userId}/notifications/ack', '/v1/users/u1/notifications/ack', { upToSeq: 1 })
    await run('GET', '/v1/users/{userId}/presence', '/v1/users/u1/presence')
    await run('GET', '/v1/presence', '/v1/presence?userIds=u1,u2')
    const endpoint = await run('POST', '/v1/webhook-endpoints', '/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hook', eventTypes: ['shipment.event'] })
    await run('GET', '/v1/webhook-endpoints', '/v1/webhook-endpoints')
    await run('GET', '/v1/webhook-endpoints/{id}', `/v1/webhook-endpoints/${endpoint.json.id}`)
    await run('PATCH', '/v1/webhook-endpoints/{id}', `/v1/webhook-endpoints/${endpoint.json.id}`, { enabled: false })
    await run('POST', '/v1/webhook-endpoints/{id}/rotate-secret', `/v1/webhook-endpoints/${endpoint.json.id}/rotate-secret`)
    await run('GET', '/v1/webhook-endpoints/{id}/messages', `/v1/webhook-endpoints/${endpoint.json.id}/messages`)
    await run('GET', '/v1/dlq', '/v1/dlq')
    await run('DELETE', '/v1/shipments/{id}/watchers/{userId}', `/v1/shipments/${created.json.id}/watchers/u1`)
    await run('DELETE', '/v1/shipments/{id}', `/v1/shipments/${created.json.id}`)
    await run('GET', '/healthz', '/healthz', undefined, {})
    await run('GET', '/readyz', '/readyz', undefined, {})
    // Errors, in the one error shape.
    await run('GET', '/v1/shipments/{id}', '/v1/shipments/00000000-0000-0000-0000-000000000000')
    await run('GET', '/v1/shipments', '/v1/shipments', undefined, {})
    await run('POST', '/v1/shipments', '/v1/shipments', { carrier: 'nosuch', trackingNumber: 'X1' })
    await run('POST', '/v1/shipments', '/v1/shipments', { carrier: 'dhl' })
    await run('POST', '/v1/shipments/{id}/tracking-link', `/v1/shipments/${one.id}/tracking-link`, { ttlSeconds: 0 })
    await run('POST', '/v1/events', '/v1/events', 'not json')
    expect(checked.size).toBeGreaterThan(30)
  })

  test('/asyncapi.json: AsyncAPI 3 with the WebSocket channel and every client and server frame', async () => {
    const res = await http('GET', '/asyncapi.json', undefined, {})
    expect(res.status).toBe(200)
    const doc = res.json
    expect(doc.asyncapi).toStartWith('3.')
    expect(doc.channels.socket.address).toBe('/v1/ws')
    const sent = Object.values<any>(doc.operations)
      .filter((o) => o.action === 'send')
      .map((o) => o.messages[0].$ref.split('/').pop())
    const received = Object.values<any>(doc.operations)
      .filter((o) => o.action === 'receive')
      .map((o) => o.messages[0].$ref.split('/').pop())
    expect(sent.sort()).toEqual(['ack', 'ping', 'subscribe', 'unsubscribe'])
    expect(received.sort()).toEqual(['acked', 'error', 'event', 'notification', 'pong', 'snapshot'])
    for (const o of Object.values<any>(doc.operations)) expect(o.channel).toEqual({ $ref: '#/channels/socket' })
    for (const name of [...sent, ...received]) {
      expect(doc.channels.socket.messages[name]).toEqual({ $ref: `#/components/messages/${name}` })
      expect(doc.components.messages[name].payload, name).toBeDefined()
    }
    expect(doc.components.messages.subscribe.payload.properties.op).toEqual({ const: 'subscribe' })
    expect(doc.components.messages.event.payload.required).toEqual(['type', 'topic', 'seq', 'event', 'shipment'])
    expect(doc.components.securitySchemes.token).toMatchObject({ type: 'httpApiKey', in: 'query', name: 'token' })
    const refs = JSON.stringify(doc).match(/"#\/components\/[a-zA-Z]+\/[A-Za-z0-9]+"/g) ?? []
    for (const r of new Set(refs)) {
      const [, , kind, name] = r.slice(1, -1).split('/')
      expect(doc.components[kind!]?.[name!], r).toBeDefined()
    }
  })

  test('the frames the AsyncAPI document describes are the frames the socket sends', async () => {
    const doc = (await http('GET', '/asyncapi.json', undefined, {})).json
    const { token } = (await http('POST', '/v1/tokens', { topics: ['shipment:dhl:PAGE0001'] })).json
    const ws = await connect(`ws://127.0.0.1:${service.port}/v1/ws?token=${token}`)
    try {
      ws.send({ op: 'ping' })
      const pong = await ws.next()
      ws.send({ op: 'subscribe', topic: 'shipment:dhl:PAGE0001' })
      const snapshot = await ws.next()
      await http('POST', '/v1/events', {
        events: [{ carrier: 'dhl', trackingNumber: 'PAGE0001', carrierStatus: 'TR', status: 'in_transit', occurredAt: '2026-11-21T08:15:00Z' }]
      })
      const event = await ws.until((f) => f.type === 'event')
      ws.send({ op: 'nonsense' })
      const error = await ws.next()
      // And the snapshot a tracking link's token gets (the recipient's view).
      const link = (await http('POST', `/v1/shipments/${one.id}/tracking-link`, {})).json.token
      const recipientWs = await connect(`ws://127.0.0.1:${service.port}/v1/ws?token=${link}`)
      recipientWs.send({ op: 'subscribe', topic: 'shipment:dhl:PAGE0001' })
      const recipientSnapshot = await recipientWs.next()
      recipientWs.close()
      expect(recipientSnapshot.shipment.reference).toBeUndefined()
      // Each frame against its message's payload schema, with the document's components at the root.
      const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true })
      for (const [name, frame] of [
        ['pong', pong],
        ['snapshot', snapshot],
        ['snapshot', recipientSnapshot],
        ['event', event],
        ['error', error]
      ] as const) {
        const validate = ajv.compile({ components: doc.components, ...doc.components.messages[name].payload })
        const ok = validate(frame)
        expect(ok ? [] : validate.errors, `${name}: ${JSON.stringify(frame).slice(0, 300)}`).toEqual([])
      }
      expect(snapshot.shipment.trackingNumber).toBe('PAGE0001')
      expect(event.event.status).toBe('in_transit')
    } finally {
      ws.close()
    }
  })

  test('/docs: a reference page that loads nothing from another host', async () => {
    const page = await http('GET', '/docs', undefined, {})
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toStartWith('text/html')
    const loaded = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    expect(loaded).toContain('/assets/docs.js')
    for (const path of ['/docs', '/', '/assets/docs.js', '/assets/dashboard.js', '/assets/tracking.js', '/assets/pages.css']) {
      const text = (await http('GET', path, undefined, {})).text
      // No absolute URL at all in what the pages load (nor a protocol-relative one).
      expect(text.match(/(?:https?:)?\/\/[a-z0-9-]+\.[a-z]/gi) ?? [], path).toEqual([])
      for (const m of text.matchAll(/(?:src|href)="([^"]+)"/g)) expect(m[1], path).toMatch(/^\/(?!\/)/)
    }
  })
})
