/** ENGINE=redis|memory|auto (contract §7): what the configuration decides, and auto's probe. */
import { describe, expect, test } from 'bun:test'
import { answersPing, chooseEngine, configuredEngine } from '../../src/engine/select.ts'
import { testRedisUrl } from '../support/engine.ts'
import { freePort } from '../support/redis.ts'

describe('engine selection', () => {
  test('an explicit ENGINE, or a REDIS_URL, decides without a probe', () => {
    expect(configuredEngine({ ENGINE: 'memory', REDIS_URL: undefined })).toEqual({ kind: 'memory', reason: 'ENGINE=memory' })
    expect(configuredEngine({ ENGINE: 'memory', REDIS_URL: 'redis://x:1' })?.kind).toBe('memory')
    expect(configuredEngine({ ENGINE: 'redis', REDIS_URL: undefined })).toMatchObject({ kind: 'redis', url: 'redis://127.0.0.1:6379' })
    expect(configuredEngine({ ENGINE: 'redis', REDIS_URL: 'redis://x:1' })).toMatchObject({ kind: 'redis', url: 'redis://x:1' })
    expect(configuredEngine({ ENGINE: 'auto', REDIS_URL: 'redis://x:1' })).toMatchObject({ kind: 'redis', url: 'redis://x:1', reason: 'REDIS_URL is set' })
    expect(configuredEngine({ ENGINE: 'auto', REDIS_URL: undefined })).toBeNull()
  })

  test('auto without REDIS_URL: memory when nothing answers at the default address', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`
    expect(await answersPing(url, 300)).toBe(false)
    expect(await chooseEngine({ ENGINE: 'auto', REDIS_URL: undefined }, { defaultUrl: url })).toMatchObject({ kind: 'memory' })
  })

  test('auto without REDIS_URL: memory when the default address takes the connection and says nothing', async () => {
    const silent = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    try {
      const url = `redis://127.0.0.1:${silent.port}`
      expect(await answersPing(url, 200)).toBe(false)
      expect((await chooseEngine({ ENGINE: 'auto', REDIS_URL: undefined }, { defaultUrl: url, probeMs: 200 })).kind).toBe('memory')
    } finally {
      silent.stop(true)
    }
  })

  const withRedis = testRedisUrl === null ? test.skip : test
  withRedis(
    `auto without REDIS_URL: Redis when it answers at the default address${testRedisUrl === null ? ' — skipped: this run has no Redis' : ''}`,
    async () => {
      expect(await answersPing(testRedisUrl!, 1000)).toBe(true)
      expect(await chooseEngine({ ENGINE: 'auto', REDIS_URL: undefined }, { defaultUrl: testRedisUrl!, probeMs: 1000 })).toMatchObject({
        kind: 'redis',
        url: testRedisUrl
      })
    }
  )
})
