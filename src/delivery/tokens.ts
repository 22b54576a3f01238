/**
 * Short-lived, topic-scoped tokens for WebSocket clients: HS256 JWTs (jose) signed with
 * TOKEN_SECRET, carrying the topics the holder may subscribe to. A backend holding an API key
 * mints them; browsers only ever see a token.
 */
import { SignJWT, errors, jwtVerify } from 'jose'

const ISSUER = 'parcelcast'
const AUDIENCE = 'parcelcast:ws'

export interface TokenClaims {
  sub: string | null
  topics: string[]
  exp: number
}

export class TokenError extends Error {
  constructor(readonly code: 'token_expired' | 'token_invalid', message: string) {
    super(message)
  }
}

export function createTokens(secret: string) {
  // Imported once: given the raw bytes, jose imports a CryptoKey on every call (a fifth of a
  // verify's cost, which every connecting socket pays).
  const keyReady = crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify'])
  return {
    async mint({ sub, topics, ttlSeconds }: { sub: string | null; topics: string[]; ttlSeconds: number }): Promise<{ token: string; expiresAt: string }> {
      const now = Math.floor(Date.now() / 1000)
      const jwt = new SignJWT({ topics }).setProtectedHeader({ alg: 'HS256' }).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt(now).setExpirationTime(now + ttlSeconds)
      if (sub) jwt.setSubject(sub)
      return { token: await jwt.sign(await keyReady), expiresAt: new Date((now + ttlSeconds) * 1000).toISOString() }
    },

    async verify(token: string): Promise<TokenClaims> {
      try {
        const { payload } = await jwtVerify(token, await keyReady, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'] })
        const topics = payload.topics
        if (!Array.isArray(topics) || !topics.every((t) => typeof t === 'string')) throw new TokenError('token_invalid', 'the token carries no topic list')
        return { sub: payload.sub ?? null, topics, exp: payload.exp! }
      } catch (err) {
        if (err instanceof TokenError) throw err
        if (err instanceof errors.JWTExpired) throw new TokenError('token_expired', 'the token has expired; ask your backend for a new one')
        throw new TokenError('token_invalid', 'the token is not valid')
      }
    }
  }
}

export type Tokens = ReturnType<typeof createTokens>
