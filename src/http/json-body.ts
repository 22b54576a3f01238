/**
 * The one body parser of the JSON routes: `application/json` (or `+json`, or no Content-Type
 * at all) is read as JSON; nesting deeper than MAX_JSON_DEPTH is refused before parsing
 * (400 `invalid_body`), because every recursive walk over a parsed document — schema
 * validation, PostgreSQL's JSON parser — would overflow its stack on one 100,000 levels deep;
 * any other Content-Type is a 415. Elysia's own parsers would also take forms and text.
 */
import { AppError } from '../errors.ts'
import { jsonTooDeep, MAX_JSON_DEPTH } from '../pipeline/storable.ts'

const JSON_TYPE_RE = /^application\/(?:[\w.+-]+\+)?json$/i

export async function parseJsonBody({ request }: { request: Request }, contentType: string): Promise<unknown> {
  if (request.body === null) return undefined
  if (contentType !== '' && !JSON_TYPE_RE.test(contentType.trim())) {
    throw new AppError('unsupported_media_type', `the body must be JSON, sent with Content-Type: application/json (not ${contentType.slice(0, 100)})`, {
      status: 415
    })
  }
  const text = await request.text()
  if (text === '') return undefined
  if (jsonTooDeep(text)) throw new AppError('invalid_body', `the request body nests deeper than ${MAX_JSON_DEPTH} levels`, { status: 400 })
  try {
    return JSON.parse(text)
  } catch {
    throw new AppError('invalid_body', 'the request body is not valid JSON', { status: 400 })
  }
}
