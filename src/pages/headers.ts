/**
 * The headers every page and page asset leaves with. The Content-Security-Policy allows this
 * origin only — scripts and styles from files served here, no inline script or style, no
 * frames, no plugins — so a page cannot load anything off-host, and a tracking number or
 * description shown on it cannot run as script even if some escaping were missed.
 * `Referrer-Policy: no-referrer`: the tracking page's URL carries its token (a capability URL),
 * which must not leak to any link it shows.
 */
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'"
].join('; ')

export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin'
})

/** An HTML page: never cached (the tracking page's answer depends on its token). */
export function htmlResponse(status: number, html: string): Response {
  return new Response(html, { status, headers: { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' } })
}

/** A JSON document of the pages (OpenAPI, AsyncAPI), with the same headers. */
export function jsonDocument(body: unknown): Response {
  return new Response(JSON.stringify(body), {
    headers: { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-cache' }
  })
}
