/**
 * `notification_outbox` → `notifications:stream`: the outbox relay's source for notifications
 * (pipeline/outbox.ts runs it, as it runs the events' one). Rows whose notification retention
 * has deleted are deleted with it (retention.ts), so none waits here for a row that is gone.
 */
import type { Engine } from '../engine/engine.ts'
import { countBacklog, type OutboxSource } from '../pipeline/outbox.ts'
import { NOTIFICATION_RECORD_COLUMNS, recordOf, toMessage, type NotificationMessage, type NotificationRow } from './model.ts'
import { appendNotifications } from './publish.ts'

export function notificationOutbox(engine: Engine, maxLen: number): OutboxSource<NotificationMessage> {
  return {
    name: 'notifications',
    lockKey: '7284911003771516',
    async read(tx, graceMs, limit) {
      const rows = await tx<NotificationRow[]>`
        select ${tx.unsafe(NOTIFICATION_RECORD_COLUMNS)}
        from notification_outbox o
        cross join lateral (
          select * from notifications n
          where n.user_id = o.user_id and n.seq = o.seq and n.created_at < now() - make_interval(secs => ${graceMs / 1000})
          limit 1
        ) n
        order by o.user_id, o.seq
        limit ${limit}
        for update of o skip locked`
      return rows.map((r) => ({
        ref: { key: r.user_id, seq: r.seq },
        message: toMessage(recordOf(r))
      }))
    },
    append: (messages) => appendNotifications(engine, messages, maxLen),
    backlog: (sql) => countBacklog(sql, 'notification_outbox')
  }
}
