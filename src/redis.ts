/**
 * The Redis client. Redis is the disposable delivery layer, so this client never makes a
 * caller wait for it: no offline queue (a command while disconnected fails at once), a
 * per-command timeout, and endless background reconnects with capped backoff.
 */
import { createClient } from 'redis'
import type { Logger } from './log.ts'
import type { Redis } from './pipeline/stream.ts'

export function createRedis(url: string, log: Logger, commandTimeoutMs: number): Redis {
  const client = createClient({
    url,
    disableOfflineQueue: true,
    commandOptions: { timeout: commandTimeoutMs },
    socket: { connectTimeout: 2000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** Math.min(retries, 5), 2000) }
  }) as unknown as Redis
  let down = false
  client.on('error', (err: Error) => {
    if (!down) log.warn({ component: 'redis', err: err.message }, 'redis unavailable; events stay in the outbox until it is back')
    down = true
  })
  client.on('ready', () => {
    if (down) log.info({ component: 'redis' }, 'redis is back')
    down = false
  })
  // Not awaited: the service starts and ingests with Redis down.
  client.connect().catch(() => {})
  return client
}

export async function closeRedis(client: Redis): Promise<void> {
  try {
    if (client.isOpen) await client.close()
  } catch {
    client.destroy()
  }
}
