/** `POST /v1/tokens`: mint a short-lived WebSocket token limited to the given topics. */
import { Elysia, t } from 'elysia'
import { ValidationError } from '../../errors.ts'
import { parseTopic } from '../../delivery/topics.ts'
import { MAX_SUB_LENGTH, MAX_TOKEN_TOPICS, MAX_TOKEN_TTL_SECONDS, MAX_TOPIC_LENGTH, type Tokens } from '../../delivery/tokens.ts'
import { IdentityError } from '../../pipeline/identity.ts'
import { storable } from '../../pipeline/storable.ts'

export const DEFAULT_TOKEN_TTL_SECONDS = 900

export function tokenRoutes(tokens: Tokens) {
  return new Elysia({ name: 'tokens' }).post(
    '/v1/tokens',
    async ({ body, set }) => {
      const topics = body.topics.map((raw, i) => {
        try {
          return parseTopic(raw, { wildcard: true }).name
        } catch (err) {
          if (err instanceof IdentityError) throw new ValidationError(`topics[${i}]`, err.message)
          throw err
        }
      })
      const ttlSeconds = body.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS
      const sub = storable('sub', body.sub?.trim() || null)
      const { token, expiresAt } = await tokens.mint({ sub, topics: [...new Set(topics)], ttlSeconds })
      set.status = 201
      return { token, expiresAt, sub, topics: [...new Set(topics)] }
    },
    {
      body: t.Object({
        sub: t.Optional(t.Nullable(t.String({ maxLength: MAX_SUB_LENGTH, description: 'who the token is for (a user id, say)' }))),
        topics: t.Array(t.String({ minLength: 1, maxLength: MAX_TOPIC_LENGTH }), {
          minItems: 1,
          maxItems: MAX_TOKEN_TOPICS,
          description: `shipment:<carrier>:<trackingNumber>, shipment:* or user:<userId>; at most ${MAX_TOKEN_TOPICS}`
        }),
        ttlSeconds: t.Optional(
          t.Integer({ minimum: 1, maximum: MAX_TOKEN_TTL_SECONDS, description: `default ${DEFAULT_TOKEN_TTL_SECONDS}, at most ${MAX_TOKEN_TTL_SECONDS}` })
        )
      }),
      detail: { summary: 'Mint a short-lived, topic-scoped WebSocket token', tags: ['delivery'] }
    }
  )
}
