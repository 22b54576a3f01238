import { describe, expect, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { ConfigError } from '../../src/errors.ts'

const base = { API_KEYS: 'a-key-of-length' }

describe('config', () => {
  test('defaults are the contract’s', () => {
    const c = loadConfig(base)
    expect(c).toMatchObject({
      PORT: 3000,
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
      REDIS_URL: undefined,
      ENGINE: 'auto',
      CLAIM_IDLE_MS: 60000,
      POLL_BATCH_SIZE: undefined,
      API_KEYS: ['a-key-of-length'],
      PRESENCE_TTL_MS: 30000,
      NOTIFICATION_RETENTION_DAYS: 90
    })
    expect(Object.isFrozen(c)).toBe(true)
  })

  test('a bad value fails naming the variable', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ PORT: 'abc' }, /PORT/],
      [{ PORT: '70000' }, /PORT must be at most 65535/],
      [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL must be a URL starting with postgres:/],
      [{ REDIS_URL: 'nonsense' }, /REDIS_URL/],
      [{ ENGINE: 'etcd' }, /ENGINE must be redis, memory or auto/],
      [{ API_KEYS: '' }, /API_KEYS must list at least one key/],
      [{ API_KEYS: 'short' }, /API_KEYS: every key must be at least 8 characters/],
      [{ API_KEYS: 'first-key-1,second key-2' }, /API_KEYS: a key must not contain whitespace/],
      [{ API_KEYS: 'tab\tseparated-key' }, /API_KEYS: a key must not contain whitespace/],
      [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/],
      [{ CLAIM_IDLE_MS: '-1' }, /CLAIM_IDLE_MS/],
      [{ TOKEN_SECRET: 'too-short' }, /TOKEN_SECRET must be at least 32 characters/],
      [{ PRESENCE_TTL_MS: '10' }, /PRESENCE_TTL_MS must be at least 300/],
      [{ NOTIFICATION_RETENTION_DAYS: '0' }, /NOTIFICATION_RETENTION_DAYS must be at least 1/],
      [{ NOTIFICATION_RETENTION_INTERVAL_MS: 'soon' }, /NOTIFICATION_RETENTION_INTERVAL_MS must be a whole number/]
    ]
    for (const [env, message] of cases) {
      const run = () => loadConfig({ ...base, ...env })
      expect(run).toThrow(ConfigError)
      expect(run).toThrow(message)
    }
  })

  test('DATABASE: auto without DATABASE_URL, external with it, embedded only without it', () => {
    expect(loadConfig(base)).toMatchObject({ DATABASE: 'auto', PARCELCAST_DATA_DIR: '.parcelcast', PARCELCAST_PG_PORT: 54329 })
    expect(loadConfig({ ...base, DATABASE_URL: 'postgres://db.example/x' }).DATABASE).toBe('external')
    expect(loadConfig({ ...base, DATABASE: 'embedded', PARCELCAST_DATA_DIR: '/var/lib/pc', PARCELCAST_PG_PORT: '0' })).toMatchObject({
      DATABASE: 'embedded',
      PARCELCAST_DATA_DIR: '/var/lib/pc',
      PARCELCAST_PG_PORT: 0
    })
    expect(() => loadConfig({ ...base, DATABASE: 'embedded', DATABASE_URL: 'postgres://db.example/x' })).toThrow(
      /DATABASE=embedded .* DATABASE_URL must be unset/
    )
    expect(() => loadConfig({ ...base, DATABASE: 'sqlite' })).toThrow(/DATABASE must be auto, embedded or external/)
    expect(() => loadConfig({ ...base, PARCELCAST_PG_PORT: '70000' })).toThrow(/PARCELCAST_PG_PORT must be at most 65535/)
  })

  test('API_KEYS is a comma-separated list, blanks ignored', () => {
    expect(loadConfig({ API_KEYS: ' first-key-1, ,second-key-2 ' }).API_KEYS).toEqual(['first-key-1', 'second-key-2'])
  })

  test('the service refuses to start on bad configuration, naming the variable', async () => {
    const proc = Bun.spawn([process.execPath, `${import.meta.dir}/../../src/main.ts`], {
      env: { ...process.env, API_KEYS: 'a-key-of-length', PORT: 'eighty' },
      stdout: 'pipe',
      stderr: 'pipe'
    })
    expect(await proc.exited).toBe(2)
    expect(await new Response(proc.stderr).text()).toContain('PORT')
  })
})
