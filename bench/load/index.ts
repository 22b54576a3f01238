/**
 * `bun run load <scenario>`: runs bench/load/<scenario>.ts, which reports and exits non-zero when
 * one of its thresholds fails. Without a name, lists the scenarios.
 */
import { readdir } from 'node:fs/promises'

const name = process.argv[2]
const scenarios = (await readdir(import.meta.dir))
  .filter((f) => f.endsWith('.ts') && f !== 'index.ts')
  .map((f) => f.slice(0, -3))
  .sort()
if (!name || !scenarios.includes(name)) {
  console.error(`usage: bun run load <scenario>; scenarios: ${scenarios.join(', ')}`)
  process.exit(2)
}
await import(`./${name}.ts`)
