/**
 * API-key check for `/v1`: `Authorization: Bearer <key>`, compared in constant time
 * (both sides hashed first, so length does not leak either).
 */
import { timingSafeEqual } from 'node:crypto'
import { errorBody, json } from './errors.ts'

const digest = (s: string) => new Bun.CryptoHasher('sha256').update(s).digest()

export function createApiKeyCheck(keys: readonly string[]) {
  const digests = keys.map(digest)
  return function checkApiKey(request: Request): Response | undefined {
    const header = request.headers.get('authorization') ?? ''
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (!m) return unauthorized(header ? 'the Authorization header must be "Bearer <key>"' : 'missing Authorization: Bearer <key>')
    const d = digest(m[1]!)
    let ok = false
    for (const k of digests) ok = timingSafeEqual(d, k) || ok
    return ok ? undefined : unauthorized('the API key is not valid')
  }
}

const unauthorized = (message: string) => json(401, errorBody('unauthorized', message), { 'www-authenticate': 'Bearer' })
