/** POST /v1/tokens and the token checks the WebSocket endpoint relies on. */
import { afterAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { SignJWT } from 'jose'
import { createTokens } from '../../src/delivery/tokens.ts'
import { parseTopic, topicAllowed } from '../../src/delivery/topics.ts'
import { adminUrl } from '../support/db.ts'
import { api, testService, TOKEN_SECRET } from '../support/service.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

const service = testService({ DATABASE_URL: adminUrl })
const call = api(service)
afterAll(() => service.stop())

describe('POST /v1/tokens', () => {
  test('mints a token limited to normalized topics, which verifies', async () => {
    const before = Date.now()
    const res = await call('POST', '/v1/tokens', { sub: 'user-42', topics: ['shipment:DHL: 0034 0434 ', 'user:user-42', 'shipment:*'], ttlSeconds: 120 })
    expect(res.status).toBe(201)
    expect(res.body.topics).toEqual(['shipment:dhl:00340434', 'user:user-42', 'shipment:*'])
    expect(Date.parse(res.body.expiresAt) - before).toBeGreaterThan(118_000)
    expect(Date.parse(res.body.expiresAt) - before).toBeLessThan(122_000)
    const claims = await service.tokens.verify(res.body.token)
    expect(claims).toMatchObject({ sub: 'user-42', topics: res.body.topics })
  })

  test('bad input is a 400 naming the field', async () => {
    const cases: [unknown, string][] = [
      [{ topics: [] }, 'topics'],
      [{}, 'topics'],
      [{ topics: ['shipment:dhl:OK1', 'parcel:dhl:1'] }, 'topics[1]'],
      [{ topics: ['shipment:dhl:a:b'] }, 'topics[0]'],
      [{ topics: ['user:'] }, 'topics[0]'],
      [{ topics: ['shipment:dhl:OK1'], ttlSeconds: 0 }, 'ttlSeconds'],
      [{ topics: ['shipment:dhl:OK1'], ttlSeconds: 86_401 }, 'ttlSeconds']
    ]
    for (const [body, field] of cases) {
      const res = await call('POST', '/v1/tokens', body)
      expect(res.status).toBe(400)
      expect(res.body.error.field).toBe(field)
    }
  })

  test('a value out of range says what is allowed, not only that it is wrong', async () => {
    const cases: [unknown, string][] = [
      [{ topics: ['shipment:dhl:OK1'], ttlSeconds: 0 }, 'ttlSeconds: must be an integer from 1 to 86400'],
      [{ topics: ['shipment:dhl:OK1'], ttlSeconds: 86_401 }, 'ttlSeconds: must be an integer from 1 to 86400'],
      [{ topics: ['shipment:dhl:OK1'], sub: 'u'.repeat(200) }, 'sub: must be a string of at most 128 characters or null']
    ]
    for (const [body, message] of cases) {
      const res = await call('POST', '/v1/tokens', body)
      expect(res.status).toBe(400)
      expect(res.body.error.message).toBe(message)
    }
  })

  test('a sub or topic PostgreSQL could not store, 10,000 topics, or a ttl past the maximum: 400 naming the field', async () => {
    const cases: [unknown, string][] = [
      [{ sub: 'a\u0000b', topics: ['shipment:dhl:OK1'] }, 'sub'],
      [{ sub: 'a\ud800b', topics: ['shipment:dhl:OK1'] }, 'sub'],
      [{ topics: ['user:a\u0000'] }, 'topics[0]'],
      [{ topics: ['shipment:dhl:X\udc00'] }, 'topics[0]'],
      [{ topics: Array.from({ length: 10_000 }, (_, i) => `shipment:dhl:T${i}`) }, 'topics'],
      [{ topics: Array.from({ length: 101 }, (_, i) => `shipment:dhl:T${i}`) }, 'topics'],
      [{ topics: ['shipment:dhl:OK1'], ttlSeconds: 1e308 }, 'ttlSeconds'],
      [{ topics: ['shipment:dhl:OK1'], ttlSeconds: 1.5 }, 'ttlSeconds']
    ]
    for (const [body, field] of cases) {
      const res = await call('POST', '/v1/tokens', body)
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400)
      expect(res.body.error.field).toBe(field)
    }
    const most = await call('POST', '/v1/tokens', { topics: Array.from({ length: 100 }, (_, i) => `shipment:dhl:T${i}`), ttlSeconds: 86_400 })
    expect(most.status).toBe(201)
    expect((await service.tokens.verify(most.body.token)).topics.length).toBe(100)
  })

  test('needs an API key', async () => {
    expect((await call('POST', '/v1/tokens', { topics: ['shipment:dhl:X1'] }, { authorization: '' })).status).toBe(401)
  })
})

