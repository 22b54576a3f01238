/**
 * Standard Webhooks signatures (contract §9): `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "<id>.<timestamp>.<body>">`, keyed with the secret's bytes (base64 after `whsec_`); one
 * signature per live secret, space-separated, so a receiver holding either secret verifies the
 * message during a rotation. Any Standard Webhooks library verifies these (the tests use the
 * official `standardwebhooks` package).
 */
import { createHmac, randomBytes } from 'node:crypto'

const PREFIX = 'whsec_'

/** A new secret: `whsec_` + base64 of 32 random bytes. */
export function newSecret(): string {
  return PREFIX + randomBytes(32).toString('base64')
}

/** The `webhook-signature` header for one attempt, signed with every given secret. */
export function sign(secrets: readonly string[], id: string, timestamp: number, body: string): string {
  const content = `${id}.${timestamp}.${body}`
  return secrets
    .map(
      (s) =>
        `v1,${createHmac('sha256', Buffer.from(s.slice(PREFIX.length), 'base64'))
          .update(content)
          .digest('base64')}`
    )
    .join(' ')
}

/** The headers of one attempt: `timestamp` is this attempt's, in Unix seconds. */
export function webhookHeaders(secrets: readonly string[], id: string, timestamp: number, body: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': 'parcelcast-webhooks/0.1',
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': sign(secrets, id, timestamp, body)
  }
}
