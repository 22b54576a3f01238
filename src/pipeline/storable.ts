/**
 * What PostgreSQL stores as given, checked once at every entry (HTTP bodies, carrier answers,
 * carrier pushes, cursors, tokens) so that no value is refused by the database later — where
 * a refusal would fail a whole transaction, and with group commit, other callers' work too.
 *
 *   - text: no NUL (a `text` value cannot hold U+0000, and `\u0000` in JSON cannot become
 *     text) and no unpaired UTF-16 surrogate (not encodable as UTF-8, and PostgreSQL's JSON
 *     parser refuses the escape);
 *   - JSON (stored as `json`, e.g. an event's `raw`): every key and string as above, nesting at
 *     most MAX_JSON_DEPTH deep (PostgreSQL parses JSON recursively; so do validators);
 *   - instants: see identity.ts (calendar dates, years 1000-9999 in UTC once the offset is applied).
 *
 * The checks are native string scans, O(length), without allocation: they run on every event.
 */
import { ValidationError } from '../errors.ts'

/** Deepest nesting accepted in any JSON document: a request body, a carrier's event. */
export const MAX_JSON_DEPTH = 32

export const UNSTORABLE_TEXT = 'must not contain NUL characters or unpaired UTF-16 surrogates'

export function isStorableText(s: string): boolean {
  return s.indexOf('\u0000') === -1 && s.isWellFormed()
}

/** `s` made storable for a message or a log: NUL spelled `\u0000`, an unpaired surrogate replaced by U+FFFD. */
export function storableCopy(s: string): string {
  return isStorableText(s) ? s : s.replaceAll('\u0000', '\\u0000').toWellFormed()
}

/** `value` when it is storable text (or absent), else a ValidationError (HTTP 400) naming `field`. */
export function storable<T extends string | null | undefined>(field: string, value: T): T {
  if (typeof value === 'string' && !isStorableText(value)) throw new ValidationError(field, UNSTORABLE_TEXT)
  return value
}

/**
 * The first place in a JSON value that PostgreSQL would not store, as `{path, message}`
 * (`path` like `a.b[2].c`, empty for the value itself), or null when all of it is storable.
 * Depth counts containers: `{}` is 1, `{"a":[]}` is 2.
 */
export function jsonProblem(value: unknown, maxDepth = MAX_JSON_DEPTH): { path: string; message: string } | null {
  const found = walk(value, maxDepth)
  if (!found) return null
  // Segments were collected innermost first, on the way out: no path is built for storable input.
  let path = ''
  for (let i = found.at.length - 1; i >= 0; i--) {
    const k = found.at[i]!
    path += typeof k === 'number' ? `[${k}]` : path ? `.${k}` : k
  }
  return { path, message: found.message }
}

function walk(value: unknown, depthLeft: number): { at: (string | number)[]; message: string } | null {
  if (typeof value === 'string') return isStorableText(value) ? null : { at: [], message: UNSTORABLE_TEXT }
  if (typeof value !== 'object' || value === null) return null
  if (depthLeft === 0) return { at: [], message: `nests deeper than ${MAX_JSON_DEPTH} levels` }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = walk(value[i], depthLeft - 1)
      if (p) return (p.at.push(i), p)
    }
    return null
  }
  for (const key in value) {
    if (!isStorableText(key)) return { at: [key], message: `has a key that ${UNSTORABLE_TEXT}` }
    const p = walk((value as Record<string, unknown>)[key], depthLeft - 1)
    if (p) return (p.at.push(key), p)
  }
  return null
}

/**
 * Whether a JSON text nests deeper than `max`, found by one pass over its characters before it
 * is parsed: a document 100,000 levels deep parses, but every recursive walk over it afterwards
 * (schema validation, PostgreSQL) overflows its stack.
 */
export function jsonTooDeep(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 34) {
      // A string: jump to its closing quote natively (one preceded by an even run of backslashes).
      let end = text.indexOf('"', i + 1)
      for (;;) {
        if (end === -1) return false // unterminated: JSON.parse refuses it
        let slashes = 0
        while (text.charCodeAt(end - 1 - slashes) === 92) slashes++
        if (slashes % 2 === 0) break
        end = text.indexOf('"', end + 1)
      }
      i = end
    } else if (c === 91 || c === 123) {
      if (++depth > max) return true
    } else if (c === 93 || c === 125) depth--
  }
  return false
}
