/**
 * The pages (contract §10), all public: `/` the operator dashboard, `/t/:trackingNumber` a
 * recipient's tracking page, `/docs` the API reference, `/openapi.json` (also `/openapi`) and
 * `/asyncapi.json`, and their scripts and stylesheet under `/assets/`. Every asset is a file of
 * src/pages/assets served from here: nothing a page loads comes from another host.
 *
 * The tracking page's token is checked here before the page is sent: it must verify, and grant
 * exactly the one shipment topic whose tracking number the URL names, and that shipment must
 * exist; otherwise a plain 403/404 page with no data. The page itself then reads the shipment
 * through that token over the WebSocket, like any other client.
 */
import { readFileSync } from 'node:fs'
import { Elysia } from 'elysia'
import type { Sql } from '../db/client.ts'
import { parseTopic } from '../delivery/topics.ts'
import { TokenError, type Tokens } from '../delivery/tokens.ts'
import { IdentityError, normalizeTrackingNumber } from '../pipeline/identity.ts'
import { asyncApiDocument } from './asyncapi.ts'
import { htmlResponse, jsonDocument, SECURITY_HEADERS } from './headers.ts'
import { dashboardPage, docsPage, refusalPage, trackingPage } from './html.ts'

const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' }
/** The assets, read once at start: a fixed list, so no request names a file on disk. */
const ASSET_NAMES = ['dashboard.js', 'tracking.js', 'docs.js', 'pages.css'] as const
const assets = new Map<string, string>(ASSET_NAMES.map((name) => [name, readFileSync(new URL(`./assets/${name}`, import.meta.url), 'utf8')]))

export function pageRoutes({ sql, tokens, openApi }: { sql: Sql; tokens: Tokens; openApi: () => unknown }) {
  const dashboard = dashboardPage()
  const docs = docsPage()
  const asyncApi = asyncApiDocument()
  const hidden = { detail: { hide: true } }
  const page = (summary: string) => ({ detail: { summary, tags: ['pages'] } })

  return (
    new Elysia({ name: 'pages' })
      .get('/', () => htmlResponse(200, dashboard), page('The operator dashboard (HTML; the API key is asked for in the page)'))
      .get('/docs', () => htmlResponse(200, docs), page('The API reference (HTML), rendered from /openapi.json'))
      // Browsers ask for it on every page; no icon, and no 404 in their consoles.
      .get('/favicon.ico', () => new Response(null, { status: 204, headers: { ...SECURITY_HEADERS, 'cache-control': 'max-age=86400' } }), hidden)
      .get('/openapi.json', () => jsonDocument(openApi()), page('This OpenAPI 3.1 document'))
      .get('/openapi', () => jsonDocument(openApi()), page('This OpenAPI 3.1 document (the same as /openapi.json)'))
      .get('/asyncapi.json', () => jsonDocument(asyncApi), page('The AsyncAPI 3 document of the WebSocket protocol'))
      .get(
        '/assets/:name',
        ({ params }) => {
          const body = assets.get(params.name)
          if (body === undefined)
            return new Response('not found', { status: 404, headers: { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' } })
          const type = TYPES[params.name.slice(params.name.lastIndexOf('.') + 1)]!
          return new Response(body, { headers: { ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-cache' } })
        },
        hidden
      )
      .get(
        '/t/:trackingNumber',
        async ({ params, request }) => {
          const refused = (status: number, title: string, message: string) => htmlResponse(status, refusalPage(title, message))
          let trackingNumber: string
          try {
            trackingNumber = normalizeTrackingNumber(params.trackingNumber ?? '')
          } catch (err) {
            if (err instanceof IdentityError) return refused(404, 'No such parcel', 'This tracking link does not name a parcel.')
            throw err
          }
          // The first `token` of the query, as the page's own script reads it (URLSearchParams.get).
          const token = new URL(request.url).searchParams.get('token') ?? ''
          if (!token) return refused(403, 'Link not valid', 'This tracking link has no access token. Ask the sender for a new link.')
          let topics: string[]
          try {
            topics = (await tokens.verify(token)).topics
          } catch (err) {
            if (!(err instanceof TokenError)) throw err
            return err.code === 'token_expired'
              ? refused(403, 'Link expired', 'This tracking link has expired. Ask the sender for a new link.')
              : refused(403, 'Link not valid', 'This tracking link is not valid. Ask the sender for a new link.')
          }
          const topic = onlyShipmentTopic(topics)
          if (!topic || topic.trackingNumber !== trackingNumber) return refused(403, 'Link not valid', 'This tracking link is not valid for this parcel.')
          const [found] =
            await sql`select 1 from shipments where carrier = ${topic.carrier} and tracking_number = ${topic.trackingNumber} and deleted_at is null`
          if (!found) return refused(404, 'No such parcel', 'This parcel is no longer tracked.')
          return htmlResponse(200, trackingPage(trackingNumber, topic.name))
        },
        page("A parcel's tracking page for its recipient (HTML), opened with the token of POST /v1/shipments/:id/tracking-link")
      )
  )
}

/** The tracking page serves a token for exactly one shipment: never a wildcard or user token. */
function onlyShipmentTopic(topics: string[]) {
  if (topics.length !== 1) return null
  try {
    const topic = parseTopic(topics[0]!)
    return topic.kind === 'shipment' ? topic : null
  } catch {
    return null
  }
}
