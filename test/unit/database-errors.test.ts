import { describe, expect, test } from 'bun:test'
import { isDatabaseUnavailable } from '../../src/errors.ts'

const pg = (code: string, message = 'x') => Object.assign(new Error(message), { code })

describe('which database errors are "unavailable" (503) rather than a bug (500)', () => {
  test('a server that will not take the connection, or cannot do it now', () => {
    for (const e of [
      pg('55000', 'database "x" is not currently accepting connections'),
      pg('3D000', 'database "x" does not exist'),
      pg('28P01', 'password authentication failed for user "x"'),
      pg('28000', 'role "x" does not exist'),
      pg('57P01'),
      pg('53300'),
      pg('08006'),
      pg('57014'),
      pg('ECONNREFUSED')
    ])
      expect(isDatabaseUnavailable(e), `${e.code} ${e.message}`).toBe(true)
  })

  test('55000 raised by a query for a mistake of ours stays a 500, as do syntax and constraint errors', () => {
    for (const e of [pg('55000', 'currval of sequence "s" is not yet defined in this session'), pg('42601'), pg('23505'), pg('22P02'), new Error('plain')])
      expect(isDatabaseUnavailable(e), `${(e as { code?: string }).code} ${e.message}`).toBe(false)
  })
})
