/** The migration runner: once per file, under a lock, refusing edited history. */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { cp, mkdtemp, readdir, rm, writeFile, appendFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaultMigrationsDir, migrate } from '../../src/db/migrate.ts'
import { MigrationError } from '../../src/errors.ts'
import { createTestDb, silentLog, type TestDb } from '../support/db.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

let db: TestDb
let dir: string
beforeAll(async () => {
  db = await createTestDb({ migrated: false })
  dir = await mkdtemp(join(tmpdir(), 'pc-migrations-'))
})
afterAll(async () => {
  await db.drop()
  await rm(dir, { recursive: true, force: true })
})

describe('migrate', () => {
  test('3 processes migrating one database at once apply every file exactly once', async () => {
    const procs = Array.from({ length: 3 }, () =>
      Bun.spawn([process.execPath, join(import.meta.dir, '../../src/db/migrate-cli.ts')], {
        env: { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'info' },
        stdout: 'pipe',
        stderr: 'pipe'
      })
    )
    const codes = await Promise.all(procs.map((p) => p.exited))
    const outputs = await Promise.all(procs.map((p) => new Response(p.stdout).text()))
    expect(codes).toEqual([0, 0, 0])
    const files = (await readdir(defaultMigrationsDir)).filter((f) => f.endsWith('.sql'))
    const applied = outputs
      .join('')
      .split('\n')
      .filter((l) => l.includes('"migration applied"'))
    expect(applied.length).toBe(files.length)
    const rows = await db.sql<{ name: string }[]>`select name from schema_migrations order by version`
    expect(rows.map((r) => r.name)).toEqual(files.sort())
    const [t] = await db.sql`select count(*)::int as n from information_schema.tables where table_name in ('shipments', 'tracking_events', 'carrier_configs')`
    expect(t!.n).toBe(3)
  })

  test('a pending file is applied; an edited applied file is refused by name; a failing file rolls back', async () => {
    await cp(defaultMigrationsDir, dir, { recursive: true })
    await writeFile(join(dir, '000900_extra.sql'), 'create table extra_thing (id int);')
    expect((await migrate(db.sql, silentLog, dir)).applied).toEqual(['000900_extra.sql'])
    expect((await migrate(db.sql, silentLog, dir)).applied).toEqual([])

    await appendFile(join(dir, '000900_extra.sql'), '\n-- an innocent-looking edit\n')
    const edited = await migrate(db.sql, silentLog, dir).catch((e) => e)
    expect(edited).toBeInstanceOf(MigrationError)
    expect(edited.message).toContain('000900_extra.sql was edited after it was applied')

    await rm(join(dir, '000900_extra.sql'))
    await writeFile(join(dir, '000901_broken.sql'), 'create table half_done (id int);\nselect no_such_function();')
    const broken = await migrate(db.sql, silentLog, dir).catch((e) => e)
    expect(broken.message).toContain('000901_broken.sql failed and was rolled back')
    const [t] = await db.sql`select count(*)::int as n from information_schema.tables where table_name = 'half_done'`
    expect(t!.n).toBe(0)
  })

  test('a badly named file is refused before anything runs', async () => {
    const bad = await mkdtemp(join(tmpdir(), 'pc-bad-'))
    await writeFile(join(bad, '1_init.sql'), 'select 1;')
    const err = await migrate(db.sql, silentLog, bad).catch((e) => e)
    expect(err.message).toContain('1_init.sql must be named NNNNNN_lowercase_name.sql')
    await rm(bad, { recursive: true, force: true })
  })
})
