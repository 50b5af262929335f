import { connect } from 'node:net'

export interface RawResponse { status: number, headers: Record<string, string>, body: string }

/**
 * Sends one request exactly as written (request line and headers, no normalisation: fetch and
 * inject would resolve %61pi or an absolute-form target before the server saw them) to a
 * loopback port and reads the answer until the server closes. Bounded by `ms`.
 */
export async function rawRequest (port: number, requestLine: string, headers: Record<string, string> = {}, ms = 5000): Promise<RawResponse> {
  const head = [requestLine, ...Object.entries({ host: `127.0.0.1:${port}`, ...headers, connection: 'close' }).map(([k, v]) => `${k}: ${v}`)].join('\r\n') + '\r\n\r\n'
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = []
    const socket = connect({ host: '127.0.0.1', port })
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no complete answer to ${requestLine} within ${ms} ms`)) }, ms)
    // Written, not ended: a half-closed client gets streamed answers cut short.
    socket.on('connect', () => socket.write(head))
    socket.on('data', (d: Buffer) => chunks.push(d))
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('utf8')) })
  })
  const end = text.indexOf('\r\n\r\n')
  const [statusLine = '', ...lines] = text.slice(0, end < 0 ? text.length : end).split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN)
  const hdrs: Record<string, string> = {}
  for (const l of lines) { const i = l.indexOf(':'); if (i > 0) hdrs[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim() }
  let body = end < 0 ? '' : text.slice(end + 4)
  // Chunked bodies: de-chunk so callers can read the JSON.
  if (hdrs['transfer-encoding'] === 'chunked') {
    let out = ''
    for (let rest = body, i = 0; i < 10_000; i++) {
      const nl = rest.indexOf('\r\n')
      const size = parseInt(rest.slice(0, nl), 16)
      if (!(size > 0)) break
      out += rest.slice(nl + 2, nl + 2 + size)
      rest = rest.slice(nl + 2 + size + 2)
    }
    body = out
  }
  return { status, headers: hdrs, body }
}

/**
 * Every spelling of a protected route that must still need a key: percent-encoded path
 * characters, absolute-form targets, and the routes that change state or read leases. `{mac}`
 * is replaced by the caller.
 */
export const UNAUTHENTICATED_VARIANTS: string[] = [
  'GET /api/v1/events?size=1 HTTP/1.1',
  'GET /%61pi/v1/events?size=1 HTTP/1.1',
  'GET /ap%69/v1/events?q=mac:02-00-00-00-00-0a HTTP/1.1',
  'GET /ap%69/v1/stats/top?field=mac HTTP/1.1',
  'GET /%2561pi/v1/events?size=1 HTTP/1.1',
  'GET /api/v1/%65vents?size=1 HTTP/1.1',
  'GET /API/v1/events?size=1 HTTP/1.1',
  'GET //api/v1/events?size=1 HTTP/1.1',
  'GET /api//v1/events?size=1 HTTP/1.1',
  'GET /./api/v1/events?size=1 HTTP/1.1',
  'GET /api/v1/events/?size=1 HTTP/1.1',
  'GET /api/v1/events;x=1?size=1 HTTP/1.1',
  'GET /metrics HTTP/1.1',
  'GET /%6detrics HTTP/1.1',
  'GET http://x/api/v1/events?size=1 HTTP/1.1',
  'GET http://127.0.0.1/%61pi/v1/events?size=1 HTTP/1.1',
  'GET http://x/metrics HTTP/1.1',
  'GET /api/v1/leases/at?address=192.0.2.10&time=2026-11-24T18:02:30Z HTTP/1.1',
  'GET /%61pi/v1/leases/history?mac=02-00-00-00-00-0a HTTP/1.1',
  'GET http://x/api/v1/leases/history?mac=02-00-00-00-00-0a HTTP/1.1',
  'GET /api/v1/deadletter HTTP/1.1',
  'POST /api/v1/deadletter/retry HTTP/1.1',
  'POST /%61pi/v1/deadletter/retry HTTP/1.1',
  'GET /api/v1/whoami HTTP/1.1',
  'GET /api/v1/snapshots/latest HTTP/1.1',
  'HEAD /api/v1/events HTTP/1.1',
  'GET /api/v1/nosuchroute HTTP/1.1',
  'GET /nosuchpath HTTP/1.1'
]
