/**
 * Short-lived, topic-scoped tokens for WebSocket clients: HS256 JWTs (fast-jwt) signed with
 * TOKEN_SECRET, carrying the topics the holder may subscribe to. A backend holding an API key
 * mints them; browsers only ever see a token.
 *
 * Every connecting socket pays one verification, on the event loop that also delivers everyone
 * else's events, so its cost is a reconnect storm's: fast-jwt checks the HMAC synchronously with
 * node:crypto. jose, used before, goes through WebCrypto's asynchronous verify; with 5,000
 * sockets subscribing at once that took 0.4–0.5 s more of the process's CPU (measured on
 * 2026-12-02, docs/ARCHITECTURE.md). The tokens are standard JWTs either way: the tests mint some
 * with jose and check that they verify here.
 */
import { createSigner, createVerifier, TokenError as JwtError } from 'fast-jwt'

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
  const sign = createSigner({ key: secret, algorithm: 'HS256', iss: ISSUER, aud: AUDIENCE })
  // Only HS256 with this secret, this issuer and audience, and an expiry; `none` and every other
  // algorithm are refused.
  const verify = createVerifier({ key: secret, algorithms: ['HS256'], allowedIss: ISSUER, allowedAud: AUDIENCE, requiredClaims: ['exp'] })
  return {
    async mint({ sub, topics, ttlSeconds }: { sub: string | null; topics: string[]; ttlSeconds: number }): Promise<{ token: string; expiresAt: string }> {
      const now = Math.floor(Date.now() / 1000)
      const token = sign({ topics, ...(sub ? { sub } : {}), iat: now, exp: now + ttlSeconds })
      return { token, expiresAt: new Date((now + ttlSeconds) * 1000).toISOString() }
    },

    async verify(token: string): Promise<TokenClaims> {
      let payload: { sub?: unknown; topics?: unknown; exp: number }
      try {
        payload = verify(token)
      } catch (err) {
        if (err instanceof JwtError && err.code === JwtError.codes.expired) throw new TokenError('token_expired', 'the token has expired; ask your backend for a new one')
        throw new TokenError('token_invalid', 'the token is not valid')
      }
      const topics = payload.topics
      if (!Array.isArray(topics) || !topics.every((t) => typeof t === 'string')) throw new TokenError('token_invalid', 'the token carries no topic list')
      return { sub: typeof payload.sub === 'string' ? payload.sub : null, topics, exp: payload.exp }
    }
  }
}

export type Tokens = ReturnType<typeof createTokens>
