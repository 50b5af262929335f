import { createServer as createNetServer } from 'node:net'
import { createServer, type Server } from 'node:http'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KeaCommandError, KeaControlClient } from '../../src/kea/control.js'

// The control client against servers that misbehave in every way the issue lists. Real Kea
// (kea-ctrl-agent, unix sockets) is exercised in test/kea/kea-real.test.ts.

let server: Server
let base = ''
const seen: Array<{ path: string, body: string, auth?: string }> = []

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => {
      seen.push({ path: req.url ?? '', body, ...(req.headers.authorization === undefined ? {} : { auth: req.headers.authorization }) })
      switch (req.url) {
        case '/ok': res.end(JSON.stringify([{ result: 0, arguments: { pid: 1 } }])); break
        case '/daemon': res.end(JSON.stringify({ result: 0, arguments: { pid: 2 } })); break
        case '/html': res.setHeader('content-type', 'text/html'); res.end('<html><body>Welcome to nginx</body></html>'); break
        case '/garbage': res.end('{"result": 0, "argum'); break
        case '/huge': {
          // 10 MB of a config-get, sent in pieces.
          const piece = Buffer.alloc(1 << 20, 'x')
          res.write('[{"result":0,"arguments":{"Dhcp4":"')
          let sent = 0
          const more = (): void => { if (sent++ < 10 && !res.destroyed) res.write(piece, more); else res.end('"}}]') }
          more()
          break
        }
        case '/hang': break
        case '/auth':
          if (req.headers.authorization === `Basic ${Buffer.from('kea:secret').toString('base64')}`) res.end('[{"result":0}]')
          else { res.statusCode = 401; res.end('{"result": 401, "text": "Unauthorized"}') }
          break
        default: res.statusCode = 404; res.end('not found')
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

const client = (path: string, extra: Record<string, unknown> = {}): KeaControlClient => new KeaControlClient({ name: 'k', url: `${base}${path}`, timeoutMs: 1500, maxResponseBytes: 2 * 1024 * 1024, ...extra })

async function failure (p: Promise<unknown>): Promise<KeaCommandError> {
  try { await p } catch (err) { return err as KeaCommandError }
  throw new Error('expected a failure')
}

describe('Kea control client', () => {
  it('sends the Control Agent form with service, and the daemon form without', async () => {
    expect(await client('/ok').command('status-get', 'dhcp6')).toEqual({ result: 0, arguments: { pid: 1 } })
    expect(JSON.parse(seen.at(-1)?.body ?? '')).toEqual({ command: 'status-get', service: ['dhcp6'] })
    expect(await client('/daemon', { direct: true }).command('lease4-get-all', 'dhcp4', { subnets: [1] })).toEqual({ result: 0, arguments: { pid: 2 } })
    expect(JSON.parse(seen.at(-1)?.body ?? '')).toEqual({ command: 'lease4-get-all', arguments: { subnets: [1] } })
  })

  it('an HTML page or cut JSON: a protocol error quoting what came', async () => {
    const html = await failure(client('/html').command('status-get', 'dhcp4'))
    expect([html.code, html.kind]).toEqual(['KEATRAIL_ERR_KEA_CONTROL', 'protocol'])
    expect(html.message).toContain('<html><body>Welcome')
    expect((await failure(client('/garbage').command('status-get', 'dhcp4'))).kind).toBe('protocol')
  })

  it('a 10 MB answer is refused at the limit, with memory bounded', async () => {
    const before = process.memoryUsage().rss
    const e = await failure(client('/huge').command('config-get', 'dhcp4'))
    expect(e.kind).toBe('too-large')
    expect(e.message).toMatch(/larger than maxResponseBytes/)
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024)
  })

  it('a hanging server: a timeout after timeoutMs, not a stuck poller', async () => {
    const t0 = Date.now()
    const e = await failure(client('/hang').command('status-get', 'dhcp4'))
    expect(e.kind).toBe('timeout')
    expect(Date.now() - t0).toBeLessThan(4000)
  })

  it('wrong credentials: an auth error; right ones: through', async () => {
    expect((await failure(client('/auth', { username: 'kea', password: 'nope' }).command('status-get', 'dhcp4'))).kind).toBe('auth')
    expect(await client('/auth', { username: 'kea', password: 'secret' }).command('status-get', 'dhcp4')).toEqual({ result: 0 })
  })

  it('nothing listening: unreachable, with the reason', async () => {
    const e = await failure(new KeaControlClient({ name: 'k', url: 'http://127.0.0.1:9/', timeoutMs: 1000 }).command('status-get', 'dhcp4'))
    expect(e.kind).toBe('unreachable')
    expect(e.message).toContain('ECONNREFUSED')
  })

  it('a unix control socket: raw JSON both ways', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kt-sock-')), 'kea4.sock')
    const sock = createNetServer((c) => { c.on('data', () => { c.write('{ "result": 0, "arguments": '); setTimeout(() => c.end('{ "pid": 7 } }'), 50) }) })
    await new Promise<void>((resolve) => sock.listen(path, resolve))
    try {
      expect(await new KeaControlClient({ name: 'k', socket: path }).command('status-get', 'dhcp4')).toEqual({ result: 0, arguments: { pid: 7 } })
    } finally {
      sock.close()
    }
  })

  it('bad config fails at start naming the field', () => {
    expect(() => new KeaControlClient({ name: 'k' })).toThrow(/KEATRAIL_ERR_CONFIG_INVALID|exactly one of url and socket/)
    expect(() => new KeaControlClient({ name: 'k', url: 'not a url' })).toThrow(/kea\.servers\.k\.url/)
  })
})
