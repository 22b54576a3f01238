/**
 * What an ack names (contract §8): every unread notification up to a seq, or some by id — the
 * same rules for `POST /v1/users/:userId/notifications/ack` and the socket's `ack` op.
 */
import { ValidationError } from '../errors.ts'

export const MAX_ACK_IDS = 1000
const MAX_SEQ = 2_147_483_647
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export type AckTarget = { upToSeq: number } | { ids: string[] }

/** `seqField` is `upToSeq` over REST, `seq` on the socket. */
export function parseAckTarget(seq: unknown, ids: unknown, seqField: string): AckTarget {
  if (seq !== undefined && ids !== undefined) throw new ValidationError(seqField, `give ${seqField} or ids, not both`)
  if (seq !== undefined) {
    if (!Number.isInteger(seq) || (seq as number) < 0 || (seq as number) > MAX_SEQ)
      throw new ValidationError(seqField, `must be a whole number from 0 to ${MAX_SEQ}`)
    return { upToSeq: seq as number }
  }
  if (ids !== undefined) {
    if (!Array.isArray(ids) || ids.length < 1 || ids.length > MAX_ACK_IDS) throw new ValidationError('ids', `must list 1 to ${MAX_ACK_IDS} notification ids`)
    ids.forEach((id, i) => {
      if (typeof id !== 'string' || !UUID_RE.test(id)) throw new ValidationError(`ids[${i}]`, 'must be a notification id (a UUID)')
    })
    return { ids: [...new Set((ids as string[]).map((id) => id.toLowerCase()))] }
  }
  throw new ValidationError(seqField, `is required: ${seqField} (every notification up to it) or ids`)
}
