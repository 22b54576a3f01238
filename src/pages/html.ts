/**
 * The pages' HTML: shells that load one script and one stylesheet from /assets. The server
 * renders nothing secret into them: no API key, no token, no shipment data but the tracking
 * number the URL names — the scripts read their data with the API key the operator types in
 * (dashboard) or with the token in the page's own URL (tracking page).
 */
import { STATUSES } from '../pipeline/identity.ts'

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!)

function shell(title: string, body: string, script?: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/assets/pages.css">
${script ? `<script type="module" src="/assets/${script}"></script>\n` : ''}</head>
<body>
${body}
</body>
</html>
`
}

export const dashboardPage = () =>
  shell(
    'parcelcast — dashboard',
    `<header><h1>parcelcast</h1><nav><a href="/docs">API reference</a></nav></header>
<main id="dashboard">
  <form id="key-form" hidden>
    <label for="api-key">API key</label>
    <input id="api-key" name="api-key" type="password" autocomplete="off" required>
    <button type="submit">Open</button>
    <p id="key-error" class="error" role="alert" hidden></p>
    <p class="hint">The key stays in this browser tab (sessionStorage) and is sent as <code>Authorization: Bearer</code>; it never goes into a URL.</p>
  </form>
  <section id="signed-in" hidden>
    <p class="toolbar"><span id="refreshed"></span> <span id="live" class="hint"></span> <button id="refresh" type="button">Refresh</button> <button id="forget" type="button">Forget key</button></p>
    <p id="error" class="error" role="alert" hidden></p>
    <section><h2>Readiness</h2><div id="readiness"></div></section>
    <section><h2>Shipments</h2>
      <p><label for="status-filter">Status</label> <select id="status-filter"><option value="">all</option>${STATUSES.map((s) => `<option value="${s}">${s.replaceAll('_', ' ')}</option>`).join('')}</select></p>
      <table id="shipments"><thead><tr><th>Carrier</th><th>Tracking number</th><th>Status</th><th>Last event</th><th>Expected</th><th>Seq</th><th></th></tr></thead><tbody></tbody></table>
      <p><button id="more" type="button" hidden>More</button></p>
      <p id="link" class="link" hidden></p>
    </section>
    <section><h2>Loops</h2><div id="loops"></div></section>
  </section>
</main>`,
    'dashboard.js'
  )

export const trackingPage = (trackingNumber: string, topic: string) =>
  shell(
    `Parcel ${trackingNumber}`,
    `<main id="tracking" data-topic="${escapeHtml(topic)}">
  <h1>Parcel <span id="tracking-number">${escapeHtml(trackingNumber)}</span></h1>
  <p class="status">Status: <strong id="status">loading…</strong></p>
  <p>Expected delivery: <span id="expected">—</span></p>
  <p id="connection" class="connection">connecting…</p>
  <h2>Timeline</h2>
  <ol id="timeline" reversed></ol>
</main>`,
    'tracking.js'
  )

export const docsPage = () =>
  shell(
    'parcelcast — API reference',
    `<header><h1>parcelcast API reference</h1><nav><a href="/openapi.json">openapi.json</a> · <a href="/asyncapi.json">asyncapi.json</a> · <a href="/">dashboard</a></nav></header>
<main id="docs"><p>loading…</p></main>`,
    'docs.js'
  )

/** A plain page that says why and shows nothing else. */
export const refusalPage = (title: string, message: string) =>
  shell(title, `<main class="refusal"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></main>`)