describe('token checks', () => {
  const tokens = createTokens(TOKEN_SECRET)
  const key = new TextEncoder().encode(TOKEN_SECRET)

  test('an expired token is refused as expired', async () => {
    const now = Math.floor(Date.now() / 1000)
    const expired = await new SignJWT({ topics: ['shipment:dhl:X1'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('parcelcast')
      .setAudience('parcelcast:ws')
      .setIssuedAt(now - 120)
      .setExpirationTime(now - 60)
      .sign(key)
    await expect(tokens.verify(expired)).rejects.toMatchObject({ code: 'token_expired' })
  })

  test('a token signed with another secret, tampered with, or without topics is invalid', async () => {
    const { token } = await createTokens('another-secret-another-secret-0000').mint({ sub: null, topics: ['shipment:dhl:X1'], ttlSeconds: 60 })
    await expect(tokens.verify(token)).rejects.toMatchObject({ code: 'token_invalid' })
    const good = (await tokens.mint({ sub: null, topics: ['shipment:dhl:X1'], ttlSeconds: 60 })).token
    const [h, p, s] = good.split('.')
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), topics: ['shipment:*'] })).toString('base64url')
    await expect(tokens.verify(`${h}.${forged}.${s}`)).rejects.toMatchObject({ code: 'token_invalid' })
    const noTopics = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('parcelcast')
      .setAudience('parcelcast:ws')
      .setExpirationTime('1m')
      .sign(key)
    await expect(tokens.verify(noTopics)).rejects.toMatchObject({ code: 'token_invalid' })
    await expect(tokens.verify('not.a.jwt')).rejects.toMatchObject({ code: 'token_invalid' })
  })

  test('only HS256 with our issuer, audience and an expiry is accepted; tokens from another JWT library are', async () => {
    const claims = { topics: ['shipment:dhl:X1'] }
    const jwt = () => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('parcelcast').setAudience('parcelcast:ws')
    // Minted by jose, not by us: a standard JWT verifies.
    expect(await tokens.verify(await jwt().setExpirationTime('1m').sign(key))).toMatchObject({ sub: null, topics: ['shipment:dhl:X1'] })
    const refused = [
      await jwt().sign(key), // no expiry
      await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('someone-else').setAudience('parcelcast:ws').setExpirationTime('1m').sign(key),
      await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('parcelcast').setAudience('another-service').setExpirationTime('1m').sign(key),
      await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS512' })
        .setIssuer('parcelcast')
        .setAudience('parcelcast:ws')
        .setExpirationTime('1m')
        .sign(new TextEncoder().encode(TOKEN_SECRET.repeat(2))),
      // alg none: a header and a payload, no signature
      `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ ...claims, iss: 'parcelcast', aud: 'parcelcast:ws', exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url')}.`
    ]
    for (const t of refused) await expect(tokens.verify(t)).rejects.toMatchObject({ code: 'token_invalid' })
  })

  test("a token's view: none or `full` is the full one, `recipient` is a tracking link's, anything else is refused", async () => {
    const jwt = (claims: Record<string, unknown>) =>
      new SignJWT({ topics: ['shipment:dhl:X1'], ...claims })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer('parcelcast')
        .setAudience('parcelcast:ws')
        .setExpirationTime('1m')
        .sign(key)
    expect((await tokens.verify(await jwt({}))).view).toBe('full')
    expect((await tokens.verify(await jwt({ view: 'recipient' }))).view).toBe('recipient')
    expect((await tokens.verify((await tokens.mint({ sub: null, topics: ['shipment:dhl:X1'], ttlSeconds: 60, view: 'recipient' })).token)).view).toBe(
      'recipient'
    )
    expect((await tokens.verify(await jwt({ view: 'full' }))).view).toBe('full')
    for (const view of ['admin', 1, null]) await expect(tokens.verify(await jwt({ view })), String(view)).rejects.toMatchObject({ code: 'token_invalid' })
  })

  test('iss, aud and exp are required, not only checked when present (a token minted by jose without them)', async () => {
    const claims = { topics: ['shipment:dhl:X1'] }
    const jwt = () => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' })
    const missing = {
      iss: await jwt().setAudience('parcelcast:ws').setExpirationTime('1m').sign(key),
      aud: await jwt().setIssuer('parcelcast').setExpirationTime('1m').sign(key),
      exp: await jwt().setIssuer('parcelcast').setAudience('parcelcast:ws').sign(key),
      all: await jwt().sign(key)
    }
    for (const [what, t] of Object.entries(missing)) await expect(tokens.verify(t), `without ${what}`).rejects.toMatchObject({ code: 'token_invalid' })
  })

  test('a validly signed token beyond the bounds is refused: too many topics, a bad sub, too long a life', async () => {
    const now = Math.floor(Date.now() / 1000)
    const jwt = (payload: Record<string, unknown>, exp = now + 60) =>
      new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).setIssuer('parcelcast').setAudience('parcelcast:ws').setExpirationTime(exp).sign(key)
    const topics = (n: number) => Array.from({ length: n }, (_, i) => `shipment:dhl:T${i}`)
    const refused = [
      await jwt({ topics: topics(10_000) }),
      await jwt({ topics: topics(101) }),
      await jwt({ topics: ['x'.repeat(201)] }),
      await jwt({ topics: [] }),
      await jwt({ topics: ['shipment:*'], sub: 'a\u0000' }),
      await jwt({ topics: ['shipment:*'], sub: 'a\ud800' }),
      await jwt({ topics: ['shipment:*'], sub: 42 }),
      await jwt({ topics: ['shipment:*'] }, now + 86_400 * 365)
    ]
    for (const t of refused) await expect(tokens.verify(t)).rejects.toMatchObject({ code: 'token_invalid' })
    expect(await tokens.verify(await jwt({ topics: topics(100), sub: 'u' }, now + 86_400))).toMatchObject({ sub: 'u' })
    await expect(tokens.mint({ sub: null, topics: ['shipment:*'], ttlSeconds: 86_401 })).rejects.toMatchObject({ field: 'ttlSeconds' })
    await expect(tokens.mint({ sub: null, topics: topics(101), ttlSeconds: 60 })).rejects.toMatchObject({ field: 'topics' })
  })

  test('shipment:* grants every shipment topic and nothing else', () => {
    expect(topicAllowed(['shipment:*'], parseTopic('shipment:gls:ABC'))).toBe(true)
    expect(topicAllowed(['shipment:*'], parseTopic('user:u1'))).toBe(false)
    expect(topicAllowed(['shipment:dhl:A1'], parseTopic('shipment:DHL:a1'))).toBe(true)
    expect(topicAllowed(['shipment:dhl:A1'], parseTopic('shipment:dhl:A2'))).toBe(false)
    expect(() => parseTopic('shipment:*')).toThrow(/not a topic/)
  })
})
