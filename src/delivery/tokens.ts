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
import { ValidationError } from '../errors.ts'
import { isStorableText } from '../pipeline/storable.ts'

const ISSUER = 'parcelcast'
const AUDIENCE = 'parcelcast:ws'

/** Bounds of what a token carries; the verifier refuses a token beyond them even if its signature holds. */
export const MAX_TOKEN_TTL_SECONDS = 86_400
export const MAX_TOKEN_TOPICS = 100
export const MAX_TOPIC_LENGTH = 200
export const MAX_SUB_LENGTH = 128
// 100 topics of 200 characters, base64url-encoded, and the rest: a bigger token is refused
// before its signature is computed.
const MAX_TOKEN_LENGTH = 32 * 1024
// Clock skew allowed between the minting process and this one.
const SKEW_SECONDS = 60

/**
 * What a token's holder is shown of a shipment: `full` (your own clients: the shipment as the
 * REST API shows it) or `recipient` (a tracking link's holder, someone outside: its tracking
 * number, status, carrier status, last event time, expected delivery and events — not your
 * `reference`, its id, poll errors or a shipment you deleted).
 */
export type TokenView = 'full' | 'recipient'

export interface TokenClaims {
  sub: string | null
  topics: string[]
  exp: number
  view: TokenView
}

export class TokenError extends Error {
  constructor(
    readonly code: 'token_expired' | 'token_invalid',
    message: string
  ) {
    super(message)
  }
}

export function createTokens(secret: string) {
  const sign = createSigner({ key: secret, algorithm: 'HS256', iss: ISSUER, aud: AUDIENCE })
  // Only HS256 with this secret, and `iss`, `aud` and `exp` present and ours (fast-jwt checks
  // allowedIss/allowedAud only when the claim is there; requiredClaims makes it be there).
  // `none` and every other algorithm are refused.
  const verify = createVerifier({ key: secret, algorithms: ['HS256'], allowedIss: ISSUER, allowedAud: AUDIENCE, requiredClaims: ['iss', 'aud', 'exp'] })
  return {
    async mint({
      sub,
      topics,
      ttlSeconds,
      view = 'full'
    }: {
      sub: string | null
      topics: string[]
      ttlSeconds: number
      view?: TokenView
    }): Promise<{ token: string; expiresAt: string }> {
      if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TOKEN_TTL_SECONDS)
        throw new ValidationError('ttlSeconds', `must be a whole number from 1 to ${MAX_TOKEN_TTL_SECONDS}`)
      if (topics.length < 1 || topics.length > MAX_TOKEN_TOPICS) throw new ValidationError('topics', `must list 1 to ${MAX_TOKEN_TOPICS} topics`)
      const now = Math.floor(Date.now() / 1000)
      const token = sign({ topics, ...(sub ? { sub } : {}), ...(view === 'full' ? {} : { view }), iat: now, exp: now + ttlSeconds })
      return { token, expiresAt: new Date((now + ttlSeconds) * 1000).toISOString() }
    },

    async verify(token: string): Promise<TokenClaims> {
      if (token.length > MAX_TOKEN_LENGTH) throw new TokenError('token_invalid', 'the token is not valid')
      let payload: { sub?: unknown; topics?: unknown; view?: unknown; exp: number }
      try {
        payload = verify(token)
      } catch (err) {
        if (err instanceof JwtError && err.code === JwtError.codes.expired)
          throw new TokenError('token_expired', 'the token has expired; ask your backend for a new one')
        throw new TokenError('token_invalid', 'the token is not valid')
      }
      const topics = payload.topics
      if (
        !Array.isArray(topics) ||
        topics.length === 0 ||
        topics.length > MAX_TOKEN_TOPICS ||
        !topics.every((t) => typeof t === 'string' && t.length <= MAX_TOPIC_LENGTH)
      ) {
        throw new TokenError('token_invalid', `the token carries no topic list of 1 to ${MAX_TOKEN_TOPICS} topics`)
      }
      const sub = payload.sub
      if (sub !== undefined && (typeof sub !== 'string' || sub.length > MAX_SUB_LENGTH || !isStorableText(sub)))
        throw new TokenError('token_invalid', "the token's sub is not valid")
      // Signed by a holder of the secret, yet valid for longer than this service ever grants.
      if (payload.exp > Date.now() / 1000 + MAX_TOKEN_TTL_SECONDS + SKEW_SECONDS)
        throw new TokenError('token_invalid', 'the token is valid for longer than tokens may be')
      // An unknown view is refused rather than read as the full one.
      if (payload.view !== undefined && payload.view !== 'full' && payload.view !== 'recipient')
        throw new TokenError('token_invalid', "the token's view is not valid")
      return { sub: sub ?? null, topics, exp: payload.exp, view: payload.view === 'recipient' ? 'recipient' : 'full' }
    }
  }
}

export type Tokens = ReturnType<typeof createTokens>
