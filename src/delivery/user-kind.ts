/**
 * User topics, `user:<userId>` (contract §8): the snapshot is `user {userId, lastSeq, unread}`
 * with, without `since`, the unread notifications (at most 1,000, oldest first; when more are
 * unread, the handoff is at the last one listed and everything after it follows as frames) or,
 * with `since`, every notification after it (bounded the same way; `truncated: true` when
 * retention removed some of them). Notifications are `{"type":"notification",…}` frames; the
 * sequencer, gap repair and reconcile are the hub's, as for shipments; a gap over notifications
 * retention deleted is skipped (`firstRetained`): sockets see the jump in seq.
 *
 * A user needs no row anywhere to be subscribed to: one never notified has lastSeq 0.
 * Frames sent and snapshots' notifications are reported to the deliveredAt writer; sockets
 * subscribed count for the user's presence; `{"op":"ack",…}` marks notifications read.
 */
import type { DeliveredMarks } from '../notifications/delivered.ts'
import { parseAckTarget } from '../notifications/ack.ts'
import { userTopic } from '../notifications/model.ts'
import { SNAPSHOT_NOTIFICATION_LIMIT, type NotificationQueries } from '../notifications/queries.ts'
import { seqFrame, type TopicKind } from './topic-kind.ts'

const PREFIX = 'user:'
const userOf = (topic: string) => topic.slice(PREFIX.length)

export function createUserKind({
  queries,
  delivered,
  presence
}: {
  queries: NotificationQueries
  delivered?: Pick<DeliveredMarks, 'add'>
  presence?: { join(userId: string, connId: string): void; leave(userId: string, connId: string): void }
}): TopicKind<string> {
  const frame = (topic: string, seq: number, data: string) => seqFrame('notification', topic, seq, data)
  return {
    name: 'user',
    async snapshot(topic, since) {
      if (topic.kind !== 'user') throw new Error(`${topic.name} is not a user topic`)
      const { userId } = topic
      const s = await queries.snapshot(userId, since)
      const last = s.items.at(-1)
      // Bounded: when the list is full and more follow, the handoff is at its last item.
      const full = s.items.length === SNAPSHOT_NOTIFICATION_LIMIT && last!.seq < s.lastSeq && (since !== undefined || s.unread > s.items.length)
      const lastSeq = full ? last!.seq : s.lastSeq
      const truncated = since !== undefined && since < s.lastSeq && (s.firstAfter === null || s.firstAfter > since + 1)
      const unsent = delivered ? s.items.filter((n) => n.deliveredAt === null).map((n) => n.seq) : []
      return {
        ref: userId,
        lastSeq,
        latest: s.lastSeq,
        body: { user: { userId, lastSeq, unread: s.unread }, notifications: s.items, ...(truncated ? { truncated: true } : {}) },
        sent:
          unsent.length > 0
            ? () => {
                for (const seq of unsent) delivered!.add(userId, seq)
              }
            : undefined
      }
    },
    notFound: (topic) => `no ${topic.name}`,
    async fetch(topic, userId, after, upto, limit) {
      const rows = await queries.frames(userId, after, upto, limit)
      return rows.map((r) => ({ seq: r.seq, frame: frame(topic, r.seq, r.data) }))
    },
    // Retention (notifications/retention.ts) deletes a user's oldest notifications: a gap over
    // them is skipped, not waited for.
    firstRetained: (_topic, userId) => queries.firstRetained(userId),
    async lastSeqs(topics) {
      const found = await queries.lastSeqs(topics.map(userOf))
      return new Map([...found].map(([userId, seq]) => [userTopic(userId), seq]))
    },
    frame,
    check: (seq, data) => (data as { notification?: { seq?: unknown } }).notification?.seq === seq,
    sent: delivered ? (topic, seq) => delivered.add(userOf(topic), seq) : undefined,
    onSubscribe: presence ? (topic, connId) => presence.join(userOf(topic), connId) : undefined,
    onUnsubscribe: presence ? (topic, connId) => presence.leave(userOf(topic), connId) : undefined,
    commands: {
      async ack(topic, f) {
        if (topic.kind !== 'user') throw new Error(`${topic.name} is not a user topic`)
        const target = parseAckTarget(f.seq, f.ids, 'seq')
        const { unread } = await queries.ack(topic.userId, target)
        return { type: 'acked', topic: topic.name, ...target, unread }
      }
    }
  }
}
